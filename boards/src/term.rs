//! The firmware's side of `kexboot_boot`'s sans-I/O traits: the console UART (through its
//! `embedded-io` [`console::Port`]) as a `Console` and the generic timer as a `Clock`.

use core::fmt::Write;

use embedded_io::{Read, ReadReady};

use kexboot_boot::{Clock, Console};

use crate::{console, timer};

/// The serial console (writes turn `\n` into `\r\n`).
pub struct Serial;

impl Console for Serial {
    fn write_str(&mut self, s: &str) {
        let _ = console::Console.write_str(s);
    }

    /// One byte if one is waiting, through the UART's `embedded-io` `ReadReady` + `Read`.
    fn read_byte(&mut self) -> Option<u8> {
        let mut port = console::Port;
        if !port.read_ready().unwrap_or(false) {
            return None;
        }
        let mut b = [0u8];
        match port.read(&mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }

    /// Ctrl-C, with the UART read at most every 10 ms: under emulation each device register
    /// read is costly, and the network stack asks once per loop turn.
    fn interrupted(&mut self) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        let now = timer::since_start_us();
        if now.saturating_sub(LAST_KEY_CHECK_US.load(Relaxed)) < KEY_CHECK_US {
            return false;
        }
        LAST_KEY_CHECK_US.store(now, Relaxed);
        console::ctrl_c_pressed()
    }
}

/// When the UART was last read for Ctrl-C.
static LAST_KEY_CHECK_US: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// How often, at most, the UART is read for Ctrl-C.
const KEY_CHECK_US: u64 = 10_000;

/// Microseconds since kexboot's entry.
#[derive(Clone, Copy)]
pub struct Timer;

impl Clock for Timer {
    fn now_us(&self) -> u64 {
        timer::since_start_us()
    }
}
