//! kexboot as EL3 firmware (`qemu-system-aarch64 -M virt,secure=on,virtualization=on -bios`):
//! a small resident PSCI monitor in secure RAM, then the normal kexboot at non-secure EL2.
//!
//! At reset every CPU starts at the flash reset vector at EL3, MMU off. The CPU with MPIDR
//! affinity 0 copies the image to secure RAM ([`SECURE_BASE`]) and runs the usual start-up there
//! (relocations, BSS, stack), then [`el3_primary_main`]: it saves QEMU's device tree, builds the
//! PSCI table ([`kexboot_relocate::psci`]) from the tree's cpu nodes, gives the GIC's interrupts to
//! the non-secure world (all but [`RECALL_SGI`], kept in group 0 as an FIQ to EL3), copies the
//! pristine image from flash to non-secure RAM and enters it at NS-EL2 with x0 = DTB,
//! x1 = [`MONITOR_MAGIC`], x2 = PSCI version. The other CPUs wait in flash until the monitor is
//! ready, then move to their pen in the secure copy ([`el3_secondary_main`]).
//!
//! The monitor runs with the MMU off (every access is Device memory, so no exclusives): calls
//! are serialised by a bakery lock made of plain loads and stores. Pens wait with `wfe`; CPU_ON
//! wakes them with `sev`. SYSTEM_RESET recalls every running CPU with [`RECALL_SGI`] (an FIQ
//! routed to EL3 that no lower-EL mask can hold off), waits for them in their pens, copies the
//! pristine image from flash again and re-enters kexboot at NS-EL2 with the device tree the last
//! kernel was booted with (registered by kexboot with `KEXBOOT_SET_RESET_DTB`), so that entry is
//! warm; without one it uses QEMU's saved tree (a cold entry). SYSTEM_OFF drives the secure
//! PL061's power-off pin.
//!
//! The non-secure side of this file ([`adopt`], [`psci_method`], [`note_next_dtb`]) is how the
//! normal kexboot learns it runs under its own monitor and describes it to Linux.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use kexboot_loader::dt::DtInfo;
use kexboot_relocate::el3;
use kexboot_relocate::psci::{self, fid, Action, CpuState, Psci, MAX_CPUS, MPIDR_AFF_MASK};

/// QEMU virt's secure RAM (`secram@e000000`, 16 MiB; `hw/arm/virt.c` `VIRT_SECURE_MEM`).
pub const SECURE_BASE: u64 = 0x0e00_0000;
const SECURE_SIZE: u64 = 0x0100_0000;
/// Where the monitor keeps QEMU's device tree (secure RAM, above the image).
const SAVED_DTB: u64 = SECURE_BASE + (8 << 20);
const MAX_DTB: u64 = 2 << 20;
/// The words secondaries poll in flash until the monitor is ready (last page of secure RAM):
/// [`READY_MAGIC`], then the GIC distributor's address.
///
/// Secure RAM survives resets the monitor did not arrange (a watchdog, QEMU `system_reset`, the
/// GPIO restart), so a stale `READY_MAGIC` may be there when the CPUs come out of reset, before
/// the boot CPU clears it: secondaries would then run in the secure copy while it is copied
/// again and its BSS (their stacks, the lock, the monitor state) zeroed. So the magic counts
/// only while the distributor's group 0 is enabled (secure GICD_CTLR.EnableGrp0): every reset
/// clears that bit, the non-secure world cannot set or clear it, and the boot CPU sets it as
/// the last step before the magic. The magic is also cleared before the GPIO restart.
const READY_ADDR: u64 = SECURE_BASE + SECURE_SIZE - 0x1000;
const READY_GICD: u64 = READY_ADDR + 8;
const READY_MAGIC: u64 = 0x5245_4144_5933_4c45; // "EL3YDAER"
/// Where QEMU puts the device tree for firmware (start of RAM) when x0 does not say.
const QEMU_VIRT_RAM_BASE: u64 = 0x4000_0000;
/// The secure PL061 (`secure-status = "okay"` in QEMU's tree): pin 0 powers off, pin 1 resets.
const SECURE_GPIO: u64 = 0x090b_0000;
const GPIO_POWEROFF_PIN: u32 = 0;
const GPIO_RESTART_PIN: u32 = 1;
const PL061_DIR: u64 = 0x400;

/// x1 at the NS-EL2 entry when kexboot's own monitor started it ("KEXBOOT3").
pub const MONITOR_MAGIC: u64 = 0x3354_4f4f_4258_454b;

/// The SGI kept secure (group 0, FIQ) to recall CPUs for SYSTEM_RESET; Linux uses SGIs 0-7.
const RECALL_SGI: u32 = 15;
/// GICv2 distributor and CPU interface registers.
const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_IGROUPR: u64 = 0x080;
const GICD_ISENABLER: u64 = 0x100;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_ITARGETSR: u64 = 0x800;
const GICD_SGIR: u64 = 0xf00;
const GICC_CTLR: u64 = 0x000;
const GICC_PMR: u64 = 0x004;
const GICC_IAR: u64 = 0x00c;
const GICC_EOIR: u64 = 0x010;
/// GICD_CTLR (secure view): EnableGrp0 | EnableGrp1.
const GICD_CTLR_GRP0_BIT: u32 = 0;
const GICD_CTLR_ENABLE: u32 = (1 << GICD_CTLR_GRP0_BIT) | 0b10;
/// GICC_CTLR (secure view): EnableGrp0 | EnableGrp1 | FIQEn (group 0 signalled as FIQ).
const GICC_CTLR_GRP0_FIQ: u32 = 0b1011;

/// SCTLR_ELx RES1 bits (Armv8.0): MMU, caches and alignment checks off, little-endian.
const SCTLR_RES1: u64 = 0x30c5_0830;
/// HCR_EL2: only RW (EL1 is AArch64); the kernel sets the rest.
const HCR_EL2_RW: u64 = 1 << 31;
/// SPSR_EL3 for an entry at EL2h with D, A, I, F masked.
const SPSR_EL2H_MASKED: u64 = 0x3c9;
/// ESR_ELx exception classes of SMC from AArch64 and AArch32.
const EC_SMC64: u64 = 0x17;
const EC_SMC32: u64 = 0x13;

/// Stack of each CPU in the monitor, indexed by MPIDR Aff0 (one cluster of at most 8).
const EL3_STACK_SIZE: usize = 16 << 10;
const STACK_SHIFT: u32 = 14;
const _: () = assert!(1 << STACK_SHIFT == EL3_STACK_SIZE);

#[repr(C, align(16))]
pub struct Stacks([[u8; EL3_STACK_SIZE]; MAX_CPUS]);

#[no_mangle]
pub static mut KEXBOOT_EL3_STACKS: Stacks = Stacks([[0; EL3_STACK_SIZE]; MAX_CPUS]);

/// The lower EL's FP/SIMD state while the monitor runs (the vectors' `el3_fp_save`), one area
/// per CPU: FPCR, FPSR, then Q0-Q31 or, with SVE, Z0-Z31 at up to 2048 bits each.
const FP_FPCR: usize = 0;
const FP_FPSR: usize = 8;
const FP_REGS: usize = 16;
/// The largest SVE/SME vector length in bytes (2048 bits).
const VL_MAX_BYTES: usize = 256;
const FP_AREA_SIZE: usize = FP_REGS + 32 * VL_MAX_BYTES;
/// CPTR_EL3.EZ as a bit number: SVE is enabled (so the vectors save whole Z registers).
const CPTR_EL3_EZ_BIT: u32 = el3::cptr::EZ.trailing_zeros();

#[repr(C, align(16))]
struct FpAreas([[u8; FP_AREA_SIZE]; MAX_CPUS]);

static mut KEXBOOT_EL3_FP: FpAreas = FpAreas([[0; FP_AREA_SIZE]; MAX_CPUS]);

/// CPUECTLR_EL1.SMPEN (Cortex-A53/A57/A72 TRMs): the core joins the coherency domain.
const CPUECTLR_SMPEN: u64 = 1 << 6;

/// Reads the ID registers the EL3 set-up depends on. Those a CPU predates read as zero (their
/// encodings are reserved RAZ in the ID space), so they are read by their generic names:
/// ID_AA64ISAR2_EL1 = S3_0_C0_C6_2, ID_AA64MMFR3_EL1 = S3_0_C0_C7_3,
/// ID_AA64SMFR0_EL1 = S3_0_C0_C4_5.
fn read_id_regs() -> el3::IdRegs {
    let mut id = el3::IdRegs::default();
    // SAFETY: reading ID registers has no effect.
    unsafe {
        asm!(
            "mrs {midr}, midr_el1",
            "mrs {pfr0}, id_aa64pfr0_el1",
            "mrs {pfr1}, id_aa64pfr1_el1",
            "mrs {dfr0}, id_aa64dfr0_el1",
            "mrs {isar1}, id_aa64isar1_el1",
            "mrs {isar2}, s3_0_c0_c6_2",
            "mrs {mmfr0}, id_aa64mmfr0_el1",
            "mrs {mmfr1}, id_aa64mmfr1_el1",
            "mrs {mmfr3}, s3_0_c0_c7_3",
            "mrs {smfr0}, s3_0_c0_c4_5",
            midr = out(reg) id.midr,
            pfr0 = out(reg) id.pfr0,
            pfr1 = out(reg) id.pfr1,
            dfr0 = out(reg) id.dfr0,
            isar1 = out(reg) id.isar1,
            isar2 = out(reg) id.isar2,
            mmfr0 = out(reg) id.mmfr0,
            mmfr1 = out(reg) id.mmfr1,
            mmfr3 = out(reg) id.mmfr3,
            smfr0 = out(reg) id.smfr0,
            options(nomem, nostack, preserves_flags),
        )
    };
    id
}

/// Every CPU once at EL3, before anything runs in the non-secure world (and so before any cache
/// is enabled: the monitor itself runs with the MMU and caches off). The values come from
/// [`el3::el3_regs`] (tested on the host); the order is the Arm ARM's: CPTR_EL3 enables SVE/SME
/// before ZCR_EL3/SMCR_EL3 are written.
///
/// What QEMU cannot show: CPUECTLR_EL1.SMPEN (QEMU's caches are always coherent; without it a
/// real A53/A57/A72 is not in the coherency domain and its caches diverge), MDCR_EL3,
/// CNTFRQ_EL0 and CNTVOFF_EL2 (UNKNOWN at reset on real cores, zero or right on QEMU).
#[no_mangle]
extern "C" fn el3_cpu_setup() {
    let r = el3::el3_regs(&read_id_regs());
    // SAFETY: this CPU's own per-CPU area, used only by its own exception vectors.
    let fp_area = unsafe { core::ptr::addr_of_mut!(KEXBOOT_EL3_FP.0[my_slot()]) } as u64;
    // SAFETY: EL3 control registers of this CPU, written before it first enters the
    // non-secure world; each value is what the non-secure world needs (see `el3_regs`).
    unsafe {
        asm!(
            "msr cptr_el3, {cptr}",
            "isb",
            "msr scr_el3, {scr}",
            "msr mdcr_el3, {mdcr}",
            "msr cntfrq_el0, {freq}",
            "msr cntvoff_el2, xzr",
            "msr tpidr_el3, {fp}",
            "isb",
            cptr = in(reg) r.cptr,
            scr = in(reg) r.scr,
            mdcr = in(reg) r.mdcr,
            freq = in(reg) crate::qemu_virt::CNTFRQ_HZ,
            fp = in(reg) fp_area,
            options(nostack, preserves_flags),
        );
        if let Some(zcr) = r.zcr {
            // ZCR_EL3 (S3_6_C1_C2_0): CPTR_EL3.EZ was set above.
            asm!("msr s3_6_c1_c2_0, {v}", "isb", v = in(reg) zcr, options(nostack, preserves_flags));
        }
        if let Some(smcr) = r.smcr {
            // SMCR_EL3 (S3_6_C1_C2_6): CPTR_EL3.ESM was set above.
            asm!("msr s3_6_c1_c2_6, {v}", "isb", v = in(reg) smcr, options(nostack, preserves_flags));
        }
        if r.smpen {
            // CPUECTLR_EL1 (S3_1_C15_C2_1), IMPLEMENTATION DEFINED, read-modify-write.
            asm!(
                "mrs {t}, s3_1_c15_c2_1",
                "orr {t}, {t}, {smpen}",
                "msr s3_1_c15_c2_1, {t}",
                "isb",
                t = out(reg) _,
                smpen = in(reg) CPUECTLR_SMPEN,
                options(nostack, preserves_flags),
            );
        }
    }
}

extern "C" {
    static __image_start: u8;
    static __bss_start: u8;
    static __image_end: u8;
    fn kexboot_el3_enter_ns(entry: u64, x0: u64, x1: u64, x2: u64, stack_top: u64) -> !;
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
    el3_fp_save
    mov     x0, sp
.endm

/* The lower EL's FP/SIMD state, saved to this CPU's area (TPIDR_EL3, el3_cpu_setup) before any
   monitor code runs, as SMCCC asks: the Rust code here may use the vector registers (memcpy,
   moves of structs). With SVE enabled (CPTR_EL3.EZ) the whole Z registers are saved at EL3's vector length (ZCR_EL3 at
   its largest, so at least the caller's): an FP/SIMD write at EL3 would zero their upper bits.
   P0-P15 and FFR are never written by the monitor (no SVE code is generated for it). Not
   covered: a caller in SME streaming mode (Linux never calls SMC in it). Uses x9, x10. */
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
    bl      el3_sync
    b       el3_restore
el3_fiq_lower:
    el3_save
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
    x: [u64; 32],
}

/// What the monitor knows, shared by every CPU under [`Bakery`].
struct Monitor {
    psci: Option<Psci>,
    /// GIC CPU-interface bit of each table index (from its own GICD_ITARGETSR0).
    gic_mask: [u8; MAX_CPUS],
    gicd: u64,
    gicc: u64,
    /// Pristine image (flash), its file size, where kexboot runs non-secure.
    flash: u64,
    file_size: u64,
    ns_base: u64,
    ns_size: u64,
    /// QEMU's tree: where it was and its length (the copy is at SAVED_DTB).
    dtb: u64,
    dtb_len: u64,
    ram: (u64, u64),
}

struct Shared(UnsafeCell<Monitor>);
// SAFETY: only touched inside `locked` (a bakery lock over every CPU), or by the boot CPU
// before the secondaries are let out of flash.
unsafe impl Sync for Shared {}

static MONITOR: Shared = Shared(UnsafeCell::new(Monitor {
    psci: None,
    gic_mask: [0; MAX_CPUS],
    gicd: 0,
    gicc: 0,
    flash: 0,
    file_size: 0,
    ns_base: 0,
    ns_size: 0,
    dtb: 0,
    dtb_len: 0,
    ram: (0, 0),
}));

/// Lamport's bakery lock: plain loads and stores only (the monitor runs with the MMU off,
/// where exclusives may never succeed), one ticket per CPU (by MPIDR Aff0).
struct Bakery {
    choosing: UnsafeCell<[u32; MAX_CPUS]>,
    number: UnsafeCell<[u32; MAX_CPUS]>,
}
// SAFETY: every access is a volatile load or store of one aligned word; the algorithm is
// correct for such accesses (Device memory, ordered by `dmb`).
unsafe impl Sync for Bakery {}

static LOCK: Bakery = Bakery {
    choosing: UnsafeCell::new([0; MAX_CPUS]),
    number: UnsafeCell::new([0; MAX_CPUS]),
};

fn dmb() {
    // SAFETY: a barrier has no other effect.
    unsafe { asm!("dmb sy", options(nostack, preserves_flags)) };
}

fn sev() {
    // SAFETY: `dsb` + `sev` only order memory and wake CPUs in `wfe`.
    unsafe { asm!("dsb sy", "sev", options(nostack, preserves_flags)) };
}

fn wfe() {
    // SAFETY: waits for an event; no state changes.
    unsafe { asm!("wfe", options(nostack, nomem, preserves_flags)) };
}

impl Bakery {
    fn get(a: &UnsafeCell<[u32; MAX_CPUS]>, i: usize) -> u32 {
        // SAFETY: `i < MAX_CPUS` (callers index by `my_slot`); a volatile word read.
        unsafe { core::ptr::read_volatile((a.get() as *const u32).add(i)) }
    }
    fn set(a: &UnsafeCell<[u32; MAX_CPUS]>, i: usize, v: u32) {
        // SAFETY: as `get`, a volatile word write of this CPU's own slot.
        unsafe { core::ptr::write_volatile((a.get() as *mut u32).add(i), v) }
    }

    fn lock(&self, me: usize) {
        Self::set(&self.choosing, me, 1);
        dmb();
        let max = (0..MAX_CPUS).map(|j| Self::get(&self.number, j)).max();
        Self::set(&self.number, me, max.unwrap_or(0) + 1);
        dmb();
        Self::set(&self.choosing, me, 0);
        dmb();
        let mine = (Self::get(&self.number, me), me);
        for j in (0..MAX_CPUS).filter(|&j| j != me) {
            while Self::get(&self.choosing, j) != 0 {
                core::hint::spin_loop();
            }
            loop {
                let n = Self::get(&self.number, j);
                if n == 0 || (n, j) > mine {
                    break;
                }
                core::hint::spin_loop();
            }
        }
        dmb();
    }

    fn unlock(&self, me: usize) {
        dmb();
        Self::set(&self.number, me, 0);
        dmb();
    }
}

/// This CPU's lock slot and stack: MPIDR Aff0 (checked at arrival: one cluster, < MAX_CPUS).
fn my_slot() -> usize {
    (super::regs::mpidr() & 0xff) as usize % MAX_CPUS
}

fn stack_top(slot: usize) -> u64 {
    let base = core::ptr::addr_of!(KEXBOOT_EL3_STACKS) as u64;
    base + ((slot as u64 + 1) << STACK_SHIFT)
}

/// Runs `f` on the monitor state under the lock.
fn locked<R>(f: impl FnOnce(&mut Monitor) -> R) -> R {
    let me = my_slot();
    LOCK.lock(me);
    // SAFETY: the bakery lock gives this CPU sole access to the monitor state.
    let r = f(unsafe { &mut *MONITOR.0.get() });
    LOCK.unlock(me);
    r
}

fn mmio_read(addr: u64) -> u32 {
    // SAFETY: callers pass GIC/GPIO registers found in the device tree or QEMU's fixed map.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn mmio_write(addr: u64, v: u32) {
    // SAFETY: as `mmio_read`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

/// Gives every SPI to the non-secure world (group 1); [`gic_dist_enable`] comes last.
fn gic_dist_init(gicd: u64) {
    let lines = (mmio_read(gicd + GICD_TYPER) & 0x1f) as u64;
    for n in 1..=lines {
        mmio_write(gicd + GICD_IGROUPR + 4 * n, u32::MAX);
    }
}

/// Enables both groups: the last step of the boot CPU's set-up, and what tells secondaries the
/// ready magic is of this boot (see [`READY_ADDR`]).
fn gic_dist_enable(gicd: u64) {
    mmio_write(gicd + GICD_CTLR, GICD_CTLR_ENABLE);
}

/// This CPU's banked GIC state: SGIs and PPIs non-secure but [`RECALL_SGI`], which is group 0,
/// enabled, highest priority and signalled as FIQ. Returns this CPU's target-list bit.
fn gic_cpu_init(gicd: u64, gicc: u64) -> u8 {
    mmio_write(gicd + GICD_IGROUPR, !(1 << RECALL_SGI));
    mmio_write(gicd + GICD_ISENABLER, 1 << RECALL_SGI);
    let prio = gicd + GICD_IPRIORITYR + u64::from(RECALL_SGI / 4) * 4;
    let shift = (RECALL_SGI % 4) * 8;
    mmio_write(prio, mmio_read(prio) & !(0xff << shift));
    mmio_write(gicc + GICC_PMR, 0xff);
    mmio_write(
        gicc + GICC_CTLR,
        mmio_read(gicc + GICC_CTLR) | GICC_CTLR_GRP0_FIQ,
    );
    (mmio_read(gicd + GICD_ITARGETSR) & 0xff) as u8
}

fn gpio_pulse(pin: u32) -> ! {
    // SAFETY: the ready word (secure RAM): after this reset the secondaries wait for the new
    // boot's monitor (see READY_ADDR).
    unsafe { core::ptr::write_volatile(READY_ADDR as *mut u64, 0) };
    dmb();
    mmio_write(
        SECURE_GPIO + PL061_DIR,
        mmio_read(SECURE_GPIO + PL061_DIR) | (1 << pin),
    );
    // PL061 data: address bits 9:2 mask the pins written.
    let data = SECURE_GPIO + (4u64 << pin);
    mmio_write(data, 0);
    mmio_write(data, 1 << pin);
    loop {
        wfe();
    }
}

/// Checks a device tree header in memory: magic, size, alignment, inside `ram`.
fn dtb_len_at(addr: u64, ram: (u64, u64)) -> Option<u64> {
    if !addr.is_multiple_of(8) || addr < ram.0 || addr.checked_add(40)? > ram.1 {
        return None;
    }
    let be = |off: u64| u32::from_be(mmio_read(addr + off)) as u64;
    let len = be(4);
    (be(0) == 0xd00d_feed && (40..=MAX_DTB).contains(&len) && addr + len <= ram.1).then_some(len)
}

/// Size of a device tree header (`struct fdt_header`).
const FDT_HEADER_LEN: u64 = 40;

/// Cleans and invalidates `[addr, addr + len)` to PoC by VA (= PA: the MMU is off at EL3).
fn clean_inval(addr: u64, len: u64) {
    // SAFETY: callers pass ranges inside RAM; cleaning and invalidating never changes what
    // memory holds, only where its newest copy is.
    unsafe { kexboot_relocate::arch::clean_inval_dcache_range(addr, len) };
}

/// The device tree the last kernel registered, checked and made current in memory: Linux
/// edits it with its caches on (`rng-seed`, `kaslr-seed`), and the monitor reads with the MMU
/// off, straight from memory. So the header's lines are cleaned+invalidated before it is read,
/// then the whole blob it declares (QEMU has no caches to show this).
fn last_kernel_dtb(addr: u64, ram: (u64, u64)) -> Option<u64> {
    if addr < ram.0 || addr.checked_add(FDT_HEADER_LEN)? > ram.1 {
        return None;
    }
    clean_inval(addr, FDT_HEADER_LEN);
    let len = dtb_len_at(addr, ram)?;
    clean_inval(addr, len);
    Some(len)
}

fn copy(dst: u64, src: u64, len: u64) {
    // SAFETY: callers copy between memory they own (flash → NS image, saved DTB); the ranges
    // never overlap (secure RAM, flash, NS RAM are distinct).
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len as usize) };
}

/// Copies the pristine image to non-secure RAM and makes it visible to instruction fetches.
fn install_ns_image(m: &Monitor) {
    // SAFETY: the NS image range is RAM the monitor chose for kexboot; any line cached there by
    // a previous kernel is discarded, as the copy replaces it.
    unsafe { super::dcache_inval_range(m.ns_base, m.ns_base + m.ns_size) };
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
    let dtb = if dtb_hint != 0 {
        dtb_hint
    } else {
        QEMU_VIRT_RAM_BASE
    };
    let any_ram = (QEMU_VIRT_RAM_BASE, u64::MAX);
    let Some(dtb_len) = dtb_len_at(dtb, any_ram) else {
        super::halt() // no device tree, no console: nothing can be said
    };
    // SAFETY: the header was checked; the blob lies in RAM.
    let blob = unsafe { core::slice::from_raw_parts(dtb as *const u8, dtb_len as usize) };
    let Ok(info) = DtInfo::read(blob) else {
        super::halt()
    };
    if let Some((compat, base)) = &info.stdout {
        if compat.contains("pl011") {
            // SAFETY: the tree's stdout-path names this PL011 (reachable from the secure side).
            unsafe { crate::console::init(*base as usize) };
        }
    }
    let fail = |why: &str| -> ! {
        println!("kexboot: EL3: {why}; stopping");
        super::halt()
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
    let Some(ram) = info.memory.first().map(|r| (r.start, r.end)) else {
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
    let me = super::regs::mpidr() & MPIDR_AFF_MASK;
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
        None => super::halt(), // not in the device tree: no one can start it
    }
}

/// The pen: waits for CPU_ON, then enters the non-secure world where it asked.
fn pen(index: usize) -> ! {
    loop {
        if let Some((entry, context)) = locked(|m| m.psci.as_mut()?.take_start(index)) {
            // SAFETY: the entry point was checked to be in non-secure RAM; this CPU's stack.
            unsafe { kexboot_el3_enter_ns(entry, context, 0, 0, stack_top(my_slot())) }
        }
        wfe();
    }
}

fn caller_index(m: &Monitor) -> Option<usize> {
    m.psci.as_ref()?.index_of(super::regs::mpidr())
}

/// A synchronous exception from a lower EL: an SMC, or a monitor bug.
#[no_mangle]
extern "C" fn el3_sync(frame: &mut Frame) {
    let esr: u64;
    // SAFETY: reading ESR_EL3 has no effect.
    unsafe { asm!("mrs {v}, esr_el3", v = out(reg) esr, options(nomem, nostack)) };
    let ec = (esr >> 26) & 0x3f;
    if ec != EC_SMC64 && ec != EC_SMC32 {
        println!("kexboot: EL3: unexpected exception from a lower EL (ESR {esr:#x}); CPU stopped");
        super::halt()
    }
    let [f, a1, a2, a3] = [frame.x[0], frame.x[1], frame.x[2], frame.x[3]];
    let action = locked(|m| {
        let me = caller_index(m)?;
        Some((me, m.psci.as_mut()?.call(me, f, a1, a2, a3)))
    });
    let Some((me, action)) = action else {
        frame.x[0] = psci::ret::INTERNAL_FAILURE as u64;
        return;
    };
    match action {
        Action::Return(v) => frame.x[0] = v as u64,
        Action::Wake(_) => {
            frame.x[0] = psci::ret::SUCCESS as u64;
            sev();
        }
        Action::Park => pen(me),
        Action::Standby => {
            // Outside the lock: the other CPUs go on. Any interrupt wakes the core (also one
            // routed to the lower EL, which is taken right after the return); so does the
            // recall FIQ of a SYSTEM_RESET.
            // SAFETY: `dsb` + `wfi` only order memory and wait.
            unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
            frame.x[0] = psci::ret::SUCCESS as u64;
        }
        Action::SystemOff => {
            println!("kexboot: EL3: SYSTEM_OFF");
            gpio_pulse(GPIO_POWEROFF_PIN)
        }
        Action::SystemReset { recall } => system_reset(me, recall),
    }
}

/// The recall FIQ: acknowledged; during a SYSTEM_RESET this CPU parks, else it returns.
#[no_mangle]
extern "C" fn el3_fiq(_frame: &mut Frame) {
    let parked = locked(|m| {
        let iar = mmio_read(m.gicc + GICC_IAR);
        if iar & 0x3ff < 1020 {
            mmio_write(m.gicc + GICC_EOIR, iar);
        }
        let me = caller_index(m)?;
        let p = m.psci.as_mut()?;
        if p.resetting() && p.state(me) == Some(CpuState::On) {
            p.parked(me);
            return Some(me);
        }
        None
    });
    if let Some(me) = parked {
        sev();
        pen(me)
    }
}

/// SYSTEM_RESET: recall running CPUs, then re-enter kexboot at NS-EL2 from a pristine image.
fn system_reset(me: usize, recall: u32) -> ! {
    let targets = locked(|m| {
        (0..MAX_CPUS)
            .filter(|i| recall & (1 << i) != 0)
            .fold(0u32, |t, i| t | u32::from(m.gic_mask[i]))
    });
    let gicd = locked(|m| m.gicd);
    if targets != 0 {
        mmio_write(gicd + GICD_SGIR, (targets << 16) | RECALL_SGI);
    }
    let freq = super::regs::counter_freq().max(1);
    let t0 = super::regs::counter();
    let all = loop {
        if locked(|m| m.psci.as_ref().is_some_and(|p| p.all_off(recall))) {
            break true;
        }
        if super::regs::counter().wrapping_sub(t0) > freq {
            break false;
        }
        core::hint::spin_loop();
    };
    let (entry, dtb, warm) = locked(|m| {
        let registered = m.psci.as_ref().map_or(0, |p| p.reset_dtb());
        let ns_image = (m.ns_base, m.ns_base + m.ns_size);
        let usable = last_kernel_dtb(registered, m.ram)
            .is_some_and(|len| registered + len <= ns_image.0 || registered >= ns_image.1);
        let dtb = if usable {
            registered
        } else {
            // RAM the last kernel used: lines it left dirty there would later overwrite the
            // copy made around the caches.
            clean_inval(m.dtb, m.dtb_len);
            copy(m.dtb, SAVED_DTB, m.dtb_len);
            m.dtb
        };
        // The flash must still hold kexboot (arm64 Image magic), else a real reset.
        if mmio_read(m.flash + 0x38) != 0x644d_5241 {
            gpio_pulse(GPIO_RESTART_PIN)
        }
        install_ns_image(m);
        if let Some(p) = m.psci.as_mut() {
            p.reset_done(me);
        }
        (m.ns_base, dtb, usable)
    });
    println!(
        "kexboot: EL3: SYSTEM_RESET: {} CPUs recalled{}; re-entering kexboot with the {} device tree",
        recall.count_ones(),
        if all { "" } else { " (some did not answer)" },
        if warm { "last kernel's" } else { "firmware's" }
    );
    // SAFETY: the pristine image is in place; this CPU's monitor stack is its own.
    unsafe {
        kexboot_el3_enter_ns(
            entry,
            dtb,
            MONITOR_MAGIC,
            psci::PSCI_VERSION_1_0,
            stack_top(my_slot()),
        )
    }
}

/// A monitor bug (exception at EL3): reported, CPU stopped.
#[no_mangle]
extern "C" fn el3_unexpected(_frame: &mut Frame) {
    let (esr, elr): (u64, u64);
    // SAFETY: reading ESR_EL3 and ELR_EL3 has no effect.
    unsafe {
        asm!("mrs {e}, esr_el3", "mrs {l}, elr_el3", e = out(reg) esr, l = out(reg) elr, options(nomem, nostack))
    };
    println!("kexboot: EL3: exception in the monitor (ESR {esr:#x}, ELR {elr:#x}); CPU stopped");
}

// ---- The non-secure side: kexboot at EL2 under its own monitor. ----

/// x1 and x2 of kexboot's NS entry, saved by the entry code (`entry.rs`).
#[no_mangle]
pub static mut KEXBOOT_ENTRY_ARGS: [u64; 2] = [0; 2];

static RESIDENT: AtomicBool = AtomicBool::new(false);

fn smc(function: u64, a1: u64) -> i64 {
    let mut r = function as i64;
    // SAFETY: an SMCCC call to the firmware the device tree or the entry registers named;
    // SMCCC may clobber x0-x17, as `clobber_abi("C")` declares.
    unsafe {
        asm!("smc #0", inlateout("x0") r, inlateout("x1") a1 => _, clobber_abi("C"), options(nostack))
    };
    r
}

/// Called at NS start-up (MMU off, before the console is needed for it): finds out whether
/// kexboot's own EL3 monitor is below (entry x1, or on a warm entry a PSCI `smc` firmware that
/// knows kexboot's SiP call), says so, and makes `info` describe PSCI through SMC.
pub fn adopt(info: &mut DtInfo) {
    // SAFETY: written once by the entry code before any Rust ran.
    let [x1, x2] = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(KEXBOOT_ENTRY_ARGS)) };
    let from_entry = x1 == MONITOR_MAGIC;
    let probed = !from_entry
        && super::current_el() == 2
        && info.psci_method.as_deref() == Some("smc")
        && smc(fid::PSCI_FEATURES, fid::KEXBOOT_SET_RESET_DTB) == psci::ret::SUCCESS;
    if from_entry || probed {
        RESIDENT.store(true, Ordering::Relaxed);
        info.psci_method = Some("smc".into());
        let version = if from_entry {
            x2
        } else {
            smc(fid::PSCI_VERSION, 0) as u64
        };
        println!(
            "kexboot: running under kexboot's EL3 PSCI monitor (PSCI {}.{}, smc)",
            version >> 16,
            version & 0xffff
        );
    }
}

/// The PSCI method kexboot describes in `/psci` for the next kernel: `smc` under its own
/// monitor, else `None` (the tree is passed on as it came).
pub fn psci_method() -> Option<&'static str> {
    RESIDENT.load(Ordering::Relaxed).then_some("smc")
}

/// Tells the monitor where the next kernel's device tree will be, so that its SYSTEM_RESET
/// re-enters kexboot with it (a warm entry). Nothing without kexboot's monitor.
pub fn note_next_dtb(dtb: u64) {
    if RESIDENT.load(Ordering::Relaxed) {
        let r = smc(fid::KEXBOOT_SET_RESET_DTB, dtb);
        if r != 0 {
            log::warn!("EL3 monitor refused the reset device tree at {dtb:#x}: {r}");
        }
    }
}

/// `enable-method = "psci"` for every cpu node when kexboot's monitor is below, else `None`.
pub fn cpu_props(info: &DtInfo) -> Option<alloc::vec::Vec<kexboot_loader::dt::CpuProps<'static>>> {
    psci_method()?;
    Some(
        info.cpu_nodes
            .iter()
            .map(|c| kexboot_loader::dt::CpuProps {
                reg: c.reg,
                props: alloc::vec![("enable-method", b"psci\0".to_vec())],
            })
            .collect(),
    )
}

/// The tree for the next kernel with kexboot's monitor in `/psci` (unchanged without it).
pub fn describe(dtb: alloc::vec::Vec<u8>) -> alloc::vec::Vec<u8> {
    let Some(method) = psci_method() else {
        return dtb;
    };
    match kexboot_loader::dt::set_psci(&dtb, method) {
        Ok(d) => d,
        Err(e) => {
            log::error!("device tree: cannot describe the EL3 PSCI monitor: {e}");
            dtb
        }
    }
}
