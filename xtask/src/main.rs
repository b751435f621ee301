//! `cargo xtask`: builds the kexboot firmware, fetches and builds the test assets (Debian kernel,
//! busybox initramfs, the warm re-entry initramfs with kexec-tools, disk images) and drives QEMU
//! for `run`, `test` and `bench`.
//!
//! Everything it makes lives under the workspace's `target/` directory; nothing is committed.

mod apt;
mod assets;
mod bench;
mod bench_decomp;
mod bench_fit;
mod bench_net;
mod bench_util;
mod bench_warm;
mod boots;
mod cases;
mod check;
mod disk;
mod disks;
mod e2e;
mod e2e_boot;
mod e2e_el3;
mod e2e_fit;
mod e2e_http;
mod e2e_net;
mod e2e_probe;
mod e2e_real;
mod e2e_rpi3;
mod e2e_warm;
mod extlinux;
mod firmware;
mod fitimg;
mod fuzz;
mod initrd;
mod qemu;
mod realdisks;
mod rpi3;
mod size;
mod tftpd;
mod toolchain;
mod tools;
mod util;
mod warm;

use std::process::{Command, ExitCode};
use util::{err, run_status, Context, Paths, Result};

const USAGE: &str = "usage: cargo xtask <command>
  assets                 install QEMU/U-Boot, fetch Debian's arm64 kernel + busybox, build Image,
                         Image.gz, initrd.img and the test disks under target/assets/
  build [--release] [--board qemu-virt|rpi3]
                         build the firmware and write target/kexboot.bin (always release; one
                         image for every board, which it tells from the device tree); with
                         --board rpi3 also the Raspberry Pi 3 files (SD image, kernel8.img)
  run [--board qemu-virt|rpi3] [-- QEMU ARGS]
                         assets + build, then boot kexboot in QEMU on this console (Ctrl-A x
                         quits): QEMU virt from a virtio disk, or raspi3b from an SD card
  test [--no-e2e] [--no-clippy] [--only CASE]
                         host tests, firmware build, clippy, QEMU end-to-end cases
  bench [--rounds N] [--warm-only | --no-warm] [--net-only | --no-net]
        [--decompress | --no-decompress] [--board rpi3]
                         time kexboot vs Debian's U-Boot vs direct Linux (cold boot), warm
                         reboots through kexboot vs kexec-tools direct, kernel decompression
                         MB/s per format (gzip against U-Boot's booti), and netboot (TFTP
                         throughput, PXE boot time; writes target/bench.md); --board rpi3:
                         kexboot vs U-Boot rpi_3 vs direct on QEMU raspi3b from one SD card,
                         with SD read MB/s (target/bench-rpi3.md)
  size [--no-build] [--top N] [--elf PATH]
                         build the firmware, then print where its bytes go, from the ELF's
                         symbols: sections, bytes per crate, the largest symbols (docs/size.md);
                         --elf: the report of another build's ELF instead
  fuzz [--secs N] [--runs N] [TARGET]
                         build the cargo-fuzz targets (nightly; installs nightly and cargo-fuzz
                         when missing), seed target/fuzz-corpus/ from the test assets, run each
                         target (or one) N seconds (default 60) or N inputs, whichever ends first;
                         prints execs, exec/s, corpus, crashes
  tftpd [DIR] [--loss P] [--port N]
                         the test TFTP server (windowsize, loss injection) in the foreground;
                         default: the netboot test files on 127.0.0.1:69";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let paths = Paths::new();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    // Every command that builds for aarch64 needs the targets first (a fresh machine's toolchain
    // may lack them).
    let res = if matches!(
        cmd.as_str(),
        "build" | "run" | "test" | "bench" | "assets" | "size"
    ) {
        toolchain::ensure_targets(&paths)
    } else {
        Ok(())
    };
    let res = res.and_then(|()| match cmd.as_str() {
        "assets" => assets::ensure(&paths).and_then(|a| {
            let disks = disks::build_disks(&paths, &a)?;
            for d in disks.all() {
                println!("{}", d.display());
            }
            Ok(())
        }),
        "build" => cmd_build(&paths, rest),
        "size" => size::cmd_size(&paths, rest),
        "run" => cmd_run(&paths, rest),
        "test" => e2e::cmd_test(&paths, rest),
        "bench" => bench::cmd_bench(&paths, rest),
        "fuzz" => fuzz::cmd_fuzz(&paths, rest),
        "tftpd" => cmd_tftpd(&paths, rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(err!("unknown command `{other}`\n{USAGE}")),
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Fails on any argument not in `allowed`.
fn check_flags(args: &[String], allowed: &[&str]) -> Result<()> {
    match args.iter().find(|a| !allowed.contains(&a.as_str())) {
        Some(a) => Err(err!("unexpected argument `{a}`\n{USAGE}")),
        None => Ok(()),
    }
}

/// The boards `--board` names.
const BOARDS: [&str; 2] = ["qemu-virt", "rpi3"];

/// Splits off `--board NAME` (default `qemu-virt`); the rest are returned in order.
fn board_arg(args: &[String]) -> Result<(&str, Vec<String>)> {
    let mut board = BOARDS[0];
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a.clone());
            rest.extend(it.cloned());
            break;
        }
        if a == "--board" {
            let b = it.next().ok_or_else(|| err!("--board needs a name"))?;
            board = BOARDS
                .iter()
                .find(|n| *n == b)
                .ok_or_else(|| err!("unknown board {b}; boards: {}", BOARDS.join(", ")))?;
        } else {
            rest.push(a.clone());
        }
    }
    Ok((board, rest))
}

/// `build [--board B]`: the firmware (one image for every board) and the probe; for `rpi3`
/// also its SD image and `kernel8.img`. The image's path is the last line (scripts read it).
fn cmd_build(paths: &Paths, args: &[String]) -> Result<()> {
    let (board, mut rest) = board_arg(args)?;
    // `--keys keys.dtb`: the verified-boot keys (U-Boot's format, `mkimage -K`) built in.
    let keys = match rest.iter().position(|a| a == "--keys") {
        Some(i) => {
            let path = rest
                .get(i + 1)
                .cloned()
                .ok_or_else(|| err!("--keys needs a key blob (mkimage -K keys.dtb)"))?;
            rest.drain(i..=i + 1);
            Some(std::path::PathBuf::from(path))
        }
        None => None,
    };
    check_flags(&rest, &["--release"])?;
    let fw = match &keys {
        Some(k) => firmware::build_with_keys(paths, k, &paths.kexboot_bin())?,
        None => firmware::build(paths)?,
    };
    let probe = firmware::build_probe(paths)?;
    println!("{}", probe.display());
    if board == "rpi3" {
        let a = assets::ensure(paths)?;
        let r = rpi3::ensure(paths, &a.initrd)?;
        println!("{}", r.sd.display());
        println!("{}", rpi3::kernel8(paths)?.display());
    } else {
        println!("{}", fw.display());
    }
    Ok(())
}

/// `run`: boot kexboot from the MBR test disk (or, `--board rpi3`, QEMU raspi3b's SD card) with
/// the console on this terminal.
fn cmd_run(paths: &Paths, args: &[String]) -> Result<()> {
    let (board, rest) = board_arg(args)?;
    let extra = match rest.first().map(String::as_str) {
        Some("--") => &rest[1..],
        _ => &rest[..],
    };
    let assets = assets::ensure(paths)?;
    let bin = firmware::build(paths)?;
    if board == "rpi3" {
        let r = rpi3::ensure(paths, &assets.initrd)?;
        // -nographic would put the monitor on the first serial port; the tree's console is
        // the second (the mini UART).
        let args = rpi3::args(&r, &bin).args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "mon:stdio",
        ]);
        let mut cmd = Command::new(qemu::QEMU);
        cmd.args(args.args(extra).into_vec());
        eprintln!("xtask run: {cmd:?}");
        return run_status(&mut cmd);
    }
    let disks = disks::build_disks(paths, &assets)?;
    // The user's own disk: what `saveenv` writes stays there, and test images stay pristine.
    let run_disk = paths.assets.join("disk-run.img");
    if !run_disk.exists() {
        std::fs::copy(&disks.menu, &run_disk).ctx(run_disk.display())?;
    }
    let args = qemu::Args::machine("virt,virtualization=on", 2)
        .args(["-nographic"])
        .kernel(&bin)
        .disk_persistent(&run_disk)
        .args(extra);
    let mut cmd = Command::new(qemu::QEMU);
    cmd.args(args.into_vec());
    eprintln!("xtask run: {cmd:?}");
    run_status(&mut cmd)
}

/// `cargo xtask tftpd [DIR] [--loss P] [--port N]`: the test TFTP server in the foreground
/// (default: the netboot test files on 127.0.0.1:69), printing each finished transfer.
fn cmd_tftpd(paths: &Paths, args: &[String]) -> Result<()> {
    let mut cfg = match args.first().filter(|a| !a.starts_with("--")) {
        Some(dir) => tftpd::Config::new(dir),
        None => {
            let a = assets::ensure(paths)?;
            tftpd::Config::new(assets::tftp_root(paths, &a)?)
        }
    };
    let mut it = args.iter().skip_while(|a| !a.starts_with("--"));
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| err!("{flag} needs a value"))?;
        match flag.as_str() {
            "--loss" => cfg.loss = value.parse().map_err(|_| err!("--loss: a probability"))?,
            "--port" => {
                let port = value.parse().map_err(|_| err!("--port: a number"))?;
                cfg.addr.set_port(port);
            }
            other => return Err(err!("unexpected argument `{other}`")),
        }
    }
    let srv = tftpd::Server::start(cfg)?;
    println!("serving on {} (Ctrl-C stops)", srv.addr());
    let mut seen = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let t = srv.transfers();
        for s in t.iter().skip(seen) {
            println!(
                "{}: {} bytes, blksize {}, window {}, {:.1} MB/s, dropped {}, completed {}",
                s.file,
                s.bytes,
                s.blksize,
                s.windowsize,
                s.mbps(),
                s.dropped,
                s.completed
            );
        }
        seen = t.len();
    }
}
