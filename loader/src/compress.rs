//! Kernel compression, judged by content: gzip (RFC 1952), lz4 (the legacy format of Linux's
//! `Image.lz4` and the frame format) and zstd, each decompressed into a caller-given buffer.
//!
//! One dispatch for every boot path: [`detect`] names the format, [`decompressed_bound`] says
//! how large a buffer to give, [`decompress_into`] fills it. Every decoder follows the same
//! rules: nothing is ever written outside `dst` (a stream that needs more fails with
//! [`Error::InflatesBeyond`], `dst` then holding a prefix of the output), a bad stream is an
//! error naming what was wrong, and the work is bounded by the input's length.
//!
//! [`gunzip_into`] inflates the raw deflate data straight into `dst` with `zlib-rs` (one call
//! for the whole stream: no ring buffer, no copy), then checks the trailer's CRC32 ([`crc32`]:
//! the ARMv8 CRC32 instructions on arm64) and ISIZE. lz4 is in `crate::lz4`, zstd in
//! `crate::zstd`.

use zlib_rs::{Inflate, InflateError, InflateFlush, Status};

use crate::image::{ImageHeader, HEADER_LEN, IMAGE_MAGIC};
use crate::trailer::le32;
use crate::{lz4, zstd, Error, Result};

/// What a blob is, judged by its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An uncompressed arm64 Image (magic at 0x38).
    Image,
    /// A gzip stream with deflate compression.
    Gzip,
    /// An lz4 stream: the legacy format (`lz4 -l`, Linux's `Image.lz4`) or the frame format.
    Lz4,
    /// zstd frames.
    Zstd,
    /// Anything else.
    Unknown,
}

impl Format {
    /// The name logs and messages use: "gzip", "lz4", "zstd", "Image", "unknown".
    pub fn name(self) -> &'static str {
        match self {
            Format::Image => "Image",
            Format::Gzip => "gzip",
            Format::Lz4 => "lz4",
            Format::Zstd => "zstd",
            Format::Unknown => "unknown",
        }
    }

    /// Whether [`decompress_into`] decodes this format.
    pub fn is_compressed(self) -> bool {
        matches!(self, Format::Gzip | Format::Lz4 | Format::Zstd)
    }
}

/// Deflate cannot expand more than 1032:1.
pub const MAX_DEFLATE_RATIO: u64 = 1032;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
const GZIP_HEADER_LEN: usize = 10;
const GZIP_TRAILER_LEN: usize = 8;

const FTEXT: u8 = 1 << 0;
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = !(FTEXT | FHCRC | FEXTRA | FNAME | FCOMMENT);

/// Detects the format of `bytes` from its first bytes, never from a file name.
pub fn detect(bytes: &[u8]) -> Format {
    let magic = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if bytes.starts_with(&GZIP_MAGIC) {
        Format::Gzip
    } else if magic == Some(lz4::LEGACY_MAGIC) || magic == Some(lz4::FRAME_MAGIC) {
        Format::Lz4
    } else if magic == Some(zstd::MAGIC) {
        Format::Zstd
    } else if bytes.len() >= HEADER_LEN && bytes[0x38..0x3c] == IMAGE_MAGIC.to_le_bytes() {
        Format::Image
    } else {
        Format::Unknown
    }
}

/// Names a compression kexboot recognises but cannot inflate, for a helpful error message.
pub fn unsupported_compression(bytes: &[u8]) -> Option<&'static str> {
    const MAGICS: [(&[u8], &str); 4] = [
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (b"BZh", "bzip2"),
        (&[0x89, b'L', b'Z', b'O'], "lzo"),
        (&[0x5d, 0, 0], "lzma"),
    ];
    MAGICS
        .iter()
        .find(|(m, _)| bytes.starts_with(m))
        .map(|&(_, name)| name)
}

/// The uncompressed size (mod 2^32) announced by a gzip stream's ISIZE trailer.
///
/// Only a hint for sizing buffers: trailing padding after the stream makes it wrong, and
/// [`gunzip_into`] checks the real value.
pub fn gzip_size_hint(bytes: &[u8]) -> Option<u32> {
    if detect(bytes) != Format::Gzip || bytes.len() < GZIP_HEADER_LEN + GZIP_TRAILER_LEN {
        return None;
    }
    let t = bytes.get(bytes.len() - 4..)?;
    Some(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
}

/// The decompressed size the stream itself states: gzip's ISIZE, the zstd frames' content
/// sizes, the lz4 frame's content size or Linux's size trailer after a legacy lz4 stream.
pub fn size_hint(format: Format, src: &[u8]) -> Option<u64> {
    match format {
        Format::Gzip => gzip_size_hint(src).map(u64::from),
        Format::Lz4 => lz4::size_hint(src),
        Format::Zstd => zstd::size_hint(src),
        Format::Image | Format::Unknown => None,
    }
}

/// Bytes of decompressed output read to find the Image header when a stream states no size.
const PEEK_LEN: usize = HEADER_LEN;

/// How large a buffer [`decompress_into`] needs for `src`: the size the stream states (gzip
/// must state one; a size impossible for the input's length is refused), else the `image_size`
/// of the arm64 Image header the first decompressed bytes hold. Only a bound: a stream that
/// lies about its size still stops at the buffer's end.
pub fn decompressed_bound(format: Format, src: &[u8]) -> Result<u64> {
    let max_ratio = match format {
        Format::Gzip => MAX_DEFLATE_RATIO,
        Format::Lz4 => lz4::MAX_RATIO,
        // RLE blocks make any ratio possible.
        _ => u64::MAX,
    };
    match size_hint(format, src) {
        Some(0) | None if format == Format::Gzip => Err(Error::Truncated {
            what: "gzip trailer",
        }),
        // A larger size means the trailer or header is not what it seems (a cut or corrupt
        // file), not a kernel too big for RAM.
        Some(n) if n > (src.len() as u64).saturating_mul(max_ratio) => Err(Error::Truncated {
            what: if format == Format::Gzip {
                "gzip stream (its trailer's ISIZE is impossible for its length)"
            } else {
                "lz4 stream (the size it states is impossible for its length)"
            },
        }),
        Some(n) => Ok(n),
        None => image_bound(format, src),
    }
}

/// The `image_size` of the arm64 Image header the first decompressed bytes of `src` hold: an
/// upper bound on the decompressed length that does not trust the stream's own size fields.
pub fn image_bound(format: Format, src: &[u8]) -> Result<u64> {
    let mut head = [0u8; PEEK_LEN];
    let n = match decompress_into(format, src, &mut head) {
        Ok(n) => n,
        Err(Error::InflatesBeyond { .. }) => head.len(),
        Err(e) => return Err(e),
    };
    Ok(ImageHeader::parse(&head[..n])?.image_size())
}

/// Decompresses `src`, of `format`, into `dst`, returning the number of bytes written.
///
/// Nothing outside `dst` is touched; a stream that needs more room fails with
/// [`Error::InflatesBeyond`] and `dst` then holds the start of the output.
pub fn decompress_into(format: Format, src: &[u8], dst: &mut [u8]) -> Result<usize> {
    match format {
        Format::Gzip => gunzip_into(src, dst),
        Format::Lz4 => lz4::decompress(src, dst),
        Format::Zstd => zstd::decompress(src, dst),
        Format::Image | Format::Unknown => Err(Error::NotCompressed),
    }
}

fn le_u16(src: &[u8], pos: usize, what: &'static str) -> Result<u16> {
    match src.get(pos..pos + 2) {
        Some(b) => Ok(u16::from_le_bytes([b[0], b[1]])),
        None => Err(Error::Truncated { what }),
    }
}

fn le_u32(src: &[u8], pos: usize, what: &'static str) -> Result<u32> {
    le32(src, pos).ok_or(Error::Truncated { what })
}

/// Skips a NUL-terminated field starting at `pos`, returning the offset after the NUL.
fn skip_cstr(src: &[u8], pos: usize, what: &'static str) -> Result<usize> {
    let rest = src.get(pos..).ok_or(Error::Truncated { what })?;
    let nul = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(Error::Truncated { what })?;
    Ok(pos + nul + 1)
}

/// Validates the gzip member header and returns the offset of the deflate data.
fn parse_header(src: &[u8]) -> Result<usize> {
    if src.len() < GZIP_HEADER_LEN {
        if !GZIP_MAGIC.starts_with(src) && !src.starts_with(&GZIP_MAGIC) {
            return Err(Error::GzipHeader {
                offset: 0,
                what: "no gzip magic 1f 8b 08",
            });
        }
        return Err(Error::Truncated {
            what: "gzip header",
        });
    }
    if src[..2] != GZIP_MAGIC[..2] {
        return Err(Error::GzipHeader {
            offset: 0,
            what: "no gzip magic 1f 8b",
        });
    }
    if src[2] != GZIP_MAGIC[2] {
        return Err(Error::GzipHeader {
            offset: 2,
            what: "compression method is not deflate (8)",
        });
    }
    let flags = src[3];
    if flags & FRESERVED != 0 {
        return Err(Error::GzipHeader {
            offset: 3,
            what: "reserved flag bits set",
        });
    }
    let mut pos = GZIP_HEADER_LEN;
    if flags & FEXTRA != 0 {
        let xlen = le_u16(src, pos, "gzip FEXTRA field")? as usize;
        pos += 2 + xlen;
        if pos > src.len() {
            return Err(Error::Truncated {
                what: "gzip FEXTRA field",
            });
        }
    }
    if flags & FNAME != 0 {
        pos = skip_cstr(src, pos, "gzip FNAME field")?;
    }
    if flags & FCOMMENT != 0 {
        pos = skip_cstr(src, pos, "gzip FCOMMENT field")?;
    }
    if flags & FHCRC != 0 {
        let expected = le_u16(src, pos, "gzip header CRC16")?;
        let found = crc32(&src[..pos]) as u16;
        if expected != found {
            return Err(Error::GzipHeader {
                offset: pos,
                what: "header CRC16 mismatch",
            });
        }
        pos += 2;
    }
    Ok(pos)
}

/// Inflates the gzip stream `src` into `dst`, returning the number of bytes written.
///
/// Bytes after the gzip member (padding) are ignored. `dst` beyond the returned length may hold
/// partial output on error, but nothing outside `dst` is touched.
pub fn gunzip_into(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    let start = parse_header(src)?;
    let (consumed, written) = inflate_raw(&src[start..], dst, start)?;
    let out = dst.get(..written).ok_or(Error::Corrupt {
        offset: start + consumed,
    })?;
    let trailer = start + consumed;
    let expected_crc = le_u32(src, trailer, "gzip trailer")?;
    let expected_len = le_u32(src, trailer + 4, "gzip trailer")?;
    let crc = crc32(out);
    if crc != expected_crc {
        return Err(Error::CrcMismatch {
            expected: expected_crc,
            found: crc,
        });
    }
    if written as u32 != expected_len {
        return Err(Error::SizeMismatch {
            expected: expected_len,
            found: written as u32,
        });
    }
    Ok(written)
}

/// Inflates the raw deflate stream at the start of `deflate` into `dst`, returning the bytes
/// of `deflate` it took and the bytes written; `at` is its offset in the file, for errors.
///
/// zlib-rs writes straight into `dst` (its 32 KiB window is only refreshed when a call
/// returns). One call takes at most 4 GiB of input and output, so a loop; every pass but the
/// last moves at least one byte, bounded by the lengths.
fn inflate_raw(deflate: &[u8], dst: &mut [u8], at: usize) -> Result<(usize, usize)> {
    let mut inflater = Inflate::new(false, 15);
    loop {
        let (taken, written) = (inflater.total_in() as usize, inflater.total_out() as usize);
        let status =
            inflater.decompress(&deflate[taken..], &mut dst[written..], InflateFlush::Finish);
        let (now_in, now_out) = (inflater.total_in() as usize, inflater.total_out() as usize);
        match status {
            Ok(Status::StreamEnd) => return Ok((now_in, now_out)),
            Ok(Status::Ok | Status::BufError) if now_out == dst.len() => {
                return Err(Error::InflatesBeyond { limit: dst.len() })
            }
            Ok(Status::Ok | Status::BufError)
                if now_in == deflate.len() || (now_in, now_out) == (taken, written) =>
            {
                return Err(Error::Truncated {
                    what: "deflate stream",
                })
            }
            Ok(Status::Ok | Status::BufError) => {}
            Err(
                InflateError::DataError
                | InflateError::NeedDict { .. }
                | InflateError::StreamError
                | InflateError::MemError,
            ) => {
                return Err(Error::Corrupt {
                    offset: at + now_in,
                })
            }
        }
    }
}

/// The CRC-32 (IEEE 802.3, gzip's) of `data`.
///
/// On arm64 with the CRC32 instructions (ARMv8.1 makes them mandatory; the ARMv8.0 Cortex-A53 of
/// the Pi 3 and the Cortex-A72 have the optional extension) they do it: a few times faster than
/// `crc32fast`'s table, which it falls back to (it uses the instructions only when the whole
/// target enables `crc`, and aarch64-unknown-none does not). The gzip check of a 27 MB kernel is
/// a tenth of the inflate time with the table.
pub fn crc32(data: &[u8]) -> u32 {
    match arm::crc32(data) {
        Some(crc) => crc,
        None => crc32fast::hash(data),
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use core::arch::aarch64::{__crc32b, __crc32d};

    /// Bits [19:16] of ID_AA64ISAR0_EL1: CRC32 instructions implemented when 1.
    const ISAR0_CRC32_SHIFT: u32 = 16;

    /// Whether this CPU has the CRC32 instructions, read from its ID register (readable at EL1
    /// and EL2; Linux emulates the read at EL0).
    fn has_crc32() -> bool {
        let isar0: u64;
        // SAFETY: reading an ID register has no side effects and touches no memory.
        unsafe {
            core::arch::asm!("mrs {}, ID_AA64ISAR0_EL1", out(reg) isar0, options(nomem, nostack, preserves_flags));
        }
        (isar0 >> ISAR0_CRC32_SHIFT) & 0xf != 0
    }

    /// The CRC-32 of `data` by the CRC32 instructions, or `None` when the CPU lacks them.
    pub fn crc32(data: &[u8]) -> Option<u32> {
        if !has_crc32() {
            return None;
        }
        // SAFETY: the CPU has the CRC32 instructions (checked just above).
        Some(unsafe { crc32_insn(data) })
    }

    /// # Safety
    /// The CPU must implement the CRC32 instructions.
    #[target_feature(enable = "crc")]
    unsafe fn crc32_insn(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            crc = __crc32d(crc, v);
        }
        for &b in words.remainder() {
            crc = __crc32b(crc, b);
        }
        !crc
    }
}

#[cfg(not(target_arch = "aarch64"))]
mod arm {
    /// Not arm64: the caller uses the table.
    pub fn crc32(_data: &[u8]) -> Option<u32> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use flate2::{Compression, GzBuilder};
    use proptest::prelude::*;
    use std::io::Write;

    /// Compressible but non-trivial test data.
    fn data(len: usize) -> Vec<u8> {
        let mut x = 0x1234_5678u32;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 7 < 4 {
                    (i / 64) as u8
                } else {
                    x as u8
                }
            })
            .collect()
    }

    fn gz(payload: &[u8], name: bool, extra: bool, hcrc: bool) -> Vec<u8> {
        let mut b = GzBuilder::new();
        if name {
            b = b.filename("Image");
        }
        if extra {
            b = b.extra(vec![1, 2, 3, 4, 5]);
        }
        if name && extra {
            b = b.comment("a comment");
        }
        let mut e = b.write(Vec::new(), Compression::default());
        e.write_all(payload).unwrap();
        let mut out = e.finish().unwrap();
        if hcrc {
            // flate2 does not write FHCRC: insert it after the header by hand.
            let hdr_len = parse_header(&out).unwrap();
            out[3] |= FHCRC;
            let crc = (crc32fast::hash(&out[..hdr_len]) as u16).to_le_bytes();
            out.splice(hdr_len..hdr_len, crc);
        }
        out
    }

    #[test]
    fn detect_by_content() {
        let g = gz(b"hello", false, false, false);
        assert_eq!(detect(&g), Format::Gzip);
        let mut img = vec![0u8; 64];
        img[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert_eq!(detect(&img), Format::Image);
        assert_eq!(detect(&img[..60]), Format::Unknown);
        assert_eq!(detect(b"\x28\xb5\x2f\xfd...."), Format::Zstd);
        assert_eq!(detect(b"\x02\x21\x4c\x18...."), Format::Lz4);
        assert_eq!(detect(b"\x04\x22\x4d\x18...."), Format::Lz4);
        assert_eq!(unsupported_compression(b"\x28\xb5\x2f\xfd...."), None);
        assert_eq!(unsupported_compression(b"BZh91AY"), Some("bzip2"));
        assert_eq!(
            gzip_size_hint(&gz(&data(5000), false, false, false)),
            Some(5000)
        );
        assert_eq!(gzip_size_hint(&img), None);
    }

    #[test]
    fn round_trip_header_variants() {
        let payload = data(300_000);
        for (name, extra, hcrc) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (true, true, true),
            (false, false, true),
        ] {
            let g = gz(&payload, name, extra, hcrc);
            let mut dst = vec![0u8; payload.len() + 100];
            let n = gunzip_into(&g, &mut dst).unwrap();
            assert_eq!(
                &dst[..n],
                &payload[..],
                "name={name} extra={extra} hcrc={hcrc}"
            );
        }
    }

    #[test]
    fn exact_fit_and_empty() {
        let payload = data(70_000);
        let mut dst = vec![0u8; payload.len()];
        assert_eq!(
            gunzip_into(&gz(&payload, false, false, false), &mut dst),
            Ok(payload.len())
        );
        assert_eq!(dst, payload);
        assert_eq!(gunzip_into(&gz(b"", false, false, false), &mut []), Ok(0));
    }

    #[test]
    fn truncated_at_every_cut() {
        let g = gz(&data(20_000), true, true, true);
        let mut dst = vec![0u8; 40_000];
        for cut in 0..g.len() {
            match gunzip_into(&g[..cut], &mut dst) {
                Err(Error::Truncated { .. }) => {}
                other => panic!("cut at {cut} of {}: {other:?}", g.len()),
            }
        }
        assert!(gunzip_into(&g, &mut dst).is_ok());
    }

    #[test]
    fn inflates_beyond_dst_touches_nothing_outside() {
        let payload = data(100_000);
        let g = gz(&payload, false, false, false);
        let mut big = vec![0xa5u8; 200_000];
        let limit = 50_000;
        let r = gunzip_into(&g, &mut big[1000..1000 + limit]);
        assert_eq!(r, Err(Error::InflatesBeyond { limit }));
        assert!(big[..1000].iter().all(|&b| b == 0xa5));
        assert!(big[1000 + limit..].iter().all(|&b| b == 0xa5));
        // What was written is a prefix of the real output.
        assert_eq!(&big[1000..1000 + limit], &payload[..limit]);
    }

    #[test]
    fn corrupt_streams() {
        let payload = data(50_000);
        let g = gz(&payload, false, false, false);
        let mut dst = vec![0u8; 60_000];
        let n = g.len();

        let mut bad_crc = g.clone();
        bad_crc[n - 8] ^= 1;
        assert!(matches!(
            gunzip_into(&bad_crc, &mut dst),
            Err(Error::CrcMismatch { .. })
        ));

        let mut bad_len = g.clone();
        bad_len[n - 4] ^= 1;
        assert!(matches!(
            gunzip_into(&bad_len, &mut dst),
            Err(Error::SizeMismatch { .. })
        ));

        let mut bad_flags = g.clone();
        bad_flags[3] = 0x20;
        assert_eq!(
            gunzip_into(&bad_flags, &mut dst),
            Err(Error::GzipHeader {
                offset: 3,
                what: "reserved flag bits set"
            })
        );

        let mut bad_hcrc = gz(&payload, true, false, true);
        let pos = parse_header(&bad_hcrc).unwrap() - 2;
        bad_hcrc[pos] ^= 0xff;
        assert!(matches!(
            gunzip_into(&bad_hcrc, &mut dst),
            Err(Error::GzipHeader { .. })
        ));

        // A deflate block with the reserved block type 3 is corrupt.
        let mut bad_block = g[..10].to_vec();
        bad_block.extend_from_slice(&[0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            gunzip_into(&bad_block, &mut dst),
            Err(Error::Corrupt { .. })
        ));

        // Flipping bytes in the body is always caught by something.
        for i in (20..n - 8).step_by(97) {
            let mut m = g.clone();
            m[i] ^= 0x55;
            assert!(gunzip_into(&m, &mut dst).is_err(), "flip at {i}");
        }
    }

    proptest! {
        #[test]
        fn gunzip_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..400),
                               gzip_magic in any::<bool>(), flags in any::<u8>()) {
            if gzip_magic && bytes.len() >= 4 {
                bytes[..3].copy_from_slice(&GZIP_MAGIC);
                bytes[3] = flags & !FRESERVED;
            }
            let mut dst = vec![0u8; 1024];
            let _ = gunzip_into(&bytes, &mut dst);
            let _ = detect(&bytes);
            let _ = gzip_size_hint(&bytes);
        }

        #[test]
        fn every_format_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                     magic in 0usize..3, cap in 0usize..5000) {
            let magics = [[0x02, 0x21, 0x4c, 0x18], [0x04, 0x22, 0x4d, 0x18], [0x28, 0xb5, 0x2f, 0xfd]];
            let mut src = magics[magic].to_vec();
            src.extend_from_slice(&bytes);
            let format = detect(&src);
            let mut dst = vec![0u8; cap];
            let _ = decompress_into(format, &src, &mut dst);
            let _ = decompressed_bound(format, &src);
            let _ = size_hint(format, &src);
        }

        #[test]
        fn mutated_stream_never_panics(idx in any::<usize>(), val in any::<u8>()) {
            let mut g = gz(&data(3000), true, false, false);
            let i = idx % g.len();
            g[i] = val;
            let mut dst = vec![0u8; 2000 + idx % 2000];
            let _ = gunzip_into(&g, &mut dst);
        }
    }
}
