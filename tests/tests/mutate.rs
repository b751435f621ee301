//! Random mutations of a valid boot disk (partition table, FAT metadata, directory entries, the
//! config, the kernels and the initrd) through the whole flow: it never panics, and whenever it
//! still yields a plan, that plan satisfies the relocator contract.

use std::sync::OnceLock;

use kexboot_relocate as relocate;
use kexboot_tests::*;
use proptest::prelude::*;

struct Base {
    disk: Vec<u8>,
    /// Byte ranges of the disk worth mutating: MBR, FAT metadata, then each file's contents.
    regions: Vec<(usize, usize)>,
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("file contents on disk")
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let gz = gzip(&kernel(200 * KIB as usize, 60));
        let plain = kernel(100 * KIB as usize, 61);
        let initrd = pattern(62, 40_000);
        let cfg =
            b"default gz\nlabel gz\n  kernel /boot/Image.gz\n  initrd /boot/initrd\n  append a\n\
                    label plain\n  kernel /boot/Image\n  append b\n";
        let files: [(&str, &[u8]); 4] = [
            ("/boot/extlinux/extlinux.conf", cfg),
            ("/boot/Image.gz", &gz),
            ("/boot/Image", &plain),
            ("/boot/initrd", &initrd),
        ];
        let disk = mbr_fat16(&files);
        let vol = (PART_START_LBA * 512) as usize;
        let b = &disk[vol..];
        let u16at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
        let bps = u16at(11);
        let meta_end = (u16at(14) + b[16] as usize * u16at(22)) * bps + u16at(17) * 32;
        let mut regions = vec![(0, 512), (vol, vol + meta_end)];
        for (_, data) in &files {
            let at = find(&disk, &data[..32.min(data.len())]);
            regions.push((at, at + data.len()));
        }
        // The sanity of the base: it boots the default entry.
        let m = Machine::default();
        let out = m.run(
            &mut open(disk.clone()),
            &mut m.staging(),
            &mut FakePlatform::default(),
        );
        assert_eq!(out.prepared().label, "gz");
        Base { disk, regions }
    })
}

fn check(disk: Vec<u8>) -> Result<(), TestCaseError> {
    let Ok((_, mut fs)) = kexboot_fs::open_boot_fs(kexboot_fs::MemDisk::new(disk), None) else {
        return Ok(());
    };
    let m = Machine::default();
    let mut staging = m.staging();
    let out = m.run(
        &mut fs,
        &mut staging,
        &mut FakePlatform {
            seeds: None,
            ..Default::default()
        },
    );
    for f in &out.failures {
        prop_assert!(!f.error.to_string().is_empty());
    }
    if let Some((_, p)) = &out.prepared {
        let control = m.control();
        let layout = m.layout(&control);
        prop_assert_eq!(relocate::validate(&p.segments, &layout), Ok(()));
        for (s, b) in p.segments.iter().zip(&p.buffers) {
            prop_assert_eq!(s.src, b.addr);
            prop_assert!(s.len as usize <= b.data.len());
        }
        prop_assert!(kexboot_loader::dt::DtInfo::parse(&p.buffers.last().unwrap().data).is_ok());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn mutated_disk_never_panics_and_plans_validate(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1u8..), 1..12)
    ) {
        let b = base();
        let mut disk = b.disk.clone();
        for (region, at, x) in flips {
            let (s, e) = b.regions[region.index(b.regions.len())];
            disk[s + at.index(e - s)] ^= x;
        }
        check(disk)?;
    }

    #[test]
    fn overwritten_metadata_never_panics(
        at in 0usize..(64 << 10), junk in proptest::collection::vec(any::<u8>(), 1..600)
    ) {
        let b = base();
        let mut disk = b.disk.clone();
        let vol = (PART_START_LBA * 512) as usize;
        let start = vol + at.min(b.regions[1].1 - vol);
        let end = (start + junk.len()).min(disk.len());
        disk[start..end].copy_from_slice(&junk[..end - start]);
        check(disk)?;
    }
}
