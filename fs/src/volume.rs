//! A mounted file system of either kind: FAT (read and write) or ext2/3/4 (read-only).
use alloc::vec::Vec;

use crate::ext4::{DeviceMut, Superblock};
use crate::{BlockDevice, DirEntry, Error, Ext4Fs, FatFs, FatType, FileInfo};

/// A mounted volume: what [`Volume::mount`] found on a device.
#[derive(Debug)]
pub enum Volume<D> {
    /// FAT12/16/32: readable and writable (saved environment, boot counter).
    Fat(FatFs<D>),
    /// ext2/ext3/ext4: read-only.
    Ext4(Ext4Fs<D>),
}

impl<D: BlockDevice + 'static> Volume<D> {
    /// Mounts `dev` as FAT, else as ext2/3/4. Gives the device back on failure: with
    /// [`Error::UnknownFs`] (carrying why it is not FAT) when it is neither, or with the ext
    /// reader's error when it has an ext2/3/4 superblock that does not mount.
    pub fn mount(dev: D) -> Result<Self, (D, Error)> {
        let (mut dev, fat_err) = match FatFs::try_mount(dev) {
            Ok(fs) => return Ok(Volume::Fat(fs)),
            Err((dev, Error::NotFat(why))) => (dev, why),
            Err(other) => return Err(other),
        };
        match Superblock::probe(&mut dev) {
            Ok(Some(_)) => Ext4Fs::mount(dev).map(Volume::Ext4),
            Ok(None) => Err((dev, Error::UnknownFs(fat_err))),
            Err(e) => Err((dev, e)),
        }
    }

    /// "FAT12", "FAT16", "FAT32", "ext2", "ext3" or "ext4".
    pub fn kind_name(&self) -> &'static str {
        match self {
            Volume::Fat(fs) => match fs.fat_type() {
                FatType::Fat12 => "FAT12",
                FatType::Fat16 => "FAT16",
                FatType::Fat32 => "FAT32",
            },
            Volume::Ext4(fs) => fs.kind_name(),
        }
    }

    /// The FAT volume, for writes (saveenv, bootcount); `None` on ext2/3/4.
    pub fn fat_mut(&mut self) -> Option<&mut FatFs<D>> {
        match self {
            Volume::Fat(fs) => Some(fs),
            Volume::Ext4(_) => None,
        }
    }

    /// Size and kind of the file or directory at `path`.
    pub fn stat(&mut self, path: &str) -> Result<FileInfo, Error> {
        match self {
            Volume::Fat(fs) => fs.stat(path),
            Volume::Ext4(fs) => fs.stat(path),
        }
    }

    /// Reads the whole file at `path` into `dst` and returns its size; a file larger than
    /// `dst` is refused with [`Error::TooLarge`] before anything is written.
    pub fn read_file_into(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, Error> {
        match self {
            Volume::Fat(fs) => fs.read_file_into(path, dst),
            Volume::Ext4(fs) => fs.read_file_into(path, dst),
        }
    }

    /// Reads the whole file at `path` into a new vector, refusing files over `max` bytes.
    pub fn read_file(&mut self, path: &str, max: usize) -> Result<Vec<u8>, Error> {
        match self {
            Volume::Fat(fs) => fs.read_file(path, max),
            Volume::Ext4(fs) => fs.read_file(path, max),
        }
    }

    /// Lists the directory at `path` (without `.` and `..`).
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, Error> {
        match self {
            Volume::Fat(fs) => fs.read_dir(path),
            Volume::Ext4(fs) => fs.read_dir(path),
        }
    }

    /// The device, mutably (e.g. to shut a disk down before a jump).
    pub fn device_mut(&mut self) -> DeviceMut<'_, D> {
        match self {
            Volume::Fat(fs) => DeviceMut::plain(fs.device_mut()),
            Volume::Ext4(fs) => fs.device_mut(),
        }
    }

    /// Gives the device back.
    pub fn into_inner(self) -> D {
        match self {
            Volume::Fat(fs) => fs.into_inner(),
            Volume::Ext4(fs) => fs.into_inner(),
        }
    }
}
