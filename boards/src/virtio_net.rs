//! virtio-net (virtio-mmio) as the `kexboot_net::Nic` the network stack polls: a ring of
//! receive buffers kept posted, one frame sent at a time with a bounded wait for the device.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;

use kexboot_loader::mem::Range;
use kexboot_net::{Nic, NicError, MAX_FRAME};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};

use crate::timer::Stopwatch;
use crate::virtio::KexbootHal;

/// Receive buffers posted to the device: a TFTP window of up to 64 blocks, twice over, must fit.
const QUEUE: usize = 128;
/// One buffer: the virtio-net header plus a full Ethernet frame.
const BUF_LEN: usize = 2048;
/// A frame the device has not taken after this long means the device is stuck.
const TX_TIMEOUT_US: u64 = 1_000_000;

type Raw = VirtIONetRaw<KexbootHal, MmioTransport<'static>, QUEUE>;

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
        let sw = Stopwatch::start();
        while dev.poll_transmit() != Some(token) {
            if sw.elapsed_us() > TX_TIMEOUT_US {
                log::error!(
                    "virtio-net at {:#x}: a frame was not sent in 1 s; device reset",
                    self.base
                );
                self.dev = None;
                return Err(NicError::Stalled);
            }
            core::hint::spin_loop();
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
        match Raw::new(transport) {
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
