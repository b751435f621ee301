//! The command line of `kexboot-reboot` and the `/chosen/bootargs` it gives kexboot.
//!
//! kexboot reads two things from its bootargs (warm re-entry contract): `kexboot.entry=<label>`
//! picks the extlinux.conf entry, and everything after a ` -- ` word is appended to that entry's
//! `append` line for this one boot.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Where kexboot.bin is looked for when `--image` is not given.
pub const DEFAULT_IMAGE: &str = "/boot/kexboot.bin";
/// arm64 `COMMAND_LINE_SIZE`: bootargs longer than this (with its NUL) are refused.
pub const MAX_BOOTARGS: usize = 2048;

/// `--help` text.
pub const USAGE: &str = "\
usage: kexboot-reboot [--image PATH] [--entry LABEL] [--append \"ARGS\"] [--load-only] [--dry-run]

Loads kexboot with kexec_load and reboots into it (run as root, in a Linux kexboot booted).

  --image PATH     kexboot image to load (default: /boot/kexboot.bin)
  --entry LABEL    boot this extlinux.conf label instead of the default entry
  --append \"ARGS\"  add ARGS to that entry's kernel command line, for this one boot
  --load-only      load, but do not reboot (reboot later with `systemctl kexec` or `kexec -e`)
  --dry-run        print the plan (addresses, sizes, bootargs) and load nothing
  -h, --help       this text

Reboots at once after sync(), without stopping services (as `kexec -e` does).
Exit status: 0 ok, 1 usage, 2 refused input, 3 system call failure.
";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The kexboot image file.
    pub image: PathBuf,
    /// `--entry`: the label kexboot should boot.
    pub entry: Option<String>,
    /// `--append`: extra kernel arguments.
    pub append: Option<String>,
    /// `--load-only`: stop after `kexec_load`.
    pub load_only: bool,
    /// `--dry-run`: print the plan, load nothing.
    pub dry_run: bool,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `--help`.
    Help,
    /// Do the work.
    Run(Options),
}

/// A command line that cannot be understood (exit status 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see --help)", self.0)
    }
}

/// Parses the arguments after the program name. Accepts `--opt VALUE` and `--opt=VALUE`.
pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, UsageError> {
    let mut o = Options {
        image: PathBuf::from(DEFAULT_IMAGE),
        entry: None,
        append: None,
        load_only: false,
        dry_run: false,
    };
    let mut seen_image = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str() else {
            return Err(UsageError(format!("unexpected argument {arg:?}")));
        };
        let (name, inline) = match s.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(OsString::from(v))),
            _ => (s, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| UsageError(format!("{name} needs a value")))
        };
        let text = |name: &str, v: OsString| {
            v.into_string()
                .map_err(|v| UsageError(format!("{name} value {v:?} is not UTF-8")))
        };
        let once = |name: &str, seen: bool| {
            if seen {
                Err(UsageError(format!("{name} given twice")))
            } else {
                Ok(())
            }
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "--image" => {
                once(name, seen_image)?;
                o.image = PathBuf::from(value(name)?);
                seen_image = true;
            }
            "--entry" => {
                once(name, o.entry.is_some())?;
                o.entry = Some(text(name, value(name)?)?);
            }
            "--append" => {
                once(name, o.append.is_some())?;
                o.append = Some(text(name, value(name)?)?);
            }
            "--load-only" | "--dry-run" if inline.is_some() => {
                return Err(UsageError(format!("{name} takes no value")));
            }
            "--load-only" => o.load_only = true,
            "--dry-run" => o.dry_run = true,
            _ => return Err(UsageError(format!("unknown argument {s:?}"))),
        }
    }
    Ok(Command::Run(o))
}

/// `--entry`/`--append` values kexboot could not read back as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// The label is empty or holds whitespace or control characters (it must be one word).
    BadLabel { label: String },
    /// The extra arguments hold control characters (newline, NUL, ...).
    BadAppend { append: String },
    /// The bootargs are `len` bytes, beyond [`MAX_BOOTARGS`] - 1.
    TooLong { len: usize },
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::BadLabel { label } => write!(
                f,
                "--entry {label:?}: a label must be one word, without spaces or control characters"
            ),
            ArgError::BadAppend { append } => {
                write!(f, "--append {append:?}: control characters are not allowed")
            }
            ArgError::TooLong { len } => write!(
                f,
                "bootargs would be {len} bytes, more than the {} the kernel allows",
                MAX_BOOTARGS - 1
            ),
        }
    }
}

/// The `/chosen/bootargs` for kexboot: `kexboot.entry=<label>` if a label is given, then
/// ` -- <append>` if non-blank extra arguments are given; empty when neither is (so nothing of
/// the running kernel's command line reaches kexboot).
pub fn bootargs(entry: Option<&str>, append: Option<&str>) -> Result<String, ArgError> {
    let mut out = String::new();
    if let Some(label) = entry {
        if label.is_empty() || label.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ArgError::BadLabel {
                label: label.into(),
            });
        }
        out.push_str("kexboot.entry=");
        out.push_str(label);
    }
    if let Some(append) = append {
        if append.chars().any(char::is_control) {
            return Err(ArgError::BadAppend {
                append: append.into(),
            });
        }
        let append = append.trim();
        if !append.is_empty() {
            out.push_str(" -- ");
            out.push_str(append);
        }
    }
    if out.len() >= MAX_BOOTARGS {
        return Err(ArgError::TooLong { len: out.len() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        parse_args(args.iter().map(OsString::from))
    }

    fn run(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Command::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let o = run(&[]);
        assert_eq!(o.image, PathBuf::from("/boot/kexboot.bin"));
        assert_eq!(
            (o.entry, o.append, o.load_only, o.dry_run),
            (None, None, false, false)
        );

        let o = run(&[
            "--image",
            "/tmp/k.bin",
            "--entry",
            "rescue",
            "--append",
            "quiet loglevel=3",
            "--load-only",
            "--dry-run",
        ]);
        assert_eq!(o.image, PathBuf::from("/tmp/k.bin"));
        assert_eq!(o.entry.as_deref(), Some("rescue"));
        assert_eq!(o.append.as_deref(), Some("quiet loglevel=3"));
        assert!(o.load_only && o.dry_run);

        let o = run(&["--entry=a", "--append=x=1 y", "--image=/k"]);
        assert_eq!(o.entry.as_deref(), Some("a"));
        assert_eq!(o.append.as_deref(), Some("x=1 y"));
        assert_eq!(o.image, PathBuf::from("/k"));

        assert_eq!(parse(&["--dry-run", "--help"]), Ok(Command::Help));
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn usage_errors() {
        for (args, want) in [
            (&["--entry"][..], "needs a value"),
            (&["--frobnicate"], "unknown argument"),
            (&["extra"], "unknown argument"),
            (&["--entry", "a", "--entry", "b"], "given twice"),
            (&["--image", "a", "--image=b"], "given twice"),
            (&["--dry-run=yes"], "takes no value"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.to_string().contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn bootargs_building() {
        assert_eq!(bootargs(None, None).unwrap(), "");
        assert_eq!(
            bootargs(Some("rescue"), None).unwrap(),
            "kexboot.entry=rescue"
        );
        assert_eq!(
            bootargs(
                Some("debian-6.1"),
                Some("quiet  systemd.unit=rescue.target")
            )
            .unwrap(),
            "kexboot.entry=debian-6.1 -- quiet  systemd.unit=rescue.target"
        );
        assert_eq!(bootargs(None, Some(" quiet ")).unwrap(), " -- quiet");
        assert_eq!(bootargs(None, Some("   ")).unwrap(), "");
        // A ` -- ` inside the extra arguments stays theirs.
        assert_eq!(
            bootargs(Some("x"), Some("a -- b")).unwrap(),
            "kexboot.entry=x -- a -- b"
        );
    }

    #[test]
    fn bootargs_refused() {
        for label in ["", "two words", "tab\there", "nl\n", "nul\0"] {
            assert_eq!(
                bootargs(Some(label), None),
                Err(ArgError::BadLabel {
                    label: label.into()
                })
            );
        }
        for append in ["a\nb", "a\0b", "\x1b[2J"] {
            assert!(matches!(
                bootargs(None, Some(append)),
                Err(ArgError::BadAppend { .. })
            ));
        }
        let long = "x".repeat(MAX_BOOTARGS);
        assert_eq!(
            bootargs(Some("e"), Some(&long)),
            Err(ArgError::TooLong {
                len: MAX_BOOTARGS + 19
            })
        );
        assert!(bootargs(None, Some(&long[..MAX_BOOTARGS - 5])).is_ok());
        assert!(bootargs(None, Some(&long[..MAX_BOOTARGS - 4])).is_err());
    }

    proptest! {
        #[test]
        fn bootargs_round_trip(label in "[a-zA-Z0-9._-]{1,20}", append in "[ -~]{0,80}") {
            let b = bootargs(Some(&label), Some(&append)).unwrap();
            // What kexboot does: the entry word, and what follows the first ` -- `.
            let (head, tail) = match b.split_once(" -- ") {
                Some((h, t)) => (h, Some(t)),
                None => (b.as_str(), None),
            };
            prop_assert_eq!(head.strip_prefix("kexboot.entry="), Some(label.as_str()));
            let want = append.trim();
            prop_assert_eq!(tail.unwrap_or(""), want);
        }

        #[test]
        fn args_never_panic(args in proptest::collection::vec("(--?[a-z=-]{0,10}|[ -~]{0,8})", 0..6)) {
            let _ = parse_args(args.into_iter().map(OsString::from));
        }
    }
}
