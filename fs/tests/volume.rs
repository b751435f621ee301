//! `Volume`: FAT or ext2/3/4 behind one type; `scan` and `open_volume` on partitioned disks.
mod common;

use std::io::Read;

use common::*;
use kexboot_fs::{BlockDevice, Error, MemDisk, PartSel, Volume};

fn ext_image(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}.img.gz", env!("CARGO_MANIFEST_DIR"));
    let mut img = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(path).unwrap()[..])
        .read_to_end(&mut img)
        .unwrap();
    img
}

#[test]
fn mounts_fat_and_ext_and_names_them() {
    let mut fat = format(WFatType::Fat16, 16 << 20, None);
    let files = populate(&mut fat);
    let mut v = Volume::mount(MemDisk::new(fat)).unwrap();
    assert_eq!(v.kind_name(), "FAT16");
    assert!(v.fat_mut().is_some());
    let (path, body) = &files[0];
    assert_eq!(&v.read_file(path, 1 << 20).unwrap(), body);
    assert!(v.device_mut().read_calls() > 0);
    let disk = v.into_inner();
    assert_eq!(disk.num_sectors(), 32768);

    for (name, kind) in [("ext4", "ext4"), ("ext3", "ext3"), ("ext2", "ext2")] {
        let mut v = Volume::mount(MemDisk::new(ext_image(name))).unwrap();
        assert_eq!(v.kind_name(), kind);
        assert!(v.fat_mut().is_none());
        assert_eq!(v.read_file("/vmlinuz", 1 << 20).unwrap().len(), 300_000);
        let mut buf = vec![0u8; 300_000];
        assert_eq!(v.read_file_into("/boot/vmlinuz", &mut buf), Ok(300_000));
        assert!(v.stat("/boot").unwrap().is_dir);
        assert_eq!(v.read_dir("/big").unwrap().len(), 300);
        v.device_mut().clear_log();
        assert_eq!(v.into_inner().read_calls(), 0);
    }
}

#[test]
fn neither_fat_nor_ext_says_why() {
    let (disk, e) = Volume::mount(MemDisk::new(vec![0; 1 << 20])).unwrap_err();
    assert_eq!(e, Error::UnknownFs("no jump instruction at offset 0"));
    assert_eq!(
        e.to_string(),
        "unknown file system (no jump instruction at offset 0)"
    );
    assert_eq!(disk.num_sectors(), 2048);
    // An ext4 superblock that fails its checksum: the ext reader's error, not "unknown".
    let mut img = ext_image("ext4");
    img[1024 + 120] ^= 1;
    let (_, e) = Volume::mount(MemDisk::new(img)).unwrap_err();
    assert!(matches!(e, Error::Ext4Corrupt(_)), "{e}");
    // A read error is passed on as it is.
    let mut disk = MemDisk::new(ext_image("ext4"));
    disk.fail_reads_at(Some(0));
    let (_, e) = Volume::mount(disk).unwrap_err();
    assert_eq!(e, Error::Io { lba: 0 });
}

const MIB: u64 = 1 << 20;

/// A GPT disk: 1 "root" ext4, 2 "boot" FAT16 (legacy-bootable), 3 "blank" (zeros).
fn gpt_disk() -> Vec<u8> {
    let size = 40 * MIB as usize;
    let mut cur = std::io::Cursor::new(vec![0u8; size]);
    let pmbr = gpt::mbr::ProtectiveMBR::with_lb_size((size / 512 - 1) as u32);
    pmbr.overwrite_lba0(&mut cur).unwrap();
    let mut g = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(cur, None)
        .unwrap();
    let types = [
        ("root", 4 * MIB, gpt::partition_types::LINUX_FS, 0),
        ("boot", 16 * MIB, gpt::partition_types::BASIC, 1 << 2),
        ("blank", MIB, gpt::partition_types::LINUX_FS, 0),
    ];
    for (name, len, t, flags) in types {
        g.add_partition(name, len, t, flags, None).unwrap();
    }
    let parts: Vec<_> = g.partitions().values().cloned().collect();
    let mut disk = g.write().unwrap().into_inner();
    let mut put = |lba: u64, img: &[u8]| {
        let at = lba as usize * 512;
        disk[at..at + img.len()].copy_from_slice(img);
    };
    put(parts[0].first_lba, &ext_image("ext4"));
    let mut fat = format(WFatType::Fat16, 16 * MIB as usize, None);
    populate(&mut fat);
    put(parts[1].first_lba, &fat);
    disk
}

#[test]
fn scan_tells_what_each_partition_holds() {
    let disk = MemDisk::new(gpt_disk());
    let (disk, found) = kexboot_fs::scan(disk).unwrap();
    type Row<'a> = (u32, Option<&'a str>, bool, Result<&'a str, Error>);
    let summary: Vec<Row> = found
        .iter()
        .map(|(p, r)| (p.number, p.name.as_deref(), p.bootable, r.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, Some("root"), false, Ok("ext4")),
            (2, Some("boot"), true, Ok("FAT16")),
            (
                3,
                Some("blank"),
                false,
                Err(Error::UnknownFs("no jump instruction at offset 0"))
            ),
        ]
    );
    // The device comes back for opening the chosen partition.
    let (part, mut vol) = kexboot_fs::open_volume(disk, PartSel::Number(1)).unwrap();
    assert_eq!((part.number, vol.kind_name()), (1, "ext4"));
    assert_eq!(
        vol.read_file("/boot/vmlinuz", 1 << 20).unwrap().len(),
        300_000
    );
    let disk = vol.into_inner().into_inner();
    let (part, mut vol) = kexboot_fs::open_volume(disk, PartSel::Name("boot")).unwrap();
    assert_eq!(part.number, 2);
    assert!(vol.fat_mut().is_some());
    let disk = vol.into_inner().into_inner();
    let (disk, e) = kexboot_fs::open_volume(disk, PartSel::Number(3)).unwrap_err();
    assert!(matches!(e, Error::UnknownFs(_)));
    let (disk, e) = kexboot_fs::open_volume(disk, PartSel::Number(9)).unwrap_err();
    assert_eq!(e, Error::NoSuchPartition);
    // No partition table: the error, and the device back.
    let blank = MemDisk::new(vec![0; disk.data().len()]);
    let (_, e) = kexboot_fs::scan(blank).unwrap_err();
    assert_eq!(e, Error::NoPartitionTable);
}

#[test]
fn whole_disk_ext4_is_one_partition() {
    let (disk, found) = kexboot_fs::scan(MemDisk::new(ext_image("ext2"))).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0.kind, kexboot_fs::PartitionKind::Whole);
    assert_eq!(found[0].1, Ok("ext2"));
    let (_, mut vol) = kexboot_fs::open_volume(disk, PartSel::Number(1)).unwrap();
    assert_eq!(
        vol.read_file("/extlinux/extlinux.conf", 4096).unwrap()[..7],
        *b"default"
    );
}
