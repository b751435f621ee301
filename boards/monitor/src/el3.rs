//! What kexboot's EL3 monitor writes into the EL3 control registers of each CPU, computed from
//! that CPU's ID registers.
//!
//! Linux `Documentation/arch/arm64/booting.rst` asks EL3 firmware to let the non-secure world
//! use every feature the CPU has: SVE (`CPTR_EL3.EZ`, `ZCR_EL3.LEN` at its largest), SME
//! (`CPTR_EL3.ESM`, `SCR_EL3.EnTP2`, `SMCR_EL3`), pointer authentication (`SCR_EL3.API`/`APK`),
//! MTE (`SCR_EL3.ATA`), FGT (`SCR_EL3.FGTEn`), HCRX (`SCR_EL3.HXEn`), TCR2/SCTLR2, ... A bit
//! left clear makes the kernel's first use of the feature trap to EL3 (e.g. SVE: ESR EC 0x19),
//! where the monitor can only stop the CPU. TF-A does the same in `lib/el3_runtime` and
//! `lib/extensions` (`cm_setup_context`, `sve_enable`, `sme_enable`, ...). Field positions are
//! those of the Arm ARM (DDI 0487), "SCR_EL3", "CPTR_EL3", "MDCR_EL3" and the `ID_AA64*`
//! registers.
//!
//! Pure logic: the register reads and writes are in `boards/` (`arch/aarch64/el3.rs`).

/// The raw ID registers the set-up depends on, as `mrs` reads them at EL3. Registers a CPU
/// does not implement (e.g. `ID_AA64MMFR3_EL1` before Armv8.9) read as zero: the Arm ARM
/// reserves their encodings as RAZ, so zero means "feature absent" everywhere below.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdRegs {
    pub midr: u64,
    pub pfr0: u64,
    pub pfr1: u64,
    pub dfr0: u64,
    pub isar1: u64,
    pub isar2: u64,
    pub mmfr0: u64,
    pub mmfr1: u64,
    pub mmfr3: u64,
    pub smfr0: u64,
}

/// A 4-bit ID register field at `shift` (Arm ARM: unsigned unless said otherwise).
#[derive(Clone, Copy)]
struct Field(u32);

impl Field {
    fn get(self, reg: u64) -> u64 {
        (reg >> self.0) & 0xf
    }
}

// ID_AA64PFR0_EL1
const PFR0_SVE: Field = Field(32);
const PFR0_CSV2: Field = Field(56);
// ID_AA64PFR1_EL1
const PFR1_MTE: Field = Field(8);
const PFR1_SME: Field = Field(24);
const PFR1_CSV2_FRAC: Field = Field(32);
const PFR1_GCS: Field = Field(44);
// ID_AA64DFR0_EL1
const DFR0_PMUVER: Field = Field(8);
const DFR0_PMSVER: Field = Field(32);
const DFR0_TRACEBUFFER: Field = Field(44);
const DFR0_BRBE: Field = Field(52);
// ID_AA64ISAR1_EL1 / ID_AA64ISAR2_EL1: the pointer authentication algorithms
const ISAR1_APA: Field = Field(4);
const ISAR1_API: Field = Field(8);
const ISAR1_GPA: Field = Field(24);
const ISAR1_GPI: Field = Field(28);
const ISAR2_GPA3: Field = Field(8);
const ISAR2_APA3: Field = Field(12);
// ID_AA64MMFR0_EL1
const MMFR0_FGT: Field = Field(56);
const MMFR0_ECV: Field = Field(60);
// ID_AA64MMFR1_EL1
const MMFR1_HCX: Field = Field(40);
// ID_AA64MMFR3_EL1
const MMFR3_TCRX: Field = Field(0);
const MMFR3_SCTLRX: Field = Field(4);
const MMFR3_S1PIE: Field = Field(8);
/// ID_AA64SMFR0_EL1.FA64 (bit 63): the full A64 instruction set in streaming mode.
const SMFR0_FA64: u64 = 1 << 63;

/// `ID_AA64PFR1_EL1.MTE` value of FEAT_MTE2 (tag memory; 1 is instructions only, no ATA).
const MTE2: u64 = 2;
/// `ID_AA64PFR1_EL1.SME` value of FEAT_SME2 (ZT0).
const SME2: u64 = 2;
/// `ID_AA64MMFR0_EL1.ECV` value with CNTPOFF_EL2 (FEAT_ECV_POFF).
const ECV_POFF: u64 = 2;
/// `ID_AA64MMFR0_EL1.FGT` value of FEAT_FGT2.
const FGT2: u64 = 2;
/// `ID_AA64PFR0_EL1.CSV2` of FEAT_CSV2_2, `ID_AA64PFR1_EL1.CSV2_frac` of FEAT_CSV2_1p2: both
/// give SCXTNUM_ELx.
const CSV2_2: u64 = 2;
const CSV2_1P2: u64 = 2;
/// `ID_AA64DFR0_EL1.PMUVer` values: PMUv3p5 (SCCD), PMUv3p7 (MCCD), IMPLEMENTATION DEFINED.
const PMUV3P5: u64 = 6;
const PMUV3P7: u64 = 7;
const PMUV3P9: u64 = 9;
const PMU_IMPDEF: u64 = 0xf;

/// SCR_EL3 fields.
pub mod scr {
    /// The lower ELs are non-secure.
    pub const NS: u64 = 1 << 0;
    /// FIQs are taken to EL3 (the monitor's recall SGI is an FIQ).
    pub const FIQ: u64 = 1 << 2;
    /// Bits 5:4 are RES1.
    pub const RES1: u64 = 0b11 << 4;
    /// HVC is enabled at EL1 and above.
    pub const HCE: u64 = 1 << 8;
    /// Secure state may not fetch instructions from non-secure memory.
    pub const SIF: u64 = 1 << 9;
    /// The next lower EL (EL2) is AArch64.
    pub const RW: u64 = 1 << 10;
    /// Pointer authentication keys (APK) and instructions (API) do not trap to EL3. The
    /// monitor itself is not built with branch protection and never touches the keys, so it
    /// need not save them (TF-A saves them only when it signs its own return addresses).
    pub const APK: u64 = 1 << 16;
    pub const API: u64 = 1 << 17;
    /// SCXTNUM_ELx accesses do not trap (FEAT_CSV2_2).
    pub const ENSCXT: u64 = 1 << 25;
    /// Allocation tag access (FEAT_MTE2).
    pub const ATA: u64 = 1 << 26;
    /// The fine-grained trap registers at EL2 do not trap, and take effect (FEAT_FGT).
    pub const FGTEN: u64 = 1 << 27;
    /// CNTPOFF_EL2 is accessible and applied (FEAT_ECV).
    pub const ECVEN: u64 = 1 << 28;
    /// HCRX_EL2 is accessible and takes effect (FEAT_HCX).
    pub const HXEN: u64 = 1 << 38;
    /// Guarded control stacks (FEAT_GCS).
    pub const GCSEN: u64 = 1 << 39;
    /// TPIDR2_EL0 does not trap (FEAT_SME).
    pub const ENTP2: u64 = 1 << 41;
    /// TCR2_ELx (FEAT_TCR2) and SCTLR2_ELx (FEAT_SCTLR2) do not trap.
    pub const TCR2EN: u64 = 1 << 43;
    pub const SCTLR2EN: u64 = 1 << 44;
    /// The permission indirection registers do not trap (FEAT_S1PIE).
    pub const PIEN: u64 = 1 << 45;
    /// The second set of fine-grained trap registers (FEAT_FGT2).
    pub const FGTEN2: u64 = 1 << 59;
}

/// CPTR_EL3 fields (a set bit enables; TFP, TTA, TAM and TCPAC, which trap when set, stay
/// clear: FP/SIMD, trace, activity monitor and CPACR accesses of the lower ELs do not trap).
pub mod cptr {
    /// SVE instructions and ZCR_ELx do not trap (FEAT_SVE).
    pub const EZ: u64 = 1 << 8;
    /// SME instructions and SMCR_ELx do not trap (FEAT_SME).
    pub const ESM: u64 = 1 << 12;
}

/// MDCR_EL3 fields.
pub mod mdcr {
    /// Self-hosted debug is disabled in Secure state (AArch64: SDD; AArch32: SPD32 = 0b10).
    pub const SDD: u64 = 1 << 16;
    pub const SPD32_DISABLED: u64 = 0b10 << 14;
    /// The statistical profiling buffer is owned by the non-secure world, EL1 and EL2 may use it
    /// (NSPB = 0b11; FEAT_SPE).
    pub const NSPB_NS_EL1: u64 = 0b11 << 12;
    /// The trace buffer is owned by the non-secure world, EL1 and EL2 may use it (NSTB = 0b11;
    /// FEAT_TRBE).
    pub const NSTB_NS_EL1: u64 = 0b11 << 24;
    /// The cycle counter does not count in Secure state (PMUv3p5) nor at EL3 (PMUv3p7).
    pub const SCCD: u64 = 1 << 23;
    pub const MCCD: u64 = 1 << 34;
    /// Branch records are allowed in the non-secure world only, its registers do not trap
    /// (SBRBE = 0b01; FEAT_BRBE; `booting.rst` asks 0b01 or 0b11, 0b11 would let the
    /// non-secure world record Secure state too).
    pub const SBRBE_NS: u64 = 0b01 << 32;
    /// The PMUv3p9 registers (PMICNTR_EL0, PMUACR_EL1, ...) do not trap (FEAT_PMUv3p9).
    pub const ENPM2: u64 = 1 << 7;
}

/// ZCR_EL3.LEN and SMCR_EL3.LEN: the largest vector length the field can ask for (2048 bits);
/// the CPU clamps it to the largest it implements, so EL3 and every lower EL may use all of it.
pub const VL_MAX_LEN: u64 = 0xf;
/// SMCR_EL3.FA64 (streaming mode runs the full A64 set) and SMCR_EL3.EZT0 (ZT0 does not trap).
pub const SMCR_FA64: u64 = 1 << 31;
pub const SMCR_EZT0: u64 = 1 << 30;

/// MIDR_EL1 implementer and part number (the fields that name a core design).
const MIDR_CORE_MASK: u64 = 0xff00_fff0;
/// Arm Cortex-A53, A57 and A72 (implementer 0x41, part numbers 0xd03, 0xd07, 0xd08).
pub const MIDR_CORTEX_A53: u64 = 0x4100_d030;
pub const MIDR_CORTEX_A57: u64 = 0x4100_d070;
pub const MIDR_CORTEX_A72: u64 = 0x4100_d080;

/// The EL3 control register values for one CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct El3Regs {
    pub scr: u64,
    pub cptr: u64,
    pub mdcr: u64,
    /// ZCR_EL3 when the CPU has SVE (written after CPTR_EL3.EZ is set).
    pub zcr: Option<u64>,
    /// SMCR_EL3 when the CPU has SME (written after CPTR_EL3.ESM is set).
    pub smcr: Option<u64>,
    /// CPUECTLR_EL1.SMPEN must be set (Cortex-A53/A57/A72) before any cache is enabled: the
    /// core takes part in coherency only then (TRMs, "CPU Extended Control Register").
    pub smpen: bool,
}

fn has(field: Field, reg: u64, min: u64) -> bool {
    field.get(reg) >= min
}

/// Pointer authentication, any algorithm (FEAT_PAuth: APA/API/GPA/GPI, or QARMA3).
fn has_pauth(id: &IdRegs) -> bool {
    [ISAR1_APA, ISAR1_API, ISAR1_GPA, ISAR1_GPI]
        .iter()
        .any(|f| f.get(id.isar1) != 0)
        || [ISAR2_APA3, ISAR2_GPA3]
            .iter()
            .any(|f| f.get(id.isar2) != 0)
}

/// Whether this core needs CPUECTLR_EL1.SMPEN set by firmware (by MIDR_EL1).
pub fn needs_smpen(midr: u64) -> bool {
    [MIDR_CORTEX_A53, MIDR_CORTEX_A57, MIDR_CORTEX_A72].contains(&(midr & MIDR_CORE_MASK))
}

/// The values for a CPU with these ID registers: the non-secure world at AArch64 EL2, with
/// every feature above usable without a trap to EL3.
pub fn el3_regs(id: &IdRegs) -> El3Regs {
    let sve = has(PFR0_SVE, id.pfr0, 1);
    let sme = has(PFR1_SME, id.pfr1, 1);
    let csv2 = PFR0_CSV2.get(id.pfr0);
    let features = [
        (has_pauth(id), scr::API | scr::APK),
        (
            csv2 >= CSV2_2 || (csv2 == 1 && has(PFR1_CSV2_FRAC, id.pfr1, CSV2_1P2)),
            scr::ENSCXT,
        ),
        (has(PFR1_MTE, id.pfr1, MTE2), scr::ATA),
        (has(MMFR0_FGT, id.mmfr0, 1), scr::FGTEN),
        (has(MMFR0_FGT, id.mmfr0, FGT2), scr::FGTEN2),
        (has(MMFR0_ECV, id.mmfr0, ECV_POFF), scr::ECVEN),
        (has(MMFR1_HCX, id.mmfr1, 1), scr::HXEN),
        (has(PFR1_GCS, id.pfr1, 1), scr::GCSEN),
        (sme, scr::ENTP2),
        (has(MMFR3_TCRX, id.mmfr3, 1), scr::TCR2EN),
        (has(MMFR3_SCTLRX, id.mmfr3, 1), scr::SCTLR2EN),
        (has(MMFR3_S1PIE, id.mmfr3, 1), scr::PIEN),
    ];
    let base = scr::NS | scr::FIQ | scr::RES1 | scr::HCE | scr::SIF | scr::RW;
    let scr = features
        .iter()
        .filter(|(on, _)| *on)
        .fold(base, |v, (_, bits)| v | bits);

    let mut cptr = 0;
    if sve {
        cptr |= cptr::EZ;
    }
    if sme {
        cptr |= cptr::ESM;
    }

    let pmu = DFR0_PMUVER.get(id.dfr0);
    let pmu_at_least = |v| pmu != PMU_IMPDEF && pmu >= v;
    let mut mdcr = mdcr::SDD | mdcr::SPD32_DISABLED;
    if has(DFR0_PMSVER, id.dfr0, 1) {
        mdcr |= mdcr::NSPB_NS_EL1;
    }
    if has(DFR0_TRACEBUFFER, id.dfr0, 1) {
        mdcr |= mdcr::NSTB_NS_EL1;
    }
    if pmu_at_least(PMUV3P5) {
        mdcr |= mdcr::SCCD;
    }
    if pmu_at_least(PMUV3P7) {
        mdcr |= mdcr::MCCD;
    }
    if pmu_at_least(PMUV3P9) {
        mdcr |= mdcr::ENPM2;
    }
    if has(DFR0_BRBE, id.dfr0, 1) {
        mdcr |= mdcr::SBRBE_NS;
    }

    let smcr = sme.then(|| {
        let mut v = VL_MAX_LEN;
        if id.smfr0 & SMFR0_FA64 != 0 {
            v |= SMCR_FA64;
        }
        if has(PFR1_SME, id.pfr1, SME2) {
            v |= SMCR_EZT0;
        }
        v
    });
    El3Regs {
        scr,
        cptr,
        mdcr,
        zcr: sve.then_some(VL_MAX_LEN),
        smcr,
        smpen: needs_smpen(id.midr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SCR_EL3 of an Armv8.0 CPU: what every CPU gets.
    const SCR_BASE: u64 = scr::NS | scr::FIQ | scr::RES1 | scr::HCE | scr::SIF | scr::RW;

    /// Cortex-A72 r0p3 (as QEMU's `cortex-a72` reports it): Armv8.0, nothing to enable.
    fn cortex_a72() -> IdRegs {
        IdRegs {
            midr: 0x410f_d083,
            pfr0: 0x0000_0000_0000_2222,
            dfr0: 0x0000_0000_1030_5106,
            mmfr0: 0x0000_0000_0000_1124,
            ..IdRegs::default()
        }
    }

    /// ID registers as kexboot's monitor read them at EL3 on QEMU 7.2 `-cpu max` (TCG, `virt`
    /// without `mte=on`): SVE, SME with FA64, PAuth, CSV2_2, HCX, PMUv3p5; no FGT, MTE, ECV.
    fn qemu_max() -> IdRegs {
        IdRegs {
            midr: 0x000f_0510,
            pfr0: 0x1201_0011_2011_2222,
            pfr1: 0x0100_0021,
            dfr0: 0x1030_5609,
            isar1: 0x0011_1111_0121_1012,
            isar2: 0,
            mmfr0: 0x0323_1020_1126,
            mmfr1: 0x0110_1021_1122,
            mmfr3: 0,
            smfr0: 0x80f1_00fd_0000_0000,
        }
    }

    #[test]
    fn armv8_0_gets_only_the_base() {
        let r = el3_regs(&cortex_a72());
        assert_eq!(r.scr, SCR_BASE);
        assert_eq!(r.cptr, 0);
        assert_eq!(r.mdcr, mdcr::SDD | mdcr::SPD32_DISABLED);
        assert_eq!((r.zcr, r.smcr), (None, None));
        assert!(r.smpen);
    }

    #[test]
    fn qemu_max_enables_its_features() {
        let r = el3_regs(&qemu_max());
        // The trap seen without this: ESR 0x66000000 (EC 0x19, SVE access trapped to EL3).
        assert_eq!(r.cptr, cptr::EZ | cptr::ESM);
        assert_eq!(r.zcr, Some(VL_MAX_LEN));
        assert_eq!(r.smcr, Some(VL_MAX_LEN | SMCR_FA64));
        for bit in [scr::API, scr::APK, scr::ENSCXT, scr::HXEN, scr::ENTP2] {
            assert_ne!(r.scr & bit, 0, "{bit:#x}");
        }
        for bit in [
            scr::ATA,
            scr::FGTEN,
            scr::FGTEN2,
            scr::ECVEN,
            scr::TCR2EN,
            scr::SCTLR2EN,
            scr::PIEN,
            scr::GCSEN,
        ] {
            assert_eq!(r.scr & bit, 0, "{bit:#x}");
        }
        assert_eq!(r.mdcr & (mdcr::SCCD | mdcr::MCCD), mdcr::SCCD);
        assert!(!r.smpen);
    }

    /// One feature at a time: the ID field value that implements it, and the bit it must set.
    #[test]
    fn each_feature_sets_its_bit() {
        #[allow(clippy::type_complexity)]
        let cases: &[(fn(&mut IdRegs), fn(&El3Regs) -> bool)] = &[
            (
                |i| i.pfr0 |= 1 << 32,
                |r| r.cptr & cptr::EZ != 0 && r.zcr.is_some(),
            ),
            (
                |i| i.pfr1 |= 1 << 24,
                |r| {
                    r.cptr & cptr::ESM != 0 && r.scr & scr::ENTP2 != 0 && r.smcr == Some(VL_MAX_LEN)
                },
            ),
            (
                |i| i.pfr1 |= 2 << 24,
                |r| r.smcr == Some(VL_MAX_LEN | SMCR_EZT0),
            ),
            (
                |i| i.isar1 |= 1 << 4,
                |r| r.scr & (scr::API | scr::APK) == scr::API | scr::APK,
            ),
            (|i| i.isar1 |= 1 << 28, |r| r.scr & scr::API != 0),
            (|i| i.isar2 |= 3 << 12, |r| r.scr & scr::APK != 0),
            (|i| i.pfr1 |= 2 << 8, |r| r.scr & scr::ATA != 0),
            (|i| i.pfr0 |= 2 << 56, |r| r.scr & scr::ENSCXT != 0),
            (
                |i| {
                    i.pfr0 |= 1 << 56;
                    i.pfr1 |= 2 << 32
                },
                |r| r.scr & scr::ENSCXT != 0,
            ),
            (
                |i| i.mmfr0 |= 1 << 56,
                |r| r.scr & (scr::FGTEN | scr::FGTEN2) == scr::FGTEN,
            ),
            (|i| i.mmfr0 |= 2 << 56, |r| r.scr & scr::FGTEN2 != 0),
            (|i| i.mmfr0 |= 2 << 60, |r| r.scr & scr::ECVEN != 0),
            (|i| i.mmfr1 |= 1 << 40, |r| r.scr & scr::HXEN != 0),
            (|i| i.pfr1 |= 1 << 44, |r| r.scr & scr::GCSEN != 0),
            (|i| i.mmfr3 |= 1, |r| r.scr & scr::TCR2EN != 0),
            (|i| i.mmfr3 |= 1 << 4, |r| r.scr & scr::SCTLR2EN != 0),
            (|i| i.mmfr3 |= 1 << 8, |r| r.scr & scr::PIEN != 0),
            (
                |i| i.dfr0 |= 1 << 32,
                |r| r.mdcr & mdcr::NSPB_NS_EL1 == mdcr::NSPB_NS_EL1,
            ),
            (
                |i| i.dfr0 |= 1 << 44,
                |r| r.mdcr & mdcr::NSTB_NS_EL1 == mdcr::NSTB_NS_EL1,
            ),
            (
                |i| i.dfr0 |= 6 << 8,
                |r| r.mdcr & (mdcr::SCCD | mdcr::MCCD) == mdcr::SCCD,
            ),
            (|i| i.dfr0 |= 7 << 8, |r| r.mdcr & mdcr::MCCD != 0),
            (|i| i.dfr0 |= 9 << 8, |r| r.mdcr & mdcr::ENPM2 != 0),
            (
                |i| i.dfr0 |= 1 << 52,
                |r| r.mdcr & (0b11 << 32) == mdcr::SBRBE_NS,
            ),
        ];
        let plain = el3_regs(&IdRegs::default());
        for (k, (set, check)) in cases.iter().enumerate() {
            let mut id = IdRegs::default();
            set(&mut id);
            let r = el3_regs(&id);
            assert!(check(&r), "case {k}: {r:x?}");
            assert!(!check(&plain), "case {k} holds without the feature");
        }
        // An IMPLEMENTATION DEFINED PMU (0xf) is no PMUv3p5.
        let r = el3_regs(&IdRegs {
            dfr0: 0xf << 8,
            ..IdRegs::default()
        });
        assert_eq!(r.mdcr & (mdcr::SCCD | mdcr::MCCD), 0);
    }

    #[test]
    fn smpen_by_midr() {
        for midr in [0x410f_d034, 0x411f_d070, 0x410f_d083] {
            assert!(needs_smpen(midr), "{midr:#x}");
        }
        // Cortex-A76, A55, QEMU max, another implementer with the same part number.
        for midr in [0x414f_d0b1, 0x412f_d050, 0x000f_0510, 0x510f_d080] {
            assert!(!needs_smpen(midr), "{midr:#x}");
        }
    }

    proptest! {
        /// Whatever the ID registers say: the non-secure world is AArch64 EL2 with FIQs at EL3,
        /// FP/SIMD never traps (TFP), no reserved SCR bit is set, and debug stays off in
        /// Secure state.
        #[test]
        fn invariants(midr: u64, pfr0: u64, pfr1: u64, dfr0: u64, isar1: u64, isar2: u64,
                      mmfr0: u64, mmfr1: u64, mmfr3: u64, smfr0: u64) {
            let id = IdRegs { midr, pfr0, pfr1, dfr0, isar1, isar2, mmfr0, mmfr1, mmfr3, smfr0 };
            let r = el3_regs(&id);
            prop_assert_eq!(r.scr & SCR_BASE, SCR_BASE);
            let known = SCR_BASE | scr::API | scr::APK | scr::ENSCXT | scr::ATA | scr::FGTEN
                | scr::FGTEN2 | scr::ECVEN | scr::HXEN | scr::GCSEN | scr::ENTP2 | scr::TCR2EN
                | scr::SCTLR2EN | scr::PIEN;
            prop_assert_eq!(r.scr & !known, 0);
            prop_assert_eq!(r.cptr & !(cptr::EZ | cptr::ESM), 0);
            prop_assert_eq!(r.mdcr & (mdcr::SDD | mdcr::SPD32_DISABLED), mdcr::SDD | mdcr::SPD32_DISABLED);
            prop_assert_eq!(r.zcr.is_some(), r.cptr & cptr::EZ != 0);
            prop_assert_eq!(r.smcr.is_some(), r.cptr & cptr::ESM != 0);
        }
    }
}
