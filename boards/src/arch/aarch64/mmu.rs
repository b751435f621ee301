//! kexboot's own MMU: an identity map (RAM as Normal write-back, executable; device registers
//! as Device-nGnRE), built with `aarch64-paging` from what the device tree describes, enabled at
//! the EL kexboot was entered at (EL2 or EL1, each with its own MAIR/TCR/SCTLR).
//!
//! The page tables come from the heap. The relocator later copies with these same tables still
//! active (the heap is a control region no boot segment may overlap), so they double as its
//! transitional identity map.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use aarch64_paging::descriptor::{El1Attributes, El23Attributes};
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El1And0, El2, MemoryRegion};
use alloc::boxed::Box;
use kexboot_loader::mem::Range;

/// Root level 1 with 4 KiB granules: 39-bit VA space (512 GiB), T0SZ = 64 - 39.
const ROOT_LEVEL: usize = 1;
const T0SZ: u64 = 64 - 39;
/// MAIR index 0: Device-nGnRE; index 1: Normal, inner/outer write-back read/write-allocate.
const MAIR_DEVICE_IDX: usize = 0;
const MAIR_NORMAL_IDX: usize = 1;

/// Errors from building the map.
#[derive(Debug)]
pub struct MapError(pub Range);

/// The live page tables; kept for the life of the firmware.
pub enum Tables {
    El2(Box<IdMap<El2>>),
    El1(Box<IdMap<El1And0>>),
}

fn region(r: &Range) -> MemoryRegion {
    MemoryRegion::new(r.start() as usize, r.end() as usize)
}

/// Builds the identity map and turns the MMU and caches on at the current EL.
///
/// `written` are the ranges written with the MMU off (kexboot's image: relocations, BSS with
/// the page tables, stack): they are invalidated to PoC right before the MMU goes on, so no
/// line a speculative fill brought in meanwhile can shadow what is in memory (Linux's head.S
/// does the same for its early page tables).
///
/// # Safety
/// `ram` must cover all memory the firmware uses (image, stack, heap, device tree) and
/// `devices` every MMIO region it touches; nothing else may be in use. Nothing in `written`
/// may be dirty in the cache (true with the MMU off since entry's invalidate).
pub unsafe fn enable(
    ram: &[Range],
    devices: &[Range],
    written: &[Range],
) -> Result<Tables, MapError> {
    let el = super::current_el();
    let tables = if el == 2 {
        let normal = El23Attributes::VALID
            | El23Attributes::ACCESSED
            | El23Attributes::INNER_SHAREABLE
            | El23Attributes::USER_RES1
            | attr_index_el2(MAIR_NORMAL_IDX);
        let device = El23Attributes::VALID
            | El23Attributes::ACCESSED
            | El23Attributes::USER_RES1
            | El23Attributes::XN
            | attr_index_el2(MAIR_DEVICE_IDX);
        let mut map = Box::new(IdMap::new(ROOT_LEVEL, El2));
        for r in ram {
            map.map_range(&region(r), normal)
                .map_err(|_| MapError(*r))?;
        }
        for r in devices {
            map.map_range(&region(r), device)
                .map_err(|_| MapError(*r))?;
        }
        Tables::El2(map)
    } else {
        let normal = El1Attributes::VALID
            | El1Attributes::ACCESSED
            | El1Attributes::INNER_SHAREABLE
            | attr_index_el1(MAIR_NORMAL_IDX);
        let device = El1Attributes::VALID
            | El1Attributes::ACCESSED
            | El1Attributes::UXN
            | El1Attributes::PXN
            | attr_index_el1(MAIR_DEVICE_IDX);
        let mut map = Box::new(IdMap::with_asid(0, ROOT_LEVEL, El1And0));
        for r in ram {
            map.map_range(&region(r), normal)
                .map_err(|_| MapError(*r))?;
        }
        for r in devices {
            map.map_range(&region(r), device)
                .map_err(|_| MapError(*r))?;
        }
        Tables::El1(map)
    };
    let root = match &tables {
        Tables::El2(m) => m.root_address().0 as u64,
        Tables::El1(m) => m.root_address().0 as u64,
    };
    for r in written {
        // SAFETY: the caller guarantees nothing in `written` is dirty: only stale copies go.
        unsafe { super::dcache_inval_range(r.start(), r.end()) };
    }
    // SAFETY: the caller guarantees the map covers everything in use; the registers are set
    // for the current EL only, with TLBs invalidated before the MMU goes on.
    unsafe {
        if el == 2 {
            enable_el2(root)
        } else {
            enable_el1(root)
        }
    }
    Ok(tables)
}

fn attr_index_el2(i: usize) -> El23Attributes {
    El23Attributes::from_bits_retain(i << 2)
}

fn attr_index_el1(i: usize) -> El1Attributes {
    El1Attributes::from_bits_retain(i << 2)
}

/// TCR_EL2 bits 31 and 23 are RES1 in the non-VHE layout (`aarch64-cpu` has no field for them).
const TCR_EL2_RES1: u64 = (1 << 31) | (1 << 23);

/// SCTLR_EL2 RES1 bits in the E2H = 0 layout (Arm ARM D19.2.118): 29, 28, 23, 22, 18, 16, 11,
/// 5, 4. Under E2H = 1 (a CPU without FEAT_E2H0) SCTLR_EL2 has the SCTLR_EL1 layout, where these
/// are LSMAOE, nTLSMD, SPAN, EIS, nTWE, nTWI, EOS, CP15BEN, SA0: set, each is the architectural
/// "no change in behaviour" value (what Linux's INIT_SCTLR_EL1_MMU_ON sets too).
const SCTLR_EL2_RES1: u64 = (1 << 29)
    | (1 << 28)
    | (1 << 23)
    | (1 << 22)
    | (1 << 18)
    | (1 << 16)
    | (1 << 11)
    | (1 << 5)
    | (1 << 4);
/// SCTLR_EL2 at entry, until the MMU goes on: RES1 only (M, C, I, A, SA, WXN clear; EE = 0,
/// little-endian).
pub(super) const SCTLR_EL2_MMU_OFF: u64 = SCTLR_EL2_RES1;

/// SCTLR_EL2 with the MMU on, written whole (never a modification of what the previous stage
/// left): RES1, M, C, I; alignment checks, WXN, big-endian and everything else off.
fn sctlr_el2_mmu_on() -> u64 {
    SCTLR_EL2_RES1
        | u64::from(SCTLR_EL2::M::Enable + SCTLR_EL2::C::Cacheable + SCTLR_EL2::I::Cacheable)
}

/// Whether HCR_EL2.E2H is set (entry wrote 0; it reads 1 only on a CPU without FEAT_E2H0).
fn e2h() -> bool {
    HCR_EL2.is_set(HCR_EL2::E2H)
}

fn mair_value() -> u64 {
    // Attr0 = 0x04 Device-nGnRE, Attr1 = 0xff Normal WB RW-allocate inner and outer.
    const DEVICE_NGNRE: u64 = 0x04;
    const NORMAL_WB: u64 = 0xff;
    (DEVICE_NGNRE << (8 * MAIR_DEVICE_IDX)) | (NORMAL_WB << (8 * MAIR_NORMAL_IDX))
}

fn pa_range() -> u64 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(5)
}

/// # Safety
/// `root` is a valid EL2 identity map covering everything in use.
unsafe fn enable_el2(root: u64) {
    MAIR_EL2.set(mair_value());
    let tcr = match e2h() {
        // E2H stuck at 1: TCR_EL2 has the TCR_EL1 layout (two ranges, IPS at 34:32; bits 18:16
        // would be T1SZ). Written from the Arm ARM: QEMU cannot show this path.
        true => tcr_el1_value(),
        false => {
            let fields = TCR_EL2::T0SZ.val(T0SZ)
                + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
                + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
                + TCR_EL2::SH0::Inner
                + TCR_EL2::TG0::KiB_4
                + TCR_EL2::PS.val(pa_range());
            u64::from(fields) | TCR_EL2_RES1
        }
    };
    TCR_EL2.set(tcr);
    TTBR0_EL2.set(root);
    barrier::isb(barrier::SY);
    // SAFETY: TLB invalidation for EL2 has no effect on memory.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi alle2",
            "dsb ish",
            "isb",
            options(nostack)
        )
    };
    SCTLR_EL2.set(sctlr_el2_mmu_on());
    barrier::isb(barrier::SY);
    // SAFETY: instruction cache invalidation has no effect on memory.
    unsafe { core::arch::asm!("ic iallu", "dsb nsh", "isb", options(nostack)) };
}

/// The TCR_EL1 layout of kexboot's map (also TCR_EL2's when E2H is 1): TTBR0 only.
fn tcr_el1_value() -> u64 {
    u64::from(
        TCR_EL1::T0SZ.val(T0SZ)
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::SH0::Inner
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::EPD1::DisableTTBR1Walks
            + TCR_EL1::IPS.val(pa_range()),
    )
}

/// # Safety
/// `root` is a valid EL1 identity map covering everything in use.
unsafe fn enable_el1(root: u64) {
    MAIR_EL1.set(mair_value());
    TCR_EL1.set(tcr_el1_value());
    TTBR0_EL1.set(root);
    barrier::isb(barrier::SY);
    // SAFETY: TLB invalidation for EL1 has no effect on memory.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            options(nostack)
        )
    };
    SCTLR_EL1.modify(
        SCTLR_EL1::M::Enable
            + SCTLR_EL1::C::Cacheable
            + SCTLR_EL1::I::Cacheable
            + SCTLR_EL1::A::Disable
            + SCTLR_EL1::WXN::Disable
            + SCTLR_EL1::EE::LittleEndian,
    );
    barrier::isb(barrier::SY);
    // SAFETY: instruction cache invalidation has no effect on memory.
    unsafe { core::arch::asm!("ic iallu", "dsb nsh", "isb", options(nostack)) };
}
