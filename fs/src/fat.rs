//! FAT12/FAT16/FAT32 with VFAT long file names and case-insensitive lookup; writing (in-place
//! overwrites and creating 8.3-named files) lives in the `write` submodule.
//!
//! Every cluster chain walk is bounded by the volume's cluster count (directories by the FAT
//! limit of 65536 entries) and checked for loops, and a file's chain is walked completely before
//! the first byte lands in the caller's buffer. Runs of contiguous clusters are read with one
//! device request each (at most [`MAX_READ_BYTES`]).
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use crate::block::{MAX_READ_BYTES, SECTOR_SIZE};
use crate::{BlockDevice, Error};

mod write;

/// FAT variant, decided by the cluster count as the Microsoft specification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

/// What [`FatFs::stat`] says about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// File size in bytes (0 for directories).
    pub size: u64,
    /// The path names a directory.
    pub is_dir: bool,
}

/// One entry of [`FatFs::read_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Long name if there is a valid one, else the 8.3 name.
    pub name: String,
    /// File size in bytes (0 for directories).
    pub size: u64,
    /// The entry is a directory.
    pub is_dir: bool,
}

const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_LFN: u8 = 0x0F;
const ATTR_LFN_MASK: u8 = 0x3F;
const DIR_ENTRY_SIZE: usize = 32;
/// The FAT specification caps a directory at 65536 entries.
const DIR_MAX_BYTES: u64 = 65536 * DIR_ENTRY_SIZE as u64;
const LFN_CHARS_PER_ENTRY: usize = 13;
const LFN_MAX_ENTRIES: u8 = 20;
const MAX_CLUSTER_BYTES: u64 = 64 * 1024;
const FAT12_MAX_CLUSTERS: u32 = 4084;
const FAT16_MAX_CLUSTERS: u32 = 65524;
const FAT32_MAX_CLUSTERS: u32 = 0x0FFF_FFF5;
/// Directories whose parsed entries are kept (most recently used first).
const DIR_CACHE_DIRS: usize = 4;
/// Larger directories are not kept (each entry costs its names).
const DIR_CACHE_MAX_ENTRIES: usize = 4096;
/// Sectors of the FAT read at once into the FAT cache: at first, and after a jump elsewhere in
/// the FAT (a directory lookup reads little).
const FAT_WINDOW_SECTORS: u64 = 64;
/// A walk that runs on past its window (a big file's chain) reads the next window four times
/// larger, up to this: a 27 MB kernel's chain on a 512-byte-cluster FAT32 (213 KiB of FAT) is
/// then 3 requests instead of 7 (every request is a round trip to the device).
const FAT_WINDOW_MAX_SECTORS: u64 = 2048;
const SECTOR: u64 = SECTOR_SIZE as u64;

/// A validated volume geometry, in 512-byte device sectors.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    fat_type: FatType,
    cluster_sectors: u64,
    /// The active FAT (the one read).
    fat_lba: u64,
    /// The first FAT; copy `n` starts `n * fat_sectors` after it.
    first_fat_lba: u64,
    fats: u64,
    fat_sectors: u64,
    /// FAT32 FSInfo sector, if the BPB names one.
    fsinfo_lba: Option<u64>,
    root_lba: u64,
    root_sectors: u64,
    root_cluster: u32,
    data_lba: u64,
    cluster_count: u32,
    /// Sectors the boot sector claims (device sectors).
    claimed_sectors: u64,
    /// Sectors of the device: fewer than claimed when a volume overruns its partition.
    dev_sectors: u64,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Layout {
    /// Validates the BPB in boot sector `bs` of a device with `dev_sectors` sectors.
    pub(crate) fn parse(bs: &[u8; SECTOR_SIZE], dev_sectors: u64) -> Result<Layout, Error> {
        if bs[0] != 0xEB && bs[0] != 0xE9 {
            return Err(Error::NotFat("no jump instruction at offset 0"));
        }
        let bps = u64::from(le16(bs, 11));
        if !(512..=4096).contains(&bps) || !bps.is_power_of_two() {
            return Err(Error::NotFat(
                "bytes per sector not a power of two in 512..=4096",
            ));
        }
        let spc = u64::from(bs[13]);
        if !spc.is_power_of_two() {
            return Err(Error::NotFat("sectors per cluster not a power of two"));
        }
        if bps * spc > MAX_CLUSTER_BYTES {
            return Err(Error::NotFat("cluster larger than 64 KiB"));
        }
        let reserved = u64::from(le16(bs, 14));
        let nfats = u64::from(bs[16]);
        let root_entries = u64::from(le16(bs, 17));
        let media = bs[21];
        let fatsz16 = u64::from(le16(bs, 22));
        if reserved == 0 {
            return Err(Error::NotFat("reserved sector count is zero"));
        }
        if nfats == 0 {
            return Err(Error::NotFat("number of FATs is zero"));
        }
        if media != 0xF0 && media < 0xF8 {
            return Err(Error::NotFat("invalid media descriptor"));
        }
        let total = match le16(bs, 19) {
            0 => u64::from(le32(bs, 32)),
            n => u64::from(n),
        };
        let fatsz = if fatsz16 != 0 {
            fatsz16
        } else {
            u64::from(le32(bs, 36))
        };
        if total == 0 || fatsz == 0 {
            return Err(Error::NotFat("total sector count or FAT size is zero"));
        }
        let root_secs = (root_entries * DIR_ENTRY_SIZE as u64).div_ceil(bps);
        // All terms are < 2^32 * 256, so no overflow in u64.
        let meta = reserved + nfats * fatsz + root_secs;
        if meta >= total {
            return Err(Error::NotFat(
                "FATs and root directory fill the whole volume",
            ));
        }
        let clusters = (total - meta) / spc;
        if clusters == 0 || clusters > u64::from(FAT32_MAX_CLUSTERS) {
            return Err(Error::NotFat("cluster count out of range"));
        }
        let clusters = clusters as u32;
        let fat_type = if clusters <= FAT12_MAX_CLUSTERS {
            FatType::Fat12
        } else if clusters <= FAT16_MAX_CLUSTERS {
            FatType::Fat16
        } else {
            FatType::Fat32
        };
        let mut active_fat = 0;
        let mut root_cluster = 0;
        let mut fsinfo = None;
        if fat_type == FatType::Fat32 {
            if fatsz16 != 0 || root_entries != 0 {
                return Err(Error::NotFat("FAT32 cluster count but a FAT12/16 BPB"));
            }
            if le16(bs, 42) != 0 {
                return Err(Error::NotFat("unknown FAT32 version"));
            }
            let ext_flags = le16(bs, 40);
            if ext_flags & 0x80 != 0 {
                active_fat = u64::from(ext_flags & 0x0F);
                if active_fat >= nfats {
                    return Err(Error::NotFat("active FAT number beyond the FAT count"));
                }
            }
            root_cluster = le32(bs, 44);
            if root_cluster < 2 || root_cluster > clusters + 1 {
                return Err(Error::NotFat("root directory cluster out of range"));
            }
            let sector = u64::from(le16(bs, 48));
            if sector != 0 && sector < reserved {
                fsinfo = Some(sector);
            }
        } else if fatsz16 == 0 || root_entries == 0 {
            return Err(Error::NotFat("FAT12/16 cluster count but a FAT32 BPB"));
        }
        let bits: u64 = match fat_type {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        };
        if fatsz * bps * 8 < (u64::from(clusters) + 2) * bits {
            return Err(Error::NotFat("FAT too small for the cluster count"));
        }
        let per = bps / SECTOR;
        // A volume larger than its device (`mkfs.vfat --offset` without a size makes them) is
        // kept as long as its FATs and root directory fit: the clusters past the end are
        // neither read successfully nor ever allocated (see `Layout::max_usable_cluster`).
        if meta * per >= dev_sectors {
            return Err(Error::NotFat(
                "FATs and root directory extend past the end of the device",
            ));
        }
        Ok(Layout {
            fat_type,
            cluster_sectors: spc * per,
            fat_lba: (reserved + active_fat * fatsz) * per,
            first_fat_lba: reserved * per,
            fats: nfats,
            fat_sectors: fatsz * per,
            fsinfo_lba: fsinfo.map(|s| s * per),
            root_lba: (reserved + nfats * fatsz) * per,
            root_sectors: root_secs * per,
            root_cluster,
            data_lba: meta * per,
            cluster_count: clusters,
            claimed_sectors: total * per,
            dev_sectors,
        })
    }

    /// The volume claims more sectors than its device has.
    pub(crate) fn overruns_device(&self) -> bool {
        self.claimed_sectors > self.dev_sectors
    }

    /// The last cluster that lies wholly inside the device (1 if none does): the bound for
    /// allocation and writes.
    fn max_usable_cluster(&self) -> u32 {
        let inside = self.dev_sectors.saturating_sub(self.data_lba) / self.cluster_sectors;
        let last = inside.saturating_add(1).min(u64::from(self.max_cluster()));
        last as u32
    }

    fn cluster_bytes(&self) -> u64 {
        self.cluster_sectors * SECTOR
    }

    fn max_cluster(&self) -> u32 {
        self.cluster_count + 1
    }

    fn cluster_lba(&self, c: u32) -> u64 {
        self.data_lba + u64::from(c - 2) * self.cluster_sectors
    }
}

/// What a path resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// The root directory.
    Root,
    /// A subdirectory starting at this cluster.
    Dir(u32),
    /// A file.
    File { cluster: u32, size: u32 },
}

/// A parsed directory entry.
#[derive(Debug, Clone)]
struct RawEntry {
    name: String,
    short: String,
    node: Node,
}

/// A mounted FAT volume on block device `D`.
#[derive(Debug)]
pub struct FatFs<D> {
    dev: D,
    layout: Layout,
    fat_cache: Vec<u8>,
    /// The FAT sectors `fat_cache` holds: (first, count), relative to the FAT's start.
    fat_window: Option<(u64, u64)>,
    /// Parsed entries of the last directories read, keyed by the directory's node; emptied by
    /// every write and by [`FatFs::device_mut`].
    dir_cache: Vec<(Node, Rc<Vec<RawEntry>>)>,
}

impl<D: BlockDevice> FatFs<D> {
    /// Validates the boot sector of `dev` and mounts the volume.
    pub fn mount(dev: D) -> Result<Self, Error> {
        Self::try_mount(dev).map_err(|(_, e)| e)
    }

    /// Like [`FatFs::mount`], but gives the device back on failure.
    pub fn try_mount(mut dev: D) -> Result<Self, (D, Error)> {
        let n = dev.num_sectors();
        if n == 0 {
            return Err((dev, Error::NotFat("empty device")));
        }
        let mut bs = [0u8; SECTOR_SIZE];
        if let Err(e) = dev.read_sectors(0, &mut bs) {
            return Err((dev, e));
        }
        match Layout::parse(&bs, n) {
            Ok(layout) => {
                if layout.overruns_device() {
                    log::warn!(
                        "FAT volume claims {} sectors but its device (partition) has {}: \
                         reads past the end fail, writes stay inside",
                        layout.claimed_sectors,
                        layout.dev_sectors
                    );
                }
                Ok(FatFs {
                    dev,
                    layout,
                    fat_cache: Vec::new(),
                    fat_window: None,
                    dir_cache: Vec::new(),
                })
            }
            Err(e) => Err((dev, e)),
        }
    }

    /// The FAT variant.
    pub fn fat_type(&self) -> FatType {
        self.layout.fat_type
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        self.layout.cluster_bytes()
    }

    /// The device, e.g. to look at a test double's read log.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, mutably (e.g. to shut a disk down before a jump). Forgets the cached
    /// directories, since the caller may write.
    pub fn device_mut(&mut self) -> &mut D {
        self.dir_cache.clear();
        &mut self.dev
    }

    /// Writes sectors, forgetting the cached directories first (the only way this module
    /// writes).
    fn dev_write(&mut self, lba: u64, buf: &[u8]) -> Result<(), Error> {
        self.dir_cache.clear();
        self.dev.write_sectors(lba, buf)
    }

    /// The parsed entries of directory `node`, from the cache if it holds them.
    fn cached_dir(&mut self, node: Node) -> Result<Rc<Vec<RawEntry>>, Error> {
        if let Some(i) = self.dir_cache.iter().position(|(n, _)| *n == node) {
            let hit = self.dir_cache.remove(i);
            let entries = hit.1.clone();
            self.dir_cache.insert(0, hit);
            return Ok(entries);
        }
        let entries = Rc::new(self.dir_entries(node)?);
        if entries.len() <= DIR_CACHE_MAX_ENTRIES {
            self.dir_cache.insert(0, (node, entries.clone()));
            self.dir_cache.truncate(DIR_CACHE_DIRS);
        }
        Ok(entries)
    }

    /// Gives the device back.
    pub fn into_inner(self) -> D {
        self.dev
    }

    /// Size and kind of the file or directory at `path`.
    pub fn stat(&mut self, path: &str) -> Result<FileInfo, Error> {
        Ok(match self.lookup(path)? {
            Node::File { size, .. } => FileInfo {
                size: u64::from(size),
                is_dir: false,
            },
            Node::Root | Node::Dir(_) => FileInfo {
                size: 0,
                is_dir: true,
            },
        })
    }

    /// Reads the whole file at `path` into `dst` and returns its size. A file larger than `dst`
    /// is refused with [`Error::TooLarge`] before anything is written.
    pub fn read_file_into(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, Error> {
        match self.lookup(path)? {
            Node::File { cluster, size } => self.read_data(cluster, size, dst),
            _ => Err(Error::NotAFile),
        }
    }

    /// Reads the whole file at `path` into a new vector, refusing files over `max` bytes.
    pub fn read_file(&mut self, path: &str, max: usize) -> Result<Vec<u8>, Error> {
        match self.lookup(path)? {
            Node::File { cluster, size } => {
                let len = size as usize;
                if len > max {
                    return Err(Error::TooLarge {
                        size: u64::from(size),
                        capacity: max as u64,
                    });
                }
                let mut buf = alloc::vec![0u8; len];
                self.read_data(cluster, size, &mut buf)?;
                Ok(buf)
            }
            _ => Err(Error::NotAFile),
        }
    }

    /// Lists the directory at `path` (without `.` and `..`).
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, Error> {
        let node = self.lookup(path)?;
        let entries = self.cached_dir(node)?;
        Ok(entries
            .iter()
            .filter(|e| e.short != "." && e.short != "..")
            .map(|e| match e.node {
                Node::File { size, .. } => DirEntry {
                    name: e.name.clone(),
                    size: u64::from(size),
                    is_dir: false,
                },
                _ => DirEntry {
                    name: e.name.clone(),
                    size: 0,
                    is_dir: true,
                },
            })
            .collect())
    }

    /// Resolves `path` ('/' or '\\' separated, case-insensitive, `.` and `..` understood).
    fn lookup(&mut self, path: &str) -> Result<Node, Error> {
        let mut parents = Vec::new();
        let mut cur = Node::Root;
        for comp in path.split(['/', '\\']) {
            match comp {
                "" | "." => continue,
                ".." => {
                    cur = parents.pop().unwrap_or(Node::Root);
                    continue;
                }
                _ => {}
            }
            if let Node::File { .. } = cur {
                return Err(Error::NotADirectory);
            }
            let entries = self.cached_dir(cur)?;
            let found = entries
                .iter()
                .find(|e| eq_ignore_case(&e.name, comp) || eq_ignore_case(&e.short, comp))
                .ok_or(Error::NotFound)?;
            parents.push(cur);
            cur = found.node;
        }
        Ok(cur)
    }

    /// Reads and parses a whole directory.
    fn dir_entries(&mut self, node: Node) -> Result<Vec<RawEntry>, Error> {
        let l = &self.layout;
        let bytes = match node {
            Node::Root if l.fat_type != FatType::Fat32 => {
                let (lba, sectors) = (l.root_lba, l.root_sectors);
                let mut buf = alloc::vec![0u8; (sectors * SECTOR) as usize];
                self.read_run(lba, &mut buf)?;
                buf
            }
            Node::Root | Node::Dir(_) => {
                let start = match node {
                    Node::Dir(c) if c != 0 => c,
                    _ => l.root_cluster,
                };
                let limit = DIR_MAX_BYTES.div_ceil(l.cluster_bytes());
                let runs = self.chain(start, None, limit)?;
                let total: u64 = runs.iter().map(|r| u64::from(r.1)).sum();
                let mut buf = alloc::vec![0u8; (total * self.layout.cluster_bytes()) as usize];
                self.read_runs(&runs, &mut buf)?;
                buf
            }
            Node::File { .. } => return Err(Error::NotADirectory),
        };
        Ok(parse_dir(&bytes, self.layout.fat_type == FatType::Fat32))
    }

    /// Reads file data of `size` bytes starting at `cluster` into `dst`.
    fn read_data(&mut self, cluster: u32, size: u32, dst: &mut [u8]) -> Result<usize, Error> {
        let len = size as usize;
        if len > dst.len() {
            return Err(Error::TooLarge {
                size: u64::from(size),
                capacity: dst.len() as u64,
            });
        }
        if len == 0 {
            return Ok(0);
        }
        let runs = self.file_runs(cluster, size)?;
        self.read_runs(&runs, &mut dst[..len])?;
        Ok(len)
    }

    /// The cluster runs holding the `size` bytes of a file starting at `cluster` (`size` > 0),
    /// checked to be long enough and loop-free.
    fn file_runs(&mut self, cluster: u32, size: u32) -> Result<Vec<(u32, u32)>, Error> {
        let cb = self.layout.cluster_bytes();
        let needed = u64::from(size).div_ceil(cb);
        let count = u64::from(self.layout.cluster_count);
        if needed > count {
            return Err(Error::ShortChain {
                size: u64::from(size),
                chain_bytes: count * cb,
            });
        }
        let runs = self.chain(cluster, Some(needed), count)?;
        let got: u64 = runs.iter().map(|r| u64::from(r.1)).sum();
        if got < needed {
            return Err(Error::ShortChain {
                size: u64::from(size),
                chain_bytes: got * cb,
            });
        }
        Ok(runs)
    }

    /// Refuses runs that reach past the device (a volume larger than its partition) before any
    /// read or write, so no request outside the device is made.
    fn check_usable(&self, runs: &[(u32, u32)]) -> Result<(), Error> {
        let max = self.layout.max_usable_cluster();
        for &(first, count) in runs {
            if u64::from(first) + u64::from(count) - 1 > u64::from(max) {
                let lba = self.layout.cluster_lba(first);
                return Err(Error::OutOfRange {
                    lba,
                    count: u64::from(count) * self.layout.cluster_sectors,
                    size: self.layout.dev_sectors,
                });
            }
        }
        Ok(())
    }

    /// Fills `dst` from the cluster runs, one request per run (split at [`MAX_READ_BYTES`]).
    fn read_runs(&mut self, runs: &[(u32, u32)], dst: &mut [u8]) -> Result<(), Error> {
        self.check_usable(runs)?;
        let mut done = 0;
        for &(first, count) in runs {
            let run_bytes = u64::from(count) * self.layout.cluster_bytes();
            let take = run_bytes.min((dst.len() - done) as u64) as usize;
            let lba = self.layout.cluster_lba(first);
            self.read_run(lba, &mut dst[done..done + take])?;
            done += take;
        }
        Ok(())
    }

    /// Reads `dst.len()` bytes from `lba` on: whole sectors straight into `dst` in requests of
    /// at most [`MAX_READ_BYTES`], a partial last sector through a bounce buffer.
    fn read_run(&mut self, mut lba: u64, dst: &mut [u8]) -> Result<(), Error> {
        let whole = dst.len() / SECTOR_SIZE * SECTOR_SIZE;
        let (body, tail) = dst.split_at_mut(whole);
        for chunk in body.chunks_mut(MAX_READ_BYTES) {
            self.dev.read_sectors(lba, chunk)?;
            lba += (chunk.len() / SECTOR_SIZE) as u64;
        }
        if !tail.is_empty() {
            let mut bounce = [0u8; SECTOR_SIZE];
            self.dev.read_sectors(lba, &mut bounce)?;
            tail.copy_from_slice(&bounce[..tail.len()]);
        }
        Ok(())
    }

    /// Walks the chain from `start` into runs of contiguous clusters `(first, count)`: `want`
    /// clusters if given (fewer if the chain ends early), else to the end of the chain, failing
    /// past `limit` clusters.
    fn chain(
        &mut self,
        start: u32,
        want: Option<u64>,
        limit: u64,
    ) -> Result<Vec<(u32, u32)>, Error> {
        let max = self.layout.max_cluster();
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let mut cur = start;
        let mut n = 0u64;
        loop {
            if cur < 2 || cur > max {
                return Err(Error::BadCluster { cluster: cur, max });
            }
            match runs.last_mut() {
                Some((first, count)) if *first + *count == cur => *count += 1,
                _ => runs.push((cur, 1)),
            }
            n += 1;
            if want == Some(n) {
                break;
            }
            if n >= limit {
                check_loop(&runs)?;
                return Err(Error::Corrupt("directory larger than 65536 entries"));
            }
            match self.fat_entry(cur)? {
                Some(next) => cur = next,
                None => break,
            }
        }
        check_loop(&runs)?;
        Ok(runs)
    }

    /// The FAT entry of cluster `c`: `Some(next)` or `None` at the end of the chain.
    fn fat_entry(&mut self, c: u32) -> Result<Option<u32>, Error> {
        let eoc = match self.layout.fat_type {
            FatType::Fat12 => 0xFF8,
            FatType::Fat16 => 0xFFF8,
            FatType::Fat32 => 0x0FFF_FFF8,
        };
        match self.fat_raw(c)? {
            0 => Err(Error::Corrupt("free cluster inside a cluster chain")),
            v if v >= eoc => Ok(None),
            v if v == eoc - 1 => Err(Error::Corrupt("bad-cluster mark inside a cluster chain")),
            v => Ok(Some(v)),
        }
    }

    /// The raw value of FAT entry `c` (FAT32: without the reserved top 4 bits).
    fn fat_raw(&mut self, c: u32) -> Result<u32, Error> {
        let c64 = u64::from(c);
        Ok(match self.layout.fat_type {
            FatType::Fat12 => {
                let off = c64 + c64 / 2;
                let v = u32::from(u16::from_le_bytes([
                    self.fat_byte(off)?,
                    self.fat_byte(off + 1)?,
                ]));
                if c & 1 == 1 {
                    v >> 4
                } else {
                    v & 0xFFF
                }
            }
            FatType::Fat16 => {
                let off = c64 * 2;
                u32::from(u16::from_le_bytes([
                    self.fat_byte(off)?,
                    self.fat_byte(off + 1)?,
                ]))
            }
            FatType::Fat32 => {
                let off = c64 * 4;
                let mut b = [0u8; 4];
                for (i, byte) in b.iter_mut().enumerate() {
                    *byte = self.fat_byte(off + i as u64)?;
                }
                u32::from_le_bytes(b) & 0x0FFF_FFFF
            }
        })
    }

    /// One byte of the active FAT, through a cache of [`FAT_WINDOW_SECTORS`] sectors (more when
    /// the walk runs on from the window before, up to [`FAT_WINDOW_MAX_SECTORS`]).
    fn fat_byte(&mut self, off: u64) -> Result<u8, Error> {
        let sector = off / SECTOR;
        let held = self
            .fat_window
            .filter(|&(first, count)| sector >= first && sector < first + count);
        let (first, _) = match held {
            Some(w) => w,
            None => {
                if sector >= self.layout.fat_sectors {
                    return Err(Error::Corrupt("FAT entry past the end of the FAT"));
                }
                let want = match self.fat_window {
                    // Walking on from the window before: read ahead further.
                    Some((f, c)) if sector == f + c => (c * 4).min(FAT_WINDOW_MAX_SECTORS),
                    _ => FAT_WINDOW_SECTORS,
                };
                // Aligned to the small window, so a lookup near a big window's end re-reads little.
                let first = sector / FAT_WINDOW_SECTORS * FAT_WINDOW_SECTORS;
                let count = want.min(self.layout.fat_sectors - first);
                self.fat_window = None;
                self.fat_cache.resize((count * SECTOR) as usize, 0);
                self.dev
                    .read_sectors(self.layout.fat_lba + first, &mut self.fat_cache)?;
                self.fat_window = Some((first, count));
                (first, count)
            }
        };
        let at = (off - first * SECTOR) as usize;
        self.fat_cache
            .get(at)
            .copied()
            .ok_or(Error::Corrupt("FAT entry past the end of the FAT"))
    }
}

/// Fails if two runs of a chain share a cluster.
fn check_loop(runs: &[(u32, u32)]) -> Result<(), Error> {
    let mut sorted: Vec<(u32, u32)> = runs.to_vec();
    sorted.sort();
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if u64::from(b.0) < u64::from(a.0) + u64::from(a.1) {
            return Err(Error::ChainLoop { cluster: b.0 });
        }
    }
    Ok(())
}

/// Case-insensitive comparison as Windows does it (Unicode simple upper case).
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_uppercase)
        .eq(b.chars().flat_map(char::to_uppercase))
}

/// Checksum of an 8.3 name that LFN entries carry.
fn lfn_checksum(short: &[u8]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// Long-file-name entries collected so far.
struct Lfn {
    units: [u16; LFN_MAX_ENTRIES as usize * LFN_CHARS_PER_ENTRY],
    /// Sequence number the next LFN entry must have; 0 when complete.
    expect: u8,
    checksum: u8,
    active: bool,
}

impl Lfn {
    /// Adds LFN entry `e`; a broken sequence drops what was collected.
    fn push(&mut self, e: &[u8]) {
        let ord = e[0];
        let seq = ord & 0x1F;
        if ord & 0x40 != 0 {
            if seq == 0 || seq > LFN_MAX_ENTRIES {
                self.active = false;
                return;
            }
            self.units = [0xFFFF; LFN_MAX_ENTRIES as usize * LFN_CHARS_PER_ENTRY];
            self.active = true;
            self.checksum = e[13];
        } else if !self.active || seq == 0 || ord != self.expect || e[13] != self.checksum {
            self.active = false;
            return;
        }
        let base = (seq as usize - 1) * LFN_CHARS_PER_ENTRY;
        let offsets = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
        for (i, &o) in offsets.iter().enumerate() {
            self.units[base + i] = le16(e, o);
        }
        self.expect = seq - 1;
    }

    /// The long name for the 8.3 entry `short`, if the collected entries belong to it.
    fn take(&mut self, short: &[u8]) -> Option<String> {
        let ok = self.active && self.expect == 0 && self.checksum == lfn_checksum(short);
        self.active = false;
        if !ok {
            return None;
        }
        let units = self
            .units
            .iter()
            .copied()
            .take_while(|&u| u != 0 && u != 0xFFFF);
        let name: String = char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        (!name.is_empty()).then_some(name)
    }
}

/// The 8.3 name of entry `e`, honouring the NT lower-case flags.
fn short_name(e: &[u8], lower: bool) -> String {
    let nt = e[12];
    let part = |bytes: &[u8], lc: bool| -> String {
        let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        bytes[..end]
            .iter()
            .map(|&b| {
                let c = char::from(b);
                if lower && lc {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect()
    };
    let mut base = e[..8].to_vec();
    if base[0] == 0x05 {
        base[0] = 0xE5;
    }
    let mut name = part(&base, nt & 0x08 != 0);
    let ext = part(&e[8..11], nt & 0x10 != 0);
    if !ext.is_empty() {
        name.push('.');
        name.push_str(&ext);
    }
    name
}

/// Parses the entries of a directory up to its end mark.
fn parse_dir(bytes: &[u8], fat32: bool) -> Vec<RawEntry> {
    let mut out = Vec::new();
    let mut lfn = Lfn {
        units: [0; 260],
        expect: 0,
        checksum: 0,
        active: false,
    };
    for e in bytes.chunks_exact(DIR_ENTRY_SIZE) {
        match e[0] {
            0x00 => break,
            0xE5 => {
                lfn.active = false;
                continue;
            }
            _ => {}
        }
        let attr = e[11];
        if attr & ATTR_LFN_MASK == ATTR_LFN {
            lfn.push(e);
            continue;
        }
        if attr & ATTR_VOLUME_ID != 0 {
            lfn.active = false;
            continue;
        }
        let long = lfn.take(&e[..11]);
        let short = short_name(e, false);
        let hi = if fat32 { u32::from(le16(e, 20)) } else { 0 };
        let cluster = hi << 16 | u32::from(le16(e, 26));
        let node = if attr & ATTR_DIRECTORY != 0 {
            if cluster == 0 {
                Node::Root
            } else {
                Node::Dir(cluster)
            }
        } else {
            Node::File {
                cluster,
                size: le32(e, 28),
            }
        };
        let name = long.unwrap_or_else(|| short_name(e, true));
        out.push(RawEntry { name, short, node });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(name: &[u8; 11], attr: u8, nt: u8, cluster: u16, size: u32) -> [u8; 32] {
        let mut e = [0u8; 32];
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e[12] = nt;
        e[26..28].copy_from_slice(&cluster.to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        e
    }

    /// LFN entries (last first, as on disk) for `name` bound to 8.3 name `sn`.
    fn lfn(name: &str, sn: &[u8; 11]) -> Vec<[u8; 32]> {
        let mut units: Vec<u16> = name.encode_utf16().collect();
        units.push(0);
        while !units.len().is_multiple_of(13) {
            units.push(0xFFFF);
        }
        let n = units.len() / 13;
        let offsets = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
        (1..=n)
            .rev()
            .map(|seq| {
                let mut e = [0u8; 32];
                e[0] = seq as u8 | if seq == n { 0x40 } else { 0 };
                e[11] = ATTR_LFN;
                e[13] = lfn_checksum(sn);
                for (i, &o) in offsets.iter().enumerate() {
                    e[o..o + 2].copy_from_slice(&units[(seq - 1) * 13 + i].to_le_bytes());
                }
                e
            })
            .collect()
    }

    fn names(entries: &[[u8; 32]]) -> Vec<String> {
        parse_dir(&entries.concat(), false)
            .into_iter()
            .map(|e| e.name)
            .collect()
    }

    #[test]
    fn long_names_and_fallbacks() {
        let sn = b"HELLOW~1TXT";
        let long = "Hello wörld, a name over 26 units long 😀.txt";
        let mut dir = lfn(long, sn);
        dir.push(short(sn, 0x20, 0, 5, 10));
        assert_eq!(names(&dir), [long]);

        let mut bad_sum = dir.clone();
        bad_sum[0][13] ^= 1;
        bad_sum[1][13] ^= 1;
        bad_sum[2][13] ^= 1;
        bad_sum[3][13] ^= 1;
        assert_eq!(names(&bad_sum), ["HELLOW~1.TXT"]);

        let mut missing = dir.clone();
        missing.remove(1);
        assert_eq!(names(&missing), ["HELLOW~1.TXT"]);

        let mut deleted = dir.clone();
        deleted[0][0] = 0xE5;
        assert_eq!(names(&deleted), ["HELLOW~1.TXT"]);

        // NT lower-case flags, 0x05 escape, volume label skipped, end mark stops the scan.
        let dir = [
            short(b"KEXBOOT    ", ATTR_VOLUME_ID, 0, 0, 0),
            short(b"README  TXT", 0x20, 0x18, 3, 1),
            short(b"\x05BC     BIN", 0x20, 0, 4, 1),
            [0u8; 32],
            short(b"HIDDEN  TXT", 0x20, 0, 6, 1),
        ];
        assert_eq!(names(&dir), ["readme.txt", "\u{e5}BC.BIN"]);
    }

    #[test]
    fn case_insensitive_compare() {
        assert!(eq_ignore_case("ExtLinux.Conf", "EXTLINUX.CONF"));
        assert!(eq_ignore_case("Ünïcødé", "üNÏCØDÉ"));
        assert!(!eq_ignore_case("extlinux.conf", "extlinux.cfg"));
    }
}
