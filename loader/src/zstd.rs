//! zstd kernels (`Image.zst`, as `zstd` writes them): frames decoded with `ruzstd` and drained
//! into a caller-given buffer.
//!
//! Before decoding, each frame's header and block headers are walked here: that finds where the
//! frame ends (a cut file is [`Error::Truncated`] before any work), refuses a window above
//! [`MAX_WINDOW`] (the decoder allocates it) and dictionaries, and gives the size hint. The
//! decoder's output is drained into `dst` at most [`DRAIN_EVERY`] bytes at a time; output that
//! does not fit is [`Error::InflatesBeyond`] with `dst` holding a true prefix. The frame's
//! content size and content checksum are checked when the frame has them.

use alloc::format;
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use ruzstd::io::Read as _;

use crate::trailer::check_size_trailer;
use crate::{Error, Result};

/// zstd frame magic, little-endian on disk.
pub const MAGIC: u32 = 0xFD2F_B528;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// Largest window kexboot accepts. The decoder keeps a window-sized buffer besides `dst`;
/// `zstd -19` (what Linux's arm64 `Image.zst` uses) needs 8 MiB and `--ultra -22` of a kernel
/// up to 64 MiB.
pub const MAX_WINDOW: u64 = 64 << 20;
/// A block never decompresses to more than 128 KiB.
const MAX_BLOCK: u64 = 128 << 10;
/// Decode this much before draining into `dst` (bounds the decoder's buffer beyond the window).
const DRAIN_EVERY: usize = 1 << 20;
const CHECKSUM_LEN: usize = 4;

// Frame header descriptor bits.
const FHD_SINGLE_SEGMENT: u8 = 1 << 5;
const FHD_RESERVED: u8 = 1 << 3;
const FHD_CHECKSUM: u8 = 1 << 2;

fn le(src: &[u8], pos: usize, n: usize) -> Option<u64> {
    let b = src.get(pos..pos.checked_add(n)?)?;
    Some(b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
}

fn le_u32(src: &[u8], pos: usize) -> Option<u32> {
    le(src, pos, 4).map(|v| v as u32)
}

fn zstd_err(offset: usize, what: &'static str) -> Error {
    Error::Zstd {
        offset,
        what: what.into(),
    }
}

/// One frame, as its headers describe it.
struct Frame {
    content_size: Option<u64>,
    checksum: bool,
    /// Offset just past the frame (its checksum included).
    end: usize,
}

/// Parses the frame header at `pos` (the magic) and walks its block headers.
fn walk(src: &[u8], pos: usize) -> Result<Frame> {
    let truncated = || Error::Truncated {
        what: "zstd frame header",
    };
    let fhd = *src.get(pos + 4).ok_or_else(truncated)?;
    if fhd & FHD_RESERVED != 0 {
        return Err(zstd_err(pos + 4, "reserved frame header bit set"));
    }
    let single = fhd & FHD_SINGLE_SEGMENT != 0;
    let mut p = pos + 5;
    let mut window = 0;
    if !single {
        let wd = *src.get(p).ok_or_else(truncated)?;
        let base = 1u64 << (10 + (wd >> 3));
        window = base + (base / 8) * u64::from(wd & 7);
        p += 1;
    }
    let dict_len = [0, 1, 2, 4][usize::from(fhd & 3)];
    let dict = le(src, p, dict_len).ok_or_else(truncated)?;
    if dict != 0 {
        return Err(zstd_err(p, "frame needs a dictionary"));
    }
    p += dict_len;
    let fcs_len = match fhd >> 6 {
        0 if single => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let content_size = match fcs_len {
        0 => None,
        2 => Some(le(src, p, 2).ok_or_else(truncated)? + 256),
        n => Some(le(src, p, n).ok_or_else(truncated)?),
    };
    p += fcs_len;
    if single {
        window = content_size.unwrap_or(0);
    }
    if window > MAX_WINDOW {
        return Err(Error::WindowTooLarge {
            window,
            max: MAX_WINDOW,
        });
    }
    let block_max = window.min(MAX_BLOCK);
    // Every block header is 3 bytes: the walk is bounded by src.len() / 3.
    loop {
        let h = le(src, p, 3).ok_or(Error::Truncated {
            what: "zstd block header",
        })?;
        let last = h & 1 != 0;
        let size = h >> 3;
        let body = match (h >> 1) & 3 {
            0 => size,
            1 => 1,
            2 => size,
            _ => return Err(zstd_err(p, "reserved block type")),
        };
        if size > block_max {
            return Err(Error::BlockTooLarge {
                offset: p,
                size,
                max: block_max,
            });
        }
        p = p
            .checked_add(3 + body as usize)
            .filter(|&e| e <= src.len())
            .ok_or(Error::Truncated { what: "zstd block" })?;
        if last {
            break;
        }
    }
    let checksum = fhd & FHD_CHECKSUM != 0;
    if checksum {
        p += CHECKSUM_LEN;
        if p > src.len() {
            return Err(Error::Truncated {
                what: "zstd content checksum",
            });
        }
    }
    Ok(Frame {
        content_size,
        checksum,
        end: p,
    })
}

/// What the next 4 bytes at `pos` are.
enum Next {
    Frame,
    Skippable(usize),
    Other,
}

fn next(src: &[u8], pos: usize) -> Next {
    match le_u32(src, pos) {
        Some(MAGIC) => Next::Frame,
        Some(m) if m & SKIPPABLE_MASK == SKIPPABLE_MAGIC => {
            let len = le_u32(src, pos + 4).map_or(usize::MAX, |l| l as usize);
            Next::Skippable(len)
        }
        _ => Next::Other,
    }
}

fn skip(src: &[u8], pos: usize, len: usize) -> Result<usize> {
    (pos + 8)
        .checked_add(len)
        .filter(|&p| p <= src.len())
        .ok_or(Error::Truncated {
            what: "zstd skippable frame",
        })
}

/// Decodes the zstd frames of `src` (skippable frames skipped) into `dst`, returning the number
/// of bytes written.
pub fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    let mut dec = FrameDecoder::new();
    dec.set_max_window_size(MAX_WINDOW);
    let mut pos = 0;
    let mut out = 0;
    let mut frames = 0usize;
    // Each pass consumes a frame or a skippable frame (8 bytes or more).
    while pos < src.len() {
        match next(src, pos) {
            Next::Skippable(len) => {
                pos = skip(src, pos, len)?;
                continue;
            }
            Next::Other if frames == 0 => {
                if src.len() < 4 {
                    return Err(Error::Truncated { what: "zstd magic" });
                }
                return Err(zstd_err(pos, "no zstd magic"));
            }
            Next::Other => return check_size_trailer(src, pos, out).map(|()| out),
            Next::Frame => {}
        }
        let frame = walk(src, pos)?;
        out += decode_frame(&mut dec, &src[pos..frame.end], pos, dst, out, &frame)?;
        pos = frame.end;
        frames += 1;
    }
    if frames == 0 {
        return Err(Error::Truncated { what: "zstd frame" });
    }
    Ok(out)
}

/// Decodes one frame (`src` holds exactly it) to `dst[out..]`; `at` is its offset for errors.
fn decode_frame(
    dec: &mut FrameDecoder,
    src: &[u8],
    at: usize,
    dst: &mut [u8],
    out0: usize,
    frame: &Frame,
) -> Result<usize> {
    let mut input = src;
    let corrupt = |input: &[u8], e: &dyn core::fmt::Display| Error::Zstd {
        offset: at + src.len() - input.len(),
        what: format!("{e}"),
    };
    dec.reset(&mut input).map_err(|e| corrupt(input, &e))?;
    let mut out = out0;
    // Each decode_blocks call consumes one block or more (3 bytes or more) or fails: bounded by
    // the frame's length.
    loop {
        let before = input.len();
        dec.decode_blocks(&mut input, BlockDecodingStrategy::UptoBytes(DRAIN_EVERY))
            .map_err(|e| corrupt(input, &e))?;
        out += dec.read(&mut dst[out..]).map_err(|e| corrupt(input, &e))?;
        if dec.can_collect() != 0 {
            return Err(Error::InflatesBeyond { limit: dst.len() });
        }
        if dec.is_finished() {
            break;
        }
        if input.len() == before {
            return Err(corrupt(input, &"decoder made no progress"));
        }
    }
    let len = out - out0;
    if let Some(expected) = frame.content_size {
        if expected != len as u64 {
            return Err(Error::ContentSizeMismatch {
                what: "zstd frame",
                expected,
                found: len as u64,
            });
        }
    }
    if frame.checksum {
        let expected = dec.get_checksum_from_data();
        let found = dec.get_calculated_checksum();
        if let (Some(expected), Some(found)) = (expected, found) {
            if expected != found {
                return Err(Error::ChecksumMismatch {
                    what: "zstd content checksum",
                    expected,
                    found,
                });
            }
        } else {
            return Err(Error::Truncated {
                what: "zstd content checksum",
            });
        }
    }
    Ok(len)
}

/// The decompressed size the frames state: the sum of their content sizes when every frame has
/// one, else `None`.
pub fn size_hint(src: &[u8]) -> Option<u64> {
    let mut pos = 0;
    let mut total = 0u64;
    let mut frames = 0;
    while pos < src.len() {
        match next(src, pos) {
            Next::Skippable(len) => pos = skip(src, pos, len).ok()?,
            Next::Other => break,
            Next::Frame => {
                let f = walk(src, pos).ok()?;
                total = total.checked_add(f.content_size?)?;
                pos = f.end;
                frames += 1;
            }
        }
    }
    (frames > 0).then_some(total)
}
