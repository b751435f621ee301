//! The Raspberry Pi 3 cases, on QEMU's `raspi3b` (`rpi3`): Debian's generic kernel from the SD
//! card, with the firmware's device tree, through kexboot (and through Debian's U-Boot for the
//! Pi, the anchor).

use crate::boots::{run_boots, seg, warm_assets, warm_timeout};
use crate::check::{
    boot, case_timeout, expect_banner, expect_kexboot_started, expect_userspace, is_prompt, Ctx,
    Transcript, KEXBOOT_STARTING,
};
use crate::e2e_boot::saveenv_reset;
use crate::qemu::{Session, Wait};
use crate::rpi3::{self, CMDLINE_RPI3};
use std::time::Instant;

/// The stand's files, made on first use (the generic kernel is its own download).
fn stand(c: &Ctx) -> Result<rpi3::Rpi3, String> {
    rpi3::ensure(c.paths, &c.assets.initrd).map_err(|e| format!("rpi3 assets: {e}"))
}

/// kexboot as `kernel8.img`: the SD card's extlinux.conf boots Debian's generic kernel with the
/// firmware's tree; all four CPUs come up (the secondaries released from the firmware's
/// spin-table by the kernel), at EL2.
pub(crate) fn case_cold_sd(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let t = boot(
        rpi3::args(&r, &c.paths.kexboot_bin()).into_vec(),
        &c.log(name),
    )?;
    expect_board(&t)?;
    expect_banner(&t, "EL2")?;
    expect_userspace(&t, CMDLINE_RPI3, Some("EL2"), Some(4))?;
    expect_kexboot_started(&t)?;
    // The SDHCI's base clock from the VideoCore firmware (QEMU's property channel answers).
    t.find(|l| l.contains("EMMC clock ") && l.contains(" Hz (firmware mailbox)"))
        .ok_or("no \"EMMC clock ... (firmware mailbox)\" line")?;
    t.find(|l| l.contains("SD card at ") && l.contains("MiB"))
        .map(|_| ())
        .ok_or_else(|| "no \"SD card at\" line".to_string())
}

/// The same with the kernel as `Image.gz`: decompressed by kexboot.
pub(crate) fn case_imagegz_sd(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let t = boot(
        rpi3::args_on(&r, &r.sd_gz, &c.paths.kexboot_bin()).into_vec(),
        &c.log(name),
    )?;
    expect_board(&t)?;
    expect_userspace(&t, CMDLINE_RPI3, Some("EL2"), Some(4))?;
    expect_kexboot_started(&t)?;
    t.find(|l| l.contains("Image.gz") && l.contains("loaded kernel"))
        .map(|_| ())
        .ok_or_else(|| "no \"loaded kernel /Image.gz\" line".to_string())
}

/// A card whose FAT boot sector is garbage: one clear line, no kernel, the prompt.
pub(crate) fn case_corrupt_sd(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let a = rpi3::args_on(&r, &r.sd_corrupt, &c.paths.kexboot_bin());
    let t = boot(a.into_vec(), &c.log(name))?;
    expect_board(&t)?;
    if !t.has_prompt() {
        return Err(format!("no kexboot> prompt: {}", t.ending()));
    }
    if let Some((_, l)) = t.find(|l| l.contains(KEXBOOT_STARTING)) {
        return Err(format!("a kernel was started: {:?}", l.text.trim()));
    }
    t.find(|l| l.contains("SD card at ") && l.contains("MiB"))
        .ok_or("the card itself was not found")?;
    t.find(|l| l.contains("no boot file system"))
        .map(|_| ())
        .ok_or_else(|| "no \"no boot file system\" line".to_string())
}

/// Warm re-entry on the Pi with one CPU: Linux (`nr_cpus=1`, the secondaries never leave the
/// firmware's spin-table) `kexec -l`s kexboot with `--dtb=/sys/firmware/fdt`; kexboot enters
/// warm, finds the card again and boots the entry with the next cycle's arguments.
pub(crate) fn case_warm_one_cpu(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let w = warm_assets(c)?;
    if !w.kexboot {
        return Err("target/kexboot.bin was not in the warm initramfs (firmware not built)".into());
    }
    let sd = rpi3::ensure_warm(c.paths, &r, &w.initrd).map_err(|e| e.to_string())?;
    let a = rpi3::args_on(&r, &sd, &c.paths.kexboot_bin()).into_vec();
    let b = run_boots(&a, &c.log(name), 2, warm_timeout())?;
    let first = seg(&b, 1)?;
    expect_board(first)?;
    need(first, "KEXBOOT-E2E cycle=1/2 via=tools")?;
    need(first, "KEXBOOT-E2E cpus=1")?;
    need(first, "kexboot: cold entry")?;
    let second = seg(&b, 2)?;
    expect_board(second)?;
    need(second, "kexboot: warm entry")?;
    need(second, "KEXBOOT-E2E cycle=2/2 via=tools")?;
    need(second, "KEXBOOT-E2E cpus=1")?;
    need(second, "SD card at ")?;
    Ok(())
}

/// A line containing `what`.
fn need(t: &Transcript, what: &str) -> Result<(), String> {
    t.find(|l| l.contains(what))
        .map(|_| ())
        .ok_or_else(|| format!("no {what:?} line: {}", t.ending()))
}

/// The firmware's tree as the Pi's firmware builds its own (labels, `__symbols__`) reaches the
/// kernel with its `__symbols__` intact.
pub(crate) fn case_symbols(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let d = rpi3::ensure_dt(c.paths, &r, &c.assets.initrd).map_err(|e| e.to_string())?;
    let a = rpi3::Args::bare(rpi3::MACHINE)
        .dtb(&d.symbols_dtb)
        .sd(&r.sd)
        .args(["-serial", "null"])
        .kernel(&c.paths.kexboot_bin());
    let t = boot(a.into_vec(), &c.log(name))?;
    expect_userspace(&t, CMDLINE_RPI3, Some("EL2"), Some(4))?;
    // The three labels the stand gave the tree (Linux may list a `name` entry beside them).
    let n: usize = t
        .marker("symbols")
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no symbols marker")?;
    match n >= 3 {
        true => Ok(()),
        false => Err(format!(
            "{n} entries in /proc/device-tree/__symbols__, expected the 3 labels"
        )),
    }
}

/// `fdtdir /` loads `broadcom/bcm2837-rpi-3-b.dtb` (U-Boot's name for the board's compatible)
/// instead of the firmware's tree, and `fdtoverlays` applies the test overlay to it.
pub(crate) fn case_fdtdir_overlay(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let d = rpi3::ensure_dt(c.paths, &r, &c.assets.initrd).map_err(|e| e.to_string())?;
    let a = rpi3::args_on(&r, &d.fdtdir_sd, &c.paths.kexboot_bin());
    let t = boot(a.into_vec(), &c.log(name))?;
    expect_userspace(&t, CMDLINE_RPI3, Some("EL2"), Some(4))?;
    marker_is(&t, "model", rpi3::MODEL_FDTDIR)?;
    marker_is(&t, "overlay", "overlay-applied")
}

/// `fdt /custom.dtb` loads that tree instead of the firmware's.
pub(crate) fn case_fdt(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let d = rpi3::ensure_dt(c.paths, &r, &c.assets.initrd).map_err(|e| e.to_string())?;
    let a = rpi3::args_on(&r, &d.fdt_sd, &c.paths.kexboot_bin());
    let t = boot(a.into_vec(), &c.log(name))?;
    expect_userspace(&t, CMDLINE_RPI3, Some("EL2"), Some(4))?;
    marker_is(&t, "model", rpi3::MODEL_FDT)
}

/// The initramfs marker `key` says `want`.
fn marker_is(t: &Transcript, key: &str, want: &str) -> Result<(), String> {
    match t.marker(key).map(str::trim) {
        Some(got) if got == want => Ok(()),
        got => Err(format!("{key}={got:?}, expected {want:?}")),
    }
}

/// Debian's U-Boot `rpi_3` boots the same card: proves the card and the stand.
pub(crate) fn case_uboot_sd(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let t = boot(rpi3::args(&r, &r.uboot).into_vec(), &c.log(name))?;
    expect_userspace(&t, CMDLINE_RPI3, Some("EL2"), Some(4))
}

/// The banner names the board the tree describes.
fn expect_board(t: &Transcript) -> Result<(), String> {
    let (_, l) = t
        .find(|l| l.trim_start().starts_with("kexboot ") && l.contains(" EL"))
        .ok_or("no kexboot banner")?;
    match l.text.contains("(rpi3)") {
        true => Ok(()),
        false => Err(format!("banner {:?} does not name rpi3", l.text.trim())),
    }
}

/// The shell on the Pi: `setenv`, `saveenv` to the SD card, `reset` through the BCM2835
/// watchdog (the tree has no PSCI), and the value is there after the new cold entry (QEMU's
/// `snapshot=on` overlay outlives guest resets).
pub(crate) fn case_saveenv_reset(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let sd = rpi3::shell_sd(c.paths).map_err(|e| format!("rpi3 shell SD: {e}"))?;
    let args = rpi3::args_on(&r, &sd, &c.paths.kexboot_bin()).into_vec();
    saveenv_reset(&args, &c.log(name))
}

/// `poweroff` on the Pi: the BCM2835 watchdog with partition 63 ("halt") in PM_RSTS, which
/// QEMU's power-management model turns into a guest shutdown: QEMU exits, successfully.
pub(crate) fn case_poweroff(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let sd = rpi3::shell_sd(c.paths).map_err(|e| format!("rpi3 shell SD: {e}"))?;
    let args = rpi3::args_on(&r, &sd, &c.paths.kexboot_bin()).into_vec();
    let mut s = Session::spawn(&args, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + case_timeout();
    let result = (|| {
        if !matches!(s.wait_for_prompt(deadline, is_prompt), Wait::Found(_)) {
            return Err("no kexboot> prompt".to_string());
        }
        s.send(b"poweroff\r");
        match s.wait_exit(deadline) {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(format!("QEMU exited with {status}")),
            None => Err("QEMU still runs after poweroff".into()),
        }
    })();
    s.kill();
    result
}
