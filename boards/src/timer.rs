//! Boot-stage time from the generic timer. Time zero is the counter value at kexboot's entry,
//! and the counter itself runs from the machine's reset, so `since_reset_us` gives time since
//! QEMU started the CPU.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::regs;

static START: AtomicU64 = AtomicU64::new(0);

pub fn init() {
    START.store(regs::counter(), Ordering::Relaxed);
}

fn ticks_to_us(ticks: u64) -> u64 {
    let freq = regs::counter_freq().max(1);
    ((u128::from(ticks) * 1_000_000) / u128::from(freq)) as u64
}

/// Microseconds since kexboot was entered.
pub fn since_start_us() -> u64 {
    ticks_to_us(regs::counter().wrapping_sub(START.load(Ordering::Relaxed)))
}

/// Microseconds since the counter started (machine reset).
pub fn since_reset_us() -> u64 {
    ticks_to_us(regs::counter())
}

/// A stopwatch for one stage.
#[derive(Clone, Copy)]
pub struct Stopwatch(u64);

impl Stopwatch {
    pub fn start() -> Self {
        Self(regs::counter())
    }

    pub fn elapsed_us(&self) -> u64 {
        ticks_to_us(regs::counter().wrapping_sub(self.0))
    }
}

/// MB/s (10^6 bytes per second) for `bytes` moved in `us` microseconds.
pub fn mb_per_s(bytes: u64, us: u64) -> u64 {
    bytes / us.max(1)
}
