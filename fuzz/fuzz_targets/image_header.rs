//! arm64 Image header: a header that parses has consistent fields, and the placement computed
//! from it keeps the kernel (text_offset past a 2 MiB base, image_size long) inside RAM and
//! clear of what must be avoided.
#![no_main]

use kexboot_loader::image::{ImageHeader, HEADER_LEN, LEGACY_IMAGE_SIZE, LEGACY_TEXT_OFFSET};
use kexboot_loader::mem::{PAGE_SIZE, SZ_2M};
use kexboot_loader::place::place;
use kexboot_loader::Range;
use libfuzzer_sys::fuzz_target;

/// 1 GiB of RAM at QEMU virt's base, with the firmware's own 2 MiB kept out.
const RAM: (u64, u64) = (0x4000_0000, 0x8000_0000);
const FIRMWARE: (u64, u64) = (0x4000_0000, 0x4020_0000);

fuzz_target!(|data: &[u8]| {
    let Ok(h) = ImageHeader::parse(data) else {
        return;
    };
    assert!(data.len() >= HEADER_LEN);
    assert_eq!(h.text_offset() % PAGE_SIZE, 0);
    let end = h
        .text_offset()
        .checked_add(h.image_size())
        .expect("size overflow accepted");
    assert!(end >= h.text_offset());
    assert!(
        data.len() as u64 <= h.image_size(),
        "file larger than image_size accepted"
    );
    if h.is_legacy() {
        assert_eq!(
            (h.text_offset(), h.image_size()),
            (LEGACY_TEXT_OFFSET, LEGACY_IMAGE_SIZE)
        );
    }
    assert_eq!(
        ImageHeader::parse(data),
        Ok(h),
        "parse is not deterministic"
    );

    let ram = [Range::new(RAM.0, RAM.1).unwrap()];
    let avoid = [Range::new(FIRMWARE.0, FIRMWARE.1).unwrap()];
    let Ok(p) = place(&ram, &avoid, &h, 0x10_0000, 0x1_0000) else {
        return;
    };
    assert_eq!(p.kernel.len(), h.image_size());
    assert_eq!(p.entry, p.kernel.start());
    assert!(p.kernel.start() >= h.text_offset());
    assert_eq!(
        (p.kernel.start() - h.text_offset()) % SZ_2M,
        0,
        "base not 2 MiB aligned"
    );
    let parts = [Some(p.kernel), p.initrd, Some(p.dtb)];
    for (i, r) in parts.iter().flatten().enumerate() {
        assert!(ram[0].contains_range(r), "{r} outside RAM");
        assert!(!avoid[0].overlaps(r), "{r} over the firmware");
        for o in parts.iter().flatten().skip(i + 1) {
            assert!(!r.overlaps(o), "{r} overlaps {o}");
        }
    }
});
