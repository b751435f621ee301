//! From the entry to the shell: the device tree, the console, cold or warm, the heap and the
//! MMU ([`start`]); then the boot disk and its environment, what this boot keeps for the next
//! (handoff page, ramoops, spin-table pen), kexboot's own device-tree changes, and the shell
//! (`kexboot_boot::shell`): autoboot, then the prompt ([`run`]). Everything here is discovered
//! from the device tree; the facts it does not hold are the board module's (`board`).

use alloc::vec::Vec;
use kexboot_loader::dt::{DtInfo, Header, FDT_HEADER_LEN};

use crate::arch::{self, current_el};
use crate::{bcm2835_mbox, board, console, heap, timer, virtio, warm};
use kexboot_boot::env::BootRequest;
use kexboot_boot::memory::{self, Layout};
use kexboot_boot::shell::{self, Parts, Shell};
use kexboot_boot::storage::Storage;
use kexboot_fs::BlockDevice;
use kexboot_loader::handoff;
use kexboot_loader::mem::{Range, PAGE_SIZE as PAGE};

use crate::disk::{self, Disk};
use crate::firmware::{Firmware, HeapStaging, OwnFixups};
use crate::smp;

/// Runs the boot logic on board `board` (its name); never returns.
pub fn run(
    board: &'static str,
    mut layout: Layout,
    dtb: &[u8],
    disks: Vec<Disk>,
    info: &DtInfo,
    entry: handoff::Entry,
) -> ! {
    // The disks as U-Boot's commands name them; the home volume (environment, boot count) is
    // the first FAT volume.
    for d in &disks {
        log::info!(
            "{} disk at {:#x}: {} MiB",
            d.interface(),
            d.base(),
            d.num_sectors() >> 11
        );
    }
    let mut storage = Storage::new(disks.into_iter().map(|d| (d.interface(), d)).collect());
    storage.find_home();
    let env = storage.home().map(shell::env_txt).unwrap_or_default();
    // What this boot reserves for the next: the handoff page, and a ramoops region if asked.
    let handoff = warm::Handoff::new(&entry, info, &mut layout);
    let ramoops = warm::Ramoops::plan(&env, info, &mut layout);
    // spin-table, when asked: the secondaries go to kexboot's pen now, their nodes say so, and
    // the pen's page is a /memreserve/.
    let pen = match smp::wants_spin_table(&env) {
        false => None,
        true => smp::Pen::start(info, &mut layout)
            .map_err(|e| log::warn!("spin-table: {e}; CPUs stay as the platform has them"))
            .ok(),
    };
    let own = OwnFixups::new(handoff.as_ref(), ramoops, pen.as_ref(), info);
    let base_dtb = match own.apply(dtb) {
        Ok(d) => d,
        Err(e) => {
            log::error!("device tree: cannot add kexboot's reserved nodes: {e}");
            dtb.to_vec()
        }
    };
    let request = BootRequest::from_bootargs(info.bootargs.as_deref().unwrap_or(""));
    let firmware = Firmware {
        name: board,
        info,
        handoff,
        pen,
        own,
        mapped: layout.mapped.clone(),
        writable: layout.writable(),
        keys: crate::firmware::built_in_keys(),
    };
    let staging = HeapStaging::new(layout.writable());
    let mut shell = Shell::new(Parts {
        board: firmware,
        staging,
        storage,
        layout,
        dtb: base_dtb,
        request,
    });
    let mut env = shell.load_env(env);
    shell.autoboot(&mut env);
    shell.prompt(&mut env)
}

extern "C" {
    /// End of kexboot's image, BSS and stack (linker script).
    static __image_end: u8;
}

/// Runtime address of the end of kexboot's image (PC-relative, so correct wherever it runs).
fn image_end() -> u64 {
    core::ptr::addr_of!(__image_end) as u64
}

/// Reads the device tree header at `dtb` and returns it as a slice, after basic checks.
///
/// # Safety
/// `dtb` must be readable for the size its header states (checked against the boot protocol's `MAX_DTB_SIZE`).
unsafe fn dtb_slice(dtb: u64) -> Option<&'static [u8]> {
    if dtb == 0 || !dtb.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the caller says the header (`FDT_HEADER_LEN` bytes) is readable.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, FDT_HEADER_LEN) };
    let size = Header::parse(header, kexboot_loader::MAX_DTB_SIZE as usize)
        .ok()?
        .total_size();
    // SAFETY: as above, for the whole blob.
    Some(unsafe { core::slice::from_raw_parts(dtb as *const u8, size) })
}

/// From the entry assembly (MMU off, on kexboot's stack) to the shell: the device tree, the
/// console, cold or warm, the heap, the MMU, the disks, then [`run`].
pub fn start(dtb: u64, image_base: u64) -> ! {
    // SAFETY: the boot protocol gives x0 = a device tree in RAM; we read only what it says.
    let Some(blob) = (unsafe { dtb_slice(dtb) }) else {
        // No console without a device tree: nothing can be said. Stop.
        arch::halt()
    };
    // Read leniently: the console comes from the tree, and with it every complaint about it.
    let mut info = match DtInfo::read(blob) {
        Ok(i) => i,
        Err(_) => arch::halt(), // no console without a device tree: nothing can be said
    };
    if let Some((compat, base)) = &info.stdout {
        if let Some(uart) = console::Uart::for_compatible(compat) {
            // SAFETY: the device tree's stdout-path names this UART.
            unsafe { console::init(uart, *base as usize) };
        }
    }
    // Before any memory is chosen or the MMU goes on: stop every virtio-mmio device. A previous
    // kernel (Linux 6.1 does not reset virtio devices on kexec) may have left a NIC receiving,
    // which would DMA into whatever kexboot takes for its heap or stages a kernel in.
    virtio::reset_all(&info.virtio_mmio, |found| println!("kexboot: {found}"));
    // Issue 4 (EL3 return path): under kexboot's own EL3 monitor, PSCI is its `smc`.
    arch::el3::adopt(&mut info);
    if info.memory.is_empty() {
        // A Pi's firmware knows the ARM's share of the RAM even when the tree does not say it
        // (the MMU is off: the mailbox needs no mapping yet). QEMU cannot show this path: its
        // loader (hw/arm/boot.c `arm_load_dtb`) replaces every `/memory` node of the `-dtb`
        // with its own; the message is host-tested (`kexboot_loader::mailbox`), the transport
        // is the one the EMMC clock query uses on raspi3b. The tree handed to the kernel is
        // not given a `/memory` here (the Pi firmware always writes one).
        info.memory.extend(bcm2835_mbox::arm_memory(&info));
    }
    if info.memory.is_empty() {
        println!(
            "kexboot: error: {}; stopping",
            kexboot_loader::Error::NoMemoryNode
        );
        arch::halt()
    }
    let el = current_el();
    let ram_total: u64 = info.memory.iter().map(|r| r.len()).sum();
    println!();
    println!(
        "kexboot {} ({}): entered at EL{}, RAM {} MiB, {} CPU(s), PSCI {}",
        crate::VERSION,
        board::name(&info),
        el,
        ram_total >> 20,
        info.cpus,
        info.psci_method.as_deref().unwrap_or("none"),
    );
    let banner_ms = timer::since_reset_us() / 1000;
    timer::mark("banner");

    let image_end = image_end();
    let image = Range::new(image_base, image_end.next_multiple_of(PAGE))
        .unwrap_or_else(|e| panic!("image range from the linker: {e}"));
    let dtb_range = Range::from_len(
        dtb & !(PAGE - 1),
        (blob.len() as u64 + (dtb % PAGE)).next_multiple_of(PAGE),
    )
    .unwrap_or_else(|e| panic!("dtb range: {e}"));
    // Cold or warm: decided (and the record read) before the MMU is on.
    let entry = warm::classify(&info, &[image, dtb_range]);
    let mut avoid = info.reserved.clone();
    avoid.extend([image, dtb_range]);
    let Some(heap_range) = memory::choose_heap(&info.memory, &avoid) else {
        println!("kexboot: error: no free RAM region of at least 32 MiB for the heap");
        arch::halt()
    };

    let mut devices: Vec<Range> = info.virtio_mmio.clone();
    let page_of = |r: &Range| {
        let start = r.start() & !(PAGE - 1);
        Range::new(start, r.end().next_multiple_of(PAGE)).ok()
    };
    devices.extend(
        info.devices
            .iter()
            .filter(|d| board::DRIVEN.contains(&d.compatible.as_str()))
            .filter_map(|d| page_of(&d.reg)),
    );
    if let Some((_, base)) = &info.stdout {
        // Display, not `expect`'s Debug: the error's Debug impl stays out of the firmware.
        let uart = Range::from_len(*base & !(PAGE - 1), PAGE);
        devices.push(uart.unwrap_or_else(|e| panic!("uart page: {e}")));
    }
    // RAM, less what firmware keeps for itself (`no-map`; kexboot's own handoff page is
    // kexboot's to write), plus the DTB wherever it is.
    let ram_mapped = info.mapped_ram();
    let mut mapped = ram_mapped.clone();
    mapped.push(dtb_range);
    // SAFETY: the map covers the image, its stack and BSS (where the page tables are), the heap
    // and the DTB; devices cover the UART and the virtio slots. Only the image was written with
    // the MMU off.
    let tables = match unsafe { arch::mmu::enable(&mapped, &devices, &[image]) } {
        Ok(t) => t,
        Err(e) => {
            println!(
                "kexboot: error: cannot map {:#x}-{:#x}",
                e.0.start(),
                e.0.end()
            );
            arch::halt()
        }
    };
    core::mem::forget(tables); // live for the rest of the firmware's life
                               // SAFETY: `choose_heap` picked free RAM outside every reserved range, the image and the DTB;
                               // the MMU is on, so the heap's lock and every later write are on cacheable memory.
    unsafe { heap::init_main(heap_range.start() as usize, heap_range.len() as usize) };
    console::init_logger();
    timer::mark("MMU and caches on");
    log::info!("banner ({banner_ms} ms since machine reset)");
    log::info!(
        "MMU and caches on at EL{}; heap {} MiB at {:#x}",
        el,
        heap_range.len() >> 20,
        heap_range.start()
    );

    smp::report_at_start(&info);
    let layout = Layout {
        ram: info.memory.clone(),
        reserved: info.reserved.clone(),
        image,
        dtb: dtb_range,
        heap: heap_range,
        kept: Vec::new(),
        mapped: ram_mapped,
    };
    let dtb_copy: Vec<u8> = blob.to_vec();
    let disks = disk::probe(&info);
    timer::mark("disks probed");
    let virtio = disks
        .iter()
        .filter(|d| matches!(d, Disk::Virtio(_)))
        .count();
    log::info!("{virtio} virtio-blk disk(s) found");
    run(board::name(&info), layout, &dtb_copy, disks, &info, entry)
}
