//! The interactive boot menu over an `extlinux.conf` [`Config`], sans-I/O, in the manner of
//! U-Boot's `bootmenu` and syslinux's menu.
//!
//! [`Menu::poll`] reads what was typed, updates the screen and, once the choice is made, returns a
//! [`MenuAction`]. The menu shows the `menu title`, every entry's title numbered from 1 (the
//! default marked), and a countdown `Booting 'X' in N s... (any key stops)` redrawn each second.
//! Any byte stops the countdown; Up/Down and the digits 1-9 choose, Enter boots, `e` edits the
//! chosen entry's `append` line ([`LineEditor`]; Enter boots with it, Esc or Ctrl-C come back),
//! `c` asks for the shell, Esc in the menu only stops the countdown. Unknown keys are ignored.
//!
//! When to show it, from the file ([`boots_at_once`]): `timeout 0`, or none of `timeout`,
//! `prompt 1` and `totaltimeout`, boots at once and draws nothing (U-Boot boots without a menu
//! too). `timeout N` counts down N tenths of a second. `prompt 1` without `timeout` counts down
//! [`PROMPT_TIMEOUT_DS`]: an unattended device never waits forever on a file's say-so; so does
//! `totaltimeout N` alone (N tenths). When the countdown runs out (or at once) the
//! `ontimeout` entry boots ([`Config::timeout_index`]), else the default; Enter boots the entry
//! chosen. `totaltimeout N` also bounds the whole wait: N tenths after the menu appeared the
//! `ontimeout`/default entry boots even if someone is moving in the menu or editing.
//! `menu hidden`: while the countdown runs only one line shows (`Booting 'X' in N s... (any key
//! for the menu)`); the first key brings the menu, stopped, and is not otherwise acted on.
//! [`Menu::interactive`] (the shell's `bootmenu`) always shows the menu and waits, with no
//! total timeout.
//!
//! On an ANSI terminal the screen is cleared, the choice is shown in reverse video, and only the
//! changed lines are redrawn. On a dumb one ([`Term::DUMB`]) the list is printed once as plain
//! text and a status line (`Choose 1-N, Enter to boot ...`) is rewritten after `\r`; no escape
//! byte is ever sent. Titles come from a file: control characters in them are shown as `?`.

use alloc::{format, string::String};
use core::fmt::Write;

use crate::console::{Clock, Console};
use crate::extlinux::Config;
use crate::line::{Key, KeyDecoder, LineEditor, LineEvent, Term};

/// Countdown for `prompt 1` without `timeout`, in tenths of a second.
pub const PROMPT_TIMEOUT_DS: u32 = 50;
/// Entries shown at once on an ANSI terminal; the list scrolls to keep the choice visible.
pub const MAX_VISIBLE: usize = 16;
/// Longest title shown, in characters (longer ones end with `...`).
pub const MAX_TITLE: usize = 64;
/// Longest kernel command line the editor accepts (Linux's arm64 `COMMAND_LINE_SIZE`).
pub const MAX_CMDLINE: usize = 2048;
/// Bytes handled per [`Menu::poll`], so one call always returns.
const MAX_BYTES_PER_POLL: usize = 256;
/// First screen row of the list (ANSI): the title is on row 1, a blank line on row 2.
const FIRST_ROW: usize = 3;

/// What the person (or the countdown) chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    /// Boot `config.entries[index]`; with `append_override`, use that command line instead of
    /// the entry's `append` (the person edited it and pressed Enter).
    Boot {
        index: usize,
        append_override: Option<String>,
    },
    /// Go to the command shell.
    Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not drawn yet.
    Start,
    /// `menu hidden`: only the countdown line shows.
    Hidden,
    Menu,
    Edit,
    Done,
}

/// The boot menu. See the module documentation.
#[derive(Debug, Clone)]
pub struct Menu<'a> {
    cfg: &'a Config,
    term: Term,
    mode: Mode,
    /// Countdown length in tenths of a second; `None` waits; `Some(0)` boots without a menu.
    timeout_ds: Option<u32>,
    default: usize,
    /// What the countdown (or the total timeout) boots: `ontimeout`, else the default.
    timeout_choice: usize,
    /// `totaltimeout` in tenths of a second (0: none).
    total_ds: u32,
    /// When the total timeout ends, once the menu shows.
    total_deadline: Option<u64>,
    /// Start hidden (`menu hidden`) when a countdown runs.
    hidden: bool,
    selected: usize,
    /// First entry shown (ANSI scrolling).
    top: usize,
    /// When the countdown ends, while it runs.
    deadline: Option<u64>,
    /// Seconds last shown by the countdown.
    shown_secs: u64,
    /// Length of the last status line (dumb terminals blank what a shorter one leaves).
    status_len: usize,
    drawn_at: Option<u64>,
    keys: KeyDecoder,
    editor: LineEditor,
    result: Option<MenuAction>,
}

impl<'a> Menu<'a> {
    /// The menu as the file asks for it (see the module documentation for the timeout rules).
    pub fn new(cfg: &'a Config, term: Term) -> Self {
        let mut menu = Self::build(cfg, term, Some(countdown_ds(cfg)));
        menu.total_ds = cfg.total_timeout_ds.unwrap_or(0);
        menu.hidden = cfg.menu_hidden;
        menu
    }

    /// The menu shown whatever the file says, without a countdown (a person asked for it).
    pub fn interactive(cfg: &'a Config, term: Term) -> Self {
        Self::build(cfg, term, None)
    }

    fn build(cfg: &'a Config, term: Term, timeout_ds: Option<u32>) -> Self {
        let default = cfg.default_index().unwrap_or(0);
        Menu {
            cfg,
            term,
            mode: Mode::Start,
            timeout_ds,
            default,
            timeout_choice: cfg.timeout_index().unwrap_or(default),
            total_ds: 0,
            total_deadline: None,
            hidden: false,
            selected: default,
            top: 0,
            deadline: None,
            shown_secs: 0,
            status_len: 0,
            drawn_at: None,
            keys: KeyDecoder::new(),
            editor: LineEditor::with_max(term, MAX_CMDLINE),
            result: None,
        }
    }

    /// The clock's time when the menu was first drawn (`None` before, or if it never is): the
    /// firmware's boot-stage timestamp.
    pub fn drawn_at(&self) -> Option<u64> {
        self.drawn_at
    }

    /// The entry the menu points at.
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// Whether the countdown is running.
    pub fn counting_down(&self) -> bool {
        self.deadline.is_some()
    }

    /// Whether the command-line editor is open.
    pub fn editing(&self) -> bool {
        self.mode == Mode::Edit
    }

    /// Reads what was typed, updates the screen, and returns the action once chosen (then the
    /// same action on every later call). Call it in a loop; it never blocks.
    pub fn poll(&mut self, con: &mut dyn Console, clock: &dyn Clock) -> Option<MenuAction> {
        if let Some(done) = &self.result {
            return Some(done.clone());
        }
        let now = clock.now_us();
        if self.mode == Mode::Start {
            if self.cfg.entries.is_empty() {
                con.write_str("boot menu: the configuration has no entries\r\n");
                return self.done(con, MenuAction::Shell);
            }
            if self.timeout_ds == Some(0) {
                self.selected = self.timeout_choice;
                return self.boot(con, None);
            }
            if let Some(ds) = self.timeout_ds {
                self.deadline = Some(now.saturating_add(u64::from(ds) * 100_000));
                self.shown_secs = u64::from(ds).div_ceil(10);
            }
            if self.total_ds > 0 {
                self.total_deadline = Some(now.saturating_add(u64::from(self.total_ds) * 100_000));
            }
            if self.hidden && self.deadline.is_some() {
                self.mode = Mode::Hidden;
                self.status(con);
            } else {
                self.mode = Mode::Menu;
                self.draw(con);
            }
            self.drawn_at = Some(now);
        }
        for _ in 0..MAX_BYTES_PER_POLL {
            let Some(byte) = con.read_byte() else {
                if let Some(key) = self.keys.idle(now) {
                    if let Some(action) = self.key(con, key) {
                        return Some(action);
                    }
                }
                break;
            };
            if self.mode == Mode::Hidden {
                // The key only reveals the menu; the decoder still sees it, so the rest of an
                // escape sequence is not read as letters.
                let _ = self.keys.feed(byte, now);
                self.deadline = None;
                self.mode = Mode::Menu;
                con.write_str("\r\n");
                self.draw(con);
                continue;
            }
            if self.deadline.take().is_some() {
                self.status(con);
            }
            for key in self.keys.feed(byte, now).into_iter().flatten() {
                if let Some(action) = self.key(con, key) {
                    return Some(action);
                }
            }
        }
        if self.total_deadline.is_some_and(|t| now >= t) {
            log::info!(
                "boot menu: total timeout of {} s reached",
                self.total_ds.div_ceil(10)
            );
            self.selected = self.timeout_choice;
            return self.boot(con, None);
        }
        if let Some(deadline) = self.deadline {
            if now >= deadline {
                self.selected = self.timeout_choice;
                return self.boot(con, None);
            }
            let secs = (deadline - now).div_ceil(1_000_000);
            if secs != self.shown_secs {
                self.shown_secs = secs;
                self.status(con);
            }
        }
        None
    }

    /// Polls until an action is chosen. Without a countdown (or once a key stopped it) this
    /// waits for the person.
    pub fn run(&mut self, con: &mut dyn Console, clock: &dyn Clock) -> MenuAction {
        self.run_with(con, clock, |_, _| {})
    }

    /// [`Menu::run`], calling `on_drawn(con, time)` once right after the menu is first drawn
    /// (where the firmware prints its boot-stage timestamp).
    pub fn run_with(
        &mut self,
        con: &mut dyn Console,
        clock: &dyn Clock,
        mut on_drawn: impl FnMut(&mut dyn Console, u64),
    ) -> MenuAction {
        let mut told = false;
        loop {
            let action = self.poll(con, clock);
            if let (false, Some(t)) = (told, self.drawn_at) {
                told = true;
                on_drawn(con, t);
            }
            if let Some(action) = action {
                return action;
            }
        }
    }

    fn key(&mut self, con: &mut dyn Console, key: Key) -> Option<MenuAction> {
        if self.mode == Mode::Edit {
            return match self.editor.key(key, con) {
                LineEvent::None => None,
                LineEvent::Line(line) => self.boot(con, Some(line)),
                LineEvent::Cancel | LineEvent::Esc => {
                    self.mode = Mode::Menu;
                    self.draw(con);
                    None
                }
            };
        }
        let n = self.cfg.entries.len();
        match key {
            Key::Enter => return self.boot(con, None),
            Key::Char(b'c' | b'C') => return self.done(con, MenuAction::Shell),
            Key::Char(b'e' | b'E') => self.edit(con),
            Key::Up if self.selected > 0 => self.select(con, self.selected - 1),
            Key::Down if self.selected + 1 < n => self.select(con, self.selected + 1),
            Key::Home => self.select(con, 0),
            Key::End => self.select(con, n.saturating_sub(1)),
            Key::Char(d @ b'1'..=b'9') if usize::from(d - b'0') <= n => {
                self.select(con, usize::from(d - b'1'))
            }
            _ => {}
        }
        None
    }

    fn select(&mut self, con: &mut dyn Console, i: usize) {
        let old = self.selected;
        self.selected = i;
        if !self.term.ansi {
            self.status(con);
            return;
        }
        let visible = self.visible();
        if i < self.top || i >= self.top + visible {
            self.top = if i < self.top { i } else { i + 1 - visible };
            self.draw(con);
            return;
        }
        let mut s = String::new();
        self.ansi_row(&mut s, old);
        self.ansi_row(&mut s, i);
        con.write_str(&s);
        self.status(con);
    }

    fn edit(&mut self, con: &mut dyn Console) {
        let Some(entry) = self.cfg.entries.get(self.selected) else {
            return;
        };
        self.mode = Mode::Edit;
        let mut s = String::new();
        if self.term.ansi {
            let _ = write!(s, "\x1b[{};1H\x1b[J", self.status_row());
        } else {
            s.push_str("\r\n");
        }
        let _ = write!(
            s,
            "Command line of '{}' (Enter boots, Esc goes back):\r\n",
            shown(entry.title())
        );
        con.write_str(&s);
        let append = entry.append.as_deref().unwrap_or("");
        self.editor.start(con, "> ", append);
    }

    fn boot(
        &mut self,
        con: &mut dyn Console,
        append_override: Option<String>,
    ) -> Option<MenuAction> {
        let index = self.selected;
        self.done(
            con,
            MenuAction::Boot {
                index,
                append_override,
            },
        )
    }

    fn done(&mut self, con: &mut dyn Console, action: MenuAction) -> Option<MenuAction> {
        match self.mode {
            Mode::Menu if self.term.ansi => con.write_str("\x1b[0m\r\n"),
            Mode::Menu | Mode::Hidden | Mode::Edit => con.write_str("\r\n"),
            Mode::Start | Mode::Done => {}
        }
        self.mode = Mode::Done;
        self.deadline = None;
        self.result = Some(action.clone());
        Some(action)
    }

    fn visible(&self) -> usize {
        self.cfg.entries.len().min(MAX_VISIBLE)
    }

    fn status_row(&self) -> usize {
        FIRST_ROW + self.visible() + 1
    }

    /// One entry's line, without decoration.
    fn entry_text(&self, i: usize) -> String {
        let title = self.cfg.entries.get(i).map_or("", |e| e.title());
        let mark = if i == self.default { " (default)" } else { "" };
        format!("{:>3}. {}{mark}", i + 1, shown(title))
    }

    /// Rewrites row of entry `i` (ANSI), highlighted if selected.
    fn ansi_row(&self, s: &mut String, i: usize) {
        let Some(offset) = i.checked_sub(self.top).filter(|&o| o < self.visible()) else {
            return;
        };
        let _ = write!(s, "\x1b[{};1H", FIRST_ROW + offset);
        if i == self.selected {
            s.push_str("\x1b[7m");
        }
        let _ = write!(s, "{}\x1b[0m\x1b[K", self.entry_text(i));
    }

    /// Draws the whole menu.
    fn draw(&mut self, con: &mut dyn Console) {
        let title = self
            .cfg
            .menu_title
            .as_deref()
            .unwrap_or("kexboot boot menu");
        let mut s = String::new();
        if self.term.ansi {
            let _ = write!(s, "\x1b[0m\x1b[2J\x1b[H{}\r\n", shown(title));
            for i in self.top..self.top + self.visible() {
                self.ansi_row(&mut s, i);
            }
        } else {
            let _ = write!(s, "\r\n{}\r\n", shown(title));
            for i in 0..self.cfg.entries.len() {
                let _ = write!(s, "{}\r\n", self.entry_text(i));
            }
        }
        self.status_len = 0;
        con.write_str(&s);
        self.status(con);
    }

    /// Rewrites the status line: the countdown while it runs, else what the keys do.
    fn status(&mut self, con: &mut dyn Console) {
        let n = self.cfg.entries.len();
        let title_of = |i: usize| self.cfg.entries.get(i).map_or("", |e| e.title());
        let title = title_of(self.selected);
        // The hidden countdown is one plain line, rewritten after '\r', on any terminal.
        let ansi = self.term.ansi && self.mode != Mode::Hidden;
        let text = if self.deadline.is_some() {
            let hint = match self.mode {
                Mode::Hidden => "any key for the menu",
                _ => "any key stops",
            };
            format!(
                "Booting '{}' in {} s... ({hint})",
                shown(title_of(self.timeout_choice)),
                self.shown_secs
            )
        } else if ansi {
            String::from("Up/Down or 1-9 choose, Enter boots, e edits the command line, c: shell")
        } else {
            format!(
                "Choose 1-{}, Enter to boot {}. {} (e: edit, c: shell)",
                n.min(9),
                self.selected + 1,
                shown(title)
            )
        };
        let mut s = String::new();
        if ansi {
            let _ = write!(s, "\x1b[{};1H{text}\x1b[K", self.status_row());
        } else {
            let len = text.chars().count();
            s.push('\r');
            s.push_str(&text);
            let blank = self.status_len.saturating_sub(len);
            s.extend(core::iter::repeat_n(' ', blank));
            s.extend(core::iter::repeat_n('\x08', blank));
            self.status_len = len;
        }
        con.write_str(&s);
    }
}

/// The countdown a file asks for, in tenths of a second (0: boot at once); see the module
/// documentation.
fn countdown_ds(cfg: &Config) -> u32 {
    match (cfg.timeout_ds, cfg.prompt, cfg.total_timeout_ds) {
        (Some(ds), _, _) => ds,
        (None, true, _) => PROMPT_TIMEOUT_DS,
        (None, false, total) => total.unwrap_or(0),
    }
}

/// Whether [`Menu::new`] boots at once, drawing nothing (so the caller need not probe the
/// terminal).
pub fn boots_at_once(cfg: &Config) -> bool {
    countdown_ds(cfg) == 0
}

/// A title from a file as shown: control characters as `?`, at most [`MAX_TITLE`] characters.
fn shown(title: &str) -> String {
    let mut s: String = title
        .chars()
        .take(MAX_TITLE + 1)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > MAX_TITLE {
        s = s.chars().take(MAX_TITLE - 3).collect();
        s.push_str("...");
    }
    s
}
