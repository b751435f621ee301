//! Device tree reading: whatever `DtInfo::read` accepts is self-consistent and read the same way
//! twice; the blob it accepted also opens in the `fdt` crate.
#![no_main]

use kexboot_loader::dt::DtInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = DtInfo::read(data) else {
        assert!(DtInfo::parse(data).is_err());
        return;
    };
    assert!(
        info.total_size <= data.len(),
        "totalsize beyond the blob accepted"
    );
    assert_eq!(info.cpus, info.cpu_nodes.len());
    assert!(info.memory.iter().all(|r| !r.is_empty()));
    for r in &info.no_map {
        assert!(info.reserved.contains(r), "no-map {r} not in reserved");
    }
    if let Some(h) = info.handoff {
        assert!(info.reserved.contains(&h.region));
    }
    if let Some(r) = info.ramoops {
        assert!(info.reserved.contains(&r));
    }
    assert!(
        fdt::Fdt::new(data).is_ok(),
        "accepted a blob the fdt crate refuses"
    );
    assert_eq!(DtInfo::read(data).as_ref(), Ok(&info));
    match DtInfo::parse(data) {
        Ok(p) => assert_eq!(p, info),
        Err(_) => assert!(info.memory.is_empty()),
    }
});
