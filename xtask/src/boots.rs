//! Several boots in one QEMU run (warm re-entry): run them, split the console into one
//! transcript per boot, and check each boot against what it must show. Used by the warm, EL3
//! and probe cases and by the warm bench arms.

use crate::assets::Assets;
use crate::check::{case_timeout, is_prompt, Ctx, Transcript, KEXBOOT_STARTING};
use crate::qemu::{self, Line, Session, Wait};
use crate::warm::{direct_next_cmdline, entry_cmdline, Scenario, WarmAssets, MACHINE};
use std::path::Path;
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
pub(crate) fn reserved(seg: &Transcript) -> Vec<String> {
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

pub(crate) fn warm_assets<'a>(c: &'a Ctx) -> Result<&'a WarmAssets, String> {
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
pub(crate) fn run_kexboot(c: &Ctx, name: &str, disk: &Path, boots: usize) -> Result<Boots, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::check::fake::{lines, transcript as tr};

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
