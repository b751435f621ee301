//! The firmware's side of `kexboot_boot`'s sans-I/O traits: the PL011 as a `Console` and the
//! generic timer as a `Clock`.

use core::fmt::Write;

use kexboot_boot::{Clock, Console};

use crate::{console, timer};

/// The serial console (writes turn `\n` into `\r\n`).
pub struct Serial;

impl Console for Serial {
    fn write_str(&mut self, s: &str) {
        let _ = console::Console.write_str(s);
    }

    fn read_byte(&mut self) -> Option<u8> {
        console::try_read_byte()
    }
}

/// Microseconds since kexboot's entry.
pub struct Timer;

impl Clock for Timer {
    fn now_us(&self) -> u64 {
        timer::since_start_us()
    }
}
