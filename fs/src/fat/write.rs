//! Writing to a FAT volume: overwriting bytes of an existing file in place, and creating
//! zero-filled files (and missing parent directories) under plain 8.3 names.
//!
//! Power cuts: [`FatFs::write_in_place`] touches data sectors only, never the FAT or a directory.
//! [`FatFs::create_file`] writes in dependency order: the new clusters' contents, then their
//! chains (every FAT copy), then the link that grows a full directory, then FSInfo, and the
//! directory entry last. A cut at any point leaves at worst lost clusters (free in no FAT, named
//! by no entry), never an entry pointing at a half-written chain. Each sector write is assumed
//! atomic.
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{
    le32, FatFs, FatType, Node, ATTR_DIRECTORY, ATTR_LFN, ATTR_LFN_MASK, DIR_ENTRY_SIZE,
    DIR_MAX_BYTES, SECTOR,
};
use crate::block::{MAX_READ_BYTES, SECTOR_SIZE};
use crate::{BlockDevice, Error};

const ATTR_ARCHIVE: u8 = 0x20;
/// 1980-01-01, the earliest FAT date: kexboot has no wall clock.
const DOS_DATE_EPOCH: u16 = (1 << 5) | 1;
const FSINFO_LEAD_SIG: u32 = 0x4161_5252;
const FSINFO_STRUC_SIG: u32 = 0x6141_7272;
const FSINFO_TRAIL_SIG: u32 = 0xAA55_0000;
/// NT flags: base name / extension shown in lower case.
const NT_LOWER_BASE: u8 = 0x08;
const NT_LOWER_EXT: u8 = 0x10;

/// A validated 8.3 name as stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShortName {
    raw: [u8; 11],
    nt: u8,
}

impl ShortName {
    const DOT: ShortName = ShortName {
        raw: *b".          ",
        nt: 0,
    };
    const DOTDOT: ShortName = ShortName {
        raw: *b"..         ",
        nt: 0,
    };

    /// Stores `name` upper-cased; a part written all in lower case gets the NT lower-case flag
    /// so listings show it as typed. Names that need a long-name entry are refused.
    fn parse(name: &str) -> Result<ShortName, Error> {
        if name == "." || name == ".." {
            return Err(Error::BadName("'.' and '..' cannot be created"));
        }
        let (base, ext) = name.split_once('.').unwrap_or((name, ""));
        if base.is_empty() || base.len() > 8 {
            return Err(Error::BadName(
                "8.3 names need 1 to 8 characters before the dot",
            ));
        }
        if ext.len() > 3 || (ext.is_empty() && name.contains('.')) {
            return Err(Error::BadName(
                "8.3 names need 1 to 3 characters after one dot",
            ));
        }
        let mut out = ShortName {
            raw: [b' '; 11],
            nt: 0,
        };
        for (part, at, flag) in [(base, 0, NT_LOWER_BASE), (ext, 8, NT_LOWER_EXT)] {
            let ok = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'()-@^_`{}~".contains(&b);
            if !part.bytes().all(ok) {
                return Err(Error::BadName(
                    "8.3 names hold only letters, digits and ! # $ % & ' ( ) - @ ^ _ ` { } ~",
                ));
            }
            let has_upper = part.bytes().any(|b| b.is_ascii_uppercase());
            if part.bytes().any(|b| b.is_ascii_lowercase()) && !has_upper {
                out.nt |= flag;
            }
            for (i, b) in part.bytes().enumerate() {
                out.raw[at + i] = b.to_ascii_uppercase();
            }
        }
        Ok(out)
    }

    /// A 32-byte directory entry with this name.
    fn entry(&self, attr: u8, cluster: u32, size: u32) -> [u8; DIR_ENTRY_SIZE] {
        let mut e = [0u8; DIR_ENTRY_SIZE];
        e[..11].copy_from_slice(&self.raw);
        e[11] = attr;
        e[12] = self.nt;
        let date = DOS_DATE_EPOCH.to_le_bytes();
        for at in [16, 18, 24] {
            e[at..at + 2].copy_from_slice(&date);
        }
        e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
        e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        e
    }
}

/// Where a new directory entry goes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// Byte `off` of sector `lba`. `end_mark`: the following slot, which must first become the
    /// end-of-directory mark because the chosen slot was the old one and the rest is not clean.
    At {
        lba: u64,
        off: usize,
        end_mark: Option<(u64, usize)>,
    },
    /// The directory is full: grow it by one cluster after cluster `last`.
    Grow { last: u32 },
}

/// What [`FatFs::add_entry`] creates.
#[derive(Debug, Clone, Copy)]
enum NewNode {
    File { size: u32 },
    Dir,
}

impl<D: BlockDevice> FatFs<D> {
    /// Overwrites `data.len()` bytes of the existing file at `path`, starting `offset` bytes
    /// into it. Only data sectors are written (partial sectors read-modify-written): no FAT or
    /// directory change, so a power cut can only leave some of the new bytes unwritten. A range
    /// past the file's size is refused with [`Error::BeyondEnd`] before anything is written.
    pub fn write_in_place(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<(), Error> {
        let Node::File { cluster, size } = self.lookup(path)? else {
            return Err(Error::NotAFile);
        };
        let len = data.len() as u64;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= u64::from(size))
            .ok_or(Error::BeyondEnd {
                offset,
                len,
                size: u64::from(size),
            })?;
        if len == 0 {
            return Ok(());
        }
        let runs = self.file_runs(cluster, size)?;
        self.check_usable(&runs)?;
        let cb = self.layout.cluster_bytes();
        let mut run_start = 0u64; // file offset of the current run
        for (first, count) in runs {
            let run_end = run_start + u64::from(count) * cb;
            let (s, e) = (offset.max(run_start), end.min(run_end));
            if s < e {
                let lba = self.layout.cluster_lba(first);
                let part = &data[(s - offset) as usize..(e - offset) as usize];
                self.write_bytes(lba, s - run_start, part)?;
            }
            if run_end >= end {
                break;
            }
            run_start = run_end;
        }
        Ok(())
    }

    /// Creates a file of exactly `size` bytes, zero-filled, at `path`; missing parent
    /// directories are created too. Every name created must fit 8.3 (stored upper-case, see
    /// [`Error::BadName`]); an existing name is refused with [`Error::AlreadyExists`]. Clusters
    /// are contiguous when the volume has such a run. Fails with [`Error::DiskFull`] or
    /// [`Error::DirectoryFull`] before the file's first write (parent directories created by
    /// the same call stay).
    pub fn create_file(&mut self, path: &str, size: u64) -> Result<(), Error> {
        let size = u32::try_from(size).map_err(|_| Error::TooLarge {
            size,
            capacity: u64::from(u32::MAX),
        })?;
        let comps: Vec<&str> = path
            .split(['/', '\\'])
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if comps.contains(&"..") {
            return Err(Error::BadName("'..' in a path to create"));
        }
        let Some(last) = comps.len().checked_sub(1) else {
            return Err(Error::BadName("empty path"));
        };
        let mut cur = Node::Root;
        let mut i = 0;
        // Walk what exists.
        while i < last {
            match self.find(cur, comps[i])? {
                Some(Node::File { .. }) => return Err(Error::NotADirectory),
                Some(n) => cur = n,
                None => break,
            }
            i += 1;
        }
        if i == last && self.find(cur, comps[last])?.is_some() {
            return Err(Error::AlreadyExists);
        }
        // Check every name to create before the first write.
        let names = comps[i..]
            .iter()
            .map(|c| ShortName::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        let Some((file, dirs)) = names.split_last() else {
            return Err(Error::BadName("empty path"));
        };
        for name in dirs {
            cur = self.add_entry(cur, name, NewNode::Dir)?;
        }
        self.add_entry(cur, file, NewNode::File { size })?;
        Ok(())
    }

    /// The entry named `name` (long or 8.3, any case) in directory `dir`.
    fn find(&mut self, dir: Node, name: &str) -> Result<Option<Node>, Error> {
        Ok(self
            .cached_dir(dir)?
            .iter()
            .find(|e| super::eq_ignore_case(&e.name, name) || super::eq_ignore_case(&e.short, name))
            .map(|e| e.node))
    }

    /// Creates `name` in directory `parent` (steps in the order the module doc gives).
    fn add_entry(&mut self, parent: Node, name: &ShortName, what: NewNode) -> Result<Node, Error> {
        let cb = self.layout.cluster_bytes();
        let content = match what {
            NewNode::File { size } => u64::from(size).div_ceil(cb),
            NewNode::Dir => 1,
        };
        let slot = self.find_slot(parent)?;
        let grow = matches!(slot, Slot::Grow { .. });
        let clusters = self.alloc_clusters(content + u64::from(grow))?;
        let (data, extra) = clusters.split_at(content as usize);
        let first = data.first().copied().unwrap_or(0);

        // 1. Contents of every new cluster.
        self.zero_clusters(&clusters)?;
        if let NewNode::Dir = what {
            let up = match parent {
                Node::Dir(c) => c,
                _ => 0,
            };
            let mut sector = [0u8; SECTOR_SIZE];
            sector[..32].copy_from_slice(&ShortName::DOT.entry(ATTR_DIRECTORY, first, 0));
            sector[32..64].copy_from_slice(&ShortName::DOTDOT.entry(ATTR_DIRECTORY, up, 0));
            let lba = self.layout.cluster_lba(first);
            self.dev_write(lba, &sector)?;
        }
        // 2. Their chains, each ending in an end-of-chain mark.
        let eoc = self.eoc();
        let mut sets: Vec<(u32, u32)> = data
            .iter()
            .zip(data.iter().skip(1).map(Some).chain([None]))
            .map(|(&c, next)| (c, next.copied().unwrap_or(eoc)))
            .collect();
        sets.extend(extra.iter().map(|&c| (c, eoc)));
        self.write_fat(&sets)?;
        // 3. The directory's link to its new cluster.
        let (lba, off, end_mark) = match (slot, extra.first()) {
            (Slot::Grow { last }, Some(&g)) => {
                self.write_fat(&[(last, g)])?;
                (self.layout.cluster_lba(g), 0, None)
            }
            (Slot::At { lba, off, end_mark }, _) => (lba, off, end_mark),
            (Slot::Grow { .. }, None) => return Err(Error::Corrupt("no cluster to grow into")),
        };
        // 4. FSInfo.
        if let Some(&last) = clusters.last() {
            self.update_fsinfo(clusters.len() as u32, last)?;
        }
        // 5. The entry, last.
        if let Some((lba, off)) = end_mark {
            self.patch_sector(lba, off, &[0])?;
        }
        let (attr, size, node) = match what {
            NewNode::File { size } => (
                ATTR_ARCHIVE,
                size,
                Node::File {
                    cluster: first,
                    size,
                },
            ),
            NewNode::Dir => (ATTR_DIRECTORY, 0, Node::Dir(first)),
        };
        self.patch_sector(lba, off, &name.entry(attr, first, size))?;
        Ok(node)
    }

    /// The first free entry of directory `dir` (not right after a live long-name entry, which
    /// would then claim the new name), or where to grow it.
    fn find_slot(&mut self, dir: Node) -> Result<Slot, Error> {
        let l = &self.layout;
        let (lbas, last): (Vec<u64>, Option<u32>) = match dir {
            Node::Root if l.fat_type != FatType::Fat32 => {
                ((l.root_lba..l.root_lba + l.root_sectors).collect(), None)
            }
            Node::Root | Node::Dir(_) => {
                let start = match dir {
                    Node::Dir(c) if c != 0 => c,
                    _ => l.root_cluster,
                };
                let limit = DIR_MAX_BYTES.div_ceil(l.cluster_bytes());
                let runs = self.chain(start, None, limit)?;
                self.check_usable(&runs)?;
                let l = &self.layout;
                let lbas = runs
                    .iter()
                    .flat_map(|&(c, n)| {
                        let lba = l.cluster_lba(c);
                        lba..lba + u64::from(n) * l.cluster_sectors
                    })
                    .collect();
                (lbas, runs.last().map(|&(c, n)| c + n - 1))
            }
            Node::File { .. } => return Err(Error::NotADirectory),
        };
        let mut bytes = alloc::vec![0u8; lbas.len() * SECTOR_SIZE];
        for (&lba, sector) in lbas.iter().zip(bytes.chunks_exact_mut(SECTOR_SIZE)) {
            self.dev.read_sectors(lba, sector)?;
        }
        let per_sector = SECTOR_SIZE / DIR_ENTRY_SIZE;
        let at = |i: usize| (lbas[i / per_sector], i % per_sector * DIR_ENTRY_SIZE);
        let entries: Vec<&[u8]> = bytes.chunks_exact(DIR_ENTRY_SIZE).collect();
        let mut after_lfn = false;
        for (i, e) in entries.iter().enumerate() {
            let free = e[0] == 0x00 || e[0] == 0xE5;
            if e[0] == 0x00 || (free && !after_lfn) {
                let dirty = entries.get(i + 1).is_some_and(|n| n[0] != 0x00);
                let end_mark = (e[0] == 0x00 && dirty).then(|| at(i + 1));
                let (lba, off) = at(i);
                return Ok(Slot::At { lba, off, end_mark });
            }
            after_lfn = !free && e[11] & ATTR_LFN_MASK == ATTR_LFN;
        }
        match last {
            Some(last) if (bytes.len() as u64) + self.layout.cluster_bytes() <= DIR_MAX_BYTES => {
                Ok(Slot::Grow { last })
            }
            _ => Err(Error::DirectoryFull),
        }
    }

    /// `n` free clusters: the first contiguous run of `n` if there is one, else the first `n`.
    fn alloc_clusters(&mut self, n: u64) -> Result<Vec<u32>, Error> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut first_free = Vec::new();
        let (mut run_start, mut run_len, mut free) = (0u32, 0u64, 0u64);
        for c in 2..=self.layout.max_usable_cluster() {
            if self.fat_raw(c)? != 0 {
                run_len = 0;
                continue;
            }
            free += 1;
            if (first_free.len() as u64) < n {
                first_free.push(c);
            }
            if run_len == 0 {
                run_start = c;
            }
            run_len += 1;
            if run_len == n {
                return Ok((run_start..=c).collect());
            }
        }
        if free >= n {
            Ok(first_free)
        } else {
            Err(Error::DiskFull { needed: n, free })
        }
    }

    fn eoc(&self) -> u32 {
        match self.layout.fat_type {
            FatType::Fat12 => 0xFFF,
            FatType::Fat16 => 0xFFFF,
            FatType::Fat32 => 0x0FFF_FFFF,
        }
    }

    /// Sets FAT entries `(cluster, value)` in every FAT copy, copy after copy, each sector
    /// written once (FAT32 entries keep their reserved top 4 bits).
    fn write_fat(&mut self, sets: &[(u32, u32)]) -> Result<(), Error> {
        let mut dirty = BTreeMap::new();
        for &(c, v) in sets {
            let c64 = u64::from(c);
            match self.layout.fat_type {
                FatType::Fat12 => {
                    let off = c64 + c64 / 2;
                    let v = v & 0xFFF;
                    if c & 1 == 0 {
                        self.patch_fat(&mut dirty, off, 0x00, v as u8)?;
                        self.patch_fat(&mut dirty, off + 1, 0xF0, (v >> 8) as u8)?;
                    } else {
                        self.patch_fat(&mut dirty, off, 0x0F, (v << 4) as u8)?;
                        self.patch_fat(&mut dirty, off + 1, 0x00, (v >> 4) as u8)?;
                    }
                }
                FatType::Fat16 => {
                    for (i, b) in (v as u16).to_le_bytes().into_iter().enumerate() {
                        self.patch_fat(&mut dirty, c64 * 2 + i as u64, 0x00, b)?;
                    }
                }
                FatType::Fat32 => {
                    for (i, b) in (v & 0x0FFF_FFFF).to_le_bytes().into_iter().enumerate() {
                        let keep = if i == 3 { 0xF0 } else { 0x00 };
                        self.patch_fat(&mut dirty, c64 * 4 + i as u64, keep, b)?;
                    }
                }
            }
        }
        self.fat_window = None;
        let l = &self.layout;
        let (first, fats, per_fat) = (l.first_fat_lba, l.fats, l.fat_sectors);
        for copy in 0..fats {
            for (s, sector) in &dirty {
                self.dev_write(first + copy * per_fat + s, sector)?;
            }
        }
        Ok(())
    }

    /// Sets byte `off` of the FAT to `(old & keep) | (val & !keep)` in the sector copy kept in
    /// `dirty` (loaded from the active FAT on first use).
    fn patch_fat(
        &mut self,
        dirty: &mut BTreeMap<u64, [u8; SECTOR_SIZE]>,
        off: u64,
        keep: u8,
        val: u8,
    ) -> Result<(), Error> {
        let s = off / SECTOR;
        if s >= self.layout.fat_sectors {
            return Err(Error::Corrupt("FAT entry past the end of the FAT"));
        }
        let sector = match dirty.entry(s) {
            alloc::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            alloc::collections::btree_map::Entry::Vacant(v) => {
                let mut buf = [0u8; SECTOR_SIZE];
                self.dev.read_sectors(self.layout.fat_lba + s, &mut buf)?;
                v.insert(buf)
            }
        };
        let b = &mut sector[(off % SECTOR) as usize];
        *b = (*b & keep) | (val & !keep);
        Ok(())
    }

    /// Lowers the FAT32 FSInfo free count by `allocated` (or marks it unknown if it was not
    /// plausible) and points the next-free hint at `last`. No valid FSInfo: nothing to do.
    fn update_fsinfo(&mut self, allocated: u32, last: u32) -> Result<(), Error> {
        let Some(lba) = self.layout.fsinfo_lba else {
            return Ok(());
        };
        let mut s = [0u8; SECTOR_SIZE];
        self.dev.read_sectors(lba, &mut s)?;
        if le32(&s, 0) != FSINFO_LEAD_SIG
            || le32(&s, 484) != FSINFO_STRUC_SIG
            || le32(&s, 508) != FSINFO_TRAIL_SIG
        {
            return Ok(());
        }
        let free = le32(&s, 488);
        let new = match free.checked_sub(allocated) {
            Some(n) if free <= self.layout.cluster_count => n,
            _ => u32::MAX,
        };
        s[488..492].copy_from_slice(&new.to_le_bytes());
        s[492..496].copy_from_slice(&last.to_le_bytes());
        self.dev_write(lba, &s)
    }

    /// Writes zeros over every cluster in `clusters`, one request per contiguous run (split at
    /// [`MAX_READ_BYTES`]).
    fn zero_clusters(&mut self, clusters: &[u32]) -> Result<(), Error> {
        let cs = self.layout.cluster_sectors;
        let total = clusters.len() as u64 * cs * SECTOR;
        let zeros = alloc::vec![0u8; total.min(MAX_READ_BYTES as u64) as usize];
        let mut i = 0;
        while i < clusters.len() {
            let mut n = 1;
            while clusters.get(i + n) == Some(&(clusters[i] + n as u32)) {
                n += 1;
            }
            let mut lba = self.layout.cluster_lba(clusters[i]);
            let mut left = n as u64 * cs;
            while left > 0 {
                let take = left.min((zeros.len() / SECTOR_SIZE) as u64);
                self.dev
                    .write_sectors(lba, &zeros[..take as usize * SECTOR_SIZE])?;
                lba += take;
                left -= take;
            }
            i += n;
        }
        Ok(())
    }

    /// Writes `data` starting `off` bytes past sector `base`: whole sectors straight from `data`
    /// (requests of at most [`MAX_READ_BYTES`]), partial ones read-modify-written.
    fn write_bytes(&mut self, base: u64, off: u64, mut data: &[u8]) -> Result<(), Error> {
        let mut lba = base + off / SECTOR;
        let head = (off % SECTOR) as usize;
        if head != 0 || data.len() < SECTOR_SIZE {
            let n = (SECTOR_SIZE - head).min(data.len());
            self.patch_sector(lba, head, &data[..n])?;
            data = &data[n..];
            lba += 1;
        }
        let whole = data.len() / SECTOR_SIZE * SECTOR_SIZE;
        let (body, tail) = data.split_at(whole);
        for chunk in body.chunks(MAX_READ_BYTES) {
            self.dev_write(lba, chunk)?;
            lba += (chunk.len() / SECTOR_SIZE) as u64;
        }
        if !tail.is_empty() {
            self.patch_sector(lba, 0, tail)?;
        }
        Ok(())
    }

    /// Replaces `bytes.len()` bytes at `off` in sector `lba` (read-modify-write).
    fn patch_sector(&mut self, lba: u64, off: usize, bytes: &[u8]) -> Result<(), Error> {
        let mut s = [0u8; SECTOR_SIZE];
        self.dev.read_sectors(lba, &mut s)?;
        s.get_mut(off..off + bytes.len())
            .ok_or(Error::Corrupt("write past a sector"))?
            .copy_from_slice(bytes);
        self.dev_write(lba, &s)
    }
}
