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

/// Polls `done` until it holds (true) or `timeout_us` has passed (false, after one last poll).
///
/// Reads the counter only once every [`POLLS_PER_CLOCK_READ`] polls: under QEMU's TCG the
/// counter is an I/O register whose every read takes QEMU's global lock, the lock the emulated
/// device needs to complete what the loop waits for. A poll is a memory or register read, so
/// the timeout is late by a few microseconds at most.
pub fn poll_until(timeout_us: u64, mut done: impl FnMut() -> bool) -> bool {
    let sw = Stopwatch::start();
    loop {
        for _ in 0..POLLS_PER_CLOCK_READ {
            if done() {
                return true;
            }
            crate::arch::poll_pause();
        }
        if sw.elapsed_us() > timeout_us {
            return done();
        }
    }
}

/// See [`poll_until`].
const POLLS_PER_CLOCK_READ: u32 = 256;

/// The generic timer as an `embedded_hal` delay, for drivers generic over `DelayNs` (SD host,
/// UART and virtio waits). It busy-waits on the counter, so it needs no interrupt and works at
/// any exception level; a wait is at least as long as asked (rounded up to a counter tick).
#[derive(Debug, Clone, Copy, Default)]
pub struct Delay;

impl embedded_hal::delay::DelayNs for Delay {
    fn delay_ns(&mut self, ns: u32) {
        let freq = u128::from(regs::counter_freq().max(1));
        let ticks = (u128::from(ns) * freq).div_ceil(1_000_000_000) as u64;
        let start = regs::counter();
        while regs::counter().wrapping_sub(start) < ticks {
            crate::arch::poll_pause();
        }
    }
}

/// MB/s (10^6 bytes per second) for `bytes` moved in `us` microseconds.
pub fn mb_per_s(bytes: u64, us: u64) -> u64 {
    bytes / us.max(1)
}

/// Boot-stage records for the `bootstage` command: (name, microseconds since entry).
const MAX_STAGES: usize = 32;

struct Stages(core::cell::UnsafeCell<([(&'static str, u64); MAX_STAGES], usize)>);

// SAFETY: kexboot runs its boot flow on one CPU with interrupts masked; `mark` and `report` are
// never re-entered.
unsafe impl Sync for Stages {}

static STAGES: Stages = Stages(core::cell::UnsafeCell::new(([("", 0); MAX_STAGES], 0)));

/// Records that stage `name` was reached now (the first `MAX_STAGES` are kept).
pub fn mark(name: &'static str) {
    let now = since_start_us();
    // SAFETY: single CPU, no re-entrance (see `Stages`).
    let (list, n) = unsafe { &mut *STAGES.0.get() };
    if *n < MAX_STAGES {
        list[*n] = (name, now);
        *n += 1;
    }
}

/// Every recorded stage, in order.
pub fn stages() -> alloc::vec::Vec<(&'static str, u64)> {
    // SAFETY: as in `mark`.
    let (list, n) = unsafe { &*STAGES.0.get() };
    list[..*n].to_vec()
}
