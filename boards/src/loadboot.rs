//! U-Boot's `load` and `booti`: files read to RAM addresses the person names, then booted from
//! there through the same relocator as every other boot (the sources may overlap where the
//! kernel must go: the planner bounces them first).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kexboot_loader::image::ImageHeader;
use kexboot_loader::mem::{free_regions, Range};
use kexboot_loader::MAX_DTB_SIZE;
use kexboot_menu::commands::parse_hex;
use kexboot_menu::env::Env;
use kexboot_menu::flow::{self, MemoryView, PlanRequest, Source};

use crate::boot::{Firmware, HeapStaging};

const MB: u64 = 1 << 20;

fn hex(s: &str) -> Result<u64, String> {
    parse_hex(s).ok_or_else(|| format!("'{s}' is not a hex address"))
}

/// Free RAM a `load` may write: not kexboot, its heap, the DTB, reserved or kept memory.
pub(crate) fn writable(fw: &Firmware) -> Vec<Range> {
    free_regions(&fw.layout.ram, &fw.layout.avoid())
}

/// U-Boot's `kernel_addr_r`, `ramdisk_addr_r`, `fdt_addr_r`, chosen in free RAM at start.
pub fn default_addresses(fw: &Firmware, env: &mut Env) {
    let free = writable(fw);
    let Some(r) = free.iter().find(|r| r.len() >= 160 * MB) else {
        return;
    };
    let base = r.start.next_multiple_of(2 * MB);
    for (name, off) in [
        ("kernel_addr_r", 0),
        ("ramdisk_addr_r", 96 * MB),
        ("fdt_addr_r", 150 * MB),
    ] {
        if env.get(name).is_none() {
            env.set(name, &format!("0x{:x}", base + off));
        }
    }
}

/// `load <interface> <dev[:part]> <addr> <path>`: reads a file of the boot partition to `addr`
/// and sets `filesize` (hex), refusing anything that would leave free RAM.
pub fn load(fw: &mut Firmware, argv: &[String], env: &mut Env) -> Result<String, String> {
    let [_, iface, _dev, addr, path] = argv else {
        return Err("usage: load <interface> <dev[:part]> <addr> <path>".into());
    };
    if iface != "virtio" {
        return Err(format!("load: interface '{iface}' not supported (virtio)"));
    }
    let addr = hex(addr)?;
    let writable = writable(fw);
    let fs = fw.fs.as_mut().ok_or("load: no boot partition")?;
    let size = fs.stat(path).map_err(|e| format!("{path}: {e}"))?.size;
    let dst = Range::from_len(addr, size.max(1)).map_err(|_| "load: address overflows")?;
    if !writable.iter().any(|r| r.contains_range(&dst)) {
        return Err(format!(
            "load: {:#x}-{:#x} is not free RAM (kexboot, its heap, reserved memory)",
            dst.start, dst.end
        ));
    }
    // SAFETY: the range was just checked to be free RAM that nothing of kexboot's uses.
    let buf = unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, size as usize) };
    let n = fs
        .read_file_into(path, buf)
        .map_err(|e| format!("{path}: {e}"))?;
    env.set("filesize", &format!("{n:x}"));
    Ok(format!("{n} bytes read"))
}

/// `booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]`, with `bootargs` from the
/// environment and kexboot's device tree when no fdt is named; a named one gets kexboot's own
/// changes first (`boot::OwnFixups`), as every tree kexboot hands over.
pub fn booti(fw: &mut Firmware, argv: &[String], env: &Env) -> Result<(), String> {
    let usage = "usage: booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]";
    let kaddr = hex(argv.get(1).ok_or(usage)?)?;
    // Only RAM kexboot mapped is read: never a `no-map` region (a translation fault).
    let ram_ok = |r: &Range| fw.layout.readable(r);
    let head = Range::from_len(kaddr, 64).map_err(|_| usage)?;
    if !ram_ok(&head) {
        return Err(format!(
            "booti: {kaddr:#x} is not in RAM kexboot may read (no-map memory is never touched)"
        ));
    }
    // SAFETY: 64 bytes at a mapped RAM address checked above.
    let header = ImageHeader::parse(unsafe { core::slice::from_raw_parts(kaddr as *const u8, 64) })
        .map_err(|e| format!("booti: {e}"))?;
    // The relocator reads `image_size` bytes from there: all of them must be readable too.
    let body = Range::from_len(kaddr, header.image_size()).map_err(|_| usage)?;
    if !ram_ok(&body) {
        return Err(format!(
            "booti: kernel {:#x}-{:#x} (image_size) is not in RAM kexboot may read",
            body.start, body.end
        ));
    }
    let initrd = match argv.get(2).map(String::as_str) {
        None | Some("-") => None,
        Some(spec) => {
            let (a, s) = spec.split_once(':').ok_or(usage)?;
            let r = Range::from_len(hex(a)?, hex(s)?).map_err(|_| usage)?;
            if !ram_ok(&r) {
                return Err(format!(
                    "booti: initrd {:#x}-{:#x} is not in RAM kexboot may read",
                    r.start, r.end
                ));
            }
            Some(r)
        }
    };
    let dtb_in: Vec<u8> = match argv.get(3) {
        None => fw.base_dtb.clone(),
        Some(a) => {
            let a = hex(a)?;
            let h = Range::from_len(a, 8).map_err(|_| usage)?;
            if !ram_ok(&h) {
                return Err(format!("booti: fdt {a:#x} is not in RAM kexboot may read"));
            }
            // SAFETY: 8 header bytes in mapped RAM, then at most MAX_DTB_SIZE checked the same way.
            let hdr = unsafe { core::slice::from_raw_parts(a as *const u8, 8) };
            let len = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as u64;
            let r = Range::from_len(a, len.min(MAX_DTB_SIZE)).map_err(|_| usage)?;
            if !ram_ok(&r) {
                return Err("booti: fdt runs out of RAM".into());
            }
            // SAFETY: checked above.
            let user = unsafe { core::slice::from_raw_parts(a as *const u8, r.len() as usize) };
            // The person's tree gets kexboot's own changes like every other (pen, handoff).
            fw.own
                .apply(user)
                .map_err(|e| format!("booti: device tree at {a:#x}: {e}"))?
        }
    };
    let bootargs = env.get("bootargs").unwrap_or("");
    let avoid = fw.layout.avoid();
    let mem = MemoryView {
        ram: &fw.layout.ram,
        avoid: &avoid,
    };
    // The same plan as every other boot; the kernel's file length is not known here, so up to
    // `image_size` bytes are copied from `kaddr` (checked readable above).
    let request = PlanRequest {
        label: "booti",
        header: &header,
        kernel: Source {
            addr: kaddr,
            len: header.image_size(),
        },
        initrd: initrd.map(|r| Source {
            addr: r.start,
            len: r.len(),
        }),
        dtb: &dtb_in,
        bootargs,
        seeds: None,
    };
    let p = flow::plan(&mut HeapStaging, &mem, &request).map_err(|e| format!("booti: {e}"))?;
    log::info!(
        "booti: kernel {kaddr:#x} -> {:#x}, bootargs '{bootargs}'",
        p.placement.kernel.start
    );
    let err = fw.jump(&p.segments, p.entry, p.dtb, "booti");
    Err(format!("booti: relocation plan refused: {err}"))
}
