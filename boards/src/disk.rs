//! The disks the boot file system may be on: virtio-blk devices (QEMU virt) and the SD card
//! (a Raspberry Pi), each found through the device tree, behind one `BlockDevice`.

use alloc::boxed::Box;
use alloc::vec::Vec;

use kexboot_fs::{BlockDevice, Error};
use kexboot_loader::dt::DtInfo;

use crate::sdhci::{self, SdCard};
use crate::virtio::{self, VirtioBlk};
use crate::{bcm2835_gpio, bcm2835_mbox};

/// One disk, and where it is (for the console).
pub enum Disk {
    /// Boxed: the virtio-blk handle (its queue state) is far larger than the SD card's.
    Virtio(Box<VirtioBlk>),
    /// The card, and its controller's base.
    Sd(SdCard, u64),
}

impl Disk {
    /// The MMIO base of its controller.
    /// The interface U-Boot's commands name it by (`virtio 0`, `mmc 0`).
    pub fn interface(&self) -> &'static str {
        match self {
            Disk::Virtio(_) => "virtio",
            Disk::Sd(..) => "mmc",
        }
    }

    pub fn base(&self) -> u64 {
        match self {
            Disk::Virtio(v) => v.base,
            Disk::Sd(_, base) => *base,
        }
    }
}

impl BlockDevice for Disk {
    fn num_sectors(&self) -> u64 {
        match self {
            Disk::Virtio(d) => d.num_sectors(),
            Disk::Sd(d, _) => d.num_sectors(),
        }
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Error> {
        match self {
            Disk::Virtio(d) => d.read_sectors(lba, buf),
            Disk::Sd(d, _) => d.read_sectors(lba, buf),
        }
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), Error> {
        match self {
            Disk::Virtio(d) => d.write_sectors(lba, buf),
            Disk::Sd(d, _) => d.write_sectors(lba, buf),
        }
    }
}

/// Every disk the tree describes: the virtio-blk devices, then the SD card, through the Arasan
/// SDHCI with the card's pins routed to it (a real Pi 3's firmware leaves them on the sdhost,
/// which kexboot has no driver for; QEMU's `raspi3b` has the card on the SDHCI already).
pub fn probe(info: &DtInfo) -> Vec<Disk> {
    let mut disks: Vec<Disk> = virtio::find_block_devices(&info.virtio_mmio)
        .into_iter()
        .map(|v| Disk::Virtio(Box::new(v)))
        .collect();
    if let Some(dev) = info.device(sdhci::COMPATIBLE) {
        if let Some(gpio) = info.device(bcm2835_gpio::COMPATIBLE) {
            // SAFETY: the tree names this GPIO block; start() mapped it (`board::DRIVEN`).
            unsafe { bcm2835_gpio::route_sd_to_sdhci(gpio.reg.start() as usize) };
        }
        // The real Pi's Arasan reports no base clock: the firmware knows it.
        let emmc_clock_hz = bcm2835_mbox::emmc_clock_hz(info);
        // SAFETY: the tree names this SDHCI; start() mapped it as device memory (it is in
        // `board::DRIVEN`), and nothing else drives it. No card-detect or write-protect line is
        // trusted (the Pi 3's slot wires neither to it), and writes are spaced as a real
        // Arasan needs.
        match unsafe { sdhci::open(dev.reg.start() as usize, emmc_clock_hz, false) } {
            Ok(card) => {
                log::info!(
                    "SD card at {:#x}: {} MiB",
                    dev.reg.start(),
                    card.num_sectors() >> 11
                );
                disks.push(Disk::Sd(card, dev.reg.start()));
            }
            Err(e) => log::warn!("SD card at {:#x}: {e}", dev.reg.start()),
        }
    }
    disks
}
