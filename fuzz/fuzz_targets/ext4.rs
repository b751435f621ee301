//! ext2/3/4 (and the FAT-then-ext mount of `Volume`, and `scan`/`open_volume`): a fuzzed
//! volume never makes the reader panic, allocate or loop without bound; walks and reads end, a
//! file read into a fixed buffer never writes outside it and returns at most its size. Unlike
//! the FAT targets the disk is not strict: `ext4-view` reads the group descriptors where the
//! superblock puts them, and a request past the end is the device's to refuse (on a real disk
//! `PartitionDevice` does), which comes back as a typed error.
//! Input: a sparse disk (see `kexboot_fuzz::SparseDisk`); seeds are the ext2/3/4 test images.
#![no_main]

use kexboot_fs::{open_volume, scan, BlockDevice, PartSel, Volume};
use kexboot_fuzz::{Guarded, SparseDisk};
use libfuzzer_sys::fuzz_target;

/// Bounds of the walk: depth, entries visited, bytes per file read.
const MAX_DEPTH: usize = 4;
const MAX_VISITS: usize = 64;
const MAX_FILE: usize = 64 << 10;

fn walk<D: BlockDevice + 'static>(fs: &mut Volume<D>, dir: &str, depth: usize, visits: &mut usize) {
    let Ok(entries) = fs.read_dir(dir) else {
        return;
    };
    for e in entries {
        if *visits >= MAX_VISITS {
            return;
        }
        *visits += 1;
        let path = format!("{}/{}", dir.trim_end_matches('/'), e.name);
        if e.is_dir {
            if depth < MAX_DEPTH {
                walk(fs, &path, depth + 1, visits);
            }
            continue;
        }
        read(fs, &path);
    }
}

/// Reads `path` (symlinks followed) twice, into a guarded buffer and a vector.
fn read<D: BlockDevice + 'static>(fs: &mut Volume<D>, path: &str) {
    let Ok(st) = fs.stat(path) else {
        return;
    };
    if st.is_dir {
        return;
    }
    let cap = (st.size as usize).min(MAX_FILE);
    let mut g = Guarded::new(cap);
    let r = fs.read_file_into(path, g.dst());
    g.check();
    if let Ok(n) = r {
        assert_eq!(n as u64, st.size, "{path}: read {n} bytes of {}", st.size);
        if let Ok(v) = fs.read_file(path, MAX_FILE) {
            assert!(v[..] == g.data()[..n], "{path}: two reads differ");
        }
    }
}

fn visit<D: BlockDevice + 'static>(fs: &mut Volume<D>) {
    walk(fs, "/", 0, &mut 0);
    for p in ["/vmlinuz", "/boot/vmlinuz", "/boot/initrd.img", "/loop_a"] {
        read(fs, p);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(disk) = SparseDisk::parse(data) else {
        return;
    };
    match Volume::mount(disk) {
        Ok(mut fs) => visit(&mut fs),
        Err((disk, _)) => {
            let Ok((mut disk, found)) = scan(disk) else {
                return;
            };
            for (p, kind) in found.into_iter().take(4) {
                if kind.is_err() {
                    continue;
                }
                match open_volume(disk, PartSel::Number(p.number)) {
                    Ok((_, mut fs)) => {
                        visit(&mut fs);
                        disk = fs.into_inner().into_inner();
                    }
                    Err((d, _)) => disk = d,
                }
            }
        }
    }
});
