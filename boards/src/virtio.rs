//! virtio-mmio devices through `virtio-drivers`: the DMA glue (identity-mapped, cache-coherent
//! RAM) and virtio-blk as a `kexboot_fs::BlockDevice`.

use core::ptr::NonNull;

use kexboot_fs::{BlockDevice, Error as FsError, SECTOR_SIZE};
use kexboot_loader::mem::Range;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};

use crate::timer;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

pub struct KexbootHal;

// SAFETY: memory is identity-mapped and QEMU's virtio is cache-coherent, so a buffer's virtual
// address is its physical address and needs no bounce; DMA pages come zeroed from the heap and
// stay allocated until `dma_dealloc`.
unsafe impl Hal for KexbootHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout =
            core::alloc::Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("DMA layout");
        // SAFETY: non-zero size (virtio-drivers never asks for 0 pages).
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).expect("out of memory for virtio DMA");
        (ptr.as_ptr() as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout =
            core::alloc::Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("DMA layout");
        // SAFETY: allocated by `dma_alloc` with the same layout.
        unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("MMIO at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

pub struct VirtioBlk {
    /// `None` once shut down (before a jump) or after a request timed out: the device is reset
    /// (dropping the transport writes status 0), so it does no more DMA.
    dev: Option<VirtIOBlk<KexbootHal, MmioTransport<'static>>>,
    capacity: u64,
    pub base: u64,
}

/// Largest single request: QEMU handles big requests, but keep each bounded.
const MAX_REQUEST: usize = 1 << 20;
/// A request the device has not completed after this long is abandoned (device reset).
const REQUEST_TIMEOUT_US: u64 = 5_000_000;

impl VirtioBlk {
    /// Waits (bounded) until the device has used request `token` (a `what` of sector `lba`);
    /// false, with the device reset (dropped), when it does not answer in time.
    fn wait_used(&mut self, token: u16, what: &str, lba: u64) -> bool {
        let Some(dev) = self.dev.as_mut() else {
            return false;
        };
        if timer::poll_until(REQUEST_TIMEOUT_US, || dev.peek_used() == Some(token)) {
            return true;
        }
        log::error!(
            "virtio-blk at {:#x}: no answer to a {what} of sector {lba} in {} s; device reset",
            self.base,
            REQUEST_TIMEOUT_US / 1_000_000
        );
        self.dev = None;
        false
    }

    fn read_one(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let io = FsError::Io { lba };
        let dev = self.dev.as_mut().ok_or(io.clone())?;
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        // SAFETY: `req`, `buf` and `resp` stay borrowed, unmoved, until the request completes
        // below or the device is reset (dropped) on timeout, which ends its DMA.
        let token = unsafe { dev.read_blocks_nb(lba as usize, &mut req, buf, &mut resp) }
            .map_err(|_| io.clone())?;
        if !self.wait_used(token, "read", lba) {
            return Err(io);
        }
        let dev = self.dev.as_mut().ok_or(io.clone())?;
        // SAFETY: the same `req`, `buf` and `resp` as the `read_blocks_nb` call of `token`.
        unsafe { dev.complete_read_blocks(token, &req, buf, &mut resp) }.map_err(|_| io)
    }

    fn write_one(&mut self, lba: u64, buf: &[u8]) -> Result<(), FsError> {
        let io = FsError::WriteIo { lba };
        let dev = self.dev.as_mut().ok_or(io.clone())?;
        let mut req = BlkReq::default();
        let mut resp = BlkResp::default();
        // SAFETY: `req`, `buf` and `resp` stay borrowed, unmoved, until the request completes
        // below or the device is reset (dropped) on timeout, which ends its DMA.
        let token = unsafe { dev.write_blocks_nb(lba as usize, &mut req, buf, &mut resp) }
            .map_err(|_| io.clone())?;
        if !self.wait_used(token, "write", lba) {
            return Err(io);
        }
        let dev = self.dev.as_mut().ok_or(io.clone())?;
        // SAFETY: the same `req`, `buf` and `resp` as the `write_blocks_nb` call of `token`.
        unsafe { dev.complete_write_blocks(token, &req, buf, &mut resp) }.map_err(|_| io)
    }
}

impl BlockDevice for VirtioBlk {
    fn num_sectors(&self) -> u64 {
        self.capacity
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), FsError> {
        if buf.is_empty() || !buf.len().is_multiple_of(SECTOR_SIZE) {
            return Err(FsError::Io { lba });
        }
        let mut lba = lba;
        for chunk in buf.chunks_mut(MAX_REQUEST) {
            self.read_one(lba, chunk)?;
            lba += (chunk.len() / SECTOR_SIZE) as u64;
        }
        Ok(())
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), FsError> {
        if buf.is_empty() || !buf.len().is_multiple_of(SECTOR_SIZE) {
            return Err(FsError::BadBuffer { len: buf.len() });
        }
        let count = (buf.len() / SECTOR_SIZE) as u64;
        if lba.checked_add(count).is_none_or(|end| end > self.capacity) {
            return Err(FsError::OutOfRange {
                lba,
                count,
                size: self.capacity,
            });
        }
        if self.dev.as_ref().is_some_and(|d| d.readonly()) {
            return Err(FsError::ReadOnly);
        }
        let mut lba = lba;
        for chunk in buf.chunks(MAX_REQUEST) {
            self.write_one(lba, chunk)?;
            lba += (chunk.len() / SECTOR_SIZE) as u64;
        }
        Ok(())
    }
}

/// Probes every virtio-mmio slot the device tree lists and returns the block devices.
pub fn find_block_devices(slots: &[Range]) -> alloc::vec::Vec<VirtioBlk> {
    let mut out = alloc::vec::Vec::new();
    for slot in slots {
        let Some(header) = NonNull::new(slot.start() as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the device tree names this range as a virtio-mmio register block; it is
        // identity-mapped as device memory and nothing else drives it.
        let transport = match unsafe { MmioTransport::new(header, slot.len() as usize) } {
            Ok(t) => t,
            Err(_) => continue, // empty slot (device id 0) or bad magic
        };
        if transport.device_type() != DeviceType::Block {
            // Dropping a transport resets its device, which another driver may be using.
            core::mem::forget(transport);
            continue;
        }
        match VirtIOBlk::<KexbootHal, _>::new(transport) {
            Ok(dev) => out.push(VirtioBlk {
                capacity: dev.capacity(),
                dev: Some(dev),
                base: slot.start(),
            }),
            Err(e) => log::warn!("virtio-blk at {:#x}: {:?}", slot.start(), e),
        }
    }
    out
}

/// What [`reset_all`] found in one virtio-mmio slot holding a device.
pub struct Found {
    pub base: u64,
    /// The virtio device id (1 network, 2 block, ...).
    pub device_id: u32,
    /// The device status register before the reset (virtio 1.2, 2.1: ACKNOWLEDGE 1, DRIVER 2,
    /// DRIVER_OK 4, FEATURES_OK 8, DEVICE_NEEDS_RESET 0x40, FAILED 0x80).
    pub status: u32,
    /// The status read back after the reset: 0 once the device has stopped.
    pub after: u32,
}

impl Found {
    /// A driver had the device running (DRIVER_OK): it may own buffers and do DMA.
    pub fn was_running(&self) -> bool {
        self.status & STATUS_DRIVER_OK != 0
    }
}

impl core::fmt::Display for Found {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "virtio-mmio at {:#x}: ", self.base)?;
        match DeviceType::try_from(self.device_id) {
            Ok(t) => write!(f, "{t:?} device")?,
            Err(_) => write!(f, "device type {}", self.device_id)?,
        }
        let state = match self.was_running() {
            true => "running (DRIVER_OK)",
            false => "not running",
        };
        write!(f, ", status {:#x} {state}; reset", self.status)?;
        match self.after {
            0 => Ok(()),
            a => write!(f, " (still reads {a:#x})"),
        }
    }
}

/// virtio-mmio registers (virtio 1.2, 4.2.2; the same offsets in the legacy layout).
const MMIO_MAGIC: u32 = 0x7472_6976; // "virt"
const REG_MAGIC: usize = 0x00;
const REG_DEVICE_ID: usize = 0x08;
const REG_STATUS: usize = 0x70;
/// Smallest register block that holds the status register.
const MMIO_MIN_LEN: u64 = 0x100;
const STATUS_DRIVER_OK: u32 = 4;
/// Reads of the status register while waiting for a reset to finish: bounded, so a device that
/// never finishes cannot stop the boot.
const RESET_POLLS: usize = 100_000;

/// Resets every virtio-mmio device (every slot, every type: status register = 0) so none does
/// DMA any more, whatever driver state anyone holds, and tells `seen` what each slot held.
/// Runs at entry, before kexboot picks any memory (a previous kernel may have left a NIC
/// receiving), and again right before every jump (kexboot's own devices).
pub fn reset_all(slots: &[Range], mut seen: impl FnMut(Found)) {
    for slot in slots {
        if slot.len() < MMIO_MIN_LEN {
            continue;
        }
        // SAFETY: a virtio-mmio register block named by the device tree (device memory, with
        // the MMU off or identity-mapped as Device-nGnRE); magic and device id are read-only
        // registers; status is written only for a present device (0 = reset, virtio 1.2 2.1)
        // and read back.
        let found = unsafe {
            let base = slot.start() as *mut u32;
            if core::ptr::read_volatile(base.byte_add(REG_MAGIC)) != MMIO_MAGIC {
                continue;
            }
            let id = core::ptr::read_volatile(base.byte_add(REG_DEVICE_ID));
            if id == 0 {
                continue; // empty slot
            }
            let status = base.byte_add(REG_STATUS);
            let before = core::ptr::read_volatile(status);
            core::ptr::write_volatile(status, 0);
            // virtio 1.2, 4.2.3.1: the reset is done when status reads back 0.
            let mut after = core::ptr::read_volatile(status);
            for _ in 0..RESET_POLLS {
                if after == 0 {
                    break;
                }
                crate::arch::poll_pause();
                after = core::ptr::read_volatile(status);
            }
            Found {
                base: slot.start(),
                device_id: id,
                status: before,
                after,
            }
        };
        seen(found);
    }
}
