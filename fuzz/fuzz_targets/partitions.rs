//! MBR/GPT: a partition listed outside the disk (the table says so; it is kept so that opening it
//! can say by how much it overruns) cannot be opened, one inside can; a whole-disk volume is
//! exactly the disk; `open_boot_fs` over a fuzzed disk either mounts or
//! refuses cleanly.
//! Input: a sparse disk (see `kexboot_fuzz::SparseDisk`).
#![no_main]

use kexboot_fs::{open_boot_fs, partitions, BlockDevice, PartSel, PartitionDevice, PartitionKind};
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
        let inside = p.num_sectors > 0
            && p.first_lba
                .checked_add(p.num_sectors)
                .is_some_and(|end| end <= n);
        let opened = PartitionDevice::new(&mut disk, p).map(|d| d.num_sectors());
        match opened {
            Ok(len) => assert!(
                inside && len == p.num_sectors,
                "partition {} opened: {p:?}",
                p.number
            ),
            Err(_) => assert!(
                !inside,
                "partition {} inside the disk refused: {p:?}",
                p.number
            ),
        }
        if p.kind == PartitionKind::Whole {
            assert_eq!((p.first_lba, p.num_sectors), (0, n));
        }
    }
    let first = parts.first().map(|p| p.number).unwrap_or(1);
    let _ = open_boot_fs(&mut disk, Some(PartSel::Number(first)));
    let _ = open_boot_fs(&mut disk, None);
});
