//! The network side of the link: ARP for the server and router addresses, a DHCP server, a
//! TFTP server with one windowed [`Server`] session per transfer ID, and ICMP echo, all reached
//! through a [`Link`] and all on one virtual clock.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::rc::Rc;

use kexboot_net::tftp::Packet;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr,
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN,
    UDP_HEADER_LEN,
};

use crate::{Link, Rng, Server, CLIENT_IP, CLIENT_MAC, SERVER_IP, SERVER_MAC};

/// DHCP option: renewal time T1 (RFC 2132 9.11).
const DHCP_OPT_RENEWAL_TIME: u8 = 58;
/// DHCP option: rebinding time T2 (RFC 2132 9.12).
const DHCP_OPT_REBINDING_TIME: u8 = 59;
/// When the virtual clock starts, µs.
pub const START_US: u64 = 1_000_000;
/// One-way delay of the link, µs.
pub const LINK_DELAY_US: u64 = 200;
/// The server's first transfer ID; each RRQ takes the next port.
pub const FIRST_SERVER_PORT: u16 = 30000;
/// How far [`World::settle`] moves the clock: past the link delay and any reorder jitter.
pub const SETTLE_US: u64 = 20_000;

/// DHCP server settings. The default offers [`CLIENT_IP`] with router [`SERVER_IP`], `siaddr`
/// 10.0.2.4, option 66 `tftp.example`, option 67 `pxelinux/pxelinux.0`, `file` `ignored.efi`,
/// DNS 10.0.2.3 and 10.0.2.5, a one-day lease, broadcast replies.
#[derive(Clone)]
pub struct Dhcp {
    /// Answer at all.
    pub enabled: bool,
    /// `siaddr`, the next server.
    pub siaddr: Ipv4Addr,
    /// Option 66, TFTP server name.
    pub opt66: Option<&'static str>,
    /// Option 67, boot file name.
    pub opt67: Option<&'static str>,
    /// The BOOTP `file` field.
    pub file: Option<&'static str>,
    /// Send short, wrong-op, wrong-xid, wrong-MAC and garbage-option offers first.
    pub bad_offers: bool,
    /// Unicast replies to yiaddr instead of broadcast.
    pub unicast: bool,
    /// Lease time (option 51).
    pub lease: Option<u32>,
    /// Renewal time T1 (option 58).
    pub t1: Option<u32>,
    /// Rebinding time T2 (option 59).
    pub t2: Option<u32>,
}

impl Default for Dhcp {
    fn default() -> Self {
        Dhcp {
            enabled: true,
            siaddr: Ipv4Addr::new(10, 0, 2, 4),
            opt66: Some("tftp.example"),
            opt67: Some("pxelinux/pxelinux.0"),
            file: Some("ignored.efi"),
            bad_offers: false,
            unicast: false,
            lease: Some(86400),
            t1: None,
            t2: None,
        }
    }
}

/// One TFTP session of the server, keyed by its port (the server's TID).
pub struct Session {
    /// The address the RRQ went to, which the session answers from.
    pub server_ip: Ipv4Addr,
    /// The client's port (its TID).
    pub client_port: u16,
    /// The transfer's state.
    pub server: Server,
    /// Packets sent so far.
    pub responses: usize,
}

/// The simulated link and everything on the other side of it. Knobs are public fields, set
/// before (or between) transfers; the counters and logs below them say what the server saw.
pub struct World {
    /// The virtual clock in µs, shared with [`crate::TestPlatform`].
    pub now: Rc<Cell<u64>>,
    /// The link between client and network.
    pub link: Link,
    /// Frames arrived for the client, not yet received by the NIC.
    pub inbox: VecDeque<Vec<u8>>,
    /// DHCP server settings.
    pub dhcp: Dhcp,
    /// The TFTP server's files by name (see [`World::add_file`]).
    pub files: HashMap<String, Vec<u8>>,
    /// TFTP: grant requested options (RFC 2347); otherwise answer with DATA.
    pub honour_options: bool,
    /// TFTP: the largest window granted.
    pub max_window: u16,
    /// TFTP sessions by server port (TID), finished ones included.
    pub sessions: HashMap<u16, Session>,
    next_port: u16,
    /// TFTP sessions never answer.
    pub tftp_silent: bool,
    /// Sessions fall silent after this many responses.
    pub stop_after: Option<usize>,
    /// Extra OACK option the client did not ask for.
    pub oack_extra: bool,
    /// Payloads sent from the session's TID right after its first response.
    pub inject: Vec<Vec<u8>>,
    /// Also send a DATA block 1 from another port after the first response.
    pub stranger: bool,
    /// After this many responses of a session (mid-transfer), send a DATA block from another
    /// port of the session's address and one from another address (10.0.2.3) to its client.
    pub stranger_at: Option<usize>,
    /// After this many responses of a session, send the client an ARP request for its address.
    pub arp_probe_at: Option<usize>,
    /// DATA blocks whose first transmission arrives damaged: (block, offset in the frame of a
    /// byte flipped; the checksums are left as they were).
    pub corrupt: Vec<(u16, usize)>,
    /// DATA frames damaged so far (see `corrupt`).
    pub corrupted: usize,
    /// ARP replies from the client.
    pub arp_replies: usize,
    /// Raw frames handed to the client once, at the first RRQ.
    pub garbage: Vec<Vec<u8>>,
    /// Drop this many ARP replies before answering.
    pub drop_arp_replies: usize,
    /// ARP requests seen (any target).
    pub arp_requests: usize,
    /// File names of the RRQs seen, in order (resent RRQs included).
    pub requested: Vec<String>,
    /// UDP datagrams to ports with no session: (port, payload).
    pub to_unknown_port: Vec<(u16, Vec<u8>)>,
    /// TFTP ERRORs from the client: (code, message).
    pub aborts: Vec<(u16, String)>,
    /// ICMP echo requests seen.
    pub echo_requests: usize,
    /// The HTTP server on 10.0.2.2:80, serving `files`.
    pub http: crate::HttpServer,
    /// The DNS server on 10.0.2.3:53 (DHCP's first): names it answers (A records); others
    /// get NXDOMAIN.
    pub dns_names: HashMap<String, Ipv4Addr>,
    /// DNS queries seen.
    pub dns_queries: usize,
    /// The vendor class (option 60) of the last DHCP request.
    pub vendor_class: Vec<u8>,
    http_next: Option<u64>,
}

impl World {
    /// A network whose link loses packets with probability `loss`, duplicates them with
    /// probability `dup` and reorders them when `reorder`, seeded by `seed`; no files, the
    /// default [`Dhcp`], options honoured, windows up to 64, the clock at [`START_US`].
    pub fn new(seed: u64, loss: f64, dup: f64, reorder: bool) -> Self {
        World {
            now: Rc::new(Cell::new(START_US)),
            link: Link::new(seed, loss, dup, reorder, LINK_DELAY_US),
            inbox: Default::default(),
            dhcp: Dhcp::default(),
            files: HashMap::new(),
            honour_options: true,
            max_window: 64,
            sessions: HashMap::new(),
            next_port: FIRST_SERVER_PORT,
            tftp_silent: false,
            stop_after: None,
            oack_extra: false,
            inject: vec![],
            stranger: false,
            stranger_at: None,
            arp_probe_at: None,
            corrupt: vec![],
            corrupted: 0,
            arp_replies: 0,
            garbage: vec![],
            drop_arp_replies: 0,
            arp_requests: 0,
            requested: vec![],
            to_unknown_port: vec![],
            aborts: vec![],
            echo_requests: 0,
            http: crate::HttpServer::new(START_US),
            dns_names: HashMap::new(),
            dns_queries: 0,
            vendor_class: vec![],
            http_next: None,
        }
    }

    /// Serves `data` as `name` over TFTP (replacing any file of that name).
    pub fn add_file(&mut self, name: &str, data: &[u8]) {
        self.files.insert(name.to_string(), data.to_vec());
    }

    /// How many RRQs the TFTP server saw.
    pub fn rrqs(&self) -> usize {
        self.requested.len()
    }

    /// Moves the clock [`SETTLE_US`] on and delivers what is due: frames still on the link
    /// arrive, so the counters and logs include the client's last packets.
    pub fn settle(&mut self) {
        self.now.set(self.now.get() + SETTLE_US);
        self.step();
    }

    /// Puts `frame` on the link at the current time, towards the client or away from it.
    pub fn send(&mut self, to_client: bool, frame: Vec<u8>) {
        let now = self.now.get();
        self.link.send(now, to_client, frame);
    }

    /// Next time something happens on the network side.
    pub fn next_event(&self) -> Option<u64> {
        let q = self.link.next_at();
        let s = self
            .sessions
            .values()
            .filter_map(|s| s.server.deadline())
            .min();
        q.into_iter().chain(s).chain(self.http_next).min()
    }

    /// Runs the HTTP server now and puts what it sends on the link.
    fn run_http(&mut self) {
        let now = self.now.get();
        self.http.poll(now, &self.files);
        for f in std::mem::take(&mut self.http.wire.tx) {
            self.send(true, f);
        }
        self.http_next = self.http.poll_at(now).filter(|&t| t > now);
    }

    /// Delivers what the link has due now (to the client's inbox or to the servers) and lets
    /// each TFTP session resend on timeout.
    pub fn step(&mut self) {
        let now = self.now.get();
        for (to_client, frame) in self.link.take_due(now) {
            if to_client {
                self.inbox.push_back(frame);
            } else {
                self.server_frame(&frame);
            }
        }
        if self.http_next.is_some_and(|t| t <= now) || !self.http.wire.rx.is_empty() {
            self.run_http();
        }
        let ports: Vec<u16> = self.sessions.keys().copied().collect();
        for port in ports {
            let s = self.sessions.get_mut(&port).unwrap();
            let out = s.server.on_tick(now);
            let cport = s.client_port;
            for p in out {
                self.session_send(port, cport, p);
            }
        }
    }

    fn tftp_to_client(&mut self, from: (Ipv4Addr, u16), client_port: u16, payload: &[u8]) {
        let f = udp_frame(
            EthernetAddress(CLIENT_MAC),
            from,
            (CLIENT_IP, client_port),
            payload,
        );
        self.send(true, f);
    }

    fn session_send(&mut self, port: u16, client_port: u16, mut p: Vec<u8>) {
        let s = self.sessions.get_mut(&port).unwrap();
        s.responses += 1;
        let first = s.responses == 1;
        let ip = s.server_ip;
        if self.stop_after.is_some_and(|n| s.responses > n) {
            s.server.silent = true;
            return;
        }
        if first && self.oack_extra {
            if let Ok(Packet::Oack { options }) = Packet::parse(&p) {
                let mut o = options.clone();
                o.push(("multicast", "1"));
                p = Packet::Oack { options: o }.emit();
            }
        }
        let damage = match Packet::parse(&p) {
            Ok(Packet::Data { block, .. }) => self.corrupt.iter().position(|c| c.0 == block),
            _ => None,
        };
        if let Some(i) = damage {
            let (_, at) = self.corrupt.remove(i);
            let mut f = udp_frame(
                EthernetAddress(CLIENT_MAC),
                (ip, port),
                (CLIENT_IP, client_port),
                &p,
            );
            let n = f.len();
            f[at.min(n - 1)] ^= 0x40;
            self.corrupted += 1;
            self.send(true, f);
        } else {
            self.tftp_to_client((ip, port), client_port, &p);
        }
        let n = self.sessions[&port].responses;
        if self.stranger_at == Some(n) {
            let d = Packet::Data {
                block: 2,
                data: &[0xEE; 100],
            }
            .emit();
            self.tftp_to_client((ip, port + 1000), client_port, &d);
            self.tftp_to_client((Ipv4Addr::new(10, 0, 2, 3), port), client_port, &d);
        }
        if self.arp_probe_at == Some(n) {
            let req = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: SERVER_MAC,
                source_protocol_addr: ip,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: CLIENT_IP,
            };
            self.send(true, arp_frame(EthernetAddress::BROADCAST, &req));
        }
        if first {
            for inj in self.inject.clone() {
                self.tftp_to_client((ip, port), client_port, &inj);
            }
            if self.stranger {
                let d = Packet::Data {
                    block: 1,
                    data: &[0xEE; 100],
                }
                .emit();
                self.tftp_to_client((ip, port + 1000), client_port, &d);
            }
        }
    }

    fn server_frame(&mut self, frame: &[u8]) {
        let eth = EthernetFrame::new_checked(frame).expect("client sent a bad frame");
        match eth.ethertype() {
            EthernetProtocol::Arp => {
                let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
                if let ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_protocol_addr: CLIENT_IP,
                    ..
                } = arp
                {
                    self.arp_replies += 1;
                    // The HTTP server's interface resolves the client by ARP too.
                    self.http.wire.rx.push_back(frame.to_vec());
                    self.run_http();
                    return;
                }
                let ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    source_hardware_addr,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                } = arp
                else {
                    return;
                };
                self.arp_requests += 1;
                // The server answers for its own address and, as the router, for 10.0.2.2-9.
                let ours = target_protocol_addr.octets()[..3] == [10, 0, 2]
                    && (2..10).contains(&target_protocol_addr.octets()[3]);
                if !ours {
                    return;
                }
                if self.drop_arp_replies > 0 {
                    self.drop_arp_replies -= 1;
                    return;
                }
                let reply = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: SERVER_MAC,
                    source_protocol_addr: target_protocol_addr,
                    target_hardware_addr: source_hardware_addr,
                    target_protocol_addr: source_protocol_addr,
                };
                self.send(true, arp_frame(source_hardware_addr, &reply));
            }
            EthernetProtocol::Ipv4 => {
                let ipp = Ipv4Packet::new_checked(eth.payload()).unwrap();
                let ip = Ipv4Repr::parse(&ipp, &ChecksumCapabilities::default())
                    .expect("bad IPv4 header from client");
                match ip.next_header {
                    IpProtocol::Udp => {
                        let up = UdpPacket::new_checked(ipp.payload()).unwrap();
                        let udp = UdpRepr::parse(
                            &up,
                            &ip.src_addr.into(),
                            &ip.dst_addr.into(),
                            &ChecksumCapabilities::default(),
                        )
                        .expect("bad UDP checksum from client");
                        self.udp(
                            (ip.src_addr, udp.src_port),
                            (ip.dst_addr, udp.dst_port),
                            up.payload(),
                        );
                    }
                    IpProtocol::Tcp => {
                        self.http.wire.rx.push_back(frame.to_vec());
                        self.run_http();
                    }
                    IpProtocol::Icmp => {
                        let ip_payload = ipp.payload();
                        let icmp = Icmpv4Packet::new_checked(ip_payload).unwrap();
                        if let Ok(Icmpv4Repr::EchoRequest {
                            ident,
                            seq_no,
                            data,
                        }) = Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default())
                        {
                            self.echo_requests += 1;
                            let r = Icmpv4Repr::EchoReply {
                                ident,
                                seq_no,
                                data,
                            };
                            let mut buf =
                                vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + r.buffer_len()];
                            let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
                            EthernetRepr {
                                src_addr: SERVER_MAC,
                                dst_addr: EthernetAddress(CLIENT_MAC),
                                ethertype: EthernetProtocol::Ipv4,
                            }
                            .emit(&mut f);
                            let mut ipp = Ipv4Packet::new_unchecked(f.payload_mut());
                            Ipv4Repr {
                                src_addr: ip.dst_addr,
                                dst_addr: ip.src_addr,
                                next_header: IpProtocol::Icmp,
                                payload_len: r.buffer_len(),
                                hop_limit: 64,
                            }
                            .emit(&mut ipp, &ChecksumCapabilities::default());
                            r.emit(
                                &mut Icmpv4Packet::new_unchecked(ipp.payload_mut()),
                                &ChecksumCapabilities::default(),
                            );
                            self.send(true, buf);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// A datagram from the client. TFTP answers from the address the RRQ went to.
    fn udp(
        &mut self,
        (src, sport): (Ipv4Addr, u16),
        (dst, dport): (Ipv4Addr, u16),
        payload: &[u8],
    ) {
        match dport {
            67 => self.dhcp(payload),
            53 if dst == Ipv4Addr::new(10, 0, 2, 3) => self.dns(sport, payload),
            69 => {
                let Ok(Packet::Rrq { filename, .. }) = Packet::parse(payload) else {
                    panic!("bad RRQ");
                };
                assert_eq!(src, CLIENT_IP);
                self.requested.push(filename.to_string());
                let port = self.next_port;
                self.next_port += 1;
                for g in std::mem::take(&mut self.garbage) {
                    self.send(true, g);
                }
                let Some(file) = self.files.get(filename).cloned() else {
                    let e = Packet::Error {
                        code: 1,
                        message: "File not found",
                    }
                    .emit();
                    self.tftp_to_client((dst, port), sport, &e);
                    return;
                };
                let mut server = Server::new(file, self.honour_options, self.max_window);
                server.strict = false;
                server.silent = self.tftp_silent;
                self.sessions.insert(
                    port,
                    Session {
                        server_ip: dst,
                        client_port: sport,
                        server,
                        responses: 0,
                    },
                );
                self.session_packet(port, sport, payload);
            }
            // A session answers on its own address only.
            p if self.sessions.get(&p).is_some_and(|s| s.server_ip == dst) => {
                self.session_packet(p, sport, payload)
            }
            p => self.to_unknown_port.push((p, payload.to_vec())),
        }
    }

    /// One DNS query (RFC 1035: header, one question) answered with an A record or NXDOMAIN.
    fn dns(&mut self, sport: u16, q: &[u8]) {
        self.dns_queries += 1;
        let mut at = 12;
        let mut labels = vec![];
        while at < q.len() && q[at] != 0 {
            let n = q[at] as usize;
            labels.push(String::from_utf8_lossy(&q[at + 1..at + 1 + n]).to_string());
            at += 1 + n;
        }
        let question = &q[12..at + 5];
        let name = labels.join(".");
        let answer = self.dns_names.get(&name).copied();
        let mut r = q[..2].to_vec();
        r.extend_from_slice(if answer.is_some() {
            &[0x81, 0x80]
        } else {
            &[0x81, 0x83]
        });
        r.extend_from_slice(&[0, 1, 0, u8::from(answer.is_some()), 0, 0, 0, 0]);
        r.extend_from_slice(question);
        if let Some(a) = answer {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(&a.octets());
        }
        let f = udp_frame(
            EthernetAddress(CLIENT_MAC),
            (Ipv4Addr::new(10, 0, 2, 3), 53),
            (CLIENT_IP, sport),
            &r,
        );
        self.send(true, f);
    }

    fn session_packet(&mut self, port: u16, sport: u16, payload: &[u8]) {
        let now = self.now.get();
        let s = self.sessions.get_mut(&port).unwrap();
        assert_eq!(s.client_port, sport, "client changed its port mid-transfer");
        let out = s.server.on_packet(payload, now);
        if let Some(a) = s.server.aborted.take() {
            self.aborts.push(a);
        }
        for p in out {
            self.session_send(port, sport, p);
        }
    }

    fn dhcp(&mut self, payload: &[u8]) {
        if !self.dhcp.enabled {
            return;
        }
        let pkt = DhcpPacket::new_checked(payload).unwrap();
        let req = DhcpRepr::parse(&pkt).expect("bad DHCP from client");
        let prl = req.parameter_request_list.unwrap_or(&[]).to_vec();
        assert!(
            prl.contains(&66) && prl.contains(&67),
            "options 66/67 not requested: {prl:?}"
        );
        // A PXE client for arm64 U-Boot-style loaders (RFC 4578): vendor class and arch 0x16.
        let opt = |kind: u8| {
            pkt.options()
                .find(|o| o.kind == kind)
                .map(|o| o.data.to_vec())
        };
        let class = opt(60).unwrap_or_default();
        assert!(
            [
                &b"PXEClient:Arch:00022:UNDI:003000"[..],
                b"HTTPClient:Arch:00022:UNDI:003000"
            ]
            .contains(&&class[..]),
            "vendor class {class:?}"
        );
        self.vendor_class = class;
        assert_eq!(opt(93).as_deref(), Some(&[0x00, 0x16][..]), "client arch");
        let cfg = self.dhcp.clone();
        let (kind, yiaddr) = match req.message_type {
            DhcpMessageType::Discover => (DhcpMessageType::Offer, CLIENT_IP),
            DhcpMessageType::Request
                if req.requested_ip == Some(CLIENT_IP)
                    && req.server_identifier == Some(SERVER_IP) =>
            {
                (DhcpMessageType::Ack, CLIENT_IP)
            }
            DhcpMessageType::Request => (DhcpMessageType::Nak, Ipv4Addr::UNSPECIFIED),
            _ => return,
        };
        let mut extra = vec![DhcpOption {
            kind: 6,
            data: &[10, 0, 2, 3, 10, 0, 2, 5],
        }];
        // smoltcp's DhcpRepr does not emit T1/T2: raw options.
        let (t1, t2) = (cfg.t1.map(u32::to_be_bytes), cfg.t2.map(u32::to_be_bytes));
        for (kind, t) in [(DHCP_OPT_RENEWAL_TIME, &t1), (DHCP_OPT_REBINDING_TIME, &t2)] {
            if let Some(t) = t {
                extra.push(DhcpOption { kind, data: t });
            }
        }
        if let Some(s) = cfg.opt66 {
            extra.push(DhcpOption {
                kind: 66,
                data: s.as_bytes(),
            });
        }
        if let Some(s) = cfg.opt67 {
            extra.push(DhcpOption {
                kind: 67,
                data: s.as_bytes(),
            });
        }
        let reply = |xid: u32, mac: EthernetAddress, yiaddr: Ipv4Addr| {
            let repr = DhcpRepr {
                message_type: kind,
                transaction_id: xid,
                secs: 0,
                client_hardware_address: mac,
                client_ip: Ipv4Addr::UNSPECIFIED,
                your_ip: yiaddr,
                server_ip: cfg.siaddr,
                router: Some(SERVER_IP),
                subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                relay_agent_ip: Ipv4Addr::UNSPECIFIED,
                broadcast: false,
                requested_ip: None,
                client_identifier: None,
                server_identifier: Some(SERVER_IP),
                parameter_request_list: None,
                dns_servers: None,
                max_size: None,
                lease_duration: cfg.lease,
                renew_duration: None,
                rebind_duration: None,
                additional_options: &extra,
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
                .unwrap();
            if let Some(f) = cfg.file {
                buf[108..108 + f.len()].copy_from_slice(f.as_bytes());
            }
            buf
        };
        let (dst_mac, dst_ip) = if cfg.unicast && kind != DhcpMessageType::Nak {
            (EthernetAddress(CLIENT_MAC), yiaddr)
        } else {
            (EthernetAddress::BROADCAST, Ipv4Addr::BROADCAST)
        };
        let mac = req.client_hardware_address;
        let mut out = vec![];
        if cfg.bad_offers && kind == DhcpMessageType::Offer {
            let good = reply(req.transaction_id, mac, Ipv4Addr::new(10, 0, 2, 66));
            out.push(good[..100].to_vec()); // short
            let mut wrong_op = good.clone();
            wrong_op[0] = 1; // BOOTREQUEST
            out.push(wrong_op);
            out.push(reply(
                req.transaction_id ^ 1,
                mac,
                Ipv4Addr::new(10, 0, 2, 67),
            ));
            out.push(reply(
                req.transaction_id,
                EthernetAddress([2, 0, 0, 0, 0, 1]),
                Ipv4Addr::new(10, 0, 2, 68),
            ));
            let mut garbage = good.clone();
            garbage.truncate(240);
            // client id with an unknown hardware type, then a valid-looking offer
            garbage.extend_from_slice(&[
                61, 7, 99, 1, 2, 3, 4, 5, 6, 53, 1, 2, 54, 4, 10, 0, 2, 2, 1, 4, 255, 255, 255, 0,
                255,
            ]);
            out.push(garbage);
            let mut random = good.clone();
            let mut r = Rng(77);
            for b in &mut random[240..] {
                // No second message-type or server-id option by chance.
                *b = match r.next_u64() as u8 {
                    53 | 54 => 0,
                    x => x,
                };
            }
            random[240..243].copy_from_slice(&[53, 1, 7]); // "RELEASE": wrong type for a reply
            out.push(random);
        }
        out.push(reply(req.transaction_id, mac, yiaddr));
        for p in out {
            let f = udp_frame(dst_mac, (SERVER_IP, 67), (dst_ip, 68), &p);
            self.send(true, f);
        }
    }
}

/// An Ethernet frame from the server's MAC to `dst_mac` carrying `arp`.
fn arp_frame(dst_mac: EthernetAddress, arp: &ArpRepr) -> Vec<u8> {
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + arp.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: dst_mac,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut f);
    arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
    buf
}

/// An Ethernet frame from the server's MAC carrying one UDP datagram with valid checksums.
pub fn udp_frame(
    dst_mac: EthernetAddress,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: src.1,
        dst_port: dst.1,
    };
    let ip = Ipv4Repr {
        src_addr: src.0,
        dst_addr: dst.0,
        next_header: IpProtocol::Udp,
        payload_len: UDP_HEADER_LEN + payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: dst_mac,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut f);
    let mut ipp = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut ipp, &ChecksumCapabilities::default());
    let mut up = UdpPacket::new_unchecked(ipp.payload_mut());
    udp.emit(
        &mut up,
        &src.0.into(),
        &dst.0.into(),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &ChecksumCapabilities::default(),
    );
    buf
}
