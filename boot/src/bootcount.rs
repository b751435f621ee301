//! A/B boot counting with U-Boot's semantics (`bootcount`, `bootlimit`, `altbootcmd`).
//!
//! On every boot the firmware reads the counter, calls [`next_boot`], stores the new count
//! ([`encode_count`]) *before* booting, sets the `bootcount` variable (see
//! [`BootDecision::export`]) and runs [`BootDecision::command`]: `bootcmd`, or `altbootcmd` once
//! `bootcount > bootlimit` (a `bootlimit` of 0 or none disables this). Nothing but Linux resets
//! the counter, so after `bootlimit` boots that never reached a healthy userspace the alternative
//! (e.g. the other A/B slot, or the previous kernel) boots.
//!
//! The counter is its own 16-byte text record, [`BOOTCOUNT_PATH`] on the boot partition
//! (`bootcount=00003\n`), so Linux can reset it without knowing the environment format. Once the
//! system is up and healthy, Linux runs (boot partition mounted at `/boot/efi`):
//!
//! ```text
//! echo 0 > /boot/efi/kexboot/bootcnt.txt && sync
//! ```
//!
//! for example from a systemd unit ordered after `boot-complete.target`:
//! `ExecStart=/bin/sh -c 'echo 0 > /boot/efi/kexboot/bootcnt.txt && sync'`.
//! A file holding `0`, `0\n`, nothing at all, or `bootcount=0` reads as 0. An unreadable counter
//! should be treated as 0 (like U-Boot's bootcount drivers do with a bad magic) and said on the
//! console: a damaged counter file must not by itself switch to the alternative.

use alloc::format;
use alloc::string::String;
use core::fmt;

use crate::env::Env;

/// The counter file on the boot partition.
pub const BOOTCOUNT_PATH: &str = "/kexboot/bootcnt.txt";
/// Length of the record [`encode_count`] writes.
pub const RECORD_LEN: usize = 16;
/// Largest count stored (five digits fill the record); counting stops there.
pub const MAX_COUNT: u32 = 99_999;
/// Longest counter file read.
pub const MAX_FILE: usize = 64;

const PREFIX: &str = "bootcount=";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The counter file has `len` bytes, more than `max`.
    TooLong { len: usize, max: usize },
    /// The counter file does not hold a count; `found` is its (lossy, trimmed) text.
    NotANumber { found: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooLong { len, max } => {
                write!(f, "{BOOTCOUNT_PATH}: {len} bytes, expected at most {max}")
            }
            Error::NotANumber { found } => write!(
                f,
                "{BOOTCOUNT_PATH}: {found:?} is not a count, expected e.g. 'bootcount=3' or '0'"
            ),
        }
    }
}

/// What this boot does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDecision {
    /// The new count, to store before booting.
    pub count: u32,
    /// `bootlimit`, when set to a non-zero number.
    pub limit: Option<u32>,
    /// Run `altbootcmd` instead of `bootcmd`.
    pub use_alt: bool,
    /// One line for the console.
    pub reason: String,
}

impl BootDecision {
    /// The command text to run: `altbootcmd` or `bootcmd` (`None` when that variable is unset;
    /// like U-Boot, a missing `altbootcmd` does not fall back to `bootcmd`).
    pub fn command<'e>(&self, env: &'e Env) -> Option<&'e str> {
        env.get(if self.use_alt {
            "altbootcmd"
        } else {
            "bootcmd"
        })
    }

    /// Sets `bootcount` in the environment, as U-Boot does, so scripts can read it.
    pub fn export(&self, env: &mut Env) {
        env.set("bootcount", &format!("{}", self.count));
    }
}

/// Decides this boot from the environment and the stored count.
pub fn next_boot(env: &Env, stored: u32) -> BootDecision {
    let count = stored.saturating_add(1).min(MAX_COUNT);
    let raw = env.get("bootlimit").map(str::trim);
    let parsed = raw.map(|s| s.parse::<u32>());
    let limit = match parsed {
        Some(Ok(l)) if l > 0 => Some(l),
        _ => None,
    };
    let use_alt = limit.is_some_and(|l| count > l);
    let reason = match (limit, raw, parsed) {
        (Some(l), ..) if use_alt => {
            let missing = if env.get("altbootcmd").is_none() {
                " (altbootcmd is not set)"
            } else {
                ""
            };
            format!("Warning: Bootlimit ({l}) exceeded. Using altbootcmd.{missing}")
        }
        (Some(l), ..) => format!("boot {count} of bootlimit {l}: using bootcmd"),
        (None, Some(r), Some(Err(_))) => {
            format!("bootlimit={r} is not a number, ignored: boot {count}, using bootcmd")
        }
        _ => format!("boot {count}, no bootlimit: using bootcmd"),
    };
    BootDecision {
        count,
        limit,
        use_alt,
        reason,
    }
}

/// The counter record: `bootcount=NNNNN\n`, exactly [`RECORD_LEN`] bytes (saturates at
/// [`MAX_COUNT`]).
pub fn encode_count(n: u32) -> [u8; RECORD_LEN] {
    let n = n.min(MAX_COUNT);
    let mut out = [0u8; RECORD_LEN];
    out[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
    let mut v = n;
    // Five digits, most significant first, at offsets 10..15.
    for i in (PREFIX.len()..PREFIX.len() + 5).rev() {
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out[RECORD_LEN - 1] = b'\n';
    out
}

/// Reads a counter file: the record above, or what Linux leaves (`0`, `0\n`, empty, NUL padding,
/// `bootcount=0`). Counts above [`MAX_COUNT`] read as [`MAX_COUNT`].
pub fn decode_count(bytes: &[u8]) -> Result<u32, Error> {
    if bytes.len() > MAX_FILE {
        return Err(Error::TooLong {
            len: bytes.len(),
            max: MAX_FILE,
        });
    }
    let bad = || Error::NotANumber {
        found: String::from_utf8_lossy(bytes)
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .into(),
    };
    let text = core::str::from_utf8(bytes).map_err(|_| bad())?;
    let text = text.trim_matches(|c: char| c == '\0' || c.is_ascii_whitespace());
    let digits = text.strip_prefix(PREFIX).unwrap_or(text).trim();
    if digits.is_empty() {
        return Ok(0);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // At most MAX_FILE digits: compute saturating instead of overflowing.
    let mut v: u32 = 0;
    for b in digits.bytes() {
        v = v.saturating_mul(10).saturating_add(u32::from(b - b'0'));
    }
    Ok(v.min(MAX_COUNT))
}
