//! The aarch64 trampoline and the code that enters it.
//!
//! The trampoline is position-independent code between `__kexboot_tramp_start` and
//! `__kexboot_tramp_end`, in its own section `.text.kexboot_tramp`. It runs the entry list with
//! the MMU and D-cache on (identity map), cleans each destination page to PoC by VA right after
//! writing it, invalidates the I-cache, then (mode 1) turns the MMU and D-cache off at the current
//! EL and jumps to the kernel. It uses no stack and no memory but the list and the pages.
//!
//! Register contract at entry:
//!
//! | reg   | input                        | kept in | role while copying                  |
//! |-------|------------------------------|---------|-------------------------------------|
//! | x0    | head entry                   | x9      | current entry                       |
//! | x1    | kernel entry point           | x13     |                                     |
//! | x2-x5 | the kernel's x0..x3          | x14-x17 |                                     |
//! | x6    | mode (0 return, 1 jump)      | x12     |                                     |
//! |       |                              | x10     | list pointer (next entry)           |
//! |       |                              | x11     | destination of the next page        |
//! |       |                              | x8      | smallest D-cache line, bytes        |
//! | x30   | return address (mode 0 only) |         |                                     |
//!
//! x0-x3 are scratch during the copy (source cursor, end, write and maintenance cursors) and
//! q0-q7 carry the data, 128 bytes per iteration. Only caller-saved registers of the AAPCS64 are
//! used (x0-x17, x30, v0-v7), so mode 0 can be called like a C function.

use crate::{EntryList, Error, Range, What, IND_DONE, IND_INDIRECTION, PAGE_SIZE};

/// Trampoline mode: copy, then return through x30 (benchmarks time the copy engine this way).
pub const MODE_RETURN: u64 = 0;
/// Trampoline mode: copy, turn the MMU and D-cache off, jump to the kernel.
pub const MODE_JUMP: u64 = 1;

/// CTR_EL0.DminLine: log2 of the smallest D-cache line in words, bits [19:16].
pub const CTR_DMINLINE_SHIFT: u32 = 16;
/// CTR_EL0.IminLine: log2 of the smallest I-cache line in words, bits [3:0].
pub const CTR_IMINLINE_SHIFT: u32 = 0;
/// Width of the CTR_EL0 line-size fields.
pub const CTR_LINE_WIDTH: u32 = 4;
/// Bytes in the "word" CTR_EL0 counts in.
pub const CTR_WORD_BYTES: u64 = 4;

/// Checks what [`execute`] relies on: the trampoline fits one page at a page-aligned
/// `tramp_page` that no destination, list or bounce page, or in-place source overlaps, and the
/// head gives the trampoline a list pointer (or is `IND_DONE`).
pub fn check_jump(
    list: &EntryList,
    dest_ranges: &[Range],
    tramp_page: u64,
    tramp_len: u64,
) -> Result<(), Error> {
    if tramp_len > PAGE_SIZE {
        return Err(Error::TrampolineTooBig { len: tramp_len });
    }
    if list.head & (IND_DONE | IND_INDIRECTION) == 0 {
        return Err(Error::BadHead { head: list.head });
    }
    let t = Range::page(tramp_page).map_err(|_| Error::Misaligned {
        what: What::Trampoline,
        addr: tramp_page,
    })?;
    let dests = dest_ranges
        .iter()
        .enumerate()
        .map(|(i, r)| (What::Destination(i), *r));
    let srcs = list
        .sources
        .iter()
        .enumerate()
        .map(|(i, r)| (What::Source(i), *r));
    let pages = list
        .pages
        .iter()
        .map(|&p| (What::ListPage, Range::from_len_saturating(p, PAGE_SIZE)));
    match dests.chain(srcs).chain(pages).find(|(_, r)| r.overlaps(&t)) {
        Some((b_what, b)) => Err(Error::Overlap {
            a: t,
            a_what: What::Trampoline,
            b,
            b_what,
        }),
        None => Ok(()),
    }
}

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".pushsection .text.kexboot_tramp, \"ax\", %progbits",
    ".balign 4",
    ".global __kexboot_tramp_start",
    ".global __kexboot_tramp_end",
    ".type __kexboot_tramp_start, %function",
    "__kexboot_tramp_start:",
    // Every input into a register the copy never touches, before any page is read or written.
    "    mov  x9, x0",                  // x9  = entry, starting with the head
    "    mov  x13, x1",                 // x13 = kernel entry point
    "    mov  x14, x2",                 // x14..x17 = the kernel's x0..x3
    "    mov  x15, x3",
    "    mov  x16, x4",
    "    mov  x17, x5",
    "    mov  x12, x6",                 // x12 = mode
    "    mov  x10, xzr",                // x10 = ptr (set by the head)
    "    mov  x11, xzr",                // x11 = dest
    "    mrs  x0, ctr_el0",             // x8 = smallest D-cache line in bytes
    "    ubfx x0, x0, #{ctr_dminline_shift}, #{ctr_line_width}",
    "    mov  x8, #{ctr_word_bytes}",
    "    lsl  x8, x8, x0",
    "    tbnz x9, #{ind_done_bit}, .Lkxb_done",
    "    tbz  x9, #{ind_indirection_bit}, .Lkxb_done", // a head without a list copies nothing
    ".Lkxb_loop:",
    "    bic  x0, x9, #{page_offset_mask}", // x0 = page address of the entry
    "    tbz  x9, #{ind_source_bit}, .Lkxb_test_indirection",
    "    add  x1, x0, #{page_size}",    // x1 = end of the source page
    "    mov  x2, x11",                 // x2 = write cursor
    "1:  ldp  q0, q1, [x0], #32",
    "    ldp  q2, q3, [x0], #32",
    "    ldp  q4, q5, [x0], #32",
    "    ldp  q6, q7, [x0], #32",
    "    stp  q0, q1, [x2], #32",
    "    stp  q2, q3, [x2], #32",
    "    stp  q4, q5, [x2], #32",
    "    stp  q6, q7, [x2], #32",
    "    cmp  x0, x1",
    "    b.lo 1b",
    "    mov  x3, x2",                  // x3 = end of the destination page
    "    mov  x2, x11",                 // clean+invalidate it to PoC by VA (never set/way)
    "    lsl  x4, x8, #2",              // four lines at a time when they fit a page (they
    "    cmp  x4, #{page_size}",        // always do but for lines over 1 KiB): fewer branches
    "    b.hi 2f",                      // per page, which is what an emulator pays for
    "5:  dc   civac, x2",
    "    add  x2, x2, x8",
    "    dc   civac, x2",
    "    add  x2, x2, x8",
    "    dc   civac, x2",
    "    add  x2, x2, x8",
    "    dc   civac, x2",
    "    add  x2, x2, x8",
    "    cmp  x2, x3",
    "    b.lo 5b",
    "    b    6f",
    "2:  dc   civac, x2",
    "    add  x2, x2, x8",
    "    cmp  x2, x3",
    "    b.lo 2b",
    "6:",
    "    mov  x11, x3",                 // dest += PAGE_SIZE
    "    b    .Lkxb_next",
    ".Lkxb_test_indirection:",
    "    tbz  x9, #{ind_indirection_bit}, .Lkxb_test_destination",
    "    mov  x10, x0",                 // ptr = addr
    "    b    .Lkxb_next",
    ".Lkxb_test_destination:",
    "    tbz  x9, #{ind_destination_bit}, .Lkxb_next",
    "    mov  x11, x0",                 // dest = addr
    ".Lkxb_next:",
    "    ldr  x9, [x10], #8",           // entry = *ptr++
    "    tbz  x9, #{ind_done_bit}, .Lkxb_loop",
    ".Lkxb_done:",
    "    dsb  sy",                      // every page write and clean is complete
    "    ic   iallu",
    "    dsb  sy",
    "    isb",
    "    cmp  x12, #{mode_jump}",
    "    b.eq .Lkxb_mmu_off",
    "    ret",
    ".Lkxb_mmu_off:",                  // MMU and D-cache off at the current EL (EL2 or EL1)
    "    mrs  x0, CurrentEL",
    "    and  x0, x0, #{currentel_mask}",
    "    cmp  x0, #{currentel_el2}",
    "    b.ne 3f",
    "    mrs  x0, sctlr_el2",
    "    bic  x0, x0, #{sctlr_m}",
    "    bic  x0, x0, #{sctlr_c}",
    "    isb",
    "    msr  sctlr_el2, x0",
    "    b    4f",
    "3:  mrs  x0, sctlr_el1",
    "    bic  x0, x0, #{sctlr_m}",
    "    bic  x0, x0, #{sctlr_c}",
    "    isb",
    "    msr  sctlr_el1, x0",
    "4:  isb",
    "    ic   iallu",
    "    dsb  nsh",
    "    isb",
    "    mov  x0, x14",                 // the kernel's x0..x3
    "    mov  x1, x15",
    "    mov  x2, x16",
    "    mov  x3, x17",
    "    br   x13",
    "__kexboot_tramp_end:",
    ".size __kexboot_tramp_start, __kexboot_tramp_end - __kexboot_tramp_start",
    ".popsection",
    ind_destination_bit = const crate::IND_DESTINATION.trailing_zeros(),
    ind_indirection_bit = const IND_INDIRECTION.trailing_zeros(),
    ind_done_bit = const IND_DONE.trailing_zeros(),
    ind_source_bit = const crate::IND_SOURCE.trailing_zeros(),
    page_size = const PAGE_SIZE,
    page_offset_mask = const crate::PAGE_OFFSET_MASK,
    ctr_dminline_shift = const CTR_DMINLINE_SHIFT,
    ctr_line_width = const CTR_LINE_WIDTH,
    ctr_word_bytes = const CTR_WORD_BYTES,
    mode_jump = const MODE_JUMP,
    currentel_mask = const aarch64_cpu::registers::CurrentEL::EL.mask << aarch64_cpu::registers::CurrentEL::EL.shift,
    currentel_el2 = const aarch64_cpu::registers::CurrentEL::EL::EL2.value,
    sctlr_m = const aarch64_cpu::registers::SCTLR_EL2::M::SET.value,
    sctlr_c = const aarch64_cpu::registers::SCTLR_EL2::C::SET.value,
);

// SCTLR_EL1 and SCTLR_EL2 share the M and C bit positions the trampoline clears.
#[cfg(target_arch = "aarch64")]
const _: () = {
    use aarch64_cpu::registers::{SCTLR_EL1, SCTLR_EL2};
    assert!(SCTLR_EL1::M::SET.value == SCTLR_EL2::M::SET.value);
    assert!(SCTLR_EL1::C::SET.value == SCTLR_EL2::C::SET.value);
};

#[cfg(target_arch = "aarch64")]
extern "C" {
    static __kexboot_tramp_start: u8;
    static __kexboot_tramp_end: u8;
}

/// Address and length of the trampoline code in the firmware's text.
#[cfg(target_arch = "aarch64")]
pub fn trampoline() -> (*const u8, u64) {
    let start = &raw const __kexboot_tramp_start;
    let end = &raw const __kexboot_tramp_end;
    (start, (end as u64).saturating_sub(start as u64))
}

/// Smallest cache line in bytes from the CTR_EL0 field at `shift`.
#[cfg(target_arch = "aarch64")]
fn cache_line(shift: u32) -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect and is allowed at EL1 and EL2.
    unsafe {
        core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags))
    };
    CTR_WORD_BYTES << ((ctr >> shift) & ((1 << CTR_LINE_WIDTH) - 1))
}

/// Runs `op` (a `dc`/`ic` by VA) on every line of `[start, start + len)`.
#[cfg(target_arch = "aarch64")]
macro_rules! by_line {
    ($op:literal, $shift:expr, $start:expr, $len:expr) => {{
        let line = cache_line($shift);
        let end = $start.saturating_add($len);
        let mut a = $start & !(line - 1);
        while a < end {
            // SAFETY: the caller of the enclosing unsafe fn guarantees the range is mapped;
            // maintenance by VA does not change memory contents.
            unsafe { core::arch::asm!(concat!($op, ", {}"), in(reg) a, options(nostack, preserves_flags)) };
            a = match a.checked_add(line) {
                Some(n) => n,
                None => break,
            };
        }
    }};
}

/// Cleans and invalidates `[start, start + len)` to the point of coherency by VA, then `dsb sy`.
///
/// # Safety
/// The range must be mapped (readable) at the current EL.
#[cfg(target_arch = "aarch64")]
pub unsafe fn clean_inval_dcache_range(start: u64, len: u64) {
    by_line!("dc civac", CTR_DMINLINE_SHIFT, start, len);
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::SY);
}

/// Runs the entry list with the same trampoline code, in place in the firmware's text, and
/// returns (mode 0): the benchmark of the copy engine. The destinations are really written.
///
/// # Safety
/// `list` must come from [`crate::build`] over the identity-mapped memory this runs on, with its
/// pages intact, and every destination must be memory nothing else uses. FP/SIMD must be enabled.
#[cfg(target_arch = "aarch64")]
pub unsafe fn copy_engine_run(list: &EntryList) {
    // SAFETY: the trampoline uses only caller-saved registers (declared clobbered by the C ABI)
    // and no stack; by the contract above it only writes the destinations.
    unsafe {
        core::arch::asm!(
            "bl __kexboot_tramp_start",
            in("x0") list.head,
            in("x1") 0u64,
            in("x2") 0u64,
            in("x3") 0u64,
            in("x4") 0u64,
            in("x5") 0u64,
            in("x6") MODE_RETURN,
            clobber_abi("C"),
        )
    };
}

/// Boots: masks interrupts, cleans+invalidates every destination to PoC, copies the trampoline
/// to `tramp_page` and branches there in mode 1 (copy, MMU off, jump to `entry` with `args` in
/// x0..x3). Nothing is allocated here.
///
/// # Safety
/// `list` must come from [`crate::build`] over the identity-mapped memory this runs on, its
/// pages intact; `dest_ranges` must be the destinations of that plan; `tramp_page` must be an
/// identity-mapped, writable and executable control page outside every destination; the MMU must
/// map all RAM as Normal write-back memory; FP/SIMD must be enabled; other CPUs must be parked
/// outside all destinations.
///
/// # Panics
/// If [`check_jump`] refuses the arguments (call it first to get the error as a value).
#[cfg(target_arch = "aarch64")]
pub unsafe fn execute(
    list: &EntryList,
    entry: u64,
    args: [u64; 4],
    dest_ranges: &[Range],
    tramp_page: u64,
) -> ! {
    use aarch64_cpu::asm::barrier::{dsb, isb, ISH, SY};
    use aarch64_cpu::registers::{Writeable, DAIF};

    let (code, len) = trampoline();
    if let Err(e) = check_jump(list, dest_ranges, tramp_page, len) {
        panic!("kexboot-relocate: refusing to jump: {e}");
    }
    DAIF.write(DAIF::D::Masked + DAIF::A::Masked + DAIF::I::Masked + DAIF::F::Masked);
    for r in dest_ranges {
        // SAFETY: the caller guarantees the destinations are mapped.
        unsafe { clean_inval_dcache_range(r.start(), r.len()) };
    }
    // SAFETY: `check_jump` showed the trampoline fits in `tramp_page`, which the caller
    // guarantees is mapped, writable and used by nothing else.
    unsafe { core::ptr::copy_nonoverlapping(code, tramp_page as *mut u8, len as usize) };
    // Clean to PoC (not only PoU): the tail of the trampoline runs with the MMU off.
    by_line!("dc cvac", CTR_DMINLINE_SHIFT, tramp_page, len);
    dsb(ISH);
    by_line!("ic ivau", CTR_IMINLINE_SHIFT, tramp_page, len);
    dsb(ISH);
    isb(SY);
    // SAFETY: the trampoline at `tramp_page` follows the register contract in the module docs;
    // the caller guarantees the plan, the mapping and the kernel.
    unsafe {
        core::arch::asm!(
            "br {tramp}",
            tramp = in(reg) tramp_page,
            in("x0") list.head,
            in("x1") entry,
            in("x2") args[0],
            in("x3") args[1],
            in("x4") args[2],
            in("x5") args[3],
            in("x6") MODE_JUMP,
            options(noreturn, nostack),
        )
    }
}
