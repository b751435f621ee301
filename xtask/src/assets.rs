//! Test assets: host packages (QEMU, Debian's U-Boot) installed with apt-get, and Debian's arm64
//! cloud kernel and static busybox downloaded as `.deb`s and unpacked under `target/assets/`.
//!
//! Idempotent: whatever is already there and valid is kept.

use crate::apt::{self, Apt};
use crate::extlinux::{extlinux, Entry};
use crate::util::{
    err, is_arm64_image, run_status, write_atomic, Context, Paths, Result, IMAGE_MAGIC_OFFSET,
};
use crate::{initrd, qemu, tools, warm};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Command line of the `netboot` label of `pxelinux.cfg/default`.
pub const CMDLINE_NETBOOT: &str = "console=ttyAMA0 kexboot.test=netboot quiet";
/// Command line the DHCP-named script `netboot.txt` sets.
pub const CMDLINE_NETSCRIPT: &str = "console=ttyAMA0 kexboot.test=netscript quiet";
/// Debian's U-Boot for QEMU `virt` (aarch64), run with `-bios`.
pub const UBOOT_BIN: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// The files the QEMU cases boot.
#[derive(Clone, Debug)]
pub struct Assets {
    /// Uncompressed arm64 Image.
    pub image: PathBuf,
    /// The same Image, gzip'd.
    pub image_gz: PathBuf,
    /// gzip'd newc cpio initramfs with busybox and the marker-printing `/init`.
    pub initrd: PathBuf,
    /// The warm re-entry initramfs (kexec-tools, ramoops, kexboot.bin, the helper), or why it
    /// could not be built.
    pub warm: std::result::Result<warm::WarmAssets, String>,
}

/// Makes sure every asset exists, installing and downloading what is missing.
pub fn ensure(paths: &Paths) -> Result<Assets> {
    fs::create_dir_all(&paths.assets).ctx(paths.assets.display())?;
    let mut apt = Apt::default();
    let mut a = Assets {
        image: paths.assets.join("Image"),
        image_gz: paths.assets.join("Image.gz"),
        initrd: paths.assets.join("initrd.img"),
        warm: Err("not built yet".into()),
    };
    let debs = paths.assets.join("debs");
    let busybox = debs.join("busybox-static/bin/busybox");
    let need_kernel = !is_arm64_image_file(&a.image);
    let need_busybox = !busybox.is_file();
    if need_kernel || need_busybox {
        // Before the host packages, so that one `apt-get update` serves both.
        apt.ensure_arm64()?;
    }
    host_packages(&mut apt)?;
    if need_kernel || need_busybox {
        fs::create_dir_all(&debs).ctx(debs.display())?;
        let mut wanted = Vec::new();
        if need_kernel {
            let pkg = kernel_package(&mut apt, CLOUD)?;
            wanted.push((pkg, "kernel"));
        }
        if need_busybox {
            wanted.push(("busybox-static".to_string(), "busybox-static"));
        }
        for (pkg, dir) in &wanted {
            let deb = apt::download(&mut apt, &debs, pkg)?;
            let out = debs.join(dir);
            let _ = fs::remove_dir_all(&out);
            run_status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&out))?;
        }
        if need_kernel {
            install_kernel(&debs.join("kernel"), &a.image)?;
        }
    }
    if !a.image_gz.is_file() || modified(&a.image_gz) < modified(&a.image) {
        eprintln!("assets: compressing {}", a.image_gz.display());
        let data = fs::read(&a.image).ctx(a.image.display())?;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data)?;
        write_atomic(&a.image_gz, &enc.finish()?)?;
    }
    let bb = fs::read(&busybox).ctx(busybox.display())?;
    if bb.get(..4) != Some(b"\x7fELF") || bb.get(18..20) != Some(&[183, 0]) {
        return Err(err!("{} is not an aarch64 ELF", busybox.display()));
    }
    let img = initrd::build(&bb).ctx("building initramfs")?;
    if fs::read(&a.initrd).ok().as_deref() != Some(&img[..]) {
        eprintln!(
            "assets: writing {} ({} bytes)",
            a.initrd.display(),
            img.len()
        );
        write_atomic(&a.initrd, &img)?;
    }
    if let Err(e) = flash_kernel(paths, &mut apt) {
        eprintln!("assets: warning: no flash-kernel boot script: {e}");
    }
    a.warm = warm::ensure(paths, &mut apt, &bb, &a.image, &a.initrd).map_err(|e| e.to_string());
    if let Err(e) = &a.warm {
        eprintln!("assets: warning: no warm re-entry initramfs: {e}");
    }
    Ok(a)
}

/// The netboot TFTP root `target/assets/tftp/`: `vmlinuz` (the Image.gz), `initrd.img`, a dummy
/// `pxelinux.0` (DHCP names it, so the PXE prefix is ""), `pxelinux.cfg/default` and the boot
/// script `netboot.txt`. Files whose content changed are rewritten.
pub fn tftp_root(paths: &Paths, a: &Assets) -> Result<PathBuf> {
    let root = paths.assets.join("tftp");
    fs::create_dir_all(root.join("pxelinux.cfg")).ctx(root.display())?;
    let pxe = extlinux(
        "netboot",
        &[Entry {
            label: "netboot",
            linux: "vmlinuz",
            initrd: "initrd.img",
            append: CMDLINE_NETBOOT,
        }],
    )
    // PXELINUX spelling; kexboot and U-Boot read both.
    .replace("    linux ", "    kernel ");
    let script = format!(
        "echo NETSCRIPT-RAN; tftpboot ${{kernel_addr_r}} Image && \
         tftpboot ${{ramdisk_addr_r}} initrd.img && setenv bootargs '{CMDLINE_NETSCRIPT}' && \
         booti ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}}\n"
    );
    let dummy: Vec<u8> = (0..4096u32).map(|i| (i * 7 + i / 256) as u8).collect();
    // `booti` takes an uncompressed Image (as U-Boot's without kernel_comp_addr_r); PXE entries
    // take the Image.gz.
    let files: [(&str, Vec<u8>); 6] = [
        ("vmlinuz", fs::read(&a.image_gz).ctx(a.image_gz.display())?),
        ("Image", fs::read(&a.image).ctx(a.image.display())?),
        ("initrd.img", fs::read(&a.initrd).ctx(a.initrd.display())?),
        ("pxelinux.0", dummy),
        ("pxelinux.cfg/default", pxe.into_bytes()),
        ("netboot.txt", script.into_bytes()),
    ];
    for (name, data) in files {
        let p = root.join(name);
        if fs::read(&p).ok().as_deref() != Some(&data[..]) {
            eprintln!("assets: writing {} ({} bytes)", p.display(), data.len());
            write_atomic(&p, &data)?;
        }
    }
    Ok(root)
}

/// Debian's flash-kernel (for its generic U-Boot boot script), unpacked under
/// [`flash_kernel_dir`]; the arm64 package, as the host may have none of its own.
fn flash_kernel(paths: &Paths, apt: &mut Apt) -> Result<()> {
    let dir = flash_kernel_dir(paths);
    if dir.join("etc/flash-kernel/bootscript").is_dir() {
        return Ok(());
    }
    apt.ensure_arm64()?;
    fs::create_dir_all(&dir).ctx(dir.display())?;
    let deb = apt::download(apt, &dir, "flash-kernel")?;
    run_status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))
}

/// Modification time, or the epoch when unknown.
fn modified(p: &Path) -> std::time::SystemTime {
    fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

fn is_arm64_image_file(p: &Path) -> bool {
    let mut head = [0u8; 64];
    fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && is_arm64_image(&head)
}

/// Finds `boot/vmlinuz-*` in the unpacked kernel package and writes it as an uncompressed Image.
pub(crate) fn install_kernel(unpacked: &Path, image: &Path) -> Result<()> {
    let boot = unpacked.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .ctx(boot.display())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| err!("no boot/vmlinuz-* in {}", unpacked.display()))?;
    let mut data = fs::read(&vmlinuz).ctx(vmlinuz.display())?;
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .ctx(vmlinuz.display())?;
        data = out;
    }
    if !is_arm64_image(&data) {
        return Err(err!(
            "{}: no arm64 Image magic \"ARM\\x64\" at offset {IMAGE_MAGIC_OFFSET:#x}",
            vmlinuz.display()
        ));
    }
    eprintln!(
        "assets: kernel {} ({} bytes) -> {}",
        vmlinuz.display(),
        data.len(),
        image.display()
    );
    write_atomic(image, &data)
}

/// True when `prog` is an executable on `$PATH`.
fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// Installs QEMU, Debian's U-Boot and the device-tree compiler (`fdtoverlay`, which the
/// overlay host tests compare kexboot with) if they are missing.
fn host_packages(apt: &mut Apt) -> Result<()> {
    let mut pkgs = Vec::new();
    if !on_path(qemu::QEMU) {
        // ipxe-qemu: the option ROM QEMU looks for when it adds its default NIC.
        pkgs.extend(["qemu-system-arm", "ipxe-qemu"]);
    }
    if !Path::new(UBOOT_BIN).is_file() {
        pkgs.push("u-boot-qemu");
    }
    if !on_path("fdtoverlay") {
        pkgs.push("device-tree-compiler");
    }
    // The real-layout disks' makers (mke2fs, u-boot-update, mkimage, lz4, zstd, mkfs.vfat,
    // sgdisk).
    pkgs.extend(tools::missing_packages());
    if pkgs.is_empty() {
        return Ok(());
    }
    apt.update()?;
    eprintln!("assets: apt-get install {}", pkgs.join(" "));
    run_status(
        Apt::root_cmd("apt-get")
            .args(["-y", "-q", "install", "--no-install-recommends"])
            .args(&pkgs),
    )
}

/// Debian's kernel flavours: `cloud-arm64` (virtio machines, what the virt cases boot) and
/// the generic `arm64` (with the Broadcom device trees and drivers, for the Raspberry Pi).
pub const CLOUD: &str = "cloud-arm64";
pub const GENERIC: &str = "arm64";

/// Picks the exact kernel package of `flavour` (`linux-image-<ver>-<flavour>[-unsigned]`) from
/// the `apt-cache depends` output of its metapackage.
pub fn parse_kernel_depends(out: &str, flavour: &str) -> Option<String> {
    let meta = format!("linux-image-{flavour}");
    let (plain, unsigned) = (format!("-{flavour}"), format!("-{flavour}-unsigned"));
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|d| d.trim().trim_start_matches('<').trim_end_matches('>'))
        .map(|d| d.split(':').next().unwrap_or(d))
        .find(|d| {
            // linux-image-<version>-<flavour>: the version is digits, dots and dashes only (so
            // `arm64` does not take `6.1.0-56-cloud-arm64`).
            let version = d.strip_prefix("linux-image-").and_then(|v| {
                v.strip_suffix(unsigned.as_str())
                    .or_else(|| v.strip_suffix(plain.as_str()))
            });
            *d != meta
                && version.is_some_and(|v| {
                    v.starts_with(|c: char| c.is_ascii_digit())
                        && v.chars()
                            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
                })
        })
        .map(str::to_string)
}

/// Resolves `linux-image-<flavour>:arm64` to the exact kernel package name.
pub(crate) fn kernel_package(apt: &mut Apt, flavour: &str) -> Result<String> {
    let meta = format!("linux-image-{flavour}:arm64");
    for attempt in 0..2 {
        let out = Command::new("apt-cache")
            .args(["depends", &meta])
            .output()
            .ctx("apt-cache depends")?;
        if let Some(p) = parse_kernel_depends(&String::from_utf8_lossy(&out.stdout), flavour) {
            eprintln!("assets: kernel package {p}");
            return Ok(p);
        }
        if attempt == 0 {
            apt.update()?;
        }
    }
    Err(err!(
        "apt-cache depends {meta} names no versioned linux-image-*-{flavour} package"
    ))
}

/// Where `cargo xtask assets` unpacks flash-kernel.
pub fn flash_kernel_dir(paths: &Paths) -> PathBuf {
    paths.assets.join("flash-kernel")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_depends_parsing() {
        let out =
            "linux-image-cloud-arm64:arm64\n  Depends: linux-image-6.1.0-56-cloud-arm64:arm64\n";
        assert_eq!(
            parse_kernel_depends(out, CLOUD).as_deref(),
            Some("linux-image-6.1.0-56-cloud-arm64")
        );
        let unsigned = "x\n  Depends: <linux-image-6.1.0-9-cloud-arm64-unsigned>\n";
        assert_eq!(
            parse_kernel_depends(unsigned, CLOUD).as_deref(),
            Some("linux-image-6.1.0-9-cloud-arm64-unsigned")
        );
        assert_eq!(parse_kernel_depends("  Depends: linux-base\n", CLOUD), None);
        assert_eq!(parse_kernel_depends("", CLOUD), None);
        // The generic flavour: not the cloud one, not the metapackage.
        let generic = "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-57-arm64:arm64\n";
        assert_eq!(
            parse_kernel_depends(generic, GENERIC).as_deref(),
            Some("linux-image-6.1.0-57-arm64")
        );
        assert_eq!(parse_kernel_depends(out, GENERIC), None);
        assert_eq!(
            parse_kernel_depends("  Depends: linux-image-arm64\n", GENERIC),
            None
        );
    }
}
