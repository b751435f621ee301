//! The bakery lock every monitor call runs under, and the per-CPU slot it is indexed by.

use core::arch::asm;
use core::cell::UnsafeCell;

use kexboot_monitor::psci::MAX_CPUS;

use super::*;

/// Lamport's bakery lock: plain loads and stores only (the monitor runs with the MMU off,
/// where exclusives may never succeed), one ticket per CPU (by MPIDR Aff0).
pub(super) struct Bakery {
    choosing: UnsafeCell<[u32; MAX_CPUS]>,
    number: UnsafeCell<[u32; MAX_CPUS]>,
}
// SAFETY: every access is a volatile load or store of one aligned word; the algorithm is
// correct for such accesses (Device memory, ordered by `dmb`).
unsafe impl Sync for Bakery {}

pub(super) static LOCK: Bakery = Bakery {
    choosing: UnsafeCell::new([0; MAX_CPUS]),
    number: UnsafeCell::new([0; MAX_CPUS]),
};

pub(super) fn dmb() {
    // SAFETY: a barrier has no other effect.
    unsafe { asm!("dmb sy", options(nostack, preserves_flags)) };
}

pub(super) fn sev() {
    // SAFETY: `dsb` + `sev` only order memory and wake CPUs in `wfe`.
    unsafe { asm!("dsb sy", "sev", options(nostack, preserves_flags)) };
}

pub(super) fn wfe() {
    // SAFETY: waits for an event; no state changes.
    unsafe { asm!("wfe", options(nostack, nomem, preserves_flags)) };
}

impl Bakery {
    fn get(a: &UnsafeCell<[u32; MAX_CPUS]>, i: usize) -> u32 {
        // SAFETY: `i < MAX_CPUS` (callers index by `my_slot`); a volatile word read.
        unsafe { core::ptr::read_volatile((a.get() as *const u32).add(i)) }
    }
    fn set(a: &UnsafeCell<[u32; MAX_CPUS]>, i: usize, v: u32) {
        // SAFETY: as `get`, a volatile word write of this CPU's own slot.
        unsafe { core::ptr::write_volatile((a.get() as *mut u32).add(i), v) }
    }

    fn lock(&self, me: usize) {
        Self::set(&self.choosing, me, 1);
        dmb();
        let max = (0..MAX_CPUS).map(|j| Self::get(&self.number, j)).max();
        Self::set(&self.number, me, max.unwrap_or(0) + 1);
        dmb();
        Self::set(&self.choosing, me, 0);
        dmb();
        let mine = (Self::get(&self.number, me), me);
        for j in (0..MAX_CPUS).filter(|&j| j != me) {
            while Self::get(&self.choosing, j) != 0 {
                core::hint::spin_loop();
            }
            loop {
                let n = Self::get(&self.number, j);
                if n == 0 || (n, j) > mine {
                    break;
                }
                core::hint::spin_loop();
            }
        }
        dmb();
    }

    fn unlock(&self, me: usize) {
        dmb();
        Self::set(&self.number, me, 0);
        dmb();
    }
}

/// This CPU's lock slot and stack: MPIDR Aff0 (checked at arrival: one cluster, < MAX_CPUS).
pub(super) fn my_slot() -> usize {
    (crate::arch::regs::mpidr() & 0xff) as usize % MAX_CPUS
}

pub(super) fn stack_top(slot: usize) -> u64 {
    let base = core::ptr::addr_of!(KEXBOOT_EL3_STACKS) as u64;
    base + ((slot as u64 + 1) << STACK_SHIFT)
}

/// Runs `f` on the monitor state under the lock.
pub(super) fn locked<R>(f: impl FnOnce(&mut Monitor) -> R) -> R {
    let me = my_slot();
    LOCK.lock(me);
    // SAFETY: the bakery lock gives this CPU sole access to the monitor state.
    let r = f(unsafe { &mut *MONITOR.0.get() });
    LOCK.unlock(me);
    r
}
