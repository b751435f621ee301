//! Handoff record: what `decode` accepts re-encodes to a record that decodes to the same value;
//! an encoded record round-trips (label cut to LABEL_MAX at a character boundary) and any single
//! corrupted byte is refused; `classify` only trusts a region inside RAM clear of `avoid`.
#![no_main]

use arbitrary::Unstructured;
use kexboot_loader::dt::Handoff;
use kexboot_loader::handoff::{classify, Entry, Record, LABEL_MAX, RECORD_LEN};
use kexboot_loader::Range;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Record::decode(data) {
        assert!(r.label.len() <= LABEL_MAX);
        assert_eq!(Record::decode(&r.encode()), Ok(r));
    }
    let mut u = Unstructured::new(data);
    let (Ok(generation), Ok(boot_id), Ok(label)) =
        (u.arbitrary(), u.arbitrary(), u.arbitrary::<String>())
    else {
        return;
    };
    let label = label.replace('\0', "");
    let rec = Record {
        generation,
        boot_id,
        label: label.clone(),
    };
    let bytes = rec.encode();
    let back = Record::decode(&bytes).expect("an encoded record is refused");
    assert_eq!((back.generation, back.boot_id), (generation, boot_id));
    assert!(label.starts_with(&back.label) && back.label.len() <= LABEL_MAX);
    assert!(label.len() > LABEL_MAX || back.label == label);
    if let (Ok(at), Ok(x)) = (u.choose_index(RECORD_LEN), u.int_in_range(1..=255u8)) {
        let mut bad = bytes;
        bad[at] ^= x;
        assert!(
            Record::decode(&bad).is_err(),
            "byte {at} corrupted, record still accepted"
        );
    }
    // The region check before the record is read.
    let (Ok(start), Ok(len), Ok(ram_start), Ok(ram_len), Ok(id)) = (
        u.arbitrary::<u64>(),
        u.arbitrary::<u64>(),
        u.arbitrary::<u64>(),
        u.arbitrary::<u64>(),
        u.arbitrary::<Option<u64>>(),
    ) else {
        return;
    };
    let (Ok(region), Ok(ram)) = (
        Range::from_len(start, len),
        Range::from_len(ram_start, ram_len),
    ) else {
        return;
    };
    let avoid = [Range::from_len(ram_start, 0x20_0000).unwrap_or(ram)];
    let mut read_at = None;
    let entry = classify(
        Some(Handoff {
            region,
            boot_id: id,
        }),
        &[ram],
        &avoid,
        &mut |a| {
            read_at = Some(a);
            bytes.to_vec()
        },
    );
    if let Some(a) = read_at {
        assert_eq!(a, region.start());
        assert!(ram.contains_range(&region) && !avoid[0].overlaps(&region));
        assert!(region.len() >= RECORD_LEN as u64);
    }
    if let Entry::Warm(r) = entry {
        assert_eq!(Some(r.boot_id), id);
        assert_eq!(r, back);
    }
});
