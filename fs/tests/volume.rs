//! `Volume`: FAT or ext2/3/4 behind one type; `scan` and `open_volume` on partitioned disks.
mod common;

use std::io::Read;

use common::*;
use kexboot_fs::{BlockDevice, Error, MemDisk, Volume};

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
