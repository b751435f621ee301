//! Byte access to physical memory: a `Vec`-backed fake RAM for host tests and an
//! identity-mapped [`PhysMemory`] for the firmware, behind one [`Memory`] trait.

use crate::{Error, Range, PAGE_SIZE};
use alloc::vec;
use alloc::vec::Vec;

/// Physical memory as the planner and the simulator see it.
pub trait Memory {
    /// Fills `buf` with the bytes at `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Error>;
    /// Stores `data` at `addr`.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Error>;
    /// Copies one page from `src` to `dst` (both page-aligned by the caller's contract).
    fn copy_page(&mut self, src: u64, dst: u64) -> Result<(), Error> {
        let mut page = vec![0u8; PAGE_SIZE as usize];
        self.read(src, &mut page)?;
        self.write(dst, &page)
    }
}

/// Fake RAM: `bytes[i]` is physical address `base + i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecMemory {
    base: u64,
    bytes: Vec<u8>,
}

impl VecMemory {
    /// Zeroed memory of `size` bytes at `base`; refuses a range past the address space.
    pub fn new(base: u64, size: usize) -> Result<Self, Error> {
        Range::from_len(base, size as u64)?;
        Ok(VecMemory {
            base,
            bytes: vec![0; size],
        })
    }

    /// The physical range this memory covers.
    pub fn range(&self) -> Range {
        // `new` checked that this does not overflow.
        Range::from_len_saturating(self.base, self.bytes.len() as u64)
    }

    /// All bytes, index 0 being `range().start`.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// All bytes, mutable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// The bytes of `r`, if it lies inside this memory.
    pub fn slice(&self, r: Range) -> Option<&[u8]> {
        let (a, b) = self.index(r.start(), r.len())?;
        self.bytes.get(a..b)
    }

    fn index(&self, addr: u64, len: u64) -> Option<(usize, usize)> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let end = off.checked_add(usize::try_from(len).ok()?)?;
        (end <= self.bytes.len()).then_some((off, end))
    }
}

impl Memory for VecMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        let oob = Error::OutOfBounds {
            addr,
            len: buf.len() as u64,
        };
        let (a, b) = self.index(addr, buf.len() as u64).ok_or(oob.clone())?;
        buf.copy_from_slice(self.bytes.get(a..b).ok_or(oob)?);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Error> {
        let oob = Error::OutOfBounds {
            addr,
            len: data.len() as u64,
        };
        let (a, b) = self.index(addr, data.len() as u64).ok_or(oob.clone())?;
        self.bytes.get_mut(a..b).ok_or(oob)?.copy_from_slice(data);
        Ok(())
    }
}

/// Identity-mapped physical memory (the firmware's view: virtual address == physical address).
///
/// Accesses outside `window` and at address 0 are refused with [`Error::OutOfBounds`].
#[derive(Debug)]
pub struct PhysMemory {
    window: Range,
}

impl PhysMemory {
    /// Memory accessor for the physical addresses in `window`.
    ///
    /// # Safety
    /// Every address in `window` must be identity-mapped, readable and writable Normal memory
    /// for as long as this value lives, and nothing else (no Rust reference, no DMA) may use the
    /// bytes this accessor is asked to write.
    pub unsafe fn new(window: Range) -> Self {
        PhysMemory { window }
    }

    fn check(&self, addr: u64, len: usize) -> Result<usize, Error> {
        let r = Range::from_len(addr, len as u64).map_err(|_| Error::OutOfBounds {
            addr,
            len: len as u64,
        })?;
        if addr == 0 || !self.window.contains_range(&r) {
            return Err(Error::OutOfBounds {
                addr,
                len: len as u64,
            });
        }
        usize::try_from(addr).map_err(|_| Error::OutOfBounds {
            addr,
            len: len as u64,
        })
    }
}

impl Memory for PhysMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        let p = self.check(addr, buf.len())?;
        // SAFETY: `new`'s contract makes every address of the checked, non-null window readable
        // memory; `ptr::copy` tolerates `buf` overlapping it.
        unsafe { core::ptr::copy(p as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Error> {
        let p = self.check(addr, data.len())?;
        // SAFETY: as in `read`, and the contract gives us the right to write these bytes.
        unsafe { core::ptr::copy(data.as_ptr(), p as *mut u8, data.len()) };
        Ok(())
    }
}
