//! Warm re-entry assets: Debian's `kexec-tools` with exactly the shared objects it needs (found
//! from the ELF `DT_NEEDED` entries, the packages from `apt-cache depends`), the `ramoops` and
//! `reed_solomon` modules of the test kernel, `kexboot.bin` and the Linux helper
//! `kexboot-reboot`, packed with a cycle-driving `/init` into `target/assets/initrd-warm.img`;
//! and the disks of the warm cases (one per scenario: the scenario rides on the entries' `append`).
//!
//! The `/init` reads `kexboot.test.cycle=N kexboot.test.cycles=M kexboot.test.via=V
//! kexboot.test.entries=E1,E2,..` from its command line (the last occurrence of a word wins, so the
//! words kexboot appends after the entry's own `append` override it). It prints the markers, loads
//! ramoops, writes `KEXBOOT-PSTORE-MARK cycle=N` to the kernel log, and while N < M reboots warm
//! into entry `E<N>` with `kexboot.test.cycle=N+1`, via the helper, kexec-tools, or (bench
//! baseline) kexec-tools loading `/boot/Image` + `/boot/initrd.img` directly.

use crate::apt::{self, Apt};
use crate::disk::{Disk, Scheme};
use crate::extlinux::{extlinux, Entry};
use crate::initrd::{self, Extra, EXEC};
use crate::qemu;
use crate::util::{
    cargo, err, is_arm64_image, run_status, write_unless_same, Context, Paths, Result,
};
use object::elf::{FileHeader64, DT_NEEDED};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Machine of every warm case and bench arm.
pub const MACHINE: &str = "virt,virtualization=on";
/// Rust target of the Linux helper.
pub const HELPER_TARGET: &str = "aarch64-unknown-linux-musl";
/// Cargo package (and binary) name of the Linux helper.
pub const HELPER_PKG: &str = "kexboot-reboot";
/// Cargo's linker override for the helper's target.
const HELPER_LINKER_ENV: &str = "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER";
/// The Debian package of the kexec client.
const KEXEC_PKG: &str = "kexec-tools";
/// Where the shared objects go in the initramfs (a directory of glibc's built-in search path).
const LIB_DIR: &str = "lib/aarch64-linux-gnu";
/// Directories of an unpacked package searched for a shared object.
const PKG_LIB_DIRS: &[&str] = &[
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib",
    "usr/lib",
];
/// Bounds on the dependency walk (packages downloaded, rounds of `apt-cache depends`).
const MAX_PKGS: usize = 40;
const MAX_ROUNDS: usize = 8;
/// The kernel modules pstore needs, in `insmod` order.
pub const MODULES: [&str; 2] = ["reed_solomon", "ramoops"];
/// The kernel modules of virtio-net over virtio-mmio (`kexboot.test.net=up`; all modules in
/// Debian's cloud kernel), in `insmod` order.
pub const NET_MODULES: [&str; 6] = [
    "failover",
    "net_failover",
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_net",
];
/// The guest's address on QEMU's user network, and the UDP port the host's traffic goes to
/// (nothing listens there: the NIC receives it all the same).
pub const GUEST_IP: &str = "10.0.2.15";
pub const GUEST_UDP_PORT: u16 = 7358;
/// Page of RAM the `UserDtb` scenario's tree marks `no-map` (QEMU virt, 1 GiB at 0x40000000).
pub const NO_MAP_PAGE: u64 = 0x7000_0000;
/// That tree (QEMU's own for the warm machine with 4 CPUs, plus the `no-map` page), under
/// `target/assets/`: given to QEMU with `-dtb` and to `booti` from the disk.
pub const USER_DTB: &str = "virt-smp4-nomap.dtb";
/// `/kexboot/env.txt` of the warm disks.
pub const ENV_TXT: &str = "ramoops_size=0x100000\n";

/// Command line start of the warm disks' entries (the entry's marker follows).
pub fn entry_cmdline(label: &str) -> String {
    format!("console=ttyAMA0 kexboot.test={label} quiet")
}

/// Command line of the kernel the direct arms kexec (`kexboot.test=<via>-next`).
pub fn direct_next_cmdline(via: &str) -> String {
    format!("console=ttyAMA0 kexboot.test={via}-next quiet")
}

/// `/init` of the warm initramfs.
pub const INIT_WARM: &str = r#"#!/bin/busybox sh
# kexboot warm re-entry test init (written by cargo xtask; see xtask/src/warm.rs)
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib/aarch64-linux-gnu:/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo KEXBOOT-E2E-BEGIN
arg() {
    v=$2
    for w in $(cat /proc/cmdline); do
        case "$w" in "$1="*) v=${w#*=} ;; esac
    done
    echo "$v"
}
cycle=$(arg kexboot.test.cycle 1)
cycles=$(arg kexboot.test.cycles 1)
via=$(arg kexboot.test.via none)
entries=$(arg kexboot.test.entries warm-a)
echo "KEXBOOT-E2E cmdline=$(cat /proc/cmdline)"
el=$(dmesg | grep "started at EL" | head -n 1)
echo "KEXBOOT-E2E el=${el:-unknown}"
cpus=$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)
echo "KEXBOOT-E2E cpus=$cpus"
mods=ok
for m in reed_solomon ramoops; do
    insmod /lib/modules/$m.ko 2>/tmp/err || mods="failed: insmod $m: $(tr '\n' ' ' </tmp/err)"
done
echo "KEXBOOT-E2E modules=$mods"
if [ "$(arg kexboot.test.net no)" = up ]; then
    for m in failover net_failover virtio_ring virtio virtio_mmio virtio_net; do
        insmod /lib/modules/$m.ko 2>/tmp/err || echo "KEXBOOT-E2E net-failed: insmod $m: $(tr '\n' ' ' </tmp/err)"
    done
    ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 ||
        echo "KEXBOOT-E2E net-failed: eth0 not configured"
    ping -c 1 -W 2 10.0.2.2 >/dev/null 2>&1
    rx=0
    for i in 1 2 3 4 5 6 7 8 9 10; do
        rx=$(cat /sys/class/net/eth0/statistics/rx_packets 2>/dev/null || echo 0)
        [ "$rx" -gt 20 ] && break
        sleep 1
    done
    echo "KEXBOOT-E2E net-rx=$rx"
fi
mount -t pstore pstore /sys/fs/pstore 2>/tmp/err || echo "KEXBOOT-E2E pstore-mount failed: $(tr '\n' ' ' </tmp/err)"
marks=$(cat /sys/fs/pstore/* 2>/dev/null | grep -o 'KEXBOOT-PSTORE-MARK cycle=[0-9]*' | sort -u | tr '\n' ' ')
echo "KEXBOOT-E2E pstore=${marks:-none}"
echo "KEXBOOT-E2E pstore-files=$(ls /sys/fs/pstore 2>/dev/null | tr '\n' ' ')"
echo "KEXBOOT-E2E reserved=$(ls /proc/device-tree/reserved-memory 2>/dev/null | grep @ | tr '\n' ' ')"
echo "KEXBOOT-E2E cycle=$cycle/$cycles via=$via"
echo "<2>KEXBOOT-PSTORE-MARK cycle=$cycle" >/dev/kmsg
next=$((cycle + 1))
entry=$(echo "$entries" | awk -F, -v n="$cycle" '{print $n}')
[ -n "$entry" ] || entry=warm-a
helper=/sbin/kexboot-reboot
finish() { echo KEXBOOT-E2E-END; poweroff -f; }
fail() { echo "KEXBOOT-E2E warm-failed: $*"; finish; }
go() {
    echo KEXBOOT-E2E-END
    echo "KEXBOOT-WARM-START t=$(cut -d' ' -f1 /proc/uptime) via=$via entry=$entry"
}
if [ "$via" = refuse ]; then
    out=$($helper --image /boot/Image 2>&1)
    rc=$?
    echo "KEXBOOT-E2E helper-rc=$rc"
    echo "KEXBOOT-E2E helper-out=$(echo "$out" | tr '\n' ' ')"
    echo "KEXBOOT-E2E kexec-loaded=$(cat /sys/kernel/kexec_loaded 2>/dev/null)"
    echo "KEXBOOT-E2E still-running"
    finish
fi
if [ "$(arg kexboot.test.hotplug no)" = yes ]; then
    c1=/sys/devices/system/cpu/cpu1/online
    echo 0 >$c1 2>/tmp/err || echo "KEXBOOT-E2E hotplug-failed: offline: $(tr '\n' ' ' </tmp/err)"
    echo "KEXBOOT-E2E hotplug-off=$(cat /sys/devices/system/cpu/online) cpu1=$(cat $c1)"
    echo 1 >$c1 2>/tmp/err || echo "KEXBOOT-E2E hotplug-failed: online: $(tr '\n' ' ' </tmp/err)"
    echo "KEXBOOT-E2E hotplug-on=$(cat /sys/devices/system/cpu/online) cpu1=$(cat $c1) nproc=$(nproc)"
fi
[ "$cycle" -lt "$cycles" ] || finish
case "$via" in
reboot)
    go
    reboot -f
    fail "reboot -f returned $?" ;;
helper)
    [ -x $helper ] || fail "no $helper in the initramfs (the helper was not built)"
    go
    $helper --image /boot/kexboot.bin --entry "$entry" --append "kexboot.test.cycle=$next"
    fail "$helper --entry $entry exited $? instead of rebooting" ;;
tools)
    /sbin/kexec -l /boot/kexboot.bin --dtb=/sys/firmware/fdt \
        --append="kexboot.entry=$entry -- kexboot.test.cycle=$next" ||
        fail "kexec -l /boot/kexboot.bin --dtb=/sys/firmware/fdt --append=... exited $?"
    go
    /sbin/kexec -e
    fail "kexec -e exited $?" ;;
crash)
    # The kdump path: no device_shutdown(), so the NIC stays up and receiving into kexboot.
    /sbin/kexec -p /boot/kexboot.bin --dtb=/sys/firmware/fdt \
        --append="kexboot.entry=$entry -- kexboot.test.cycle=$next" ||
        fail "kexec -p /boot/kexboot.bin --dtb=/sys/firmware/fdt --append=... exited $?"
    go
    echo c >/proc/sysrq-trigger
    fail "the sysrq crash returned" ;;
tools-default)
    /sbin/kexec -l /boot/kexboot.bin || fail "kexec -l /boot/kexboot.bin exited $?"
    go
    /sbin/kexec -e
    fail "kexec -e exited $?" ;;
direct|direct-i)
    opt=
    [ "$via" = direct-i ] && opt=-i
    /sbin/kexec -l $opt /boot/Image --initrd=/boot/initrd.img \
        --append="console=ttyAMA0 kexboot.test=$via-next quiet" ||
        fail "kexec -l $opt /boot/Image exited $?"
    go
    /sbin/kexec -e
    fail "kexec -e exited $?" ;;
*) fail "unknown kexboot.test.via=$via" ;;
esac
"#;

/// What the warm initramfs holds beyond busybox.
#[derive(Clone, Debug)]
pub struct WarmAssets {
    /// `target/assets/initrd-warm.img`.
    pub initrd: PathBuf,
    /// Whether `/sbin/kexboot-reboot` is in it; else why not.
    pub helper: std::result::Result<(), String>,
    /// Whether `/boot/kexboot.bin` is in it.
    pub kexboot: bool,
}

/// Builds (or keeps, when its inputs did not change) the warm initramfs.
pub fn ensure(
    paths: &Paths,
    apt: &mut Apt,
    busybox: &[u8],
    image: &Path,
    initrd: &Path,
) -> Result<WarmAssets> {
    let debs = paths.assets.join("debs");
    let mut extra = kexec_files(apt, &debs.join("kexec"))?;
    for m in MODULES.into_iter().chain(NET_MODULES) {
        extra.push(Extra {
            path: format!("lib/modules/{m}.ko"),
            perm: 0o644,
            data: module(&debs.join("kernel/lib/modules"), m)?,
        });
    }
    let read = |p: &Path| fs::read(p).ctx(p.display());
    extra.push(Extra {
        path: "boot/Image".into(),
        perm: 0o644,
        data: read(image)?,
    });
    extra.push(Extra {
        path: "boot/initrd.img".into(),
        perm: 0o644,
        data: read(initrd)?,
    });
    let kexboot = match fs::read(paths.kexboot_bin()) {
        Ok(d) if is_arm64_image(&d) => {
            extra.push(Extra {
                path: "boot/kexboot.bin".into(),
                perm: 0o644,
                data: d,
            });
            true
        }
        _ => {
            eprintln!(
                "assets: warning: no target/kexboot.bin for the warm initramfs (cargo xtask build)"
            );
            false
        }
    };
    let helper = build_helper(paths).and_then(|p| {
        let d = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if !is_aarch64_elf(&d) {
            return Err(format!("{} is not an aarch64 ELF", p.display()));
        }
        extra.push(Extra {
            path: "sbin/kexboot-reboot".into(),
            perm: EXEC,
            data: d,
        });
        Ok(())
    });
    if let Err(e) = &helper {
        eprintln!("assets: warning: warm initramfs without the helper: {e}");
    }
    let out = paths.assets.join("initrd-warm.img");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (INIT_WARM, busybox).hash(&mut h);
    for e in &extra {
        (&e.path, e.perm, &e.data).hash(&mut h);
    }
    if write_unless_same(&out, h.finish(), || {
        initrd::build_with(INIT_WARM, busybox, &extra).ctx("building the warm initramfs")
    })? {
        eprintln!("assets: wrote {}", out.display());
    }
    Ok(WarmAssets {
        initrd: out,
        helper,
        kexboot,
    })
}

/// True for a 64-bit little-endian aarch64 ELF.
fn is_aarch64_elf(d: &[u8]) -> bool {
    d.get(..4) == Some(b"\x7fELF") && d.get(4) == Some(&2) && d.get(18..20) == Some(&[183, 0])
}

/// `cargo build -p kexboot-reboot --release --target aarch64-unknown-linux-musl`, when the crate
/// exists. Returns the binary.
fn build_helper(paths: &Paths) -> std::result::Result<PathBuf, String> {
    if !paths.root.join("helper/Cargo.toml").is_file() {
        return Err("no helper/ crate in the workspace yet".into());
    }
    let mut cmd = cargo(paths);
    // The host `cc` cannot link aarch64: use the toolchain's lld unless told otherwise.
    if std::env::var_os(HELPER_LINKER_ENV).is_none() {
        cmd.env(HELPER_LINKER_ENV, "rust-lld");
    }
    run_status(cmd.args([
        "build",
        "-p",
        HELPER_PKG,
        "--release",
        "--target",
        HELPER_TARGET,
    ]))
    .map_err(|e| format!("helper build failed: {e}"))?;
    let bin = paths
        .cargo_target_dir()
        .join(HELPER_TARGET)
        .join("release")
        .join(HELPER_PKG);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("helper built but {} is missing", bin.display()))
    }
}

/// Finds `<name>.ko` (or `.ko.xz` / `.ko.zst`, decompressed with the host's `xz` / `zstd`: busybox
/// `insmod` reads plain modules only) under `modules/*/`.
fn module(modules: &Path, name: &str) -> Result<Vec<u8>> {
    let mut stack = vec![modules.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        for e in fs::read_dir(&dir).ctx(dir.display())?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Some(f) = p.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            let tool = match f.strip_prefix(name) {
                Some(".ko") => None,
                Some(".ko.xz") => Some("xz"),
                Some(".ko.zst") => Some("zstd"),
                _ => continue,
            };
            let data = match tool {
                None => fs::read(&p).ctx(p.display())?,
                Some(t) => {
                    let o = Command::new(t)
                        .arg("-dc")
                        .arg(&p)
                        .output()
                        .ctx(format!("{t} -dc {}", p.display()))?;
                    if !o.status.success() {
                        return Err(err!("{t} -dc {} failed ({})", p.display(), o.status));
                    }
                    o.stdout
                }
            };
            if !is_aarch64_elf(&data) {
                return Err(err!("{}: not an aarch64 ELF module", p.display()));
            }
            return Ok(data);
        }
    }
    Err(err!("no {name}.ko[.xz|.zst] under {}", modules.display()))
}

/// The `DT_NEEDED` sonames and the `PT_INTERP` path of an ELF64 file.
pub fn elf_deps(data: &[u8]) -> Result<(Vec<String>, Option<String>)> {
    let hdr =
        FileHeader64::<Endianness>::parse(data).map_err(|e| err!("not an ELF64 file: {e}"))?;
    let e = hdr.endian().map_err(|x| err!("ELF endianness: {x}"))?;
    let mut interp = None;
    for ph in hdr
        .program_headers(e, data)
        .map_err(|x| err!("program headers: {x}"))?
    {
        if let Some(i) = ph
            .interpreter(e, data)
            .map_err(|x| err!("PT_INTERP: {x}"))?
        {
            interp = Some(String::from_utf8_lossy(i).into_owned());
        }
    }
    let sections = hdr
        .sections(e, data)
        .map_err(|x| err!("section headers: {x}"))?;
    let mut needed = Vec::new();
    if let Some((dyns, link)) = sections
        .dynamic(e, data)
        .map_err(|x| err!("SHT_DYNAMIC: {x}"))?
    {
        let strs = sections
            .strings(e, data, link)
            .map_err(|x| err!("dynamic strings: {x}"))?;
        for d in dyns {
            if d.tag(e) == DT_NEEDED {
                let s = d.string(e, strs).map_err(|x| err!("DT_NEEDED: {x}"))?;
                needed.push(String::from_utf8_lossy(s).into_owned());
            }
        }
    }
    Ok((needed, interp))
}

/// The real (not virtual, not alternative-provider) library packages in `apt-cache depends`
/// output, without the architecture suffix.
pub fn parse_lib_depends(out: &str) -> Vec<String> {
    let mut v = Vec::new();
    for l in out.lines() {
        let l = l.trim();
        let Some(d) = l
            .strip_prefix("Depends:")
            .or_else(|| l.strip_prefix("|Depends:"))
        else {
            continue;
        };
        let d = d.trim();
        if d.starts_with('<') {
            continue;
        }
        let name = d.split(':').next().unwrap_or(d);
        if (name.starts_with("lib") || name.starts_with("zlib")) && !v.iter().any(|x| x == name) {
            v.push(name.to_string());
        }
    }
    v
}

/// Downloads and unpacks `<pkg>:arm64` into `dir/<pkg>/` (once).
fn fetch(apt: &mut Apt, dir: &Path, pkg: &str) -> Result<PathBuf> {
    let out = dir.join(pkg);
    let ok = out.join(".unpacked");
    if ok.is_file() {
        return Ok(out);
    }
    fs::create_dir_all(dir).ctx(dir.display())?;
    apt.ensure_arm64()?;
    let deb = apt::download(apt, dir, pkg)?;
    let _ = fs::remove_dir_all(&out);
    run_status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&out))?;
    fs::write(&ok, b"").ctx(ok.display())?;
    Ok(out)
}

/// `/sbin/kexec`, the shared objects it loads (transitively) and its dynamic loader, as archive
/// members. Downloads `kexec-tools:arm64`, then, while a soname is missing, the library packages
/// its packages depend on.
fn kexec_files(apt: &mut Apt, dir: &Path) -> Result<Vec<Extra>> {
    let mut pkgs: BTreeMap<String, PathBuf> = BTreeMap::new();
    pkgs.insert(KEXEC_PKG.into(), fetch(apt, dir, KEXEC_PKG)?);
    // Packages unpacked by an earlier run: usually all that is needed, without apt-cache.
    for e in fs::read_dir(dir).ctx(dir.display())?.flatten() {
        let p = e.path();
        if p.join(".unpacked").is_file() {
            if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
                pkgs.insert(n.to_string(), p.clone());
            }
        }
    }
    let kexec_path = pkgs[KEXEC_PKG].join("sbin/kexec");
    let kexec = fs::read(&kexec_path).ctx(kexec_path.display())?;
    let (needed, interp) = elf_deps(&kexec).ctx(kexec_path.display())?;
    let interp = interp.ok_or_else(|| err!("{}: no PT_INTERP", kexec_path.display()))?;
    let interp_name = interp.rsplit('/').next().unwrap_or(&interp).to_string();
    let mut expanded = BTreeSet::new();
    for _ in 0..MAX_ROUNDS {
        let find = |so: &str| {
            pkgs.values()
                .flat_map(|d| PKG_LIB_DIRS.iter().map(move |l| d.join(l).join(so)))
                .find(|p| p.is_file())
        };
        let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut missing = BTreeSet::new();
        let mut queue: Vec<String> = needed.clone();
        queue.push(interp_name.clone());
        while let Some(so) = queue.pop() {
            if found.contains_key(&so) || missing.contains(&so) {
                continue;
            }
            match find(&so) {
                Some(p) => {
                    let d = fs::read(&p).ctx(p.display())?;
                    queue.extend(elf_deps(&d).ctx(p.display())?.0);
                    found.insert(so, p);
                }
                None => {
                    missing.insert(so);
                }
            }
        }
        if missing.is_empty() {
            let mut v = vec![Extra {
                path: "sbin/kexec".into(),
                perm: EXEC,
                data: kexec,
            }];
            for (so, p) in &found {
                let path = if *so == interp_name {
                    interp.trim_start_matches('/').to_string()
                } else {
                    format!("{LIB_DIR}/{so}")
                };
                v.push(Extra {
                    path,
                    perm: EXEC,
                    data: fs::read(p).ctx(p.display())?,
                });
            }
            return Ok(v);
        }
        let mut new = Vec::new();
        for pkg in pkgs.keys() {
            if !expanded.insert(pkg.clone()) {
                continue;
            }
            let o = Command::new("apt-cache")
                .args(["depends", &format!("{pkg}:arm64")])
                .output()
                .ctx("apt-cache depends")?;
            for d in parse_lib_depends(&String::from_utf8_lossy(&o.stdout)) {
                if !pkgs.contains_key(&d) && !new.contains(&d) {
                    new.push(d);
                }
            }
        }
        if new.is_empty() {
            return Err(err!(
                "kexec-tools needs {missing:?}, which none of the packages it depends on ({:?}) provides",
                pkgs.keys().collect::<Vec<_>>()
            ));
        }
        if pkgs.len() + new.len() > MAX_PKGS {
            return Err(err!(
                "kexec-tools' dependencies exceed {MAX_PKGS} packages: {new:?}"
            ));
        }
        eprintln!(
            "assets: kexec-tools needs {missing:?}: fetching {}",
            new.join(" ")
        );
        for p in new {
            let d = fetch(apt, dir, &p)?;
            pkgs.insert(p, d);
        }
    }
    Err(err!(
        "kexec-tools' libraries not resolved after {MAX_ROUNDS} rounds"
    ))
}

/// The scenarios of the warm disks: what the entries' `append` asks the `/init` to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Three warm cycles through the helper, alternating warm-b, warm-a, warm-b.
    Helper3,
    /// `kexec -l /boot/kexboot.bin` without `--append`, then `kexec -e`.
    ToolsDefault,
    /// `kexec -l /boot/kexboot.bin --dtb=/sys/firmware/fdt --append="kexboot.entry=warm-b -- ..."`.
    ToolsAppend,
    /// The helper asked for an entry that does not exist.
    BadEntry,
    /// The helper given a non-kexboot image.
    Refuse,
    /// One warm reboot through the helper into `warm-plain` (same kernel + initrd as the direct
    /// kexec arms).
    BenchHelper,
    /// The same through kexec-tools.
    BenchTools,
    /// `smp_method=spin-table`: one boot, 4 CPUs through kexboot's pen, power off.
    SpinTable,
    /// `smp_method=spin-table` under kexboot's EL3 monitor: `reboot -f` comes back warm.
    SpinTableEl3Reboot,
    /// `bootlimit=2`: warm-a keeps rebooting without resetting the counter; the third boot
    /// runs `altbootcmd` (warm-b), which powers off.
    BootLimit,
    /// kexboot's EL3 PSCI: cpu1 offline then online again, one boot.
    El3Hotplug,
    /// kexboot's EL3 PSCI: `reboot -f` (PSCI SYSTEM_RESET) from `warm-a`, whose command line
    /// names `warm-b` for the kexboot the monitor re-enters.
    El3Reboot,
    /// Three warm cycles with virtio-net up and receiving the host's UDP traffic all along
    /// (warm-b, warm-a, warm-b), each through Linux's crash path (`kexec -p` + sysrq `c`): the
    /// one path where Linux (even 6.1.y with `virtio_dev_shutdown`) leaves its devices running.
    /// `crash_kexec_post_notifiers`: ramoops records the panic before the jump, so the pstore
    /// check of every warm boot still holds.
    NetRx,
    /// `smp_method=spin-table`, and `bootcmd` first tries `booti` on a `no-map` page, then
    /// boots with `booti` and a device tree from the disk ([`USER_DTB`]).
    UserDtb,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 14] = [
        Scenario::Helper3,
        Scenario::ToolsDefault,
        Scenario::ToolsAppend,
        Scenario::BadEntry,
        Scenario::Refuse,
        Scenario::BenchHelper,
        Scenario::BenchTools,
        Scenario::SpinTable,
        Scenario::El3Hotplug,
        Scenario::El3Reboot,
        Scenario::SpinTableEl3Reboot,
        Scenario::BootLimit,
        Scenario::NetRx,
        Scenario::UserDtb,
    ];

    /// Words added to the warm entries' `append`.
    pub fn args(self) -> &'static str {
        match self {
            Scenario::Helper3 => "kexboot.test.cycles=4 kexboot.test.via=helper kexboot.test.entries=warm-b,warm-a,warm-b",
            Scenario::ToolsDefault => "kexboot.test.cycles=2 kexboot.test.via=tools-default",
            Scenario::ToolsAppend => "kexboot.test.cycles=2 kexboot.test.via=tools kexboot.test.entries=warm-b",
            Scenario::BadEntry => "kexboot.test.cycles=2 kexboot.test.via=helper kexboot.test.entries=does-not-exist",
            Scenario::Refuse => "kexboot.test.via=refuse",
            Scenario::BenchHelper => "kexboot.test.cycles=2 kexboot.test.via=helper kexboot.test.entries=warm-plain",
            Scenario::BenchTools => "kexboot.test.cycles=2 kexboot.test.via=tools kexboot.test.entries=warm-plain",
            Scenario::SpinTable => "kexboot.test.cycles=1 kexboot.test.via=none",
            Scenario::SpinTableEl3Reboot => "kexboot.test.cycles=2 kexboot.test.via=reboot",
            Scenario::El3Hotplug => "kexboot.test.hotplug=yes kexboot.test.via=none",
            Scenario::El3Reboot => "kexboot.test.cycles=2 kexboot.test.via=reboot",
            Scenario::BootLimit => "kexboot.test.cycles=9 kexboot.test.via=none",
            Scenario::NetRx => "crashkernel=64M crash_kexec_post_notifiers kexboot.test.cycles=4 kexboot.test.via=crash kexboot.test.entries=warm-b,warm-a,warm-b kexboot.test.net=up",
            Scenario::UserDtb => "kexboot.test.cycles=1 kexboot.test.via=none",
        }
    }

    /// `/kexboot/env.txt` of this scenario's disk.
    pub fn env(self) -> String {
        match self {
            Scenario::SpinTable | Scenario::SpinTableEl3Reboot => {
                format!("{ENV_TXT}smp_method=spin-table\n")
            }
            Scenario::BootLimit => {
                format!("{ENV_TXT}bootlimit=2\nbootcmd=boot warm-a\naltbootcmd=boot warm-b\n")
            }
            Scenario::UserDtb => format!(
                "{ENV_TXT}smp_method=spin-table\nbootargs={}\nbootcmd={}\n",
                self.append(USER_DTB_ENTRY),
                user_dtb_bootcmd()
            ),
            _ => ENV_TXT.to_string(),
        }
    }

    fn file(self) -> String {
        let s = format!("{self:?}").to_lowercase();
        format!("disk-warm-{s}.img")
    }

    /// The full `append` of warm entry `label` (`warm-a` or `warm-b`) on this scenario's disk.
    pub fn append(self, label: &str) -> String {
        // A SYSTEM_RESET re-enters kexboot with the last kernel's tree: its command line says
        // which entry comes next, and that entry's own says it is the last cycle.
        let extra = match (self, label) {
            (Scenario::El3Reboot | Scenario::SpinTableEl3Reboot, "warm-a") => {
                " kexboot.entry=warm-b"
            }
            (Scenario::El3Reboot | Scenario::SpinTableEl3Reboot, "warm-b") => {
                " kexboot.test.cycle=2"
            }
            (Scenario::BootLimit, "warm-a") => " kexboot.test.via=reboot",
            _ => "",
        };
        format!(
            "{} kexboot.test.cycle=1 {}{extra}",
            entry_cmdline(label),
            self.args()
        )
    }
}

/// The `kexboot.test=` label of the kernel the `UserDtb` scenario boots with `booti`.
pub const USER_DTB_ENTRY: &str = "booti-user-dtb";

/// `bootcmd` of the `UserDtb` scenario: `booti` of the `no-map` page (must be refused, not
/// read), then kernel, tree and initramfs loaded from the disk and booted with that tree.
pub fn user_dtb_bootcmd() -> String {
    format!(
        "booti {NO_MAP_PAGE:#x}; load virtio 0:1 ${{kernel_addr_r}} /boot/Image; \
         load virtio 0:1 ${{fdt_addr_r}} /boot/{USER_DTB}; \
         load virtio 0:1 ${{ramdisk_addr_r}} /boot/initrd-warm.img; \
         booti ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdt_addr_r}}"
    )
}

/// QEMU's own device tree for the warm machine with 4 CPUs (`-machine dumpdtb=`), plus a
/// one-page `/reserved-memory/firmware@70000000` marked `no-map` (as firmware on real boards
/// keeps its memory): written to `target/assets/USER_DTB` when it changed.
pub fn build_user_dtb(paths: &Paths) -> Result<PathBuf> {
    use kexboot_loader::dt::{fixup, Fixups, ReservedNode};
    use kexboot_loader::mem::Range;
    let dump = paths.assets.join("virt-smp4.dtb");
    if !dump.is_file() {
        dump_dtb(&dump)?;
    }
    let qemu = fs::read(&dump).ctx(dump.display())?;
    let page = Range::from_len(NO_MAP_PAGE, 4096).map_err(|e| err!("{e}"))?;
    let name = format!("firmware@{NO_MAP_PAGE:x}");
    let node = [ReservedNode::new(&name, page).flag("no-map")];
    let fixups = Fixups {
        reserved_nodes: &node,
        ..Default::default()
    };
    let tree = fixup(&qemu, &fixups).map_err(|e| err!("adding the no-map page: {e}"))?;
    let out = paths.assets.join(USER_DTB);
    if fs::read(&out).ok().as_deref() != Some(&tree[..]) {
        fs::write(&out, &tree).ctx(out.display())?;
        eprintln!("assets: wrote {}", out.display());
    }
    Ok(out)
}

/// `qemu-system-aarch64 -M <warm machine>,dumpdtb=<to> -smp 4 ...`: QEMU's own tree.
fn dump_dtb(to: &Path) -> Result<()> {
    let args = qemu::Args::dump_dtb(MACHINE, 4, to).into_vec();
    run_status(Command::new(qemu::QEMU).args(&args))
        .map_err(|e| err!("dumping QEMU's device tree: {e}"))
}

/// The warm disks, one per scenario.
#[derive(Clone, Debug)]
pub struct WarmDisks(pub Vec<(Scenario, PathBuf)>);

impl WarmDisks {
    /// The disk of `s`.
    pub fn get(&self, s: Scenario) -> Option<&Path> {
        self.0
            .iter()
            .find(|(x, _)| *x == s)
            .map(|(_, p)| p.as_path())
    }
}

/// The extlinux.conf of a warm disk: `warm-a` (default), `warm-b` on the warm initramfs,
/// `warm-plain` on the plain one.
pub fn warm_extlinux(s: Scenario) -> String {
    let (a, b, plain) = (
        s.append("warm-a"),
        s.append("warm-b"),
        entry_cmdline("warm-plain"),
    );
    extlinux(
        "warm-a",
        &[
            Entry {
                label: "warm-a",
                linux: "/boot/Image",
                initrd: "/boot/initrd-warm.img",
                append: &a,
            },
            Entry {
                label: "warm-b",
                linux: "/boot/Image",
                initrd: "/boot/initrd-warm.img",
                append: &b,
            },
            Entry {
                label: "warm-plain",
                linux: "/boot/Image",
                initrd: "/boot/initrd.img",
                append: &plain,
            },
        ],
    )
}

/// Builds (or keeps, when unchanged) one disk per scenario.
pub fn build_disks(
    paths: &Paths,
    image: &Path,
    initrd: &Path,
    w: &WarmAssets,
) -> Result<WarmDisks> {
    let read = |p: &Path| fs::read(p).ctx(p.display());
    let (image, initrd, warm) = (read(image)?, read(initrd)?, read(&w.initrd)?);
    let user_dtb = read(&build_user_dtb(paths)?)?;
    let user_dtb_path = format!("/boot/{USER_DTB}");
    let mut v = Vec::new();
    for s in Scenario::ALL {
        let mut disk = Disk::new(Scheme::Mbr)
            .file("/boot/Image", &image[..])
            .file("/boot/initrd.img", &initrd[..])
            .file("/boot/initrd-warm.img", &warm[..])
            .extlinux(warm_extlinux(s))
            .file("/kexboot/env.txt", s.env().into_bytes());
        if s == Scenario::UserDtb {
            disk = disk.file(&user_dtb_path, &user_dtb[..]);
        }
        let path = paths.assets.join(s.file());
        if disk.write(&path)? {
            eprintln!("assets: wrote {}", path.display());
        }
        v.push((s, path));
    }
    Ok(WarmDisks(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lib_depends_parsing() {
        let out = "kexec-tools:arm64\n  Depends: libc6:arm64\n  Depends: libxenmisc4.17:arm64\n  \
                   Depends: zlib1g:arm64\n |Depends: <debconf:arm64>\n    debconf\n  \
                   Depends: <debconf-2.0:arm64>\n    cdebconf:arm64\n  Depends: libc6:arm64\n  \
                   Recommends: libfoo1:arm64\n";
        assert_eq!(
            parse_lib_depends(out),
            ["libc6", "libxenmisc4.17", "zlib1g"]
        );
        assert!(parse_lib_depends("").is_empty());
        assert!(parse_lib_depends("  Depends: gcc-12-base:arm64\n").is_empty());
    }

    #[test]
    fn elf_deps_of_garbage_is_an_error() {
        assert!(elf_deps(b"not an elf").is_err());
        let mut x = 7u32;
        for n in 0..300 {
            let mut d: Vec<u8> = b"\x7fELF\x02\x01\x01".to_vec();
            d.resize(64 + n, 0);
            for b in d.iter_mut().skip(7) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let _ = elf_deps(&d);
        }
    }

    #[test]
    fn elf_deps_of_the_host_xtask() {
        // The running test binary is a dynamic ELF with libc among its DT_NEEDED (on glibc hosts).
        let exe = std::env::current_exe().unwrap();
        let (needed, interp) = elf_deps(&fs::read(exe).unwrap()).unwrap();
        if interp.is_some() {
            assert!(
                needed.iter().any(|n| n.starts_with("libc.so")),
                "{needed:?}"
            );
        }
    }

    #[test]
    fn scenarios_and_extlinux() {
        let c = warm_extlinux(Scenario::Helper3);
        assert!(c.contains("default warm-a\n"));
        for l in [
            "label warm-a\n",
            "label warm-b\n",
            "label warm-plain\n",
            "initrd /boot/initrd-warm.img\n",
        ] {
            assert!(c.contains(l), "{l}");
        }
        assert!(c.contains("append console=ttyAMA0 kexboot.test=warm-b quiet kexboot.test.cycle=1 kexboot.test.cycles=4"));
        let files: BTreeSet<String> = Scenario::ALL.iter().map(|s| s.file()).collect();
        assert_eq!(files.len(), Scenario::ALL.len());
        for s in Scenario::ALL {
            assert!(s.args().contains("kexboot.test.via="), "{s:?}");
        }
    }

    #[test]
    fn init_script_has_every_path() {
        for m in [
            "KEXBOOT-E2E-BEGIN",
            "KEXBOOT-E2E-END",
            "KEXBOOT-WARM-START t=",
            "KEXBOOT-E2E pstore=",
            "KEXBOOT-PSTORE-MARK cycle=",
            "insmod /lib/modules/$m.ko",
            "mount -t pstore pstore /sys/fs/pstore",
            "kexboot.entry=$entry -- kexboot.test.cycle=$next",
            "/sbin/kexec -l /boot/kexboot.bin ||",
            "--entry \"$entry\" --append \"kexboot.test.cycle=$next\"",
            "--image /boot/Image",
            "poweroff -f",
        ] {
            assert!(INIT_WARM.contains(m), "{m}");
        }
        assert!(INIT_WARM.starts_with("#!/bin/busybox sh\n"));
        // The modules packed are the ones loaded, in this order.
        let net = format!("for m in {}; do", NET_MODULES.join(" "));
        assert!(INIT_WARM.contains(&net), "{net}");
    }
}
