//! Physical address ranges and free-memory arithmetic.

use alloc::vec::Vec;
use core::fmt;

use crate::{Error, Result};

/// The page granule every placement is rounded to.
pub const PAGE_SIZE: u64 = 4096;
/// The arm64 kernel base alignment.
pub const SZ_2M: u64 = 2 << 20;

/// A half-open physical address range `start..end`.
///
/// The fields are public for pattern matching; build from untrusted numbers with [`Range::new`] or
/// [`Range::from_len`], which refuse inverted or overflowing ranges. Every method also treats an
/// inverted range as empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// `start..end`, refusing `end < start`.
    pub fn new(start: u64, end: u64) -> Result<Self> {
        if end < start {
            return Err(Error::InvertedRange { start, end });
        }
        Ok(Range { start, end })
    }

    /// `start..start + len`, refusing overflow.
    pub fn from_len(start: u64, len: u64) -> Result<Self> {
        let end = start
            .checked_add(len)
            .ok_or(Error::RangeOverflow { start, len })?;
        Ok(Range { start, end })
    }

    /// Length in bytes (0 for an empty or inverted range).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True when the range holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when both ranges share at least one byte.
    pub fn overlaps(&self, other: &Range) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    /// True when every byte of `other` is in `self` (an empty `other` is contained anywhere).
    pub fn contains_range(&self, other: &Range) -> bool {
        other.is_empty() || (other.start >= self.start && other.end <= self.end)
    }

    /// True when `addr` is in the range.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The smallest page-aligned range covering `self` (`None` if rounding the end overflows).
    pub fn page_rounded(&self) -> Option<Range> {
        Some(Range {
            start: align_down(self.start, PAGE_SIZE),
            end: align_up(self.end, PAGE_SIZE)?,
        })
    }

    /// The largest page-aligned range inside `self` (possibly empty).
    pub fn page_shrunk(&self) -> Range {
        let start = align_up(self.start, PAGE_SIZE).unwrap_or(u64::MAX);
        let end = align_down(self.end, PAGE_SIZE);
        Range {
            start,
            end: end.max(start),
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}..{:#x})", self.start, self.end)
    }
}

/// `value` rounded up to a multiple of `align` (a power of two); `None` on overflow.
pub fn align_up(value: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// `value` rounded down to a multiple of `align` (a power of two).
pub fn align_down(value: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    value & !(align - 1)
}

/// Sorts `ranges`, drops empty ones and merges overlapping or touching ones.
pub fn normalize(ranges: &[Range]) -> Vec<Range> {
    let mut v: Vec<Range> = ranges.iter().copied().filter(|r| !r.is_empty()).collect();
    v.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
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
        let mut cur = r.start;
        for a in avoid.iter().filter(|a| a.overlaps(&r)) {
            if a.start > cur {
                out.push(Range {
                    start: cur,
                    end: a.start,
                });
            }
            cur = cur.max(a.end);
        }
        if cur < r.end {
            out.push(Range {
                start: cur,
                end: r.end,
            });
        }
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
    fn constructors_refuse_bad_input() {
        assert_eq!(
            Range::new(5, 4),
            Err(Error::InvertedRange { start: 5, end: 4 })
        );
        assert!(Range::from_len(u64::MAX, 1).is_err());
        assert_eq!(
            Range::from_len(u64::MAX - 1, 1),
            Ok(r(u64::MAX - 1, u64::MAX))
        );
    }

    #[test]
    fn helpers() {
        assert!(r(0, 10).overlaps(&r(9, 20)));
        assert!(!r(0, 10).overlaps(&r(10, 20)));
        assert!(!r(0, 10).overlaps(&r(5, 5)));
        assert!(r(0, 10).contains_range(&r(2, 10)));
        assert!(!r(0, 10).contains_range(&r(2, 11)));
        assert_eq!(align_up(4097, PAGE_SIZE), Some(8192));
        assert_eq!(align_up(u64::MAX, PAGE_SIZE), None);
        assert_eq!(r(1, 4097).page_rounded(), Some(r(0, 8192)));
        assert_eq!(r(1, 8193).page_shrunk(), r(4096, 8192));
        assert!(r(1, 100).page_shrunk().is_empty());
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
