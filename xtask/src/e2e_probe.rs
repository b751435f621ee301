//! The entry-condition probe cases: kexboot boots `target/probe.bin` (`probe/`) like a kernel,
//! the probe checks at its first instruction what `booting.rst` says a kernel is entered with
//! and prints one `PROBE ok|FAIL` line per condition, then powers off. One case body, one row
//! per mode: cold at EL2 and EL1, on `cortex-a72` and `max`, under kexboot's EL3 monitor, with
//! spin-table secondaries, and after a warm re-entry (Linux kexec's into kexboot, which boots
//! the probe).

use crate::check::{case_timeout, is_prompt, Ctx, Transcript, KEXBOOT_STARTING};
use crate::disk::{Disk, Scheme};
use crate::extlinux::{extlinux, Entry};
use crate::firmware::PROBE_FILE;
use crate::qemu::{self, Session, Wait};
use crate::util::is_arm64_image;
use crate::warm::{entry_cmdline, ENV_TXT};
use kexboot_probe::EXPECT_INITRD;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How kexboot starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// `-kernel kexboot.bin` (QEMU's boot stub: EL2 or EL1).
    Kernel,
    /// `-bios kexboot.bin` with TrustZone: kexboot's EL3 monitor, then kexboot at EL2.
    El3,
}

/// Which disk, and so how the probe is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// The probe is the default entry.
    Cold,
    /// The same with `smp_method=spin-table` in `/kexboot/env.txt`.
    SpinTable,
    /// Linux (default entry) kexec's kexboot.bin with `kexboot.entry=probe`.
    Warm,
}

/// One mode of the probe.
struct Mode {
    name: &'static str,
    machine: &'static str,
    cpu: &'static str,
    start: Start,
    via: Via,
    /// The EL the probe must report.
    el: &'static str,
}

const EL2: &str = "virt,virtualization=on";
const EL1: &str = "virt";
const EL3: &str = "virt,secure=on,virtualization=on";
const A72: &str = "cortex-a72";
const MAX: &str = "max";
const SMP: u32 = 4;

/// Every mode; `CASES` in cases.rs names each with [`case`].
#[rustfmt::skip]
const MODES: &[Mode] = &[
    mode("probe-cold-el2-a72", EL2, A72, Start::Kernel, Via::Cold, "EL2"),
    mode("probe-cold-el1-a72", EL1, A72, Start::Kernel, Via::Cold, "EL1"),
    mode("probe-cold-el2-max", EL2, MAX, Start::Kernel, Via::Cold, "EL2"),
    mode("probe-cold-el1-max", EL1, MAX, Start::Kernel, Via::Cold, "EL1"),
    mode("probe-el3-a72", EL3, A72, Start::El3, Via::Cold, "EL2"),
    mode("probe-el3-max", EL3, MAX, Start::El3, Via::Cold, "EL2"),
    mode("probe-spin-table-el2-a72", EL2, A72, Start::Kernel, Via::SpinTable, "EL2"),
    mode("probe-spin-table-el1-max", EL1, MAX, Start::Kernel, Via::SpinTable, "EL1"),
    mode("probe-el3-spin-table-a72", EL3, A72, Start::El3, Via::SpinTable, "EL2"),
    mode("probe-warm-el2-a72", EL2, A72, Start::Kernel, Via::Warm, "EL2"),
    mode("probe-warm-el1-a72", EL1, A72, Start::Kernel, Via::Warm, "EL1"),
    mode("probe-el3-warm-a72", EL3, A72, Start::El3, Via::Warm, "EL2"),
];

const fn mode(
    name: &'static str,
    machine: &'static str,
    cpu: &'static str,
    start: Start,
    via: Via,
    el: &'static str,
) -> Mode {
    Mode {
        name,
        machine,
        cpu,
        start,
        via,
        el,
    }
}

/// The verdicts every run must print (the secondaries' too: `-smp 4`).
const ALWAYS: &[&str] = &[
    "el",
    "daif",
    "mmu",
    "dcache",
    "x1",
    "x2",
    "x3",
    "cntfrq",
    "image-base",
    "x0",
    "dtb-align",
    "dtb-size",
    "dtb-in-ram",
    "dtb-vs-image",
    "image-in-ram",
    "image-vs-reserved",
    "initrd",
    "initrd-in-ram",
    "initrd-vs-image",
    "initrd-vs-dtb",
    "initrd-window",
    "cpu@1",
    "cpu@2",
    "cpu@3",
    "boot-cpu",
    "cntpct",
    "fp",
];
/// Only at EL2 (the EL2 registers), and only on `-cpu max` (SVE, SME).
const AT_EL2: &[&str] = &["hcr_el2", "cptr_el2"];
const ON_MAX: &[&str] = &["sve", "sme"];

/// The probe's entry: its initrd (to check where it lands) and the word that makes a missing
/// initrd a failure.
fn probe_append() -> String {
    format!("console=ttyAMA0 {EXPECT_INITRD}")
}
/// What the Linux of the warm disk does: one warm reboot through kexec-tools into `probe`.
const WARM_ARGS: &str =
    "kexboot.test.cycle=1 kexboot.test.cycles=2 kexboot.test.via=tools kexboot.test.entries=probe";

/// Writes (unless unchanged) the disk of `via`: `/boot/probe`, an initrd, and for the warm disk
/// Linux with the warm initramfs as the default entry.
fn disk(c: &Ctx, via: Via) -> Result<PathBuf, String> {
    let rd = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let probe = rd(&c.paths.target.join(PROBE_FILE))?;
    if !is_arm64_image(&probe) {
        return Err(format!("target/{PROBE_FILE} is not an arm64 Image"));
    }
    let initrd = rd(&c.assets.initrd)?;
    let append = probe_append();
    let probe_entry = Entry {
        label: "probe",
        linux: "/boot/probe",
        initrd: "/boot/initrd.img",
        append: &append,
    };
    let mut files: Vec<(&str, Vec<u8>)> =
        vec![("/boot/probe", probe), ("/boot/initrd.img", initrd)];
    let (file, conf) = match via {
        Via::Cold => ("disk-probe-cold.img", extlinux("probe", &[probe_entry])),
        Via::SpinTable => {
            files.push(("/kexboot/env.txt", b"smp_method=spin-table\n".to_vec()));
            ("disk-probe-spin.img", extlinux("probe", &[probe_entry]))
        }
        Via::Warm => {
            let w = c
                .assets
                .warm
                .as_ref()
                .map_err(|e| format!("no warm initramfs: {e}"))?;
            if !w.kexboot {
                return Err("target/kexboot.bin was not in the warm initramfs".into());
            }
            files.push(("/boot/Image", rd(&c.assets.image)?));
            files.push(("/boot/initrd-warm.img", rd(&w.initrd)?));
            files.push(("/kexboot/env.txt", ENV_TXT.as_bytes().to_vec()));
            let linux = format!("{} {WARM_ARGS}", entry_cmdline("warm-a"));
            let entries = [
                Entry {
                    label: "warm-a",
                    linux: "/boot/Image",
                    initrd: "/boot/initrd-warm.img",
                    append: &linux,
                },
                probe_entry,
            ];
            ("disk-probe-warm.img", extlinux("warm-a", &entries))
        }
    };
    let path = c.paths.assets.join(file);
    files
        .into_iter()
        .fold(Disk::new(Scheme::Mbr), |d, (p, data)| d.file(p, data))
        .extlinux(conf)
        .write(&path)
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// QEMU's arguments for `m`.
fn args(c: &Ctx, m: &Mode, disk: &std::path::Path) -> Vec<String> {
    let a = qemu::Args::new(m.machine, m.cpu, Some(SMP));
    let bin = c.paths.kexboot_bin();
    match m.start {
        Start::Kernel => a.kernel(&bin),
        Start::El3 => a.bios(&bin),
    }
    .disk(disk)
    .into_vec()
}

/// The probe in the mode named `name`.
pub fn case(c: &Ctx, name: &str) -> Result<(), String> {
    let m = MODES
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| format!("no probe mode {name}"))?;
    let disk = disk(c, m.via)?;
    let mut s =
        Session::spawn(&args(c, m, &disk), Some(&c.log(name))).map_err(|e| e.to_string())?;
    // A warm run boots Linux first: give it the warm cases' time.
    let limit = match m.via {
        Via::Warm => case_timeout().max(Duration::from_secs(240)),
        _ => case_timeout(),
    };
    let deadline = Instant::now() + limit;
    // The probe's end, kexboot's prompt, or an exception report that stops a CPU (e.g. a trap
    // taken to kexboot's EL3 monitor by an instruction the probe ran).
    let stop = |l: &str| {
        l.contains("PROBE done")
            || is_prompt(l)
            || l.contains("CPU stopped")
            || l.contains("Kernel panic")
    };
    let timed_out = match s.wait_for_prompt(deadline, stop) {
        Wait::Found(_) => {
            // The probe powers off right after its last line.
            s.wait_exit(Instant::now() + Duration::from_secs(10));
            false
        }
        Wait::Exited => false,
        Wait::Timeout => true,
    };
    s.kill();
    let t = Transcript {
        lines: s.lines().to_vec(),
        timed_out,
        status: s.status(),
        stderr: s.stderr(),
    };
    check(&t, m)
}

/// Every verdict line is `ok`, every expected one is there, the EL and the secondaries' method
/// are the mode's, kexboot started the probe (warm, when the mode says so) and it powered off.
fn check(t: &Transcript, m: &Mode) -> Result<(), String> {
    let (begin, _) = t
        .find(|l| l.contains("PROBE begin"))
        .ok_or_else(|| format!("the probe printed nothing: {}", t.ending()))?;
    match t.find(|l| l.contains(KEXBOOT_STARTING)) {
        Some((i, _)) if i < begin => {}
        _ => return Err(format!("no {KEXBOOT_STARTING:?} before the probe ran")),
    }
    if m.via == Via::Warm {
        match t.find(|l| l.contains("kexboot: warm entry")) {
            Some((i, _)) if i < begin => {}
            _ => return Err("kexboot was not entered warm before the probe".into()),
        }
    }
    let verdict = |l: &str| {
        let l = l.trim();
        let rest = l
            .strip_prefix("PROBE ok ")
            .or_else(|| l.strip_prefix("PROBE FAIL "))?;
        Some((
            l.starts_with("PROBE ok"),
            rest.split(':').next()?.to_string(),
        ))
    };
    let verdicts: Vec<(bool, String, &str)> = t
        .lines
        .iter()
        .filter_map(|l| verdict(&l.text).map(|(ok, n)| (ok, n, l.text.trim())))
        .collect();
    let failed: Vec<&str> = verdicts.iter().filter(|v| !v.0).map(|v| v.2).collect();
    if !failed.is_empty() {
        return Err(format!(
            "{} FAIL line(s): {}",
            failed.len(),
            failed.join(" | ")
        ));
    }
    let mut want: Vec<&str> = ALWAYS.to_vec();
    if m.el == "EL2" {
        want.extend(AT_EL2);
    }
    if m.cpu == MAX {
        want.extend(ON_MAX);
    }
    for w in want {
        if !verdicts.iter().any(|v| v.1 == w) {
            let last = t
                .lines
                .iter()
                .rev()
                .find(|l| l.text.contains("PROBE"))
                .map(|l| l.text.trim().to_string())
                .unwrap_or_default();
            return Err(format!(
                "no verdict for {w:?} (last probe line: {last:?}; {})",
                t.ending()
            ));
        }
    }
    let line_of = |n: &str| {
        verdicts
            .iter()
            .find(|v| v.1 == n)
            .map(|v| v.2)
            .unwrap_or("")
    };
    if !line_of("el").contains(&format!("el: {}", m.el)) {
        return Err(format!("{:?}: expected {}", line_of("el"), m.el));
    }
    if line_of("initrd").contains("none") {
        return Err(format!("{:?}: the entry has an initrd", line_of("initrd")));
    }
    let method = match m.via {
        Via::SpinTable => "spin-table mailbox",
        _ => "psci AFFINITY_INFO",
    };
    for cpu in ["cpu@1", "cpu@2", "cpu@3"] {
        if !line_of(cpu).contains(method) {
            return Err(format!("{:?}: expected {method}", line_of(cpu)));
        }
    }
    let done = t
        .find(|l| l.contains("PROBE done:"))
        .map(|(_, l)| l.text.trim().to_string())
        .ok_or_else(|| format!("no \"PROBE done\" line: {}", t.ending()))?;
    if !done.ends_with(", 0 failed") || !done.contains(&format!("{} ok", verdicts.len())) {
        return Err(format!("{done:?} with {} verdict lines", verdicts.len()));
    }
    if t.status.is_none() {
        return Err("QEMU did not power off after the probe (PSCI SYSTEM_OFF)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Line;

    fn tr(lines: &[String], exited: bool) -> Transcript {
        use std::os::unix::process::ExitStatusExt;
        Transcript {
            lines: lines
                .iter()
                .map(|s| Line {
                    at: Duration::ZERO,
                    text: s.clone(),
                })
                .collect(),
            timed_out: false,
            status: exited.then(|| std::process::ExitStatus::from_raw(0)),
            stderr: String::new(),
        }
    }

    fn good(m: &Mode) -> Vec<String> {
        let mut v = vec![
            "kexboot: starting kernel at 0x40280000".to_string(),
            "PROBE begin: entered at 0x40280000, x0=0x48000000".to_string(),
        ];
        let mut names: Vec<&str> = ALWAYS.to_vec();
        names.extend(AT_EL2);
        names.extend(ON_MAX);
        for n in &names {
            let detail = match *n {
                "el" => m.el.to_string(),
                "initrd" => "[0x4a000000, 0x4b000000)".into(),
                c if c.starts_with("cpu@") => "psci AFFINITY_INFO(0x1) via hvc = 1".into(),
                _ => "fine".into(),
            };
            v.push(format!("PROBE ok {n}: {detail}"));
        }
        v.push("PROBE info sve: running an SVE instruction".into());
        v.push(format!("PROBE done: {} ok, 0 failed", names.len()));
        v
    }

    #[test]
    fn modes_are_unique_and_checked() {
        let mut names: Vec<&str> = MODES.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MODES.len());
        // Every mode is a case, and every probe case has a mode.
        let cases: Vec<&str> = crate::cases::CASES
            .iter()
            .map(|c| c.name)
            .filter(|n| n.starts_with("probe-"))
            .collect();
        let mut sorted = cases.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        let m = &MODES[0];
        assert_eq!(check(&tr(&good(m), true), m), Ok(()));
        // Not powered off.
        assert!(check(&tr(&good(m), false), m).is_err());
        // One FAIL line.
        let mut bad = good(m);
        bad[4] = "PROBE FAIL x1: 0x1234 (expected 0)".into();
        let e = check(&tr(&bad, true), m).unwrap_err();
        assert!(e.contains("PROBE FAIL x1: 0x1234"), "{e}");
        // A missing verdict (the probe hung before "fp").
        let cut: Vec<String> = good(m)
            .into_iter()
            .filter(|l| !l.starts_with("PROBE ok fp"))
            .collect();
        assert!(check(&tr(&cut, true), m).unwrap_err().contains("\"fp\""));
        // Wrong EL, spin-table expected, warm entry expected.
        assert!(check(&tr(&good(m), true), &MODES[1]).is_err());
        let spin = MODES.iter().find(|m| m.via == Via::SpinTable).unwrap();
        assert!(check(&tr(&good(spin), true), spin)
            .unwrap_err()
            .contains("spin-table mailbox"));
        let warm = MODES.iter().find(|m| m.via == Via::Warm).unwrap();
        assert!(check(&tr(&good(warm), true), warm)
            .unwrap_err()
            .contains("warm"));
        assert!(check(&tr(&[], true), m)
            .unwrap_err()
            .contains("printed nothing"));
    }
}
