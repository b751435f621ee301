//! The 64-byte arm64 `Image` header (Linux `Documentation/arch/arm64/booting.rst`).
//!
//! ```text
//! 0x00 code0  u32    0x08 text_offset u64   0x10 image_size u64   0x18 flags u64
//! 0x20 res2..res4    0x38 magic u32 "ARM\x64"                     0x3c res5 (PE offset)
//! ```
//! All fields are little-endian.

use crate::mem::PAGE_SIZE;
use crate::{Error, Result};

/// "ARM\x64" read as a little-endian u32.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// Length of the header.
pub const HEADER_LEN: usize = 64;

const OFF_TEXT_OFFSET: usize = 0x08;
const OFF_IMAGE_SIZE: usize = 0x10;
const OFF_FLAGS: usize = 0x18;
const OFF_MAGIC: usize = 0x38;

const FLAG_BIG_ENDIAN: u64 = 1 << 0;
const FLAG_PAGE_SIZE_SHIFT: u64 = 1;
const FLAG_PAGE_SIZE_MASK: u64 = 0b11;
const FLAG_ANY_BASE: u64 = 1 << 3;

/// What a kernel with `image_size == 0` (before Linux 3.17) is assumed to need.
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// See [`LEGACY_TEXT_OFFSET`].
pub const LEGACY_IMAGE_SIZE: u64 = 16 << 20;

/// Kernel page size announced in flags bits 1-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    Unspecified,
    K4,
    K16,
    K64,
}

/// A validated arm64 Image header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    text_offset: u64,
    image_size: u64,
    flags: u64,
    legacy: bool,
}

fn le_u64(bytes: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = bytes.get(off..off + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

impl ImageHeader {
    /// Parses and validates the header of the Image file `bytes` (the whole file: its length is
    /// checked against `image_size`).
    pub fn parse(bytes: &[u8]) -> Result<ImageHeader> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::ImageTooShort { len: bytes.len() });
        }
        let magic = le_u64(bytes, OFF_MAGIC) as u32;
        if magic != IMAGE_MAGIC {
            return Err(Error::BadImageMagic { found: magic });
        }
        let flags = le_u64(bytes, OFF_FLAGS);
        if flags & FLAG_BIG_ENDIAN != 0 {
            return Err(Error::BigEndianImage);
        }
        let raw_size = le_u64(bytes, OFF_IMAGE_SIZE);
        let legacy = raw_size == 0;
        let (text_offset, image_size) = if legacy {
            (LEGACY_TEXT_OFFSET, LEGACY_IMAGE_SIZE)
        } else {
            (le_u64(bytes, OFF_TEXT_OFFSET), raw_size)
        };
        if text_offset % PAGE_SIZE != 0 {
            return Err(Error::UnalignedTextOffset { text_offset });
        }
        if text_offset.checked_add(image_size).is_none() {
            return Err(Error::ImageSizeOverflow {
                text_offset,
                image_size,
            });
        }
        let file_len = bytes.len() as u64;
        if file_len > image_size {
            return Err(Error::ImageLargerThanImageSize {
                file_len,
                image_size,
            });
        }
        Ok(ImageHeader {
            text_offset,
            image_size,
            flags,
            legacy,
        })
    }

    /// Bytes between the 2 MiB-aligned base and the start of the kernel.
    pub fn text_offset(&self) -> u64 {
        self.text_offset
    }

    /// Bytes the kernel needs from its start (file plus BSS); the legacy 16 MiB for old kernels.
    pub fn image_size(&self) -> u64 {
        self.image_size
    }

    /// Flag bit 3: the 2 MiB-aligned base may be anywhere in RAM (else: as low as possible).
    pub fn any_base(&self) -> bool {
        self.flags & FLAG_ANY_BASE != 0
    }

    /// The header said `image_size == 0` (a kernel older than Linux 3.17).
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// The kernel's page size (flags bits 1-2).
    pub fn page_size(&self) -> PageSize {
        match (self.flags >> FLAG_PAGE_SIZE_SHIFT) & FLAG_PAGE_SIZE_MASK {
            1 => PageSize::K4,
            2 => PageSize::K16,
            3 => PageSize::K64,
            _ => PageSize::Unspecified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn image(text_offset: u64, image_size: u64, flags: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len.max(HEADER_LEN)];
        v[OFF_TEXT_OFFSET..][..8].copy_from_slice(&text_offset.to_le_bytes());
        v[OFF_IMAGE_SIZE..][..8].copy_from_slice(&image_size.to_le_bytes());
        v[OFF_FLAGS..][..8].copy_from_slice(&flags.to_le_bytes());
        v[OFF_MAGIC..][..4].copy_from_slice(b"ARM\x64");
        v
    }

    #[test]
    fn good_header() {
        let h = ImageHeader::parse(&image(0, 0x200_0000, 0b1010, 4096)).unwrap();
        assert_eq!(h.text_offset(), 0);
        assert_eq!(h.image_size(), 0x200_0000);
        assert!(h.any_base());
        assert_eq!(h.page_size(), PageSize::K4);
        assert!(!h.is_legacy());
        let h = ImageHeader::parse(&image(0x8_0000, 0x100_0000, 0b0110, 4096)).unwrap();
        assert!(!h.any_base());
        assert_eq!(h.page_size(), PageSize::K64);
    }

    #[test]
    fn legacy_header() {
        let h = ImageHeader::parse(&image(0x1234_5000, 0, 0, 1 << 20)).unwrap();
        assert!(h.is_legacy());
        assert_eq!(h.text_offset(), LEGACY_TEXT_OFFSET);
        assert_eq!(h.image_size(), LEGACY_IMAGE_SIZE);
    }

    #[test]
    fn bad_headers() {
        let mut v = image(0, 1 << 20, 0, 4096);
        v[OFF_MAGIC] = b'X';
        assert!(matches!(
            ImageHeader::parse(&v),
            Err(Error::BadImageMagic { .. })
        ));
        assert_eq!(
            ImageHeader::parse(&v[..63]),
            Err(Error::ImageTooShort { len: 63 })
        );
        assert_eq!(
            ImageHeader::parse(&image(0, 1 << 20, 1, 4096)),
            Err(Error::BigEndianImage)
        );
        assert_eq!(
            ImageHeader::parse(&image(0, 4096, 0, 4097)),
            Err(Error::ImageLargerThanImageSize {
                file_len: 4097,
                image_size: 4096
            })
        );
        assert_eq!(
            ImageHeader::parse(&image(0, 0, 0, (16 << 20) + 1)),
            Err(Error::ImageLargerThanImageSize {
                file_len: (16 << 20) + 1,
                image_size: 16 << 20
            })
        );
        assert!(matches!(
            ImageHeader::parse(&image(0x10, 1 << 20, 0, 4096)),
            Err(Error::UnalignedTextOffset { text_offset: 0x10 })
        ));
        assert!(matches!(
            ImageHeader::parse(&image(!0xfff, 1 << 20, 0, 4096)),
            Err(Error::ImageSizeOverflow { .. })
        ));
        let msg = alloc::format!(
            "{}",
            Error::ImageLargerThanImageSize {
                file_len: 9,
                image_size: 8
            }
        );
        assert!(msg.contains('9') && msg.contains('8'), "{msg}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ImageHeader::parse(&bytes);
        }

        #[test]
        fn parse_random_fields(to in any::<u64>(), size in any::<u64>(), flags in any::<u64>()) {
            if let Ok(h) = ImageHeader::parse(&image(to, size, flags, 64)) {
                prop_assert_eq!(h.text_offset() % PAGE_SIZE, 0);
                prop_assert!(h.image_size() >= 64);
                prop_assert_eq!(flags & 1, 0);
            }
        }
    }
}
