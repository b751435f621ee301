//! A windowed in-process TFTP server (sans-I/O, RFC 1350/2347/2348/2349/7440): driven packet by
//! packet by `net/tests/sim.rs`, and one per transfer ID by the frame-level [`crate::World`].

use kexboot_net::tftp::Packet;

/// Resends after which a session gives up on the client.
pub const GIVE_UP_RETRIES: u32 = 50;

/// A windowed TFTP server (RFC 1350/2347/2348/2349/7440), sans-I/O like the client.
pub struct Server {
    /// The file served.
    pub file: Vec<u8>,
    /// Grant the options a client asks for (an OACK); otherwise answer an RRQ with DATA.
    pub honour_options: bool,
    /// The largest window size granted.
    pub max_window: u16,
    /// Block size in force (512 until an option changes it).
    pub blksize: usize,
    /// Window size in force (1 until an option changes it).
    pub window: u64,
    /// First unacknowledged block (absolute).
    pub base: u64,
    /// Number of blocks in the file (the last one short, possibly empty).
    pub total: u64,
    /// The OACK sent and not yet acknowledged with ACK 0.
    pub oack: Option<Vec<u8>>,
    /// When the last window (or OACK) was sent.
    pub last_send: u64,
    /// Resends since the last progress.
    pub retries: u32,
    /// Retransmission timeout in µs (1 s, or the client's `timeout` option).
    pub rto: u64,
    /// Answers nothing (set to simulate a dead server, or after the client's ERROR).
    pub silent: bool,
    /// Panic when the client stops answering (sim.rs); otherwise give up quietly.
    pub strict: bool,
    /// The client sent ERROR (code, message): the session is over.
    pub aborted: Option<(u16, String)>,
}

impl Server {
    /// A server for `file` that grants options when `honour_options`, windows up to
    /// `max_window`; `strict`, not silent.
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

    /// Handles a packet from the client at `now`; returns the packets to send back. Panics on a
    /// malformed packet or one a correct client never sends (this is a test of the client).
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

    /// When the server resends if nothing comes; `None` when it waits for nothing.
    pub fn deadline(&self) -> Option<u64> {
        (!self.silent && self.total != 0 && self.base <= self.total)
            .then_some(self.last_send + self.rto)
    }

    /// Resends the window (or OACK) once the deadline has passed; gives up after
    /// [`GIVE_UP_RETRIES`] resends.
    pub fn on_tick(&mut self, now: u64) -> Vec<Vec<u8>> {
        if self.deadline().is_none_or(|d| now < d) {
            return vec![];
        }
        self.retries += 1;
        if self.retries >= GIVE_UP_RETRIES {
            assert!(!self.strict, "server gave up");
            self.silent = true;
            return vec![];
        }
        self.send_window(now)
    }
}
