//! Partition tables written by `mbrman` and `gpt`, superfloppies, `open_boot_fs`, and broken
//! tables.
mod common;

use std::io::Cursor;

use common::*;
use kexboot_fs::part::{crc32, GPT_BASIC_DATA};
use kexboot_fs::{
    open_boot_fs, partitions, Error, FatType, MemDisk, PartSel, Partition, PartitionKind,
};

const MIB: usize = 1 << 20;

fn place(disk: &mut [u8], lba: u64, img: &[u8]) {
    let at = lba as usize * 512;
    disk[at..at + img.len()].copy_from_slice(img);
}

fn entry(sys: u8, starting_lba: u32, sectors: u32) -> mbrman::MBRPartitionEntry {
    mbrman::MBRPartitionEntry {
        boot: mbrman::BOOT_INACTIVE,
        first_chs: mbrman::CHS::empty(),
        sys,
        last_chs: mbrman::CHS::empty(),
        starting_lba,
        sectors,
    }
}

fn logical(
    ebr: u32,
    ebr_sectors: Option<u32>,
    part: mbrman::MBRPartitionEntry,
) -> mbrman::LogicalPartition {
    mbrman::LogicalPartition {
        partition: part,
        absolute_ebr_lba: ebr,
        ebr_sectors,
        bootstrap_code: [0; 446],
        ebr_first_chs: mbrman::CHS::empty(),
        ebr_last_chs: ebr_sectors.map(|_| mbrman::CHS::empty()),
    }
}

/// 40 MiB MBR disk: 1 Linux (no FAT), 2 FAT16, 3 extended with 5 FAT12 and 6 Linux.
fn mbr_disk() -> (Vec<u8>, Files, Files) {
    let mut cur = Cursor::new(vec![0u8; 40 * MIB]);
    let mut mbr = mbrman::MBR::new_from(&mut cur, 512, [0x12, 0x34, 0x56, 0x78]).unwrap();
    mbr[1] = entry(0x83, 2048, 4096);
    mbr[2] = entry(0x0E, 6144, 32768);
    mbr[2].boot = mbrman::BOOT_ACTIVE;
    mbr[3] = entry(0x0F, 38912, 81920 - 38912);
    mbr.logical_partitions
        .push(logical(38912, None, entry(0x01, 40960, 8192)));
    mbr.logical_partitions
        .push(logical(49152, Some(4096), entry(0x83, 51200, 2048)));
    mbr.write_into(&mut cur).unwrap();
    let mut disk = cur.into_inner();
    let mut fat16 = format(WFatType::Fat16, 16 * MIB, None);
    let f16 = populate(&mut fat16);
    place(&mut disk, 6144, &fat16);
    let mut fat12 = format(WFatType::Fat12, 4 * MIB, None);
    let f12 = populate(&mut fat12);
    place(&mut disk, 40960, &fat12);
    (disk, f16, f12)
}

fn summary(parts: &[Partition]) -> Vec<(u32, u64, u64, PartitionKind)> {
    parts
        .iter()
        .map(|p| (p.number, p.first_lba, p.num_sectors, p.kind))
        .collect()
}

#[test]
fn mbr_primary_and_logical() {
    let (disk, f16, f12) = mbr_disk();
    let mut dev = MemDisk::new(disk);
    let parts = partitions(&mut dev).unwrap();
    assert_eq!(
        summary(&parts),
        [
            (1, 2048, 4096, PartitionKind::Mbr(0x83)),
            (2, 6144, 32768, PartitionKind::Mbr(0x0E)),
            (5, 40960, 8192, PartitionKind::Mbr(0x01)),
            (6, 51200, 2048, PartitionKind::Mbr(0x83)),
        ]
    );
    // `part uuid` as U-Boot prints it: the disk signature (stored 12 34 56 78, read as a
    // little-endian u32) and the partition number; only partition 2 has the 0x80 flag.
    let facts: Vec<(Option<&str>, bool)> = parts
        .iter()
        .map(|p| (p.uuid.as_deref(), p.bootable))
        .collect();
    assert_eq!(
        facts,
        [
            (Some("78563412-01"), false),
            (Some("78563412-02"), true),
            (Some("78563412-05"), false),
            (Some("78563412-06"), false),
        ]
    );
    // First FAT partition by default, skipping the Linux one.
    let (p, mut fs) = open_boot_fs(&mut dev, None).unwrap();
    assert_eq!((p.number, fs.fat_type()), (2, FatType::Fat16));
    for (path, data) in &f16 {
        assert!(fs.read_file(path, 1 << 20).unwrap() == *data, "{path}");
    }
    drop(fs);
    let (p, mut fs) = open_boot_fs(&mut dev, Some(PartSel::parse("5"))).unwrap();
    assert_eq!((p.number, fs.fat_type()), (5, FatType::Fat12));
    for (path, data) in &f12 {
        assert!(fs.read_file(path, 1 << 20).unwrap() == *data, "{path}");
    }
    drop(fs);
    assert!(matches!(
        open_boot_fs(&mut dev, Some(PartSel::Number(1))),
        Err(Error::NotFat(_))
    ));
    assert!(matches!(
        open_boot_fs(&mut dev, Some(PartSel::Number(3))),
        Err(Error::NoSuchPartition)
    ));
    assert!(matches!(
        open_boot_fs(&mut dev, Some(PartSel::Name("boot"))),
        Err(Error::NoSuchPartition)
    ));
}

#[test]
fn truncated_mbr_disk() {
    let (mut disk, _, _) = mbr_disk();
    disk.truncate((6144 + 16000) * 512);
    let mut dev = MemDisk::new(disk);
    let parts = partitions(&mut dev).unwrap();
    assert_eq!(
        parts.len(),
        2,
        "extended partition beyond the end is dropped"
    );
    assert_eq!(
        open_boot_fs(&mut dev, None).err(),
        Some(Error::OutOfRange {
            lba: 6144,
            count: 32768,
            size: 22144
        })
    );
}

/// 32 MiB GPT disk: 1 "rootfs" (Linux, no FAT), 2 "boot" (basic data, FAT16).
fn gpt_disk() -> (Vec<u8>, Files, Vec<gpt::partition::Partition>) {
    let size = 32 * MIB;
    let mut cur = Cursor::new(vec![0u8; size]);
    let pmbr = gpt::mbr::ProtectiveMBR::with_lb_size((size / 512 - 1) as u32);
    pmbr.overwrite_lba0(&mut cur).unwrap();
    let mut g = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(cur, None)
        .unwrap();
    g.add_partition(
        "rootfs",
        4 * MIB as u64,
        gpt::partition_types::LINUX_FS,
        0,
        None,
    )
    .unwrap();
    g.add_partition(
        "boot",
        16 * MIB as u64,
        gpt::partition_types::BASIC,
        1 << 2, // legacy BIOS bootable
        None,
    )
    .unwrap();
    let parts: Vec<_> = g.partitions().values().cloned().collect();
    let mut disk = g.write().unwrap().into_inner();
    let mut fat = format(WFatType::Fat16, 16 * MIB, None);
    let files = populate(&mut fat);
    place(&mut disk, parts[1].first_lba, &fat);
    (disk, files, parts)
}

#[test]
fn gpt_partitions_and_names() {
    let (disk, files, want) = gpt_disk();
    let mut dev = MemDisk::new(disk.clone());
    let parts = partitions(&mut dev).unwrap();
    assert_eq!(parts.len(), 2);
    for (p, w) in parts.iter().zip(&want) {
        assert_eq!(p.first_lba, w.first_lba);
        assert_eq!(p.num_sectors, w.last_lba - w.first_lba + 1);
        assert_eq!(
            p.kind,
            PartitionKind::Gpt(w.part_type_guid.guid.to_bytes_le())
        );
        assert_eq!(p.name.as_deref(), Some(w.name.as_str()));
        let guid = w.part_guid.hyphenated().to_string().to_lowercase();
        assert_eq!(p.uuid.as_deref(), Some(guid.as_str()));
    }
    assert_eq!((parts[0].bootable, parts[1].bootable), (false, true));
    assert_eq!(parts[1].kind, PartitionKind::Gpt(GPT_BASIC_DATA));
    let (p, mut fs) = open_boot_fs(&mut dev, Some(PartSel::parse("boot"))).unwrap();
    assert_eq!(p.number, 2);
    for (path, data) in &files {
        assert!(fs.read_file(path, 1 << 20).unwrap() == *data, "{path}");
    }
    drop(fs);
    assert_eq!(
        open_boot_fs(&mut dev, None).unwrap().0.name.as_deref(),
        Some("boot")
    );
    assert!(matches!(
        open_boot_fs(&mut dev, Some(PartSel::Name("rootfs"))),
        Err(Error::NotFat(_))
    ));
}

#[test]
fn gpt_falls_back_to_backup() {
    let (disk, _, _) = gpt_disk();
    let good = partitions(&mut MemDisk::new(disk.clone())).unwrap();
    let n = disk.len() / 512;

    // Primary header CRC broken (a byte of the disk GUID changed).
    let mut bad = disk.clone();
    bad[512 + 60] ^= 0xFF;
    assert_eq!(partitions(&mut MemDisk::new(bad.clone())).unwrap(), good);
    // Primary entry array broken: its CRC in the (valid) header no longer matches.
    let mut bad2 = disk.clone();
    bad2[1024 + 40] ^= 0x01;
    assert_eq!(partitions(&mut MemDisk::new(bad2)).unwrap(), good);
    // Both headers broken: the primary's fault is reported.
    bad[(n - 1) * 512 + 60] ^= 0xFF;
    assert_eq!(
        partitions(&mut MemDisk::new(bad)),
        Err(Error::BadGpt("header CRC32 mismatch"))
    );
    // Primary signature gone and the disk truncated (backup lost).
    let mut bad3 = disk.clone();
    bad3[512] = b'X';
    bad3.truncate(bad3.len() - 512);
    assert_eq!(
        partitions(&mut MemDisk::new(bad3)),
        Err(Error::BadGpt("no \"EFI PART\" signature"))
    );
    // A header with a valid CRC but an entry array claiming to lie outside the disk.
    let mut bad4 = disk.clone();
    bad4[512 + 72..512 + 80].copy_from_slice(&(n as u64).to_le_bytes());
    let mut h = bad4[512..512 + 92].to_vec();
    h[16..20].fill(0);
    let crc = crc32(&h);
    bad4[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
    bad4[(n - 1) * 512] = 0;
    assert_eq!(
        partitions(&mut MemDisk::new(bad4)),
        Err(Error::BadGpt("partition entry array outside the disk"))
    );
}

#[test]
fn superfloppy_is_one_partition() {
    let mut img = format(WFatType::Fat12, 4 * MIB, None);
    let files = populate(&mut img);
    let mut dev = MemDisk::new(img);
    assert_eq!(
        summary(&partitions(&mut dev).unwrap()),
        [(1, 0, 8192, PartitionKind::Whole)]
    );
    let (p, mut fs) = open_boot_fs(&mut dev, None).unwrap();
    assert_eq!(p.kind, PartitionKind::Whole);
    assert_eq!(fs.read_file(&files[0].0, 4096).unwrap(), files[0].1);
}

#[test]
fn no_partition_table() {
    assert_eq!(
        partitions(&mut MemDisk::new(vec![0; 64 * 512])),
        Err(Error::NoPartitionTable)
    );
    assert_eq!(
        partitions(&mut MemDisk::new(Vec::new())),
        Err(Error::NoPartitionTable)
    );
    let mut junk = pattern(1, 64 * 512);
    junk[510..512].copy_from_slice(&[0x55, 0xAA]);
    junk[446] = 0x33;
    assert!(matches!(
        partitions(&mut MemDisk::new(junk)),
        Err(Error::BadMbr(_))
    ));
    // An MBR without any FAT partition.
    let mut cur = Cursor::new(vec![0u8; MIB]);
    let mut mbr = mbrman::MBR::new_from(&mut cur, 512, [1, 2, 3, 4]).unwrap();
    mbr[1] = entry(0x83, 64, 1000);
    mbr.write_into(&mut cur).unwrap();
    assert_eq!(
        open_boot_fs(MemDisk::new(cur.into_inner()), None).err(),
        Some(Error::NoFatPartition)
    );
}

#[test]
fn crc32_known_answer() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn guid_text_is_lowercase_8_4_4_4_12() {
    assert_eq!(
        kexboot_fs::part::guid_text(&kexboot_fs::part::GPT_ESP),
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    );
}
