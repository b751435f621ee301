//! The redundant environment store: loading any region never fails; saving writes the copy that
//! is not current, and loading the region after the save gives the saved environment from that
//! copy; a save cut short (the copy half written) still loads the environment from before.
//! Input: the first byte picks the copy size (small, so the fuzzer reaches both copies), then the
//! region; a trailer (its length in the last byte) holds `name=value` lines to save.
#![no_main]

use kexboot_boot::env::Env;
use kexboot_boot::envstore::{load, Source, HEADER_LEN};
use kexboot_fuzz::split_trailer;
use libfuzzer_sys::fuzz_target;

const COPY_SIZES: [usize; 4] = [64, 256, 1024, 16 << 10];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (region, trailer) = split_trailer(rest);
    let copy = COPY_SIZES[usize::from(sel) % COPY_SIZES.len()];
    let defaults = Env::parse("bootdelay=2\n").0;
    // A short region reads as zero-padded (what a fresh file of REGION_SIZE holds).
    let mut full = region.to_vec();
    full.resize(2 * copy, 0);
    let loaded = load(&full, copy, &defaults);
    assert_eq!(loaded.copy_size, copy);
    if loaded.source == Source::Defaults {
        assert_eq!(loaded.env, defaults);
    }
    let want = Env::parse(&String::from_utf8_lossy(trailer)).0;
    let Ok(plan) = loaded.plan_save(&want) else {
        return;
    };
    assert_ne!(
        plan.target, loaded.source,
        "save overwrites the current copy"
    );
    assert_eq!(plan.bytes.len(), copy);
    let before = full.clone();
    full[plan.offset..plan.offset + copy].copy_from_slice(&plan.bytes);
    let after = load(&full, copy, &defaults);
    assert_eq!(after.source, plan.target);
    assert_eq!(after.seq, plan.seq);
    assert_eq!(after.env.iter_sorted(), want.iter_sorted());
    // Power cut in the middle of the data: the old environment is still what loads.
    let mut cut = before;
    let half = plan.offset + HEADER_LEN + (copy - HEADER_LEN) / 2;
    cut[plan.offset..half].copy_from_slice(&plan.bytes[..half - plan.offset]);
    let torn = load(&cut, copy, &defaults);
    if torn.source == plan.target {
        // Only if the torn copy happens to carry the same data as before (CRC matches).
        assert_eq!(torn.env.iter_sorted(), want.iter_sorted());
    } else {
        assert_eq!(
            torn.env.iter_sorted(),
            loaded.env.iter_sorted(),
            "a torn save changed the environment"
        );
    }
});
