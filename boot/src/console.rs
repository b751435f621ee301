//! The console the menu and shell talk through, and an in-memory fake for tests.

use alloc::{collections::VecDeque, string::String};

/// A serial-style console: text out, bytes in. `read_byte` never blocks; `None` = nothing typed yet.
pub trait Console {
    fn write_str(&mut self, s: &str);
    fn read_byte(&mut self) -> Option<u8>;
    /// True when Ctrl-C was typed (any other byte typed stays for `read_byte`): asked while
    /// a download waits. A console may check the device less often than asked.
    fn interrupted(&mut self) -> bool {
        false
    }
}

/// Test double: records everything written, replays scripted input.
#[derive(Debug, Default, Clone)]
pub struct FakeConsole {
    /// Everything written so far.
    pub output: String,
    input: VecDeque<u8>,
}

impl FakeConsole {
    /// A console whose keyboard will produce `input`, then nothing.
    pub fn new(input: &[u8]) -> Self {
        FakeConsole {
            output: String::new(),
            input: input.iter().copied().collect(),
        }
    }

    /// Queue more typed bytes.
    pub fn push_input(&mut self, bytes: &[u8]) {
        self.input.extend(bytes.iter().copied());
    }
}

impl Console for FakeConsole {
    fn write_str(&mut self, s: &str) {
        self.output.push_str(s);
    }

    fn read_byte(&mut self) -> Option<u8> {
        self.input.pop_front()
    }

    fn interrupted(&mut self) -> bool {
        let before = self.input.len();
        self.input.retain(|&b| b != 0x03);
        self.input.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_console_records_and_replays() {
        let mut c = FakeConsole::new(b"ab");
        c.write_str("hello ");
        c.write_str("world");
        assert_eq!(c.output, "hello world");
        assert_eq!(c.read_byte(), Some(b'a'));
        c.push_input(b"\r");
        assert_eq!(c.read_byte(), Some(b'b'));
        assert_eq!(c.read_byte(), Some(b'\r'));
        assert_eq!(c.read_byte(), None);
    }
}

/// Time for the menu's countdown, the shell's `sleep` and timeouts: an argument, never a global,
/// so tests run on made-up time (sans-I/O).
pub trait Clock {
    /// Microseconds since any fixed origin.
    fn now_us(&self) -> u64;
}

/// Test clock: advances by `step_us` each time it is read, so a polling loop makes progress.
#[derive(Debug, Default)]
pub struct FakeClock {
    now: core::cell::Cell<u64>,
    pub step_us: u64,
}

impl FakeClock {
    pub fn new(step_us: u64) -> Self {
        FakeClock {
            now: core::cell::Cell::new(0),
            step_us,
        }
    }

    pub fn advance(&self, us: u64) {
        self.now.set(self.now.get() + us);
    }
}

impl Clock for FakeClock {
    fn now_us(&self) -> u64 {
        let t = self.now.get();
        self.now.set(t + self.step_us);
        t
    }
}
