//! The cases on the real-layout disks of [`crate::realdisks`] (made by mke2fs, u-boot-update,
//! flash-kernel + mkimage, lz4, zstd, mkfs.vfat, sgdisk): each layout booted by kexboot, and
//! where Debian's U-Boot for QEMU can boot it, by U-Boot too (the `uboot-real-*` cases), so a
//! failure says whether the image or kexboot is at fault.
//!
//! U-Boot 2023.01's `qemu_arm64` environment lacks two variables boards define:
//! `fdt_addr_r` (flash-kernel's script loads `dtb-<version>` there) and `kernel_comp_addr_r` /
//! `kernel_comp_size` (needed by `booti` for a compressed kernel). Those cases stop the
//! autoboot and set them, as a board's environment would, then `boot`.

use crate::assets::UBOOT_BIN;
use crate::check::{
    boot, case_timeout, error_naming, expect_kexboot_started, expect_userspace, is_prompt, Ctx,
    Transcript, KEXBOOT_STARTING,
};
use crate::qemu::{Args, Session, Wait};
use crate::realdisks::{
    bls_cmdline, cmdline, debian_cmdline, RealDisks, BLS_GOOD, BLS_NEWER_MISSING, BLS_OLDER_MISSING,
};
use std::path::Path;
use std::time::Instant;

type CaseResult = std::result::Result<(), String>;

/// Where U-Boot's `fdt_addr_r` goes for flash-kernel's script: between the kernel
/// (`kernel_addr_r` 0x40400000, ~30 MiB) and the initrd (`ramdisk_addr_r` 0x44000000).
const UBOOT_FDT_ADDR_R: &str = "setenv fdt_addr_r 0x43000000";
/// `booti`'s buffer for a compressed kernel, above the initrd.
const UBOOT_KERNEL_COMP: [&str; 2] = [
    "setenv kernel_comp_addr_r 0x48000000",
    "setenv kernel_comp_size 0x3000000",
];

fn real<'a>(c: &'a Ctx) -> std::result::Result<&'a RealDisks, String> {
    c.disks
        .real
        .as_ref()
        .map_err(|e| format!("no real-layout disks: {e}"))
}

/// The kexboot scan line for partition `n` holding file system `fs` (`ext4`, `ext2`, `fat`),
/// matched without case.
fn scan_line(n: u32, fs: &str) -> String {
    format!("partition {n}: {fs}")
}

/// Every line of `want` is on the console (case-insensitive).
fn expect_lines(t: &Transcript, want: &[String]) -> CaseResult {
    for w in want {
        let w = w.to_ascii_lowercase();
        if t.find(|l| l.to_ascii_lowercase().contains(&w)).is_none() {
            return Err(format!("no line mentioning {w:?}"));
        }
    }
    Ok(())
}

/// kexboot boots `disk` (one CPU, EL1) to the initramfs with `cmdline`, after its scan named
/// the file systems of `scan`.
fn kexboot_boots(c: &Ctx, name: &str, disk: &Path, cmdline: &str, scan: &[String]) -> CaseResult {
    let t = boot(c.kexboot("virt", 1, disk), &c.log(name))?;
    expect_userspace(&t, cmdline, None, None)?;
    expect_kexboot_started(&t)?;
    expect_lines(&t, scan)
}

/// U-Boot on `disks` (the first is `virtio 0`): when `typed` is empty it autoboots, else the
/// autoboot is stopped and `typed` entered at `=>` prompts. The run must reach the initramfs
/// with `cmdline` and show each of `want`.
fn uboot_boots(
    c: &Ctx,
    name: &str,
    disks: &[&Path],
    typed: &[&str],
    cmdline: &str,
    want: &[String],
) -> CaseResult {
    let t = uboot_run(c, name, disks, typed)?;
    expect_userspace(&t, cmdline, None, None)?;
    expect_lines(&t, want)
}

/// QEMU with `-bios` U-Boot and `disks` as virtio-blk devices. U-Boot numbers virtio-mmio
/// devices from the lowest address, where QEMU puts the last one given, so they go in reverse.
fn uboot_args(disks: &[&Path]) -> Vec<String> {
    let mut a = Args::machine("virt", 1).bios(Path::new(UBOOT_BIN));
    for (i, d) in disks.iter().enumerate().rev() {
        a = a.args([
            "-drive".to_string(),
            format!(
                "if=none,format=raw,file={},id=hd{i},snapshot=on",
                d.display()
            ),
            "-device".to_string(),
            format!("virtio-blk-device,drive=hd{i}"),
        ]);
    }
    a.into_vec()
}

/// kexboot with `disks`, the first as `virtio 0` (the same order as [`uboot_args`]).
fn kexboot_args(c: &Ctx, disks: &[&Path]) -> Vec<String> {
    let mut a = Args::machine("virt", 1).kernel(&c.paths.kexboot_bin());
    for (i, d) in disks.iter().enumerate().rev() {
        a = a.args([
            "-drive".to_string(),
            format!(
                "if=none,format=raw,file={},id=hd{i},snapshot=on",
                d.display()
            ),
            "-device".to_string(),
            format!("virtio-blk-device,drive=hd{i}"),
        ]);
    }
    a.into_vec()
}

/// Runs U-Boot as [`uboot_boots`] describes and returns the console.
fn uboot_run(c: &Ctx, name: &str, disks: &[&Path], typed: &[&str]) -> Result<Transcript, String> {
    let args = uboot_args(disks);
    if typed.is_empty() {
        return boot(args, &c.log(name));
    }
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let typed_ok = (|| {
        if !matches!(
            s.wait_for_prompt(deadline, |l| l.contains("Hit any key to stop autoboot")),
            Wait::Found(_)
        ) {
            return Err("no U-Boot autoboot countdown".to_string());
        }
        s.send(b" ");
        for cmd in typed {
            if !matches!(
                s.wait_for_prompt(deadline, |l| l.trim_start().starts_with("=>")),
                Wait::Found(_)
            ) {
                return Err(format!("no U-Boot prompt for {cmd:?}"));
            }
            s.send(format!("{cmd}\r").as_bytes());
        }
        Ok(())
    })();
    let end = if typed_ok.is_ok() {
        s.wait_for(deadline, |l| {
            // The end of the initramfs, a panic, or U-Boot refusing the kernel.
            [
                "KEXBOOT-E2E-END",
                "Kernel panic",
                "Bad Linux ARM64 Image magic",
            ]
            .iter()
            .any(|m| l.contains(m))
        })
    } else {
        Wait::Timeout
    };
    let timed_out = matches!(end, Wait::Timeout);
    s.kill();
    typed_ok?;
    Ok(Transcript {
        lines: s.lines().to_vec(),
        timed_out,
        status: s.status(),
        stderr: s.stderr(),
    })
}

/// Debian ext4 (4 KiB blocks), `/boot` on the root file system: u-boot-update's
/// `/boot/extlinux/extlinux.conf`, kernel and initrd as `vmlinuz-<v>`/`initrd.img-<v>` beside
/// Debian's symlinks.
pub(crate) fn case_ext4_root(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let want = debian_cmdline("ext4-root", "/dev/vda1");
    kexboot_boots(c, name, &r.ext4_root, &want, &[scan_line(1, "ext4")])
}

pub(crate) fn case_uboot_ext4_root(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let want = debian_cmdline("ext4-root", "/dev/vda1");
    let found = "Found /boot/extlinux/extlinux.conf".to_string();
    uboot_boots(c, name, &[&r.ext4_root], &[], &want, &[found])
}

/// Debian's separate `/boot` (ext4, 1 KiB blocks, partition 1; paths relative to it) beside
/// the root file system (partition 2).
pub(crate) fn case_ext4_bootpart(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let want = debian_cmdline("ext4-bootpart", "/dev/vda2");
    // The scan boots partition 1 and goes no further; the start-up survey of the disk (which
    // looks for the FAT home partition) names partition 2.
    let scan = [scan_line(1, "ext4"), "virtio 0:2: ext4".to_string()];
    kexboot_boots(c, name, &r.ext4_bootpart, &want, &scan)
}

pub(crate) fn case_uboot_ext4_bootpart(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let want = debian_cmdline("ext4-bootpart", "/dev/vda2");
    let found = "Found /extlinux/extlinux.conf".to_string();
    uboot_boots(c, name, &[&r.ext4_bootpart], &[], &want, &[found])
}

/// ext4 without metadata_csum and 64bit (32-byte group descriptors, no checksums).
pub(crate) fn case_ext4_nocsum(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let want = debian_cmdline("ext4-nocsum", "/dev/vda1");
    kexboot_boots(c, name, &r.ext4_nocsum, &want, &[scan_line(1, "ext4")])
}

pub(crate) fn case_uboot_ext4_nocsum(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let want = debian_cmdline("ext4-nocsum", "/dev/vda1");
    let found = "Found /boot/extlinux/extlinux.conf".to_string();
    uboot_boots(c, name, &[&r.ext4_nocsum], &[], &want, &[found])
}

/// ext2: no extents, the kernel through indirect blocks.
pub(crate) fn case_ext2(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let want = debian_cmdline("ext2", "/dev/vda1");
    kexboot_boots(c, name, &r.ext2, &want, &[scan_line(1, "ext2")])
}

pub(crate) fn case_uboot_ext2(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let want = debian_cmdline("ext2", "/dev/vda1");
    let found = "Found /boot/extlinux/extlinux.conf".to_string();
    uboot_boots(c, name, &[&r.ext2], &[], &want, &[found])
}

/// The line flash-kernel's script echoes before `booti`.
fn fk_booting(r: &RealDisks) -> String {
    format!("Booting Debian {} from virtio 0:1...", r.kvers)
}

/// flash-kernel's generic `boot.scr` on an ext4 `/boot` partition: the script loads
/// `vmlinuz-<v>`, `dtb-<v>` (to `fdt_addr_r`) and `initrd.img-<v>` and runs `booti`.
pub(crate) fn case_bootscr_ext4(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let scan = [scan_line(1, "ext4"), fk_booting(r)];
    kexboot_boots(c, name, &r.bootscr_ext4, &cmdline("bootscr-ext4"), &scan)
}

/// The same script on FAT.
pub(crate) fn case_bootscr_fat(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let scan = [scan_line(1, "fat"), fk_booting(r)];
    kexboot_boots(c, name, &r.bootscr_fat, &cmdline("bootscr-fat"), &scan)
}

pub(crate) fn case_uboot_bootscr_ext4(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let want = ["Found U-Boot script /boot.scr".to_string(), fk_booting(r)];
    let typed = [UBOOT_FDT_ADDR_R, "boot"];
    let disk = [r.bootscr_ext4_uboot.as_path()];
    uboot_boots(c, name, &disk, &typed, &cmdline("bootscr-ext4"), &want)
}

/// Fedora's BLS entries sorted by version, newest first: 6.10.2 (missing kernel) is tried
/// and reported, then 6.9.7 boots; 6.8.5 (also missing) is never reached. A plain string sort
/// would boot 6.9.7 first and never mention 6.10.2. (U-Boot has no BLS support.)
pub(crate) fn case_bls(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let t = boot(c.kexboot("virt", 1, &r.bls), &c.log(name))?;
    // The entry's error names its version (in its label); which of its missing files is
    // found missing first is the flow's business.
    let newer = BLS_NEWER_MISSING.to_string();
    let (e, _) = error_naming(&t, &newer)
        .ok_or_else(|| format!("no error line naming {newer} ({})", t.ending()))?;
    expect_userspace(&t, &bls_cmdline(BLS_GOOD), None, None)?;
    expect_kexboot_started(&t)?;
    if let Some((s, _)) = t.find(|l| l.contains(KEXBOOT_STARTING)) {
        if s < e {
            return Err(format!("a kernel started before {newer} was reported"));
        }
    }
    let older = BLS_OLDER_MISSING.to_string();
    if let Some((_, l)) = error_naming(&t, &older) {
        return Err(format!("the older entry was tried: {:?}", l.text.trim()));
    }
    expect_lines(&t, &[scan_line(1, "ext4")])
}

/// `/boot/Image.lz4` made by `lz4 -l` (the legacy frame of the kernel's own `Image.lz4`).
pub(crate) fn case_lz4(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    kexboot_boots(c, name, &r.lz4, &cmdline("lz4"), &[])
}

/// U-Boot 2023.01 does not take the legacy lz4 frame (its lz4 is the frame format only): the
/// entry fails with "Bad Linux ARM64 Image magic!". Records what U-Boot does on this image.
pub(crate) fn case_uboot_lz4_refused(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    uboot_refuses(c, name, &r.lz4, "Bad Linux ARM64 Image magic")
}

/// Debian's `qemu_arm64` U-Boot knows the zstd magic but is built without its decompressor:
/// "Unimplemented compression type 6". Records what U-Boot does on this image.
pub(crate) fn case_uboot_zstd_refused(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    uboot_refuses(c, name, &r.zstd, "Unimplemented compression type")
}

/// U-Boot (with `kernel_comp_addr_r`/`kernel_comp_size` set) finds the extlinux.conf on
/// `disk`, cannot start its compressed kernel, and says `why`.
fn uboot_refuses(c: &Ctx, name: &str, disk: &Path, why: &str) -> CaseResult {
    let typed = [UBOOT_KERNEL_COMP[0], UBOOT_KERNEL_COMP[1], "boot"];
    let t = uboot_run(c, name, &[disk], &typed)?;
    if let Some((_, l)) = t.find(|l| l.contains("KEXBOOT-E2E cmdline=")) {
        return Err(format!("U-Boot booted it after all: {:?}", l.text.trim()));
    }
    let found = "Found /extlinux/extlinux.conf".to_string();
    expect_lines(&t, &[found, why.to_string()])
}

/// `/boot/Image.zst` made by `zstd`, on ext4.
pub(crate) fn case_zstd(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    kexboot_boots(c, name, &r.zstd, &cmdline("zstd"), &[scan_line(1, "ext4")])
}

/// A FAT volume whose boot sector claims 32 MiB more than its GPT partition holds (the
/// files lie inside the partition).
pub(crate) fn case_fat_oversize(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    kexboot_boots(c, name, &r.fat_oversize, &cmdline("fat-oversize"), &[])
}

pub(crate) fn case_uboot_fat_oversize(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let found = "Found /extlinux/extlinux.conf".to_string();
    uboot_boots(
        c,
        name,
        &[&r.fat_oversize],
        &[],
        &cmdline("fat-oversize"),
        &[found],
    )
}

/// The commands of the two-disk case: the kernel from disk 0 partition 2 (ext4), the initrd
/// from disk 1 partition 1 (ext4), then `booti`.
fn two_disk_commands() -> [&'static str; 4] {
    [
        "load virtio 0:2 ${kernel_addr_r} /boot/Image",
        "load virtio 1:1 ${ramdisk_addr_r} /boot/initrd.img",
        "setenv bootargs console=ttyAMA0 kexboot.test=two-disks",
        "booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize}",
    ]
}

/// Nothing to boot on either disk, so kexboot stops at its prompt; its scan reports partition
/// 3 (random bytes) as an unknown file system. At the prompt, `load` from a partition that
/// does not exist (0:4) and from partition 3 fail with errors, then the kernel comes from
/// `virtio 0:2`, the initrd from `virtio 1:1`, and `booti` starts them.
pub(crate) fn case_two_disks(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let args = kexboot_args(c, &[&r.multi, &r.multi_second]);
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        let bad = [
            "load virtio 0:4 ${kernel_addr_r} /boot/Image",
            "load virtio 0:3 ${kernel_addr_r} /boot/Image",
        ];
        let mut cmds: Vec<&str> = bad.to_vec();
        cmds.extend(two_disk_commands());
        for cmd in cmds {
            if !matches!(s.wait_for_prompt(deadline, is_prompt), Wait::Found(_)) {
                return Err(format!("no kexboot> prompt for {cmd:?}"));
            }
            s.send(format!("{cmd}\r").as_bytes());
        }
        match s.wait_for(deadline, |l| l.contains("KEXBOOT-E2E cmdline=")) {
            Wait::Found(l)
                if l.text.trim()
                    == "KEXBOOT-E2E cmdline=console=ttyAMA0 kexboot.test=two-disks" => {}
            Wait::Found(l) => return Err(format!("booted with {:?}", l.text.trim())),
            _ => return Err("booti did not reach Linux".into()),
        }
        let text: Vec<String> = s
            .lines()
            .iter()
            .map(|l| l.text.to_ascii_lowercase())
            .collect();
        let has = |p: &str| text.iter().any(|l| l.contains(p));
        if !has("partition 3: unknown file system") {
            return Err("no \"partition 3: unknown file system\" line".into());
        }
        // U-Boot's words for a partition the table does not have.
        if !has("** invalid partition 4 **") {
            return Err("no error line for the missing partition 0:4".into());
        }
        if text.iter().filter(|l| l.contains("bytes read")).count() != 2 {
            return Err("the two good loads did not both report their size".into());
        }
        Ok(())
    })();
    s.kill();
    result
}

/// The same commands at U-Boot's prompt (but `booti` gets U-Boot's own tree).
pub(crate) fn case_uboot_two_disks(c: &Ctx, name: &str) -> CaseResult {
    let r = real(c)?;
    let mut typed = vec!["load virtio 0:4 ${kernel_addr_r} /boot/Image"];
    typed.extend(two_disk_commands());
    // U-Boot's `booti` without a tree argument gives up ("FDT and ATAGS support not compiled
    // in") and resets: hand it its own tree (QEMU's).
    if let Some(b) = typed.last_mut() {
        *b = "booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}";
    }
    let want = [
        "Couldn't find partition virtio 0:4".to_string(),
        "bytes read".to_string(),
    ];
    uboot_boots(
        c,
        name,
        &[&r.multi, &r.multi_second],
        &typed,
        "console=ttyAMA0 kexboot.test=two-disks",
        &want,
    )
}
