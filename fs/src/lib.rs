//! Storage layer of kexboot: where the kernel, initrd and config come from on a disk.
//!
//! A [`BlockDevice`] (512-byte sectors) is split into [`Partition`]s by [`partitions`] (GPT, MBR
//! with logical partitions, or a whole-disk "superfloppy"), and a FAT12/16/32 volume on one of them
//! is read by [`FatFs`], which can also overwrite files in place and create small 8.3-named files
//! (the saved environment, a boot counter); an ext2/ext3/ext4 volume is read by [`Ext4Fs`]
//! (through the `ext4-view` crate), and [`Volume`] is either. [`open_boot_fs`] is the firmware's
//! entry point.
//!
//! The FAT code is our own: `embedded-sdmmc` 0.10 refuses FAT12 and `fatfs` does not build
//! `no_std` on stable Rust, so a compact implementation lives in [`fat`].
#![cfg_attr(not(test), no_std)]
extern crate alloc;

pub mod block;
pub mod ext4;
pub mod fat;
pub mod part;
pub mod volume;

mod error;

use alloc::vec::Vec;
pub use block::{BlockDevice, MemDisk, PartitionDevice, MAX_READ_BYTES, SECTOR_SIZE};
pub use error::Error;
pub use ext4::{DeviceMut, Ext4Fs};
pub use fat::{DirEntry, FatFs, FatType, FileInfo};
pub use part::{partitions, Partition, PartitionKind};
pub use volume::Volume;

/// Which partition [`open_boot_fs`] should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartSel<'a> {
    /// 1-based partition number (MBR logical partitions start at 5).
    Number(u32),
    /// GPT partition name, compared exactly.
    Name(&'a str),
}

impl<'a> PartSel<'a> {
    /// Parses a U-Boot style selector: a decimal number, else a GPT partition name.
    pub fn parse(s: &'a str) -> Self {
        match s.parse::<u32>() {
            Ok(n) => PartSel::Number(n),
            Err(_) => PartSel::Name(s),
        }
    }

    fn matches(&self, p: &Partition) -> bool {
        match *self {
            PartSel::Number(n) => p.number == n,
            PartSel::Name(name) => p.name.as_deref() == Some(name),
        }
    }
}

/// What [`scan`] found on one partition: its kind ([`Volume::kind_name`]) or why it does not
/// mount ([`Error::UnknownFs`] for neither FAT nor ext2/3/4).
pub type Scanned = (Partition, Result<&'static str, Error>);

/// Mounts each partition of `dev` in turn and tells what it holds, so a caller can say why it
/// passed one over (`partition 3: unknown file system`). Gives the device back, for
/// [`open_volume`] on the partition chosen; fails only when the partition table cannot be read.
pub fn scan<D: BlockDevice + 'static>(mut dev: D) -> Result<(D, Vec<Scanned>), (D, Error)> {
    let parts = match partitions(&mut dev) {
        Ok(p) => p,
        Err(e) => return Err((dev, e)),
    };
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let (d, found) = probe_partition(dev, &part);
        dev = d;
        if let Err(e) = &found {
            log::debug!("partition {}: {}", part.number, e);
        }
        out.push((part, found));
    }
    Ok((dev, out))
}

/// Mounts `part` of `dev` and gives the device back with the volume's kind or the error.
fn probe_partition<D: BlockDevice + 'static>(
    dev: D,
    part: &Partition,
) -> (D, Result<&'static str, Error>) {
    if let Err(e) = block::check_fits(part, dev.num_sectors()) {
        return (dev, Err(e));
    }
    let pdev = PartitionDevice {
        dev,
        first_lba: part.first_lba,
        num_sectors: part.num_sectors,
    };
    match Volume::mount(pdev) {
        Ok(v) => {
            let kind = v.kind_name();
            (v.into_inner().into_inner(), Ok(kind))
        }
        Err((pdev, e)) => (pdev.into_inner(), Err(e)),
    }
}

/// A partition and its mounted volume, as [`open_volume`] returns them.
pub type OpenedVolume<D> = (Partition, Volume<PartitionDevice<D>>);

/// Mounts the partition `which` of `dev` as FAT or ext2/3/4; gives the device back on failure.
pub fn open_volume<D: BlockDevice + 'static>(
    mut dev: D,
    which: PartSel<'_>,
) -> Result<OpenedVolume<D>, (D, Error)> {
    let parts = match partitions(&mut dev) {
        Ok(p) => p,
        Err(e) => return Err((dev, e)),
    };
    let Some(part) = parts.into_iter().find(|p| which.matches(p)) else {
        return Err((dev, Error::NoSuchPartition));
    };
    if let Err(e) = block::check_fits(&part, dev.num_sectors()) {
        return Err((dev, e));
    }
    let pdev = PartitionDevice {
        dev,
        first_lba: part.first_lba,
        num_sectors: part.num_sectors,
    };
    match Volume::mount(pdev) {
        Ok(v) => Ok((part, v)),
        Err((pdev, e)) => Err((pdev.into_inner(), e)),
    }
}

/// Finds the boot file system on `dev`: the partition named by `which`, or else the first
/// partition that holds a FAT volume, and mounts it.
pub fn open_boot_fs<D: BlockDevice>(
    mut dev: D,
    which: Option<PartSel<'_>>,
) -> Result<(Partition, FatFs<PartitionDevice<D>>), Error> {
    let parts = partitions(&mut dev)?;
    if let Some(sel) = which {
        let part = parts
            .into_iter()
            .find(|p| sel.matches(p))
            .ok_or(Error::NoSuchPartition)?;
        let fs = FatFs::mount(PartitionDevice::new(dev, &part)?)?;
        return Ok((part, fs));
    }
    let mut last_err = Error::NoFatPartition;
    for part in parts {
        if let Err(e) = block::check_fits(&part, dev.num_sectors()) {
            last_err = e;
            continue;
        }
        match FatFs::try_mount(PartitionDevice::new(dev, &part)?) {
            Ok(fs) => return Ok((part, fs)),
            Err((pdev, e)) => {
                log::debug!("partition {}: {}", part.number, e);
                dev = pdev.into_inner();
                if !matches!(e, Error::NotFat(_)) {
                    last_err = e;
                }
            }
        }
    }
    Err(last_err)
}
