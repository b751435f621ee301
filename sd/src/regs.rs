//! Register access for the controller drivers: 32-bit reads and writes at byte offsets from the
//! controller's base. The firmware implements it with volatile MMIO (in `boards/`); tests
//! implement it with a simulated controller.

/// A controller's 32-bit registers.
pub trait Regs {
    /// Reads the register at byte offset `offset`.
    fn read32(&mut self, offset: usize) -> u32;
    /// Writes `value` to the register at byte offset `offset`.
    fn write32(&mut self, offset: usize, value: u32);
}

impl<T: Regs + ?Sized> Regs for &mut T {
    fn read32(&mut self, offset: usize) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        (**self).write32(offset, value)
    }
}
