//! Device tree overlays (`apply_overlay`) and a named tree keeping the firmware's reserved
//! memory (`keep_firmware_memory`): hostile base and overlay never panic; a result fits the 2 MiB the
//! boot protocol allows, re-parses (kexboot's checked reader and the `fdt` crate), keeps every
//! `/memreserve/` entry it must, and goes through `fixup` like any firmware tree.
//! Input: the base's length (u16 LE), the base, then the overlay.
#![no_main]

use kexboot_fuzz::memreserve;
use kexboot_loader::dt::{apply_overlay, fixup, keep_firmware_memory, DtInfo, Fixups};
use kexboot_loader::{Error, MAX_DTB_SIZE};
use libfuzzer_sys::fuzz_target;

/// `out` is a valid tree holding every `/memreserve/` entry of `kept_from`.
fn check_result(kept_from: &[u8], out: &[u8]) {
    assert!(out.len() as u64 <= MAX_DTB_SIZE, "{} bytes out", out.len());
    assert!(fdt::Fdt::new(out).is_ok(), "result rejected by fdt");
    // An overlay may set any property (e.g. #address-cells), so `reg` may no longer decode:
    // the structure is guaranteed, the meaning is the overlay's.
    match DtInfo::read(out) {
        Ok(_) | Err(Error::BadReg { .. }) => {}
        Err(e) => panic!("result does not re-parse: {e}"),
    }
    let after = memreserve(out);
    // A zero-size entry reserves nothing; kexboot's reader drops it.
    for r in memreserve(kept_from).into_iter().filter(|r| r.1 != 0) {
        assert!(after.contains(&r), "memreserve {r:x?} lost");
    }
    let _ = fixup(out, &Fixups::default());
}

fuzz_target!(|data: &[u8]| {
    let Some(len) = data
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    else {
        return;
    };
    let rest = &data[2..];
    let (base, overlay) = rest.split_at(len.min(rest.len()));
    if let Ok(out) = apply_overlay(base, overlay) {
        check_result(base, &out);
    }
    // `overlay` stands for a tree an entry names, `base` for the firmware's: both trees'
    // reservations are in the result.
    if let Ok(out) = keep_firmware_memory(base, overlay) {
        check_result(base, &out);
        check_result(overlay, &out);
    }
});
