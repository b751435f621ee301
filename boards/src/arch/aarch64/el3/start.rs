//! Start-up: the boot CPU sets up the monitor and continues as kexboot at NS-EL2; secondaries
//! arrive in their pens; the helpers that copy the image and read device trees.

use core::arch::asm;

use kexboot_loader::dt::{DtInfo, Header};
use kexboot_monitor::psci::{self, Psci, MAX_CPUS, MPIDR_AFF_MASK};

use super::*;

/// Checks a device tree header in memory: magic, size, alignment, inside `ram`.
pub(super) fn dtb_len_at(addr: u64, ram: (u64, u64)) -> Option<u64> {
    if !addr.is_multiple_of(8) || addr < ram.0 || addr.checked_add(40)? > ram.1 {
        return None;
    }
    // Word reads (the MMU is off: memory is Device, no unaligned access); the bytes keep
    // memory order, which is what the big-endian header fields need.
    let mut raw = [0u8; FDT_HEADER_LEN as usize];
    for (i, w) in raw.chunks_exact_mut(4).enumerate() {
        w.copy_from_slice(&mmio_read(addr + 4 * i as u64).to_ne_bytes());
    }
    let len = Header::parse(&raw, kexboot_loader::MAX_DTB_SIZE as usize)
        .ok()?
        .total_size() as u64;
    (addr + len <= ram.1).then_some(len)
}

/// Size of a device tree header (`struct fdt_header`).
pub(super) const FDT_HEADER_LEN: u64 = kexboot_loader::dt::FDT_HEADER_LEN as u64;

/// Cleans and invalidates `[addr, addr + len)` to PoC by VA (= PA: the MMU is off at EL3).
pub(super) fn clean_inval(addr: u64, len: u64) {
    // SAFETY: callers pass ranges inside RAM; cleaning and invalidating never changes what
    // memory holds, only where its newest copy is.
    unsafe { kexboot_relocate::arch::clean_inval_dcache_range(addr, len) };
}

/// The device tree the last kernel registered, checked and made current in memory: Linux
/// edits it with its caches on (`rng-seed`, `kaslr-seed`), and the monitor reads with the MMU
/// off, straight from memory. So the header's lines are cleaned+invalidated before it is read,
/// then the whole blob it declares (QEMU has no caches to show this).
pub(super) fn last_kernel_dtb(addr: u64, ram: (u64, u64)) -> Option<u64> {
    if addr < ram.0 || addr.checked_add(FDT_HEADER_LEN)? > ram.1 {
        return None;
    }
    clean_inval(addr, FDT_HEADER_LEN);
    let len = dtb_len_at(addr, ram)?;
    clean_inval(addr, len);
    Some(len)
}

pub(super) fn copy(dst: u64, src: u64, len: u64) {
    // SAFETY: callers copy between memory they own (flash → NS image, saved DTB); the ranges
    // never overlap (secure RAM, flash, NS RAM are distinct).
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len as usize) };
}

/// Copies the pristine image to non-secure RAM and makes it visible to instruction fetches.
pub(super) fn install_ns_image(m: &Monitor) {
    // SAFETY: the NS image range is RAM the monitor chose for kexboot; any line cached there by
    // a previous kernel is discarded, as the copy replaces it.
    unsafe { crate::arch::dcache_inval_range(m.ns_base, m.ns_base + m.ns_size) };
    copy(m.ns_base, m.flash, m.file_size);
    // SAFETY: cache and TLB maintenance only: the new image is fetched from memory, and no
    // translation of the previous kernel survives into kexboot's.
    unsafe {
        asm!(
            "dsb sy",
            "ic iallu",
            "tlbi alle2",
            "tlbi alle1",
            "dsb sy",
            "isb",
            options(nostack)
        )
    };
}

/// The boot CPU, in the secure copy, on kexboot's start-up stack. Sets up the monitor and
/// continues as kexboot at NS-EL2.
#[no_mangle]
extern "C" fn el3_primary_main(dtb_hint: u64, image_base: u64) -> ! {
    let dtb = if dtb_hint != 0 { dtb_hint } else { RAM_BASE };
    let any_ram = (RAM_BASE, u64::MAX);
    let Some(dtb_len) = dtb_len_at(dtb, any_ram) else {
        crate::arch::halt() // no device tree, no console: nothing can be said
    };
    // SAFETY: the header was checked; the blob lies in RAM.
    let blob = unsafe { core::slice::from_raw_parts(dtb as *const u8, dtb_len as usize) };
    let Ok(info) = DtInfo::read(blob) else {
        crate::arch::halt()
    };
    if let Some((compat, base)) = &info.stdout {
        if let Some(uart) = crate::console::Uart::for_compatible(compat) {
            // SAFETY: the tree's stdout-path names this UART (reachable from the secure side).
            unsafe { crate::console::init(uart, *base as usize) };
        }
    }
    let fail = |why: &str| -> ! {
        println!("kexboot: EL3: {why}; stopping");
        crate::arch::halt()
    };
    let gic = fdt::Fdt::new(blob).ok().and_then(|f| {
        let node = f.find_compatible(&["arm,cortex-a15-gic", "arm,gic-400"])?;
        let mut reg = node.reg()?;
        let d = reg.next()?.starting_address as u64;
        let c = reg.next()?.starting_address as u64;
        Some((d, c))
    });
    let Some((gicd, gicc)) = gic else {
        fail("no GICv2 in the device tree (only GICv2 is supported at EL3)")
    };
    let Some(ram) = info.memory.first().map(|r| (r.start(), r.end())) else {
        fail("no memory in the device tree")
    };
    // Linker symbols: only their addresses are used.
    let (start, bss, end) = (
        core::ptr::addr_of!(__image_start) as u64,
        core::ptr::addr_of!(__bss_start) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    );
    if image_base != SECURE_BASE || end > SAVED_DTB {
        fail("the image does not fit below the saved device tree in secure RAM")
    }
    let me = crate::arch::regs::mpidr() & MPIDR_AFF_MASK;
    let ids: alloc::vec::Vec<u64> = info.cpu_nodes.iter().map(|c| c.reg).collect();
    let ns_base = (dtb + dtb_len).next_multiple_of(2 << 20);
    let ns_size = (end - start).next_multiple_of(4096);
    if ns_base + ns_size > ram.1 {
        fail("no room for kexboot in non-secure RAM")
    }
    let table = match Psci::new(&ids, me, ram) {
        Ok(t) => t,
        Err(e) => fail(&alloc::format!("{e}")),
    };
    let flash: u64;
    // SAFETY: reading RVBAR_EL3 (the reset vector: where the pristine image is) has no effect.
    unsafe { asm!("mrs {v}, rvbar_el3", v = out(reg) flash, options(nomem, nostack)) };
    copy(SAVED_DTB, dtb, dtb_len);
    gic_dist_init(gicd);
    let my_mask = gic_cpu_init(gicd, gicc);
    let cpus = table.len();
    // SAFETY: the secondaries are still in flash: this CPU alone touches the monitor state.
    let m = unsafe { &mut *MONITOR.0.get() };
    *m = Monitor {
        gic_mask: [0; MAX_CPUS],
        gicd,
        gicc,
        flash,
        file_size: bss - start,
        ns_base,
        ns_size,
        dtb,
        dtb_len,
        ram,
        psci: None,
    };
    if let Some(i) = table.index_of(me) {
        m.gic_mask[i] = my_mask;
    }
    m.psci = Some(table);
    install_ns_image(m);
    // SAFETY: the words secondaries poll (secure RAM the image does not use); the magic is
    // written once everything above is in place, after the distributor is enabled.
    unsafe { core::ptr::write_volatile(READY_GICD as *mut u64, gicd) };
    dmb();
    gic_dist_enable(gicd);
    dmb();
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(READY_ADDR as *mut u64, READY_MAGIC) };
    sev();
    println!(
        "kexboot: EL3 PSCI monitor resident in secure RAM at {SECURE_BASE:#x} (PSCI 1.0, smc, \
         {cpus} CPUs); kexboot continues at NS-EL2 from {ns_base:#x}"
    );
    // SAFETY: the image is in place and cleaned; this CPU's monitor stack is its own.
    unsafe {
        kexboot_el3_enter_ns(
            ns_base,
            dtb,
            MONITOR_MAGIC,
            psci::PSCI_VERSION_1_0,
            stack_top(my_slot()),
        )
    }
}

/// A secondary CPU arriving from flash, on its own monitor stack: banked GIC state, then its pen.
#[no_mangle]
extern "C" fn el3_secondary_main(mpidr: u64) -> ! {
    let index = locked(|m| {
        let i = m.psci.as_ref()?.index_of(mpidr)?;
        m.gic_mask[i] = gic_cpu_init(m.gicd, m.gicc);
        Some(i)
    });
    match index {
        Some(i) => pen(i),
        None => crate::arch::halt(), // not in the device tree: no one can start it
    }
}

/// The pen: waits for CPU_ON, then enters the non-secure world where it asked.
pub(super) fn pen(index: usize) -> ! {
    loop {
        if let Some((entry, context)) = locked(|m| m.psci.as_mut()?.take_start(index)) {
            // SAFETY: the entry point was checked to be in non-secure RAM; this CPU's stack.
            unsafe { kexboot_el3_enter_ns(entry, context, 0, 0, stack_top(my_slot())) }
        }
        wfe();
    }
}

pub(super) fn caller_index(m: &Monitor) -> Option<usize> {
    m.psci.as_ref()?.index_of(crate::arch::regs::mpidr())
}
