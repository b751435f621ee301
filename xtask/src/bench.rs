//! `cargo xtask bench`: host time from QEMU spawn to "kernel starts" and to the initramfs's
//! first marker, for kexboot, Debian's U-Boot (same disk) and Linux booted directly; medians of
//! N rounds, interleaved, printed as a table and written to `target/bench.md`; then the warm
//! reboot arms of [`crate::bench_warm`], the decompression arms of [`crate::bench_decomp`] and
//! the netboot arms of [`crate::bench_net`].

use crate::assets::{self, UBOOT_BIN};
use crate::bench_util::{self, cell, median, ratio, ratio_f, secs, Goal, Want};
use crate::check::{CMDLINE_DIRECT, KEXBOOT_STARTING};
use crate::disks::{self, Disks};
use crate::qemu::{self, Session, Wait};
use crate::util::{err, Context, Paths, Result};
use crate::{bench_decomp, bench_net, bench_warm, firmware, rpi3};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Time limit of one boot.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const BEGIN: &str = "KEXBOOT-E2E-BEGIN";

/// The three ways to boot the same kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arm {
    Kexboot,
    UBoot,
    Direct,
}

impl Arm {
    fn label(self) -> &'static str {
        match self {
            Arm::Kexboot => "kexboot",
            Arm::UBoot => "U-Boot (Debian) *",
            Arm::Direct => "Linux direct (-kernel)",
        }
    }
}

/// One boot's figures.
#[derive(Default)]
struct Sample {
    kernel: Option<Duration>,
    user: Option<Duration>,
    /// How long the kernel file took to read (host time between the console lines that
    /// bracket it).
    load: Option<Duration>,
    bench_lines: Vec<String>,
    /// The firmware's first console line (QEMU's own start-up is over by then).
    first: Option<Duration>,
    /// kexboot's relocation plan and relocation lines.
    relocation: Vec<String>,
    banner: Option<String>,
    error: Option<String>,
}

/// Machine arguments shared by every arm, so the figures compare.
fn machine() -> qemu::Args {
    qemu::Args::new("virt", qemu::DEFAULT_CPU, None)
}

/// The QEMU virt command line of `arm` booting `disk`.
fn virt_args(paths: &Paths, arm: Arm, disk: &std::path::Path, a: &assets::Assets) -> Vec<String> {
    match arm {
        Arm::Kexboot => machine().kernel(&paths.kexboot_bin()).disk(disk),
        Arm::UBoot => machine().bios(std::path::Path::new(UBOOT_BIN)).disk(disk),
        Arm::Direct => machine()
            .kernel(&a.image)
            .initrd(&a.initrd)
            .append(CMDLINE_DIRECT),
    }
    .into_vec()
}

/// The raspi3b command line of `arm`, all from the same SD card.
fn rpi3_args(paths: &Paths, arm: Arm, r: &rpi3::Rpi3, a: &assets::Assets) -> Vec<String> {
    match arm {
        Arm::Kexboot => rpi3::args(r, &paths.kexboot_bin()),
        Arm::UBoot => rpi3::args(r, &r.uboot),
        Arm::Direct => rpi3::args(r, &r.image)
            .initrd(&a.initrd)
            .append(rpi3::CMDLINE_RPI3),
    }
    .into_vec()
}

/// Host time between the first line matching `from` and the line after the first matching
/// `to_or_next` (or, for `None`, simply the next line).
fn between(s: &Session, from: &str, to: Option<&str>) -> Option<Duration> {
    let lines = s.lines();
    let i = lines.iter().position(|l| l.text.contains(from))?;
    let end = match to {
        Some(t) => lines[i..].iter().find(|l| l.text.contains(t))?,
        None => lines.get(i + 1)?,
    };
    end.at.checked_sub(lines[i].at)
}

fn run_one(paths: &Paths, arm: Arm, round: usize, args: Vec<String>, tag: &str) -> Sample {
    let name = format!(
        "bench{tag}-{}-{}",
        format!("{arm:?}").to_lowercase(),
        round + 1
    );
    let log = paths.e2e.join(format!("{name}.log"));
    let mut smp = Sample::default();
    let mut s = match Session::spawn(&args, Some(&log)) {
        Ok(s) => s,
        Err(e) => {
            smp.error = Some(e.to_string());
            return smp;
        }
    };
    let deadline = Instant::now() + RUN_TIMEOUT;
    let fail = |w: Wait, what: &str, s: &Session| -> String {
        let how = match w {
            Wait::Exited => "qemu exited",
            _ => "timeout",
        };
        let last = s.lines().last().map(|l| l.text.clone()).unwrap_or_default();
        format!("{how} before {what:?} (last line {last:?})")
    };
    let start_marker = match arm {
        Arm::Kexboot => Some(KEXBOOT_STARTING),
        Arm::UBoot => Some("Starting kernel"),
        Arm::Direct => None,
    };
    if arm == Arm::UBoot {
        // Stop the autoboot countdown, then type `boot` at the prompt. If the key came too late,
        // U-Boot goes on booting by itself and "Starting kernel" shows up instead of the prompt.
        let mut key_sent = false;
        loop {
            let w = s.wait_for_prompt(deadline, |l| {
                l.contains("Hit any key to stop autoboot")
                    || l.trim_start().starts_with("=>")
                    || l.trim_start().starts_with("U-Boot>")
                    || l.contains("Starting kernel")
            });
            match w {
                Wait::Found(l) if l.text.contains("Starting kernel") => {
                    smp.kernel = Some(l.at);
                    break;
                }
                Wait::Found(l) if l.text.contains("Hit any key") => {
                    if !key_sent {
                        s.send(b" ");
                        key_sent = true;
                    }
                }
                Wait::Found(_) => {
                    s.send(b"boot\r");
                    break;
                }
                w => {
                    smp.error = Some(fail(w, "U-Boot prompt", &s));
                    return smp;
                }
            }
        }
    }
    if let (Some(m), None) = (start_marker, smp.kernel) {
        match s.wait_for(deadline, |l| l.contains(m)) {
            Wait::Found(l) => smp.kernel = Some(l.at),
            w => smp.error = Some(fail(w, m, &s)),
        }
    }
    if smp.error.is_none() {
        match s.wait_for(deadline, |l| l.contains(BEGIN)) {
            Wait::Found(l) => smp.user = Some(l.at),
            w => smp.error = Some(fail(w, BEGIN, &s)),
        }
        s.wait_exit(Instant::now() + Duration::from_secs(15));
    }
    s.kill();
    smp.load = match arm {
        Arm::Kexboot => between(&s, "booting entry", Some("loaded kernel")),
        Arm::UBoot => between(&s, "Retrieving file: /Image", None),
        Arm::Direct => None,
    };
    smp.first = s
        .lines()
        .iter()
        .find(|l| !l.text.trim().is_empty() && !l.text.starts_with('#'))
        .map(|l| l.at);
    smp.relocation = s
        .lines()
        .iter()
        .filter(|l| l.text.contains("relocation plan:") || l.text.contains("] relocated "))
        .map(|l| l.text.trim().to_string())
        .collect();
    smp.bench_lines = s
        .lines()
        .iter()
        .filter(|l| l.text.starts_with("BENCH "))
        .map(|l| l.text.clone())
        .collect();
    smp.banner = s
        .lines()
        .iter()
        .find(|l| l.text.starts_with("U-Boot 20") || l.text.starts_with("kexboot "))
        .map(|l| l.text.trim().to_string());
    smp
}

/// `cargo xtask bench [--rounds N]`.
pub fn cmd_bench(paths: &Paths, args: &[String]) -> Result<()> {
    let mut rounds = 3usize;
    let (mut cold, mut warm, mut net, mut decomp) = (true, true, true, true);
    let mut verify = true;
    let mut rpi3 = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--board" => match it.next().map(String::as_str) {
                Some("rpi3") => rpi3 = true,
                Some("qemu-virt") => rpi3 = false,
                other => return Err(err!("--board: qemu-virt or rpi3, not {other:?}")),
            },
            "--rounds" => {
                rounds = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=50).contains(n))
                    .ok_or_else(|| err!("--rounds needs a number from 1 to 50"))?
            }
            "--warm-only" => (cold, net, decomp, verify) = (false, false, false, false),
            "--verify" => (cold, warm, net, decomp) = (false, false, false, false),
            "--no-verify" => verify = false,
            "--no-warm" => warm = false,
            "--net-only" => (cold, warm, decomp, verify) = (false, false, false, false),
            "--no-net" => net = false,
            "--decompress" => (cold, warm, net, verify) = (false, false, false, false),
            "--no-decompress" => decomp = false,
            other => return Err(err!("unexpected argument `{other}`")),
        }
    }
    if !cold && !warm && !net && !decomp && !verify {
        return Err(err!("these flags leave nothing to run"));
    }
    // The firmware first: the warm initramfs carries kexboot.bin.
    let fw = firmware::build(paths);
    if let Err(e) = &fw {
        eprintln!("bench: firmware build failed, kexboot arms skipped: {e}");
    }
    std::fs::create_dir_all(&paths.e2e).ctx(paths.e2e.display())?;
    let out = paths.target.join("bench.md");
    if decomp && !cold && !warm && !net && !rpi3 {
        // `--decompress`: only reads the kernel and initramfs of the assets and makes its own
        // disks; the section replaces the old one of bench.md.
        let k = bench_decomp::Kernel {
            image: &paths.assets.join("Image"),
            initrd: &paths.assets.join("initrd.img"),
        };
        let mut goals = Vec::new();
        let mut section = bench_decomp::decomp_bench(paths, rounds, &k, fw.is_ok(), &mut goals);
        section += &bench_util::goals_list(&goals, &today());
        print!("\n{section}");
        bench_util::write_section(&out, "Decompression", &section)?;
        println!("\nwritten to {}", out.display());
        return Ok(());
    }
    let a = assets::ensure(paths)?;
    if verify && !cold && !warm && !net && !decomp && !rpi3 {
        // `--verify`: FIT verification alone; the section replaces the old one of bench.md.
        let section = crate::bench_fit::verify_bench(paths, rounds, &a);
        print!("\n{section}");
        bench_util::write_section(
            &out,
            "Verified boot: a signed 27 MB kernel FIT, kexboot vs U-Boot",
            &section,
        )?;
        println!("\nwritten to {}", out.display());
        return Ok(());
    }
    let mut md = String::from("# kexboot boot-time bench\n\n");
    if rpi3 {
        // The Pi's figures alone (its own kernel, card and U-Boot).
        md += &rpi3_bench(paths, rounds, &a, fw.is_ok())?;
        print!("\n{md}");
        let out = paths.target.join("bench-rpi3.md");
        std::fs::write(&out, &md).ctx(out.display())?;
        println!("\nwritten to {}", out.display());
        return Ok(());
    }
    let disks = disks::build_disks(paths, &a)?;
    let mut goals = Vec::new();
    let mut sections = String::new();
    if cold {
        sections += &cold_bench(paths, rounds, &a, &fw, &disks, &mut goals);
    }
    if warm {
        sections += &bench_warm::warm_bench(paths, rounds, &a, fw.is_ok(), &disks, &mut goals);
    }
    if decomp {
        let k = bench_decomp::Kernel {
            image: &a.image,
            initrd: &a.initrd,
        };
        sections += &bench_decomp::decomp_bench(paths, rounds, &k, fw.is_ok(), &mut goals);
    }
    if net {
        let mut section = bench_net::net_bench(paths, rounds, &a, fw.is_ok(), &mut goals);
        if !cold && !warm && !decomp {
            section += &bench_util::goals_list(&goals, &today());
            print!("\n{section}");
            bench_net::write_section(&out, &section)?;
            println!("\nwritten to {}", out.display());
            return Ok(());
        }
        sections += &section;
    }
    if verify {
        sections += &crate::bench_fit::verify_bench(paths, rounds, &a);
    }
    goals.sort_by_key(|g| g.part);
    md += &bench_util::goals_table(&goals, &today());
    md += &sections;
    print!("\n{md}");
    std::fs::write(&out, &md).ctx(out.display())?;
    println!("\nwritten to {}", out.display());
    Ok(())
}

/// Today's date (UTC) for the report, from `date`; "today" if that fails.
fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "today".into())
}

/// Every arm `rounds` times, interleaved; `args` gives an arm's QEMU command line.
fn measure(
    paths: &Paths,
    rounds: usize,
    arms: &[Arm],
    fw_ok: bool,
    tag: &str,
    args: impl Fn(Arm) -> Vec<String>,
) -> Vec<Vec<Sample>> {
    let mut samples: Vec<Vec<Sample>> = arms.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for (i, arm) in arms.iter().enumerate() {
            let smp = if *arm == Arm::Kexboot && !fw_ok {
                Sample {
                    error: Some("firmware build failed".into()),
                    ..Default::default()
                }
            } else {
                run_one(paths, *arm, r, args(*arm), tag)
            };
            eprintln!(
                "bench{tag}: round {} {:<8} kernel {:>7}s userspace {:>7}s{}",
                r + 1,
                format!("{arm:?}"),
                secs(smp.kernel),
                secs(smp.user),
                smp.error
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
            samples[i].push(smp);
        }
    }
    samples
}

/// The medians (kernel starts, userspace marker) of each arm.
/// The `ratio=` of the `BENCH <name> ...` line among `lines`.
fn bench_ratio<'a>(mut lines: impl Iterator<Item = &'a String>, name: &str) -> Option<f64> {
    lines.find_map(|l| {
        let rest = l.split_once(&format!("BENCH {name} "))?.1;
        rest.split(' ')
            .find_map(|w| w.strip_prefix("ratio="))?
            .parse()
            .ok()
    })
}

fn medians(samples: &[Vec<Sample>]) -> Vec<(Option<Duration>, Option<Duration>)> {
    samples
        .iter()
        .map(|s| {
            (
                median(s.iter().map(|x| x.kernel)),
                median(s.iter().map(|x| x.user)),
            )
        })
        .collect()
}

/// The table of kernel-start and userspace times, one row an arm.
fn times_table(md: &mut String, arms: &[Arm], samples: &[Vec<Sample>], rounds: usize) {
    let med = medians(samples);
    let _ = writeln!(
        md,
        "| boot path | kernel starts, s: median (min–max) | userspace marker, s: median (min–max) | ok rounds |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for (i, arm) in arms.iter().enumerate() {
        let ok = samples[i].iter().filter(|s| s.error.is_none()).count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {ok}/{rounds} |",
            arm.label(),
            cell(med[i].0, samples[i].iter().map(|x| x.kernel)),
            cell(med[i].1, samples[i].iter().map(|x| x.user))
        );
    }
    let _ = writeln!(md);
}

/// Banners and failed rounds, as list items.
fn notes(md: &mut String, arms: &[Arm], samples: &[Vec<Sample>]) {
    for (i, arm) in arms.iter().enumerate() {
        if let Some(b) = samples[i].iter().find_map(|s| s.banner.clone()) {
            let _ = writeln!(md, "- {arm:?} banner: `{b}`");
        }
        for (r, s) in samples[i].iter().enumerate() {
            if let Some(e) = &s.error {
                let _ = writeln!(md, "- {arm:?} round {}: {e}", r + 1);
            }
        }
    }
}

/// The Raspberry Pi 3 arms on QEMU raspi3b, all from the same SD card: kexboot, Debian's U-Boot
/// `rpi_3`, Linux direct. Also the kernel file's read time, as SD MB/s. Returns the markdown.
fn rpi3_bench(paths: &Paths, rounds: usize, a: &assets::Assets, fw_ok: bool) -> Result<String> {
    let r = rpi3::ensure(paths, &a.initrd)?;
    let arms = [Arm::Kexboot, Arm::UBoot, Arm::Direct];
    let samples = measure(paths, rounds, &arms, fw_ok, "-rpi3", |arm| {
        rpi3_args(paths, arm, &r, a)
    });
    let med = medians(&samples);
    let image = std::fs::metadata(&r.image).map(|m| m.len()).unwrap_or(0);
    let mut md = String::from("## Raspberry Pi 3 (QEMU raspi3b)\n\n");
    let _ = writeln!(
        md,
        "QEMU TCG `{} {}`, Debian's generic arm64 kernel ({image} bytes), the same initramfs and \
         SD card (`{}`), the firmware's `bcm2837-rpi-3-b.dtb`; host time from QEMU spawn; \
         median of {rounds} rounds.\n",
        qemu::QEMU,
        qemu::Args::bare(rpi3::MACHINE).into_vec().join(" "),
        r.sd.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
    );
    times_table(&mut md, &arms, &samples, rounds);
    let _ = writeln!(
        md,
        "- kexboot / U-Boot: kernel start {}, userspace {}",
        ratio(med[0].0, med[1].0),
        ratio(med[0].1, med[1].1)
    );
    for (i, arm) in arms.iter().take(2).enumerate() {
        let load = median(samples[i].iter().map(|x| x.load));
        let mbps = load
            .filter(|d| !d.is_zero())
            .map(|d| format!("{:.1} MB/s", image as f64 / d.as_secs_f64() / 1e6))
            .unwrap_or_else(|| "n/a".into());
        let _ = writeln!(
            md,
            "- {arm:?}: kernel read from SD in {} s median, {mbps}",
            secs(load)
        );
    }
    let _ = writeln!(
        md,
        "- \\* U-Boot's times include the keystroke round trip that skips its autoboot countdown."
    );
    notes(&mut md, &arms, &samples);
    Ok(md)
}

/// The cold-boot arms: kexboot, U-Boot and Linux direct from QEMU spawn. Returns the markdown.
fn cold_bench(
    paths: &Paths,
    rounds: usize,
    a: &assets::Assets,
    fw: &Result<std::path::PathBuf>,
    disks: &Disks,
    goals: &mut Vec<Goal>,
) -> String {
    let arms = [Arm::Kexboot, Arm::UBoot, Arm::Direct];
    let samples = measure(paths, rounds, &arms, fw.is_ok(), "", |arm| {
        virt_args(paths, arm, &disks.mbr, a)
    });
    let med = medians(&samples);
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).ok();
    let kb_size = fw.as_ref().ok().and_then(|p| size(p));
    let ub_size = size(std::path::Path::new(UBOOT_BIN));

    let mut md = String::new();
    let _ = writeln!(md, "## Cold boot\n");
    let _ = writeln!(
        md,
        "QEMU TCG `{} {}`, same kernel ({} bytes) and initramfs, disk `{}` over virtio-blk; \
         host time from QEMU spawn; median of {rounds} rounds.\n",
        qemu::QEMU,
        machine().into_vec().join(" "),
        size(&a.image).unwrap_or(0),
        disks
            .mbr
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?"),
    );
    times_table(&mut md, &arms, &samples, rounds);
    let _ = writeln!(
        md,
        "- kexboot / U-Boot: kernel start {}, userspace {}",
        ratio(med[0].0, med[1].0),
        ratio(med[0].1, med[1].1)
    );
    let _ = writeln!(
        md,
        "- kexboot / direct: userspace {}",
        ratio(med[0].1, med[2].1)
    );
    let kib = |s: Option<u64>| {
        s.map(|s| format!("{:.1} KiB", s as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into())
    };
    let _ = writeln!(
        md,
        "- size: kexboot.bin {} vs u-boot.bin {} ({})",
        kib(kb_size),
        kib(ub_size),
        match (kb_size, ub_size) {
            (Some(k), Some(u)) if u > 0 => format!("{:.1}%", 100.0 * k as f64 / u as f64),
            _ => "n/a".into(),
        }
    );
    let _ = writeln!(
        md,
        "- \\* U-Boot's times include the keystroke round trip that skips its autoboot countdown \
         (a key at \"Hit any key\", then `boot` at `=>`)."
    );
    // From each firmware's first console line: QEMU's own start-up (the same for both, and
    // most of the anchor's floor) left out.
    let from_first = |i: usize| {
        median(
            samples[i]
                .iter()
                .map(|x| x.kernel.zip(x.first).and_then(|(k, f)| k.checked_sub(f))),
        )
    };
    let (kf, uf) = (from_first(0), from_first(1));
    let in_place = samples[0]
        .iter()
        .find_map(|x| x.relocation.first())
        .and_then(|l| l.split_once("relocation plan: "))
        .map(|(_, r)| format!("; the relocation plan: {r}"))
        .unwrap_or_default();
    goals.push(
        Goal::ratio(
            "2. in place",
            "time to kernel entry from QEMU spawn, kexboot / U-Boot",
            ratio_f(med[0].0, med[1].0),
            Want::AtMost(0.35),
        )
        .from(format!(
            "kexboot {} s, U-Boot {} s{in_place}",
            cell(med[0].0, samples[0].iter().map(|x| x.kernel)),
            cell(med[1].0, samples[1].iter().map(|x| x.kernel)),
        )),
    );
    goals.push(
        Goal::ratio(
            "2. in place",
            "the same from each firmware's first console line (QEMU start-up left out)",
            ratio_f(kf, uf),
            Want::AtMost(0.35),
        )
        .from(format!("kexboot {} s, U-Boot {} s", secs(kf), secs(uf))),
    );
    let kib = |s: Option<u64>| s.map(|s| s as f64 / 1024.0);
    let size_goal = |what: &str, max: f64| Goal {
        unit: "KiB",
        ..Goal::ratio("3. size", what, kib(kb_size), Want::AtMost(max)).from(format!(
            "u-boot.bin (Debian qemu_arm64) {}",
            kib(ub_size).map_or("n/a".into(), |u| format!("{u:.1} KiB"))
        ))
    };
    goals.push(size_goal("kexboot.bin, qemu-virt, every feature", 400.0));
    goals.push(size_goal(
        "the Pi 3 image (the same kexboot.bin, kernel8.img)",
        300.0,
    ));
    notes(&mut md, &arms, &samples);
    // One more kexboot run on the disk that asks for the in-guest copy benchmark.
    let copy_run = match &fw {
        Ok(_) => run_one(
            paths,
            Arm::Kexboot,
            rounds,
            virt_args(paths, Arm::Kexboot, &disks.bench, a),
            "",
        ),
        Err(_) => Sample::default(),
    };
    if copy_run.bench_lines.is_empty() {
        let _ = writeln!(
            md,
            "- copy benchmark: no BENCH lines ({:?})",
            copy_run.error
        );
    }
    let bench: Vec<String> = samples[0]
        .iter()
        .chain(std::iter::once(&copy_run))
        .enumerate()
        .flat_map(|(r, s)| {
            s.bench_lines
                .iter()
                .map(move |l| format!("round {}: {l}", r + 1))
        })
        .collect();
    goals.push(
        Goal::ratio(
            "1. relocation",
            "copy engine (copy + clean to PoC) / best in-guest copy loop (copy only)",
            bench_ratio(copy_run.bench_lines.iter(), "engine-vs-best"),
            Want::AtLeast(0.9),
        )
        .from(format!(
            "64 MiB, best of 3 in the guest; engine / (best loop + the same clean pass): {}",
            bench_ratio(copy_run.bench_lines.iter(), "engine-vs-loop-and-clean")
                .map_or("n/a".into(), |r| format!("{r:.2}x"))
        )),
    );
    if let Some(r) = samples[0].iter().find(|x| !x.relocation.is_empty()) {
        let _ = writeln!(
            md,
            "\nkexboot's relocation on this cold boot (round 1):\n\n```"
        );
        for l in &r.relocation {
            let _ = writeln!(md, "{l}");
        }
        let _ = writeln!(md, "```");
    }
    if !bench.is_empty() {
        let _ = writeln!(md, "\nFirmware figures (`BENCH` lines):\n\n```");
        for l in bench {
            let _ = writeln!(md, "{l}");
        }
        let _ = writeln!(md, "```");
    }
    md
}
