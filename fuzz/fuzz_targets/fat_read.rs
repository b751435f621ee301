//! FAT reading: a fuzzed volume never makes the FAT code ask for a sector outside the disk
//! (the disk panics on such a request), directory walks and file reads end, and a file read
//! into a fixed buffer never writes outside it and returns at most its size.
//! Input: a sparse disk (see `kexboot_fuzz::SparseDisk`).
#![no_main]

use kexboot_fs::{open_boot_fs, BlockDevice, FatFs};
use kexboot_fuzz::{Guarded, SparseDisk};
use libfuzzer_sys::fuzz_target;

/// Bounds of the walk: depth, entries visited, bytes per file read.
const MAX_DEPTH: usize = 4;
const MAX_VISITS: usize = 64;
const MAX_FILE: usize = 64 << 10;

fn walk<D: BlockDevice>(fs: &mut FatFs<D>, dir: &str, depth: usize, visits: &mut usize) {
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
        // A corrupt directory may hold names that resolve to another entry (duplicates, blank
        // 8.3 names): check the file the path resolves to.
        let Ok(st) = fs.stat(&path) else {
            continue;
        };
        if st.is_dir {
            continue;
        }
        let cap = (st.size as usize).min(MAX_FILE);
        let mut g = Guarded::new(cap);
        let r = fs.read_file_into(&path, g.dst());
        g.check();
        if let Ok(n) = r {
            assert_eq!(n as u64, st.size, "{path}: read {n} bytes of {}", st.size);
            if let Ok(v) = fs.read_file(&path, MAX_FILE) {
                assert!(v[..] == g.data()[..n], "{path}: two reads differ");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(mut disk) = SparseDisk::parse(data) else {
        return;
    };
    disk.strict = true;
    match FatFs::try_mount(disk) {
        Ok(mut fs) => walk(&mut fs, "/", 0, &mut 0),
        Err((mut disk, _)) => {
            disk.strict = false;
            if let Ok((_, mut fs)) = open_boot_fs(disk, None) {
                walk(&mut fs, "/", 0, &mut 0);
            }
        }
    }
});
