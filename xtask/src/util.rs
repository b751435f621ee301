//! The bottom of xtask: its error type, paths, running commands, and writing files.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The one error type of xtask: a message that says what failed and why.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

/// Result alias used throughout xtask.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error`] from a format string.
macro_rules! err {
    ($($t:tt)*) => { $crate::util::Error(format!($($t)*)) };
}
pub(crate) use err;

/// Adds the path to an I/O error.
pub trait Context<T> {
    /// Prefixes the error with `what`.
    fn ctx(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error(format!("{what}: {e}")))
    }
}

/// Where things live: all under the workspace's `target/`.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Workspace root (parent of `xtask/`).
    pub root: PathBuf,
    /// `<root>/target`.
    pub target: PathBuf,
    /// `<root>/target/assets`: downloaded packages, kernel, initramfs, disk images.
    pub assets: PathBuf,
    /// `<root>/target/e2e`: serial logs of the QEMU cases.
    pub e2e: PathBuf,
}

impl Paths {
    pub(crate) fn new() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives inside the workspace")
            .to_path_buf();
        let target = root.join("target");
        Paths {
            assets: target.join("assets"),
            e2e: target.join("e2e"),
            root,
            target,
        }
    }

    /// The flat firmware image `build` produces.
    pub fn kexboot_bin(&self) -> PathBuf {
        self.target.join("kexboot.bin")
    }

    /// Cargo's build directory: `$CARGO_TARGET_DIR` when set (cargo honours it), else `target/`.
    pub fn cargo_target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(d) if !d.is_empty() => {
                let d = PathBuf::from(d);
                if d.is_absolute() {
                    d
                } else {
                    self.root.join(d)
                }
            }
            _ => self.target.clone(),
        }
    }
}

/// A `cargo` command run from the workspace root, with the same cargo that runs xtask.
pub fn cargo(paths: &Paths) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(&paths.root);
    c
}

/// Runs `cmd`, failing with its rendering when it does not exit 0.
pub fn run_status(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().ctx(format!("cannot run {cmd:?}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(err!("{cmd:?} failed ({st})"))
    }
}

/// Offset and value of the arm64 Image magic ("ARM\x64").
pub const IMAGE_MAGIC_OFFSET: usize = 0x38;
const IMAGE_MAGIC: &[u8; 4] = b"ARM\x64";

/// Writes through a temporary file and a rename, so an interrupted run leaves no half file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).ctx(tmp.display())?;
    fs::rename(&tmp, path).ctx(path.display())
}

/// Writes `path` from `make()` unless `<path>.stamp` says it was made from inputs hashing to
/// `key`. Returns whether it wrote.
pub fn write_unless_same(
    path: &Path,
    key: u64,
    make: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<bool> {
    let stamp = PathBuf::from(format!("{}.stamp", path.display()));
    let key = format!("{key:016x}\n");
    if path.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(&key) {
        return Ok(false);
    }
    let _ = fs::remove_file(&stamp);
    write_atomic(path, &make()?)?;
    fs::write(&stamp, key).ctx(stamp.display())?;
    Ok(true)
}

/// True when `data` carries the arm64 Image header magic.
pub fn is_arm64_image(data: &[u8]) -> bool {
    data.get(IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4) == Some(&IMAGE_MAGIC[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_magic() {
        let mut h = vec![0u8; 64];
        assert!(!is_arm64_image(&h));
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert!(is_arm64_image(&h));
        assert!(!is_arm64_image(&h[..0x3a]));
    }

    #[test]
    fn stamp_skips_unchanged() {
        let dir = std::env::temp_dir().join(format!("xtask-stamp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.img");
        assert!(write_unless_same(&p, 1, || Ok(b"one".to_vec())).unwrap());
        assert!(!write_unless_same(&p, 1, || panic!("must not rebuild")).unwrap());
        assert!(write_unless_same(&p, 2, || Ok(b"two".to_vec())).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"two");
        fs::remove_file(&p).unwrap();
        assert!(write_unless_same(&p, 2, || Ok(b"three".to_vec())).unwrap());
        let _ = fs::remove_dir_all(&dir);
    }
}
