//! The Raspberry Pi 3 stand: QEMU's `raspi3b` with Debian's generic arm64 kernel (the cloud
//! flavour lacks the Broadcom trees and drivers), its `broadcom/bcm2837-rpi-3-b.dtb` as the
//! firmware's tree, Debian's U-Boot for the Pi (`u-boot-rpi`, `rpi_3/u-boot.bin`) as the anchor,
//! and an SD card image as the Pi's firmware would find it: a FAT boot partition with
//! `config.txt`, `extlinux/extlinux.conf`, the kernel, the initramfs and the DTB.
//!
//! QEMU loads `-kernel` at 0x80000 and enters it at EL2 with x0 = the `-dtb`, the three
//! secondaries waiting on the tree's spin-table mailboxes, as the real firmware's stub leaves
//! them. The tree's console is the mini UART (QEMU's second serial port); the first (the PL011)
//! goes nowhere, so the harness's `-serial stdio` lands on the mini UART.

use crate::apt::{self, Apt};
use crate::assets::{self, GENERIC};
use crate::disk::{Disk, Scheme, PART_START_LBA, SECTOR};
use crate::extlinux::{extlinux, Entry};
pub use crate::qemu::Args;
use crate::util::{err, run_status, write_atomic, Context, Paths, Result};
use flate2::write::GzEncoder;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// QEMU's machine.
pub const MACHINE: &str = "raspi3b";
/// The tree as the kernel package ships it, and where `fdtdir` finds it.
pub const DTB_PATH: &str = "broadcom/bcm2837-rpi-3-b.dtb";
/// Its place on the SD card.
const DTB_FILE: &str = "/broadcom/bcm2837-rpi-3-b.dtb";
/// The Linux console on the mini UART (`serial1`, the tree's `stdout-path`).
pub const CMDLINE_RPI3: &str = "console=ttyS1,115200 kexboot.test=rpi3 quiet";
/// SD image size: QEMU takes only powers of two.
const SD_BYTES: u64 = 256 << 20;
/// The Pi firmware's settings for a 64-bit kernel (a real card boots kexboot as `kernel8.img`).
const CONFIG_TXT: &str = "# written by cargo xtask: the Pi firmware loads kernel8.img (kexboot)\n\
    arm_64bit=1\nenable_uart=1\nkernel=kernel8.img\n";

/// The files of the stand.
pub struct Rpi3 {
    /// Debian's generic arm64 kernel, an uncompressed Image.
    pub image: PathBuf,
    /// Its `bcm2837-rpi-3-b.dtb`.
    pub dtb: PathBuf,
    /// Debian's U-Boot for the Pi 3.
    pub uboot: PathBuf,
    /// The SD card: extlinux.conf booting the kernel with the initramfs.
    pub sd: PathBuf,
    /// The same with the kernel as `Image.gz`.
    pub sd_gz: PathBuf,
    /// The same card with its FAT boot sector overwritten: no boot file system.
    pub sd_corrupt: PathBuf,
}

/// Makes sure the stand's files exist, downloading the packages when missing.
pub fn ensure(paths: &Paths, initrd: &Path) -> Result<Rpi3> {
    let dir = paths.assets.join("rpi3");
    fs::create_dir_all(&dir).ctx(dir.display())?;
    let r = Rpi3 {
        image: dir.join("Image"),
        dtb: dir.join("bcm2837-rpi-3-b.dtb"),
        uboot: dir.join("u-boot.bin"),
        sd: dir.join("sd.img"),
        sd_gz: dir.join("sd-gz.img"),
        sd_corrupt: dir.join("sd-corrupt.img"),
    };
    let debs = paths.assets.join("debs");
    let mut apt = Apt::default();
    if !r.image.is_file() || !r.dtb.is_file() {
        apt.ensure_arm64()?;
        fs::create_dir_all(&debs).ctx(debs.display())?;
        let pkg = assets::kernel_package(&mut apt, GENERIC)?;
        let out = unpack(&mut apt, &debs, &pkg, "kernel-generic")?;
        assets::install_kernel(&out, &r.image)?;
        let dtb = find_under(&out.join("usr/lib"), DTB_PATH)
            .ok_or_else(|| err!("{pkg} has no {DTB_PATH}"))?;
        fs::copy(&dtb, &r.dtb).ctx(r.dtb.display())?;
    }
    if !r.uboot.is_file() {
        apt.ensure_arm64()?;
        let out = unpack(&mut apt, &debs, "u-boot-rpi", "u-boot-rpi")?;
        let bin = out.join("usr/lib/u-boot/rpi_3/u-boot.bin");
        fs::copy(&bin, &r.uboot).ctx(bin.display())?;
    }
    let (image, initrd_bytes, dtb) = (
        fs::read(&r.image).ctx(r.image.display())?,
        fs::read(initrd).ctx(initrd.display())?,
        fs::read(&r.dtb).ctx(r.dtb.display())?,
    );
    let image_gz = gzip(&image)?;
    for (path, kernel, data) in [
        (&r.sd, "/Image", &image),
        (&r.sd_gz, "/Image.gz", &image_gz),
    ] {
        sd_card(kernel, data, &initrd_bytes, &dtb).write(path)?;
    }
    corrupt(&r.sd, &r.sd_corrupt)?;
    Ok(r)
}

/// An SD card as the Pi's firmware finds it: `config.txt`, the kernel at `kernel`, the
/// initramfs, the DTB where `fdtdir` looks, and an extlinux.conf booting them.
fn sd_card<'a>(kernel: &'a str, image: &'a [u8], initrd: &'a [u8], dtb: &'a [u8]) -> Disk<'a> {
    let conf = extlinux(
        "rpi3",
        &[Entry {
            label: "rpi3",
            linux: kernel,
            initrd: "/initrd.img",
            append: CMDLINE_RPI3,
        }],
    );
    Disk::new(Scheme::Mbr)
        .file("/config.txt", CONFIG_TXT.as_bytes())
        .file(kernel, image)
        .file("/initrd.img", initrd)
        .file(DTB_FILE, dtb)
        .extlinux(conf)
        .size(SD_BYTES)
}

/// `good` with the first sectors of its FAT partition overwritten: a card whose partition
/// table is fine but whose file system is not.
fn corrupt(good: &Path, out: &Path) -> Result<()> {
    let mut img = fs::read(good).ctx(good.display())?;
    let start = (PART_START_LBA * SECTOR) as usize;
    let junk: Vec<u8> = (0..4 * SECTOR as usize)
        .map(|i| (i * 151 % 251) as u8)
        .collect();
    img.get_mut(start..start + junk.len())
        .ok_or_else(|| err!("{}: shorter than its partition", good.display()))?
        .copy_from_slice(&junk);
    if fs::read(out).ok().as_deref() != Some(&img[..]) {
        write_atomic(out, &img)?;
    }
    Ok(())
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// The test overlay (a `/plugin/` for the Pi's `soc` label): a node whose marker the
/// initramfs prints when the overlay reached the kernel's tree.
const OVERLAY_DTS: &str = "/dts-v1/;\n/plugin/;\n&soc {\n\tkexboot-test {\n\t\t\
    compatible = \"kexboot,overlay-test\";\n\t\tkexboot,marker = \"overlay-applied\";\n\t};\n};\n";
/// `model` of the tree `fdtdir` finds, and of the one `fdt` names.
pub const MODEL_FDTDIR: &str = "Raspberry Pi 3 Model B (kexboot fdtdir test)";
pub const MODEL_FDT: &str = "Raspberry Pi 3 Model B (kexboot fdt test)";
/// Labels given to the firmware's tree before it is compiled with `__symbols__`.
const LABELS: [(&str, &str); 3] = [
    ("\tsoc {", "\tsoc: soc {"),
    ("serial@7e215040 {", "uart1: serial@7e215040 {"),
    ("serial@7e201000 {", "uart0: serial@7e201000 {"),
];

/// The device-tree cases' files: the firmware's tree with labels and `__symbols__` (as the Pi
/// firmware's own trees are built), and SD cards whose entry names a tree by `fdtdir` (with
/// the overlay) or by `fdt`.
pub struct DtCards {
    pub symbols_dtb: PathBuf,
    pub fdtdir_sd: PathBuf,
    pub fdt_sd: PathBuf,
}

/// Builds [`DtCards`] with `dtc` (xtask installs `device-tree-compiler`).
pub fn ensure_dt(paths: &Paths, r: &Rpi3, initrd: &Path) -> Result<DtCards> {
    let dir = paths.assets.join("rpi3");
    let out = DtCards {
        symbols_dtb: dir.join("bcm2837-rpi-3-b-symbols.dtb"),
        fdtdir_sd: dir.join("sd-fdtdir.img"),
        fdt_sd: dir.join("sd-fdt.img"),
    };
    let dts = dtc(
        &["-I", "dtb", "-O", "dts"],
        &fs::read(&r.dtb).ctx(r.dtb.display())?,
    )?;
    let mut labelled = String::from_utf8(dts).map_err(|_| err!("dtc wrote non-UTF-8"))?;
    for (from, to) in LABELS {
        if !labelled.contains(from) {
            return Err(err!("{}: no {from:?} to label", r.dtb.display()));
        }
        labelled = labelled.replacen(from, to, 1);
    }
    let compile = |text: &str| dtc(&["-@", "-I", "dts", "-O", "dtb"], text.as_bytes());
    let model = |m: &str| {
        labelled.replacen(
            "model = \"Raspberry Pi 3 Model B\";",
            &format!("model = \"{m}\";"),
            1,
        )
    };
    let symbols = compile(&labelled)?;
    if fs::read(&out.symbols_dtb).ok().as_deref() != Some(&symbols[..]) {
        write_atomic(&out.symbols_dtb, &symbols)?;
    }
    let fdtdir_tree = compile(&model(MODEL_FDTDIR))?;
    let fdt_tree = compile(&model(MODEL_FDT))?;
    let overlay = dtc(&["-@", "-I", "dts", "-O", "dtb"], OVERLAY_DTS.as_bytes())?;
    let (image, initrd_bytes) = (
        fs::read(&r.image).ctx(r.image.display())?,
        fs::read(initrd).ctx(initrd.display())?,
    );
    let card = |extra: &str, tree: &[u8], path: &Path| -> Result<()> {
        let conf = extlinux(
            "rpi3",
            &[Entry {
                label: "rpi3",
                linux: "/Image",
                initrd: "/initrd.img",
                append: CMDLINE_RPI3,
            }],
        ) + extra;
        let card = sd_card("/Image", &image, &initrd_bytes, tree)
            .file("/overlays/kexboot-test.dtbo", overlay.clone())
            .file("/custom.dtb", fdt_tree.clone());
        card.extlinux(conf).write(path).map(|_| ())
    };
    card(
        "    fdtdir /\n    fdtoverlays /overlays/kexboot-test.dtbo\n",
        &fdtdir_tree,
        &out.fdtdir_sd,
    )?;
    card("    fdt /custom.dtb\n", &r.dtb_bytes()?, &out.fdt_sd)?;
    Ok(out)
}

/// Runs `dtc` with `args` on `input` (stdin), returning its output.
fn dtc(args: &[&str], input: &[u8]) -> Result<Vec<u8>> {
    let mut child = Command::new("dtc")
        .args(args)
        .args(["-q", "-o", "-", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ctx("dtc (device-tree-compiler)")?;
    child
        .stdin
        .take()
        .ok_or_else(|| err!("dtc: no stdin"))?
        .write_all(input)?;
    let out = child.wait_with_output().ctx("dtc")?;
    if !out.status.success() {
        return Err(err!(
            "dtc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// Command line of the warm-re-entry card's entry: one CPU, two boots, the second through
/// kexec-tools into kexboot (the warm initramfs's `/init` reads the `kexboot.test.*` words).
/// Linux cannot take spin-table CPUs offline, so kexec refuses while more than one CPU is
/// *possible* ("Can't kexec: CPUs are stuck in the kernel", arm64 `cpus_are_stuck_in_kernel`):
/// `maxcpus=1` (one CPU online, four possible) is not enough, `nr_cpus=1` is.
pub const CMDLINE_RPI3_WARM: &str = "console=ttyS1,115200 kexboot.test=warm-a quiet nr_cpus=1 \
    kexboot.test.cycles=2 kexboot.test.via=tools kexboot.test.entries=warm-a";

/// The SD card for warm re-entry on the Pi: entry `warm-a` with the warm initramfs (kexec-tools
/// and `/boot/kexboot.bin`).
pub fn ensure_warm(paths: &Paths, r: &Rpi3, warm_initrd: &Path) -> Result<PathBuf> {
    let out = paths.assets.join("rpi3").join("sd-warm.img");
    let conf = extlinux(
        "warm-a",
        &[Entry {
            label: "warm-a",
            linux: "/Image",
            initrd: "/initrd-warm.img",
            append: CMDLINE_RPI3_WARM,
        }],
    );
    let (image, initrd, dtb) = (
        fs::read(&r.image).ctx(r.image.display())?,
        fs::read(warm_initrd).ctx(warm_initrd.display())?,
        fs::read(&r.dtb).ctx(r.dtb.display())?,
    );
    Disk::new(Scheme::Mbr)
        .file("/config.txt", CONFIG_TXT.as_bytes())
        .file("/Image", &image[..])
        .file("/initrd-warm.img", &initrd[..])
        .file(DTB_FILE, &dtb[..])
        .extlinux(conf)
        .size(SD_BYTES)
        .write(&out)?;
    Ok(out)
}

impl Rpi3 {
    fn dtb_bytes(&self) -> Result<Vec<u8>> {
        fs::read(&self.dtb).ctx(self.dtb.display())
    }
}

/// A card with the stand's `config.txt` and an `extlinux.conf` whose one entry names a kernel
/// that is not there: kexboot ends at its prompt, with a FAT file system to `saveenv` on.
pub fn shell_sd(paths: &Paths) -> Result<PathBuf> {
    let out = paths.assets.join("rpi3").join("sd-shell.img");
    let conf = extlinux(
        "missing",
        &[Entry {
            label: "missing",
            linux: "/no-such-Image",
            initrd: "/no-such-initrd.img",
            append: CMDLINE_RPI3,
        }],
    );
    Disk::new(Scheme::Mbr)
        .file("/config.txt", CONFIG_TXT.as_bytes())
        .extlinux(conf)
        .size(SD_BYTES)
        .write(&out)?;
    Ok(out)
}

/// Downloads `pkg` (arm64) into `debs` and unpacks it to `debs/<dir>`.
fn unpack(apt: &mut Apt, debs: &Path, pkg: &str, dir: &str) -> Result<PathBuf> {
    let deb = apt::download(apt, debs, pkg)?;
    let out = debs.join(dir);
    let _ = fs::remove_dir_all(&out);
    run_status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&out))?;
    Ok(out)
}

/// `rel` under any directory directly below `root` (`usr/lib/linux-image-<ver>/broadcom/...`).
fn find_under(root: &Path, rel: &str) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(rel))
        .find(|p| p.is_file())
}

/// `-M raspi3b -m 1G -dtb <tree> -drive if=sd,... -serial null -kernel <image>`: `image` is
/// kexboot (or U-Boot, or a kernel) as the Pi firmware would start it.
pub fn args(r: &Rpi3, image: &Path) -> Args {
    args_on(r, &r.sd, image)
}

/// [`args`] with another SD card image.
pub fn args_on(r: &Rpi3, sd: &Path, image: &Path) -> Args {
    Args::bare(MACHINE)
        .dtb(&r.dtb)
        .sd(sd)
        .args(["-serial", "null"])
        .kernel(image)
}

/// Writes `kernel8.img` (kexboot) beside the SD image, for copying to a real card's FAT
/// partition with the SD image's other files.
pub fn kernel8(paths: &Paths) -> Result<PathBuf> {
    let bin = paths.kexboot_bin();
    let out = paths.assets.join("rpi3").join("kernel8.img");
    let data = fs::read(&bin).ctx(bin.display())?;
    write_atomic(&out, &data)?;
    Ok(out)
}
