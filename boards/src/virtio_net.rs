//! virtio-net (virtio-mmio) as the `kexboot_net::Nic` the network stack polls: a ring of
//! receive buffers kept posted, one frame sent at a time with a bounded wait for the device.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;

use kexboot_loader::mem::Range;
use kexboot_net::{Nic, NicError, MAX_FRAME};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::PhysAddr;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::timer;
use crate::virtio::KexbootHal;

/// Receive buffers posted to the device: a TFTP window of up to 64 blocks, twice over, must fit.
const QUEUE: usize = 128;
/// One buffer: the virtio-net header plus a full Ethernet frame.
const BUF_LEN: usize = 2048;
/// A frame the device has not taken after this long means the device is stuck.
const TX_TIMEOUT_US: u64 = 1_000_000;

type Raw = VirtIONetRaw<KexbootHal, NetTransport, QUEUE>;

/// VIRTIO_F_EVENT_IDX (VIRTIO_RING_F_EVENT_IDX): not offered to the driver, see [`NetTransport`].
const F_EVENT_IDX: u64 = 1 << 29;

/// The network device's virtio-mmio transport, hiding VIRTIO_F_EVENT_IDX from the driver.
///
/// With event indices, virtio-drivers 0.13 notifies the device after adding a buffer when
/// `avail_idx >= avail_event + 1`, which holds for every buffer once the driver is ahead of the
/// device (the device's `avail_event` is where it stopped reading): every receive buffer
/// reposted was a QueueNotify write, in QEMU an exit into the device model under its global
/// lock, once per frame received. The spec's test notifies only when the device waits at the
/// slot just filled. Without event indices the driver follows VRING_USED_F_NO_NOTIFY instead,
/// which QEMU sets while it holds buffers (receive) or is already flushing (transmit): no
/// notify per frame, as U-Boot's driver.
pub struct NetTransport(MmioTransport<'static>);

impl Transport for NetTransport {
    fn device_type(&self) -> DeviceType {
        self.0.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.0.read_device_features() & !F_EVENT_IDX
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.0.write_driver_features(driver_features & !F_EVENT_IDX)
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.0.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.0.notify(queue)
    }
    fn get_status(&self) -> DeviceStatus {
        self.0.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.0.set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.0.set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.0.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.0
            .queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.0.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.0.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.0.read_config_generation()
    }
    fn read_config_space<T: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<T> {
        self.0.read_config_space(offset)
    }
    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> virtio_drivers::Result<()> {
        self.0.write_config_space(offset, value)
    }
}

pub struct VirtioNet {
    /// Declared first so it drops (resetting the device: no more DMA) before the buffers.
    /// `None` once the device was reset after a stall.
    dev: Option<Raw>,
    /// Receive buffers by descriptor token; `None` while not posted.
    rx: Vec<Option<Box<[u8]>>>,
    tx: Box<[u8]>,
    mac: [u8; 6],
    pub base: u64,
}

impl VirtioNet {
    /// Posts the receive buffers; on failure the device is reset (dropped) before any posted
    /// buffer is freed.
    fn new(mut dev: Raw, base: u64) -> Result<Self, virtio_drivers::Error> {
        let mac = dev.mac_address();
        let mut rx: Vec<Option<Box<[u8]>>> = (0..QUEUE).map(|_| None).collect();
        for _ in 0..QUEUE {
            let mut buf = alloc::vec![0u8; BUF_LEN].into_boxed_slice();
            // SAFETY: the buffer is a heap allocation kept in `rx` (not touched) until the
            // device returns it through `poll_receive`, or the device is reset (dropped first).
            let posted = unsafe { dev.receive_begin(&mut buf) };
            let slot = posted.map(|t| rx.get_mut(usize::from(t)));
            match slot {
                Ok(Some(slot @ None)) => *slot = Some(buf),
                other => {
                    drop(dev); // reset: no more DMA into `rx` or `buf`
                    return Err(match other {
                        Err(e) => e,
                        _ => virtio_drivers::Error::WrongToken,
                    });
                }
            }
        }
        Ok(VirtioNet {
            dev: Some(dev),
            rx,
            tx: alloc::vec![0u8; BUF_LEN].into_boxed_slice(),
            mac,
            base,
        })
    }
}

impl Nic for VirtioNet {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), NicError> {
        let dev = self.dev.as_mut().ok_or(NicError::Gone)?;
        if frame.len() > MAX_FRAME {
            return Err(NicError::TooLong);
        }
        let hdr = dev
            .fill_buffer_header(&mut self.tx)
            .map_err(|_| NicError::Gone)?;
        let len = hdr + frame.len();
        self.tx
            .get_mut(hdr..len)
            .ok_or(NicError::TooLong)?
            .copy_from_slice(frame);
        let buf = &self.tx[..len];
        // SAFETY: `self.tx` is not touched until the device completes the request below, or is
        // reset (dropped) on timeout, which ends its DMA.
        let token = unsafe { dev.transmit_begin(buf) }.map_err(|_| NicError::Gone)?;
        if !timer::poll_until(TX_TIMEOUT_US, || dev.poll_transmit() == Some(token)) {
            log::error!(
                "virtio-net at {:#x}: a frame was not sent in 1 s; device reset",
                self.base
            );
            self.dev = None;
            return Err(NicError::Stalled);
        }
        // SAFETY: the same buffer as the `transmit_begin` of `token`.
        unsafe { dev.transmit_complete(token, buf) }.map_err(|_| NicError::Gone)?;
        Ok(())
    }

    fn receive(&mut self, out: &mut [u8]) -> Option<usize> {
        let mut got = None;
        self.receive_with(&mut |frame| {
            if let Some(dst) = out.get_mut(..frame.len()) {
                dst.copy_from_slice(frame);
                got = Some(frame.len());
            }
        });
        got
    }

    /// Zero-copy: `f` reads the frame inside the posted receive buffer, which goes back to the
    /// device once `f` returns.
    fn receive_with(&mut self, f: &mut dyn FnMut(&[u8])) -> bool {
        let Some(dev) = self.dev.as_mut() else {
            return false;
        };
        let Some(token) = dev.poll_receive() else {
            return false;
        };
        let Some(mut buf) = self.rx.get_mut(usize::from(token)).and_then(Option::take) else {
            // A token we never posted (or posted twice): nothing to lend; the ring goes on.
            return false;
        };
        // SAFETY: `buf` is the buffer posted with `token` (kept by token in `rx`).
        let got = unsafe { dev.receive_complete(token, &mut buf) };
        if let Some(frame) = got
            .ok()
            .and_then(|(hdr, len)| buf.get(hdr..hdr.checked_add(len)?))
        {
            f(frame);
        }
        // Post the buffer again (whatever came in).
        // SAFETY: as in `new`: kept in `rx` untouched until the device returns it.
        match unsafe { dev.receive_begin(&mut buf) } {
            Ok(t) => {
                if let Some(slot @ None) = self.rx.get_mut(usize::from(t)) {
                    *slot = Some(buf);
                } else {
                    // Cannot happen with a sane device; stop using it rather than lose track
                    // of a buffer it may write.
                    log::error!(
                        "virtio-net at {:#x}: receive ring out of step; device reset",
                        self.base
                    );
                    self.dev = None;
                    core::mem::forget(buf);
                }
            }
            Err(e) => log::warn!(
                "virtio-net at {:#x}: receive buffer not reposted: {e:?}",
                self.base
            ),
        }
        true
    }
}

/// The first virtio-net device among the virtio-mmio slots the device tree lists.
pub fn find(slots: &[Range]) -> Option<VirtioNet> {
    for slot in slots {
        let Some(header) = NonNull::new(slot.start() as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the device tree names this range as a virtio-mmio register block; it is
        // identity-mapped as device memory, and only this driver takes network devices.
        let transport = match unsafe { MmioTransport::new(header, slot.len() as usize) } {
            Ok(t) => t,
            Err(_) => continue,
        };
        if transport.device_type() != DeviceType::Network {
            // Dropping a transport resets its device: the disk may be in use.
            core::mem::forget(transport);
            continue;
        }
        match Raw::new(NetTransport(transport)) {
            Ok(dev) => match VirtioNet::new(dev, slot.start()) {
                Ok(nic) => return Some(nic),
                Err(e) => log::warn!(
                    "virtio-net at {:#x}: cannot post receive buffers: {e:?}",
                    slot.start()
                ),
            },
            Err(e) => log::warn!("virtio-net at {:#x}: {:?}", slot.start(), e),
        }
    }
    None
}
