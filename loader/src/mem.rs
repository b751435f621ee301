//! Physical address ranges and free-memory arithmetic.
//!
//! The range type and the page size are kexboot's one set, from `kexboot-relocate`
//! (re-exported here); this module adds the free-memory arithmetic placement needs.

use alloc::vec::Vec;

pub use kexboot_relocate::{align_down, align_up, Range, PAGE_SIZE};

/// The arm64 kernel base alignment.
pub const SZ_2M: u64 = 2 << 20;

/// Sorts `ranges`, drops empty ones and merges overlapping or touching ones.
pub fn normalize(ranges: &[Range]) -> Vec<Range> {
    let mut v: Vec<Range> = ranges.iter().copied().filter(|r| !r.is_empty()).collect();
    v.sort();
    let mut out: Vec<Range> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.start() <= last.end() => *last = last.hull(&r),
            _ => out.push(r),
        }
    }
    out
}

/// `ram` minus every `avoid` range: sorted, merged, non-empty.
pub fn free_regions(ram: &[Range], avoid: &[Range]) -> Vec<Range> {
    let avoid = normalize(avoid);
    let mut out = Vec::new();
    for r in normalize(ram) {
        let mut cur = r.start();
        for a in avoid.iter().filter(|a| a.overlaps(&r)) {
            // `cur < a.start()` here, so the range is well formed.
            out.extend(Range::new(cur, a.start()).ok().filter(|g| !g.is_empty()));
            cur = cur.max(a.end());
        }
        out.extend(Range::new(cur, r.end()).ok().filter(|g| !g.is_empty()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Range {
        Range::new(start, end).unwrap()
    }

    #[test]
    fn free_regions_subtracts_and_merges() {
        let ram = [r(0x1000, 0x5000), r(0x4000, 0x8000), r(0x10000, 0x20000)];
        let avoid = [r(0x2000, 0x3000), r(0x7000, 0x11000), r(0x1f000, 0x30000)];
        assert_eq!(
            free_regions(&ram, &avoid),
            [r(0x1000, 0x2000), r(0x3000, 0x7000), r(0x11000, 0x1f000)]
        );
        assert_eq!(free_regions(&ram, &[r(0, u64::MAX)]), []);
        assert_eq!(
            free_regions(&ram, &[]),
            [r(0x1000, 0x8000), r(0x10000, 0x20000)]
        );
    }
}
