//! PLACEHOLDER (lead): FAT-only `Volume`, replaced by the fs helper's FAT + ext4 version.
use alloc::vec::Vec;

use crate::{BlockDevice, DirEntry, Error, FatFs, FileInfo};

/// A mounted file system of any kind kexboot reads.
#[derive(Debug)]
pub enum Volume<D> {
    Fat(FatFs<D>),
}

impl<D: BlockDevice> Volume<D> {
    pub fn mount(dev: D) -> Result<Self, (D, Error)> {
        FatFs::try_mount(dev).map(Volume::Fat)
    }
    pub fn kind_name(&self) -> &'static str {
        "FAT"
    }
    pub fn stat(&mut self, path: &str) -> Result<FileInfo, Error> {
        match self {
            Volume::Fat(f) => f.stat(path),
        }
    }
    pub fn read_file_into(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, Error> {
        match self {
            Volume::Fat(f) => f.read_file_into(path, dst),
        }
    }
    pub fn read_file(&mut self, path: &str, max: usize) -> Result<Vec<u8>, Error> {
        match self {
            Volume::Fat(f) => f.read_file(path, max),
        }
    }
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, Error> {
        match self {
            Volume::Fat(f) => f.read_dir(path),
        }
    }
    pub fn fat_mut(&mut self) -> Option<&mut FatFs<D>> {
        match self {
            Volume::Fat(f) => Some(f),
        }
    }
    pub fn device_mut(&mut self) -> &mut D {
        match self {
            Volume::Fat(f) => f.device_mut(),
        }
    }
    pub fn into_inner(self) -> D {
        match self {
            Volume::Fat(f) => f.into_inner(),
        }
    }
}
