//! Warm re-entry: telling a kexboot entered from Linux kexec from a cold one, and leaving the
//! next kexboot the handoff record (`kexboot_loader::handoff`). Also the ramoops region kexboot
//! offers Linux, which, like every incoming reserved region, survives warm reboots.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kexboot_boot::env::Env;
use kexboot_loader::dt::{DtInfo, ReservedNode, HANDOFF_BOOT_ID, HANDOFF_COMPATIBLE};
use kexboot_loader::handoff::{self, Entry, Record, RECORD_LEN};
use kexboot_loader::mem::Range;

use crate::arch::regs;
use kexboot_boot::memory::Layout;

use kexboot_loader::mem::PAGE_SIZE as PAGE;

/// Decides cold or warm and says so. Runs with the MMU off: the record is read straight from
/// memory (non-cacheable), byte by byte, which is exactly what the previous kexboot cleaned to
/// the point of coherency.
pub fn classify(info: &DtInfo, avoid: &[Range]) -> Entry {
    let mut read = |addr: u64| -> Vec<u8> {
        (0..RECORD_LEN as u64)
            // SAFETY: `classify` calls this only for a page it checked lies in RAM, clear of
            // kexboot and the DTB; a volatile byte read of RAM has no side effect.
            .map(|i| unsafe { core::ptr::read_volatile((addr + i) as *const u8) })
            .collect()
    };
    let entry = handoff::classify(info.handoff, &info.memory, avoid, &mut read);
    match &entry {
        Entry::Cold => println!("kexboot: cold entry"),
        Entry::Warm(r) => println!(
            "kexboot: warm entry (handoff record #{}, previous entry '{}')",
            r.generation, r.label
        ),
        Entry::ColdWithWarning(e) => println!("kexboot: cold entry (warning: {e})"),
    }
    entry
}

/// This boot's handoff page and record fields.
pub struct Handoff {
    pub page: Range,
    pub boot_id: u64,
    pub generation: u64,
}

impl Handoff {
    /// Reuses the incoming page when it is in RAM and clear of kexboot (whatever its record
    /// said), else takes the highest free page.
    pub fn new(entry: &Entry, info: &DtInfo, layout: &mut Layout) -> Option<Handoff> {
        let incoming = info.handoff.map(|h| h.region).filter(|r| {
            r.start() % PAGE == 0
                && r.len() >= PAGE
                && layout.ram.iter().any(|m| m.contains_range(r))
                && !r.overlaps(&layout.image)
                && !r.overlaps(&layout.heap)
        });
        let page = match incoming {
            Some(r) => r,
            None => layout.take_high(PAGE)?,
        };
        let (generation, previous) = match entry {
            Entry::Warm(r) => (r.generation + 1, r.boot_id),
            _ => (1, 0),
        };
        let mut boot_id = regs::counter() ^ regs::hw_random().unwrap_or(0) ^ (generation << 48);
        if boot_id == previous {
            boot_id = boot_id.wrapping_add(1);
        }
        Some(Handoff {
            page,
            boot_id,
            generation,
        })
    }

    pub fn node_name(&self) -> String {
        format!("kexboot-handoff@{:x}", self.page.start())
    }

    /// The `/reserved-memory` node that tells the next kexboot where to look.
    pub fn node<'a>(&self, name: &'a str) -> ReservedNode<'a> {
        ReservedNode::new(name, self.page)
            .string_prop("compatible", HANDOFF_COMPATIBLE)
            .u64_prop(HANDOFF_BOOT_ID, self.boot_id)
            .flag("no-map")
    }

    /// Writes the record for the entry being booted and cleans it to PoC (the kernel runs with
    /// the page unmapped; the next kexboot reads it with the MMU off).
    pub fn write(&self, label: &str) {
        let rec = Record {
            generation: self.generation,
            boot_id: self.boot_id,
            label: label.into(),
        }
        .encode();
        // SAFETY: the page is RAM kexboot reserved for itself (mapped: see `start`), outside
        // every boot segment; the clean is cache maintenance by VA over it.
        unsafe {
            core::ptr::copy_nonoverlapping(rec.as_ptr(), self.page.start() as *mut u8, rec.len());
            kexboot_relocate::arch::clean_inval_dcache_range(self.page.start(), PAGE);
        }
    }
}

/// ramoops settings from `env.txt`.
pub struct Ramoops {
    pub region: Range,
    pub record_size: u32,
    pub console_size: u32,
    pub max_reason: u32,
}

impl Ramoops {
    /// The incoming region when there is one (kept as it is), else a new one of
    /// `ramoops_size` bytes at the top of free RAM, else none.
    pub fn plan(env: &Env, info: &DtInfo, layout: &mut Layout) -> Option<Ramoops> {
        if let Some(r) = info.ramoops {
            log::info!("ramoops region kept at {:#x}-{:#x}", r.start(), r.end());
            return None;
        }
        let size = match env.size("ramoops_size") {
            Ok(Some(s)) if s > 0 => s.next_multiple_of(PAGE),
            Ok(_) => return None,
            Err(e) => {
                log::warn!("{}: {e}", kexboot_boot::env::ENV_PATH);
                return None;
            }
        };
        let get = |name, default: u32| match env.size(name) {
            Ok(Some(v)) => u32::try_from(v).unwrap_or(default),
            Ok(None) => default,
            Err(e) => {
                log::warn!("{}: {e}", kexboot_boot::env::ENV_PATH);
                default
            }
        };
        let record_size = get("ramoops_record_size", 64 << 10);
        let console_size = get("ramoops_console_size", 0);
        let max_reason = get("ramoops_max_reason", KMSG_DUMP_SHUTDOWN);
        let Some(region) = layout.take_high(size) else {
            log::warn!("no free RAM for a {size}-byte ramoops region");
            return None;
        };
        log::info!(
            "ramoops region offered at {:#x}-{:#x} (record {record_size}, max-reason {max_reason})",
            region.start(),
            region.end()
        );
        Some(Ramoops {
            region,
            record_size,
            console_size,
            max_reason,
        })
    }

    pub fn node_name(&self) -> String {
        format!("ramoops@{:x}", self.region.start())
    }

    pub fn node<'a>(&self, name: &'a str) -> ReservedNode<'a> {
        ReservedNode::new(name, self.region)
            .string_prop("compatible", "ramoops")
            .u32_prop("record-size", self.record_size)
            .u32_prop("console-size", self.console_size)
            .u32_prop("ftrace-size", 0)
            .u32_prop("pmsg-size", 0)
            .u32_prop("max-reason", self.max_reason)
    }
}

/// Linux's `KMSG_DUMP_SHUTDOWN`: dump the kernel log on every reboot, kexec included.
const KMSG_DUMP_SHUTDOWN: u32 = 4;
