//! Small byte readers the decompressors share: a little-endian u32, and Linux's
//! `size_append` trailer after an lz4 or zstd stream.

use crate::{Error, Result};

/// The little-endian u32 at `pos`, if `src` holds one there.
pub(crate) fn le32(src: &[u8], pos: usize) -> Option<u32> {
    let b = src.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Bytes Linux's `size_append` adds after an lz4 or zstd stream (uncompressed size, LE u32).
pub(crate) const SIZE_TRAILER: usize = 4;

/// What follows the last lz4 stream or zstd frame: ignored, as bytes after a gzip member are
/// (U-Boot's `booti` reads `kernel_comp_size` bytes, often more than the file), except exactly 4
/// bytes: Linux's `size_append` trailer, which must then match the output length (mod 2^32).
pub(crate) fn check_size_trailer(src: &[u8], pos: usize, out: usize) -> Result<()> {
    let tail = src.get(pos..).unwrap_or(&[]);
    if tail.len() == SIZE_TRAILER && tail.iter().any(|&b| b != 0) {
        let expected = le32(src, pos).unwrap_or(0);
        if expected != out as u32 {
            return Err(Error::SizeMismatch {
                expected,
                found: out as u32,
            });
        }
    }
    Ok(())
}
