//! Physical address ranges (half-open, checked constructors) and page arithmetic.

use crate::{Error, What};
use core::fmt;

/// Size of a relocation page: the unit of the entry list (4 KiB, like Linux's arm64 kexec).
pub const PAGE_SIZE: u64 = 4096;
/// Low address bits that are the offset inside a page.
pub const PAGE_OFFSET_MASK: u64 = PAGE_SIZE - 1;

/// `addr` rounded up to a page boundary, `None` on overflow.
pub const fn page_round_up(addr: u64) -> Option<u64> {
    match addr.checked_add(PAGE_OFFSET_MASK) {
        Some(v) => Some(v & !PAGE_OFFSET_MASK),
        None => None,
    }
}

/// Whether `addr` is on a page boundary.
pub const fn is_page_aligned(addr: u64) -> bool {
    addr & PAGE_OFFSET_MASK == 0
}

/// A half-open physical address range `[start, end)`.
///
/// The fields are public so tables of constants can be written; every function of this crate
/// that takes ranges from a caller checks `start <= end` itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    /// First address in the range.
    pub start: u64,
    /// First address past the range.
    pub end: u64,
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

    /// Number of bytes (0 for a malformed range).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
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
