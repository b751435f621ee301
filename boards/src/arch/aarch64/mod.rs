//! AArch64 specifics of the firmware: entry, exception vectors, system registers, MMU.

mod entry;
mod exceptions;
pub mod mmu;
pub mod psci;
pub mod regs;

pub use regs::current_el;

/// Stops this CPU for good (interrupts masked, waiting for an event that is never acted upon).
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

extern "C" {
    #[link_name = "dcache_inval_range"]
    fn dcache_inval_range_raw(start: u64, end: u64);
}

/// Invalidates the data cache by VA over `[start, end)` (`dc ivac`, to PoC).
///
/// # Safety
/// Dirty data in the range is discarded: only for memory whose cached contents do not matter.
pub unsafe fn dcache_inval_range(start: u64, end: u64) {
    // SAFETY: the assembly routine only does `dc ivac` over the range; the caller accepts the
    // loss of any dirty line in it.
    unsafe { dcache_inval_range_raw(start, end) }
}
