//! The machine's RAM as kexboot sees it: what the device tree says, what kexboot itself
//! occupies, where its heap goes and what it keeps across reboots. Boot segments are placed,
//! and `load`/`tftpboot` write, only in what is left.

use alloc::vec::Vec;
use kexboot_loader::mem::{free_regions, Range};

use crate::flow::MemoryView;

/// Smallest heap kexboot accepts, and the share of the largest free region it takes.
const MIN_HEAP: u64 = 32 << 20;
use kexboot_loader::mem::PAGE_SIZE as PAGE;

#[derive(Debug, Clone)]
pub struct Layout {
    pub ram: Vec<Range>,
    /// `/memreserve/` and `/reserved-memory`: never written, passed on to the kernel.
    pub reserved: Vec<Range>,
    /// kexboot's image, BSS and stack.
    pub image: Range,
    /// The incoming device tree (copied to the heap, but its place is avoided all the same).
    pub dtb: Range,
    pub heap: Range,
    /// What kexboot keeps for itself and the kernel across reboots: its handoff page, the
    /// ramoops region it offers.
    pub kept: Vec<Range>,
    /// The RAM kexboot mapped (`DtInfo::mapped_ram`: no `no-map` region): the only RAM it may
    /// read or write. A `no-map` region is not in the page tables, so touching it faults.
    pub mapped: Vec<Range>,
}

impl Layout {
    /// Everything a boot segment must not overlap.
    pub fn avoid(&self) -> Vec<Range> {
        let mut v = self.reserved.clone();
        v.extend([self.image, self.dtb, self.heap]);
        v.extend(self.kept.iter().copied());
        v
    }

    /// `r` lies in RAM kexboot mapped (never `no-map` memory), so it may be read.
    pub fn readable(&self, r: &Range) -> bool {
        self.mapped.iter().any(|m| m.contains_range(r))
    }

    /// Takes `len` bytes (page-aligned) at the top of free RAM and keeps them.
    pub fn take_high(&mut self, len: u64) -> Option<Range> {
        let free = free_regions(&self.ram, &self.avoid());
        let r = free.iter().rev().find(|r| r.len() >= len + PAGE)?;
        let start = (r.end() - len) & !(PAGE - 1);
        let taken = Range::new(start, start + len).ok()?;
        self.kept.push(taken);
        Some(taken)
    }

    /// Free RAM a `load` or `tftpboot` may write: not kexboot, its heap, the DTB, reserved or
    /// kept memory.
    pub fn writable(&self) -> Vec<Range> {
        free_regions(&self.ram, &self.avoid())
    }

    /// `r` lies wholly in free RAM (see [`Layout::writable`]).
    pub fn is_writable(&self, r: &Range) -> bool {
        self.writable().iter().any(|w| w.contains_range(r))
    }

    /// The view the boot-plan builder places segments in; `avoid` is [`Layout::avoid`].
    pub fn view<'a>(&'a self, avoid: &'a [Range]) -> MemoryView<'a> {
        MemoryView {
            ram: &self.ram,
            avoid,
        }
    }

    /// The relocator's control region: kexboot itself and its heap (trampoline page, entry list,
    /// page tables, stack all live there).
    pub fn control(&self) -> [Range; 2] {
        [self.image, self.heap]
    }
}

/// Picks the heap: the upper half of the largest free region (at least `MIN_HEAP`), leaving the
/// lower part of RAM, where kernels like to be, for boot segments.
pub fn choose_heap(ram: &[Range], avoid: &[Range]) -> Option<Range> {
    let free = free_regions(ram, avoid);
    let largest = free.iter().max_by_key(|r| r.len())?;
    let len = largest.len();
    if len < MIN_HEAP {
        return None;
    }
    let size = (len / 2).max(MIN_HEAP) & !(PAGE - 1);
    let start = (largest.end() - size).next_multiple_of(PAGE);
    Range::new(start, largest.end()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> Range {
        Range::new(start, end).unwrap()
    }

    fn layout() -> Layout {
        let ram = r(0x4000_0000, 0x8000_0000);
        let image = r(0x4000_0000, 0x4020_0000);
        let reserved = vec![r(0x4400_0000, 0x4410_0000)];
        let mut avoid = reserved.clone();
        avoid.push(image);
        let heap = choose_heap(&[ram], &avoid).unwrap();
        Layout {
            ram: vec![ram],
            reserved,
            image,
            dtb: r(0x4800_0000, 0x4801_0000),
            heap,
            kept: Vec::new(),
            mapped: vec![ram],
        }
    }

    #[test]
    fn heap_is_the_upper_half_of_the_largest_free_region() {
        let l = layout();
        // Largest free region: 0x4410_0000..0x8000_0000; the heap is its upper half.
        let largest = 0x8000_0000 - 0x4410_0000;
        assert_eq!(l.heap.end(), 0x8000_0000);
        assert_eq!(l.heap.len(), (largest / 2) & !(PAGE - 1));
        let small = [r(0x4000_0000, 0x4000_0000 + MIN_HEAP - PAGE)];
        assert_eq!(choose_heap(&small, &[]), None, "below MIN_HEAP: no heap");
    }

    #[test]
    fn taken_pages_are_kept_and_never_writable() {
        let mut l = layout();
        let before = l.writable();
        let page = l.take_high(PAGE).unwrap();
        assert!(l.kept.contains(&page));
        assert!(page.end() <= l.heap.start(), "taken below the heap");
        assert!(!l.is_writable(&page));
        assert!(before.iter().any(|w| w.contains_range(&page)));
        for w in l.writable() {
            for a in l.avoid() {
                assert!(!w.overlaps(&a), "{w:?} overlaps {a:?}");
            }
        }
        // A load into free RAM is writable; across the reserved region it is not.
        assert!(l.is_writable(&r(0x4100_0000, 0x4100_0000 + MIB)));
        assert!(!l.is_writable(&r(0x43ff_0000, 0x4401_0000)));
        assert!(
            l.readable(&r(0x43ff_0000, 0x4401_0000)),
            "mapped, so readable"
        );
    }
}
