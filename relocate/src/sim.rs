//! Host-side executor of an entry list: the trampoline's loop, step for step, with bounds.

use crate::{Error, Memory, IND_DESTINATION, IND_DONE, IND_INDIRECTION, IND_SOURCE};
use crate::{PAGE_OFFSET_MASK, PAGE_SIZE};

/// What a simulated run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Entries processed (the head included, the final `IND_DONE` not).
    pub entries: u64,
    /// Pages copied (`IND_SOURCE` entries).
    pub pages_copied: u64,
    /// List pages followed (`IND_INDIRECTION` entries, the head included).
    pub indirections: u64,
    /// `IND_DESTINATION` entries.
    pub destinations: u64,
}

/// Runs the entry list starting at `head` over `mem` exactly as the trampoline does: flags are
/// tested in the order DONE, SOURCE, INDIRECTION, DESTINATION; an entry with none is skipped.
/// At most `max_entries` entries are processed; a list that does not end by then, reads or writes
/// outside `mem`, or moves a pointer past the address space is an error.
pub fn simulate(mem: &mut dyn Memory, head: u64, max_entries: u64) -> Result<SimStats, Error> {
    let mut stats = SimStats::default();
    if head & IND_DONE != 0 {
        return Ok(stats);
    }
    // The trampoline starts with no list pointer, so the head must give it one.
    if head & IND_INDIRECTION == 0 {
        return Err(Error::BadHead { head });
    }
    let (mut entry, mut ptr, mut dest) = (head, 0u64, 0u64);
    loop {
        stats.entries += 1;
        if stats.entries > max_entries {
            return Err(Error::TooManyEntries { max: max_entries });
        }
        let addr = entry & !PAGE_OFFSET_MASK;
        if entry & IND_SOURCE != 0 {
            mem.copy_page(addr, dest)?;
            dest = dest
                .checked_add(PAGE_SIZE)
                .ok_or(Error::DestinationWrap { addr: dest })?;
            stats.pages_copied += 1;
        } else if entry & IND_INDIRECTION != 0 {
            ptr = addr;
            stats.indirections += 1;
        } else if entry & IND_DESTINATION != 0 {
            dest = addr;
            stats.destinations += 1;
        }
        let mut word = [0u8; 8];
        mem.read(ptr, &mut word)?;
        entry = u64::from_le_bytes(word);
        ptr = ptr.checked_add(8).ok_or(Error::ListWrap { addr: ptr })?;
        if entry & IND_DONE != 0 {
            return Ok(stats);
        }
    }
}
