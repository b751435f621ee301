//! Shared by the host tests: a seeded PRNG, a lossy link (seeded loss, duplication, reordering)
//! and a windowed in-process TFTP server (sans-I/O, RFC 1350/2347/2348/2349/7440), driven by the
//! packet-level simulation in `sim.rs` and the frame-level network in `stack.rs`.
#![allow(dead_code)]

use kexboot_net::tftp::Packet;

/// xorshift64* PRNG: deterministic per seed.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
}

/// A simulated link in both directions: each packet is lost, duplicated or delayed (reordered
/// by up to 3 ms of jitter) by a PRNG seeded per test, so every run is the same.
pub struct Link {
    rng: Rng,
    loss: f64,
    dup: f64,
    reorder: bool,
    delay_us: u64,
    seq: u64,
    /// (deliver at, sequence, to client, packet)
    queue: Vec<(u64, u64, bool, Vec<u8>)>,
    /// Packets offered, from the client [0] and to it [1].
    pub sent: [usize; 2],
    pub dropped: usize,
}

impl Link {
    pub fn new(seed: u64, loss: f64, dup: f64, reorder: bool, delay_us: u64) -> Self {
        Link {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            loss,
            dup,
            reorder,
            delay_us,
            seq: 0,
            queue: vec![],
            sent: [0; 2],
            dropped: 0,
        }
    }

    pub fn send(&mut self, now: u64, to_client: bool, p: Vec<u8>) {
        self.sent[to_client as usize] += 1;
        if self.rng.chance(self.loss) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let jitter = if self.reorder {
                self.rng.next() % 3000
            } else {
                0
            };
            self.seq += 1;
            self.queue
                .push((now + self.delay_us + jitter, self.seq, to_client, p.clone()));
        }
    }

    /// When the next packet arrives, if one is under way.
    pub fn next_at(&self) -> Option<u64> {
        self.queue.iter().map(|e| e.0).min()
    }

    /// The packets arrived by `now`, in order: (to client, packet).
    pub fn take_due(&mut self, now: u64) -> Vec<(bool, Vec<u8>)> {
        self.queue.sort_by_key(|e| (e.0, e.1));
        let n = self.queue.iter().take_while(|e| e.0 <= now).count();
        self.queue.drain(..n).map(|e| (e.2, e.3)).collect()
    }
}

pub fn random_file(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..len).map(|_| r.next() as u8).collect()
}

/// A windowed TFTP server (RFC 1350/2347/2348/2349/7440), sans-I/O like the client.
pub struct Server {
    pub file: Vec<u8>,
    pub honour_options: bool,
    pub max_window: u16,
    pub blksize: usize,
    pub window: u64,
    /// First unacknowledged block (absolute).
    pub base: u64,
    pub total: u64,
    pub oack: Option<Vec<u8>>,
    pub last_send: u64,
    pub retries: u32,
    pub rto: u64,
    pub silent: bool,
    /// Panic when the client stops answering (sim.rs); otherwise give up quietly.
    pub strict: bool,
    /// The client sent ERROR (code, message): the session is over.
    pub aborted: Option<(u16, String)>,
}

impl Server {
    pub fn new(file: Vec<u8>, honour_options: bool, max_window: u16) -> Self {
        Server {
            file,
            honour_options,
            max_window,
            blksize: 512,
            window: 1,
            base: 1,
            total: 0,
            oack: None,
            last_send: 0,
            retries: 0,
            rto: 1_000_000,
            silent: false,
            strict: true,
            aborted: None,
        }
    }

    fn block(&self, n: u64) -> Vec<u8> {
        let start = ((n - 1) as usize * self.blksize).min(self.file.len());
        let end = (start + self.blksize).min(self.file.len());
        Packet::Data {
            block: (n & 0xffff) as u16,
            data: &self.file[start..end],
        }
        .emit()
    }

    fn send_window(&mut self, now: u64) -> Vec<Vec<u8>> {
        self.last_send = now;
        if let Some(o) = &self.oack {
            return vec![o.clone()];
        }
        let last = (self.base + self.window - 1).min(self.total);
        (self.base..=last).map(|n| self.block(n)).collect()
    }

    pub fn on_packet(&mut self, pkt: &[u8], now: u64) -> Vec<Vec<u8>> {
        if self.silent {
            if let Ok(Packet::Error { code, message }) = Packet::parse(pkt) {
                self.aborted = Some((code, message.to_string()));
            }
            return vec![];
        }
        match Packet::parse(pkt).expect("client sent a malformed packet") {
            Packet::Rrq { mode, options, .. } => {
                assert_eq!(mode, "octet");
                let mut granted: Vec<(String, String)> = vec![];
                for (n, v) in options.iter().filter(|_| self.honour_options) {
                    let v: u64 = v.parse().unwrap();
                    let g = match *n {
                        "blksize" => {
                            self.blksize = v.min(1468) as usize;
                            self.blksize as u64
                        }
                        "windowsize" => {
                            self.window = v.min(self.max_window as u64);
                            self.window
                        }
                        "tsize" => self.file.len() as u64,
                        "timeout" => {
                            self.rto = v * 1_000_000;
                            v
                        }
                        other => panic!("unknown option {other}"),
                    };
                    granted.push((n.to_string(), g.to_string()));
                }
                self.total = (self.file.len() / self.blksize) as u64 + 1;
                self.base = 1;
                if !granted.is_empty() {
                    let opts = granted
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect();
                    self.oack = Some(Packet::Oack { options: opts }.emit());
                }
                self.send_window(now)
            }
            Packet::Ack { block } => {
                if self.oack.is_some() {
                    if block != 0 {
                        return vec![];
                    }
                    self.oack = None;
                    self.retries = 0;
                    return self.send_window(now);
                }
                // Map the 16-bit block number into [base - 1, base - 1 + window].
                let off = block.wrapping_sub(((self.base - 1) & 0xffff) as u16) as u64;
                if off > self.window || self.base > self.total {
                    return vec![];
                }
                if off == 0 && now.saturating_sub(self.last_send) < 50_000 {
                    return vec![]; // duplicate ACK right after a send: let the timer decide
                }
                self.base += off;
                self.retries = 0;
                if self.base > self.total {
                    return vec![];
                }
                self.send_window(now)
            }
            Packet::Error { code, message } => {
                self.aborted = Some((code, message.to_string()));
                self.silent = true;
                vec![]
            }
            other => panic!("client sent {other:?}"),
        }
    }

    pub fn deadline(&self) -> Option<u64> {
        (!self.silent && self.total != 0 && self.base <= self.total)
            .then_some(self.last_send + self.rto)
    }

    pub fn on_tick(&mut self, now: u64) -> Vec<Vec<u8>> {
        if self.deadline().is_none_or(|d| now < d) {
            return vec![];
        }
        self.retries += 1;
        if self.retries >= 50 {
            assert!(!self.strict, "server gave up");
            self.silent = true;
            return vec![];
        }
        self.send_window(now)
    }
}
