//! Board `qemu-virt`: QEMU's `virt` machine, entered at EL2 (`virtualization=on`) or EL1 with
//! x0 = QEMU's device tree. Everything (RAM, UART, virtio-mmio slots, PSCI) is discovered from
//! that tree; nothing is hard-coded.

use alloc::vec::Vec;
use kexboot_loader::dt::{DtInfo, Header, FDT_HEADER_LEN};
use kexboot_loader::mem::Range;

use crate::arch::regs;
use crate::arch::{self, current_el};
use crate::{console, heap, start, timer, virtio, warm};
use kexboot_boot::memory::{self, Layout};

extern "C" {
    /// End of kexboot's image, BSS and stack (linker script).
    static __image_end: u8;
}

/// The board's name (`board` in the environment, `version`, the banner).
pub const NAME: &str = "qemu-virt";

/// Largest device tree kexboot accepts (the boot protocol's limit).
const MAX_DTB: usize = 2 << 20;
use kexboot_loader::mem::PAGE_SIZE as PAGE;

/// Frequency of QEMU virt's generic timer counter (QEMU 7.2: `NANOSECONDS_PER_SECOND /
/// GTIMER_SCALE` = 62.5 MHz; QEMU 9.0 and later give newer machine versions 1 GHz). kexboot's EL3
/// monitor programs CNTFRQ_EL0 with it, as `booting.rst` requires of firmware: on a real core
/// the register's reset value is UNKNOWN, while QEMU resets it to this value already.
pub const CNTFRQ_HZ: u64 = 62_500_000;

/// Runtime address of the end of kexboot's image (PC-relative, so correct wherever it runs).
fn image_end() -> u64 {
    core::ptr::addr_of!(__image_end) as u64
}

/// Reads the device tree header at `dtb` and returns it as a slice, after basic checks.
///
/// # Safety
/// `dtb` must be readable for the size its header states (checked against `MAX_DTB`).
unsafe fn dtb_slice(dtb: u64) -> Option<&'static [u8]> {
    if dtb == 0 || !dtb.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the caller says the header (`FDT_HEADER_LEN` bytes) is readable.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, FDT_HEADER_LEN) };
    let size = Header::parse(header, MAX_DTB).ok()?.total_size();
    // SAFETY: as above, for the whole blob.
    Some(unsafe { core::slice::from_raw_parts(dtb as *const u8, size) })
}

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
        if compat.contains("pl011") {
            // SAFETY: the device tree's stdout-path names this PL011.
            unsafe { console::init(*base as usize) };
        }
    }
    // Before any memory is chosen or the MMU goes on: stop every virtio-mmio device. A previous
    // kernel (Linux 6.1 does not reset virtio devices on kexec) may have left a NIC receiving,
    // which would DMA into whatever kexboot takes for its heap or stages a kernel in.
    virtio::reset_all(&info.virtio_mmio, |found| println!("kexboot: {found}"));
    // Issue 4 (EL3 return path): under kexboot's own EL3 monitor, PSCI is its `smc`.
    arch::el3::adopt(&mut info);
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
        "kexboot {} ({NAME}): entered at EL{}, RAM {} MiB, {} CPU(s), PSCI {}",
        crate::VERSION,
        el,
        ram_total >> 20,
        info.cpus,
        info.psci_method.as_deref().unwrap_or("none"),
    );
    let banner_ms = timer::since_reset_us() / 1000;
    timer::mark("banner");

    let image_end = image_end();
    let image = Range::new(image_base, image_end.next_multiple_of(PAGE))
        .expect("image range from the linker");
    let dtb_range = Range::from_len(
        dtb & !(PAGE - 1),
        (blob.len() as u64 + (dtb % PAGE)).next_multiple_of(PAGE),
    )
    .expect("dtb range");
    // Cold or warm: decided (and the record read) before the MMU is on.
    let entry = warm::classify(&info, &[image, dtb_range]);
    let mut avoid = info.reserved.clone();
    avoid.extend([image, dtb_range]);
    let Some(heap_range) = memory::choose_heap(&info.memory, &avoid) else {
        println!("kexboot: error: no free RAM region of at least 32 MiB for the heap");
        arch::halt()
    };

    let mut devices: Vec<Range> = info.virtio_mmio.clone();
    if let Some((_, base)) = &info.stdout {
        devices.push(Range::from_len(*base & !(PAGE - 1), PAGE).expect("uart page"));
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

    report_cpus(&info);
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
    let disks = virtio::find_block_devices(&info.virtio_mmio);
    timer::mark("disks probed");
    log::info!("{} virtio-blk disk(s) found", disks.len());
    start::run(NAME, layout, &dtb_copy, disks, &info, entry)
}

/// Says which CPUs are where: with PSCI, every secondary must be off (the kernel starts them
/// with CPU_ON; after a warm reboot Linux must have returned them with CPU_OFF).
fn report_cpus(info: &DtInfo) {
    let me = regs::mpidr();
    let mut off = 0;
    for cpu in info.cpu_nodes.iter().filter(|c| c.reg != me) {
        match arch::psci::affinity_info(info, cpu.reg) {
            Ok(arch::psci::CpuState::Off) => off += 1,
            Ok(state) => log::warn!(
                "CPU {:#x} is {:?}: it is not under kexboot's control and cannot be handed to the kernel",
                cpu.reg,
                state
            ),
            Err(e) => log::warn!("CPU {:#x}: AFFINITY_INFO: {e}", cpu.reg),
        }
    }
    log::info!(
        "CPUs: boot CPU {me:#x} here, {off} of {} secondaries off (PSCI AFFINITY_INFO)",
        info.cpu_nodes.len().saturating_sub(1)
    );
}
