//! FAT reader against volumes written by the `fatfs` crate: byte-exact reads, lookup rules,
//! coalesced reads, TooLarge, and corrupted images.
mod common;

use common::*;
use kexboot_fs::{BlockDevice, Error, FatFs, FatType, MemDisk, MAX_READ_BYTES};

fn build(fat: WFatType, size: usize) -> (Vec<u8>, Files) {
    let mut img = format(fat, size, None);
    let files = populate(&mut img);
    (img, files)
}

fn check_volume(fat: WFatType, size: usize, want: FatType) {
    let (img, files) = build(fat, size);
    let mut fs = FatFs::mount(MemDisk::new(img)).unwrap();
    assert_eq!(fs.fat_type(), want);
    for (path, data) in &files {
        let got = fs
            .read_file(path, 1 << 24)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(got == *data, "{path}: contents differ");
        let info = fs.stat(path).unwrap();
        assert_eq!(
            (info.size, info.is_dir),
            (data.len() as u64, false),
            "{path}"
        );
        let mut dst = vec![0u8; data.len() + 10];
        assert_eq!(fs.read_file_into(path, &mut dst).unwrap(), data.len());
        assert!(dst[..data.len()] == data[..]);
    }
    let many = fs.read_dir("/many").unwrap();
    assert_eq!(many.len(), 70);
    for i in 0..70 {
        let name = format!("a rather long file name number {i:03}.txt");
        let e = many
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!((e.size, e.is_dir), (i * 13, false));
    }
    let mut root: Vec<_> = fs
        .read_dir("/")
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.is_dir))
        .collect();
    root.sort();
    let mut want_root = vec![
        ("EMPTY".to_string(), false),
        ("boot".into(), true),
        ("hello.txt".into(), false),
        ("Ünïcødé file name — ok.txt".into(), false),
        (BIG[1..].into(), false),
        ("many".into(), true),
        ("frag-a.bin".into(), false),
        ("frag-b.bin".into(), false),
    ];
    want_root.sort();
    assert_eq!(root, want_root);
    assert_eq!(
        fs.stat("/boot/extlinux").unwrap(),
        kexboot_fs::FileInfo {
            size: 0,
            is_dir: true
        }
    );
}

#[test]
fn fat12_reads_back() {
    check_volume(WFatType::Fat12, 4 << 20, FatType::Fat12);
}

#[test]
fn fat16_reads_back() {
    check_volume(WFatType::Fat16, 16 << 20, FatType::Fat16);
}

#[test]
fn fat32_reads_back() {
    check_volume(WFatType::Fat32, 64 << 20, FatType::Fat32);
}

#[test]
fn lookup_is_case_insensitive() {
    let (img, _) = build(WFatType::Fat16, 16 << 20);
    let mut fs = FatFs::mount(MemDisk::new(img)).unwrap();
    for p in [
        "/boot/extlinux/extlinux.conf",
        "/BOOT/EXTLINUX/EXTLINUX.CONF",
        "boot/ExtLinux/extLINUX.conf",
        "\\boot\\extlinux\\extlinux.conf",
        "//boot/./extlinux//extlinux.conf",
        "/boot/extlinux/../extlinux/extlinux.conf",
    ] {
        assert_eq!(fs.read_file(p, 4096).as_deref(), Ok(CONF), "{p}");
    }
    // The 8.3 aliases fatfs generated work too.
    let alias = short_path(fs.device().data(), "boot/extlinux/extlinux.conf");
    assert!(alias.contains('~'), "{alias}");
    assert_eq!(fs.read_file(&alias, 4096).as_deref(), Ok(CONF), "{alias}");
    assert_eq!(
        fs.read_file(&alias.to_lowercase(), 4096).as_deref(),
        Ok(CONF),
        "{alias}"
    );
    assert_eq!(
        fs.read_file("/ÜNÏCØDÉ FILE NAME — OK.TXT", 4096).unwrap(),
        pattern(2, 777)
    );
    assert_eq!(
        fs.read_file("/boot/extlinux/missing.conf", 10),
        Err(Error::NotFound)
    );
    assert_eq!(fs.read_file("/hello.txt/x", 10), Err(Error::NotADirectory));
    assert_eq!(fs.read_file("/boot", 10), Err(Error::NotAFile));
    assert_eq!(fs.read_dir("/hello.txt"), Err(Error::NotADirectory));
    assert!(fs.stat("/").unwrap().is_dir);
}

/// The 8.3 path of `path` as the writer stored it.
fn short_path(img: &[u8], path: &str) -> String {
    let mut copy = img.to_vec();
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(&mut copy[..]), fatfs::FsOptions::new())
        .unwrap();
    let mut dir = fs.root_dir();
    let mut out = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let e = dir
            .iter()
            .map(|e| e.unwrap())
            .find(|e| e.file_name() == *part)
            .unwrap();
        out += "/";
        out += &e.short_file_name();
        if i + 1 < parts.len() {
            dir = e.to_dir();
        }
    }
    out
}

/// Reads made while reading `path`, as (lba, sectors).
fn reads_for(fs: &mut FatFs<MemDisk>, path: &str, len: usize) -> Vec<(u64, u64)> {
    let before = fs.device().read_calls();
    let mut dst = vec![0u8; len];
    assert_eq!(fs.read_file_into(path, &mut dst).unwrap(), len);
    fs.device().read_log()[before..].to_vec()
}

#[test]
fn contiguous_runs_are_coalesced() {
    for (fat, size) in [
        (WFatType::Fat12, 4 << 20),
        (WFatType::Fat16, 16 << 20),
        (WFatType::Fat32, 64 << 20),
    ] {
        let mut img = format(fat, size, None);
        let fs_w =
            fatfs::FileSystem::new(std::io::Cursor::new(&mut img[..]), fatfs::FsOptions::new())
                .unwrap();
        if fat == WFatType::Fat32 {
            // Push huge.bin past cluster 65535 so the high half of its cluster number matters.
            let filler = vec![0u8; 65536 * fs_w.cluster_size() as usize];
            let mut f = fs_w.root_dir().create_file("filler.bin").unwrap();
            std::io::Write::write_all(&mut f, &filler).unwrap();
        }
        let huge = pattern(9, 2 * MAX_READ_BYTES + 700 * 1024 + 33);
        std::io::Write::write_all(&mut fs_w.root_dir().create_file("huge.bin").unwrap(), &huge)
            .unwrap();
        drop(fs_w);
        let mut fs = FatFs::mount(MemDisk::new(img)).unwrap();
        let log = reads_for(&mut fs, "/HUGE.BIN", huge.len());
        // Directory and FAT first, then 2 full 1 MiB requests, the rest of the whole sectors
        // and the partial last sector, each starting where the previous one ended.
        let whole = (huge.len() / 512) as u64;
        assert!(log.len() <= 7, "{fat:?}: {log:?}"); // + up to 2 FAT windows and the directory
        let data = &log[log.len() - 4..];
        assert_eq!(
            data.iter().map(|r| r.1).collect::<Vec<_>>(),
            [2048, 2048, whole - 4096, 1],
            "{fat:?}"
        );
        assert!(
            data.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0),
            "{fat:?}: {log:?}"
        );
        assert!(fs.read_file("/huge.bin", huge.len()).unwrap() == huge);
        if fat == WFatType::Fat32 {
            assert!(data[0].0 > 65536 * fs.cluster_size() / 512, "{log:?}");
        }
    }
}

#[test]
fn long_chains_read_the_fat_in_growing_windows() {
    // FAT32 with 512-byte clusters: a 20 MB file's chain spans 160 KiB (320 sectors) of FAT.
    let mut img = format(WFatType::Fat32, 128 << 20, Some(512));
    let fs_w = fatfs::FileSystem::new(std::io::Cursor::new(&mut img[..]), fatfs::FsOptions::new())
        .unwrap();
    let big = pattern(5, 20 << 20);
    std::io::Write::write_all(&mut fs_w.root_dir().create_file("big.bin").unwrap(), &big).unwrap();
    drop(fs_w);
    let reserved = u64::from(u16::from_le_bytes([img[14], img[15]]));
    let fat_sectors = u64::from(u32::from_le_bytes(img[36..40].try_into().unwrap()));
    let in_fat = |log: &[(u64, u64)]| -> Vec<(u64, u64)> {
        log.iter()
            .copied()
            .filter(|r| r.0 >= reserved && r.0 < reserved + fat_sectors)
            .collect()
    };
    let mut fs = FatFs::mount(MemDisk::new(img)).unwrap();
    let log = reads_for(&mut fs, "/big.bin", big.len());
    let fat = in_fat(&log);
    // 64, 256, then 1024 sectors, each window right after the one before: 3 requests where
    // fixed 64-sector windows took 6.
    assert!(fat.len() <= 3, "{fat:?}");
    assert!(fat.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0), "{fat:?}");
    assert!(fat.iter().map(|r| r.1).sum::<u64>() >= 320, "{fat:?}");
    assert!(fs.read_file("/big.bin", big.len()).unwrap() == big);
    // A lookup elsewhere after the walk reads a small window again.
    let before = fs.device().read_log().len();
    fs.read_file("/nothing-here.bin", 10).unwrap_err();
    let later = in_fat(&fs.device().read_log()[before..]);
    assert!(later.iter().all(|r| r.1 <= 64), "{later:?}");
}

#[test]
fn fragmented_file_reads_in_runs() {
    let (img, files) = build(WFatType::Fat16, 16 << 20);
    let mut fs = FatFs::mount(MemDisk::new(img)).unwrap();
    let a = &files.iter().find(|f| f.0 == "/frag-a.bin").unwrap().1;
    let log = reads_for(&mut fs, "/frag-a.bin", a.len());
    let cluster_sectors = fs.cluster_size() / 512;
    let data_reads = log.iter().filter(|r| r.1 == cluster_sectors).count();
    // 9 full clusters, written interleaved with frag-b: not contiguous.
    assert!(data_reads >= 9, "file is not fragmented: {log:?}");
    assert!(fs.read_file("/frag-a.bin", 1 << 20).unwrap() == *a);
}

#[test]
fn too_large_writes_nothing() {
    let (img, _) = build(WFatType::Fat12, 4 << 20);
    let mut fs = FatFs::mount(MemDisk::new(img)).unwrap();
    let mut dst = vec![0xA5u8; BIG_LEN - 1];
    assert_eq!(
        fs.read_file_into(BIG, &mut dst),
        Err(Error::TooLarge {
            size: BIG_LEN as u64,
            capacity: BIG_LEN as u64 - 1
        })
    );
    assert!(dst.iter().all(|&b| b == 0xA5));
    assert_eq!(
        fs.read_file(BIG, 1000),
        Err(Error::TooLarge {
            size: BIG_LEN as u64,
            capacity: 1000
        })
    );
    let mut exact = vec![0u8; BIG_LEN];
    assert_eq!(fs.read_file_into(BIG, &mut exact), Ok(BIG_LEN));
}

/// A FAT16 image with `LOOP.BIN` (5 clusters) and `LOOPDIR` (a directory of 2+ clusters).
fn corruptible() -> (Vec<u8>, Bpb, usize, usize) {
    let mut img = format(WFatType::Fat16, 16 << 20, Some(2048));
    let bpb = Bpb::read(&img);
    {
        let fs =
            fatfs::FileSystem::new(std::io::Cursor::new(&mut img[..]), fatfs::FsOptions::new())
                .unwrap();
        let root = fs.root_dir();
        let data = pattern(5, bpb.cluster_bytes() * 5);
        std::io::Write::write_all(&mut root.create_file("LOOP.BIN").unwrap(), &data).unwrap();
        let d = root.create_dir("LOOPDIR").unwrap();
        for i in 0..80 {
            d.create_file(&format!("F{i}.TXT")).unwrap();
        }
    }
    let dir_len = bpb.root_entries * 32;
    let file = find_entry(&img, bpb.root_dir(), dir_len, b"LOOP    BIN");
    let dir = find_entry(&img, bpb.root_dir(), dir_len, b"LOOPDIR    ");
    (img, bpb, file, dir)
}

#[test]
fn corrupt_chains_are_typed_errors() {
    let (img, bpb, file, dir) = corruptible();
    let first = entry_cluster(&img, file);
    let mut fs = FatFs::mount(MemDisk::new(img.clone())).unwrap();
    assert_eq!(
        fs.read_file("/loop.bin", 1 << 20).unwrap(),
        pattern(5, bpb.cluster_bytes() * 5)
    );
    assert_eq!(fs.read_dir("/loopdir").unwrap().len(), 80);

    // The third cluster of the file points back to the first.
    let mut bad = img.clone();
    bpb.set_fat16(&mut bad, first + 2, first as u16);
    let mut fs = FatFs::mount(MemDisk::new(bad)).unwrap();
    assert_eq!(
        fs.read_file("/loop.bin", 1 << 20).err(),
        Some(Error::ChainLoop {
            cluster: first as u32
        })
    );

    // A FAT entry pointing past the last cluster.
    let mut bad = img.clone();
    bpb.set_fat16(&mut bad, first + 1, 0xFFF0);
    let mut fs = FatFs::mount(MemDisk::new(bad)).unwrap();
    assert!(matches!(
        fs.read_file("/loop.bin", 1 << 20),
        Err(Error::BadCluster {
            cluster: 0xFFF0,
            ..
        })
    ));

    // A free cluster inside the chain.
    let mut bad = img.clone();
    bpb.set_fat16(&mut bad, first + 3, 0);
    let mut fs = FatFs::mount(MemDisk::new(bad)).unwrap();
    assert!(matches!(
        fs.read_file("/loop.bin", 1 << 20),
        Err(Error::Corrupt(_))
    ));

    // A size larger than the chain (the chain ends after 5 clusters).
    let mut bad = img.clone();
    let size = (bpb.cluster_bytes() * 5 + 1) as u32;
    bad[file + 28..file + 32].copy_from_slice(&size.to_le_bytes());
    let mut fs = FatFs::mount(MemDisk::new(bad)).unwrap();
    let mut dst = vec![0x5Au8; 1 << 20];
    assert_eq!(
        fs.read_file_into("/loop.bin", &mut dst),
        Err(Error::ShortChain {
            size: size.into(),
            chain_bytes: (bpb.cluster_bytes() * 5) as u64
        })
    );
    assert!(
        dst.iter().all(|&b| b == 0x5A),
        "nothing written before the error"
    );

    // A size larger than the whole volume.
    let mut bad = img.clone();
    bad[file + 28..file + 32].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut fs = FatFs::mount(MemDisk::new(bad)).unwrap();
    assert!(matches!(
        fs.read_file("/loop.bin", usize::MAX),
        Err(Error::ShortChain { .. })
    ));

    // A directory whose chain loops: last cluster points back to the first.
    let mut bad = img.clone();
    let d0 = entry_cluster(&img, dir);
    let mut last = d0;
    while bpb.fat16(&img, last) < 0xFFF8 {
        last = bpb.fat16(&img, last) as usize;
    }
    assert_ne!(last, d0, "directory should span several clusters");
    bpb.set_fat16(&mut bad, last, d0 as u16);
    let mut fs = FatFs::mount(MemDisk::new(bad.clone())).unwrap();
    assert_eq!(
        fs.read_dir("/loopdir"),
        Err(Error::ChainLoop { cluster: d0 as u32 })
    );
    assert_eq!(
        fs.stat("/loopdir/f1.txt"),
        Err(Error::ChainLoop { cluster: d0 as u32 })
    );

    // A subdirectory entry pointing to its own parent: lookups stay bounded by the path.
    let mut bad = img.clone();
    let sub = bpb.cluster(d0) + 2 * 32; // after "." and ".."
    bad[sub..sub + 11].copy_from_slice(b"SELF       ");
    bad[sub + 11] = 0x10;
    bad[sub + 26..sub + 28].copy_from_slice(&(d0 as u16).to_le_bytes());
    let mut fs = FatFs::mount(MemDisk::new(bad)).unwrap();
    let deep = format!("/loopdir{}", "/self".repeat(50));
    assert!(fs.stat(&deep).unwrap().is_dir);
}

#[test]
fn io_errors_propagate() {
    let (img, bpb, file, _) = corruptible();
    let lba = (bpb.cluster(entry_cluster(&img, file)) / 512) as u64;
    let mut disk = MemDisk::new(img);
    disk.fail_reads_at(Some(lba + 1));
    let mut fs = FatFs::mount(disk).unwrap();
    assert_eq!(
        fs.read_file("/loop.bin", 1 << 20).err(),
        Some(Error::Io { lba })
    );
}

#[test]
fn bad_boot_sectors_are_refused() {
    let img = format(WFatType::Fat16, 16 << 20, None);
    let mount = |img: &[u8]| FatFs::mount(MemDisk::new(img.to_vec())).map(|_| ());
    assert_eq!(mount(&img), Ok(()));
    let cases: &[(usize, &[u8])] = &[
        (0, &[0x00]),        // no jump
        (11, &[0x00, 0x03]), // 768 bytes/sector
        (11, &[0x00, 0x01]), // 256 bytes/sector
        (11, &[0x00, 0x20]), // 8192 bytes/sector
        (13, &[3]),          // 3 sectors/cluster
        (13, &[0]),          // 0 sectors/cluster
        (14, &[0, 0]),       // no reserved sectors
        (16, &[0]),          // no FATs
        (21, &[0x12]),       // media
        (22, &[1, 0]),       // FAT too small
        (17, &[0, 0]),       // FAT16 without root entries
        (19, &[0, 0]),       // total sectors zero (tot16 = 0 and tot32 = 0 for this size)
    ];
    for &(off, bytes) in cases {
        let mut bad = img.clone();
        bad[off..off + bytes.len()].copy_from_slice(bytes);
        if off == 19 {
            bad[32..36].fill(0);
        }
        assert!(
            matches!(mount(&bad), Err(Error::NotFat(_))),
            "offset {off}: {:?}",
            mount(&bad)
        );
    }
    // Garbage and empty devices.
    assert!(matches!(mount(&pattern(7, 1 << 20)), Err(Error::NotFat(_))));
    assert!(matches!(mount(&[]), Err(Error::NotFat(_))));
    // Truncated device: the BPB says more sectors than there are. Mounted (reads inside
    // work, see tests/lenient.rs) as long as the FATs and root directory fit.
    assert_eq!(mount(&img[..8 << 20]), Ok(()));
    assert_eq!(
        mount(&img[..16 << 10]),
        Err(Error::NotFat(
            "FATs and root directory extend past the end of the device"
        ))
    );
}

#[test]
fn memdisk_and_partition_device_bounds() {
    let mut d = MemDisk::new(vec![7u8; 4096]);
    let mut buf = [0u8; 1024];
    assert_eq!(
        d.read_sectors(7, &mut buf),
        Err(Error::OutOfRange {
            lba: 7,
            count: 2,
            size: 8
        })
    );
    assert_eq!(
        d.read_sectors(0, &mut buf[..100]),
        Err(Error::BadBuffer { len: 100 })
    );
    assert_eq!(
        d.read_sectors(u64::MAX, &mut buf),
        Err(Error::OutOfRange {
            lba: u64::MAX,
            count: 2,
            size: 8
        })
    );
    let part = kexboot_fs::Partition {
        number: 1,
        first_lba: 2,
        num_sectors: 4,
        kind: kexboot_fs::PartitionKind::Mbr(0x0C),
        name: None,
        bootable: false,
        uuid: None,
    };
    let mut p = kexboot_fs::PartitionDevice::new(&mut d, &part).unwrap();
    assert_eq!(p.num_sectors(), 4);
    assert_eq!(p.read_sectors(2, &mut buf), Ok(()));
    assert_eq!(
        p.read_sectors(3, &mut buf),
        Err(Error::OutOfRange {
            lba: 3,
            count: 2,
            size: 4
        })
    );
    assert_eq!(d.read_log(), &[(4, 2)]);
    let too_big = kexboot_fs::Partition {
        num_sectors: 7,
        ..part
    };
    assert!(matches!(
        kexboot_fs::PartitionDevice::new(&mut d, &too_big),
        Err(Error::OutOfRange { .. })
    ));
}

#[test]
fn repeated_lookups_in_a_directory_cost_no_reads() {
    for (fat, size) in [(WFatType::Fat16, 16 << 20), (WFatType::Fat32, 64 << 20)] {
        let mut img = format(fat, size, None);
        populate(&mut img);
        let mut fs = FatFs::mount(MemDisk::new(img)).unwrap();
        let name = |i: u32| format!("/many/a rather long file name number {i:03}.txt");
        fs.stat(&name(0)).unwrap();
        let before = fs.device().read_calls();
        for i in 0..70 {
            assert_eq!(fs.stat(&name(i)).unwrap().size, u64::from(i) * 13);
        }
        assert_eq!(fs.stat("/many/nope"), Err(Error::NotFound));
        assert_eq!(fs.read_dir("/many").unwrap().len(), 70);
        assert_eq!(
            fs.device().read_calls(),
            before,
            "{fat:?}: lookups read the disk"
        );
        // Reading a file costs only its data (plus FAT sectors).
        fs.read_file("/boot/extlinux/extlinux.conf", 4096).unwrap();
        let after_conf = fs.device().read_calls();
        assert!(after_conf - before <= 6, "{fat:?}: {}", after_conf - before);
        fs.stat("/boot/extlinux/extlinux.conf").unwrap();
        assert_eq!(fs.device().read_calls(), after_conf);
        // A write forgets what was cached: the next lookup reads, and sees the new file.
        fs.create_file("/many/NEW.TXT", 5).unwrap();
        let before = fs.device().read_calls();
        assert_eq!(fs.stat("/many/new.txt").unwrap().size, 5);
        assert!(fs.device().read_calls() > before);
        // More directories than the cache keeps: all still found.
        for p in [
            "/boot",
            "/boot/extlinux",
            "/many",
            "/",
            "/hello.txt",
            &name(3),
        ] {
            fs.stat(p).unwrap();
        }
    }
}
