//! `cargo xtask bench --verify`: FIT verification, kexboot vs Debian's U-Boot, in one run. Both
//! boot the same mkimage-signed FIT (the 27 MB Debian Image, the initramfs, QEMU virt's tree;
//! `conf-1` signed sha256,rsa2048) from the same disk with the same key required: kexboot built
//! with `keys-rsa.dtb`, U-Boot given QEMU's own tree with that key added (`-dtb`).
//!
//! kexboot reports each check with its own timer (`signature N ms, kernel-1 <bytes> bytes N ms`).
//! U-Boot prints no times, so its figures are the gaps between its console lines as the host
//! received them: `Using 'conf-1' configuration` → `Verifying Hash Integrity ...
//! sha256,rsa2048:dev+ OK` (the configuration signature: its regions' hash and the RSA check),
//! and the line before the kernel's `Verifying Hash Integrity ... sha256+ OK` → that line (the
//! kernel's sha256). Serial output is a few bytes per line, so the gaps are the work.

use crate::assets::{Assets, UBOOT_BIN};
use crate::check::{is_prompt, KEXBOOT_STARTING};
use crate::disk::{Disk, Scheme};
use crate::firmware;
use crate::fitimg::{self, FitAssets};
use crate::qemu::{Args, Session, Wait, DEFAULT_CPU};
use crate::util::Paths;
use std::path::Path;
use std::time::{Duration, Instant};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Where U-Boot is told to load the FIT: clear of the kernel's load address and its own.
const UBOOT_FIT_ADDR: &str = "0x50000000";

#[derive(Default, Clone)]
struct Sample {
    /// The configuration signature (ms).
    sig_ms: Option<f64>,
    /// The kernel image's sha256 (ms) and its size.
    kernel_ms: Option<f64>,
    kernel_bytes: Option<u64>,
    error: Option<String>,
}

/// `signature 3 ms, kernel-1 27303872 bytes 210 ms (130 MB/s), ...` of kexboot's line.
fn parse_kexboot(line: &str) -> Sample {
    let mut s = Sample::default();
    let checks = line.split_once("); ").map_or("", |(_, c)| c);
    for c in checks.split(", ") {
        let w: Vec<&str> = c.split_whitespace().collect();
        match w.as_slice() {
            ["signature", ms, "ms", ..] => s.sig_ms = ms.parse().ok(),
            ["kernel-1", bytes, "bytes", ms, "ms", ..] => {
                s.kernel_bytes = bytes.parse().ok();
                s.kernel_ms = ms.parse().ok();
            }
            _ => {}
        }
    }
    s
}

fn gap_ms(a: Duration, b: Duration) -> f64 {
    b.saturating_sub(a).as_secs_f64() * 1000.0
}

/// U-Boot's figures from its lines (see the module comment).
fn parse_uboot(lines: &[crate::qemu::Line], kernel_bytes: u64) -> Sample {
    let mut s = Sample::default();
    let find = |from: usize, pred: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| pred(&l.text))
            .map(|(i, _)| i)
    };
    let Some(using) = find(0, &|t| t.contains("Using 'conf-1' configuration")) else {
        s.error = Some("no \"Using 'conf-1' configuration\" line".into());
        return s;
    };
    let Some(sig) = find(using, &|t| {
        t.contains("Verifying Hash Integrity") && t.contains("rsa2048")
    }) else {
        s.error = Some("no configuration signature line".into());
        return s;
    };
    if !lines[sig].text.contains("dev+") {
        s.error = Some(format!(
            "U-Boot did not verify with the key: {:?}",
            lines[sig].text.trim()
        ));
        return s;
    }
    s.sig_ms = Some(gap_ms(lines[using].at, lines[sig].at));
    let Some(trying) = find(sig, &|t| t.contains("Trying 'kernel-1'")) else {
        s.error = Some("no \"Trying 'kernel-1'\" line".into());
        return s;
    };
    let Some(hash) = find(trying, &|t| {
        t.contains("Verifying Hash Integrity") && t.contains("sha256+")
    }) else {
        s.error = Some("no kernel hash line".into());
        return s;
    };
    s.kernel_ms = Some(gap_ms(lines[hash - 1].at, lines[hash].at));
    s.kernel_bytes = Some(kernel_bytes);
    s
}

fn run_kexboot(paths: &Paths, fw: &Path, disk: &Path, round: usize) -> Sample {
    let args = Args::new("virt", DEFAULT_CPU, Some(fitimg::SMP))
        .kernel(fw)
        .disk(disk)
        .into_vec();
    let log = paths
        .e2e
        .join(format!("bench-verify-kexboot-{}.log", round + 1));
    let mut s = match Session::spawn(&args, Some(&log)) {
        Ok(s) => s,
        Err(e) => {
            return Sample {
                error: Some(e.to_string()),
                ..Sample::default()
            }
        }
    };
    let deadline = Instant::now() + RUN_TIMEOUT;
    // Whole lines only: a partial one would be cut before the kernel's figures.
    let out = match s.wait_for(deadline, |l| {
        l.contains(" verified (") || l.contains("no entry could be booted")
    }) {
        Wait::Found(l) if l.text.contains(" verified (") => {
            let smp = parse_kexboot(&l.text);
            match s.wait_for_prompt(deadline, |l| l.contains(KEXBOOT_STARTING) || is_prompt(l)) {
                Wait::Found(l) if l.text.contains(KEXBOOT_STARTING) => smp,
                _ => Sample {
                    error: Some("verified, but no kernel started".into()),
                    ..smp
                },
            }
        }
        _ => Sample {
            error: Some("no \"verified\" line".into()),
            ..Sample::default()
        },
    };
    s.kill();
    out
}

fn run_uboot(paths: &Paths, f: &FitAssets, disk: &Path, kernel_bytes: u64, round: usize) -> Sample {
    let args = Args::new("virt", DEFAULT_CPU, Some(fitimg::SMP))
        .bios(Path::new(UBOOT_BIN))
        .dtb(&f.virt_keys)
        .disk(disk)
        .into_vec();
    let log = paths
        .e2e
        .join(format!("bench-verify-uboot-{}.log", round + 1));
    let mut s = match Session::spawn(&args, Some(&log)) {
        Ok(s) => s,
        Err(e) => {
            return Sample {
                error: Some(e.to_string()),
                ..Sample::default()
            }
        }
    };
    let deadline = Instant::now() + RUN_TIMEOUT;
    let prompt = |l: &str| l.trim_start().starts_with("=>");
    let res = (|| -> std::result::Result<(), String> {
        match s.wait_for_prompt(deadline, |l| l.contains("Hit any key to stop autoboot")) {
            Wait::Found(_) => s.send(b" "),
            _ => return Err("no U-Boot autoboot countdown".into()),
        }
        for c in [
            format!("load virtio 0:1 {UBOOT_FIT_ADDR} /boot/good.itb"),
            format!("bootm {UBOOT_FIT_ADDR}#conf-1"),
        ] {
            if !matches!(s.wait_for_prompt(deadline, prompt), Wait::Found(_)) {
                return Err(format!("no U-Boot prompt before {c:?}"));
            }
            s.send(format!("{c}\r").as_bytes());
        }
        match s.wait_for_prompt(deadline, |l| l.contains("Starting kernel") || prompt(l)) {
            Wait::Found(l) if l.text.contains("Starting kernel") => Ok(()),
            _ => Err("U-Boot's bootm did not start the kernel".into()),
        }
    })();
    s.kill();
    let mut smp = parse_uboot(s.lines(), kernel_bytes);
    if let Err(e) = res {
        smp.error.get_or_insert(e);
    }
    smp
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn cell(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match median(v.to_vec()) {
        None => "–".into(),
        Some(m) if v.len() > 1 => format!("{m:.0} ({lo:.0}–{hi:.0})"),
        Some(m) => format!("{m:.0}"),
    }
}

/// The section: kexboot and U-Boot verifying the same FIT, `rounds` times each, interleaved.
pub(crate) fn verify_bench(paths: &Paths, rounds: usize, a: &Assets) -> String {
    let mut md =
        String::from("\n## Verified boot: a signed 27 MB kernel FIT, kexboot vs U-Boot\n\n");
    let f = match fitimg::build(paths, a) {
        Ok(f) => f,
        Err(e) => return md + &format!("not measured: no FIT assets ({e})\n"),
    };
    let fw = match firmware::build_with_keys(
        paths,
        &f.keys_rsa,
        &paths.target.join("kexboot-keys-rsa.bin"),
    ) {
        Ok(p) => p,
        Err(e) => return md + &format!("not measured: the keyed firmware did not build ({e})\n"),
    };
    let good = match std::fs::read(&f.good) {
        Ok(g) => g,
        Err(e) => return md + &format!("not measured: {}: {e}\n", f.good.display()),
    };
    let kernel_bytes = std::fs::metadata(&a.image).map(|m| m.len()).unwrap_or(0);
    let disk = paths.assets.join("disk-fit-bench.img");
    let conf = format!(
        "# written by cargo xtask\ndefault good\ntimeout 0\n\nlabel good\n    fit /boot/good.itb#conf-1\n    append {}\n",
        fitimg::cmdline("good")
    );
    if let Err(e) = Disk::new(Scheme::Mbr)
        .file("/boot/good.itb", &good[..])
        .extlinux(conf)
        .write(&disk)
    {
        return md + &format!("not measured: the bench disk: {e}\n");
    }
    let (mut kex, mut ub) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        kex.push(run_kexboot(paths, &fw, &disk, r));
        ub.push(run_uboot(paths, &f, &disk, kernel_bytes, r));
    }
    let col = |v: &[Sample], pick: fn(&Sample) -> Option<f64>| -> Vec<f64> {
        v.iter()
            .filter(|s| s.error.is_none())
            .filter_map(pick)
            .collect()
    };
    let mbs = |s: &Sample| match (s.kernel_bytes, s.kernel_ms) {
        (Some(b), Some(ms)) if ms > 0.0 => Some(b as f64 / 1e6 / (ms / 1000.0)),
        _ => None,
    };
    md += &format!(
        "{rounds} rounds each, interleaved; kexboot's times by its own timer, U-Boot's from its \
         console lines (module comment of `xtask/src/bench_fit.rs`). Milliseconds, median (min–max).\n\n\
         | | configuration signature (sha256,rsa2048) | kernel sha256 ({:.1} MB) | kernel sha256 MB/s |\n|---|---:|---:|---:|\n",
        kernel_bytes as f64 / 1e6
    );
    for (name, v) in [("kexboot", &kex), ("U-Boot 2023.01 (Debian)", &ub)] {
        md += &format!(
            "| {name} | {} | {} | {} |\n",
            cell(&col(v, |s| s.sig_ms)),
            cell(&col(v, |s| s.kernel_ms)),
            cell(&col(v, mbs)),
        );
    }
    let (k, u) = (
        median(col(&kex, |s| s.kernel_ms)),
        median(col(&ub, |s| s.kernel_ms)),
    );
    if let (Some(k), Some(u)) = (k, u) {
        md += &format!(
            "\n- kernel hash time, kexboot / U-Boot: **{:.2}x** (below 1: kexboot faster)\n",
            k / u
        );
    }
    for (name, v) in [("kexboot", &kex), ("U-Boot", &ub)] {
        for (i, s) in v.iter().enumerate() {
            if let Some(e) = &s.error {
                md += &format!("- {name} round {}: {e}\n", i + 1);
            }
        }
    }
    md + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kexboot_line() {
        let s = parse_kexboot(
            "[ 0.6] /boot/good.itb: FIT configuration 'conf-1' verified (signature-1 sha256,rsa2048 \
             key 'key-dev'); signature 4 ms, kernel-1 27303872 bytes 210 ms (130 MB/s), ramdisk-1 \
             987681 bytes 7 ms (141 MB/s)",
        );
        assert_eq!(s.sig_ms, Some(4.0));
        assert_eq!(s.kernel_ms, Some(210.0));
        assert_eq!(s.kernel_bytes, Some(27303872));
    }
}
