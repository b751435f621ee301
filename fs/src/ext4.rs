//! ext2, ext3 and ext4, read-only, through the `ext4-view` crate.
//!
//! The crate does the file system work: extents and block maps, htree and linear directories,
//! 64-bit block numbers, metadata checksums (superblock, group descriptors, inodes, extent
//! blocks, directory blocks) where the volume has them, journal replay in memory, and symlinks
//! (relative and absolute, at most 40 deep). This module adapts a [`BlockDevice`] to its byte
//! reader, checks the superblock against the device before the crate sizes anything from it,
//! and maps its errors onto [`Error`].
//!
//! The crate keeps the reader in a `Box<dyn Ext4Read>` (hence `D: 'static`); the device is
//! shared with it through an `Rc<RefCell<..>>` so that [`Ext4Fs::into_inner`] can give it back.
use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{RefCell, RefMut};
use core::ops::{Deref, DerefMut};

use ext4_view::{Ext4, Ext4Error, Ext4Read};

use crate::block::{MAX_READ_BYTES, SECTOR_SIZE};
use crate::{BlockDevice, DirEntry, Error, FileInfo};

/// Byte offset of the superblock.
const SUPERBLOCK_OFFSET: u64 = 1024;
const SUPERBLOCK_SIZE: usize = 1024;
const EXT4_MAGIC: u16 = 0xEF53;
/// ext4 allows block sizes of 1 KiB << 0..=6 (64 KiB).
const MAX_LOG_BLOCK_SIZE: u32 = 6;
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_MMP: u32 = 0x100;
const INCOMPAT_FLEX_BG: u32 = 0x200;
const INCOMPAT_INLINE_DATA: u32 = 0x8000;
const RO_COMPAT_HUGE_FILE: u32 = 0x8;
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_DIR_NLINK: u32 = 0x20;
const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
/// Features only ext4 has: a volume with any of them is called "ext4".
const EXT4_INCOMPAT: u32 =
    INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_MMP | INCOMPAT_FLEX_BG | INCOMPAT_INLINE_DATA;
const EXT4_RO_COMPAT: u32 = RO_COMPAT_HUGE_FILE
    | RO_COMPAT_GDT_CSUM
    | RO_COMPAT_DIR_NLINK
    | RO_COMPAT_EXTRA_ISIZE
    | RO_COMPAT_METADATA_CSUM;
/// Bound on the entries [`Ext4Fs::read_dir`] returns (a listing, not a lookup, so a bound that
/// no boot directory reaches is fine).
pub const MAX_DIR_ENTRIES: usize = 1 << 16;
/// Longest path accepted, and longest symlink target (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;
/// Symlinks followed in one path before giving up (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;
/// Path components looked at in one resolution (symlink targets add theirs).
const MAX_COMPONENTS: usize = 4096;

/// What the superblock says, checked against the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Superblock {
    /// "ext2", "ext3" or "ext4", from the feature flags.
    pub kind: &'static str,
    pub block_size: u64,
    pub blocks: u64,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Superblock {
    /// Reads the superblock of `dev` and checks its magic, block size and that the blocks it
    /// claims lie inside the device. `Ok(None)`: no ext2/3/4 magic.
    pub(crate) fn probe<D: BlockDevice + ?Sized>(dev: &mut D) -> Result<Option<Self>, Error> {
        let dev_bytes = dev.num_sectors().saturating_mul(SECTOR_SIZE as u64);
        if dev_bytes < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64 {
            return Ok(None);
        }
        let mut sb = [0u8; SUPERBLOCK_SIZE];
        read_bytes(dev, SUPERBLOCK_OFFSET, &mut sb)?;
        if le16(&sb, 56) != EXT4_MAGIC {
            return Ok(None);
        }
        let log = le32(&sb, 24);
        if log > MAX_LOG_BLOCK_SIZE {
            return Err(Error::Ext4Corrupt(format!(
                "block size 1 KiB << {log} above 64 KiB"
            )));
        }
        let block_size = 1024u64 << log;
        let (compat, incompat, ro) = (le32(&sb, 92), le32(&sb, 96), le32(&sb, 100));
        // The high half counts whether or not the volume is 64-bit: `ext4-view` reads it so.
        let blocks = u64::from(le32(&sb, 0x150)) << 32 | u64::from(le32(&sb, 4));
        // Linux's bounds (a group's block bitmap is one block); they also bound the group
        // descriptors the crate allocates to one per 8 blocks of the device.
        let per_group = u64::from(le32(&sb, 32));
        if per_group < 8 || per_group > 8 * block_size || per_group % 8 != 0 {
            return Err(Error::Ext4Corrupt(format!(
                "{per_group} blocks per group (must be a multiple of 8 up to {})",
                8 * block_size
            )));
        }
        if blocks.saturating_mul(block_size) > dev_bytes {
            return Err(Error::Ext4Corrupt(format!(
                "the superblock claims {blocks} blocks of {block_size} bytes, more than the \
                 device's {dev_bytes} bytes"
            )));
        }
        let kind = if incompat & EXT4_INCOMPAT != 0 || ro & EXT4_RO_COMPAT != 0 {
            "ext4"
        } else if compat & COMPAT_HAS_JOURNAL != 0 {
            "ext3"
        } else {
            "ext2"
        };
        Ok(Some(Superblock {
            kind,
            block_size,
            blocks,
        }))
    }
}

/// Reads `dst.len()` bytes at byte offset `start`: whole aligned sectors straight into `dst` (at
/// most [`MAX_READ_BYTES`] a request), a partial first or last sector through a bounce buffer.
pub(crate) fn read_bytes<D: BlockDevice + ?Sized>(
    dev: &mut D,
    start: u64,
    dst: &mut [u8],
) -> Result<(), Error> {
    let sector = SECTOR_SIZE as u64;
    let mut done = 0usize;
    while done < dst.len() {
        let pos = start
            .checked_add(done as u64)
            .ok_or(Error::Corrupt("byte offset overflows"))?;
        let (lba, off) = (pos / sector, (pos % sector) as usize);
        let left = dst.len() - done;
        if off == 0 && left >= SECTOR_SIZE {
            let n = (left / SECTOR_SIZE * SECTOR_SIZE).min(MAX_READ_BYTES);
            dev.read_sectors(lba, &mut dst[done..done + n])?;
            done += n;
        } else {
            let mut bounce = [0u8; SECTOR_SIZE];
            dev.read_sectors(lba, &mut bounce)?;
            let n = (SECTOR_SIZE - off).min(left);
            dst[done..done + n].copy_from_slice(&bounce[off..off + n]);
            done += n;
        }
    }
    Ok(())
}

/// The device as the crate reads it; `None` once [`Ext4Fs::into_inner`] took it.
type Shared<D> = Rc<RefCell<Option<D>>>;

/// The crate's reader: byte reads on the shared device.
struct DevReader<D>(Shared<D>);

impl<D: BlockDevice> Ext4Read for DevReader<D> {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn core::error::Error + Send + Sync + 'static>> {
        let mut dev = self
            .0
            .try_borrow_mut()
            .map_err(|_| Box::new(Error::Corrupt("ext4 device borrowed twice")))?;
        let dev = dev
            .as_mut()
            .ok_or(Box::new(Error::Corrupt("ext4 device already given back")))?;
        read_bytes(dev, start_byte, dst).map_err(|e| Box::new(e) as _)
    }
}

/// Turns the crate's error into ours; device errors come back as they were.
fn from_ext4(e: Ext4Error) -> Error {
    match e {
        Ext4Error::NotFound => Error::NotFound,
        Ext4Error::IsADirectory | Ext4Error::IsASpecialFile => Error::NotAFile,
        Ext4Error::NotADirectory => Error::NotADirectory,
        Ext4Error::TooManySymlinks => Error::SymlinkLoop,
        Ext4Error::NotAbsolute | Ext4Error::MalformedPath => Error::BadPath("malformed path"),
        Ext4Error::PathTooLong => Error::BadPath("path longer than 4096 bytes"),
        Ext4Error::NotUtf8 => Error::BadPath("not UTF-8"),
        Ext4Error::Io(inner) => match inner.downcast_ref::<Error>() {
            Some(e) => e.clone(),
            None => Error::Transport(inner.to_string()),
        },
        Ext4Error::Encrypted => Error::Unsupported("encrypted file".to_owned()),
        Ext4Error::Incompatible(i) => Error::Unsupported(i.to_string()),
        Ext4Error::Corrupt(c) => Error::Ext4Corrupt(c.to_string()),
        other => Error::Ext4Corrupt(other.to_string()),
    }
}

/// `path` as the crate wants it: absolute, '/'-separated, at most [`MAX_PATH`] bytes.
fn abs_path(path: &str) -> Result<String, Error> {
    if path.len() >= MAX_PATH {
        return Err(Error::BadPath("path longer than 4096 bytes"));
    }
    if path.contains('\0') {
        return Err(Error::BadPath("NUL byte in path"));
    }
    let mut p = String::with_capacity(path.len() + 1);
    p.push('/');
    p.push_str(path.trim_start_matches('/'));
    Ok(p)
}

/// `/` followed by `parts` joined with `/`.
fn join(parts: &[String]) -> String {
    let mut p = String::from("/");
    p.push_str(&parts.join("/"));
    p
}

/// A mounted ext2/ext3/ext4 volume on block device `D`, read-only.
pub struct Ext4Fs<D> {
    fs: Ext4,
    dev: Shared<D>,
    sb: Superblock,
}

impl<D> core::fmt::Debug for Ext4Fs<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ext4Fs").field("sb", &self.sb).finish()
    }
}

/// Mutable access to the device under an [`Ext4Fs`] (or a [`crate::Volume`]): derefs to `D`.
pub struct DeviceMut<'a, D>(DeviceRef<'a, D>);

enum DeviceRef<'a, D> {
    Plain(&'a mut D),
    Shared(RefMut<'a, D>),
}

impl<'a, D> DeviceMut<'a, D> {
    pub(crate) fn plain(d: &'a mut D) -> Self {
        DeviceMut(DeviceRef::Plain(d))
    }
}

impl<D> Deref for DeviceMut<'_, D> {
    type Target = D;
    fn deref(&self) -> &D {
        match &self.0 {
            DeviceRef::Plain(d) => d,
            DeviceRef::Shared(d) => d,
        }
    }
}

impl<D> DerefMut for DeviceMut<'_, D> {
    fn deref_mut(&mut self) -> &mut D {
        match &mut self.0 {
            DeviceRef::Plain(d) => d,
            DeviceRef::Shared(d) => d,
        }
    }
}

/// Invariant of [`Ext4Fs`]: the device is in the cell from `mount` until `into_inner`.
const DEVICE_PRESENT: &str = "Ext4Fs holds its device until into_inner";

impl<D: BlockDevice + 'static> Ext4Fs<D> {
    /// Checks the superblock of `dev` and mounts the volume (superblock and group descriptor
    /// checksums verified, the journal read). Gives the device back on failure; a device
    /// without the ext2/3/4 magic fails with [`Error::UnknownFs`].
    pub fn mount(mut dev: D) -> Result<Self, (D, Error)> {
        let sb = match Superblock::probe(&mut dev) {
            Ok(Some(sb)) => sb,
            Ok(None) => return Err((dev, Error::UnknownFs("no ext2/3/4 superblock"))),
            Err(e) => return Err((dev, e)),
        };
        let shared: Shared<D> = Rc::new(RefCell::new(Some(dev)));
        match Ext4::load(Box::new(DevReader(shared.clone()))) {
            Ok(fs) => Ok(Ext4Fs {
                fs,
                dev: shared,
                sb,
            }),
            Err(e) => {
                let dev = shared.borrow_mut().take().expect(DEVICE_PRESENT);
                Err((dev, from_ext4(e)))
            }
        }
    }

    /// "ext2", "ext3" or "ext4", as the superblock's feature flags say.
    pub fn kind_name(&self) -> &'static str {
        self.sb.kind
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.sb.block_size
    }

    /// The device, mutably (e.g. to shut a disk down before a jump).
    pub fn device_mut(&mut self) -> DeviceMut<'_, D> {
        DeviceMut(DeviceRef::Shared(RefMut::map(self.dev.borrow_mut(), |d| {
            d.as_mut().expect(DEVICE_PRESENT)
        })))
    }

    /// Gives the device back.
    pub fn into_inner(self) -> D {
        let Ext4Fs { fs, dev, .. } = self;
        drop(fs);
        let d = dev.borrow_mut().take();
        d.expect(DEVICE_PRESENT)
    }

    /// `path` with every symlink resolved, as an absolute path of real directories and a
    /// last component that is not a symlink.
    ///
    /// Done here rather than by the crate because the crate reads a symlink's target into a
    /// buffer of the size the inode claims; here each symlink's size is checked first.
    fn resolve(&mut self, path: &str) -> Result<String, Error> {
        let path = abs_path(path)?;
        // Components still to walk, last first.
        let mut todo: Vec<String> = path
            .split('/')
            .rev()
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let (mut links, mut steps) = (0u32, 0usize);
        while let Some(comp) = todo.pop() {
            steps += 1;
            if steps > MAX_COMPONENTS {
                return Err(Error::BadPath("more than 4096 components after symlinks"));
            }
            match comp.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(comp);
            let here = join(&done);
            let m = self.fs.symlink_metadata(here.as_str()).map_err(from_ext4)?;
            if !m.is_symlink() {
                continue;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Error::SymlinkLoop);
            }
            if m.len() >= MAX_PATH as u64 {
                return Err(Error::Ext4Corrupt(format!(
                    "symlink {here} claims a {}-byte target",
                    m.len()
                )));
            }
            let target = self.fs.read_link(here.as_str()).map_err(from_ext4)?;
            let target = target.to_str().map_err(|_| Error::BadPath("not UTF-8"))?;
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            let before = todo.len();
            todo.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(String::from),
            );
            todo[before..].reverse();
            if todo.len() > MAX_COMPONENTS {
                return Err(Error::BadPath("more than 4096 components after symlinks"));
            }
        }
        Ok(join(&done))
    }

    /// Size and kind of what `path` names, symlinks followed.
    pub fn stat(&mut self, path: &str) -> Result<FileInfo, Error> {
        let path = self.resolve(path)?;
        let m = self.fs.metadata(path.as_str()).map_err(from_ext4)?;
        Ok(FileInfo {
            size: if m.is_dir() { 0 } else { m.len() },
            is_dir: m.is_dir(),
        })
    }

    /// Reads the whole file at `path` (symlinks followed) into `dst` and returns its size. A
    /// file larger than `dst` is refused with [`Error::TooLarge`] before anything is written.
    pub fn read_file_into(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, Error> {
        let path = self.resolve(path)?;
        let mut file = self.fs.open(path.as_str()).map_err(from_ext4)?;
        let size = file.metadata().len();
        let len = usize::try_from(size)
            .ok()
            .filter(|&l| l <= dst.len())
            .ok_or(Error::TooLarge {
                size,
                capacity: dst.len() as u64,
            })?;
        let mut done = 0;
        while done < len {
            match file.read_bytes(&mut dst[done..len]).map_err(from_ext4)? {
                0 => return Err(Error::Corrupt("ext4 file ended before its size")),
                n => done += n,
            }
        }
        Ok(len)
    }

    /// Reads the whole file at `path` into a new vector, refusing files over `max` bytes.
    pub fn read_file(&mut self, path: &str, max: usize) -> Result<Vec<u8>, Error> {
        let info = self.stat(path)?;
        if info.is_dir {
            return Err(Error::NotAFile);
        }
        if info.size > max as u64 {
            return Err(Error::TooLarge {
                size: info.size,
                capacity: max as u64,
            });
        }
        let mut buf = alloc::vec![0u8; info.size as usize];
        let n = self.read_file_into(path, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Lists the directory at `path` (without `.` and `..`; at most [`MAX_DIR_ENTRIES`]).
    /// Symlinks are listed as files of their link's length.
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, Error> {
        let path = self.resolve(path)?;
        let iter = self.fs.read_dir(path.as_str()).map_err(from_ext4)?;
        let mut out = Vec::new();
        for e in iter {
            let e = e.map_err(from_ext4)?;
            let name = e.file_name();
            let name = match name.as_str() {
                Ok(".") | Ok("..") => continue,
                Ok(s) => s.to_owned(),
                Err(_) => name.display().to_string(),
            };
            if out.len() >= MAX_DIR_ENTRIES {
                return Err(Error::Corrupt("directory larger than 65536 entries"));
            }
            let m = e.metadata().map_err(from_ext4)?;
            out.push(DirEntry {
                name,
                size: if m.is_dir() { 0 } else { m.len() },
                is_dir: m.is_dir(),
            });
        }
        Ok(out)
    }
}
