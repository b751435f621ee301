//! Volatile 32-bit register access at a controller's base address: the one `kexboot_sd::regs::Regs`
//! implementation for real hardware (kexboot runs identity-mapped, so the physical address from
//! the device tree is the pointer).
use kexboot_sd::regs::Regs;

/// A block of 32-bit device registers of `len` bytes at `base`.
pub struct Mmio {
    base: usize,
    len: usize,
}

impl Mmio {
    /// # Safety
    /// `base..base + len` must be a device register block, mapped as Device memory in kexboot's
    /// identity map, used by nothing else while this value lives.
    pub unsafe fn new(base: usize, len: usize) -> Self {
        Mmio { base, len }
    }

    /// The register at `offset`, or `None` (logged) for an offset outside the block or
    /// unaligned: a driver bug, which must not touch another device.
    fn addr(&self, offset: usize) -> Option<*mut u32> {
        if offset.is_multiple_of(4) && offset + 4 <= self.len {
            Some((self.base + offset) as *mut u32)
        } else {
            log::error!(
                "mmio: offset {offset:#x} outside {:#x}+{:#x}",
                self.base,
                self.len
            );
            None
        }
    }
}

impl Regs for Mmio {
    /// Reads the register; an offset outside the block reads as all ones (a missing device).
    fn read32(&mut self, offset: usize) -> u32 {
        match self.addr(offset) {
            // SAFETY: `p` is an aligned register inside the block `new`'s caller vouched for.
            Some(p) => unsafe { p.read_volatile() },
            None => u32::MAX,
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        if let Some(p) = self.addr(offset) {
            // SAFETY: as in `read32`.
            unsafe { p.write_volatile(value) }
        }
    }
}
