//! ext2/ext3/ext4 images made by `mke2fs -d` (fs/tests/data/mkext.sh): reads through symlinks,
//! extents and block maps, htree directories; corrupt images give typed errors, never a panic.
use std::io::Read;
use std::sync::OnceLock;

use kexboot_fs::{BlockDevice, Error, Ext4Fs, MemDisk};
use proptest::prelude::*;

const IMAGES: [(&str, &str); 4] = [
    ("ext4", "ext4"),
    ("ext4-nocsum", "ext4"),
    ("ext3", "ext3"),
    ("ext2", "ext2"),
];
const KERNEL: &str = "/boot/vmlinuz-6.1.0-test";
const KERNEL_LEN: usize = 300_000;
const INITRD_LEN: usize = 70_000;

/// The images' file contents: byte `i` of a file is `i % 251`.
fn pat(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(|i| (i % 251) as u8).collect()
}

/// Decompressed images by name.
type Cache = std::sync::Mutex<Vec<(String, Vec<u8>)>>;

/// The decompressed image `name` (cached).
pub fn image(name: &str) -> Vec<u8> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap();
    if let Some((_, d)) = c.iter().find(|(n, _)| n == name) {
        return d.clone();
    }
    let path = format!("{}/tests/data/{name}.img.gz", env!("CARGO_MANIFEST_DIR"));
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut img = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut img)
        .unwrap();
    c.push((name.to_string(), img.clone()));
    img
}

fn mount(img: Vec<u8>) -> Result<Ext4Fs<MemDisk>, Error> {
    Ext4Fs::mount(MemDisk::new(img)).map_err(|(_, e)| e)
}

#[test]
fn every_image_reads_through_symlinks_extents_and_block_maps() {
    for (name, kind) in IMAGES {
        let mut fs = mount(image(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fs.kind_name(), kind, "{name}");
        let want = pat(0, KERNEL_LEN);
        for p in [
            KERNEL,
            "/boot/vmlinuz",
            "/vmlinuz",
            "boot/vmlinuz",
            "//boot/./vmlinuz",
        ] {
            assert_eq!(fs.read_file(p, 1 << 20).unwrap(), want, "{name} {p}");
        }
        let initrd = fs.read_file("/boot/initrd.img", 1 << 20).unwrap();
        assert_eq!(initrd, pat(0, INITRD_LEN), "{name}");
        // Ten extents (an extent tree of depth 1 on ext4) with holes between them.
        let sparse = fs.read_file("/sparse", 1 << 20).unwrap();
        assert_eq!(sparse.len(), 9 * 65536 + 4096, "{name}");
        for k in 0..10 {
            let at = k * 65536;
            assert_eq!(sparse[at..at + 4096], pat(at, 4096)[..], "{name} chunk {k}");
            if k < 9 {
                assert!(sparse[at + 4096..at + 65536].iter().all(|&b| b == 0));
            }
        }
        let conf = fs.read_file("/extlinux/extlinux.conf", 4096).unwrap();
        assert!(conf.starts_with(b"default linux\n"));
        assert_eq!(fs.read_file("/empty", 10).unwrap(), b"");
        let st = fs.stat("/boot/vmlinuz").unwrap();
        assert_eq!((st.size, st.is_dir), (KERNEL_LEN as u64, false));
        assert!(fs.stat("/boot").unwrap().is_dir);
        assert!(fs.stat("/").unwrap().is_dir);
    }
}

#[test]
fn big_htree_directory_lists_and_finds_every_file() {
    for (name, _) in IMAGES {
        let mut fs = mount(image(name)).unwrap();
        let mut list = fs.read_dir("/big").unwrap();
        assert_eq!(list.len(), 300, "{name}");
        list.sort_by(|a, b| a.name.cmp(&b.name));
        for (i, e) in list.iter().enumerate() {
            assert_eq!(
                e.name,
                format!("file{i:03}-with-a-long-name-to-fill-blocks")
            );
            assert!(!e.is_dir);
            let body = fs.read_file(&format!("/big/{}", e.name), 16).unwrap();
            assert_eq!(body, format!("{i}\n").as_bytes());
            assert_eq!(e.size, body.len() as u64);
        }
        assert_eq!(fs.stat("/big/file300"), Err(Error::NotFound));
        let root: Vec<String> = fs
            .read_dir("/")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        for n in ["boot", "big", "vmlinuz", "sparse", "loop_a"] {
            assert!(root.iter().any(|r| r == n), "{name}: {n} in {root:?}");
        }
        assert!(!root.iter().any(|r| r == "." || r == ".."));
    }
}

#[test]
fn path_errors_are_typed() {
    let mut fs = mount(image("ext4")).unwrap();
    assert_eq!(fs.read_file("/loop_a", 1 << 20), Err(Error::SymlinkLoop));
    assert_eq!(fs.stat("/loop_b"), Err(Error::SymlinkLoop));
    assert_eq!(fs.read_file("/dangling", 1 << 20), Err(Error::NotFound));
    assert_eq!(fs.read_file("/nope", 1 << 20), Err(Error::NotFound));
    assert_eq!(fs.read_file("/boot", 1 << 20), Err(Error::NotAFile));
    assert_eq!(
        fs.read_file("/boot/vmlinuz/x", 1 << 20),
        Err(Error::NotADirectory)
    );
    assert_eq!(fs.read_dir("/boot/vmlinuz"), Err(Error::NotADirectory));
    assert!(matches!(
        fs.read_file(&"a/".repeat(3000), 1),
        Err(Error::BadPath(_))
    ));
    assert!(matches!(fs.stat("/a\0b"), Err(Error::BadPath(_))));
}

#[test]
fn too_large_is_refused_before_writing() {
    let mut fs = mount(image("ext4")).unwrap();
    let mut small = vec![0xAAu8; KERNEL_LEN - 1];
    assert_eq!(
        fs.read_file_into("/vmlinuz", &mut small),
        Err(Error::TooLarge {
            size: KERNEL_LEN as u64,
            capacity: KERNEL_LEN as u64 - 1
        })
    );
    assert!(small.iter().all(|&b| b == 0xAA));
    assert!(matches!(
        fs.read_file("/vmlinuz", 1000),
        Err(Error::TooLarge { .. })
    ));
    let mut exact = vec![0u8; KERNEL_LEN + 7];
    assert_eq!(fs.read_file_into("/vmlinuz", &mut exact), Ok(KERNEL_LEN));
    assert_eq!(exact[..KERNEL_LEN], pat(0, KERNEL_LEN)[..]);
}

#[test]
fn device_comes_back() {
    let img = image("ext4");
    let mut fs = mount(img.clone()).unwrap();
    fs.read_file(KERNEL, 1 << 20).unwrap();
    assert!(fs.device_mut().read_calls() > 0);
    fs.device_mut().clear_log();
    let disk = fs.into_inner();
    assert_eq!(disk.read_calls(), 0);
    assert_eq!(disk.data(), &img[..]);
    // A FAT volume or zeros: not ext; the device comes back too.
    let (disk, e) = Ext4Fs::mount(MemDisk::new(vec![0; 1 << 20])).unwrap_err();
    assert!(matches!(e, Error::UnknownFs(_)), "{e}");
    assert_eq!(disk.num_sectors(), 2048);
    let (_, e) = Ext4Fs::mount(MemDisk::new(vec![0; 512])).unwrap_err();
    assert!(matches!(e, Error::UnknownFs(_)));
}

#[test]
fn device_errors_come_back_as_they_were() {
    let mut disk = MemDisk::new(image("ext4"));
    disk.fail_reads_at(Some(2)); // the superblock
    let (mut disk, e) = Ext4Fs::mount(disk).unwrap_err();
    assert_eq!(e, Error::Io { lba: 2 });
    disk.fail_reads_at(None);
    let mut fs = Ext4Fs::mount(disk).unwrap();
    // Fail a sector in the middle of the kernel's data.
    let lba = find_file_block(fs.device_mut().data(), KERNEL_LEN as u32).unwrap() / 512 + 50;
    fs.device_mut().fail_reads_at(Some(lba));
    assert!(matches!(
        fs.read_file(KERNEL, 1 << 20),
        Err(Error::Io { .. })
    ));
}

// --- corrupt images ---------------------------------------------------------------------------

const SB: usize = 1024;
/// The images use 1 KiB blocks (mke2fs's "small" type below 512 MiB): the group descriptors are
/// in block 2.
const GDT: usize = 2048;

fn expect_corrupt(img: Vec<u8>, what: &str) {
    match mount(img) {
        Err(Error::Ext4Corrupt(m)) => assert!(m.contains(what), "{m}"),
        Err(e) => panic!("want corruption '{what}', got {e}"),
        Ok(_) => panic!("want corruption '{what}', mounted"),
    }
}

#[test]
fn bad_superblock_checksum() {
    let mut img = image("ext4");
    img[SB + 120] ^= 1; // the volume name
    expect_corrupt(img, "superblock checksum");
    // Without metadata_csum there is nothing to check: the same change mounts.
    let mut img = image("ext4-nocsum");
    img[SB + 120] ^= 1;
    mount(img).unwrap();
}

#[test]
fn bad_group_descriptor_checksum() {
    let mut img = image("ext4");
    img[GDT + 12] ^= 1; // free blocks count of group 0
    expect_corrupt(img, "block group descriptor 0");
}

/// Byte offset of inode `ino` (1 KiB blocks, group 0).
fn inode_offset(img: &[u8], ino: usize) -> usize {
    let table = u32::from_le_bytes(img[GDT + 8..GDT + 12].try_into().unwrap()) as usize;
    let isize = u16::from_le_bytes(img[SB + 88..SB + 90].try_into().unwrap()) as usize;
    table * 1024 + (ino - 1) * isize
}

#[test]
fn bad_inode_checksum() {
    let mut img = image("ext4");
    let root = inode_offset(&img, 2);
    img[root + 16] ^= 1; // mtime
    let mut fs = mount(img).unwrap();
    match fs.read_file(KERNEL, 1 << 20) {
        Err(Error::Ext4Corrupt(m)) => assert!(m.contains("checksum"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The inode-table offset of the first inode with extents whose size is `size`.
fn find_inode_by_size(img: &[u8], size: u32) -> Option<usize> {
    let isize = u16::from_le_bytes(img[SB + 88..SB + 90].try_into().unwrap()) as usize;
    let count = u32::from_le_bytes(img[SB..SB + 4].try_into().unwrap()) as usize;
    (1..=count)
        .map(|i| inode_offset(img, i))
        .take_while(|&o| o + isize <= img.len())
        .find(|&o| {
            u32::from_le_bytes(img[o + 4..o + 8].try_into().unwrap()) == size
                && img[o + 40..o + 42] == [0x0A, 0xF3]
        })
}

/// Byte offset of the first data block of the extent-mapped file of `size` bytes.
fn find_file_block(img: &[u8], size: u32) -> Option<u64> {
    let o = find_inode_by_size(img, size)?;
    let e = o + 40 + 12;
    let start = u32::from_le_bytes(img[e + 8..e + 12].try_into().unwrap());
    Some(u64::from(start) * 1024)
}

#[test]
fn extent_outside_the_volume() {
    let mut img = image("ext4-nocsum");
    let o = find_inode_by_size(&img, KERNEL_LEN as u32).unwrap();
    let e = o + 40 + 12;
    img[e + 8..e + 12].copy_from_slice(&0x00FF_FF00u32.to_le_bytes());
    let mut fs = mount(img).unwrap();
    let r = fs.read_file(KERNEL, 1 << 20);
    assert!(matches!(r, Err(Error::Ext4Corrupt(_))), "{r:?}");
    // Other files still read.
    fs.read_file("/boot/initrd.img", 1 << 20).unwrap();
}

#[test]
fn extent_tree_loop() {
    let mut img = image("ext4-nocsum");
    let size = 9 * 65536 + 4096;
    let o = find_inode_by_size(&img, size).unwrap();
    // The inode holds an index node (depth 1) pointing at a leaf block; make that block an
    // index node pointing at itself.
    assert_eq!(u16::from_le_bytes([img[o + 46], img[o + 47]]), 1, "depth");
    let leaf = u32::from_le_bytes(img[o + 56..o + 60].try_into().unwrap()) as usize * 1024;
    assert_eq!(img[leaf..leaf + 2], [0x0A, 0xF3]);
    img[leaf + 6..leaf + 8].copy_from_slice(&1u16.to_le_bytes());
    let idx = leaf + 12;
    img[idx + 4..idx + 8].copy_from_slice(&((leaf / 1024) as u32).to_le_bytes());
    img[idx + 8..idx + 10].fill(0);
    let mut fs = mount(img).unwrap();
    let r = fs.read_file("/sparse", 1 << 20);
    assert!(matches!(r, Err(Error::Ext4Corrupt(_))), "{r:?}");
}

#[test]
fn huge_directory_size_is_bounded() {
    for name in ["ext4-nocsum", "ext2"] {
        let mut img = image(name);
        // The /big directory claims 2^40 bytes.
        let isize = u16::from_le_bytes(img[SB + 88..SB + 90].try_into().unwrap()) as usize;
        let count = u32::from_le_bytes(img[SB..SB + 4].try_into().unwrap()) as usize;
        let mut patched = 0;
        for i in 1..=count {
            let o = inode_offset(&img, i);
            if o + isize > img.len() {
                break;
            }
            let mode = u16::from_le_bytes([img[o], img[o + 1]]);
            let size = u32::from_le_bytes(img[o + 4..o + 8].try_into().unwrap());
            // The one directory over 13 KiB: /big (lost+found has 12).
            if mode & 0xF000 == 0x4000 && size > 13 * 1024 {
                img[o + 108..o + 112].copy_from_slice(&256u32.to_le_bytes());
                patched += 1;
            }
        }
        assert_eq!(patched, 1, "{name}");
        let mut fs = mount(img).unwrap();
        let t = std::time::Instant::now();
        let _ = fs.read_dir("/big");
        let _ = fs.stat("/big/file299-with-a-long-name-to-fill-blocks");
        assert!(t.elapsed().as_secs() < 10, "{name}");
    }
}

#[test]
fn volume_larger_than_its_device_is_refused() {
    let mut img = image("ext4");
    img.truncate(2 << 20);
    match mount(img) {
        Err(Error::Ext4Corrupt(m)) => assert!(m.contains("more than the device"), "{m}"),
        other => panic!("{other:?}"),
    }
}

// --- mutations ---------------------------------------------------------------------------------

/// Visits everything reachable from `path`, at most `depth` levels down.
pub fn walk(fs: &mut Ext4Fs<MemDisk>, path: &str, depth: u32) {
    let _ = fs.stat(path);
    let Ok(entries) = fs.read_dir(path) else {
        return;
    };
    for e in entries.iter().take(32) {
        let child = format!("{path}/{}", e.name);
        if e.is_dir {
            if depth > 0 {
                walk(fs, &child, depth - 1);
            }
        } else {
            let _ = fs.read_file(&child, 1 << 20);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random byte changes in the metadata (first 64 KiB, plus the area the inode tables and
    /// directories live in) give data or a typed error, never a panic.
    #[test]
    fn mutated_images_never_panic(
        which in 0usize..4,
        flips in prop::collection::vec((0usize..(160 << 10), any::<u8>()), 1..40),
    ) {
        let mut img = image(IMAGES[which].0);
        for (at, v) in flips {
            img[at] = v;
        }
        if let Ok(mut fs) = mount(img) {
            walk(&mut fs, "", 3);
            let _ = fs.read_file("/vmlinuz", 1 << 20);
        }
    }
}
