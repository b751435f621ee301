//! Board `qemu-virt`: every fact about QEMU's `virt` machine that is not in its device tree.
//! kexboot enters at EL2 (`virtualization=on`), EL1, or EL3 (`secure=on`, as `-bios`) with
//! x0 = QEMU's device tree; RAM, the UART, virtio-mmio slots, PSCI, the GIC and the CPUs are
//! discovered from that tree (`start`). What the tree does not say, the EL3 monitor needs
//! before it can read one, or a real core does not reset to, is here; a second board gets a
//! module of its own beside this one.

/// The board's name (`board` in the environment, `version`, the banner).
pub const NAME: &str = "qemu-virt";

/// Root `compatible` strings that name this board.
pub const COMPATIBLE: &[&str] = &["linux,dummy-virt"];

/// Frequency of QEMU virt's generic timer counter (QEMU 7.2: `NANOSECONDS_PER_SECOND /
/// GTIMER_SCALE` = 62.5 MHz; QEMU 9.0 and later give newer machine versions 1 GHz). kexboot's EL3
/// monitor programs CNTFRQ_EL0 with it, as `booting.rst` requires of firmware: on a real core
/// the register's reset value is UNKNOWN, while QEMU resets it to this value already.
pub const CNTFRQ_HZ: u64 = 62_500_000;

/// Secure RAM (`secram@e000000`, 16 MiB; `hw/arm/virt.c` `VIRT_SECURE_MEM`): where kexboot's
/// EL3 monitor lives.
pub const SECURE_BASE: u64 = 0x0e00_0000;
pub const SECURE_SIZE: u64 = 0x0100_0000;
/// Where QEMU puts the device tree for firmware (start of RAM) when x0 does not say.
pub const RAM_BASE: u64 = 0x4000_0000;
/// The secure PL061 (`secure-status = "okay"` in QEMU's tree): pin 0 powers off, pin 1 resets.
pub const SECURE_GPIO: u64 = 0x090b_0000;
pub const GPIO_POWEROFF_PIN: u32 = 0;
pub const GPIO_RESTART_PIN: u32 = 1;
/// The interrupt controller: a GICv2 (`-M virt` default `gic-version=2`), which the EL3
/// monitor's driver (`arch::el3::gic`) is written for; its addresses come from the tree.
pub const GIC_VERSION: u32 = 2;
