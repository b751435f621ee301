//! Reset and power-off without PSCI: the BCM2835/2837 power-management block's watchdog
//! (`compatible = "brcm,bcm2835-pm"`, older trees `"brcm,bcm2835-pm-wdt"`; 0x3f100000 on the
//! Pi 3), as Linux's `drivers/watchdog/bcm2835_wdt.c` and U-Boot's `bcm283x` reset drive it.
//! The Pi 3's firmware gives no PSCI (its armstub parks the secondaries on spin-tables), so
//! this is the board's only way to reset.
//!
//! - Reset: arm the watchdog with a short count (PM_WDOG), then select "full reset" in PM_RSTC;
//!   the SoC resets when the count runs out (10 ticks of its 65.5 kHz clock, ~150 us).
//! - Power-off: the same reset with partition 63 written to PM_RSTS first: the firmware's
//!   `bootcode.bin` reads it after the reset and halts instead of booting ("halt" as Linux
//!   means it; the Pi has no power switch).
//!
//! QEMU 7.2's `hw/misc/bcm2835_powermgt.c` (checked): it keeps PM_WDOG and PM_RSTS, does not
//! count, and on a PM_RSTC write with the full-reset bit (0x20) requests a system reset at once,
//! or a guest shutdown (QEMU exits) when PM_RSTS's low 12 bits are 0x555 (partition 63). Writes
//! without the password are ignored there as on the real chip.
use kexboot_sd::regs::Regs;

use crate::mmio::Mmio;
use crate::timer::Stopwatch;

/// The DT `compatible`s of the block (current trees, older trees).
pub const COMPATIBLE: &[&str] = &["brcm,bcm2835-pm", "brcm,bcm2835-pm-wdt"];
/// Size of its first register block (the DT `reg` says 0x114).
const REG_LEN: usize = 0x114;
/// Reset control, reset status, watchdog count.
const PM_RSTC: usize = 0x1c;
const PM_RSTS: usize = 0x20;
const PM_WDOG: usize = 0x24;
/// Every write carries the password in the top byte, or the block ignores it.
const PASSWORD: u32 = 0x5a00_0000;
const PASSWORD_MASK: u32 = 0xff00_0000;
/// PM_RSTC's watchdog reset configuration field, and its "full reset" value.
const RSTC_WRCFG_MASK: u32 = 0x30;
const RSTC_WRCFG_FULL_RESET: u32 = 0x20;
/// PM_RSTS: boot partition 63 (its bits spread as 0x555), which the firmware takes as "halt".
const RSTS_PARTITION_HALT: u32 = 0x555;
/// Watchdog ticks before the reset (Linux's value: ~150 us).
const WDOG_TICKS: u32 = 10;
/// How long to wait for the reset before saying it did not happen.
const RESET_WAIT_US: u64 = 1_000_000;

/// The watchdog of the PM block at `base`.
pub struct Watchdog {
    regs: Mmio,
}

impl Watchdog {
    /// # Safety
    /// `base` must be the PM block's registers from the DT, Device-mapped in kexboot's identity
    /// map, and used by nothing else.
    pub unsafe fn new(base: usize) -> Self {
        Watchdog {
            // SAFETY: the caller vouches for `base`.
            regs: unsafe { Mmio::new(base, REG_LEN) },
        }
    }

    /// Resets the SoC; returns only if it did not reset within [`RESET_WAIT_US`].
    pub fn reset(&mut self) {
        self.regs.write32(PM_WDOG, PASSWORD | WDOG_TICKS);
        let rstc = self.regs.read32(PM_RSTC) & !(PASSWORD_MASK | RSTC_WRCFG_MASK);
        self.regs
            .write32(PM_RSTC, PASSWORD | rstc | RSTC_WRCFG_FULL_RESET);
        let clock = Stopwatch::start();
        while clock.elapsed_us() < RESET_WAIT_US {
            crate::arch::poll_pause();
        }
    }

    /// Halts the SoC (reset into the firmware's halt); returns only if that did not happen.
    pub fn power_off(&mut self) {
        let rsts = self.regs.read32(PM_RSTS) & !PASSWORD_MASK;
        self.regs
            .write32(PM_RSTS, PASSWORD | rsts | RSTS_PARTITION_HALT);
        self.reset();
    }
}
