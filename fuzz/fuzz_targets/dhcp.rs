//! DHCP through the whole stack (smoltcp under kexboot's `Stack`): a fuzzed sequence of received
//! frames, most of them DHCP replies framed by the harness (Ethernet/IPv4/UDP 67->68, valid
//! header checksum, the client's current xid and MAC patched in so smoltcp reads them), some raw.
//! The stack ends within its timeout on made-up time, never sends an oversized frame, and a
//! lease it reports is the address the interface then has.
//!
//! This target found smoltcp 0.12's panic ("overflow when subtracting durations") on an ACK whose
//! renewal time (option 58) exceeds its lease time (option 51) with no rebinding time (option 59);
//! smoltcp 0.14 fixes it (`net/tests/stack.rs` `dhcp_hostile_lease_times`), so nothing is masked.
#![no_main]

use kexboot_fuzz::next_chunk;
use kexboot_net::{Ipv4Addr, Nic, NicError, Platform, Stack, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const SERVER_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
const SERVER_IP: [u8; 4] = [10, 0, 2, 2];
const ETH_HEADER: usize = 14;
const IP_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
const BOOTP_FIXED: usize = 236;
const DHCP_COOKIE: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
/// Made-up time: each clock read advances this much; the whole DHCP gets `TIMEOUT_US`.
const TICK_US: u64 = 50_000;
const TIMEOUT_US: u64 = 10_000_000;

struct FuzzNic<'a> {
    input: &'a [u8],
    xid: [u8; 4],
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 + UDP (no checksum) around a BOOTP reply built from `chunk`.
fn dhcp_frame(chunk: &[u8], xid: [u8; 4], patch: bool) -> Vec<u8> {
    let mut bootp = chunk.to_vec();
    if patch {
        bootp.resize(bootp.len().max(BOOTP_FIXED), 0);
        bootp[0] = 2; // BOOTREPLY
        bootp[1] = 1; // Ethernet
        bootp[2] = 6;
        bootp[4..8].copy_from_slice(&xid);
        bootp[28..34].copy_from_slice(&MAC);
        bootp.splice(BOOTP_FIXED..BOOTP_FIXED, DHCP_COOKIE);
    }
    let udp_len = UDP_HEADER + bootp.len();
    let ip_len = IP_HEADER + udp_len;
    let mut f = Vec::with_capacity(ETH_HEADER + ip_len);
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&SERVER_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; IP_HEADER];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&SERVER_IP);
    ip[16..20].copy_from_slice(&[255; 4]);
    let c = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&DHCP_SERVER_PORT.to_be_bytes());
    f.extend_from_slice(&DHCP_CLIENT_PORT.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&bootp);
    f
}

impl Nic for FuzzNic<'_> {
    fn mac(&self) -> [u8; 6] {
        MAC
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), NicError> {
        assert!(
            frame.len() <= MAX_FRAME,
            "sent a {}-byte frame",
            frame.len()
        );
        // Remember the xid of a DHCP request (UDP 68 -> 67).
        let udp = ETH_HEADER + IP_HEADER;
        if frame.len() >= udp + UDP_HEADER + 8 && frame[12..14] == [8, 0] && frame[23] == 17 {
            let dport = u16::from_be_bytes([frame[udp + 2], frame[udp + 3]]);
            if dport == DHCP_SERVER_PORT {
                let b = udp + UDP_HEADER;
                self.xid.copy_from_slice(&frame[b + 4..b + 8]);
            }
        }
        Ok(())
    }

    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        let (&mode, rest) = self.input.split_first()?;
        self.input = rest;
        let chunk = next_chunk(&mut self.input, MAX_FRAME)?;
        let frame = match mode % 4 {
            0 => return None, // nothing arrived this time
            1 => chunk.to_vec(),
            2 => dhcp_frame(chunk, self.xid, false),
            _ => dhcp_frame(chunk, self.xid, true),
        };
        let n = frame.len().min(MAX_FRAME).min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Some(n)
    }
}

struct Clock {
    now: u64,
}

impl Platform for Clock {
    fn now_us(&mut self) -> u64 {
        self.now += TICK_US;
        self.now
    }
    fn idle(&mut self, until_us: u64) {
        self.now = self.now.max(until_us);
    }
}

fuzz_target!(|data: &[u8]| {
    let nic = FuzzNic {
        input: data,
        xid: [0; 4],
    };
    let mut stack = Stack::new(nic, 0);
    let mut clock = Clock { now: 0 };
    let res = stack.dhcp(&mut clock, TIMEOUT_US);
    assert!(
        clock.now <= 2 * TIMEOUT_US + TICK_US,
        "DHCP ran {} us of a {TIMEOUT_US} us timeout",
        clock.now
    );
    if let Ok(lease) = res {
        assert!(lease.prefix_len <= 32);
        assert_ne!(lease.address, Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            stack.address(),
            Some((lease.address, lease.prefix_len)),
            "lease not applied"
        );
    }
});
