//! kexboot-loader: decides *what* to boot.
//!
//! It validates and decompresses arm64 kernels ([`image`], [`compress`]), computes where kernel,
//! initrd and DTB go in RAM ([`place`]), reads the device tree the firmware was given and writes
//! the fixed-up one for the kernel ([`dt`]). Everything here works on byte slices and plain
//! address ranges ([`mem`]), so every part runs in host tests unchanged.
#![cfg_attr(not(test), no_std)]
extern crate alloc;

pub mod compress;
pub mod dt;
pub mod fit;
pub mod handoff;
pub mod image;
mod lz4;
pub mod mailbox;
pub mod mem;
pub mod place;
mod trailer;
mod zstd;

use alloc::string::String;
use core::fmt;

pub use mem::Range;

/// Largest device tree the arm64 boot protocol allows (booting.rst: "must not exceed 2 megabytes").
pub const MAX_DTB_SIZE: u64 = 2 << 20;

/// Everything that can go wrong in this crate. Each variant carries what was expected and found.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// An address range refused by its constructor (inverted, overflowing, misaligned).
    Range(kexboot_relocate::Error),

    /// The Image file is shorter than its 64-byte header.
    ImageTooShort { len: usize },
    /// The Image magic at offset 0x38 is not "ARM\x64".
    BadImageMagic { found: u32 },
    /// Flag bit 0 says the kernel is big-endian; kexboot boots little-endian kernels only.
    BigEndianImage,
    /// `text_offset` is not a multiple of the 4 KiB page.
    UnalignedTextOffset { text_offset: u64 },
    /// `text_offset + image_size` overflows.
    ImageSizeOverflow { text_offset: u64, image_size: u64 },
    /// The file is longer than the `image_size` its header declares.
    ImageLargerThanImageSize { file_len: u64, image_size: u64 },

    /// The gzip header is malformed at `offset`.
    GzipHeader { offset: usize, what: &'static str },
    /// The input ended before `what` was complete.
    Truncated { what: &'static str },
    /// The deflate stream is invalid (the decoder stopped near input offset `offset`).
    Corrupt { offset: usize },
    /// The decompressed data's CRC32 does not match the gzip trailer.
    CrcMismatch { expected: u32, found: u32 },
    /// The decompressed length (mod 2^32) does not match the gzip trailer's ISIZE.
    SizeMismatch { expected: u32, found: u32 },
    /// The stream inflates to more than the `limit` bytes of the destination (free RAM).
    InflatesBeyond { limit: usize },
    /// [`compress::decompress_into`] was asked to decompress something that is not compressed.
    NotCompressed,
    /// The lz4 stream is malformed at input offset `offset`: `what`.
    Lz4 { offset: usize, what: &'static str },
    /// The zstd stream is malformed at (or the decoder failed near) input offset `offset`.
    Zstd { offset: usize, what: String },
    /// A compressed block at input offset `offset` declares `size` bytes, more than the `max`
    /// its format allows.
    BlockTooLarge { offset: usize, size: u64, max: u64 },
    /// A zstd frame asks for a `window`-byte history buffer, more than kexboot's `max`.
    WindowTooLarge { window: u64, max: u64 },
    /// `what` (an lz4 or zstd checksum of the data) does not match.
    ChecksumMismatch {
        what: &'static str,
        expected: u32,
        found: u32,
    },
    /// The content size `what` (a frame) states is not what it decompressed to.
    ContentSizeMismatch {
        what: &'static str,
        expected: u64,
        found: u64,
    },

    /// kexboot's handoff record is unusable: `why`.
    BadHandoff { why: &'static str },
    /// The handoff record is of another version.
    HandoffVersion { found: u32, expected: u32 },
    /// The handoff record's CRC32 does not match.
    HandoffChecksum { expected: u32, found: u32 },

    /// No RAM was given to the placer.
    NoRam,
    /// `what` (`size` bytes) fits nowhere in free RAM.
    NoRoom { what: &'static str, size: u64 },
    /// The kernel does not allow its base anywhere in RAM (flag bit 3 clear) and does not fit in
    /// the lowest RAM region `lowest`.
    KernelNotInLowestRam { size: u64, lowest: Range },
    /// A device tree larger than the 2 MiB the boot protocol allows.
    DtbTooLarge { size: u64 },
    /// The initrd (`size` bytes) fits nowhere in free RAM inside a 1 GiB-aligned window of at
    /// most 32 GiB that also covers the kernel at `kernel` (booting.rst).
    InitrdOutsideKernelWindow { size: u64, kernel: Range },
    /// No free spot for the device tree (`size` bytes) whose 2 MiB blocks hold only RAM and
    /// nothing reserved or in use: Linux maps the blob with whole 2 MiB cacheable blocks.
    DtbNoCleanBlock { size: u64 },

    /// The device tree blob is malformed at byte `offset` (from the start of the blob).
    BadDtb { offset: usize, what: &'static str },
    /// The device tree has no `/memory` node (or none with a usable `reg`).
    NoMemoryNode,
    /// A `reg`-like value in node `node` cannot be decoded.
    BadReg { node: String, what: &'static str },
    /// A change to node or property `at` cannot be written: `why`.
    DtWrite { at: String, why: &'static str },
    /// A device tree overlay cannot be applied; the base tree is left as it was.
    Overlay(dt::OverlayError),

    /// The Raspberry Pi firmware's property answer says `code`, not success (0 = never
    /// processed, 0x80000001 = the firmware could not parse the request).
    MailboxCode { code: u32 },
    /// The firmware processed the message but did not answer tag `tag` (it does not know it).
    MailboxUnanswered { tag: u32 },
    /// Tag `tag`'s answer has `len` bytes, fewer than the `expected`.
    MailboxShort {
        tag: u32,
        len: usize,
        expected: usize,
    },
    /// The firmware does not know clock `clock` (its rate is 0).
    MailboxNoClock { clock: u32 },
    /// A property answer that makes no sense: `what`.
    MailboxMessage { what: &'static str },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            Range(e) => write!(f, "{e}"),
            ImageTooShort { len } => {
                write!(
                    f,
                    "kernel Image is {len} bytes, shorter than the 64-byte header"
                )
            }
            BadImageMagic { found } => write!(
                f,
                "not an arm64 Image: magic at offset 0x38 is {found:#010x}, expected {:#010x}",
                crate::image::IMAGE_MAGIC
            ),
            BigEndianImage => write!(f, "kernel Image is big-endian (flags bit 0), not supported"),
            UnalignedTextOffset { text_offset } => {
                write!(
                    f,
                    "kernel text_offset {text_offset:#x} is not 4 KiB aligned"
                )
            }
            ImageSizeOverflow {
                text_offset,
                image_size,
            } => write!(
                f,
                "kernel text_offset {text_offset:#x} + image_size {image_size:#x} overflows"
            ),
            ImageLargerThanImageSize {
                file_len,
                image_size,
            } => write!(
                f,
                "kernel Image file is {file_len} bytes but its header says image_size {image_size}"
            ),
            GzipHeader { offset, what } => write!(f, "bad gzip header at offset {offset}: {what}"),
            Truncated { what } => write!(f, "compressed data truncated: {what} incomplete"),
            Corrupt { offset } => write!(f, "corrupt deflate stream near input offset {offset}"),
            CrcMismatch { expected, found } => write!(
                f,
                "gzip CRC32 mismatch: trailer says {expected:#010x}, data gives {found:#010x}"
            ),
            SizeMismatch { expected, found } => write!(
                f,
                "gzip size mismatch: trailer says {expected} bytes (mod 2^32), inflated {found}"
            ),
            BadHandoff { why } => write!(f, "handoff record: {why}"),
            HandoffVersion { found, expected } => {
                write!(f, "handoff record: version {found}, expected {expected}")
            }
            HandoffChecksum { expected, found } => write!(
                f,
                "handoff record: CRC32 {found:#010x}, the record says {expected:#010x}"
            ),
            InflatesBeyond { limit } => {
                write!(
                    f,
                    "data inflates beyond the {limit}-byte destination (the size the stream \
                     or the Image header announced)"
                )
            }
            NotCompressed => write!(f, "not a compressed stream kexboot decodes"),
            Lz4 { offset, what } => write!(f, "bad lz4 data at offset {offset}: {what}"),
            Zstd { offset, what } => write!(f, "bad zstd data near offset {offset}: {what}"),
            BlockTooLarge { offset, size, max } => write!(
                f,
                "compressed block at offset {offset} is {size} bytes, more than the {max} its \
                 format allows"
            ),
            WindowTooLarge { window, max } => write!(
                f,
                "zstd window of {} KiB is more than kexboot's bound of {} KiB (recompress with \
                 a lower level or a smaller --long)",
                window >> 10,
                max >> 10
            ),
            ChecksumMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what} mismatch: the stream says {expected:#010x}, the data gives {found:#010x}"
            ),
            ContentSizeMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what} says it holds {expected} bytes but decompressed to {found}"
            ),
            NoRam => write!(f, "no RAM to place anything in"),
            NoRoom { what, size } => {
                write!(f, "{what} ({size} bytes) does not fit in free RAM")
            }
            KernelNotInLowestRam { size, lowest } => write!(
                f,
                "kernel ({size} bytes) must sit at the start of RAM (Image flag bit 3 clear) \
                 but does not fit in the lowest RAM region {lowest}"
            ),
            DtbTooLarge { size } => write!(
                f,
                "device tree is {size} bytes, more than the {MAX_DTB_SIZE} the boot protocol allows"
            ),
            InitrdOutsideKernelWindow { size, kernel } => write!(
                f,
                "initrd ({size} bytes) fits nowhere in free RAM within a 1 GiB-aligned window of \
                 at most 32 GiB that also covers the kernel at {kernel} (arm64 boot protocol)"
            ),
            DtbNoCleanBlock { size } => write!(
                f,
                "device tree ({size} bytes) fits nowhere whose 2 MiB blocks hold only free RAM \
                 (Linux maps it with 2 MiB blocks; reserved or non-RAM memory must not share them)"
            ),
            BadDtb { offset, what } => write!(f, "bad device tree at offset {offset:#x}: {what}"),
            NoMemoryNode => write!(f, "device tree has no /memory node with a usable reg"),
            BadReg { node, what } => write!(f, "device tree node {node}: {what}"),
            DtWrite { at, why } => write!(f, "cannot write device tree at {at}: {why}"),
            Overlay(e) => write!(f, "device tree overlay: {e}"),
            MailboxCode { code } => write!(
                f,
                "firmware mailbox: answer code {code:#010x}, not success (0x80000000)"
            ),
            MailboxUnanswered { tag } => {
                write!(f, "firmware mailbox: tag {tag:#010x} not answered")
            }
            MailboxShort { tag, len, expected } => write!(
                f,
                "firmware mailbox: tag {tag:#010x} answered {len} bytes, expected {expected}"
            ),
            MailboxNoClock { clock } => write!(f, "firmware mailbox: no clock {clock}"),
            MailboxMessage { what } => write!(f, "firmware mailbox: bad answer: {what}"),
        }
    }
}

/// This crate's result type.
impl From<kexboot_relocate::Error> for Error {
    fn from(e: kexboot_relocate::Error) -> Self {
        Error::Range(e)
    }
}

pub type Result<T> = core::result::Result<T, Error>;
