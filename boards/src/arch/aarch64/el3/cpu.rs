//! Each CPU's EL3 registers, from its ID registers ([`kexboot_monitor::el3`], host-tested).

use core::arch::asm;

use kexboot_monitor::el3;

use super::*;

/// CPUECTLR_EL1.SMPEN (Cortex-A53/A57/A72 TRMs): the core joins the coherency domain.
pub(super) const CPUECTLR_SMPEN: u64 = 1 << 6;

/// Reads the ID registers the EL3 set-up depends on. Those a CPU predates read as zero (their
/// encodings are reserved RAZ in the ID space), so they are read by their generic names:
/// ID_AA64ISAR2_EL1 = S3_0_C0_C6_2, ID_AA64MMFR3_EL1 = S3_0_C0_C7_3,
/// ID_AA64SMFR0_EL1 = S3_0_C0_C4_5.
pub(super) fn read_id_regs() -> el3::IdRegs {
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
