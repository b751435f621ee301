//! The Rust targets the build needs, added to the active toolchain when missing.
//!
//! rustup installs a `rust-toolchain.toml`'s `targets` only when it installs that toolchain; a
//! machine whose `stable` already exists gets none of them, and xtask calls that toolchain's
//! `cargo` directly. So every command that builds checks the sysroot first and runs
//! `rustup target add` for what is missing.

use crate::util::{err, run_status, Context, Paths, Result};
use std::path::PathBuf;
use std::process::Command;

/// Every target a build of this workspace needs: the firmware and the Linux helper.
pub const TARGETS: [&str; 2] = [crate::firmware::TARGET, crate::warm::HELPER_TARGET];

/// The sysroot of the `rustc` cargo uses here (`$RUSTC`, else `rustc` from the workspace root,
/// so that `rust-toolchain.toml` chooses it).
fn sysroot(paths: &Paths) -> Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(&paths.root)
        .output()
        .ctx(format!("cannot run {}", rustc.to_string_lossy()))?;
    if !out.status.success() {
        return Err(err!(
            "rustc --print sysroot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The targets of `wanted` whose standard library is not in `sysroot`.
pub fn missing(sysroot: &std::path::Path, wanted: &[&'static str]) -> Vec<&'static str> {
    wanted
        .iter()
        .copied()
        .filter(|t| !sysroot.join("lib/rustlib").join(t).join("lib").is_dir())
        .collect()
}

/// Adds the missing [`TARGETS`] with `rustup target add` (to the toolchain the workspace uses).
pub fn ensure_targets(paths: &Paths) -> Result<()> {
    let root = sysroot(paths)?;
    let need = missing(&root, &TARGETS);
    if need.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask: adding Rust target(s) {} to {}",
        need.join(", "),
        root.display()
    );
    let mut cmd = Command::new("rustup");
    cmd.current_dir(&paths.root)
        .args(["target", "add"])
        .args(&need);
    // Under `cargo` run by rustup, RUSTUP_TOOLCHAIN names the toolchain in use.
    if let Some(tc) = std::env::var_os("RUSTUP_TOOLCHAIN") {
        cmd.arg("--toolchain").arg(tc);
    }
    run_status(&mut cmd).map_err(|e| {
        err!("{e}: the targets {need:?} are needed (install rustup, or add them to your toolchain)")
    })?;
    let still = missing(&root, &need);
    if still.is_empty() {
        Ok(())
    } else {
        Err(err!(
            "rustup target add did not install {still:?} into {}",
            root.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_targets_are_those_without_a_lib_dir() {
        let dir = std::env::temp_dir().join(format!("xtask-sysroot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lib/rustlib/aarch64-unknown-none/lib")).unwrap();
        // A target directory without its lib/ (a half-removed component) counts as missing.
        std::fs::create_dir_all(dir.join("lib/rustlib/aarch64-unknown-linux-musl")).unwrap();
        assert_eq!(missing(&dir, &TARGETS), ["aarch64-unknown-linux-musl"]);
        std::fs::create_dir_all(dir.join("lib/rustlib/aarch64-unknown-linux-musl/lib")).unwrap();
        assert!(missing(&dir, &TARGETS).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
