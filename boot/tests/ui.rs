//! The boot menu driven through a fake console on made-up time (nothing sleeps). ANSI output is
//! replayed on a small terminal model, so the tests check what a person would see.

use kexboot_boot::extlinux::{self, Config};
use kexboot_boot::line::{Term, ESC_TIMEOUT_US};
use kexboot_boot::ui::{Menu, MenuAction, MAX_CMDLINE, PROMPT_TIMEOUT_DS};
use kexboot_boot::{FakeClock, FakeConsole};
use proptest::prelude::*;

const CONF: &str = "\
menu title Test Menu
timeout 30
default b
label a
  menu label Alpha
  linux /a
  append root=/dev/vda1 quiet
label b
  menu label Beta
  linux /b
  append root=/dev/vda2
label c
  linux /c
";

const SEC: u64 = 1_000_000;

fn conf(text: &str) -> Config {
    extlinux::parse(text).unwrap()
}

fn boot(index: usize, append: Option<&str>) -> MenuAction {
    MenuAction::Boot {
        index,
        append_override: append.map(String::from),
    }
}

/// A terminal that understands what the menu sends: cursor addressing, erase, reverse video.
#[derive(Default)]
struct Screen {
    rows: Vec<Vec<(char, bool)>>,
    r: usize,
    c: usize,
    rev: bool,
}

impl Screen {
    fn of(out: &str) -> Screen {
        let mut s = Screen::default();
        s.apply(out);
        s
    }

    fn apply(&mut self, out: &str) {
        let mut it = out.chars();
        while let Some(ch) = it.next() {
            match ch {
                '\r' => self.c = 0,
                '\n' => self.r += 1,
                '\x08' => self.c = self.c.saturating_sub(1),
                '\x07' => {}
                '\x1b' => {
                    assert_eq!(it.next(), Some('['));
                    let mut p = String::new();
                    let fin = loop {
                        let c = it.next().expect("truncated escape sequence in output");
                        if c.is_ascii_digit() || c == ';' {
                            p.push(c);
                        } else {
                            break c;
                        }
                    };
                    self.csi(&p, fin);
                }
                c if c.is_control() => panic!("unexpected control {c:?}"),
                c => {
                    let (col, rev) = (self.c, self.rev);
                    let row = self.row_mut();
                    if row.len() <= col {
                        row.resize(col + 1, (' ', false));
                    }
                    row[col] = (c, rev);
                    self.c += 1;
                }
            }
        }
    }

    fn row_mut(&mut self) -> &mut Vec<(char, bool)> {
        if self.rows.len() <= self.r {
            self.rows.resize(self.r + 1, Vec::new());
        }
        &mut self.rows[self.r]
    }

    fn csi(&mut self, p: &str, fin: char) {
        let nums: Vec<usize> = p.split(';').filter_map(|n| n.parse().ok()).collect();
        match fin {
            'H' => {
                self.r = nums.first().copied().unwrap_or(1) - 1;
                self.c = nums.get(1).copied().unwrap_or(1) - 1;
            }
            'J' if p == "2" => self.rows.clear(),
            'J' => {
                let c = self.c;
                self.row_mut().truncate(c);
                self.rows.truncate(self.r + 1);
            }
            'K' => {
                let c = self.c;
                self.row_mut().truncate(c);
            }
            'm' => self.rev = p == "7",
            'D' => self.c = self.c.saturating_sub(nums[0]),
            _ => panic!("unexpected ESC[{p}{fin}"),
        }
    }

    fn row(&self, r: usize) -> String {
        self.rows
            .get(r)
            .map(|row| row.iter().map(|c| c.0).collect::<String>())
            .unwrap_or_default()
            .trim_end()
            .to_string()
    }

    fn text(&self) -> String {
        (0..self.rows.len())
            .map(|r| self.row(r))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The rows shown in reverse video.
    fn highlighted(&self) -> Vec<String> {
        (0..self.rows.len())
            .filter(|&r| self.rows[r].iter().any(|c| c.1))
            .map(|r| self.row(r))
            .collect()
    }
}

#[test]
fn countdown_boots_the_default_on_time() {
    let cfg = conf(CONF);
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::ANSI);
    clock.advance(123);
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert_eq!(menu.drawn_at(), Some(123));
    let screen = Screen::of(&con.output);
    assert_eq!(screen.row(0), "Test Menu");
    assert_eq!(screen.row(2), "  1. Alpha");
    assert_eq!(screen.row(3), "  2. Beta (default)");
    assert_eq!(screen.row(4), "  3. c");
    assert_eq!(screen.highlighted(), ["  2. Beta (default)"]);
    assert!(screen
        .text()
        .contains("Booting 'Beta' in 3 s... (any key stops)"));
    // The countdown line changes each second.
    for (t, shown) in [(SEC, "2"), (2 * SEC - 1, "2"), (2 * SEC, "1")] {
        clock.advance(t + 123 - clock_now(&clock));
        assert_eq!(menu.poll(&mut con, &clock), None);
        let text = Screen::of(&con.output).text();
        assert!(text.contains(&format!("in {shown} s...")), "{text}");
    }
    clock.advance(3 * SEC + 122 - clock_now(&clock));
    assert_eq!(menu.poll(&mut con, &clock), None, "one microsecond early");
    clock.advance(1);
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)));
    // Asked again: the same answer, nothing more drawn.
    let len = con.output.len();
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)));
    assert_eq!(con.output.len(), len);
}

fn clock_now(clock: &FakeClock) -> u64 {
    use kexboot_boot::Clock;
    clock.now_us()
}

#[test]
fn run_counts_down_on_a_moving_clock() {
    let cfg = conf(CONF);
    let clock = FakeClock::new(1000);
    let mut con = FakeConsole::default();
    let mut drawn = Vec::new();
    let action = Menu::new(&cfg, Term::DUMB).run_with(&mut con, &clock, |c, t| {
        drawn.push((t, c.read_byte()));
    });
    assert_eq!(action, boot(1, None));
    assert_eq!(drawn, [(0, None)], "told once, at the first draw");
    let end = clock_now(&clock);
    assert!((3 * SEC..3 * SEC + 10_000).contains(&end), "{end}");
    for n in ["3", "2", "1"] {
        assert_eq!(con.output.matches(&format!("in {n} s...")).count(), 1);
    }
}

#[test]
fn a_key_stops_the_countdown_and_the_menu_waits() {
    let cfg = conf(CONF);
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::ANSI);
    assert_eq!(menu.poll(&mut con, &clock), None);
    clock.advance(SEC / 2);
    con.push_input(b"x");
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(!menu.counting_down());
    assert!(!Screen::of(&con.output).text().contains("Booting"));
    // A day passes: no boot.
    for _ in 0..24 * 60 {
        clock.advance(60 * SEC);
        assert_eq!(menu.poll(&mut con, &clock), None);
    }
    con.push_input(b"\r");
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)));
}

#[test]
fn esc_in_the_menu_only_stops_the_countdown() {
    let cfg = conf(CONF);
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::new(b"\x1b");
    let mut menu = Menu::new(&cfg, Term::ANSI);
    assert_eq!(menu.poll(&mut con, &clock), None);
    clock.advance(10 * SEC);
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(!menu.counting_down());
    assert_eq!(menu.selected(), 1);
}

#[test]
fn arrows_and_digits_choose() {
    let cfg = conf(CONF);
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::ANSI);
    let steps: &[(&[u8], usize)] = &[
        (b"\x1b[A", 0),
        (b"\x1b[A", 0),
        (b"\x1b[B\x1b[B", 2),
        (b"\x1bOB", 2),
        (b"1", 0),
        (b"9", 0),
        (b"0", 0),
        (b"3", 2),
        (b"\x1bOA", 1),
        (b"\x1b[H", 0),
        (b"\x1b[4~", 2),
    ];
    for (bytes, sel) in steps {
        con.push_input(bytes);
        assert_eq!(menu.poll(&mut con, &clock), None);
        assert_eq!(menu.selected(), *sel, "after {bytes:?}");
        let screen = Screen::of(&con.output);
        let title = cfg.entries[*sel].title();
        let hl = screen.highlighted();
        assert_eq!(hl.len(), 1, "{hl:?}");
        assert!(hl[0].contains(title), "{hl:?}");
    }
    con.push_input(b"2\r");
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)));
    con.push_input(b"x");
    let mut menu = Menu::new(&cfg, Term::ANSI);
    con.push_input(b"1\n");
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(0, None)));
}

#[test]
fn long_lists_scroll() {
    let mut text = String::from("timeout 10\n");
    for i in 0..40 {
        text.push_str(&format!("label l{i}\n linux /k\n"));
    }
    let cfg = conf(&text);
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::ANSI);
    for (i, bytes) in [b"\x1b[B"; 39].iter().enumerate() {
        con.push_input(*bytes);
        assert_eq!(menu.poll(&mut con, &clock), None);
        let hl = Screen::of(&con.output).highlighted();
        assert_eq!(hl, [format!("{:>3}. l{}", i + 2, i + 1)]);
    }
    con.push_input(b"\x1b[H");
    menu.poll(&mut con, &clock);
    let screen = Screen::of(&con.output);
    assert_eq!(screen.highlighted(), ["  1. l0 (default)"]);
    assert!(
        screen.text().lines().count() < 25,
        "fits a 24-line terminal"
    );
}

#[test]
fn edit_then_enter_boots_the_edited_line() {
    let cfg = conf(CONF);
    let clock = FakeClock::new(0);
    for term in [Term::ANSI, Term::DUMB] {
        let mut con = FakeConsole::new(b"1e\x7f\x7f\x7f\x7f\x7fconsole=ttyAMA0\r");
        let mut menu = Menu::new(&cfg, term);
        assert_eq!(
            menu.poll(&mut con, &clock),
            Some(boot(0, Some("root=/dev/vda1 console=ttyAMA0")))
        );
        assert!(con.output.contains("> root=/dev/vda1 quiet"));
        // Ctrl-U empties the line; an entry without `append` edits an empty one.
        let mut con = FakeConsole::new(b"e\x15ro\r");
        assert_eq!(
            Menu::new(&cfg, term).poll(&mut con, &clock),
            Some(boot(1, Some("ro")))
        );
        let mut con = FakeConsole::new(b"3Eabc\r");
        assert_eq!(
            Menu::new(&cfg, term).poll(&mut con, &clock),
            Some(boot(2, Some("abc")))
        );
    }
}

#[test]
fn edit_then_esc_comes_back_unchanged() {
    let cfg = conf(CONF);
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::new(b"exyz\x1b");
    let mut menu = Menu::new(&cfg, Term::ANSI);
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(
        menu.editing(),
        "a lone ESC waits for the rest of a sequence"
    );
    clock.advance(ESC_TIMEOUT_US);
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(!menu.editing());
    let screen = Screen::of(&con.output);
    assert_eq!(screen.highlighted(), ["  2. Beta (default)"]);
    assert!(!screen.text().contains("xyz"));
    // Ctrl-C also comes back; then Enter boots the entry as written.
    con.push_input(b"eabc\x03");
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(!menu.editing());
    con.push_input(b"\r");
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)));
}

#[test]
fn c_asks_for_the_shell() {
    let cfg = conf(CONF);
    let clock = FakeClock::new(0);
    for input in [&b"c"[..], b"\x1b[Bxq?C"] {
        let mut con = FakeConsole::new(input);
        assert_eq!(
            Menu::new(&cfg, Term::ANSI).poll(&mut con, &clock),
            Some(MenuAction::Shell)
        );
    }
}

#[test]
fn when_there_is_no_menu_at_all() {
    let clock = FakeClock::new(0);
    let body = "default b\nlabel a\n linux /a\nlabel b\n linux /b\n";
    for head in ["timeout 0\nprompt 1\n", "", "prompt 0\nmenu title T\n"] {
        let cfg = conf(&format!("{head}{body}"));
        let mut con = FakeConsole::new(b"2");
        let mut menu = Menu::new(&cfg, Term::ANSI);
        assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)), "{head:?}");
        assert_eq!(con.output, "", "nothing drawn");
        assert_eq!(menu.drawn_at(), None);
    }
    // `prompt 1` without a timeout: a countdown of PROMPT_TIMEOUT_DS.
    let cfg = conf(&format!("prompt 1\n{body}"));
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::ANSI);
    assert_eq!(menu.poll(&mut con, &clock), None);
    clock.advance(u64::from(PROMPT_TIMEOUT_DS) * SEC / 10);
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)));
    // The shell's `bootmenu`: shown even with `timeout 0`, and it waits.
    let cfg = conf(&format!("timeout 0\n{body}"));
    let mut menu = Menu::interactive(&cfg, Term::DUMB);
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(!menu.counting_down());
    clock.advance(3600 * SEC);
    assert_eq!(menu.poll(&mut con, &clock), None);
    // No entries: the shell, saying why.
    let cfg = conf("timeout 50\n");
    let mut con = FakeConsole::default();
    assert_eq!(
        Menu::new(&cfg, Term::ANSI).poll(&mut con, &clock),
        Some(MenuAction::Shell)
    );
    assert!(con.output.contains("no entries"));
}

#[test]
fn dumb_terminal_gets_plain_text() {
    let text = format!("{CONF}label evil\n menu label Bad\x1b[2J\x07Title\n linux /e\n");
    let cfg = conf(&text);
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::new(b"\x1b[B\x1b[A2e\x1b[D\x1b[3~x\x1b[H\x1b[1;5C\x1b[Ay\r");
    let mut menu = Menu::new(&cfg, Term::DUMB);
    let action = menu.poll(&mut con, &clock);
    assert_eq!(action, Some(boot(1, Some("ryoot=/dev/vdax"))));
    let out = &con.output;
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.contains("Test Menu\r\n  1. Alpha\r\n  2. Beta (default)\r\n  3. c\r\n"));
    assert!(out.contains("  4. Bad?[2J?Title\r\n"));
    assert!(out.contains("Booting 'Beta' in 3 s... (any key stops)"));
    assert!(out.contains("Choose 1-4, Enter to boot 2. Beta (e: edit, c: shell)"));
    // A shorter status line blanks what the longer one left.
    assert!(out.contains("Choose 1-4, Enter to boot 3. c (e: edit, c: shell)"));
    // ANSI: the title's control characters are not sent either.
    let mut con = FakeConsole::new(b"4");
    Menu::new(&cfg, Term::ANSI).poll(&mut con, &clock);
    assert!(!con.output.contains("\x1b[2J\x07"));
    assert!(Screen::of(&con.output).highlighted()[0].contains("Bad?[2J?Title"));
}

#[test]
fn overlong_edited_line_is_refused() {
    let long = "x".repeat(MAX_CMDLINE - 3);
    let cfg = conf(&format!("timeout 10\nlabel a\n linux /a\n append {long}\n"));
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::new(b"e");
    con.push_input(&[b'y'; 100]);
    con.push_input(b"\r");
    let mut menu = Menu::new(&cfg, Term::ANSI);
    let action = menu.run(&mut con, &clock);
    let MenuAction::Boot {
        index: 0,
        append_override: Some(line),
    } = action
    else {
        panic!("{action:?}")
    };
    assert_eq!(line, format!("{long}yyy"));
    assert_eq!(con.output.matches('\x07').count(), 97);
}

proptest! {
    /// Any typing, then Enter: no panic, and always a valid action (the menu never hangs).
    #[test]
    fn garbage_then_enter_always_ends_in_an_action(
        bytes in proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                Just(0x1b), Just(b'['), Just(b'O'), Just(b'A'), Just(b'B'), Just(b'e'),
                Just(0x03), Just(0x7f), Just(b'2'),
            ],
            0..300,
        ),
        ansi in any::<bool>(),
        step in 0u64..200_000,
    ) {
        let cfg = conf(CONF);
        let clock = FakeClock::new(step);
        let mut con = FakeConsole::new(&bytes);
        con.push_input(b"\r");
        let mut menu = Menu::new(&cfg, Term { ansi });
        let mut action = None;
        for _ in 0..1000 {
            action = menu.poll(&mut con, &clock);
            if action.is_some() {
                break;
            }
        }
        match action {
            Some(MenuAction::Shell) => {}
            Some(MenuAction::Boot { index, append_override }) => {
                prop_assert!(index < cfg.entries.len());
                if let Some(line) = append_override {
                    prop_assert!(line.len() <= MAX_CMDLINE);
                    prop_assert!(!line.chars().any(char::is_control));
                }
            }
            None => prop_assert!(false, "no action after Enter"),
        }
        if ansi {
            Screen::of(&con.output);
        } else {
            prop_assert!(!con.output.contains('\x1b'));
        }
    }
}

// ---- ontimeout, totaltimeout, menu hidden ----

const TIMED: &str = "\
menu title Timed
timeout 30
default a
ontimeout b
label a
  menu label Alpha
  linux /a
label b
  menu label Beta
  linux /b
label c
  linux /c
";

#[test]
fn countdown_boots_ontimeout_while_enter_boots_the_default() {
    let cfg = conf(TIMED);
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::ANSI);
    assert_eq!(menu.poll(&mut con, &clock), None);
    let screen = Screen::of(&con.output);
    assert_eq!(screen.highlighted(), ["  1. Alpha (default)"]);
    assert!(
        screen.text().contains("Booting 'Beta' in 3 s..."),
        "{}",
        screen.text()
    );
    clock.advance(3 * SEC);
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)));

    // A key stops it; Enter boots the highlighted default.
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::ANSI);
    assert_eq!(menu.poll(&mut con, &clock), None);
    con.push_input(b"\r");
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(0, None)));

    // `timeout 0` boots the ontimeout entry at once, drawing nothing.
    let cfg = conf(&TIMED.replace("timeout 30", "timeout 0"));
    let mut con = FakeConsole::default();
    assert_eq!(
        Menu::new(&cfg, Term::ANSI).poll(&mut con, &clock),
        Some(boot(1, None))
    );
    assert_eq!(con.output, "");
}

#[test]
fn totaltimeout_bounds_the_wait_even_while_someone_moves() {
    let cfg = conf(&TIMED.replace("timeout 30", "timeout 30\ntotaltimeout 100"));
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::DUMB);
    assert_eq!(menu.poll(&mut con, &clock), None);
    // Someone keeps moving: the countdown stops, but the total bound does not.
    for i in 0..9 {
        clock.advance(SEC);
        con.push_input(if i % 2 == 0 { b"3" } else { b"1" });
        assert_eq!(menu.poll(&mut con, &clock), None, "second {i}");
        assert!(!menu.counting_down());
    }
    // ... even in the editor.
    con.push_input(b"e");
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(menu.editing());
    clock.advance(SEC - 1);
    assert_eq!(menu.poll(&mut con, &clock), None);
    clock.advance(1);
    assert_eq!(
        menu.poll(&mut con, &clock),
        Some(boot(1, None)),
        "the ontimeout entry"
    );

    // `totaltimeout` alone counts down that long; `interactive` ignores it.
    let cfg = conf("totaltimeout 20\nlabel a\nlabel b\n");
    assert!(!kexboot_boot::ui::boots_at_once(&cfg));
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::DUMB);
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(
        con.output.contains("Booting 'a' in 2 s..."),
        "{}",
        con.output
    );
    let mut menu = Menu::interactive(&cfg, Term::DUMB);
    assert_eq!(menu.poll(&mut con, &clock), None);
    clock.advance(3600 * SEC);
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(kexboot_boot::ui::boots_at_once(&conf("label a\n")));
    assert!(kexboot_boot::ui::boots_at_once(&conf(
        "timeout 0\ntotaltimeout 50\nlabel a\n"
    )));
}

#[test]
fn menu_hidden_shows_one_line_until_a_key() {
    let text = TIMED.replace("menu title Timed", "menu title Timed\nmenu hidden");
    let cfg = conf(&text);
    for term in [Term::ANSI, Term::DUMB] {
        let clock = FakeClock::new(0);
        let mut con = FakeConsole::default();
        let mut menu = Menu::new(&cfg, term);
        clock.advance(7);
        assert_eq!(menu.poll(&mut con, &clock), None);
        assert_eq!(menu.drawn_at(), Some(7));
        assert_eq!(
            con.output,
            "\rBooting 'Beta' in 3 s... (any key for the menu)"
        );
        clock.advance(SEC);
        assert_eq!(menu.poll(&mut con, &clock), None);
        assert!(con
            .output
            .ends_with("\rBooting 'Beta' in 2 s... (any key for the menu)"));
        assert!(
            !con.output.contains('\x1b'),
            "no escape sequences while hidden"
        );
        assert!(!con.output.contains("Alpha"));
        // Unattended: it boots the ontimeout entry without ever drawing the menu.
        clock.advance(2 * SEC);
        assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)));
        assert!(!con.output.contains("Alpha"));
        assert!(con.output.ends_with("\r\n"));
    }
    // A key (here the start of an arrow key) brings the menu, stopped; the key itself does
    // nothing else (the rest of the sequence is not read as letters: Right is not 'C').
    let clock = FakeClock::new(0);
    let mut con = FakeConsole::default();
    let mut menu = Menu::new(&cfg, Term::ANSI);
    assert_eq!(menu.poll(&mut con, &clock), None);
    con.push_input(b"\x1b[C");
    assert_eq!(menu.poll(&mut con, &clock), None);
    assert!(!menu.counting_down());
    let screen = Screen::of(&con.output);
    assert!(screen.text().contains("Timed"), "{}", screen.text());
    assert_eq!(screen.highlighted(), ["  1. Alpha (default)"]);
    clock.advance(3600 * SEC);
    assert_eq!(menu.poll(&mut con, &clock), None, "the menu waits");
    con.push_input(b"\x1b[B\r");
    assert_eq!(menu.poll(&mut con, &clock), Some(boot(1, None)));
}
