//! The crate's one error type.
use core::fmt;

/// Everything that can go wrong reading or writing a disk. Callers add the device or path to
/// messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The device failed to read the sectors starting at `lba`.
    Io { lba: u64 },
    /// A read of `count` sectors at `lba` does not fit a device (or partition) of `size` sectors.
    OutOfRange { lba: u64, count: u64, size: u64 },
    /// A read buffer whose length is not a non-zero multiple of 512.
    BadBuffer { len: usize },
    /// Neither a GPT, an MBR nor a whole-disk FAT volume at LBA 0.
    NoPartitionTable,
    /// The MBR or an extended boot record is malformed.
    BadMbr(&'static str),
    /// Neither the primary nor the backup GPT is valid; says what was wrong with the primary.
    BadGpt(&'static str),
    /// No partition matches the requested number or name.
    NoSuchPartition,
    /// No partition holds a FAT file system.
    NoFatPartition,
    /// The boot sector is not a valid FAT boot sector.
    NotFat(&'static str),
    /// No such file or directory.
    NotFound,
    /// The path names a directory where a file was expected.
    NotAFile,
    /// A path component names a file where a directory was expected.
    NotADirectory,
    /// The file does not fit the destination.
    TooLarge { size: u64, capacity: u64 },
    /// A cluster number (from the FAT or a directory entry) outside `2..=max`.
    BadCluster { cluster: u32, max: u32 },
    /// A cluster chain visits `cluster` twice.
    ChainLoop { cluster: u32 },
    /// A file's size needs more bytes than its cluster chain holds.
    ShortChain { size: u64, chain_bytes: u64 },
    /// Some other inconsistency in the file system.
    Corrupt(&'static str),
    /// The device (or its driver) does not accept writes.
    ReadOnly,
    /// The device failed to write the sectors starting at `lba`.
    WriteIo { lba: u64 },
    /// A write of `len` bytes at `offset` goes past the end of a file of `size` bytes.
    BeyondEnd { offset: u64, len: u64, size: u64 },
    /// Creating a file needs `needed` free clusters but the volume has only `free`.
    DiskFull { needed: u64, free: u64 },
    /// The directory cannot take another entry (fixed FAT12/16 root, or 65536 entries).
    DirectoryFull,
    /// A file or directory of that name already exists.
    AlreadyExists,
    /// A name that cannot be created as a plain 8.3 name; says why.
    BadName(&'static str),
    /// Files read through the file trait from something that is not a disk (a TFTP server, ...)
    /// failed there; the message is that source's own, already in words.
    Transport(alloc::string::String),
    /// Neither a FAT nor an ext2/3/4 file system; says what the FAT check found.
    UnknownFs(&'static str),
    /// An ext2/3/4 volume is inconsistent (bad checksum, block outside the volume, ...); the
    /// message is the reader's.
    Ext4Corrupt(alloc::string::String),
    /// A file system feature (or an encrypted file) this reader does not support.
    Unsupported(alloc::string::String),
    /// Symlinks nest deeper than 40 levels (a loop).
    SymlinkLoop,
    /// A path that cannot name a file; says why.
    BadPath(&'static str),
}

impl core::error::Error for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { lba } => write!(f, "I/O error reading sector {lba}"),
            Error::OutOfRange { lba, count, size } => write!(
                f,
                "access to {count} sectors at LBA {lba} is outside the device ({size} sectors)"
            ),
            Error::BadBuffer { len } => {
                write!(
                    f,
                    "I/O buffer of {len} bytes is not a non-zero multiple of 512"
                )
            }
            Error::NoPartitionTable => {
                write!(f, "no partition table, FAT or ext2/3/4 volume found")
            }
            Error::BadMbr(why) => write!(f, "bad MBR: {why}"),
            Error::BadGpt(why) => write!(f, "bad GPT (primary and backup): {why}"),
            Error::NoSuchPartition => write!(f, "no such partition"),
            Error::NoFatPartition => write!(f, "no partition holds a FAT file system"),
            Error::NotFat(why) => write!(f, "not a FAT file system: {why}"),
            Error::NotFound => write!(f, "file not found"),
            Error::NotAFile => write!(f, "is a directory, not a file"),
            Error::NotADirectory => write!(f, "not a directory"),
            Error::TooLarge { size, capacity } => {
                write!(f, "file of {size} bytes does not fit in {capacity} bytes")
            }
            Error::BadCluster { cluster, max } => {
                write!(
                    f,
                    "corrupt FAT: cluster number {cluster:#x} outside 2..={max:#x}"
                )
            }
            Error::ChainLoop { cluster } => {
                write!(
                    f,
                    "corrupt FAT: cluster chain loops (cluster {cluster:#x} seen twice)"
                )
            }
            Error::ShortChain { size, chain_bytes } => write!(
                f,
                "corrupt FAT: file size {size} exceeds its cluster chain ({chain_bytes} bytes)"
            ),
            Error::Corrupt(why) => write!(f, "corrupt file system: {why}"),
            Error::ReadOnly => write!(f, "device is read-only"),
            Error::WriteIo { lba } => write!(f, "I/O error writing sector {lba}"),
            Error::BeyondEnd { offset, len, size } => write!(
                f,
                "write of {len} bytes at offset {offset} goes past the end of the file \
                 ({size} bytes); files are not grown in place"
            ),
            Error::DiskFull { needed, free } => write!(
                f,
                "disk full: {needed} free clusters needed, {free} available"
            ),
            Error::DirectoryFull => write!(f, "directory full"),
            Error::AlreadyExists => write!(f, "file already exists"),
            Error::BadName(why) => write!(f, "name not creatable: {why}"),
            Error::Transport(why) => f.write_str(why),
            Error::UnknownFs(why) => write!(f, "unknown file system ({why})"),
            Error::Ext4Corrupt(why) => write!(f, "corrupt ext2/3/4 file system: {why}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::SymlinkLoop => write!(f, "too many levels of symbolic links"),
            Error::BadPath(why) => write!(f, "bad path: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn transport_errors_keep_their_source_message() {
        let e = Error::Transport("tftp: server error 2: access violation".to_string());
        assert_eq!(e.to_string(), "tftp: server error 2: access violation");
        assert_ne!(e, Error::Io { lba: 0 });
    }
}
