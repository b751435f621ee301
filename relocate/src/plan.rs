//! Boot plans: segments and memory layout, their validation, and the kexec-style entry list.
//!
//! `build` turns validated segments into Linux's entry-list format: a chain of indirection pages
//! holding `page_address | flag` words. Every source page that is not a whole, aligned page
//! outside every destination is copied ("bounced") into a fresh page at plan time, so the copies
//! at jump time may run in any order without reading a byte that was already overwritten.
//!
//! A segment whose source is its destination (`src == dst`: the loader read or decompressed the
//! file straight to where it runs) is in place: its whole pages get no entry at all, nothing is
//! copied, and only its partial last page and its zero tail are written at jump time. The
//! destination checks hold for it as for any other segment, and it is cleaned to PoC with the
//! other destinations before the jump (`arch::execute` cleans every destination range).

use crate::range::{covered_by, is_page_aligned, page_round_up};
use crate::{Error, Memory, PageProblem, Range, What, PAGE_SIZE};
use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

/// Entry flag: the address is the next destination page.
pub const IND_DESTINATION: u64 = 0x1;
/// Entry flag: the address is the next page of entries.
pub const IND_INDIRECTION: u64 = 0x2;
/// Entry flag: end of the list.
pub const IND_DONE: u64 = 0x4;
/// Entry flag: the address is a source page to copy to the current destination.
pub const IND_SOURCE: u64 = 0x8;

/// Entries in one list page (8 bytes each).
pub const ENTRIES_PER_PAGE: usize = (PAGE_SIZE / 8) as usize;
/// How many unusable pages in a row `build` accepts from the allocator before it gives up
/// (a first-fit allocator may walk across a large destination before it finds free memory).
pub const MAX_PAGE_TRIES: u32 = 1 << 16;

/// One piece of the image to place: `len` bytes at physical `src` go to `dst`, followed by zeros
/// up to `memsz` rounded up to a page. With `src == dst` the bytes are already in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical address of the bytes (any alignment).
    pub src: u64,
    /// Number of bytes to copy.
    pub len: u64,
    /// Page-aligned physical destination.
    pub dst: u64,
    /// Bytes the segment occupies at the destination (`>= len`; rounded up to pages).
    pub memsz: u64,
}

impl Segment {
    /// `[dst, dst + memsz rounded up to a page)`.
    pub fn dest_range(&self) -> Result<Range, Error> {
        self.dest_range_as(What::Range)
    }

    fn dest_range_as(&self, what: What) -> Result<Range, Error> {
        let overflow = Error::Overflow {
            what,
            start: self.dst,
            len: self.memsz,
        };
        let end = self.dst.checked_add(self.memsz).ok_or(overflow.clone())?;
        Range::new_as(self.dst, page_round_up(end).ok_or(overflow)?, what)
    }

    /// `[src, src + len)`.
    pub fn source_range(&self) -> Result<Range, Error> {
        Range::from_len(self.src, self.len)
    }

    /// The bytes are already at their destination: whole pages need no copy.
    pub fn in_place(&self) -> bool {
        self.src == self.dst
    }
}

/// The machine's memory as the relocator must respect it.
#[derive(Clone, Copy, Debug)]
pub struct Layout<'a> {
    /// Usable RAM.
    pub ram: &'a [Range],
    /// Memory nothing may write: memreserve, reserved-memory, preserved regions.
    pub reserved: &'a [Range],
    /// Pages the relocator runs from: trampoline, page tables, the firmware itself.
    pub control: &'a [Range],
}

/// The destination and source ranges of `segments`, after checking each segment on its own.
fn segment_ranges(segments: &[Segment]) -> Result<(Vec<Range>, Vec<Range>), Error> {
    let mut dests = Vec::with_capacity(segments.len());
    let mut srcs = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        if !is_page_aligned(s.dst) {
            return Err(Error::Misaligned {
                what: What::Destination(i),
                addr: s.dst,
            });
        }
        if s.len > s.memsz {
            return Err(Error::LenExceedsMemsz {
                index: i,
                len: s.len,
                memsz: s.memsz,
            });
        }
        dests.push(s.dest_range_as(What::Destination(i))?);
        srcs.push(Range::from_len_as(s.src, s.len, What::Source(i))?);
    }
    Ok((dests, srcs))
}

/// Checks the relocator contract: every destination (whole pages) lies in RAM and is disjoint
/// from the other destinations, from reserved memory and from the control pages.
pub fn validate(segments: &[Segment], layout: &Layout) -> Result<(), Error> {
    segment_ranges_checked(segments, layout).map(|_| ())
}

fn segment_ranges_checked(
    segments: &[Segment],
    layout: &Layout,
) -> Result<(Vec<Range>, Vec<Range>), Error> {
    // Layout ranges need no check of their own: `Range`'s constructors refuse inverted ones.
    let (dests, srcs) = segment_ranges(segments)?;
    for (i, d) in dests.iter().enumerate() {
        let what = What::Destination(i);
        if !covered_by(d, layout.ram) {
            return Err(Error::NotInRam { range: *d, what });
        }
        let others = dests
            .iter()
            .enumerate()
            .take(i)
            .map(|(j, r)| (What::Destination(j), r));
        let fixed = layout.reserved.iter().map(|r| (What::Reserved, r));
        let control = layout.control.iter().map(|r| (What::Control, r));
        for (b_what, b) in others.chain(fixed).chain(control) {
            if d.overlaps(b) {
                // Name the lower-numbered destination first.
                return Err(match b_what {
                    What::Destination(_) => Error::Overlap {
                        a: *b,
                        a_what: b_what,
                        b: *d,
                        b_what: what,
                    },
                    _ => Error::Overlap {
                        a: *d,
                        a_what: what,
                        b: *b,
                        b_what,
                    },
                });
            }
        }
    }
    Ok((dests, srcs))
}

/// A built entry list: everything the trampoline needs, already in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryList {
    /// The first entry (like Linux's `kimage->head`): `first_list_page | IND_INDIRECTION`, or
    /// `IND_DONE` for an empty plan.
    pub head: u64,
    /// Every page the list and the bounce copies occupy (they must survive until the jump).
    pub pages: Vec<u64>,
    /// Bytes the trampoline copies (one page per `IND_SOURCE` entry).
    pub bytes: u64,
    /// Source pages copied into fresh pages at plan time.
    pub bounced_pages: u64,
    /// Destination pages filled from the shared zero page (the part past each segment's data).
    pub zero_filled_pages: u64,
    /// Whole pages of in-place segments ([`Segment::in_place`]): no entry, no copy.
    pub in_place_pages: u64,
    /// Source range of each segment: pages there may be read in place at jump time.
    pub sources: Vec<Range>,
}

/// Hands out checked pages from the caller's allocator and remembers them.
struct PagePool<'a, 'l> {
    layout: &'a Layout<'l>,
    dests: &'a [Range],
    srcs: &'a [Range],
    alloc: &'a mut dyn FnMut() -> Option<u64>,
    taken: BTreeSet<u64>,
    pages: Vec<u64>,
}

impl PagePool<'_, '_> {
    fn problem(&self, addr: u64) -> Option<PageProblem> {
        let Ok(page) = Range::page(addr) else {
            return Some(if is_page_aligned(addr) {
                PageProblem::NotInRam
            } else {
                PageProblem::Misaligned
            });
        };
        if !covered_by(&page, self.layout.ram) {
            return Some(PageProblem::NotInRam);
        }
        let dests = self
            .dests
            .iter()
            .enumerate()
            .map(|(i, r)| (What::Destination(i), r));
        let srcs = self
            .srcs
            .iter()
            .enumerate()
            .map(|(i, r)| (What::Source(i), r));
        let reserved = self.layout.reserved.iter().map(|r| (What::Reserved, r));
        if let Some((w, r)) = dests
            .chain(reserved)
            .chain(srcs)
            .find(|(_, r)| r.overlaps(&page))
        {
            return Some(PageProblem::Overlaps(w, *r));
        }
        self.taken
            .contains(&addr)
            .then_some(PageProblem::AlreadyUsed)
    }

    fn get(&mut self) -> Result<u64, Error> {
        let mut last = None;
        for _ in 0..MAX_PAGE_TRIES {
            let got = self.pages.len() as u64;
            let addr = (self.alloc)().ok_or(Error::OutOfPages { got })?;
            match self.problem(addr) {
                None => {
                    self.taken.insert(addr);
                    self.pages.push(addr);
                    return Ok(addr);
                }
                Some(p) => last = Some((addr, p)),
            }
        }
        let (last, problem) = last.unwrap_or((0, PageProblem::NotInRam));
        Err(Error::UnusablePages {
            tries: MAX_PAGE_TRIES,
            last,
            problem,
        })
    }
}

/// Validates the plan, then writes its entry list (and bounce copies) into pages from
/// `alloc_page`. Nothing is allocated after this returns; the list can be run by the trampoline
/// or by [`crate::simulate`].
pub fn build(
    segments: &[Segment],
    layout: &Layout,
    mem: &mut dyn Memory,
    alloc_page: &mut dyn FnMut() -> Option<u64>,
) -> Result<EntryList, Error> {
    let (dests, srcs) = segment_ranges_checked(segments, layout)?;
    let mut pool = PagePool {
        layout,
        dests: &dests,
        srcs: &srcs,
        alloc: alloc_page,
        taken: BTreeSet::new(),
        pages: Vec::new(),
    };
    let mut entries = Vec::new();
    let (mut copies, mut bounced, mut zero_filled, mut in_place) = (0u64, 0u64, 0u64, 0u64);
    let mut zero_page = None;
    let mut buf = vec![0u8; PAGE_SIZE as usize];

    for (seg, dest) in segments.iter().zip(&dests) {
        if dest.is_empty() {
            continue;
        }
        // The next source entry needs a destination entry first (at the start, and after
        // pages skipped because they are in place).
        let mut need_dest = true;
        let mut off = 0;
        while off < dest.len() {
            // `off < len` keeps `src + off` inside the source range checked above.
            let have = seg.len.saturating_sub(off).min(PAGE_SIZE);
            let src = seg.src.wrapping_add(off);
            if have == PAGE_SIZE && seg.in_place() {
                // Already there (destinations are disjoint, so no other entry writes it).
                in_place += 1;
                need_dest = true;
                off += PAGE_SIZE;
                continue;
            }
            if need_dest {
                // `off < dest.len()`, so this stays inside the destination range.
                entries.push((dest.start() + off) | IND_DESTINATION);
                need_dest = false;
            }
            let page = if have == 0 {
                zero_filled += 1;
                match zero_page {
                    Some(z) => z,
                    None => {
                        let z = pool.get()?;
                        buf.fill(0);
                        mem.write(z, &buf)?;
                        zero_page = Some(z);
                        z
                    }
                }
            } else if have == PAGE_SIZE
                && is_page_aligned(src)
                && !dests
                    .iter()
                    .any(|d| d.overlaps(&Range::from_len_saturating(src, PAGE_SIZE)))
            {
                src
            } else {
                let b = pool.get()?;
                buf.fill(0);
                // `have <= PAGE_SIZE` so the slice index is in bounds.
                let data = buf.get_mut(..have as usize).ok_or(Error::OutOfBounds {
                    addr: src,
                    len: have,
                })?;
                mem.read(src, data)?;
                mem.write(b, &buf)?;
                bounced += 1;
                b
            };
            entries.push(page | IND_SOURCE);
            copies += 1;
            off += PAGE_SIZE;
        }
    }

    let bytes = copies * PAGE_SIZE;
    let head = write_list(&entries, &mut pool, mem)?;
    log::debug!(
        "relocate: {} bytes in {} segments, {} pages in place, {} pages bounced, {} zero-filled, {} pages of list and bounces",
        bytes,
        segments.len(),
        in_place,
        bounced,
        zero_filled,
        pool.pages.len()
    );
    Ok(EntryList {
        head,
        pages: pool.pages,
        bytes,
        bounced_pages: bounced,
        zero_filled_pages: zero_filled,
        in_place_pages: in_place,
        sources: srcs,
    })
}

/// Lays `entries` (then `IND_DONE`) out in chained list pages; returns the head entry.
fn write_list(entries: &[u64], pool: &mut PagePool, mem: &mut dyn Memory) -> Result<u64, Error> {
    if entries.is_empty() {
        return Ok(IND_DONE);
    }
    // Each page holds up to ENTRIES_PER_PAGE - 1 entries plus a chaining (or DONE) slot.
    let per_page = ENTRIES_PER_PAGE - 1;
    let chunks: Vec<&[u64]> = entries.chunks(per_page).collect();
    let mut list_pages = Vec::with_capacity(chunks.len());
    for _ in &chunks {
        list_pages.push(pool.get()?);
    }
    let mut buf = vec![0u8; PAGE_SIZE as usize];
    for (k, (chunk, &page)) in chunks.iter().zip(&list_pages).enumerate() {
        let last = match list_pages.get(k + 1) {
            Some(next) => next | IND_INDIRECTION,
            None => IND_DONE,
        };
        buf.fill(0);
        for (slot, e) in buf.chunks_exact_mut(8).zip(chunk.iter().chain([&last])) {
            slot.copy_from_slice(&e.to_le_bytes());
        }
        mem.write(page, &buf)?;
    }
    Ok(list_pages.first().map_or(IND_DONE, |p| p | IND_INDIRECTION))
}
