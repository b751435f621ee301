//! Disks and partitions as U-Boot's commands name them (`virtio 0:2`), on the host: the
//! distro-boot scan over every disk and partition, commands that honour `dev:part`, and that a
//! device or partition that does not exist is an error, never another partition's file.

use kexboot_boot::env::Env;
use kexboot_boot::script::Outcome;
use kexboot_boot::shell::Shell;
use kexboot_tests::board::*;
use kexboot_tests::*;

type Sh = Shell<TestBoard>;

fn fat(files: &[(&str, &[u8])]) -> Vec<u8> {
    fat_volume(fatfs::FatType::Fat16, 16 * MIB as usize, files)
}

fn part(sys: u8, bootable: bool, data: &[u8]) -> Part<'_> {
    Part {
        sys,
        bootable,
        data,
    }
}

/// Disk 0: an empty FAT partition, 1 MiB of noise, a FAT partition with an extlinux.conf
/// whose kernel is `label`. Disk 1: a FAT partition with a different file at the same path.
fn two_disks(label: &str) -> (Sh, Env) {
    let k = kernel(100_000, 7);
    let cfg = format!("label {label}\n  kernel /Image\n");
    let empty = fat(&[("/readme", b"nothing to boot")]);
    let noise = pattern(3, MIB as usize);
    let boot = fat(&[
        ("/extlinux/extlinux.conf", cfg.as_bytes()),
        ("/Image", &k),
        ("/same/name", b"disk 0 partition 3"),
    ]);
    let other = fat(&[("/same/name", b"disk 1, its first partition")]);
    let d0 = mbr_disk(&[
        part(0x0c, false, &empty),
        part(0x83, false, &noise),
        part(0x0c, false, &boot),
    ]);
    let d1 = mbr_disk(&[part(0x0c, false, &other)]);
    shell_on_disks(TestBoard::new(), vec![d0, d1])
}

#[test]
fn boot_scans_every_partition_and_says_why_it_passed_one_over() {
    let (mut sh, mut env) = two_disks("third");
    let (out, said) = run(&mut sh, &mut env, "boot");
    assert_eq!(out, Outcome::Failure, "{said}");
    let labels: Vec<_> = sh.board().jumps.iter().map(|j| j.label.clone()).collect();
    assert_eq!(labels, ["third"], "{said}");
    for want in [
        "Scanning virtio 0:1...",
        "partition 1: FAT",
        "Scanning virtio 0:2...",
        "partition 2: unknown file system",
        "Scanning virtio 0:3...",
        "Found /extlinux/extlinux.conf",
        "Scanning virtio 1:1...",
        "partition 1: FAT",
    ] {
        assert!(said.contains(want), "wanted '{want}' in:\n{said}");
    }
    // Disk 0's partitions come before disk 1's.
    let p3 = said.find("Scanning virtio 0:3").unwrap();
    let d1 = said.find("Scanning virtio 1:1").unwrap();
    assert!(p3 < d1, "{said}");
}

#[test]
fn load_reads_the_named_device_and_partition_only() {
    let (mut sh, mut env) = two_disks("x");
    let addr = 0x4800_0000u64;
    for (spec, want) in [
        ("0:3", &b"disk 0 partition 3"[..]),
        ("1:1", &b"disk 1, its first partition"[..]),
        ("1", &b"disk 1, its first partition"[..]),
    ] {
        let line = format!("load virtio {spec} {addr:#x} /same/name");
        let (out, said) = run(&mut sh, &mut env, &line);
        assert_eq!(out, Outcome::Success, "{line}: {said}");
        assert_eq!(ram_at(&sh, addr, want.len()), want, "{line}");
        assert_eq!(
            env.get("filesize"),
            Some(format!("{:x}", want.len()).as_str())
        );
    }
    for (line, want) in [
        ("load virtio 0:1 0x48000000 /same/name", "/same/name: "),
        (
            "load virtio 0:2 0x48000000 /same/name",
            "virtio 0:2: unknown file system",
        ),
        (
            "load virtio 0:4 0x48000000 /same/name",
            "** Invalid partition 4 **",
        ),
        (
            "load virtio 1:2 0x48000000 /same/name",
            "** Invalid partition 2 **",
        ),
        (
            "load virtio 2:1 0x48000000 /same/name",
            "** Bad device virtio 2 **",
        ),
        ("size virtio 0:1 /same/name", "/same/name: "),
    ] {
        env.unset("filesize");
        let (out, said) = run(&mut sh, &mut env, line);
        assert_eq!(out, Outcome::Failure, "{line}: {said}");
        assert!(said.contains(want), "{line}: wanted '{want}', got '{said}'");
        assert_eq!(env.get("filesize"), None, "{line}");
    }
    let (out, said) = run(&mut sh, &mut env, "size virtio 1:1 /same/name");
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(env.get("filesize"), Some("1b"));
}

#[test]
fn ls_and_part_list_name_devices_and_partitions() {
    let (mut sh, mut env) = two_disks("x");
    let (out, said) = run(&mut sh, &mut env, "ls virtio 0:3 /");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(
        said.contains("Image") && said.contains("extlinux/"),
        "{said}"
    );
    let (out, said) = run(&mut sh, &mut env, "fatls virtio 1:1");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(said.contains("same/") && !said.contains("Image"), "{said}");
    let (out, said) = run(&mut sh, &mut env, "part list virtio 0");
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(
        said.matches("\t0x").count(),
        3 * 2,
        "three partitions, start and end: {said}"
    );
    let (out, said) = run(&mut sh, &mut env, "part list virtio 0 parts");
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(env.get("parts"), Some("1 2 3"));
    let (out, said) = run(&mut sh, &mut env, "part list virtio 5");
    assert_eq!(out, Outcome::Failure, "{said}");
    assert!(said.contains("** Bad device virtio 5 **"), "{said}");
}

#[test]
fn sysboot_boots_the_partition_it_names() {
    let (mut sh, mut env) = two_disks("named");
    let (out, said) = run(
        &mut sh,
        &mut env,
        "sysboot virtio 0:1 any 0x48000000 /extlinux/extlinux.conf",
    );
    assert_eq!(out, Outcome::Failure);
    assert!(said.contains("/extlinux/extlinux.conf: "), "{said}");
    assert!(sh.board().jumps.is_empty());
    let (_, said) = run(
        &mut sh,
        &mut env,
        "sysboot virtio 0:3 fat 0x48000000 /extlinux/extlinux.conf",
    );
    let labels: Vec<_> = sh.board().jumps.iter().map(|j| j.label.clone()).collect();
    assert_eq!(labels, ["named"], "{said}");
    let (out, said) = run(&mut sh, &mut env, "sysboot virtio 0:3 ext4 0x48000000");
    assert_eq!(out, Outcome::Failure);
    assert!(said.contains("Unrecognized filesystem type"), "{said}");
}

#[test]
fn a_boot_script_gets_the_distro_boot_variables() {
    let script = "echo dev=${devtype} ${devnum}:${distro_bootpart} prefix=${prefix}\n";
    let scr = kexboot_boot::script::make_legacy_script_image(script, "t");
    let empty = fat(&[("/x", b"x")]);
    let with_script = fat(&[("/boot/boot.scr", &scr)]);
    let d0 = mbr_disk(&[part(0x0c, false, &empty), part(0x0c, true, &with_script)]);
    let (mut sh, mut env) = shell_on_disks(TestBoard::new(), vec![d0]);
    let (_, said) = run(&mut sh, &mut env, "boot");
    assert!(
        said.contains("Found U-Boot script /boot/boot.scr"),
        "{said}"
    );
    assert!(said.contains("dev=virtio 0:2 prefix=/boot/"), "{said}");
    // The bootable partition is scanned first, as U-Boot's distro boot does.
    assert!(said.starts_with("Scanning virtio 0:2..."), "{said}");
}

/// The fs crate's ext4 test image (see fs/tests/data/mkext.sh for what it holds).
fn ext4_image() -> Vec<u8> {
    use std::io::Read;
    let gz = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fs/tests/data/ext4.img.gz"
    ))
    .expect("ext4 test image");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

#[test]
fn ext4_partitions_are_scanned_and_read_through_symlinks() {
    let empty = fat(&[("/x", b"x")]);
    let ext4 = ext4_image();
    let d0 = mbr_disk(&[part(0x0c, false, &empty), part(0x83, false, &ext4)]);
    let (mut sh, mut env) = shell_on_disks(TestBoard::new(), vec![d0]);
    // The image's config names /boot/vmlinuz, a symlink to a file that is no arm64 Image.
    let (out, said) = run(&mut sh, &mut env, "boot");
    assert_eq!(out, Outcome::Failure, "{said}");
    assert!(
        said.contains("Scanning virtio 0:2...\npartition 2: ext4\nFound /extlinux/extlinux.conf"),
        "{said}"
    );
    let addr = 0x4800_0000u64;
    let (out, said) = run(
        &mut sh,
        &mut env,
        &format!("ext4load virtio 0:2 {addr:#x} /boot/vmlinuz"),
    );
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(env.get("filesize"), Some(format!("{:x}", 300_000).as_str()));
    let want: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(ram_at(&sh, addr, want.len()), &want[..]);
    let (out, said) = run(
        &mut sh,
        &mut env,
        "fatload virtio 0:2 0x48000000 /boot/vmlinuz",
    );
    assert_eq!(out, Outcome::Failure);
    assert!(said.contains("Unrecognized filesystem type"), "{said}");
    let (out, said) = run(&mut sh, &mut env, "ext4ls virtio 0:2 /boot");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(said.contains("vmlinuz-6.1.0-test"), "{said}");
    let (out, said) = run(&mut sh, &mut env, "load virtio 0:2 0x48000000 /loop_a");
    assert_eq!(out, Outcome::Failure);
    assert!(said.contains("/loop_a: "), "{said}");
    // The FAT partition is still the home volume (the environment's store).
    let (out, said) = run(&mut sh, &mut env, "saveenv");
    assert_eq!(out, Outcome::Success, "{said}");
}
