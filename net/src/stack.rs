//! The IPv4 stack the firmware drives: a smoltcp [`Interface`] over a [`Nic`], with DHCP, TFTP
//! (through the sans-I/O [`tftp::Client`]) and ping. Everything is polled: each call runs its own
//! loop on the [`Platform`] clock, bounded by retries or a timeout, and creates its sockets in a
//! fresh [`SocketSet`] that is dropped when it returns, so no state leaks from one call to the next.

use alloc::{string::String, vec, vec::Vec};
use core::fmt;
use core::net::Ipv4Addr;

use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{dhcpv4, icmp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr, EthernetAddress, HardwareAddress,
    Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpEndpoint, Ipv4Cidr,
};

use crate::fastpath::{self, Class, Filter};
use crate::nic::{Nic, NicError, Platform, MAX_FRAME};
use crate::tftp::{self, Action, Client, Packet};

#[cfg(feature = "http")]
#[path = "stack_http.rs"]
mod http_get;
#[cfg(feature = "http")]
pub use http_get::{HttpEvent, HttpFetch, HttpFetched, HttpGet, HttpGot};

/// Largest TFTP block that fits one Ethernet frame (1514 - 14 - 20 - 8 - 4): requests for more
/// are lowered to this, as the stack does not reassemble IP fragments.
pub const MAX_TFTP_BLKSIZE: u16 = 1468;
/// Frames taken from the NIC per loop turn, so a flood cannot keep a turn going forever.
const INGRESS_BUDGET: usize = 64;
/// Consecutive `NicError::Stalled` transmits tolerated (as lost frames) before giving up.
const MAX_STALLS: u32 = 16;
/// UDP receive buffer of a TFTP transfer: room for 64 datagrams (windows of 16 x 1468 bytes and
/// duplicates).
const TFTP_RX_SLOTS: usize = 64;
const TFTP_RX_BYTES: usize = 128 * 1024;
const TFTP_TX_SLOTS: usize = 16;
const TFTP_TX_BYTES: usize = 16 * 1024;
/// Copy of the last DHCP reply (the largest UDP payload of one frame fits).
const DHCP_PACKET_BUF: usize = 1500;
/// Subnet mask, router, DNS, TFTP server name (66), boot file name (67).
const DHCP_REQUEST_LIST: &[u8] = &[1, 3, 6, 66, 67];
/// What kexboot says it is, as U-Boot does on arm64 (RFC 4578): vendor class (60)
/// "PXEClient:Arch:00022:UNDI:003000" and client system architecture (93) 0x0016 ("ARM 64-bit
/// U-Boot"), so DHCP servers that only answer PXE clients (dnsmasq `pxe-service`, ISC
/// `PXEClient` classes) answer it, with a boot file for U-Boot-style loaders rather than EFI.
const DHCP_CLIENT_OPTIONS: &[DhcpOption<'static>] = &[
    DhcpOption {
        kind: 60,
        data: b"PXEClient:Arch:00022:UNDI:003000",
    },
    DhcpOption {
        kind: 93,
        data: &[0x00, 0x16],
    },
];
/// The same when HTTP boot is asked for: vendor class "HTTPClient:..." as UEFI HTTP Boot
/// clients say, so servers set up for HTTP boot answer with an `http://` boot file.
const DHCP_HTTP_CLIENT_OPTIONS: &[DhcpOption<'static>] = &[
    DhcpOption {
        kind: 60,
        data: b"HTTPClient:Arch:00022:UNDI:003000",
    },
    DhcpOption {
        kind: 93,
        data: &[0x00, 0x16],
    },
];
const DHCP_OPT_TFTP_SERVER: u8 = 66;
const DHCP_OPT_BOOTFILE: u8 = 67;
/// Interval between echo requests of one `ping`.
const PING_INTERVAL_US: u64 = 1_000_000;
/// How long a last TFTP packet (final ACK, ERROR) may wait for ARP before the socket goes.
const LINGER_US: u64 = 50_000;
/// Longest the loop hands to [`Platform::idle`] at once.
const MAX_IDLE_US: u64 = 100_000;
/// RFC 1350 error code for a packet from an unknown transfer ID.
const TFTP_UNKNOWN_TID: u16 = 5;

/// Everything a network operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// Nothing (`what`) arrived within the time allowed.
    Timeout { what: &'static str, after_us: u64 },
    /// The TFTP transfer failed (including the server's ERROR packets and its silence).
    Tftp(tftp::Error),
    /// The network device failed.
    Nic(NicError),
    /// The person pressed Ctrl-C.
    Interrupted,
    /// No IPv4 address yet (run `dhcp` or set one).
    NotConfigured,
    /// The target is outside the local subnet and there is no gateway.
    NoRoute(Ipv4Addr),
    /// The HTTP exchange failed.
    #[cfg(feature = "http")]
    Http(crate::http::HttpError),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Timeout { what, after_us } => {
                let (s, tenths) = (after_us / 1_000_000, after_us % 1_000_000 / 100_000);
                if tenths == 0 {
                    write!(f, "no {what} after {s} s")
                } else {
                    write!(f, "no {what} after {s}.{tenths} s")
                }
            }
            NetError::Tftp(tftp::Error::Timeout { retries }) => {
                write!(f, "server stopped answering after {retries} retries")
            }
            NetError::Tftp(tftp::Error::Remote { code, message }) => {
                write!(f, "server error {code}: {message}")
            }
            NetError::Tftp(e) => write!(f, "{e}"),
            NetError::Nic(e) => write!(f, "network device: {e}"),
            NetError::Interrupted => f.write_str("interrupted"),
            NetError::NotConfigured => {
                f.write_str("no IPv4 address configured (run dhcp or set ipaddr)")
            }
            NetError::NoRoute(a) => {
                write!(f, "no route to {a}: not on the local subnet and no gateway")
            }
            #[cfg(feature = "http")]
            NetError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl From<tftp::Error> for NetError {
    fn from(e: tftp::Error) -> Self {
        NetError::Tftp(e)
    }
}

/// One turn of a wait for `what`: the time now, unless Ctrl-C was pressed or `end` has passed.
fn turn(
    p: &mut dyn Platform,
    end: u64,
    what: &'static str,
    timeout_us: u64,
) -> Result<u64, NetError> {
    let now = p.now_us();
    if p.interrupted() {
        return Err(NetError::Interrupted);
    }
    if now >= end {
        return Err(NetError::Timeout {
            what,
            after_us: timeout_us,
        });
    }
    Ok(now)
}

/// What a DHCP server handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub server_id: Ipv4Addr,
    /// siaddr, when not 0.0.0.0
    pub next_server: Option<Ipv4Addr>,
    /// option 66
    pub tftp_server_name: Option<String>,
    /// option 67, else the BOOTP `file` field (non-empty)
    pub bootfile: Option<String>,
    pub lease_secs: Option<u32>,
}

impl Lease {
    /// The TFTP server: option 66 when it is a dotted quad (it names the TFTP server and
    /// nothing else, while many DHCP servers, QEMU's among them, fill siaddr with their own
    /// address), else siaddr, else the DHCP server.
    pub fn tftp_server(&self) -> Ipv4Addr {
        self.tftp_server_name
            .as_deref()
            .and_then(|n| n.trim().parse().ok())
            .or(self.next_server)
            .unwrap_or(self.server_id)
    }
}

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct TftpRequest<'a> {
    pub server: Ipv4Addr,
    /// Usually 69.
    pub port: u16,
    pub file: &'a str,
    /// `blksize` above [`MAX_TFTP_BLKSIZE`] is lowered to it.
    pub options: tftp::Options,
}

impl<'a> TftpRequest<'a> {
    /// Port 69 with the options that pay off: blksize 1468, tsize, windowsize 16.
    pub fn new(server: Ipv4Addr, file: &'a str) -> Self {
        TftpRequest {
            server,
            port: 69,
            file,
            options: tftp::Options {
                blksize: Some(MAX_TFTP_BLKSIZE),
                tsize: true,
                timeout: None,
                windowsize: Some(32),
            },
        }
    }
}

/// Passed to the progress callback of [`Stack::tftp_get`].
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub received: u64,
    pub total: Option<u64>,
    pub elapsed_us: u64,
    /// The client's current (loss-adaptive) window.
    pub window: u16,
}

/// A finished download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub size: usize,
    pub elapsed_us: u64,
    pub blksize: usize,
    /// window granted by the server (1 when not negotiated)
    pub window: u16,
    pub timeouts: u32,
    pub tsize: Option<u64>,
}

fn at(us: u64) -> Instant {
    Instant::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
}

fn micros(t: Instant) -> u64 {
    u64::try_from(t.total_micros()).unwrap_or(0)
}

#[allow(irrefutable_let_patterns)]
fn v4(a: IpAddress) -> Option<Ipv4Addr> {
    if let IpAddress::Ipv4(a) = a {
        Some(a)
    } else {
        None
    }
}

/// smoltcp's view of the NIC: one reusable receive and transmit buffer each.
struct Port<N: Nic> {
    nic: N,
    rx: Vec<u8>,
    /// A frame the TFTP fast path took from the NIC and left for smoltcp: its length in `rx`.
    /// The next [`Device::receive`] hands it over before asking the NIC for another.
    stashed: Option<usize>,
    /// The source MAC of the last datagram the fast path took: where its ACKs go.
    peer: Option<[u8; 6]>,
    tx: Vec<u8>,
    /// First fatal device error since the last check.
    error: Option<NicError>,
    stalls: u32,
}

impl<N: Nic> Port<N> {
    fn check(&mut self) -> Result<(), NetError> {
        self.error.take().map_or(Ok(()), |e| Err(NetError::Nic(e)))
    }

    /// Takes one frame from the NIC for a locked TFTP transfer (`filter`): a datagram of the
    /// transfer goes to `take` where it lies in the NIC's buffer; one with a bad checksum is
    /// dropped; any other frame is stashed for smoltcp. Returns whether a frame was taken, and
    /// what `take` returned.
    fn take_fast<R>(
        &mut self,
        filter: &Filter,
        mut take: impl FnMut(&[u8]) -> R,
    ) -> (bool, Option<R>) {
        debug_assert!(self.stashed.is_none(), "a stashed frame was not consumed");
        let Port {
            nic,
            rx,
            stashed,
            peer,
            ..
        } = self;
        let mut out = None;
        let taken = nic.receive_with(&mut |frame| match fastpath::classify(frame, filter) {
            Class::Tftp(pkt) => {
                // The sender's MAC: where the answer goes (the server, or the router).
                *peer = frame.get(6..12).and_then(|m| m.try_into().ok());
                out = Some(take(pkt));
            }
            Class::BadChecksum => log::debug!("tftp: dropped a datagram with a bad checksum"),
            Class::Other => {
                // A frame longer than the buffer is broken: dropped, as `receive` would.
                if let Some(dst) = rx.get_mut(..frame.len()) {
                    dst.copy_from_slice(frame);
                    *stashed = Some(frame.len());
                }
            }
        });
        (taken, out)
    }

    /// Sends `payload` to the server of the locked transfer `filter` straight through the NIC,
    /// to the MAC its last datagram came from (see [`fastpath::udp_frame`]). False (nothing
    /// sent) when no datagram of the transfer has come through the fast path yet.
    fn send_fast(&mut self, filter: &Filter, payload: &[u8]) -> bool {
        let Some(peer) = self.peer else { return false };
        let mut frame = [0u8; FAST_TX_MAX];
        let Some(n) = fastpath::udp_frame(filter, peer, payload, &mut frame) else {
            return false;
        };
        send_frame(
            &mut self.nic,
            &frame[..n],
            &mut self.error,
            &mut self.stalls,
        );
        true
    }
}

/// Largest frame [`Port::send_fast`] builds: headers and a TFTP ACK or ERROR of a short message.
const FAST_TX_MAX: usize = 128;

struct RxTok<'a>(&'a [u8]);

impl phy::RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

struct TxTok<'a, N: Nic> {
    nic: &'a mut N,
    buf: &'a mut Vec<u8>,
    error: &'a mut Option<NicError>,
    stalls: &'a mut u32,
}

impl<N: Nic> phy::TxToken for TxTok<'_, N> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.buf.clear();
        self.buf.resize(len, 0);
        let r = f(self.buf);
        send_frame(self.nic, self.buf, self.error, self.stalls);
        r
    }
}

/// Sends one frame, keeping count: a stalled frame is a lost frame until [`MAX_STALLS`] come in
/// a row; any other failure is kept in `error` for the next [`Port::check`].
fn send_frame<N: Nic>(nic: &mut N, frame: &[u8], error: &mut Option<NicError>, stalls: &mut u32) {
    let sent = if frame.len() > MAX_FRAME {
        Err(NicError::TooLong)
    } else {
        nic.transmit(frame)
    };
    match sent {
        Ok(()) => *stalls = 0,
        Err(NicError::Stalled) => {
            *stalls += 1;
            if *stalls >= MAX_STALLS {
                error.get_or_insert(NicError::Stalled);
            }
        }
        Err(e) => {
            error.get_or_insert(e);
        }
    }
}

impl<N: Nic> Device for Port<N> {
    type RxToken<'a>
        = RxTok<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxTok<'a, N>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(RxTok<'_>, TxTok<'_, N>)> {
        let n = match self.stashed.take() {
            Some(n) => n,
            None => self.nic.receive(&mut self.rx)?,
        };
        // A length the buffer cannot hold is a broken frame: hand smoltcp an empty one (ignored).
        let mut frame = self.rx.get(..n).unwrap_or(&[]);
        // TCP checksums are checked here (smoltcp is told not to, see `capabilities`); a
        // damaged segment goes as an empty frame.
        if fastpath::tcp_checksum_ok(frame) == Some(false) {
            log::debug!("tcp: dropped a segment with a bad checksum");
            frame = &[];
        }
        let tx = TxTok {
            nic: &mut self.nic,
            buf: &mut self.tx,
            error: &mut self.error,
            stalls: &mut self.stalls,
        };
        Some((RxTok(frame), tx))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxTok<'_, N>> {
        Some(TxTok {
            nic: &mut self.nic,
            buf: &mut self.tx,
            error: &mut self.error,
            stalls: &mut self.stalls,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        // TCP checksums of received segments are checked in `receive`, faster; smoltcp still
        // fills those it sends.
        caps.checksum.tcp = phy::Checksum::Tx;
        caps
    }
}

/// What a TFTP session's reply handler decided about one packet from the server.
enum Reply<T> {
    /// Not for us after all (malformed, out of place): leave the transfer as it was.
    Ignore,
    /// Taken, nothing to send yet.
    Accept,
    /// Send this (ACK) and go on.
    Send(Vec<u8>),
    /// Send this (if any), then end with `result`.
    Finish(Option<Vec<u8>>, Result<T, NetError>),
}

/// The UDP side of one TFTP transfer: the socket, and the server's transfer ID once known.
struct Session {
    handle: SocketHandle,
    server: Ipv4Addr,
    port: u16,
    /// Our UDP port.
    local: u16,
    tid: Option<u16>,
    last: Vec<u8>,
}

impl Session {
    fn socket<'s, 'a>(&self, sockets: &'s mut SocketSet<'a>) -> &'s mut udp::Socket<'a> {
        sockets.get_mut::<udp::Socket>(self.handle)
    }

    /// Sends to the server's TID (port 69 before it is known). A packet identical to one still
    /// queued (waiting for ARP) is not queued twice.
    fn send(&mut self, sockets: &mut SocketSet<'_>, pkt: &[u8]) {
        let to = self.remote();
        let s = sockets.get_mut::<udp::Socket>(self.handle);
        if s.send_queue() > 0 && self.last == pkt {
            return;
        }
        // A full send queue drops the packet like a lossy link would; retries cover it.
        let _ = s.send_slice(pkt, to);
        self.last = Vec::from(pkt);
    }

    /// Whether a datagram from `from` belongs to this transfer (any port of the server until
    /// the TID is locked).
    fn accepts(&self, from: IpEndpoint) -> bool {
        v4(from.addr) == Some(self.server) && self.tid.is_none_or(|t| t == from.port)
    }

    fn lock(&mut self, from: IpEndpoint) {
        self.tid.get_or_insert(from.port);
    }

    /// The datagrams the receive fast path takes: from the server's TID once it is locked.
    fn fast_filter(&self, mac: [u8; 6], address: Ipv4Addr) -> Option<Filter> {
        Some(Filter {
            mac,
            local: (address, self.local),
            remote: (self.server, self.tid?),
        })
    }

    /// The server's TID as an endpoint (port 69 before it is known).
    fn remote(&self) -> IpEndpoint {
        IpEndpoint::new(self.server.into(), self.tid.unwrap_or(self.port))
    }
}

/// A polled IPv4 network stack over one NIC.
pub struct Stack<N: Nic> {
    iface: Interface,
    port: Port<N>,
    mac: [u8; 6],
    gateway: Option<Ipv4Addr>,
    rng: u64,
    /// Ask DHCP as an HTTP boot client.
    http_client: bool,
    #[cfg(feature = "http")]
    http: http_get::HttpState,
}

impl<N: Nic> Stack<N> {
    /// A stack over `nic`, without an address. A multicast MAC (which smoltcp refuses) is made
    /// unicast and locally administered; [`Stack::mac`] tells the one in use.
    pub fn new(nic: N, now_us: u64) -> Self {
        let mut mac = nic.mac();
        if mac[0] & 1 != 0 {
            log::warn!("net: multicast MAC {mac:02x?}, using it as a local unicast address");
            mac[0] = (mac[0] & !1) | 2;
        }
        let seed = mac.iter().fold(now_us ^ 0x9E37_79B9_7F4A_7C15, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        }) | 1;
        let mut port = Port {
            nic,
            rx: vec![0; MAX_FRAME],
            stashed: None,
            peer: None,
            tx: Vec::with_capacity(MAX_FRAME),
            error: None,
            stalls: 0,
        };
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let iface = Interface::new(config, &mut port, at(now_us));
        Stack {
            iface,
            port,
            mac,
            gateway: None,
            rng: seed,
            http_client: false,
            #[cfg(feature = "http")]
            http: http_get::HttpState::default(),
        }
    }

    /// The station address in use.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn random(&mut self) -> u64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// DHCPv4 (smoltcp's Dhcpv4Socket; asks for options 66 and 67 and keeps the ACK to read
    /// siaddr, `file`, options 66/67). Configures the interface (address, default route) on
    /// success. Gives up after `timeout_us` with NetError::Timeout.
    pub fn dhcp(&mut self, p: &mut dyn Platform, timeout_us: u64) -> Result<Lease, NetError> {
        let mut packet = vec![0u8; DHCP_PACKET_BUF];
        match self.dhcp_with(p, timeout_us, &mut packet) {
            // smoltcp copies only replies with our xid and MAC: an offer did arrive.
            Err(NetError::Timeout { after_us, .. }) if packet[0] != 0 => Err(NetError::Timeout {
                what: "DHCP acknowledgement",
                after_us,
            }),
            other => other,
        }
    }

    fn dhcp_with(
        &mut self,
        p: &mut dyn Platform,
        timeout_us: u64,
        packet: &mut [u8],
    ) -> Result<Lease, NetError> {
        let mut socket = dhcpv4::Socket::new();
        socket.set_parameter_request_list(DHCP_REQUEST_LIST);
        socket.set_outgoing_options(if self.http_client {
            DHCP_HTTP_CLIENT_OPTIONS
        } else {
            DHCP_CLIENT_OPTIONS
        });
        let mut retry = dhcpv4::RetryConfig::default();
        retry.discover_timeout = Duration::from_secs(2);
        retry.initial_request_timeout = Duration::from_secs(1);
        socket.set_retry_config(retry);
        socket.set_receive_packet_buffer(packet);
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(socket);
        let start = p.now_us();
        let end = start.saturating_add(timeout_us);
        loop {
            let now = turn(p, end, "DHCP offer", timeout_us)?;
            // One frame at a time: smoltcp keeps only the last DHCP packet, so read the lease
            // before the next frame can overwrite the ACK.
            let mut busy = false;
            for _ in 0..INGRESS_BUDGET {
                if !self.ingress_one(now, &mut sockets) {
                    break;
                }
                busy = true;
                let event = sockets.get_mut::<dhcpv4::Socket>(handle).poll();
                if let Some(dhcpv4::Event::Configured(config)) = event {
                    let lease = lease_from(&config);
                    self.configure(lease.address, lease.prefix_len, lease.router);
                    #[cfg(feature = "http")]
                    self.set_dns(&lease.dns);
                    return Ok(lease);
                }
            }
            self.port.check()?;
            busy |= self.egress(now, &mut sockets)?;
            if !busy {
                self.idle(p, now, &sockets, Some(end));
            }
        }
    }

    /// Whether DHCP asks as an HTTP boot client (vendor class `HTTPClient`) or a PXE one.
    pub fn set_http_client(&mut self, on: bool) {
        self.http_client = on;
    }

    /// Static configuration (U-Boot's ipaddr/netmask/gatewayip). 0.0.0.0 removes the address;
    /// a prefix above 32 counts as 32.
    pub fn configure(&mut self, address: Ipv4Addr, prefix_len: u8, gateway: Option<Ipv4Addr>) {
        // smoltcp flushes its ARP cache on every address update but keeps its 1 s silence after
        // the last ARP request: re-applying the same address (a second `dhcp` with the same
        // lease) would stall the next packet for up to a second. Unchanged, it is left alone.
        let same = self.address() == Some((address, prefix_len.min(32)));
        if !same {
            self.iface.update_ip_addrs(|addrs| {
                addrs.clear();
                if !address.is_unspecified() {
                    // Cannot fail: the list was just emptied.
                    let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(address, prefix_len.min(32))));
                }
            });
        }
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        if let Some(g) = gateway {
            // Cannot fail: the default route was just removed.
            let _ = routes.add_default_ipv4_route(g);
        }
        self.gateway = gateway;
    }

    /// The current address, if configured.
    pub fn address(&self) -> Option<(Ipv4Addr, u8)> {
        #[allow(irrefutable_let_patterns)]
        self.iface.ip_addrs().iter().find_map(|c| {
            if let IpCidr::Ipv4(c) = c {
                Some((c.address(), c.prefix_len()))
            } else {
                None
            }
        })
    }

    fn check_route(&self, target: Ipv4Addr) -> Result<(), NetError> {
        let (addr, prefix) = self.address().ok_or(NetError::NotConfigured)?;
        if Ipv4Cidr::new(addr, prefix).contains_addr(&target) || self.gateway.is_some() {
            Ok(())
        } else {
            Err(NetError::NoRoute(target))
        }
    }

    /// Takes one frame from the NIC through smoltcp; false when none waited.
    fn ingress_one(&mut self, now: u64, sockets: &mut SocketSet<'_>) -> bool {
        let r = self
            .iface
            .poll_ingress_single(at(now), &mut self.port, sockets);
        r != PollIngressSingleResult::None
    }

    /// Up to [`INGRESS_BUDGET`] frames in; true when any came.
    fn ingress(&mut self, now: u64, sockets: &mut SocketSet<'_>) -> Result<bool, NetError> {
        let mut busy = false;
        for _ in 0..INGRESS_BUDGET {
            if !self.ingress_one(now, sockets) {
                break;
            }
            busy = true;
        }
        self.port.check()?;
        Ok(busy)
    }

    /// Sends everything due; true when anything went out.
    fn egress(&mut self, now: u64, sockets: &mut SocketSet<'_>) -> Result<bool, NetError> {
        let r = self.iface.poll_egress(at(now), &mut self.port, sockets);
        self.port.check()?;
        Ok(r == PollResult::SocketStateChanged)
    }

    /// Nothing happened this turn: let the platform rest until the next thing due.
    fn idle(&mut self, p: &mut dyn Platform, now: u64, sockets: &SocketSet<'_>, own: Option<u64>) {
        let smol = self.iface.poll_at(at(now), sockets).map(micros);
        let until = [smol, own, Some(now.saturating_add(MAX_IDLE_US))]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now);
        if until > now {
            p.idle(until);
        }
    }

    fn open_udp(&mut self, sockets: &mut SocketSet<'_>, req: &TftpRequest) -> Session {
        let rx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; TFTP_RX_SLOTS],
            vec![0; TFTP_RX_BYTES],
        );
        let tx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; TFTP_TX_SLOTS],
            vec![0; TFTP_TX_BYTES],
        );
        let mut socket = udp::Socket::new(rx, tx);
        // Ephemeral ports 49152..=65535: never 0, so bind cannot fail on a fresh socket.
        let local = 49152 + (self.random() % 16384) as u16;
        let _ = socket.bind(local);
        Session {
            handle: sockets.add(socket),
            server: req.server,
            port: req.port,
            local,
            tid: None,
            last: Vec::new(),
        }
    }

    /// Sends a last packet (final ACK, ERROR) and waits, briefly, until it has left: the
    /// neighbour may have to be resolved again first.
    fn linger(
        &mut self,
        p: &mut dyn Platform,
        s: &mut Session,
        sockets: &mut SocketSet<'_>,
        pkt: Option<Vec<u8>>,
    ) {
        let Some(pkt) = pkt else { return };
        s.send(sockets, &pkt);
        let start = p.now_us();
        let mut now = start;
        while now.saturating_sub(start) < LINGER_US {
            // Best effort: a NIC error now changes nothing about the outcome.
            if self.ingress(now, sockets).is_err() || self.egress(now, sockets).is_err() {
                return;
            }
            if s.socket(sockets).send_queue() == 0 {
                return;
            }
            self.idle(p, now, sockets, Some(start + LINGER_US));
            now = p.now_us();
        }
    }

    /// Carries out what the reply handler decided about a datagram of the server (`from`);
    /// Some(the session's result) when the session is over.
    fn apply<T>(
        &mut self,
        p: &mut dyn Platform,
        s: &mut Session,
        sockets: &mut SocketSet<'_>,
        from: IpEndpoint,
        reply: Reply<T>,
    ) -> Option<Result<T, NetError>> {
        match reply {
            Reply::Ignore => {}
            Reply::Accept => s.lock(from),
            Reply::Send(ack) => {
                s.lock(from);
                s.send(sockets, &ack);
            }
            Reply::Finish(last, result) => {
                s.lock(from);
                self.linger(p, s, sockets, last);
                return Some(result);
            }
        }
        None
    }

    /// Drives one TFTP exchange: sends the client's RRQ, passes each datagram of the server to
    /// `on_reply`, answers strangers with ERROR 5, retransmits on the client's deadlines.
    ///
    /// Until the server's TID is locked everything goes through smoltcp. From then on the
    /// receive fast path takes frames from the NIC itself: a datagram of the transfer (see
    /// [`fastpath::classify`]) goes to `on_reply` straight from the NIC's buffer, one with a
    /// bad checksum is dropped, and every other frame (ARP, ICMP, strangers) is handed to
    /// smoltcp at once, in arrival order, as if it had come from the NIC. The answer to such a
    /// datagram (an ACK, the last ACK, an abort) goes out at once, built by
    /// [`fastpath::udp_frame`] to the MAC the datagram came from, so the server starts its next
    /// window while this one is still read; the RRQ, retransmissions and the ERROR 5 to
    /// strangers go through the UDP socket (smoltcp's ARP). An ERROR 5 to a stranger on
    /// another host that smoltcp has not resolved by the end of the transfer is not sent: the
    /// transfer no longer waits behind it.
    fn tftp_session<T>(
        &mut self,
        p: &mut dyn Platform,
        req: &TftpRequest,
        client: &mut Client,
        timeouts: &mut u32,
        mut on_reply: impl FnMut(&mut Client, &[u8], u64) -> Reply<T>,
    ) -> Result<T, NetError> {
        self.check_route(req.server)?;
        let address = self.address().ok_or(NetError::NotConfigured)?.0;
        let mut sockets = SocketSet::new(Vec::new());
        let mut s = self.open_udp(&mut sockets, req);
        self.port.peer = None;
        let rrq = client.start(p.now_us());
        s.send(&mut sockets, &rrq);
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            let now = p.now_us();
            if p.interrupted() {
                let abort = s.tid.map(|_| {
                    Packet::Error {
                        code: tftp::code::UNDEFINED,
                        message: "interrupted",
                    }
                    .emit()
                });
                self.linger(p, &mut s, &mut sockets, abort);
                return Err(NetError::Interrupted);
            }
            let mut busy = false;
            if let Some(filter) = s.fast_filter(self.mac, address) {
                for _ in 0..INGRESS_BUDGET {
                    let (taken, reply) = self
                        .port
                        .take_fast(&filter, |pkt| on_reply(client, pkt, now));
                    if !taken {
                        break;
                    }
                    busy = true;
                    if self.port.stashed.is_some() {
                        // Consumes the stashed frame (smoltcp asks the port first).
                        self.ingress_one(now, &mut sockets);
                        self.port.check()?;
                    }
                    let Some(reply) = reply else { continue };
                    // Mid-transfer ACKs go out at once, built here (smoltcp's socket, its ARP
                    // and its interface are only for the rest).
                    let reply = match reply {
                        Reply::Send(ack) if self.port.send_fast(&filter, &ack) => {
                            self.port.check()?;
                            continue;
                        }
                        Reply::Finish(Some(last), result)
                            if self.port.send_fast(&filter, &last) =>
                        {
                            // Best effort, as `linger`: a NIC error now changes nothing.
                            let _ = self.port.check();
                            return result;
                        }
                        r => r,
                    };
                    let ack = matches!(reply, Reply::Send(_));
                    if let Some(end) = self.apply(
                        p,
                        &mut s,
                        &mut sockets,
                        IpEndpoint::new(filter.remote.0.into(), filter.remote.1),
                        reply,
                    ) {
                        return end;
                    }
                    if ack {
                        self.egress(now, &mut sockets)?;
                    }
                }
            } else {
                busy = self.ingress(now, &mut sockets)?;
            }
            // What smoltcp delivered: all of it before the lock, strangers (and the odd
            // datagram of the server the fast path left, e.g. a fragmented one) after it.
            for _ in 0..TFTP_RX_SLOTS {
                let (n, from) = match s.socket(&mut sockets).recv_slice(&mut buf) {
                    Ok((n, meta)) => (n, meta.endpoint),
                    Err(udp::RecvError::Truncated) => continue,
                    Err(_) => break,
                };
                busy = true;
                let pkt = buf.get(..n).unwrap_or(&[]);
                if !s.accepts(from) {
                    // RFC 1350: answer a stranger with ERROR 5, but never an ERROR with an ERROR.
                    if pkt.get(..2) != Some(&tftp::OP_ERROR.to_be_bytes()[..]) {
                        let e = Packet::Error {
                            code: TFTP_UNKNOWN_TID,
                            message: "unknown transfer ID",
                        }
                        .emit();
                        let _ = s.socket(&mut sockets).send_slice(&e, from);
                    }
                    continue;
                }
                let reply = on_reply(client, pkt, now);
                if let Some(end) = self.apply(p, &mut s, &mut sockets, from, reply) {
                    return end;
                }
            }
            match client.on_tick(now) {
                Ok(Action::Send(pkt)) => {
                    *timeouts += 1;
                    s.send(&mut sockets, &pkt);
                }
                Ok(_) => {}
                Err(e) => {
                    let abort = client.take_abort().filter(|_| s.tid.is_some());
                    self.linger(p, &mut s, &mut sockets, abort);
                    return Err(NetError::Tftp(e));
                }
            }
            busy |= self.egress(now, &mut sockets)?;
            if !busy {
                self.idle(p, now, &sockets, client.deadline());
            }
        }
    }

    /// Downloads `req.file` straight into `dest` with tftp::Client over a smoltcp UDP socket
    /// (ephemeral local port; locks onto the server's TID from its first reply and answers
    /// packets from any other TID with ERROR 5 without disturbing the transfer). Calls
    /// `progress` after each window. Refuses before writing past `dest`
    /// (`tftp::Error::TooLarge`). Every wait is bounded: the client's retries, then
    /// `NetError::Tftp(tftp::Error::Timeout)`.
    pub fn tftp_get(
        &mut self,
        p: &mut dyn Platform,
        req: &TftpRequest,
        dest: &mut [u8],
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Transfer, NetError> {
        let mut opts = req.options;
        opts.blksize = opts.blksize.map(|b| b.min(MAX_TFTP_BLKSIZE));
        let mut client = Client::new(req.file, opts, dest.len())?;
        let start = p.now_us();
        let mut timeouts = 0;
        let report = |c: &Client, now: u64| Progress {
            received: c.received() as u64,
            total: c.tsize(),
            elapsed_us: now.saturating_sub(start),
            window: c.window().0,
        };
        let size = self.tftp_session(p, req, &mut client, &mut timeouts, |c, pkt, now| match c
            .on_packet(pkt, now, dest)
        {
            Ok(Action::Send(ack)) => {
                progress(&report(c, now));
                Reply::Send(ack)
            }
            Ok(Action::Wait) => Reply::Accept,
            Ok(Action::Done { size, ack }) => {
                progress(&report(c, now));
                Reply::Finish(Some(ack), Ok((size, now)))
            }
            Err(e) if e.is_fatal() => Reply::Finish(c.take_abort(), Err(NetError::Tftp(e))),
            Err(e) => {
                log::debug!("tftp: ignored packet: {e}");
                Reply::Ignore
            }
        })?;
        Ok(Transfer {
            size: size.0,
            elapsed_us: size.1.saturating_sub(start),
            blksize: client.blksize(),
            window: client.window().1,
            timeouts,
            tsize: client.tsize(),
        })
    }

    /// Size of a file without fetching it: RRQ with tsize=0, reads tsize from the OACK, then
    /// aborts with ERROR 8 (RFC 2349 practice). Ok(None) when the server answers without tsize
    /// (then aborts with ERROR 0 if it sent DATA). The server's ERROR (e.g. not found) as Err.
    pub fn tftp_size(
        &mut self,
        p: &mut dyn Platform,
        req: &TftpRequest,
    ) -> Result<Option<u64>, NetError> {
        let opts = tftp::Options {
            tsize: true,
            timeout: req.options.timeout,
            ..Default::default()
        };
        let mut client = Client::new(req.file, opts, usize::MAX)?;
        let abort = |code, message| Some(Packet::Error { code, message }.emit());
        self.tftp_session(
            p,
            req,
            &mut client,
            &mut 0,
            |c, pkt, now| match Packet::parse(pkt) {
                Ok(Packet::Oack { .. }) => match c.on_packet(pkt, now, &mut []) {
                    Ok(_) => Reply::Finish(
                        abort(tftp::code::OPTION_REFUSED, "size query only"),
                        Ok(c.tsize()),
                    ),
                    Err(e) if e.is_fatal() => Reply::Finish(c.take_abort(), Err(NetError::Tftp(e))),
                    Err(_) => Reply::Ignore,
                },
                Ok(Packet::Data { .. }) => {
                    Reply::Finish(abort(tftp::code::UNDEFINED, "size query only"), Ok(None))
                }
                Ok(Packet::Error { code, message }) => Reply::Finish(
                    None,
                    Err(NetError::Tftp(tftp::Error::Remote {
                        code,
                        message: String::from(message),
                    })),
                ),
                _ => Reply::Ignore,
            },
        )
    }

    /// ICMP echo (one request per second until `timeout_us`); Ok(round-trip µs) of the first
    /// matching reply.
    pub fn ping(
        &mut self,
        p: &mut dyn Platform,
        target: Ipv4Addr,
        timeout_us: u64,
    ) -> Result<u64, NetError> {
        self.check_route(target)?;
        let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 4096]);
        let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]);
        let mut socket = icmp::Socket::new(rx, tx);
        let ident = (self.random() as u16) | 1;
        // Cannot fail: a fresh socket and a non-zero identifier.
        let _ = socket.bind(icmp::Endpoint::Ident(ident));
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(socket);
        let caps = ChecksumCapabilities::default();
        let payload = *b"kexboot ping 0123456789abcdefghi";
        let start = p.now_us();
        let end = start.saturating_add(timeout_us);
        // (sequence number, time sent) of the last few requests.
        let mut sent: Vec<(u16, u64)> = Vec::new();
        let mut next_send = start;
        let mut seq = 0u16;
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            let now = turn(p, end, "ping reply", timeout_us)?;
            let socket = sockets.get_mut::<icmp::Socket>(handle);
            if now >= next_send {
                let repr = Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no: seq,
                    data: &payload,
                };
                if let Ok(b) = socket.send(repr.buffer_len(), target.into()) {
                    repr.emit(&mut Icmpv4Packet::new_unchecked(b), &caps);
                    if sent.len() >= 8 {
                        sent.remove(0);
                    }
                    sent.push((seq, now));
                    seq = seq.wrapping_add(1);
                }
                next_send = now.saturating_add(PING_INTERVAL_US);
            }
            let mut busy = self.ingress(now, &mut sockets)?;
            let socket = sockets.get_mut::<icmp::Socket>(handle);
            for _ in 0..8 {
                let Ok((n, from)) = socket.recv_slice(&mut buf) else {
                    break;
                };
                busy = true;
                let Ok(pkt) = Icmpv4Packet::new_checked(buf.get(..n).unwrap_or(&[])) else {
                    continue;
                };
                if let Ok(Icmpv4Repr::EchoReply {
                    ident: i, seq_no, ..
                }) = Icmpv4Repr::parse(&pkt, &caps)
                {
                    let t = sent.iter().find(|s| s.0 == seq_no);
                    if let (true, Some(&(_, t))) = (i == ident && v4(from) == Some(target), t) {
                        return Ok(now.saturating_sub(t));
                    }
                }
            }
            busy |= self.egress(now, &mut sockets)?;
            if !busy {
                self.idle(p, now, &sockets, Some(next_send.min(end)));
            }
        }
    }

    /// Gives the NIC back (to reset it before a jump).
    pub fn into_nic(self) -> N {
        self.port.nic
    }
}

fn dhcp_text(data: &[u8]) -> Option<String> {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let s = core::str::from_utf8(data.get(..end)?).ok()?.trim();
    (!s.is_empty()).then(|| String::from(s))
}

/// The lease of an ACK: what smoltcp parsed, plus siaddr, `file` and options 66/67/51 from the
/// packet it kept (when that packet is indeed the ACK for this address).
fn lease_from(config: &dhcpv4::Config<'_>) -> Lease {
    let mut lease = Lease {
        address: config.address.address(),
        prefix_len: config.address.prefix_len(),
        router: config.router,
        dns: config.dns_servers.iter().copied().collect(),
        server_id: config.server.identifier,
        next_server: None,
        tftp_server_name: None,
        bootfile: None,
        lease_secs: None,
    };
    let Some(kept) = config.packet else {
        return lease;
    };
    let Ok(pkt) = DhcpPacket::new_checked(kept.into_inner()) else {
        return lease;
    };
    let Ok(repr) = DhcpRepr::parse(&pkt) else {
        return lease;
    };
    if repr.message_type != DhcpMessageType::Ack || repr.your_ip != lease.address {
        log::warn!("dhcp: kept packet is not the ACK, boot options unknown");
        return lease;
    }
    lease.lease_secs = repr.lease_duration;
    lease.next_server = Some(repr.server_ip).filter(|a| !a.is_unspecified());
    for opt in pkt.options() {
        match opt.kind {
            DHCP_OPT_TFTP_SERVER => lease.tftp_server_name = dhcp_text(opt.data),
            DHCP_OPT_BOOTFILE => lease.bootfile = dhcp_text(opt.data),
            _ => {}
        }
    }
    if lease.bootfile.is_none() {
        lease.bootfile = pkt
            .get_boot_file()
            .ok()
            .and_then(|f| dhcp_text(f.as_bytes()));
    }
    lease
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_failed() {
        let e = NetError::Timeout {
            what: "DHCP offer",
            after_us: 10_000_000,
        };
        assert_eq!(e.to_string(), "no DHCP offer after 10 s");
        let e = NetError::Timeout {
            what: "ping reply",
            after_us: 1_500_000,
        };
        assert_eq!(e.to_string(), "no ping reply after 1.5 s");
        let e = NetError::Tftp(tftp::Error::Timeout { retries: 6 });
        assert_eq!(e.to_string(), "server stopped answering after 6 retries");
        assert!(NetError::NoRoute(Ipv4Addr::new(8, 8, 8, 8))
            .to_string()
            .contains("8.8.8.8"));
    }

    #[test]
    fn tftp_server_choice() {
        let mut l = Lease {
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix_len: 24,
            router: None,
            dns: Vec::new(),
            server_id: Ipv4Addr::new(10, 0, 2, 2),
            next_server: None,
            tftp_server_name: Some(String::from("boot.example")),
            bootfile: None,
            lease_secs: None,
        };
        assert_eq!(l.tftp_server(), Ipv4Addr::new(10, 0, 2, 2));
        l.tftp_server_name = Some(String::from("10.0.2.9"));
        assert_eq!(l.tftp_server(), Ipv4Addr::new(10, 0, 2, 9));
        l.next_server = Some(Ipv4Addr::new(10, 0, 2, 4));
        assert_eq!(
            l.tftp_server(),
            Ipv4Addr::new(10, 0, 2, 9),
            "option 66 wins"
        );
        l.tftp_server_name = Some(String::from("boot.example"));
        assert_eq!(l.tftp_server(), Ipv4Addr::new(10, 0, 2, 4), "then siaddr");
    }

    #[test]
    fn dhcp_text_trims() {
        assert_eq!(
            dhcp_text(b"pxelinux.0\0\0"),
            Some(String::from("pxelinux.0"))
        );
        assert_eq!(dhcp_text(b"\0abc"), None);
        assert_eq!(dhcp_text(b"\xff\xfe"), None);
        assert_eq!(dhcp_text(b""), None);
    }
}
