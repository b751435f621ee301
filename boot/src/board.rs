//! The one boundary between kexboot's boot logic and a board: everything the shell, autoboot,
//! `load`/`booti`, netboot and PXE need from the machine. A board (`boards/`: QEMU virt today)
//! implements it over its registers and devices; host tests implement it over simulated RAM, a
//! FAT image and an in-process network.
//!
//! What the boot logic keeps itself: the state of the shell, the environment and its store, the
//! memory layout, the boot disk's file system, the network stack. What stays the board's: the
//! devices, the clock, randomness, RAM access, the device-tree changes that describe its own
//! firmware (PSCI, spin-table pens, the handoff page), what must happen just before the jump
//! (stopping DMA, writing the handoff record), the jump itself, reset and power-off.

use alloc::vec::Vec;
use core::fmt;

use kexboot_fs::BlockDevice;
use kexboot_loader::fit::{self, Keys};
use kexboot_loader::mem::Range;
use kexboot_net::Nic;
use kexboot_relocate::Segment;

use crate::flow::Staging;
use crate::memory::Layout;
use crate::{Clock, Console};

/// One hand-over: the relocation plan's segments, where to enter, the DTB's address, and the
/// label the handoff record names.
#[derive(Debug, Clone, Copy)]
pub struct Jump<'a> {
    pub segments: &'a [Segment],
    pub entry: u64,
    pub dtb: u64,
    pub label: &'a str,
}

/// Why the machine could not be reset or powered off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerError {
    /// The board has no way to do it (no PSCI in its device tree).
    Unsupported,
    /// The firmware call returned this code instead of acting.
    Returned(i64),
}

impl fmt::Display for PowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerError::Unsupported => {
                f.write_str("the device tree describes no PSCI (smc/hvc) firmware")
            }
            PowerError::Returned(code) => write!(f, "PSCI call failed with {code}"),
        }
    }
}

/// A machine kexboot's boot logic runs on.
pub trait Board {
    /// A handle on the console (cheap to make: the shell takes one per command line).
    type Console: Console;
    /// A handle on the clock: microseconds since kexboot's entry.
    type Clock: Clock;
    /// A disk the boot file system may be on.
    type Disk: BlockDevice + 'static;
    /// The network interface.
    type Nic: Nic;
    /// Page-aligned buffers at known physical addresses, for boot images.
    type Staging: Staging;

    /// The board's name: the `board` variable, `version`.
    fn name(&self) -> &'static str;
    fn console(&self) -> Self::Console;
    fn clock(&self) -> Self::Clock;
    /// Microseconds since the machine's reset (`bootstage`), where the board can tell.
    fn since_reset_us(&self) -> u64;
    /// Records that a stage of the boot was reached (`bootstage` lists them).
    fn mark(&mut self, stage: &'static str);
    /// The stages marked so far: (name, microseconds since kexboot's entry).
    fn stages(&self) -> Vec<(&'static str, u64)>;
    /// `(kaslr-seed, rng-seed)` from a hardware random source, if the board has one.
    fn random_seeds(&mut self) -> Option<(u64, [u8; 64])>;
    /// The network interface, probed when a command first needs one (and again after it
    /// failed); None when the board has none.
    fn find_nic(&mut self) -> Option<Self::Nic>;
    /// RAM at `r` for reading: None unless the board mapped all of it.
    fn ram(&self, r: Range) -> Option<&[u8]>;
    /// RAM at `r` for writing: None unless all of it is mapped RAM that nothing of kexboot's
    /// uses (its image, heap, stacks, the DTB, reserved and kept memory).
    fn ram_mut(&mut self, r: Range) -> Option<&mut [u8]>;
    /// `dtb` with the board's own changes, which every tree handed over carries: its
    /// reserved pages (handoff record, ramoops, a spin-table pen) and how its CPUs are
    /// started (spin-table, or the PSCI of its own EL3 monitor).
    fn own_fixups(&self, dtb: &[u8]) -> Result<Vec<u8>, kexboot_loader::Error>;
    /// Stops what must not outlive kexboot (DMA), leaves what must be kept (handoff record,
    /// pens), relocates `jump.segments` and enters the kernel. Returns only when the plan is
    /// refused, before any destination was written.
    fn jump(&mut self, layout: &Layout, jump: &Jump) -> kexboot_relocate::Error;
    /// Resets the machine; returns only when it could not.
    fn reset(&mut self) -> PowerError;
    /// Powers the machine off; returns only when it could not.
    fn power_off(&mut self) -> PowerError;
    /// Raises an undefined-instruction exception (`exception undefined`: shows the board's
    /// exception report); returns only where the board cannot.
    fn raise_exception(&mut self);
    /// The trusted keys built into the firmware (`cargo xtask build --keys keys.dtb`): when
    /// one is required, only FIT images whose signatures verify boot.
    fn keys(&self) -> &Keys {
        &fit::NO_KEYS
    }
    /// The in-guest copy benchmark (`/kexboot/bench` on the boot disk asks for it).
    fn copy_benchmark(&mut self, layout: &Layout) {
        let _ = layout;
    }
}
