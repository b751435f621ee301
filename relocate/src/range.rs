//! kexboot's one physical address-range type (half-open, checked constructors, private fields)
//! and page arithmetic. The loader re-exports it (`kexboot_loader::mem::Range`), so placement,
//! relocation and the boards all speak in the same ranges.

use crate::{Error, What};
use core::fmt;

/// Size of a page: the unit of placement and of the relocator's entry list (4 KiB, like Linux's
/// arm64 kexec). The one page-size constant of kexboot.
pub const PAGE_SIZE: u64 = 4096;
/// Low address bits that are the offset inside a page.
pub const PAGE_OFFSET_MASK: u64 = PAGE_SIZE - 1;

/// `addr` rounded up to a page boundary, `None` on overflow.
pub const fn page_round_up(addr: u64) -> Option<u64> {
    align_up(addr, PAGE_SIZE)
}

/// Whether `addr` is on a page boundary.
pub const fn is_page_aligned(addr: u64) -> bool {
    addr & PAGE_OFFSET_MASK == 0
}

/// `value` rounded up to a multiple of `align` (a power of two); `None` on overflow.
pub const fn align_up(value: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// `value` rounded down to a multiple of `align` (a power of two).
pub const fn align_down(value: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    value & !(align - 1)
}

/// A half-open physical address range `[start, end)`.
///
/// Only the checked constructors build one, so `start <= end` always holds; read the bounds with
/// [`Range::start`] and [`Range::end`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Range {
    start: u64,
    end: u64,
}

impl Range {
    /// `[start, end)`; refuses `end < start`.
    pub const fn new(start: u64, end: u64) -> Result<Self, Error> {
        Self::new_as(start, end, What::Range)
    }

    /// `[start, start + len)`; refuses overflow.
    pub const fn from_len(start: u64, len: u64) -> Result<Self, Error> {
        Self::from_len_as(start, len, What::Range)
    }

    /// `[start, start + len)` with the end clipped at the top of the address space (never fails).
    pub const fn from_len_saturating(start: u64, len: u64) -> Self {
        Range {
            start,
            end: start.saturating_add(len),
        }
    }

    /// The page `[addr, addr + PAGE_SIZE)`; refuses a misaligned address or overflow.
    pub const fn page(addr: u64) -> Result<Self, Error> {
        if !is_page_aligned(addr) {
            return Err(Error::Misaligned {
                what: What::Range,
                addr,
            });
        }
        Self::from_len(addr, PAGE_SIZE)
    }

    /// `[start, end)` for `const` tables: a bad range is a compile-time error there. Not for
    /// numbers read at run time (use [`Range::new`]).
    pub const fn constant(start: u64, end: u64) -> Self {
        match Self::new(start, end) {
            Ok(r) => r,
            Err(_) => panic!("Range::constant: end below start"),
        }
    }

    pub(crate) const fn new_as(start: u64, end: u64, what: What) -> Result<Self, Error> {
        if end < start {
            return Err(Error::InvalidRange { what, start, end });
        }
        Ok(Range { start, end })
    }

    pub(crate) const fn from_len_as(start: u64, len: u64, what: What) -> Result<Self, Error> {
        match start.checked_add(len) {
            Some(end) => Ok(Range { start, end }),
            None => Err(Error::Overflow { what, start, len }),
        }
    }

    /// First address in the range.
    pub const fn start(&self) -> u64 {
        self.start
    }

    /// First address past the range.
    pub const fn end(&self) -> u64 {
        self.end
    }

    /// Number of bytes.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Whether `addr` lies in the range.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether the two ranges share at least one byte (empty ranges share none).
    pub const fn overlaps(&self, other: &Range) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    /// Whether every byte of `other` lies in `self` (an empty `other` always does).
    pub const fn contains_range(&self, other: &Range) -> bool {
        other.is_empty() || (self.start <= other.start && other.end <= self.end)
    }

    /// The smallest range covering both `self` and `other` (and any gap between them).
    pub fn hull(&self, other: &Range) -> Range {
        Range {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The smallest page-aligned range covering `self` (`None` if rounding the end overflows).
    pub fn page_rounded(&self) -> Option<Range> {
        Some(Range {
            start: align_down(self.start, PAGE_SIZE),
            end: page_round_up(self.end)?,
        })
    }

    /// The largest page-aligned range inside `self` (possibly empty).
    pub fn page_shrunk(&self) -> Range {
        let start = page_round_up(self.start).unwrap_or(align_down(u64::MAX, PAGE_SIZE));
        let end = align_down(self.end, PAGE_SIZE);
        Range {
            start,
            end: end.max(start),
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end)
    }
}

/// Whether `r` is covered by the union of `ram` (ranges may be adjacent; order does not matter).
pub(crate) fn covered_by(r: &Range, ram: &[Range]) -> bool {
    if r.is_empty() {
        return true;
    }
    let mut cur = r.start;
    // Each step moves `cur` to the end of a distinct range, so `ram.len()` steps are enough.
    for _ in 0..ram.len() {
        match ram.iter().find(|m| m.contains(cur)) {
            Some(m) if m.end >= r.end => return true,
            Some(m) => cur = m.end,
            None => return false,
        }
    }
    false
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
            Err(Error::InvalidRange {
                what: What::Range,
                start: 5,
                end: 4
            })
        );
        assert!(Range::from_len(u64::MAX, 1).is_err());
        assert_eq!(
            Range::from_len(u64::MAX - 1, 1),
            Ok(r(u64::MAX - 1, u64::MAX))
        );
        assert!(Range::page(PAGE_SIZE + 1).is_err());
        assert_eq!(Range::page(PAGE_SIZE), Ok(r(PAGE_SIZE, 2 * PAGE_SIZE)));
        const C: Range = Range::constant(1, 2);
        assert_eq!((C.start(), C.end(), C.len()), (1, 2, 1));
    }

    #[test]
    fn helpers() {
        assert!(r(0, 10).overlaps(&r(9, 20)));
        assert!(!r(0, 10).overlaps(&r(10, 20)));
        assert!(!r(0, 10).overlaps(&r(5, 5)));
        assert!(r(0, 10).contains_range(&r(2, 10)));
        assert!(!r(0, 10).contains_range(&r(2, 11)));
        assert_eq!(r(0, 10).hull(&r(20, 30)), r(0, 30));
        assert_eq!(align_up(4097, PAGE_SIZE), Some(8192));
        assert_eq!(align_up(u64::MAX, PAGE_SIZE), None);
        assert_eq!(r(1, 4097).page_rounded(), Some(r(0, 8192)));
        assert_eq!(r(1, 8193).page_shrunk(), r(4096, 8192));
        assert!(r(1, 100).page_shrunk().is_empty());
        assert!(r(u64::MAX - 1, u64::MAX).page_shrunk().is_empty());
    }
}
