//! A FAT volume whose boot sector claims more sectors than its partition (what
//! `mkfs.vfat --offset N` without a size makes on a GPT disk): mounted, read inside the
//! partition, never written past it.
mod common;

use std::io::{Cursor, Write};

use common::*;
use kexboot_fs::{open_boot_fs, partitions, Error, MemDisk};

const MIB: usize = 1 << 20;
/// Partition start and length (sectors): 8 MiB of a 16 MiB volume.
const START: u64 = 2048;
const LEN: u64 = (8 * MIB / 512) as u64;

/// An MBR disk whose partition 1 holds the first 8 MiB of a 16 MiB FAT16 volume; the volume
/// has `IMAGE` near its start and `FAR.BIN` past 10 MiB.
pub fn overrunning_disk() -> (Vec<u8>, Vec<u8>) {
    let mut fat = format(WFatType::Fat16, 16 * MIB, Some(4096));
    let image = pattern(7, 100_000);
    {
        let fs =
            fatfs::FileSystem::new(Cursor::new(&mut fat[..]), fatfs::FsOptions::new()).unwrap();
        let root = fs.root_dir();
        root.create_file("IMAGE")
            .unwrap()
            .write_all(&image)
            .unwrap();
        root.create_file("FILLER")
            .unwrap()
            .write_all(&vec![1u8; 10 * MIB])
            .unwrap();
        root.create_file("FAR.BIN")
            .unwrap()
            .write_all(&pattern(8, 4096))
            .unwrap();
        root.remove("FILLER").unwrap();
    }
    let mut cur = Cursor::new(vec![0u8; (START + LEN) as usize * 512 + MIB]);
    let mut mbr = mbrman::MBR::new_from(&mut cur, 512, [1, 2, 3, 4]).unwrap();
    mbr[1] = mbrman::MBRPartitionEntry {
        boot: mbrman::BOOT_ACTIVE,
        first_chs: mbrman::CHS::empty(),
        sys: 0x0C,
        last_chs: mbrman::CHS::empty(),
        starting_lba: START as u32,
        sectors: LEN as u32,
    };
    mbr.write_into(&mut cur).unwrap();
    let mut disk = cur.into_inner();
    let at = START as usize * 512;
    disk[at..at + LEN as usize * 512].copy_from_slice(&fat[..LEN as usize * 512]);
    (disk, image)
}

#[test]
fn reads_inside_writes_never_past_the_partition() {
    let (disk, image) = overrunning_disk();
    let mut dev = MemDisk::new(disk);
    assert_eq!(partitions(&mut dev).unwrap()[0].num_sectors, LEN);
    let (part, mut fs) = open_boot_fs(&mut dev, None).unwrap();
    assert_eq!(part.number, 1);
    assert_eq!(fs.read_file("/IMAGE", 1 << 20).unwrap(), image);
    assert!(fs.stat("/FAR.BIN").is_ok());
    assert!(matches!(
        fs.read_file("/FAR.BIN", 1 << 20),
        Err(Error::OutOfRange { .. })
    ));
    // Overwriting a file past the end is refused before any write.
    assert!(matches!(
        fs.write_in_place("/FAR.BIN", 0, b"x"),
        Err(Error::OutOfRange { .. })
    ));
    fs.write_in_place("/IMAGE", 10, b"inside").unwrap();
    // New files get clusters inside the partition only; what does not fit is DiskFull, even
    // though the volume's FAT shows free clusters past the end.
    fs.create_file("/NEW.BIN", 2 * MIB as u64).unwrap();
    assert!(matches!(
        fs.create_file("/HUGE.BIN", 6 * MIB as u64),
        Err(Error::DiskFull { .. })
    ));
    assert_eq!(fs.read_file("/NEW.BIN", 4 * MIB).unwrap(), vec![0; 2 * MIB]);
    drop(fs);
    let end = START + LEN;
    assert!(!dev.write_log().is_empty());
    for &(lba, n) in dev.write_log() {
        assert!(
            lba >= START && lba + n <= end,
            "write {lba}+{n} outside {START}..{end}"
        );
    }
}
