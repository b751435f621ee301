//! The network state the network commands share: the stack on the first virtio-net device
//! (probed when a command first needs it, again after a device failure), the lease, the PXE
//! config, and the stack's clock and Ctrl-C.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kexboot_boot::netenv::mac_str;
use kexboot_net::{Ipv4Addr, Lease, NetError, Platform, Stack};

use crate::virtio_net::{self, VirtioNet};
use crate::{console, timer};

/// The network state the commands share: the stack once a command needed it, the lease, the
/// config `pxe get` found.
#[derive(Default)]
pub struct Net {
    pub(crate) stack: Option<Stack<VirtioNet>>,
    pub(crate) probed: bool,
    pub(crate) lease: Option<Lease>,
    pub(crate) pxe: Option<PxeConfig>,
    /// The address, prefix and gateway last given to the stack (from DHCP or the environment).
    pub(crate) applied: Option<(Ipv4Addr, u8, Option<Ipv4Addr>)>,
}

#[derive(Clone)]
pub(crate) struct PxeConfig {
    pub(crate) path: String,
    pub(crate) prefix: String,
    pub(crate) text: Vec<u8>,
}

/// The stack's clock and Ctrl-C (the UART is read at most every 10 ms: under emulation each
/// device register read is costly, and the stack asks once per loop turn).
pub(crate) struct NetPlatform;

/// When the UART was last read for Ctrl-C.
static LAST_KEY_CHECK_US: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
const KEY_CHECK_US: u64 = 10_000;

impl Platform for NetPlatform {
    fn now_us(&mut self) -> u64 {
        timer::since_start_us()
    }

    fn interrupted(&mut self) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        let now = timer::since_start_us();
        if now.saturating_sub(LAST_KEY_CHECK_US.load(Relaxed)) < KEY_CHECK_US {
            return false;
        }
        LAST_KEY_CHECK_US.store(now, Relaxed);
        console::ctrl_c_pressed()
    }
}

impl Net {
    /// After a device failure the stack is dropped (the device reset): the next command
    /// probes and initialises it again.
    pub(crate) fn failed(&mut self, e: &NetError) {
        if matches!(e, NetError::Nic(_)) {
            log::warn!("network device failed ({e}); it is set up again on the next command");
            *self = Net::default();
        }
    }

    /// The stack on the first virtio-net device (probed once, again after a failure).
    pub(crate) fn stack(
        &mut self,
        info: &kexboot_loader::dt::DtInfo,
    ) -> Result<&mut Stack<VirtioNet>, String> {
        if self.stack.is_none() && !self.probed {
            self.probed = true;
            if let Some(nic) = virtio_net::find(&info.virtio_mmio) {
                log::info!(
                    "virtio-net at {:#x}, MAC {}",
                    nic.base,
                    mac_str(kexboot_net::Nic::mac(&nic))
                );
                self.stack = Some(Stack::new(nic, timer::since_start_us()));
            }
        }
        self.stack
            .as_mut()
            .ok_or_else(|| "no network device (virtio-net)".to_string())
    }
}
