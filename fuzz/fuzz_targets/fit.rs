//! FIT parser: any bytes as a FIT (with no keys: hashes and bounds only), as a script FIT, and
//! as a key blob. Never a panic; every image handed out lies inside the input, and two images
//! of one boot never share bytes.
#![no_main]

use kexboot_loader::fit::{self, Keys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fit::nodes(data);
    let _ = Keys::parse(data);
    if let Ok(o) = fit::open(data, None, &Keys::none()) {
        assert!(o.verified.is_none());
        let parts: Vec<_> = [&o.kernel, &o.fdt, &o.ramdisk, &o.script]
            .into_iter()
            .flatten()
            .collect();
        for p in &parts {
            assert!(p.data.start <= p.data.end && p.data.end <= data.len(), "{p:?}");
        }
        for a in &parts {
            for b in &parts {
                if a.name != b.name {
                    assert!(
                        a.data.end <= b.data.start || b.data.end <= a.data.start,
                        "{a:?} overlaps {b:?}"
                    );
                }
            }
        }
    }
    if let Ok(p) = fit::open_script(data, None, &Keys::none()) {
        assert!(p.data.end <= data.len());
    }
});
