//! apt-get for the test assets: `apt-get update` at most once, root or sudo, and downloads of
//! arm64 packages.

use crate::util::{err, run_status, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// apt-get driver: `apt-get update` at most once per run, root or sudo.
#[derive(Default)]
pub(crate) struct Apt {
    updated: bool,
    arm64: bool,
}

impl Apt {
    /// A command run as root (through `sudo` when we are not root).
    pub(crate) fn root_cmd(prog: &str) -> Command {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.trim_ascii() == b"0")
            .unwrap_or(false);
        let mut c = if is_root {
            Command::new(prog)
        } else {
            let mut c = Command::new("sudo");
            c.arg(prog);
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    pub(crate) fn update(&mut self) -> Result<()> {
        if !self.updated {
            eprintln!("assets: apt-get update");
            run_status(Self::root_cmd("apt-get").args(["-q", "update"]))?;
            self.updated = true;
        }
        Ok(())
    }

    /// Adds the arm64 architecture to dpkg (and refreshes the lists) if it is not there yet.
    pub(crate) fn ensure_arm64(&mut self) -> Result<()> {
        if self.arm64 {
            return Ok(());
        }
        let out = Command::new("dpkg")
            .arg("--print-foreign-architectures")
            .output()
            .ctx("dpkg --print-foreign-architectures")?;
        if !String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|a| a == "arm64")
        {
            eprintln!("assets: dpkg --add-architecture arm64");
            run_status(Self::root_cmd("dpkg").args(["--add-architecture", "arm64"]))?;
            self.updated = false;
            self.update()?;
        }
        self.arm64 = true;
        Ok(())
    }
}

/// `apt-get download <pkg>:arm64` into `dir`; returns the `.deb`'s path.
pub(crate) fn download(apt: &mut Apt, dir: &Path, pkg: &str) -> Result<PathBuf> {
    let find = || -> Option<PathBuf> {
        let prefix = format!("{pkg}_");
        fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with("_arm64.deb"))
            })
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    for attempt in 0..2 {
        eprintln!("assets: apt-get download {pkg}:arm64");
        let st = Command::new("apt-get")
            .args(["-q", "download"])
            .arg(format!("{pkg}:arm64"))
            .current_dir(dir)
            .status()
            .ctx("apt-get download")?;
        if st.success() {
            if let Some(p) = find() {
                return Ok(p);
            }
        }
        if attempt == 0 {
            // The lists may be older than the mirror: refresh once and try again.
            apt.updated = false;
            apt.update()?;
        }
    }
    Err(err!("apt-get download {pkg}:arm64 failed"))
}
