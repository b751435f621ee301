//! The warm re-entry QEMU cases: Linux booted by kexboot kexec's back into kexboot (through the
//! helper or kexec-tools), which boots the next kernel; several boots in one QEMU run, split into
//! one transcript per boot and checked boot by boot. Also the direct kexec baseline (Linux to
//! Linux with kexec-tools, no kexboot) that the bench compares against.

use crate::assets::Assets;
use crate::check::{case_timeout, is_prompt, Ctx, Transcript, KEXBOOT_STARTING};
use crate::qemu::{self, Line, Session, Wait};
use crate::warm::{
    direct_next_cmdline, entry_cmdline, Scenario, WarmAssets, GUEST_IP, GUEST_UDP_PORT, MACHINE,
    NO_MAP_PAGE, USER_DTB, USER_DTB_ENTRY,
};
use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The initramfs markers.
pub const BEGIN: &str = "KEXBOOT-E2E-BEGIN";
pub const END: &str = "KEXBOOT-E2E-END";
/// Printed by the warm `/init` right before `kexec -e` or the helper.
pub const WARM_START: &str = "KEXBOOT-WARM-START";
/// Printed by the warm `/init` when it could not reboot.
pub const WARM_FAILED: &str = "KEXBOOT-E2E warm-failed";
/// kexboot's last words after an exception or a panic.
pub const CPU_STOPPED: &str = "CPU stopped.";
pub const SMP: u32 = 2;

/// Time limit of a warm run: 240 s, or `$XTASK_E2E_TIMEOUT` when that is longer.
pub fn warm_timeout() -> Duration {
    case_timeout().max(Duration::from_secs(240))
}

/// A QEMU run through several boots: the whole transcript and one per boot.
pub struct Boots {
    /// Boot `k` (0-based): from the end of boot `k-1`'s initramfs (so kexboot's output and the
    /// previous `KEXBOOT-WARM-START` line) to its own `KEXBOOT-E2E-END`; the last one may be
    /// unfinished.
    pub segs: Vec<Transcript>,
    /// Everything.
    pub all: Transcript,
}

/// Splits console lines into boots: each boot ends with the first END after a BEGIN.
pub fn split_boots(lines: &[Line]) -> Vec<Vec<Line>> {
    let mut segs = Vec::new();
    let mut cur = Vec::new();
    let mut in_linux = false;
    for l in lines {
        cur.push(l.clone());
        if l.text.contains(BEGIN) {
            in_linux = true;
        } else if l.text.contains(END) && in_linux {
            segs.push(std::mem::take(&mut cur));
            in_linux = false;
        }
    }
    if !cur.is_empty() {
        segs.push(cur);
    }
    segs
}

/// Runs QEMU until `boots` initramfs runs ended (then until it powers off, or starts yet another
/// warm reboot), a prompt, a panic, a failed warm reboot, QEMU's exit or the timeout.
pub fn run_boots(
    args: &[String],
    log: &Path,
    boots: usize,
    timeout: Duration,
) -> Result<Boots, String> {
    let mut s = Session::spawn(args, Some(log)).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    let (mut ends, mut in_linux, mut timed_out) = (0usize, false, false);
    // A warm reboot through Linux's crash path (`via=crash`) panics on purpose.
    let mut crashing = false;
    loop {
        let w = s.wait_for_prompt(deadline, |l| {
            l.contains(BEGIN)
                || l.contains(END)
                || is_prompt(l)
                || (l.contains("Kernel panic") && !crashing)
                || l.contains(WARM_FAILED)
                || l.contains(CPU_STOPPED)
                // `via=` is complete once ` entry=` follows (the unfinished last line is tried too).
                || (l.contains(WARM_START) && l.contains(" entry="))
        });
        match w {
            Wait::Found(l) if l.text.contains(WARM_START) => {
                crashing = l.text.contains("via=crash");
            }
            Wait::Found(l) if l.text.contains(BEGIN) => {
                in_linux = true;
                crashing = false;
            }
            Wait::Found(l) if l.text.contains(END) => {
                if in_linux {
                    ends += 1;
                    in_linux = false;
                }
                if ends >= boots {
                    // Powers off, or (kexec -l without --append) reboots warm again: stop there.
                    let grace = Instant::now() + Duration::from_secs(15);
                    let _ = s.wait_for(grace, |l| l.contains(WARM_START));
                    break;
                }
            }
            Wait::Found(_) => {
                s.wait_exit(Instant::now() + Duration::from_secs(1));
                break;
            }
            Wait::Exited => break,
            Wait::Timeout => {
                timed_out = true;
                break;
            }
        }
    }
    s.kill();
    let all = Transcript {
        lines: s.lines().to_vec(),
        timed_out,
        status: s.status(),
        stderr: s.stderr(),
    };
    let parts = split_boots(&all.lines);
    let n = parts.len();
    let segs = parts
        .into_iter()
        .enumerate()
        .map(|(i, lines)| Transcript {
            lines,
            timed_out: i + 1 == n && timed_out,
            status: if i + 1 == n { all.status } else { None },
            stderr: all.stderr.clone(),
        })
        .collect();
    Ok(Boots { segs, all })
}

/// Host time from boot `k`'s `KEXBOOT-WARM-START` (printed by the previous boot) to its BEGIN.
pub fn warm_time(seg: &Transcript) -> Option<Duration> {
    let (i, start) = seg.find(|l| l.contains(WARM_START))?;
    let (j, begin) = seg.find(|l| l.contains(BEGIN))?;
    (j > i).then(|| begin.at.saturating_sub(start.at))
}

/// The value of the last `key=value` word of a command line.
pub fn last_param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// How kexboot must have been entered before a boot.
#[derive(Clone, Copy, Debug)]
pub enum Entered<'a> {
    /// Not through kexboot (direct kexec).
    NoKexboot,
    /// `kexboot: cold entry`, without a warning.
    Cold,
    /// `kexboot: warm entry (..., previous entry '<label>')`.
    Warm(&'a str),
}

/// What one boot must show.
#[derive(Clone, Debug)]
pub struct Expect<'a> {
    /// The `kexboot.test=<label>` word of the command line.
    pub entry: &'a str,
    /// The whole command line, when known exactly.
    pub cmdline: Option<String>,
    /// The last `kexboot.test.cycle=`.
    pub cycle: Option<u32>,
    pub entered: Entered<'a>,
    /// The pstore mark of this cycle must be in `KEXBOOT-E2E pstore=`.
    pub pstore_mark: Option<u32>,
    /// The warm `/init` ran (modules, pstore, reserved lines).
    pub warm_init: bool,
    /// CPUs Linux must report online.
    pub cpus: u32,
    /// Linux may say its CPUs are stuck (spin-table refusing kexec).
    pub allow_stuck: bool,
    /// The exception level Linux must report (`EL2`, or `EL1` on a machine without EL2).
    pub el: &'static str,
}

/// Why a boot never reached its initramfs.
fn no_userspace(seg: &Transcript) -> String {
    if let Some((_, l)) = seg.find(|l| l.contains(WARM_FAILED)) {
        return format!(
            "the previous Linux could not reboot warm: {:?}",
            l.text.trim()
        );
    }
    if let Some((i, _)) = seg.find(|l| l.contains(WARM_START)) {
        let after = seg.lines[i + 1..]
            .iter()
            .filter(|l| !l.text.trim().is_empty())
            .count();
        if after == 0 {
            return format!(
                "no console output at all after KEXBOOT-WARM-START: kexboot did not come up after \
                 kexec -e (warm entry missing in the firmware?); {}",
                seg.ending()
            );
        }
    }
    if seg.has_prompt() {
        return "kexboot gave up and showed its prompt".into();
    }
    if let Some((_, l)) = seg.find(|l| l.contains("Kernel panic")) {
        return format!("kernel panic: {}", l.text.trim());
    }
    seg.ending()
}

/// The checks of one boot (`k` is 1-based, for the messages).
pub fn check_boot(seg: &Transcript, k: usize, e: &Expect) -> Result<(), String> {
    let fail = |m: String| Err(format!("boot {k} ({}): {m}", e.entry));
    let Some((b, _)) = seg.find(|l| l.contains(BEGIN)) else {
        return fail(format!("no {BEGIN}: {}", no_userspace(seg)));
    };
    let before = &seg.lines[..b];
    let said = |p: &str| {
        before
            .iter()
            .find(|l| l.text.contains(p))
            .map(|l| l.text.trim().to_string())
    };
    match e.entered {
        Entered::NoKexboot => {}
        Entered::Cold => match said("kexboot: cold entry") {
            Some(l) if l.ends_with("kexboot: cold entry") => {}
            Some(l) => return fail(format!("expected a clean cold entry, kexboot said {l:?}")),
            None => {
                let warm = said("kexboot: warm entry")
                    .map(|l| format!(", it said {l:?}"))
                    .unwrap_or_default();
                return fail(format!(
                    "no \"kexboot: cold entry\" line before the kernel{warm}"
                ));
            }
        },
        Entered::Warm(prev) => match said("kexboot: warm entry") {
            Some(l) if l.contains(&format!("previous entry '{prev}'")) => {}
            Some(l) => {
                return fail(format!(
                    "warm entry line {l:?} does not name previous entry '{prev}'"
                ))
            }
            None => {
                let why = match said("kexboot: cold entry") {
                    Some(l) => {
                        format!("kexboot said {l:?}: it did not find or accept its handoff record")
                    }
                    None if said("kexboot").is_none() => {
                        "no kexboot output before the kernel".into()
                    }
                    None => {
                        "no cold/warm line at all (firmware does not report its entry yet?)".into()
                    }
                };
                return fail(format!("no \"kexboot: warm entry\" line: {why}"));
            }
        },
    }
    if !matches!(e.entered, Entered::NoKexboot) && said(KEXBOOT_STARTING).is_none() {
        return fail(format!(
            "no {KEXBOOT_STARTING:?} line before the initramfs ran"
        ));
    }
    let cmdline = seg.marker("cmdline").unwrap_or("").trim();
    let want_word = format!("kexboot.test={}", e.entry);
    if !cmdline.split_whitespace().any(|w| w == want_word) {
        return fail(format!(
            "command line {cmdline:?} lacks {want_word:?}: another entry booted"
        ));
    }
    if let Some(want) = &e.cmdline {
        if cmdline != want.trim() {
            return fail(format!("command line {cmdline:?}, expected {want:?}"));
        }
    }
    if let Some(c) = e.cycle {
        let got = last_param(cmdline, "kexboot.test.cycle");
        if got != Some(c.to_string().as_str()) {
            return fail(format!(
                "last kexboot.test.cycle is {got:?}, expected {c} (words after ` -- ` not appended?): {cmdline:?}"
            ));
        }
    }
    let el = seg.marker("el").unwrap_or("none");
    if !el.contains(e.el) {
        return fail(format!("el line {:?} does not say {}", el.trim(), e.el));
    }
    let cpus = seg.marker("cpus").unwrap_or("none").trim();
    if cpus != e.cpus.to_string() {
        return fail(format!(
            "cpus={cpus}, expected {} (secondary CPUs not brought back?)",
            e.cpus
        ));
    }
    for bad in ["failed to come online", "CPUs stuck", "stuck in the kernel"] {
        if let Some((_, l)) = seg.find(|l| l.contains(bad)) {
            if !e.allow_stuck {
                return fail(format!("Linux said {:?}", l.text.trim()));
            }
        }
    }
    if e.warm_init {
        let m = seg.marker("modules").unwrap_or("none").trim();
        if m != "ok" {
            return fail(format!("modules={m}"));
        }
    }
    if let Some(n) = e.pstore_mark {
        let p = seg.marker("pstore").unwrap_or("(no pstore line)").trim();
        let mark = format!("KEXBOOT-PSTORE-MARK cycle={n}");
        if !p.contains(&mark) {
            let files = seg.marker("pstore-files").unwrap_or("").trim();
            return fail(format!(
                "pstore lacks {mark:?} of the previous boot: pstore={p:?}, files in /sys/fs/pstore: {files:?}"
            ));
        }
    }
    if seg.find(|l| l.contains(END)).is_none() {
        return fail(format!("no {END}: {}", seg.ending()));
    }
    Ok(())
}

/// The `/reserved-memory` node names a boot listed.
fn reserved(seg: &Transcript) -> Vec<String> {
    seg.marker("reserved")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The first boot has the ramoops and handoff regions; every later boot still has every one of
/// them at the same address.
pub fn check_reserved(segs: &[Transcript]) -> Result<(), String> {
    let Some(first) = segs.first() else {
        return Err("no boots".into());
    };
    let r0 = reserved(first);
    for want in ["ramoops@", "kexboot-handoff@"] {
        if !r0.iter().any(|n| n.starts_with(want)) {
            return Err(format!(
                "boot 1: no /reserved-memory/{want}... node (reserved={r0:?})"
            ));
        }
    }
    for (k, s) in segs.iter().enumerate().skip(1) {
        let r = reserved(s);
        if r.is_empty() && s.find(|l| l.contains(BEGIN)).is_none() {
            continue;
        }
        for n in &r0 {
            if !r.contains(n) {
                return Err(format!(
                    "boot {}: /reserved-memory/{n} of boot 1 is gone or moved (reserved={r:?})",
                    k + 1
                ));
            }
        }
    }
    Ok(())
}

fn warm_assets<'a>(c: &'a Ctx) -> Result<&'a WarmAssets, String> {
    c.assets
        .warm
        .as_ref()
        .map_err(|e| format!("no warm initramfs: {e}"))
}

/// The warm initramfs and the disk of `s`, with what `s` needs in the initramfs.
pub(crate) fn prepare<'a>(
    c: &'a Ctx,
    s: Scenario,
    helper: bool,
) -> Result<(&'a WarmAssets, &'a Path), String> {
    let w = warm_assets(c)?;
    if !w.kexboot {
        return Err("target/kexboot.bin was not in the warm initramfs (firmware not built)".into());
    }
    if helper {
        if let Err(e) = &w.helper {
            return Err(format!(
                "helper /sbin/kexboot-reboot is not in the warm initramfs: {e}"
            ));
        }
    }
    let disks = c
        .disks
        .warm
        .as_ref()
        .map_err(|e| format!("no warm disks: {e}"))?;
    let d = disks.get(s).ok_or_else(|| format!("no disk for {s:?}"))?;
    Ok((w, d))
}

/// Runs `boots` boots of kexboot on the disk.
fn run_kexboot(c: &Ctx, name: &str, disk: &Path, boots: usize) -> Result<Boots, String> {
    run_boots(
        &c.kexboot(MACHINE, SMP, disk),
        &c.log(name),
        boots,
        warm_timeout(),
    )
}

/// A boot of a warm entry through kexboot.
pub(crate) fn warm_expect<'a>(entry: &'a str, cycle: u32, entered: Entered<'a>) -> Expect<'a> {
    Expect {
        entry,
        cmdline: None,
        cycle: Some(cycle),
        entered,
        pstore_mark: cycle.checked_sub(1).filter(|n| *n > 0),
        warm_init: true,
        el: "EL2",
        cpus: SMP,
        allow_stuck: false,
    }
}

pub(crate) fn seg(b: &Boots, k: usize) -> Result<&Transcript, String> {
    b.segs.get(k - 1).ok_or_else(|| {
        format!(
            "boot {k} never started ({} boots seen): {}",
            b.segs.len(),
            b.all.ending()
        )
    })
}

/// cold → warm-b → warm-a → warm-b through the helper, every boot checked.
pub fn case_helper_3_cycles(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::Helper3, true)?;
    let b = run_kexboot(c, name, disk, 4)?;
    let order = ["warm-a", "warm-b", "warm-a", "warm-b"];
    for (i, entry) in order.iter().enumerate() {
        let k = i + 1;
        let entered = if k == 1 {
            Entered::Cold
        } else {
            Entered::Warm(order[i - 1])
        };
        check_boot(seg(&b, k)?, k, &warm_expect(entry, k as u32, entered))?;
    }
    check_reserved(&b.segs)?;
    expect_poweroff(&b)
}

/// The last boot powered the machine off.
pub(crate) fn expect_poweroff(b: &Boots) -> Result<(), String> {
    if b.all.timed_out || b.all.status.is_none() {
        return Err(format!(
            "QEMU did not power off after the last boot: {}",
            b.all.ending()
        ));
    }
    Ok(())
}

/// `kexec -l /boot/kexboot.bin` + `kexec -e`: the default entry boots with its own append only.
pub fn case_tools_default(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::ToolsDefault, false)?;
    let b = run_kexboot(c, name, disk, 2)?;
    check_boot(seg(&b, 1)?, 1, &warm_expect("warm-a", 1, Entered::Cold))?;
    let mut e = warm_expect("warm-a", 1, Entered::Warm("warm-a"));
    e.cmdline = Some(Scenario::ToolsDefault.append("warm-a"));
    e.pstore_mark = Some(1);
    check_boot(seg(&b, 2)?, 2, &e)?;
    check_reserved(&b.segs)
}

/// `kexec -l /boot/kexboot.bin --dtb=/sys/firmware/fdt --append="kexboot.entry=warm-b -- ..."`.
pub fn case_tools_append(c: &Ctx, name: &str) -> Result<(), String> {
    tools_append(c, name, MACHINE, "EL2")
}

/// The same on a machine without EL2: kexboot and Linux run at EL1.
pub fn case_tools_append_el1(c: &Ctx, name: &str) -> Result<(), String> {
    tools_append(c, name, "virt", "EL1")
}

fn tools_append(c: &Ctx, name: &str, m: &str, el: &'static str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::ToolsAppend, false)?;
    let b = run_boots(&c.kexboot(m, SMP, disk), &c.log(name), 2, warm_timeout())?;
    let mut first = warm_expect("warm-a", 1, Entered::Cold);
    first.el = el;
    check_boot(seg(&b, 1)?, 1, &first)?;
    let mut second = warm_expect("warm-b", 2, Entered::Warm("warm-a"));
    second.el = el;
    check_boot(seg(&b, 2)?, 2, &second)?;
    check_reserved(&b.segs)?;
    expect_poweroff(&b)
}

/// The helper names an entry that does not exist: kexboot says so and boots the default.
pub fn case_bad_entry(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::BadEntry, true)?;
    let b = run_kexboot(c, name, disk, 2)?;
    check_boot(seg(&b, 1)?, 1, &warm_expect("warm-a", 1, Entered::Cold))?;
    let s2 = seg(&b, 2)?;
    // Whether the ` -- ` words still apply to the default entry is not specified: no cycle check.
    let mut e = warm_expect("warm-a", 2, Entered::Warm("warm-a"));
    e.cycle = None;
    e.pstore_mark = Some(1);
    check_boot(s2, 2, &e)?;
    let begin = s2.find(|l| l.contains(BEGIN)).map(|(i, _)| i).unwrap_or(0);
    if !s2.lines[..begin]
        .iter()
        .any(|l| l.text.contains("does-not-exist"))
    {
        return Err(
            "boot 2: kexboot did not say that entry 'does-not-exist' does not exist".into(),
        );
    }
    Ok(())
}

/// `kexboot-reboot --image /boot/Image` exits 2 with "not a kexboot image", loads nothing, and
/// Linux goes on.
pub fn case_helper_refuses(c: &Ctx, name: &str) -> Result<(), String> {
    let (w, disk) = prepare(c, Scenario::Refuse, false)?;
    let b = run_kexboot(c, name, disk, 1)?;
    let s = seg(&b, 1)?;
    check_boot(
        s,
        1,
        &Expect {
            entry: "warm-a",
            cmdline: Some(Scenario::Refuse.append("warm-a")),
            cycle: None,
            entered: Entered::Cold,
            pstore_mark: None,
            warm_init: true,
            el: "EL2",
            cpus: SMP,
            allow_stuck: false,
        },
    )?;
    let rc = s.marker("helper-rc").unwrap_or("none").trim();
    let out = s.marker("helper-out").unwrap_or("").trim();
    if let Err(e) = &w.helper {
        return Err(format!(
            "helper not in the initramfs ({e}); it said rc={rc} {out:?}"
        ));
    }
    if rc != "2" {
        return Err(format!(
            "kexboot-reboot --image /boot/Image exited {rc}, expected 2 (output {out:?})"
        ));
    }
    if !out.contains("not a kexboot image") {
        return Err(format!(
            "helper output {out:?} does not say \"not a kexboot image\""
        ));
    }
    let loaded = s.marker("kexec-loaded").unwrap_or("none").trim();
    if loaded != "0" {
        return Err(format!(
            "/sys/kernel/kexec_loaded={loaded} after the refusal: something was loaded"
        ));
    }
    if s.find(|l| l.contains("KEXBOOT-E2E still-running"))
        .is_none()
    {
        return Err("Linux did not go on after the helper refused".into());
    }
    expect_poweroff(&b)
}

/// QEMU arguments booting Linux directly on the warm initramfs, asked to kexec `via`
/// (`direct` or `direct-i`) into `/boot/Image` + `/boot/initrd.img`.
pub fn direct_args(a: &Assets, w: &WarmAssets, via: &str) -> Vec<String> {
    let cmdline = format!(
        "{} kexboot.test.cycle=1 kexboot.test.cycles=2 kexboot.test.via={via}",
        entry_cmdline("direct")
    );
    qemu::Args::machine(MACHINE, SMP)
        .kernel(&a.image)
        .initrd(&w.initrd)
        .append(&cmdline)
        .into_vec()
}

/// What the direct arms' second boot must show.
pub fn direct_expect(via: &str) -> Expect<'static> {
    Expect {
        entry: if via == "direct-i" {
            "direct-i-next"
        } else {
            "direct-next"
        },
        cmdline: Some(direct_next_cmdline(via)),
        cycle: None,
        entered: Entered::NoKexboot,
        pstore_mark: None,
        warm_init: false,
        el: "EL2",
        cpus: SMP,
        allow_stuck: false,
    }
}

/// Linux → kexec-tools (`kexec -l Image --initrd --append`, default checks) → Linux, no kexboot:
/// proves the warm initramfs and kexec-tools, and is the bench's baseline.
pub fn case_direct_baseline(c: &Ctx, name: &str) -> Result<(), String> {
    let w = warm_assets(c)?;
    let b = run_boots(
        &direct_args(c.assets, w, "direct"),
        &c.log(name),
        2,
        warm_timeout(),
    )?;
    let mut first = warm_expect("direct", 1, Entered::NoKexboot);
    first.pstore_mark = None;
    check_boot(seg(&b, 1)?, 1, &first)?;
    let s2 = seg(&b, 2)?;
    check_boot(s2, 2, &direct_expect("direct"))?;
    if let Some(t) = warm_time(s2) {
        println!(
            "  {name}: kexec -e to the next userspace: {:.2} s",
            t.as_secs_f64()
        );
    }
    expect_poweroff(&b)
}

/// QEMU's PSCI with 4 CPUs: a warm cycle (kexec-tools, `--append`) ends with 4 CPUs online,
/// and kexboot found every secondary off (PSCI CPU_OFF by Linux) on its warm entry.
pub fn case_psci_smp4_warm(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::ToolsAppend, false)?;
    let b = run_boots(
        &c.kexboot(MACHINE, 4, disk),
        &c.log(name),
        2,
        warm_timeout(),
    )?;
    let mut first = warm_expect("warm-a", 1, Entered::Cold);
    first.cpus = 4;
    check_boot(seg(&b, 1)?, 1, &first)?;
    let mut second = warm_expect("warm-b", 2, Entered::Warm("warm-a"));
    second.cpus = 4;
    let s2 = seg(&b, 2)?;
    check_boot(s2, 2, &second)?;
    if s2.find(|l| l.contains("3 of 3 secondaries off")).is_none() {
        return Err("kexboot's warm entry did not find all 3 secondaries off".into());
    }
    if s2
        .find(|l| l.contains("before the jump: all 3 secondaries off"))
        .is_none()
    {
        return Err("no check that all 3 secondaries were off before the jump".into());
    }
    expect_poweroff(&b)
}

/// spin-table mode with 4 CPUs (QEMU's PSCI underneath): kexboot takes the secondaries into its
/// pen and Linux brings all 4 up through `cpu-release-addr`, with nothing "stuck".
pub fn case_spin_table_smp4(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::SpinTable, false)?;
    let b = run_boots(
        &c.kexboot(MACHINE, 4, disk),
        &c.log(name),
        1,
        warm_timeout(),
    )?;
    let mut e = warm_expect("warm-a", 1, Entered::Cold);
    e.cpus = 4;
    check_boot(seg(&b, 1)?, 1, &e)?;
    let has = |p: &str| b.all.find(|l| l.contains(p)).is_some();
    if !has("3 secondaries parked in kexboot's pen") {
        return Err("kexboot did not park the 3 secondaries in its spin-table pen".into());
    }
    if !has("before the jump: 3 secondaries in the spin-table pen") {
        return Err("no check of the pen before the jump".into());
    }
    expect_poweroff(&b)
}

/// UDP datagrams from the host to the guest for as long as a case runs: QEMU's user network
/// forwards `127.0.0.1:<port>` to the guest (`hostfwd`), so its NIC keeps receiving, also while
/// kexboot runs after a warm reboot. Bounded in time; only to the loopback address.
struct UdpSender {
    port: u16,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// One datagram every this long (about 500 a second).
const UDP_INTERVAL: Duration = Duration::from_millis(2);

impl UdpSender {
    /// Picks a free host port for QEMU's `hostfwd` and starts sending to it for at most `limit`.
    fn start(limit: Duration) -> Result<UdpSender, String> {
        // The port the OS hands out is free now; QEMU binds it right after (nobody else here
        // picks ports that way).
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(|e| format!("no free UDP port on 127.0.0.1: {e}"))?
            .port();
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("UDP socket: {e}"))?;
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (st, sn) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + limit;
            let mut n = 0u64;
            while !st.load(Ordering::Relaxed) && Instant::now() < end {
                let msg = format!("kexboot e2e datagram {n}");
                // Refused until QEMU listens: ignored, the next one goes all the same.
                if sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).is_ok() {
                    sn.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
                std::thread::sleep(UDP_INTERVAL);
            }
        });
        Ok(UdpSender {
            port,
            stop,
            sent,
            thread: Some(thread),
        })
    }

    /// Stops and returns how many datagrams went out.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.sent.load(Ordering::Relaxed)
    }
}

/// kexboot's entry line for the virtio-net device (`virtio::reset_all` at entry): its index in
/// the part of `seg` before the kernel, and the line.
fn net_reset_line(seg: &Transcript) -> Option<(usize, String)> {
    let begin = seg
        .find(|l| l.contains(BEGIN))
        .map_or(seg.lines.len(), |(i, _)| i);
    seg.lines[..begin]
        .iter()
        .enumerate()
        .find(|(_, l)| l.text.contains("virtio-mmio at") && l.text.contains("Network device"))
        .map(|(i, l)| (i, l.text.trim().to_string()))
}

/// The checks of kexboot's entry and of Linux's network in one boot of the NetRx run: on a
/// warm entry kexboot found the NIC the previous Linux left running and reset it before its
/// MMU (and heap) came up; Linux received the host's traffic.
pub fn check_net_boot(seg: &Transcript, k: usize, warm: bool) -> Result<(), String> {
    let fail = |m: String| Err(format!("boot {k}: {m}"));
    let Some((i, line)) = net_reset_line(seg) else {
        return fail(
            "kexboot did not report (and reset) the virtio-net device at entry: a NIC the \
             previous kernel left receiving would go on doing DMA into kexboot's memory"
                .into(),
        );
    };
    let running = line.contains("running (DRIVER_OK)");
    if warm && !running {
        return fail(format!(
            "on a warm entry the NIC must be found still running (Linux left it so): {line:?}"
        ));
    }
    if !warm && running {
        return fail(format!("the NIC was running on a cold entry: {line:?}"));
    }
    if line.contains("still reads") {
        return fail(format!("the NIC did not reset: {line:?}"));
    }
    match seg.find(|l| l.contains("MMU and caches on")) {
        Some((j, _)) if j > i => {}
        Some(_) => {
            return fail("the NIC was reset only after kexboot's MMU and heap were up".into())
        }
        None => return fail("no \"MMU and caches on\" line".into()),
    }
    if let Some((_, l)) = seg.find(|l| l.contains("KEXBOOT-E2E net-failed")) {
        return fail(format!("Linux: {:?}", l.text.trim()));
    }
    let rx: u64 = seg
        .marker("net-rx")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if rx == 0 {
        return fail("Linux's virtio-net received nothing (no host traffic?)".into());
    }
    Ok(())
}

/// Three warm cycles (cold, then warm-b, warm-a, warm-b, each through Linux's crash path, which
/// leaves devices running) with virtio-net up and receiving UDP from the host all along: every
/// warm entry finds the NIC still running and stops it before it picks memory, and every boot
/// comes up clean.
pub fn case_net_rx_3_cycles(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::NetRx, false)?;
    let sender = UdpSender::start(warm_timeout() + Duration::from_secs(30))?;
    let mut args = c.kexboot(MACHINE, SMP, disk);
    args.extend(qemu::user_net(&format!(
        "hostfwd=udp:127.0.0.1:{}-{GUEST_IP}:{GUEST_UDP_PORT}",
        sender.port
    )));
    let b = run_boots(&args, &c.log(name), 4, warm_timeout());
    let sent = sender.stop();
    let b = b?;
    println!("  {name}: {sent} UDP datagrams sent to the guest");
    let order = ["warm-a", "warm-b", "warm-a", "warm-b"];
    for (i, entry) in order.iter().enumerate() {
        let k = i + 1;
        let entered = match k {
            1 => Entered::Cold,
            _ => Entered::Warm(order[i - 1]),
        };
        let s = seg(&b, k)?;
        check_boot(s, k, &warm_expect(entry, k as u32, entered))?;
        check_net_boot(s, k, k > 1)?;
    }
    check_reserved(&b.segs)?;
    expect_poweroff(&b)
}

/// spin-table mode on a tree with a `no-map` firmware page (QEMU `-dtb`): kexboot never reads
/// that page (the pen-reuse check, `booti` of its address refused), and `booti` with a tree
/// from the disk still hands Linux kexboot's own changes: the pen's cpu nodes (all 4 CPUs up
/// through spin-table), the handoff and ramoops nodes.
pub fn case_user_dtb_no_map(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::UserDtb, false)?;
    let dtb = c.paths.assets.join(USER_DTB);
    let args = qemu::Args::machine(MACHINE, 4)
        .kernel(&c.paths.kexboot_bin())
        .disk(disk)
        .dtb(&dtb)
        .into_vec();
    let b = run_boots(&args, &c.log(name), 1, warm_timeout())?;
    if let Some((_, l)) = b.all.find(|l| l.contains(CPU_STOPPED)) {
        return Err(format!(
            "kexboot stopped ({:?}): a read of the no-map page at {NO_MAP_PAGE:#x}?",
            l.text.trim()
        ));
    }
    let refused = format!("booti: {NO_MAP_PAGE:#x} is not in RAM kexboot may read");
    if b.all.find(|l| l.contains(&refused)).is_none() {
        return Err(format!("no {refused:?} line"));
    }
    let s = seg(&b, 1)?;
    let e = Expect {
        entry: USER_DTB_ENTRY,
        cmdline: Some(Scenario::UserDtb.append(USER_DTB_ENTRY)),
        cycle: None,
        entered: Entered::Cold,
        pstore_mark: None,
        warm_init: true,
        el: "EL2",
        cpus: 4,
        allow_stuck: false,
    };
    check_boot(s, 1, &e)?;
    if s.find(|l| l.contains("3 secondaries parked in kexboot's pen"))
        .is_none()
    {
        return Err("kexboot did not park the 3 secondaries in its spin-table pen".into());
    }
    let r = reserved(s);
    let own = format!("firmware@{NO_MAP_PAGE:x}");
    for want in ["kexboot-handoff@", "ramoops@", own.as_str()] {
        if !r.iter().any(|n| n.starts_with(want)) {
            return Err(format!(
                "the tree booti handed over lacks /reserved-memory/{want}... (reserved={r:?})"
            ));
        }
    }
    expect_poweroff(&b)
}

/// A/B boot counting: with `bootlimit=2`, warm-a reboots (PSCI SYSTEM_RESET, a cold start)
/// without Linux resetting the counter; boots 1 and 2 run `bootcmd` (warm-a), boot 3 has
/// bootcount 3 > 2 and runs `altbootcmd` (warm-b).
pub fn case_bootlimit(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::BootLimit, false)?;
    let b = run_boots(
        &c.kexboot(MACHINE, SMP, disk),
        &c.log(name),
        3,
        warm_timeout(),
    )?;
    for (k, entry) in [(1, "warm-a"), (2, "warm-a"), (3, "warm-b")] {
        let s = seg(&b, k)?;
        let mut e = warm_expect(entry, 1, Entered::Cold);
        e.pstore_mark = None;
        check_boot(s, k, &e)?;
        let want = format!("bootcount {k}:");
        if s.find(|l| l.contains(&want)).is_none() {
            return Err(format!("boot {k}: no {want:?} line"));
        }
    }
    expect_poweroff(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[(f64, &str)]) -> Vec<Line> {
        v.iter()
            .map(|(t, s)| Line {
                at: Duration::from_secs_f64(*t),
                text: s.to_string(),
            })
            .collect()
    }

    fn tr(l: Vec<Line>) -> Transcript {
        Transcript {
            lines: l,
            timed_out: false,
            status: None,
            stderr: String::new(),
        }
    }

    fn boot(entered: &str, entry: &str, cycle: u32, pstore: &str) -> Vec<(f64, String)> {
        let a = Scenario::Helper3.append(entry);
        let cmd = if cycle > 1 {
            format!("{a} kexboot.test.cycle={cycle}")
        } else {
            a
        };
        [
            "kexboot 0.1.0 at EL2".to_string(),
            entered.to_string(),
            "kexboot: starting kernel at 0x40200000".into(),
            BEGIN.into(),
            format!("KEXBOOT-E2E cmdline={cmd}"),
            "KEXBOOT-E2E el=[ 0.1] CPU: All CPU(s) started at EL2".into(),
            "KEXBOOT-E2E cpus=2".into(),
            "KEXBOOT-E2E modules=ok".into(),
            format!("KEXBOOT-E2E pstore={pstore}"),
            "KEXBOOT-E2E reserved=kexboot-handoff@7fff0000 ramoops@7fe00000 ".into(),
            END.into(),
            "KEXBOOT-WARM-START t=5.1 via=helper entry=x".to_string(),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, s)| (cycle as f64 * 10.0 + i as f64, s))
        .collect()
    }

    fn run(boots: &[Vec<(f64, String)>]) -> Vec<Transcript> {
        let all: Vec<(f64, &str)> = boots
            .iter()
            .flatten()
            .map(|(t, s)| (*t, s.as_str()))
            .collect();
        split_boots(&lines(&all)).into_iter().map(tr).collect()
    }

    #[test]
    fn three_cycles_pass_and_each_fault_is_named() {
        let good = [
            boot("kexboot: cold entry", "warm-a", 1, "none"),
            boot(
                "kexboot: warm entry (handoff record #1, previous entry 'warm-a')",
                "warm-b",
                2,
                "KEXBOOT-PSTORE-MARK cycle=1 ",
            ),
            boot(
                "kexboot: warm entry (handoff record #2, previous entry 'warm-b')",
                "warm-a",
                3,
                "KEXBOOT-PSTORE-MARK cycle=2 ",
            ),
        ];
        let segs = run(&good);
        assert_eq!(segs.len(), 4, "three boots plus the trailing WARM-START");
        let e1 = warm_expect("warm-a", 1, Entered::Cold);
        let e2 = warm_expect("warm-b", 2, Entered::Warm("warm-a"));
        let e3 = warm_expect("warm-a", 3, Entered::Warm("warm-b"));
        assert_eq!(e1.pstore_mark, None);
        assert_eq!(e3.pstore_mark, Some(2));
        assert_eq!(check_boot(&segs[0], 1, &e1), Ok(()));
        assert_eq!(check_boot(&segs[1], 2, &e2), Ok(()));
        assert_eq!(check_boot(&segs[2], 3, &e3), Ok(()));
        assert_eq!(check_reserved(&segs), Ok(()));
        // WARM-START of boot 1 at 21.0 s, BEGIN of boot 2 at 23.0 s.
        assert_eq!(warm_time(&segs[1]), Some(Duration::from_secs(2)));
        assert_eq!(warm_time(&segs[0]), None);

        // Wrong entry, a cold entry where warm was due, a lost pstore mark, one CPU.
        assert!(check_boot(
            &segs[1],
            2,
            &warm_expect("warm-a", 2, Entered::Warm("warm-a"))
        )
        .unwrap_err()
        .contains("another entry booted"));
        let cold_again = run(&[
            good[0].clone(),
            boot("kexboot: cold entry", "warm-b", 2, "none"),
        ]);
        let e = check_boot(&cold_again[1], 2, &e2).unwrap_err();
        assert!(
            e.contains("did not find or accept its handoff record"),
            "{e}"
        );
        let lost = run(&[good[0].clone(), boot(&good[1][1].1, "warm-b", 2, "none")]);
        assert!(check_boot(&lost[1], 2, &e2)
            .unwrap_err()
            .contains("pstore lacks"));
        let mut one_cpu = good[1].clone();
        one_cpu[6].1 = "KEXBOOT-E2E cpus=1".into();
        let s = run(&[good[0].clone(), one_cpu]);
        assert!(check_boot(&s[1], 2, &e2).unwrap_err().contains("cpus=1"));
        let mut moved = good[1].clone();
        moved[9].1 = "KEXBOOT-E2E reserved=kexboot-handoff@7fff0000 ramoops@7fd00000".into();
        let s = run(&[good[0].clone(), moved]);
        assert!(check_reserved(&s).unwrap_err().contains("ramoops@7fe00000"));
        // A warm-entry line naming the wrong previous entry.
        assert!(check_boot(
            &segs[2],
            3,
            &warm_expect("warm-a", 3, Entered::Warm("warm-a"))
        )
        .is_err());
    }

    #[test]
    fn silence_after_kexec_says_kexboot_did_not_come_up() {
        let mut v = boot("kexboot: cold entry", "warm-a", 1, "none");
        v.push((99.0, String::new()));
        let segs = run(&[v]);
        let e = check_boot(
            &segs[1],
            2,
            &warm_expect("warm-b", 2, Entered::Warm("warm-a")),
        )
        .unwrap_err();
        assert!(
            e.contains("no console output at all after KEXBOOT-WARM-START"),
            "{e}"
        );
        let failed = tr(lines(&[(
            1.0,
            "KEXBOOT-E2E warm-failed: no /sbin/kexboot-reboot in the initramfs",
        )]));
        let e = check_boot(
            &failed,
            2,
            &warm_expect("warm-b", 2, Entered::Warm("warm-a")),
        )
        .unwrap_err();
        assert!(
            e.contains("could not reboot warm") && e.contains("kexboot-reboot"),
            "{e}"
        );
        let no_line = tr(lines(&[
            (1.0, "kexboot 0.1.0 at EL2"),
            (2.0, BEGIN),
            (3.0, END),
        ]));
        let e = check_boot(&no_line, 1, &warm_expect("warm-a", 1, Entered::Cold)).unwrap_err();
        assert!(e.contains("no \"kexboot: cold entry\" line"), "{e}");
    }

    #[test]
    fn net_boot_checks() {
        let net = "kexboot: virtio-mmio at 0xa003c00: Network device, status 0xf running (DRIVER_OK); reset";
        let good = [
            (0.0, net),
            (0.1, "MMU and caches on at EL2; heap 400 MiB"),
            (1.0, BEGIN),
            (2.0, "KEXBOOT-E2E net-rx=57"),
            (3.0, END),
        ];
        assert_eq!(check_net_boot(&tr(lines(&good)), 2, true), Ok(()));
        // Cold: the NIC must not have been running.
        assert!(check_net_boot(&tr(lines(&good)), 1, false)
            .unwrap_err()
            .contains("running on a cold entry"));
        // No line: the entry reset is missing.
        let e = check_net_boot(&tr(lines(&good[1..])), 2, true).unwrap_err();
        assert!(e.contains("did not report (and reset)"), "{e}");
        // Reset after the MMU came up.
        let late = [good[1], good[0], good[2], good[3], good[4]];
        let e = check_net_boot(&tr(lines(&late)), 2, true).unwrap_err();
        assert!(e.contains("only after"), "{e}");
        // Found idle on a warm entry: the scenario did not leave it running.
        let idle =
            "kexboot: virtio-mmio at 0xa003c00: Network device, status 0x0 not running; reset";
        let mut v = good;
        v[0].1 = idle;
        assert!(check_net_boot(&tr(lines(&v)), 2, true)
            .unwrap_err()
            .contains("still running"));
        // Linux received nothing.
        let mut v = good;
        v[3].1 = "KEXBOOT-E2E net-rx=0";
        assert!(check_net_boot(&tr(lines(&v)), 2, true)
            .unwrap_err()
            .contains("received nothing"));
    }

    #[test]
    fn params_and_split() {
        let c = "a kexboot.test.cycle=1 kexboot.test.cycles=4 kexboot.test.cycle=3";
        assert_eq!(last_param(c, "kexboot.test.cycle"), Some("3"));
        assert_eq!(last_param(c, "kexboot.test.cycles"), Some("4"));
        assert_eq!(last_param(c, "kexboot.test"), None);
        assert_eq!(last_param("", "x"), None);
        // An END without a BEGIN (the init's failure path) does not end a boot.
        let l = lines(&[
            (0.0, BEGIN),
            (1.0, END),
            (2.0, END),
            (3.0, "x"),
            (4.0, BEGIN),
            (5.0, END),
        ]);
        let s = split_boots(&l);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].len(), 4);
        assert!(split_boots(&[]).is_empty());
    }

    #[test]
    fn direct_expectations() {
        let e = direct_expect("direct-i");
        assert_eq!(e.entry, "direct-i-next");
        assert_eq!(
            e.cmdline.as_deref(),
            Some("console=ttyAMA0 kexboot.test=direct-i-next quiet")
        );
    }
}
