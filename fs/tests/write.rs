//! Writing: files created and overwritten by kexboot, checked with the independent `fatfs`
//! reader (contents, sizes, listings, free-cluster counts); full disks and directories; power
//! cuts in the middle of a write; random create/write sequences.
mod common;

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::OnceLock;

use common::*;
use kexboot_fs::{
    BlockDevice, Error, FatFs, MemDisk, Partition, PartitionDevice, PartitionKind, SECTOR_SIZE,
};
use proptest::prelude::*;

const ALL: [(WFatType, usize); 3] = [
    (WFatType::Fat12, 4 << 20),
    (WFatType::Fat16, 16 << 20),
    (WFatType::Fat32, 64 << 20),
];

fn build(fat: WFatType, size: usize, cluster: Option<u32>) -> (Vec<u8>, Files) {
    let mut img = format(fat, size, cluster);
    let files = populate(&mut img);
    (img, files)
}

fn with_fatfs<R>(img: &[u8], f: impl FnOnce(&fatfs::FileSystem<Cursor<&mut [u8]>>) -> R) -> R {
    let mut copy = img.to_vec();
    let fs = fatfs::FileSystem::new(Cursor::new(&mut copy[..]), fatfs::FsOptions::new())
        .expect("fatfs mounts the image");
    f(&fs)
}

/// Every file in `files` reads back through `fatfs` with these exact contents.
fn fatfs_check(img: &[u8], files: &Files) {
    with_fatfs(img, |fs| {
        for (path, data) in files {
            let mut f = fs
                .root_dir()
                .open_file(&path[1..])
                .unwrap_or_else(|e| panic!("fatfs opens {path}: {e}"));
            let mut got = Vec::new();
            f.read_to_end(&mut got)
                .unwrap_or_else(|e| panic!("fatfs reads {path}: {e}"));
            assert!(got == *data, "{path}: fatfs reads other bytes");
        }
    });
}

/// Free clusters as `fatfs` reports them (FAT32: from FSInfo), and counted from the FAT.
fn free_counts(img: &[u8]) -> (u32, u32) {
    let reported = with_fatfs(img, |fs| fs.stats().unwrap().free_clusters());
    let mut copy = img.to_vec();
    if copy[22] == 0 && copy[23] == 0 {
        // FAT32: invalidate the FSInfo free count so fatfs counts the FAT.
        let fsinfo = u16::from_le_bytes([copy[48], copy[49]]) as usize * Bpb::read(&copy).bps;
        copy[fsinfo + 488..fsinfo + 492].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    let counted = with_fatfs(&copy, |fs| fs.stats().unwrap().free_clusters());
    (reported, counted)
}

/// Geometry of a volume, enough to walk its FAT.
struct Geo {
    fat32: bool,
    fat12: bool,
    fat: usize,
    fat_bytes: usize,
    nfats: usize,
    data: usize,
    cluster: usize,
    clusters: usize,
}

fn geo(img: &[u8]) -> Geo {
    let b = Bpb::read(img);
    let fat32 = img[22] == 0 && img[23] == 0;
    let total = match u16::from_le_bytes([img[19], img[20]]) {
        0 => u32::from_le_bytes(img[32..36].try_into().unwrap()) as usize,
        n => n as usize,
    };
    let root = (b.root_entries * 32).div_ceil(b.bps);
    let meta = b.reserved + b.nfats * b.fatsz + root;
    let clusters = (total - meta) / b.spc;
    Geo {
        fat32,
        fat12: !fat32 && clusters < 4085,
        fat: b.reserved * b.bps,
        fat_bytes: b.fatsz * b.bps,
        nfats: b.nfats,
        data: meta * b.bps,
        cluster: b.cluster_bytes(),
        clusters,
    }
}

impl Geo {
    fn entry(&self, img: &[u8], c: usize) -> u32 {
        let f = &img[self.fat..];
        if self.fat32 {
            u32::from_le_bytes(f[c * 4..c * 4 + 4].try_into().unwrap()) & 0x0FFF_FFFF
        } else if self.fat12 {
            let v = u16::from_le_bytes([f[c + c / 2], f[c + c / 2 + 1]]) as u32;
            if c & 1 == 1 {
                v >> 4
            } else {
                v & 0xFFF
            }
        } else {
            u16::from_le_bytes([f[c * 2], f[c * 2 + 1]]) as u32
        }
    }
    fn set32(&self, img: &mut [u8], c: usize, v: u32) {
        for n in 0..self.nfats {
            let at = self.fat + n * self.fat_bytes + c * 4;
            img[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    /// Fills the data of every free cluster with `byte` (garbage a reader must never see).
    fn fill_free(&self, img: &mut [u8], byte: u8) {
        for c in 2..self.clusters + 2 {
            if self.entry(img, c) == 0 {
                let at = self.data + (c - 2) * self.cluster;
                img[at..at + self.cluster].fill(byte);
            }
        }
    }
    /// Every FAT copy is identical to the first.
    fn fats_agree(&self, img: &[u8]) -> bool {
        let first = &img[self.fat..self.fat + self.fat_bytes];
        (1..self.nfats).all(|n| {
            let at = self.fat + n * self.fat_bytes;
            &img[at..at + self.fat_bytes] == first
        })
    }
}

fn mount(img: Vec<u8>) -> FatFs<MemDisk> {
    FatFs::mount(MemDisk::new(img)).unwrap()
}

#[test]
fn created_files_read_back_with_fatfs() {
    for (fat, size) in ALL {
        let (mut img, mut files) = build(fat, size, None);
        let g = geo(&img);
        g.fill_free(&mut img, 0xA5);
        let (free0, _) = free_counts(&img);
        let mut fs = mount(img);
        let cb = fs.cluster_size() as usize;
        let new: [(&str, usize); 6] = [
            ("/ENV.BIN", 3 * cb + 100),
            ("/bootcoun", 4),
            ("/boot/extlinux/env.txt", 1000),
            ("/boot/ZERO", 0),
            ("/NEWDIR/SUB/DEEP.DAT", cb + 1),
            ("/many/X.Y", 2 * cb),
        ];
        for (i, (path, len)) in new.iter().enumerate() {
            fs.create_file(path, *len as u64)
                .unwrap_or_else(|e| panic!("{fat:?} {path}: {e}"));
            assert_eq!(fs.read_file(path, 1 << 20).unwrap(), vec![0u8; *len]);
            let data = pattern(50 + i as u64, *len);
            // Unaligned head, whole sectors, unaligned tail; then the rest.
            let cut = (*len).min(777);
            fs.write_in_place(path, 0, &data[..cut]).unwrap();
            fs.write_in_place(path, cut as u64, &data[cut..]).unwrap();
            assert!(
                fs.read_file(path, 1 << 20).unwrap() == data,
                "{fat:?} {path}"
            );
            files.push((path.to_string(), data));
        }
        // Overwrite the middle of an existing file written by fatfs.
        let (path, big) = files.iter_mut().find(|f| f.0 == BIG).unwrap();
        let patch = pattern(99, 5000);
        fs.write_in_place(path, 12345, &patch).unwrap();
        big[12345..12345 + 5000].copy_from_slice(&patch);

        let img = fs.into_inner().into_inner();
        fatfs_check(&img, &files);
        assert!(g.fats_agree(&img), "{fat:?}: FAT copies differ");
        with_fatfs(&img, |fs| {
            let names: Vec<String> = fs
                .root_dir()
                .iter()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(names.contains(&"ENV.BIN".into()), "{names:?}");
            assert!(names.contains(&"bootcoun".into()), "{names:?}");
            let deep = fs.root_dir().open_dir("newdir/sub").unwrap();
            let dots: Vec<String> = deep.iter().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(dots, [".", "..", "DEEP.DAT"]);
            // ".." of the new directory leads back to its parent.
            let up = fs.root_dir().open_dir("newdir/sub/../..").unwrap();
            assert!(up.iter().any(|e| e.unwrap().file_name() == "ENV.BIN"));
        });
        let used: usize = new.iter().map(|(_, l)| l.div_ceil(cb)).sum::<usize>() + 2;
        let (reported, counted) = free_counts(&img);
        assert_eq!(counted as usize, free0 as usize - used, "{fat:?}");
        assert_eq!(reported, counted, "{fat:?}: free count (FSInfo) is stale");
    }
}

#[test]
fn fat32_clusters_above_65535() {
    let (mut img, mut files) = build(WFatType::Fat32, 64 << 20, Some(512));
    let g = geo(&img);
    // Mark everything below cluster 70000 bad so the new file lands above it.
    for c in 2..70_000 {
        if g.entry(&img, c) == 0 {
            g.set32(&mut img, c, 0x0FFF_FFF7);
        }
    }
    let mut fs = mount(img);
    fs.create_file("/HIGH.BIN", 3000).unwrap();
    let data = pattern(3, 3000);
    fs.write_in_place("/high.bin", 0, &data).unwrap();
    let lba = fs.device().write_log().last().unwrap().0;
    assert!(lba as usize * 512 > g.data + 70_000 * 512, "{lba}");
    files.push(("/HIGH.BIN".into(), data));
    fatfs_check(&fs.into_inner().into_inner(), &files);
}

#[test]
fn in_place_writes_touch_only_the_files_sectors() {
    let (img, _) = build(WFatType::Fat16, 16 << 20, None);
    let mut fs = mount(img.clone());
    fs.create_file("/ENV.BIN", 9000).unwrap();
    let before = fs.device().data().to_vec();
    fs.device_mut().clear_log();
    let writes_before = fs.device().write_log().len();
    fs.write_in_place("/env.bin", 700, &pattern(1, 5000))
        .unwrap();
    let log = &fs.device().write_log()[writes_before..];
    // Head sector RMW, whole sectors in one request, tail sector RMW.
    assert_eq!(
        log.iter().map(|w| w.1).collect::<Vec<_>>(),
        [1, 9, 1],
        "{log:?}"
    );
    let after = fs.device().data();
    let changed: Vec<usize> = (0..after.len())
        .filter(|&i| after[i] != before[i])
        .collect();
    let (lo, hi) = (changed[0], changed[changed.len() - 1]);
    let first_lba = (log[0].0 as usize - 1) * SECTOR_SIZE; // the head sector is the file's 2nd
    assert_eq!((lo, hi + 1), (first_lba + 700, first_lba + 5700));
}

#[test]
fn directories_grow_and_fixed_roots_fill_up() {
    // 512-byte clusters: 16 entries each, so a subdirectory (and the FAT32 root) grows often.
    for (fat, size) in [(WFatType::Fat16, 16 << 20), (WFatType::Fat32, 40 << 20)] {
        let (img, mut files) = build(fat, size, Some(512));
        let mut fs = mount(img);
        for i in 0..40 {
            for dir in ["", "/boot"] {
                let path = format!("{dir}/F{i:03}.BIN");
                fs.create_file(&path, 10).unwrap();
                let data = pattern(i, 10);
                fs.write_in_place(&path, 0, &data).unwrap();
                files.push((path, data));
            }
        }
        fatfs_check(fs.device().data(), &files);
        let boot = fs.read_dir("/boot").unwrap();
        assert_eq!(boot.len(), 41, "{fat:?}");
    }
    // The FAT12/16 root is fixed (512 entries): fill it, then a clean DirectoryFull.
    for (fat, size) in [(WFatType::Fat12, 4 << 20), (WFatType::Fat16, 16 << 20)] {
        let (img, mut files) = build(fat, size, None);
        let mut fs = mount(img);
        let mut made = 0;
        let err = loop {
            let path = format!("/R{made:05}");
            match fs.create_file(&path, 1) {
                Ok(()) => files.push((path, vec![0])),
                Err(e) => break e,
            }
            made += 1;
            assert!(made <= 512, "{fat:?}: root never filled");
        };
        assert_eq!(err, Error::DirectoryFull, "{fat:?}");
        assert!(made > 400, "{fat:?}: only {made}");
        // A full root still takes files in subdirectories.
        fs.create_file("/boot/STILL.OK", 3).unwrap();
        files.push(("/boot/STILL.OK".into(), vec![0; 3]));
        fatfs_check(fs.device().data(), &files);
    }
}

#[test]
fn disk_full_is_clean() {
    let (img, files) = build(WFatType::Fat12, 1 << 20, Some(1024));
    let (free, _) = free_counts(&img);
    let mut fs = mount(img.clone());
    let err = fs.create_file("/HUGE.BIN", u64::from(free) * 1024 + 1);
    assert_eq!(
        err,
        Err(Error::DiskFull {
            needed: u64::from(free) + 1,
            free: u64::from(free)
        })
    );
    assert!(fs.device().write_log().is_empty());
    assert!(fs.device().data() == &img[..]);
    // Exactly the free space fits; then nothing more.
    fs.create_file("/ALL.BIN", u64::from(free) * 1024).unwrap();
    assert!(matches!(
        fs.create_file("/ONE", 1),
        Err(Error::DiskFull { needed: 1, free: 0 })
    ));
    // An empty file needs no cluster.
    fs.create_file("/EMPTY2", 0).unwrap();
    let img = fs.into_inner().into_inner();
    fatfs_check(&img, &files);
    assert_eq!(free_counts(&img).1, 0);
    with_fatfs(&img, |fs| {
        let mut f = fs.root_dir().open_file("all.bin").unwrap();
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        assert_eq!(v.len(), free as usize * 1024);
    });
}

#[test]
fn fragmented_allocation_when_no_run_fits() {
    // Fill the volume with one-cluster files, then free every other one.
    let cb = 2048;
    let mut img = format(WFatType::Fat12, 512 * 1024, Some(cb as u32));
    let mut files = Files::new();
    {
        let fs =
            fatfs::FileSystem::new(Cursor::new(&mut img[..]), fatfs::FsOptions::new()).unwrap();
        let mut n = 0;
        while fs.stats().unwrap().free_clusters() > 0 {
            let mut f = fs.root_dir().create_file(&format!("F{n}")).unwrap();
            std::io::Write::write_all(&mut f, &vec![1; cb]).unwrap();
            n += 1;
        }
        for i in 0..n {
            if i % 2 == 0 {
                fs.root_dir().remove(&format!("F{i}")).unwrap();
            } else {
                files.push((format!("/F{i}"), vec![1; cb]));
            }
        }
        assert!(n > 100, "{n}");
    }
    let mut fs = mount(img);
    fs.create_file("/subdir/FRAG.BIN", 5 * cb as u64).unwrap();
    let data = pattern(5, 5 * cb);
    fs.write_in_place("/subdir/frag.bin", 0, &data).unwrap();
    files.push(("/subdir/FRAG.BIN".into(), data));
    fatfs_check(&fs.into_inner().into_inner(), &files);
}

#[test]
fn power_cut_during_write_in_place() {
    let (img, files) = build(WFatType::Fat32, 40 << 20, Some(512));
    let old = pattern(7, 6000);
    let mut fs = mount(img);
    fs.create_file("/ENV.BIN", 6000).unwrap();
    fs.write_in_place("/ENV.BIN", 0, &old).unwrap();
    let base = fs.into_inner().into_inner();
    let new = pattern(8, 4000);
    let (at, end) = (1001usize, 5001usize);
    // Sectors written: 1 head + 7 whole + 1 tail.
    for budget in 0..=10u64 {
        let mut fs = mount(base.clone());
        fs.device_mut().fail_writes_after(Some(budget));
        let res = fs.write_in_place("/ENV.BIN", at as u64, &new);
        assert_eq!(res.is_ok(), budget >= 9, "budget {budget}: {res:?}");
        fs.device_mut().fail_writes_after(None);
        let got = fs.read_file("/ENV.BIN", 1 << 20).unwrap();
        assert!(got[..at] == old[..at], "budget {budget}: head changed");
        assert!(got[end..] == old[end..], "budget {budget}: tail changed");
        // Inside: a prefix of new bytes, then old ones (sector by sector).
        let k = (at..end).find(|&i| got[i] != new[i - at]).unwrap_or(end);
        assert!(got[k..end] == old[k..end], "budget {budget}: mixed at {k}");
        let img = fs.into_inner().into_inner();
        // Nothing outside the file's data changed: every other file, the FATs, the directory.
        let meta = Bpb::read(&img).reserved * 512 + 2 * Bpb::read(&img).fatsz * 512;
        assert!(
            img[..meta] == base[..meta],
            "budget {budget}: metadata changed"
        );
        fatfs_check(&img, &files);
    }
}

#[test]
fn power_cut_during_create_leaves_at_most_lost_clusters() {
    for (fat, size) in ALL {
        let (mut img, files) = build(fat, size, None);
        geo(&img).fill_free(&mut img, 0xA5);
        let (_, orig) = free_counts(&img);
        let mut fs = mount(img.clone());
        fs.create_file("/NEWDIR/ENV.BIN", 3000).unwrap();
        let total: u64 = fs.device().write_log().iter().map(|w| w.1).sum();
        assert!(total >= 6, "{fat:?}: {total}");
        for budget in 0..total {
            let mut fs = mount(img.clone());
            fs.device_mut().fail_writes_after(Some(budget));
            assert!(
                matches!(
                    fs.create_file("/NEWDIR/ENV.BIN", 3000),
                    Err(Error::WriteIo { .. })
                ),
                "{fat:?} budget {budget}"
            );
            let img = fs.into_inner().into_inner();
            fatfs_check(&img, &files);
            with_fatfs(&img, |w| {
                // Whatever is visible is complete: the directory (empty or with the zeroed file).
                if let Ok(d) = w.root_dir().open_dir("newdir") {
                    for e in d.iter() {
                        let e = e.unwrap();
                        if e.is_file() {
                            let mut v = Vec::new();
                            e.to_file().read_to_end(&mut v).unwrap();
                            let zeros = v.len() == 3000 && v.iter().all(|&b| b == 0);
                            assert!(zeros, "{fat:?} budget {budget}: garbage visible");
                        }
                    }
                }
            });
            // Clusters are only ever taken, never freed or shared.
            let (_, counted) = free_counts(&img);
            assert!(counted <= orig, "{fat:?} budget {budget}");
        }
    }
}

#[test]
fn refusals_write_nothing() {
    let (img, _) = build(WFatType::Fat16, 16 << 20, None);
    let mut fs = mount(img.clone());
    fs.create_file("/ENV.BIN", 100).unwrap();
    let snapshot = fs.device().data().to_vec();
    let writes = fs.device().write_log().len();
    let cases: Vec<(&str, Error)> = vec![
        ("/a long name.txt", Error::BadName("")),
        ("/TOOLONGNAME.BIN", Error::BadName("")),
        ("/A.B.C", Error::BadName("")),
        ("/NAME.ABCD", Error::BadName("")),
        ("/TRAIL.", Error::BadName("")),
        ("/é.BIN", Error::BadName("")),
        ("/", Error::BadName("")),
        ("/boot/..", Error::BadName("")),
        ("/NEW/long directory/X", Error::BadName("")),
        ("/hello.txt", Error::AlreadyExists),
        ("/HELLO.TXT", Error::AlreadyExists),
        ("/env.bin", Error::AlreadyExists),
        ("/boot", Error::AlreadyExists),
        ("/hello.txt/X", Error::NotADirectory),
    ];
    for (path, want) in cases {
        let got = fs.create_file(path, 10).unwrap_err();
        match want {
            Error::BadName(_) => assert!(matches!(got, Error::BadName(_)), "{path}: {got}"),
            w => assert_eq!(got, w, "{path}"),
        }
    }
    assert_eq!(
        fs.create_file("/BIG", 1 << 32),
        Err(Error::TooLarge {
            size: 1 << 32,
            capacity: u32::MAX.into()
        })
    );
    assert_eq!(
        fs.write_in_place("/env.bin", 90, &[0; 11]),
        Err(Error::BeyondEnd {
            offset: 90,
            len: 11,
            size: 100
        })
    );
    assert!(matches!(
        fs.write_in_place("/env.bin", u64::MAX, &[0; 2]),
        Err(Error::BeyondEnd { .. })
    ));
    assert_eq!(fs.write_in_place("/boot", 0, &[1]), Err(Error::NotAFile));
    assert_eq!(fs.write_in_place("/nope", 0, &[1]), Err(Error::NotFound));
    assert_eq!(fs.write_in_place("/env.bin", 100, &[]), Ok(()));
    assert_eq!(fs.device().write_log().len(), writes);
    assert!(fs.device().data() == &snapshot[..]);
    // Messages say what was wrong.
    let msg = Error::BeyondEnd {
        offset: 90,
        len: 11,
        size: 100,
    }
    .to_string();
    assert!(msg.contains("90") && msg.contains("100"), "{msg}");
}

/// A disk whose driver cannot write (the trait's default).
struct RoDisk(MemDisk);

impl BlockDevice for RoDisk {
    fn num_sectors(&self) -> u64 {
        self.0.num_sectors()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.0.read_sectors(lba, buf)
    }
}

#[test]
fn read_only_devices_refuse() {
    let (img, _) = build(WFatType::Fat12, 4 << 20, None);
    let mut fs = FatFs::mount(RoDisk(MemDisk::new(img.clone()))).unwrap();
    assert_eq!(fs.create_file("/ENV.BIN", 10), Err(Error::ReadOnly));
    assert_eq!(
        fs.write_in_place("/hello.txt", 0, b"J"),
        Err(Error::ReadOnly)
    );
    let mut disk = MemDisk::new(img.clone());
    disk.set_read_only(true);
    let mut fs = FatFs::mount(disk).unwrap();
    assert_eq!(
        fs.write_in_place("/hello.txt", 0, b"J"),
        Err(Error::ReadOnly)
    );
    assert!(fs.device().data() == &img[..]);
}

#[test]
fn partition_writes_are_bounded() {
    let mut disk = MemDisk::new(vec![0u8; 100 * 512]);
    let part = Partition {
        number: 1,
        first_lba: 10,
        num_sectors: 20,
        kind: PartitionKind::Mbr(0x0C),
        name: None,
        bootable: false,
        uuid: None,
    };
    let mut p = PartitionDevice::new(&mut disk, &part).unwrap();
    p.write_sectors(19, &[7u8; 512]).unwrap();
    assert_eq!(
        p.write_sectors(19, &[7u8; 1024]),
        Err(Error::OutOfRange {
            lba: 19,
            count: 2,
            size: 20
        })
    );
    assert!(p.write_sectors(u64::MAX, &[7u8; 512]).is_err());
    assert_eq!(
        p.write_sectors(0, &[7u8; 100]),
        Err(Error::BadBuffer { len: 100 })
    );
    assert_eq!(disk.write_log(), [(29, 1)]);
    assert!(disk.data()[29 * 512..30 * 512].iter().all(|&b| b == 7));
    assert!(disk.data()[..29 * 512].iter().all(|&b| b == 0));
    assert!(disk.data()[30 * 512..].iter().all(|&b| b == 0));
}

/// Small volumes of each type with a few files, built once.
fn small(fat: usize) -> &'static (Vec<u8>, Files) {
    static IMGS: OnceLock<Vec<(Vec<u8>, Files)>> = OnceLock::new();
    &IMGS.get_or_init(|| {
        [
            (WFatType::Fat12, 300 * 1024),
            (WFatType::Fat16, 16 << 20),
            (WFatType::Fat32, 34 << 20),
        ]
        .into_iter()
        .map(|(t, size)| {
            let mut img = format(t, size, Some(512));
            let fs =
                fatfs::FileSystem::new(Cursor::new(&mut img[..]), fatfs::FsOptions::new()).unwrap();
            let mut files = Files::new();
            fs.root_dir().create_dir("Sub Dir").unwrap();
            for (i, p) in ["keep me.txt", "Sub Dir/inner file.bin"].iter().enumerate() {
                let data = pattern(i as u64, 1500 + i * 700);
                let mut f = fs.root_dir().create_file(p).unwrap();
                std::io::Write::write_all(&mut f, &data).unwrap();
                files.push((format!("/{p}"), data));
            }
            drop(fs);
            (img, files)
        })
        .collect()
    })[fat]
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        dir: usize,
        name: usize,
        size: u64,
    },
    Write {
        file: usize,
        offset: u64,
        len: usize,
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..5usize, 0..5000u64).prop_map(|(dir, name, size)| Op::Create {
            dir,
            name,
            size
        }),
        (0..20usize, 0..6000u64, 0..3000usize, any::<u64>()).prop_map(
            |(file, offset, len, seed)| Op::Write {
                file,
                offset,
                len,
                seed
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_create_write_sequences_match_fatfs(
        fat in 0..3usize,
        ops in proptest::collection::vec(op(), 1..12),
    ) {
        let (img, files) = small(fat);
        let mut fs = mount(img.clone());
        let dirs = ["", "/SUB DIR", "/NEW"];
        let names = ["ENV.BIN", "bootcoun", "A", "x.y", "DATA_1.TXT"];
        let mut model: BTreeMap<String, Vec<u8>> = files.iter().cloned().collect();
        for op in ops {
            match op {
                Op::Create { dir, name, size } => {
                    let path = format!("{}/{}", dirs[dir], names[name]);
                    let known = model.keys().any(|k| k.eq_ignore_ascii_case(&path));
                    match fs.create_file(&path, size) {
                        Ok(()) => {
                            prop_assert!(!known, "{} created twice", path);
                            model.insert(path, vec![0; size as usize]);
                        }
                        Err(Error::AlreadyExists) => prop_assert!(known, "{}", path),
                        Err(Error::DiskFull { .. }) => {}
                        Err(e) => prop_assert!(false, "{}: {}", path, e),
                    }
                }
                Op::Write { file, offset, len, seed } => {
                    let n = model.len();
                    let Some((path, data)) = model.iter_mut().nth(file % n) else { continue };
                    let bytes = pattern(seed, len);
                    let res = fs.write_in_place(path, offset, &bytes);
                    if offset as usize + len <= data.len() {
                        prop_assert_eq!(res, Ok(()));
                        data[offset as usize..offset as usize + len].copy_from_slice(&bytes);
                    } else {
                        prop_assert!(matches!(res, Err(Error::BeyondEnd { .. })), "{:?}", res);
                    }
                }
            }
        }
        for (path, data) in &model {
            prop_assert!(fs.read_file(path, 1 << 20).unwrap() == *data, "{}", path);
        }
        let files: Files = model.into_iter().collect();
        let img = fs.into_inner().into_inner();
        fatfs_check(&img, &files);
        let (reported, counted) = free_counts(&img);
        prop_assert_eq!(reported, counted);
    }
}
