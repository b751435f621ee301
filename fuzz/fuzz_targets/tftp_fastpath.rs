//! The TFTP receive fast path's frame filter (`kexboot_net::fastpath`): arbitrary frames, most of
//! them made to look like the transfer's (addresses, ports, IPv4 header length, checksums fixed
//! up by the harness, then some bytes changed). `classify` never panics; a datagram it takes
//! lies inside the frame, is from the server's address and TID to ours, unfragmented UDP,
//! and is the payload smoltcp's own parsers find; `ones_sum` equals RFC 1071 word by word.
#![no_main]

use kexboot_fuzz::next_chunk;
use kexboot_net::fastpath::{classify, ones_sum, Class, Filter};
use kexboot_net::Ipv4Addr;
use libfuzzer_sys::fuzz_target;

const F: Filter = Filter {
    mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
    local: (Ipv4Addr::new(10, 0, 2, 15), 50000),
    remote: (Ipv4Addr::new(10, 0, 2, 2), 30000),
};
const ETH: usize = 14;

/// RFC 1071, 16-bit word by word (the reference).
fn naive(data: &[u8]) -> u16 {
    let mut acc: u64 = data
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Makes `f` the transfer's frame as far as its length allows: MAC, EtherType, IPv4 version,
/// IHL (`ihl` words), total length, protocol, addresses, UDP ports and length, both checksums.
fn shape(f: &mut Vec<u8>, ihl: usize) {
    let hl = 4 * ihl;
    if f.len() < ETH + hl + 8 {
        f.resize(ETH + hl + 8, 0);
    }
    f[..6].copy_from_slice(&F.mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = (f.len() - ETH).min(0xffff);
    let ip = &mut f[ETH..];
    ip[0] = 0x40 | ihl as u8;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[6..8].fill(0);
    ip[9] = 17;
    ip[10..12].fill(0);
    ip[12..16].copy_from_slice(&F.remote.0.octets());
    ip[16..20].copy_from_slice(&F.local.0.octets());
    let sum = !naive(&ip[..hl]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut ip[hl..total];
    let ulen = udp.len() as u16;
    udp[..2].copy_from_slice(&F.remote.1.to_be_bytes());
    udp[2..4].copy_from_slice(&F.local.1.to_be_bytes());
    udp[4..6].copy_from_slice(&ulen.to_be_bytes());
    udp[6..8].fill(0);
    let mut pseudo = Vec::from(F.remote.0.octets());
    pseudo.extend(F.local.0.octets());
    pseudo.extend([0, 17]);
    pseudo.extend(ulen.to_be_bytes());
    pseudo.extend_from_slice(udp);
    let sum = match !naive(&pseudo) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let Some(frame) = next_chunk(&mut rest, 1600) else {
        return;
    };
    let edits = rest;
    assert_eq!(ones_sum(frame), naive(frame), "ones_sum differs from RFC 1071");
    let mut frame = frame.to_vec();
    if mode & 1 != 0 {
        shape(&mut frame, 5 + usize::from(mode >> 1) % 11);
    }
    // Then a few bytes changed: (offset, xor) pairs.
    for e in edits.chunks_exact(3).take(4) {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]]));
        if let Some(b) = frame.get_mut(at) {
            *b ^= e[2];
        }
    }
    let class = classify(&frame, &F);
    let Class::Tftp(payload) = class else { return };
    let range = frame.as_ptr_range();
    assert!(
        range.contains(&payload.as_ptr()) || payload.is_empty(),
        "payload outside the frame"
    );
    assert!(payload.as_ptr_range().end <= range.end, "payload past the frame");
    // smoltcp's parsers (their checksum checks are off under cfg(fuzzing)) see the same.
    use smoltcp::wire::{EthernetFrame, Ipv4Packet, UdpPacket};
    let eth = EthernetFrame::new_checked(&frame[..]).expect("Ethernet");
    assert_eq!(eth.dst_addr().0, F.mac);
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("IPv4");
    assert!(!ip.more_frags() && ip.frag_offset() == 0);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (F.remote.0, F.local.0));
    assert_eq!(naive(&eth.payload()[..usize::from(ip.header_len())]), 0xffff);
    let udp = UdpPacket::new_checked(ip.payload()).expect("UDP");
    assert_eq!((udp.src_port(), udp.dst_port()), (F.remote.1, F.local.1));
    assert_eq!(udp.payload(), payload);
});
