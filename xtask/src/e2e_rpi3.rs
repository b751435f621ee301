//! The Raspberry Pi 3 cases, on QEMU's `raspi3b` (`rpi3`): Debian's generic kernel from the SD
//! card, with the firmware's device tree, through kexboot (and through Debian's U-Boot for the
//! Pi, the anchor).

use crate::check::{
    boot, expect_banner, expect_kexboot_started, expect_userspace, Ctx, Transcript,
};
use crate::e2e_boot::saveenv_reset;
use crate::rpi3::{self, CMDLINE_RPI3};

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

/// The shell on the Pi: `setenv`, `saveenv` to the SD card, `reset` through the BCM2835
/// watchdog (the tree has no PSCI), and the value is there after the new cold entry (QEMU's
/// `snapshot=on` overlay outlives guest resets).
pub(crate) fn case_saveenv_reset(c: &Ctx, name: &str) -> Result<(), String> {
    let r = stand(c)?;
    let sd = rpi3::shell_sd(c.paths).map_err(|e| format!("rpi3 shell SD: {e}"))?;
    let args = rpi3::args_with_sd(&r, &sd, &c.paths.kexboot_bin()).into_vec();
    saveenv_reset(&args, &c.log(name))
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
