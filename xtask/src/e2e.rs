//! `cargo xtask test`: host tests, the firmware build, clippy, then the QEMU end-to-end cases,
//! each with a timeout and its serial log in `target/e2e/<case>.log`. Also builds the test disks.

use crate::assets::{self, Assets, UBOOT_BIN};
use crate::disk::{self, Scheme};
use crate::e2e_el3::{CortexA72, Max};
use crate::qemu::{self, Line, Session, Wait};
use crate::{
    e2e_el3, e2e_net, e2e_probe, e2e_warm, err, firmware, run_status, Context, Paths, Result,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Command line of the default entry of the MBR disk.
pub const CMDLINE_IMAGE: &str = "console=ttyAMA0 kexboot.test=image quiet";
/// Command line of the default entry of the GPT disk (gzip'd Image).
pub const CMDLINE_IMAGEGZ: &str = "console=ttyAMA0 kexboot.test=imagegz quiet";
/// Command line of the good (second) entry of the fallback disk.
pub const CMDLINE_FALLBACK: &str = "console=ttyAMA0 kexboot.test=fallback quiet";
/// Command line when booting Linux directly with `-kernel`.
pub const CMDLINE_DIRECT: &str = "console=ttyAMA0 kexboot.test=direct quiet";
/// Time limit of one QEMU case: 120 s, or `$XTASK_E2E_TIMEOUT` seconds.
pub(crate) fn case_timeout() -> Duration {
    let secs = std::env::var("XTASK_E2E_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(120))
}
/// The firmware prints this before jumping to the kernel.
pub const KEXBOOT_STARTING: &str = "kexboot: starting kernel";

/// The disk images the cases use.
pub struct Disks {
    /// MBR; default entry boots `/boot/Image`.
    pub mbr: PathBuf,
    /// GPT; default entry boots `/boot/Image.gz`.
    pub gpt: PathBuf,
    /// MBR; default entry's kernel is missing, the second entry is good.
    pub missing: PathBuf,
    /// MBR; every entry is broken.
    pub allbad: PathBuf,
    /// The MBR disk plus `/kexboot/bench`, which makes the firmware run its in-guest copy
    /// benchmark (relocator engine vs plain copy loops) before booting.
    pub bench: PathBuf,
    /// The MBR disk with a boot menu (`timeout 30`, a `menu title`).
    pub menu: PathBuf,
    /// The warm re-entry disks (one per scenario), or why there are none.
    pub warm: std::result::Result<crate::warm::WarmDisks, String>,
}

impl Disks {
    /// Every image path.
    pub fn all(&self) -> Vec<&PathBuf> {
        let mut v = vec![
            &self.mbr,
            &self.gpt,
            &self.missing,
            &self.allbad,
            &self.bench,
            &self.menu,
        ];
        if let Ok(w) = &self.warm {
            v.extend(w.0.iter().map(|(_, p)| p));
        }
        v
    }
}

/// One `label` of an extlinux.conf.
pub(crate) struct Entry<'a> {
    pub label: &'a str,
    pub linux: &'a str,
    pub initrd: &'a str,
    pub append: &'a str,
}

pub(crate) fn extlinux(default: &str, entries: &[Entry]) -> String {
    let mut s = format!("# written by cargo xtask\ndefault {default}\ntimeout 0\n");
    for e in entries {
        s += &format!(
            "\nlabel {}\n    menu label kexboot test: {}\n    linux {}\n    initrd {}\n    append {}\n",
            e.label, e.label, e.linux, e.initrd, e.append
        );
    }
    s
}

/// Deterministic garbage for the "corrupt Image" file.
fn garbage(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Builds the four test disks under `target/assets/`.
pub fn build_disks(paths: &Paths, a: &Assets) -> Result<Disks> {
    let read = |p: &Path| std::fs::read(p).ctx(p.display());
    let (image, image_gz, initrd) = (read(&a.image)?, read(&a.image_gz)?, read(&a.initrd)?);
    let good = |label, linux, append| Entry {
        label,
        linux,
        initrd: "/boot/initrd.img",
        append,
    };
    let mut d = Disks {
        mbr: paths.assets.join("disk-mbr.img"),
        gpt: paths.assets.join("disk-gpt.img"),
        missing: paths.assets.join("disk-missing.img"),
        allbad: paths.assets.join("disk-allbad.img"),
        bench: paths.assets.join("disk-bench.img"),
        menu: paths.assets.join("disk-menu.img"),
        warm: Err("not built".into()),
    };
    // Writes one disk: the given files plus /extlinux/extlinux.conf.
    fn put<'a>(
        path: &Path,
        scheme: Scheme,
        conf: &'a str,
        mut files: Vec<(&'a str, &'a [u8])>,
    ) -> Result<()> {
        files.push(("/extlinux/extlinux.conf", conf.as_bytes()));
        disk::write(path, &files, scheme).map(|_| ())
    }
    let all = [
        ("/boot/Image", &image[..]),
        ("/boot/Image.gz", &image_gz[..]),
        ("/boot/initrd.img", &initrd[..]),
    ];
    let both = [
        good("kexboot-image", "/boot/Image", CMDLINE_IMAGE),
        good("kexboot-imagegz", "/boot/Image.gz", CMDLINE_IMAGEGZ),
    ];
    put(
        &d.mbr,
        Scheme::Mbr,
        &extlinux("kexboot-image", &both),
        all.to_vec(),
    )?;
    put(
        &d.gpt,
        Scheme::Gpt,
        &extlinux("kexboot-imagegz", &both),
        all.to_vec(),
    )?;
    let mut with_marker = all.to_vec();
    with_marker.push(("/kexboot/bench", b"run the copy benchmark\n"));
    put(
        &d.bench,
        Scheme::Mbr,
        &extlinux("kexboot-image", &both),
        with_marker,
    )?;
    let menu_conf = extlinux("kexboot-image", &both).replacen(
        "timeout 0\n",
        "timeout 30\nmenu title kexboot test menu\n",
        1,
    );
    put(&d.menu, Scheme::Mbr, &menu_conf, all.to_vec())?;
    let missing = [
        good("kexboot-missing", "/boot/missing-Image", CMDLINE_IMAGE),
        good("kexboot-fallback", "/boot/Image", CMDLINE_FALLBACK),
    ];
    let files = vec![all[0], all[2]];
    put(
        &d.missing,
        Scheme::Mbr,
        &extlinux("kexboot-missing", &missing),
        files,
    )?;
    let bad = [
        good("kexboot-missing", "/boot/missing-Image", CMDLINE_IMAGE),
        good("kexboot-corrupt", "/boot/corrupt-Image", CMDLINE_IMAGE),
        Entry {
            label: "kexboot-noinitrd",
            linux: "/boot/Image",
            initrd: "/boot/missing-initrd.img",
            append: CMDLINE_IMAGE,
        },
    ];
    let junk = garbage(1 << 20);
    let files = vec![all[0], ("/boot/corrupt-Image", &junk[..]), all[2]];
    put(
        &d.allbad,
        Scheme::Mbr,
        &extlinux("kexboot-missing", &bad),
        files,
    )?;
    d.warm = match &a.warm {
        Ok(w) => crate::warm::build_disks(paths, a, w).map_err(|e| e.to_string()),
        Err(e) => Err(format!("no warm initramfs: {e}")),
    };
    Ok(d)
}

/// Output of one QEMU run.
pub(crate) struct Transcript {
    pub lines: Vec<Line>,
    pub timed_out: bool,
    pub status: Option<std::process::ExitStatus>,
    pub stderr: String,
}

impl Transcript {
    pub(crate) fn find(&self, pred: impl Fn(&str) -> bool) -> Option<(usize, &Line)> {
        self.lines.iter().enumerate().find(|(_, l)| pred(&l.text))
    }

    /// The value after `KEXBOOT-E2E <key>=` on the first such line.
    pub(crate) fn marker(&self, key: &str) -> Option<&str> {
        let tag = format!("KEXBOOT-E2E {key}=");
        self.lines
            .iter()
            .find_map(|l| l.text.find(&tag).map(|i| &l.text[i + tag.len()..]))
    }

    pub(crate) fn has_prompt(&self) -> bool {
        self.find(is_prompt).is_some()
    }

    /// Why the run ended, for failure reasons.
    pub(crate) fn ending(&self) -> String {
        let last = self
            .lines
            .iter()
            .rev()
            .find(|l| !l.text.trim().is_empty())
            .map(|l| format!("; last line: {:?}", l.text.trim()))
            .unwrap_or_else(|| "; no console output at all".into());
        let how = if self.timed_out {
            format!("timed out after {}s", case_timeout().as_secs())
        } else {
            match self.status {
                Some(s) => format!("qemu exited ({s})"),
                None => "stopped".into(),
            }
        };
        let stderr = if self.stderr.is_empty() {
            String::new()
        } else {
            format!(
                "; qemu stderr: {}",
                self.stderr.lines().next().unwrap_or("")
            )
        };
        format!("{how}{last}{stderr}")
    }
}

pub(crate) fn is_prompt(l: &str) -> bool {
    l.trim_start().starts_with("kexboot>")
}

/// Runs QEMU until the initramfs finished (END marker, then waits for poweroff), the kexboot
/// prompt, a kernel panic, QEMU's exit or the case timeout.
fn boot(args: Vec<String>, log: &Path) -> std::result::Result<Transcript, String> {
    boot_for(&args, log, case_timeout())
}

/// [`boot`] with its own time limit.
pub(crate) fn boot_for(
    args: &[String],
    log: &Path,
    limit: Duration,
) -> std::result::Result<Transcript, String> {
    let mut s = Session::spawn(args, Some(log)).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    let stop =
        |l: &str| l.contains("KEXBOOT-E2E-END") || is_prompt(l) || l.contains("Kernel panic");
    let timed_out = match s.wait_for_prompt(deadline, stop) {
        Wait::Found(l) => {
            let grace = if l.text.contains("KEXBOOT-E2E-END") {
                15
            } else {
                1
            };
            s.wait_exit(Instant::now() + Duration::from_secs(grace));
            false
        }
        Wait::Exited => false,
        Wait::Timeout => true,
    };
    s.kill();
    Ok(Transcript {
        lines: s.lines().to_vec(),
        timed_out,
        status: s.status(),
        stderr: s.stderr(),
    })
}

/// The checks shared by every case that must reach the initramfs.
pub(crate) fn expect_userspace(
    t: &Transcript,
    cmdline: &str,
    el: Option<&str>,
    cpus: Option<u32>,
) -> std::result::Result<(), String> {
    if t.find(|l| l.contains("KEXBOOT-E2E-BEGIN")).is_none() {
        let why = if t.has_prompt() {
            "kexboot gave up and showed its prompt".to_string()
        } else if let Some((_, l)) = t.find(|l| l.contains("Kernel panic")) {
            format!("kernel panic: {}", l.text.trim())
        } else {
            t.ending()
        };
        return Err(format!("no KEXBOOT-E2E-BEGIN: {why}"));
    }
    let got = t
        .marker("cmdline")
        .ok_or_else(|| format!("no cmdline marker: {}", t.ending()))?;
    if got.trim() != cmdline.trim() {
        return Err(format!("cmdline {:?}, expected {:?}", got.trim(), cmdline));
    }
    if let Some(want) = el {
        let got = t.marker("el").ok_or("no el marker")?;
        if !got.contains(want) {
            return Err(format!("el line {:?} does not say {want}", got.trim()));
        }
    }
    if let Some(want) = cpus {
        let got = t.marker("cpus").ok_or("no cpus marker")?;
        if got.trim() != want.to_string() {
            return Err(format!("cpus={}, expected {want}", got.trim()));
        }
    }
    if t.find(|l| l.contains("KEXBOOT-E2E-END")).is_none() {
        return Err(format!("no KEXBOOT-E2E-END: {}", t.ending()));
    }
    Ok(())
}

/// kexboot said it was starting the kernel, before the initramfs ran.
pub(crate) fn expect_kexboot_started(t: &Transcript) -> std::result::Result<(), String> {
    let (i, _) = t
        .find(|l| l.contains(KEXBOOT_STARTING))
        .ok_or_else(|| format!("no {KEXBOOT_STARTING:?} line"))?;
    match t.find(|l| l.contains("KEXBOOT-E2E-BEGIN")) {
        Some((j, _)) if j < i => Err(format!("{KEXBOOT_STARTING:?} after the initramfs ran")),
        _ => Ok(()),
    }
}

/// The banner (`kexboot <version> ... EL<n> ...`) names the exception level kexboot entered at.
fn expect_banner(t: &Transcript, el: &str) -> std::result::Result<(), String> {
    let (_, l) = t
        .find(|l| l.trim_start().starts_with("kexboot ") && l.contains(" EL"))
        .ok_or("no kexboot banner (\"kexboot <version> ... EL<n> ...\")")?;
    if l.text.contains(el) {
        Ok(())
    } else {
        Err(format!("banner {:?} does not say {el}", l.text.trim()))
    }
}

/// A line that reports an error and names `file`.
fn error_naming<'a>(t: &'a Transcript, file: &str) -> Option<(usize, &'a Line)> {
    t.find(|l| l.contains(file) && l.to_ascii_lowercase().contains("error"))
}

/// The CPU model of every case that does not ask for another.
pub(crate) const DEFAULT_CPU: &str = "cortex-a72";

pub(crate) fn machine(m: &str, smp: u32) -> Vec<String> {
    machine_cpu(m, DEFAULT_CPU, smp)
}

pub(crate) fn machine_cpu(m: &str, cpu: &str, smp: u32) -> Vec<String> {
    ["-M", m, "-cpu", cpu, "-smp", &smp.to_string(), "-m", "1G"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Everything a case needs.
pub(crate) struct Ctx<'a> {
    pub paths: &'a Paths,
    pub assets: &'a Assets,
    pub disks: &'a Disks,
}

impl Ctx<'_> {
    pub(crate) fn kexboot(&self, m: &str, smp: u32, disk: &Path) -> Vec<String> {
        let mut a = machine(m, smp);
        a.extend([
            "-kernel".to_string(),
            self.paths.kexboot_bin().display().to_string(),
        ]);
        a.extend(qemu::virtio_disk(disk));
        a
    }

    pub(crate) fn log(&self, case: &str) -> PathBuf {
        self.paths.e2e.join(format!("{case}.log"))
    }
}

pub(crate) type CaseFn = fn(&Ctx, &str) -> std::result::Result<(), String>;

/// (name, needs the firmware, body)
pub(crate) const CASES: &[(&str, bool, CaseFn)] = &[
    ("direct-linux", false, case_direct),
    ("uboot-image-mbr", false, case_uboot),
    ("el2-image-mbr", true, case_el2_image_mbr),
    ("el1-imagegz-gpt", true, case_el1_imagegz_gpt),
    ("fallback-missing-kernel", true, case_fallback),
    ("all-entries-bad", true, case_all_bad),
    ("el2-cpumax-rng-seeds", true, case_cpumax_seeds),
    ("exception-report", true, case_exception_report),
    ("boot-menu-choose-edit", true, case_menu),
    ("shell-saveenv-reset", true, case_saveenv),
    ("shell-load-booti", true, case_load_booti),
    ("bootlimit-altbootcmd", true, e2e_warm::case_bootlimit),
    (
        "kexec-tools-direct-baseline",
        false,
        e2e_warm::case_direct_baseline,
    ),
    ("warm-3-cycles-helper", true, e2e_warm::case_helper_3_cycles),
    (
        "warm-kexec-tools-default",
        true,
        e2e_warm::case_tools_default,
    ),
    ("warm-kexec-tools-append", true, e2e_warm::case_tools_append),
    (
        "warm-el1-kexec-tools-append",
        true,
        e2e_warm::case_tools_append_el1,
    ),
    ("warm-bad-entry", true, e2e_warm::case_bad_entry),
    ("psci-smp4-warm-cycle", true, e2e_warm::case_psci_smp4_warm),
    ("spin-table-smp4", true, e2e_warm::case_spin_table_smp4),
    ("warm-3-cycles-net-rx", true, e2e_warm::case_net_rx_3_cycles),
    (
        "spin-table-booti-user-dtb-no-map",
        true,
        e2e_warm::case_user_dtb_no_map,
    ),
    (
        "helper-refuses-non-kexboot",
        true,
        e2e_warm::case_helper_refuses,
    ),
    ("el3-psci-smp4", true, e2e_el3::case_smp4::<CortexA72>),
    ("el3-psci-hotplug", true, e2e_el3::case_hotplug::<CortexA72>),
    (
        "el3-psci-warm-cycle",
        true,
        e2e_el3::case_warm_cycle::<CortexA72>,
    ),
    ("el3-psci-reboot", true, e2e_el3::case_reboot::<CortexA72>),
    (
        "el3-spin-table-reboot",
        true,
        e2e_el3::case_spin_table_reboot::<CortexA72>,
    ),
    ("el3-psci-smp4-cpumax", true, e2e_el3::case_smp4::<Max>),
    (
        "el3-psci-hotplug-cpumax",
        true,
        e2e_el3::case_hotplug::<Max>,
    ),
    (
        "el3-psci-warm-cycle-cpumax",
        true,
        e2e_el3::case_warm_cycle::<Max>,
    ),
    ("el3-psci-reboot-cpumax", true, e2e_el3::case_reboot::<Max>),
    (
        "el3-spin-table-reboot-cpumax",
        true,
        e2e_el3::case_spin_table_reboot::<Max>,
    ),
    ("probe-cold-el2-a72", true, e2e_probe::case),
    ("probe-cold-el1-a72", true, e2e_probe::case),
    ("probe-cold-el2-max", true, e2e_probe::case),
    ("probe-cold-el1-max", true, e2e_probe::case),
    ("probe-el3-a72", true, e2e_probe::case),
    ("probe-el3-max", true, e2e_probe::case),
    ("probe-spin-table-el2-a72", true, e2e_probe::case),
    ("probe-spin-table-el1-max", true, e2e_probe::case),
    ("probe-el3-spin-table-a72", true, e2e_probe::case),
    ("probe-warm-el2-a72", true, e2e_probe::case),
    ("probe-warm-el1-a72", true, e2e_probe::case),
    ("probe-el3-warm-a72", true, e2e_probe::case),
    ("netboot-qemu-tftp", true, e2e_net::case_qemu_tftp),
    ("netboot-loss5", true, e2e_net::case_loss5),
    ("netboot-loss20", true, e2e_net::case_loss20),
    ("netboot-dhcp-script", true, e2e_net::case_dhcp_script),
    ("netboot-server-silent", true, e2e_net::case_server_silent),
];

/// Linux booted directly by QEMU: proves the kernel and initramfs (no kexboot involved).
fn case_direct(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let mut a = machine("virt", 1);
    a.extend(
        ["-kernel", "-initrd", "-append"]
            .iter()
            .zip([
                c.assets.image.display().to_string(),
                c.assets.initrd.display().to_string(),
                CMDLINE_DIRECT.to_string(),
            ])
            .flat_map(|(f, v)| [f.to_string(), v]),
    );
    let t = boot(a, &c.log(name))?;
    expect_userspace(&t, CMDLINE_DIRECT, Some("EL1"), Some(1))
}

/// Debian's U-Boot boots the MBR disk through extlinux.conf: proves the disk image.
fn case_uboot(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let mut a = machine("virt", 1);
    a.extend(["-bios".to_string(), UBOOT_BIN.to_string()]);
    a.extend(qemu::virtio_disk(&c.disks.mbr));
    let t = boot(a, &c.log(name))?;
    expect_userspace(&t, CMDLINE_IMAGE, None, None)?;
    t.find(|l| l.contains("Starting kernel"))
        .map(|_| ())
        .ok_or_else(|| "no U-Boot \"Starting kernel\" line".into())
}

fn case_el2_image_mbr(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let t = boot(
        c.kexboot("virt,virtualization=on", 2, &c.disks.mbr),
        &c.log(name),
    )?;
    expect_userspace(&t, CMDLINE_IMAGE, Some("EL2"), Some(2))?;
    expect_banner(&t, "EL2")?;
    expect_kexboot_started(&t)
}

fn case_el1_imagegz_gpt(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let t = boot(c.kexboot("virt", 1, &c.disks.gpt), &c.log(name))?;
    expect_userspace(&t, CMDLINE_IMAGEGZ, Some("EL1"), Some(1))?;
    expect_banner(&t, "EL1")?;
    expect_kexboot_started(&t)
}

fn case_fallback(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let t = boot(c.kexboot("virt", 2, &c.disks.missing), &c.log(name))?;
    let (e, _) = error_naming(&t, "missing-Image")
        .ok_or_else(|| format!("no error line naming missing-Image ({})", t.ending()))?;
    expect_userspace(&t, CMDLINE_FALLBACK, None, None)?;
    expect_kexboot_started(&t)?;
    match t.find(|l| l.contains(KEXBOOT_STARTING)) {
        Some((s, _)) if s < e => {
            Err("kexboot started a kernel before reporting missing-Image".into())
        }
        _ => Ok(()),
    }
}

fn case_all_bad(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let t = boot(
        c.kexboot("virt,virtualization=on", 1, &c.disks.allbad),
        &c.log(name),
    )?;
    if let Some((_, l)) = t.find(|l| l.contains("KEXBOOT-E2E")) {
        return Err(format!("a kernel booted: {:?}", l.text.trim()));
    }
    if let Some((_, l)) = t.find(|l| l.contains(KEXBOOT_STARTING)) {
        return Err(format!("kexboot started a kernel: {:?}", l.text.trim()));
    }
    let (p, _) = t
        .find(is_prompt)
        .ok_or_else(|| format!("no kexboot> prompt: {}", t.ending()))?;
    for file in ["missing-Image", "corrupt-Image", "missing-initrd.img"] {
        match error_naming(&t, file) {
            Some((i, _)) if i < p => {}
            _ => return Err(format!("no error line naming {file} before the prompt")),
        }
    }
    Ok(())
}

/// `-cpu max` has FEAT_RNG: kexboot must seed `kaslr-seed`/`rng-seed` from `rndr` and say so.
fn case_cpumax_seeds(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let mut args = c.kexboot("virt,virtualization=on", 2, &c.disks.mbr);
    let cpu = args
        .iter()
        .position(|a| a == DEFAULT_CPU)
        .ok_or("no -cpu in the machine arguments")?;
    args[cpu] = "max".into();
    let t = boot(args, &c.log(name))?;
    if t.find(|l| l.contains("kaslr-seed and rng-seed set from"))
        .is_none()
    {
        return Err("no line saying the seeds came from the CPU's random source".into());
    }
    if let Some((_, l)) = t.find(|l| l.contains("no random source")) {
        return Err(format!(
            "claims no random source on -cpu max: {:?}",
            l.text.trim()
        ));
    }
    expect_userspace(&t, CMDLINE_IMAGE, Some("EL2"), Some(2))?;
    expect_kexboot_started(&t)
}

/// An unexpected exception prints the syndrome and the registers, then stops the CPU.
fn case_exception_report(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let args = c.kexboot("virt,virtualization=on", 1, &c.disks.allbad);
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        if !matches!(s.wait_for_prompt(deadline, is_prompt), Wait::Found(_)) {
            return Err("no kexboot> prompt".to_string());
        }
        s.send(b"exception undefined\r");
        if !matches!(
            s.wait_for(deadline, |l| l.contains("CPU stopped")),
            Wait::Found(_)
        ) {
            return Err("no 'CPU stopped' after the exception".to_string());
        }
        let text: Vec<&str> = s.lines().iter().map(|l| l.text.as_str()).collect();
        let has = |p: &str| text.iter().any(|l| l.contains(p));
        for want in [
            "unexpected synchronous exception",
            "at EL2",
            "ESR=0x0000000002000000",
            "ELR=0x",
            "SPSR=0x",
            "x30=",
        ] {
            if !has(want) {
                return Err(format!("exception report lacks {want:?}"));
            }
        }
        Ok(())
    })();
    s.kill();
    result
}

/// The boot menu, typed at on the serial line: a key stops the countdown, `2` picks the second
/// entry, `e` edits its command line, Enter boots it; `/proc/cmdline` proves the edit.
fn case_menu(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let args = c.kexboot("virt,virtualization=on", 1, &c.disks.menu);
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        if !matches!(
            s.wait_for(deadline, |l| l.contains("boot menu drawn")),
            Wait::Found(_)
        ) {
            return Err("no \"boot menu drawn\" line".to_string());
        }
        let pause = || std::thread::sleep(Duration::from_millis(300));
        for keys in [&b" "[..], b"2", b"e", b" menu.edited=yes\r"] {
            s.send(keys);
            pause();
        }
        if !matches!(
            s.wait_for(deadline, |l| l.contains("KEXBOOT-E2E-END")),
            Wait::Found(_)
        ) {
            return Err("Linux did not reach its marker after the menu".to_string());
        }
        let text: Vec<&str> = s.lines().iter().map(|l| l.text.as_str()).collect();
        let want = format!("KEXBOOT-E2E cmdline={CMDLINE_IMAGEGZ} menu.edited=yes");
        if !text.iter().any(|l| l.trim() == want) {
            let got = text.iter().find(|l| l.contains("KEXBOOT-E2E cmdline="));
            return Err(format!("expected {want:?}, got {got:?}"));
        }
        if !text.iter().any(|l| l.contains("kexboot test menu")) {
            return Err("the menu title was not shown".to_string());
        }
        Ok(())
    })();
    s.kill();
    result
}

/// The shell: `setenv` + `saveenv`, `reset` (PSCI SYSTEM_RESET), and after the reboot the value
/// is still there (read back from the saved environment's newer copy).
fn case_saveenv(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let args = c.kexboot("virt,virtualization=on", 1, &c.disks.allbad);
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        // Each command ends at a fresh `kexboot> ` (a prompt has no newline, so wait for it).
        let prompt = |s: &mut Session, what: &str| match s.wait_for_prompt(deadline, is_prompt) {
            Wait::Found(_) => Ok(()),
            _ => Err(format!("no kexboot> prompt {what}")),
        };
        prompt(&mut s, "at first")?;
        s.send(b"setenv greeting hello-kexboot\r");
        prompt(&mut s, "after setenv")?;
        s.send(b"saveenv\r");
        if !matches!(s.wait_for(deadline, |l| l.trim() == "OK"), Wait::Found(_)) {
            return Err("saveenv did not say OK".into());
        }
        prompt(&mut s, "after saveenv")?;
        s.send(b"reset\r");
        if !matches!(
            s.wait_for(deadline, |l| l.contains("kexboot: cold entry")),
            Wait::Found(_)
        ) {
            return Err("no reboot after reset".into());
        }
        prompt(&mut s, "after the reset")?;
        s.send(b"printenv greeting\r");
        match s.wait_for(deadline, |l| l.contains("greeting=")) {
            Wait::Found(l) if l.text.trim() == "greeting=hello-kexboot" => Ok(()),
            Wait::Found(l) => Err(format!("after the reset: {:?}", l.text.trim())),
            _ => Err("printenv greeting printed nothing after the reset".into()),
        }
    })();
    s.kill();
    result
}

/// U-Boot habits at the prompt: `load` the kernel and initrd to `${kernel_addr_r}` and
/// `${ramdisk_addr_r}`, `setenv bootargs`, `booti` — through the same relocator.
fn case_load_booti(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let args = c.kexboot("virt,virtualization=on", 1, &c.disks.allbad);
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        let lines: [&[u8]; 4] = [
            b"load virtio 0:1 ${kernel_addr_r} /boot/Image\r",
            b"load virtio 0:1 ${ramdisk_addr_r} /boot/initrd.img\r",
            b"setenv bootargs console=ttyAMA0 kexboot.test=booti\r",
            b"booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize}\r",
        ];
        for l in lines {
            if !matches!(s.wait_for_prompt(deadline, is_prompt), Wait::Found(_)) {
                return Err("no kexboot> prompt".into());
            }
            s.send(l);
        }
        match s.wait_for(deadline, |l| l.contains("KEXBOOT-E2E cmdline=")) {
            Wait::Found(l)
                if l.text.trim() == "KEXBOOT-E2E cmdline=console=ttyAMA0 kexboot.test=booti" => {}
            Wait::Found(l) => return Err(format!("booted with {:?}", l.text.trim())),
            _ => return Err("booti did not reach Linux".into()),
        }
        let text: Vec<&str> = s.lines().iter().map(|l| l.text.as_str()).collect();
        if text.iter().filter(|l| l.contains("bytes read")).count() != 2 {
            return Err("the two loads did not both report their size".into());
        }
        Ok(())
    })();
    s.kill();
    result
}

/// Options of `cargo xtask test`.
#[derive(Default)]
struct Opts {
    no_e2e: bool,
    no_clippy: bool,
    only: Option<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-e2e" => o.no_e2e = true,
            "--no-clippy" => o.no_clippy = true,
            "--only" => {
                let c = it.next().ok_or_else(|| err!("--only needs a case name"))?;
                if !CASES.iter().any(|(n, _, _)| n == c) {
                    let names: Vec<_> = CASES.iter().map(|(n, _, _)| *n).collect();
                    return Err(err!("unknown case {c}; cases: {}", names.join(", ")));
                }
                o.only = Some(c.clone());
            }
            other => return Err(err!("unexpected argument `{other}`")),
        }
    }
    Ok(o)
}

/// Collects and prints step results.
#[derive(Default)]
struct Report {
    lines: Vec<(bool, String)>,
}

impl Report {
    fn add(
        &mut self,
        kind: &str,
        name: &str,
        res: std::result::Result<(), String>,
        took: Duration,
    ) {
        match &res {
            Ok(()) => println!("{kind} {name} ... ok"),
            Err(why) => println!("{kind} {name} ... FAILED ({why})"),
        }
        let verdict = if res.is_ok() { "ok" } else { "FAILED" };
        let summary = format!("{verdict:<6} {:>6.1}s  {kind} {name}", took.as_secs_f64());
        self.lines.push((res.is_ok(), summary));
    }

    fn step(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> bool {
        let t0 = Instant::now();
        let r = f().map_err(|e| e.to_string());
        let ok = r.is_ok();
        self.add("step", name, r, t0.elapsed());
        ok
    }
}

/// `cargo xtask test`.
pub fn cmd_test(paths: &Paths, args: &[String]) -> Result<()> {
    let o = parse_opts(args)?;
    let mut rep = Report::default();
    let full = o.only.is_none();
    if full {
        rep.step("host-tests", || {
            run_status(crate::cargo(paths).args([
                "test",
                "--workspace",
                "--exclude",
                "kexboot-boards",
            ]))
        });
    }
    if full {
        rep.step("fuzz-smoke", || crate::fuzz::smoke(paths));
    }
    let needs_fw = !o.no_e2e
        && CASES
            .iter()
            .any(|(n, fw, _)| *fw && o.only.as_deref().is_none_or(|c| c == *n));
    let fw_ok = (full || needs_fw)
        && rep.step("firmware-build", || {
            firmware::build(paths)
                .and_then(|_| firmware::build_probe(paths))
                .map(|_| ())
        });
    if full && !o.no_clippy {
        rep.step("clippy-host", || {
            run_status(crate::cargo(paths).args([
                "clippy",
                "--workspace",
                "--exclude",
                "kexboot-boards",
                "--all-targets",
            ]))
        });
        rep.step("clippy-firmware", || {
            run_status(crate::cargo(paths).args([
                "clippy",
                "-p",
                "kexboot-boards",
                "--target",
                firmware::TARGET,
            ]))
        });
    }
    if !o.no_e2e {
        let mut prepared = Err("not built".to_string());
        rep.step("assets", || {
            let a = assets::ensure(paths)?;
            let d = build_disks(paths, &a)?;
            prepared = Ok((a, d));
            Ok(())
        });
        for (name, needs_fw, body) in CASES {
            if o.only.as_deref().is_some_and(|c| c != *name) {
                continue;
            }
            let t0 = Instant::now();
            let res = match &prepared {
                Err(_) => Err("assets missing (see step assets)".into()),
                Ok(_) if *needs_fw && !fw_ok => Err("firmware build failed".into()),
                Ok(_) if *needs_fw && !paths.kexboot_bin().is_file() => {
                    Err("target/kexboot.bin missing".into())
                }
                Ok((a, d)) => {
                    let ctx = Ctx {
                        paths,
                        assets: a,
                        disks: d,
                    };
                    body(&ctx, name)
                }
            };
            rep.add("e2e", name, res, t0.elapsed());
        }
    }
    println!("\nsummary (logs in {}):", paths.e2e.display());
    for (_, l) in &rep.lines {
        println!("  {l}");
    }
    let passed = rep.lines.iter().filter(|(ok, _)| *ok).count();
    let failed = rep.lines.len() - passed;
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        Ok(())
    } else {
        Err(err!("{failed} failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(lines: &[&str]) -> Transcript {
        Transcript {
            lines: lines
                .iter()
                .map(|s| Line {
                    at: Duration::ZERO,
                    text: s.to_string(),
                })
                .collect(),
            timed_out: false,
            status: None,
            stderr: String::new(),
        }
    }

    #[test]
    fn userspace_checks() {
        let good = t(&[
            "kexboot 0.1.0 at EL2",
            "kexboot: starting kernel at 0x40200000",
            "KEXBOOT-E2E-BEGIN",
            "KEXBOOT-E2E cmdline=console=ttyAMA0 kexboot.test=image quiet ",
            "KEXBOOT-E2E el=[    0.0123] CPU: All CPU(s) started at EL2",
            "KEXBOOT-E2E cpus=2",
            "KEXBOOT-E2E-END",
        ]);
        assert_eq!(
            expect_userspace(&good, CMDLINE_IMAGE, Some("EL2"), Some(2)),
            Ok(())
        );
        assert!(expect_kexboot_started(&good).is_ok());
        assert_eq!(expect_banner(&good, "EL2"), Ok(()));
        assert!(expect_banner(&good, "EL1").is_err());
        assert!(expect_banner(&t(&["kexboot: starting kernel EL2"]), "EL2").is_err());
        assert!(expect_userspace(&good, CMDLINE_IMAGE, Some("EL1"), Some(2)).is_err());
        assert!(expect_userspace(&good, CMDLINE_IMAGE, None, Some(1)).is_err());
        assert!(expect_userspace(&good, CMDLINE_FALLBACK, None, None).is_err());
        let extra = t(&[
            "KEXBOOT-E2E-BEGIN",
            "KEXBOOT-E2E cmdline=console=ttyAMA0 kexboot.test=image quiet x",
            "KEXBOOT-E2E-END",
        ]);
        assert!(expect_userspace(&extra, CMDLINE_IMAGE, None, None).is_err());
        let prompt = t(&[
            "kexboot: error: /boot/missing-Image: not found",
            "kexboot> ",
        ]);
        let e = expect_userspace(&prompt, CMDLINE_IMAGE, None, None).unwrap_err();
        assert!(e.contains("prompt"), "{e}");
        assert!(error_naming(&prompt, "missing-Image").is_some());
        assert!(error_naming(&prompt, "corrupt-Image").is_none());
        assert!(expect_kexboot_started(&prompt).is_err());
        assert!(t(&[]).ending().contains("no console output"));
    }

    #[test]
    fn extlinux_format() {
        let s = extlinux(
            "a",
            &[Entry {
                label: "a",
                linux: "/boot/Image",
                initrd: "/boot/i",
                append: "x=1",
            }],
        );
        assert!(s.contains("default a\ntimeout 0\n"));
        assert!(s.contains("label a\n"));
        assert!(s.contains("    linux /boot/Image\n    initrd /boot/i\n    append x=1\n"));
    }

    #[test]
    fn opts() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(parse_opts(&a(&["--only", "el2-image-mbr", "--no-clippy"])).is_ok());
        assert!(parse_opts(&a(&["--only", "nope"])).is_err());
        assert!(parse_opts(&a(&["--only"])).is_err());
        assert!(parse_opts(&a(&["--bogus"])).is_err());
    }

    #[test]
    fn case_names_are_unique() {
        let mut names: Vec<_> = CASES.iter().map(|(n, _, _)| *n).collect();
        names.sort_unstable();
        let all = names.len();
        names.dedup();
        assert_eq!(all, names.len(), "a case is listed twice");
    }

    /// Every EL3 case also runs on `-cpu max` (SVE, SME, PAuth, ... handed to the NS world).
    #[test]
    fn every_el3_case_has_a_cpumax_variant() {
        let names: Vec<_> = CASES.iter().map(|(n, _, _)| *n).collect();
        let plain = names
            .iter()
            .filter(|n| n.starts_with("el3-") && !n.ends_with("-cpumax"));
        for n in plain {
            let max = format!("{n}-cpumax");
            assert!(names.contains(&max.as_str()), "no {max}");
        }
    }
}
