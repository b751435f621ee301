//! Test support shared by the host tests of `net/` and `boot/`: an in-process network that a
//! [`kexboot_net::Stack`] can boot from. No hardware, no sockets, no threads: a [`TestNic`]
//! carries Ethernet frames over a seeded lossy [`Link`] to a [`World`] that answers ARP, DHCP
//! (PXE options checked), TFTP (one windowed [`Server`] session per transfer ID) and ICMP echo.
//! Time is virtual: [`TestPlatform`] advances the clock [`STEP_US`] per reading and jumps to the
//! next network event when the stack idles, so every run with the same seed is the same.
//!
//! ```
//! let mut net = kexboot_testnet::Network::new(1);
//! net.world.borrow_mut().add_file("pxelinux/pxelinux.0", b"hello");
//! let start = net.platform.now.get();
//! let mut stack = kexboot_net::Stack::new(net.nic, start);
//! let lease = stack.dhcp(&mut net.platform, 10_000_000).unwrap();
//! assert_eq!(lease.bootfile.as_deref(), Some("pxelinux/pxelinux.0"));
//! ```
#![warn(missing_docs)]

use std::cell::{Cell, RefCell};
use std::net::Ipv4Addr;
use std::rc::Rc;

use kexboot_net::tftp::Options;
use kexboot_net::{Nic, NicError, Platform, MAX_FRAME};
use smoltcp::wire::EthernetAddress;

mod http;
mod link;
mod server;
mod world;

pub use http::{HttpServer, HTTP_PORT};
pub use link::{random_file, Link, Rng};
pub use server::{Server, GIVE_UP_RETRIES};
pub use world::{
    udp_frame, Dhcp, Session, World, FIRST_SERVER_PORT, LINK_DELAY_US, SETTLE_US, START_US,
};

/// The client's (the test NIC's) MAC address.
pub const CLIENT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// The server's MAC address; it answers ARP for 10.0.2.2 to 10.0.2.9.
pub const SERVER_MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
/// The DHCP server, router and TFTP server address (TFTP answers on any address it ARPs for).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The address the DHCP server offers, /24.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// How far the virtual clock moves at each reading, µs.
pub const STEP_US: u64 = 50;
/// TFTP without options (RFC 1350 lock-step, 512-byte blocks): `Options::default()` as a
/// constant, for `..PLAIN` in constant option sets.
pub const PLAIN: Options = Options {
    blksize: None,
    tsize: false,
    timeout: None,
    windowsize: None,
};
/// Clock readings after which [`TestPlatform`] decides the stack spins without end.
const MAX_READINGS: u64 = 200_000_000;

/// The client's NIC: frames go onto the world's link; receiving first lets the world run.
pub struct TestNic {
    /// The network it is plugged into.
    pub world: Rc<RefCell<World>>,
}

impl Nic for TestNic {
    fn mac(&self) -> [u8; 6] {
        CLIENT_MAC
    }
    fn transmit(&mut self, frame: &[u8]) -> Result<(), NicError> {
        assert!(frame.len() <= MAX_FRAME);
        self.world.borrow_mut().send(false, frame.to_vec());
        Ok(())
    }
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut w = self.world.borrow_mut();
        w.step();
        let f = w.inbox.pop_front()?;
        buf[..f.len()].copy_from_slice(&f);
        Some(f.len())
    }
}

/// The stack's platform: a virtual clock shared with the [`World`], and Ctrl-C on request.
pub struct TestPlatform {
    world: Rc<RefCell<World>>,
    /// The virtual clock in µs (the same cell as [`World::now`]).
    pub now: Rc<Cell<u64>>,
    /// Report Ctrl-C once the clock passes this.
    pub interrupt_at: Option<u64>,
    readings: u64,
}

impl Platform for TestPlatform {
    fn now_us(&mut self) -> u64 {
        self.readings += 1;
        assert!(self.readings < MAX_READINGS, "stack spins without end");
        self.now.set(self.now.get() + STEP_US);
        self.now.get()
    }
    fn interrupted(&mut self) -> bool {
        self.interrupt_at.is_some_and(|t| self.now.get() >= t)
    }
    fn idle(&mut self, until_us: u64) {
        let now = self.now.get();
        assert!(until_us > now, "idle until the past");
        let next = self.world.borrow().next_event().unwrap_or(u64::MAX);
        self.now.set(until_us.min(next).max(now));
    }
}

/// A world with its NIC and platform, on one clock: what a test hands to [`kexboot_net::Stack`]
/// (`Stack::new(net.nic, net.platform.now.get())`). Keep `world` to set knobs, add files and
/// read what the server saw.
pub struct Network {
    /// The network side, shared with `nic` and `platform`.
    pub world: Rc<RefCell<World>>,
    /// The client's NIC.
    pub nic: TestNic,
    /// The client's platform (clock, Ctrl-C).
    pub platform: TestPlatform,
}

impl Network {
    /// A lossless network seeded by `seed` (see [`World::new`]), serving no files yet.
    pub fn new(seed: u64) -> Self {
        Network::with_world(World::new(seed, 0.0, 0.0, false))
    }

    /// Wires `world` to a NIC and a platform on the world's clock.
    pub fn with_world(world: World) -> Self {
        let now = world.now.clone();
        let world = Rc::new(RefCell::new(world));
        Network {
            nic: TestNic {
                world: world.clone(),
            },
            platform: TestPlatform {
                world: world.clone(),
                now,
                interrupt_at: None,
                readings: 0,
            },
            world,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kexboot_net::{Stack, TftpRequest};

    /// The PXE path a boot test takes: DHCP names the boot file, TFTP fetches it, and the world
    /// logs the file names asked for, in order.
    #[test]
    fn network_serves_the_leased_bootfile_and_logs_requests() {
        let mut net = Network::new(7);
        let file = random_file(3000, 7);
        net.world
            .borrow_mut()
            .add_file("pxelinux/pxelinux.0", &file);
        let mut stack = Stack::new(net.nic, net.platform.now.get());
        let p = &mut net.platform;
        let lease = stack.dhcp(p, 10_000_000).unwrap();
        let name = lease.bootfile.clone().unwrap();
        let mut dest = vec![0u8; 4000];
        let req = TftpRequest::new(lease.tftp_server(), &name);
        let t = stack.tftp_get(p, &req, &mut dest, &mut |_| {}).unwrap();
        assert!(t.size == file.len() && dest[..t.size] == file[..]);
        let missing = TftpRequest::new(SERVER_IP, "missing");
        assert!(stack.tftp_get(p, &missing, &mut dest, &mut |_| {}).is_err());
        let mut w = net.world.borrow_mut();
        w.settle();
        assert_eq!(w.requested, ["pxelinux/pxelinux.0", "missing"]);
        assert_eq!(w.rrqs(), 2);
    }
}
