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
use crate::disk::{Disk, Scheme};
use crate::extlinux::{extlinux, Entry};
use crate::qemu::Args;
use crate::util::{err, run_status, write_atomic, Context, Paths, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// QEMU's machine.
pub const MACHINE: &str = "raspi3b";
/// The tree as the kernel package ships it, and where `fdtdir` finds it.
pub const DTB_PATH: &str = "broadcom/bcm2837-rpi-3-b.dtb";
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
    let conf = extlinux(
        "rpi3",
        &[Entry {
            label: "rpi3",
            linux: "/Image",
            initrd: "/initrd.img",
            append: CMDLINE_RPI3,
        }],
    );
    let (image, initrd_bytes, dtb) = (
        fs::read(&r.image).ctx(r.image.display())?,
        fs::read(initrd).ctx(initrd.display())?,
        fs::read(&r.dtb).ctx(r.dtb.display())?,
    );
    let dtb_path = format!("/{DTB_PATH}");
    Disk::new(Scheme::Mbr)
        .file("/config.txt", CONFIG_TXT.as_bytes())
        .file("/Image", &image[..])
        .file("/initrd.img", &initrd_bytes[..])
        .file(&dtb_path, &dtb[..])
        .extlinux(conf)
        .size(SD_BYTES)
        .write(&r.sd)?;
    Ok(r)
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
    args_with_sd(r, &r.sd, image)
}

/// [`args`] with another SD card image.
pub fn args_with_sd(r: &Rpi3, sd: &Path, image: &Path) -> Args {
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
