//! Kernels compressed by the real `lz4` and `zstd` tools (tests/data/make-fixtures.sh), through
//! the one dispatch every boot path uses, and the bad-input rules on mutations of them.

use kexboot_loader::compress::{decompress_into, decompressed_bound, detect, size_hint, Format};
use kexboot_loader::image::ImageHeader;
use kexboot_loader::Error;

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (length, CRC32) the fixture script recorded for a pseudo-kernel.
fn expected(name: &str) -> (usize, u32) {
    let s = String::from_utf8(data(&format!("{name}.crc32"))).unwrap();
    let mut it = s.split_whitespace();
    let len = it.next().unwrap().parse().unwrap();
    let crc = u32::from_str_radix(it.next().unwrap(), 16).unwrap();
    (len, crc)
}

const KERNEL_FIXTURES: [(&str, Format, Option<u64>); 7] = [
    ("kernel.lz4l", Format::Lz4, None),
    ("kernel.lz4l-sized", Format::Lz4, Some(1 << 20)),
    ("kernel.lz4", Format::Lz4, None),
    ("kernel.lz4-linked", Format::Lz4, Some(1 << 20)),
    ("kernel.zst", Format::Zstd, Some(1 << 20)),
    ("kernel.zst-stdin", Format::Zstd, None),
    ("kernel.zst-2frames", Format::Zstd, None),
];

/// Decompresses as the boot flow does: bound, buffer, decode.
fn boot_decompress(src: &[u8]) -> Result<Vec<u8>, Error> {
    let format = detect(src);
    let bound = decompressed_bound(format, src)?;
    let mut dst = vec![0u8; bound as usize];
    let n = decompress_into(format, src, &mut dst)?;
    dst.truncate(n);
    Ok(dst)
}

#[test]
fn real_tools_output_decompresses() {
    let (len, crc) = expected("kernel");
    for (name, format, hint) in KERNEL_FIXTURES {
        let src = data(name);
        assert_eq!(detect(&src), format, "{name}");
        assert_eq!(size_hint(format, &src), hint, "{name}");
        // Without a stated size, the bound is the Image header's image_size (2 MiB).
        let bound = decompressed_bound(format, &src).unwrap();
        assert_eq!(bound, hint.unwrap_or(2 << 20), "{name}");
        let out = boot_decompress(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.len(), len, "{name}");
        assert_eq!(crc32fast::hash(&out), crc, "{name}");
        ImageHeader::parse(&out).unwrap();
        // Exact fit works too.
        let mut exact = vec![0u8; len];
        assert_eq!(decompress_into(format, &src, &mut exact), Ok(len), "{name}");
    }
}

#[test]
fn legacy_lz4_of_several_8mib_blocks() {
    let (len, crc) = expected("big");
    let out = boot_decompress(&data("big.lz4l")).unwrap();
    assert_eq!((out.len(), crc32fast::hash(&out)), (len, crc));
}

#[test]
fn short_destination_gets_a_prefix_and_nothing_beyond() {
    let (len, _) = expected("kernel");
    let full = boot_decompress(&data("kernel.zst")).unwrap();
    for (name, format, _) in KERNEL_FIXTURES {
        let src = data(name);
        for limit in [0, 1, 64, 65_536, 300_001, len - 1] {
            let mut big = vec![0xa5u8; len + 2000];
            let r = decompress_into(format, &src, &mut big[1000..1000 + limit]);
            assert_eq!(r, Err(Error::InflatesBeyond { limit }), "{name} {limit}");
            assert!(big[..1000].iter().all(|&b| b == 0xa5), "{name} {limit}");
            assert!(
                big[1000 + limit..].iter().all(|&b| b == 0xa5),
                "{name} {limit}"
            );
            assert_eq!(&big[1000..1000 + limit], &full[..limit], "{name} {limit}");
        }
    }
}

#[test]
fn truncated_inputs_fail() {
    for (name, format, _) in KERNEL_FIXTURES {
        let src = data(name);
        let mut dst = vec![0u8; 2 << 20];
        let (len, _) = expected("kernel");
        for cut in (0..src.len()).step_by(997).chain([src.len() - 1]) {
            // A legacy lz4 stream has no end mark: cut between blocks it is shorter.
            if let Ok(n) = decompress_into(format, &src[..cut], &mut dst) {
                assert!(
                    name.starts_with("kernel.lz4l") && n < len,
                    "{name} cut {cut}"
                );
            }
        }
    }
}

#[test]
fn lying_content_size_stops_at_the_destination() {
    // kernel.zst's frame header: magic, FHD 0xa4 (single segment, 4-byte content size,
    // checksum): the window is the content size, blocks up to 128 KiB.
    let mut src = data("kernel.zst");
    assert_eq!(
        src[4], 0xa4,
        "expected single segment, 4-byte content size, checksum"
    );
    let fcs_at = 5;
    src[fcs_at..fcs_at + 4].copy_from_slice(&200_000u32.to_le_bytes());
    assert_eq!(size_hint(Format::Zstd, &src), Some(200_000));
    assert_eq!(
        boot_decompress(&src),
        Err(Error::InflatesBeyond { limit: 200_000 })
    );
    // So small a window that the frame's own blocks do not fit it: refused before decoding.
    src[fcs_at..fcs_at + 4].copy_from_slice(&4096u32.to_le_bytes());
    assert!(matches!(
        boot_decompress(&src),
        Err(Error::BlockTooLarge { max: 4096, .. })
    ));
    // Claiming more than there is: the frame is checked after decoding.
    src[fcs_at..fcs_at + 4].copy_from_slice(&(2u32 << 20).to_le_bytes());
    assert!(matches!(
        boot_decompress(&src),
        Err(Error::ContentSizeMismatch { .. })
    ));

    // The lz4 frame's content size (8 bytes after FLG and BD) is covered by the header checksum.
    let mut lz = data("kernel.lz4-linked");
    lz[6] ^= 1;
    assert!(matches!(boot_decompress(&lz), Err(Error::Lz4 { .. })));

    // Linux's size trailer after a legacy stream, lying small.
    let mut legacy = data("kernel.lz4l-sized");
    let n = legacy.len();
    legacy[n - 4..].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(
        boot_decompress(&legacy),
        Err(Error::InflatesBeyond { limit: 1000 })
    );
    // ... lying large: decoded in full, then the trailer disagrees.
    legacy[n - 4..].copy_from_slice(&(2u32 << 20).to_le_bytes());
    assert!(matches!(
        boot_decompress(&legacy),
        Err(Error::SizeMismatch { .. })
    ));
}

#[test]
fn wrong_checksums_are_caught() {
    let mut dst = vec![0u8; 2 << 20];
    // zstd content checksum: the frame's last 4 bytes.
    let mut z = data("kernel.zst");
    let n = z.len();
    z[n - 1] ^= 0x80;
    assert!(matches!(
        decompress_into(Format::Zstd, &z, &mut dst),
        Err(Error::ChecksumMismatch { .. })
    ));
    // lz4 frame content checksum: after the 4-byte end mark.
    let mut l = data("kernel.lz4");
    let n = l.len();
    l[n - 1] ^= 0x80;
    assert!(matches!(
        decompress_into(Format::Lz4, &l, &mut dst),
        Err(Error::ChecksumMismatch { .. })
    ));
    // lz4 block checksum: flip a byte inside the first block of the linked fixture.
    let mut b = data("kernel.lz4-linked");
    b[40] ^= 0x01;
    assert!(matches!(
        decompress_into(Format::Lz4, &b, &mut dst),
        Err(Error::ChecksumMismatch { .. })
    ));
}

#[test]
fn huge_zstd_window_is_refused() {
    // A frame header with Window_Descriptor exponent 17: a 128 MiB window (zstd --ultra -22
    // from a pipe), then one empty raw last block.
    let src = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3, 0x01, 0x00, 0x00];
    let mut dst = vec![0u8; 16];
    assert_eq!(
        decompress_into(Format::Zstd, &src, &mut dst),
        Err(Error::WindowTooLarge {
            window: 128 << 20,
            max: 64 << 20
        })
    );
    // The same with an 8 MiB window decodes to nothing.
    let ok = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 13 << 3, 0x01, 0x00, 0x00];
    assert_eq!(decompress_into(Format::Zstd, &ok, &mut dst), Ok(0));
}

#[test]
fn legacy_lz4_block_over_bound_is_refused() {
    let mut src = 0x184C_2102u32.to_le_bytes().to_vec();
    src.extend_from_slice(&(9u32 << 20).to_le_bytes());
    src.extend_from_slice(&[0u8; 64]);
    let mut dst = vec![0u8; 1 << 20];
    assert!(matches!(
        decompress_into(Format::Lz4, &src, &mut dst),
        Err(Error::BlockTooLarge { offset: 4, .. })
    ));
}

#[test]
fn not_an_image_inside_is_refused_without_a_size() {
    // An lz4 frame of "hello" (no content size): the bound needs the Image header.
    let src = {
        let mut v = data("kernel.lz4");
        v.truncate(7); // magic + FLG + BD + HC: the descriptor only
        v
    };
    assert!(decompressed_bound(Format::Lz4, &src).is_err());
}

#[test]
fn flipped_bytes_never_panic() {
    let mut dst = vec![0u8; 1 << 20];
    for (name, format, _) in KERNEL_FIXTURES {
        let src = data(name);
        for i in (0..src.len()).step_by(src.len() / 40 + 1) {
            let mut m = src.clone();
            m[i] ^= 0x5a;
            let _ = decompress_into(format, &m, &mut dst);
            let _ = decompressed_bound(format, &m);
        }
    }
}
