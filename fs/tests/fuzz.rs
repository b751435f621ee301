//! Property tests: random byte flips in small FAT and GPT images never panic or hang, and every
//! call returns either data or a typed error.
mod common;

use std::io::{Cursor, Write};
use std::sync::OnceLock;

use common::*;
use kexboot_fs::{open_boot_fs, partitions, BlockDevice, FatFs, MemDisk};
use proptest::prelude::*;

/// A 256 KiB FAT12 volume with a subdirectory, long names and a fragmented file.
fn small_fat() -> &'static (Vec<u8>, usize) {
    static IMG: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
    IMG.get_or_init(|| {
        let mut img = format(WFatType::Fat12, 256 * 1024, Some(512));
        {
            let fs =
                fatfs::FileSystem::new(Cursor::new(&mut img[..]), fatfs::FsOptions::new()).unwrap();
            let root = fs.root_dir();
            let d = root.create_dir("Some Directory").unwrap();
            d.create_dir("inner").unwrap();
            d.create_file("inner/deep file.txt")
                .unwrap()
                .write_all(&pattern(1, 1500))
                .unwrap();
            let mut a = root.create_file("A long file name.bin").unwrap();
            let mut b = d.create_file("b.bin").unwrap();
            for i in 0..6 {
                a.write_all(&pattern(i, 700)).unwrap();
                b.write_all(&pattern(i + 10, 600)).unwrap();
            }
            root.create_file("EMPTY.TXT").unwrap();
        }
        let bpb = Bpb::read(&img);
        // Boot sector, FATs, root directory and the first data clusters.
        let meta = bpb.cluster(2) + 40 * bpb.cluster_bytes();
        (img, meta)
    })
}

/// Visits everything reachable, at most `depth` levels down.
fn walk<D: BlockDevice>(fs: &mut FatFs<D>, path: &str, depth: u32) {
    let _ = fs.stat(path);
    let Ok(entries) = fs.read_dir(path) else {
        return;
    };
    for e in entries.iter().take(64) {
        let child = format!("{path}/{}", e.name);
        if e.is_dir {
            if depth > 0 {
                walk(fs, &child, depth - 1);
            }
        } else {
            let _ = fs.read_file(&child, 1 << 20);
            let mut small = [0u8; 1000];
            if let Ok(n) = fs.read_file_into(&child, &mut small) {
                assert!(n <= small.len());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fat_flips_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24)) {
        let (base, meta) = small_fat();
        let mut img = base.clone();
        for (at, v) in flips {
            img[at.index(*meta)] = v;
        }
        let mut disk = MemDisk::new(img);
        let _ = partitions(&mut disk);
        if let Ok(mut fs) = FatFs::mount(&mut disk) {
            walk(&mut fs, "", 3);
            let _ = fs.stat("/Some Directory/inner/deep file.txt/..");
        }
        let _ = open_boot_fs(&mut disk, None);
    }

    /// Boot sectors with arbitrary BPB fields over the same volume.
    #[test]
    fn random_bpb_never_panics(bpb in proptest::collection::vec(any::<u8>(), 90), jump in any::<bool>()) {
        let mut img = small_fat().0.clone();
        img[11..11 + 90].copy_from_slice(&bpb);
        img[0] = if jump { 0xEB } else { 0xE9 };
        if let Ok(mut fs) = FatFs::mount(MemDisk::new(img)) {
            walk(&mut fs, "", 2);
        }
    }
}

/// A 1 MiB GPT disk whose second partition holds the small FAT volume.
fn small_gpt() -> &'static Vec<u8> {
    static IMG: OnceLock<Vec<u8>> = OnceLock::new();
    IMG.get_or_init(|| {
        let size = 1 << 20;
        let mut cur = Cursor::new(vec![0u8; size]);
        gpt::mbr::ProtectiveMBR::with_lb_size((size / 512 - 1) as u32)
            .overwrite_lba0(&mut cur)
            .unwrap();
        let mut g = gpt::GptConfig::new()
            .writable(true)
            .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
            .create_from_device(cur, None)
            .unwrap();
        g.add_partition("a", 64 * 1024, gpt::partition_types::LINUX_FS, 0, None)
            .unwrap();
        g.add_partition("boot", 256 * 1024, gpt::partition_types::BASIC, 0, None)
            .unwrap();
        let first = g.partitions()[&2].first_lba as usize * 512;
        let mut disk = g.write().unwrap().into_inner();
        let fat = &small_fat().0;
        disk[first..first + fat.len()].copy_from_slice(fat);
        disk
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn gpt_flips_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16), tail in any::<bool>()) {
        let mut img = small_gpt().clone();
        let len = img.len();
        for (at, v) in flips {
            // Protective MBR, primary header and entries; or the backup at the end.
            let off = at.index(34 * 512);
            let off = if tail { len - 34 * 512 + off } else { off };
            img[off] = v;
        }
        let mut disk = MemDisk::new(img);
        if let Ok(parts) = partitions(&mut disk) {
            prop_assert!(parts.len() <= 128);
        }
        if let Ok((_, mut fs)) = open_boot_fs(&mut disk, None) {
            walk(&mut fs, "", 1);
        }
    }
}

#[test]
fn fuzz_bases_are_sane() {
    let mut disk = MemDisk::new(small_gpt().clone());
    let (p, mut fs) = open_boot_fs(&mut disk, None).unwrap();
    assert_eq!(p.name.as_deref(), Some("boot"));
    assert_eq!(
        fs.read_file("/some directory/INNER/Deep File.txt", 4096)
            .unwrap(),
        pattern(1, 1500)
    );
    let a: Vec<u8> = (0..6).flat_map(|i| pattern(i, 700)).collect();
    assert_eq!(fs.read_file("/a long file name.bin", 1 << 20).unwrap(), a);
}
