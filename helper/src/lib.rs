//! kexboot-reboot: the Linux-side half of kexboot's warm reboot, as host-testable logic.
//!
//! [`build_plan`] turns the bytes of kexboot.bin, `/sys/firmware/fdt` and `/proc/iomem` into the
//! three `kexec_load` segments (kexboot, its DTB, a purgatory page) and the entry point; the
//! binary (`main.rs`) only reads the files and makes the system calls. Nothing here touches the
//! system, so every step runs in host tests.

pub mod args;
pub mod image;
pub mod iomem;
pub mod place;
pub mod purgatory;

use std::fmt;
use std::io;
use std::path::PathBuf;

use kexboot_loader::dt::{fixup, DtInfo, Fixups};
use kexboot_loader::Range;

pub use args::{bootargs, parse_args, ArgError, Command, Options, UsageError};
pub use image::{ImageProblem, KexbootImage};
pub use iomem::{Iomem, IomemError};
pub use place::{place, Layout, PlaceError};

/// Where Linux exposes the DTB it booted with.
pub const SYS_FDT: &str = "/sys/firmware/fdt";
/// Where Linux lists physical memory.
pub const PROC_IOMEM: &str = "/proc/iomem";

/// Exit status for a malformed command line.
pub const EXIT_USAGE: i32 = 1;
/// Exit status for input that was refused (image, DT, iomem, arguments, no room).
pub const EXIT_REFUSED: i32 = 2;
/// Exit status for a system call or privilege failure.
pub const EXIT_SYSCALL: i32 = 3;

/// Everything that stops `kexboot-reboot`; each variant says what and where.
#[derive(Debug)]
pub enum Error {
    /// A file could not be read.
    Read { path: PathBuf, err: io::Error },
    /// The image is not a kexboot image this helper can load.
    NotKexboot { path: PathBuf, why: ImageProblem },
    /// `--entry`/`--append` cannot be passed on.
    Args(ArgError),
    /// `/sys/firmware/fdt` was refused or could not be rewritten.
    Dt(kexboot_loader::Error),
    /// `/proc/iomem` was unusable.
    Iomem(IomemError),
    /// No room for the segments.
    Place(PlaceError),
    /// `sysconf(_SC_PAGESIZE)` failed.
    PageSize,
    /// `kexec_load` failed with `errno`.
    Kexec { errno: i32 },
    /// `reboot(LINUX_REBOOT_CMD_KEXEC)` returned, with `errno`.
    Reboot { errno: i32 },
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Iomem(IomemError::NotRoot)
            | Error::PageSize
            | Error::Kexec { .. }
            | Error::Reboot { .. } => EXIT_SYSCALL,
            _ => EXIT_REFUSED,
        }
    }
}

fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

/// The message for a failed `kexec_load`.
pub fn kexec_error_message(errno: i32) -> String {
    match errno {
        libc::EPERM => "kexec_load: permission denied: run as root (needs CAP_SYS_BOOT)".into(),
        libc::ENOSYS => "kexec_load: this kernel has no kexec (CONFIG_KEXEC)".into(),
        // arm64's machine_kexec_prepare refuses with EBUSY while CPUs it cannot take offline
        // (started through a spin-table) are online; the kexec mutex being held is the other case.
        libc::EBUSY => "kexec_load: refused by the kernel (EBUSY): CPUs it cannot take offline \
                        (spin-table: \"CPUs are stuck in the kernel\" in dmesg), or another \
                        kexec load in progress"
            .into(),
        _ => format!("kexec_load: {}", errno_text(errno)),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, err } if err.kind() == io::ErrorKind::NotFound => {
                write!(f, "{}: no such file", path.display())?;
                if path.as_os_str() == args::DEFAULT_IMAGE {
                    write!(f, " (the default image; give another with --image PATH)")?;
                }
                if path.as_os_str() == SYS_FDT {
                    write!(f, " (Linux was not booted with a device tree)")?;
                }
                Ok(())
            }
            Error::Read { path, err } => write!(f, "cannot read {}: {err}", path.display()),
            Error::NotKexboot { path, why } => {
                write!(f, "{}: not a kexboot image: {why}", path.display())
            }
            Error::Args(e) => write!(f, "{e}"),
            Error::Dt(e) => write!(f, "{SYS_FDT}: {e}"),
            Error::Iomem(e) => write!(f, "{e}"),
            Error::Place(e) => write!(f, "{e}"),
            Error::PageSize => write!(f, "sysconf(_SC_PAGESIZE) failed"),
            Error::Kexec { errno } => write!(f, "{}", kexec_error_message(*errno)),
            Error::Reboot { errno } => write!(
                f,
                "reboot(LINUX_REBOOT_CMD_KEXEC) failed: {} (kexboot stays loaded)",
                errno_text(*errno)
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The inputs of [`build_plan`], all already read.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// Path of the image, for messages.
    pub image_path: &'a std::path::Path,
    /// The whole kexboot.bin.
    pub image: &'a [u8],
    /// `/sys/firmware/fdt`.
    pub fdt: &'a [u8],
    /// `/proc/iomem`.
    pub iomem: &'a str,
    /// `--entry`.
    pub entry: Option<&'a str>,
    /// `--append`.
    pub append: Option<&'a str>,
    /// The running kernel's page size.
    pub page: u64,
}

/// One `kexec_load` segment: bytes to copy to `dest` (the rest of `dest` is zero-filled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// What it is, for messages.
    pub name: &'static str,
    /// The bytes (`bufsz` = `buf.len()`, never above `dest.len()`).
    pub buf: &'a [u8],
    /// Page-aligned destination; its length is `memsz`.
    pub dest: Range,
}

/// Everything `kexec_load` needs, computed before anything is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The validated image.
    pub image: KexbootImage,
    /// The image bytes.
    pub image_bytes: &'a [u8],
    /// `/chosen/bootargs` of `dtb`.
    pub bootargs: String,
    /// The DTB for kexboot.
    pub dtb: Vec<u8>,
    /// The purgatory code and literals.
    pub purgatory: [u8; purgatory::PURGATORY_LEN],
    /// Where each goes.
    pub layout: Layout,
}

impl Plan<'_> {
    /// The kexec entry point: the purgatory page.
    pub fn entry(&self) -> u64 {
        self.layout.purgatory.start()
    }

    /// The three segments, in address order of creation: kexboot, DTB, purgatory.
    pub fn segments(&self) -> [Segment<'_>; 3] {
        [
            Segment {
                name: "kexboot",
                buf: self.image_bytes,
                dest: self.layout.kexboot,
            },
            Segment {
                name: "dtb",
                buf: &self.dtb,
                dest: self.layout.dtb,
            },
            Segment {
                name: "purgatory",
                buf: &self.purgatory,
                dest: self.layout.purgatory,
            },
        ]
    }
}

impl fmt::Display for Plan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "image      {} bytes, image_size {:#x}, text_offset {:#x}, handoff version {}",
            self.image.file_len,
            self.image.image_size,
            self.image.text_offset,
            self.image.handoff_version
        )?;
        for s in self.segments() {
            writeln!(
                f,
                "{:<10} {:#x}..{:#x}  memsz {:#x}, bufsz {:#x}",
                s.name,
                s.dest.start(),
                s.dest.end(),
                s.dest.len(),
                s.buf.len()
            )?;
        }
        writeln!(
            f,
            "entry      {:#x} (purgatory: x0 = {:#x}, x1..x3 = 0, br {:#x})",
            self.entry(),
            self.layout.dtb.start(),
            self.layout.kexboot_entry()
        )?;
        write!(f, "bootargs   {:?}", self.bootargs)
    }
}

/// Validates everything and computes the plan; loads nothing.
pub fn build_plan<'a>(i: &Inputs<'a>) -> Result<Plan<'a>, Error> {
    let image = KexbootImage::validate(i.image).map_err(|why| Error::NotKexboot {
        path: i.image_path.to_path_buf(),
        why,
    })?;
    let bootargs = bootargs(i.entry, i.append).map_err(Error::Args)?;
    let info = DtInfo::parse(i.fdt).map_err(Error::Dt)?;
    let dtb = fixup(
        i.fdt,
        &Fixups {
            bootargs: Some(&bootargs),
            initrd: None,
            ..Fixups::default()
        },
    )
    .map_err(Error::Dt)?;
    let mem = Iomem::parse(i.iomem).map_err(Error::Iomem)?;
    // iomem already shows reserved memory as nested "reserved"; the DT's /memreserve/ and
    // /reserved-memory are avoided as well in case a kernel does not list them.
    let mut avoid = mem.avoid;
    avoid.extend(info.reserved.iter().copied());
    let layout = place(&mem.ram, &avoid, &image, dtb.len() as u64, i.page).map_err(Error::Place)?;
    Ok(Plan {
        image,
        image_bytes: i.image,
        bootargs,
        dtb,
        purgatory: purgatory::encode(layout.dtb.start(), layout.kexboot_entry()),
        layout,
    })
}
