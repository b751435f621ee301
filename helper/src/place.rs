//! Where kexboot, its DTB and the purgatory page go in physical memory.
//!
//! kexboot goes at the lowest 2 MiB-aligned base (+ text_offset) where its whole `image_size`
//! fits in free RAM; the DTB goes at the first free page after it, the purgatory page after the
//! DTB (each falls back to the lowest free place if nothing is free above). Free RAM is the
//! "System RAM" of `/proc/iomem` minus everything nested in it and the DT's reserved memory.

use core::fmt;

use kexboot_loader::mem::{align_up, free_regions, SZ_2M};
use kexboot_loader::Range;

use crate::image::KexbootImage;

/// The three destinations, each page-aligned with a page-rounded length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// kexboot: its load address (2 MiB-aligned base + text_offset) and `image_size` rounded up.
    pub kexboot: Range,
    /// The DTB for kexboot.
    pub dtb: Range,
    /// The one purgatory page; the kexec entry point is its start.
    pub purgatory: Range,
}

impl Layout {
    /// The address kexboot is entered at.
    pub fn kexboot_entry(&self) -> u64 {
        self.kexboot.start()
    }
}

/// Why no layout was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// The kernel's page size is not a power of two between 4 KiB and 2 MiB.
    BadPageSize { page: u64 },
    /// kexboot's text_offset is not a multiple of the kernel's page size.
    UnalignedTextOffset { text_offset: u64, page: u64 },
    /// `what` (`size` bytes) fits nowhere in free RAM.
    NoRoom { what: &'static str, size: u64 },
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceError::BadPageSize { page } => write!(f, "unsupported page size {page:#x}"),
            PlaceError::UnalignedTextOffset { text_offset, page } => write!(
                f,
                "kexboot text_offset {text_offset:#x} is not a multiple of the page size {page:#x}"
            ),
            PlaceError::NoRoom { what, size } => write!(
                f,
                "no room for {what} ({size:#x} bytes) in free System RAM (see /proc/iomem)"
            ),
        }
    }
}

/// Lowest `align`-aligned start at or above `from` where `size` bytes fit in `free`.
fn first_fit(free: &[Range], from: u64, size: u64, align: u64) -> Option<Range> {
    free.iter().find_map(|r| {
        let start = align_up(r.start().max(from), align)?;
        let range = Range::from_len(start, size).ok()?;
        r.contains_range(&range).then_some(range)
    })
}

/// [`first_fit`] from `from`, else from the bottom of RAM.
fn fit_after(free: &[Range], from: u64, size: u64, page: u64) -> Option<Range> {
    first_fit(free, from, size, page).or_else(|| first_fit(free, 0, size, page))
}

/// Finds the destinations for `img`, a DTB of `dtb_len` bytes and one purgatory page, in `ram`
/// minus `avoid`, with the running kernel's page size `page`.
pub fn place(
    ram: &[Range],
    avoid: &[Range],
    img: &KexbootImage,
    dtb_len: u64,
    page: u64,
) -> Result<Layout, PlaceError> {
    if !page.is_power_of_two() || !(4096..=SZ_2M).contains(&page) {
        return Err(PlaceError::BadPageSize { page });
    }
    if !img.text_offset.is_multiple_of(page) {
        return Err(PlaceError::UnalignedTextOffset {
            text_offset: img.text_offset,
            page,
        });
    }
    let no_room = |what, size| PlaceError::NoRoom { what, size };
    let kexboot_size = align_up(img.image_size, page).ok_or(no_room("kexboot", img.image_size))?;
    let dtb_size = align_up(dtb_len, page).ok_or(no_room("the DTB", dtb_len))?;

    let free = free_regions(ram, avoid);
    let kexboot = free
        .iter()
        .find_map(|r| {
            // Lowest 2 MiB-aligned base whose load address (base + text_offset) is in `r`.
            let mut base = align_up(r.start().saturating_sub(img.text_offset), SZ_2M)?;
            if base.checked_add(img.text_offset)? < r.start() {
                base = base.checked_add(SZ_2M)?;
            }
            let range = Range::from_len(base.checked_add(img.text_offset)?, kexboot_size).ok()?;
            r.contains_range(&range).then_some(range)
        })
        .ok_or(no_room("kexboot", kexboot_size))?;

    let free = free_regions(&free, &[kexboot]);
    let dtb =
        fit_after(&free, kexboot.end(), dtb_size, page).ok_or(no_room("the DTB", dtb_size))?;
    let free = free_regions(&free, &[dtb]);
    let purgatory =
        fit_after(&free, dtb.end(), page, page).ok_or(no_room("the purgatory page", page))?;
    Ok(Layout {
        kexboot,
        dtb,
        purgatory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iomem::Iomem;
    use proptest::prelude::*;

    const PAGE: u64 = kexboot_loader::mem::PAGE_SIZE;

    fn r(start: u64, end: u64) -> Range {
        Range::new(start, end).unwrap()
    }

    fn img(image_size: u64) -> KexbootImage {
        KexbootImage {
            text_offset: 0,
            image_size,
            file_len: image_size.min(0x4_6368),
            handoff_version: 1,
        }
    }

    #[test]
    fn qemu_virt_layout() {
        let m = Iomem::parse(include_str!("../tests/data/qemu-virt-iomem.txt")).unwrap();
        let l = place(&m.ram, &m.avoid, &img(0x36_8000), 0x10_0000, PAGE).unwrap();
        // Kernel data ends at 0x41cb0000: the next 2 MiB boundary is 0x41e00000, and 3.4 MiB fit
        // below the reserved block at 0x48000000.
        assert_eq!(l.kexboot, r(0x41e0_0000, 0x4216_8000));
        assert_eq!(l.kexboot_entry(), 0x41e0_0000);
        assert_eq!(l.dtb, r(0x4216_8000, 0x4226_8000));
        assert_eq!(l.purgatory, r(0x4226_8000, 0x4226_9000));
    }

    #[test]
    fn skips_reserved_holes() {
        let ram = [r(0x4000_0000, 0x8000_0000)];
        // A hole right where kexboot would go: 0x40000000 is taken, 0x40200000 has only 1 MiB
        // before the next hole, so kexboot lands at 0x40600000.
        let avoid = [r(0x4000_0000, 0x4000_1000), r(0x4030_0000, 0x4050_0000)];
        let l = place(&ram, &avoid, &img(0x20_0000), 0x2000, PAGE).unwrap();
        assert_eq!(l.kexboot, r(0x4060_0000, 0x4080_0000));
        assert_eq!(l.dtb, r(0x4080_0000, 0x4080_2000));
        assert_eq!(l.purgatory, r(0x4080_2000, 0x4080_3000));

        // A hole right after kexboot: the DTB goes past it.
        let avoid = [r(0x4020_0000, 0x4030_0000)];
        let l = place(&ram, &avoid, &img(0x1f_f001), 0x1001, PAGE).unwrap();
        assert_eq!(l.kexboot, r(0x4000_0000, 0x4020_0000));
        assert_eq!(l.dtb, r(0x4030_0000, 0x4030_2000));
        assert_eq!(l.purgatory, r(0x4030_2000, 0x4030_3000));
    }

    #[test]
    fn dtb_falls_back_below_kexboot() {
        // Only one 2 MiB-aligned slot, at the very top; free pages exist below it.
        let ram = [r(0x4000_0000, 0x4040_0000)];
        let avoid = [r(0x4010_0000, 0x4020_0000)];
        let l = place(&ram, &avoid, &img(0x20_0000), 0x1000, PAGE).unwrap();
        assert_eq!(l.kexboot, r(0x4020_0000, 0x4040_0000));
        assert_eq!(l.dtb, r(0x4000_0000, 0x4000_1000));
        assert_eq!(l.purgatory, r(0x4000_1000, 0x4000_2000));
    }

    #[test]
    fn no_room() {
        let ram = [r(0x4000_0000, 0x4040_0000)];
        assert_eq!(
            place(&ram, &[], &img(0x40_0001), 0x1000, PAGE),
            Err(PlaceError::NoRoom {
                what: "kexboot",
                size: 0x40_1000
            })
        );
        // Unaligned RAM: 0x40100000..0x40400000 holds no 2 MiB-aligned 2 MiB+ slot.
        let ram = [r(0x4010_0000, 0x4040_0000)];
        assert!(matches!(
            place(&ram, &[], &img(0x20_1000), 0x1000, PAGE),
            Err(PlaceError::NoRoom {
                what: "kexboot",
                ..
            })
        ));
        // kexboot fits exactly, nothing is left for the DTB.
        let ram = [r(0x4000_0000, 0x4020_0000)];
        assert_eq!(
            place(&ram, &[], &img(0x20_0000), 0x1000, PAGE),
            Err(PlaceError::NoRoom {
                what: "the DTB",
                size: 0x1000
            })
        );
        // Room for the DTB but not the purgatory page.
        assert_eq!(
            place(&ram, &[], &img(0x1f_f000), 0x1000, PAGE),
            Err(PlaceError::NoRoom {
                what: "the purgatory page",
                size: 0x1000
            })
        );
        // Everything reserved.
        let ram = [r(0x4000_0000, 0x8000_0000)];
        assert!(place(&ram, &ram, &img(0x1000), 0x1000, PAGE).is_err());
        assert!(place(&[], &[], &img(0x1000), 0x1000, PAGE).is_err());
    }

    #[test]
    fn text_offset_and_page_sizes() {
        let ram = [r(0x4000_0000, 0x8000_0000)];
        let mut i = img(0x10_0000);
        i.text_offset = 0x8_0000;
        let l = place(&ram, &[r(0x4000_0000, 0x4000_1000)], &i, 0x1000, PAGE).unwrap();
        // Base 0x40000000 is partly reserved but the image itself starts at 0x40080000.
        assert_eq!(l.kexboot, r(0x4008_0000, 0x4018_0000));
        // 64 KiB pages: everything rounded to 64 KiB.
        let l = place(&ram, &[], &img(0x1000), 0x1000, 0x1_0000).unwrap();
        assert_eq!(l.kexboot, r(0x4000_0000, 0x4001_0000));
        assert_eq!(l.dtb, r(0x4001_0000, 0x4002_0000));
        assert_eq!(l.purgatory, r(0x4002_0000, 0x4003_0000));
        assert_eq!(
            place(&ram, &[], &i, 0x1000, 0x10_0000),
            Err(PlaceError::UnalignedTextOffset {
                text_offset: 0x8_0000,
                page: 0x10_0000
            })
        );
        for page in [0, 1000, 0x800, 0x40_0000] {
            assert_eq!(
                place(&ram, &[], &img(0x1000), 0x1000, page),
                Err(PlaceError::BadPageSize { page })
            );
        }
    }

    proptest! {
        #[test]
        fn layouts_are_sound(
            ram in proptest::collection::vec((0u64..0x4000, 0u64..0x1000), 0..4),
            avoid in proptest::collection::vec((0u64..0x4000, 0u64..0x400), 0..8),
            image_pages in 1u64..0x800,
            dtb_len in 1u64..0x20_0000,
        ) {
            let ram: Vec<Range> = ram.iter().map(|&(s, l)| r(s << 16, (s + l) << 16)).collect();
            let avoid: Vec<Range> = avoid.iter().map(|&(s, l)| r(s << 16, (s + l) << 16)).collect();
            let i = img(image_pages * PAGE);
            if let Ok(l) = place(&ram, &avoid, &i, dtb_len, PAGE) {
                let parts = [l.kexboot, l.dtb, l.purgatory];
                // Touching RAM ranges are one stretch of RAM.
                let ram = kexboot_loader::mem::normalize(&ram);
                prop_assert_eq!(l.kexboot.start() % SZ_2M, 0);
                prop_assert!(l.kexboot.len() >= i.image_size);
                prop_assert!(l.dtb.len() >= dtb_len);
                prop_assert_eq!(l.purgatory.len(), PAGE);
                for (n, p) in parts.iter().enumerate() {
                    prop_assert_eq!(p.start() % PAGE, 0);
                    prop_assert_eq!(p.len() % PAGE, 0);
                    prop_assert!(ram.iter().any(|m| m.contains_range(p)), "{} outside RAM", p);
                    prop_assert!(!avoid.iter().any(|a| a.overlaps(p)), "{} on a hole", p);
                    prop_assert!(!parts[n + 1..].iter().any(|q| q.overlaps(p)));
                }
            }
        }
    }
}
