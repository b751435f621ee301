//! The decompression arms of `cargo xtask bench` (`--decompress` alone): kexboot's throughput per
//! kernel format, and gzip against Debian's U-Boot on the same file in the same run.
//!
//! - Per format: kexboot boots a disk whose extlinux.conf names the Debian kernel as
//!   `Image.gz` (`gzip -9 -n`, as the kernel's own `make Image.gz`), `Image.lz4` (`lz4 -l -9`),
//!   `Image.zst` (`zstd -19`) or the plain `Image`; the figures are the guest's own lines
//!   (`loaded kernel ...` and `decompressed ...`, timed by the arch timer), QEMU is stopped once
//!   they are out.
//! - gzip against U-Boot: both firmwares, at their shell, `load` the same `Image.gz` from the
//!   same disk, then run `echo <marker>; booti ...` with `kernel_comp_addr_r` /
//!   `kernel_comp_size` set, so `booti` decompresses it (U-Boot's `image_decomp`, kexboot's
//!   `booti::decompress`, the code the boot flow uses). The host times the marker's line to the
//!   firmware's first line after the decompression (kexboot: `booti: gzip kernel ...
//!   decompressed to`; U-Boot: the line after `Uncompressing Kernel Image`).

use crate::assets::UBOOT_BIN;
use crate::bench_util::{cell, median, secs, Goal, Want};
use crate::check::is_prompt;
use crate::disk::{Disk, Scheme};
use crate::extlinux::{extlinux, Entry};
use crate::qemu::{self, Session, Wait};
use crate::tools;
use crate::util::{err, write_unless_same, Context, Paths, Result};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Time limit of one run (a zstd -19 kernel decompressed under TCG on a busy host included).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The line both firmwares echo right before `booti`.
const MARK: &str = "KEXBOOT-BENCH-DECOMP-START";
/// Bump when what the files or disks hold changes for the same Image.
const LAYOUT_VERSION: u32 = 1;
/// Where U-Boot's `booti` decompresses (as the e2e cases: above its `ramdisk_addr_r`);
/// kexboot keeps the `kernel_comp_addr_r` it chose in free RAM at start.
const UBOOT_COMP_ADDR: &str = "setenv kernel_comp_addr_r 0x48000000";

/// A kernel file format of the per-format runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Fmt {
    Gzip,
    Lz4,
    Zstd,
    /// The uncompressed Image: its read time, for reference.
    Image,
}

impl Fmt {
    pub const ALL: [Fmt; 4] = [Fmt::Gzip, Fmt::Lz4, Fmt::Zstd, Fmt::Image];

    /// The name the guest's `decompressed` line gives it.
    fn name(self) -> &'static str {
        match self {
            Fmt::Gzip => "gzip",
            Fmt::Lz4 => "lz4",
            Fmt::Zstd => "zstd",
            Fmt::Image => "none",
        }
    }

    /// The kernel's path on the disk.
    fn path(self) -> &'static str {
        match self {
            Fmt::Gzip => "/boot/Image.gz",
            Fmt::Lz4 => "/boot/Image.lz4",
            Fmt::Zstd => "/boot/Image.zst",
            Fmt::Image => "/boot/Image",
        }
    }

    /// The compressor's command line (writing to stdout), or `None` for the Image.
    fn compressor(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            Fmt::Gzip => Some(("gzip", &["-9", "-n", "-c"])),
            Fmt::Lz4 => Some(("lz4", &["-l", "-9", "-q", "-c"])),
            Fmt::Zstd => Some(("zstd", &["-19", "-q", "-c"])),
            Fmt::Image => None,
        }
    }

    /// How the file was made, for the table.
    fn made_by(self) -> String {
        match self.compressor() {
            Some((prog, args)) => {
                let shown: Vec<&str> = args
                    .iter()
                    .copied()
                    .filter(|a| !matches!(*a, "-c" | "-q"))
                    .collect();
                format!("`{prog} {}`", shown.join(" "))
            }
            None => "Debian's Image as is".into(),
        }
    }
}

/// The files and disks the runs use, under `target/bench-decomp/`.
pub struct Inputs {
    /// Size of the uncompressed Image.
    image_len: u64,
    /// Per format: the kernel file's size and the disk that boots it.
    disks: Vec<(Fmt, u64, PathBuf)>,
    /// MBR FAT with only `/boot/Image.gz` (no boot configuration: both firmwares stop at
    /// their shell).
    shell: PathBuf,
}

/// `image` compressed by `prog args`, from its stdout.
fn compress(prog: &str, args: &[&str], image: &Path) -> Result<Vec<u8>> {
    let exe = tools::find(prog)
        .ok_or_else(|| err!("{prog} not found (`cargo xtask assets` installs it)"))?;
    let out = Command::new(&exe)
        .args(args)
        .arg(image)
        .output()
        .ctx(format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        return Err(err!(
            "{prog} {} {}: {} ({})",
            args.join(" "),
            image.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// The kernel and initramfs of `cargo xtask assets`, only read: `--decompress` alone needs
/// nothing else, so it leaves the asset directory (possibly shared) untouched.
pub struct Kernel<'a> {
    pub image: &'a Path,
    pub initrd: &'a Path,
}

/// Makes (or keeps, when made from the same Image) the compressed kernels and the disks, under
/// `target/bench-decomp/`.
pub fn prepare(paths: &Paths, a: &Kernel) -> Result<Inputs> {
    let dir = paths.target.join("bench-decomp");
    std::fs::create_dir_all(&dir).ctx(dir.display())?;
    let image =
        std::fs::read(a.image).ctx(format!("{} (cargo xtask assets)", a.image.display()))?;
    let initrd =
        std::fs::read(a.initrd).ctx(format!("{} (cargo xtask assets)", a.initrd.display()))?;
    let key = |what: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (LAYOUT_VERSION, &image).hash(&mut h);
        what(&mut h);
        h.finish()
    };
    let mut files: Vec<(Fmt, Vec<u8>)> = Vec::new();
    for fmt in Fmt::ALL {
        let Some((prog, args)) = fmt.compressor() else {
            files.push((fmt, image.clone()));
            continue;
        };
        let name = fmt.path().rsplit('/').next().unwrap_or("kernel");
        let out = dir.join(name);
        write_unless_same(&out, key(&|h| (fmt, prog, args).hash(h)), || {
            eprintln!("bench: {prog} {} of {}", args.join(" "), a.image.display());
            compress(prog, args, a.image)
        })?;
        files.push((fmt, std::fs::read(&out).ctx(out.display())?));
    }
    let mut disks = Vec::new();
    for (fmt, data) in &files {
        let tag = format!("decomp-{}", fmt.name());
        let append = format!("console=ttyAMA0 kexboot.test={tag} quiet");
        let conf = extlinux(
            &tag,
            &[Entry {
                label: &tag,
                linux: fmt.path(),
                initrd: "/boot/initrd.img",
                append: &append,
            }],
        );
        let disk = dir.join(format!("disk-{}.img", fmt.name()));
        Disk::new(Scheme::Mbr)
            .file(fmt.path(), &data[..])
            .file("/boot/initrd.img", &initrd[..])
            .extlinux(conf)
            .write(&disk)?;
        disks.push((*fmt, data.len() as u64, disk));
    }
    let gz = files
        .iter()
        .find(|(f, _)| *f == Fmt::Gzip)
        .map(|(_, d)| &d[..])
        .unwrap_or_default();
    let shell = dir.join("disk-shell.img");
    Disk::new(Scheme::Mbr)
        .file(Fmt::Gzip.path(), gz)
        .write(&shell)?;
    Ok(Inputs {
        image_len: image.len() as u64,
        disks,
        shell,
    })
}

/// The figures of a guest line `... <what> <path> [(<fmt>)]: <in> [-> <out>] bytes in <ms> ms
/// (<rate> MB/s)`: bytes (the last count), milliseconds, the printed MB/s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuestLine {
    pub bytes: u64,
    pub ms: u64,
    pub mbps: u64,
}

/// Parses the figures of a `loaded kernel ...` or `decompressed ...` line of the boot flow.
pub fn parse_guest_line(line: &str) -> Option<GuestLine> {
    let (_, tail) = line.rsplit_once(": ")?;
    let (counts, rest) = tail.split_once(" bytes in ")?;
    let bytes = counts.rsplit(' ').next()?.parse().ok()?;
    let (ms, rest) = rest.split_once(" ms (")?;
    let mbps = rest.strip_suffix(" MB/s)")?.trim().parse().ok()?;
    Some(GuestLine {
        bytes,
        ms: ms.trim().parse().ok()?,
        mbps,
    })
}

/// One per-format run: the guest's read and decompression lines.
#[derive(Default)]
struct FlowSample {
    load: Option<GuestLine>,
    decomp: Option<GuestLine>,
    error: Option<String>,
}

/// The machine of the cold bench (the same arguments, so the figures compare).
fn machine() -> qemu::Args {
    qemu::Args::new("virt", qemu::DEFAULT_CPU, None)
}

/// kexboot's autoboot of `disk`, until the guest has said how long the kernel took.
fn run_flow(paths: &Paths, fmt: Fmt, disk: &Path, round: usize) -> FlowSample {
    let mut smp = FlowSample::default();
    let args = machine().kernel(&paths.kexboot_bin()).disk(disk).into_vec();
    let log = paths
        .e2e
        .join(format!("bench-decomp-{}-{}.log", fmt.name(), round + 1));
    let mut s = match Session::spawn(&args, Some(&log)) {
        Ok(s) => s,
        Err(e) => {
            smp.error = Some(e.to_string());
            return smp;
        }
    };
    let deadline = Instant::now() + RUN_TIMEOUT;
    let loaded = format!("loaded kernel {}:", fmt.path());
    let decompressed = format!("decompressed {}", fmt.path());
    let done = |l: &str| match fmt {
        Fmt::Image => l.contains(&loaded),
        _ => l.contains(&decompressed),
    };
    match s.wait_for(deadline, |l| done(l) || is_prompt(l)) {
        Wait::Found(l) if done(&l.text) => {}
        w => smp.error = Some(ending(w, "the kernel's line", &s)),
    }
    s.kill();
    let find = |pat: &str| {
        s.lines()
            .iter()
            .find(|l| l.text.contains(pat))
            .and_then(|l| parse_guest_line(&l.text))
    };
    smp.load = find(&loaded);
    if fmt != Fmt::Image {
        smp.decomp = find(&decompressed);
    }
    if smp.error.is_none() && (smp.load.is_none() || (fmt != Fmt::Image && smp.decomp.is_none())) {
        smp.error = Some("the guest's line did not parse".into());
    }
    smp
}

/// Why a wait ended without its line, with the last line seen.
fn ending(w: Wait, what: &str, s: &Session) -> String {
    let how = match w {
        Wait::Exited => "qemu exited",
        Wait::Found(_) => "prompt",
        Wait::Timeout => "timeout",
    };
    let last = s.lines().last().map(|l| l.text.clone()).unwrap_or_default();
    format!("{how} before {what} (last line {last:?})")
}

/// A firmware of the gzip comparison.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fw {
    Kexboot,
    UBoot,
}

impl Fw {
    fn label(self) -> &'static str {
        match self {
            Fw::Kexboot => "kexboot",
            Fw::UBoot => "U-Boot (Debian)",
        }
    }

    fn prompt(self) -> fn(&str) -> bool {
        match self {
            Fw::Kexboot => is_prompt,
            Fw::UBoot => |l| l.trim_start().starts_with("=>"),
        }
    }

    /// The commands typed at the prompt, the last one bracketed by [`MARK`].
    fn commands(self) -> Vec<String> {
        let mut v = Vec::new();
        if self == Fw::UBoot {
            v.push(UBOOT_COMP_ADDR.to_string());
        }
        v.extend([
            format!("load virtio 0:1 ${{kernel_addr_r}} {}", Fmt::Gzip.path()),
            "setenv kernel_comp_size ${filesize}".into(),
            format!("echo {MARK}; booti ${{kernel_addr_r}} - ${{fdtcontroladdr}}"),
        ]);
        v
    }

    /// Whether `line` is the firmware's first line after `booti`'s decompression; `prev` is the
    /// line before it.
    fn after_decompression(self, prev: &str, line: &str) -> bool {
        match self {
            Fw::Kexboot => line.contains("booti: gzip kernel") && line.contains("decompressed to"),
            Fw::UBoot => prev.contains("Uncompressing Kernel Image"),
        }
    }
}

/// Host time from the marker's line to the first line after the decompression, if both came.
fn marker_to_decompressed(fw: Fw, s: &Session) -> Option<Duration> {
    let lines = s.lines();
    // The marker's own line, not the typed command that carries it.
    let i = lines
        .iter()
        .position(|l| l.text.trim() == MARK || l.text.trim_end().ends_with(&format!("] {MARK}")))?;
    let end = (i + 1..lines.len())
        .find(|&j| fw.after_decompression(&lines[j - 1].text, &lines[j].text))
        .map(|j| &lines[j])?;
    end.at.checked_sub(lines[i].at)
}

/// One shell run of `fw` on the shell disk: the marker → decompressed host time.
fn run_shell(
    paths: &Paths,
    fw: Fw,
    disk: &Path,
    round: usize,
) -> (Option<Duration>, Option<String>) {
    let args = match fw {
        Fw::Kexboot => machine().kernel(&paths.kexboot_bin()),
        Fw::UBoot => machine().bios(Path::new(UBOOT_BIN)),
    }
    .disk(disk)
    .into_vec();
    let log = paths.e2e.join(format!(
        "bench-decomp-shell-{}-{}.log",
        format!("{fw:?}").to_lowercase(),
        round + 1
    ));
    let mut s = match Session::spawn(&args, Some(&log)) {
        Ok(s) => s,
        Err(e) => return (None, Some(e.to_string())),
    };
    let deadline = Instant::now() + RUN_TIMEOUT;
    let prompt = fw.prompt();
    let res = (|| -> std::result::Result<(), String> {
        if fw == Fw::UBoot {
            match s.wait_for_prompt(deadline, |l| l.contains("Hit any key to stop autoboot")) {
                Wait::Found(_) => s.send(b" "),
                w => return Err(ending(w, "U-Boot's autoboot countdown", &s)),
            }
        }
        for c in fw.commands() {
            match s.wait_for_prompt(deadline, prompt) {
                Wait::Found(_) => s.send(format!("{c}\r").as_bytes()),
                w => return Err(ending(w, &format!("the prompt for {c:?}"), &s)),
            }
        }
        let mut prev = String::new();
        match s.wait_for(deadline, |l| {
            let hit = fw.after_decompression(&prev, l) || prompt(l);
            prev = l.to_string();
            hit
        }) {
            Wait::Found(l) if !prompt(&l.text) => Ok(()),
            w => Err(ending(w, "the line after the decompression", &s)),
        }
    })();
    s.kill();
    match res {
        Ok(()) => match marker_to_decompressed(fw, &s) {
            Some(d) => (Some(d), None),
            None => (None, Some("no marker line before the decompression".into())),
        },
        Err(e) => (None, Some(e)),
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

/// Image bytes per second of `d`, in MB/s.
fn rate(bytes: u64, d: Option<Duration>) -> Option<f64> {
    d.filter(|d| !d.is_zero())
        .map(|d| bytes as f64 / d.as_secs_f64() / 1e6)
}

fn rate_cell(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.1}")).unwrap_or_else(|| "–".into())
}

/// Runs every arm `rounds` times, interleaved, and returns the "Decompression" section.
pub fn decomp_bench(
    paths: &Paths,
    rounds: usize,
    a: &Kernel,
    fw_ok: bool,
    goals: &mut Vec<Goal>,
) -> String {
    let mut md = String::from("\n## Decompression\n\n");
    if !fw_ok {
        let _ = writeln!(md, "Not run: the firmware build failed.");
        return md;
    }
    let inputs = match prepare(paths, a) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(md, "Not run: {e}.");
            return md;
        }
    };
    let mut flow: Vec<Vec<FlowSample>> = inputs.disks.iter().map(|_| Vec::new()).collect();
    let fws = [Fw::Kexboot, Fw::UBoot];
    let mut shell: Vec<Vec<(Option<Duration>, Option<String>)>> = vec![Vec::new(), Vec::new()];
    for r in 0..rounds {
        for (i, (fmt, _, disk)) in inputs.disks.iter().enumerate() {
            let smp = run_flow(paths, *fmt, disk, r);
            eprintln!(
                "bench: decomp round {} {:<5} read {} ms, decompressed {} ms ({} MB/s){}",
                r + 1,
                fmt.name(),
                smp.load.map_or("–".into(), |g| g.ms.to_string()),
                smp.decomp.map_or("–".into(), |g| g.ms.to_string()),
                smp.decomp.map_or("–".into(), |g| g.mbps.to_string()),
                smp.error
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
            flow[i].push(smp);
        }
        for (i, fw) in fws.iter().enumerate() {
            let (d, e) = run_shell(paths, *fw, &inputs.shell, r);
            eprintln!(
                "bench: decomp round {} {:<8} booti gzip {}s{}",
                r + 1,
                format!("{fw:?}"),
                secs(d),
                e.as_deref().map(|e| format!("  ({e})")).unwrap_or_default()
            );
            shell[i].push((d, e));
        }
    }
    md += &tables(&inputs, rounds, &flow, &shell, goals);
    md
}

/// Median of the `ms` of the lines present, as a Duration.
fn median_ms(v: impl Iterator<Item = Option<GuestLine>>) -> Option<Duration> {
    median(v.map(|g| g.map(|g| Duration::from_millis(g.ms))))
}

/// The markdown of the figures: per format, then the gzip comparison.
fn tables(
    inputs: &Inputs,
    rounds: usize,
    flow: &[Vec<FlowSample>],
    shell: &[Vec<(Option<Duration>, Option<String>)>],
    goals: &mut Vec<Goal>,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "QEMU TCG `{} {}` (the cold bench's machine), Debian's arm64 kernel ({} bytes) in each \
         format on its own MBR FAT disk over virtio-blk, named by extlinux.conf; kexboot's own \
         lines (arch timer in the guest): `loaded kernel` (file read) and `decompressed` (sizing \
         + decompression into RAM). MB/s = Image bytes out per second, MB = 10^6 bytes; medians \
         of {rounds} interleaved rounds.\n",
        qemu::QEMU,
        machine().into_vec().join(" "),
        inputs.image_len,
    );
    let _ = writeln!(
        md,
        "| kernel file | made by | file MB | Image MB | read, ms | decompress, ms: median (min–max) | kexboot MB/s | ok rounds |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
    let mut gzip_flow = None;
    let mut gzip_read_dec = (None, None);
    for (i, (fmt, size, _)) in inputs.disks.iter().enumerate() {
        let s = &flow[i];
        let ok = s.iter().filter(|x| x.error.is_none()).count();
        let read = median_ms(s.iter().map(|x| x.load));
        let (dec, dec_cell, mbps) = if *fmt == Fmt::Image {
            (None, "–".to_string(), "–".to_string())
        } else {
            let d = median_ms(s.iter().map(|x| x.decomp));
            let ms = |d: Option<Duration>| d.map(|d| d.as_millis().to_string());
            let all: Vec<Duration> = s
                .iter()
                .filter_map(|x| x.decomp.map(|g| Duration::from_millis(g.ms)))
                .collect();
            let c = match (all.iter().min(), all.iter().max(), ms(d)) {
                (Some(lo), Some(hi), Some(m)) if all.len() > 1 => {
                    format!("{m} ({}–{})", lo.as_millis(), hi.as_millis())
                }
                (_, _, Some(m)) => m,
                _ => "–".into(),
            };
            (d, c, rate_cell(rate(inputs.image_len, d)))
        };
        if *fmt == Fmt::Gzip {
            gzip_flow = rate(inputs.image_len, dec);
            gzip_read_dec = (read, dec);
        }
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {dec_cell} | {mbps} | {ok}/{rounds} |",
            fmt.path().rsplit('/').next().unwrap_or(""),
            fmt.made_by(),
            mb(*size),
            mb(inputs.image_len),
            read.map_or("–".into(), |d| d.as_millis().to_string()),
        );
    }
    let gz_size = inputs
        .disks
        .iter()
        .find(|d| d.0 == Fmt::Gzip)
        .map_or(0, |d| d.1);
    let _ = writeln!(
        md,
        "\n### gzip: kexboot against U-Boot, same file, same method\n\n\
         Both firmwares boot the same disk (only `/boot/Image.gz`, {gz_size} bytes, no boot \
         configuration), stop at their shell and are typed the same commands: `load virtio 0:1 \
         ${{kernel_addr_r}} /boot/Image.gz`, `setenv kernel_comp_size ${{filesize}}`, \
         `echo {MARK}; booti ${{kernel_addr_r}} - ${{fdtcontroladdr}}` (U-Boot first \
         `{UBOOT_COMP_ADDR}`; kexboot has one in free RAM). `booti` decompresses the kernel to \
         `kernel_comp_addr_r`. Host time from the marker's line to the firmware's first line \
         after the decompression (kexboot: `booti: gzip kernel ... decompressed to`; U-Boot: the \
         line after `Uncompressing Kernel Image`); it includes each `booti`'s own checks before \
         decompressing and the serial console's latency (a few ms at most against seconds). \
         MB/s = Image bytes ({}) per second.\n",
        inputs.image_len
    );
    let _ = writeln!(
        md,
        "| firmware | marker → decompressed, s: median (min–max) | MB/s | ok rounds |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|");
    let mut meds = Vec::new();
    for (i, fw) in [Fw::Kexboot, Fw::UBoot].iter().enumerate() {
        let s = &shell[i];
        let med = median(s.iter().map(|x| x.0));
        let ok = s.iter().filter(|x| x.1.is_none()).count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {ok}/{rounds} |",
            fw.label(),
            cell(med, s.iter().map(|x| x.0)),
            rate_cell(rate(inputs.image_len, med))
        );
        meds.push(med);
    }
    let (k, u) = (
        rate(inputs.image_len, meds[0]),
        rate(inputs.image_len, meds[1]),
    );
    let _ = writeln!(
        md,
        "\ngzip: kexboot {} MB/s vs U-Boot {} MB/s = {}",
        rate_cell(k),
        rate_cell(u),
        match (k, u) {
            (Some(k), Some(u)) if u > 0.0 => format!("{:.2}x", k / u),
            _ => "n/a".into(),
        },
    );
    let _ = writeln!(
        md,
        "- kexboot's boot flow on the same bytes, in-guest timer: {} MB/s (the table above).",
        rate_cell(gzip_flow)
    );
    goals.push(
        Goal::ratio(
            "5. decompression",
            "gzip inflate throughput, kexboot / U-Boot (`booti`, same file)",
            k.zip(u).filter(|(_, u)| *u > 0.0).map(|(k, u)| k / u),
            Want::AtLeast(1.5),
        )
        .from(format!(
            "kexboot {} MB/s, U-Boot {} MB/s (medians; spread in the Decompression section)",
            rate_cell(k),
            rate_cell(u)
        )),
    );
    let (read, dec) = gzip_read_dec;
    goals.push(
        Goal::ratio(
            "5. decompression",
            "gzip kernel from disk: first byte requested → fully decompressed, / the read alone",
            read.zip(dec)
                .filter(|(r, _)| !r.is_zero())
                .map(|(r, d)| (r + d).as_secs_f64() / r.as_secs_f64()),
            Want::AtMost(1.2),
        )
        .from(format!(
            "read {} ms, then decompress {} ms (kexboot's boot flow, in-guest timer; not yet \
             overlapped)",
            read.map_or("–".into(), |d| d.as_millis().to_string()),
            dec.map_or("–".into(), |d| d.as_millis().to_string())
        )),
    );
    for (i, fw) in [Fw::Kexboot, Fw::UBoot].iter().enumerate() {
        for (r, (_, e)) in shell[i].iter().enumerate() {
            if let Some(e) = e {
                let _ = writeln!(md, "- {fw:?} shell round {}: {e}", r + 1);
            }
        }
    }
    for (i, (fmt, _, _)) in inputs.disks.iter().enumerate() {
        for (r, s) in flow[i].iter().enumerate() {
            if let Some(e) = &s.error {
                let _ = writeln!(md, "- {} round {}: {e}", fmt.name(), r + 1);
            }
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_lines() {
        assert_eq!(
            parse_guest_line(
                "[   3.250943] decompressed /boot/Image.gz (gzip): 9929620 -> 27303872 bytes in 2034 ms (13 MB/s)"
            ),
            Some(GuestLine {
                bytes: 27303872,
                ms: 2034,
                mbps: 13
            })
        );
        assert_eq!(
            parse_guest_line(
                "[   0.358665] loaded kernel /boot/Image: 27303872 bytes in 109 ms (249 MB/s)"
            ),
            Some(GuestLine {
                bytes: 27303872,
                ms: 109,
                mbps: 249
            })
        );
        assert_eq!(parse_guest_line("loaded kernel /boot/Image: oops"), None);
        assert_eq!(parse_guest_line(""), None);
    }

    #[test]
    fn formats() {
        assert_eq!(Fmt::Lz4.made_by(), "`lz4 -l -9`");
        assert_eq!(Fmt::Image.compressor(), None);
        let cmds = Fw::UBoot.commands();
        assert_eq!(cmds[0], UBOOT_COMP_ADDR);
        assert!(cmds
            .last()
            .is_some_and(|c| c.starts_with(&format!("echo {MARK};"))));
        assert_eq!(Fw::Kexboot.commands().len(), 3);
        assert!(Fw::UBoot.after_decompression("   Uncompressing Kernel Image", "## Flattened"));
        assert!(!Fw::UBoot.after_decompression("x", "   Uncompressing Kernel Image"));
    }
}
