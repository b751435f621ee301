//! The boot flow, sans-I/O: read `extlinux.conf`, then for each entry in boot order (default
//! first) load the kernel (gzip detected by content), the initrd(s), place everything per the
//! arm64 boot protocol, fix up the device tree, and return the segment list for the relocator.
//! Files, page-aligned RAM buffers, time and randomness come in through traits, so the whole
//! flow runs on the host over a disk image and simulated RAM exactly as it does in firmware.
//!
//! Every failure names the file and what was wrong; the caller moves on to the next entry.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use kexboot_fs as fs;
use kexboot_loader::compress::{self, Format};
use kexboot_loader::dt::{self, Fixups};
use kexboot_loader::fit::{self, Compression, FitError, Keys};
use kexboot_loader::image::ImageHeader;
use kexboot_loader::place::{self, Placement};
use kexboot_loader::{Range, MAX_DTB_SIZE};
use kexboot_net::NetError;
use kexboot_relocate::Segment;

use crate::bls;
use crate::extlinux::{self, Config, Entry};
use crate::Clock;

/// Where U-Boot's distro boot and Debian's u-boot-menu put the config.
pub const CONFIG_PATHS: [&str; 2] = ["/extlinux/extlinux.conf", "/boot/extlinux/extlinux.conf"];
/// Largest config file read.
pub const MAX_CONFIG: u64 = 1 << 20;
/// Free staging memory kept back when sizing a buffer, so a boot can still proceed.
pub const STAGING_MARGIN: u64 = 8 << 20;
/// How much the fixed-up DTB may grow over the incoming one (bootargs, initrd, seeds).
pub const DTB_GROWTH: u64 = 64 << 10;

/// Why a boot file could not be read: from a disk's file system, or over the network (PXE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    Fs(fs::Error),
    Net(NetError),
}

impl From<fs::Error> for FileError {
    fn from(e: fs::Error) -> Self {
        FileError::Fs(e)
    }
}

impl From<NetError> for FileError {
    fn from(e: NetError) -> Self {
        FileError::Net(e)
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Fs(e) => write!(f, "{e}"),
            FileError::Net(e) => write!(f, "{e}"),
        }
    }
}

/// Read access to the boot files (a disk's file system, or a TFTP server for PXE).
pub trait Files {
    fn size(&mut self, path: &str) -> Result<u64, FileError>;
    /// Reads the whole file into `dst`; refuses (before writing) a file larger than `dst`.
    fn read_into(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, FileError>;
    /// The names (no directory part) of the files in directory `dir`, for Boot Loader
    /// Specification entries. A source that cannot list (TFTP) says `NotFound`.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, FileError> {
        let _ = dir;
        Err(FileError::Fs(fs::Error::NotFound))
    }
}

/// [`Files`] over a disk's file system: a [`fs::Volume`] (FAT or ext), or a bare [`fs::FatFs`]
/// (the host tests'), which have the same read methods.
macro_rules! files_over_fs {
    ($ty:ty, $($bound:tt)+) => {
        impl<D: $($bound)+> Files for $ty {
            fn size(&mut self, path: &str) -> Result<u64, FileError> {
                let info = self.stat(path)?;
                if info.is_dir {
                    return Err(fs::Error::NotAFile.into());
                }
                Ok(info.size)
            }

            fn read_into(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, FileError> {
                Ok(self.read_file_into(path, dst)?)
            }

            fn list(&mut self, dir: &str) -> Result<Vec<String>, FileError> {
                Ok(self
                    .read_dir(dir)?
                    .into_iter()
                    .filter(|e| !e.is_dir)
                    .map(|e| e.name)
                    .collect())
            }
        }
    };
}

files_over_fs!(fs::Volume<D>, fs::BlockDevice + 'static);
files_over_fs!(fs::FatFs<D>, fs::BlockDevice);

/// Zeroed, page-aligned buffers at known physical addresses (the firmware's heap, or simulated
/// RAM on the host). Boot segments are copied from these by the relocator.
pub trait Staging {
    type Buf: AsRef<[u8]> + AsMut<[u8]>;
    /// A buffer of at least `len` bytes, or `None` when there is no room.
    fn alloc(&mut self, len: usize) -> Option<Self::Buf>;
    /// Physical address of the buffer's first byte.
    fn addr(&self, buf: &Self::Buf) -> u64;
    /// Bytes still free.
    fn free_bytes(&self) -> u64;
    /// A buffer of exactly `r.len()` bytes at physical `r.start()` (page-aligned), so a file can
    /// be read (or decompressed) straight to where it runs and the relocator need not copy it.
    /// `None` unless every page `r` touches is RAM the board lets kexboot write now (never
    /// kexboot itself, its heap, the incoming DTB, reserved or kept memory; in a warm entry the
    /// same view) and no live buffer from this method holds any of them: the caller then
    /// stages as usual. The bytes are not zeroed; the caller writes all it uses.
    fn at(&mut self, r: Range) -> Option<Self::Buf> {
        let _ = r;
        None
    }
}

/// The machine: its clock (the one [`Clock`] the menu and shell use too), randomness, and its
/// own device-tree changes.
pub trait Platform: Clock {
    /// `(kaslr-seed, rng-seed)` from a hardware random source, if there is one.
    fn random_seeds(&mut self) -> Option<(u64, [u8; 64])>;
    /// The board's own changes ([`crate::board::Board::own_fixups`]), which a tree an entry
    /// names (`fdt`, `fdtdir`) gets as the firmware's tree already has them.
    fn own_fixups(&self, dtb: &[u8]) -> Result<Vec<u8>, kexboot_loader::Error>;
    /// The environment's `fdtfile`: the file `fdtdir` picks, when set.
    fn fdtfile(&self) -> Option<&str> {
        None
    }
    /// The trusted keys built into the firmware: when one is required, only FIT images that
    /// verify boot.
    fn keys(&self) -> &Keys {
        &fit::NO_KEYS
    }
}

/// U-Boot's `fdtfile` for boards known by their root `compatible` (U-Boot's Raspberry Pi board
/// code sets it the same way from the board revision); the file paths are Linux's
/// (`arch/arm64/boot/dts/`), as Debian's kernel packages install them.
pub const FDTFILES: [(&str, &str); 7] = [
    ("raspberrypi,3-model-b", "broadcom/bcm2837-rpi-3-b.dtb"),
    (
        "raspberrypi,3-model-b-plus",
        "broadcom/bcm2837-rpi-3-b-plus.dtb",
    ),
    (
        "raspberrypi,3-model-a-plus",
        "broadcom/bcm2837-rpi-3-a-plus.dtb",
    ),
    (
        "raspberrypi,3-compute-module",
        "broadcom/bcm2837-rpi-cm3-io3.dtb",
    ),
    (
        "raspberrypi,model-zero-2-w",
        "broadcom/bcm2837-rpi-zero-2-w.dtb",
    ),
    ("raspberrypi,4-model-b", "broadcom/bcm2711-rpi-4-b.dtb"),
    ("raspberrypi,400", "broadcom/bcm2711-rpi-400.dtb"),
];

/// The `fdtfile` for a board whose root `compatible` strings are `compatible` (most specific
/// first), when [`FDTFILES`] knows one.
pub fn fdtfile_for(compatible: &[String]) -> Option<&'static str> {
    compatible
        .iter()
        .find_map(|c| FDTFILES.iter().find(|(k, _)| k == c).map(|(_, f)| *f))
}

/// What the boot images must stay clear of.
pub struct MemoryView<'a> {
    pub ram: &'a [Range],
    /// Everything a segment must avoid: reserved memory and kexboot's own image, heap, DTB.
    pub avoid: &'a [Range],
}

/// Why an entry could not be booted.
#[derive(Debug)]
pub enum BootError {
    NoConfig,
    Config {
        path: &'static str,
        err: crate::Error,
    },
    NoKernel,
    /// The entry says `localboot`, which means "boot the local disk" in a PXE menu; kexboot
    /// has no such fallback to hand over to.
    LocalBoot,
    File {
        path: String,
        err: FileError,
    },
    NoMemory {
        path: String,
        size: u64,
        free: u64,
    },
    Kernel {
        path: String,
        err: kexboot_loader::Error,
    },
    Unsupported {
        path: String,
        what: &'static str,
    },
    Placement(kexboot_loader::Error),
    Dtb(kexboot_loader::Error),
    /// The device tree file an entry names is not one.
    DtbFile {
        path: String,
        err: kexboot_loader::Error,
    },
    Relocate(kexboot_relocate::Error),
    /// The FIT image at `path` was refused.
    Fit {
        path: String,
        err: FitError,
    },
    /// Verified boot is required and `path` is not part of a FIT that verified: `why`.
    NotVerified {
        path: String,
        why: &'static str,
    },
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoConfig => write!(
                f,
                "no {}, {} or {}/*.conf",
                CONFIG_PATHS[0],
                CONFIG_PATHS[1],
                bls::ENTRIES_DIR
            ),
            Self::Config { path, err } => write!(f, "{path}: {err}"),
            Self::NoKernel => write!(f, "entry has no 'kernel'/'linux' line"),
            Self::LocalBoot => write!(f, "localboot is not supported here"),
            Self::File { path, err } => write!(f, "{path}: {err}"),
            Self::NoMemory { path, size, free } => {
                write!(
                    f,
                    "{path}: {size} bytes do not fit in free memory ({free} bytes free)"
                )
            }
            Self::Kernel { path, err } => write!(f, "{path}: {err}"),
            Self::Unsupported { path, what } => write!(f, "{path}: {what} is not supported"),
            Self::Placement(e) => write!(f, "cannot place the boot images: {e}"),
            Self::Dtb(e) => write!(f, "device tree: {e}"),
            Self::DtbFile { path, err } => write!(f, "{path}: {err}"),
            Self::Relocate(e) => write!(f, "relocation plan refused: {e}"),
            Self::Fit { path, err } => write!(f, "{path}: {err}"),
            Self::NotVerified { path, why } => {
                write!(f, "{path}: refused by verified boot: {why}")
            }
        }
    }
}

/// An entry ready for the relocator.
pub struct Prepared<B> {
    pub label: String,
    pub segments: Vec<Segment>,
    /// Kernel entry point (its load address).
    pub entry: u64,
    /// Where the DTB will be: the kernel's x0.
    pub dtb: u64,
    pub placement: Placement,
    /// The source buffers; they must live until the jump.
    pub buffers: Vec<B>,
    /// Everything in it came from a FIT whose signatures a required key verified.
    pub verified: bool,
}

/// One entry that failed, for the console and for tests.
#[derive(Debug)]
pub struct Failure {
    pub label: String,
    pub error: BootError,
}

/// Which configuration [`load_config`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// An `extlinux.conf` at this path ([`CONFIG_PATHS`]).
    Extlinux(&'static str),
    /// Boot Loader Specification entries in [`bls::ENTRIES_DIR`]: how many became entries.
    Bls { entries: usize },
}

impl ConfigSource {
    /// The path the entries' file names are resolved against ([`extlinux::resolve_path`]):
    /// the config file, or `/` for BLS (its paths are from the partition root).
    pub fn base(&self) -> &'static str {
        match self {
            ConfigSource::Extlinux(path) => path,
            ConfigSource::Bls { .. } => "/",
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Extlinux(path) => f.write_str(path),
            ConfigSource::Bls { entries } => {
                write!(f, "{} ({entries} entries)", bls::ENTRIES_DIR)
            }
        }
    }
}

/// Reads a whole small file (a config, an included file, a BLS entry) of at most `max` bytes.
fn read_small(files: &mut dyn Files, path: &str, max: u64) -> Result<Vec<u8>, FileError> {
    let size = files.size(path)?;
    if size > max {
        return Err(fs::Error::TooLarge {
            size,
            capacity: max,
        }
        .into());
    }
    let mut buf = alloc::vec![0u8; size as usize];
    let n = files.read_into(path, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Reads and parses the first configuration found on a partition, in U-Boot's distro-boot order
/// then ours: [`CONFIG_PATHS`] (with the files their `include` lines name), then Boot Loader
/// Specification entries ([`bls::ENTRIES_DIR`]`/*.conf`) when that directory holds any. (A boot
/// script, `boot.scr`, comes after both; the caller tries it.) Notes are logged as warnings.
pub fn load_config(files: &mut dyn Files) -> Result<(ConfigSource, Config), BootError> {
    for path in CONFIG_PATHS {
        let buf = match read_small(files, path, MAX_CONFIG) {
            Ok(b) => b,
            Err(FileError::Fs(fs::Error::NotFound)) => continue,
            Err(err) => {
                return Err(BootError::File {
                    path: path.into(),
                    err,
                })
            }
        };
        let mut read = |p: &str| read_small(files, p, MAX_CONFIG);
        let config = extlinux::parse_with(&buf, path, &mut read)
            .map_err(|err| BootError::Config { path, err })?;
        for note in &config.notes {
            log::warn!("{path}: {note}");
        }
        return Ok((ConfigSource::Extlinux(path), config));
    }
    let names = match files.list(bls::ENTRIES_DIR) {
        Ok(n) => n,
        Err(FileError::Fs(fs::Error::NotFound | fs::Error::NotADirectory)) => {
            return Err(BootError::NoConfig)
        }
        Err(err) => {
            return Err(BootError::File {
                path: bls::ENTRIES_DIR.into(),
                err,
            })
        }
    };
    let mut read = |p: &str| read_small(files, p, bls::MAX_ENTRY_FILE);
    let config = bls::load(&names, &mut read).map_err(|err| BootError::Config {
        path: bls::ENTRIES_DIR,
        err,
    })?;
    for note in &config.notes {
        log::warn!("{note}");
    }
    if config.entries.is_empty() && config.notes.is_empty() {
        // An empty (or `.conf`-less) directory: as if there were none.
        return Err(BootError::NoConfig);
    }
    let source = ConfigSource::Bls {
        entries: config.entries.len(),
    };
    Ok((source, config))
}

/// The first entry that could be prepared (its boot-order position and plan), and every failure
/// on the way.
pub type NextBootable<B> = (Option<(usize, Prepared<B>)>, Vec<Failure>);

/// Tries the entries in boot order starting at position `from`; returns the position and plan
/// of the first one that could be prepared, and every failure on the way (already logged).
#[allow(clippy::too_many_arguments)] // each is a distinct input of the flow; a bag struct hides nothing
pub fn next_bootable<S: Staging>(
    files: &mut dyn Files,
    staging: &mut S,
    platform: &mut dyn Platform,
    mem: &MemoryView,
    dtb: &[u8],
    cfg_path: &str,
    config: &Config,
    from: usize,
) -> NextBootable<S::Buf> {
    let mut failures = Vec::new();
    for (pos, &i) in config.boot_order().iter().enumerate().skip(from) {
        let entry = &config.entries[i];
        if entry.localboot {
            log::warn!(
                "{}: localboot is not supported here, trying the next entry",
                entry.label
            );
            failures.push(Failure {
                label: entry.label.clone(),
                error: BootError::LocalBoot,
            });
            continue;
        }
        if pos > 0 {
            log::info!("trying entry '{}'", entry.label);
        }
        match prepare(files, staging, platform, mem, dtb, cfg_path, entry) {
            Ok(p) => return (Some((pos, p)), failures),
            Err(error) => {
                log::error!("entry '{}' ({}): {}", entry.label, entry.title(), error);
                failures.push(Failure {
                    label: entry.label.clone(),
                    error,
                });
            }
        }
    }
    (None, failures)
}

struct Loaded<B> {
    buf: B,
    len: usize,
}

impl<B: AsRef<[u8]>> Loaded<B> {
    fn bytes(&self) -> &[u8] {
        &self.buf.as_ref()[..self.len]
    }
}

fn alloc_for<S: Staging>(staging: &mut S, path: &str, size: u64) -> Result<S::Buf, BootError> {
    let free = staging.free_bytes();
    let err = || BootError::NoMemory {
        path: path.into(),
        size,
        free,
    };
    if size.saturating_add(STAGING_MARGIN) > free {
        return Err(err());
    }
    let n = usize::try_from(size).map_err(|_| err())?;
    staging.alloc(n).ok_or_else(err)
}

fn mb_per_s(bytes: u64, us: u64) -> u64 {
    bytes / us.max(1)
}

/// The total size of `paths`, as their sources state it.
fn total_size(files: &mut dyn Files, paths: &[String]) -> Result<u64, BootError> {
    let mut total = 0u64;
    for path in paths {
        let size = files.size(path).map_err(|err| BootError::File {
            path: path.clone(),
            err,
        })?;
        total = total.saturating_add(size);
    }
    Ok(total)
}

/// Reads `paths` (`total` bytes together) back to back into one buffer (one file is the common
/// case; `initrd a,b` is concatenated, as U-Boot does): into `placed` when the caller got a
/// buffer at the final destination ([`Staging::at`]), else into a fresh staging buffer.
fn load_files<S: Staging>(
    files: &mut dyn Files,
    staging: &mut S,
    platform: &dyn Platform,
    paths: &[String],
    what: &str,
    total: u64,
    placed: Option<S::Buf>,
) -> Result<Loaded<S::Buf>, BootError> {
    let first = paths.first().cloned().unwrap_or_default();
    let mut buf = match placed {
        Some(b) => b,
        None => alloc_for(staging, &first, total)?,
    };
    let t0 = platform.now_us();
    let mut off = 0usize;
    let end = usize::try_from(total).unwrap_or(usize::MAX);
    for path in paths {
        let dst = buf.as_mut().get_mut(off..end).unwrap_or_default();
        off += files.read_into(path, dst).map_err(|err| BootError::File {
            path: path.clone(),
            err,
        })?;
    }
    let us = platform.now_us().saturating_sub(t0);
    log::info!(
        "loaded {what} {first}: {off} bytes in {} ms ({} MB/s)",
        us / 1000,
        mb_per_s(off as u64, us)
    );
    Ok(Loaded { buf, len: off })
}

/// The sizes the placement needs besides the kernel's header.
#[derive(Clone, Copy)]
struct Sizes {
    initrd: u64,
    /// Room for the fixed-up device tree ([`dtb_room`]).
    dtb: u64,
}

/// Room the placement keeps for a device tree of `len` bytes after the boot's fixups.
fn dtb_room(len: usize) -> u64 {
    (len as u64 + DTB_GROWTH).min(MAX_DTB_SIZE)
}

/// Places kernel, initrd and DTB in `mem`, clear of `extra` too (a compressed kernel file that
/// must stay where it was read while it is inflated).
fn place_in(
    mem: &MemoryView,
    header: &ImageHeader,
    sizes: Sizes,
    extra: Option<Range>,
) -> Result<Placement, BootError> {
    let placed = |avoid: &[Range]| place::place(mem.ram, avoid, header, sizes.initrd, sizes.dtb);
    match extra {
        Some(x) => {
            let mut avoid = mem.avoid.to_vec();
            avoid.push(x);
            placed(&avoid)
        }
        None => placed(mem.avoid),
    }
    .map_err(BootError::Placement)
}

/// The header a plain arm64 Image of `size` bytes from Linux 5.8 on has: text_offset 0, 4 KiB
/// pages, base anywhere, `image_size` at least the file. Its placement is where such a file is
/// read speculatively, before its own header is known (the sources read whole files only).
fn assumed_header(size: u64) -> Option<ImageHeader> {
    const FLAGS_4K_ANY_BASE: u64 = (1 << 1) | (1 << 3);
    let mut h = [0u8; 64];
    let image_size = size.checked_next_multiple_of(kexboot_loader::mem::PAGE_SIZE)?;
    h[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
    h[0x18..0x20].copy_from_slice(&FLAGS_4K_ANY_BASE.to_le_bytes());
    h[0x38..0x3c].copy_from_slice(b"ARM\x64");
    ImageHeader::parse(&h).ok()
}

/// Reads the kernel file, where the kernel will run when that spot is free: the placement of
/// a modern plain Image of the file's size ([`assumed_header`]). Returns the file and where it
/// was read in place (`None`: staged).
fn read_kernel<S: Staging>(
    files: &mut dyn Files,
    staging: &mut S,
    platform: &dyn Platform,
    mem: &MemoryView,
    path: &str,
    sizes: Sizes,
) -> Result<(Loaded<S::Buf>, Option<u64>), BootError> {
    let paths = [String::from(path)];
    let size = total_size(files, &paths)?;
    let spot = assumed_header(size)
        .and_then(|h| place_in(mem, &h, sizes, None).ok())
        .and_then(|p| Range::from_len(p.kernel.start(), size).ok())
        .filter(|r| !r.is_empty());
    let placed = spot.and_then(|r| staging.at(r).map(|b| (b, r.start())));
    let (buf, at) = match placed {
        Some((b, a)) => (Some(b), Some(a)),
        None => (None, None),
    };
    let file = load_files(files, staging, platform, &paths, "kernel", size, buf)?;
    Ok((file, at))
}

/// The arm64 Image header in the first decompressed bytes of `src`.
fn peek_header(format: Format, src: &[u8]) -> Result<ImageHeader, kexboot_loader::Error> {
    let mut head = [0u8; 64];
    let n = match compress::decompress_into(format, src, &mut head) {
        Ok(n) => n,
        Err(kexboot_loader::Error::InflatesBeyond { .. }) => head.len(),
        Err(e) => return Err(e),
    };
    ImageHeader::parse(head.get(..n).unwrap_or_default())
}

/// Turns a kernel file into an arm64 Image at its placement: gzip, lz4 and zstd are detected by
/// content, not by name, and go through the loader's one dispatch
/// ([`compress::decompressed_bound`] sizes the buffer, [`compress::decompress_into`] fills it,
/// never past its end). `file_at` says where the file was read in place ([`read_kernel`]).
///
/// The Image ends up where it runs when that is free: a plain Image read at its placement stays
/// there; a compressed one is inflated straight to its placement (chosen clear of the
/// compressed file when the kernel may sit anywhere, flag bit 3). Otherwise it is staged and
/// the relocator copies it, as before.
///
/// Logs `decompressed <path> (<format>): <in> -> <out> bytes in <ms> ms (<MB/s> MB/s)`, the
/// time covering the sizing too (the bench greps this line).
#[allow(clippy::too_many_arguments)] // each is a distinct input of the flow
fn kernel_image<S: Staging>(
    staging: &mut S,
    platform: &dyn Platform,
    mem: &MemoryView,
    sizes: Sizes,
    path: &str,
    file: Loaded<S::Buf>,
    file_at: Option<u64>,
) -> Result<(Loaded<S::Buf>, ImageHeader, Placement), BootError> {
    let kernel_err = |err| BootError::Kernel {
        path: path.into(),
        err,
    };
    let format = compress::detect(file.bytes());
    if format.is_compressed() {
        let t0 = platform.now_us();
        let bound = compress::decompressed_bound(format, file.bytes()).map_err(kernel_err)?;
        let peeked = peek_header(format, file.bytes()).map_err(kernel_err)?;
        let file_span = file_at
            .filter(|_| peeked.any_base())
            .and_then(|a| Range::from_len(a, file.len as u64).ok())
            .and_then(|r| r.page_rounded());
        let placement = match place_in(mem, &peeked, sizes, file_span) {
            Ok(p) => p,
            Err(_) if file_span.is_some() => place_in(mem, &peeked, sizes, None)?,
            Err(e) => return Err(e),
        };
        let placed = Range::from_len(placement.kernel.start(), bound)
            .ok()
            .filter(|r| r.end() <= placement.kernel.end())
            .and_then(|r| staging.at(r));
        let mut out = match placed {
            Some(b) => b,
            None => alloc_for(staging, path, bound)?,
        };
        let dst = out.as_mut().get_mut(..bound as usize).unwrap_or_default();
        let len = compress::decompress_into(format, file.bytes(), dst).map_err(kernel_err)?;
        let us = platform.now_us().saturating_sub(t0);
        log::info!(
            "decompressed {path} ({}): {} -> {len} bytes in {} ms ({} MB/s)",
            format.name(),
            file.len,
            us / 1000,
            mb_per_s(len as u64, us)
        );
        let image = Loaded { buf: out, len };
        let header = ImageHeader::parse(image.bytes()).map_err(kernel_err)?;
        return Ok((image, header, placement));
    }
    if format == Format::Unknown {
        if let Some(what) = compress::unsupported_compression(file.bytes()) {
            return Err(BootError::Unsupported {
                path: path.into(),
                what,
            });
        }
    }
    let header = ImageHeader::parse(file.bytes()).map_err(kernel_err)?;
    let placement = place_in(mem, &header, sizes, None)?;
    match file_at {
        None => Ok((file, header, placement)),
        Some(a) if a == placement.kernel.start() => Ok((file, header, placement)),
        Some(a) => {
            // Read at the spot a modern Image would take, but this one goes elsewhere (an
            // older text_offset, say): stage it, and the relocator copies it as before.
            log::info!(
                "{path}: read at {a:#x}, but it runs at {:#x}: staged",
                placement.kernel.start()
            );
            let mut staged = alloc_for(staging, path, file.len as u64)?;
            let dst = staged.as_mut().get_mut(..file.len).unwrap_or_default();
            dst.copy_from_slice(file.bytes());
            let len = file.len;
            drop(file);
            Ok((Loaded { buf: staged, len }, header, placement))
        }
    }
}

/// Loads everything one entry names and plans where it goes. A kernel named `file#conf`, a
/// `.itb`/`.fit` file, or any kernel once a trusted key is required, goes through the FIT path
/// ([`prepare_fit`]); a file that turns out to be a FIT does too.
pub fn prepare<S: Staging>(
    files: &mut dyn Files,
    staging: &mut S,
    platform: &mut dyn Platform,
    mem: &MemoryView,
    dtb: &[u8],
    cfg_path: &str,
    entry: &Entry,
) -> Result<Prepared<S::Buf>, BootError> {
    log::info!("booting entry '{}' ({})", entry.label, entry.title());
    let kernel_name = entry.kernel.as_deref().ok_or(BootError::NoKernel)?;
    let (file, conf) = split_conf(kernel_name);
    let kpath = extlinux::resolve_path(cfg_path, file);
    let named_fit = conf.is_some() || kpath.ends_with(".itb") || kpath.ends_with(".fit");
    if named_fit || platform.keys().required() {
        let paths = [kpath.clone()];
        let size = total_size(files, &paths)?;
        let fit = load_files(files, staging, platform, &paths, "FIT", size, None)?;
        return prepare_fit(
            files, staging, platform, mem, dtb, cfg_path, entry, &kpath, fit, conf,
        );
    }
    prepare_files(
        files, staging, platform, mem, dtb, cfg_path, entry, &kpath, true,
    )
}

/// U-Boot's `file.itb#conf`: the file and the configuration named after `#`.
pub fn split_conf(name: &str) -> (&str, Option<&str>) {
    match name.split_once('#') {
        Some((f, c)) => (f, Some(c).filter(|c| !c.is_empty())),
        None => (name, None),
    }
}

/// The images of a FIT that verified, as files named `<fit>#<image>`, over the entry's own
/// files for anything else.
struct FitFiles<'a> {
    buf: &'a [u8],
    parts: Vec<(String, core::ops::Range<usize>)>,
    outer: &'a mut dyn Files,
}

impl FitFiles<'_> {
    fn part(&self, path: &str) -> Option<&[u8]> {
        let (_, r) = self.parts.iter().find(|(n, _)| n == path)?;
        self.buf.get(r.clone())
    }
}

impl Files for FitFiles<'_> {
    fn size(&mut self, path: &str) -> Result<u64, FileError> {
        match self.part(path) {
            Some(b) => Ok(b.len() as u64),
            None => self.outer.size(path),
        }
    }

    fn read_into(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, FileError> {
        let Some(b) = self.part(path) else {
            return self.outer.read_into(path, dst);
        };
        let capacity = dst.len() as u64;
        let out = dst
            .get_mut(..b.len())
            .ok_or(FileError::Fs(fs::Error::TooLarge {
                size: b.len() as u64,
                capacity,
            }))?;
        out.copy_from_slice(b);
        Ok(b.len())
    }
}

/// What the content of a FIT image is, against its `compression`.
fn check_compression(part: &fit::Part, bytes: &[u8]) -> Result<(), &'static str> {
    let found = compress::detect(bytes);
    let ok = match part.compression {
        Compression::None => !found.is_compressed(),
        Compression::Gzip => found == Format::Gzip,
        Compression::Lz4 => found == Format::Lz4,
        Compression::Zstd => found == Format::Zstd,
    };
    if ok {
        Ok(())
    } else {
        Err("its data is not compressed as its 'compression' says")
    }
}

/// Boots configuration `conf` of the FIT read from `kpath` into `fit`: checks it
/// ([`fit::open`]: signatures when a key requires them, then bounds and hashes of every image
/// used) before anything of it is used, then plans its kernel, ramdisk and device tree as an
/// entry's files. With a key required, an initrd or device tree the entry names outside the
/// FIT is refused (no signature covers it); without, it replaces the FIT's.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the flow
fn prepare_fit<S: Staging>(
    files: &mut dyn Files,
    staging: &mut S,
    platform: &mut dyn Platform,
    mem: &MemoryView,
    dtb: &[u8],
    cfg_path: &str,
    entry: &Entry,
    kpath: &str,
    fit: Loaded<S::Buf>,
    conf: Option<&str>,
) -> Result<Prepared<S::Buf>, BootError> {
    let required = platform.keys().required();
    let bytes = fit.bytes();
    if !fit::is_fit(bytes) && required {
        return Err(BootError::NotVerified {
            path: kpath.into(),
            why: "not a FIT image; with a required key only signed FIT images boot",
        });
    }
    let fit_err = |err| BootError::Fit {
        path: kpath.into(),
        err,
    };
    let opened = {
        let clock = &*platform;
        fit::open_timed(bytes, conf, platform.keys(), &|| clock.now_us()).map_err(fit_err)?
    };
    // One line per check: the bench reads the kernel's.
    let checks: Vec<String> = opened
        .times
        .iter()
        .map(|t| match t.bytes {
            0 => alloc::format!("{} {} ms", t.what, t.us / 1000),
            n => alloc::format!(
                "{} {n} bytes {} ms ({} MB/s)",
                t.what,
                t.us / 1000,
                mb_per_s(n as u64, t.us)
            ),
        })
        .collect();
    match &opened.verified {
        Some(how) => log::info!(
            "{kpath}: FIT configuration '{}' verified ({how}); {}",
            opened.conf,
            checks.join(", ")
        ),
        None => log::info!(
            "{kpath}: FIT configuration '{}', hashes good ({}); no key requires a signature",
            opened.conf,
            checks.join(", ")
        ),
    }
    if required
        && (!entry.initrds.is_empty()
            || entry.fdt.is_some()
            || entry.fdtdir.is_some()
            || !entry.fdtoverlays.is_empty())
    {
        return Err(BootError::NotVerified {
            path: kpath.into(),
            why: "the entry names an initrd or device tree outside the FIT, which no \
                  signature covers",
        });
    }
    let kernel = opened.kernel.as_ref().ok_or_else(|| {
        fit_err(FitError::NoConfig(alloc::format!(
            "configuration '{}' names no kernel",
            opened.conf
        )))
    })?;
    let slash = if kpath.starts_with('/') { "" } else { "/" };
    let name = |p: &fit::Part| alloc::format!("{slash}{kpath}#{}", p.name);
    // The kernel's `compression` must match its content (kexboot decompresses by content).
    // A ramdisk is handed over as it is: "none" is what mkimage writes for a gzip'd initramfs
    // the kernel unpacks itself.
    check_compression(kernel, &bytes[kernel.data.clone()]).map_err(|what| {
        fit_err(FitError::Image {
            image: kernel.name.clone(),
            what: what.into(),
        })
    })?;
    let mut inner = entry.clone();
    inner.kernel = Some(name(kernel));
    let mut parts = alloc::vec![(name(kernel), kernel.data.clone())];
    if let Some(r) = &opened.ramdisk {
        if inner.initrds.is_empty() {
            inner.initrds = alloc::vec![name(r)];
            parts.push((name(r), r.data.clone()));
        }
    }
    if let Some(f) = &opened.fdt {
        if inner.fdt.is_none() && inner.fdtdir.is_none() {
            inner.fdt = Some(name(f));
            parts.push((name(f), f.data.clone()));
        }
    }
    // With a key required the entry named nothing outside the FIT (refused above), and nothing
    // outside it is read.
    let mut no_files = NoFiles;
    let mut fit_files = FitFiles {
        buf: bytes,
        parts,
        outer: if required { &mut no_files } else { files },
    };
    let kname = name(kernel);
    let mut p = prepare_files(
        &mut fit_files,
        staging,
        platform,
        mem,
        dtb,
        cfg_path,
        &inner,
        &kname,
        false,
    )?;
    p.verified = opened.verified.is_some();
    Ok(p)
}

/// No files: a FIT in RAM (`bootm`) brings all it boots.
struct NoFiles;

impl Files for NoFiles {
    fn size(&mut self, _: &str) -> Result<u64, FileError> {
        Err(FileError::Fs(fs::Error::NotFound))
    }
    fn read_into(&mut self, _: &str, _: &mut [u8]) -> Result<usize, FileError> {
        Err(FileError::Fs(fs::Error::NotFound))
    }
}

/// `bootm`: configuration `conf` of the FIT in `fit` (its first `len` bytes, copied from RAM
/// at `name`), with `bootargs`, planned as [`prepare`] plans an entry's FIT.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the flow
pub fn prepare_fit_image<S: Staging>(
    staging: &mut S,
    platform: &mut dyn Platform,
    mem: &MemoryView,
    dtb: &[u8],
    label: &str,
    bootargs: &str,
    fit: S::Buf,
    len: usize,
    name: &str,
    conf: Option<&str>,
) -> Result<Prepared<S::Buf>, BootError> {
    let entry = Entry {
        label: label.into(),
        kernel: Some(name.into()),
        append: Some(bootargs.into()),
        ..Entry::default()
    };
    let fit = Loaded { buf: fit, len };
    prepare_fit(
        &mut NoFiles,
        staging,
        platform,
        mem,
        dtb,
        "/",
        &entry,
        name,
        fit,
        conf,
    )
}

/// [`prepare`] for a kernel at `kpath` that is not (or not known to be) a FIT; `allow_fit`:
/// a file that turns out to be one goes to [`prepare_fit`].
#[allow(clippy::too_many_arguments)] // each is a distinct input of the flow
fn prepare_files<S: Staging>(
    files: &mut dyn Files,
    staging: &mut S,
    platform: &mut dyn Platform,
    mem: &MemoryView,
    dtb: &[u8],
    cfg_path: &str,
    entry: &Entry,
    kpath: &str,
    allow_fit: bool,
) -> Result<Prepared<S::Buf>, BootError> {
    // Everything the placement needs comes first (the device tree and the files' sizes), so
    // each file can be read straight to where it runs.
    let tree = entry_dtb(files, platform, dtb, cfg_path, entry)?;
    let dtb = &tree[..];
    let initrd_paths: Vec<String> = entry
        .initrds
        .iter()
        .map(|p| extlinux::resolve_path(cfg_path, p))
        .collect();
    let sizes = Sizes {
        initrd: total_size(files, &initrd_paths)?,
        dtb: dtb_room(dtb.len()),
    };
    let (file, file_at) = read_kernel(files, staging, platform, mem, kpath, sizes)?;
    if allow_fit && fit::is_fit(file.bytes()) {
        return prepare_fit(
            files, staging, platform, mem, dtb, cfg_path, entry, kpath, file, None,
        );
    }
    let (kernel, header, placement) =
        kernel_image(staging, platform, mem, sizes, kpath, file, file_at)?;
    let initrd = if initrd_paths.is_empty() {
        None
    } else {
        let placed = placement
            .initrd
            .and_then(|r| Range::from_len(r.start(), sizes.initrd).ok())
            .and_then(|r| staging.at(r));
        Some(load_files(
            files,
            staging,
            platform,
            &initrd_paths,
            "initrd",
            sizes.initrd,
            placed,
        )?)
    };
    let seeds = platform.random_seeds();
    if seeds.is_some() {
        log::info!("kaslr-seed and rng-seed set from the CPU's random source");
    } else {
        log::info!(
            "no random source: kaslr-seed/rng-seed left as the incoming device tree has them"
        );
    }
    let request = PlanRequest {
        label: &entry.label,
        header: &header,
        kernel: Source {
            addr: staging.addr(&kernel.buf),
            len: kernel.len as u64,
        },
        initrd: initrd.as_ref().map(|i| Source {
            addr: staging.addr(&i.buf),
            len: i.len as u64,
        }),
        dtb,
        bootargs: entry.append.as_deref().unwrap_or(""),
        seeds: seeds.as_ref(),
        placement: Some(placement),
    };
    let mut prepared = plan(staging, mem, &request)?;
    // The buffers the segments copy from (or that are already in place): they must live until
    // the jump.
    prepared.buffers.insert(0, kernel.buf);
    if let (Some(i), Some(_)) = (initrd, prepared.placement.initrd) {
        prepared.buffers.insert(1, i.buf);
    }
    Ok(prepared)
}

/// Reads a device tree file (at most the 2 MiB the boot protocol allows) into memory.
fn read_dtb(files: &mut dyn Files, path: &str) -> Result<Vec<u8>, BootError> {
    let file_err = |err| BootError::File {
        path: path.into(),
        err,
    };
    let size = files.size(path).map_err(file_err)?;
    if size > MAX_DTB_SIZE {
        return Err(file_err(FileError::Fs(fs::Error::TooLarge {
            size,
            capacity: MAX_DTB_SIZE,
        })));
    }
    let mut buf = alloc::vec![0u8; size as usize];
    let n = files.read_into(path, &mut buf).map_err(file_err)?;
    buf.truncate(n);
    Ok(buf)
}

/// The device tree an entry boots with, before the boot's own fixups, as U-Boot's
/// `label_boot` picks it (`boot/pxe_utils.c`):
/// - `fdt FILE` loads FILE; when it cannot be loaded the entry fails ("Skipping ... for
///   failure retrieving FDT") and the next one is tried.
/// - else `fdtdir DIR` loads `DIR/$fdtfile`, `fdtfile` from the environment or, unlike U-Boot's
///   `$soc-$board.dtb`, from the board's root `compatible` ([`fdtfile_for`]); when that cannot
///   be loaded, or no file is known, the firmware's tree is used, with a note.
/// - else the firmware's tree.
///
/// A named tree keeps the firmware tree's `/memreserve/` entries and `/reserved-memory`
/// nodes and gets the board's own changes. Then `fdtoverlays` are applied in order; one that
/// cannot be loaded or applied is skipped with a one-line error and the tree stays as it was
/// (U-Boot: "Failed to apply overlay ..., skipping"). U-Boot applies overlays only with an
/// `fdt`/`fdtdir` line; kexboot applies them to the firmware's tree too, which on the
/// Raspberry Pi carries the `__symbols__` they need.
fn entry_dtb<'d>(
    files: &mut dyn Files,
    platform: &dyn Platform,
    firmware: &'d [u8],
    cfg_path: &str,
    entry: &Entry,
) -> Result<alloc::borrow::Cow<'d, [u8]>, BootError> {
    use alloc::borrow::Cow;
    let label = &entry.label;
    let named = match (&entry.fdt, &entry.fdtdir) {
        (Some(f), _) => Some((extlinux::resolve_path(cfg_path, f), true)),
        (None, Some(dir)) => {
            let compatible = dt::DtInfo::read(firmware)
                .map(|i| i.compatible)
                .unwrap_or_default();
            let file = platform.fdtfile().or_else(|| fdtfile_for(&compatible));
            match file {
                Some(file) => {
                    let slash = if dir.is_empty() || dir.ends_with('/') {
                        ""
                    } else {
                        "/"
                    };
                    let joined = alloc::format!("{dir}{slash}{file}");
                    Some((extlinux::resolve_path(cfg_path, &joined), false))
                }
                None => {
                    let board = compatible.first().map_or("", String::as_str);
                    log::warn!(
                        "entry '{label}': fdtdir {dir}: no $fdtfile, and no file known for \
                         compatible \"{board}\"; using the firmware's device tree"
                    );
                    None
                }
            }
        }
        (None, None) => None,
    };
    let mut tree = Cow::Borrowed(firmware);
    if let Some((path, required)) = named {
        let loaded = read_dtb(files, &path).and_then(|user| {
            let dtb_err = |err| BootError::DtbFile {
                path: path.clone(),
                err,
            };
            let kept = dt::keep_firmware_memory(firmware, &user).map_err(dtb_err)?;
            platform.own_fixups(&kept).map_err(dtb_err)
        });
        match loaded {
            Ok(t) => {
                log::info!("entry '{label}': device tree {path}");
                tree = Cow::Owned(t);
            }
            Err(e) if required => return Err(e),
            Err(e) => log::warn!("entry '{label}': fdtdir: {e}; using the firmware's device tree"),
        }
    }
    for o in &entry.fdtoverlays {
        let path = extlinux::resolve_path(cfg_path, o);
        let applied = read_dtb(files, &path).and_then(|overlay| {
            dt::apply_overlay(&tree, &overlay).map_err(|err| BootError::DtbFile {
                path: path.clone(),
                err,
            })
        });
        match applied {
            Ok(t) => {
                log::info!("entry '{label}': applied overlay {path}");
                tree = Cow::Owned(t);
            }
            Err(e) => log::error!("entry '{label}': overlay skipped: {e}"),
        }
    }
    Ok(tree)
}

/// Where a boot image's bytes are before the jump: a staging buffer, or RAM a `load` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub addr: u64,
    /// Bytes of image there.
    pub len: u64,
}

/// What one boot is made of, wherever its files came from (the extlinux flow, PXE, `booti`).
pub struct PlanRequest<'a> {
    /// Names the boot in logs and in the handoff record.
    pub label: &'a str,
    pub header: &'a ImageHeader,
    pub kernel: Source,
    pub initrd: Option<Source>,
    /// The device tree to hand over, before the boot's own fixups (bootargs, initrd, seeds).
    pub dtb: &'a [u8],
    pub bootargs: &'a str,
    /// `(kaslr-seed, rng-seed)`, when there is a random source.
    pub seeds: Option<&'a (u64, [u8; 64])>,
    /// Where everything goes, when the caller already placed it (the extlinux flow places
    /// before it reads, to read files in place) for this header, these lengths and a DTB room
    /// of [`dtb_room`]; `None`: [`plan`] places.
    pub placement: Option<Placement>,
}

/// The one boot-plan builder: places the kernel, initrd and DTB per the arm64 boot protocol,
/// fixes the device tree up (bootargs, initrd, seeds), checks that the fixed-up tree still fits
/// its place, stages it, and returns the relocator's segments. The kernel segment copies
/// `min(kernel.len, image_size)` bytes: past `image_size` nothing is part of the image.
/// `buffers` of the result holds only the staged DTB; the caller adds the buffers its sources
/// live in.
pub fn plan<S: Staging>(
    staging: &mut S,
    mem: &MemoryView,
    req: &PlanRequest,
) -> Result<Prepared<S::Buf>, BootError> {
    let initrd_len = req.initrd.map_or(0, |i| i.len);
    let placement = match req.placement {
        Some(p) => p,
        None => place::place(
            mem.ram,
            mem.avoid,
            req.header,
            initrd_len,
            dtb_room(req.dtb.len()),
        )
        .map_err(BootError::Placement)?,
    };
    let fixups = Fixups {
        bootargs: Some(req.bootargs),
        initrd: placement
            .initrd
            .map(|r| Range::from_len_saturating(r.start(), initrd_len)),
        kaslr_seed: req.seeds.map(|s| s.0),
        rng_seed: req.seeds.map(|s| &s.1[..]),
        extra_reserved: &[],
        reserved_nodes: &[],
        cpu_props: &[],
    };
    let new_dtb = dt::fixup(req.dtb, &fixups).map_err(BootError::Dtb)?;
    if new_dtb.len() as u64 > placement.dtb.len() {
        return Err(BootError::Dtb(kexboot_loader::Error::DtbTooLarge {
            size: new_dtb.len() as u64,
        }));
    }
    // The tree is written where it goes when that is free and no source lies there (`booti`'s
    // sources are RAM a `load` wrote, which the relocator reads only at the jump).
    let sources: Vec<Range> = [Some(req.kernel), req.initrd]
        .into_iter()
        .flatten()
        .filter_map(|s| Range::from_len(s.addr, s.len).ok())
        .collect();
    let placed = Range::from_len(placement.dtb.start(), new_dtb.len() as u64)
        .ok()
        .filter(|r| !sources.iter().any(|s| s.overlaps(r)))
        .and_then(|r| staging.at(r));
    let mut dtb_buf = match placed {
        Some(b) => b,
        None => alloc_for(staging, "device tree", new_dtb.len() as u64)?,
    };
    dtb_buf.as_mut()[..new_dtb.len()].copy_from_slice(&new_dtb);

    let seg = |src: Source, dst: &Range| Segment {
        src: src.addr,
        len: src.len,
        dst: dst.start(),
        memsz: dst.len(),
    };
    let kernel = Source {
        len: req.kernel.len.min(req.header.image_size()),
        ..req.kernel
    };
    let mut segments = alloc::vec![seg(kernel, &placement.kernel)];
    if let (Some(i), Some(r)) = (req.initrd, &placement.initrd) {
        segments.push(seg(i, r));
    }
    let dtb_src = Source {
        addr: staging.addr(&dtb_buf),
        len: new_dtb.len() as u64,
    };
    segments.push(seg(dtb_src, &placement.dtb));
    let here = |s: &Segment| if s.in_place() { " (in place)" } else { "" };
    let initrd_seg = segments.get(1).filter(|_| segments.len() == 3);
    log::info!(
        "placement: kernel {:#x}-{:#x}{}, initrd {}, dtb {:#x}{}",
        placement.kernel.start(),
        placement.kernel.end(),
        here(&segments[0]),
        match (placement.initrd, initrd_seg) {
            (Some(r), Some(s)) => alloc::format!("{:#x}-{:#x}{}", r.start(), r.end(), here(s)),
            _ => String::from("none"),
        },
        placement.dtb.start(),
        segments.last().map_or("", here)
    );
    Ok(Prepared {
        label: req.label.into(),
        entry: placement.entry,
        dtb: placement.dtb.start(),
        segments,
        placement,
        buffers: alloc::vec![dtb_buf],
        verified: false,
    })
}
