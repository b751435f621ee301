//! The crate's one error type: every refusal names what was wrong and where.

use crate::Range;
use core::fmt;

/// What a range or address in an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// The destination of segment #n.
    Destination(usize),
    /// The source bytes of segment #n.
    Source(usize),
    /// Reserved or preserved memory (memreserve, reserved-memory, handoff records).
    Reserved,
    /// A page the relocator runs from (trampoline, page tables, firmware).
    Control,
    /// A RAM range of the layout.
    Ram,
    /// A page of the entry list or a bounce page.
    ListPage,
    /// The page the trampoline is copied to.
    Trampoline,
    /// A range given to a constructor, with no further role.
    Range,
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Destination(i) => write!(f, "destination #{i}"),
            What::Source(i) => write!(f, "source #{i}"),
            What::Reserved => f.write_str("reserved"),
            What::Control => f.write_str("control"),
            What::Ram => f.write_str("RAM"),
            What::ListPage => f.write_str("relocator page"),
            What::Trampoline => f.write_str("trampoline page"),
            What::Range => f.write_str("given"),
        }
    }
}

/// Why a page from the allocator could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageProblem {
    /// Not on a page boundary.
    Misaligned,
    /// Not (wholly) in RAM.
    NotInRam,
    /// Overlaps a range it must stay out of.
    Overlaps(What, Range),
    /// Already handed out earlier in this plan.
    AlreadyUsed,
}

impl fmt::Display for PageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageProblem::Misaligned => f.write_str("is not page-aligned"),
            PageProblem::NotInRam => f.write_str("is not in RAM"),
            PageProblem::Overlaps(w, r) => write!(f, "overlaps {w} {r}"),
            PageProblem::AlreadyUsed => f.write_str("was already handed out"),
        }
    }
}

/// Everything the relocator can refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A range whose end lies before its start.
    InvalidRange { what: What, start: u64, end: u64 },
    /// `start + len` does not fit in 64 bits.
    Overflow { what: What, start: u64, len: u64 },
    /// An address that must be page-aligned is not.
    Misaligned { what: What, addr: u64 },
    /// A segment has more file bytes than memory bytes.
    LenExceedsMemsz { index: usize, len: u64, memsz: u64 },
    /// A range that must lie in RAM does not.
    NotInRam { range: Range, what: What },
    /// Two ranges that must be disjoint overlap.
    Overlap {
        a: Range,
        a_what: What,
        b: Range,
        b_what: What,
    },
    /// The page allocator ran dry after `got` usable pages.
    OutOfPages { got: u64 },
    /// The page allocator kept handing out pages that cannot be used.
    UnusablePages {
        tries: u32,
        last: u64,
        problem: PageProblem,
    },
    /// A memory access outside the memory an accessor covers.
    OutOfBounds { addr: u64, len: u64 },
    /// An entry list head that is neither an indirection nor done.
    BadHead { head: u64 },
    /// The entry list did not end within the bound it was given.
    TooManyEntries { max: u64 },
    /// The destination pointer ran past the end of the address space.
    DestinationWrap { addr: u64 },
    /// The list pointer ran past the end of the address space.
    ListWrap { addr: u64 },
    /// The trampoline code does not fit in one page.
    TrampolineTooBig { len: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidRange { what, start, end } => {
                write!(f, "{what} range {start:#x}-{end:#x} ends before it starts")
            }
            Error::Overflow { what, start, len } => {
                write!(f, "{what} at {start:#x} with length {len:#x} overflows the address space")
            }
            Error::Misaligned { what, addr } => {
                write!(f, "{what} address {addr:#x} is not {PAGE}-byte aligned", PAGE = crate::PAGE_SIZE)
            }
            Error::LenExceedsMemsz { index, len, memsz } => write!(
                f,
                "segment #{index}: {len:#x} bytes of data exceed its memory size {memsz:#x}"
            ),
            Error::NotInRam { range, what } => write!(f, "{what} {range} is not in RAM"),
            Error::Overlap { a, a_what, b, b_what } => write!(f, "{a_what} {a} overlaps {b_what} {b}"),
            Error::OutOfPages { got } => {
                write!(f, "page allocator ran out after {got} usable pages")
            }
            Error::UnusablePages { tries, last, problem } => write!(
                f,
                "page allocator gave {tries} unusable pages in a row; the last, {last:#x}, {problem}"
            ),
            Error::OutOfBounds { addr, len } => {
                write!(f, "access of {len:#x} bytes at {addr:#x} is outside memory")
            }
            Error::BadHead { head } => write!(
                f,
                "entry list head {head:#x} is neither an indirection nor done"
            ),
            Error::TooManyEntries { max } => {
                write!(f, "entry list did not end within {max} entries")
            }
            Error::DestinationWrap { addr } => {
                write!(f, "destination pointer {addr:#x} runs past the end of the address space")
            }
            Error::ListWrap { addr } => {
                write!(f, "list pointer {addr:#x} runs past the end of the address space")
            }
            Error::TrampolineTooBig { len } => write!(
                f,
                "trampoline is {len} bytes, more than one {PAGE}-byte page",
                PAGE = crate::PAGE_SIZE
            ),
        }
    }
}
