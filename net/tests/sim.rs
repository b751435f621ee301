//! Host tests: the TFTP client against an in-process TFTP server over a simulated link with
//! seeded, deterministic loss, duplication and reordering. Time is simulated (microseconds).

use kexboot_net::tftp::{Action, Client, Error, Options, Packet};
use kexboot_testnet::{random_file, Link, Server, PLAIN};

/// Link impairments: loss probability, duplication probability, reordering.
struct Net(f64, f64, bool);

struct Outcome {
    result: Result<usize, Error>,
    dest: Vec<u8>,
    /// Simulated time at the end of the transfer.
    elapsed_us: u64,
    client_sent: usize,
    dropped: usize,
    file: Vec<u8>,
}

fn run(
    file_len: usize,
    dest_len: usize,
    opts: Options,
    seed: u64,
    Net(loss, dup, reorder): Net,
    server: impl FnOnce(Vec<u8>) -> Server,
) -> Outcome {
    let file = random_file(file_len, seed);
    let mut srv = server(file.clone());
    let mut link = Link::new(seed, loss, dup, reorder, 500);
    let mut dest = vec![0u8; dest_len];
    let mut c = Client::new("boot/Image", opts, dest_len).unwrap();
    let mut now = 0u64;
    link.send(now, false, c.start(now));
    let result = 'run: loop {
        let next = [link.next_at(), c.deadline(), srv.deadline()]
            .into_iter()
            .flatten()
            .filter(|&t| t >= now)
            .min();
        now = next.unwrap_or(now + 1_000_000).max(now);
        assert!(now < 100_000_000_000, "simulation ran away");
        for (to_client, p) in link.take_due(now) {
            if to_client {
                match c.on_packet(&p, now, &mut dest) {
                    Ok(Action::Send(a)) => link.send(now, false, a),
                    Ok(Action::Wait) => {}
                    Ok(Action::Done { size, ack }) => {
                        link.send(now, false, ack);
                        break 'run Ok(size);
                    }
                    Err(e) if e.is_fatal() => break 'run Err(e),
                    Err(e) => panic!("well-formed server packet rejected: {e}"),
                }
            } else {
                for r in srv.on_packet(&p, now) {
                    link.send(now, true, r);
                }
            }
        }
        match c.on_tick(now) {
            Ok(Action::Send(a)) => link.send(now, false, a),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        for r in srv.on_tick(now) {
            link.send(now, true, r);
        }
    };
    Outcome {
        result,
        dest,
        elapsed_us: now,
        client_sent: link.sent[0],
        dropped: link.dropped,
        file,
    }
}

const MIB: usize = 1 << 20;

fn check(
    file_len: usize,
    opts: Options,
    seed: u64,
    loss: f64,
    dup: f64,
    reorder: bool,
    max_window: u16,
) -> Outcome {
    let o = run(
        file_len,
        file_len + 4096,
        opts,
        seed,
        Net(loss, dup, reorder),
        |f| Server::new(f, true, max_window),
    );
    assert_eq!(o.result, Ok(file_len), "opts {opts:?} loss {loss}");
    if file_len >= 100_000 {
        assert_eq!(
            loss > 0.0,
            o.dropped > 20,
            "loss {loss}: {} dropped",
            o.dropped
        );
    }
    assert!(
        o.dest[..file_len] == o.file[..],
        "data mismatch, opts {opts:?} loss {loss}"
    );
    assert!(o.dest[file_len..].iter().all(|&b| b == 0));
    o
}

const BIG: Options = Options {
    blksize: Some(1468),
    tsize: true,
    timeout: Some(1),
    windowsize: Some(16),
};

#[test]
fn one_mib_no_loss() {
    let o = check(MIB, PLAIN, 1, 0.0, 0.0, false, 64);
    assert_eq!(
        o.client_sent,
        MIB / 512 + 2,
        "one RRQ and one ACK per block"
    );
    let o = check(MIB, BIG, 2, 0.0, 0.0, false, 64);
    // Windowed: about one ACK per 16 blocks.
    assert!(
        o.client_sent < MIB / 1468 / 8,
        "{} packets sent",
        o.client_sent
    );
}

#[test]
fn one_mib_5_percent_loss() {
    check(MIB, PLAIN, 3, 0.05, 0.0, false, 64);
    check(MIB, BIG, 4, 0.05, 0.0, false, 64);
    check(
        MIB,
        Options {
            windowsize: Some(8),
            ..PLAIN
        },
        5,
        0.05,
        0.02,
        true,
        64,
    );
}

/// A gap in a window is re-ACKed at once, so the server resends from there without waiting for
/// a timeout: 1 MiB at 5% loss with window 16 takes a few simulated seconds (waiting a 1 s
/// timeout per loss, as a client that re-ACKs only on its timer does, takes tens of seconds).
#[test]
fn gap_recovery_does_not_wait_for_timeouts() {
    let mut worst = 0;
    for seed in 40..45 {
        let o = check(MIB, BIG, seed, 0.05, 0.0, false, 16);
        worst = worst.max(o.elapsed_us);
    }
    eprintln!("worst of 5 seeds: {worst} us");
    assert!(worst < 8_000_000, "1 MiB at 5% loss took {worst} us");
}

#[test]
fn one_mib_20_percent_loss_dup_reorder() {
    check(MIB, PLAIN, 6, 0.20, 0.05, true, 64);
    check(MIB, BIG, 7, 0.20, 0.05, true, 64);
    check(
        MIB,
        Options {
            blksize: Some(1024),
            ..PLAIN
        },
        8,
        0.20,
        0.0,
        false,
        64,
    );
}

#[test]
fn many_seeds_small_files() {
    for seed in 10..40 {
        let len = (seed as usize * 7919) % 20000;
        let opts = if seed % 2 == 0 {
            BIG
        } else {
            Options {
                windowsize: Some(4),
                ..PLAIN
            }
        };
        check(
            len,
            opts,
            seed,
            0.1 + (seed % 3) as f64 * 0.05,
            0.05,
            seed % 3 != 0,
            8,
        );
    }
}

#[test]
fn exact_multiple_of_blksize_ends_with_empty_block() {
    check(512 * 40, PLAIN, 41, 0.0, 0.0, false, 8);
    check(1468 * 40, BIG, 42, 0.1, 0.0, true, 8);
}

#[test]
fn block_number_wraps() {
    // blksize 8: 70000 blocks, past 65535.
    check(
        8 * 70_000 + 3,
        Options {
            blksize: Some(8),
            windowsize: Some(32),
            ..PLAIN
        },
        43,
        0.01,
        0.0,
        false,
        32,
    );
}

#[test]
fn server_without_options_uses_defaults() {
    let o = run(10_000, 20_000, BIG, 44, Net(0.05, 0.0, false), |f| {
        Server::new(f, false, 1)
    });
    assert_eq!(o.result, Ok(10_000));
    assert!(o.dest[..10_000] == o.file[..]);
}

#[test]
fn window_adapts_to_loss_within_grant() {
    let mut dest = vec![0u8; MIB];
    let mut c = Client::new(
        "f",
        Options {
            windowsize: Some(8),
            ..PLAIN
        },
        MIB,
    )
    .unwrap();
    c.start(0);
    c.on_packet(
        &Packet::Oack {
            options: vec![("windowsize", "8")],
        }
        .emit(),
        1,
        &mut dest,
    )
    .unwrap();
    assert_eq!(c.window(), (8, 8));
    let t = c.deadline().unwrap();
    assert!(matches!(c.on_tick(t), Ok(Action::Send(_))));
    assert_eq!(c.window().0, 4);
    assert!(matches!(
        c.on_tick(c.deadline().unwrap()),
        Ok(Action::Send(_))
    ));
    assert_eq!(c.window().0, 2);
    // Clean windows grow it back by one each, capped at the grant.
    let mut block = 1u16;
    let mut sizes = vec![];
    for _ in 0..12 {
        loop {
            let a = c
                .on_packet(
                    &Packet::Data {
                        block,
                        data: &[0; 512],
                    }
                    .emit(),
                    10_000_000,
                    &mut dest,
                )
                .unwrap();
            block += 1;
            if matches!(a, Action::Send(_)) {
                break;
            }
        }
        sizes.push(c.window().0);
    }
    assert_eq!(sizes, [2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8, 8]);
}

#[test]
fn silent_server_times_out() {
    let o = run(10_000, 20_000, BIG, 45, Net(0.0, 0.0, false), |f| Server {
        silent: true,
        ..Server::new(f, true, 8)
    });
    assert!(
        matches!(o.result, Err(Error::Timeout { .. })),
        "{:?}",
        o.result.err()
    );
    assert!(o.client_sent <= 1 + kexboot_net::tftp::MAX_RETRIES as usize);
}

#[test]
fn file_larger_than_destination() {
    // With tsize: refused at the OACK, nothing written.
    let o = run(5000, 3000, BIG, 46, Net(0.0, 0.0, false), |f| {
        Server::new(f, true, 8)
    });
    assert_eq!(
        o.result,
        Err(Error::TooLarge {
            size: 5000,
            capacity: 3000
        })
    );
    assert!(o.dest.iter().all(|&b| b == 0));
    // Without tsize: refused at the first block that would overflow; earlier blocks written.
    let o = run(5000, 3000, PLAIN, 47, Net(0.0, 0.0, false), |f| {
        Server::new(f, true, 8)
    });
    assert_eq!(
        o.result,
        Err(Error::TooLarge {
            size: 3072,
            capacity: 3000
        })
    );
    assert!(o.dest[..2560] == o.file[..2560]);
    assert!(o.dest[2560..].iter().all(|&b| b == 0));
}
