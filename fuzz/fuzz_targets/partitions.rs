//! MBR/GPT: every partition found lies inside the disk (first LBA > 0, non-empty, ends by the
//! last sector), and `open_boot_fs` over a fuzzed disk either mounts or refuses cleanly.
//! Input: a sparse disk (see `kexboot_fuzz::SparseDisk`).
#![no_main]

use kexboot_fs::{open_boot_fs, partitions, BlockDevice, PartSel, PartitionKind};
use kexboot_fuzz::SparseDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(mut disk) = SparseDisk::parse(data) else {
        return;
    };
    let n = disk.num_sectors();
    let Ok(parts) = partitions(&mut disk) else {
        return;
    };
    for p in &parts {
        let end = p.first_lba.checked_add(p.num_sectors).expect("partition end overflows");
        assert!(end <= n, "partition {} ends at {end}, disk has {n} sectors", p.number);
        assert!(p.num_sectors > 0);
        match p.kind {
            PartitionKind::Whole => assert_eq!((p.first_lba, p.num_sectors), (0, n)),
            _ => assert!(p.first_lba > 0, "partition {} over the partition table", p.number),
        }
    }
    let first = parts.first().map(|p| p.number).unwrap_or(1);
    let _ = open_boot_fs(&mut disk, Some(PartSel::Number(first)));
    let _ = open_boot_fs(&mut disk, None);
});
