//! The whole boot flow on the host: a disk image made by third-party tools, `extlinux.conf`,
//! `flow::load_config` + `flow::next_bootable`, then the relocator's `build` and `simulate` over
//! simulated RAM, and every promise of the arm64 boot protocol checked on the result.

use kexboot_tests::*;

const CONF: &str = "/boot/extlinux/extlinux.conf";

fn conf(body: &str) -> Vec<u8> {
    body.as_bytes().to_vec()
}

#[test]
fn image_gz_with_initrd_on_mbr_fat16() {
    let k = kernel(2 * MIB as usize + 12345, 1);
    let gz = gzip(&k);
    assert!(gz.len() < k.len());
    let initrd = pattern(7, MIB as usize + 999);
    let cfg = conf(&format!(
        "menu title kexboot test\ntimeout 0\ndefault linux\n\
         label rescue\n  kernel /boot/Image.gz\n  append rescue\n\
         label linux\n  menu label Debian GNU/Linux\n  linux /boot/Image.gz\n  initrd /boot/initrd.img\n  append {APPEND}\n"
    ));
    let d = mbr_fat16(&[
        (CONF, &cfg),
        ("/boot/Image.gz", &gz),
        ("/boot/initrd.img", &initrd),
    ]);
    let m = Machine::default();
    // Heap staging only: every file staged, as when no destination is free
    // (`cold_boot_reads_in_place` has the in-place case).
    let mut staging = m.heap_staging();
    let out = m.run(&mut open(d), &mut staging, &mut FakePlatform::default());
    assert!(out.failures.is_empty(), "{:#?}", out.failures);
    let (path, config) = out.config.as_ref().unwrap();
    assert_eq!(*path, CONF);
    assert!(config.notes.is_empty(), "{:?}", config.notes);
    assert_eq!(
        out.prepared.as_ref().unwrap().0,
        0,
        "the default entry is tried first"
    );
    let p = out.prepared();
    // Staged buffers are page-aligned and inside the heap; the compressed file was freed.
    for b in &p.buffers {
        assert_eq!(b.addr % PAGE, 0);
        assert!(m.heap.contains(b.addr));
    }
    assert_eq!(
        staging.live().len(),
        3,
        "kernel, initrd and DTB buffers stay alive"
    );
    let want = Expect {
        kernel: &k,
        initrd: Some(&initrd),
        append: APPEND,
        label: "linux",
    };
    let r = m.boot_and_check(p, &want);
    // The kernel went to the first free 2 MiB boundary after kexboot.
    assert_eq!(p.entry, KEXBOOT_IMAGE.end());
    assert!(r.stats.pages_copied >= (k.len() + initrd.len()) as u64 / PAGE);
}

#[test]
fn plain_image_on_gpt_fat32_with_relative_paths() {
    let k = kernel(MIB as usize + 4097, 2);
    let cfg = conf("label only\n  kernel Image\n  append root=LABEL=root\n");
    let vol = fat_volume(
        fatfs::FatType::Fat32,
        40 * MIB as usize,
        &[("/extlinux/extlinux.conf", &cfg), ("/extlinux/Image", &k)],
    );
    let d = disk(Table::Gpt, &vol);
    let m = Machine::default();
    let out = m.run(&mut open(d), &mut m.staging(), &mut FakePlatform::default());
    assert_eq!(out.config.as_ref().unwrap().0, "/extlinux/extlinux.conf");
    let want = Expect {
        kernel: &k,
        initrd: None,
        append: "root=LABEL=root",
        label: "only",
    };
    m.boot_and_check(out.prepared(), &want);
}

#[test]
fn mbr_and_gpt_and_superfloppy_boot_the_same() {
    let k = kernel(MIB as usize, 3);
    let gz = gzip(&k);
    let initrd = pattern(8, 300_000);
    let cfg = conf("label l\n  kernel /Image.gz\n  initrd /initrd\n  append a=b\n");
    let files: [(&str, &[u8]); 3] = [(CONF, &cfg), ("/Image.gz", &gz), ("/initrd", &initrd)];
    let m = Machine::default();
    let mut placements = Vec::new();
    for (table, fat, size) in [
        (Table::Mbr, fatfs::FatType::Fat16, 16),
        (Table::Gpt, fatfs::FatType::Fat16, 16),
        (Table::Mbr, fatfs::FatType::Fat32, 40),
        (Table::Gpt, fatfs::FatType::Fat32, 40),
        (Table::None, fatfs::FatType::Fat12, 4),
    ] {
        let d = disk(table, &fat_volume(fat, size * MIB as usize, &files));
        let out = m.run(&mut open(d), &mut m.staging(), &mut FakePlatform::default());
        let want = Expect {
            kernel: &k,
            initrd: Some(&initrd),
            append: "a=b",
            label: "l",
        };
        m.boot_and_check(out.prepared(), &want);
        placements.push(out.prepared().placement);
    }
    assert!(
        placements.windows(2).all(|w| w[0] == w[1]),
        "{placements:?}"
    );
}

#[test]
fn gzip_detected_by_content_not_by_name() {
    let k = kernel(1536 * KIB as usize, 4);
    let gz = gzip(&k);
    let k2 = kernel(700 * KIB as usize, 5);
    // A gzip named like an uncompressed kernel, and an uncompressed kernel named `.gz`.
    let cfg = conf(
        "default vmlinuz\nlabel plain\n  kernel /boot/Image.gz\n  append plain\n\
         label vmlinuz\n  kernel /boot/vmlinuz-6.1.0-arm64\n  append gz\n",
    );
    let files: [(&str, &[u8]); 3] = [
        (CONF, &cfg),
        ("/boot/vmlinuz-6.1.0-arm64", &gz),
        ("/boot/Image.gz", &k2),
    ];
    let m = Machine::default();
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    m.boot_and_check(
        out.prepared(),
        &Expect {
            kernel: &k,
            initrd: None,
            append: "gz",
            label: "vmlinuz",
        },
    );

    let cfg = conf("default plain\nlabel plain\n  kernel /boot/Image.gz\n  append plain\n");
    let files: [(&str, &[u8]); 2] = [(CONF, &cfg), ("/boot/Image.gz", &k2)];
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    m.boot_and_check(
        out.prepared(),
        &Expect {
            kernel: &k2,
            initrd: None,
            append: "plain",
            label: "plain",
        },
    );
}

#[test]
fn initrds_are_concatenated_byte_exact() {
    let k = kernel(MIB as usize, 6);
    let parts = [
        pattern(10, 1000),
        pattern(11, 70_001),
        pattern(12, 5),
        pattern(13, 4096),
    ];
    let all: Vec<u8> = parts.concat();
    let cfg = conf(
        "label cat\n  kernel /Image\n  initrd /a.cpio,/boot/b.cpio.gz,/c,/d\n  append x\n\
         label from-append\n  kernel /Image\n  append initrd=/c,/a.cpio y\n",
    );
    let files: [(&str, &[u8]); 6] = [
        (CONF, &cfg),
        ("/Image", &k),
        ("/a.cpio", &parts[0]),
        ("/boot/b.cpio.gz", &parts[1]),
        ("/c", &parts[2]),
        ("/d", &parts[3]),
    ];
    let m = Machine::default();
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    m.boot_and_check(
        out.prepared(),
        &Expect {
            kernel: &k,
            initrd: Some(&all),
            append: "x",
            label: "cat",
        },
    );

    // `initrd=` in `append` (syslinux style) names the initrds when there is no initrd line.
    let (_, config) = out.config.as_ref().unwrap();
    let entry = &config.entries[1];
    let mut staging = m.staging();
    let ram = [m.ram];
    let avoid = m.avoid();
    let view = kexboot_boot::flow::MemoryView {
        ram: &ram,
        avoid: &avoid,
    };
    let mut fs = open(mbr_fat16(&files));
    let p = kexboot_boot::flow::prepare(
        &mut fs,
        &mut staging,
        &mut FakePlatform::default(),
        &view,
        &m.dtb,
        CONF,
        entry,
    )
    .expect("prepare");
    let both = [parts[2].clone(), parts[0].clone()].concat();
    m.boot_and_check(
        &p,
        &Expect {
            kernel: &k,
            initrd: Some(&both),
            append: "initrd=/c,/a.cpio y",
            label: "from-append",
        },
    );
}

#[test]
fn text_offset_and_low_ram_kernels() {
    // text_offset 0x80000 and flag bit 3 clear (the kernel must be in the lowest RAM region).
    let spec = KernelSpec {
        text_offset: 0x8_0000,
        flags: 0x2,
        bss: 3 * MIB,
        ..KernelSpec::new(MIB as usize, 20)
    };
    let k = spec.build();
    let cfg = conf("label t\n  kernel /Image\n  initrd /i\n  append t\n");
    let initrd = pattern(21, 12345);
    let files: [(&str, &[u8]); 3] = [(CONF, &cfg), ("/Image", &k), ("/i", &initrd)];
    let m = Machine::default();
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    let p = out.prepared();
    assert_eq!(p.entry, KEXBOOT_IMAGE.end() + 0x8_0000);
    assert_eq!(p.placement.kernel.len(), spec.image_size());
    m.boot_and_check(
        p,
        &Expect {
            kernel: &k,
            initrd: Some(&initrd),
            append: "t",
            label: "t",
        },
    );
}

#[test]
fn empty_append_gives_empty_bootargs() {
    let k = kernel(300 * KIB as usize, 22);
    let cfg = conf("label bare\n  kernel /Image\n");
    let files: [(&str, &[u8]); 2] = [(CONF, &cfg), ("/Image", &k)];
    let m = Machine::default();
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    m.boot_and_check(
        out.prepared(),
        &Expect {
            kernel: &k,
            initrd: None,
            append: "",
            label: "bare",
        },
    );
}

#[test]
fn legacy_kernel_without_image_size() {
    let spec = KernelSpec {
        text_offset: 0x1234_5000,
        ..KernelSpec::new(MIB as usize, 23)
    };
    let mut k = spec.build();
    k[0x10..0x18].fill(0); // image_size 0: text_offset is ignored, 0x80000 and 16 MiB assumed
    let cfg = conf("label old\n  kernel /Image\n  append old\n");
    let files: [(&str, &[u8]); 2] = [(CONF, &cfg), ("/Image", &k)];
    let m = Machine::default();
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    let p = out.prepared();
    assert_eq!(p.entry, KEXBOOT_IMAGE.end() + 0x8_0000);
    assert_eq!(p.placement.kernel.len(), 16 * MIB);
    m.boot_and_check(
        p,
        &Expect {
            kernel: &k,
            initrd: None,
            append: "old",
            label: "old",
        },
    );
}

#[test]
fn dot_dot_and_case_insensitive_paths_crlf_config() {
    // u-boot-menu style config with CRLF line ends, relative `..` paths and names in the
    // wrong case: FAT is case-insensitive, and `..` of a directory below the root is the root.
    let k = kernel(MIB as usize, 24);
    let initrd = pattern(25, 77_777);
    let cfg = conf(
        "default l\r\nlabel l\r\n  kernel ../vmlinuz-6.1.0-13-ARM64\r\n  initrd ../../INITRD.IMG-6.1.0-13-arm64\r\n  append  root=/dev/vda1  ro \r\n",
    );
    let files: [(&str, &[u8]); 3] = [
        (CONF, &cfg),
        ("/boot/vmlinuz-6.1.0-13-arm64", &k),
        ("/initrd.img-6.1.0-13-arm64", &initrd),
    ];
    let m = Machine::default();
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    let want = Expect {
        kernel: &k,
        initrd: Some(&initrd),
        append: "root=/dev/vda1  ro",
        label: "l",
    };
    m.boot_and_check(out.prepared(), &want);
}

#[test]
fn empty_initrd_file() {
    let k = kernel(200 * KIB as usize, 26);
    let cfg = conf("label e\n  kernel /Image\n  initrd /empty\n  append e\n");
    let files: [(&str, &[u8]); 3] = [(CONF, &cfg), ("/Image", &k), ("/empty", b"")];
    let m = Machine::default();
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    // Nothing to load: no initrd segment and no linux,initrd-* properties.
    m.boot_and_check(
        out.prepared(),
        &Expect {
            kernel: &k,
            initrd: None,
            append: "e",
            label: "e",
        },
    );
    assert_eq!(out.prepared().segments.len(), 2);
}

/// `booti`'s case through the one plan builder: kernel and initrd already in RAM (as `load` put
/// them), known by address and a length that may run past the kernel's `image_size` (booti only
/// knows `image_size`; a file may carry bytes after its image). The plan copies at most
/// `image_size` bytes, so the relocator accepts it and the kernel arrives byte-exact.
#[test]
fn plan_from_ram_copies_at_most_image_size() {
    use kexboot_boot::flow::{self, PlanRequest, Source, Staging};
    let spec = KernelSpec::new(MIB as usize + 777, 31);
    let k = spec.build();
    let initrd = pattern(32, 54321);
    let m = Machine::default();
    let mut staging = m.staging();
    let past = spec.image_size() + 2 * PAGE;
    let mut kbuf = staging.alloc(past as usize).unwrap();
    kbuf.data[..k.len()].copy_from_slice(&k);
    let mut ibuf = staging.alloc(initrd.len()).unwrap();
    ibuf.data.copy_from_slice(&initrd);
    let ram = [m.ram];
    let avoid = m.avoid();
    let mem = flow::MemoryView {
        ram: &ram,
        avoid: &avoid,
    };
    let header = kexboot_loader::image::ImageHeader::parse(&k).unwrap();
    let seeds = FakePlatform::default().seeds;
    let req = PlanRequest {
        label: "booti",
        header: &header,
        kernel: Source {
            addr: kbuf.addr,
            len: past,
        },
        initrd: Some(Source {
            addr: ibuf.addr,
            len: initrd.len() as u64,
        }),
        dtb: &m.dtb,
        bootargs: "console=ttyAMA0",
        seeds: seeds.as_ref(),
        placement: None,
    };
    let mut p = flow::plan(&mut staging, &mem, &req).expect("plan");
    assert_eq!(p.segments[0].len, spec.image_size());
    p.buffers.insert(0, kbuf);
    p.buffers.insert(1, ibuf);
    m.boot_and_check(
        &p,
        &Expect {
            kernel: &k,
            initrd: Some(&initrd),
            append: "console=ttyAMA0",
            label: "booti",
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Reading in place: files go straight to where they run when that is free

/// A disk with a plain or gzipped kernel and an initrd, booted by the default entry.
fn in_place_disk(kernel_file: &[u8], name: &str, initrd: &[u8]) -> Vec<u8> {
    let cfg = conf(&format!(
        "default l\nlabel l\n  kernel /boot/{name}\n  initrd /boot/initrd.img\n  append {APPEND}\n"
    ));
    mbr_fat16(&[
        (CONF, &cfg),
        (&format!("/boot/{name}") as &str, kernel_file),
        ("/boot/initrd.img", initrd),
    ])
}

/// Runs the default entry of `disk` with `staging` and checks the boot.
fn boot_in_place(
    m: &Machine,
    disk: Vec<u8>,
    staging: &mut HostStaging,
    want: &Expect,
) -> (kexboot_boot::flow::Prepared<HostBuf>, Relocated) {
    let mut out = m.run(&mut open(disk), staging, &mut FakePlatform::default());
    assert!(out.failures.is_empty(), "{:#?}", out.failures);
    let (_, p) = out.prepared.take().unwrap();
    let r = m.boot_and_check(&p, want);
    (p, r)
}

/// The RAM every destination of `p` covers, after the relocation.
fn destinations(p: &kexboot_boot::flow::Prepared<HostBuf>, r: &Relocated) -> Vec<Vec<u8>> {
    p.segments
        .iter()
        .map(|s| r.mem.slice(s.dest_range().unwrap()).unwrap().to_vec())
        .collect()
}

/// Cold boot: kernel, initrd and DTB are read (or written) where they run, so the relocator
/// copies none of their whole pages (only each partial last page and the kernel's BSS tail),
/// and the booted RAM is byte-identical to the staged path's.
#[test]
fn cold_boot_reads_in_place() {
    let k = kernel(3 * MIB as usize + 4321, 41);
    let initrd = pattern(42, 2 * MIB as usize + 77);
    let want = Expect {
        kernel: &k,
        initrd: Some(&initrd),
        append: APPEND,
        label: "l",
    };
    let m = Machine::default();
    let mut staging = m.staging();
    let (p, r) = boot_in_place(&m, in_place_disk(&k, "Image", &initrd), &mut staging, &want);
    assert_eq!(p.segments.len(), 3);
    for s in &p.segments {
        assert!(s.in_place(), "segment {s:?} not in place");
    }
    assert_eq!(p.entry, KEXBOOT_IMAGE.end(), "the usual placement");
    let whole = |n: usize| n as u64 / PAGE;
    assert_eq!(
        r.list.in_place_pages,
        whole(k.len()) + whole(initrd.len()) + whole(staged_dtb(&p).len())
    );
    // Copied: the three partial pages, then the kernel's BSS from the zero page.
    assert_eq!(r.list.bounced_pages, 3);
    assert_eq!(
        r.list.bytes,
        (3 + r.list.zero_filled_pages) * PAGE,
        "nothing but partial pages and zeros copied"
    );
    assert!(
        staging.live().is_empty(),
        "nothing staged in the heap: {:?}",
        staging.log
    );

    // The staged path: the same placement, the same RAM at every destination.
    let mut heap = m.heap_staging();
    let (q, s) = boot_in_place(&m, in_place_disk(&k, "Image", &initrd), &mut heap, &want);
    assert_eq!(p.placement, q.placement);
    assert!(q.segments.iter().all(|s| !s.in_place()));
    assert!(s.list.bytes >= (k.len() + initrd.len()) as u64);
    assert!(destinations(&p, &r) == destinations(&q, &s));
}

/// A gzipped kernel is inflated straight to its placement, clear of the compressed file (read
/// where a plain Image would have gone): no copy of the kernel at the jump.
#[test]
fn cold_boot_inflates_in_place() {
    let k = kernel(3 * MIB as usize + 999, 43);
    let gz = gzip(&k);
    let initrd = pattern(44, MIB as usize);
    let want = Expect {
        kernel: &k,
        initrd: Some(&initrd),
        append: APPEND,
        label: "l",
    };
    let m = Machine::default();
    let mut staging = m.staging();
    let (p, r) = boot_in_place(
        &m,
        in_place_disk(&gz, "Image.gz", &initrd),
        &mut staging,
        &want,
    );
    assert!(p.segments.iter().all(|s| s.in_place()), "{:?}", p.segments);
    // The compressed file was read at the first free 2 MiB boundary and freed; the kernel sits
    // at the next boundary past it.
    let file = staging.placed_log[0];
    assert_eq!(file, (KEXBOOT_IMAGE.end(), gz.len()));
    assert_eq!(
        p.entry,
        round_up(KEXBOOT_IMAGE.end() + gz.len() as u64, SZ_2M)
    );
    assert!(staging.live().is_empty());
    assert_eq!(staging.placed().len(), 3, "kernel, initrd, DTB");
    assert!(r.list.bytes < 8 * PAGE + r.list.zero_filled_pages * PAGE);
}

/// Where the destination is not free now (as in a warm entry, where the board's writable view
/// excludes it) or already taken, the file is staged and copied as before; where the spot a
/// modern Image would take is not the kernel's (an older text_offset), the kernel read there is
/// moved to staging; every boot is still exact.
#[test]
fn fallback_to_staging_when_the_destination_is_not_free() {
    let k = kernel(2 * MIB as usize + 5, 45);
    let initrd = pattern(46, MIB as usize + 3);
    let want = Expect {
        kernel: &k,
        initrd: Some(&initrd),
        append: APPEND,
        label: "l",
    };
    let m = Machine::default();
    // The low 64 MiB are not writable now: the kernel is staged, initrd and DTB (high) are not.
    let mut free = m.free();
    let low = Range::new(RAM.start(), RAM.start() + 64 * MIB).unwrap();
    free = kexboot_loader::mem::free_regions(&free, &[low]);
    let mut staging = HostStaging::with_free(m.heap, free);
    let (p, _) = boot_in_place(&m, in_place_disk(&k, "Image", &initrd), &mut staging, &want);
    assert!(!p.segments[0].in_place());
    assert!(m.heap.contains(p.segments[0].src));
    assert!(p.segments[1].in_place() && p.segments[2].in_place());

    // The initrd's place is held by a live buffer: it is staged.
    use kexboot_boot::flow::Staging;
    let mut staging = m.staging();
    let first = {
        let mut probe = m.staging();
        boot_in_place(&m, in_place_disk(&k, "Image", &initrd), &mut probe, &want)
            .0
            .placement
            .initrd
            .unwrap()
    };
    let held = staging.at(first).expect("free before the boot");
    let (p, _) = boot_in_place(&m, in_place_disk(&k, "Image", &initrd), &mut staging, &want);
    assert!(p.segments[0].in_place() && !p.segments[1].in_place());
    drop(held);

    // text_offset 0x80000: read at the 2 MiB boundary, runs 512 KiB above it: staged.
    let spec = KernelSpec {
        text_offset: 0x8_0000,
        ..KernelSpec::new(MIB as usize, 47)
    };
    let old = spec.build();
    let want = Expect {
        kernel: &old,
        ..want
    };
    let mut staging = m.staging();
    let (p, _) = boot_in_place(
        &m,
        in_place_disk(&old, "Image", &initrd),
        &mut staging,
        &want,
    );
    assert_eq!(p.entry, KEXBOOT_IMAGE.end() + 0x8_0000);
    assert!(!p.segments[0].in_place());
    assert!(m.heap.contains(p.segments[0].src));
}

/// `booti`: sources are where `load` put them; the DTB is written in place only where no source
/// lies, so an initrd loaded over the DTB's place survives until the relocator bounces it.
#[test]
fn booti_sources_over_destinations_still_bounce() {
    use kexboot_boot::flow::{self, PlanRequest, Source, Staging};
    let spec = KernelSpec::new(MIB as usize + 5, 48);
    let k = spec.build();
    let initrd = pattern(49, 300_000);
    let m = Machine::default();
    let ram = [m.ram];
    let avoid = m.avoid();
    let mem = flow::MemoryView {
        ram: &ram,
        avoid: &avoid,
    };
    let header = kexboot_loader::image::ImageHeader::parse(&k).unwrap();
    let seeds = FakePlatform::default().seeds;
    // Where the plan will put things, to load the sources over them.
    let probe = kexboot_loader::place::place(
        &ram,
        &avoid,
        &header,
        initrd.len() as u64,
        (m.dtb.len() as u64 + flow::DTB_GROWTH).min(2 * MIB),
    )
    .unwrap();
    let mut staging = m.staging();
    // The kernel loaded 1 MiB above its placement (overlapping it), the initrd over the DTB's
    // place.
    let kaddr = probe.kernel.start() + MIB;
    let mut kbuf = staging
        .at(Range::from_len(kaddr, k.len() as u64).unwrap())
        .unwrap();
    kbuf.data.copy_from_slice(&k);
    let iaddr = probe.dtb.start();
    let mut ibuf = staging
        .at(Range::from_len(iaddr, initrd.len() as u64).unwrap())
        .unwrap();
    ibuf.data.copy_from_slice(&initrd);
    let req = PlanRequest {
        label: "booti",
        header: &header,
        kernel: Source {
            addr: kaddr,
            len: k.len() as u64,
        },
        initrd: Some(Source {
            addr: iaddr,
            len: initrd.len() as u64,
        }),
        dtb: &m.dtb,
        bootargs: "console=ttyAMA0",
        seeds: seeds.as_ref(),
        placement: None,
    };
    let mut p = flow::plan(&mut staging, &mem, &req).expect("plan");
    assert_eq!(p.placement, probe);
    assert!(
        m.heap.contains(p.segments[2].src),
        "DTB staged, not over the initrd"
    );
    p.buffers.insert(0, kbuf);
    p.buffers.insert(1, ibuf);
    let r = m.boot_and_check(
        &p,
        &Expect {
            kernel: &k,
            initrd: Some(&initrd),
            append: "console=ttyAMA0",
            label: "booti",
        },
    );
    // Every source page under a destination was bounced at plan time.
    let kernel_over = (round_up(p.placement.kernel.end(), PAGE) - kaddr) / PAGE;
    assert!(r.list.bounced_pages >= kernel_over + initrd.len() as u64 / PAGE);
}

// ---------------------------------------------------------------------------------------------
// Device trees an entry names: `fdt`, `fdtdir`, `fdtoverlays`

const OVERLAY_CHOSEN: &[u8] = include_bytes!("../../loader/tests/data/overlay/chosen.dtbo");
const OVERLAY_BAD_PATH: &[u8] = include_bytes!("../../loader/tests/data/overlay/bad-path.dtbo");
/// A `/memreserve/` entry of the firmware's tree (inside kexboot's image, avoided anyway).
const FIRMWARE_MEMRESERVE: (u64, u64) = (0x4000_2000, 0x1000);

/// A small tree over the test machine's RAM: root `compatible`, `/memory`, and (for a
/// firmware tree) a `/memreserve/` entry and a `/reserved-memory` child.
fn small_tree(compatible: &[&str], firmware: bool) -> Vec<u8> {
    use vm_fdt::{FdtReserveEntry, FdtWriter};
    let rsv = match firmware {
        true => vec![FdtReserveEntry::new(FIRMWARE_MEMRESERVE.0, FIRMWARE_MEMRESERVE.1).unwrap()],
        false => vec![],
    };
    let mut w = FdtWriter::new_with_mem_reserv(&rsv).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_string_list(
        "compatible",
        compatible.iter().map(|s| s.to_string()).collect(),
    )
    .unwrap();
    let mem = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[RAM.start(), RAM.len()])
        .unwrap();
    w.end_node(mem).unwrap();
    if firmware {
        let rm = w.begin_node("reserved-memory").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_null("ranges").unwrap();
        let r = w.begin_node("ramoops@44000000").unwrap();
        w.property_string("compatible", "ramoops").unwrap();
        w.property_array_u64("reg", &[RAMOOPS.start(), RAMOOPS.len()])
            .unwrap();
        w.end_node(r).unwrap();
        w.end_node(rm).unwrap();
    }
    let chosen = w.begin_node("chosen").unwrap();
    w.end_node(chosen).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// The DTB the plan stages (the last buffer), cut to its `totalsize`.
fn staged_dtb(p: &kexboot_boot::flow::Prepared<HostBuf>) -> Vec<u8> {
    let b = p.buffers.last().unwrap().as_ref();
    let total = u32::from_be_bytes(b[4..8].try_into().unwrap()) as usize;
    b[..total].to_vec()
}

fn compatible(dtb: &[u8]) -> Vec<String> {
    kexboot_loader::dt::DtInfo::read(dtb).unwrap().compatible
}

fn memreserve(dtb: &[u8]) -> Vec<(u64, u64)> {
    fdt::Fdt::new(dtb)
        .unwrap()
        .memory_reservations()
        .map(|r| (r.address() as u64, r.size() as u64))
        .collect()
}

/// Boots the config `body` from a disk that also holds `extra` files, on a machine whose
/// firmware tree is `firmware`.
fn boot_with(
    firmware: Vec<u8>,
    body: &str,
    extra: &[(&str, &[u8])],
    platform: &mut FakePlatform,
) -> Outcome {
    let k = kernel(MIB as usize, 3);
    let cfg = conf(body);
    let mut files: Vec<(&str, &[u8])> = vec![(CONF, &cfg), ("/boot/Image", &k)];
    files.extend_from_slice(extra);
    let m = Machine {
        dtb: firmware,
        ..Machine::default()
    };
    let mut staging = m.staging();
    m.run(&mut open(mbr_fat16(&files)), &mut staging, platform)
}

/// `fdt FILE` boots with FILE instead of the firmware's tree; the firmware tree's
/// `/memreserve/` and `/reserved-memory` nodes and the board's own changes still apply.
#[test]
fn fdt_line_loads_the_named_tree() {
    let named = small_tree(&["test,named"], false);
    let out = boot_with(
        small_tree(&["test,firmware"], true),
        "label l\n kernel /boot/Image\n fdt ../dtbs/named.dtb\n append a=1\n",
        &[("/boot/dtbs/named.dtb", &named)],
        &mut FakePlatform::default(),
    );
    assert!(out.failures.is_empty(), "{:#?}", out.failures);
    let dtb = staged_dtb(out.prepared());
    assert_eq!(compatible(&dtb), ["test,named"]);
    let rsv = memreserve(&dtb);
    assert!(rsv.contains(&FIRMWARE_MEMRESERVE), "{rsv:x?}");
    assert!(
        rsv.contains(&(OWN_MEMRESERVE.start(), OWN_MEMRESERVE.len())),
        "{rsv:x?}"
    );
    let info = kexboot_loader::dt::DtInfo::parse(&dtb).unwrap();
    assert_eq!(info.ramoops, Some(RAMOOPS));
    assert_eq!(info.bootargs.as_deref(), Some("a=1"));
}

/// A missing `fdt` file fails the entry (U-Boot: "Skipping ... for failure retrieving FDT")
/// and the next entry boots with the firmware's tree.
#[test]
fn missing_fdt_file_fails_the_entry() {
    let out = boot_with(
        small_tree(&["test,firmware"], true),
        "label a\n kernel /boot/Image\n devicetree /dtbs/none.dtb\nlabel b\n kernel /boot/Image\n",
        &[],
        &mut FakePlatform::default(),
    );
    let (err, text) = out.failure("a");
    assert!(
        matches!(err, kexboot_boot::flow::BootError::File { path, .. } if path == "/dtbs/none.dtb"),
        "{text}"
    );
    assert_eq!(out.prepared().label, "b");
    assert_eq!(compatible(&staged_dtb(out.prepared())), ["test,firmware"]);
}

/// `fdtdir DIR` picks `DIR/$fdtfile`: from the environment when set, else U-Boot's name for
/// the board's `compatible`; with no known name or no such file, the firmware's tree.
#[test]
fn fdtdir_picks_the_boards_file() {
    let rpi3 = small_tree(&["raspberrypi,3-model-b", "brcm,bcm2837"], true);
    let named = small_tree(&["test,named"], false);
    let custom = small_tree(&["test,custom"], false);
    let files: [(&str, &[u8]); 2] = [
        ("/dtbs/broadcom/bcm2837-rpi-3-b.dtb", &named),
        ("/dtbs/custom.dtb", &custom),
    ];
    let cfg = "label l\n kernel /boot/Image\n fdtdir /dtbs\n";
    let boot = |firmware: &[u8], platform: &mut FakePlatform| {
        let out = boot_with(firmware.to_vec(), cfg, &files, platform);
        assert!(out.failures.is_empty(), "{:#?}", out.failures);
        compatible(&staged_dtb(out.prepared()))
    };
    assert_eq!(boot(&rpi3, &mut FakePlatform::default()), ["test,named"]);
    let mut env = FakePlatform {
        fdtfile: Some("custom.dtb".into()),
        ..Default::default()
    };
    assert_eq!(boot(&rpi3, &mut env), ["test,custom"]);
    // No file known for the board: the firmware's tree.
    let other = small_tree(&["test,unknown-board"], true);
    assert_eq!(
        boot(&other, &mut FakePlatform::default()),
        ["test,unknown-board"]
    );
    // A file that is not there: the firmware's tree too (U-Boot boots on without it).
    let mut missing = FakePlatform {
        fdtfile: Some("none.dtb".into()),
        ..Default::default()
    };
    assert_eq!(
        boot(&rpi3, &mut missing),
        ["raspberrypi,3-model-b", "brcm,bcm2837"]
    );
}

/// `fdtoverlays` apply in order; one that cannot be loaded or applied is skipped and the tree
/// stays as the others left it.
#[test]
fn fdtoverlays_apply_and_bad_ones_are_skipped() {
    let out = boot_with(
        small_tree(&["test,firmware"], true),
        "label l\n kernel /boot/Image\n fdtoverlays /o/bad-path.dtbo /o/none.dtbo /o/chosen.dtbo\n",
        &[
            ("/o/chosen.dtbo", OVERLAY_CHOSEN),
            ("/o/bad-path.dtbo", OVERLAY_BAD_PATH),
        ],
        &mut FakePlatform::default(),
    );
    assert!(out.failures.is_empty(), "{:#?}", out.failures);
    let dtb = staged_dtb(out.prepared());
    let tree = fdt::Fdt::new(&dtb).unwrap();
    let chosen = tree.find_node("/chosen").unwrap();
    assert_eq!(
        chosen.property("kexboot,overlay").unwrap().value,
        b"chosen\0"
    );
    assert_eq!(memreserve(&dtb), [FIRMWARE_MEMRESERVE]);
}

/// Fedora-style Boot Loader Specification entries on a FAT `$BOOT`, no extlinux.conf: the newest
/// kernel boots, with its initrd and options, through the same flow.
#[test]
fn bls_entries_boot_the_newest_kernel() {
    let mid = "4098b3f648d74c13b1f04ccfba7798e8";
    let k_new = kernel(MIB as usize, 21);
    let k_old = kernel(MIB as usize, 22);
    let initrd = pattern(23, 200_000);
    let entry = |v: &str| {
        format!(
            "title Fedora Linux ({v})\nversion {v}\nmachine-id {mid}\nlinux /vmlinuz-{v}\n\
             initrd /initramfs-{v}.img\noptions root=UUID=1234 ro\noptions quiet\n"
        )
        .into_bytes()
    };
    let (e1, e2) = (entry("6.9.12-200.fc40"), entry("6.10.0-0.rc1.fc41"));
    let n1 = format!("/loader/entries/{mid}-6.9.12-200.fc40.conf");
    let n2 = format!("/loader/entries/{mid}-6.10.0-0.rc1.fc41.conf");
    let d = mbr_fat16(&[
        (&n1, &e1),
        (&n2, &e2),
        ("/loader/entries/notes.txt", b"not an entry"),
        ("/vmlinuz-6.9.12-200.fc40", &k_old),
        ("/vmlinuz-6.10.0-0.rc1.fc41", &k_new),
        ("/initramfs-6.10.0-0.rc1.fc41.img", &initrd),
    ]);
    let m = Machine::default();
    let out = m.run(&mut open(d), &mut m.staging(), &mut FakePlatform::default());
    let source = out.source.unwrap();
    assert_eq!(source.to_string(), "/loader/entries (2 entries)");
    assert_eq!(source.base(), "/");
    let (_, config) = out.config.as_ref().unwrap();
    assert!(config.notes.is_empty(), "{:?}", config.notes);
    let label = format!("{mid}-6.10.0-0.rc1.fc41");
    let want = Expect {
        kernel: &k_new,
        initrd: Some(&initrd),
        append: "root=UUID=1234 ro quiet",
        label: &label,
    };
    m.boot_and_check(out.prepared(), &want);
}

/// An extlinux.conf wins over BLS entries on the same partition (U-Boot's order, then ours);
/// its `include` is read from the disk; a `localboot` entry is skipped with a clear failure and
/// the boot order moves on.
#[test]
fn extlinux_with_include_before_bls_and_localboot_skipped() {
    let k = kernel(MIB as usize, 24);
    let top = conf("timeout 0\ndefault disk\ninclude entries.conf\n");
    let inc = conf("label disk\n  localboot 1\nlabel linux\n  kernel Image\n  append x=1\n");
    let d = mbr_fat16(&[
        (CONF, &top),
        ("/boot/extlinux/entries.conf", &inc),
        ("/boot/extlinux/Image", &k),
        ("/loader/entries/a.conf", b"linux /nothere\n"),
    ]);
    let m = Machine::default();
    let out = m.run(&mut open(d), &mut m.staging(), &mut FakePlatform::default());
    assert_eq!(out.source.unwrap().to_string(), CONF);
    let (_, config) = out.config.as_ref().unwrap();
    assert_eq!(config.entries.len(), 2);
    assert_eq!(out.failures.len(), 1);
    let (err, text) = out.failure("disk");
    assert!(
        matches!(err, kexboot_boot::flow::BootError::LocalBoot),
        "{err:?}"
    );
    assert_eq!(text, "localboot is not supported here");
    let want = Expect {
        kernel: &k,
        initrd: None,
        append: "x=1",
        label: "linux",
    };
    m.boot_and_check(out.prepared(), &want);
}

/// An entries directory with nothing bootable in it: the notes say why, nothing boots.
#[test]
fn bls_without_bootable_entries() {
    let d = mbr_fat16(&[("/loader/entries/x.conf", b"title only a title\n")]);
    let m = Machine::default();
    let out = m.run(&mut open(d), &mut m.staging(), &mut FakePlatform::default());
    let (_, config) = out.config.as_ref().unwrap();
    assert!(config.entries.is_empty());
    assert!(config.notes[0].to_string().contains("no 'linux' line"));
    assert!(out.prepared.is_none());
}
