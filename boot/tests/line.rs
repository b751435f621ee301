//! The line editor, driven byte by byte through a fake console, its output replayed on a tiny
//! one-line terminal model to prove the screen always shows the line and the cursor.

use kexboot_boot::line::{LineEditor, LineEvent, ReadError, Term, ESC_TIMEOUT_US, MAX_HISTORY};
use kexboot_boot::{Console, FakeClock, FakeConsole};
use proptest::prelude::*;

/// What a terminal shows for the output: the last row and the cursor column, and bells rung.
#[derive(Default, Debug)]
struct Row {
    cells: Vec<char>,
    col: usize,
    bells: usize,
    rows: usize,
}

impl Row {
    fn apply(&mut self, out: &str) {
        let mut it = out.chars();
        while let Some(ch) = it.next() {
            match ch {
                '\r' => self.col = 0,
                '\n' => {
                    self.cells.clear();
                    self.rows += 1;
                }
                '\x08' => self.col = self.col.saturating_sub(1),
                '\x07' => self.bells += 1,
                '\x1b' => {
                    assert_eq!(it.next(), Some('['), "only CSI sequences are sent");
                    let mut n = String::new();
                    let fin = loop {
                        let c = it.next().expect("truncated escape sequence in output");
                        if c.is_ascii_digit() {
                            n.push(c);
                        } else {
                            break c;
                        }
                    };
                    match fin {
                        'K' => self.cells.truncate(self.col),
                        'D' => self.col = self.col.saturating_sub(n.parse().unwrap()),
                        other => panic!("unexpected sequence ESC[{n}{other}"),
                    }
                }
                c if c.is_control() => panic!("unexpected control character {c:?}"),
                c => {
                    if self.cells.len() <= self.col {
                        self.cells.resize(self.col + 1, ' ');
                    }
                    self.cells[self.col] = c;
                    self.col += 1;
                }
            }
        }
    }

    fn text(&self) -> String {
        self.cells.iter().collect::<String>().trim_end().to_string()
    }
}

/// Feeds `bytes` at time 0, returns the events that were not `None`.
fn feed(ed: &mut LineEditor, con: &mut FakeConsole, bytes: &[u8]) -> Vec<LineEvent> {
    let mut events = Vec::new();
    for &b in bytes {
        match ed.feed(b, 0, con) {
            LineEvent::None => {}
            e => events.push(e),
        }
    }
    events
}

/// Checks that the screen shows `prompt` + the line with the cursor where the editor has it.
fn assert_screen(ed: &LineEditor, con: &FakeConsole, prompt: &str) {
    let mut row = Row::default();
    row.apply(&con.output);
    assert_eq!(row.text(), format!("{prompt}{}", ed.line()).trim_end());
    assert_eq!(row.col, prompt.chars().count() + ed.cursor());
}

#[test]
fn editing_keys_both_terminals() {
    for term in [Term::ANSI, Term::DUMB] {
        let mut con = FakeConsole::default();
        let mut ed = LineEditor::new(term);
        ed.start(&mut con, "=> ", "");
        let steps: &[(&[u8], &str, usize)] = &[
            (b"helo", "helo", 4),
            (b"\x1b[Dl", "hello", 4),
            (b"\x1b[H", "hello", 0),
            (b"\x1b[3~", "ello", 0),
            (b"\x05", "ello", 4),
            (b"\x7f", "ell", 3),
            (b"\x01x", "xell", 1),
            (b"\x1bOC\x1bOC\x08", "xel", 2),
            (b"\x1b[4~ world", "xel world", 9),
            (b"\x1b[1~\x1b[C\x1b[C\x0b", "xe", 2),
            (b"\x1b[F\x02\x02\x06", "xe", 1),
            (b"\x15", "", 0),
            (b"abc\x1b[1;5D", "abc", 2),
        ];
        for (bytes, line, cursor) in steps {
            assert!(feed(&mut ed, &mut con, bytes).is_empty());
            assert_eq!(ed.line(), *line, "after {bytes:?}");
            assert_eq!(ed.cursor(), *cursor, "after {bytes:?}");
            assert_screen(&ed, &con, "=> ");
        }
        assert_eq!(con.output.contains('\x1b'), term.ansi);
        // Enter in the middle of the line still gives all of it.
        assert_eq!(
            feed(&mut ed, &mut con, b"\r"),
            [LineEvent::Line("abc".into())]
        );
        assert_eq!(ed.line(), "");
    }
}

#[test]
fn history_up_down_and_bound() {
    let mut con = FakeConsole::default();
    let mut ed = LineEditor::new(Term::ANSI);
    ed.start(&mut con, "> ", "");
    feed(&mut ed, &mut con, b"one\rtwo\r\rtwo\rthree\rpart");
    assert_eq!(ed.history().collect::<Vec<_>>(), ["one", "two", "three"]);
    let up = b"\x1b[A";
    let down = b"\x1b[B";
    feed(&mut ed, &mut con, up);
    assert_eq!(ed.line(), "three");
    feed(&mut ed, &mut con, up);
    feed(&mut ed, &mut con, up);
    feed(&mut ed, &mut con, up);
    assert_eq!(ed.line(), "one", "stops at the oldest");
    feed(&mut ed, &mut con, down);
    assert_eq!(ed.line(), "two");
    feed(&mut ed, &mut con, down);
    feed(&mut ed, &mut con, down);
    assert_eq!(ed.line(), "part", "back to what was being typed");
    assert_eq!(ed.cursor(), 4);
    feed(&mut ed, &mut con, down);
    assert_eq!(ed.line(), "part");
    // A recalled line can be edited and entered; the history entry itself is not changed.
    feed(&mut ed, &mut con, b"\x15");
    feed(&mut ed, &mut con, up);
    let ev = feed(&mut ed, &mut con, b"\x7f\x7fee\r");
    assert_eq!(ev, [LineEvent::Line("three".into())]);
    assert_eq!(ed.history().last(), Some("three"), "a repeat is not stored");

    for i in 0..(MAX_HISTORY + 8) {
        feed(&mut ed, &mut con, format!("cmd{i}\r").as_bytes());
    }
    let h: Vec<_> = ed.history().collect();
    assert_eq!(h.len(), MAX_HISTORY);
    assert_eq!(h[0], "cmd8");
    assert_eq!(*h.last().unwrap(), format!("cmd{}", MAX_HISTORY + 7));
}

#[test]
fn crlf_is_one_enter() {
    let mut con = FakeConsole::default();
    let mut ed = LineEditor::new(Term::DUMB);
    ed.start(&mut con, "", "");
    let ev = feed(&mut ed, &mut con, b"a\r\nb\nc\r\r\n\nd\n\r");
    let lines: Vec<_> = ev
        .into_iter()
        .map(|e| match e {
            LineEvent::Line(l) => l,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(lines, ["a", "b", "c", "", "", "d", ""]);
}

#[test]
fn overlong_line_is_refused_with_a_bell() {
    let mut con = FakeConsole::default();
    let mut ed = LineEditor::with_max(Term::ANSI, 8);
    ed.start(&mut con, "", "");
    feed(&mut ed, &mut con, b"0123456789");
    assert_eq!(ed.line(), "01234567");
    feed(&mut ed, &mut con, b"\x01x");
    assert_eq!(
        ed.line(),
        "01234567",
        "inserting in the middle is refused too"
    );
    let mut row = Row::default();
    row.apply(&con.output);
    assert_eq!(row.bells, 3);
    // Room made, room used.
    feed(&mut ed, &mut con, b"\x1b[3~x");
    assert_eq!(ed.line(), "x1234567");
    // An initial text longer than the maximum is kept, and only shrinks.
    ed.start(&mut con, "", "abcdefghijk");
    feed(&mut ed, &mut con, b"z\x7f");
    assert_eq!(ed.line(), "abcdefghij");
}

#[test]
fn truncated_and_unknown_escapes() {
    let mut con = FakeConsole::default();
    let mut ed = LineEditor::new(Term::ANSI);
    ed.start(&mut con, "", "");
    // Unknown CSI, overlong CSI, Meta-x, function keys: nothing typed.
    feed(
        &mut ed,
        &mut con,
        b"\x1b[99~\x1b[1;2;3;4;5;6;7;8;9A\x1bx\x1bOP\x1b[[A\x1b[15~",
    );
    assert_eq!(ed.line(), "");
    // A truncated sequence, then the rest of the line much later.
    feed(&mut ed, &mut con, b"ab\x1b[");
    assert_eq!(ed.feed(b'c', 2 * ESC_TIMEOUT_US, &mut con), LineEvent::None);
    assert_eq!(ed.line(), "abc");
    // A control byte in the middle of a sequence counts as itself.
    assert_eq!(
        feed(&mut ed, &mut con, b"\x1b[1\r"),
        [LineEvent::Line("abc".into())]
    );
    // Non-ASCII bytes are ignored.
    feed(&mut ed, &mut con, "é€\u{0}\u{1f}".as_bytes());
    assert_eq!(ed.line(), "");
}

#[test]
fn read_line_polls_with_made_up_time() {
    let clock = FakeClock::new(1000);
    let mut con = FakeConsole::new(b"setenv a b\r\n");
    let mut ed = LineEditor::new(Term::ANSI);
    assert_eq!(
        ed.read_line(&mut con, &clock, "=> ", Some(1_000_000)),
        Ok("setenv a b".into())
    );
    assert!(con.output.starts_with("=> s"));
    // Nothing typed: the idle timeout ends the wait.
    assert_eq!(
        ed.read_line(&mut con, &clock, "=> ", Some(1_000_000)),
        Err(ReadError::Timeout)
    );
    // Ctrl-C; a lone ESC (resolved once the clock moves on); ESC + Enter.
    con.push_input(b"abc\x03");
    assert_eq!(
        ed.read_line(&mut con, &clock, "=> ", None),
        Err(ReadError::Cancelled)
    );
    con.push_input(b"abc\x1b");
    assert_eq!(
        ed.read_line(&mut con, &clock, "=> ", None),
        Err(ReadError::Esc)
    );
    con.push_input(b"x\x1b[A\x1b\x1b[B\r");
    assert_eq!(
        ed.read_line(&mut con, &clock, "=> ", Some(1_000_000)),
        Err(ReadError::Esc)
    );
    // The rest of that input: Down, Enter on an empty line.
    assert_eq!(
        ed.read_line(&mut con, &clock, "=> ", Some(1_000_000)),
        Ok(String::new())
    );
    assert!(ReadError::Timeout.to_string().contains("timeout"));
}

proptest! {
    /// Any bytes: no panic, the line stays within its bound, and the screen always shows the
    /// prompt, the line and the cursor where the editor has them.
    #[test]
    fn garbage_never_breaks_the_screen(
        bytes in proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                Just(0x1b), Just(b'['), Just(b'~'), Just(b'3'), Just(b'A'), Just(b'B'),
                Just(b'C'), Just(b'D'), Just(0x7f), Just(b'\r'),
            ],
            0..400,
        ),
        ansi in any::<bool>(),
        initial in "[ -~]{0,20}",
    ) {
        let term = Term { ansi };
        let mut con = FakeConsole::default();
        let mut ed = LineEditor::with_max(term, 16);
        ed.start(&mut con, "$ ", &initial);
        let mut t = 0;
        for b in bytes {
            t += 30_000;
            let ev = ed.feed(b, t, &mut con);
            prop_assert!(ed.line().chars().count() <= 20.max(initial.len()));
            prop_assert!(ed.cursor() <= ed.line().chars().count());
            if ev != LineEvent::None {
                ed.start(&mut con, "$ ", "");
            }
            let mut row = Row::default();
            row.apply(&con.output);
            let want = format!("$ {}", ed.line());
            prop_assert_eq!(row.text(), want.trim_end());
            prop_assert_eq!(row.col, 2 + ed.cursor());
        }
        prop_assert!(ansi || !con.output.contains('\x1b'));
        let _ = con.read_byte();
    }
}
