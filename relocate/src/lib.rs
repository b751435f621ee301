//! kexboot's one relocator: every boot goes through it.
//!
//! A boot plan is a list of [`Segment`]s. [`validate`] checks them against the machine's
//! [`Layout`] (RAM, reserved memory, control pages); [`build`] writes the kexec-style entry list
//! (Linux's `IND_*` flags) with bounce copies made at plan time, so no copy at jump time can read
//! a byte another one already overwrote. [`simulate`] runs a list on the host exactly as the
//! aarch64 trampoline in [`arch`] does on the machine: with the MMU and caches on, then cleaning
//! destinations to PoC by VA, turning the MMU off and jumping to the kernel.
#![cfg_attr(not(test), no_std)]
extern crate alloc;

pub mod arch;
mod error;
mod memory;
mod plan;
mod range;
mod sim;

pub use error::{Error, PageProblem, What};
pub use memory::{Memory, PhysMemory, VecMemory};
pub use plan::{
    build, validate, EntryList, Layout, Segment, ENTRIES_PER_PAGE, IND_DESTINATION, IND_DONE,
    IND_INDIRECTION, IND_SOURCE, MAX_PAGE_TRIES,
};
pub use range::{
    align_down, align_up, is_page_aligned, page_round_up, Range, PAGE_OFFSET_MASK, PAGE_SIZE,
};
pub use sim::{simulate, SimStats};
