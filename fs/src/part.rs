//! Partition tables: GPT (primary, else backup header), MBR with extended/logical partitions,
//! and whole-disk FAT volumes ("superfloppies").
use alloc::string::String;
use alloc::vec::Vec;

use crate::block::SECTOR_SIZE;
use crate::{fat, BlockDevice, Error};

/// GPT type GUID of an EFI system partition, as stored on disk (mixed-endian).
pub const GPT_ESP: [u8; 16] = guid(0xC12A7328, 0xF81F, 0x11D2, 0xBA4B_00A0C93EC93B);
/// GPT type GUID of a Microsoft basic data partition, as stored on disk.
pub const GPT_BASIC_DATA: [u8; 16] = guid(0xEBD0A0A2, 0xB9E5, 0x4433, 0x87C0_68B6B72699C7);

/// Builds the on-disk bytes of GUID `a-b-c-d` (first three fields little-endian).
const fn guid(a: u32, b: u16, c: u16, d: u64) -> [u8; 16] {
    let (a, b, c, d) = (
        a.to_le_bytes(),
        b.to_le_bytes(),
        c.to_le_bytes(),
        d.to_be_bytes(),
    );
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// What the partition table says a partition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKind {
    /// MBR partition with this system-id byte.
    Mbr(u8),
    /// GPT partition with this type GUID (on-disk byte order).
    Gpt([u8; 16]),
    /// The whole disk: no partition table, a FAT volume starts at LBA 0 (or an ext2/3/4
    /// superblock is at byte 1024 and there is no MBR signature).
    Whole,
}

/// One partition of a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based number as Linux counts them (GPT entry index + 1; MBR slot 1..4, logical 5..).
    pub number: u32,
    /// First sector on the disk.
    pub first_lba: u64,
    /// Length in sectors.
    pub num_sectors: u64,
    /// Type from the partition table.
    pub kind: PartitionKind,
    /// GPT partition name, if any.
    pub name: Option<String>,
    /// MBR boot indicator 0x80, or GPT attribute bit 2 ("legacy BIOS bootable"): what
    /// U-Boot's distro boot looks for first.
    pub bootable: bool,
    /// As U-Boot's `part uuid` prints it: GPT the unique partition GUID (lowercase
    /// 8-4-4-4-12); MBR the disk signature as 8 hex digits, `-`, the 2-digit partition number
    /// (`1234abcd-01`). `None` for a whole-disk volume.
    pub uuid: Option<String>,
}

/// GPT attribute bit 2: legacy BIOS bootable.
const GPT_ATTR_LEGACY_BOOTABLE: u64 = 1 << 2;
/// Offset of the MBR disk signature.
const MBR_DISK_SIGNATURE: usize = 440;

/// The text form of a GUID stored on disk in mixed-endian order.
pub fn guid_text(g: &[u8; 16]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(36);
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    for (i, &at) in order.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{:02x}", g[at]);
    }
    s
}

/// U-Boot's MBR partition "uuid": disk signature and partition number.
fn mbr_uuid(signature: u32, number: u32) -> Option<String> {
    Some(alloc::format!("{signature:08x}-{number:02x}"))
}

const MBR_SIGNATURE: [u8; 2] = [0x55, 0xAA];
const MBR_TABLE: usize = 446;
const MBR_PROTECTIVE: u8 = 0xEE;
const MBR_EXTENDED: [u8; 3] = [0x05, 0x0F, 0x85];
/// Bound on the EBR chain walk.
const MAX_LOGICAL: u32 = 128;

const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
const GPT_HEADER_MIN: usize = 92;
const GPT_ENTRY_MIN: usize = 128;
/// Bound on the GPT entry array size (bytes).
const GPT_ARRAY_MAX: usize = 1 << 20;

/// Reads the partition table of `dev`.
pub fn partitions(dev: &mut dyn BlockDevice) -> Result<Vec<Partition>, Error> {
    let n = dev.num_sectors();
    if n == 0 {
        return Err(Error::NoPartitionTable);
    }
    let mut s0 = [0u8; SECTOR_SIZE];
    dev.read_sectors(0, &mut s0)?;
    if fat::Layout::parse(&s0, n).is_ok_and(|l| !l.overruns_device()) {
        return Ok(alloc::vec![Partition {
            number: 1,
            first_lba: 0,
            num_sectors: n,
            kind: PartitionKind::Whole,
            name: None,
            bootable: false,
            uuid: None,
        }]);
    }
    if s0[510..512] != MBR_SIGNATURE {
        // A raw ext2/3/4 image used as a disk (QEMU's `-drive file=rootfs.ext4`).
        if matches!(crate::ext4::Superblock::probe(dev), Ok(Some(_))) {
            return Ok(alloc::vec![Partition {
                number: 1,
                first_lba: 0,
                num_sectors: n,
                kind: PartitionKind::Whole,
                name: None,
                bootable: false,
                uuid: None,
            }]);
        }
        return Err(Error::NoPartitionTable);
    }
    let entries = mbr_entries(&s0)?;
    if entries.iter().any(|e| e.kind == MBR_PROTECTIVE) {
        return gpt(dev, n);
    }
    mbr(dev, n, &entries, le32(&s0, MBR_DISK_SIGNATURE))
}

/// One MBR/EBR slot.
#[derive(Clone, Copy)]
struct MbrEntry {
    kind: u8,
    boot: bool,
    lba: u64,
    count: u64,
}

fn mbr_entries(sector: &[u8; SECTOR_SIZE]) -> Result<[MbrEntry; 4], Error> {
    let mut out = [MbrEntry {
        kind: 0,
        boot: false,
        lba: 0,
        count: 0,
    }; 4];
    for (i, e) in out.iter_mut().enumerate() {
        let raw = &sector[MBR_TABLE + 16 * i..MBR_TABLE + 16 * (i + 1)];
        if raw[0] != 0 && raw[0] != 0x80 {
            return Err(Error::BadMbr("boot indicator is neither 0x00 nor 0x80"));
        }
        *e = MbrEntry {
            kind: raw[4],
            boot: raw[0] == 0x80,
            lba: u64::from(le32(raw, 8)),
            count: u64::from(le32(raw, 12)),
        };
    }
    Ok(out)
}

fn in_disk(first: u64, count: u64, n: u64) -> bool {
    count > 0 && first > 0 && first.checked_add(count).is_some_and(|end| end <= n)
}

fn mbr(
    dev: &mut dyn BlockDevice,
    n: u64,
    entries: &[MbrEntry; 4],
    signature: u32,
) -> Result<Vec<Partition>, Error> {
    let mut out = Vec::new();
    let mut extended = None;
    for (i, e) in entries.iter().enumerate() {
        if e.kind == 0 || e.count == 0 {
            continue;
        }
        if MBR_EXTENDED.contains(&e.kind) {
            if in_disk(e.lba, e.count, n) {
                extended.get_or_insert(*e);
            } else {
                log::warn!(
                    "extended partition {} outside the disk ({n} sectors): ignored",
                    i + 1
                );
            }
            continue;
        }
        if !in_disk(e.lba, e.count, n) {
            // Kept: opening it fails with an error that says by how much it overruns.
            log::warn!(
                "MBR partition {} ({}+{}) outside the disk ({n} sectors)",
                i + 1,
                e.lba,
                e.count
            );
        }
        out.push(Partition {
            number: i as u32 + 1,
            first_lba: e.lba,
            num_sectors: e.count,
            kind: PartitionKind::Mbr(e.kind),
            name: None,
            bootable: e.boot,
            uuid: mbr_uuid(signature, i as u32 + 1),
        });
    }
    if let Some(ext) = extended {
        logical(dev, n, ext, signature, &mut out)?;
    }
    Ok(out)
}

/// Walks the EBR chain of extended partition `ext`, bounded by [`MAX_LOGICAL`].
fn logical(
    dev: &mut dyn BlockDevice,
    n: u64,
    ext: MbrEntry,
    signature: u32,
    out: &mut Vec<Partition>,
) -> Result<(), Error> {
    let mut ebr = ext.lba;
    let mut number = 5;
    let mut sector = [0u8; SECTOR_SIZE];
    for _ in 0..MAX_LOGICAL {
        dev.read_sectors(ebr, &mut sector)?;
        if sector[510..512] != MBR_SIGNATURE {
            log::warn!("EBR at LBA {ebr} has no 0x55AA signature: logical partitions truncated");
            return Ok(());
        }
        let [part, next, ..] = mbr_entries(&sector)?;
        if part.kind != 0 && part.count > 0 {
            let first = ebr + part.lba;
            if !in_disk(first, part.count, n) {
                log::warn!(
                    "logical partition {number} ({first}+{}) outside the disk",
                    part.count
                );
            }
            out.push(Partition {
                number,
                first_lba: first,
                num_sectors: part.count,
                kind: PartitionKind::Mbr(part.kind),
                name: None,
                bootable: part.boot,
                uuid: mbr_uuid(signature, number),
            });
            number += 1;
        }
        if next.kind == 0 || next.count == 0 {
            return Ok(());
        }
        ebr = ext.lba + next.lba;
        if next.lba == 0 || next.lba >= ext.count {
            log::warn!("EBR link to LBA {ebr} outside the extended partition: chain cut");
            return Ok(());
        }
    }
    log::warn!("more than {MAX_LOGICAL} logical partitions: chain cut");
    Ok(())
}

/// Reads the GPT from the primary header, else from the backup header at the last sector.
fn gpt(dev: &mut dyn BlockDevice, n: u64) -> Result<Vec<Partition>, Error> {
    match gpt_at(dev, 1, n) {
        Ok(parts) => Ok(parts),
        Err(Error::BadGpt(why)) => {
            log::warn!("primary GPT header invalid ({why}), trying the backup");
            gpt_at(dev, n - 1, n).map_err(|_| Error::BadGpt(why))
        }
        Err(e) => Err(e),
    }
}

fn gpt_at(dev: &mut dyn BlockDevice, lba: u64, n: u64) -> Result<Vec<Partition>, Error> {
    if lba >= n || lba == 0 {
        return Err(Error::BadGpt("header outside the disk"));
    }
    let mut h = [0u8; SECTOR_SIZE];
    dev.read_sectors(lba, &mut h)?;
    if &h[0..8] != GPT_SIGNATURE {
        return Err(Error::BadGpt("no \"EFI PART\" signature"));
    }
    let hsize = le32(&h, 12) as usize;
    if !(GPT_HEADER_MIN..=SECTOR_SIZE).contains(&hsize) {
        return Err(Error::BadGpt("header size outside 92..=512"));
    }
    let mut copy = h;
    copy[16..20].fill(0);
    if crc32(&copy[..hsize]) != le32(&h, 16) {
        return Err(Error::BadGpt("header CRC32 mismatch"));
    }
    if le64(&h, 24) != lba {
        return Err(Error::BadGpt("header's own LBA is wrong"));
    }
    let (first_usable, last_usable) = (le64(&h, 40), le64(&h, 48));
    if first_usable > last_usable || last_usable >= n || first_usable < 2 {
        return Err(Error::BadGpt("usable LBA range outside the disk"));
    }
    let entries_lba = le64(&h, 72);
    let (count, esize) = (le32(&h, 80) as usize, le32(&h, 84) as usize);
    if esize < GPT_ENTRY_MIN || esize % 8 != 0 || esize > SECTOR_SIZE * 8 {
        return Err(Error::BadGpt("partition entry size invalid"));
    }
    let total = count.checked_mul(esize).filter(|&t| t <= GPT_ARRAY_MAX);
    let total = total.ok_or(Error::BadGpt("partition entry array too large"))?;
    let sectors = total.div_ceil(SECTOR_SIZE) as u64;
    let end = entries_lba.checked_add(sectors).filter(|&e| e <= n);
    let end = end.ok_or(Error::BadGpt("partition entry array outside the disk"))?;
    if entries_lba < 2 || (entries_lba <= last_usable && end > first_usable) {
        return Err(Error::BadGpt(
            "partition entry array overlaps the usable area",
        ));
    }
    let mut array = alloc::vec![0u8; sectors as usize * SECTOR_SIZE];
    if sectors > 0 {
        dev.read_sectors(entries_lba, &mut array)?;
    }
    if crc32(&array[..total]) != le32(&h, 88) {
        return Err(Error::BadGpt("partition entry array CRC32 mismatch"));
    }
    let mut out = Vec::new();
    for (i, e) in array[..total].chunks_exact(esize).enumerate() {
        let mut kind = [0u8; 16];
        kind.copy_from_slice(&e[0..16]);
        if kind == [0; 16] {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        if first > last || first < first_usable || last > last_usable {
            log::warn!(
                "GPT entry {} ({first}..={last}) outside the usable area: ignored",
                i + 1
            );
            continue;
        }
        let units = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]));
        let name: String = char::decode_utf16(units.take_while(|&u| u != 0))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        out.push(Partition {
            number: i as u32 + 1,
            first_lba: first,
            num_sectors: last - first + 1,
            kind: PartitionKind::Gpt(kind),
            name: (!name.is_empty()).then_some(name),
            bootable: le64(e, 48) & GPT_ATTR_LEGACY_BOOTABLE != 0,
            uuid: Some(guid_text(e[16..32].try_into().unwrap_or(&[0; 16]))),
        });
    }
    Ok(out)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// CRC-32 (IEEE 802.3, reflected), as GPT uses: the firmware's one CRC-32 (`crc32fast`, also
/// the gzip trailer's and the environment's), not a second table.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}
