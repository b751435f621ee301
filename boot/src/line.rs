//! Keys and a line editor for the serial console, sans-I/O: bytes in, text out, time as an
//! argument.
//!
//! [`KeyDecoder`] turns the byte stream of a VT100/xterm-style terminal into [`Key`]s: arrow,
//! Home/End and Delete sequences in both their `ESC [` and `ESC O` forms, Enter as CR, LF or CRLF
//! (counted once), Linux console function keys (`ESC [ [ A`) skipped, and a lone `ESC` (nothing after it for [`ESC_TIMEOUT_US`]) as [`Key::Esc`].
//! Its state is a few bytes whatever the input: unknown or overlong sequences are dropped, a
//! control byte inside a sequence ends it and counts as itself, bytes above 0x7e are ignored.
//!
//! [`LineEditor`] edits one line with the habits of U-Boot's and readline's editors (cursor keys,
//! Home/End, Ctrl-A/E/B/F/K/U, Backspace/Delete, Up/Down history), refuses to grow past its
//! maximum length (with a bell), and redraws either with `\r` + `ESC[K` on an ANSI terminal or
//! with backspaces and blanks on a dumb one (see [`Term`]).
//! Lines longer than the terminal is wide are drawn but not redrawn across the wrap.

use alloc::{collections::VecDeque, string::String, vec::Vec};
use core::fmt::{self, Write};

use crate::console::{Clock, Console};

/// Default longest line, in bytes (U-Boot's `CONFIG_SYS_CBSIZE`).
pub const MAX_LINE: usize = 1024;
/// Lines kept for Up/Down.
pub const MAX_HISTORY: usize = 32;
/// How long a lone `ESC` waits for the rest of a sequence before it counts as the Esc key.
pub const ESC_TIMEOUT_US: u64 = 100_000;
/// Longest `ESC [` sequence kept (after `ESC [`); longer ones are skipped to their final byte.
const MAX_SEQ: usize = 8;

const ESC: u8 = 0x1b;
const BELL: &str = "\x07";

/// What the terminal understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// ANSI/VT100 escape sequences (cursor movement, erase, reverse video). `false`: plain text,
    /// CR and backspace only.
    pub ansi: bool,
}

impl Term {
    pub const ANSI: Term = Term { ansi: true };
    pub const DUMB: Term = Term { ansi: false };
}

/// One key press, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable ASCII character (0x20..=0x7e).
    Char(u8),
    Enter,
    Backspace,
    Delete,
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
    Esc,
    /// Ctrl + a letter, as the lower-case letter (`Ctrl(b'c')` is Ctrl-C). Not Ctrl-H, -J, -M,
    /// `[` (Backspace, Enter, Esc).
    Ctrl(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecState {
    Ground,
    /// `ESC` seen at this time.
    Esc(u64),
    /// `ESC [` and `len` parameter/intermediate bytes (the first `MAX_SEQ` kept); `overlong`
    /// means the sequence is being skipped to its final byte.
    Csi {
        since: u64,
        params: [u8; MAX_SEQ],
        len: usize,
        overlong: bool,
    },
    /// `ESC O`.
    Ss3(u64),
    /// `ESC [ [`: a Linux console function key; one more byte ends it.
    LinuxFn(u64),
}

/// Up to two keys produced by one byte (a pending Esc, then the byte's own key).
pub type Keys = [Option<Key>; 2];

/// Bytes to [`Key`]s. See the module documentation.
#[derive(Debug, Clone)]
pub struct KeyDecoder {
    state: DecState,
    /// The previous byte was CR: a LF right after it is the same Enter.
    after_cr: bool,
}

impl Default for KeyDecoder {
    fn default() -> Self {
        KeyDecoder {
            state: DecState::Ground,
            after_cr: false,
        }
    }
}

impl KeyDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one byte received at `now_us`.
    pub fn feed(&mut self, byte: u8, now_us: u64) -> Keys {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        let mut keys: Keys = [None, None];
        // A sequence that stalled longer than the timeout is over: a lone ESC becomes Esc, a
        // partial sequence is dropped, and this byte starts afresh.
        if let Some(since) = self.since() {
            if now_us.saturating_sub(since) >= ESC_TIMEOUT_US {
                keys[0] = self.idle(now_us);
            }
        }
        keys[1] = match self.state {
            DecState::Ground => self.ground(byte, after_cr, now_us),
            DecState::Esc(since) => match byte {
                b'[' => {
                    self.state = DecState::Csi {
                        since,
                        params: [0; MAX_SEQ],
                        len: 0,
                        overlong: false,
                    };
                    None
                }
                b'O' => {
                    self.state = DecState::Ss3(since);
                    None
                }
                // Esc, then a control byte (Enter, another ESC...) that counts as itself.
                0..=0x1f | 0x7f => {
                    self.state = DecState::Ground;
                    keys[0] = Some(Key::Esc);
                    self.ground(byte, after_cr, now_us)
                }
                // `ESC x` (Meta-x) and anything else: an unknown sequence, ignored.
                _ => {
                    self.state = DecState::Ground;
                    None
                }
            },
            DecState::Csi {
                since,
                mut params,
                len,
                overlong,
            } => match byte {
                0x20..=0x3f => {
                    if let Some(slot) = params.get_mut(len) {
                        *slot = byte;
                        self.state = DecState::Csi {
                            since,
                            params,
                            len: len + 1,
                            overlong,
                        };
                    } else {
                        self.state = DecState::Csi {
                            since,
                            params,
                            len,
                            overlong: true,
                        };
                    }
                    None
                }
                b'[' if len == 0 => {
                    self.state = DecState::LinuxFn(since);
                    None
                }
                0x40..=0x7e => {
                    self.state = DecState::Ground;
                    if overlong {
                        None
                    } else {
                        csi_key(params.get(..len).unwrap_or(&[]), byte)
                    }
                }
                // A control byte (or DEL, or a non-ASCII byte) ends the sequence.
                _ => {
                    self.state = DecState::Ground;
                    self.ground(byte, after_cr, now_us)
                }
            },
            DecState::LinuxFn(_) => match byte {
                0x20..=0x7e => {
                    self.state = DecState::Ground;
                    None
                }
                _ => self.ground(byte, after_cr, now_us),
            },
            DecState::Ss3(_) => {
                self.state = DecState::Ground;
                match byte {
                    b'M' => Some(Key::Enter), // keypad Enter
                    // The cursor keys share their final bytes with CSI's.
                    0x40..=0x7e => csi_key(&[], byte),
                    _ => self.ground(byte, after_cr, now_us),
                }
            }
        };
        if keys[0].is_none() {
            keys.swap(0, 1);
        }
        keys
    }

    /// Call when no byte is waiting: a lone `ESC` older than [`ESC_TIMEOUT_US`] becomes
    /// [`Key::Esc`]; a stalled partial sequence is dropped.
    pub fn idle(&mut self, now_us: u64) -> Option<Key> {
        let since = self.since()?;
        if now_us.saturating_sub(since) < ESC_TIMEOUT_US {
            return None;
        }
        let lone = matches!(self.state, DecState::Esc(_));
        self.state = DecState::Ground;
        lone.then_some(Key::Esc)
    }

    /// When the pending sequence began, if one is pending.
    fn since(&self) -> Option<u64> {
        match self.state {
            DecState::Ground => None,
            DecState::Esc(t)
            | DecState::Ss3(t)
            | DecState::LinuxFn(t)
            | DecState::Csi { since: t, .. } => Some(t),
        }
    }

    fn ground(&mut self, byte: u8, after_cr: bool, now_us: u64) -> Option<Key> {
        self.state = DecState::Ground;
        match byte {
            b'\r' => Some(Key::Enter),
            b'\n' if after_cr => None,
            b'\n' => Some(Key::Enter),
            0x08 | 0x7f => Some(Key::Backspace),
            ESC => {
                self.state = DecState::Esc(now_us);
                None
            }
            0x01..=0x1a => Some(Key::Ctrl(byte - 1 + b'a')),
            0x20..=0x7e => Some(Key::Char(byte)),
            _ => None,
        }
    }
}

/// The key an `ESC [ params final` sequence stands for, if known.
fn csi_key(params: &[u8], fin: u8) -> Option<Key> {
    match fin {
        b'A' => Some(Key::Up),
        b'B' => Some(Key::Down),
        b'C' => Some(Key::Right),
        b'D' => Some(Key::Left),
        b'H' => Some(Key::Home),
        b'F' => Some(Key::End),
        b'~' => {
            // The first parameter, up to a `;` (modifiers are ignored).
            let first = params.split(|&b| b == b';').next().unwrap_or(&[]);
            match first {
                b"1" | b"7" => Some(Key::Home),
                b"4" | b"8" => Some(Key::End),
                b"3" => Some(Key::Delete),
                _ => None,
            }
        }
        _ => None,
    }
}

/// What a key did to the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// Still editing.
    None,
    /// Enter: the finished line (also added to the history when not empty).
    Line(String),
    /// Ctrl-C: the line is abandoned.
    Cancel,
    /// Esc: the caller decides (the menu goes back; a shell may ignore it).
    Esc,
}

/// Why [`LineEditor::read_line`] returned no line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing was typed for the whole timeout.
    Timeout,
    /// Ctrl-C.
    Cancelled,
    /// Esc.
    Esc,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadError::Timeout => "no input before the timeout",
            ReadError::Cancelled => "line cancelled (Ctrl-C)",
            ReadError::Esc => "line abandoned (Esc)",
        })
    }
}

/// A one-line editor with history. See the module documentation.
#[derive(Debug, Clone)]
pub struct LineEditor {
    term: Term,
    max: usize,
    prompt: String,
    buf: Vec<char>,
    /// Index into `buf` (0..=len).
    cursor: usize,
    history: VecDeque<String>,
    /// Which history line is shown, while browsing.
    hist_pos: Option<usize>,
    /// The line being typed before browsing began.
    scratch: Vec<char>,
    keys: KeyDecoder,
}

impl LineEditor {
    /// An editor for lines of up to [`MAX_LINE`] bytes.
    pub fn new(term: Term) -> Self {
        Self::with_max(term, MAX_LINE)
    }

    /// An editor for lines of up to `max` characters (ASCII is typed, so bytes).
    pub fn with_max(term: Term, max: usize) -> Self {
        LineEditor {
            term,
            max,
            prompt: String::new(),
            buf: Vec::new(),
            cursor: 0,
            history: VecDeque::new(),
            hist_pos: None,
            scratch: Vec::new(),
            keys: KeyDecoder::new(),
        }
    }

    /// Begins a new line: prints `prompt` and `initial` (its control characters shown and kept as
    /// blanks), cursor at the end. `initial` may be longer than the maximum; it can then only
    /// shrink.
    pub fn start(&mut self, out: &mut dyn Console, prompt: &str, initial: &str) {
        self.prompt = String::from(prompt);
        self.buf = initial
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.cursor = self.buf.len();
        self.hist_pos = None;
        let mut s = String::from(prompt);
        s.extend(self.buf.iter());
        out.write_str(&s);
    }

    /// The line as it stands.
    pub fn line(&self) -> String {
        self.buf.iter().collect()
    }

    /// Cursor position, in characters from the start of the line.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history.iter().map(String::as_str)
    }

    /// Adds a line to the history (empty lines and repeats of the last one are not kept).
    pub fn add_history(&mut self, line: &str) {
        if line.is_empty() || self.history.back().map(String::as_str) == Some(line) {
            return;
        }
        if self.history.len() >= MAX_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(String::from(line));
    }

    /// Feeds one byte received at `now_us`.
    pub fn feed(&mut self, byte: u8, now_us: u64, out: &mut dyn Console) -> LineEvent {
        let mut event = LineEvent::None;
        for key in self.keys.feed(byte, now_us).into_iter().flatten() {
            if event == LineEvent::None {
                event = self.key(key, out);
            }
        }
        event
    }

    /// Call when no byte is waiting (resolves a lone `ESC`).
    pub fn idle(&mut self, now_us: u64, out: &mut dyn Console) -> LineEvent {
        match self.keys.idle(now_us) {
            Some(key) => self.key(key, out),
            None => LineEvent::None,
        }
    }

    /// Applies one decoded key.
    pub fn key(&mut self, key: Key, out: &mut dyn Console) -> LineEvent {
        let mut o = Out::default();
        let event = match key {
            Key::Char(c) => {
                self.insert(char::from(c), &mut o);
                LineEvent::None
            }
            Key::Enter => {
                let line = self.line();
                self.add_history(&line);
                self.finish(&mut o, "\r\n");
                LineEvent::Line(line)
            }
            Key::Ctrl(b'c') => {
                self.finish(&mut o, "^C\r\n");
                LineEvent::Cancel
            }
            Key::Esc => {
                self.finish(&mut o, "\r\n");
                LineEvent::Esc
            }
            Key::Backspace => {
                self.backspace(&mut o);
                LineEvent::None
            }
            Key::Delete => {
                self.delete(&mut o);
                LineEvent::None
            }
            Key::Left | Key::Ctrl(b'b') => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    o.s.push('\x08');
                }
                LineEvent::None
            }
            Key::Right | Key::Ctrl(b'f') => {
                if let Some(&c) = self.buf.get(self.cursor) {
                    self.cursor += 1;
                    o.s.push(c);
                }
                LineEvent::None
            }
            Key::Home | Key::Ctrl(b'a') => {
                o.backs(self.cursor);
                self.cursor = 0;
                LineEvent::None
            }
            Key::End | Key::Ctrl(b'e') => {
                o.s.extend(self.buf.get(self.cursor..).unwrap_or(&[]));
                self.cursor = self.buf.len();
                LineEvent::None
            }
            Key::Ctrl(b'u') => {
                self.replace(&mut o, Vec::new());
                LineEvent::None
            }
            Key::Ctrl(b'k') => {
                let (old_cursor, old_len) = (self.cursor, self.buf.len());
                self.buf.truncate(self.cursor);
                self.refresh(&mut o, old_cursor, old_len);
                LineEvent::None
            }
            Key::Up => {
                self.history_step(&mut o, true);
                LineEvent::None
            }
            Key::Down => {
                self.history_step(&mut o, false);
                LineEvent::None
            }
            Key::Ctrl(_) => LineEvent::None,
        };
        if !o.s.is_empty() {
            out.write_str(&o.s);
        }
        event
    }

    /// Prompts and polls `con` until a line is entered. `timeout_us` is how long the person may
    /// stay idle (each byte restarts it); `None` waits for them as long as it takes.
    pub fn read_line(
        &mut self,
        con: &mut dyn Console,
        clock: &dyn Clock,
        prompt: &str,
        timeout_us: Option<u64>,
    ) -> Result<String, ReadError> {
        self.start(con, prompt, "");
        let mut last = clock.now_us();
        loop {
            let now = clock.now_us();
            let event = match con.read_byte() {
                Some(b) => {
                    last = now;
                    self.feed(b, now, con)
                }
                None => {
                    if timeout_us.is_some_and(|t| now.saturating_sub(last) >= t) {
                        con.write_str("\r\n");
                        return Err(ReadError::Timeout);
                    }
                    self.idle(now, con)
                }
            };
            match event {
                LineEvent::None => {}
                LineEvent::Line(line) => return Ok(line),
                LineEvent::Cancel => return Err(ReadError::Cancelled),
                LineEvent::Esc => return Err(ReadError::Esc),
            }
        }
    }

    fn finish(&mut self, o: &mut Out, tail: &str) {
        o.s.extend(self.buf.get(self.cursor..).unwrap_or(&[]));
        o.s.push_str(tail);
        self.buf.clear();
        self.cursor = 0;
        self.hist_pos = None;
    }

    fn insert(&mut self, c: char, o: &mut Out) {
        if self.buf.len() >= self.max {
            o.s.push_str(BELL);
            return;
        }
        self.buf.insert(self.cursor, c);
        self.cursor += 1;
        let tail = self.buf.get(self.cursor - 1..).unwrap_or(&[]);
        o.s.extend(tail);
        o.backs(tail.len() - 1);
    }

    fn backspace(&mut self, o: &mut Out) {
        if self.cursor == 0 {
            return;
        }
        self.cursor -= 1;
        self.buf.remove(self.cursor);
        o.s.push('\x08');
        self.show_tail(o);
    }

    fn delete(&mut self, o: &mut Out) {
        if self.cursor < self.buf.len() {
            self.buf.remove(self.cursor);
            self.show_tail(o);
        }
    }

    /// After removing one character at the cursor: redraw from the cursor, blank the last cell,
    /// come back.
    fn show_tail(&self, o: &mut Out) {
        let tail = self.buf.get(self.cursor..).unwrap_or(&[]);
        o.s.extend(tail);
        o.s.push(' ');
        o.backs(tail.len() + 1);
    }

    fn history_step(&mut self, o: &mut Out, older: bool) {
        let n = self.history.len();
        let pos = match (self.hist_pos, older) {
            (None, true) if n > 0 => {
                self.scratch = self.buf.clone();
                Some(n - 1)
            }
            (Some(p), true) => Some(p.saturating_sub(1)),
            (Some(p), false) if p + 1 < n => Some(p + 1),
            (Some(_), false) => None,
            (None, _) => return,
        };
        let new = match pos {
            Some(p) => self
                .history
                .get(p)
                .map_or_else(Vec::new, |s| s.chars().collect()),
            None => core::mem::take(&mut self.scratch),
        };
        self.hist_pos = pos;
        self.replace(o, new);
    }

    /// Replaces the whole line, cursor at the end.
    fn replace(&mut self, o: &mut Out, new: Vec<char>) {
        let (old_cursor, old_len) = (self.cursor, self.buf.len());
        self.buf = new;
        self.cursor = self.buf.len();
        self.refresh(o, old_cursor, old_len);
    }

    /// Redraws the line after any change; the screen showed `old_len` characters with the cursor
    /// at `old_cursor`.
    fn refresh(&self, o: &mut Out, old_cursor: usize, old_len: usize) {
        let len = self.buf.len();
        let back = len - self.cursor;
        if self.term.ansi {
            o.s.push('\r');
            o.s.push_str(&self.prompt);
            o.s.extend(self.buf.iter());
            o.s.push_str("\x1b[K");
            if back > 0 {
                let _ = write!(o.s, "\x1b[{back}D");
            }
        } else {
            o.backs(old_cursor);
            o.s.extend(self.buf.iter());
            let blank = old_len.saturating_sub(len);
            o.s.extend(core::iter::repeat_n(' ', blank));
            o.backs(blank + back);
        }
    }
}

/// Output collected while handling one key, written in one piece.
#[derive(Default)]
struct Out {
    s: String,
}

impl Out {
    fn backs(&mut self, n: usize) {
        self.s.extend(core::iter::repeat_n('\x08', n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<Key> {
        let mut d = KeyDecoder::new();
        let mut v: Vec<Key> = Vec::new();
        for &b in bytes {
            v.extend(d.feed(b, 0).into_iter().flatten());
        }
        v.extend(d.idle(ESC_TIMEOUT_US));
        v
    }

    #[test]
    fn decodes_sequences() {
        use Key::*;
        assert_eq!(keys(b"\x1b[A\x1b[B\x1bOC\x1bOD"), [Up, Down, Right, Left]);
        assert_eq!(
            keys(b"\x1b[1~\x1b[4~\x1b[3~\x1b[H\x1b[F\x1b[7~\x1b[8~"),
            [Home, End, Delete, Home, End, Home, End]
        );
        assert_eq!(
            keys(b"a\r\nb\n\r"),
            [Char(b'a'), Enter, Char(b'b'), Enter, Enter]
        );
        assert_eq!(
            keys(b"\x01\x05\x03\x08\x7f"),
            [Ctrl(b'a'), Ctrl(b'e'), Ctrl(b'c'), Backspace, Backspace]
        );
        // Unknown, overlong and Meta sequences vanish; the next key still works.
        assert_eq!(keys(b"\x1b[99~\x1b[Zx"), [Char(b'x')]);
        assert_eq!(keys(b"\x1b[1;2;3;4;5;6;7;8;9;10Ax"), [Char(b'x')]);
        assert_eq!(keys(b"\x1bxy"), [Char(b'y')]);
        // Modifiers are ignored on letters and on `~`.
        assert_eq!(keys(b"\x1b[1;5C\x1b[3;2~"), [Right, Delete]);
        // A control byte ends a sequence and counts.
        assert_eq!(keys(b"\x1b[1\r"), [Enter]);
        assert_eq!(keys(b"\x1b\r"), [Esc, Enter]);
        assert_eq!(keys(b"\x1b\x1b[A"), [Esc, Up]);
        // Lone ESC at the end: Esc after the timeout; non-ASCII ignored.
        assert_eq!(keys(b"\xc3\xa9\x1b"), [Esc]);
    }

    #[test]
    fn esc_waits_for_its_sequence() {
        let mut d = KeyDecoder::new();
        assert_eq!(d.feed(ESC, 1000), [None, None]);
        assert_eq!(d.idle(1000 + ESC_TIMEOUT_US - 1), None);
        assert_eq!(d.feed(b'[', 1000 + ESC_TIMEOUT_US - 1), [None, None]);
        assert_eq!(
            d.feed(b'A', 1000 + ESC_TIMEOUT_US - 1),
            [Some(Key::Up), None]
        );
        // A stalled ESC, then a key much later: Esc, then the key itself.
        d.feed(ESC, 5_000_000);
        assert_eq!(
            d.feed(b'[', 6_000_000),
            [Some(Key::Esc), Some(Key::Char(b'['))]
        );
        // A stalled partial sequence is dropped silently.
        d.feed(ESC, 7_000_000);
        d.feed(b'[', 7_000_000);
        assert_eq!(d.idle(8_000_000), None);
        assert_eq!(d.feed(b'A', 8_000_000), [Some(Key::Char(b'A')), None]);
    }
}
