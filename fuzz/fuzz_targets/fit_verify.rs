//! FIT verification: a FIT Debian's mkimage signed (sha256,rsa2048, `loader/tests/data/fit/`)
//! with fuzz-chosen changes: bytes flipped anywhere, bytes inserted into or cut from the
//! structure block (with the header adjusted, so the tree still parses). With its key
//! required, either the FIT is refused or exactly the signed kernel, fdt and ramdisk come out:
//! anything else is a signature bypass.
#![no_main]

use arbitrary::Unstructured;
use kexboot_loader::fit::{self, Keys};
use libfuzzer_sys::fuzz_target;

const FIT: &[u8] = include_bytes!("../../loader/tests/data/fit/rsa.itb");
const KEYS: &[u8] = include_bytes!("../../loader/tests/data/fit/keys-rsa.dtb");
const KERNEL: &[u8] = include_bytes!("../../loader/tests/data/fit/kernel");
const FDT: &[u8] = include_bytes!("../../loader/tests/data/fit/fdt.dtb");
const RAMDISK: &[u8] = include_bytes!("../../loader/tests/data/fit/ramdisk");

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

fn adjust(b: &mut [u8], off: usize, delta: i64) {
    let v = (be32(b, off) as i64 + delta) as u32;
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let keys = Keys::parse(KEYS).expect("test keys");
    let mut u = Unstructured::new(data);
    let mut fit = FIT.to_vec();
    let st = be32(FIT, 8) as usize;
    let st_len = be32(FIT, 36) as usize;
    for _ in 0..u.int_in_range(0..=8u8).unwrap_or(0) {
        match u.int_in_range(0..=2u8).unwrap_or(0) {
            0 => {
                let (Ok(at), Ok(x)) = (u.choose_index(fit.len()), u.int_in_range(1..=255u8))
                else {
                    break;
                };
                fit[at] ^= x;
            }
            1 => {
                // Whole words inserted into the structure block, header following.
                let Ok(at) = u.int_in_range(0..=st_len / 4 - 1) else { break };
                let Ok(words) = u.int_in_range(1..=16usize) else { break };
                let bytes: Vec<u8> = (0..words * 4).map(|_| u.arbitrary().unwrap_or(0)).collect();
                let at = st + at * 4;
                fit.splice(at..at, bytes);
                let d = (words * 4) as i64;
                adjust(&mut fit, 4, d);
                adjust(&mut fit, 36, d);
                adjust(&mut fit, 12, d);
            }
            _ => {
                let Ok(at) = u.int_in_range(0..=st_len / 4 - 2) else { break };
                let Ok(words) = u.int_in_range(1..=8usize) else { break };
                let at = st + at * 4;
                let end = (at + words * 4).min(st + st_len - 4);
                if end <= at {
                    break;
                }
                let d = (end - at) as i64;
                fit.drain(at..end);
                adjust(&mut fit, 4, -d);
                adjust(&mut fit, 36, -d);
                adjust(&mut fit, 12, -d);
            }
        }
    }
    for conf in [None, Some("conf-1"), Some("conf-2")] {
        if let Ok(o) = fit::open(&fit, conf, &keys) {
            assert!(o.verified.is_some());
            let part = |p: &Option<fit::Part>| p.as_ref().map(|p| &fit[p.data.clone()]);
            assert_eq!(part(&o.kernel), Some(KERNEL), "signature bypass: other kernel");
            assert_eq!(part(&o.fdt), Some(FDT), "signature bypass: other fdt");
            assert_eq!(part(&o.ramdisk), Some(RAMDISK), "signature bypass: other ramdisk");
        }
    }
});
