//! The TFTP receive fast path: picks, straight out of the NIC's buffer, the frames that carry a
//! datagram of the locked TFTP transfer (Ethernet to our MAC, IPv4 unfragmented from the
//! server to us, UDP from the server's TID to our port, checksums right), so its payload goes
//! to the TFTP client without passing through smoltcp's socket buffers. Everything else is
//! left to smoltcp. [`udp_frame`] builds the answer (the client's ACK) the same way, so it goes
//! out without a trip through smoltcp's socket and interface either. Pure functions over byte
//! slices; parsed and emitted with `smoltcp::wire`.

use core::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket, UdpRepr,
};

/// The hop limit (TTL) of what the fast path sends: smoltcp's default.
const HOP_LIMIT: u8 = 64;

/// Which datagrams the fast path takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    /// Our station address (frames to any other address, broadcast included, are not taken).
    pub mac: [u8; 6],
    /// Our IPv4 address and UDP port.
    pub local: (Ipv4Addr, u16),
    /// The server's IPv4 address and its transfer ID (UDP port).
    pub remote: (Ipv4Addr, u16),
}

/// What [`classify`] made of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class<'a> {
    /// A datagram of the transfer: its UDP payload, borrowed from the frame.
    Tftp(&'a [u8]),
    /// Addressed like one, but its IPv4 header or UDP checksum is wrong: drop it.
    BadChecksum,
    /// Anything else: for the general stack (ARP, ICMP, other ports and hosts, fragments,
    /// malformed frames).
    Other,
}

/// The RFC 1071 Internet checksum sum of `data` (16-bit big-endian words, an odd last byte
/// padded with zero), folded to 16 bits and not complemented. A header or datagram whose
/// checksum field is right sums (with its pseudo-header) to 0xffff.
pub fn ones_sum(data: &[u8]) -> u16 {
    // Native-endian 16-bit words, eight bytes at a time: each 64-bit load is added as its two
    // 32-bit halves into a 64-bit sum (no overflow below 2^32 loads); 2^16 = 1 modulo 0xffff,
    // so folding gives the sum of the 16-bit words. Summed in native order, the result is the
    // byte swap of the network-order sum on a little-endian machine (RFC 1071 section 2(B)).
    let mut acc: u64 = 0;
    let (words, rest) = data.as_chunks::<8>();
    for w in words {
        let x = u64::from_ne_bytes(*w);
        acc += (x & 0xffff_ffff) + (x >> 32);
    }
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    let x = u64::from_ne_bytes(tail);
    acc += (x & 0xffff_ffff) + (x >> 32);
    u16::from_be(fold(acc))
}

/// Folds a sum of 16-bit words into 16 bits with end-around carries (never 0 unless `acc` is).
fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Ones-complement sum of several sums.
fn add(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The class of one received frame for the transfer `f` describes.
pub fn classify<'a>(frame: &'a [u8], f: &Filter) -> Class<'a> {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Class::Other;
    };
    if eth.dst_addr().0 != f.mac || eth.ethertype() != EthernetProtocol::Ipv4 {
        return Class::Other;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return Class::Other;
    };
    if ip.version() != 4
        || ip.more_frags()
        || ip.frag_offset() != 0
        || ip.next_header() != IpProtocol::Udp
        || ip.src_addr() != f.remote.0
        || ip.dst_addr() != f.local.0
    {
        return Class::Other;
    }
    // `new_checked` made sure the header and the whole packet (`total_len`) are there.
    let header = eth.payload().get(..usize::from(ip.header_len()));
    if header.map(ones_sum) != Some(0xffff) {
        return Class::BadChecksum;
    }
    let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
        return Class::Other;
    };
    if udp.src_port() != f.remote.1 || udp.dst_port() != f.local.1 {
        return Class::Other;
    }
    let len = udp.len();
    if udp.checksum() != 0 {
        let (src, dst) = (f.remote.0.octets(), f.local.0.octets());
        let pseudo = [
            ones_sum(&src),
            ones_sum(&dst),
            u16::from(u8::from(IpProtocol::Udp)),
            len,
        ];
        // `new_checked` made sure `len` bytes are there.
        let Some(datagram) = ip.payload().get(..usize::from(len)) else {
            return Class::Other;
        };
        if add(&[add(&pseudo), ones_sum(datagram)]) != 0xffff {
            return Class::BadChecksum;
        }
    }
    Class::Tftp(udp.payload())
}

/// Whether the TCP checksum of an IPv4 TCP frame is right (None: not an unfragmented IPv4 TCP
/// frame). The stack checks TCP segments here, eight bytes at a time, rather than in smoltcp
/// (whose sum goes two bytes at a time): the checksum is most of the per-segment work of an
/// HTTP download.
pub fn tcp_checksum_ok(frame: &[u8]) -> Option<bool> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.version() != 4
        || ip.more_frags()
        || ip.frag_offset() != 0
        || ip.next_header() != IpProtocol::Tcp
    {
        return None;
    }
    // `new_checked` made sure the whole packet (`total_len`) is there.
    let segment = ip.payload();
    let len = u16::try_from(segment.len()).ok()?;
    let pseudo = [
        ones_sum(&ip.src_addr().octets()),
        ones_sum(&ip.dst_addr().octets()),
        u16::from(u8::from(IpProtocol::Tcp)),
        len,
    ];
    Some(add(&[add(&pseudo), ones_sum(segment)]) == 0xffff)
}

/// Writes into `out` the Ethernet frame of a UDP datagram carrying `payload` from us to the
/// server of the transfer `f` names, addressed to `peer_mac`: the source of the server's frames
/// (the server, or the router between us). As smoltcp would send it: IPv4 without options,
/// identification 0 and don't-fragment, TTL 64, both checksums filled. Returns the frame's
/// length; None when `out` is too short.
pub fn udp_frame(f: &Filter, peer_mac: [u8; 6], payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let udp = UdpRepr {
        src_port: f.local.1,
        dst_port: f.remote.1,
    };
    let ip = Ipv4Repr {
        src_addr: f.local.0,
        dst_addr: f.remote.0,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: HOP_LIMIT,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(f.mac),
        dst_addr: EthernetAddress(peer_mac),
        ethertype: EthernetProtocol::Ipv4,
    };
    let len = eth.buffer_len() + ip.buffer_len() + ip.payload_len;
    let out = out.get_mut(..len)?;
    let caps = ChecksumCapabilities::default();
    let mut frame = EthernetFrame::new_unchecked(out);
    eth.emit(&mut frame);
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet, &caps);
    udp.emit(
        &mut UdpPacket::new_unchecked(packet.payload_mut()),
        &ip.src_addr.into(),
        &ip.dst_addr.into(),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, Ipv4Repr, UdpRepr, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN,
        UDP_HEADER_LEN,
    };

    #[test]
    fn udp_frame_is_what_the_server_takes() {
        let peer = [2, 0, 0, 0, 0, 2];
        let ack = [0, 4, 0x12, 0x34];
        let mut out = [0u8; 100];
        let n = udp_frame(&F, peer, &ack, &mut out).unwrap();
        assert_eq!(
            n,
            ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + ack.len()
        );
        // Seen from the server: to its MAC, from our address and port to its TID, checksums
        // right (classify verifies both).
        let server = Filter {
            mac: peer,
            local: F.remote,
            remote: F.local,
        };
        assert_eq!(classify(&out[..n], &server), Class::Tftp(&ack[..]));
        let e = EthernetFrame::new_checked(&out[..n]).unwrap();
        assert_eq!(e.src_addr(), EthernetAddress(F.mac));
        let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
        assert!(ip.dont_frag() && ip.hop_limit() == 64 && ip.verify_checksum());
        // Too short a buffer: nothing written past it, None.
        let mut short = [0u8; 45];
        assert_eq!(udp_frame(&F, peer, &ack, &mut short), None);
        assert!(short.iter().all(|&b| b == 0));
    }

    /// RFC 1071 word by word: the reference for [`ones_sum`].
    fn naive(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    const F: Filter = Filter {
        mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        local: (Ipv4Addr::new(10, 0, 2, 15), 50000),
        remote: (Ipv4Addr::new(10, 0, 2, 2), 30000),
    };

    /// A frame as `f`'s server sends it, with `ihl_words` of IPv4 options (NOPs).
    fn frame(f: &Filter, payload: &[u8], opt_words: usize) -> Vec<u8> {
        let udp = UdpRepr {
            src_port: f.remote.1,
            dst_port: f.local.1,
        };
        let ip = Ipv4Repr {
            src_addr: f.remote.0,
            dst_addr: f.local.0,
            next_header: IpProtocol::Udp,
            payload_len: UDP_HEADER_LEN + payload.len(),
            hop_limit: 64,
        };
        let opts = 4 * opt_words;
        let mut buf =
            vec![
                0u8;
                ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + opts + UDP_HEADER_LEN + payload.len()
            ];
        let mut e = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            dst_addr: EthernetAddress(f.mac),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut e);
        let mut ipp = Ipv4Packet::new_unchecked(e.payload_mut());
        ip.emit(&mut ipp, &ChecksumCapabilities::ignored());
        let caps = ChecksumCapabilities::default();
        let mut up = UdpPacket::new_unchecked(&mut ipp.payload_mut()[..]);
        udp.emit(
            &mut up,
            &f.remote.0.into(),
            &f.local.0.into(),
            payload.len(),
            |b| b.copy_from_slice(payload),
            &caps,
        );
        if opts > 0 {
            // Shift the UDP datagram behind `opts` bytes of NOP options.
            let at = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN;
            let dgram: Vec<u8> = buf[at..at + UDP_HEADER_LEN + payload.len()].to_vec();
            buf[at..at + opts].fill(1);
            buf[at + opts..].copy_from_slice(&dgram);
            let mut ipp = Ipv4Packet::new_unchecked(&mut buf[ETHERNET_HEADER_LEN..]);
            ipp.set_header_len((IPV4_HEADER_LEN + opts) as u8);
            ipp.set_total_len((IPV4_HEADER_LEN + opts + UDP_HEADER_LEN + payload.len()) as u16);
        }
        let mut ipp = Ipv4Packet::new_unchecked(&mut buf[ETHERNET_HEADER_LEN..]);
        ipp.fill_checksum();
        buf
    }

    /// An Ethernet frame of one TCP segment with `payload`, checksums filled by smoltcp.
    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        use smoltcp::wire::{TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};
        let (src, dst) = (Ipv4Addr::new(10, 0, 2, 2), Ipv4Addr::new(10, 0, 2, 15));
        let tcp = TcpRepr {
            src_port: 80,
            dst_port: 50000,
            control: TcpControl::Psh,
            seq_number: TcpSeqNumber(7),
            ack_number: Some(TcpSeqNumber(9)),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut buf = vec![0u8; 14 + ip.buffer_len() + tcp.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_ethertype(EthernetProtocol::Ipv4);
        let caps = ChecksumCapabilities::default();
        let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut ipp, &caps);
        tcp.emit(
            &mut TcpPacket::new_unchecked(ipp.payload_mut()),
            &src.into(),
            &dst.into(),
            &caps,
        );
        buf
    }

    #[test]
    fn tcp_checksums_are_checked_as_smoltcp_would() {
        for len in [0usize, 1, 2, 7, 8, 9, 1460] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
            let mut f = tcp_frame(&payload);
            assert_eq!(tcp_checksum_ok(&f), Some(true), "len {len}");
            let last = f.len() - 1;
            f[last] ^= 0x40;
            assert_eq!(tcp_checksum_ok(&f), Some(false), "len {len}");
        }
        // Not TCP: not ours to judge.
        let mut out = [0u8; 64];
        let filter = Filter {
            mac: [2; 6],
            local: (Ipv4Addr::new(10, 0, 2, 15), 1),
            remote: (Ipv4Addr::new(10, 0, 2, 2), 2),
        };
        let n = udp_frame(&filter, [4; 6], b"x", &mut out).unwrap();
        assert_eq!(tcp_checksum_ok(&out[..n]), None);
        assert_eq!(tcp_checksum_ok(&[0u8; 10]), None);
    }

    #[test]
    fn ones_sum_matches_rfc1071() {
        // RFC 1071 section 3's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            ones_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(ones_sum(&[]), 0);
        assert_eq!(ones_sum(&[0xab]), 0xab00);
        assert_eq!(ones_sum(&[0xff; 4096]), 0xffff);
        for len in 0..40 {
            let d: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(ones_sum(&d), naive(&d), "len {len}");
            assert_eq!(
                ones_sum(&d),
                smoltcp::wire::checksum::data(&d),
                "smoltcp, len {len}"
            );
        }
    }

    proptest! {
        #[test]
        fn ones_sum_equals_naive(d in proptest::collection::vec(any::<u8>(), 0..3000), skip in 0usize..8) {
            let d = &d[skip.min(d.len())..];
            prop_assert_eq!(ones_sum(d), naive(d));
        }

        /// Whatever the bytes, classify never panics, and what it takes lies inside the frame
        /// and agrees with smoltcp's own parse and checksum checks.
        #[test]
        fn classify_agrees_with_smoltcp(payload in proptest::collection::vec(any::<u8>(), 0..600),
                                         flips in proptest::collection::vec((0usize..700, any::<u8>()), 0..3),
                                         opts in 0usize..3) {
            let mut fr = frame(&F, &payload, opts);
            for (at, x) in flips {
                let n = fr.len();
                fr[at % n] ^= x;
            }
            if let Class::Tftp(p) = classify(&fr, &F) {
                let e = EthernetFrame::new_checked(&fr[..]).unwrap();
                let caps = ChecksumCapabilities::default();
                let ipp = Ipv4Packet::new_checked(e.payload()).unwrap();
                let ip = Ipv4Repr::parse(&ipp, &caps).unwrap();
                let up = UdpPacket::new_checked(ipp.payload()).unwrap();
                UdpRepr::parse(&up, &ip.src_addr.into(), &ip.dst_addr.into(), &caps).unwrap();
                prop_assert_eq!(p, up.payload());
            }
        }
    }

    #[test]
    fn takes_the_transfer_and_only_it() {
        let d = b"\x00\x03\x00\x01hello";
        assert_eq!(classify(&frame(&F, d, 0), &F), Class::Tftp(d));
        // IPv4 options: the header length is honoured.
        assert_eq!(classify(&frame(&F, d, 2), &F), Class::Tftp(d));
        // Ethernet padding after a short datagram is not payload.
        let mut padded = frame(&F, b"\x00\x03\x00\x02", 0);
        padded.resize(60, 0xee);
        assert_eq!(classify(&padded, &F), Class::Tftp(b"\x00\x03\x00\x02"));
        // No UDP checksum (zero) is accepted.
        let mut nosum = frame(&F, d, 0);
        let at = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + 6;
        nosum[at..at + 2].fill(0);
        assert_eq!(classify(&nosum, &F), Class::Tftp(d));
        // Someone else's: other port, other server, other MAC (broadcast too), other TID.
        let others = [
            Filter {
                local: (F.local.0, 50001),
                ..F
            },
            Filter {
                remote: (Ipv4Addr::new(10, 0, 2, 3), 30000),
                ..F
            },
            Filter {
                remote: (F.remote.0, 31000),
                ..F
            },
            Filter {
                local: (Ipv4Addr::new(10, 0, 2, 16), 50000),
                ..F
            },
        ];
        for o in others {
            assert_eq!(classify(&frame(&o, d, 0), &F), Class::Other, "{o:?}");
        }
        let mut bcast = frame(&F, d, 0);
        bcast[..6].fill(0xff);
        assert_eq!(classify(&bcast, &F), Class::Other);
        // Fragments go to smoltcp.
        let mut frag = frame(&F, d, 0);
        let mut ipp = Ipv4Packet::new_unchecked(&mut frag[ETHERNET_HEADER_LEN..]);
        ipp.set_more_frags(true);
        ipp.fill_checksum();
        assert_eq!(classify(&frag, &F), Class::Other);
        // Truncated and short frames.
        let full = frame(&F, d, 0);
        for n in 0..full.len() {
            assert_ne!(classify(&full[..n], &F), Class::Tftp(d), "cut at {n}");
        }
        // ARP.
        let mut arp = full.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(classify(&arp, &F), Class::Other);
    }

    #[test]
    fn bad_checksums_are_dropped() {
        let d = vec![0x5a; 1472];
        let good = frame(&F, &d, 0);
        // A flipped payload bit: the UDP checksum is wrong.
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x10;
        assert_eq!(classify(&bad, &F), Class::BadChecksum);
        // A flipped TTL: the IPv4 header checksum is wrong.
        let mut bad = good.clone();
        bad[ETHERNET_HEADER_LEN + 8] ^= 1;
        assert_eq!(classify(&bad, &F), Class::BadChecksum);
        // Wrong UDP checksum field.
        let mut bad = good;
        bad[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + 7] ^= 0x80;
        assert_eq!(classify(&bad, &F), Class::BadChecksum);
    }
}
