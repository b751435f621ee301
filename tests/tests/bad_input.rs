//! Bad input through the whole boot flow (DESIGN.md "Bad input"): each broken file makes its
//! entry fail with the right `BootError`, whose message names the file and what was wrong; the
//! next entry then boots, and the relocation of that entry writes nothing outside its plan.

use kexboot_boot::flow::{self, BootError, FileError, MemoryView, STAGING_MARGIN};
use kexboot_loader::Error as LErr;
use kexboot_tests::*;

const CONF: &str = "/boot/extlinux/extlinux.conf";

/// The fallback entry every test has.
struct Good {
    kernel: Vec<u8>,
    initrd: Vec<u8>,
}

impl Good {
    fn new() -> Self {
        Good {
            kernel: kernel(400 * KIB as usize, 77),
            initrd: pattern(78, 50_000),
        }
    }

    const LINES: &'static str =
        "label good\n  kernel /good/Image\n  initrd /good/initrd\n  append good=1\n";

    fn files(&self) -> [(&'static str, &[u8]); 2] {
        [
            ("/good/Image", &self.kernel),
            ("/good/initrd", &self.initrd),
        ]
    }

    fn expect(&self) -> Expect<'_> {
        Expect {
            kernel: &self.kernel,
            initrd: Some(&self.initrd),
            append: "good=1",
            label: "good",
        }
    }
}

/// A disk whose default entry `bad` is `bad_lines` and whose second entry is [`Good`], with
/// `extra` files; runs the flow on `m` and checks that `good` booted after `bad` failed.
fn fallback(
    m: &Machine,
    staging: &mut HostStaging,
    bad_lines: &str,
    extra: &[(&str, &[u8])],
) -> Outcome {
    let good = Good::new();
    let cfg = format!("default bad\n{}label bad\n{bad_lines}", Good::LINES);
    let mut files: Vec<(&str, &[u8])> = vec![(CONF, cfg.as_bytes())];
    files.extend(good.files());
    files.extend(extra);
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        staging,
        &mut FakePlatform::default(),
    );
    assert_eq!(out.failures.len(), 1, "{:#?}", out.failures);
    assert_eq!(out.failures[0].label, "bad");
    assert_eq!(
        out.prepared.as_ref().map(|p| p.0),
        Some(1),
        "the next entry is tried"
    );
    m.boot_and_check(out.prepared(), &good.expect());
    out
}

/// Runs [`fallback`] with a default machine and returns the `bad` entry's error and message.
fn bad_kernel(file: &[u8]) -> (BootError, String) {
    let m = Machine::default();
    let mut out = fallback(
        &m,
        &mut m.staging(),
        "  kernel /boot/Image.gz\n  append bad\n",
        &[("/boot/Image.gz", file)],
    );
    let e = out.failures.remove(0).error;
    let msg = e.to_string();
    assert!(
        msg.contains("/boot/Image.gz"),
        "message does not name the file: {msg}"
    );
    (e, msg)
}

fn kernel_err(e: &BootError) -> &LErr {
    match e {
        BootError::Kernel { path, err } => {
            assert_eq!(path, "/boot/Image.gz");
            err
        }
        other => panic!("expected BootError::Kernel, got {other:?}"),
    }
}

#[test]
fn corrupt_image_headers() {
    let good = kernel(200 * KIB as usize, 30);
    let mut magic = good.clone();
    magic[0x3b] = b'!';
    let mut big_endian = good.clone();
    big_endian[0x18] |= 1;
    let mut small = good.clone();
    small[0x10..0x18].copy_from_slice(&4096u64.to_le_bytes());
    let mut unaligned = good.clone();
    unaligned[0x08..0x10].copy_from_slice(&0x10u64.to_le_bytes());
    let cases: [(&[u8], LErr, &str); 6] = [
        (&magic, LErr::BadImageMagic { found: 0x214d_5241 }, "magic"),
        (&big_endian, LErr::BigEndianImage, "big-endian"),
        (
            &small,
            LErr::ImageLargerThanImageSize {
                file_len: good.len() as u64,
                image_size: 4096,
            },
            "image_size",
        ),
        (
            &unaligned,
            LErr::UnalignedTextOffset { text_offset: 0x10 },
            "text_offset",
        ),
        (&good[..40], LErr::ImageTooShort { len: 40 }, "shorter"),
        (&[], LErr::ImageTooShort { len: 0 }, "shorter"),
    ];
    for (file, want, word) in cases {
        let (e, msg) = bad_kernel(file);
        assert_eq!(kernel_err(&e), &want);
        assert!(msg.contains(word), "{msg}");
    }
    // The same header faults behind gzip.
    let (e, msg) = bad_kernel(&gzip(&big_endian));
    assert_eq!(kernel_err(&e), &LErr::BigEndianImage, "{msg}");
    // A kernel in a compression kexboot cannot inflate is named as such.
    let (e, msg) = bad_kernel(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2]);
    assert!(
        matches!(e, BootError::Unsupported { what: "xz", .. }),
        "{e:?}"
    );
    assert!(msg.contains("xz"));
}

#[test]
fn truncated_image_gz() {
    let k = kernel(MIB as usize, 31);
    let gz = gzip(&k);
    let n = gz.len();
    let free = Machine::default().heap.len();
    for cut in [
        0,
        2,
        3,
        9,
        10,
        17,
        18,
        30,
        100,
        n / 3,
        n / 2,
        n - 100,
        n - 9,
        n - 8,
        n - 5,
        n - 1,
    ] {
        let file = &gz[..cut];
        let (e, msg) = bad_kernel(file);
        let hint = (cut >= 18).then(|| u32::from_le_bytes(file[cut - 4..].try_into().unwrap()));
        match (cut, hint) {
            (0..=2, _) => assert_eq!(
                kernel_err(&e),
                &LErr::ImageTooShort { len: cut },
                "cut {cut}: {msg}"
            ),
            (_, None | Some(0)) => {
                assert_eq!(
                    kernel_err(&e),
                    &LErr::Truncated {
                        what: "gzip trailer"
                    },
                    "cut {cut}: {msg}"
                );
                assert!(msg.contains("truncated"), "{msg}");
            }
            // Deflate expands at most 1032:1: a bigger "ISIZE" is compressed data read as a
            // trailer, so the file is reported truncated, not as too big for RAM.
            (_, Some(h)) if u64::from(h) > cut as u64 * 1032 => {
                assert!(
                    matches!(kernel_err(&e), LErr::Truncated { what } if what.contains("ISIZE")),
                    "cut {cut}: {e:?}"
                );
                assert!(
                    msg.contains("truncated") && msg.contains("/boot/Image.gz"),
                    "{msg}"
                );
            }
            (_, Some(h)) if u64::from(h) + STAGING_MARGIN + cut as u64 > free => {
                assert!(
                    matches!(&e, BootError::NoMemory { path, size, .. } if path == "/boot/Image.gz" && *size == u64::from(h)),
                    "cut {cut}: {e:?}"
                );
                assert!(msg.contains(&h.to_string()), "{msg}");
            }
            (_, Some(h)) => {
                let err = kernel_err(&e);
                let ok = matches!(
                    err,
                    LErr::Truncated { .. } | LErr::Corrupt { .. } | LErr::CrcMismatch { .. }
                ) || *err == LErr::InflatesBeyond { limit: h as usize }
                    || matches!(err, LErr::SizeMismatch { expected, .. } if *expected == h);
                assert!(ok, "cut {cut}: {err:?}");
            }
        }
    }
}

#[test]
fn image_gz_missing_its_tail_but_keeping_its_trailer() {
    // The deflate stream stops early but the trailer (CRC, ISIZE) is intact, so the buffer is
    // sized right and the inflater itself must notice.
    let k = kernel(MIB as usize, 41);
    let gz = gzip(&k);
    let n = gz.len();
    for cut in [20, 1000, n / 2, n - 200, n - 9] {
        let file = [&gz[..cut], &gz[n - 8..]].concat();
        let (e, msg) = bad_kernel(&file);
        let err = kernel_err(&e);
        // The trailer's bytes read as deflate data may even produce more output than ISIZE.
        let beyond = LErr::InflatesBeyond { limit: k.len() };
        assert!(
            matches!(
                err,
                LErr::Truncated {
                    what: "deflate stream"
                } | LErr::Corrupt { .. }
                    | LErr::CrcMismatch { .. }
            ) || *err == beyond
                // A cut so short that even the real ISIZE exceeds deflate's 1032:1 limit.
                || (matches!(err, LErr::Truncated { what } if what.contains("ISIZE"))
                    && k.len() > file.len() * 1032),
            "cut {cut}: {err:?}"
        );
        let words = ["truncated", "corrupt", "CRC", "inflates beyond"];
        assert!(words.iter().any(|w| msg.contains(w)), "{msg}");
    }
}

#[test]
fn gzip_isize_lies() {
    let k = kernel(MIB as usize + 333, 32);
    let real = k.len() as u32;
    let gz = gzip(&k);

    // Output beyond ISIZE: inflation stops at the buffer ISIZE sized.
    let mut short = gz.clone();
    set_isize(&mut short, real - 4096);
    let (e, msg) = bad_kernel(&short);
    assert_eq!(
        kernel_err(&e),
        &LErr::InflatesBeyond {
            limit: (real - 4096) as usize
        }
    );
    assert!(
        msg.contains("inflates beyond") && msg.contains(&(real - 4096).to_string()),
        "{msg}"
    );

    // ISIZE larger than the output.
    let mut long = gz.clone();
    set_isize(&mut long, real + 100);
    let (e, msg) = bad_kernel(&long);
    assert_eq!(
        kernel_err(&e),
        &LErr::SizeMismatch {
            expected: real + 100,
            found: real
        }
    );
    assert!(msg.contains("size mismatch"), "{msg}");

    // ISIZE that deflate could produce from this file, but beyond all staging memory.
    let plausible = 512 << 20;
    assert!(u64::from(plausible) <= long.len() as u64 * 1032);
    let mut huge = gz.clone();
    set_isize(&mut huge, plausible);
    let (e, msg) = bad_kernel(&huge);
    assert!(
        matches!(e, BootError::NoMemory { size, .. } if size == u64::from(plausible)),
        "{e:?}"
    );
    assert!(
        msg.contains(&format!("{plausible} bytes do not fit")),
        "{msg}"
    );

    // ISIZE no deflate stream of this length can reach: the trailer is not a trailer.
    let mut impossible = gz.clone();
    set_isize(&mut impossible, 0xffff_f000);
    let (e, msg) = bad_kernel(&impossible);
    assert!(
        matches!(kernel_err(&e), LErr::Truncated { what } if what.contains("ISIZE")),
        "{e:?}"
    );
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn gzip_inflating_beyond_free_staging_memory() {
    let k = kernel(3 * MIB as usize, 33);
    let gz = gzip(&k);
    // Room for the compressed file and the small fallback entry, not for the inflated kernel.
    let heap = round_up(gz.len() as u64 + STAGING_MARGIN + MIB, PAGE);
    assert!(heap < k.len() as u64 + gz.len() as u64 + STAGING_MARGIN);
    let m = Machine::with_heap(heap);
    // Staging only (as when the kernel's place is not free): in place, nothing would be
    // inflated into the heap.
    let mut staging = m.heap_staging();
    let out = fallback(
        &m,
        &mut staging,
        "  kernel /boot/Image.gz\n",
        &[("/boot/Image.gz", &gz)],
    );
    let (e, msg) = out.failure("bad");
    match e {
        BootError::NoMemory { path, size, free } => {
            assert_eq!(path, "/boot/Image.gz");
            assert_eq!(*size, k.len() as u64);
            assert_eq!(*free, heap - round_up(gz.len() as u64, PAGE));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        msg.contains("/boot/Image.gz") && msg.contains("free memory"),
        "{msg}"
    );
    // Everything the failed entry staged was given back.
    assert!(staging.log.iter().any(|&(_, len)| len == gz.len()));
}

#[test]
fn gzip_corrupt_crc_and_body() {
    let k = kernel(MIB as usize, 34);
    let gz = gzip(&k);
    let n = gz.len();
    let real_crc = u32::from_le_bytes(gz[n - 8..n - 4].try_into().unwrap());
    let mut bad = gz.clone();
    bad[n - 8] ^= 0x40;
    let (e, msg) = bad_kernel(&bad);
    assert_eq!(
        kernel_err(&e),
        &LErr::CrcMismatch {
            expected: real_crc ^ 0x40,
            found: real_crc
        }
    );
    assert!(msg.contains("CRC32 mismatch"), "{msg}");

    // A flipped bit inside the compressed body is caught, whatever the decoder makes of it.
    for (i, at) in [n / 4, n / 2, 3 * n / 4].into_iter().enumerate() {
        let mut body = gz.clone();
        body[at] ^= 1 << i;
        let (e, _) = bad_kernel(&body);
        let err = kernel_err(&e);
        assert!(
            matches!(
                err,
                LErr::Corrupt { .. }
                    | LErr::CrcMismatch { .. }
                    | LErr::Truncated { .. }
                    | LErr::InflatesBeyond { .. }
                    | LErr::SizeMismatch { .. }
            ),
            "flip at {at}: {err:?}"
        );
    }

    // A broken gzip header.
    let mut hdr = gz.clone();
    hdr[3] |= 0x80;
    let (e, msg) = bad_kernel(&hdr);
    assert_eq!(
        kernel_err(&e),
        &LErr::GzipHeader {
            offset: 3,
            what: "reserved flag bits set"
        }
    );
    assert!(msg.contains("offset 3"), "{msg}");
}

fn garbage_dtbs() -> Vec<(&'static str, Vec<u8>)> {
    let mut bad_total = QEMU_VIRT_DTB.to_vec();
    bad_total[4..8].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let mut bad_struct = QEMU_VIRT_DTB.to_vec();
    let off = u32::from_be_bytes(bad_struct[8..12].try_into().unwrap()) as usize;
    bad_struct[off..off + 4].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    vec![
        ("empty", Vec::new()),
        ("random", pattern(40, 4096)),
        (
            "truncated",
            QEMU_VIRT_DTB[..QEMU_VIRT_DTB.len() / 2].to_vec(),
        ),
        ("totalsize", bad_total),
        ("struct token", bad_struct),
    ]
}

#[test]
fn device_tree_that_does_not_parse() {
    let good = Good::new();
    let cfg = format!("{}label second\n  kernel /good/Image\n", Good::LINES);
    let mut files: Vec<(&str, &[u8])> = vec![(CONF, cfg.as_bytes())];
    files.extend(good.files());
    for (name, dtb) in garbage_dtbs() {
        // The firmware reads the DTB first and refuses it.
        let e = kexboot_loader::dt::DtInfo::parse(&dtb).expect_err(name);
        assert!(matches!(e, LErr::BadDtb { .. }), "{name}: {e:?}");
        assert!(
            e.to_string().contains("bad device tree at offset"),
            "{name}: {e}"
        );

        // Had it not, every entry fails on it (the DTB is the machine's, not the entry's).
        let m = Machine {
            dtb: dtb.clone(),
            ..Machine::default()
        };
        let out = m.run(
            &mut open(mbr_fat16(&files)),
            &mut m.staging(),
            &mut FakePlatform::default(),
        );
        assert!(out.prepared.is_none(), "{name}");
        assert_eq!(out.failures.len(), 2, "{name}");
        for f in &out.failures {
            assert!(
                matches!(f.error, BootError::Dtb(LErr::BadDtb { .. })),
                "{name}: {:?}",
                f.error
            );
            assert!(
                f.error
                    .to_string()
                    .starts_with("device tree: bad device tree at offset"),
                "{}",
                f.error
            );
        }

        // And `prepare` on its own says the same.
        let (path, config) = out.config.unwrap();
        let ram = [m.ram];
        let avoid = m.avoid();
        let view = MemoryView {
            ram: &ram,
            avoid: &avoid,
        };
        let mut staging = m.staging();
        let r = flow::prepare(
            &mut open(mbr_fat16(&files)),
            &mut staging,
            &mut FakePlatform::default(),
            &view,
            &dtb,
            path,
            &config.entries[0],
        );
        assert!(matches!(r, Err(BootError::Dtb(_))), "{name}");
        assert!(staging.live().is_empty(), "{name}: staging buffers leaked");
    }
}

#[test]
fn kernel_that_cannot_fit_beside_kexboot_and_reserved_memory() {
    // Only a 4 MiB hole is left in RAM outside kexboot, its heap and reserved memory.
    let hole = Range::new(0x4500_0000, 0x4540_0000).unwrap();
    let mut m = Machine::default();
    m.extra_avoid = vec![
        Range::new(KEXBOOT_IMAGE.end(), hole.start()).unwrap(),
        Range::new(hole.end(), m.heap.start()).unwrap(),
    ];
    let spec = KernelSpec {
        bss: 5 * MIB,
        ..KernelSpec::new(MIB as usize, 35)
    };
    let big = spec.build();
    let out = fallback(
        &m,
        &mut m.staging(),
        "  kernel /boot/Image.gz\n",
        &[("/boot/Image.gz", &big)],
    );
    let (e, msg) = out.failure("bad");
    assert!(
        matches!(e, BootError::Placement(LErr::NoRoom { what: "kernel", size }) if *size == spec.image_size()),
        "{e:?}"
    );
    assert!(msg.contains(&spec.image_size().to_string()), "{msg}");
    let p = out.prepared();
    assert!(hole.contains_range(&p.placement.kernel));

    // A kernel flagged "lowest RAM only" that cannot be there.
    let spec = KernelSpec {
        flags: 0x2,
        bss: 300 * MIB,
        ..KernelSpec::new(100 * KIB as usize, 36)
    };
    let m = Machine::default();
    let out = fallback(
        &m,
        &mut m.staging(),
        "  kernel /boot/Image.gz\n",
        &[("/boot/Image.gz", &spec.build())],
    );
    let (e, msg) = out.failure("bad");
    assert!(
        matches!(e, BootError::Placement(LErr::KernelNotInLowestRam { size, .. }) if *size == spec.image_size()),
        "{e:?}"
    );
    assert!(msg.contains(&spec.image_size().to_string()), "{msg}");
}

#[test]
fn image_size_not_file_size_decides_placement() {
    // Free RAM: 4 MiB after kexboot, 2 MiB below the ramoops region, then plenty above it.
    let m = Machine {
        extra_avoid: vec![Range::new(0x4060_0000, 0x43e0_0000).unwrap()],
        ..Machine::default()
    };
    // The file (2.5 MiB) fits in both low holes, its image_size (6 MiB) in neither.
    let spec = KernelSpec {
        bss: 3 * MIB + 512 * KIB,
        ..KernelSpec::new(2560 * KIB as usize, 37)
    };
    let k = spec.build();
    let cfg = "label k\n  kernel /Image\n  initrd /i\n  append k\n";
    let initrd = pattern(38, 3 * MIB as usize);
    let files: [(&str, &[u8]); 3] = [(CONF, cfg.as_bytes()), ("/Image", &k), ("/i", &initrd)];
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    let p = out.prepared();
    assert_eq!(
        p.entry, 0x4420_0000,
        "first 2 MiB boundary past the reserved region"
    );
    m.boot_and_check(
        p,
        &Expect {
            kernel: &k,
            initrd: Some(&initrd),
            append: "k",
            label: "k",
        },
    );
}

#[test]
fn config_with_unknown_keys_still_boots() {
    let good = Good::new();
    let cfg = format!(
        "# generated by u-boot-update\nfrobnicate yes\nmenu color title 1;36;44\ninclude other.conf\n\
         {}  sparkle 3\n  ipappend 2\nontimeout good\n",
        Good::LINES
    );
    let mut files: Vec<(&str, &[u8])> = vec![(CONF, cfg.as_bytes())];
    files.extend(good.files());
    let m = Machine::default();
    let out = m.run(
        &mut open(mbr_fat16(&files)),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    let (_, config) = out.config.as_ref().unwrap();
    let notes: Vec<String> = config.notes.iter().map(|n| n.to_string()).collect();
    // `ontimeout` is understood; the missing include is a note.
    assert_eq!(config.ontimeout.as_deref(), Some("good"));
    for (line, word) in [
        (2, "frobnicate"),
        (3, "menu color"),
        (4, "include"),
        (9, "sparkle"),
        (10, "ipappend"),
    ] {
        assert!(
            config
                .notes
                .iter()
                .any(|n| n.line == line && n.text.contains(word)),
            "no note for '{word}' on line {line}: {notes:?}"
        );
    }
    assert!(out.failures.is_empty());
    m.boot_and_check(out.prepared(), &good.expect());
}

#[test]
fn missing_kernel_initrd_and_kernel_line() {
    let m = Machine::default();
    let out = fallback(
        &m,
        &mut m.staging(),
        "  kernel /boot/vmlinuz-gone\n  append x\n",
        &[],
    );
    let (e, msg) = out.failure("bad");
    assert!(
        matches!(e, BootError::File { path, err: FileError::Fs(kexboot_fs::Error::NotFound) } if path == "/boot/vmlinuz-gone"),
        "{e:?}"
    );
    assert_eq!(msg, "/boot/vmlinuz-gone: file not found");

    let k = kernel(100 * KIB as usize, 39);
    let mut staging = m.staging();
    let out = fallback(
        &m,
        &mut staging,
        "  kernel /k\n  initrd /boot/initrd.img-6.1,/nope\n",
        &[("/k", &k), ("/boot/initrd.img-6.1", b"x")],
    );
    let (e, msg) = out.failure("bad");
    assert!(
        matches!(e, BootError::File { path, err: FileError::Fs(kexboot_fs::Error::NotFound) } if path == "/nope"),
        "{e:?}"
    );
    assert_eq!(msg, "/nope: file not found");

    // A directory where the kernel should be.
    let out = fallback(&m, &mut m.staging(), "  kernel /good\n", &[]);
    let (e, msg) = out.failure("bad");
    assert!(
        matches!(
            e,
            BootError::File {
                err: FileError::Fs(kexboot_fs::Error::NotAFile),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(msg.starts_with("/good: "), "{msg}");

    let out = fallback(&m, &mut m.staging(), "  append no kernel here\n", &[]);
    assert!(matches!(out.failure("bad").0, BootError::NoKernel));
}

#[test]
fn no_config_at_all() {
    let good = Good::new();
    let d = mbr_fat16(&good.files());
    let m = Machine::default();
    let out = m.run(&mut open(d), &mut m.staging(), &mut FakePlatform::default());
    let e = out.config_error.expect("no config");
    assert!(matches!(e, BootError::NoConfig), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("/extlinux/extlinux.conf") && msg.contains("/boot/extlinux/extlinux.conf"),
        "{msg}"
    );

    // A config with no labels: nothing to boot, nothing failed, nothing panicked.
    let d = mbr_fat16(&[(CONF, b"# nothing\ntimeout 10\n")]);
    let out = m.run(&mut open(d), &mut m.staging(), &mut FakePlatform::default());
    assert!(out.prepared.is_none() && out.failures.is_empty() && out.config_error.is_none());
}

#[test]
fn config_of_garbage_bytes() {
    let m = Machine::default();
    let mut cfg = b"label a\n  kernel /x\n".to_vec();
    let bad_at = cfg.len() + 6;
    cfg.extend(b"append");
    cfg.extend([0xff, 0xfe, 0x00, 0xc3]);
    let out = m.run(
        &mut open(mbr_fat16(&[(CONF, &cfg)])),
        &mut m.staging(),
        &mut FakePlatform::default(),
    );
    let e = out.config_error.expect("garbage refused");
    assert!(
        matches!(e, BootError::Config { path: CONF, err: kexboot_boot::Error::InvalidUtf8 { offset, line: 3 } } if offset == bad_at),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(CONF) && e.to_string().contains("invalid UTF-8"),
        "{e}"
    );

    // Random garbage of many sizes: an error or a config, never a panic.
    for seed in 0..24u64 {
        let mut g = pattern(seed, (seed as usize * 997) % 20_000 + 1);
        if seed % 3 == 0 {
            g.iter_mut().for_each(|b| *b &= 0x7f); // valid ASCII noise
        }
        let out = m.run(
            &mut open(mbr_fat16(&[(CONF, &g)])),
            &mut m.staging(),
            &mut FakePlatform::default(),
        );
        if let Some(e) = &out.config_error {
            assert!(e.to_string().starts_with(CONF), "{e}");
        }
    }
}
