//! LZ4 kernels: the legacy format Linux's `Image.lz4` uses (`lz4 -l`) and the LZ4 frame format
//! (`lz4` without `-l`), decoded block by block into a caller-given buffer.
//!
//! The block decoder is `lz4_flex`'s safe one; the container parsing, checksums and bounds are
//! here (`lz4_flex`'s own frame decoder needs `std`). Nothing is ever written outside `dst`: a
//! block that does not fit what is left of `dst` is decoded into a scratch buffer and only the
//! part that fits is copied, so `dst` then holds a true prefix of the output and the call fails
//! with [`Error::InflatesBeyond`].

use alloc::vec;
use core::hash::Hasher as _;
use lz4_flex::block::{decompress_into, decompress_into_with_dict, DecompressError};
use twox_hash::XxHash32;

use crate::trailer::{check_size_trailer, le32 as le_u32, SIZE_TRAILER};
use crate::{Error, Result};

/// Legacy stream magic (`lz4 -l`), little-endian on disk.
pub const LEGACY_MAGIC: u32 = 0x184C_2102;
/// LZ4 frame magic, little-endian on disk.
pub const FRAME_MAGIC: u32 = 0x184D_2204;
/// Skippable frames carry magics 0x184D2A50..=0x184D2A5F.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// A legacy block decompresses to at most 8 MiB.
const LEGACY_BLOCK: usize = 8 << 20;
/// LZ4_COMPRESSBOUND of a legacy block: the largest compressed size a legacy block may have.
pub const LEGACY_MAX_COMPRESSED: usize = LEGACY_BLOCK + LEGACY_BLOCK / 255 + 16;
/// Linked blocks see at most this much earlier output.
const DICT_LEN: usize = 64 << 10;

/// Worst-case expansion of an LZ4 block: a match of length 15 + 255·n costs n + 3 input bytes.
pub const MAX_RATIO: u64 = 255;

// Frame descriptor flag bits.
const FLG_VERSION_MASK: u8 = 0b1100_0000;
const FLG_VERSION_01: u8 = 0b0100_0000;
const FLG_BLOCK_INDEP: u8 = 1 << 5;
const FLG_BLOCK_CHECKSUM: u8 = 1 << 4;
const FLG_CONTENT_SIZE: u8 = 1 << 3;
const FLG_CONTENT_CHECKSUM: u8 = 1 << 2;
const FLG_RESERVED: u8 = 1 << 1;
const FLG_DICT_ID: u8 = 1 << 0;
const BD_RESERVED: u8 = 0b1000_1111;
/// High bit of a frame block size: the block is stored uncompressed.
const BLOCK_UNCOMPRESSED: u32 = 1 << 31;

fn lz4_err(offset: usize, what: &'static str) -> Error {
    Error::Lz4 { offset, what }
}

fn block_err(offset: usize, e: DecompressError) -> Error {
    let what = match e {
        DecompressError::OutputTooSmall { .. } => "block decompresses past its maximum size",
        DecompressError::LiteralOutOfBounds => "literal runs past the block",
        DecompressError::ExpectedAnotherByte => "block ends inside a sequence",
        DecompressError::OffsetZero => "match offset 0",
        DecompressError::OffsetOutOfBounds => "match offset before the start of the data",
        _ => "corrupt block",
    };
    lz4_err(offset, what)
}

/// Decodes one block of at most `max_out` bytes to `dst[out..]`, with `dict` (the earlier output
/// of a linked frame) before it. A block that does not fit goes through a scratch buffer so
/// `dst` ends with a true prefix; then the error is [`Error::InflatesBeyond`].
fn block_into(
    block: &[u8],
    dst: &mut [u8],
    out: usize,
    max_out: usize,
    linked: bool,
    offset: usize,
) -> Result<usize> {
    let limit = dst.len();
    let dict_start = if linked {
        out.saturating_sub(DICT_LEN)
    } else {
        out
    };
    let (before, after) = dst.split_at_mut(out);
    let dict = &before[dict_start..];
    let room = after.len().min(max_out);
    let decode = |o: &mut [u8]| {
        if dict.is_empty() {
            decompress_into(block, o)
        } else {
            decompress_into_with_dict(block, o, dict)
        }
    };
    match decode(&mut after[..room]) {
        Ok(n) => Ok(n),
        Err(DecompressError::OutputTooSmall { .. }) if room < max_out => {
            let mut scratch = vec![0u8; max_out];
            let n = decode(&mut scratch).map_err(|e| block_err(offset, e))?;
            if n <= room {
                after[..n].copy_from_slice(&scratch[..n]);
                return Ok(n);
            }
            after[..room].copy_from_slice(&scratch[..room]);
            Err(Error::InflatesBeyond { limit })
        }
        Err(e) => Err(block_err(offset, e)),
    }
}

/// Copies a stored (uncompressed) block, or as much of it as fits.
fn stored_into(data: &[u8], dst: &mut [u8], out: usize) -> Result<usize> {
    let room = dst.len() - out;
    if data.len() > room {
        dst[out..].copy_from_slice(&data[..room]);
        return Err(Error::InflatesBeyond { limit: dst.len() });
    }
    dst[out..out + data.len()].copy_from_slice(data);
    Ok(data.len())
}

/// Decodes an lz4 stream (legacy or frame format, several concatenated, skippable frames
/// skipped) into `dst`, returning the number of bytes written.
pub fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    let mut pos = 0;
    let mut out = 0;
    let mut streams = 0usize;
    // Each pass consumes at least a 4-byte magic, so the loop is bounded by src.len() / 4.
    while pos < src.len() {
        let Some(magic) = le_u32(src, pos) else {
            if streams == 0 {
                return Err(Error::Truncated { what: "lz4 magic" });
            }
            return check_size_trailer(src, pos, out).map(|()| out);
        };
        match magic {
            LEGACY_MAGIC => {
                let (p, n) = legacy(src, pos + 4, dst, out)?;
                pos = p;
                out += n;
            }
            FRAME_MAGIC => {
                let (p, n) = frame(src, pos + 4, dst, out)?;
                pos = p;
                out += n;
            }
            m if m & SKIPPABLE_MASK == SKIPPABLE_MAGIC => {
                let len = le_u32(src, pos + 4).ok_or(Error::Truncated {
                    what: "lz4 skippable frame",
                })? as usize;
                pos = (pos + 8)
                    .checked_add(len)
                    .filter(|&p| p <= src.len())
                    .ok_or(Error::Truncated {
                        what: "lz4 skippable frame",
                    })?;
                continue;
            }
            _ if streams == 0 => return Err(lz4_err(pos, "no lz4 magic")),
            _ => return check_size_trailer(src, pos, out).map(|()| out),
        }
        streams += 1;
    }
    if streams == 0 {
        return Err(Error::Truncated { what: "lz4 stream" });
    }
    Ok(out)
}

/// Where the blocks of a legacy stream starting at `pos` (after the magic) end (a following
/// legacy magic is skipped). Used for the size hint.
fn legacy_end(src: &[u8], mut pos: usize) -> Option<usize> {
    // Every block consumes 4 bytes or more.
    while let Some(size) = le_u32(src, pos) {
        if size == LEGACY_MAGIC {
            pos += 4;
            continue;
        }
        let size = size as usize;
        if size > LEGACY_MAX_COMPRESSED || pos + 4 + size > src.len() {
            break;
        }
        pos += 4 + size;
    }
    Some(pos)
}

/// Decodes the blocks of one legacy stream, which ends at the end of the input, at a frame or
/// legacy magic (a following stream), or before Linux's 4-byte size trailer.
fn legacy(src: &[u8], mut pos: usize, dst: &mut [u8], out0: usize) -> Result<(usize, usize)> {
    let mut out = out0;
    // Each block consumes at least its 4-byte size, so this is bounded by src.len() / 4.
    while let Some(size) = le_u32(src, pos) {
        if size == 0 || size == LEGACY_MAGIC || size == FRAME_MAGIC {
            // Zero padding or a following stream: the caller goes on from here.
            break;
        }
        let rest = src.len() - pos - 4;
        if out > out0 && (rest == 0 || size == out as u32) {
            // Linux's size trailer after the last block (the output length so far; perhaps
            // followed by padding, as when booti reads kernel_comp_size bytes): the caller
            // checks it. A real block of exactly that compressed size would need incompressible
            // data and an output of 8 MiB so far: not a kernel.
            break;
        }
        let size = size as usize;
        if size > LEGACY_MAX_COMPRESSED {
            return Err(Error::BlockTooLarge {
                offset: pos,
                size: size as u64,
                max: LEGACY_MAX_COMPRESSED as u64,
            });
        }
        let block = src.get(pos + 4..pos + 4 + size).ok_or(Error::Truncated {
            what: "lz4 legacy block",
        })?;
        out += block_into(block, dst, out, LEGACY_BLOCK, false, pos + 4)?;
        pos += 4 + size;
    }
    if pos < src.len() && src.len() - pos < 4 {
        return Err(Error::Truncated {
            what: "lz4 legacy block size",
        });
    }
    Ok((pos, out - out0))
}

/// A parsed LZ4 frame descriptor.
struct FrameHeader {
    linked: bool,
    block_checksum: bool,
    content_checksum: bool,
    content_size: Option<u64>,
    block_max: usize,
    /// Offset of the first block.
    data: usize,
}

fn frame_header(src: &[u8], pos: usize) -> Result<FrameHeader> {
    let truncated = || Error::Truncated {
        what: "lz4 frame descriptor",
    };
    let flg = *src.get(pos).ok_or_else(truncated)?;
    let bd = *src.get(pos + 1).ok_or_else(truncated)?;
    if flg & FLG_VERSION_MASK != FLG_VERSION_01 {
        return Err(lz4_err(pos, "frame version is not 01"));
    }
    if flg & FLG_RESERVED != 0 || bd & BD_RESERVED != 0 {
        return Err(lz4_err(pos, "reserved frame descriptor bits set"));
    }
    if flg & FLG_DICT_ID != 0 {
        return Err(lz4_err(pos, "frame needs a dictionary"));
    }
    let block_max = match (bd >> 4) & 0b111 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return Err(lz4_err(pos + 1, "unknown block maximum size")),
    };
    let mut end = pos + 2;
    let content_size = if flg & FLG_CONTENT_SIZE != 0 {
        let b = src.get(end..end + 8).ok_or_else(truncated)?;
        end += 8;
        let mut v = [0u8; 8];
        v.copy_from_slice(b);
        Some(u64::from_le_bytes(v))
    } else {
        None
    };
    let hc = *src.get(end).ok_or_else(truncated)?;
    let found = (XxHash32::oneshot(0, &src[pos..end]) >> 8) as u8;
    if hc != found {
        return Err(lz4_err(end, "frame descriptor checksum mismatch"));
    }
    Ok(FrameHeader {
        linked: flg & FLG_BLOCK_INDEP == 0,
        block_checksum: flg & FLG_BLOCK_CHECKSUM != 0,
        content_checksum: flg & FLG_CONTENT_CHECKSUM != 0,
        content_size,
        block_max,
        data: end + 1,
    })
}

fn checksum(src: &[u8], pos: usize, data: &[u8], what: &'static str) -> Result<()> {
    let expected = le_u32(src, pos).ok_or(Error::Truncated { what })?;
    let found = XxHash32::oneshot(0, data);
    if expected != found {
        return Err(Error::ChecksumMismatch {
            what,
            expected,
            found,
        });
    }
    Ok(())
}

/// Decodes one LZ4 frame whose descriptor starts at `pos` (after the magic).
fn frame(src: &[u8], pos: usize, dst: &mut [u8], out0: usize) -> Result<(usize, usize)> {
    let h = frame_header(src, pos)?;
    let mut pos = h.data;
    let mut out = out0;
    let mut hasher = XxHash32::with_seed(0);
    // Each block consumes at least its 4-byte size: bounded by src.len() / 4.
    loop {
        let word = le_u32(src, pos).ok_or(Error::Truncated {
            what: "lz4 frame block size",
        })?;
        pos += 4;
        if word == 0 {
            break;
        }
        let size = (word & !BLOCK_UNCOMPRESSED) as usize;
        if size > h.block_max {
            return Err(Error::BlockTooLarge {
                offset: pos - 4,
                size: size as u64,
                max: h.block_max as u64,
            });
        }
        let data = src.get(pos..pos + size).ok_or(Error::Truncated {
            what: "lz4 frame block",
        })?;
        if h.block_checksum {
            checksum(src, pos + size, data, "lz4 block checksum")?;
        }
        let n = if word & BLOCK_UNCOMPRESSED != 0 {
            stored_into(data, dst, out)?
        } else {
            block_into(data, dst, out, h.block_max, h.linked, pos)?
        };
        if h.content_checksum {
            hasher.write(&dst[out..out + n]);
        }
        out += n;
        pos += size + if h.block_checksum { 4 } else { 0 };
    }
    let len = out - out0;
    if let Some(expected) = h.content_size {
        if expected != len as u64 {
            return Err(Error::ContentSizeMismatch {
                what: "lz4 frame",
                expected,
                found: len as u64,
            });
        }
    }
    if h.content_checksum {
        let expected = le_u32(src, pos).ok_or(Error::Truncated {
            what: "lz4 content checksum",
        })?;
        let found = hasher.finish_32();
        if expected != found {
            return Err(Error::ChecksumMismatch {
                what: "lz4 content checksum",
                expected,
                found,
            });
        }
        pos += 4;
    }
    Ok((pos, len))
}

/// The decompressed size an lz4 stream states: the frame's content size (first frame, when it
/// is the only one), else Linux's 4-byte `size_append` trailer after a legacy stream.
pub fn size_hint(src: &[u8]) -> Option<u64> {
    match le_u32(src, 0)? {
        FRAME_MAGIC => frame_header(src, 4).ok()?.content_size,
        LEGACY_MAGIC => {
            let end = legacy_end(src, 4)?;
            if src.len() - end == SIZE_TRAILER {
                le_u32(src, end).map(u64::from)
            } else {
                None
            }
        }
        _ => None,
    }
}
