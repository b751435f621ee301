//! U-Boot's `booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]`: an arm64 Image and
//! perhaps an initrd and a device tree already in RAM (put there by `load` or `tftpboot`), read
//! through [`Ram`] (only memory kexboot may read: never a `no-map` region) and planned by the
//! one plan builder, [`flow::plan`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use kexboot_loader::compress::{self, Format};
use kexboot_loader::dt::{Header, FDT_HEADER_LEN};
use kexboot_loader::image::ImageHeader;
use kexboot_loader::{Range, MAX_DTB_SIZE};

use crate::commands::parse_hex;
use crate::flow::{self, BootError, MemoryView, PlanRequest, Prepared, Source, Staging};

/// Bytes of an arm64 Image header.
const IMAGE_HEADER_LEN: u64 = 64;
/// The label `booti` boots under (logs, the handoff record).
pub const LABEL: &str = "booti";
pub const USAGE: &str = "usage: booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]";

/// RAM as a command may read it.
pub trait Ram {
    /// The bytes of `r`, or `None` when any of it is not RAM kexboot may read.
    fn read(&self, r: Range) -> Option<&[u8]>;
}

/// RAM a command may write: free memory only (never kexboot's own, never `no-map`).
pub trait RamMut: Ram {
    /// The bytes of `r` to write, or `None` when any of it is not free RAM.
    fn write(&mut self, r: Range) -> Option<&mut [u8]>;
}

/// U-Boot's names for where `booti` decompresses a compressed Image and how many bytes of it
/// it reads.
pub const COMP_ADDR_VAR: &str = "kernel_comp_addr_r";
pub const COMP_SIZE_VAR: &str = "kernel_comp_size";
/// U-Boot's bound on the decompressed size: ten times `kernel_comp_size`.
pub const COMP_MAX_RATIO: u64 = 10;

/// A compressed kernel `booti` decompressed to `kernel_comp_addr_r`.
#[derive(Debug, PartialEq, Eq)]
pub struct Decompressed {
    pub format: Format,
    /// `kernel_comp_addr_r`: where the Image now is.
    pub addr: u64,
    /// Bytes read at the kernel address (`kernel_comp_size`) and bytes written.
    pub compressed: u64,
    pub len: usize,
}

/// kexboot's own changes to a device tree the person names (`OwnFixups` in the firmware).
pub type OwnFixups<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, kexboot_loader::Error> + 'a;

/// Why `booti` did not boot.
#[derive(Debug)]
pub enum Error {
    Usage,
    NotHex(String),
    /// The kernel's header address is not readable RAM.
    KernelAddr(u64),
    /// The kernel's `image_size` bytes are not all readable RAM.
    KernelBody(Range),
    /// The initrd is not readable RAM.
    Initrd(Range),
    /// The fdt's header address is not readable RAM.
    FdtAddr(u64),
    /// The fdt header's `totalsize` runs past readable RAM.
    FdtOutOfRam,
    Kernel(kexboot_loader::Error),
    /// kexboot's own fixups refused the tree at `addr`.
    Fdt {
        addr: u64,
        err: kexboot_loader::Error,
    },
    Plan(BootError),
    /// The kernel is compressed (`format`) but `kernel_comp_addr_r` or `kernel_comp_size` is
    /// not set (or 0), as U-Boot requires.
    CompVars(Format),
    /// `kernel_comp_size` bytes at the kernel address are not all readable RAM.
    CompSrc(Range),
    /// `kernel_comp_addr_r`, for as many bytes as the kernel may decompress to, is not free RAM.
    CompDst(Range),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage => f.write_str(USAGE),
            Error::NotHex(s) => write!(f, "booti: '{s}' is not a hex address"),
            Error::KernelAddr(a) => write!(
                f,
                "booti: {a:#x} is not in RAM kexboot may read (no-map memory is never touched)"
            ),
            Error::KernelBody(r) => write!(
                f,
                "booti: kernel {:#x}-{:#x} (image_size) is not in RAM kexboot may read",
                r.start(),
                r.end()
            ),
            Error::Initrd(r) => write!(
                f,
                "booti: initrd {:#x}-{:#x} is not in RAM kexboot may read",
                r.start(),
                r.end()
            ),
            Error::FdtAddr(a) => write!(f, "booti: fdt {a:#x} is not in RAM kexboot may read"),
            Error::FdtOutOfRam => f.write_str("booti: fdt runs out of RAM"),
            Error::Kernel(e) => write!(f, "booti: {e}"),
            Error::Fdt { addr, err } => write!(f, "booti: device tree at {addr:#x}: {err}"),
            Error::Plan(e) => write!(f, "booti: {e}"),
            Error::CompVars(format) => write!(
                f,
                "booti: the kernel is {} compressed: {COMP_ADDR_VAR} or {COMP_SIZE_VAR} is not \
                 provided (where to decompress it, and its compressed size)",
                format.name()
            ),
            Error::CompSrc(r) => write!(
                f,
                "booti: compressed kernel {:#x}-{:#x} ({COMP_SIZE_VAR}) is not in RAM kexboot may read",
                r.start(),
                r.end()
            ),
            Error::CompDst(r) => write!(
                f,
                "booti: {COMP_ADDR_VAR} {:#x}-{:#x} (room to decompress the kernel to) is not free RAM",
                r.start(),
                r.end()
            ),
        }
    }
}

fn hex(s: &str) -> Result<u64, Error> {
    parse_hex(s).ok_or_else(|| Error::NotHex(s.into()))
}

fn range(start: u64, len: u64) -> Result<Range, Error> {
    Range::from_len(start, len).map_err(|_| Error::Usage)
}

/// When the kernel at `argv[1]` is compressed (gzip, lz4, zstd, judged by content), decompresses
/// it as U-Boot's `booti` does: `kernel_comp_size` bytes from the kernel address into
/// `kernel_comp_addr_r`, at most ten times `kernel_comp_size` bytes (fewer when its Image header's
/// `image_size` says so). `comp_addr` and `comp_size` are those variables (`None` or 0: unset).
/// `Ok(None)`: the kernel is not compressed. The compressed bytes are copied to the heap first,
/// so the two areas may overlap.
pub fn decompress(
    argv: &[String],
    ram: &mut dyn RamMut,
    comp_addr: Option<u64>,
    comp_size: Option<u64>,
) -> Result<Option<Decompressed>, Error> {
    let kaddr = hex(argv.get(1).ok_or(Error::Usage)?)?;
    let head = ram
        .read(range(kaddr, MAGIC_LEN)?)
        .ok_or(Error::KernelAddr(kaddr))?;
    let format = compress::detect(head);
    if !format.is_compressed() {
        return Ok(None);
    }
    let (Some(addr), Some(size)) = (comp_addr.filter(|&a| a != 0), comp_size.filter(|&s| s != 0))
    else {
        return Err(Error::CompVars(format));
    };
    let src_range = range(kaddr, size)?;
    let src = ram
        .read(src_range)
        .ok_or(Error::CompSrc(src_range))?
        .to_vec();
    // The Image header's image_size, not the stream's size fields: bytes past the file (when
    // kernel_comp_size is larger than it) make gzip's ISIZE trailer meaningless.
    let mut limit = size.saturating_mul(COMP_MAX_RATIO);
    if let Ok(bound) = compress::image_bound(format, &src) {
        limit = limit.min(bound);
    }
    let dst_range = range(addr, limit)?;
    let dst = ram.write(dst_range).ok_or(Error::CompDst(dst_range))?;
    let len = compress::decompress_into(format, &src, dst).map_err(Error::Kernel)?;
    Ok(Some(Decompressed {
        format,
        addr,
        compressed: size,
        len,
    }))
}

/// Bytes read to judge the kernel's format (the longest magic checked, gzip's or lz4's or zstd's).
const MAGIC_LEN: u64 = 4;

/// What `booti`'s arguments name, checked readable: the kernel's header and where it is, the
/// initrd, and the device tree to start from (`base_dtb` when none is named; a named one goes
/// through `own_fixups`, kexboot's changes to every tree it hands over).
pub struct Args {
    pub header: ImageHeader,
    pub kernel: Source,
    pub initrd: Option<Source>,
    pub dtb: Vec<u8>,
}

/// Reads and checks `argv`.
pub fn parse(
    argv: &[String],
    ram: &dyn Ram,
    base_dtb: &[u8],
    own_fixups: &OwnFixups,
) -> Result<Args, Error> {
    let kaddr = hex(argv.get(1).ok_or(Error::Usage)?)?;
    let head = ram
        .read(range(kaddr, IMAGE_HEADER_LEN)?)
        .ok_or(Error::KernelAddr(kaddr))?;
    let header = ImageHeader::parse(head).map_err(Error::Kernel)?;
    // The plan copies up to `image_size` bytes from there (the file's length is not known
    // here): all of them must be readable.
    let body = range(kaddr, header.image_size())?;
    if ram.read(body).is_none() {
        return Err(Error::KernelBody(body));
    }
    let initrd = match argv.get(2).map(String::as_str) {
        None | Some("-") => None,
        Some(spec) => {
            let (a, s) = spec.split_once(':').ok_or(Error::Usage)?;
            let r = range(hex(a)?, hex(s)?)?;
            if ram.read(r).is_none() {
                return Err(Error::Initrd(r));
            }
            Some(Source {
                addr: r.start(),
                len: r.len(),
            })
        }
    };
    let dtb = match argv.get(3) {
        None => base_dtb.to_vec(),
        Some(a) => {
            let a = hex(a)?;
            let h = range(a, FDT_HEADER_LEN as u64)?;
            let hdr = ram.read(h).ok_or(Error::FdtAddr(a))?;
            let fdt_err = |err| Error::Fdt { addr: a, err };
            let len = Header::parse(hdr, MAX_DTB_SIZE as usize).map_err(fdt_err)?;
            let user = ram
                .read(range(a, len.total_size() as u64)?)
                .ok_or(Error::FdtOutOfRam)?;
            own_fixups(user).map_err(|err| Error::Fdt { addr: a, err })?
        }
    };
    Ok(Args {
        kernel: Source {
            addr: kaddr,
            len: header.image_size(),
        },
        header,
        initrd,
        dtb,
    })
}

/// The boot plan for `args`, with `bootargs`.
pub fn plan<S: Staging>(
    args: &Args,
    staging: &mut S,
    mem: &MemoryView,
    bootargs: &str,
) -> Result<Prepared<S::Buf>, Error> {
    let request = PlanRequest {
        label: LABEL,
        header: &args.header,
        kernel: args.kernel,
        initrd: args.initrd,
        dtb: &args.dtb,
        bootargs,
        seeds: None,
        placement: None,
    };
    flow::plan(staging, mem, &request).map_err(Error::Plan)
}
