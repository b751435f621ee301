//! A seeded PRNG and a simulated lossy link: every run with the same seed is the same.

/// Largest extra delay a reordering link adds to a packet.
const MAX_JITTER_US: u64 = 3000;

/// xorshift64* PRNG: deterministic per seed. The state must not be 0.
pub struct Rng(pub u64);
impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// True with probability `p` (0.0 never, 1.0 always).
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
}

/// A simulated link in both directions: each packet is lost, duplicated or delayed (reordered
/// by up to [`MAX_JITTER_US`] of jitter) by a PRNG seeded per test, so every run is the same.
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
    /// Packets lost on the way (either direction).
    pub dropped: usize,
}

impl Link {
    /// A link that loses a packet with probability `loss`, delivers it twice with probability
    /// `dup`, adds random jitter when `reorder`, and otherwise delivers after `delay_us`.
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

    /// Offers packet `p` to the link at time `now`, towards the client or away from it.
    pub fn send(&mut self, now: u64, to_client: bool, p: Vec<u8>) {
        self.sent[to_client as usize] += 1;
        if self.rng.chance(self.loss) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let jitter = if self.reorder {
                self.rng.next_u64() % MAX_JITTER_US
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

/// `len` bytes of seeded random content.
pub fn random_file(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..len).map(|_| r.next_u64() as u8).collect()
}
