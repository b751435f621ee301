//! kexboot's settings file, `/kexboot/env.txt` on the boot partition: `name=value` lines in the
//! text form of U-Boot's `env import -t` (comments with `#`, blank lines ignored). The full
//! environment with `saveenv` comes with the shell; today it carries the few settings the
//! firmware reads at boot, such as `ramoops_size`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Where kexboot looks for its settings.
pub const ENV_PATH: &str = "/kexboot/env.txt";
/// Largest settings file read.
pub const MAX_ENV: u64 = 64 << 10;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    /// Sorted by name, without duplicates: lookups are binary searches however many variables
    /// a file or script makes (scripts look variables up for every expansion and `run`).
    vars: Vec<(String, String)>,
    /// [`Env::bytes`], kept as variables change.
    bytes: usize,
}

impl Env {
    /// Parses the text; a line that is not `name=value` with a sane name becomes a note.
    pub fn parse(text: &str) -> (Env, Vec<String>) {
        let mut env = Env::default();
        let mut notes = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some((name, value)) if valid_name(name.trim()) => {
                    env.set(name.trim(), value.trim());
                }
                _ => notes.push(alloc::format!("line {}: not name=value, ignored", i + 1)),
            }
        }
        (env, notes)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.find(name).ok()?;
        Some(self.vars[i].1.as_str())
    }

    /// Where `name` is, or where it would go.
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.vars.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// Sets (or replaces) a variable.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.find(name) {
            Ok(i) => {
                let v = &mut self.vars[i].1;
                self.bytes = self.bytes - v.len() + value.len();
                *v = value.to_string();
            }
            Err(i) => {
                self.bytes += entry_bytes(name, value);
                self.vars.insert(i, (name.to_string(), value.to_string()));
            }
        }
    }

    /// Deletes a variable; `true` if it existed.
    pub fn unset(&mut self, name: &str) -> bool {
        let Ok(i) = self.find(name) else {
            return false;
        };
        let (n, v) = self.vars.remove(i);
        self.bytes -= entry_bytes(&n, &v);
        true
    }

    /// Size of the environment as `name=value\0` entries (U-Boot's exported form), in O(1).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// All variables as `(name, value)`, sorted by name (how `printenv` and `saveenv` list them).
    pub fn iter_sorted(&self) -> Vec<(&str, &str)> {
        self.vars
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// A size variable (`0x100000`, `1048576`, `1M`, `64K`); `Err` names the bad value.
    pub fn size(&self, name: &str) -> Result<Option<u64>, String> {
        self.get(name)
            .map(|v| parse_size(v).ok_or_else(|| alloc::format!("{name}={v}: not a size")))
            .transpose()
    }
}

/// Bytes of one variable as `name=value\0`.
fn entry_bytes(name: &str, value: &str) -> usize {
    name.len() + value.len() + 2
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// `0x...` hex, decimal, with an optional `K`/`M`/`G` (binary) suffix.
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, shift) = match v.as_bytes().last()? {
        b'K' | b'k' => (&v[..v.len() - 1], 10),
        b'M' | b'm' => (&v[..v.len() - 1], 20),
        b'G' | b'g' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n = match num.strip_prefix("0x").or_else(|| num.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => num.parse::<u64>().ok()?,
    };
    n.checked_mul(1u64 << shift)
}

/// What the incoming `/chosen/bootargs` asks of kexboot: `kexboot.entry=<label>` and, after a
/// ` -- ` word, extra arguments for the kernel it boots. Every other word is ignored, so the
/// command line of the kernel that kexec'ed into kexboot changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootRequest {
    pub entry: Option<String>,
    pub extra: Option<String>,
}

impl BootRequest {
    pub fn from_bootargs(bootargs: &str) -> BootRequest {
        let mut req = BootRequest::default();
        let mut words = bootargs.split_ascii_whitespace();
        for w in words.by_ref() {
            if w == "--" {
                break;
            }
            if let Some(label) = w.strip_prefix("kexboot.entry=") {
                req.entry = (!label.is_empty()).then(|| label.to_string());
            }
        }
        let extra: Vec<&str> = words.collect();
        if !extra.is_empty() {
            req.extra = Some(extra.join(" "));
        }
        req
    }

    /// Makes the requested entry the default for this boot and appends the extra arguments to
    /// the entry that will be tried first. Returns what the console should say.
    pub fn apply(&self, config: &mut crate::extlinux::Config) -> Vec<String> {
        let mut said = Vec::new();
        if let Some(label) = &self.entry {
            if config.entries.iter().any(|e| &e.label == label) {
                config.default = Some(label.clone());
                said.push(alloc::format!("entry '{label}' requested"));
            } else {
                said.push(alloc::format!(
                    "requested entry '{label}' does not exist; booting the default"
                ));
            }
        }
        if let (Some(extra), Some(&first)) = (&self.extra, config.boot_order().first()) {
            let e = &mut config.entries[first];
            e.append = Some(match e.append.take() {
                Some(a) if !a.is_empty() => alloc::format!("{a} {extra}"),
                _ => extra.clone(),
            });
            said.push(alloc::format!("extra arguments for '{}': {extra}", e.label));
        }
        said
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extlinux;

    #[test]
    fn env_lines_sizes_and_notes() {
        let (env, notes) = Env::parse(
            "# kexboot\nramoops_size=0x100000\n\n ramoops_record_size = 64K \nbad line\n=x\nbig=2G\n",
        );
        assert_eq!(env.size("ramoops_size"), Ok(Some(0x10_0000)));
        assert_eq!(env.size("ramoops_record_size"), Ok(Some(64 << 10)));
        assert_eq!(env.size("big"), Ok(Some(2 << 30)));
        assert_eq!(env.size("missing"), Ok(None));
        assert_eq!(notes.len(), 2);
        let (env, _) = Env::parse("x=12Q\ny=0xZZ\nz=99999999999999999999G");
        for n in ["x", "y", "z"] {
            assert!(env.size(n).unwrap_err().contains(n));
        }
    }

    /// `bytes()` is kept up to date through set, replace and unset, and matches the listing.
    #[test]
    fn bytes_follow_every_change() {
        let listed = |e: &Env| -> usize {
            e.iter_sorted()
                .iter()
                .map(|(n, v)| n.len() + v.len() + 2)
                .sum()
        };
        let (mut env, _) = Env::parse("b=22\na=1\n");
        assert_eq!(env.bytes(), 4 + 5);
        env.set("c", "");
        env.set("a", "longer");
        env.set("b", "");
        assert_eq!(env.bytes(), listed(&env));
        assert_eq!(env.iter_sorted(), [("a", "longer"), ("b", ""), ("c", "")]);
        assert!(env.unset("a"));
        assert!(!env.unset("a"));
        assert_eq!(env.bytes(), 2 * 3);
        assert!(env.unset("b") && env.unset("c"));
        assert_eq!((env.bytes(), env.len()), (0, 0));
    }

    #[test]
    fn bootargs_request() {
        let r = BootRequest::from_bootargs("console=ttyAMA0 kexboot.entry=warm-b quiet -- a=1 b");
        assert_eq!(r.entry.as_deref(), Some("warm-b"));
        assert_eq!(r.extra.as_deref(), Some("a=1 b"));
        // Only words before `--` are kexboot's; after it everything is the kernel's.
        let r = BootRequest::from_bootargs("x -- kexboot.entry=nope");
        assert_eq!(
            r,
            BootRequest {
                entry: None,
                extra: Some("kexboot.entry=nope".into())
            }
        );
        assert_eq!(
            BootRequest::from_bootargs("console=ttyAMA0 quiet"),
            BootRequest::default()
        );
    }

    #[test]
    fn request_applies_to_the_config() {
        let text = "default a\nlabel a\n linux /a\n append one\nlabel b\n linux /b\n append two\n";
        let mut c = extlinux::parse(text).unwrap();
        let req = BootRequest::from_bootargs("kexboot.entry=b -- x=1");
        req.apply(&mut c);
        assert_eq!(c.boot_order(), [1, 0]);
        assert_eq!(c.entries[1].append.as_deref(), Some("two x=1"));
        assert_eq!(c.entries[0].append.as_deref(), Some("one"));
        // A label that does not exist: the default boots, with the extra arguments.
        let mut c = extlinux::parse(text).unwrap();
        let said = BootRequest::from_bootargs("kexboot.entry=zz -- y").apply(&mut c);
        assert!(said[0].contains("'zz' does not exist"));
        assert_eq!(c.boot_order(), [0, 1]);
        assert_eq!(c.entries[0].append.as_deref(), Some("one y"));
    }
}
