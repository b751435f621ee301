//! U-Boot's `load` and `booti`: files read to RAM addresses the person names, then booted from
//! there through the same relocator as every other boot (the sources may overlap where the
//! kernel must go: the planner bounces them first).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use alloc::string::ToString;
use kexboot_boot::booti;
use kexboot_boot::commands::parse_hex;
use kexboot_boot::env::Env;
use kexboot_boot::flow::MemoryView;
use kexboot_loader::mem::{free_regions, Range};

use crate::boot::{Firmware, HeapStaging};
use crate::memory::MemoryLayout;

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
    let base = r.start().next_multiple_of(2 * MB);
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
            dst.start(),
            dst.end()
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

/// RAM as `booti` may read it: what kexboot mapped, never a `no-map` region.
struct MappedRam<'a>(&'a MemoryLayout);

impl booti::Ram for MappedRam<'_> {
    fn read(&self, r: Range) -> Option<&[u8]> {
        if !self.0.readable(&r) {
            return None;
        }
        let len = usize::try_from(r.len()).ok()?;
        // SAFETY: `r` lies in RAM kexboot mapped (checked above); nothing of kexboot's writes
        // it while a command runs (one CPU, one command at a time).
        Some(unsafe { core::slice::from_raw_parts(r.start() as *const u8, len) })
    }
}

/// `booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]`, with `bootargs` from the
/// environment and kexboot's device tree when no fdt is named; a named one gets kexboot's own
/// changes first (`boot::OwnFixups`), as every tree kexboot hands over.
pub fn booti(fw: &mut Firmware, argv: &[String], env: &Env) -> Result<(), String> {
    let args = booti::parse(argv, &MappedRam(&fw.layout), &fw.base_dtb, &|d| {
        fw.own.apply(d)
    })
    .map_err(|e| e.to_string())?;
    let bootargs = env.get("bootargs").unwrap_or("");
    let avoid = fw.layout.avoid();
    let mem = MemoryView {
        ram: &fw.layout.ram,
        avoid: &avoid,
    };
    let p = booti::plan(&args, &mut HeapStaging, &mem, bootargs).map_err(|e| e.to_string())?;
    log::info!(
        "booti: kernel {:#x} -> {:#x}, bootargs '{bootargs}'",
        args.kernel.addr,
        p.placement.kernel.start()
    );
    let err = fw.jump(&p.segments, p.entry, p.dtb, booti::LABEL);
    Err(format!("booti: relocation plan refused: {err}"))
}
