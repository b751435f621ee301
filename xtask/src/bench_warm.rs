//! The warm-reboot arms of `cargo xtask bench`: host time from the `KEXBOOT-WARM-START` line
//! (printed right before `kexec -e` or the helper) to the next kernel's `KEXBOOT-E2E-BEGIN`, for
//! the same kernel (`/boot/Image`) and initrd (`/boot/initrd.img`) reached through kexboot (helper,
//! or kexec-tools loading kexboot.bin) or loaded by kexec-tools directly (default checks, `-i`).

use crate::assets::Assets;
use crate::bench_util::{
    cell, median, own_ms, ratio, ratio_f, secs, stage_medians, stage_ms, Goal, Want, STAGES,
};
use crate::boots::{
    check_boot, direct_args, direct_expect, run_boots, warm_time, warm_timeout, Entered, Expect,
    SMP,
};
use crate::check::Transcript;
use crate::disks::Disks;
use crate::qemu;
use crate::util::Paths;
use crate::warm::{Scenario, WarmAssets, MACHINE};
use std::fmt::Write as _;
use std::time::Duration;

/// The ways from one Linux to the next.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arm {
    /// `kexboot-reboot --entry warm-plain`, then kexboot boots the entry.
    KexbootHelper,
    /// `kexec -l kexboot.bin --append="kexboot.entry=warm-plain -- ..."` + `kexec -e`.
    KexbootTools,
    /// `kexec -l Image --initrd --append` + `kexec -e` (purgatory checks the SHA-256 digests).
    Direct,
    /// The same with `-i` (`--no-checks`).
    DirectI,
}

impl Arm {
    const ALL: [Arm; 4] = [
        Arm::KexbootHelper,
        Arm::KexbootTools,
        Arm::Direct,
        Arm::DirectI,
    ];

    fn label(self) -> &'static str {
        match self {
            Arm::KexbootHelper => "through kexboot: `kexboot-reboot --entry` *",
            Arm::KexbootTools => "through kexboot: `kexec -l kexboot.bin` + `kexec -e`",
            Arm::Direct => "kexec-tools direct: `kexec -l Image --initrd` + `kexec -e`",
            Arm::DirectI => "kexec-tools direct, `kexec -l -i` (no checks)",
        }
    }

    fn scenario(self) -> Option<Scenario> {
        match self {
            Arm::KexbootHelper => Some(Scenario::BenchHelper),
            Arm::KexbootTools => Some(Scenario::BenchTools),
            _ => None,
        }
    }
}

/// One warm reboot's figures.
#[derive(Default)]
struct Sample {
    warm: Option<Duration>,
    /// kexboot's own "starting kernel ... ms after kexboot entry" line of the warm boot.
    kexboot_line: Option<String>,
    /// kexboot's stage timestamps on the warm boot ([`STAGES`]).
    stages: Vec<Option<f64>>,
    /// The same of the first (cold) boot of the same QEMU run, and its own part.
    cold_stages: Vec<Option<f64>>,
    cold_own: Option<Duration>,
    error: Option<String>,
}

fn run_one(
    paths: &Paths,
    arm: Arm,
    round: usize,
    a: &Assets,
    w: &WarmAssets,
    disks: &Disks,
) -> Sample {
    let mut smp = Sample::default();
    let args = match (arm.scenario(), &disks.warm) {
        (None, _) => direct_args(
            a,
            w,
            if arm == Arm::DirectI {
                "direct-i"
            } else {
                "direct"
            },
        ),
        (Some(s), Ok(d)) => match d.get(s) {
            Some(disk) => qemu::Args::machine(MACHINE, SMP)
                .kernel(&paths.kexboot_bin())
                .disk(disk)
                .into_vec(),
            None => {
                smp.error = Some(format!("no disk for {s:?}"));
                return smp;
            }
        },
        (Some(_), Err(e)) => {
            smp.error = Some(format!("no warm disks: {e}"));
            return smp;
        }
    };
    // Every page of guest RAM backed by the host before the guest runs, so the host's own
    // first-touch faults (this machine is itself a VM) stay out of the warm figures. The warm
    // times start after the first boot, so the preallocation is outside every figure here. (It
    // is not what makes the warm kernel read slower than the cold one: that stayed the same.)
    let mut args = args;
    args.push("-mem-prealloc".into());
    let name = format!(
        "bench-warm-{}-{}",
        format!("{arm:?}").to_lowercase(),
        round + 1
    );
    let b = match run_boots(
        &args,
        &paths.e2e.join(format!("{name}.log")),
        2,
        warm_timeout(),
    ) {
        Ok(b) => b,
        Err(e) => {
            smp.error = Some(e);
            return smp;
        }
    };
    let expect = match arm {
        Arm::Direct => direct_expect("direct"),
        Arm::DirectI => direct_expect("direct-i"),
        Arm::KexbootHelper | Arm::KexbootTools => Expect {
            entry: "warm-plain",
            cmdline: None,
            cycle: None,
            entered: Entered::Warm("warm-a"),
            pstore_mark: None,
            warm_init: false,
            el: "EL2",
            cpus: SMP,
            allow_stuck: false,
        },
    };
    let second: Option<&Transcript> = b.segs.get(1);
    match second {
        None => smp.error = Some(format!("no second boot: {}", b.all.ending())),
        Some(s) => match check_boot(s, 2, &expect) {
            Err(e) => smp.error = Some(e),
            Ok(()) => {
                smp.warm = warm_time(s);
                smp.kexboot_line = s
                    .find(|l| l.contains("ms after kexboot entry"))
                    .map(|(_, l)| l.text.trim().to_string());
                smp.stages = stage_ms(s.lines.iter().map(|l| l.text.as_str()));
                if let (Some(first), Some(_)) = (b.segs.first(), arm.scenario()) {
                    // The same kexboot's cold boot at the start of this run (same machine).
                    smp.cold_stages = stage_ms(first.lines.iter().map(|l| l.text.as_str()));
                    smp.cold_own = first
                        .lines
                        .iter()
                        .find_map(|l| own_ms(&l.text))
                        .map(Duration::from_millis);
                }
            }
        },
    }
    smp
}

/// Runs `rounds` interleaved rounds of every arm; returns the markdown section.
///
/// The warm/cold goal (kexboot's own part on the second boot of each run against the first, a
/// cold boot of the same kexboot on the same machine) is pushed onto `goals`.
pub fn warm_bench(
    paths: &Paths,
    rounds: usize,
    a: &Assets,
    fw_ok: bool,
    disks: &Disks,
    goals: &mut Vec<Goal>,
) -> String {
    let mut md = String::from("\n## Warm reboot (Linux → next Linux)\n\n");
    let w = match &a.warm {
        Ok(w) => w,
        Err(e) => {
            let _ = writeln!(md, "Not run: no warm initramfs ({e}).\n");
            return md;
        }
    };
    let mut samples: Vec<Vec<Sample>> = Arm::ALL.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for (i, arm) in Arm::ALL.iter().enumerate() {
            let smp = if arm.scenario().is_some() && !fw_ok {
                Sample {
                    error: Some("firmware build failed".into()),
                    ..Default::default()
                }
            } else if *arm == Arm::KexbootHelper && w.helper.is_err() {
                Sample {
                    error: Some(format!(
                        "no helper in the initramfs: {}",
                        w.helper.as_ref().err().map_or("", |e| e)
                    )),
                    ..Default::default()
                }
            } else {
                run_one(paths, *arm, r, a, w, disks)
            };
            eprintln!(
                "bench: warm round {} {:<14} kexec -e to userspace {:>7}s{}",
                r + 1,
                format!("{arm:?}"),
                secs(smp.warm),
                smp.error
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
            samples[i].push(smp);
        }
    }
    let med: Vec<Option<Duration>> = samples
        .iter()
        .map(|s| median(s.iter().map(|x| x.warm)))
        .collect();
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let _ = writeln!(
        md,
        "QEMU TCG `{} {}`; every arm boots the same kernel ({} bytes) and initrd ({} bytes) with \
         the same command line shape; host time from the `KEXBOOT-WARM-START` line (printed right \
         before `kexec -e` / the helper) to the next `KEXBOOT-E2E-BEGIN`; median of {rounds} \
         rounds, interleaved.\n",
        qemu::QEMU,
        qemu::Args::machine(MACHINE, SMP).into_vec().join(" "),
        size(&a.image),
        size(&a.initrd),
    );
    let _ = writeln!(
        md,
        "| warm reboot path | kexec -e → userspace, s: median (min–max) | ok rounds |"
    );
    let _ = writeln!(md, "|---|---:|---:|");
    for (i, arm) in Arm::ALL.iter().enumerate() {
        let ok = samples[i].iter().filter(|s| s.error.is_none()).count();
        let _ = writeln!(
            md,
            "| {} | {} | {ok}/{rounds} |",
            arm.label(),
            cell(med[i], samples[i].iter().map(|x| x.warm))
        );
    }
    let _ = writeln!(md);
    let (helper, tools, direct, direct_i) = (med[0], med[1], med[2], med[3]);
    for (name, k) in [("helper", helper), ("kexec -l kexboot.bin", tools)] {
        let _ = writeln!(
            md,
            "- kexboot ({name}) / direct: {}; / direct -i: {}{}",
            ratio(k, direct),
            ratio(k, direct_i),
            verdict(k, direct, direct_i)
        );
    }
    let own: Vec<Option<Duration>> = samples[..2]
        .iter()
        .flatten()
        .map(|x| {
            x.kexboot_line
                .as_deref()
                .and_then(own_ms)
                .map(Duration::from_millis)
        })
        .collect();
    let warm_own = median(own.iter().copied());
    let cold_own: Vec<Option<Duration>> =
        samples[..2].iter().flatten().map(|x| x.cold_own).collect();
    let cold_med = median(cold_own.iter().copied());
    goals.push(
        Goal::ratio(
            "6. warm reboot",
            "kexboot's own part (entry to kernel jump), warm / cold",
            ratio_f(warm_own, cold_med),
            Want::AtMost(1.5),
        )
        .from(format!(
            "warm {} s, cold {} s: the second and the first boot of each kexboot run (both \
             arms, same machine); kexboot's own \"ms after kexboot entry\" lines",
            cell(warm_own, own.iter().copied()),
            cell(cold_med, cold_own.iter().copied())
        )),
    );
    for (i, what) in [
        (
            0,
            "warm reboot through kexboot (helper) / direct `kexec -l -i`",
        ),
        (
            1,
            "warm reboot through kexboot (`kexec -l kexboot.bin`) / direct `kexec -l -i`",
        ),
    ] {
        goals.push(
            Goal::ratio(
                "6. warm reboot",
                what,
                ratio_f(med[i], direct_i),
                Want::AtMost(1.0),
            )
            .from(format!(
                "kexec -e to userspace: {} s vs {} s",
                cell(med[i], samples[i].iter().map(|x| x.warm)),
                cell(direct_i, samples[3].iter().map(|x| x.warm))
            )),
        );
    }
    let warm_stages = stage_medians(
        &samples[..2]
            .iter()
            .flatten()
            .map(|x| x.stages.clone())
            .collect::<Vec<_>>(),
    );
    let cold_stages = stage_medians(
        &samples[..2]
            .iter()
            .flatten()
            .map(|x| x.cold_stages.clone())
            .collect::<Vec<_>>(),
    );
    md += &stage_table(&cold_stages, &warm_stages);
    let _ = writeln!(
        md,
        "- \\* the helper arm's time also includes the helper loading kexboot (kexec_load) after \
         the start line; the other arms load before it."
    );
    for (i, arm) in Arm::ALL.iter().enumerate() {
        if let Some(l) = samples[i].iter().find_map(|s| s.kexboot_line.clone()) {
            let _ = writeln!(md, "- {arm:?}, kexboot on the warm boot: `{l}`");
        }
        for (r, s) in samples[i].iter().enumerate() {
            if let Some(e) = &s.error {
                let _ = writeln!(md, "- {arm:?} round {}: {e}", r + 1);
            }
        }
    }
    md
}

/// kexboot's stages on the cold boot and the warm one side by side: each stage's timestamp
/// (ms from kexboot's entry, medians) and the time since the stage before.
fn stage_table(cold: &[Option<f64>], warm: &[Option<f64>]) -> String {
    let mut md = String::from(
        "\nkexboot's own part, stage by stage (its console's timestamps, ms from its entry; \
         medians over both kexboot arms; cold: the first boot of each run, warm: the second):\n\n\
         | stage (console line) | cold, ms | since the stage before | warm, ms | since the stage before |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let f = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
    let delta = |v: &[Option<f64>], i: usize| match (v.get(i).copied().flatten(), i) {
        (Some(x), 0) => Some(x),
        (Some(x), _) => v.get(i - 1).copied().flatten().map(|p| x - p),
        _ => None,
    };
    for (i, (name, _)) in STAGES.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} |",
            f(cold.get(i).copied().flatten()),
            f(delta(cold, i)),
            f(warm.get(i).copied().flatten()),
            f(delta(warm, i)),
        );
    }
    md + "\n"
}

/// The goals: faster than direct with checks, within 1.5x of `-i` (better: faster).
fn verdict(k: Option<Duration>, direct: Option<Duration>, direct_i: Option<Duration>) -> String {
    let (Some(k), Some(d), Some(i)) = (k, direct, direct_i) else {
        return String::new();
    };
    let faster = if k < d {
        "faster than direct"
    } else {
        "NOT faster than direct"
    };
    let vs_i = if k <= i {
        "faster than -i"
    } else if k.as_secs_f64() <= 1.5 * i.as_secs_f64() {
        "within 1.5x of -i"
    } else {
        "NOT within 1.5x of -i"
    };
    format!(" ({faster}, {vs_i})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_side_by_side() {
        let mut cold = vec![None; STAGES.len()];
        let mut warm = vec![None; STAGES.len()];
        cold[0] = Some(14.0);
        cold[4] = Some(106.0);
        warm[0] = Some(25.0);
        warm[4] = Some(300.0);
        warm[3] = Some(60.0);
        let t = stage_table(&cold, &warm);
        assert!(
            t.contains("| MMU and caches on | 14.0 | 14.0 | 25.0 | 25.0 |"),
            "{t}"
        );
        assert!(
            t.contains("| kernel read | 106.0 | – | 300.0 | 240.0 |"),
            "{t}"
        );
        assert!(t.contains("| relocated | – | – | – | – |"), "{t}");
    }

    #[test]
    fn verdicts() {
        let s = |v: f64| Some(Duration::from_secs_f64(v));
        assert_eq!(
            verdict(s(2.0), s(9.0), s(3.0)),
            " (faster than direct, faster than -i)"
        );
        assert_eq!(
            verdict(s(4.0), s(9.0), s(3.0)),
            " (faster than direct, within 1.5x of -i)"
        );
        assert_eq!(
            verdict(s(10.0), s(9.0), s(3.0)),
            " (NOT faster than direct, NOT within 1.5x of -i)"
        );
        assert_eq!(verdict(None, s(9.0), s(3.0)), "");
        let labels: std::collections::BTreeSet<_> = Arm::ALL.iter().map(|a| a.label()).collect();
        assert_eq!(labels.len(), Arm::ALL.len());
    }
}
