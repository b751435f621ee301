//! The verified-boot cases: kexboot built with mkimage's key blobs (`--keys`) boots the signed
//! FIT of the Debian kernel to userspace, and refuses, each with its reason on the console,
//! a FIT with one kernel byte changed, one without a signature, one signed by another key and a
//! plain Image, before the good entry boots ([`crate::fitimg`] makes them).

use crate::check::{boot, expect_kexboot_started, expect_userspace, Ctx};
use crate::firmware;
use crate::fitimg::{self, FitAssets};
use crate::qemu::{Args, DEFAULT_CPU};
use std::path::{Path, PathBuf};

fn assets<'a>(c: &'a Ctx) -> std::result::Result<&'a FitAssets, String> {
    c.disks
        .fit
        .as_ref()
        .map_err(|e| format!("no verified-boot assets: {e}"))
}

/// The firmware with `keys` built in, as `target/<file>`.
fn keyed(c: &Ctx, keys: &Path, file: &str) -> std::result::Result<PathBuf, String> {
    firmware::build_with_keys(c.paths, keys, &c.paths.target.join(file)).map_err(|e| e.to_string())
}

fn args(fw: &Path, disk: &Path) -> Vec<String> {
    Args::new("virt", DEFAULT_CPU, Some(fitimg::SMP))
        .kernel(fw)
        .disk(disk)
        .into_vec()
}

/// A line about entry `label` that says `what`, before line `before`.
fn said(
    t: &crate::check::Transcript,
    label: &str,
    what: &str,
    before: usize,
) -> std::result::Result<(), String> {
    let entry = format!("entry '{label}'");
    match t.find(|l| l.contains(&entry) && l.contains(what)) {
        Some((i, _)) if i < before => Ok(()),
        Some(_) => Err(format!(
            "entry '{label}' refused only after a kernel started"
        )),
        None => Err(format!("no line saying entry '{label}': ...{what}...")),
    }
}

/// Index of the line kexboot starts the kernel on.
fn started(t: &crate::check::Transcript) -> std::result::Result<usize, String> {
    t.find(|l| l.contains(crate::check::KEXBOOT_STARTING))
        .map(|(i, _)| i)
        .ok_or_else(|| format!("kexboot started no kernel: {}", t.ending()))
}

/// RSA key required: tampered, unsigned, other-key and plain-Image entries refused (each
/// named with its reason), then the mkimage-signed FIT of the 27 MB Image boots.
pub(crate) fn case_rsa(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let f = assets(c)?;
    let fw = keyed(c, &f.keys_rsa, "kexboot-keys-rsa.bin")?;
    let t = boot(args(&fw, &f.disk_rsa), &c.log(name))?;
    t.find(|l| l.contains("verified boot: 1 key, required: conf"))
        .ok_or("no \"verified boot: 1 key, required: conf\" line at start")?;
    let go = started(&t)?;
    said(
        &t,
        "tampered",
        "FIT image 'kernel-1': sha256 hash mismatch",
        go,
    )?;
    said(
        &t,
        "unsigned",
        "FIT configuration 'conf-1': signature check failed: no signature node",
        go,
    )?;
    said(
        &t,
        "other",
        "required key 'key-dev' verifies no signature",
        go,
    )?;
    said(&t, "plain", "refused by verified boot: not a FIT image", go)?;
    t.find(|l| {
        l.contains("FIT configuration 'conf-1' verified (signature-1 sha256,rsa2048 key 'key-dev')")
    })
    .ok_or("no line saying how the good FIT verified")?;
    expect_userspace(&t, &fitimg::cmdline("good"), None, None)?;
    expect_kexboot_started(&t)
}

/// No key built in: FIT hashes are still checked (the tampered FIT is refused) and the
/// unsigned FIT boots.
pub(crate) fn case_no_keys(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let f = assets(c)?;
    let t = boot(args(&c.paths.kexboot_bin(), &f.disk_rsa), &c.log(name))?;
    if let Some((_, l)) = t.find(|l| l.contains("verified boot:")) {
        return Err(format!("a firmware without keys says {:?}", l.text.trim()));
    }
    let go = started(&t)?;
    said(&t, "tampered", "sha256 hash mismatch", go)?;
    t.find(|l| l.contains("no key requires a signature"))
        .ok_or("no line saying the FIT's signature was not required")?;
    expect_userspace(&t, &fitimg::cmdline("unsigned"), None, None)
}

/// ECDSA (P-256) key required: the RSA-signed FIT is refused for its algorithm, the
/// ECDSA-signed one boots.
pub(crate) fn case_ecdsa(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let f = assets(c)?;
    let fw = keyed(c, &f.keys_ec, "kexboot-keys-ec.bin")?;
    let t = boot(args(&fw, &f.disk_ec), &c.log(name))?;
    let go = started(&t)?;
    said(
        &t,
        "rsa",
        "signed as sha256,rsa2048, but key 'ec' is ecdsa256",
        go,
    )?;
    t.find(|l| l.contains("verified (signature-1 sha256,ecdsa256 key 'ec')"))
        .ok_or("no line saying the ECDSA FIT verified")?;
    expect_userspace(&t, &fitimg::cmdline("ecdsa"), None, None)
}
