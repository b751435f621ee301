//! The BCM2835/2837 GPIO block (`brcm,bcm2835-gpio`, 0x3f200000 on the Pi 3), for the one thing
//! kexboot needs of it: which SD controller the SD card's pins (GPIO 48-53) reach.
//! BCM2835 ARM Peripherals §6: GPFSELn hold 3 function bits per pin, ten pins a register;
//! pulls are set with GPPUD and clocked into pins with GPPUDCLKn.

use embedded_hal::delay::DelayNs;
use kexboot_sd::regs::Regs;

use crate::mmio::Mmio;
use crate::timer::Delay;

/// Size of the GPIO register block.
const REG_LEN: usize = 0xb4;
/// GPFSEL0; GPFSEL4 holds pins 40-49, GPFSEL5 pins 50-59.
const GPFSEL0: usize = 0x00;
const GPPUD: usize = 0x94;
const GPPUDCLK1: usize = 0x9c;
/// Function select ALT3: pins 48-53 to the Arasan SDHCI (ALT0 would be the sdhost).
const FSEL_ALT3: u32 = 0b111;
const FSEL_MASK: u32 = 0b111;
/// GPPUD value for pull-up.
const PUD_UP: u32 = 2;
/// The SD card's pins: 48 = CLK, 49 = CMD, 50-53 = DAT0-3.
const SD_PINS: core::ops::RangeInclusive<usize> = 48..=53;
/// CMD and DAT lines want pull-ups (Linux's `bcm2835-rpi.dtsi` `emmc_gpio48`: no pull on CLK).
const SD_PULLED: core::ops::RangeInclusive<usize> = 49..=53;
/// The datasheet's wait around GPPUDCLK: 150 core cycles; 1 µs covers it at any core clock.
const PUD_SETTLE_NS: u32 = 1_000;

/// Routes the SD card's pins to the Arasan SDHCI, with pull-ups on CMD and DAT. On a real Pi 3
/// the firmware leaves them on the sdhost (ALT0); QEMU's `raspi3b` already has the card on the
/// SDHCI at reset and moves it only for ALT0 or input, so this changes nothing there (QEMU does
/// not model pulls).
///
/// # Safety
/// `base` must be the GPIO block from the device tree, Device-mapped, used by nothing else.
pub unsafe fn route_sd_to_sdhci(base: usize) {
    // SAFETY: the caller vouches for `base`.
    let mut gpio = unsafe { Mmio::new(base, REG_LEN) };
    for pin in SD_PINS {
        let (reg, shift) = (GPFSEL0 + pin / 10 * 4, (pin % 10) * 3);
        let v = gpio.read32(reg) & !(FSEL_MASK << shift);
        gpio.write32(reg, v | FSEL_ALT3 << shift);
    }
    let mask = SD_PULLED.fold(0u32, |m, pin| m | 1 << (pin - 32));
    gpio.write32(GPPUD, PUD_UP);
    Delay.delay_ns(PUD_SETTLE_NS);
    gpio.write32(GPPUDCLK1, mask);
    Delay.delay_ns(PUD_SETTLE_NS);
    gpio.write32(GPPUD, 0);
    gpio.write32(GPPUDCLK1, 0);
}

/// The DT `compatible` of the block.
pub const COMPATIBLE: &str = "brcm,bcm2835-gpio";
