//! `cargo xtask fuzz [--secs N] [--runs N] [TARGET]`: builds the cargo-fuzz targets in `fuzz/` (nightly,
//! installing nightly and cargo-fuzz when missing), writes seed corpora made from the test assets
//! under `target/fuzz-corpus/<target>/`, runs each target (or one) for N seconds (or until it has
//! run `--runs` inputs, whichever comes first) on one core and
//! prints execs, exec/s, corpus size and crashes per target. A crash fails the command; its input
//! is kept under `target/fuzz-artifacts/<target>/`, the log under `target/fuzz-logs/<target>.log`.

use crate::disk::{self, FatType, Scheme};
use crate::extlinux::{extlinux, Entry};
use crate::qemu;
use crate::util::{err, run_status, Context, Paths, Result};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Every target in `fuzz/fuzz_targets/`, in the order they run.
pub const TARGETS: [&str; 25] = [
    "image_header",
    "gzip",
    "decompress",
    "dtb_read",
    "dtb_fixup",
    "dt_overlay",
    "fdt_cmd",
    "handoff",
    "partitions",
    "fat_read",
    "fat_write",
    "ext4",
    "extlinux",
    "bls",
    "script",
    "env",
    "envstore",
    "tftp",
    "tftp_fastpath",
    "dhcp",
    "relocate_plan",
    "fit",
    "fit_verify",
    "http_response",
    "http_url",
];

/// Default seconds per target.
const DEFAULT_SECS: u64 = 60;
/// Seconds per target of the smoke run in `cargo xtask test`.
pub const SMOKE_SECS: u64 = 4;
/// libFuzzer's per-input timeout (seconds): an input this slow counts as a hang.
const INPUT_TIMEOUT_S: u32 = 10;
/// The toolchain cargo-fuzz needs (`-Z` flags, sanitizer coverage).
const NIGHTLY: &str = "nightly";
/// Sector size of the sparse-disk seeds (`fuzz/src/lib.rs`).
const SECTOR: usize = 512;
/// Most sectors one sparse seed may carry (`MAX_SPARSE_CHUNKS` in `fuzz/src/lib.rs`).
const MAX_SPARSE_CHUNKS: usize = 512;

/// One target's figures from libFuzzer's final statistics.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub target: String,
    pub execs: u64,
    pub execs_per_s: u64,
    pub secs: f64,
    pub corpus: usize,
    pub crashes: usize,
    pub ok: bool,
}

/// `cargo xtask fuzz`.
pub fn cmd_fuzz(paths: &Paths, args: &[String]) -> Result<()> {
    let mut secs = DEFAULT_SECS;
    let mut runs = None;
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => {
                let v = it.next().ok_or_else(|| err!("--secs needs a number"))?;
                secs = v.parse().map_err(|_| err!("--secs {v}: not a number"))?;
            }
            "--runs" => {
                let v = it.next().ok_or_else(|| err!("--runs needs a number"))?;
                runs = Some(v.parse().map_err(|_| err!("--runs {v}: not a number"))?);
            }
            t if TARGETS.contains(&t) => only = Some(t.to_string()),
            other => {
                return Err(err!(
                    "unexpected argument `{other}`; targets: {}",
                    TARGETS.join(", ")
                ))
            }
        }
    }
    let targets: Vec<&str> = match &only {
        Some(t) => vec![t.as_str()],
        None => TARGETS.to_vec(),
    };
    let stats = run(paths, &targets, secs, runs)?;
    report(&stats)
}

/// The smoke run of `cargo xtask test`: every target for [`SMOKE_SECS`] seconds.
pub fn smoke(paths: &Paths) -> Result<()> {
    report(&run(paths, &TARGETS, SMOKE_SECS, None)?)
}

fn report(stats: &[Stats]) -> Result<()> {
    println!("\n| target | execs | exec/s | time (s) | corpus | crashes |");
    println!("|---|---:|---:|---:|---:|---:|");
    for s in stats {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} |",
            s.target, s.execs, s.execs_per_s, s.secs, s.corpus, s.crashes
        );
    }
    let bad: Vec<&str> = stats
        .iter()
        .filter(|s| !s.ok)
        .map(|s| s.target.as_str())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(err!(
            "fuzz target(s) failed: {} (inputs under target/fuzz-artifacts/, logs under target/fuzz-logs/)",
            bad.join(", ")
        ))
    }
}

/// A command of the nightly toolchain, without the variables the stable `cargo` running xtask set.
fn nightly_cargo(paths: &Paths) -> Command {
    let mut c = Command::new("cargo");
    c.arg(format!("+{NIGHTLY}"))
        .current_dir(paths.root.join("fuzz"));
    for v in [
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "CARGO_TARGET_DIR",
    ] {
        c.env_remove(v);
    }
    c
}

/// Installs the nightly toolchain and cargo-fuzz when missing (a fresh machine has neither).
fn ensure_tools(paths: &Paths) -> Result<()> {
    let has_nightly = Command::new("rustup")
        .args(["run", NIGHTLY, "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_nightly {
        eprintln!("fuzz: installing the {NIGHTLY} toolchain");
        run_status(Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
        ]))?;
    }
    let has_fuzz = nightly_cargo(paths)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_fuzz {
        eprintln!("fuzz: installing cargo-fuzz");
        run_status(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))?;
    }
    Ok(())
}

/// `cargo fuzz` arguments shared by build and run: no sanitizer (the fuzzed crates are safe
/// Rust; their only `unsafe`, relocate's `PhysMemory` and trampoline, is not reachable from a
/// harness), debug assertions and overflow checks on (cargo-fuzz's default), one build directory.
fn fuzz_args(paths: &Paths) -> Vec<String> {
    let dir = paths.target.join("fuzz-build");
    vec![
        "-s".into(),
        "none".into(),
        "--target-dir".into(),
        dir.display().to_string(),
    ]
}

/// Builds, seeds and runs `targets` for `secs` each (or `runs` inputs, whichever comes first),
/// one at a time on one core.
pub fn run(paths: &Paths, targets: &[&str], secs: u64, runs: Option<u64>) -> Result<Vec<Stats>> {
    ensure_tools(paths)?;
    let mut build = nightly_cargo(paths);
    build.args(["fuzz", "build"]).args(fuzz_args(paths));
    run_status(&mut build)?;
    let corpus_root = paths.target.join("fuzz-corpus");
    let artifacts_root = paths.target.join("fuzz-artifacts");
    let logs = paths.target.join("fuzz-logs");
    fs::create_dir_all(&logs).ctx(logs.display())?;
    seed_all(paths, &corpus_root)?;
    let mut out = Vec::new();
    for t in targets {
        let corpus = corpus_root.join(t);
        let artifacts = artifacts_root.join(t);
        fs::create_dir_all(&corpus).ctx(corpus.display())?;
        fs::create_dir_all(&artifacts).ctx(artifacts.display())?;
        let before = count_findings(&artifacts);
        let log = logs.join(format!("{t}.log"));
        let log_file = fs::File::create(&log).ctx(log.display())?;
        let mut cmd = nightly_cargo(paths);
        cmd.args(["fuzz", "run"])
            .args(fuzz_args(paths))
            .arg(t)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .args(runs.map(|r| format!("-runs={r}")))
            .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            .stdout(log_file.try_clone().ctx(log.display())?)
            .stderr(log_file);
        eprintln!("fuzz: {t} for {secs} s (log {})", log.display());
        let t0 = Instant::now();
        let st = cmd.status().ctx(format!("cannot run cargo fuzz run {t}"))?;
        let text = fs::read_to_string(&log).unwrap_or_default();
        let mut s = parse_stats(&text);
        s.target = t.to_string();
        s.secs = t0.elapsed().as_secs_f64();
        s.corpus = count_files(&corpus);
        s.crashes = count_findings(&artifacts).saturating_sub(before);
        s.ok = st.success() && s.crashes == 0;
        if !s.ok {
            eprintln!("fuzz: {t} FAILED ({st}); tail of {}:", log.display());
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("  {l}");
            }
        }
        out.push(s);
    }
    Ok(out)
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// libFuzzer's report of an input that merely took long (`slow-unit-…`, written past
/// `-report_slow_units` seconds of wall time: on a loaded machine a starved process writes them
/// for inputs that run in milliseconds). A hang is a `timeout-…` artifact and fails the run.
const SLOW_UNIT_PREFIX: &str = "slow-unit-";

/// Artifacts that are findings (crash, timeout, leak, out-of-memory), not slow-unit reports.
fn count_findings(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    !e.file_name()
                        .to_string_lossy()
                        .starts_with(SLOW_UNIT_PREFIX)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Reads libFuzzer's `-print_final_stats=1` lines (`stat::name: value`).
pub fn parse_stats(log: &str) -> Stats {
    let mut s = Stats::default();
    for l in log.lines() {
        let Some((k, v)) = l.strip_prefix("stat::").and_then(|r| r.split_once(':')) else {
            continue;
        };
        let v: u64 = v.trim().parse().unwrap_or(0);
        match k {
            "number_of_executed_units" => s.execs = v,
            "average_exec_per_sec" => s.execs_per_s = v,
            _ => {}
        }
    }
    s
}

/// Writes a seed file unless one of that name exists (the corpus grows, seeds stay).
fn seed(corpus_root: &Path, target: &str, name: &str, data: &[u8]) -> Result<()> {
    let dir = corpus_root.join(target);
    fs::create_dir_all(&dir).ctx(dir.display())?;
    let p = dir.join(format!("seed-{name}"));
    if p.exists() {
        return Ok(());
    }
    fs::write(&p, data).ctx(p.display())
}

/// A disk as the fuzz targets' sparse format: `num_sectors: u32 LE`, then `lba: u32 LE` + sector
/// for each non-zero sector (at most [`MAX_SPARSE_CHUNKS`]).
pub fn sparse(disk: &[u8]) -> Vec<u8> {
    let n = u32::try_from(disk.len() / SECTOR).unwrap_or(u32::MAX);
    let mut out = n.to_le_bytes().to_vec();
    let chunks = disk
        .chunks_exact(SECTOR)
        .enumerate()
        .filter(|(_, s)| s.iter().any(|&b| b != 0))
        .take(MAX_SPARSE_CHUNKS);
    for (lba, s) in chunks {
        out.extend_from_slice(&u32::try_from(lba).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

/// `data` followed by an empty trailer (the targets that read one take its length from the last
/// byte).
fn with_empty_trailer(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.push(0);
    v
}

/// Cuts the free space QEMU leaves after the strings block (its blob is 1 MiB): a 1 MiB input
/// would make every run copy and walk it.
fn compact_dtb(mut dtb: Vec<u8>) -> Vec<u8> {
    let be = |off: usize| {
        dtb.get(off..off + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (struct_end, strings_end) = (be(8) + be(36), be(12) + be(32));
    if strings_end >= struct_end && strings_end <= dtb.len() {
        dtb.truncate(strings_end);
        dtb[4..8].copy_from_slice(&(strings_end as u32).to_be_bytes());
    }
    dtb
}

/// QEMU virt's own device tree (`-M virt,dumpdtb=`), or `None` without QEMU.
fn qemu_dtb(paths: &Paths, name: &str, machine: &str, smp: u32) -> Option<Vec<u8>> {
    let dir = paths.target.join("fuzz-seeds");
    fs::create_dir_all(&dir).ok()?;
    let out = dir.join(format!("{name}.dtb"));
    let st = Command::new(qemu::QEMU)
        .args(qemu::Args::dump_dtb(machine, smp, &out).into_vec())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    st.success().then(|| fs::read(&out).ok()).flatten()
}

/// `mkimage -T script` of `text` from u-boot-tools, else the same format built by kexboot's
/// own writer.
fn mkimage_script(paths: &Paths, text: &str) -> Vec<u8> {
    let dir = paths.target.join("fuzz-seeds");
    let (src, out) = (dir.join("boot.cmd"), dir.join("boot.scr"));
    let made = fs::create_dir_all(&dir).is_ok()
        && fs::write(&src, text).is_ok()
        && Command::new("mkimage")
            .args(["-A", "arm64", "-O", "linux", "-T", "script", "-C", "none"])
            .args(["-n", "fuzz seed", "-d"])
            .arg(&src)
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    match made.then(|| fs::read(&out).ok()).flatten() {
        Some(b) => b,
        None => kexboot_boot::script::make_legacy_script_image(text, "fuzz seed"),
    }
}

/// The boot script seeds: what flash-kernel's generic script does, with kexboot's commands.
const BOOT_CMD: &str = "setenv bootargs console=ttyAMA0 root=/dev/vda1\n\
if test -n \"${fdtfile}\"; then echo dtb ${fdtfile}; else setenv fdtfile virt.dtb; fi\n\
load virtio 0:1 ${kernel_addr_r} /boot/Image\n\
load virtio 0:1 ${ramdisk_addr_r} /boot/initrd.img\n\
sleep 1\n\
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}\n";

/// A BOOTP reply body for the dhcp target (its fixed part; xid, MAC and cookie are patched in by
/// the harness), followed by DHCP options of message type `kind`.
fn dhcp_reply(kind: u8) -> Vec<u8> {
    const BOOTP_FIXED: usize = 236;
    let mut b = vec![0u8; BOOTP_FIXED];
    b[16..20].copy_from_slice(&[10, 0, 2, 15]); // yiaddr
    b[20..24].copy_from_slice(&[10, 0, 2, 2]); // siaddr
    b[108..115].copy_from_slice(b"vmlinuz"); // file
    b.extend_from_slice(&[53, 1, kind, 54, 4, 10, 0, 2, 2, 1, 4, 255, 255, 255, 0]);
    b.extend_from_slice(&[3, 4, 10, 0, 2, 2, 6, 4, 10, 0, 2, 3, 51, 4, 0, 1, 81, 128]);
    b.extend_from_slice(&[66, 8]);
    b.extend_from_slice(b"10.0.2.2");
    b.extend_from_slice(&[67, 7]);
    b.extend_from_slice(b"pxelinux");
    b.push(255);
    b
}

/// One received frame for the dhcp target: mode 3 = a DHCP reply framed and patched.
fn dhcp_frame(body: &[u8]) -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// Seeds every target's corpus from the test assets (what is missing is skipped).
fn seed_all(paths: &Paths, root: &Path) -> Result<()> {
    let assets = &paths.assets;
    // arm64 Image header: the Debian kernel's first 4 KiB, and a minimal header.
    if let Ok(img) = fs::read(assets.join("Image")) {
        seed(
            root,
            "image_header",
            "debian-4k",
            &img[..img.len().min(4096)],
        )?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &img[..img.len().min(16 << 10)])?;
        let mut s = 0xffffu16.to_le_bytes().to_vec();
        s.extend(gz.finish()?);
        seed(root, "gzip", "debian-16k", &s)?;
        seed(root, "decompress", "gzip-debian-16k", &s)?;
    }
    // Kernels compressed by the real lz4 and zstd tools (loader/tests/data/make-fixtures.sh).
    // Not the legacy lz4 ones: their one 8 MiB block is decoded whole per run.
    let fixtures = paths.root.join("loader/tests/data");
    for name in [
        "kernel.lz4",
        "kernel.lz4-linked",
        "kernel.zst",
        "kernel.zst-2frames",
    ] {
        let mut s = 0xffffu16.to_le_bytes().to_vec();
        s.extend(fs::read(fixtures.join(name))?);
        seed(root, "decompress", name, &s)?;
    }
    let mut hdr = vec![0u8; 64];
    hdr[0x10..0x18].copy_from_slice(&(32u64 << 20).to_le_bytes());
    hdr[0x18] = 0b1010; // 4 KiB pages, any base
    hdr[0x38..0x3c].copy_from_slice(b"ARM\x64");
    seed(root, "image_header", "minimal", &hdr)?;
    let conf = extlinux(
        "kexboot-image",
        &[
            Entry {
                label: "kexboot-image",
                linux: "/boot/Image",
                initrd: "/boot/initrd.img",
                append: "console=ttyAMA0 quiet",
            },
            Entry {
                label: "kexboot-imagegz",
                linux: "/boot/Image.gz",
                initrd: "/boot/initrd.img,/boot/extra.img",
                append: "console=ttyAMA0 initrd=/boot/x",
            },
        ],
    );
    let menu_conf = conf.replacen(
        "timeout 0\n",
        "timeout 30\nmenu title kexboot\nprompt 1\n",
        1,
    );
    seed(root, "extlinux", "tests", conf.as_bytes())?;
    seed(root, "extlinux", "menu", menu_conf.as_bytes())?;
    // Includes: pieces after NUL bytes are the files `/e/1`, `/e/2`, ... (one includes itself).
    seed(
        root,
        "extlinux",
        "include",
        b"menu title inc\nontimeout b\ntotaltimeout 100\nmenu hidden\ninclude 1\n\
          label after\n linux /after\n\0timeout 30\nlabel a\n linux /a\nmenu include 2\n\
          \0label b\n localboot 1\ninclude 2\ninclude /e/1\n",
    )?;
    // BLS: Fedora-style entries, NUL-separated (one unreadable, one for another architecture).
    let mid = "4098b3f648d74c13b1f04ccfba7798e8";
    let mut bls = Vec::new();
    for v in [
        "6.5.6-300.fc39.aarch64",
        "6.10.0-0.rc1.fc41",
        "6.9.12-200.fc40",
    ] {
        bls.extend(
            format!(
                "title Fedora Linux ({v})\nversion {v}\nmachine-id {mid}\nsort-key fedora\n\
                 linux /vmlinuz-{v}\ninitrd /initramfs-{v}.img\noptions root=UUID=1 ro\n\
                 options $tuned_params\ndevicetree-overlay /a.dtbo /b.dtbo\n\0"
            )
            .bytes(),
        );
    }
    bls.extend(format!("title rescue\nversion 0-rescue-{mid}\nlinux vmlinuz-0-rescue\n\0").bytes());
    bls.extend(b"title x86\narchitecture x64\nlinux /k\n\0!unreadable\0options $kernelopts\n");
    seed(root, "bls", "fedora", &bls)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, conf.as_bytes())?;
    let mut s = 0x1000u16.to_le_bytes().to_vec();
    s.extend(gz.finish()?);
    seed(root, "gzip", "extlinux", &s)?;

    // Device trees: QEMU virt as kexboot meets it (EL1, EL2, EL3 with 4 CPUs).
    let machines = [
        ("virt", "virt", 1),
        ("virt-el2-smp4", "virt,virtualization=on", 4),
        ("virt-el3", "virt,secure=on", 2),
    ];
    for (name, m, smp) in machines {
        if let Some(dtb) = qemu_dtb(paths, name, m, smp) {
            let dtb = compact_dtb(dtb);
            seed(root, "dtb_read", name, &dtb)?;
            // An empty fixup trailer (its length byte, 0) after the blob.
            seed(root, "dtb_fixup", name, &with_empty_trailer(&dtb))?;
            seed(root, "fdt_cmd", name, &with_empty_trailer(&dtb))?;
        }
    }

    // Overlays: the host tests' base tree with each of their overlays (good and bad).
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../loader/tests/data/overlay");
    let base = fs::read(data.join("base.dtb"))?;
    for e in fs::read_dir(&data)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "dtbo") {
            let len = u16::try_from(base.len()).map_err(|_| err!("base.dtb above 64 KiB"))?;
            let mut s = len.to_le_bytes().to_vec();
            s.extend_from_slice(&base);
            s.extend(fs::read(&path)?);
            let name = path.file_stem().unwrap_or_default().to_string_lossy();
            seed(root, "dt_overlay", &name, &s)?;
        }
    }

    // FIT images and key blobs mkimage made (loader/tests/data/fit), for both FIT targets
    // (fit_verify mutates its own built-in FIT; its seeds steer the edits).
    let fits = paths.root.join("loader/tests/data/fit");
    for e in fs::read_dir(&fits).ctx(fits.display())? {
        let path = e?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".itb") || name.starts_with("keys-") {
            seed(root, "fit", &name, &fs::read(&path).ctx(path.display())?)?;
        }
    }
    seed(root, "fit_verify", "one-flip", &[1, 0, 0, 0, 0, 0, 0, 1])?;

    // HTTP responses: a knob byte (destination size, piece size), then what a server sends.
    for (name, text) in [
        (
            "length",
            &b"\x3fHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..],
        ),
        (
            "chunked",
            &b"\x7fHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n"[..],
        ),
        ("close", &b"\x10HTTP/1.0 200 OK\r\n\r\nuntil the end"[..]),
        (
            "redirect",
            &b"\x01HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n"[..],
        ),
    ] {
        seed(root, "http_response", name, text)?;
    }
    for (name, text) in [
        (
            "pxe",
            "http://10.0.2.2:8080/boot/pxelinux.0\npxelinux.cfg/default",
        ),
        ("root", "http://h/a/b/c\n/vmlinuz"),
        ("dots", "http://h/a/b/\n../../x?y#z"),
        ("absolute", "http://h/a\nhttp://o:81/k"),
        ("colons", "http://h/a/\n::/k"),
    ] {
        seed(root, "http_url", name, text.as_bytes())?;
    }

    // Handoff record.
    let rec = kexboot_loader::handoff::Record {
        generation: 3,
        boot_id: 0x1234_5678_9abc_def0,
        label: "kexboot-image".into(),
    };
    seed(root, "handoff", "record", &rec.encode())?;

    // Disks: the test disks' layout (MBR, GPT) and small FAT12/FAT16 volumes.
    let env = kexboot_boot::env::Env::parse("bootdelay=2\nbootlimit=3\n").0;
    let store = kexboot_boot::envstore::encode(&env, 1, kexboot_boot::envstore::COPY_SIZE)
        .map_err(|e| err!("encoding the seed environment: {e}"))?;
    let mut region = store.clone();
    region.resize(kexboot_boot::envstore::REGION_SIZE, 0);
    let count = kexboot_boot::bootcount::encode_count(2);
    let scr = mkimage_script(paths, BOOT_CMD);
    let files: [(&str, &[u8]); 5] = [
        ("/extlinux/extlinux.conf", conf.as_bytes()),
        ("/boot/Image", &hdr),
        (kexboot_boot::envstore::STORE_PATH, &region),
        (kexboot_boot::bootcount::BOOTCOUNT_PATH, &count),
        ("/boot.scr", &scr),
    ];
    let disks = [
        ("mbr-fat32", disk::build(&files, Scheme::Mbr)?),
        ("gpt-fat32", disk::build(&files, Scheme::Gpt)?),
        ("fat12", disk::volume(1 << 20, FatType::Fat12, &files)?),
        (
            "fat16",
            disk::volume(16 << 20, FatType::Fat16, &files[..2])?,
        ),
    ];
    for (name, d) in &disks {
        let sp = sparse(d);
        seed(root, "partitions", name, &sp)?;
        seed(root, "fat_read", name, &sp)?;
        seed(root, "fat_write", name, &with_empty_trailer(&sp))?;
    }
    // A FAT volume larger than its partition (`mkfs.vfat --offset` without a size): the MBR
    // disk with partition 1 cut to three quarters.
    let mut short = disks[0].1.clone();
    let count_at = 446 + 12;
    let c = &short[count_at..count_at + 4];
    let count = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    short[count_at..count_at + 4].copy_from_slice(&(count - count / 4).to_le_bytes());
    let sp = sparse(&short);
    seed(root, "partitions", "fat-overruns-partition", &sp)?;
    seed(root, "fat_read", "fat-overruns-partition", &sp)?;
    seed(
        root,
        "fat_write",
        "fat-overruns-partition",
        &with_empty_trailer(&sp),
    )?;
    seed(root, "ext4", "fat-overruns-partition", &sp)?;

    // ext2/3/4: the fs crate's test images (mke2fs -d; their metadata comes first, so the
    // sparse format's first sectors hold it).
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fs/tests/data");
    for name in ["ext4", "ext4-nocsum", "ext3", "ext2"] {
        let gz = fs::read(data.join(format!("{name}.img.gz")))?;
        let mut img = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut img)?;
        seed(root, "ext4", name, &sparse(&img))?;
    }

    // Scripts: plain (mode 0), wrapped by kexboot (mode 1), mkimage's image (mode 2).
    for (mode, name, body) in [
        (0u8, "plain", BOOT_CMD.as_bytes().to_vec()),
        (1, "wrap", BOOT_CMD.as_bytes().to_vec()),
        (2, "mkimage", scr),
    ] {
        let mut s = vec![mode];
        s.extend(body);
        seed(root, "script", name, &s)?;
    }

    // Environment text and the redundant store (copy sizes 64 and 1024: selector 0 and 2).
    let env_txt =
        "# kexboot settings\nbootdelay=2\nramoops_size=0x100000\nbootcmd=run distro_bootcmd\n";
    seed(root, "env", "text", env_txt.as_bytes())?;
    for (sel, size) in [(0u8, 64usize), (2, 1024)] {
        let small = kexboot_boot::env::Env::parse("a=1\nb=2\n").0;
        let a = kexboot_boot::envstore::encode(&small, 7, size)
            .map_err(|e| err!("encoding the seed store: {e}"))?;
        let b = kexboot_boot::envstore::encode(&env, 8, size).unwrap_or_else(|_| vec![0; size]);
        let mut s = vec![sel];
        s.extend(a);
        s.extend(b);
        s.extend(b"bootdelay=5\n");
        s.push(12);
        seed(root, "envstore", &format!("copy{size}"), &s)?;
    }

    // DHCP: an OFFER then an ACK, as QEMU's user network sends them.
    let mut d = dhcp_frame(&dhcp_reply(2));
    d.extend([0, 0, 0]); // nothing arrives for one poll
    d.extend(dhcp_frame(&dhcp_reply(5)));
    seed(root, "dhcp", "offer-ack", &d)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_keeps_nonzero_sectors_only() {
        let mut d = vec![0u8; 4 * SECTOR];
        d[2 * SECTOR + 5] = 7;
        let s = sparse(&d);
        assert_eq!(&s[..4], &4u32.to_le_bytes());
        assert_eq!(&s[4..8], &2u32.to_le_bytes());
        assert_eq!(s.len(), 8 + SECTOR);
        assert_eq!(s[8 + 5], 7);
    }

    #[test]
    fn slow_unit_reports_are_not_findings() {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-artifacts-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("slow-unit-445f"), b"x").unwrap();
        assert_eq!(count_findings(&dir), 0);
        for kind in ["crash-1", "timeout-2", "leak-3", "oom-4"] {
            fs::write(dir.join(kind), b"x").unwrap();
        }
        assert_eq!(count_findings(&dir), 4);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn final_stats_are_read() {
        let log = "#1000 DONE\nstat::number_of_executed_units: 123456\n\
                   stat::average_exec_per_sec:     4115\nstat::new_units_added: 3\n";
        let s = parse_stats(log);
        assert_eq!((s.execs, s.execs_per_s), (123_456, 4115));
    }

    #[test]
    fn every_target_has_a_harness() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
        let mut found: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().replace(".rs", ""))
            .collect();
        found.sort();
        let mut want: Vec<String> = TARGETS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(found, want);
    }
}
