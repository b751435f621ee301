//! The EL3 assembly: the reset vector every CPU enters, the exception vectors (with the lower
//! EL's FP/SIMD state saved around the monitor), the entry into the non-secure world.

use core::arch::global_asm;

use kexboot_monitor::el3;
use kexboot_monitor::psci::{MAX_CPUS, MPIDR_AFF_MASK};

use super::*;

/// Stack of each CPU in the monitor, indexed by MPIDR Aff0 (one cluster of at most 8).
pub(super) const EL3_STACK_SIZE: usize = 16 << 10;
pub(super) const STACK_SHIFT: u32 = 14;
const _: () = assert!(1 << STACK_SHIFT == EL3_STACK_SIZE);

#[repr(C, align(16))]
pub struct Stacks([[u8; EL3_STACK_SIZE]; MAX_CPUS]);

#[no_mangle]
pub static mut KEXBOOT_EL3_STACKS: Stacks = Stacks([[0; EL3_STACK_SIZE]; MAX_CPUS]);

/// The lower EL's FP/SIMD state while the monitor runs (the vectors' `el3_fp_save`), one area
/// per CPU: FPCR, FPSR, then Q0-Q31 or, with SVE, Z0-Z31 at up to 2048 bits each.
pub(super) const FP_FPCR: usize = 0;
pub(super) const FP_FPSR: usize = 8;
pub(super) const FP_REGS: usize = 16;
/// The largest SVE/SME vector length in bytes (2048 bits).
pub(super) const VL_MAX_BYTES: usize = 256;
pub(super) const FP_AREA_SIZE: usize = FP_REGS + 32 * VL_MAX_BYTES;
/// CPTR_EL3.EZ as a bit number: SVE is enabled (so the vectors save whole Z registers).
pub(super) const CPTR_EL3_EZ_BIT: u32 = el3::cptr::EZ.trailing_zeros();

#[repr(C, align(16))]
pub(super) struct FpAreas(pub(super) [[u8; FP_AREA_SIZE]; MAX_CPUS]);

pub(super) static mut KEXBOOT_EL3_FP: FpAreas = FpAreas([[0; FP_AREA_SIZE]; MAX_CPUS]);

extern "C" {
    pub(super) static __image_start: u8;
    pub(super) static __bss_start: u8;
    pub(super) static __image_end: u8;
    pub(super) fn kexboot_el3_enter_ns(entry: u64, x0: u64, x1: u64, x2: u64, stack_top: u64) -> !;
}

global_asm!(
    r#"
    .arch_extension sve
/* Every CPU at EL3 from the reset vector (flash), MMU off. x10 = runtime _start (flash). */
    .section .text.kexboot_el3, "ax"
    .global el3_reset
el3_reset:
    ldr     x9, ={sctlr}
    msr     sctlr_el3, x9
    isb
    adr     x10, _start
    mov     x11, #{secure_base}
    mrs     x9, mpidr_el1
    ldr     x12, ={aff_mask}
    ands    x9, x9, x12
    b.ne    .Lel3_secondary_wait
    /* Boot CPU: not ready yet; copy the file part of the image to secure RAM */
    ldr     x12, ={ready_addr}
    str     xzr, [x12]
    adrp    x12, __bss_start
    add     x12, x12, :lo12:__bss_start
    sub     x12, x12, x10
    add     x12, x12, x11          /* end of the copy */
    mov     x13, x10
    mov     x16, x11
1:  ldp     x14, x15, [x13], #16
    stp     x14, x15, [x16], #16
    cmp     x16, x12
    b.lo    1b
    dsb     sy
    ic      iallu
    dsb     sy
    isb
    /* Run the normal start-up (relocations, BSS, stack) in the secure copy; it comes back
       to el3_start through the CurrentEL dispatch. x0 = 0: the DTB is found in el3_primary_main. */
    adr     x9, primary_relocate
    sub     x9, x9, x10
    add     x9, x9, x11
    mov     x0, xzr
    br      x9

.Lel3_secondary_wait:
    /* Ready: the magic, and group 0 enabled in this boot's distributor (see READY_ADDR). */
    ldr     x12, ={ready_addr}
    ldr     x13, ={ready_magic}
2:  ldr     x14, [x12]
    cmp     x14, x13
    b.ne    4f
    ldr     x15, [x12, #{ready_gicd_off}]
    ldr     w15, [x15, #{gicd_ctlr}]
    tbnz    w15, #{gicd_grp0_bit}, 3f
4:  wfe
    b       2b
3:  adr     x9, el3_secondary_start
    sub     x9, x9, x10
    add     x9, x9, x11
    br      x9

/* A secondary in the secure copy: its own stack (by Aff0), vectors, then its pen. */
el3_secondary_start:
    mrs     x0, mpidr_el1
    ldr     x12, ={aff_mask}
    and     x1, x0, x12
    cmp     x1, #{max_cpus}
    b.hs    .Lel3_halt
    add     x1, x1, #1
    adrp    x2, KEXBOOT_EL3_STACKS
    add     x2, x2, :lo12:KEXBOOT_EL3_STACKS
    add     x2, x2, x1, lsl #{stack_shift}
    mov     sp, x2
    bl      el3_cpu_regs
    mrs     x0, mpidr_el1
    bl      el3_secondary_main
.Lel3_halt:
    wfe
    b       .Lel3_halt

/* The boot CPU after the start-up in the secure copy (from entry.rs): x19 = DTB hint,
   x20 = image base. */
    .global el3_start
el3_start:
    bl      el3_cpu_regs
    mov     x0, x19
    mov     x1, x20
    bl      el3_primary_main
    b       .Lel3_halt

/* EL3 registers every CPU sets once, on its stack: the vectors here, the rest (SCR_EL3,
   CPTR_EL3, MDCR_EL3, timer, coherency) from the ID registers in el3_cpu_setup (Rust). */
el3_cpu_regs:
    adrp    x9, el3_vectors
    add     x9, x9, :lo12:el3_vectors
    msr     vbar_el3, x9
    isb
    b       el3_cpu_setup

/* Zero x3..x30. */
.macro el3_zero_x3_x30
    .irp n, 3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    mov     x\n, xzr
    .endr
.endm

/* Zero v0..v31 (and so Z0..Z31 whole), FPCR and FPSR. */
.macro el3_zero_fp
    movi    v0.16b, #0
    movi    v1.16b, #0
    movi    v2.16b, #0
    movi    v3.16b, #0
    movi    v4.16b, #0
    movi    v5.16b, #0
    movi    v6.16b, #0
    movi    v7.16b, #0
    movi    v8.16b, #0
    movi    v9.16b, #0
    movi    v10.16b, #0
    movi    v11.16b, #0
    movi    v12.16b, #0
    movi    v13.16b, #0
    movi    v14.16b, #0
    movi    v15.16b, #0
    movi    v16.16b, #0
    movi    v17.16b, #0
    movi    v18.16b, #0
    movi    v19.16b, #0
    movi    v20.16b, #0
    movi    v21.16b, #0
    movi    v22.16b, #0
    movi    v23.16b, #0
    movi    v24.16b, #0
    movi    v25.16b, #0
    movi    v26.16b, #0
    movi    v27.16b, #0
    movi    v28.16b, #0
    movi    v29.16b, #0
    movi    v30.16b, #0
    movi    v31.16b, #0
    msr     fpcr, xzr
    msr     fpsr, xzr
.endm

/* kexboot_el3_enter_ns(entry, x0, x1, x2, stack_top): NS-EL2 at entry, MMU off. */
    .global kexboot_el3_enter_ns
kexboot_el3_enter_ns:
    mov     sp, x4
    ldr     x9, ={sctlr}
    msr     sctlr_el2, x9
    ldr     x9, ={hcr}
    msr     hcr_el2, x9
    mov     x9, #{spsr}
    msr     spsr_el3, x9
    msr     elr_el3, x0
    isb
    /* A CPU that waited in a pen may still hold the last kernel's instructions in its I-cache,
       and the next kernel sits at the same addresses (QEMU has no I-cache to show it). */
    ic      iallu
    dsb     nsh
    isb
    mov     x0, x1
    mov     x1, x2
    mov     x2, x3
    /* Nothing of the monitor reaches the non-secure world: x3..x30 and the FP/SIMD registers
       (and with them the whole SVE Z registers) are zero, FPCR/FPSR too. */
    el3_zero_x3_x30
    el3_zero_fp
    eret

/* Exception vectors at EL3: SMCs and the recall FIQ from the lower ELs; anything else is a
   monitor bug, reported and the CPU stopped. */
.macro el3_save
    sub     sp, sp, #256
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mov     x0, sp
.endm

/* The lower EL's FP/SIMD state, saved to this CPU's area (TPIDR_EL3, el3_cpu_setup) before any
   monitor code runs, as SMCCC asks: the Rust code here may use the vector registers (memcpy,
   moves of structs). With SVE enabled (CPTR_EL3.EZ) the whole Z registers are saved, at EL3's
   vector length (ZCR_EL3 at its largest, so at least the caller's): an FP/SIMD write at EL3
   would zero their upper bits. P0-P15 and FFR are never written by the monitor (no SVE code is
   generated for it). Not covered: a caller in SME streaming mode (Linux never calls SMC in
   it). Only the lower-EL entries save it (el3_bad stops the CPU). Uses x9, x10. */
.macro el3_fp_save
    mrs     x9, tpidr_el3
    mrs     x10, fpcr
    str     x10, [x9, #{fp_fpcr}]
    mrs     x10, fpsr
    str     x10, [x9, #{fp_fpsr}]
    add     x9, x9, #{fp_regs}
    mrs     x10, cptr_el3
    tbz     x10, #{cptr_ez_bit}, 1f
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    str     z\n, [x9, #\n, mul vl]
    .endr
    b       2f
1:
    stp     q0, q1, [x9, #0]
    stp     q2, q3, [x9, #32]
    stp     q4, q5, [x9, #64]
    stp     q6, q7, [x9, #96]
    stp     q8, q9, [x9, #128]
    stp     q10, q11, [x9, #160]
    stp     q12, q13, [x9, #192]
    stp     q14, q15, [x9, #224]
    stp     q16, q17, [x9, #256]
    stp     q18, q19, [x9, #288]
    stp     q20, q21, [x9, #320]
    stp     q22, q23, [x9, #352]
    stp     q24, q25, [x9, #384]
    stp     q26, q27, [x9, #416]
    stp     q28, q29, [x9, #448]
    stp     q30, q31, [x9, #480]
2:
.endm

.macro el3_fp_restore
    mrs     x9, tpidr_el3
    ldr     x10, [x9, #{fp_fpcr}]
    msr     fpcr, x10
    ldr     x10, [x9, #{fp_fpsr}]
    msr     fpsr, x10
    add     x9, x9, #{fp_regs}
    mrs     x10, cptr_el3
    tbz     x10, #{cptr_ez_bit}, 1f
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ldr     z\n, [x9, #\n, mul vl]
    .endr
    b       2f
1:
    ldp     q0, q1, [x9, #0]
    ldp     q2, q3, [x9, #32]
    ldp     q4, q5, [x9, #64]
    ldp     q6, q7, [x9, #96]
    ldp     q8, q9, [x9, #128]
    ldp     q10, q11, [x9, #160]
    ldp     q12, q13, [x9, #192]
    ldp     q14, q15, [x9, #224]
    ldp     q16, q17, [x9, #256]
    ldp     q18, q19, [x9, #288]
    ldp     q20, q21, [x9, #320]
    ldp     q22, q23, [x9, #352]
    ldp     q24, q25, [x9, #384]
    ldp     q26, q27, [x9, #416]
    ldp     q28, q29, [x9, #448]
    ldp     q30, q31, [x9, #480]
2:
.endm

.macro el3_vector target
    .balign 0x80
    b       \target
.endm

    .balign 0x800
el3_vectors:
    el3_vector el3_bad      /* current EL, SP_EL0 */
    el3_vector el3_bad
    el3_vector el3_bad
    el3_vector el3_bad
    el3_vector el3_bad      /* current EL, SP_EL3 */
    el3_vector el3_bad
    el3_vector el3_bad
    el3_vector el3_bad
    el3_vector el3_sync_lower   /* lower EL, AArch64: sync */
    el3_vector el3_bad          /* IRQ (stays non-secure) */
    el3_vector el3_fiq_lower    /* FIQ */
    el3_vector el3_bad          /* SError */
    el3_vector el3_sync_lower   /* lower EL, AArch32 */
    el3_vector el3_bad
    el3_vector el3_fiq_lower
    el3_vector el3_bad

el3_sync_lower:
    el3_save
    el3_fp_save
    bl      el3_sync
    b       el3_restore
el3_fiq_lower:
    el3_save
    el3_fp_save
    bl      el3_fiq
el3_restore:
    el3_fp_restore
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    add     sp, sp, #256
    eret
el3_bad:
    el3_save
    bl      el3_unexpected
    b       .Lel3_halt
"#,
    sctlr = const SCTLR_RES1,
    secure_base = const SECURE_BASE,
    aff_mask = const MPIDR_AFF_MASK,
    ready_addr = const READY_ADDR,
    ready_magic = const READY_MAGIC,
    ready_gicd_off = const READY_GICD - READY_ADDR,
    gicd_ctlr = const GICD_CTLR,
    gicd_grp0_bit = const GICD_CTLR_GRP0_BIT,
    max_cpus = const MAX_CPUS,
    stack_shift = const STACK_SHIFT,
    hcr = const HCR_EL2_RW,
    spsr = const SPSR_EL2H_MASKED,
    fp_fpcr = const FP_FPCR,
    fp_fpsr = const FP_FPSR,
    fp_regs = const FP_REGS,
    cptr_ez_bit = const CPTR_EL3_EZ_BIT,
);

/// Registers saved by the vectors; x0..x3 go back to the caller.
#[repr(C)]
pub struct Frame {
    pub(super) x: [u64; 32],
}
