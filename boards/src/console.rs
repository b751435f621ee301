//! The serial console: the UART `/chosen/stdout-path` names (a PL011, or the BCM2835 mini UART
//! of a Raspberry Pi), and the `log` backend that prints every record with a boot-stage
//! timestamp.

use core::fmt::{self, Write};
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::timer;

/// PL011 register offsets and flag bits (Arm PrimeCell UART TRM).
const UARTDR: usize = 0x000;
const UARTFR: usize = 0x018;
const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;

/// BCM2835 mini UART (auxiliary peripherals, BCM2835 ARM Peripherals §2.2) register offsets
/// from its `reg` (AUX_MU_IO_REG at 0x7e215040) and line-status bits. Its baud rate follows the
/// VPU core clock; the Pi firmware sets it up (`enable_uart=1`, which also fixes the core
/// clock), as U-Boot assumes (`skip-init`): kexboot does not touch its configuration.
const MU_IO: usize = 0x00;
const MU_LSR: usize = 0x14;
const LSR_DATA_READY: u32 = 1 << 0;
const LSR_TX_EMPTY: u32 = 1 << 5;
const LSR_TX_IDLE: u32 = 1 << 6;
/// Status reads before a UART that never drains is given up on (a boot must not hang on it).
const TX_POLLS: u32 = 1_000_000;

/// A UART's data and status registers and the tests on its status word: can send, byte
/// waiting, everything sent.
type Regs = (
    usize,
    usize,
    fn(u32) -> bool,
    fn(u32) -> bool,
    fn(u32) -> bool,
);

/// Which UART the console drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uart {
    Pl011,
    /// The BCM2835 auxiliary mini UART (`brcm,bcm2835-aux-uart`).
    MiniUart,
}

impl Uart {
    /// The driver for a device tree `compatible`, if kexboot has one.
    pub fn for_compatible(compatible: &str) -> Option<Uart> {
        match compatible {
            "arm,pl011" => Some(Uart::Pl011),
            "brcm,bcm2835-aux-uart" => Some(Uart::MiniUart),
            _ => None,
        }
    }

    /// (data register, status register, "can send", "byte waiting", "all sent" tests).
    fn regs(self) -> Regs {
        match self {
            Uart::Pl011 => (
                UARTDR,
                UARTFR,
                |fr| fr & FR_TXFF == 0,
                |fr| fr & FR_RXFE == 0,
                |fr| fr & FR_BUSY == 0,
            ),
            Uart::MiniUart => (
                MU_IO,
                MU_LSR,
                |lsr| lsr & LSR_TX_EMPTY != 0,
                |lsr| lsr & LSR_DATA_READY != 0,
                |lsr| lsr & LSR_TX_IDLE != 0,
            ),
        }
    }
}

/// Base address of the UART, 0 until the device tree named one.
static UART_BASE: AtomicUsize = AtomicUsize::new(0);
/// Which UART: 0 = PL011, 1 = mini UART.
static UART_KIND: AtomicU8 = AtomicU8::new(0);

fn kind() -> Uart {
    match UART_KIND.load(Ordering::Relaxed) {
        1 => Uart::MiniUart,
        _ => Uart::Pl011,
    }
}

/// Starts using the UART of kind `uart` at `base` (identity-mapped device memory).
///
/// # Safety
/// `base` must be the MMIO base of a UART of that kind that nothing else drives.
pub unsafe fn init(uart: Uart, base: usize) {
    UART_KIND.store(u8::from(uart == Uart::MiniUart), Ordering::Relaxed);
    UART_BASE.store(base, Ordering::Relaxed);
}

fn put_byte(b: u8) {
    let base = UART_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    let (data, status, can_send, _, _) = kind().regs();
    // SAFETY: `init`'s caller guaranteed `base` is a UART of this kind; these are its
    // registers.
    unsafe {
        // Bounded wait: a UART that never drains must not hang the boot.
        for _ in 0..TX_POLLS {
            if can_send(read_volatile((base + status) as *const u32)) {
                break;
            }
        }
        write_volatile((base + data) as *mut u32, u32::from(b));
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
fn try_read_byte() -> Option<u8> {
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

/// Whether a byte is waiting (type-ahead or at the UART), without taking it.
fn byte_waiting() -> bool {
    if AHEAD_HEAD.load(Ordering::Relaxed) != AHEAD_TAIL.load(Ordering::Relaxed) {
        return true;
    }
    let base = UART_BASE.load(Ordering::Relaxed);
    let (_, status, _, waiting, _) = kind().regs();
    // SAFETY: as in `put_byte`.
    base != 0 && waiting(unsafe { read_volatile((base + status) as *const u32) })
}

/// Waits (bounded) until the UART has sent everything.
fn flush_tx() {
    let base = UART_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    let (_, status, _, _, all_sent) = kind().regs();
    for _ in 0..TX_POLLS {
        // SAFETY: as in `put_byte`.
        if all_sent(unsafe { read_volatile((base + status) as *const u32) }) {
            return;
        }
    }
}

fn uart_byte() -> Option<u8> {
    let base = UART_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return None;
    }
    let (data, status, _, waiting, _) = kind().regs();
    // SAFETY: as in `put_byte`.
    unsafe {
        if !waiting(read_volatile((base + status) as *const u32)) {
            return None;
        }
        Some(read_volatile((base + data) as *const u32) as u8)
    }
}

/// The console UART (PL011 or mini UART) as `embedded-io` byte streams: raw bytes, no newline
/// translation, for code generic over `embedded_io::{Read, Write}`. Reads take the type-ahead
/// first. Without a UART (no `stdout-path`), writes vanish and reads return 0 (end of input).
pub struct Port;

impl embedded_io::ErrorType for Port {
    /// A UART that never drains drops bytes after a bounded wait instead of failing.
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Port {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        buf.iter().for_each(|&b| put_byte(b));
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        flush_tx();
        Ok(())
    }
}

impl embedded_io::WriteReady for Port {
    fn write_ready(&mut self) -> Result<bool, Self::Error> {
        let base = UART_BASE.load(Ordering::Relaxed);
        let (_, status, can_send, _, _) = kind().regs();
        // SAFETY: as in `put_byte`.
        Ok(base == 0 || can_send(unsafe { read_volatile((base + status) as *const u32) }))
    }
}

impl embedded_io::Read for Port {
    /// Waits for the first byte (embedded-io's contract: callers that must not wait ask
    /// [`embedded_io::ReadReady`] first), then takes what else is waiting, up to `buf.len()`.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() || UART_BASE.load(Ordering::Relaxed) == 0 {
            return Ok(0);
        }
        let mut n = 0;
        while n < buf.len() {
            match try_read_byte() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None if n > 0 => break,
                None => crate::arch::poll_pause(),
            }
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for Port {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(byte_waiting())
    }
}

/// A `fmt::Write` over the console, turning `\n` into `\r\n`.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut port = Port;
        for line in s.split_inclusive('\n') {
            match line.strip_suffix('\n') {
                Some(text) => {
                    let _ = embedded_io::Write::write_all(&mut port, text.as_bytes());
                    let _ = embedded_io::Write::write_all(&mut port, b"\r\n");
                }
                None => {
                    let _ = embedded_io::Write::write_all(&mut port, line.as_bytes());
                }
            }
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
