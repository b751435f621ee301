//! Board `rpi3`: the Raspberry Pi 3 Model B (BCM2837), and QEMU's `raspi3b`, its test stand.
//! Its firmware (or QEMU) loads kexboot as `kernel8.img` at 0x80000 and enters it at EL2 with
//! x0 = a device tree; RAM, the UARTs, the SD controllers and the CPUs' spin-table mailboxes
//! come from that tree (its `/soc` maps bus addresses 0x7e000000.. to 0x3f000000..). What the
//! tree does not say is here.
//!
//! - The firmware (and QEMU) parks the three secondary cores in page 0, each polling its
//!   `cpu-release-addr` (0xd8, 0xe0, 0xe8, 0xf0), and the tree keeps that page as
//!   `/memreserve/`: the kernel releases them through the tree's spin-table nodes, and kexboot
//!   never writes the page.
//! - The generic timer runs at 19.2 MHz on a real Pi 3 (the crystal; the firmware's `armstub8`
//!   writes CNTFRQ_EL0); QEMU's `raspi3b` gives 62.5 MHz. kexboot reads CNTFRQ_EL0 and assumes
//!   neither.

/// The board's name (`board` in the environment, `version`, the banner).
pub const NAME: &str = "rpi3";

/// Root `compatible` strings that name this board.
pub const COMPATIBLE: &[&str] = &["raspberrypi,3-model-b", "raspberrypi,3-model-b-plus"];

/// Where the VideoCore sees the ARM's RAM: the Pi 3's firmware maps ARM physical 0..1 GiB at
/// bus 0xc0000000 (the L2-uncached alias; the tree's `/soc` `dma-ranges` says the same, and
/// U-Boot's `phys_to_bus` on BCM2837 adds it). QEMU's `raspi3b` aliases RAM at every 1 GiB of
/// the bus, so the real board's value works there too.
const VC_BUS_ALIAS: u32 = 0xc000_0000;
/// The VideoCore's bus reaches the first 1 GiB of ARM RAM only.
const VC_BUS_REACH: u64 = 1 << 30;

/// The VideoCore bus address of ARM physical address `addr`, or `None` beyond its reach.
pub fn vc_bus_address(addr: u64) -> Option<u32> {
    (addr < VC_BUS_REACH).then_some(addr as u32 | VC_BUS_ALIAS)
}
