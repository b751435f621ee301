//! The Arasan SD host controller of the BCM2835/2837 (`compatible = "brcm,bcm2835-sdhci"`,
//! 0x3f300000 on the Pi 3) wired to the SD card stack: MMIO registers, the generic timer for
//! waits, and the card on top as a `kexboot_fs::BlockDevice`. The register sequences live in
//! `kexboot_sd::sdhci` (host-tested); this file holds only the board-facing facts.
//!
//! Which controller has the card: QEMU's `raspi3b` (hw/gpio/bcm2835_gpio.c) puts the card on
//! this controller at reset, moves it to the sdhost (`brcm,bcm2835-sdhost`, 0x3f202000) when
//! GPIO 48-53 are all set to ALT0 (function select 4), and back here when they are all set to
//! input (0). On the real Pi 3 the firmware leaves GPIO 48-53 at ALT0 (sdhost) and this
//! controller serves the Wi-Fi on GPIO 34-39; to use it for the card there, GPIO 48-53 go to
//! ALT3 (function select 7), as Linux's `bcm2835-rpi.dtsi` `sdhci` pin group does.
use kexboot_sd::{Card, Error, Options, Sdhci, SdhciConfig};

use crate::mmio::Mmio;
use crate::timer::Delay;

/// The DT `compatible` of this controller.
pub const COMPATIBLE: &str = "brcm,bcm2835-sdhci";
/// Size of its register block (the DT `reg` says 0x100).
const REG_LEN: usize = 0x100;

/// An initialised card on this controller.
pub type SdCard = Card<Sdhci<Mmio, Delay>, Delay>;

/// Resets the controller at `base` and initialises the card in its slot. `emmc_clock_hz` is the
/// controller's base clock where the board knows it: on the real Pi the capabilities register
/// reports 0 and the VideoCore mailbox (clock id 1, EMMC) gives it, typically 250 MHz on a
/// Pi 3 (U-Boot's `bcm2835_sdhci.c` asks the same way); QEMU reports 52 MHz in the capabilities.
///
/// # Safety
/// `base` must be this controller's register block from the DT, Device-mapped in kexboot's
/// identity map, and not in use by anything else.
pub unsafe fn open(base: usize, emmc_clock_hz: Option<u32>, qemu: bool) -> Result<SdCard, Error> {
    // SAFETY: the caller vouches for `base` (see `# Safety`).
    let regs = unsafe { Mmio::new(base, REG_LEN) };
    let cfg = SdhciConfig {
        base_clock_hz: emmc_clock_hz,
        // QEMU models card detect and write protect; the Pi 3's microSD slot wires neither to
        // this controller (and microSD has no write-protect switch).
        card_detect: qemu,
        write_protect: qemu,
        // The real Arasan needs two SD clocks between register writes; QEMU does not.
        space_writes: !qemu,
    };
    let host = Sdhci::new(regs, Delay, cfg).map_err(|err| Error::Host {
        cmd: kexboot_sd::Cmd::new(0),
        err,
    })?;
    Card::init(host, Delay, Options::default())
}
