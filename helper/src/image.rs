//! Validation of kexboot.bin before anything is loaded: an arm64 Image (checked by
//! `kexboot_loader::image`) that also carries kexboot's mark right after the 64-byte header.
//!
//! ```text
//! 0x40 "KEXBOOT!"   0x48 handoff protocol version (u32 LE, 1)   0x4c u32 0
//! ```

use core::fmt;

use kexboot_loader::image::ImageHeader;

/// kexboot's mark, at [`MARK_OFFSET`].
pub const MARK: &[u8; 8] = b"KEXBOOT!";
/// Where the mark sits: right after the arm64 Image header.
pub const MARK_OFFSET: usize = 0x40;
/// Where the little-endian u32 handoff protocol version sits.
pub const VERSION_OFFSET: usize = 0x48;
/// The only handoff protocol version this helper speaks.
pub const HANDOFF_VERSION: u32 = 1;

/// Why a file is not a kexboot image this helper can load.
#[derive(Debug, PartialEq, Eq)]
pub enum ImageProblem {
    /// The arm64 Image header is wrong (magic, endianness, sizes).
    Header(kexboot_loader::Error),
    /// The header says `image_size == 0` (a pre-3.17 Linux kernel, never kexboot).
    NoImageSize,
    /// The 8 bytes at 0x40 are not "KEXBOOT!" (`None`: the file ends before them).
    NoMark { found: Option<[u8; 8]> },
    /// The handoff protocol version at 0x48 is not [`HANDOFF_VERSION`].
    Version { found: u32 },
}

impl fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageProblem::Header(e) => write!(f, "{e}"),
            ImageProblem::NoImageSize => {
                write!(f, "image_size at offset 0x10 is 0 (an old Linux kernel?)")
            }
            ImageProblem::NoMark { found: None } => write!(
                f,
                "file ends before the \"KEXBOOT!\" mark at offset {MARK_OFFSET:#x}"
            ),
            ImageProblem::NoMark { found: Some(b) } => {
                write!(f, "no \"KEXBOOT!\" mark at offset {MARK_OFFSET:#x} (found")?;
                b.iter().try_for_each(|x| write!(f, " {x:02x}"))?;
                write!(f, "): an arm64 Image, but not kexboot")
            }
            ImageProblem::Version { found } => write!(
                f,
                "handoff protocol version at offset {VERSION_OFFSET:#x} is {found}, this helper \
                 speaks version {HANDOFF_VERSION}"
            ),
        }
    }
}

/// What the loader needs to know about a validated kexboot image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KexbootImage {
    /// Offset of the image from its 2 MiB-aligned base (0 for kexboot).
    pub text_offset: u64,
    /// Bytes kexboot needs from its load address: file, BSS and stack.
    pub image_size: u64,
    /// Length of the file.
    pub file_len: u64,
    /// The handoff protocol version it announced.
    pub handoff_version: u32,
}

impl KexbootImage {
    /// Checks the whole file `bytes`: arm64 Image header (magic, little-endian, image_size
    /// covering the file), then the kexboot mark and handoff version.
    pub fn validate(bytes: &[u8]) -> Result<KexbootImage, ImageProblem> {
        let h = ImageHeader::parse(bytes).map_err(ImageProblem::Header)?;
        if h.is_legacy() {
            return Err(ImageProblem::NoImageSize);
        }
        let mark = bytes
            .get(MARK_OFFSET..MARK_OFFSET + MARK.len())
            .and_then(|m| <[u8; 8]>::try_from(m).ok());
        if mark.as_ref() != Some(MARK) {
            return Err(ImageProblem::NoMark { found: mark });
        }
        let version = bytes
            .get(VERSION_OFFSET..VERSION_OFFSET + 4)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_le_bytes)
            .ok_or(ImageProblem::NoMark { found: mark })?;
        if version != HANDOFF_VERSION {
            return Err(ImageProblem::Version { found: version });
        }
        Ok(KexbootImage {
            text_offset: h.text_offset(),
            image_size: h.image_size(),
            file_len: bytes.len() as u64,
            handoff_version: version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A minimal kexboot-like Image: header, mark, version, padded to `len`.
    fn kexboot(image_size: u64, version: u32, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len.max(0x50)];
        v[0..4].copy_from_slice(&0x1400_0014u32.to_le_bytes());
        v[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
        v[0x18..0x20].copy_from_slice(&0xau64.to_le_bytes());
        v[0x38..0x3c].copy_from_slice(b"ARM\x64");
        v[0x40..0x48].copy_from_slice(MARK);
        v[0x48..0x4c].copy_from_slice(&version.to_le_bytes());
        v.truncate(len);
        v
    }

    #[test]
    fn good_image() {
        let img = KexbootImage::validate(&kexboot(0x36_8000, 1, 0x4_6368)).unwrap();
        assert_eq!(
            img,
            KexbootImage {
                text_offset: 0,
                image_size: 0x36_8000,
                file_len: 0x4_6368,
                handoff_version: 1
            }
        );
        // image_size exactly the file length is fine.
        assert!(KexbootImage::validate(&kexboot(4096, 1, 4096)).is_ok());
    }

    #[test]
    fn real_kexboot_bin_if_built() {
        // The firmware build is another crate's job; check its output when it exists.
        let Ok(bytes) = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/kexboot.bin"
        )) else {
            return;
        };
        let img = KexbootImage::validate(&bytes).unwrap();
        assert_eq!(img.handoff_version, HANDOFF_VERSION);
        assert!(img.image_size >= bytes.len() as u64);
    }

    #[test]
    fn not_an_image() {
        let mut v = kexboot(1 << 20, 1, 4096);
        v[0x38] = b'X';
        assert!(matches!(
            KexbootImage::validate(&v),
            Err(ImageProblem::Header(
                kexboot_loader::Error::BadImageMagic { .. }
            ))
        ));
        let text = b"#!/bin/sh\necho this is not an image\n".repeat(4);
        assert!(matches!(
            KexbootImage::validate(&text),
            Err(ImageProblem::Header(_))
        ));
        assert!(matches!(
            KexbootImage::validate(&[]),
            Err(ImageProblem::Header(kexboot_loader::Error::ImageTooShort {
                len: 0
            }))
        ));
    }

    #[test]
    fn image_without_mark() {
        // A Linux kernel: valid header, text_offset 0, but its own code at 0x40.
        let mut v = kexboot(1 << 20, 1, 4096);
        v[0x40..0x48].copy_from_slice(&[0x1f, 0x20, 0x03, 0xd5, 0x1f, 0x20, 0x03, 0xd5]);
        let e = KexbootImage::validate(&v).unwrap_err();
        assert!(matches!(e, ImageProblem::NoMark { found: Some(_) }));
        assert_eq!(
            e.to_string(),
            "no \"KEXBOOT!\" mark at offset 0x40 (found 1f 20 03 d5 1f 20 03 d5): an arm64 \
             Image, but not kexboot"
        );
        // A header-only file (64 bytes, image_size covering it) has no room for the mark.
        let v = kexboot(64, 1, 64);
        assert_eq!(
            KexbootImage::validate(&v),
            Err(ImageProblem::NoMark { found: None })
        );
        // Mark present but the version cut off.
        let v = kexboot(4096, 1, 0x4a);
        assert!(matches!(
            KexbootImage::validate(&v),
            Err(ImageProblem::NoMark { found: Some(_) })
        ));
    }

    #[test]
    fn wrong_version() {
        for version in [0, 2, u32::MAX] {
            assert_eq!(
                KexbootImage::validate(&kexboot(1 << 20, version, 4096)),
                Err(ImageProblem::Version { found: version })
            );
        }
    }

    #[test]
    fn truncated_or_oversized() {
        // File longer than image_size: the header lies about the size (or the file is not it).
        assert!(matches!(
            KexbootImage::validate(&kexboot(4096, 1, 4097)),
            Err(ImageProblem::Header(
                kexboot_loader::Error::ImageLargerThanImageSize {
                    file_len: 4097,
                    image_size: 4096
                }
            ))
        ));
        // Truncated inside the header.
        let v = kexboot(1 << 20, 1, 4096);
        assert!(matches!(
            KexbootImage::validate(&v[..0x30]),
            Err(ImageProblem::Header(kexboot_loader::Error::ImageTooShort {
                len: 0x30
            }))
        ));
        // image_size 0: the legacy convention, never kexboot.
        assert_eq!(
            KexbootImage::validate(&kexboot(0, 1, 4096)),
            Err(ImageProblem::NoImageSize)
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = KexbootImage::validate(&bytes);
        }

        #[test]
        fn mutated_headers_never_panic(
            pos in 0usize..0x50, byte in any::<u8>(), len in 0usize..0x200,
        ) {
            let mut v = kexboot(0x1000, 1, 0x200);
            v[pos] = byte;
            v.truncate(len);
            if let Ok(img) = KexbootImage::validate(&v) {
                prop_assert!(img.image_size >= img.file_len);
                prop_assert_eq!(&v[MARK_OFFSET..MARK_OFFSET + 8], MARK);
            }
        }
    }
}
