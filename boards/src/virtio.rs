//! virtio-mmio devices through `virtio-drivers`: the DMA glue (identity-mapped, cache-coherent
//! RAM) and virtio-blk as a `kexboot_fs::BlockDevice`.

use core::ptr::NonNull;

use kexboot_fs::{BlockDevice, Error as FsError, SECTOR_SIZE};
use kexboot_loader::mem::Range;
use virtio_drivers::device::blk::VirtIOBlk;
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
    dev: VirtIOBlk<KexbootHal, MmioTransport<'static>>,
    pub base: u64,
}

/// Largest single request: QEMU handles big requests, but keep each bounded.
const MAX_REQUEST: usize = 1 << 20;

impl BlockDevice for VirtioBlk {
    fn num_sectors(&self) -> u64 {
        self.dev.capacity()
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), FsError> {
        if buf.is_empty() || !buf.len().is_multiple_of(SECTOR_SIZE) {
            return Err(FsError::Io { lba });
        }
        let mut lba = lba;
        for chunk in buf.chunks_mut(MAX_REQUEST) {
            self.dev
                .read_blocks(lba as usize, chunk)
                .map_err(|_| FsError::Io { lba })?;
            lba += (chunk.len() / SECTOR_SIZE) as u64;
        }
        Ok(())
    }
}

/// Probes every virtio-mmio slot the device tree lists and returns the block devices.
pub fn find_block_devices(slots: &[Range]) -> alloc::vec::Vec<VirtioBlk> {
    let mut out = alloc::vec::Vec::new();
    for slot in slots {
        let Some(header) = NonNull::new(slot.start as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the device tree names this range as a virtio-mmio register block; it is
        // identity-mapped as device memory and nothing else drives it.
        let transport = match unsafe { MmioTransport::new(header, slot.len() as usize) } {
            Ok(t) => t,
            Err(_) => continue, // empty slot (device id 0) or bad magic
        };
        if transport.device_type() != DeviceType::Block {
            continue;
        }
        match VirtIOBlk::<KexbootHal, _>::new(transport) {
            Ok(dev) => out.push(VirtioBlk {
                dev,
                base: slot.start,
            }),
            Err(e) => log::warn!("virtio-blk at {:#x}: {:?}", slot.start, e),
        }
    }
    out
}
