//! kexboot firmware: the one binary, with the board chosen at a single dispatch point
//! ([`board`]). Everything else here is what any AArch64 board needs: entry, console, MMU,
//! heap, virtio, and the boot flow that ends in the relocator.

#![no_std]
#![no_main]

extern crate alloc;

#[macro_use]
mod console;
#[path = "arch/aarch64/mod.rs"]
mod arch;
mod bcm2835_gpio;
mod bcm2835_mbox;
mod bcm2835_pm;
mod bench;
mod board;
mod disk;
mod firmware;
mod heap;
mod mmio;
mod qemu_virt;
mod relocation;
mod rpi3;
mod sdhci;
mod smp;
mod start;
mod term;
mod timer;
mod virtio;
mod virtio_net;
mod warm;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Version of the warm-reboot handoff (image mark, handoff record, `kexboot.*` arguments).
pub const HANDOFF_VERSION: u32 = 1;

/// Called by the entry assembly with the MMU off, on kexboot's stack, BSS zeroed.
#[no_mangle]
extern "C" fn kexboot_main(dtb: u64, image_base: u64) -> ! {
    timer::init();
    start::start(dtb, image_base)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::emergency_fmt(format_args!(
        "\n*** kexboot panic: {info}\n*** CPU stopped.\n"
    ));
    arch::halt()
}
