//! The serial console: a PL011 UART found through `/chosen/stdout-path`, and the `log` backend
//! that prints every record with a boot-stage timestamp.

use core::fmt::{self, Write};
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::timer;

/// PL011 register offsets and flag bits (Arm PrimeCell UART TRM).
const UARTDR: usize = 0x000;
const UARTFR: usize = 0x018;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;

/// Base address of the PL011, 0 until the device tree named one.
static UART_BASE: AtomicUsize = AtomicUsize::new(0);

/// Starts using the PL011 at `base` (identity-mapped device memory).
///
/// # Safety
/// `base` must be the MMIO base of a PL011 that nothing else drives.
pub unsafe fn init(base: usize) {
    UART_BASE.store(base, Ordering::Relaxed);
}

fn put_byte(b: u8) {
    let base = UART_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: `init`'s caller guaranteed `base` is a PL011; FR and DR are its registers.
    unsafe {
        // Bounded wait: a UART that never drains must not hang the boot.
        for _ in 0..1_000_000 {
            if read_volatile((base + UARTFR) as *const u32) & FR_TXFF == 0 {
                break;
            }
        }
        write_volatile((base + UARTDR) as *mut u32, u32::from(b));
    }
}

/// Bytes typed while a long operation checked for Ctrl-C, kept for the shell (a ring; one CPU,
/// no interrupts, so relaxed atomics are only a safe way to hold statics).
const AHEAD: usize = 64;
static TYPEAHEAD: [AtomicU8; AHEAD] = [const { AtomicU8::new(0) }; AHEAD];
static AHEAD_HEAD: AtomicUsize = AtomicUsize::new(0);
static AHEAD_TAIL: AtomicUsize = AtomicUsize::new(0);

/// Whether Ctrl-C is among the bytes waiting at the UART; every other byte is kept, in order,
/// for [`try_read_byte`] (a full type-ahead drops the newest).
pub fn ctrl_c_pressed() -> bool {
    let mut seen = false;
    for _ in 0..AHEAD {
        let Some(b) = uart_byte() else { break };
        if b == 0x03 {
            seen = true;
            continue;
        }
        let (head, tail) = (
            AHEAD_HEAD.load(Ordering::Relaxed),
            AHEAD_TAIL.load(Ordering::Relaxed),
        );
        if tail.wrapping_sub(head) < AHEAD {
            TYPEAHEAD[tail % AHEAD].store(b, Ordering::Relaxed);
            AHEAD_TAIL.store(tail.wrapping_add(1), Ordering::Relaxed);
        }
    }
    seen
}

/// One received byte, if any is waiting (type-ahead first).
pub fn try_read_byte() -> Option<u8> {
    let (head, tail) = (
        AHEAD_HEAD.load(Ordering::Relaxed),
        AHEAD_TAIL.load(Ordering::Relaxed),
    );
    if head != tail {
        AHEAD_HEAD.store(head.wrapping_add(1), Ordering::Relaxed);
        return Some(TYPEAHEAD[head % AHEAD].load(Ordering::Relaxed));
    }
    uart_byte()
}

fn uart_byte() -> Option<u8> {
    let base = UART_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return None;
    }
    // SAFETY: as in `put_byte`.
    unsafe {
        if read_volatile((base + UARTFR) as *const u32) & FR_RXFE != 0 {
            return None;
        }
        Some(read_volatile((base + UARTDR) as *const u32) as u8)
    }
}

/// A `fmt::Write` over the console, turning `\n` into `\r\n`.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put_byte(b'\r');
            }
            put_byte(b);
        }
        Ok(())
    }
}

/// Prints without taking any lock or allocating: for exceptions and panics.
pub fn emergency_fmt(args: fmt::Arguments) {
    let _ = Console.write_fmt(args);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::emergency_fmt(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{ $crate::console::emergency_fmt(format_args!($($arg)*)); $crate::print!("\n") }};
}

/// The `log` backend: `[   1.234567] message`, warnings and errors marked.
struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let us = timer::since_start_us();
        let tag = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            _ => "",
        };
        emergency_fmt(format_args!(
            "[{:4}.{:06}] {}{}\n",
            us / 1_000_000,
            us % 1_000_000,
            tag,
            record.args()
        ));
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

pub fn init_logger() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
