//! Small, named accessors for the system registers the firmware reads, chosen by current EL.

use aarch64_cpu::registers::*;

/// The exception level kexboot runs at (1 or 2; 3 is refused at entry).
pub fn current_el() -> u8 {
    CurrentEL.read(CurrentEL::EL) as u8
}

/// This CPU's affinity (MPIDR_EL1 Aff3..Aff0), as device tree `cpu` nodes' `reg` give it.
pub fn mpidr() -> u64 {
    const AFFINITY_MASK: u64 = 0xff_00ff_ffff;
    MPIDR_EL1.get() & AFFINITY_MASK
}

/// Exception syndrome registers of the current EL.
pub struct Syndrome {
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
    pub spsr: u64,
}

pub fn syndrome() -> Syndrome {
    if current_el() == 2 {
        Syndrome {
            esr: ESR_EL2.get(),
            far: FAR_EL2.get(),
            elr: ELR_EL2.get(),
            spsr: SPSR_EL2.get(),
        }
    } else {
        Syndrome {
            esr: ESR_EL1.get(),
            far: FAR_EL1.get(),
            elr: ELR_EL1.get(),
            spsr: SPSR_EL1.get(),
        }
    }
}

/// Generic timer: counter ticks and their frequency.
pub fn counter() -> u64 {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTPCT_EL0.get()
}

pub fn counter_freq() -> u64 {
    CNTFRQ_EL0.get()
}

/// `rndr` when the CPU has FEAT_RNG (ID_AA64ISAR0_EL1.RNDR), else `None`.
pub fn hw_random() -> Option<u64> {
    if ID_AA64ISAR0_EL1.read(ID_AA64ISAR0_EL1::RNDR) == 0 {
        return None;
    }
    let value: u64;
    let ok: u64;
    // SAFETY: FEAT_RNG is implemented (checked above); RNDR only reads a random number and sets
    // NZCV (Z set on failure), which the asm declares by not using `preserves_flags`.
    unsafe {
        core::arch::asm!(
            "mrs {v}, s3_3_c2_c4_0", // RNDR
            "cset {ok}, ne",
            v = out(reg) value,
            ok = out(reg) ok,
            options(nomem, nostack),
        );
    }
    (ok != 0).then_some(value)
}
