//! The shell on the host: its commands, `booti`, `boot` and autoboot, run through the one
//! command table on a [`TestBoard`] (RAM simulated, jumps recorded and refused).

use kexboot_boot::board::Board;
use kexboot_boot::bootcount::{decode_count, BOOTCOUNT_PATH};
use kexboot_boot::env::Env;
use kexboot_boot::envstore::{COPY_SIZE, HEADER_LEN, REGION_SIZE, STORE_PATH};
use kexboot_boot::script::Outcome;
use kexboot_boot::shell::{commands, Shell, VERSION};
use kexboot_tests::board::*;
use kexboot_tests::*;

type Sh = Shell<TestBoard>;

/// A shell over `files` on an MBR FAT16 disk, with U-Boot's load addresses set.
fn shell(files: &[(&str, &[u8])]) -> (Sh, Env) {
    let (sh, mut env) = shell_on(TestBoard::new(), Some(mbr_fat16(files)));
    sh.default_addresses(&mut env);
    (sh, env)
}

#[test]
fn load_reads_a_file_to_ram_and_sets_filesize() {
    let data = pattern(3, 5000);
    let (mut sh, mut env) = shell(&[("/boot/blob", &data)]);
    let a = var(&env, "kernel_addr_r");
    let (out, said) = run(
        &mut sh,
        &mut env,
        "load virtio 0:1 ${kernel_addr_r} /boot/blob",
    );
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(env.get("filesize"), Some("1388"));
    assert_eq!(ram_at(&sh, a, data.len()), &data[..]);
    assert!(said.contains("5000 bytes read\n"), "{said}");
}

#[test]
fn load_refuses_kexboot_memory_missing_files_and_bad_arguments() {
    let data = pattern(4, 3000);
    let mut board = TestBoard::new();
    let reserved = Range::constant(0x5000_0000, 0x5001_0000);
    board.layout.reserved.push(reserved);
    let (mut sh, mut env) = shell_on(board, Some(mbr_fat16(&[("/boot/blob", &data)])));
    let cases = [
        (
            format!("load virtio 0:1 {:#x} /boot/blob", BOARD_HEAP.start()),
            "is not free RAM",
        ),
        (
            format!(
                "load virtio 0:1 {:#x} /boot/blob",
                BOARD_IMAGE.start() + 0x1000
            ),
            "is not free RAM",
        ),
        (
            format!("load virtio 0:1 {:#x} /boot/blob", BOARD_KEPT.start()),
            "is not free RAM",
        ),
        // Ends inside the reserved range.
        (
            format!("load virtio 0:1 {:#x} /boot/blob", reserved.start() - 1000),
            "is not free RAM",
        ),
        (
            format!("load virtio 0:1 {:#x} /boot/blob", BOARD_RAM.end()),
            "is not free RAM",
        ),
        (
            "load virtio 0:1 0x48000000 /boot/nope".into(),
            "/boot/nope: ",
        ),
        (
            "load virtio 0:1 4800zz00 /boot/blob".into(),
            "'4800zz00' is not a hex address",
        ),
        (
            "load mmc 0:1 0x48000000 /boot/blob".into(),
            "no disk on interface 'mmc'",
        ),
        (
            "load virtio 0:1 0x48000000".into(),
            "load: no file name and no bootfile",
        ),
        // Another partition or device is an error, never the boot partition's file.
        (
            "load virtio 0:2 0x48000000 /boot/blob".into(),
            "** Invalid partition 2 **",
        ),
        (
            "load virtio 1:1 0x48000000 /boot/blob".into(),
            "** Bad device virtio 1 **",
        ),
        (
            "load virtio 0:zz 0x48000000 /boot/blob".into(),
            "** Bad device specification virtio 0:zz **",
        ),
        (
            "ext4load virtio 0:1 0x48000000 /boot/blob".into(),
            "** Unrecognized filesystem type **",
        ),
    ];
    for (line, want) in &cases {
        let (out, said) = run(&mut sh, &mut env, line);
        assert_eq!(out, Outcome::Failure, "{line}: {said}");
        assert!(said.contains(want), "{line}: wanted '{want}', got '{said}'");
        assert_eq!(env.get("filesize"), None, "{line}");
    }
    for r in [BOARD_IMAGE, BOARD_KEPT, reserved] {
        let o = (r.start() - BOARD_RAM.start()) as usize;
        let written = &sh.board().ram[o..o + r.len() as usize];
        assert!(written.iter().all(|&b| b == 0), "nothing written at {r:?}");
    }
}

#[test]
fn help_lists_every_table_command() {
    let (mut sh, mut env) = shell(&[]);
    let (out, said) = run(&mut sh, &mut env, "help");
    assert_eq!(out, Outcome::Success);
    let table = commands::<TestBoard>();
    assert!(table.len() >= 17);
    for (name, _) in kexboot_boot::script::BUILTINS {
        assert!(
            table.iter().all(|c| c.name != *name),
            "'{name}' is a built-in and a table command"
        );
    }
    for c in &table {
        assert!(
            said.lines().any(|l| l == c.help),
            "help lacks '{}': {said}",
            c.name
        );
    }
}

#[test]
fn ls_lists_files_and_directories() {
    let (mut sh, mut env) = shell(&[("/boot/blob", &[1u8; 1234]), ("/boot/sub/x", b"x")]);
    let (out, said) = run(&mut sh, &mut env, "ls /boot");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(said.contains("        1234  blob\n"), "{said}");
    assert!(said.contains("sub/\n"), "{said}");
    let (out, said) = run(&mut sh, &mut env, "ls");
    assert_eq!(out, Outcome::Success);
    assert!(said.contains("boot/\n"), "{said}");
    let (out, said) = run(&mut sh, &mut env, "ls /nope");
    assert_eq!(out, Outcome::Failure);
    assert!(said.starts_with("/nope: "), "{said}");
}

#[test]
fn md_shows_the_words_load_wrote_and_refuses_what_is_not_plain_ram() {
    let data: Vec<u8> = (0u8..32).collect();
    let mut board = TestBoard::new();
    let reserved = Range::constant(0x5000_0000, 0x5001_0000);
    board.layout.reserved.push(reserved);
    let (mut sh, mut env) = shell_on(board, Some(mbr_fat16(&[("/w", &data)])));
    sh.default_addresses(&mut env);
    let a = var(&env, "kernel_addr_r");
    assert_eq!(
        run(&mut sh, &mut env, "load virtio 0:1 ${kernel_addr_r} /w").0,
        Outcome::Success
    );
    let (out, said) = run(&mut sh, &mut env, "md ${kernel_addr_r} 8");
    assert_eq!(out, Outcome::Success, "{said}");
    let want = format!(
        "{a:08x}: 03020100 07060504 0b0a0908 0f0e0d0c\n{:08x}: 13121110 17161514 1b1a1918 1f1e1d1c\n",
        a + 16
    );
    assert_eq!(said, want);
    // An unaligned address starts at its word.
    let (_, said) = run(&mut sh, &mut env, &format!("md {:x} 1", a + 6));
    assert_eq!(said, format!("{:08x}: 07060504\n", a + 4));
    for (line, want) in [
        (
            format!("md {:#x} 4", reserved.start() + 0x100),
            "is not plain RAM",
        ),
        (
            format!("md {:#x} 4", reserved.start() - 8),
            "is not plain RAM",
        ),
        ("md 0x1000".into(), "md: 0x1000..0x1100 is not plain RAM"),
        (
            format!("md {:#x} 8", BOARD_RAM.end() - 16),
            "is not plain RAM",
        ),
        ("md".into(), "usage: md <address> [count]"),
        ("md xyz".into(), "usage: md <address> [count]"),
    ] {
        let (out, said) = run(&mut sh, &mut env, &line);
        assert_eq!(out, Outcome::Failure, "{line}");
        assert!(said.contains(want), "{line}: wanted '{want}', got '{said}'");
    }
}

#[test]
fn saveenv_survives_power_cycles() {
    let disk = mbr_fat16(&[("/kexboot/env.txt", b"")]);
    let (mut sh, mut env) = shell_on(TestBoard::new(), Some(disk));
    let (out, said) = run(&mut sh, &mut env, "setenv answer 42; saveenv");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(
        said.starts_with("Saving Environment to FAT /kexboot/env.bin"),
        "{said}"
    );
    assert!(said.ends_with("OK\n"), "{said}");
    // Power on again over the same disk bytes: the saved variable is back.
    let (mut sh, mut env) = shell_on(TestBoard::new(), Some(disk_bytes(&mut sh)));
    assert_eq!(env.get("answer"), Some("42"));
    // Without saveenv nothing reaches the disk.
    assert_eq!(
        run(&mut sh, &mut env, "setenv answer 44").0,
        Outcome::Success
    );
    let (_, env) = shell_on(TestBoard::new(), Some(disk_bytes(&mut sh)));
    assert_eq!(env.get("answer"), Some("42"));
}

#[test]
fn saveenv_twice_keeps_the_older_copy_for_a_power_cut() {
    let disk = mbr_fat16(&[]);
    let (mut sh, mut env) = shell_on(TestBoard::new(), Some(disk));
    let line = "setenv answer 42; saveenv; setenv answer 43; saveenv";
    assert_eq!(run(&mut sh, &mut env, line).0, Outcome::Success);
    let (_, env) = shell_on(TestBoard::new(), Some(disk_bytes(&mut sh)));
    assert_eq!(env.get("answer"), Some("43"), "the newer copy wins");
    // The second save went to the other copy: damage the newest one (a write cut short) and
    // the first save is what the next power-on finds.
    let mut fs = open(disk_bytes(&mut sh));
    let region = fs.read_file(STORE_PATH, REGION_SIZE).unwrap();
    let newest = region
        .chunks(COPY_SIZE)
        .position(|c| c.windows(9).any(|w| w == b"answer=43"))
        .expect("a copy holds the last save");
    let data_at = (newest * COPY_SIZE + HEADER_LEN) as u64;
    fs.write_in_place(STORE_PATH, data_at, b"X").unwrap();
    let bytes = fs.into_inner().into_inner().into_inner();
    let (_, env) = shell_on(TestBoard::new(), Some(bytes));
    assert_eq!(env.get("answer"), Some("42"));
}

#[test]
fn env_default_restores_the_board_defaults() {
    let (mut sh, mut env) = shell_on(TestBoard::new(), Some(mbr_fat16(&[])));
    let (out, _) = run(
        &mut sh,
        &mut env,
        "setenv bootcmd 'echo mine'; setenv extra 1",
    );
    assert_eq!(out, Outcome::Success);
    let (out, said) = run(&mut sh, &mut env, "env default -a");
    assert_eq!(out, Outcome::Success);
    assert_eq!(said, "## Resetting to default environment\n");
    assert_eq!(env.get("extra"), None);
    assert_eq!(env.get("bootcmd"), Some("boot || netboot"));
    assert_eq!(env.get("board"), Some("host-test"));
    let (out, said) = run(&mut sh, &mut env, "env");
    assert_eq!(out, Outcome::Failure);
    assert!(said.starts_with("Usage: env exists name"), "{said}");
    // One variable back to its default, another (with none) deleted.
    let (out, _) = run(
        &mut sh,
        &mut env,
        "setenv bootcmd x; setenv extra 1; env default bootcmd extra",
    );
    assert_eq!(out, Outcome::Success);
    assert_eq!(env.get("bootcmd"), Some("boot || netboot"));
    assert_eq!(env.get("extra"), None);
}

#[test]
fn version_names_kexboot_and_the_board() {
    let (mut sh, mut env) = shell_on(TestBoard::new(), None);
    let (out, said) = run(&mut sh, &mut env, "version");
    assert_eq!(out, Outcome::Success);
    assert_eq!(said, format!("kexboot {VERSION} (host-test)\n"));
    assert_eq!(env.get("ver"), Some(format!("kexboot {VERSION}").as_str()));
}

#[test]
fn bootstage_lists_the_marks() {
    let (mut sh, mut env) = shell(&[("/extlinux/extlinux.conf", b"label x\n kernel /nope\n")]);
    sh.board_mut().mark("test stage");
    assert_eq!(run(&mut sh, &mut env, "boot").0, Outcome::Failure);
    let (out, said) = run(&mut sh, &mut env, "bootstage");
    assert_eq!(out, Outcome::Success);
    let marks = sh.board().marks.clone();
    assert_eq!(
        marks.iter().map(|m| m.0).collect::<Vec<_>>(),
        ["test stage", "config read"]
    );
    for (name, us) in marks {
        assert!(said.contains(&format!("{us:>11}  {name}\n")), "{said}");
    }
    assert!(said.contains("ms since machine reset)"), "{said}");
}

#[test]
fn reset_and_poweroff_report_why_they_did_not_happen() {
    let (mut sh, mut env) = shell_on(TestBoard::new(), None);
    let (out, said) = run(&mut sh, &mut env, "reset");
    assert_eq!(out, Outcome::Failure);
    assert_eq!(
        said,
        "the device tree describes no PSCI (smc/hvc) firmware\n"
    );
    let (out, said) = run(&mut sh, &mut env, "poweroff");
    assert_eq!(out, Outcome::Failure);
    assert_eq!(said, "PSCI call failed with -1\n");
    assert_eq!(run(&mut sh, &mut env, "reset || reset").0, Outcome::Failure);
    assert_eq!((sh.board().resets, sh.board().power_offs), (3, 1));
}

#[test]
fn exception_undefined_asks_the_board() {
    let (mut sh, mut env) = shell_on(TestBoard::new(), None);
    let (out, said) = run(&mut sh, &mut env, "exception undefined");
    assert_eq!(out, Outcome::Failure);
    assert_eq!(said, "exception: this board cannot raise one\n");
    assert_eq!(sh.board().exceptions, 1);
    let (out, said) = run(&mut sh, &mut env, "exception");
    assert_eq!(out, Outcome::Failure);
    assert_eq!(said, "usage: exception undefined\n");
    assert_eq!(sh.board().exceptions, 1);
}

/// The segment the kernel went to: the one holding `entry`.
fn kernel_segment(j: &Jumped) -> kexboot_relocate::Segment {
    *j.segments
        .iter()
        .find(|s| s.dst <= j.entry && j.entry < s.dst + s.memsz)
        .expect("a segment holds the entry")
}

#[test]
fn booti_jumps_into_the_loaded_kernel() {
    let spec = KernelSpec::new(MIB as usize + 4321, 51);
    let k = spec.build();
    let (mut sh, mut env) = shell(&[("/boot/Image", &k), ("/boot/virt.dtb", QEMU_VIRT_DTB)]);
    let line = "load virtio 0:1 ${kernel_addr_r} /boot/Image; load virtio 0:1 ${fdt_addr_r} /boot/virt.dtb";
    assert_eq!(run(&mut sh, &mut env, line).0, Outcome::Success);
    for (n, line) in [
        "booti ${kernel_addr_r} - ${fdt_addr_r}",
        "booti ${kernel_addr_r}",
    ]
    .iter()
    .enumerate()
    {
        let (out, said) = run(&mut sh, &mut env, line);
        assert_eq!(out, Outcome::Failure, "the board refuses: {said}");
        assert!(said.contains("booti: relocation plan refused"), "{said}");
        assert_eq!(sh.board().jumps.len(), n + 1, "{line}");
        let j = sh.board().jumps[n].clone();
        assert_eq!(j.label, "booti");
        let seg = kernel_segment(&j);
        assert_eq!(j.entry, seg.dst + spec.text_offset);
        assert_eq!(seg.dst % SZ_2M, 0, "2 MiB aligned");
        assert!(seg.memsz >= spec.image_size(), "{seg:?}");
        // In place: booti reads the kernel where `load` put it, BSS included.
        assert_eq!(seg.src, var(&env, "kernel_addr_r"));
        assert_eq!(seg.len, spec.image_size(), "{seg:?}");
        assert_eq!(ram_at(&sh, seg.src, k.len()), &k[..]);
        assert!(BOARD_RAM.contains_range(&Range::from_len(seg.dst, seg.memsz).unwrap()));
        let dtb = j
            .segments
            .iter()
            .find(|s| s.dst == j.dtb)
            .expect("a DTB segment");
        assert!(dtb.len >= 40);
    }
}

#[test]
fn booti_refuses_bad_addresses_with_its_error_text() {
    let k = kernel(64 * KIB as usize, 52);
    let (mut sh, mut env) = shell(&[("/boot/Image", &k)]);
    assert_eq!(
        run(
            &mut sh,
            &mut env,
            "load virtio 0:1 ${kernel_addr_r} /boot/Image"
        )
        .0,
        Outcome::Success
    );
    for (line, want) in [
        (
            "booti 0x1000".to_string(),
            "booti: 0x1000 is not in RAM kexboot may read".to_string(),
        ),
        ("booti zz".into(), "booti: 'zz' is not a hex address".into()),
        ("booti".into(), "usage: booti <kernel_addr>".into()),
        (
            "booti ${kernel_addr_r} - 0x1000".into(),
            "booti: fdt 0x1000 is not in RAM kexboot may read".into(),
        ),
        // Nothing loaded there: no Image header.
        ("booti ${ramdisk_addr_r}".into(), "booti: ".into()),
        (
            format!("booti {:#x}", BOARD_RAM.end() - 32),
            format!("booti: {:#x}", BOARD_RAM.end() - 32),
        ),
        (
            "booti ${kernel_addr_r} 1000:100".into(),
            "booti: initrd 0x1000-0x1100 is not in RAM".into(),
        ),
    ] {
        let (out, said) = run(&mut sh, &mut env, &line);
        assert_eq!(out, Outcome::Failure, "{line}");
        assert!(
            said.starts_with(&want),
            "{line}: wanted '{want}', got '{said}'"
        );
        assert!(!said.contains("relocation plan refused"), "{line}: {said}");
    }
    assert!(sh.board().jumps.is_empty());
}

const CONF: &str = "/boot/extlinux/extlinux.conf";

#[test]
fn autoboot_tries_every_entry_in_boot_order() {
    let (ka, kb) = (KernelSpec::new(200_000, 61), KernelSpec::new(300_000, 62));
    let initrd = pattern(63, 70_000);
    let cfg = "default b\ntimeout 0\n\
               label a\n  kernel /boot/a\n  append one\n\
               label broken\n  kernel /boot/missing\n\
               label b\n  kernel /boot/b\n  initrd /boot/initrd\n  append two\n\
               label c\n  kernel /boot/a\n";
    let (mut sh, mut env) = shell_on(
        TestBoard::new(),
        Some(mbr_fat16(&[
            (CONF, cfg.as_bytes()),
            ("/boot/a", &ka.build()),
            ("/boot/b", &kb.build()),
            ("/boot/initrd", &initrd),
        ])),
    );
    sh.autoboot(&mut env);
    let labels: Vec<_> = sh.board().jumps.iter().map(|j| j.label.clone()).collect();
    assert_eq!(
        labels,
        ["b", "a", "c"],
        "default first, then file order; broken skipped"
    );
    let b = &sh.board().jumps[0];
    assert!(kernel_segment(b).memsz >= kb.image_size());
    assert!(b.segments.iter().any(|s| s.len == initrd.len() as u64));
    let a = &sh.board().jumps[1];
    assert_eq!(kernel_segment(a).len, ka.build().len() as u64);
    let out = sh.board().output();
    assert!(
        out.ends_with("kexboot: no entry could be booted\n"),
        "{out}"
    );
}

#[test]
fn a_boot_script_runs_instead_of_bootcmd() {
    let k = kernel(100_000, 64);
    let cfg = "label disk\n  kernel /boot/Image\n";
    let files: [(&str, &[u8]); 4] = [
        (CONF, cfg.as_bytes()),
        ("/boot/Image", &k),
        ("/kexboot/env.txt", b"bootcmd=echo ran-bootcmd; boot\n"),
        (
            "/kexboot/boot.txt",
            b"echo ran-script\nsetenv from_script 1\n",
        ),
    ];
    let (mut sh, mut env) = shell_on(TestBoard::new(), Some(mbr_fat16(&files)));
    sh.autoboot(&mut env);
    let out = sh.board().output();
    assert!(out.contains("ran-script\n"), "{out}");
    assert!(!out.contains("ran-bootcmd"), "{out}");
    assert_eq!(env.get("from_script"), Some("1"));
    assert!(sh.board().jumps.is_empty(), "the script booted nothing");
    // Without the script, bootcmd runs and boots the disk's entry.
    let (mut sh, mut env) = shell_on(TestBoard::new(), Some(mbr_fat16(&files[..3])));
    sh.autoboot(&mut env);
    assert!(sh.board().output().contains("ran-bootcmd\n"));
    let labels: Vec<_> = sh.board().jumps.iter().map(|j| j.label.as_str()).collect();
    assert_eq!(labels, ["disk"]);
}

#[test]
fn bootlimit_switches_to_altbootcmd_and_the_count_survives_power_ons() {
    let env_txt = b"bootlimit=2\nbootcmd=echo normal-boot\naltbootcmd=echo rescue-boot\n";
    let mut disk = mbr_fat16(&[("/kexboot/env.txt", env_txt)]);
    for n in 1..=3u32 {
        let (mut sh, mut env) = shell_on(TestBoard::new(), Some(disk));
        sh.autoboot(&mut env);
        let out = sh.board().output();
        assert_eq!(env.get("bootcount"), Some(n.to_string().as_str()));
        let (want, not) = match n {
            1 | 2 => ("normal-boot\n", "rescue-boot"),
            _ => ("rescue-boot\n", "normal-boot"),
        };
        assert!(
            out.contains(want) && !out.contains(not),
            "power-on {n}: {out}"
        );
        let fs = sh.fs().unwrap();
        assert_eq!(
            decode_count(&fs.read_file(BOOTCOUNT_PATH, 64).unwrap()),
            Ok(n)
        );
        disk = disk_bytes(&mut sh);
    }
}

#[test]
fn test_e_looks_on_the_boot_partition() {
    let (mut sh, mut env) = shell(&[("/boot/vmlinuz", b"k")]);
    for (line, want) in [
        ("test -e virtio 0:1 /boot/vmlinuz", Outcome::Success),
        ("test -e virtio 0:1 /boot/nope", Outcome::Failure),
        ("test ! -e virtio 0:1 /boot/nope", Outcome::Success),
    ] {
        assert_eq!(run(&mut sh, &mut env, line).0, want, "{line}");
    }
    let (out, said) = run(&mut sh, &mut env, "test -e mmc 0:1 /boot/vmlinuz");
    assert_eq!(out, Outcome::Failure);
    assert_eq!(said, "test: no disk on interface 'mmc'\n");
    let (mut sh, mut env) = shell_on(TestBoard::new(), None);
    let (out, said) = run(&mut sh, &mut env, "test -e virtio 0:1 /x");
    assert_eq!(out, Outcome::Failure);
    assert_eq!(said, "test: no disk on interface 'virtio'\n");
}

#[test]
fn source_runs_a_boot_scr_loaded_to_ram() {
    let scr = kexboot_boot::script::make_legacy_script_image(
        "echo sourced from ${devtype}\nsetenv sourced yes\n",
        "boot script",
    );
    let (mut sh, mut env) = shell(&[("/boot/boot.scr", &scr)]);
    env.set("scriptaddr", "0x50000000");
    env.set("devtype", "virtio");
    let (out, said) = run(
        &mut sh,
        &mut env,
        "load virtio 0:1 ${scriptaddr} /boot/boot.scr && source ${scriptaddr}",
    );
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(
        said.ends_with("## Executing script at 50000000\nsourced from virtio\n"),
        "{said}"
    );
    assert_eq!(env.get("sourced"), Some("yes"));
    // RAM that is not plain RAM is refused, as md refuses it.
    let (out, said) = run(&mut sh, &mut env, "source 1000");
    assert_eq!(out, Outcome::Failure);
    assert!(
        said.contains("md: 0x1000..0x1040 is not plain RAM"),
        "{said}"
    );
}

/// Debian's flash-kernel generic boot script (tests/data/README.md), rendered for arm64.
const FLASH_KERNEL_SCRIPT: &str = include_str!("../data/boot.cmd.flash-kernel-generic");
const FK_KVERS: &str = "6.1.0-18-arm64";

/// U-Boot's distro_boot variables for virtio 0:1, as `scan_dev_for_scripts` leaves them.
fn distro_boot_vars(env: &mut Env) {
    for (k, v) in [
        ("devtype", "virtio"),
        ("devnum", "0"),
        ("distro_bootpart", "1"),
        ("prefix", "/"),
        ("scriptaddr", "0x4fc00000"),
        ("fdtfile", "qemu/virt.dtb"),
        ("fdtcontroladdr", "0x7ff00000"),
    ] {
        env.set(k, v);
    }
}

#[test]
fn flash_kernel_generic_boot_scr_runs_unmodified_to_booti() {
    let spec = KernelSpec::new(MIB as usize + 999, 71);
    let k = spec.build();
    let initrd = pattern(72, 300_000);
    let scr = kexboot_boot::script::make_legacy_script_image(FLASH_KERNEL_SCRIPT, "boot script");
    let files: [(String, &[u8]); 4] = [
        (format!("/vmlinuz-{FK_KVERS}"), &k),
        (format!("/initrd.img-{FK_KVERS}"), &initrd),
        (format!("/dtbs/{FK_KVERS}/qemu/virt.dtb"), QEMU_VIRT_DTB),
        ("/boot.scr".into(), &scr),
    ];
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), *b)).collect();
    let (mut sh, mut env) = shell(&files);
    distro_boot_vars(&mut env);
    env.set("console", "ttyAMA0,115200");
    // What U-Boot's distro_boot does once it found /boot.scr.
    let line = "load ${devtype} ${devnum}:${distro_bootpart} ${scriptaddr} ${prefix}boot.scr; \
                source ${scriptaddr}";
    let (out, said) = run(&mut sh, &mut env, line);
    assert!(
        said.contains(&format!("Booting Debian {FK_KVERS} from virtio 0:1...\n")),
        "{said}"
    );
    assert!(!said.contains("Unknown command"), "{said}");
    assert!(!said.contains("test: "), "{said}");
    // The board refuses the jump, so booti fails and the script goes on to its second loop,
    // which finds no plain /vmlinuz.
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(sh.board().jumps.len(), 1, "{said}");
    let j = &sh.board().jumps[0];
    assert_eq!(j.label, "booti");
    assert!(kernel_segment(j).memsz >= spec.image_size());
    assert!(j.segments.iter().any(|s| s.len == initrd.len() as u64));
    assert_eq!(env.get("bootargs"), Some("  console=ttyAMA0,115200 quiet"));
    assert_eq!(
        env.get("filesize"),
        Some(format!("{:x}", initrd.len()).as_str())
    );
    assert_eq!(
        env.get("pathprefix"),
        None,
        "the loop variable is a hush local"
    );
}

#[test]
fn flash_kernel_generic_boot_scr_without_a_kernel_boots_nothing() {
    let scr = kexboot_boot::script::make_legacy_script_image(FLASH_KERNEL_SCRIPT, "boot script");
    let (mut sh, mut env) = shell(&[("/boot.scr", &scr)]);
    distro_boot_vars(&mut env);
    env.set("fk_image_locations", "/ /boot/");
    let (out, said) = run(
        &mut sh,
        &mut env,
        "load virtio 0:1 ${scriptaddr} /boot.scr; source ${scriptaddr}",
    );
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(!said.contains("Booting Debian"), "{said}");
    assert!(sh.board().jumps.is_empty());
}
