//! Power-cut-safe storage of the environment: U-Boot's redundant environment.
//!
//! The region (the file [`STORE_PATH`] on the boot partition, [`REGION_SIZE`] bytes) holds two
//! copies A and B of [`COPY_SIZE`] bytes back to back. Each copy is, as in U-Boot:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | CRC32 (IEEE, little-endian) of the data field |
//! | 4 | 1 | flags: a sequence number, +1 on every save (wrapping) |
//! | 5 | rest | `name=value\0name=value\0\0`, sorted by name, padded with 0 |
//!
//! This is the layout U-Boot's `mkenvimage -r` and Linux's `fw_printenv`/`fw_setenv` use for a
//! redundant environment on a plain file (incremental flags), so from Linux a `fw_env.config` of
//! `/boot/efi/kexboot/env.bin 0x0000 0x4000` + `/boot/efi/kexboot/env.bin 0x4000 0x4000` reads and
//! writes it. (The CRC covers the data only, like U-Boot; the flag byte merely picks a copy.)
//!
//! Loading takes the valid copy with the newer sequence number (serial-number arithmetic, so
//! 0 is newer than 255). Saving always overwrites the copy that is *not* current, with the
//! sequence number + 1: a power cut during the write leaves that copy with a bad CRC and the
//! current one untouched, so the next load finds the old environment (and says the other copy is
//! corrupt), or, once the write completed, the new one. The file must be written in place (same
//! size, no truncation), which on FAT rewrites only the data clusters of that copy.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::env::Env;

/// Where the stored environment lives on the boot partition.
pub const STORE_PATH: &str = "/kexboot/env.bin";
/// Size of one copy (U-Boot's `CONFIG_ENV_SIZE` for kexboot).
pub const COPY_SIZE: usize = 16 << 10;
/// Size of the whole region: copy A then copy B.
pub const REGION_SIZE: usize = 2 * COPY_SIZE;
/// CRC32 + flags.
pub const HEADER_LEN: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A copy size that cannot hold even an empty environment.
    CopyTooSmall { size: usize },
    /// The environment needs `needed` data bytes; a copy has room for `capacity`.
    TooBig { needed: usize, capacity: usize },
    /// A variable name that cannot be stored (empty, `=` or NUL in it).
    BadName { name: String },
    /// A value with a NUL byte in it.
    NulInValue { name: String },
    /// The copy is shorter than it should be.
    Truncated { len: usize, expected: usize },
    /// The stored CRC32 (`expected`) does not match the data (`found`).
    Crc { expected: u32, found: u32 },
    /// No `\0\0` end marker in the data.
    NoTerminator,
    /// An entry without `=` or with an empty name, at data offset `offset`.
    BadEntry { offset: usize },
    /// An entry that is not UTF-8, at data offset `offset`.
    NotUtf8 { offset: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CopyTooSmall { size } => {
                write!(f, "environment copy of {size} bytes is too small")
            }
            Error::TooBig { needed, capacity } => write!(
                f,
                "environment too big: {needed} bytes, a copy holds {capacity}"
            ),
            Error::BadName { name } => write!(f, "variable name {name:?} cannot be stored"),
            Error::NulInValue { name } => write!(f, "value of {name} contains a NUL byte"),
            Error::Truncated { len, expected } => {
                write!(f, "truncated: {len} bytes, expected {expected}")
            }
            Error::Crc { expected, found } => {
                write!(f, "CRC: expected {expected:#010x}, found {found:#010x}")
            }
            Error::NoTerminator => write!(f, "no end marker"),
            Error::BadEntry { offset } => write!(f, "bad entry at data offset {offset}"),
            Error::NotUtf8 { offset } => write!(f, "entry at data offset {offset} is not UTF-8"),
        }
    }
}

/// Which copy the environment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    A,
    B,
    /// Neither copy was usable: the board defaults.
    Defaults,
}

/// The result of [`load`]: the environment, where it came from, and what the console should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub env: Env,
    pub source: Source,
    /// Sequence number of the current copy (0 for defaults).
    pub seq: u8,
    pub copy_size: usize,
    pub notes: Vec<String>,
}

/// One write that saves the environment: put `bytes` at `offset` of the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavePlan {
    pub offset: usize,
    pub bytes: Vec<u8>,
    /// The copy written (never the current one).
    pub target: Source,
    pub seq: u8,
}

/// Serialises `env` into one copy of `size` bytes with sequence number `seq`.
pub fn encode(env: &Env, seq: u8, size: usize) -> Result<Vec<u8>, Error> {
    if size < HEADER_LEN + 2 {
        return Err(Error::CopyTooSmall { size });
    }
    let capacity = size - HEADER_LEN;
    let vars = env.iter_sorted();
    let mut needed = 1;
    for (n, v) in &vars {
        if n.is_empty() || n.contains(['=', '\0']) {
            return Err(Error::BadName {
                name: String::from(*n),
            });
        }
        if v.contains('\0') {
            return Err(Error::NulInValue {
                name: String::from(*n),
            });
        }
        needed += n.len() + v.len() + 2;
    }
    // An empty environment is stored as "\0\0".
    needed = needed.max(2);
    if needed > capacity {
        return Err(Error::TooBig { needed, capacity });
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&[0; 4]);
    out.push(seq);
    for (n, v) in &vars {
        out.extend_from_slice(n.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out.resize(size, 0);
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Checks and parses one copy; returns the environment and its sequence number.
pub fn decode(copy: &[u8]) -> Result<(Env, u8), Error> {
    let (Some(crc), Some(&seq), Some(data)) = (copy.get(..4), copy.get(4), copy.get(HEADER_LEN..))
    else {
        return Err(Error::CopyTooSmall { size: copy.len() });
    };
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let found = crc32fast::hash(data);
    if expected != found {
        return Err(Error::Crc { expected, found });
    }
    let mut env = Env::default();
    let mut off = 0;
    // Each pass consumes at least one byte of `data`.
    while off < data.len() {
        let len = data[off..]
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::NoTerminator)?;
        if len == 0 {
            return Ok((env, seq));
        }
        let entry = core::str::from_utf8(&data[off..off + len])
            .map_err(|_| Error::NotUtf8 { offset: off })?;
        match entry.split_once('=') {
            Some((n, v)) if !n.is_empty() => env.set(n, v),
            _ => return Err(Error::BadEntry { offset: off }),
        }
        off += len + 1;
    }
    Err(Error::NoTerminator)
}

enum CopyState {
    Valid(Env, u8),
    /// Never written: missing, all 0x00 or all 0xFF (erased flash).
    Empty,
    Corrupt(Error),
}

fn classify(region: &[u8], start: usize, size: usize) -> CopyState {
    let bytes = region.get(start..).unwrap_or(&[]);
    let bytes = &bytes[..bytes.len().min(size)];
    if bytes.iter().all(|&b| b == 0) || bytes.iter().all(|&b| b == 0xff) {
        return CopyState::Empty;
    }
    if bytes.len() < size {
        return CopyState::Corrupt(Error::Truncated {
            len: bytes.len(),
            expected: size,
        });
    }
    match decode(bytes) {
        Ok((env, seq)) => CopyState::Valid(env, seq),
        Err(e) => CopyState::Corrupt(e),
    }
}

/// Whether sequence number `b` is newer than `a` (serial-number arithmetic: 0 follows 255).
pub fn is_newer(b: u8, a: u8) -> bool {
    (b.wrapping_sub(a) as i8) > 0
}

/// Reads both copies of `region` (copies of `copy_size` bytes) and picks the environment to use;
/// `defaults` when neither copy is valid. Never fails: what went wrong is in `notes`.
pub fn load(region: &[u8], copy_size: usize, defaults: &Env) -> Loaded {
    let a = classify(region, 0, copy_size);
    let b = classify(region, copy_size, copy_size);
    let mut notes = Vec::new();
    let (env, source, seq) = match (a, b) {
        (CopyState::Valid(ea, sa), CopyState::Valid(eb, sb)) => {
            if is_newer(sb, sa) {
                (eb, Source::B, sb)
            } else {
                (ea, Source::A, sa)
            }
        }
        (CopyState::Valid(e, s), other) => {
            if let CopyState::Corrupt(err) = other {
                notes.push(format!(
                    "environment copy B is corrupt ({err}), using copy A"
                ));
            }
            (e, Source::A, s)
        }
        (other, CopyState::Valid(e, s)) => {
            if let CopyState::Corrupt(err) = other {
                notes.push(format!(
                    "environment copy A is corrupt ({err}), using copy B"
                ));
            }
            (e, Source::B, s)
        }
        (CopyState::Empty, CopyState::Empty) => {
            notes.push(String::from("no saved environment: using defaults"));
            (defaults.clone(), Source::Defaults, 0)
        }
        (CopyState::Corrupt(ea), CopyState::Corrupt(eb)) => {
            notes.push(format!(
                "both environment copies corrupt (A: {ea}; B: {eb}): using defaults"
            ));
            (defaults.clone(), Source::Defaults, 0)
        }
        (CopyState::Corrupt(e), _) => {
            notes.push(format!(
                "environment copy A is corrupt ({e}) and copy B is empty: using defaults"
            ));
            (defaults.clone(), Source::Defaults, 0)
        }
        (_, CopyState::Corrupt(e)) => {
            notes.push(format!(
                "environment copy B is corrupt ({e}) and copy A is empty: using defaults"
            ));
            (defaults.clone(), Source::Defaults, 0)
        }
    };
    Loaded {
        env,
        source,
        seq,
        copy_size,
        notes,
    }
}

impl Loaded {
    /// The write that saves `env`: the copy that is not current, with the next sequence number.
    pub fn plan_save(&self, env: &Env) -> Result<SavePlan, Error> {
        let seq = self.seq.wrapping_add(1);
        let (target, offset) = match self.source {
            Source::A => (Source::B, self.copy_size),
            Source::B | Source::Defaults => (Source::A, 0),
        };
        Ok(SavePlan {
            offset,
            bytes: encode(env, seq, self.copy_size)?,
            target,
            seq,
        })
    }

    /// Records that `plan` (made from `env`) was written completely: it is now the current copy.
    pub fn saved(&mut self, plan: &SavePlan, env: &Env) {
        self.env = env.clone();
        self.source = plan.target;
        self.seq = plan.seq;
        self.notes.clear();
    }
}

/// [`Loaded::plan_save`] as a free function: `(offset, bytes)` to write into the region.
pub fn plan_save(loaded: &Loaded, env: &Env) -> Result<(usize, Vec<u8>), Error> {
    loaded.plan_save(env).map(|p| (p.offset, p.bytes))
}
