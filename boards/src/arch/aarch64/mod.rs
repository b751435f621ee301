//! AArch64 specifics of the firmware: entry, exception vectors, system registers, MMU.

pub mod el3;
mod entry;
mod exceptions;
pub mod mmu;
pub mod pen;
pub mod psci;
pub mod regs;

pub use regs::current_el;

/// The body of every loop that polls a device (a virtio ring, a register, the counter).
///
/// Not `yield` (`core::hint::spin_loop`): under QEMU's TCG each `yield` leaves the translated
/// code and takes QEMU's global lock, the lock the emulated device needs to finish the very
/// request the loop waits for. Measured here on a busy 2-core host: a 27 MB virtio-blk read in
/// 131-150 ms with `yield`, 43-52 ms without. On real cores `yield` is only a hint for SMT
/// siblings (none on the boards kexboot supports), so nothing is lost there.
#[inline(always)]
pub fn poll_pause() {
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

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

/// Zeroes `[ptr, ptr + len)` with `dc zva` (one cache-line block per instruction) when the CPU
/// allows it, else with ordinary stores. Only for Normal memory with the MMU on.
///
/// # Safety
/// The range must be writable Normal memory owned by the caller.
pub unsafe fn zero_memory(ptr: *mut u8, len: usize) {
    /// DCZID_EL0: BS (bits 3:0) is log2 of the block size in words; DZP (bit 4) prohibits DC ZVA.
    const DCZID_BS_MASK: u64 = 0xf;
    const DCZID_DZP: u64 = 1 << 4;
    let dczid: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { core::arch::asm!("mrs {v}, dczid_el0", v = out(reg) dczid, options(nomem, nostack)) };
    let prohibited = dczid & DCZID_DZP != 0;
    let block = 4usize << (dczid & DCZID_BS_MASK);
    let start = ptr as usize;
    let end = start + len;
    let first = start.next_multiple_of(block);
    let last = end & !(block - 1);
    if prohibited || first >= last {
        // SAFETY: the caller owns the range.
        unsafe { core::ptr::write_bytes(ptr, 0, len) };
        return;
    }
    // SAFETY: head and tail partial blocks are inside the caller's range.
    unsafe {
        core::ptr::write_bytes(ptr, 0, first - start);
        core::ptr::write_bytes(last as *mut u8, 0, end - last);
    }
    let mut a = first;
    while a < last {
        // SAFETY: `a` is a block-aligned address inside the caller's Normal-memory range.
        unsafe {
            core::arch::asm!("dc zva, {a}", a = in(reg) a, options(nostack, preserves_flags))
        };
        a += block;
    }
}

/// Executes a permanently undefined instruction (`udf`): the exception vectors report it.
pub fn undefined_instruction() -> ! {
    // SAFETY: `udf` only raises a synchronous exception, which the vectors handle by printing
    // the syndrome and stopping the CPU; it never returns.
    unsafe { core::arch::asm!("udf #0", options(noreturn, nomem, nostack)) }
}
