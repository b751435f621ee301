//! Boot scripts, plain and wrapped by `mkimage -T script`: the wrapper round-trips
//! (`make_legacy_script_image` then `parse_legacy_script_image` gives the text back), a fuzzed
//! image (CRCs recomputed so the fuzzer reaches the size table) unwraps or is refused, and the
//! text runs on a fake board and console to an end within the step budget, with the environment
//! within its bound.
//! Input: first byte = mode (bit 0: wrap the text with mkimage's format; bit 1: the rest is an
//! image, CRCs fixed up), then the text or image.
#![no_main]

use kexboot_boot::env::Env;
use kexboot_boot::script::{
    Services,
    make_legacy_script_image, parse_legacy_script_image, CmdError, Commands, Ctx, Interp,
    IH_HEADER_LEN, MAX_ENV_BYTES, MAX_STEPS,
};
use kexboot_boot::{FakeClock, FakeConsole};
use libfuzzer_sys::fuzz_target;

/// Fake firmware commands: `boot*` stop the script, `load` needs arguments, `dhcp` fails.
struct Board {
    calls: u32,
}

const NAMES: &[&str] = &[
    "load", "fatload", "booti", "bootm", "boot", "tftpboot", "dhcp", "saveenv",
];

impl Services for Board {
    fn signed_scripts_only(&self) -> bool {
        false
    }
}

impl Commands for Board {
    fn call(&mut self, argv: &[String], _ctx: &mut Ctx) -> Result<(), CmdError> {
        self.calls += 1;
        match argv[0].as_str() {
            "booti" | "bootm" | "boot" => Err(CmdError::Stop),
            "load" | "fatload" if argv.len() < 4 => Err(CmdError::Msg("usage: load".into())),
            "dhcp" => Err(CmdError::Failed),
            _ => Ok(()),
        }
    }
    fn has(&self, name: &str) -> bool {
        NAMES.contains(&name)
    }
}

/// Makes the header and data CRCs of a legacy image right, so mutations reach what follows.
fn fix_crcs(img: &mut [u8]) {
    if img.len() < IH_HEADER_LEN {
        return;
    }
    let size = u32::from_be_bytes([img[12], img[13], img[14], img[15]]) as usize;
    if let Some(data) = img.get(IH_HEADER_LEN..IH_HEADER_LEN.saturating_add(size)) {
        let dcrc = crc32(data);
        img[24..28].copy_from_slice(&dcrc.to_be_bytes());
    }
    img[4..8].fill(0);
    let hcrc = crc32(&img[..IH_HEADER_LEN]);
    img[4..8].copy_from_slice(&hcrc.to_be_bytes());
}

/// CRC-32 (IEEE), bitwise: independent of the implementation under test.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn env_bytes(env: &Env) -> usize {
    env.iter_sorted()
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text: String = if mode & 2 != 0 {
        let mut img = rest.to_vec();
        fix_crcs(&mut img);
        match parse_legacy_script_image(&img) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        }
    } else {
        let Ok(t) = std::str::from_utf8(rest) else {
            return;
        };
        if mode & 1 != 0 {
            let img = make_legacy_script_image(t, "fuzz");
            let back = parse_legacy_script_image(&img);
            if t.trim_end_matches('\0').is_empty() {
                assert!(back.is_err() || back == Ok(""));
            } else {
                assert_eq!(
                    back,
                    Ok(t.trim_end_matches('\0')),
                    "mkimage wrapper round trip"
                );
            }
        }
        t.to_string()
    };
    let mut env = Env::parse("bootcmd=run distro_bootcmd\ndistro_bootcmd=echo boot\n").0;
    let start_bytes = env_bytes(&env);
    let mut con = FakeConsole::new(b"");
    // One second per clock read: `sleep` (at most an hour) finishes in a bounded number of polls.
    let clock = FakeClock::new(1_000_000);
    let mut board = Board { calls: 0 };
    let mut interp = Interp::new();
    let mut ctx = Ctx {
        env: &mut env,
        console: &mut con,
        clock: &clock,
    };
    let _ = interp.run("fuzz", &text, &mut ctx, &mut board);
    assert!(
        board.calls <= MAX_STEPS,
        "{} firmware calls, budget {MAX_STEPS}",
        board.calls
    );
    assert!(
        env_bytes(&env) <= MAX_ENV_BYTES.max(start_bytes),
        "environment grew past its bound"
    );
});
