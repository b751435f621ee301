//! The GICv2 as the monitor sets it up: every interrupt non-secure but the recall SGI.

// This driver is for a GICv2; a board with another GIC needs another driver.
const _: () = assert!(
    crate::qemu_virt::GIC_VERSION == 2,
    "the EL3 monitor drives a GICv2"
);

/// The SGI kept secure (group 0, FIQ) to recall CPUs for SYSTEM_RESET; Linux uses SGIs 0-7.
pub(super) const RECALL_SGI: u32 = 15;
/// GICv2 distributor and CPU interface registers.
pub(super) const GICD_CTLR: u64 = 0x000;
pub(super) const GICD_TYPER: u64 = 0x004;
pub(super) const GICD_IGROUPR: u64 = 0x080;
pub(super) const GICD_ISENABLER: u64 = 0x100;
pub(super) const GICD_IPRIORITYR: u64 = 0x400;
pub(super) const GICD_ITARGETSR: u64 = 0x800;
pub(super) const GICD_SGIR: u64 = 0xf00;
pub(super) const GICC_CTLR: u64 = 0x000;
pub(super) const GICC_PMR: u64 = 0x004;
pub(super) const GICC_IAR: u64 = 0x00c;
pub(super) const GICC_EOIR: u64 = 0x010;
/// GICD_CTLR (secure view): EnableGrp0 | EnableGrp1.
pub(super) const GICD_CTLR_GRP0_BIT: u32 = 0;
pub(super) const GICD_CTLR_ENABLE: u32 = (1 << GICD_CTLR_GRP0_BIT) | 0b10;
/// GICC_CTLR (secure view): EnableGrp0 | EnableGrp1 | FIQEn (group 0 signalled as FIQ).
pub(super) const GICC_CTLR_GRP0_FIQ: u32 = 0b1011;

pub(super) fn mmio_read(addr: u64) -> u32 {
    // SAFETY: callers pass GIC/GPIO registers found in the device tree or QEMU's fixed map.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

pub(super) fn mmio_write(addr: u64, v: u32) {
    // SAFETY: as `mmio_read`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

/// Gives every SPI to the non-secure world (group 1); [`gic_dist_enable`] comes last.
pub(super) fn gic_dist_init(gicd: u64) {
    let lines = (mmio_read(gicd + GICD_TYPER) & 0x1f) as u64;
    for n in 1..=lines {
        mmio_write(gicd + GICD_IGROUPR + 4 * n, u32::MAX);
    }
}

/// Enables both groups: the last step of the boot CPU's set-up, and what tells secondaries the
/// ready magic is of this boot (see [`super::READY_ADDR`]).
pub(super) fn gic_dist_enable(gicd: u64) {
    mmio_write(gicd + GICD_CTLR, GICD_CTLR_ENABLE);
}

/// This CPU's banked GIC state: SGIs and PPIs non-secure but [`RECALL_SGI`], which is group 0,
/// enabled, highest priority and signalled as FIQ. Returns this CPU's target-list bit.
pub(super) fn gic_cpu_init(gicd: u64, gicc: u64) -> u8 {
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
