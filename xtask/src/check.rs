//! What every e2e case file shares: the case context, one QEMU run's transcript, and the checks
//! on it (reached userspace, kexboot started, banner, error lines).

use crate::assets::Assets;
use crate::disks::Disks;
use crate::qemu::{self, Line, Session, Wait};
use crate::util::Paths;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// Output of one QEMU run.
pub(crate) struct Transcript {
    pub lines: Vec<Line>,
    pub timed_out: bool,
    pub status: Option<std::process::ExitStatus>,
    pub stderr: String,
}

/// Test helpers: console lines stamped at the given seconds, and a finished run made of them.
#[cfg(test)]
pub(crate) mod fake {
    use super::{Line, Transcript};
    use std::time::Duration;

    pub(crate) fn lines(v: &[(f64, &str)]) -> Vec<Line> {
        v.iter()
            .map(|(t, s)| Line {
                at: Duration::from_secs_f64(*t),
                text: s.to_string(),
            })
            .collect()
    }

    pub(crate) fn transcript(l: Vec<Line>) -> Transcript {
        Transcript {
            lines: l,
            timed_out: false,
            status: None,
            stderr: String::new(),
        }
    }
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
pub(crate) fn boot(args: Vec<String>, log: &Path) -> std::result::Result<Transcript, String> {
    boot_for(&args, log, case_timeout())
}

/// [`boot`] with its own time limit.
pub(crate) fn boot_for(
    args: &[String],
    log: &Path,
    limit: Duration,
) -> std::result::Result<Transcript, String> {
    let s = Session::spawn(args, Some(log)).map_err(|e| e.to_string())?;
    Ok(finish(s, Instant::now() + limit))
}

/// Runs a started session on as [`boot`] does (until the END marker, the prompt, a panic,
/// QEMU's exit or `deadline`) and makes its transcript.
pub(crate) fn finish(mut s: Session, deadline: Instant) -> Transcript {
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
    Transcript {
        lines: s.lines().to_vec(),
        timed_out,
        status: s.status(),
        stderr: s.stderr(),
    }
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
pub(crate) fn expect_banner(t: &Transcript, el: &str) -> std::result::Result<(), String> {
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
pub(crate) fn error_naming<'a>(t: &'a Transcript, file: &str) -> Option<(usize, &'a Line)> {
    t.find(|l| l.contains(file) && l.to_ascii_lowercase().contains("error"))
}

/// Everything a case needs.
pub(crate) struct Ctx<'a> {
    pub paths: &'a Paths,
    pub assets: &'a Assets,
    pub disks: &'a Disks,
}

impl Ctx<'_> {
    /// kexboot loaded by `-kernel` on machine `m` ([`qemu::DEFAULT_CPU`]), booting `disk`.
    pub(crate) fn kexboot(&self, m: &str, smp: u32, disk: &Path) -> Vec<String> {
        self.kexboot_on(m, qemu::DEFAULT_CPU, smp, disk)
    }

    /// [`Ctx::kexboot`] on another CPU model.
    pub(crate) fn kexboot_on(&self, m: &str, cpu: &str, smp: u32, disk: &Path) -> Vec<String> {
        qemu::Args::new(m, cpu, Some(smp))
            .kernel(&self.paths.kexboot_bin())
            .disk(disk)
            .into_vec()
    }

    pub(crate) fn log(&self, case: &str) -> PathBuf {
        self.paths.e2e.join(format!("{case}.log"))
    }
}

pub(crate) type CaseFn = fn(&Ctx, &str) -> std::result::Result<(), String>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disks::{CMDLINE_FALLBACK, CMDLINE_IMAGE};

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
}
