//! kexboot as EL3 firmware (`qemu-system-aarch64 -M virt,secure=on,virtualization=on -bios`):
//! a small resident PSCI monitor in secure RAM, then the normal kexboot at non-secure EL2.
//!
//! At reset every CPU starts at the flash reset vector at EL3, MMU off. The CPU with MPIDR
//! affinity 0 copies the image to secure RAM ([`SECURE_BASE`]) and runs the usual start-up
//! there (relocations, BSS, stack), then `start::el3_primary_main`: it saves QEMU's device
//! tree, builds the PSCI table ([`kexboot_monitor::psci`]) from the tree's cpu nodes, gives the
//! GIC's interrupts to the non-secure world (all but [`gic::RECALL_SGI`], kept in group 0 as an
//! FIQ to EL3), copies the pristine image from flash to non-secure RAM and enters it at NS-EL2
//! with x0 = DTB, x1 = [`MONITOR_MAGIC`], x2 = PSCI version. The other CPUs wait in flash until
//! the monitor is ready, then move to their pen in the secure copy (`start::el3_secondary_main`).
//!
//! The monitor runs with the MMU off (every access is Device memory, so no exclusives): calls
//! are serialised by a bakery lock made of plain loads and stores. Pens wait with `wfe`; CPU_ON
//! wakes them with `sev`. SYSTEM_RESET recalls every running CPU with [`gic::RECALL_SGI`] (an FIQ
//! routed to EL3 that no lower-EL mask can hold off), waits for them in their pens, copies the
//! pristine image from flash again and re-enters kexboot at NS-EL2 with the device tree the last
//! kernel was booted with (registered by kexboot with `KEXBOOT_SET_RESET_DTB`), so that entry is
//! warm; without one it uses QEMU's saved tree (a cold entry). SYSTEM_OFF drives the secure
//! PL061's power-off pin.
//!
//! The non-secure side ([`adopt`], [`describe`], [`note_next_dtb`]) is how the normal kexboot
//! learns it runs under its own monitor and describes it to Linux.
//!
//! One file per job: [`asm`] (reset vector, exception vectors, the NS entry, FP/SIMD save),
//! [`cpu`] (each CPU's EL3 registers), [`lock`] (the bakery lock), [`gic`], [`start`] (the boot
//! CPU's set-up, secondaries, pens), [`monitor`] (SMC dispatch, recall, SYSTEM_RESET) and
//! [`ns`] (the non-secure side).

use core::cell::UnsafeCell;

use kexboot_monitor::psci::{Psci, MAX_CPUS};

mod asm;
mod cpu;
mod gic;
mod lock;
mod monitor;
mod ns;
mod start;

pub use ns::{adopt, cpu_props, describe, note_next_dtb};

use asm::*;
use gic::*;
use lock::*;
use start::*;

/// The board's secure RAM, where the monitor runs.
pub use crate::qemu_virt::{SECURE_BASE, SECURE_SIZE};
/// Where the monitor keeps QEMU's device tree (secure RAM, above the image).
const SAVED_DTB: u64 = SECURE_BASE + (8 << 20);
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
/// The board's secure PL061 and its power-off and restart pins; its RAM base (where the
/// device tree is when x0 does not say).
use crate::qemu_virt::{GPIO_POWEROFF_PIN, GPIO_RESTART_PIN, RAM_BASE, SECURE_GPIO};
/// PL061 direction register.
const PL061_DIR: u64 = 0x400;

/// x1 at the NS-EL2 entry when kexboot's own monitor started it ("KEXBOOT3").
pub const MONITOR_MAGIC: u64 = 0x3354_4f4f_4258_454b;

/// SCTLR_ELx RES1 bits (Armv8.0): MMU, caches and alignment checks off, little-endian.
const SCTLR_RES1: u64 = 0x30c5_0830;
/// HCR_EL2: only RW (EL1 is AArch64); the kernel sets the rest.
const HCR_EL2_RW: u64 = 1 << 31;
/// SPSR_EL3 for an entry at EL2h with D, A, I, F masked.
const SPSR_EL2H_MASKED: u64 = 0x3c9;
/// ESR_ELx exception classes of SMC from AArch64 and AArch32.
const EC_SMC64: u64 = 0x17;
const EC_SMC32: u64 = 0x13;

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
