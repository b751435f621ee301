//! The syslinux/extlinux.conf format, as Debian's and Fedora's `u-boot-menu` tools write it and
//! U-Boot's `sysboot`/`pxe` commands (`boot/pxe_utils.c`) read it.
//!
//! One directive per line: a keyword (case-insensitive), blanks, then a value that runs to the end
//! of the line (so label names and menu labels may hold spaces; quotes are not special). A `#` as
//! the first non-blank character starts a comment; elsewhere it is part of the value, as in U-Boot.
//! `label` opens an entry; the entry keys that follow (`kernel`/`linux`, `initrd`, `append`,
//! `fdt`/`devicetree`, `fdtdir`/`devicetreedir`, `fdtoverlays`, `localboot`, `menu label`,
//! `menu default`) belong
//! to it. Global keys (`default`, `ontimeout`, `timeout`, `totaltimeout`, `prompt`,
//! `menu title`, `menu hidden`) may appear anywhere.
//!
//! `include FILE` and `menu include FILE` read FILE ([`parse_with`]'s reader) and parse it in
//! place, as if its lines stood there: its labels and globals merge into the config, and an entry
//! key after the include belongs to the last label opened so far. FILE is found as U-Boot's
//! `pxe_utils` finds every file (`get_relfile`): relative to the directory of the top-level
//! config ([`resolve_path`]), absolute paths as they are. Includes nest at most
//! [`MAX_INCLUDE_DEPTH`] deep and [`MAX_INCLUDES`] files in all; a file that includes itself
//! (directly or not), one that cannot be read or is not valid text, or one past a limit is
//! skipped with a note (U-Boot refuses the whole config then; a firmware should boot what it can).
//!
//! Anything the firmware would print and skip (unknown keys, entry keys outside a label, features
//! not supported yet such as `ipappend`) becomes a [`Note`]; only input no
//! configuration could mean (overlong lines, too many labels, bad UTF-8) is an [`Error`].
//!
//! Repeats follow U-Boot: a later `append`, `kernel`, `default`, `timeout` wins; for `initrd`,
//! `fdt`, `fdtdir` and `fdtoverlays` the first wins. An entry with no `initrd` line naming a file takes its
//! initrds from an `initrd=` word in its `append`, as U-Boot and syslinux do; the `append` text
//! itself is kept exactly as written (the kernel ignores `initrd=`).

use alloc::{format, string::String, vec::Vec};
use core::fmt;

use crate::Error;

/// Longest accepted line, in bytes, without its line terminator.
pub const MAX_LINE_LEN: usize = 4096;
/// Most labels a config may hold.
pub const MAX_ENTRIES: usize = 256;
/// Most notes recorded while reading the lines; one more says how many were dropped.
pub const MAX_NOTES: usize = 64;
/// Deepest chain of nested includes (the top-level file is depth 0). pxelinux and U-Boot allow
/// 16; real configs use one or two.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Most files included in all (each is read whole, so this bounds the work on any input).
pub const MAX_INCLUDES: usize = 32;

/// A parsed configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `default NAME`: the label to boot (see [`Config::default_index`]).
    pub default: Option<String>,
    /// `ontimeout NAME`: the label booted when the menu's countdown runs out (see
    /// [`Config::timeout_index`]); Enter still boots the highlighted (default) entry.
    pub ontimeout: Option<String>,
    /// `timeout N`, in tenths of a second as syslinux counts. `Some(0)` means boot the default
    /// without waiting (kexboot never waits forever on a file's say-so).
    pub timeout_ds: Option<u32>,
    /// `totaltimeout N` (tenths of a second): the longest the menu may wait in all, even while
    /// someone moves in it; then the [`Config::timeout_index`] entry boots.
    pub total_timeout_ds: Option<u32>,
    /// `menu hidden`: during the countdown only a one-line countdown shows; a key brings the menu.
    pub menu_hidden: bool,
    /// `prompt N` with N != 0. U-Boot itself ignores `prompt` and shows its menu whenever the
    /// file has any top-level `menu` line (e.g. `menu title`); the menu code decides what to do.
    pub prompt: bool,
    /// `menu title TEXT`.
    pub menu_title: Option<String>,
    /// The labels, in file order.
    pub entries: Vec<Entry>,
    /// What was ignored and why, in line order (a final few may follow about the whole file).
    pub notes: Vec<Note>,
}

/// One `label` and its keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The name after `label` (rest of the line, may contain spaces).
    pub label: String,
    /// `menu label TEXT`: what the menu shows instead of the name.
    pub menu_label: Option<String>,
    /// `kernel`/`linux FILE`, as written (resolve with [`resolve_path`]).
    pub kernel: Option<String>,
    /// `initrd a,b`: loaded and concatenated in this order.
    pub initrds: Vec<String>,
    /// `append ARGS`: the kernel command line, exactly as written.
    pub append: Option<String>,
    /// `fdt`/`devicetree FILE`.
    pub fdt: Option<String>,
    /// `fdtdir`/`devicetreedir DIR`: the DTB is `DIR/$fdtfile`.
    pub fdtdir: Option<String>,
    /// `fdtoverlays A B ...`: overlays applied in this order to the entry's device tree.
    pub fdtoverlays: Vec<String>,
    /// `menu default` was given in this label.
    pub menu_default: bool,
    /// `localboot N`: boot from the local disk instead of loading a kernel.
    pub localboot: bool,
    /// 1-based line of the `label` keyword.
    pub line: usize,
}

impl Entry {
    /// What a menu shows: the `menu label`, else the label name.
    pub fn title(&self) -> &str {
        self.menu_label.as_deref().unwrap_or(&self.label)
    }
}

/// Something in the file that was ignored, with its 1-based line (0 = the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The included file (or BLS entry file) the line is in; `None` for the top-level config,
    /// which the caller names.
    pub file: Option<String>,
    pub line: usize,
    pub text: String,
}

impl Note {
    /// A note about line `line` of the top-level file.
    pub fn new(line: usize, text: String) -> Self {
        Note {
            file: None,
            line,
            text,
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        write!(f, "line {}: {}", self.line, self.text)
    }
}

impl Config {
    /// Index of the entry to boot without asking, with U-Boot's rules: a top-level `default`
    /// always wins (the last label of that name, as U-Boot matches); else the first entry marked
    /// `menu default`; else the first entry. A `default` naming no label gives the first entry
    /// (and [`parse`] left a note). `None` only when there are no entries.
    pub fn default_index(&self) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let found = match &self.default {
            Some(name) => self.entries.iter().rposition(|e| &e.label == name),
            None => self.entries.iter().position(|e| e.menu_default),
        };
        Some(found.unwrap_or(0))
    }

    /// Index of the entry the countdown boots when it runs out: the `ontimeout` label when it
    /// names one (the last of that name, as `default`), else [`Config::default_index`].
    pub fn timeout_index(&self) -> Option<usize> {
        self.ontimeout
            .as_ref()
            .and_then(|name| self.entries.iter().rposition(|e| &e.label == name))
            .or_else(|| self.default_index())
    }

    /// The order to try entries in when nobody chooses: the default first, then every other entry
    /// in file order (U-Boot boots the "unattempted labels" when the chosen one fails).
    pub fn boot_order(&self) -> Vec<usize> {
        let Some(first) = self.default_index() else {
            return Vec::new();
        };
        let mut order = Vec::with_capacity(self.entries.len());
        order.push(first);
        order.extend((0..self.entries.len()).filter(|&i| i != first));
        order
    }
}

/// Where a file named in the config lives, as U-Boot's `sysboot` finds it: an absolute path is
/// taken as is (from the root of the partition holding the config); a relative path is appended
/// to the config file's directory, i.e. everything up to and including its last `/`
/// (`/boot/extlinux/extlinux.conf` + `vmlinuz` = `/boot/extlinux/vmlinuz`). A config path with no
/// `/` leaves the name unchanged. Like U-Boot, this is plain concatenation: `..` and `.` are left
/// for the filesystem to resolve. (U-Boot's network `pxe` command prefixes absolute paths too; that
/// is the PXE code's business, not this function's.)
pub fn resolve_path(config_path: &str, file: &str) -> String {
    if file.starts_with('/') {
        return String::from(file);
    }
    let dir = match config_path.rfind('/') {
        Some(i) => config_path.get(..=i).unwrap_or(""),
        None => "",
    };
    let mut out = String::with_capacity(dir.len() + file.len());
    out.push_str(dir);
    out.push_str(file);
    out
}

/// Where the first invalid UTF-8 byte of `bytes` is, as the error says it.
fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    core::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = 1 + bytes
            .get(..offset)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
        Error::InvalidUtf8 { offset, line }
    })
}

/// Parse a config held as raw bytes: checks UTF-8 first (a leading UTF-8 byte-order mark is
/// skipped), reporting the offset of the first bad byte. `include` lines become notes (no files
/// to read here); see [`parse_with`].
pub fn parse_bytes(bytes: &[u8]) -> Result<Config, Error> {
    parse(utf8(bytes)?)
}

/// Parse a config file's text. Never fails on what a firmware would merely skip; see the module
/// documentation for what becomes a [`Note`] and what an [`Error`]. `include` lines become
/// notes (no files to read here); see [`parse_with`].
pub fn parse(text: &str) -> Result<Config, Error> {
    let mut no_files = |_: &str| Err("no file access here");
    let mut p = Parser::default();
    p.text(text, "", &mut Vec::new(), &mut no_files)?;
    Ok(p.finish())
}

/// Parse the config at `path` (its raw bytes), reading the files its `include` lines name
/// through `read`, which gets the resolved path ([`resolve_path`] against `path`) and should
/// bound what it reads (a config is small). One implementation for every source: a disk's
/// file system ([`crate::flow::load_config`]) and a TFTP server (PXE).
pub fn parse_with<E: fmt::Display>(
    bytes: &[u8],
    path: &str,
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<Config, Error> {
    let text = utf8(bytes)?;
    let mut p = Parser::default();
    p.text(text, path, &mut Vec::new(), read)?;
    Ok(p.finish())
}

/// Checks every line's length before any of a file is used (an included file that fails is
/// skipped whole, not half merged).
fn check_lines(text: &str) -> Result<(), Error> {
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.len() > MAX_LINE_LEN {
            return Err(Error::LineTooLong {
                line: i + 1,
                len: raw.len(),
                max: MAX_LINE_LEN,
            });
        }
    }
    Ok(())
}

#[derive(Default)]
struct Parser {
    cfg: Config,
    /// The top-level config's path: includes resolve against it, as U-Boot's `bootdir`.
    top: String,
    /// The included file being read (`None`: the top-level file), for notes.
    file: Option<String>,
    /// Files included so far (all depths).
    included: usize,
    /// Line of the `include` in the top-level file that the current lines come from (for an
    /// error in an included file, which the caller reports against the top-level file).
    top_line: usize,
    /// Index of the entry the current line belongs to, if any.
    cur: Option<usize>,
    /// Per entry: an `initrd` line was seen (so `append initrd=` is not used).
    initrd_seen: Vec<bool>,
    /// Where `default` and `ontimeout` were last set (file as in [`Note::file`], line).
    default_at: (Option<String>, usize),
    ontimeout_at: (Option<String>, usize),
    /// Inside a syslinux `text help` ... `endtext` block.
    in_text: bool,
    dropped_notes: usize,
}

/// Split off the first word (ASCII blanks separate); the rest is trimmed.
fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((word, rest)) => (word, rest.trim()),
        None => (s, ""),
    }
}

/// Which entry field a key sets (keys that need a label).
enum EntryKey {
    Kernel,
    Initrd,
    Append,
    Fdt,
    FdtDir,
    FdtOverlays,
    LocalBoot,
    MenuLabel,
    MenuDefault,
}

impl Parser {
    fn note(&mut self, line: usize, text: String) {
        if self.cfg.notes.len() < MAX_NOTES {
            let file = self.file.clone();
            self.cfg.notes.push(Note { file, line, text });
        } else {
            self.dropped_notes += 1;
        }
    }

    /// Parses one file's text; `chain` holds the paths of the files including it (a loop is one
    /// already there). Recursion is bounded by [`MAX_INCLUDE_DEPTH`].
    fn text<E: fmt::Display>(
        &mut self,
        text: &str,
        path: &str,
        chain: &mut Vec<String>,
        read: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
    ) -> Result<(), Error> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if chain.is_empty() {
            self.top = String::from(path);
        }
        chain.push(String::from(path));
        // One iteration per '\n' in the input: bounded by its length.
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.len() > MAX_LINE_LEN {
                return Err(Error::LineTooLong {
                    line,
                    len: raw.len(),
                    max: MAX_LINE_LEN,
                });
            }
            if chain.len() == 1 {
                self.top_line = line;
            }
            if let Some(file) = self.line(line, raw.trim())? {
                self.include(line, &file, chain, read)?;
            }
        }
        chain.pop();
        Ok(())
    }

    /// `include FILE` on `line`: reads and parses FILE in place, or notes why not.
    fn include<E: fmt::Display>(
        &mut self,
        line: usize,
        file: &str,
        chain: &mut Vec<String>,
        read: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
    ) -> Result<(), Error> {
        let path = resolve_path(&self.top, file);
        if chain.contains(&path) {
            let text = format!("include {path}: include loop (it is already being read), ignored");
            self.note(line, text);
            return Ok(());
        }
        if chain.len() > MAX_INCLUDE_DEPTH {
            let text =
                format!("include {path}: nested more than {MAX_INCLUDE_DEPTH} deep, ignored");
            self.note(line, text);
            return Ok(());
        }
        if self.included >= MAX_INCLUDES {
            let text = format!("include {path}: more than {MAX_INCLUDES} included files, ignored");
            self.note(line, text);
            return Ok(());
        }
        self.included += 1;
        let bytes = match read(&path) {
            Ok(b) => b,
            Err(e) => {
                self.note(line, format!("include {path}: {e}; ignored"));
                return Ok(());
            }
        };
        let text = match utf8(&bytes).and_then(|t| check_lines(t).map(|()| t)) {
            Ok(t) => t,
            Err(e) => {
                self.note(line, format!("include {path}: {e}; ignored"));
                return Ok(());
            }
        };
        let outer = self.file.replace(path.clone());
        let got = self.text(text, &path, chain, read);
        self.file = outer;
        got
    }

    /// One trimmed line; returns the file an `include` names.
    fn line(&mut self, line: usize, text: &str) -> Result<Option<String>, Error> {
        if text.is_empty() || text.starts_with('#') {
            return Ok(None);
        }
        let (word, value) = split_word(text);
        let key = word.to_ascii_lowercase();
        if self.in_text {
            self.in_text = key != "endtext";
            return Ok(None);
        }
        match key.as_str() {
            "label" => self.label(line, value)?,
            // U-Boot's `fit FILE[#conf]` is a kernel line naming a FIT image.
            "kernel" | "linux" | "fit" => self.entry_key(line, word, EntryKey::Kernel, value),
            "initrd" => self.entry_key(line, word, EntryKey::Initrd, value),
            "append" => self.entry_key(line, word, EntryKey::Append, value),
            "fdt" | "devicetree" => self.entry_key(line, word, EntryKey::Fdt, value),
            "fdtdir" | "devicetreedir" => self.entry_key(line, word, EntryKey::FdtDir, value),
            "fdtoverlays" => self.entry_key(line, word, EntryKey::FdtOverlays, value),
            "localboot" => self.entry_key(line, word, EntryKey::LocalBoot, value),
            "menu" => return Ok(self.menu(line, value)),
            "include" => return Ok(self.include_name(line, "include", value)),
            "default" => {
                if value.is_empty() {
                    self.note(line, String::from("'default' without a label name ignored"));
                } else {
                    self.cfg.default = Some(String::from(value));
                    self.default_at = (self.file.clone(), line);
                }
            }
            "ontimeout" => {
                if value.is_empty() {
                    self.note(
                        line,
                        String::from("'ontimeout' without a label name ignored"),
                    );
                } else {
                    self.cfg.ontimeout = Some(String::from(value));
                    self.ontimeout_at = (self.file.clone(), line);
                }
            }
            "timeout" => match value.parse::<u32>() {
                Ok(ds) => self.cfg.timeout_ds = Some(ds),
                Err(_) => self.note(
                    line,
                    format!("'timeout {value}': not a number of tenths of a second, ignored"),
                ),
            },
            "totaltimeout" => match value.parse::<u32>() {
                Ok(ds) => self.cfg.total_timeout_ds = Some(ds),
                Err(_) => self.note(
                    line,
                    format!("'totaltimeout {value}': not a number of tenths of a second, ignored"),
                ),
            },
            "prompt" => match value.parse::<u32>() {
                Ok(n) => self.cfg.prompt = n != 0,
                Err(_) => self.note(line, format!("'prompt {value}': expected 0 or 1, ignored")),
            },
            "kaslrseed" | "ipappend" => {
                self.note(line, format!("'{text}' not supported yet, ignored"));
            }
            "text" if value.eq_ignore_ascii_case("help") => {
                self.in_text = true;
                self.note(line, String::from("'text help' block ignored"));
            }
            _ => self.note(line, format!("unknown key '{word}' ignored")),
        }
        Ok(None)
    }

    /// The file an `include` (or `menu include`) names, or a note when it names none.
    fn include_name(&mut self, line: usize, key: &str, value: &str) -> Option<String> {
        if value.is_empty() {
            self.note(line, format!("'{key}' without a file name ignored"));
            return None;
        }
        Some(String::from(value))
    }

    fn label(&mut self, line: usize, name: &str) -> Result<(), Error> {
        if name.is_empty() {
            self.cur = None;
            self.note(
                line,
                String::from("'label' without a name: this entry is ignored"),
            );
            return Ok(());
        }
        if self.cfg.entries.len() >= MAX_ENTRIES {
            // In an included file: the top-level line whose include brought in one too many.
            let line = if self.file.is_some() {
                self.top_line
            } else {
                line
            };
            return Err(Error::TooManyEntries {
                line,
                max: MAX_ENTRIES,
            });
        }
        if let Some(prev) = self.cfg.entries.iter().find(|e| e.label == name) {
            let text = format!(
                "label '{name}' also on line {}; 'default' picks the last",
                prev.line
            );
            self.note(line, text);
        }
        self.cur = Some(self.cfg.entries.len());
        self.cfg.entries.push(Entry {
            label: String::from(name),
            line,
            ..Entry::default()
        });
        self.initrd_seen.push(false);
        Ok(())
    }

    /// A `menu` line; returns the file a `menu include` names.
    fn menu(&mut self, line: usize, rest: &str) -> Option<String> {
        let (word, value) = split_word(rest);
        match word.to_ascii_lowercase().as_str() {
            "label" => self.entry_key(line, "menu label", EntryKey::MenuLabel, value),
            "default" => self.entry_key(line, "menu default", EntryKey::MenuDefault, value),
            "title" => self.cfg.menu_title = Some(String::from(value)),
            "hidden" => self.cfg.menu_hidden = true,
            "hide" => {}
            "include" => return self.include_name(line, "menu include", value),
            "background" => self.note(line, format!("'menu {rest}' not supported yet, ignored")),
            "" => self.note(line, String::from("'menu' without a command ignored")),
            _ => self.note(line, format!("unknown menu command 'menu {word}' ignored")),
        }
        None
    }

    fn entry_key(&mut self, line: usize, key: &str, which: EntryKey, value: &str) {
        let Some(i) = self.cur else {
            self.note(line, format!("'{key}' outside any label ignored"));
            return;
        };
        let needs_value = !matches!(
            which,
            EntryKey::MenuDefault | EntryKey::LocalBoot | EntryKey::Append
        );
        if needs_value && value.is_empty() {
            self.note(line, format!("'{key}' without a value ignored"));
            return;
        }
        // `initrd ,` names no file: ignored like a bare `initrd`, so the append's `initrd=` (or a
        // later `initrd` line) still counts.
        if matches!(which, EntryKey::Initrd) && split_list(value).is_empty() {
            self.note(line, format!("'{key}' without a file ignored"));
            return;
        }
        let seen = self.initrd_seen.get(i).copied().unwrap_or(false);
        let Some(e) = self.cfg.entries.get_mut(i) else {
            return;
        };
        let owned = String::from(value);
        let repeated = match which {
            EntryKey::Kernel => {
                e.kernel = Some(owned);
                false
            }
            EntryKey::Append => {
                e.append = Some(owned);
                false
            }
            EntryKey::MenuLabel => {
                e.menu_label = Some(owned);
                false
            }
            EntryKey::MenuDefault => {
                e.menu_default = true;
                false
            }
            EntryKey::LocalBoot => {
                e.localboot = true;
                false
            }
            EntryKey::Initrd if !seen => {
                e.initrds = split_list(value);
                if let Some(s) = self.initrd_seen.get_mut(i) {
                    *s = true;
                }
                false
            }
            EntryKey::Fdt if e.fdt.is_none() => {
                e.fdt = Some(owned);
                false
            }
            EntryKey::FdtDir if e.fdtdir.is_none() => {
                e.fdtdir = Some(owned);
                false
            }
            EntryKey::FdtOverlays if e.fdtoverlays.is_empty() => {
                // U-Boot splits the list at single spaces; runs of blanks name nothing.
                e.fdtoverlays = value.split_whitespace().map(String::from).collect();
                false
            }
            EntryKey::Initrd | EntryKey::Fdt | EntryKey::FdtDir | EntryKey::FdtOverlays => true,
        };
        if repeated {
            self.note(
                line,
                format!("repeated '{key}' ignored (the first one wins, as in U-Boot)"),
            );
        }
    }

    fn finish(mut self) -> Config {
        if self.dropped_notes > 0 {
            let text = format!("{} further notes not shown", self.dropped_notes);
            self.cfg.notes.push(Note::new(0, text));
        }
        for (e, &seen) in self.cfg.entries.iter_mut().zip(&self.initrd_seen) {
            if !seen {
                if let Some(list) = e.append.as_deref().and_then(initrd_from_append) {
                    e.initrds = split_list(list);
                }
            }
        }
        if let Some(name) = &self.cfg.default {
            if !self.cfg.entries.iter().any(|e| &e.label == name) {
                let text = match self.cfg.entries.first() {
                    Some(first) => {
                        format!("default '{name}' names no label; using '{}'", first.label)
                    }
                    None => format!("default '{name}' names no label"),
                };
                let (file, line) = self.default_at.clone();
                self.cfg.notes.push(Note { file, line, text });
            }
        }
        if let Some(name) = &self.cfg.ontimeout {
            if !self.cfg.entries.iter().any(|e| &e.label == name) {
                let text = format!("ontimeout '{name}' names no label; the default boots instead");
                let (file, line) = self.ontimeout_at.clone();
                self.cfg.notes.push(Note { file, line, text });
            }
        }
        self.cfg
    }
}

/// `a,b , c` -> [a, b, c]; empty pieces dropped.
fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// The value of the first `initrd=` word of a command line.
fn initrd_from_append(append: &str) -> Option<&str> {
    append
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("initrd="))
}
