//! The netboot arms of `cargo xtask bench`: TFTP throughput measured by the project's test
//! server ([`crate::tftpd`], RRQ to final ACK, no loss) for kexboot and Debian's U-Boot at their
//! default window and with the other one's, and QEMU spawn → kernel entry when netbooting through
//! PXE; both firmwares against the same server, medians of interleaved rounds. HTTP boot
//! (issue 16): kexboot's `wget` of the 27 MB Image and the initrd from Python's `http.server`,
//! beside kexboot's and U-Boot's default TFTP of the same two files.

use crate::assets::{self, Assets, UBOOT_BIN};
use crate::bench_util::{cell, median, ratio, secs, Goal, Want};
use crate::check::{is_prompt, KEXBOOT_STARTING};
use crate::e2e_http::WebServer;
use crate::e2e_net::{netdev, parse_tftp_line, Tftp, NET_FILES};
use crate::qemu::{self, Session, Wait};
use crate::tftpd::{Config, Server, Stats};
use crate::util::{Paths, Result};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Time limit of one QEMU run.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
const MACHINE: &str = "virt";
const BEGIN: &str = "KEXBOOT-E2E-BEGIN";
/// A DHCP boot file that does not exist: kexboot's autoboot fails fast and shows its prompt.
const NO_SCRIPT: &str = "kexboot-bench-none.txt";
/// U-Boot 2023.01 boots a gzip'd Image only with a scratch area for the compressed bytes.
const UBOOT_GZ: &str = "setenv kernel_comp_addr_r 0x48000000; setenv kernel_comp_size 0x3000000";

/// What one run measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arm {
    /// kexboot's shell, default window (32).
    KexDefault,
    /// kexboot's shell after `setenv tftpwindowsize 16` (U-Boot's window-16 arm's match).
    KexW16,
    /// kexboot's shell after `setenv tftpwindowsize 1`.
    KexW1,
    /// U-Boot's shell, its defaults (blksize 1468, window 1).
    UBootDefault,
    /// U-Boot's shell after `setenv tftpwindowsize 16`.
    UBootW16,
    /// kexboot autoboot: DHCP + PXE, QEMU spawn → kernel entry.
    KexPxe,
    /// U-Boot: key, then `dhcp; pxe get; pxe boot` typed, QEMU spawn → kernel entry.
    UBootPxe,
    /// kexboot's shell: `wget` of the 27 MB Image and the initrd from Python's http.server.
    KexHttp,
    /// kexboot's shell, default window: `tftpboot` of the same Image and initrd.
    KexImage,
    /// U-Boot's shell, its defaults: `tftpboot` of the same Image and initrd.
    UBootImage,
}

impl Arm {
    const ALL: [Arm; 10] = [
        Arm::KexDefault,
        Arm::KexW16,
        Arm::KexW1,
        Arm::UBootDefault,
        Arm::UBootW16,
        Arm::KexPxe,
        Arm::UBootPxe,
        Arm::KexHttp,
        Arm::KexImage,
        Arm::UBootImage,
    ];

    fn label(self) -> &'static str {
        match self {
            Arm::KexDefault => "kexboot, default (window 32)",
            Arm::KexW16 => "kexboot, `setenv tftpwindowsize 16`",
            Arm::KexW1 => "kexboot, `setenv tftpwindowsize 1`",
            Arm::UBootDefault => "U-Boot (Debian), default (window 1)",
            Arm::UBootW16 => "U-Boot (Debian), `setenv tftpwindowsize 16`",
            Arm::KexPxe => "kexboot autoboot (DHCP + PXE)",
            Arm::UBootPxe => "U-Boot (Debian), typed `dhcp; pxe get; pxe boot` *",
            Arm::KexHttp => "kexboot HTTP (`wget`), Python's http.server",
            Arm::KexImage => "kexboot TFTP, default (window 32)",
            Arm::UBootImage => "U-Boot (Debian) TFTP, default (window 1)",
        }
    }

    /// The arms of the HTTP table (the 27 MB Image and the initrd).
    fn image(self) -> bool {
        matches!(self, Arm::KexHttp | Arm::KexImage | Arm::UBootImage)
    }

    /// The kernel and initrd it downloads.
    fn files(self) -> [&'static str; 2] {
        match self.image() {
            true => ["Image", "initrd.img"],
            false => NET_FILES,
        }
    }

    fn kexboot(self) -> bool {
        matches!(
            self,
            Arm::KexDefault | Arm::KexW16 | Arm::KexW1 | Arm::KexPxe | Arm::KexHttp | Arm::KexImage
        )
    }

    fn pxe(self) -> bool {
        matches!(self, Arm::KexPxe | Arm::UBootPxe)
    }

    /// Commands typed at the shell prompt; `server` is our TFTP server's address, 127.0.0.1 (the
    /// lease names slirp's 10.0.2.2, whose port 69 is slirp's own TFTP server); the web server
    /// is on the host's `http_port` (10.0.2.2 to the guest).
    fn commands(self, server: IpAddr, http_port: u16) -> Vec<String> {
        let serverip = format!("setenv serverip {server}");
        let mut v: Vec<String> = match self {
            Arm::KexHttp => {
                let [k, i] = self.files();
                return vec![
                    "dhcp".into(),
                    format!("wget ${{kernel_addr_r}} http://10.0.2.2:{http_port}/{k}"),
                    format!("wget ${{ramdisk_addr_r}} http://10.0.2.2:{http_port}/{i}"),
                ];
            }
            Arm::KexDefault | Arm::KexImage => vec!["dhcp".into(), serverip],
            Arm::KexW16 => vec!["setenv tftpwindowsize 16".into(), "dhcp".into(), serverip],
            Arm::KexW1 => vec!["setenv tftpwindowsize 1".into(), "dhcp".into(), serverip],
            Arm::UBootDefault | Arm::UBootImage => {
                vec!["setenv autoload no".into(), "dhcp".into(), serverip]
            }
            Arm::UBootW16 => vec![
                "setenv autoload no".into(),
                "dhcp".into(),
                serverip,
                "setenv tftpwindowsize 16".into(),
            ],
            Arm::KexPxe => return Vec::new(),
            Arm::UBootPxe => {
                let mut v: Vec<String> = vec!["setenv autoload no".into(), "dhcp".into(), serverip];
                v.extend([UBOOT_GZ, "pxe get", "pxe boot"].map(String::from));
                return v;
            }
        };
        let [k, i] = self.files();
        v.extend([
            format!("tftpboot ${{kernel_addr_r}} {k}"),
            format!("tftpboot ${{ramdisk_addr_r}} {i}"),
        ]);
        v
    }
}

/// One run's figures.
#[derive(Default)]
struct Sample {
    /// Server statistics of the completed transfers of `vmlinuz` and `initrd.img`.
    files: [Option<Stats>; 2],
    /// The firmware's own `TFTP 'vmlinuz': ...` line (kexboot).
    fw_line: Option<String>,
    /// kexboot's own figures for the arm's two files (MB/s from its summary lines: bytes over
    /// the time from the request to the last byte).
    client: [Option<f64>; 2],
    kernel: Option<Duration>,
    user: Option<Duration>,
    error: Option<String>,
}

fn is_uboot_prompt(l: &str) -> bool {
    l.trim_start().starts_with("=>")
}

/// Types `cmds` one at a time, each at a fresh prompt.
fn drive(
    s: &mut Session,
    prompt: fn(&str) -> bool,
    cmds: &[String],
    deadline: Instant,
) -> std::result::Result<(), String> {
    for c in cmds {
        if !matches!(s.wait_for_prompt(deadline, prompt), Wait::Found(_)) {
            let last = s.lines().last().map(|l| l.text.clone()).unwrap_or_default();
            return Err(format!("no prompt before {c:?} (last line {last:?})"));
        }
        s.send(format!("{c}\r").as_bytes());
    }
    Ok(())
}

/// MB/s of a firmware summary line (`N bytes in T s`).
fn line_mbps(l: &str) -> Option<f64> {
    let x = parse_tftp_line(l)?;
    x.crc32?;
    let t: f64 = x
        .rest
        .split(" bytes in ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let bytes = x.bytes? as f64;
    (t > 0.0).then(|| bytes / t / 1e6)
}

fn run_one(paths: &Paths, srv: &Server, http_port: u16, arm: Arm, round: usize) -> Sample {
    let mut smp = Sample::default();
    let args = qemu::Args::machine(MACHINE, 1);
    let args = if arm.kexboot() {
        args.kernel(&paths.kexboot_bin())
    } else {
        args.bios(Path::new(UBOOT_BIN))
    };
    let bootfile = if arm == Arm::KexPxe || !arm.kexboot() {
        "pxelinux.0"
    } else {
        NO_SCRIPT
    };
    let args = netdev(args, Tftp::Own(srv.addr().ip()), bootfile).into_vec();
    let name = format!(
        "bench-net-{}-{}",
        format!("{arm:?}").to_lowercase(),
        round + 1
    );
    let seen = srv.transfers().len();
    let mut s = match Session::spawn(&args, Some(&paths.e2e.join(format!("{name}.log")))) {
        Ok(s) => s,
        Err(e) => {
            smp.error = Some(e.to_string());
            return smp;
        }
    };
    let deadline = Instant::now() + RUN_TIMEOUT;
    let res = (|| -> std::result::Result<(), String> {
        let prompt: fn(&str) -> bool = if arm.kexboot() {
            is_prompt
        } else {
            // Stop the autoboot countdown first.
            match s.wait_for_prompt(deadline, |l| l.contains("Hit any key to stop autoboot")) {
                Wait::Found(_) => s.send(b" "),
                _ => return Err("no U-Boot autoboot countdown".into()),
            }
            is_uboot_prompt
        };
        drive(
            &mut s,
            prompt,
            &arm.commands(srv.addr().ip(), http_port),
            deadline,
        )?;
        if arm.pxe() {
            let start = if arm.kexboot() {
                KEXBOOT_STARTING
            } else {
                "Starting kernel"
            };
            // A prompt instead means the netboot failed: no need to wait for the deadline.
            match s.wait_for_prompt(deadline, |l| l.contains(start) || prompt(l)) {
                Wait::Found(l) if l.text.contains(start) => smp.kernel = Some(l.at),
                _ => return Err(format!("no {start:?} line")),
            }
            match s.wait_for(deadline, |l| l.contains(BEGIN)) {
                Wait::Found(l) => smp.user = Some(l.at),
                _ => return Err(format!("no {BEGIN} line")),
            }
        } else if !matches!(s.wait_for_prompt(deadline, prompt), Wait::Found(_)) {
            return Err("no prompt after the last tftpboot".into());
        }
        Ok(())
    })();
    s.kill();
    srv.wait_idle(Duration::from_secs(5));
    let all = srv.transfers();
    let new = all.get(seen..).unwrap_or_default();
    for (slot, f) in smp.files.iter_mut().zip(arm.files()) {
        *slot = new
            .iter()
            .rev()
            .find(|t| t.completed && t.file.trim_start_matches('/') == f)
            .cloned();
    }
    smp.fw_line = s
        .lines()
        .iter()
        .find(|l| {
            parse_tftp_line(&l.text).is_some_and(|x| x.file == "vmlinuz" && x.crc32.is_some())
        })
        .map(|l| l.text.trim().to_string());
    for (slot, f) in smp.client.iter_mut().zip(arm.files()) {
        *slot = s.lines().iter().find_map(|l| {
            parse_tftp_line(&l.text)
                .filter(|x| x.file == f)
                .and_then(|_| line_mbps(&l.text))
        });
    }
    smp.error = res.err();
    if smp.error.is_none() && arm == Arm::KexHttp && smp.client.iter().any(Option::is_none) {
        smp.error = Some("no HTTP summary line with a crc32 for both files".into());
    } else if smp.error.is_none()
        && !arm.pxe()
        && arm != Arm::KexHttp
        && smp.files.iter().any(Option::is_none)
    {
        smp.error = Some("the server saw no completed transfer of both files".into());
    }
    smp
}

/// Median of the throughputs present (MB/s).
fn median_f(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = v.flatten().collect();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn mbps(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "–".into())
}

/// A throughput cell: the median of the figures present, and their min–max when there are
/// several.
fn rate_cell(v: impl Iterator<Item = Option<f64>>) -> String {
    let v: Vec<f64> = v.flatten().collect();
    let med = mbps(median_f(v.iter().copied().map(Some)));
    let lo = v.iter().copied().reduce(f64::min);
    let hi = v.iter().copied().reduce(f64::max);
    match (lo, hi) {
        (Some(lo), Some(hi)) if v.len() > 1 => format!("{med} ({lo:.2}–{hi:.2})"),
        _ => med,
    }
}

/// Runs the netboot arms and returns the "Netboot" markdown section.
pub fn net_bench(
    paths: &Paths,
    rounds: usize,
    a: &Assets,
    fw_ok: bool,
    goals: &mut Vec<Goal>,
) -> String {
    let mut md = String::from("\n## Netboot\n\n");
    let root = match assets::tftp_root(paths, a) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(md, "Not run: no TFTP root ({e}).");
            return md;
        }
    };
    let srv = match Server::start(Config::new(&root)) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(md, "Not run: {e}.");
            return md;
        }
    };
    eprintln!("bench: TFTP test server on {}", srv.addr());
    let web = WebServer::start(&root, None, &paths.e2e.join("bench-httpd.log"));
    let http_port = match &web {
        Ok(w) => w.port,
        Err(e) => {
            eprintln!("bench: no web server ({e}): the HTTP arm fails");
            0
        }
    };
    let mut samples: Vec<Vec<Sample>> = Arm::ALL.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for (i, arm) in Arm::ALL.iter().enumerate() {
            let smp = if arm.kexboot() && !fw_ok {
                Sample {
                    error: Some("firmware build failed".into()),
                    ..Default::default()
                }
            } else {
                run_one(paths, &srv, http_port, *arm, r)
            };
            let figs: Vec<String> = smp
                .files
                .iter()
                .zip(arm.files())
                .filter_map(|(s, f)| {
                    s.as_ref()
                        .map(|s| format!("{f} {:.2} MB/s w{}", s.mbps(), s.windowsize))
                })
                .collect();
            eprintln!(
                "bench: net round {} {:<12} {} kernel {}s{}",
                r + 1,
                format!("{arm:?}"),
                figs.join(", "),
                secs(smp.kernel),
                smp.error
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
            samples[i].push(smp);
        }
    }
    md += &table(&root, rounds, &samples, goals);
    md
}

/// The markdown tables of the samples (`samples[i]` belongs to `Arm::ALL[i]`).
fn table(root: &Path, rounds: usize, samples: &[Vec<Sample>], goals: &mut Vec<Goal>) -> String {
    let mut md = String::new();
    let size = |f: &str| {
        std::fs::metadata(root.join(f))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let _ = writeln!(
        md,
        "QEMU TCG `-M {MACHINE} -cpu cortex-a72 -smp 1 -m 1G`, virtio-net on user networking; the \
         project's TFTP server on 127.0.0.1:69 (named by DHCP option 66 and `setenv serverip`, \
         as slirp answers 10.0.2.2:69 itself; no loss, window cap 64, blksize cap 1468), \
         `vmlinuz` = Image.gz ({} bytes), `initrd.img` ({} bytes). Throughput measured by the \
         server from RRQ to the final ACK, MB = 10^6 bytes; medians of {rounds} interleaved \
         rounds.\n",
        size("vmlinuz"),
        size("initrd.img")
    );
    let _ = writeln!(
        md,
        "| TFTP client | vmlinuz MB/s: median (min–max) | initrd.img MB/s | blksize / window granted | ok rounds |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    let mut med_kernel = Vec::new();
    for (i, arm) in Arm::ALL
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.pxe() && !a.image())
    {
        let rate = |f: usize| {
            samples[i]
                .iter()
                .map(move |s| s.files[f].as_ref().map(Stats::mbps))
        };
        let med: Vec<Option<f64>> = (0..2).map(|f| median_f(rate(f))).collect();
        let range = |f: usize| rate_cell(rate(f));
        let granted = samples[i]
            .iter()
            .find_map(|s| s.files[0].as_ref())
            .map(|s| format!("{} / {}", s.blksize, s.windowsize))
            .unwrap_or_else(|| "–".into());
        let ok = samples[i].iter().filter(|s| s.error.is_none()).count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {granted} | {ok}/{rounds} |",
            arm.label(),
            range(0),
            range(1)
        );
        med_kernel.push((*arm, med[0]));
    }
    let get = |a: Arm| {
        med_kernel
            .iter()
            .find(|(x, _)| *x == a)
            .and_then(|(_, m)| *m)
    };
    let r = |a: Arm, b: Arm| match (get(a), get(b)) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}x", x / y),
        _ => "n/a".into(),
    };
    let _ = writeln!(
        md,
        "\n- vmlinuz throughput, kexboot default (window 32) / U-Boot default: **{}** (goal ≥ 3x); \
         kexboot window 16 / U-Boot default: {}",
        r(Arm::KexDefault, Arm::UBootDefault),
        r(Arm::KexW16, Arm::UBootDefault)
    );
    let _ = writeln!(
        md,
        "- kexboot window 32 / kexboot window 1: {}; U-Boot window 16 / U-Boot default: {}; \
         kexboot window 16 / U-Boot window 16: {}",
        r(Arm::KexDefault, Arm::KexW1),
        r(Arm::UBootW16, Arm::UBootDefault),
        r(Arm::KexW16, Arm::UBootW16)
    );
    let rf = |a: Arm, b: Arm| {
        get(a)
            .zip(get(b))
            .filter(|(_, y)| *y > 0.0)
            .map(|(x, y)| x / y)
    };
    let mb = |a: Arm| get(a).map_or("n/a".into(), |v| format!("{v:.2} MB/s"));
    for (what, k, u, want) in [
        (
            "TFTP vmlinuz throughput at window 1, kexboot / U-Boot",
            Arm::KexW1,
            Arm::UBootDefault,
            1.0,
        ),
        (
            "TFTP vmlinuz throughput at window 16, kexboot / U-Boot",
            Arm::KexW16,
            Arm::UBootW16,
            1.0,
        ),
        (
            "TFTP vmlinuz throughput, kexboot's default (window 32) / U-Boot's default (window 1)",
            Arm::KexDefault,
            Arm::UBootDefault,
            4.0,
        ),
    ] {
        goals.push(
            Goal::ratio("4. TFTP", what, rf(k, u), Want::AtLeast(want)).from(format!(
                "{} vs {} (server-measured medians; spread in the Netboot table)",
                mb(k),
                mb(u)
            )),
        );
    }
    if let Some(l) = Arm::ALL
        .iter()
        .position(|a| *a == Arm::KexDefault)
        .and_then(|i| samples[i].iter().find_map(|s| s.fw_line.clone()))
    {
        let _ = writeln!(md, "- kexboot's own report: `{l}`");
    }

    let _ = writeln!(
        md,
        "\n| netboot through PXE (`pxelinux.cfg/default`) | kernel entry, s: median (min–max) | userspace marker, s | ok rounds |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|");
    let mut meds = Vec::new();
    for (i, arm) in Arm::ALL.iter().enumerate().filter(|(_, a)| a.pxe()) {
        let k = median(samples[i].iter().map(|s| s.kernel));
        let u = median(samples[i].iter().map(|s| s.user));
        let ok = samples[i].iter().filter(|s| s.error.is_none()).count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {ok}/{rounds} |",
            arm.label(),
            cell(k, samples[i].iter().map(|s| s.kernel)),
            cell(u, samples[i].iter().map(|s| s.user))
        );
        meds.push((k, u));
    }
    if let [kex, ub] = meds[..] {
        let _ = writeln!(
            md,
            "\n- kexboot / U-Boot: kernel entry {}, userspace {}",
            ratio(kex.0, ub.0),
            ratio(kex.1, ub.1)
        );
    }
    let _ = writeln!(
        md,
        "- \\* U-Boot's PXE times include the keystroke round trips: a key at \"Hit any key\" \
         (its autoboot's `dhcp` target tries a boot script and EFI, not PXE), then `setenv \
         autoload no`, `dhcp`, `{UBOOT_GZ}` (needed to boot a gzip'd Image), `pxe get`, \
         `pxe boot`, each typed at `=>`. kexboot autoboots (`boot || netboot`), nothing typed."
    );
    let _ = writeln!(
        md,
        "- Throughput arms are typed at each shell: U-Boot `setenv autoload no; dhcp; setenv \
         serverip 127.0.0.1; tftpboot` (after a key at the countdown), kexboot `dhcp; setenv serverip 127.0.0.1; tftpboot` at \
         the prompt its failed autoboot leaves (DHCP boot file `{NO_SCRIPT}` does not exist)."
    );
    md += &http_table(root, rounds, samples, goals);
    for (i, arm) in Arm::ALL.iter().enumerate() {
        for (r, s) in samples[i].iter().enumerate() {
            if let Some(e) = &s.error {
                let _ = writeln!(md, "- {arm:?} round {}: {e}", r + 1);
            }
        }
    }
    md
}

/// The HTTP table: kexboot's HTTP beside kexboot's and U-Boot's default TFTP, the 27 MB Image
/// and the initrd, and the goals of issue 16.
fn http_table(
    root: &Path,
    rounds: usize,
    samples: &[Vec<Sample>],
    goals: &mut Vec<Goal>,
) -> String {
    let mut md = String::new();
    let size = |f: &str| std::fs::metadata(root.join(f)).map_or(0, |m| m.len());
    let _ = writeln!(
        md,
        "\nHTTP boot: the same machine and link; `Image` ({} bytes) and `initrd.img` ({} bytes) \
         by kexboot's `wget` from Python's `http.server --protocol HTTP/1.1` on the host \
         (10.0.2.2 to the guest; one kept-alive connection), and by each firmware's default TFTP \
         from the project's server. kexboot's figures are its own summary lines (request to last \
         byte), U-Boot's the TFTP server's (RRQ to final ACK); MB = 10^6 bytes, medians of \
         {rounds} interleaved rounds.\n",
        size("Image"),
        size("initrd.img")
    );
    let _ = writeln!(
        md,
        "| client | Image MB/s: median (min–max) | initrd.img MB/s | measured by | ok rounds |"
    );
    let _ = writeln!(md, "|---|---:|---:|---|---:|");
    let at = |a: Arm| Arm::ALL.iter().position(|x| *x == a).unwrap_or(0);
    // The figure each arm is judged by: kexboot's own lines, U-Boot's server-side ones.
    let figure = |a: Arm, s: &Sample, f: usize| match a {
        Arm::UBootImage => s.files[f].as_ref().map(Stats::mbps),
        _ => s.client[f],
    };
    let med = |a: Arm, f: usize| median_f(samples[at(a)].iter().map(|s| figure(a, s, f)));
    for arm in [Arm::KexHttp, Arm::KexImage, Arm::UBootImage] {
        let cellf = |f: usize| rate_cell(samples[at(arm)].iter().map(|s| figure(arm, s, f)));
        let by = match arm {
            Arm::UBootImage => "the TFTP server",
            _ => "kexboot's summary line",
        };
        let ok = samples[at(arm)]
            .iter()
            .filter(|s| s.error.is_none())
            .count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {by} | {ok}/{rounds} |",
            arm.label(),
            cellf(0),
            cellf(1)
        );
    }
    let rf = |a: Arm, b: Arm| {
        med(a, 0)
            .zip(med(b, 0))
            .filter(|(_, y)| *y > 0.0)
            .map(|(x, y)| x / y)
    };
    let mb = |a: Arm| med(a, 0).map_or("n/a".into(), |v| format!("{v:.2} MB/s"));
    md.push('\n');
    for (what, b, want) in [
        (
            "HTTP Image throughput, kexboot `wget` / kexboot's default TFTP",
            Arm::KexImage,
            1.0,
        ),
        (
            "HTTP Image throughput, kexboot `wget` / U-Boot's default TFTP",
            Arm::UBootImage,
            4.0,
        ),
    ] {
        let v = rf(Arm::KexHttp, b);
        let _ = writeln!(
            md,
            "- {what}: **{}** (goal ≥ {want:.0}x)",
            v.map_or("n/a".into(), |v| format!("{v:.2}x"))
        );
        goals.push(
            Goal::ratio("16. HTTP", what, v, Want::AtLeast(want)).from(format!(
                "{} vs {} (medians)",
                mb(Arm::KexHttp),
                mb(b)
            )),
        );
    }
    md
}

/// `--net-only`: replaces the "Netboot" section of an existing `target/bench.md` (or starts one).
pub fn write_section(out: &Path, section: &str) -> Result<()> {
    crate::bench_util::write_section(out, "Netboot", section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_medians() {
        let ip = IpAddr::from([192, 0, 2, 2]);
        let h = Arm::KexHttp.commands(ip, 8000);
        assert_eq!(h[1], "wget ${kernel_addr_r} http://10.0.2.2:8000/Image");
        assert_eq!(
            Arm::UBootImage.commands(ip, 8000).last().unwrap(),
            "tftpboot ${ramdisk_addr_r} initrd.img"
        );
        assert!(Arm::KexImage
            .commands(ip, 8000)
            .contains(&"tftpboot ${kernel_addr_r} Image".to_string()));
        assert_eq!(
            line_mbps("HTTP 'Image': 27303872 bytes in 0.500 s, 54.6 MB/s, from 10.0.2.2:1, connection 1, 0 retries, crc32 0x01020304"),
            Some(27303872.0 / 0.5 / 1e6)
        );
        assert_eq!(line_mbps("HTTP 'Image': 404 Not Found from 10.0.2.2"), None);
        assert!(Arm::KexDefault
            .commands(ip, 8000)
            .contains(&"setenv serverip 192.0.2.2".to_string()));
        assert!(Arm::KexW1.commands(ip, 8000)[0].contains("tftpwindowsize 1"));
        assert!(Arm::UBootW16
            .commands(ip, 8000)
            .iter()
            .any(|c| c == "setenv tftpwindowsize 16"));
        assert!(!Arm::UBootDefault
            .commands(ip, 8000)
            .iter()
            .any(|c| c.contains("windowsize")));
        assert_eq!(
            Arm::UBootDefault.commands(ip, 8000).last().unwrap(),
            "tftpboot ${ramdisk_addr_r} initrd.img"
        );
        assert!(Arm::KexPxe.commands(ip, 8000).is_empty());
        assert_eq!(
            median_f([Some(3.0), None, Some(1.0), Some(2.0)].into_iter()),
            Some(2.0)
        );
        assert_eq!(median_f([None].into_iter()), None);
    }

    #[test]
    fn section_replaced() {
        let dir = std::env::temp_dir().join(format!("xtask-benchnet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bench.md");
        std::fs::write(
            &p,
            "# b\n\n## Cold boot\n\nx\n\n## Netboot\n\nOLDTEXT\n\n## Warm\n\nw\n",
        )
        .unwrap();
        write_section(&p, "\n## Netboot\n\nNEWTEXT\n").unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(
            s.contains("## Cold boot\n\nx") && s.contains("## Warm\n\nw"),
            "{s}"
        );
        assert!(s.contains("NEWTEXT") && !s.contains("OLDTEXT"), "{s}");
        assert_eq!(s.matches("## Netboot").count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
