//! Disk images for the QEMU cases: one FAT32 partition (MBR or GPT) holding the given files,
//! built in memory with `fatfs`, `mbrman` and `gpt`.

use crate::util::{err, write_unless_same, Context, Result};
pub use fatfs::FatType;
use fatfs::{FileSystem, FormatVolumeOptions, FsOptions};
use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::io::{Cursor, Write};
use std::path::Path;

/// Partition table of a test disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// DOS partition table, one bootable FAT32 (LBA) partition.
    Mbr,
    /// GPT (with protective MBR), one "basic data" partition marked legacy-BIOS-bootable.
    Gpt,
}

/// Sector size of every image.
pub const SECTOR: u64 = 512;
/// First LBA of the FAT partition (1 MiB).
pub const PART_START_LBA: u64 = 2048;
/// Size of the FAT partition.
pub const PART_BYTES: u64 = 128 << 20;
/// Room left after the partition (GPT's backup header and table).
const TAIL_BYTES: u64 = 1 << 20;
/// MBR partition type: FAT32 with LBA addressing.
const MBR_FAT32_LBA: u8 = 0x0c;
/// GPT attribute bit 2: legacy BIOS bootable (what U-Boot's `part list -bootable` reads).
const GPT_LEGACY_BOOTABLE: u64 = 1 << 2;

/// Builds a whole disk image holding `files` (absolute paths like `/boot/Image`).
pub fn build(files: &[(&str, &[u8])], scheme: Scheme) -> Result<Vec<u8>> {
    let part_sectors = PART_BYTES / SECTOR;
    let total = PART_START_LBA * SECTOR + PART_BYTES + TAIL_BYTES;
    let mut disk = vec![0u8; total as usize];
    let part = &mut disk[(PART_START_LBA * SECTOR) as usize..][..PART_BYTES as usize];
    fill_fat(part, FatType::Fat32, files)?;

    let mut cur = Cursor::new(&mut disk[..]);
    match scheme {
        Scheme::Mbr => {
            let mut mbr = mbrman::MBR::new_from(&mut cur, SECTOR as u32, *b"KEXB").ctx("mbr")?;
            mbr[1] = mbrman::MBRPartitionEntry {
                boot: mbrman::BOOT_ACTIVE,
                first_chs: mbrman::CHS::empty(),
                sys: MBR_FAT32_LBA,
                last_chs: mbrman::CHS::empty(),
                starting_lba: PART_START_LBA as u32,
                sectors: part_sectors as u32,
            };
            mbr.write_into(&mut cur).ctx("writing mbr")?;
        }
        Scheme::Gpt => {
            let last_lba = total / SECTOR - 1;
            let pmbr =
                gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(last_lba).unwrap_or(u32::MAX));
            pmbr.overwrite_lba0(&mut cur).ctx("protective mbr")?;
            let mut g = gpt::GptConfig::new()
                .writable(true)
                .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
                .create_from_device(cur, None)
                .ctx("gpt")?;
            g.add_partition_at(
                "KEXBOOT",
                1,
                PART_START_LBA,
                part_sectors,
                gpt::partition_types::BASIC,
                GPT_LEGACY_BOOTABLE,
            )
            .ctx("gpt partition")?;
            g.write().ctx("writing gpt")?;
        }
    }
    Ok(disk)
}

/// What a partition of an [`assemble`]d disk holds, for its type code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// A FAT volume (MBR 0x0c, GPT "basic data").
    Fat,
    /// A Linux file system (MBR 0x83, GPT "Linux filesystem data").
    Linux,
}

/// One partition of an [`assemble`]d disk: its type, whether it is marked bootable (MBR active
/// flag, GPT legacy-BIOS-bootable attribute) and its contents (a whole file-system image).
pub struct Part {
    pub kind: PartKind,
    pub bootable: bool,
    pub data: Vec<u8>,
}

/// MBR partition type of a Linux file system.
const MBR_LINUX: u8 = 0x83;
/// Partitions start on 1 MiB boundaries (as fdisk and sgdisk place them).
const ALIGN_SECTORS: u64 = 2048;

/// A whole disk holding `parts` in order, each on a 1 MiB boundary, with partition table
/// `scheme` (at most four partitions with MBR).
pub fn assemble(parts: &[Part], scheme: Scheme) -> Result<Vec<u8>> {
    let mut starts = Vec::with_capacity(parts.len());
    let mut lba = PART_START_LBA;
    for p in parts {
        starts.push(lba);
        let sectors = (p.data.len() as u64).div_ceil(SECTOR);
        lba = (lba + sectors).div_ceil(ALIGN_SECTORS) * ALIGN_SECTORS;
    }
    let total = lba * SECTOR + TAIL_BYTES;
    let mut disk = vec![0u8; total as usize];
    for (p, &start) in parts.iter().zip(&starts) {
        disk[(start * SECTOR) as usize..][..p.data.len()].copy_from_slice(&p.data);
    }
    let mut cur = Cursor::new(&mut disk[..]);
    match scheme {
        Scheme::Mbr => {
            if parts.len() > 4 {
                return Err(err!("{} partitions do not fit an MBR", parts.len()));
            }
            let mut mbr = mbrman::MBR::new_from(&mut cur, SECTOR as u32, *b"KEXB").ctx("mbr")?;
            for (i, (p, &start)) in parts.iter().zip(&starts).enumerate() {
                mbr[i + 1] = mbrman::MBRPartitionEntry {
                    boot: if p.bootable {
                        mbrman::BOOT_ACTIVE
                    } else {
                        mbrman::BOOT_INACTIVE
                    },
                    first_chs: mbrman::CHS::empty(),
                    sys: match p.kind {
                        PartKind::Fat => MBR_FAT32_LBA,
                        PartKind::Linux => MBR_LINUX,
                    },
                    last_chs: mbrman::CHS::empty(),
                    starting_lba: start as u32,
                    sectors: (p.data.len() as u64).div_ceil(SECTOR) as u32,
                };
            }
            mbr.write_into(&mut cur).ctx("writing mbr")?;
        }
        Scheme::Gpt => {
            let last_lba = total / SECTOR - 1;
            let pmbr =
                gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(last_lba).unwrap_or(u32::MAX));
            pmbr.overwrite_lba0(&mut cur).ctx("protective mbr")?;
            let mut g = gpt::GptConfig::new()
                .writable(true)
                .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
                .create_from_device(cur, None)
                .ctx("gpt")?;
            for (i, (p, &start)) in parts.iter().zip(&starts).enumerate() {
                let (name, ty) = match p.kind {
                    PartKind::Fat => ("KEXBOOT-FAT", gpt::partition_types::BASIC),
                    PartKind::Linux => ("KEXBOOT-LINUX", gpt::partition_types::LINUX_FS),
                };
                let flags = if p.bootable { GPT_LEGACY_BOOTABLE } else { 0 };
                let sectors = (p.data.len() as u64).div_ceil(SECTOR);
                g.add_partition_at(name, i as u32 + 1, start, sectors, ty, flags)
                    .ctx(format!("gpt partition {}", i + 1))?;
            }
            g.write().ctx("writing gpt")?;
        }
    }
    Ok(disk)
}

/// A whole-disk FAT volume ("superfloppy") of `bytes` holding `files` (the fuzz seeds' FAT12
/// and FAT16 volumes).
pub fn volume(bytes: usize, fat: FatType, files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut v = vec![0u8; bytes];
    fill_fat(&mut v, fat, files)?;
    Ok(v)
}

/// Formats `part` as FAT of type `fat` and writes the files, creating parent directories.
fn fill_fat(part: &mut [u8], fat: FatType, files: &[(&str, &[u8])]) -> Result<()> {
    let opts = FormatVolumeOptions::new()
        .fat_type(fat)
        .volume_id(0x4b45_5842)
        .volume_label(*b"KEXBOOT    ");
    fatfs::format_volume(Cursor::new(&mut *part), opts).ctx("formatting FAT")?;
    copy_into_fat(part, files)
}

/// Writes the files into the FAT volume at the start of `vol` (formatted by us or by
/// `mkfs.vfat`), creating parent directories.
pub fn copy_into_fat(vol: &mut [u8], files: &[(&str, &[u8])]) -> Result<()> {
    let part = vol;
    let fs = FileSystem::new(Cursor::new(&mut *part), FsOptions::new()).ctx("mounting FAT")?;
    for (path, data) in files {
        let rel = path.trim_start_matches('/');
        let (dirs, name) = match rel.rsplit_once('/') {
            Some((d, n)) => (Some(d), n),
            None => (None, rel),
        };
        let mut dir = fs.root_dir();
        for d in dirs.into_iter().flat_map(|d| d.split('/')) {
            dir = dir.create_dir(d).ctx(format!("{path}: mkdir {d}"))?;
        }
        if name.is_empty() {
            return Err(err!("{path}: not a file path"));
        }
        let mut f = dir.create_file(name).ctx(path)?;
        f.truncate().ctx(path)?;
        f.write_all(data)
            .ctx(format!("{path}: writing {} bytes", data.len()))?;
    }
    fs.unmount().ctx("unmounting FAT")
}

/// Where every test disk keeps its extlinux.conf.
pub const EXTLINUX_CONF: &str = "/extlinux/extlinux.conf";

/// One test disk: its partition table and files, in order. The e2e disk set, the warm disks and
/// the probe disks are all written through it.
pub struct Disk<'a> {
    scheme: Scheme,
    files: Vec<(&'a str, Cow<'a, [u8]>)>,
    /// Whole-image size, when it must be one (an SD card: QEMU takes only powers of two).
    size: Option<u64>,
}

impl<'a> Disk<'a> {
    /// An empty disk with partition table `scheme`.
    pub fn new(scheme: Scheme) -> Self {
        Disk {
            scheme,
            files: Vec::new(),
            size: None,
        }
    }

    /// Pads the image with zeros to `bytes` (MBR only: GPT keeps its backup at the end).
    pub fn size(mut self, bytes: u64) -> Self {
        self.size = Some(bytes);
        self
    }

    /// Adds the file `path` (absolute, like `/boot/Image`).
    pub fn file(mut self, path: &'a str, data: impl Into<Cow<'a, [u8]>>) -> Self {
        self.files.push((path, data.into()));
        self
    }

    /// Adds every `(path, data)` of `files`.
    pub fn files(mut self, files: &[(&'a str, &'a [u8])]) -> Self {
        self.files
            .extend(files.iter().map(|&(p, d)| (p, Cow::Borrowed(d))));
        self
    }

    /// Adds `/extlinux/extlinux.conf` with `conf`.
    pub fn extlinux(self, conf: String) -> Self {
        self.file(EXTLINUX_CONF, conf.into_bytes())
    }

    /// Writes it to `path` ([`write`]); returns whether it wrote.
    pub fn write(&self, path: &Path) -> Result<bool> {
        let refs: Vec<(&str, &[u8])> = self.files.iter().map(|(p, d)| (*p, &d[..])).collect();
        let Some(size) = self.size else {
            return write(path, &refs, self.scheme);
        };
        if self.scheme != Scheme::Mbr {
            return Err(err!("{}: only an MBR image can be padded", path.display()));
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&refs, PART_BYTES, size).hash(&mut h);
        write_unless_same(path, h.finish(), || {
            let mut img = build(&refs, self.scheme).ctx(path.display())?;
            if (img.len() as u64) > size {
                return Err(err!(
                    "{}: {} bytes do not fit {size}",
                    path.display(),
                    img.len()
                ));
            }
            img.resize(size as usize, 0);
            Ok(img)
        })
    }
}

/// Builds the image and writes it to `path` (through a temporary file), unless `path` was
/// already made from the same files (`<path>.stamp` holds a hash of them). Returns whether it wrote.
pub fn write(path: &Path, files: &[(&str, &[u8])], scheme: Scheme) -> Result<bool> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (files, scheme == Scheme::Gpt, PART_BYTES).hash(&mut h);
    write_unless_same(path, h.finish(), || {
        build(files, scheme).ctx(path.display())
    })
}

/// Deterministic garbage (the "corrupt Image" file, a partition of noise).
pub(crate) fn garbage(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn files() -> Vec<(&'static str, Vec<u8>)> {
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        vec![
            ("/boot/Image", big),
            ("/boot/initrd.img", b"initrd".to_vec()),
            (
                "/extlinux/extlinux.conf",
                b"default x\nlabel x\n  linux /boot/Image\n".to_vec(),
            ),
        ]
    }

    fn check_fat(disk: &[u8], files: &[(&str, Vec<u8>)]) {
        let part = &disk[(PART_START_LBA * SECTOR) as usize..][..PART_BYTES as usize];
        let mut part = part.to_vec();
        let fs = FileSystem::new(Cursor::new(&mut part[..]), FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), FatType::Fat32);
        for (path, want) in files {
            let mut got = Vec::new();
            fs.root_dir()
                .open_file(path.trim_start_matches('/'))
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert!(got == *want, "{path} differs");
        }
        assert!(fs.root_dir().open_file("boot/missing").is_err());
    }

    #[test]
    fn mbr_disk_round_trips() {
        let f = files();
        let refs: Vec<(&str, &[u8])> = f.iter().map(|(p, d)| (*p, &d[..])).collect();
        let disk = build(&refs, Scheme::Mbr).unwrap();
        let mbr = mbrman::MBR::read_from(&mut Cursor::new(&disk[..]), 512).unwrap();
        assert_eq!(mbr[1].starting_lba as u64, PART_START_LBA);
        assert_eq!(mbr[1].sectors as u64, PART_BYTES / SECTOR);
        assert_eq!(
            (mbr[1].sys, mbr[1].boot),
            (MBR_FAT32_LBA, mbrman::BOOT_ACTIVE)
        );
        assert!(mbr[2].is_unused());
        assert_eq!(&disk[510..512], &[0x55, 0xaa]);
        check_fat(&disk, &f);
    }

    #[test]
    fn gpt_disk_round_trips() {
        let f = files();
        let refs: Vec<(&str, &[u8])> = f.iter().map(|(p, d)| (*p, &d[..])).collect();
        let disk = build(&refs, Scheme::Gpt).unwrap();
        assert_eq!(&disk[512..520], b"EFI PART");
        assert_eq!(disk[446 + 4], 0xee, "protective MBR type");
        let g = gpt::GptConfig::new()
            .writable(false)
            .open_from_device(Cursor::new(disk.clone()))
            .unwrap();
        let parts = g.partitions();
        assert_eq!(parts.len(), 1);
        let p = &parts[&1];
        assert_eq!(p.first_lba, PART_START_LBA);
        assert_eq!(p.last_lba, PART_START_LBA + PART_BYTES / SECTOR - 1);
        assert_eq!(p.flags, GPT_LEGACY_BOOTABLE);
        check_fat(&disk, &f);
    }

    #[test]
    fn assembled_disks_place_every_partition() {
        let parts = || {
            vec![
                Part {
                    kind: PartKind::Linux,
                    bootable: true,
                    data: vec![0xa5; 3 << 20],
                },
                Part {
                    kind: PartKind::Fat,
                    bootable: false,
                    data: vec![0x5a; 1000],
                },
            ]
        };
        let disk = assemble(&parts(), Scheme::Mbr).unwrap();
        let mbr = mbrman::MBR::read_from(&mut Cursor::new(&disk[..]), 512).unwrap();
        assert_eq!((mbr[1].starting_lba, mbr[1].sys), (2048, MBR_LINUX));
        assert_eq!(mbr[1].boot, mbrman::BOOT_ACTIVE);
        assert_eq!((mbr[2].starting_lba, mbr[2].sectors), (2048 + 6144, 2));
        assert_eq!(disk[(2048 + 6144) * 512], 0x5a);
        assert_eq!(disk[2048 * 512 + (3 << 20) - 1], 0xa5);
        let disk = assemble(&parts(), Scheme::Gpt).unwrap();
        let g = gpt::GptConfig::new()
            .writable(false)
            .open_from_device(Cursor::new(disk))
            .unwrap();
        assert_eq!(
            g.partitions()[&1].part_type_guid,
            gpt::partition_types::LINUX_FS
        );
        assert_eq!(g.partitions()[&2].first_lba, 2048 + 6144);
        let five: Vec<Part> = (0..5).map(|_| parts().remove(1)).collect();
        assert!(assemble(&five, Scheme::Mbr).is_err());
    }

    #[test]
    fn too_big_is_an_error() {
        let huge = vec![0u8; PART_BYTES as usize];
        assert!(build(&[("/boot/Image", &huge[..])], Scheme::Mbr).is_err());
        assert!(build(&[("/boot/", b"x")], Scheme::Mbr).is_err());
    }
}
