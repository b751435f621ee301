//! Where kernel, initrd and DTB go in RAM, following the arm64 boot protocol.
//!
//! * Kernel: `text_offset` past the lowest 2 MiB-aligned base whose whole `image_size` span is
//!   free. With Image flag bit 3 clear the kernel must also sit in the lowest RAM region (memory
//!   below it would be unusable); with it set the span must stay below 2^48.
//! * initrd: page-aligned, as high as it goes inside a 1 GiB-aligned window of at most 32 GiB
//!   that also covers the kernel (booting.rst: "It must lie entirely within a 1 GB aligned physical
//!   memory window of up to 32 GB in size that fully covers the kernel Image as well"), so not
//!   at the top of RAM on machines with more than 32 GiB or with a far bank. Refused when no such
//!   spot exists.
//! * DTB (at most 2 MiB): page-aligned, as high as it goes where the 2 MiB blocks it touches hold
//!   only RAM and nothing from `avoid` (Linux maps the DTB with whole 2 MiB cacheable blocks, so
//!   a reserved or non-RAM neighbour in them would be mapped too). Refused, with
//!   [`Error::DtbNoCleanBlock`], when no such spot exists: never dropped silently.
//!
//! Every returned range starts on a page and its page-rounded span lies in `ram`, outside `avoid`
//! and outside the other two.

use alloc::vec::Vec;

use crate::image::ImageHeader;
use crate::mem::{align_down, align_up, free_regions, normalize, Range, PAGE_SIZE, SZ_2M};
use crate::{Error, Result, MAX_DTB_SIZE};

/// Highest address (exclusive) a kernel with flag bit 3 set may occupy.
const ANY_BASE_LIMIT: u64 = 1 << 48;
/// The initrd's window (booting.rst): 1 GiB-aligned, at most 32 GiB, covering the kernel too.
const INITRD_WINDOW_ALIGN: u64 = 1 << 30;
const INITRD_WINDOW_SIZE: u64 = 32 << 30;

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
        candidates[0] = Some(align_down(f.end() - span, PAGE_SIZE));
        let mut block_end = align_down(f.end(), SZ_2M);
        for c in candidates.iter_mut().skip(1) {
            if block_end < f.start().saturating_add(span) {
                break;
            }
            *c = Some(align_down(block_end - span, PAGE_SIZE));
            block_end -= SZ_2M;
        }
        for start in candidates.into_iter().flatten() {
            // `start + span <= f.end()`, so this does not saturate.
            let r = Range::from_len_saturating(start, len);
            if start >= f.start() && pred(r) {
                return Some(r);
            }
        }
    }
    None
}

/// Takes room for `what` as high in free RAM as it goes inside `within`, where `pred` holds;
/// `refused` when it would fit in free RAM but nowhere both hold. U-Boot puts the initrd and the DTB at the top of RAM
/// too; Linux reaches userspace measurably sooner (in QEMU) with them there than right above the
/// kernel.
fn alloc_high(
    free: &mut Vec<Range>,
    what: &'static str,
    len: u64,
    within: Range,
    pred: impl Fn(Range) -> bool,
    refused: Error,
) -> Result<Range> {
    let clipped: Vec<Range> = free
        .iter()
        .filter_map(|f| {
            let (start, end) = (f.start().max(within.start()), f.end().min(within.end()));
            Range::new(start, end).ok().filter(|r| !r.is_empty())
        })
        .collect();
    let Some(r) = highest_fit(&clipped, len, &pred) else {
        return match highest_fit(free, len, |_| true) {
            Some(_) => Err(refused),
            None => Err(Error::NoRoom { what, size: len }),
        };
    };
    take(free, r);
    Ok(r)
}

/// Where an initrd may lie with the kernel at `kernel`: every 1 GiB-aligned window of at most
/// 32 GiB holding both lies in `[lo, hi)`, and every spot in `[lo, hi)` has such a window (an
/// initrd above the kernel: the window starting at the kernel's 1 GiB boundary; below it: the
/// window starting at the initrd's, which reaches past the kernel's end when `start >= lo`).
fn initrd_window(kernel: Range) -> Range {
    let lo = align_up(
        kernel.end().saturating_sub(INITRD_WINDOW_SIZE),
        INITRD_WINDOW_ALIGN,
    )
    .unwrap_or(u64::MAX);
    let hi = align_down(kernel.start(), INITRD_WINDOW_ALIGN).saturating_add(INITRD_WINDOW_SIZE);
    let start = lo.min(hi);
    Range::from_len_saturating(start, hi - start)
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
        let Some(end) = align_up(r.end(), SZ_2M) else {
            return false;
        };
        let Ok(window) = Range::new(align_down(r.start(), SZ_2M), end) else {
            return false;
        };
        ram.iter().any(|m| m.contains_range(&window)) && !avoid.iter().any(|a| a.overlaps(&window))
    };
    let window = initrd_window(k);
    let initrd = match initrd_len {
        0 => None,
        size => {
            let refused = Error::InitrdOutsideKernelWindow { size, kernel: k };
            Some(alloc_high(
                &mut free,
                "initrd",
                size,
                window,
                |_| true,
                refused,
            )?)
        }
    };
    let refused = Error::DtbNoCleanBlock { size: dtb_len };
    const ANYWHERE: Range = Range::constant(0, u64::MAX);
    let dtb = alloc_high(
        &mut free,
        "device tree",
        dtb_len,
        ANYWHERE,
        blocks_clean,
        refused,
    )?;
    Ok(Placement {
        kernel: k,
        entry: k.start(),
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
        let Some(base) = align_up(f.start().saturating_sub(to), SZ_2M) else {
            continue;
        };
        let Some(load) = base.checked_add(to) else {
            continue;
        };
        let Some(end) = load.checked_add(span) else {
            continue;
        };
        if end > f.end() {
            continue;
        }
        // `load + span` did not overflow above, and `size <= span`.
        if !h.any_base() && !lowest.contains_range(&Range::from_len_saturating(load, span)) {
            break;
        }
        if h.any_base() && end > ANY_BASE_LIMIT {
            break;
        }
        return Ok(Range::from_len_saturating(load, size));
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
        assert_eq!(p.entry, p.kernel.start());
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
        assert_eq!(p.kernel.start(), G + 4 * M + 0x8_0000);
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
        assert_eq!(p.kernel.start(), 4 * G);
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

    /// RAM above 32 GiB: the initrd stays in the kernel's 32 GiB window (here [1, 33) GiB), the
    /// DTB still goes to the top of RAM.
    #[test]
    fn initrd_window_more_than_32g() {
        let ram = [r(G, 65 * G)];
        let fw = [r(G, G + 3 * M)];
        let p = place(&ram, &fw, &kernel(0, 30 * M, true), 7 * M, 8192).unwrap();
        assert_eq!(p.kernel, r(G + 4 * M, G + 34 * M));
        assert_eq!(p.initrd, Some(r(33 * G - 7 * M, 33 * G)));
        assert_eq!(p.dtb, r(65 * G - 8192, 65 * G));
    }

    /// Kernel low in RAM that reaches far above 32 GiB: the window starts at the kernel's 1 GiB
    /// boundary (2 GiB), so the initrd ends at 34 GiB.
    #[test]
    fn initrd_window_kernel_low_ram_top_far_above() {
        let ram = [r(2 * G, 600 * G)];
        let p = place(&ram, &[], &kernel(0, 30 * M, true), 7 * M, 8192).unwrap();
        assert_eq!(p.kernel.start(), 2 * G);
        assert_eq!(p.initrd, Some(r(34 * G - 7 * M, 34 * G)));
        assert_eq!(p.dtb, r(600 * G - 8192, 600 * G));
    }

    /// Split banks: the far bank is out of the kernel's window; the initrd takes the top of the
    /// kernel's bank, and when that bank is full it is refused rather than put out of reach.
    #[test]
    fn initrd_window_split_banks() {
        let ram = [r(G, 3 * G), r(40 * G, 48 * G)];
        let k = kernel(0, 30 * M, true);
        let p = place(&ram, &[], &k, 7 * M, 8192).unwrap();
        assert_eq!(p.initrd, Some(r(3 * G - 7 * M, 3 * G)));
        assert_eq!(p.dtb, r(48 * G - 8192, 48 * G));
        // The low bank has room for the kernel only.
        let small = [r(G, G + 32 * M), r(40 * G, 48 * G)];
        assert_eq!(
            place(&small, &[], &k, 7 * M, 8192),
            Err(Error::InitrdOutsideKernelWindow {
                size: 7 * M,
                kernel: r(G, G + 30 * M)
            })
        );
    }

    /// Every 2 MiB block holds a reserved page: the DTB has no clean block, and says so.
    #[test]
    fn dtb_without_clean_block_is_refused() {
        let ram = [r(G, G + 32 * M)];
        let avoid: Vec<Range> = (0..16)
            .map(|i| r(G + i * 2 * M + M, G + i * 2 * M + M + PAGE_SIZE))
            .collect();
        let k = kernel(0, M, true);
        assert_eq!(
            place(&ram, &avoid, &k, 0, 8192),
            Err(Error::DtbNoCleanBlock { size: 8192 })
        );
        // One clean block is enough.
        let p = place(&ram, &avoid[..15], &k, 0, 8192).unwrap();
        assert_eq!(p.dtb, r(G + 32 * M - 8192, G + 32 * M));
    }

    fn check(ram: &[Range], avoid: &[Range], p: &Placement, k: &ImageHeader) {
        let mut spans = vec![
            p.kernel.page_rounded().unwrap(),
            p.dtb.page_rounded().unwrap(),
        ];
        spans.extend(p.initrd.map(|i| i.page_rounded().unwrap()));
        assert_eq!(p.kernel.len(), k.image_size());
        if let Some(i) = p.initrd {
            let lo = p.kernel.start().min(i.start()) & !(INITRD_WINDOW_ALIGN - 1);
            let hi = p.kernel.end().max(i.end());
            assert!(
                hi - lo <= INITRD_WINDOW_SIZE,
                "initrd {i} out of the kernel's window"
            );
        }
        let block = Range::new(
            align_down(p.dtb.start(), SZ_2M),
            align_up(p.dtb.end().max(p.dtb.start() + 1), SZ_2M).unwrap(),
        )
        .unwrap();
        assert!(
            ram.iter().any(|m| m.contains_range(&block)),
            "dtb block not RAM"
        );
        assert!(
            !avoid.iter().any(|a| a.overlaps(&block)),
            "dtb block shared"
        );
        assert_eq!((p.kernel.start() - k.text_offset()) % SZ_2M, 0);
        for (i, s) in spans.iter().enumerate() {
            assert_eq!(s.start() % PAGE_SIZE, 0);
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
                .map(|(s, l)| Range::new(s * 3 * M + 0x1234, (s + l) * 3 * M).unwrap())
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
                        | Error::DtbTooLarge { .. } | Error::KernelNotInLowestRam { .. }
                        | Error::InitrdOutsideKernelWindow { .. } | Error::DtbNoCleanBlock { .. });
                    prop_assert!(clean, "unexpected error {:?}", e);
                }
            }
        }
    }
}
