//! Where kernel, initrd and DTB go in RAM, following the arm64 boot protocol.
//!
//! * Kernel: `text_offset` past the lowest 2 MiB-aligned base whose whole `image_size` span is
//!   free. With Image flag bit 3 clear the kernel must also sit in the lowest RAM region (memory
//!   below it would be unusable); with it set the span must stay below 2^48.
//! * DTB (at most 2 MiB): page-aligned, after the kernel when possible, preferably so that the
//!   2 MiB blocks it touches hold only RAM and nothing from `avoid` (Linux maps the DTB with 2 MiB
//!   cacheable blocks).
//! * initrd: page-aligned, after the kernel (and DTB) when possible.
//!
//! Every returned range starts on a page and its page-rounded span lies in `ram`, outside `avoid`
//! and outside the other two.

use alloc::vec::Vec;

use crate::image::ImageHeader;
use crate::mem::{align_down, align_up, free_regions, normalize, Range, PAGE_SIZE, SZ_2M};
use crate::{Error, Result, MAX_DTB_SIZE};

/// Highest address (exclusive) a kernel with flag bit 3 set may occupy.
const ANY_BASE_LIMIT: u64 = 1 << 48;

/// Where everything goes. Ranges have their exact lengths; their page-rounded spans are disjoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Load address (`base + text_offset`) .. load address + `image_size`.
    pub kernel: Range,
    /// Entry point: the load address.
    pub entry: u64,
    /// The initrd, when `initrd_len > 0`.
    pub initrd: Option<Range>,
    /// The device tree.
    pub dtb: Range,
}

/// Lowest page-aligned `len`-byte slot in `free` at or above `min`, with `pred` true for it.
/// Highest page-aligned spot in `free` for `len` bytes that satisfies `pred`: the very top of
/// each free region first, then spots ending on each of the next 2 MiB boundaries down.
fn highest_fit(free: &[Range], len: u64, pred: impl Fn(Range) -> bool) -> Option<Range> {
    const STEPS: usize = 8;
    let span = align_up(len.max(1), PAGE_SIZE)?;
    for f in free.iter().rev() {
        if f.len() < span {
            continue;
        }
        let mut candidates = [None; STEPS + 1];
        candidates[0] = Some(align_down(f.end - span, PAGE_SIZE));
        let mut block_end = align_down(f.end, SZ_2M);
        for c in candidates.iter_mut().skip(1) {
            if block_end < f.start.saturating_add(span) {
                break;
            }
            *c = Some(align_down(block_end - span, PAGE_SIZE));
            block_end -= SZ_2M;
        }
        for start in candidates.into_iter().flatten() {
            let r = Range {
                start,
                end: start + len,
            };
            if start >= f.start && pred(r) {
                return Some(r);
            }
        }
    }
    None
}

/// Takes room for `what` as high in free RAM as it goes, where `pred` holds if it can. U-Boot
/// puts the initrd and the DTB at the top of RAM too; Linux reaches userspace measurably sooner
/// (in QEMU) with them there than right above the kernel.
fn alloc_high(
    free: &mut Vec<Range>,
    what: &'static str,
    len: u64,
    pred: impl Fn(Range) -> bool,
) -> Result<Range> {
    let r = highest_fit(free, len, &pred)
        .or_else(|| highest_fit(free, len, |_| true))
        .ok_or(Error::NoRoom { what, size: len })?;
    take(free, r);
    Ok(r)
}

fn take(free: &mut Vec<Range>, r: Range) {
    if let Some(span) = r.page_rounded() {
        *free = free_regions(free, &[span]);
    }
}

/// Places the kernel, initrd and DTB in `ram` outside `avoid`.
pub fn place(
    ram: &[Range],
    avoid: &[Range],
    kernel: &ImageHeader,
    initrd_len: u64,
    dtb_len: u64,
) -> Result<Placement> {
    if dtb_len > MAX_DTB_SIZE {
        return Err(Error::DtbTooLarge { size: dtb_len });
    }
    let ram = normalize(ram);
    let lowest = *ram.first().ok_or(Error::NoRam)?;
    let page_ram: Vec<Range> = ram.iter().map(Range::page_shrunk).collect();
    let mut free = free_regions(&page_ram, avoid);

    let k = place_kernel(&free, kernel, lowest)?;
    take(&mut free, k);

    let avoid = normalize(avoid);
    let blocks_clean = |r: Range| {
        let Some(end) = align_up(r.end, SZ_2M) else {
            return false;
        };
        let window = Range {
            start: r.start & !(SZ_2M - 1),
            end,
        };
        ram.iter().any(|m| m.contains_range(&window)) && !avoid.iter().any(|a| a.overlaps(&window))
    };
    let initrd = match initrd_len {
        0 => None,
        n => Some(alloc_high(&mut free, "initrd", n, |_| true)?),
    };
    let dtb = alloc_high(&mut free, "device tree", dtb_len, blocks_clean)?;
    Ok(Placement {
        kernel: k,
        entry: k.start,
        initrd,
        dtb,
    })
}

fn place_kernel(free: &[Range], h: &ImageHeader, lowest: Range) -> Result<Range> {
    let size = h.image_size();
    let to = h.text_offset();
    let span = align_up(size, PAGE_SIZE).ok_or(Error::NoRoom {
        what: "kernel",
        size,
    })?;
    for f in free {
        // Lowest 2 MiB-aligned base with base + text_offset >= f.start.
        let Some(base) = align_up(f.start.saturating_sub(to), SZ_2M) else {
            continue;
        };
        let Some(load) = base.checked_add(to) else {
            continue;
        };
        let Some(end) = load.checked_add(span) else {
            continue;
        };
        if end > f.end {
            continue;
        }
        if !h.any_base() && !lowest.contains_range(&Range { start: load, end }) {
            break;
        }
        if h.any_base() && end > ANY_BASE_LIMIT {
            break;
        }
        return Ok(Range {
            start: load,
            end: load + size,
        });
    }
    if h.any_base() {
        Err(Error::NoRoom {
            what: "kernel",
            size,
        })
    } else {
        Err(Error::KernelNotInLowestRam { size, lowest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;

    fn kernel(text_offset: u64, image_size: u64, any_base: bool) -> ImageHeader {
        let mut v = vec![0u8; 64];
        v[8..16].copy_from_slice(&text_offset.to_le_bytes());
        v[16..24].copy_from_slice(&image_size.to_le_bytes());
        v[24..32].copy_from_slice(&(if any_base { 8u64 } else { 0 }).to_le_bytes());
        v[0x38..0x3c].copy_from_slice(b"ARM\x64");
        ImageHeader::parse(&v).unwrap()
    }

    fn r(start: u64, end: u64) -> Range {
        Range::new(start, end).unwrap()
    }

    #[test]
    fn qemu_virt_layout() {
        let ram = [r(G, 2 * G)];
        let fw = [r(G, G + 3 * M)]; // kexboot itself at the start of RAM
        let p = place(&ram, &fw, &kernel(0, 30 * M, true), 7 * M, 8192).unwrap();
        assert_eq!(p.kernel, r(G + 4 * M, G + 34 * M));
        assert_eq!(p.entry, p.kernel.start);
        // The initrd goes at the top of free RAM and the DTB right below it: its 2 MiB block
        // holds only RAM and nothing kexboot must avoid.
        let i = p.initrd.unwrap();
        assert_eq!(i, r(2 * G - 7 * M, 2 * G));
        assert_eq!(p.dtb, r(2 * G - 7 * M - 8192, 2 * G - 7 * M));
    }

    #[test]
    fn text_offset_and_avoid() {
        let ram = [r(G, 2 * G)];
        // A reserved page in the second 2 MiB block forces the kernel past it.
        let avoid = [r(G + 3 * M, G + 3 * M + 4096)];
        let p = place(&ram, &avoid, &kernel(0x8_0000, 16 * M, false), 0, 4096).unwrap();
        assert_eq!(p.kernel.start, G + 4 * M + 0x8_0000);
        assert!(!p.kernel.overlaps(&avoid[0]));
        // Text offset lets the image begin before the avoided page when it fits below it.
        let p = place(&ram, &avoid, &kernel(0x8_0000, M, false), 0, 4096).unwrap();
        assert_eq!(p.kernel, r(G + 0x8_0000, G + 0x8_0000 + M));
    }

    #[test]
    fn refusals() {
        let ram = [r(G, G + 64 * M), r(4 * G, 8 * G)];
        let k = kernel(0, 100 * M, false);
        assert_eq!(
            place(&ram, &[], &k, 0, 4096),
            Err(Error::KernelNotInLowestRam {
                size: 100 * M,
                lowest: ram[0]
            })
        );
        // With flag bit 3 the second bank is fine.
        let p = place(&ram, &[], &kernel(0, 100 * M, true), 0, 4096).unwrap();
        assert_eq!(p.kernel.start, 4 * G);
        assert_eq!(
            place(&ram, &[], &kernel(0, 100 * M, true), 0, MAX_DTB_SIZE + 1),
            Err(Error::DtbTooLarge {
                size: MAX_DTB_SIZE + 1
            })
        );
        assert_eq!(
            place(&ram, &[], &kernel(0, 10 * M, true), 8 * G, 4096),
            Err(Error::NoRoom {
                what: "initrd",
                size: 8 * G
            })
        );
        assert_eq!(place(&[], &[], &k, 0, 4096), Err(Error::NoRam));
        // Above 2^48 is no place for a kernel.
        let high = [r(1 << 48, (1 << 48) + G)];
        assert!(matches!(
            place(&high, &[], &kernel(0, M, true), 0, 4096),
            Err(Error::NoRoom { what: "kernel", .. })
        ));
    }

    fn check(ram: &[Range], avoid: &[Range], p: &Placement, k: &ImageHeader) {
        let mut spans = vec![
            p.kernel.page_rounded().unwrap(),
            p.dtb.page_rounded().unwrap(),
        ];
        spans.extend(p.initrd.map(|i| i.page_rounded().unwrap()));
        assert_eq!(p.kernel.len(), k.image_size());
        assert_eq!((p.kernel.start - k.text_offset()) % SZ_2M, 0);
        for (i, s) in spans.iter().enumerate() {
            assert_eq!(s.start % PAGE_SIZE, 0);
            assert!(ram.iter().any(|m| m.contains_range(s)), "{s} not in RAM");
            assert!(!avoid.iter().any(|a| a.overlaps(s)), "{s} overlaps avoid");
            for t in &spans[i + 1..] {
                assert!(!s.overlaps(t), "{s} overlaps {t}");
            }
        }
    }

    fn layout() -> impl Strategy<Value = Vec<Range>> {
        proptest::collection::vec((0u64..64, 1u64..64), 0..6).prop_map(|v| {
            v.into_iter()
                .map(|(s, l)| Range {
                    start: s * 3 * M + 0x1234,
                    end: (s + l) * 3 * M,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn placements_are_sound(ram in layout(), avoid in layout(),
                                to in 0u64..512, size in 1u64..(64 * M), any in any::<bool>(),
                                initrd in 0u64..(32 * M), dtb in 0u64..(3 * M)) {
            let k = kernel(to * PAGE_SIZE, size, any);
            match place(&ram, &avoid, &k, initrd, dtb) {
                Ok(p) => {
                    check(&normalize(&ram), &avoid, &p, &k);
                    prop_assert_eq!(p.initrd.is_some(), initrd > 0);
                    prop_assert_eq!(p.dtb.len(), dtb);
                }
                Err(e) => {
                    let clean = matches!(e, Error::NoRoom { .. } | Error::NoRam
                        | Error::DtbTooLarge { .. } | Error::KernelNotInLowestRam { .. });
                    prop_assert!(clean, "unexpected error {:?}", e);
                }
            }
        }
    }
}
