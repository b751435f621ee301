//! Host tests of [`Stack`] over `kexboot-testnet`'s in-process network: a test NIC carries
//! Ethernet frames to ARP, a DHCP server, a windowed TFTP server with one session per transfer
//! ID and ICMP echo, over a link with seeded loss, duplication and reordering. Time is virtual:
//! the test platform advances its clock 50 µs per reading and jumps ahead when the stack is idle.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;

use kexboot_net::tftp::{self, Options, Packet};
use kexboot_net::{NetError, Nic, Progress, Stack, TftpRequest, MAX_FRAME};
use kexboot_testnet::{
    random_file, udp_frame, Dhcp, Network, TestNic, TestPlatform, World, CLIENT_IP, CLIENT_MAC,
    PLAIN, SERVER_IP,
};
use proptest::prelude::*;
use smoltcp::wire::EthernetAddress;

const MIB: usize = 1 << 20;

struct Rig {
    world: Rc<RefCell<World>>,
    stack: Stack<TestNic>,
    p: TestPlatform,
}

impl Rig {
    fn new(world: World) -> Self {
        let Network {
            world,
            nic,
            platform: p,
        } = Network::with_world(world);
        let stack = Stack::new(nic, p.now.get());
        Rig { world, stack, p }
    }

    /// A rig with a static address, serving `files`.
    fn configured(world: World, files: &[(&str, &[u8])]) -> Self {
        let mut r = Rig::new(world);
        for (n, f) in files {
            r.world.borrow_mut().add_file(n, f);
        }
        r.stack.configure(CLIENT_IP, 24, Some(SERVER_IP));
        r
    }

    fn now(&self) -> u64 {
        self.p.now.get()
    }

    /// Lets the frames still on the link arrive, then shows the network side.
    fn settled(&self) -> std::cell::RefMut<'_, World> {
        let mut w = self.world.borrow_mut();
        w.settle();
        w
    }

    fn get(
        &mut self,
        file: &str,
        opts: Options,
        dest: &mut [u8],
    ) -> (Result<kexboot_net::Transfer, NetError>, Vec<Progress>) {
        let req = TftpRequest {
            server: SERVER_IP,
            port: 69,
            file,
            options: opts,
        };
        let mut seen = vec![];
        let r = self
            .stack
            .tftp_get(&mut self.p, &req, dest, &mut |p| seen.push(*p));
        (r, seen)
    }
}

const BIG: Options = Options {
    blksize: Some(1468),
    tsize: true,
    timeout: None,
    windowsize: Some(16),
};

// ---------------------------------------------------------------- DHCP

#[test]
fn dhcp_lease_fields() {
    let mut r = Rig::new(World::new(1, 0.0, 0.0, false));
    assert_eq!(r.stack.address(), None);
    let lease = r.stack.dhcp(&mut r.p, 10_000_000).unwrap();
    assert_eq!(lease.address, CLIENT_IP);
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(lease.router, Some(SERVER_IP));
    assert_eq!(
        lease.dns,
        vec![Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(10, 0, 2, 5)]
    );
    assert_eq!(lease.server_id, SERVER_IP);
    assert_eq!(lease.next_server, Some(Ipv4Addr::new(10, 0, 2, 4)));
    assert_eq!(lease.tftp_server_name.as_deref(), Some("tftp.example"));
    assert_eq!(
        lease.bootfile.as_deref(),
        Some("pxelinux/pxelinux.0"),
        "option 67 wins over `file`"
    );
    assert_eq!(lease.lease_secs, Some(86400));
    assert_eq!(lease.tftp_server(), Ipv4Addr::new(10, 0, 2, 4));
    assert_eq!(r.stack.address(), Some((CLIENT_IP, 24)));
    // No loss: DISCOVER, OFFER, REQUEST, ACK well within a second.
    assert!(
        r.now() < 1_000_000 + 100_000,
        "took {} µs",
        r.now() - 1_000_000
    );
}

#[test]
fn dhcp_file_field_and_option_66_address() {
    let mut w = World::new(2, 0.0, 0.0, false);
    w.dhcp = Dhcp {
        siaddr: Ipv4Addr::UNSPECIFIED,
        opt66: Some("10.0.2.9"),
        opt67: None,
        file: Some("boot/grubaa64.efi"),
        unicast: true,
        ..Dhcp::default()
    };
    let mut r = Rig::new(w);
    let lease = r.stack.dhcp(&mut r.p, 10_000_000).unwrap();
    assert_eq!(lease.next_server, None);
    assert_eq!(lease.bootfile.as_deref(), Some("boot/grubaa64.efi"));
    assert_eq!(lease.tftp_server(), Ipv4Addr::new(10, 0, 2, 9));
    // Both siaddr and an option 66 address: option 66 names the TFTP server.
    let mut w = World::new(4, 0.0, 0.0, false);
    w.dhcp = Dhcp {
        siaddr: Ipv4Addr::new(10, 0, 2, 4),
        opt66: Some("10.0.2.9"),
        ..Dhcp::default()
    };
    let mut r = Rig::new(w);
    let lease = r.stack.dhcp(&mut r.p, 10_000_000).unwrap();
    assert_eq!(lease.next_server, Some(Ipv4Addr::new(10, 0, 2, 4)));
    assert_eq!(lease.tftp_server(), Ipv4Addr::new(10, 0, 2, 9));
    let mut w = World::new(3, 0.0, 0.0, false);
    w.dhcp = Dhcp {
        siaddr: Ipv4Addr::UNSPECIFIED,
        opt66: None,
        opt67: None,
        file: None,
        ..Dhcp::default()
    };
    let mut r = Rig::new(w);
    let lease = r.stack.dhcp(&mut r.p, 10_000_000).unwrap();
    assert_eq!((&lease.bootfile, &lease.tftp_server_name), (&None, &None));
    assert_eq!(
        lease.tftp_server(),
        SERVER_IP,
        "falls back to the DHCP server"
    );
}

#[test]
fn dhcp_malformed_offers_ignored() {
    let mut w = World::new(4, 0.0, 0.0, false);
    w.dhcp.bad_offers = true;
    let mut r = Rig::new(w);
    let lease = r.stack.dhcp(&mut r.p, 10_000_000).unwrap();
    assert_eq!(lease.address, CLIENT_IP, "a bad offer was taken");
    assert_eq!(lease.bootfile.as_deref(), Some("pxelinux/pxelinux.0"));
    assert!(
        r.now() < 1_000_000 + 100_000,
        "bad offers cost a retry: {} µs",
        r.now() - 1_000_000
    );
}

#[test]
fn dhcp_over_lossy_link() {
    for seed in 0..6 {
        let mut w = World::new(100 + seed, 0.2, 0.1, true);
        w.dhcp.bad_offers = seed % 2 == 0;
        let mut r = Rig::new(w);
        let lease = r.stack.dhcp(&mut r.p, 120_000_000).unwrap();
        assert_eq!(lease.address, CLIENT_IP);
        assert_eq!(lease.next_server, Some(Ipv4Addr::new(10, 0, 2, 4)));
    }
}

#[test]
fn dhcp_without_server_times_out() {
    let mut w = World::new(5, 0.0, 0.0, false);
    w.dhcp.enabled = false;
    let mut r = Rig::new(w);
    let t0 = r.now();
    let e = r.stack.dhcp(&mut r.p, 10_000_000).unwrap_err();
    assert_eq!(
        e,
        NetError::Timeout {
            what: "DHCP offer",
            after_us: 10_000_000
        }
    );
    assert_eq!(e.to_string(), "no DHCP offer after 10 s");
    let took = r.now() - t0;
    assert!((10_000_000..10_200_000).contains(&took), "took {took} µs");
    assert_eq!(r.stack.address(), None);
    // Ctrl-C ends it early.
    r.p.interrupt_at = Some(r.now() + 500_000);
    assert_eq!(
        r.stack.dhcp(&mut r.p, 10_000_000),
        Err(NetError::Interrupted)
    );
}

/// Lease times a server may send in any combination (RFC 2131 wants T1 < T2 < lease, nothing
/// enforces it). smoltcp 0.12.0 panicked on T1 > lease without T2 ("overflow when subtracting
/// durations", smoltcp issue #1028): one such ACK from any host on the LAN stopped an unattended
/// netboot. Each must give the lease as offered, and the stack must go on working (a TFTP fetch).
#[test]
fn dhcp_hostile_lease_times() {
    const H: u32 = 3600;
    let cases: &[(Option<u32>, Option<u32>, Option<u32>)] = &[
        (Some(H), Some(2 * H), None),        // issue #1028: T1 > lease, no T2
        (None, Some(2 * H), None),           // T1 > smoltcp's default lease, no lease option
        (Some(H), Some(H), None),            // T1 = lease
        (Some(H), None, Some(2 * H)),        // T2 > lease
        (Some(H), Some(H / 2), Some(2 * H)), // T1 < lease < T2
        (Some(H), Some(3 * H / 4), Some(H / 4)), // T1 > T2
        (Some(H), Some(2 * H), Some(3 * H)), // both past the lease
        (Some(0), None, None),               // lease 0
        (Some(0), Some(10), Some(20)),       // lease 0 with T1, T2
        (Some(u32::MAX), None, None),        // "infinite" lease
        (Some(u32::MAX), Some(u32::MAX), Some(u32::MAX)),
        (Some(1), Some(u32::MAX), None),
    ];
    let file = random_file(5_000, 12);
    for (i, &(lease, t1, t2)) in cases.iter().enumerate() {
        let mut w = World::new(200 + i as u64, 0.0, 0.0, false);
        w.dhcp.lease = lease;
        w.dhcp.t1 = t1;
        w.dhcp.t2 = t2;
        w.files.insert("f".into(), file.clone());
        let mut r = Rig::new(w);
        let what = format!("lease {lease:?}, T1 {t1:?}, T2 {t2:?}");
        let got = r.stack.dhcp(&mut r.p, 10_000_000).expect(&what);
        assert_eq!(got.address, CLIENT_IP, "{what}");
        assert_eq!(got.lease_secs, lease, "{what}");
        assert_eq!(r.stack.address(), Some((CLIENT_IP, 24)), "{what}");
        let mut dest = vec![0u8; 6_000];
        let t = r
            .stack
            .tftp_get(
                &mut r.p,
                &TftpRequest::new(SERVER_IP, "f"),
                &mut dest,
                &mut |_| {},
            )
            .expect(&what);
        assert!(t.size == file.len() && dest[..t.size] == file[..], "{what}");
    }
}

// ---------------------------------------------------------------- TFTP downloads

fn download(
    seed: u64,
    len: usize,
    loss: f64,
    dup: f64,
    reorder: bool,
    opts: Options,
) -> (kexboot_net::Transfer, Vec<Progress>, World) {
    let file = random_file(len, seed);
    let mut r = Rig::configured(World::new(seed, loss, dup, reorder), &[("Image", &file)]);
    let mut mem = vec![0x5Au8; len + 8192];
    let (dest, guard) = mem.split_at_mut(len + 4096);
    let (t, progress) = r.get("Image", opts, dest);
    let t = t.unwrap_or_else(|e| panic!("seed {seed} loss {loss} {opts:?}: {e}"));
    assert_eq!(t.size, len);
    assert!(
        dest[..len] == file[..],
        "data differs (seed {seed}, loss {loss})"
    );
    assert!(
        dest[len..].iter().all(|&b| b == 0x5A),
        "written past the file"
    );
    assert!(guard.iter().all(|&b| b == 0x5A), "written past dest");
    assert_eq!(progress.last().unwrap().received, len as u64);
    assert!(progress.windows(2).all(|w| w[0].received <= w[1].received));
    let Rig { world, stack, p } = r;
    drop((stack, p));
    let w = Rc::try_unwrap(world).ok().unwrap().into_inner();
    (t, progress, w)
}

#[test]
fn download_no_loss_window_1_and_16() {
    let (t, p, w) = download(10, MIB, 0.0, 0.0, false, PLAIN);
    assert_eq!(
        (t.blksize, t.window, t.timeouts, t.tsize),
        (512, 1, 0, None)
    );
    assert_eq!(p.len(), MIB / 512 + 1, "one progress call per window");
    assert_eq!(w.rrqs(), 1);
    let (t, p, w) = download(11, 4 * MIB, 0.0, 0.0, false, BIG);
    assert_eq!((t.blksize, t.window, t.timeouts), (1468, 16, 0));
    assert_eq!(t.tsize, Some(4 * MIB as u64));
    assert!(p.len() < 4 * MIB / 1468 / 8, "{} windows", p.len());
    assert_eq!(p[0].total, Some(4 * MIB as u64));
    assert_eq!(w.rrqs(), 1);
    // Windowed is much faster in virtual time than lock-step.
    assert!(t.elapsed_us < 4_000_000, "{} µs", t.elapsed_us);
}

#[test]
fn download_5_percent_loss() {
    let (t, _, w) = download(12, MIB, 0.05, 0.0, false, PLAIN);
    assert!(t.timeouts > 0 && w.link.dropped > 20, "no loss happened?");
    download(13, 2 * MIB, 0.05, 0.02, true, BIG);
}

#[test]
fn download_20_percent_loss_dup_reorder() {
    let (_, _, w) = download(
        14,
        MIB,
        0.20,
        0.05,
        true,
        Options {
            blksize: Some(1468),
            ..PLAIN
        },
    );
    assert!(w.link.dropped > 100);
    let (t, p, _) = download(15, 3 * MIB, 0.20, 0.05, true, BIG);
    assert_eq!(t.window, 16, "granted window");
    let min = p.iter().map(|p| p.window).min().unwrap();
    assert!(min < 8, "window never shrank under loss (min {min})");
}

#[test]
fn many_small_files_lossy() {
    for seed in 20..40u64 {
        let len = (seed as usize * 7919) % 30000;
        let opts = if seed % 2 == 0 {
            BIG
        } else {
            Options {
                windowsize: Some(4),
                ..PLAIN
            }
        };
        download(
            seed,
            len,
            0.1 + (seed % 3) as f64 * 0.05,
            0.05,
            seed % 3 != 0,
            opts,
        );
    }
}

#[test]
fn rrq_sent_as_soon_as_arp_resolves() {
    let file = random_file(1000, 1);
    let mut r = Rig::configured(World::new(30, 0.0, 0.0, false), &[("f", &file)]);
    let mut dest = vec![0u8; 2000];
    let t = r.get("f", PLAIN, &mut dest).0.unwrap();
    assert_eq!(r.world.borrow().arp_requests, 1);
    assert_eq!(t.timeouts, 0);
    assert!(
        t.elapsed_us < 50_000,
        "RRQ waited for a timeout: {} µs",
        t.elapsed_us
    );
    // First ARP reply lost: smoltcp asks again after 1 s, the queued RRQ goes out once.
    let mut r = Rig::configured(World::new(31, 0.0, 0.0, false), &[("f", &file)]);
    r.world.borrow_mut().drop_arp_replies = 1;
    let t = r.get("f", PLAIN, &mut dest).0.unwrap();
    let w = r.world.borrow();
    assert_eq!(
        (w.arp_requests, w.rrqs()),
        (2, 1),
        "RRQ duplicated while waiting for ARP"
    );
    assert!(t.elapsed_us < 1_500_000, "{} µs", t.elapsed_us);
    assert!(dest[..1000] == file[..]);
}

#[test]
fn fresh_port_per_transfer() {
    let file = random_file(3000, 2);
    let mut r = Rig::configured(World::new(32, 0.0, 0.0, false), &[("f", &file)]);
    let mut dest = vec![0u8; 4000];
    for _ in 0..3 {
        r.get("f", BIG, &mut dest).0.unwrap();
    }
    let ports: std::collections::HashSet<u16> = r
        .world
        .borrow()
        .sessions
        .values()
        .map(|s| s.client_port)
        .collect();
    assert_eq!(ports.len(), 3, "ports reused: {ports:?}");
    assert!(ports.iter().all(|&p| p >= 49152));
}

// ---------------------------------------------------------------- TFTP failures

#[test]
fn file_larger_than_dest_refused() {
    let file = random_file(50_000, 3);
    // With tsize: refused at the OACK, nothing written, ERROR 3 to the server.
    let mut r = Rig::configured(World::new(40, 0.0, 0.0, false), &[("big", &file)]);
    let mut mem = vec![0xA5u8; 40_000];
    let (dest, _) = mem.split_at_mut(30_000);
    let e = r.get("big", BIG, dest).0.unwrap_err();
    assert_eq!(
        e,
        NetError::Tftp(tftp::Error::TooLarge {
            size: 50_000,
            capacity: 30_000
        })
    );
    assert!(
        mem.iter().all(|&b| b == 0xA5),
        "written although refused up front"
    );
    assert_eq!(
        r.settled().aborts,
        vec![(3, "file too large for destination".to_string())]
    );
    // Without tsize: refused at the first block that would overflow; nothing past dest.
    let mut r = Rig::configured(World::new(41, 0.0, 0.0, false), &[("big", &file)]);
    let mut mem = vec![0xA5u8; 40_000];
    let (dest, guard) = mem.split_at_mut(30_000);
    let e = r
        .get(
            "big",
            Options {
                windowsize: Some(8),
                ..PLAIN
            },
            dest,
        )
        .0
        .unwrap_err();
    assert!(
        matches!(
            e,
            NetError::Tftp(tftp::Error::TooLarge {
                capacity: 30_000,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(guard.iter().all(|&b| b == 0xA5), "written past dest");
    let whole = 30_000 / 512 * 512;
    assert!(dest[..whole] == file[..whole]);
}

#[test]
fn not_found() {
    let mut r = Rig::configured(World::new(42, 0.0, 0.0, false), &[]);
    let e = r.get("nope", BIG, &mut [0u8; 10]).0.unwrap_err();
    assert_eq!(
        e,
        NetError::Tftp(tftp::Error::Remote {
            code: 1,
            message: "File not found".into()
        })
    );
    assert_eq!(e.to_string(), "server error 1: File not found");
}

#[test]
fn silent_server_times_out_in_bounded_time() {
    let mut w = World::new(43, 0.0, 0.0, false);
    w.tftp_silent = true;
    let mut r = Rig::configured(w, &[("f", &[1; 100])]);
    let t0 = r.now();
    let e = r.get("f", BIG, &mut [0u8; 200]).0.unwrap_err();
    assert_eq!(
        e,
        NetError::Tftp(tftp::Error::Timeout {
            retries: tftp::MAX_RETRIES
        })
    );
    let took = r.now() - t0;
    assert!(took < 70_000_000, "took {took} µs");
    assert_eq!(r.world.borrow().rrqs(), 1 + tftp::MAX_RETRIES as usize);
    // Stops answering mid-transfer.
    let mut w = World::new(44, 0.0, 0.0, false);
    w.stop_after = Some(5);
    let mut r = Rig::configured(w, &[("f", &random_file(100_000, 4))]);
    let t0 = r.now();
    let e = r.get("f", BIG, &mut vec![0u8; 100_000]).0.unwrap_err();
    assert!(
        matches!(e, NetError::Tftp(tftp::Error::Timeout { .. })),
        "{e:?}"
    );
    assert!(r.now() - t0 < 70_000_000);
    assert_eq!(r.settled().aborts.len(), 1, "no ERROR sent on timeout");
}

#[test]
fn interrupted_transfer_tells_the_server() {
    let mut r = Rig::configured(
        World::new(45, 0.0, 0.0, false),
        &[("f", &random_file(4 * MIB, 5))],
    );
    r.p.interrupt_at = Some(r.now() + 300_000);
    let mut dest = vec![0u8; 4 * MIB];
    let e = r.get("f", PLAIN, &mut dest).0.unwrap_err();
    assert_eq!(e, NetError::Interrupted);
    assert_eq!(r.settled().aborts, vec![(0, "interrupted".to_string())]);
}

#[test]
fn other_tid_gets_error_5_and_transfer_goes_on() {
    let file = random_file(20_000, 6);
    let mut w = World::new(46, 0.0, 0.0, false);
    w.stranger = true;
    let mut r = Rig::configured(w, &[("f", &file)]);
    let mut dest = vec![0u8; 20_000];
    r.get("f", BIG, &mut dest).0.unwrap();
    assert!(dest == file, "stranger's DATA was written");
    let w = r.settled();
    assert_eq!(w.to_unknown_port.len(), 1);
    let (port, pkt) = &w.to_unknown_port[0];
    assert_eq!(*port, 30000 + 1000);
    assert_eq!(
        Packet::parse(pkt),
        Ok(Packet::Error {
            code: 5,
            message: "unknown transfer ID"
        })
    );
}

#[test]
fn hostile_packets_from_server_tid_ignored() {
    let file = random_file(30_000, 7);
    let mut w = World::new(47, 0.0, 0.0, false);
    w.inject = vec![
        vec![0],           // short
        vec![0, 3],        // DATA without block number
        vec![0, 42, 0, 1], // unknown opcode
        vec![0, 4, 0, 1],  // ACK to a client
        Packet::Data {
            block: 9000,
            data: &[1; 10],
        }
        .emit(), // far-off block
        Packet::Data {
            block: 1,
            data: &[2; 1025],
        }
        .emit(), // larger than blksize
        vec![0, 5, 0, 1, b'x'], // ERROR without NUL
        vec![0xff; 1472],  // garbage
    ];
    let mut r = Rig::configured(w, &[("f", &file)]);
    let mut mem = vec![0x33u8; 40_000];
    let (dest, guard) = mem.split_at_mut(30_000);
    r.get(
        "f",
        Options {
            blksize: Some(1024),
            ..BIG
        },
        dest,
    )
    .0
    .unwrap();
    assert!(dest[..] == file[..]);
    assert!(guard.iter().all(|&b| b == 0x33));
    assert!(r.settled().aborts.is_empty());
}

#[test]
fn oack_with_unrequested_option_refused() {
    let mut w = World::new(48, 0.0, 0.0, false);
    w.oack_extra = true;
    let mut r = Rig::configured(w, &[("f", &[7; 5000])]);
    let mut dest = vec![0u8; 5000];
    let e = r.get("f", BIG, &mut dest).0.unwrap_err();
    assert_eq!(
        e,
        NetError::Tftp(tftp::Error::UnexpectedOption("multicast".into()))
    );
    assert_eq!(
        r.settled().aborts,
        vec![(8, "unexpected option".to_string())]
    );
    assert!(dest.iter().all(|&b| b == 0));
}

#[test]
fn not_configured_and_no_route() {
    let mut r = Rig::new(World::new(49, 0.0, 0.0, false));
    let req = TftpRequest::new(SERVER_IP, "f");
    assert_eq!(
        r.stack.tftp_get(&mut r.p, &req, &mut [], &mut |_| {}),
        Err(NetError::NotConfigured)
    );
    r.stack.configure(CLIENT_IP, 24, None);
    let far = Ipv4Addr::new(192, 0, 2, 1);
    assert_eq!(
        r.stack.ping(&mut r.p, far, 1_000_000),
        Err(NetError::NoRoute(far))
    );
    assert_eq!(
        r.stack.tftp_size(&mut r.p, &TftpRequest::new(far, "f")),
        Err(NetError::NoRoute(far))
    );
}

// ---------------------------------------------------------------- tsize, ping

#[test]
fn tftp_size_queries() {
    let mut r = Rig::configured(World::new(50, 0.0, 0.0, false), &[("f", &[1; 123_456])]);
    let req = TftpRequest::new(SERVER_IP, "f");
    assert_eq!(r.stack.tftp_size(&mut r.p, &req), Ok(Some(123_456)));
    assert_eq!(r.settled().aborts, vec![(8, "size query only".to_string())]);
    let e = r
        .stack
        .tftp_size(&mut r.p, &TftpRequest::new(SERVER_IP, "missing"))
        .unwrap_err();
    assert!(matches!(
        e,
        NetError::Tftp(tftp::Error::Remote { code: 1, .. })
    ));
    // A server without options answers with DATA: unknown size, ERROR 0.
    let mut w = World::new(51, 0.0, 0.0, false);
    w.honour_options = false;
    let mut r = Rig::configured(w, &[("f", &[1; 1000])]);
    assert_eq!(r.stack.tftp_size(&mut r.p, &req), Ok(None));
    assert_eq!(r.settled().aborts, vec![(0, "size query only".to_string())]);
    // Lossy: still answers.
    let mut r = Rig::configured(World::new(52, 0.2, 0.1, true), &[("f", &[1; 99])]);
    assert_eq!(r.stack.tftp_size(&mut r.p, &req), Ok(Some(99)));
}

#[test]
fn ping_round_trip() {
    let mut r = Rig::configured(World::new(53, 0.0, 0.0, false), &[]);
    let rtt = r.stack.ping(&mut r.p, SERVER_IP, 5_000_000).unwrap();
    assert!((400..50_000).contains(&rtt), "rtt {rtt} µs (includes ARP)");
    let rtt2 = r.stack.ping(&mut r.p, SERVER_IP, 5_000_000).unwrap();
    assert!(rtt2 < rtt, "second ping should not need ARP");
    assert_eq!(r.world.borrow().echo_requests, 2);
    // Through the gateway.
    assert!(r
        .stack
        .ping(&mut r.p, Ipv4Addr::new(192, 0, 2, 1), 5_000_000)
        .is_ok());
    // Nobody there: ARP never answered.
    let e = r
        .stack
        .ping(&mut r.p, Ipv4Addr::new(10, 0, 2, 99), 3_000_000)
        .unwrap_err();
    assert_eq!(
        e,
        NetError::Timeout {
            what: "ping reply",
            after_us: 3_000_000
        }
    );
    // Lossy link: resends each second until a reply comes.
    let mut r = Rig::configured(World::new(54, 0.5, 0.0, false), &[]);
    assert!(r.stack.ping(&mut r.p, SERVER_IP, 60_000_000).is_ok());
}

#[test]
fn dhcp_then_tftp_then_into_nic() {
    let file = random_file(200_000, 8);
    let mut r = Rig::new(World::new(55, 0.05, 0.02, true));
    r.world
        .borrow_mut()
        .files
        .insert("pxelinux/pxelinux.0".into(), file.clone());
    let lease = r.stack.dhcp(&mut r.p, 60_000_000).unwrap();
    let name = lease.bootfile.clone().unwrap();
    let req = TftpRequest::new(SERVER_IP, &name);
    let mut dest = vec![0u8; 300_000];
    let t = r
        .stack
        .tftp_get(&mut r.p, &req, &mut dest, &mut |_| {})
        .unwrap();
    assert_eq!(t.size, 200_000);
    assert!(dest[..200_000] == file[..]);
    let nic = r.stack.into_nic();
    assert_eq!(nic.mac(), CLIENT_MAC);
}

/// A second `dhcp` with the same lease right after a transfer must not flush the ARP cache:
/// smoltcp would then stay silent for a second before asking again, stalling the next RRQ.
#[test]
fn same_lease_twice_keeps_arp() {
    let file = random_file(50_000, 9);
    let mut r = Rig::new(World::new(56, 0.0, 0.0, false));
    r.world.borrow_mut().files.insert("f".into(), file.clone());
    let req = TftpRequest::new(SERVER_IP, "f");
    let mut dest = vec![0u8; 60_000];
    r.stack.dhcp(&mut r.p, 10_000_000).unwrap();
    r.stack
        .tftp_get(&mut r.p, &req, &mut dest, &mut |_| {})
        .unwrap();
    r.stack.dhcp(&mut r.p, 10_000_000).unwrap();
    let t = r
        .stack
        .tftp_get(&mut r.p, &req, &mut dest, &mut |_| {})
        .unwrap();
    assert!(dest[..50_000] == file[..]);
    assert!(
        t.elapsed_us < 300_000,
        "second transfer took {} us (ARP stall?)",
        t.elapsed_us
    );
}

// ---------------------------------------------------------------- garbage

fn frame_to_client(payload: &[u8], port: u16, proto_udp: bool) -> Vec<u8> {
    if proto_udp {
        udp_frame(
            EthernetAddress(CLIENT_MAC),
            (SERVER_IP, 30000),
            (CLIENT_IP, port),
            payload,
        )
    } else {
        let mut f = udp_frame(
            EthernetAddress(CLIENT_MAC),
            (SERVER_IP, 1),
            (CLIENT_IP, port),
            &[],
        );
        f.truncate(14);
        f.extend_from_slice(payload);
        f
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random frames, random UDP datagrams to the DHCP and TFTP ports and random payloads from
    /// the server's TID: the stack never panics and never writes outside `dest`.
    #[test]
    fn random_frames_never_panic(
        raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1600), 0..12),
        dgrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12),
        inject in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12),
        seed in any::<u64>(),
    ) {
        let file = random_file(5000, seed);
        let mut w = World::new(seed, 0.0, 0.0, seed % 2 == 0);
        w.dhcp.bad_offers = true;
        let mut garbage: Vec<Vec<u8>> = raw.into_iter().map(|mut f| { f.truncate(MAX_FRAME); f }).collect();
        for (i, d) in dgrams.iter().enumerate() {
            let port = [68, 49152 + (seed % 16384) as u16, 30000][i % 3];
            garbage.push(frame_to_client(d, port, i % 4 != 3));
        }
        // Some inject payloads look like DATA/OACK/ERROR.
        w.inject = inject.into_iter().enumerate().map(|(i, mut p)| {
            if p.len() >= 2 && i % 2 == 0 { p[0] = 0; p[1] = (p[1] % 7).max(1); }
            p
        }).collect();
        w.garbage = garbage.clone();
        let mut r = Rig::new(w);
        // Garbage before the lease too.
        r.world.borrow_mut().inbox.extend(garbage);
        let _ = r.stack.dhcp(&mut r.p, 20_000_000);
        r.stack.configure(CLIENT_IP, 24, Some(SERVER_IP));
        r.world.borrow_mut().files.insert("f".into(), file);
        let mut mem = vec![0x77u8; 8192];
        let (dest, guard) = mem.split_at_mut(4096);
        let _ = r.get("f", BIG, dest);
        prop_assert!(guard.iter().all(|&b| b == 0x77));
        let _ = r.stack.tftp_size(&mut r.p, &TftpRequest::new(SERVER_IP, "f"));
        let _ = r.stack.ping(&mut r.p, SERVER_IP, 2_000_000);
    }
}

// ---------------------------------------------------------------- receive fast path

/// The test NIC, counting how the stack takes frames: copied out through `receive` (smoltcp's
/// path) or lent through `receive_with` (the TFTP fast path, once the transfer is locked).
struct Counting {
    inner: TestNic,
    copied: Rc<std::cell::Cell<usize>>,
    lent: Rc<std::cell::Cell<usize>>,
}

impl Nic for Counting {
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn transmit(&mut self, frame: &[u8]) -> Result<(), kexboot_net::NicError> {
        self.inner.transmit(frame)
    }
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        let n = self.inner.receive(buf)?;
        self.copied.set(self.copied.get() + 1);
        Some(n)
    }
    fn receive_with(&mut self, f: &mut dyn FnMut(&[u8])) -> bool {
        let mut buf = [0u8; MAX_FRAME];
        let Some(n) = self.inner.receive(&mut buf) else {
            return false;
        };
        self.lent.set(self.lent.get() + 1);
        f(&buf[..n]);
        true
    }
}

/// Fetches `file` as "f" over `world` (static address) through a [`Counting`] NIC: the
/// transfer, the data, frames (copied, lent), the world.
fn fetch_counted(
    world: World,
    file: &[u8],
    opts: Options,
) -> (kexboot_net::Transfer, Vec<u8>, (usize, usize), World) {
    let Network {
        world,
        nic,
        platform: mut p,
    } = Network::with_world(world);
    world.borrow_mut().add_file("f", file);
    let (copied, lent) = Default::default();
    let nic = Counting {
        inner: nic,
        copied: Rc::clone(&copied),
        lent: Rc::clone(&lent),
    };
    let mut stack = Stack::new(nic, p.now.get());
    stack.configure(CLIENT_IP, 24, Some(SERVER_IP));
    let req = TftpRequest {
        server: SERVER_IP,
        port: 69,
        file: "f",
        options: opts,
    };
    let mut dest = vec![0u8; file.len() + 4096];
    let t = stack
        .tftp_get(&mut p, &req, &mut dest, &mut |_| {})
        .unwrap_or_else(|e| panic!("{opts:?}: {e}"));
    dest.truncate(t.size);
    drop((stack, p));
    world.borrow_mut().settle();
    let w = Rc::try_unwrap(world).ok().unwrap().into_inner();
    (t, dest, (copied.get(), lent.get()), w)
}

/// After the OACK every frame of the transfer is taken by the fast path; before it, smoltcp.
#[test]
fn fast_path_carries_the_transfer() {
    let file = random_file(2 * MIB + 77, 60);
    for opts in [
        BIG,
        PLAIN,
        Options {
            windowsize: Some(64),
            ..BIG
        },
    ] {
        let (t, got, (copied, lent), _) =
            fetch_counted(World::new(60, 0.0, 0.0, false), &file, opts);
        assert!(got == file, "{opts:?}: data differs");
        assert_eq!(t.timeouts, 0);
        let blocks = file.len() / t.blksize + 1;
        // Through smoltcp: the ARP reply and the first reply (OACK or DATA 1).
        assert!(copied <= 3, "{opts:?}: {copied} frames copied");
        assert!(lent >= blocks - 1, "{opts:?}: {lent} frames lent");
    }
}

/// DATA damaged on the wire (payload, IPv4 header, UDP checksum field) is dropped by the fast
/// path, not written: the transfer completes right after the server sends it again.
#[test]
fn fast_path_drops_bad_checksums() {
    use smoltcp::wire::{ETHERNET_HEADER_LEN, IPV4_HEADER_LEN};
    let file = random_file(300_000, 61);
    let damage = [
        (5u16, usize::MAX),                                // last payload byte
        (40, ETHERNET_HEADER_LEN + 8),                     // TTL: IPv4 header checksum
        (77, ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + 7),   // UDP checksum field
        (150, ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + 20), // payload
    ];
    for opts in [
        BIG,
        Options {
            blksize: Some(1468),
            ..PLAIN
        },
    ] {
        let mut w = World::new(61, 0.0, 0.0, false);
        w.corrupt = damage.to_vec();
        let (t, got, (_, lent), w) = fetch_counted(w, &file, opts);
        assert_eq!(w.corrupted, damage.len(), "{opts:?}");
        assert!(got == file, "{opts:?}: a damaged block was written");
        assert!(lent > 100);
        if opts.windowsize.is_none() {
            // Lock-step: only the client's timeout brings the block back.
            assert_eq!(t.timeouts, damage.len() as u32);
        }
    }
}

/// Once the transfer is locked, a DATA from another port of the server or from another host
/// still gets ERROR 5 (smoltcp's path), and the transfer goes on untouched.
#[test]
fn fast_path_leaves_strangers_to_smoltcp() {
    let file = random_file(400_000, 62);
    let mut w = World::new(62, 0.0, 0.0, false);
    w.stranger_at = Some(6);
    let (t, got, (_, lent), w) = fetch_counted(w, &file, BIG);
    assert!(lent > 200, "fast path not taken");
    assert!(got == file, "a stranger's DATA was written");
    // The ERROR 5 to 10.0.2.3 needs ARP, which smoltcp's neighbour cache holds back for 1 s
    // after the ARP for the server (one rate limit for all addresses). The ACKs no longer queue
    // behind it in the socket (they go out through the fast path): no timeout.
    assert_eq!(t.timeouts, 0);
    let mut errs: Vec<(u16, Result<Packet, tftp::Error>)> = w
        .to_unknown_port
        .iter()
        .map(|(port, p)| (*port, Packet::parse(p)))
        .collect();
    errs.sort_by_key(|e| e.0);
    let e5 = Ok(Packet::Error {
        code: 5,
        message: "unknown transfer ID",
    });
    // The stranger on the server's host is answered at once; the one on 10.0.2.3 only if its
    // ARP was resolved before the transfer ended (best effort), and then with the same ERROR.
    assert!(errs.contains(&(31000, e5.clone())), "{errs:?}");
    assert!(
        errs.iter()
            .all(|e| e.1 == e5 && (e.0 == 30000 || e.0 == 31000)),
        "{errs:?}"
    );
}

/// An ARP request in the middle of a windowed transfer is answered, and no DATA frame around
/// it is lost or taken twice (no timeout, no re-ACK).
#[test]
fn fast_path_answers_arp_mid_transfer() {
    let file = random_file(MIB, 63);
    for at in [3, 10, 11] {
        let mut w = World::new(63, 0.0, 0.0, false);
        w.arp_probe_at = Some(at);
        let (t, got, _, w) = fetch_counted(w, &file, BIG);
        assert!(got == file);
        assert_eq!(
            w.arp_replies, 1,
            "ARP request at response {at} not answered"
        );
        assert_eq!(t.timeouts, 0);
        let s = &w.sessions[&30000];
        let blocks = (file.len() / 1468 + 1) as u64;
        assert_eq!(
            s.server.base,
            blocks + 1,
            "transfer not acknowledged to the end"
        );
    }
}
