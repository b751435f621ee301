//! Shared pieces of the fuzz targets: a sparse disk read from the fuzz input, a destination
//! buffer with guard regions, and small input splitters.
//!
//! The sparse-disk format is also what `cargo xtask fuzz` writes as seed corpora
//! (`xtask/src/fuzz.rs`): a disk of many megabytes is a few kilobytes of non-zero sectors.

use std::collections::BTreeMap;

use kexboot_fs::{BlockDevice, Error as FsError, SECTOR_SIZE};

/// Largest disk a sparse input may declare (2 GiB): big enough for FAT32, cheap because sparse.
pub const MAX_SPARSE_SECTORS: u64 = 1 << 22;
/// Most sectors one input may carry.
pub const MAX_SPARSE_CHUNKS: usize = 512;
/// Bytes of one sparse chunk: LBA (u32 LE) then the sector.
pub const CHUNK_LEN: usize = 4 + SECTOR_SIZE;

/// A disk of `num_sectors` zero sectors with some sectors given: the input is
/// `num_sectors: u32 LE` followed by chunks of `lba: u32 LE` + 512 bytes (a short last chunk is
/// zero-padded). `strict` makes any out-of-range request a panic (for code that validated its
/// own geometry against [`BlockDevice::num_sectors`] and must never ask beyond it).
#[derive(Clone, Debug)]
pub struct SparseDisk {
    num_sectors: u64,
    sectors: BTreeMap<u64, Box<[u8; SECTOR_SIZE]>>,
    pub strict: bool,
    pub writable: bool,
    /// Sectors written so far.
    pub writes: u64,
}

impl SparseDisk {
    pub fn parse(data: &[u8]) -> Option<SparseDisk> {
        let n = u32::from_le_bytes(data.get(..4)?.try_into().ok()?);
        let num_sectors = u64::from(n).min(MAX_SPARSE_SECTORS);
        let mut sectors = BTreeMap::new();
        for chunk in data[4..].chunks(CHUNK_LEN).take(MAX_SPARSE_CHUNKS) {
            if chunk.len() < 4 {
                break;
            }
            let lba = u64::from(u32::from_le_bytes(chunk[..4].try_into().ok()?));
            let mut s = Box::new([0u8; SECTOR_SIZE]);
            s[..chunk.len() - 4].copy_from_slice(&chunk[4..]);
            sectors.insert(lba, s);
        }
        Some(SparseDisk {
            num_sectors,
            sectors,
            strict: false,
            writable: false,
            writes: 0,
        })
    }

    fn check(&self, lba: u64, len: usize) -> Result<u64, FsError> {
        let count = (len / SECTOR_SIZE) as u64;
        let ok = len != 0
            && len.is_multiple_of(SECTOR_SIZE)
            && lba
                .checked_add(count)
                .is_some_and(|e| e <= self.num_sectors);
        if ok {
            return Ok(count);
        }
        assert!(
            !self.strict,
            "request of {len} bytes at LBA {lba} outside a disk of {} sectors",
            self.num_sectors
        );
        Err(FsError::OutOfRange {
            lba,
            count,
            size: self.num_sectors,
        })
    }
}

impl BlockDevice for SparseDisk {
    fn num_sectors(&self) -> u64 {
        self.num_sectors
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), FsError> {
        self.check(lba, buf.len())?;
        for (i, out) in buf.chunks_exact_mut(SECTOR_SIZE).enumerate() {
            match self.sectors.get(&(lba + i as u64)) {
                Some(s) => out.copy_from_slice(&s[..]),
                None => out.fill(0),
            }
        }
        Ok(())
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), FsError> {
        if !self.writable {
            return Err(FsError::ReadOnly);
        }
        self.check(lba, buf.len())?;
        for (i, s) in buf.chunks_exact(SECTOR_SIZE).enumerate() {
            let mut b = Box::new([0u8; SECTOR_SIZE]);
            b.copy_from_slice(s);
            self.sectors.insert(lba + i as u64, b);
            self.writes += 1;
        }
        Ok(())
    }
}

/// Guard bytes on each side of a [`Guarded`] buffer.
pub const GUARD: usize = 64;
const GUARD_BYTE: u8 = 0xA5;

/// A destination of `len` bytes between two guard regions that must stay untouched.
pub struct Guarded {
    buf: Vec<u8>,
    len: usize,
}

impl Guarded {
    pub fn new(len: usize) -> Self {
        Guarded {
            buf: vec![GUARD_BYTE; len + 2 * GUARD],
            len,
        }
    }

    pub fn dst(&mut self) -> &mut [u8] {
        &mut self.buf[GUARD..GUARD + self.len]
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[GUARD..GUARD + self.len]
    }

    /// Panics if a guard byte changed.
    pub fn check(&self) {
        let (head, rest) = self.buf.split_at(GUARD);
        let tail = &rest[self.len..];
        assert!(
            head.iter().chain(tail).all(|&b| b == GUARD_BYTE),
            "write outside the {}-byte destination",
            self.len
        );
    }
}

/// Splits `data` into `(body, trailer)` where the trailer's length is the last byte (a seed file
/// of the plain format ending in 0 is all body).
pub fn split_trailer(data: &[u8]) -> (&[u8], &[u8]) {
    match data.split_last() {
        Some((&k, rest)) if (k as usize) <= rest.len() => rest.split_at(rest.len() - k as usize),
        _ => (data, &[]),
    }
}

/// Next `u16 LE`-length-prefixed chunk of `data` (at most `max` bytes), advancing it.
pub fn next_chunk<'a>(data: &mut &'a [u8], max: usize) -> Option<&'a [u8]> {
    if data.len() < 2 {
        return None;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(max);
    let rest = &data[2..];
    let n = n.min(rest.len());
    let (chunk, tail) = rest.split_at(n);
    *data = tail;
    Some(chunk)
}

/// Whether some node of `dtb` has two children, or two properties, of the same name. The DT
/// spec forbids both and dtc refuses them; kexboot's writer keeps the first (the one Linux's
/// lookups find) and drops the others, so what `DtInfo` read over all of them (the `fdt`
/// crate's cell sizes take the last `#address-cells`) may change. A raw token walk (the `fdt`
/// crate panics on the NOPs kexboot's reader accepts); `false` on anything malformed.
pub fn has_duplicate_siblings(dtb: &[u8]) -> bool {
    let be32 = |off: usize| -> Option<usize> {
        Some(u32::from_be_bytes(dtb.get(off..off.checked_add(4)?)?.try_into().ok()?) as usize)
    };
    let Some(mut pos) = be32(8) else {
        return false;
    };
    let Some(strings) = be32(12) else {
        return false;
    };
    let cstr = |off: usize| -> Option<&[u8]> {
        let rest = dtb.get(off..)?;
        Some(&rest[..rest.iter().position(|&b| b == 0)?])
    };
    // Names of the children and of the properties seen so far, per open node.
    let mut open: Vec<Vec<&[u8]>> = Vec::new();
    let mut props: Vec<Vec<&[u8]>> = Vec::new();
    while let Some(tok) = be32(pos) {
        pos += 4;
        match tok {
            1 => {
                let Some(rest) = dtb.get(pos..) else {
                    return false;
                };
                let Some(len) = rest.iter().position(|&b| b == 0) else {
                    return false;
                };
                let name = &rest[..len];
                if let Some(siblings) = open.last_mut() {
                    if siblings.contains(&name) {
                        return true;
                    }
                    siblings.push(name);
                }
                open.push(Vec::new());
                props.push(Vec::new());
                pos = (pos + len + 1 + 3) & !3;
            }
            2 => {
                if open.pop().is_none() || props.pop().is_none() {
                    return false;
                }
            }
            3 => {
                let (Some(len), Some(nameoff)) = (be32(pos), be32(pos + 4)) else {
                    return false;
                };
                let (Some(name), Some(seen)) = (cstr(strings + nameoff), props.last_mut()) else {
                    return false;
                };
                if seen.contains(&name) {
                    return true;
                }
                seen.push(name);
                pos = (pos + 8 + len + 3) & !3;
            }
            4 => {}
            _ => return false,
        }
    }
    false
}

/// The `/memreserve/` entries of `dtb` (empty when the `fdt` crate refuses it).
pub fn memreserve(dtb: &[u8]) -> Vec<(u64, u64)> {
    fdt::Fdt::new(dtb)
        .map(|f| {
            f.memory_reservations()
                .map(|r| (r.address() as u64, r.size() as u64))
                .collect()
        })
        .unwrap_or_default()
}
