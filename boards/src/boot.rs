//! The boot flow: find the boot file system, read `extlinux.conf`, and try its entries in
//! order (default first). Each entry becomes a list of segments (kernel, initrd, DTB) that goes
//! to the one relocator; any failure is printed with the file and what was wrong, and the next
//! entry is tried, then the prompt.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use kexboot_fs::{open_boot_fs, FatFs, PartitionDevice};
use kexboot_loader::compress::{self, Format};
use kexboot_loader::dt::{self, DtInfo, Fixups};
use kexboot_loader::image::ImageHeader;
use kexboot_loader::mem::Range;
use kexboot_loader::place;
use kexboot_menu::extlinux::{self, Entry};
use kexboot_relocate as relocate;

use crate::arch::regs;
use crate::heap::{self, PageBuf};
use crate::memory::MemoryLayout;
use crate::timer::{mb_per_s, Stopwatch};
use crate::virtio::VirtioBlk;
use crate::shell;

/// Where U-Boot's distro boot and Debian's u-boot-menu put the config.
const CONFIG_PATHS: [&str; 2] = ["/extlinux/extlinux.conf", "/boot/extlinux/extlinux.conf"];
const MAX_CONFIG: usize = 1 << 20;
/// Free heap kept back when sizing a buffer for a file, so the boot can still proceed.
const HEAP_MARGIN: usize = 8 << 20;
/// The fixed-up DTB may grow by this much over the incoming one (bootargs, initrd, seeds).
const DTB_GROWTH: u64 = 64 << 10;

type BootFs = FatFs<PartitionDevice<VirtioBlk>>;

/// Why an entry could not be booted.
#[derive(Debug)]
pub enum BootError {
    NoKernel,
    File { path: String, err: kexboot_fs::Error },
    NoMemory { path: String, size: u64 },
    Kernel { path: String, err: kexboot_loader::Error },
    Unsupported { path: String, what: &'static str },
    Placement(kexboot_loader::Error),
    Dtb(kexboot_loader::Error),
    Relocate(relocate::Error),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKernel => write!(f, "entry has no 'kernel'/'linux' line"),
            Self::File { path, err } => write!(f, "{path}: {err}"),
            Self::NoMemory { path, size } => {
                write!(f, "{path}: {size} bytes do not fit in free memory ({} free)", heap::free_bytes())
            }
            Self::Kernel { path, err } => write!(f, "{path}: {err}"),
            Self::Unsupported { path, what } => write!(f, "{path}: {what} is not supported"),
            Self::Placement(e) => write!(f, "cannot place the boot images: {e}"),
            Self::Dtb(e) => write!(f, "device tree: {e}"),
            Self::Relocate(e) => write!(f, "relocation plan refused: {e}"),
        }
    }
}

pub fn run(layout: &MemoryLayout, dtb: &[u8], disks: Vec<VirtioBlk>, info: &DtInfo) -> ! {
    let mut fs = None;
    for disk in disks {
        let base = disk.base;
        match open_boot_fs(disk, None) {
            Ok((part, f)) => {
                log::info!(
                    "disk at {:#x}: partition {} ({} MiB), FAT file system",
                    base,
                    part.number,
                    part.num_sectors >> 11
                );
                fs = Some(f);
                break;
            }
            Err(e) => log::warn!("disk at {base:#x}: no boot file system: {e}"),
        }
    }
    loop {
        match fs.as_mut() {
            Some(fs) => boot_from_config(fs, layout, dtb),
            None => log::error!("no disk with a FAT boot partition"),
        }
        println!("kexboot: no entry could be booted");
        shell::prompt(info);
    }
}

fn read_config(fs: &mut BootFs) -> Option<(&'static str, String)> {
    for path in CONFIG_PATHS {
        match fs.read_file(path, MAX_CONFIG) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(s) => return Some((path, s)),
                Err(e) => {
                    log::error!("{path}: not UTF-8 text (at byte {})", e.utf8_error().valid_up_to());
                }
            },
            Err(kexboot_fs::Error::NotFound) => {}
            Err(e) => log::error!("{path}: {e}"),
        }
    }
    None
}

/// Tries every entry; returns only when none could be booted.
fn boot_from_config(fs: &mut BootFs, layout: &MemoryLayout, dtb: &[u8]) {
    let Some((path, text)) = read_config(fs) else {
        log::error!("no {} or {} on the boot partition", CONFIG_PATHS[0], CONFIG_PATHS[1]);
        return;
    };
    let config = match extlinux::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{path}: {e}");
            return;
        }
    };
    for note in &config.notes {
        log::warn!("{path}: {note}");
    }
    log::info!("{path}: {} entries", config.entries.len());
    for (n, &i) in config.boot_order().iter().enumerate() {
        let entry = &config.entries[i];
        if n > 0 {
            log::info!("trying next entry '{}'", entry.label);
        }
        let err = boot_entry(fs, path, entry, layout, dtb);
        log::error!("entry '{}' ({}): {}", entry.label, entry.title(), err);
    }
}

/// A file read into a page-aligned heap buffer.
struct Loaded {
    buf: PageBuf,
    len: usize,
}

impl Loaded {
    fn bytes(&self) -> &[u8] {
        &self.buf.as_slice()[..self.len]
    }
}

fn alloc_for(path: &str, size: u64) -> Result<PageBuf, BootError> {
    let too_big = || BootError::NoMemory { path: path.into(), size };
    let n = usize::try_from(size).map_err(|_| too_big())?;
    if n.saturating_add(HEAP_MARGIN) > heap::free_bytes() {
        return Err(too_big());
    }
    PageBuf::new(n).ok_or_else(too_big)
}

fn load_file(fs: &mut BootFs, path: &str) -> Result<Loaded, BootError> {
    let file_err = |err| BootError::File { path: path.into(), err };
    let info = fs.stat(path).map_err(file_err)?;
    let mut buf = alloc_for(path, info.size)?;
    let sw = Stopwatch::start();
    let len = fs.read_file_into(path, buf.as_mut_slice()).map_err(file_err)?;
    let us = sw.elapsed_us();
    log::info!("loaded {path}: {len} bytes in {} ms ({} MB/s)", us / 1000, mb_per_s(len as u64, us));
    Ok(Loaded { buf, len })
}

/// Turns a kernel file into an Image in a page-aligned buffer: gzip is detected by content.
fn kernel_image(path: &str, file: Loaded) -> Result<(Loaded, ImageHeader), BootError> {
    let kernel_err = |err| BootError::Kernel { path: path.into(), err };
    let image = match compress::detect(file.bytes()) {
        Format::Gzip => {
            let hint = compress::gzip_size_hint(file.bytes()).unwrap_or(0);
            if hint == 0 {
                return Err(kernel_err(kexboot_loader::Error::Truncated { what: "gzip trailer" }));
            }
            let mut out = alloc_for(path, u64::from(hint))?;
            let sw = Stopwatch::start();
            let limit = hint as usize;
            let len = compress::gunzip_into(file.bytes(), &mut out.as_mut_slice()[..limit])
                .map_err(kernel_err)?;
            let us = sw.elapsed_us();
            log::info!(
                "decompressed {path}: {} -> {len} bytes in {} ms ({} MB/s)",
                file.len,
                us / 1000,
                mb_per_s(len as u64, us)
            );
            drop(file);
            Loaded { buf: out, len }
        }
        Format::Image => file,
        Format::Unknown => {
            if let Some(what) = compress::unsupported_compression(file.bytes()) {
                return Err(BootError::Unsupported { path: path.into(), what });
            }
            file
        }
    };
    let header = ImageHeader::parse(image.bytes()).map_err(kernel_err)?;
    Ok((image, header))
}

fn load_initrds(fs: &mut BootFs, cfg: &str, entry: &Entry) -> Result<Option<Loaded>, BootError> {
    if entry.initrds.is_empty() {
        return Ok(None);
    }
    let mut sizes = Vec::new();
    let mut total = 0u64;
    for name in &entry.initrds {
        let path = extlinux::resolve_path(cfg, name);
        let size = fs.stat(&path).map_err(|err| BootError::File { path: path.clone(), err })?.size;
        total = total.saturating_add(size);
        sizes.push((path, size));
    }
    let first = sizes.first().map(|(p, _)| p.clone()).unwrap_or_default();
    let mut buf = alloc_for(&first, total)?;
    let mut off = 0usize;
    let sw = Stopwatch::start();
    for (path, _) in &sizes {
        let dst = &mut buf.as_mut_slice()[off..total as usize];
        off += fs
            .read_file_into(path, dst)
            .map_err(|err| BootError::File { path: path.clone(), err })?;
    }
    let us = sw.elapsed_us();
    log::info!("loaded initrd {}: {off} bytes in {} ms ({} MB/s)", first, us / 1000, mb_per_s(off as u64, us));
    Ok(Some(Loaded { buf, len: off }))
}

fn random_seeds() -> Option<(u64, [u8; 64])> {
    let kaslr = regs::hw_random()?;
    let mut rng = [0u8; 64];
    for chunk in rng.chunks_mut(8) {
        chunk.copy_from_slice(&regs::hw_random()?.to_le_bytes());
    }
    Some((kaslr, rng))
}

fn seg(src: u64, len: usize, dst: &Range) -> relocate::Segment {
    relocate::Segment { src, len: len as u64, dst: dst.start, memsz: dst.len() }
}

/// Loads everything an entry names and boots it; returns only on failure.
fn boot_entry(
    fs: &mut BootFs,
    cfg: &str,
    entry: &Entry,
    layout: &MemoryLayout,
    dtb: &[u8],
) -> BootError {
    match prepare_and_boot(fs, cfg, entry, layout, dtb) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn prepare_and_boot(
    fs: &mut BootFs,
    cfg: &str,
    entry: &Entry,
    layout: &MemoryLayout,
    dtb: &[u8],
) -> Result<Never, BootError> {
    log::info!("booting entry '{}' ({})", entry.label, entry.title());
    let kernel_name = entry.kernel.as_deref().ok_or(BootError::NoKernel)?;
    let kpath = extlinux::resolve_path(cfg, kernel_name);
    let file = load_file(fs, &kpath)?;
    let (kernel, header) = kernel_image(&kpath, file)?;
    if entry.fdt.is_some() || entry.fdtdir.is_some() {
        log::warn!("entry '{}': fdt/fdtdir ignored, booting with the firmware's device tree", entry.label);
    }
    let initrd = load_initrds(fs, cfg, entry)?;
    let initrd_len = initrd.as_ref().map_or(0, |i| i.len as u64);

    let avoid = layout.avoid();
    let dtb_room = (dtb.len() as u64 + DTB_GROWTH).min(kexboot_loader::MAX_DTB_SIZE);
    let placement = place::place(&layout.ram, &avoid, &header, initrd_len, dtb_room)
        .map_err(BootError::Placement)?;

    let seeds = random_seeds();
    if seeds.is_none() {
        log::info!("no random source (no FEAT_RNG): kaslr-seed/rng-seed left as the firmware's DT has them");
    }
    let bootargs = entry.append.as_deref().unwrap_or("");
    let fixups = Fixups {
        bootargs: Some(bootargs),
        initrd: placement.initrd.map(|r| Range { start: r.start, end: r.start + initrd_len }),
        kaslr_seed: seeds.map(|s| s.0),
        rng_seed: seeds.as_ref().map(|s| &s.1[..]),
        extra_reserved: &[],
    };
    let new_dtb = dt::fixup(dtb, &fixups).map_err(BootError::Dtb)?;
    if new_dtb.len() as u64 > placement.dtb.len() {
        return Err(BootError::Dtb(kexboot_loader::Error::DtbTooLarge { size: new_dtb.len() as u64 }));
    }
    let mut dtb_buf = alloc_for("device tree", new_dtb.len() as u64)?;
    dtb_buf.as_mut_slice()[..new_dtb.len()].copy_from_slice(&new_dtb);

    let mut segments = Vec::new();
    segments.push(seg(kernel.buf.addr(), kernel.len, &placement.kernel));
    if let (Some(i), Some(r)) = (&initrd, &placement.initrd) {
        segments.push(seg(i.buf.addr(), i.len, r));
    }
    segments.push(seg(dtb_buf.addr(), new_dtb.len(), &placement.dtb));
    log::info!(
        "placement: kernel {:#x}-{:#x}, initrd {}, dtb {:#x}",
        placement.kernel.start,
        placement.kernel.end,
        placement.initrd.map_or(String::from("none"), |r| alloc::format!("{:#x}-{:#x}", r.start, r.end)),
        placement.dtb.start
    );
    Err(BootError::Relocate(crate::relocation::boot(
        &segments,
        layout,
        placement.entry,
        placement.dtb.start,
    )))
}
