//! The hand-over: turn the segments into a kexec-style entry list (validated against RAM,
//! reserved memory and kexboot's own control region), copy with the relocator's engine while
//! the MMU and caches are on, then let the same trampoline clean, turn the MMU off and jump.

use alloc::vec::Vec;
use kexboot_relocate::{self as relocate, EntryList, PhysMemory, Range, Segment};

use crate::heap::{PageBuf, PAGE};
use crate::timer::{self, mb_per_s, Stopwatch};
use kexboot_boot::memory::Layout;

/// Validates `segments` against RAM, reserved memory and kexboot's control region, and writes
/// their entry list (and bounce pages) into fresh heap pages.
pub fn build_list(segments: &[Segment], layout: &Layout) -> Result<EntryList, relocate::Error> {
    let ram: Vec<Range> = layout.ram.clone();
    // Reserved memory plus what kexboot keeps across reboots (handoff page, ramoops).
    let reserved: Vec<Range> = layout
        .reserved
        .iter()
        .chain(&layout.kept)
        .copied()
        .collect();
    let control: Vec<Range> = layout.control().to_vec();
    let plan_layout = relocate::Layout {
        ram: &ram,
        reserved: &reserved,
        control: &control,
    };
    let window = ram
        .iter()
        .copied()
        .reduce(|a, b| a.hull(&b))
        .unwrap_or_default();
    // SAFETY: all RAM is identity-mapped Normal memory; the planner only writes the pages it
    // gets from `alloc_page` (fresh heap pages) and reads sources.
    let mut mem = unsafe { PhysMemory::new(window) };
    let mut alloc_page = || PageBuf::new(PAGE).map(PageBuf::leak);
    relocate::build(segments, &plan_layout, &mut mem, &mut alloc_page)
}

/// Relocates `segments` and enters the kernel at `entry` with x0 = `dtb`. Returns only when
/// the plan is refused, before anything is written to any destination. `before_jump` runs
/// once nothing can fail any more, just before the copy: it stops every DMA-capable device and
/// writes the handoff record.
pub fn boot(
    segments: &[Segment],
    layout: &Layout,
    entry: u64,
    dtb: u64,
    before_jump: &mut dyn FnMut(),
) -> relocate::Error {
    let sw = Stopwatch::start();
    let list = match build_list(segments, layout) {
        Ok(l) => l,
        Err(e) => return e,
    };
    log::info!(
        "relocation plan: {} segment(s), {} bytes to copy, {} bytes in place, {} bounced page(s), {} list/bounce page(s), built in {} us",
        segments.len(),
        list.bytes,
        list.in_place_pages * PAGE as u64,
        list.bounced_pages,
        list.pages.len(),
        sw.elapsed_us()
    );
    let Some(tramp) = PageBuf::new(PAGE).map(PageBuf::leak) else {
        return relocate::Error::OutOfPages {
            got: list.pages.len() as u64,
        };
    };
    let dests: Vec<Range> = segments
        .iter()
        .map(|s| Range::from_len_saturating(s.dst, s.memsz.next_multiple_of(PAGE as u64)))
        .collect();
    let tramp_len = relocate::arch::trampoline().1;
    if let Err(e) = relocate::arch::check_jump(&list, &dests, tramp, tramp_len) {
        return e;
    }
    before_jump();

    // The copy, by the relocator's engine with the MMU and D-cache on; every destination page
    // is cleaned to PoC as it is written.
    let sw = Stopwatch::start();
    // SAFETY: `build` validated the plan: destinations are in RAM and clear of kexboot, its
    // heap (where this code's stack, page tables and the list live) and reserved memory.
    unsafe { relocate::arch::copy_engine_run(&list) };
    let us = sw.elapsed_us();
    timer::mark("relocated");
    log::info!(
        "relocated {} bytes in {} us ({} MB/s, MMU on)",
        list.bytes,
        us,
        mb_per_s(list.bytes, us)
    );
    let done = EntryList {
        head: relocate::IND_DONE,
        pages: Vec::new(),
        bytes: 0,
        bounced_pages: 0,
        zero_filled_pages: 0,
        in_place_pages: 0,
        sources: Vec::new(),
    };
    log::info!(
        "starting kernel at {:#x}, dtb {:#x}: {} ms after kexboot entry, {} ms after machine reset",
        entry,
        dtb,
        timer::since_start_us() / 1000,
        timer::since_reset_us() / 1000
    );
    timer::mark("starting kernel");
    println!("kexboot: starting kernel at {entry:#x}");
    // SAFETY: the destinations hold the kernel, initrd and DTB; the trampoline page is a fresh
    // heap page outside every destination, list page and source (`check_jump` above, on the
    // real list; the empty list has none of its own); with an empty list the trampoline only does the
    // cache maintenance, turns the MMU off at this EL and jumps with x0 = dtb, x1..x3 = 0.
    unsafe { relocate::arch::execute(&done, entry, [dtb, 0, 0, 0], &dests, tramp) }
}
