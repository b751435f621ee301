//! FAT writing as `saveenv` and boot counting do it (create the file if missing, then overwrite
//! in place): the bytes written read back, also after a remount, or the write fails cleanly.
//! Input: a sparse disk (see `kexboot_fuzz::SparseDisk`), then a trailer (its length in the
//! last byte) choosing the environment, the copy and the count.
#![no_main]

use arbitrary::Unstructured;
use kexboot_boot::bootcount::{decode_count, encode_count, BOOTCOUNT_PATH};
use kexboot_boot::env::Env;
use kexboot_boot::envstore::{encode, COPY_SIZE, REGION_SIZE, STORE_PATH};
use kexboot_fs::{open_boot_fs, BlockDevice, FatFs};
use kexboot_fuzz::{split_trailer, SparseDisk};
use libfuzzer_sys::fuzz_target;

/// Creates `path` of `size` bytes when missing, then writes `data` at `offset`, as the shell does.
fn save<D: BlockDevice>(
    fs: &mut FatFs<D>,
    path: &str,
    size: u64,
    offset: u64,
    data: &[u8],
) -> bool {
    let ready = match fs.stat(path) {
        Ok(i) => !i.is_dir && i.size >= offset + data.len() as u64 && i.size <= REGION_SIZE as u64,
        Err(_) => fs.create_file(path, size).is_ok(),
    };
    if !ready || fs.write_in_place(path, offset, data).is_err() {
        return false;
    }
    let back = fs
        .read_file(path, REGION_SIZE)
        .expect("written file does not read back");
    let at = offset as usize;
    assert!(
        &back[at..at + data.len()] == data,
        "{path}: wrote bytes that do not read back"
    );
    true
}

fuzz_target!(|data: &[u8]| {
    let (disk, trailer) = split_trailer(data);
    let Some(mut disk) = SparseDisk::parse(disk) else {
        return;
    };
    disk.writable = true;
    let Ok((part, mut fs)) = open_boot_fs(disk, None) else {
        return;
    };
    let mut u = Unstructured::new(trailer);
    let mut env = Env::default();
    for _ in 0..u.int_in_range(0..=4).unwrap_or(0) {
        let (Ok(n), Ok(v)) = (u.arbitrary::<&str>(), u.arbitrary::<&str>()) else {
            break;
        };
        env.set(n, v);
    }
    let seq: u8 = u.arbitrary().unwrap_or(1);
    let offset = if u.arbitrary().unwrap_or(false) {
        COPY_SIZE
    } else {
        0
    };
    let count: u32 = u.arbitrary().unwrap_or(3);
    let mut written = Vec::new();
    if let Ok(copy) = encode(&env, seq, COPY_SIZE) {
        if save(
            &mut fs,
            STORE_PATH,
            REGION_SIZE as u64,
            offset as u64,
            &copy,
        ) {
            written.push((STORE_PATH, offset, copy));
        }
    }
    let record = encode_count(count);
    if save(&mut fs, BOOTCOUNT_PATH, record.len() as u64, 0, &record) {
        let back = fs
            .read_file(BOOTCOUNT_PATH, REGION_SIZE)
            .expect("boot count does not read back");
        assert_eq!(
            decode_count(&back[..record.len()]),
            Ok(count.min(kexboot_boot::bootcount::MAX_COUNT))
        );
        written.push((BOOTCOUNT_PATH, 0, record.to_vec()));
    }
    // A corrupt volume may cross-link the two files (one chain running into the other's
    // clusters): then the second write changes the first file, as on any FAT implementation.
    written.retain(|(path, at, bytes)| {
        fs.read_file(path, REGION_SIZE)
            .is_ok_and(|back| back[*at..*at + bytes.len()] == bytes[..])
    });
    // Everything written is on the disk, not only in a cache: a fresh mount reads it.
    let disk = fs.into_inner().into_inner();
    // (A corrupt table may declare partitions over each other: then a write may unmount the
    // volume or make an earlier partition the first FAT one.)
    let Ok((again, mut fs)) = open_boot_fs(disk, None) else {
        return;
    };
    if again != part {
        return;
    }
    for (path, at, bytes) in written {
        let Ok(back) = fs.read_file(path, REGION_SIZE) else {
            return;
        };
        assert!(
            back[at..at + bytes.len()] == bytes[..],
            "{path}: changed by a remount"
        );
    }
});
