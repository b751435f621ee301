//! Boot Loader Specification type #1 entries (`/loader/entries/*.conf`, UAPI.1), as Fedora's
//! kernel-install and systemd write them, turned into the same [`Config`] the extlinux flow boots
//! (one boot flow: menu, boot order, loading).
//!
//! An entry file is UTF-8 text, one `key value` per line (`#` starts a comment line). Keys read:
//! `title`, `version`, `machine-id`, `sort-key`, `linux`, `initrd` (repeatable: each adds one,
//! in order), `options` (repeatable: joined by a space), `devicetree`, `devicetree-overlay`
//! (space-separated list; repeats add to it), `architecture`. A repeated single-value key: the
//! last wins (as systemd). Unknown keys (`efi`, `grub_users`, ...) become notes.
//!
//! Skipped with a note: entries without `linux`, entries for another `architecture` than
//! `aa64`/`arm64` (compared case-insensitively), files that are not valid (bad UTF-8, overlong
//! line). Paths are relative to the root of the partition holding the entries; a missing leading
//! `/` is added (the spec says both mean the same). Fedora's grub variables in `options`
//! (`$kernelopts`, `$tuned_params`) are not expanded; options made of variables only get a note.
//!
//! Order ([`compare`]), as the specification's "Sorting" section says: entries marked bad by boot
//! counting (`+0[-N]` before `.conf`) last; entries with `sort-key` before those without; between
//! two with `sort-key`: `sort-key` ascending, `machine-id` ascending, `version` descending
//! ([`vercmp`]); then the file name without `.conf`, descending by [`vercmp`]. The first entry
//! in that order is the default.

use alloc::{format, string::String, vec::Vec};
use core::cmp::Ordering;

use crate::extlinux::{Config, Entry, Note, MAX_ENTRIES, MAX_LINE_LEN, MAX_NOTES};
use crate::Error;

/// Where the entries are, from the root of the partition.
pub const ENTRIES_DIR: &str = "/loader/entries";
/// Largest entry file read (they are a few hundred bytes).
pub const MAX_ENTRY_FILE: u64 = 64 << 10;
/// Architectures (the EFI names) this firmware boots; `architecture` is compared to these
/// case-insensitively.
pub const ARCHITECTURES: [&str; 2] = ["aa64", "arm64"];

/// One parsed entry file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlsEntry {
    /// The file name, without the directory (`<machine-id>-<version>.conf`).
    pub file: String,
    pub title: Option<String>,
    pub version: Option<String>,
    pub machine_id: Option<String>,
    pub sort_key: Option<String>,
    /// `linux`, with a leading `/`.
    pub linux: Option<String>,
    /// Every `initrd` line, in order, each with a leading `/`.
    pub initrds: Vec<String>,
    /// Every `options` line joined by a space (`None` when there was none).
    pub options: Option<String>,
    pub devicetree: Option<String>,
    pub devicetree_overlays: Vec<String>,
    pub architecture: Option<String>,
    /// What was ignored, with the file named.
    pub notes: Vec<Note>,
}

impl BlsEntry {
    /// The file name without `.conf`: what the spec's last sort rule compares, and the label.
    pub fn id(&self) -> &str {
        self.file.strip_suffix(".conf").unwrap_or(&self.file)
    }

    /// Boot counting marked the entry bad: its name ends in `+0` or `+0-N` (tries left: none).
    pub fn is_bad(&self) -> bool {
        let id = self.id();
        let Some((_, counter)) = id.rsplit_once('+') else {
            return false;
        };
        let left = counter.split_once('-').map_or(counter, |(l, _)| l);
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let done_ok = counter.split_once('-').is_none_or(|(_, d)| digits(d));
        digits(left) && done_ok && left.bytes().all(|b| b == b'0')
    }
}

/// The path as a file-system path: BLS paths are from the partition root, `/` optional.
fn rooted(path: &str) -> String {
    if path.starts_with('/') {
        String::from(path)
    } else {
        format!("/{path}")
    }
}

/// Parses one entry file's bytes; `file` is its name (for notes and sorting). Errors are
/// what no entry could mean: bad UTF-8, an overlong line.
pub fn parse_entry(file: &str, bytes: &[u8]) -> Result<BlsEntry, Error> {
    let text = core::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = 1 + bytes
            .get(..offset)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
        Error::InvalidUtf8 { offset, line }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut e = BlsEntry {
        file: String::from(file),
        ..BlsEntry::default()
    };
    // One iteration per '\n': bounded by the input's length.
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
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let (key, value) = match text.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((k, v)) => (k, v.trim()),
            None => (text, ""),
        };
        e.key(line, key, value);
    }
    Ok(e)
}

impl BlsEntry {
    fn note(&mut self, line: usize, text: String) {
        if self.notes.len() < MAX_NOTES {
            let file = Some(format!("{ENTRIES_DIR}/{}", self.file));
            self.notes.push(Note { file, line, text });
        }
    }

    fn key(&mut self, line: usize, key: &str, value: &str) {
        if value.is_empty() {
            self.note(line, format!("'{key}' without a value ignored"));
            return;
        }
        let owned = String::from(value);
        match key {
            "title" => self.title = Some(owned),
            "version" => self.version = Some(owned),
            "machine-id" => self.machine_id = Some(owned),
            "sort-key" => self.sort_key = Some(owned),
            "linux" => self.linux = Some(rooted(value)),
            "initrd" => self.initrds.push(rooted(value)),
            "options" => {
                self.options = Some(match self.options.take() {
                    Some(o) => format!("{o} {value}"),
                    None => owned,
                })
            }
            "devicetree" => self.devicetree = Some(rooted(value)),
            "devicetree-overlay" => self
                .devicetree_overlays
                .extend(value.split_ascii_whitespace().map(rooted)),
            "architecture" => self.architecture = Some(owned),
            _ => self.note(line, format!("unknown key '{key}' ignored")),
        }
    }
}

/// The Boot Loader Specification's entry order (see the module documentation): `Less` means
/// `a` is shown (and tried) first.
pub fn compare(a: &BlsEntry, b: &BlsEntry) -> Ordering {
    let bad = a.is_bad().cmp(&b.is_bad());
    if bad != Ordering::Equal {
        return bad;
    }
    let keyed = match (&a.sort_key, &b.sort_key) {
        (Some(x), Some(y)) => x
            .as_bytes()
            .cmp(y.as_bytes())
            .then_with(|| opt_str(&a.machine_id).cmp(opt_str(&b.machine_id)))
            .then_with(|| vercmp(opt_str(&b.version), opt_str(&a.version))),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    keyed.then_with(|| vercmp(b.id(), a.id()))
}

fn opt_str(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// The characters the Version Format Specification gives a meaning; others separate.
fn is_version_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'~' | b'-' | b'^' | b'.')
}

/// Compares two version strings as the UAPI Version Format Specification (uapi-group.org) and
/// systemd's `strverscmp_improved` do: `Greater` means `a` is newer. Where the specification's
/// prose and systemd's test suite disagree (`~` is checked before the end of a string, so
/// `"~" < ""`; `^` sorts above `-` and the end of the string but below `.` and letters; a
/// numeric component is newer than an alphabetic one), this follows systemd, which is what the
/// boot loaders reading these entries implement. Runs in time linear in the input.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    // Every iteration consumes at least one byte of each string or returns.
    loop {
        a = skip_separators(a);
        b = skip_separators(b);
        // '~': a pre-release, older than anything (even the end of the other string).
        match (a.first() == Some(&b'~'), b.first() == Some(&b'~')) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (true, true) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (false, false) => {}
        }
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        // '-', '^' and '.' in that order: a string with the separator where the other has
        // something else is older.
        for sep in [b'-', b'^', b'.'] {
            match (a.first() == Some(&sep), b.first() == Some(&sep)) {
                (true, false) => return Ordering::Less,
                (false, true) => return Ordering::Greater,
                (true, true) => {
                    a = &a[1..];
                    b = &b[1..];
                }
                (false, false) => {}
            }
        }
        let digit = |s: &[u8]| s.first().is_some_and(u8::is_ascii_digit);
        let (ra, rb, ord) = if digit(a) || digit(b) {
            let (na, ra) = split_while(a, u8::is_ascii_digit);
            let (nb, rb) = split_while(b, u8::is_ascii_digit);
            (ra, rb, cmp_numbers(na, nb))
        } else {
            let (wa, ra) = split_while(a, u8::is_ascii_alphabetic);
            let (wb, rb) = split_while(b, u8::is_ascii_alphabetic);
            (ra, rb, wa.cmp(wb))
        };
        if ord != Ordering::Equal {
            return ord;
        }
        // Both segments empty (the other string held a separator or ended): nothing consumed
        // above only when both start with something already handled, which returned.
        if ra.len() == a.len() && rb.len() == b.len() {
            // Unreachable for valid input (a starts with a letter or digit here); consume one
            // byte each so the loop always ends.
            a = a.get(1..).unwrap_or(&[]);
            b = b.get(1..).unwrap_or(&[]);
            continue;
        }
        a = ra;
        b = rb;
    }
}

fn skip_separators(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| !is_version_char(c)).count();
    &s[n..]
}

fn split_while(s: &[u8], f: impl Fn(&u8) -> bool) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| f(c)).count();
    s.split_at(n)
}

/// Decimal digit strings compared as numbers of any length: a missing number is older than any
/// number (even 0), leading zeros do not count, then the longer is larger, then digit by digit.
fn cmp_numbers(a: &[u8], b: &[u8]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether `arch` (an `architecture` value) is one this firmware boots.
fn arch_ok(arch: &str) -> bool {
    ARCHITECTURES.iter().any(|a| a.eq_ignore_ascii_case(arch))
}

/// Whether the options are only grub variables (`$kernelopts`): grub expands them from its
/// environment block; nothing here does.
fn only_variables(options: &str) -> bool {
    let mut words = options.split_ascii_whitespace().peekable();
    words.peek().is_some() && words.all(|w| w.starts_with('$'))
}

/// Sorts the entries (see [`compare`]) and turns them into one [`Config`]: the file name
/// without `.conf` as the label, the title as the menu label (with the version added when two
/// entries share a title, as the specification suggests), `options` as `append`. Entries that
/// cannot boot here are dropped with a note; their notes and the dropped ones' come first.
pub fn to_config(mut entries: Vec<BlsEntry>) -> Config {
    entries.sort_by(compare);
    let mut cfg = Config::default();
    let mut notes = Vec::new();
    let mut kept = Vec::with_capacity(entries.len());
    for mut e in entries {
        let path = format!("{ENTRIES_DIR}/{}", e.file);
        let file_note = |text: String| Note {
            file: Some(path.clone()),
            line: 0,
            text,
        };
        notes.append(&mut e.notes);
        if let Some(arch) = e.architecture.as_deref().filter(|a| !arch_ok(a)) {
            notes.push(file_note(format!(
                "entry for architecture '{arch}', not aa64: skipped"
            )));
            continue;
        }
        if e.linux.is_none() {
            notes.push(file_note(String::from("no 'linux' line: entry skipped")));
            continue;
        }
        if let Some(o) = e.options.as_deref().filter(|o| only_variables(o)) {
            notes.push(file_note(format!(
                "options '{o}' are only grub variables, which kexboot does not expand: \
                 the kernel gets them as written"
            )));
        }
        kept.push(e);
    }
    for (i, e) in kept.iter().enumerate() {
        let title = e.title.clone().unwrap_or_else(|| String::from(e.id()));
        let shared = kept
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && o.title.is_some() && o.title == e.title);
        let menu_label = match (&e.version, shared) {
            (Some(v), true) => format!("{title} ({v})"),
            _ => title,
        };
        cfg.entries.push(Entry {
            label: String::from(e.id()),
            menu_label: Some(menu_label),
            kernel: e.linux.clone(),
            initrds: e.initrds.clone(),
            append: e.options.clone(),
            fdt: e.devicetree.clone(),
            fdtoverlays: e.devicetree_overlays.clone(),
            ..Entry::default()
        });
    }
    notes.truncate(MAX_NOTES);
    cfg.notes = notes;
    cfg
}

/// Reads the entries of one `$BOOT`: `names` is the listing of [`ENTRIES_DIR`] (file names;
/// those not ending in `.conf`, case-insensitively, are ignored), `read` reads one file given
/// its full path (bounded by [`MAX_ENTRY_FILE`] on the caller's side). A file that cannot be
/// read or parsed is skipped with a note. More than [`MAX_ENTRIES`] entry files is an error.
pub fn load<E: core::fmt::Display>(
    names: &[String],
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<Config, Error> {
    let confs: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.len() > 5
                && n.get(n.len() - 5..)
                    .is_some_and(|s| s.eq_ignore_ascii_case(".conf"))
        })
        .collect();
    if confs.len() > MAX_ENTRIES {
        return Err(Error::TooManyEntries {
            line: 0,
            max: MAX_ENTRIES,
        });
    }
    let mut entries = Vec::with_capacity(confs.len());
    let mut notes = Vec::new();
    for name in confs {
        let path = format!("{ENTRIES_DIR}/{name}");
        let parsed = match read(&path) {
            Ok(bytes) => parse_entry(name, &bytes).map_err(|e| format!("{e}")),
            Err(e) => Err(format!("{e}")),
        };
        match parsed {
            Ok(e) => entries.push(e),
            Err(why) => notes.push(Note {
                file: Some(path),
                line: 0,
                text: format!("{why}; entry skipped"),
            }),
        }
    }
    let mut cfg = to_config(entries);
    notes.append(&mut cfg.notes);
    notes.truncate(MAX_NOTES);
    cfg.notes = notes;
    Ok(cfg)
}
