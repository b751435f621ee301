//! The cold-boot cases: Linux direct, U-Boot, kexboot from MBR/GPT, fallback, all-bad, seeds,
//! exception report, the menu and the shell.

use crate::assets::UBOOT_BIN;
use crate::check::{
    boot, case_timeout, error_naming, expect_banner, expect_kexboot_started, expect_userspace,
    is_prompt, Ctx, CMDLINE_DIRECT, KEXBOOT_STARTING,
};
use crate::disks::{CMDLINE_FALLBACK, CMDLINE_IMAGE, CMDLINE_IMAGEGZ};
use crate::qemu::{Args, Session, Wait};
use std::path::Path;
use std::time::{Duration, Instant};

/// Linux booted directly by QEMU: proves the kernel and initramfs (no kexboot involved).
pub(crate) fn case_direct(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let a = Args::machine("virt", 1)
        .kernel(&c.assets.image)
        .initrd(&c.assets.initrd)
        .append(CMDLINE_DIRECT)
        .into_vec();
    let t = boot(a, &c.log(name))?;
    expect_userspace(&t, CMDLINE_DIRECT, Some("EL1"), Some(1))
}

/// Debian's U-Boot boots the MBR disk through extlinux.conf: proves the disk image.
pub(crate) fn case_uboot(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let a = Args::machine("virt", 1)
        .bios(Path::new(UBOOT_BIN))
        .disk(&c.disks.mbr)
        .into_vec();
    let t = boot(a, &c.log(name))?;
    expect_userspace(&t, CMDLINE_IMAGE, None, None)?;
    t.find(|l| l.contains("Starting kernel"))
        .map(|_| ())
        .ok_or_else(|| "no U-Boot \"Starting kernel\" line".into())
}

pub(crate) fn case_el2_image_mbr(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let t = boot(
        c.kexboot("virt,virtualization=on", 2, &c.disks.mbr),
        &c.log(name),
    )?;
    expect_userspace(&t, CMDLINE_IMAGE, Some("EL2"), Some(2))?;
    expect_banner(&t, "EL2")?;
    expect_kexboot_started(&t)
}

pub(crate) fn case_el1_imagegz_gpt(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let t = boot(c.kexboot("virt", 1, &c.disks.gpt), &c.log(name))?;
    expect_userspace(&t, CMDLINE_IMAGEGZ, Some("EL1"), Some(1))?;
    expect_banner(&t, "EL1")?;
    expect_kexboot_started(&t)
}

pub(crate) fn case_fallback(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let t = boot(c.kexboot("virt", 2, &c.disks.missing), &c.log(name))?;
    let (e, _) = error_naming(&t, "missing-Image")
        .ok_or_else(|| format!("no error line naming missing-Image ({})", t.ending()))?;
    expect_userspace(&t, CMDLINE_FALLBACK, None, None)?;
    expect_kexboot_started(&t)?;
    match t.find(|l| l.contains(KEXBOOT_STARTING)) {
        Some((s, _)) if s < e => {
            Err("kexboot started a kernel before reporting missing-Image".into())
        }
        _ => Ok(()),
    }
}

pub(crate) fn case_all_bad(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let t = boot(
        c.kexboot("virt,virtualization=on", 1, &c.disks.allbad),
        &c.log(name),
    )?;
    if let Some((_, l)) = t.find(|l| l.contains("KEXBOOT-E2E")) {
        return Err(format!("a kernel booted: {:?}", l.text.trim()));
    }
    if let Some((_, l)) = t.find(|l| l.contains(KEXBOOT_STARTING)) {
        return Err(format!("kexboot started a kernel: {:?}", l.text.trim()));
    }
    let (p, _) = t
        .find(is_prompt)
        .ok_or_else(|| format!("no kexboot> prompt: {}", t.ending()))?;
    for file in ["missing-Image", "corrupt-Image", "missing-initrd.img"] {
        match error_naming(&t, file) {
            Some((i, _)) if i < p => {}
            _ => return Err(format!("no error line naming {file} before the prompt")),
        }
    }
    Ok(())
}

/// `-cpu max` has FEAT_RNG: kexboot must seed `kaslr-seed`/`rng-seed` from `rndr` and say so.
pub(crate) fn case_cpumax_seeds(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let args = c.kexboot_on("virt,virtualization=on", "max", 2, &c.disks.mbr);
    let t = boot(args, &c.log(name))?;
    if t.find(|l| l.contains("kaslr-seed and rng-seed set from"))
        .is_none()
    {
        return Err("no line saying the seeds came from the CPU's random source".into());
    }
    if let Some((_, l)) = t.find(|l| l.contains("no random source")) {
        return Err(format!(
            "claims no random source on -cpu max: {:?}",
            l.text.trim()
        ));
    }
    expect_userspace(&t, CMDLINE_IMAGE, Some("EL2"), Some(2))?;
    expect_kexboot_started(&t)
}

/// An unexpected exception prints the syndrome and the registers, then stops the CPU.
pub(crate) fn case_exception_report(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let args = c.kexboot("virt,virtualization=on", 1, &c.disks.allbad);
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        if !matches!(s.wait_for_prompt(deadline, is_prompt), Wait::Found(_)) {
            return Err("no kexboot> prompt".to_string());
        }
        s.send(b"exception undefined\r");
        if !matches!(
            s.wait_for(deadline, |l| l.contains("CPU stopped")),
            Wait::Found(_)
        ) {
            return Err("no 'CPU stopped' after the exception".to_string());
        }
        let text: Vec<&str> = s.lines().iter().map(|l| l.text.as_str()).collect();
        let has = |p: &str| text.iter().any(|l| l.contains(p));
        for want in [
            "unexpected synchronous exception",
            "at EL2",
            "ESR=0x0000000002000000",
            "ELR=0x",
            "SPSR=0x",
            "x30=",
        ] {
            if !has(want) {
                return Err(format!("exception report lacks {want:?}"));
            }
        }
        Ok(())
    })();
    s.kill();
    result
}

/// The boot menu, typed at on the serial line: a key stops the countdown, `2` picks the second
/// entry, `e` edits its command line, Enter boots it; `/proc/cmdline` proves the edit.
pub(crate) fn case_menu(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let args = c.kexboot("virt,virtualization=on", 1, &c.disks.menu);
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        if !matches!(
            s.wait_for(deadline, |l| l.contains("boot menu drawn")),
            Wait::Found(_)
        ) {
            return Err("no \"boot menu drawn\" line".to_string());
        }
        let pause = || std::thread::sleep(Duration::from_millis(300));
        for keys in [&b" "[..], b"2", b"e", b" menu.edited=yes\r"] {
            s.send(keys);
            pause();
        }
        if !matches!(
            s.wait_for(deadline, |l| l.contains("KEXBOOT-E2E-END")),
            Wait::Found(_)
        ) {
            return Err("Linux did not reach its marker after the menu".to_string());
        }
        let text: Vec<&str> = s.lines().iter().map(|l| l.text.as_str()).collect();
        let want = format!("KEXBOOT-E2E cmdline={CMDLINE_IMAGEGZ} menu.edited=yes");
        if !text.iter().any(|l| l.trim() == want) {
            let got = text.iter().find(|l| l.contains("KEXBOOT-E2E cmdline="));
            return Err(format!("expected {want:?}, got {got:?}"));
        }
        if !text.iter().any(|l| l.contains("kexboot test menu")) {
            return Err("the menu title was not shown".to_string());
        }
        Ok(())
    })();
    s.kill();
    result
}

/// The shell: `setenv` + `saveenv`, `reset` (PSCI SYSTEM_RESET), and after the reboot the value
/// is still there (read back from the saved environment's newer copy).
pub(crate) fn case_saveenv(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let args = c.kexboot("virt,virtualization=on", 1, &c.disks.allbad);
    saveenv_reset(&args, &c.log(name))
}

/// The saveenv round trip on the machine `args` starts, whose boot disk has no bootable entry
/// (kexboot ends at its prompt) and survives a guest reset: at the prompt `setenv` a variable,
/// `saveenv`, `reset`; after the new cold entry `printenv` shows the variable.
pub(crate) fn saveenv_reset(args: &[String], log: &Path) -> std::result::Result<(), String> {
    let mut s = Session::spawn(args, Some(log)).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        // Each command ends at a fresh `kexboot> ` (a prompt has no newline, so wait for it).
        let prompt = |s: &mut Session, what: &str| match s.wait_for_prompt(deadline, is_prompt) {
            Wait::Found(_) => Ok(()),
            _ => Err(format!("no kexboot> prompt {what}")),
        };
        prompt(&mut s, "at first")?;
        s.send(b"setenv greeting hello-kexboot\r");
        prompt(&mut s, "after setenv")?;
        s.send(b"saveenv\r");
        if !matches!(s.wait_for(deadline, |l| l.trim() == "OK"), Wait::Found(_)) {
            return Err("saveenv did not say OK".into());
        }
        prompt(&mut s, "after saveenv")?;
        s.send(b"reset\r");
        if !matches!(
            s.wait_for(deadline, |l| l.contains("kexboot: cold entry")),
            Wait::Found(_)
        ) {
            return Err("no reboot after reset".into());
        }
        prompt(&mut s, "after the reset")?;
        s.send(b"printenv greeting\r");
        match s.wait_for(deadline, |l| l.contains("greeting=")) {
            Wait::Found(l) if l.text.trim() == "greeting=hello-kexboot" => Ok(()),
            Wait::Found(l) => Err(format!("after the reset: {:?}", l.text.trim())),
            _ => Err("printenv greeting printed nothing after the reset".into()),
        }
    })();
    s.kill();
    result
}

/// U-Boot habits at the prompt: `load` the kernel and initrd to `${kernel_addr_r}` and
/// `${ramdisk_addr_r}`, `setenv bootargs`, `booti` — through the same relocator.
pub(crate) fn case_load_booti(c: &Ctx, name: &str) -> std::result::Result<(), String> {
    let args = c.kexboot("virt,virtualization=on", 1, &c.disks.allbad);
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        let lines: [&[u8]; 4] = [
            b"load virtio 0:1 ${kernel_addr_r} /boot/Image\r",
            b"load virtio 0:1 ${ramdisk_addr_r} /boot/initrd.img\r",
            b"setenv bootargs console=ttyAMA0 kexboot.test=booti\r",
            b"booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize}\r",
        ];
        for l in lines {
            if !matches!(s.wait_for_prompt(deadline, is_prompt), Wait::Found(_)) {
                return Err("no kexboot> prompt".into());
            }
            s.send(l);
        }
        match s.wait_for(deadline, |l| l.contains("KEXBOOT-E2E cmdline=")) {
            Wait::Found(l)
                if l.text.trim() == "KEXBOOT-E2E cmdline=console=ttyAMA0 kexboot.test=booti" => {}
            Wait::Found(l) => return Err(format!("booted with {:?}", l.text.trim())),
            _ => return Err("booti did not reach Linux".into()),
        }
        let text: Vec<&str> = s.lines().iter().map(|l| l.text.as_str()).collect();
        if text.iter().filter(|l| l.contains("bytes read")).count() != 2 {
            return Err("the two loads did not both report their size".into());
        }
        Ok(())
    })();
    s.kill();
    result
}
