//! The spin-table pen kexboot parks secondary CPUs in when it offers them to Linux through
//! `enable-method = "spin-table"` (boards without PSCI, or chosen on QEMU for testing).
//!
//! The code is copied into a page kexboot reserves (`/memreserve/`) together with one mailbox
//! per CPU (its `cpu-release-addr`). A secondary enters with the MMU and caches off, x0 = its
//! mailbox (the context id of the PSCI CPU_ON that brought it here), waits for an event, and
//! when the mailbox is non-zero invalidates its I-cache and branches there with x0..x3 = 0 as
//! booting.rst asks. Linux writes the mailbox, cleans it to PoC and sends `sev`; with the MMU
//! off the load sees memory.
//!
//! Register use: x19 = mailbox address; x4 = entry read from it.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.kexboot_pen, "ax"
    .balign 8
    .global __kexboot_pen_start
__kexboot_pen_start:
    mov     x19, x0
1:  wfe
    ldr     x4, [x19]
    cbz     x4, 1b
    /* This CPU may still hold the last kernel's instructions in its I-cache, and the next
       kernel sits at the same addresses (QEMU has no I-cache to show it). */
    ic      iallu
    dsb     nsh
    isb
    mov     x0, xzr
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x4
    .global __kexboot_pen_end
__kexboot_pen_end:
"#
);

extern "C" {
    static __kexboot_pen_start: u8;
    static __kexboot_pen_end: u8;
}

/// The pen's code, to be copied into its page.
pub fn code() -> &'static [u8] {
    let start = core::ptr::addr_of!(__kexboot_pen_start);
    let end = core::ptr::addr_of!(__kexboot_pen_end) as usize;
    // SAFETY: both symbols delimit the pen's instructions in kexboot's own text.
    unsafe { core::slice::from_raw_parts(start, end - start as usize) }
}
