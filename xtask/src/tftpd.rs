//! The project's own TFTP test server (std, one thread per transfer): read-only RRQ service of one
//! root directory with RFC 2347 option negotiation (`blksize`, `tsize`, `timeout`, RFC 7440
//! `windowsize`), seeded deterministic loss injection, a silent mode, and per-transfer statistics.
//!
//! QEMU's user networking (slirp) answers guest UDP to 10.0.2.2:69 with its own TFTP server (an
//! "Access violation" without `tftp=`), but forwards guest UDP to 127.0.0.1 to the host's
//! loopback: the netboot cases and the bench bind 127.0.0.1:69 (we run as root) and name it to
//! the guest in DHCP option 66 (`tftp-server-name=127.0.0.1`) or `setenv serverip 127.0.0.1`.
//! Unit tests bind an ephemeral port.

use crate::util::{err, Result};
use kexboot_net::tftp::code::{
    ACCESS_VIOLATION as E_ACCESS, FILE_NOT_FOUND as E_NOT_FOUND, ILLEGAL as E_ILLEGAL,
    UNDEFINED as E_UNDEFINED, UNKNOWN_TID as E_UNKNOWN_TID,
};
use kexboot_net::tftp::{Packet, MAX_BLKSIZE, MIN_BLKSIZE, OP_ERROR, OP_RRQ, OP_WRQ};
use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// RFC 2348 limits of the `blksize` option.
const BLKSIZE_MIN: u64 = MIN_BLKSIZE as u64;
const BLKSIZE_MAX: u64 = MAX_BLKSIZE as u64;
/// Largest request or ACK we read; RRQs with options fit easily.
const MAX_REQUEST: usize = 1024;
/// Transfers running at once; further requests get an ERROR.
const MAX_ACTIVE: usize = 64;
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// What the server serves and how badly it behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The directory served (read-only).
    pub root: PathBuf,
    /// Where to listen: 127.0.0.1:69 for QEMU's user networking.
    pub addr: SocketAddr,
    /// Largest block granted: 1468 keeps a DATA packet inside one Ethernet frame through slirp.
    pub max_blksize: u16,
    /// Largest window granted.
    pub window_cap: u16,
    /// Retransmission timeout; `None`: the client's `timeout` option, else 1 s.
    pub rto: Option<Duration>,
    /// Retransmissions of one window (or OACK) without progress before the transfer is given up.
    pub retries: u32,
    /// Probability of dropping each outgoing DATA/OACK and each incoming ACK (0.0..=1.0).
    pub loss: f64,
    /// Seed of the loss pattern; each transfer derives its own from it and the file name.
    pub seed: u64,
    /// Answer nothing at all (requests are only recorded).
    pub silent: bool,
}

impl Config {
    /// Serves `root` on 127.0.0.1:69, no loss, window up to 64, blksize up to 1468.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Config {
            root: root.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 69)),
            max_blksize: 1468,
            window_cap: 64,
            rto: None,
            retries: 6,
            loss: 0.0,
            seed: 0x6b65_7862_6f6f_7421,
            silent: false,
        }
    }
}

/// Figures of one finished (or abandoned) transfer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// The file name as requested.
    pub file: String,
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// Bytes the client acknowledged.
    pub bytes: u64,
    /// Size of the file served (0 when it could not be opened).
    pub size: u64,
    /// Negotiated block size (512 without the option).
    pub blksize: u16,
    /// Negotiated window (1 without the option).
    pub windowsize: u16,
    /// Whether the client asked for `tsize`.
    pub tsize_asked: bool,
    /// From the request to the final ACK (or to giving up).
    pub duration: Duration,
    /// Packets the loss injection dropped (outgoing DATA/OACK plus incoming ACKs).
    pub dropped: u64,
    /// DATA/OACK packets sent again.
    pub retransmits: u64,
    /// Retransmission timeouts that fired.
    pub timeouts: u32,
    /// The final block was acknowledged.
    pub completed: bool,
    /// Why not, when not.
    pub error: Option<String>,
}

impl Stats {
    /// Throughput in MB/s (10^6 bytes per second), RRQ to final ACK.
    pub fn mbps(&self) -> f64 {
        let s = self.duration.as_secs_f64();
        if s > 0.0 {
            self.bytes as f64 / 1e6 / s
        } else {
            0.0
        }
    }
}

/// State shared by the listener and the transfer threads.
struct Shared {
    cfg: Config,
    stop: AtomicBool,
    active: AtomicUsize,
    stats: Mutex<Vec<Stats>>,
    /// (client, file) pairs still negotiating: a repeated RRQ for them is not a new transfer.
    pending: Mutex<HashSet<(SocketAddr, String)>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// A running server; [`Server::stop`] or dropping it ends every thread.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `cfg.addr` and starts serving `cfg.root`.
    pub fn start(cfg: Config) -> Result<Server> {
        if !cfg.root.is_dir() {
            return Err(err!(
                "tftpd: root {} is not a directory",
                cfg.root.display()
            ));
        }
        if !(0.0..=1.0).contains(&cfg.loss) {
            return Err(err!("tftpd: loss {} is not a probability", cfg.loss));
        }
        let sock = UdpSocket::bind(cfg.addr).map_err(|e| {
            err!(
                "tftpd: cannot bind UDP {} (port {} must be free, and binding a port below 1024 \
                 needs root): {e}",
                cfg.addr,
                cfg.addr.port()
            )
        })?;
        let addr = sock.local_addr()?;
        sock.set_read_timeout(Some(POLL))?;
        let shared = Arc::new(Shared {
            cfg,
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            stats: Mutex::new(Vec::new()),
            pending: Mutex::new(HashSet::new()),
            workers: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let listener = std::thread::Builder::new()
            .name("tftpd".into())
            .spawn(move || listen(&sh, &sock))?;
        Ok(Server {
            addr,
            shared,
            listener: Some(listener),
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Statistics of every transfer that has ended, in the order they ended.
    pub fn transfers(&self) -> Vec<Stats> {
        lock(&self.shared.stats).clone()
    }

    /// Waits until no transfer is running (true) or `timeout` passed (false).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.shared.active.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Ends the listener and every transfer.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for h in workers {
            let _ = h.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Locks a mutex, also after a thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// xorshift64*: a small deterministic generator for the loss pattern.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, file: &str) -> Self {
        // FNV-1a over the name, mixed with the seed; never 0 (xorshift's fixed point).
        let h = file.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng((seed ^ h.rotate_left(17)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// An ERROR packet.
fn error_packet(code: u16, message: &str) -> Vec<u8> {
    Packet::Error { code, message }.emit()
}

/// A parsed read request.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    file: String,
    /// (name lower-cased, value) in request order.
    options: Vec<(String, String)>,
}

/// Why a request is refused: TFTP error code and message.
type Refusal = (u16, String);

/// Parses an RRQ (through `kexboot_net`'s wire format) and refuses WRQs and everything else.
fn parse_request(pkt: &[u8]) -> std::result::Result<Request, Refusal> {
    if pkt.get(..2) == Some(&OP_WRQ.to_be_bytes()[..]) {
        return Err((E_ACCESS, "read-only server: write requests refused".into()));
    }
    let (filename, mode, options) = match Packet::parse(pkt) {
        Ok(Packet::Rrq {
            filename,
            mode,
            options,
        }) => (filename, mode, options),
        Ok(p) => {
            return Err((
                E_ILLEGAL,
                format!("opcode {}, expected a read request ({OP_RRQ})", p.opcode()),
            ))
        }
        Err(e) => return Err((E_ILLEGAL, e.to_string())),
    };
    let lower = mode.to_ascii_lowercase();
    if lower != "octet" && lower != "netascii" {
        return Err((
            E_ILLEGAL,
            format!("mode {mode:?}, expected octet or netascii"),
        ));
    }
    Ok(Request {
        file: filename.to_string(),
        options: options
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect(),
    })
}

/// Maps a requested name into `root`: a leading `/` means the root (like tftpd-hpa `-s`), `..`
/// is refused, and the result must stay inside the root after symlinks are resolved.
fn resolve(root: &Path, name: &str) -> std::result::Result<PathBuf, Refusal> {
    let mut p = root.to_path_buf();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err((E_ACCESS, format!("{name}: '..' is not allowed"))),
            s if Path::new(s).components().count() != 1
                || !matches!(Path::new(s).components().next(), Some(Component::Normal(_))) =>
            {
                return Err((E_ACCESS, format!("{name}: bad path component {s:?}")))
            }
            s => p.push(s),
        }
    }
    let not_found = || (E_NOT_FOUND, format!("{name}: file not found"));
    let real = p.canonicalize().map_err(|_| not_found())?;
    let real_root = root.canonicalize().map_err(|_| not_found())?;
    if !real.starts_with(&real_root) {
        return Err((E_ACCESS, format!("{name}: outside the served directory")));
    }
    if !real.is_file() {
        return Err(not_found());
    }
    Ok(real)
}

/// Negotiated parameters of one transfer.
#[derive(Debug, PartialEq, Eq)]
struct Negotiated {
    blksize: u16,
    window: u16,
    rto: Duration,
    tsize_asked: bool,
    /// The OACK's option pairs; empty: no OACK, DATA 1 straight away.
    oack: Vec<(String, String)>,
}

/// RFC 2347: acknowledge only the options asked for and understood, within our limits.
fn negotiate(cfg: &Config, req: &Request, size: u64) -> Negotiated {
    let mut n = Negotiated {
        blksize: 512,
        window: 1,
        rto: cfg.rto.unwrap_or(Duration::from_secs(1)),
        tsize_asked: false,
        oack: Vec::new(),
    };
    for (name, value) in &req.options {
        if n.oack.iter().any(|(o, _)| o == name) {
            continue;
        }
        let Ok(v) = value.parse::<u64>() else {
            continue;
        };
        let granted = match name.as_str() {
            "blksize" if (BLKSIZE_MIN..=BLKSIZE_MAX).contains(&v) => {
                n.blksize = v.min(u64::from(cfg.max_blksize)).max(BLKSIZE_MIN) as u16;
                n.blksize.to_string()
            }
            "tsize" => {
                n.tsize_asked = true;
                size.to_string()
            }
            "timeout" if (1..=255).contains(&v) => {
                if cfg.rto.is_none() {
                    n.rto = Duration::from_secs(v);
                }
                v.to_string()
            }
            "windowsize" if (1..=65535).contains(&v) => {
                n.window = v.min(u64::from(cfg.window_cap.max(1))) as u16;
                n.window.to_string()
            }
            _ => continue,
        };
        n.oack.push((name.clone(), granted));
    }
    n
}

fn oack_packet(opts: &[(String, String)]) -> Vec<u8> {
    Packet::Oack {
        options: opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
    }
    .emit()
}

/// The listener: answers requests on the well-known port, one thread per accepted transfer.
fn listen(sh: &Arc<Shared>, sock: &UdpSocket) {
    let mut buf = [0u8; MAX_REQUEST];
    while !sh.stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let t0 = Instant::now();
        let pkt = &buf[..n];
        if pkt.get(..2) == Some(&OP_ERROR.to_be_bytes()[..]) {
            continue;
        }
        let req = parse_request(pkt);
        if sh.cfg.silent {
            lock(&sh.stats).push(Stats {
                file: req.map(|r| r.file).unwrap_or_default(),
                client: Some(peer),
                error: Some("silent: request not answered".into()),
                ..Stats::default()
            });
            continue;
        }
        let req = match req {
            Ok(r) => r,
            Err((code, msg)) => {
                let _ = sock.send_to(&error_packet(code, &msg), peer);
                continue;
            }
        };
        let key = (peer, req.file.clone());
        if !lock(&sh.pending).insert(key.clone()) {
            // A retransmitted RRQ: the transfer already running answers it on its own timer.
            continue;
        }
        if sh.active.load(Ordering::SeqCst) >= MAX_ACTIVE {
            lock(&sh.pending).remove(&key);
            let _ = sock.send_to(&error_packet(E_UNDEFINED, "server busy"), peer);
            continue;
        }
        sh.active.fetch_add(1, Ordering::SeqCst);
        let sh2 = sh.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tftpd {}", req.file))
            .spawn(move || {
                let st = transfer(&sh2, peer, &req, t0);
                lock(&sh2.pending).remove(&(peer, req.file.clone()));
                lock(&sh2.stats).push(st);
                sh2.active.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(h) => {
                let mut w = lock(&sh.workers);
                w.retain(|h| !h.is_finished());
                w.push(h);
            }
            Err(_) => {
                sh.active.fetch_sub(1, Ordering::SeqCst);
                lock(&sh.pending).remove(&key);
            }
        }
    }
}

/// One transfer on its own socket (new TID).
fn transfer(sh: &Shared, peer: SocketAddr, req: &Request, t0: Instant) -> Stats {
    let mut st = Stats {
        file: req.file.clone(),
        client: Some(peer),
        blksize: 512,
        windowsize: 1,
        ..Stats::default()
    };
    let res = run_transfer(sh, peer, req, t0, &mut st);
    st.duration = t0.elapsed();
    if let Err(e) = res {
        st.error = Some(e);
    }
    st
}

/// The transfer's socket and loss pattern.
struct Link<'a> {
    sock: UdpSocket,
    peer: SocketAddr,
    rng: Rng,
    loss: f64,
    stop: &'a AtomicBool,
}

/// What the peer sent.
enum Incoming {
    Ack(u16),
    Error(String),
}

impl Link<'_> {
    /// Sends `pkt` unless the loss injection drops it.
    fn send(&mut self, pkt: &[u8], st: &mut Stats) {
        if self.rng.chance(self.loss) {
            st.dropped += 1;
        } else {
            let _ = self.sock.send_to(pkt, self.peer);
        }
    }

    /// Waits until `deadline` for an ACK or ERROR from the peer; None on timeout or stop.
    fn recv(&mut self, deadline: Instant, st: &mut Stats) -> Option<Incoming> {
        let mut buf = [0u8; MAX_REQUEST];
        loop {
            let now = Instant::now();
            if now >= deadline || self.stop.load(Ordering::SeqCst) {
                return None;
            }
            let wait = (deadline - now).min(POLL).max(Duration::from_millis(1));
            let _ = self.sock.set_read_timeout(Some(wait));
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            if from != self.peer {
                let e = error_packet(E_UNKNOWN_TID, "unknown transfer ID");
                let _ = self.sock.send_to(&e, from);
                continue;
            }
            match Packet::parse(&buf[..n]) {
                Ok(Packet::Ack { block }) => {
                    if self.rng.chance(self.loss) {
                        st.dropped += 1;
                        continue;
                    }
                    return Some(Incoming::Ack(block));
                }
                Ok(Packet::Error { code, message }) => {
                    return Some(Incoming::Error(format!("client error {code}: {message}")));
                }
                _ => {
                    let e = error_packet(E_ILLEGAL, "expected ACK");
                    let _ = self.sock.send_to(&e, from);
                }
            }
        }
    }
}

fn run_transfer(
    sh: &Shared,
    peer: SocketAddr,
    req: &Request,
    t0: Instant,
    st: &mut Stats,
) -> std::result::Result<(), String> {
    let cfg = &sh.cfg;
    let sock = UdpSocket::bind(SocketAddr::new(cfg.addr.ip(), 0))
        .map_err(|e| format!("cannot bind a transfer socket: {e}"))?;
    let mut link = Link {
        sock,
        peer,
        rng: Rng::new(cfg.seed, &req.file),
        loss: cfg.loss,
        stop: &sh.stop,
    };
    let data = resolve(&cfg.root, &req.file)
        .and_then(|p| std::fs::read(&p).map_err(|e| (E_NOT_FOUND, format!("{}: {e}", req.file))));
    let data = match data {
        Ok(d) => d,
        Err((code, msg)) => {
            let _ = link.sock.send_to(&error_packet(code, &msg), peer);
            return Err(msg);
        }
    };
    st.size = data.len() as u64;
    let neg = negotiate(cfg, req, st.size);
    st.blksize = neg.blksize;
    st.windowsize = neg.window;
    st.tsize_asked = neg.tsize_asked;

    // Option acknowledgement: OACK until ACK 0.
    if !neg.oack.is_empty() {
        let oack = oack_packet(&neg.oack);
        let mut tries = 0u32;
        loop {
            if tries > 0 {
                st.retransmits += 1;
            }
            link.send(&oack, st);
            let deadline = Instant::now() + neg.rto;
            let acked = loop {
                match link.recv(deadline, st) {
                    Some(Incoming::Ack(0)) => break true,
                    Some(Incoming::Ack(_)) => {}
                    Some(Incoming::Error(e)) => return Err(e),
                    None => break false,
                }
            };
            if acked {
                break;
            }
            if sh.stop.load(Ordering::SeqCst) {
                return Err("server stopped".into());
            }
            st.timeouts += 1;
            tries += 1;
            if tries > cfg.retries {
                return Err(format!(
                    "no ACK of the OACK after {} retransmissions",
                    cfg.retries
                ));
            }
        }
    }

    // Windowed DATA (RFC 7440): blocks are numbered from 1 (absolute, u64), sent as u16 and
    // wrapping past 65535 to 0. A file of a multiple of blksize ends with an empty block.
    let bs = usize::from(neg.blksize);
    let last = data.len() as u64 / bs as u64 + 1;
    let window = u64::from(neg.window);
    let (mut base, mut next, mut highest_sent) = (1u64, 1u64, 0u64);
    let mut retries = 0u32;
    let mut deadline = Instant::now();
    loop {
        if next == base {
            // (Re)starting a window: the timer runs from here.
            deadline = Instant::now() + neg.rto;
        }
        while next < base + window && next <= last {
            let off = ((next - 1) * bs as u64) as usize;
            let chunk = data
                .get(off..(off + bs).min(data.len()))
                .unwrap_or_default();
            // Block numbers wrap past 65535 (RFC 7440 windows over large files).
            let pkt = Packet::Data {
                block: next as u16,
                data: chunk,
            }
            .emit();
            if next <= highest_sent {
                st.retransmits += 1;
            }
            highest_sent = highest_sent.max(next);
            link.send(&pkt, st);
            next += 1;
        }
        match link.recv(deadline, st) {
            Some(Incoming::Ack(b)) => {
                // The one block in [base - 1, next - 1] with these low 16 bits, if any.
                let off = u64::from(b.wrapping_sub((base - 1) as u16));
                let acked = base - 1 + off;
                if off == 0 || acked > next - 1 {
                    // A duplicate or an old ACK: ignored (no sorcerer's apprentice).
                    continue;
                }
                st.bytes = (acked * bs as u64).min(st.size);
                retries = 0;
                base = acked + 1;
                if base > last {
                    st.completed = true;
                    st.duration = t0.elapsed();
                    return Ok(());
                }
                // The client acknowledged up to `acked`: the next window starts right after it
                // (blocks already sent beyond a gap are sent again).
                next = base;
            }
            Some(Incoming::Error(e)) => return Err(e),
            None => {
                if sh.stop.load(Ordering::SeqCst) {
                    return Err("server stopped".into());
                }
                st.timeouts += 1;
                retries += 1;
                if retries > cfg.retries {
                    return Err(format!(
                        "no ACK after block {} ({} retransmissions)",
                        base - 1,
                        cfg.retries
                    ));
                }
                next = base;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch root with a few files; removed on drop.
    struct Root(PathBuf);

    impl Root {
        fn new(tag: &str) -> Root {
            let d = std::env::temp_dir().join(format!("xtask-tftpd-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(d.join("sub")).unwrap();
            Root(d)
        }
        fn put(&self, name: &str, data: &[u8]) {
            std::fs::write(self.0.join(name), data).unwrap();
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn content(len: usize, seed: u64) -> Vec<u8> {
        let mut r = Rng(seed | 1);
        (0..len).map(|_| r.next() as u8).collect()
    }

    fn server(root: &Root, f: impl FnOnce(&mut Config)) -> Server {
        let mut c = Config::new(&root.0);
        c.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        c.rto = Some(Duration::from_millis(100));
        f(&mut c);
        Server::start(c).unwrap()
    }

    fn rrq(file: &str, opts: &[(&str, &str)]) -> Vec<u8> {
        Packet::Rrq {
            filename: file,
            mode: "octet",
            options: opts.to_vec(),
        }
        .emit()
    }

    fn ack(block: u16) -> Vec<u8> {
        Packet::Ack { block }.emit()
    }

    /// A small windowed client: ACKs at the end of each window, re-ACKs the last good block on a
    /// gap or after 150 ms of silence. Returns the file or the server's ERROR.
    fn fetch(
        srv: SocketAddr,
        file: &str,
        opts: &[(&str, &str)],
    ) -> std::result::Result<Vec<u8>, (u16, String)> {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        sock.send_to(&rrq(file, opts), srv).unwrap();
        let (mut bs, mut win) = (512usize, 1u16);
        let mut out = Vec::new();
        let (mut expect, mut since_ack) = (1u16, 0u16);
        let mut tid = None;
        let mut buf = vec![0u8; 70000];
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                if let Some(t) = tid {
                    sock.send_to(&ack(expect.wrapping_sub(1)), t).unwrap();
                    since_ack = 0;
                } else {
                    sock.send_to(&rrq(file, opts), srv).unwrap();
                }
                continue;
            };
            let t = *tid.get_or_insert(from);
            assert_eq!(from, t, "packet from a second TID");
            match Packet::parse(&buf[..n]).expect("the server sends well-formed packets") {
                Packet::Error { code, message } => return Err((code, message.into())),
                Packet::Oack { options } => {
                    for (k, v) in options {
                        let v: usize = v.parse().unwrap();
                        match k {
                            "blksize" => bs = v,
                            "windowsize" => win = v as u16,
                            _ => {}
                        }
                    }
                    sock.send_to(&ack(0), t).unwrap();
                }
                Packet::Data { block: b, data } => {
                    if b != expect {
                        sock.send_to(&ack(expect.wrapping_sub(1)), t).unwrap();
                        since_ack = 0;
                        continue;
                    }
                    out.extend_from_slice(data);
                    expect = expect.wrapping_add(1);
                    since_ack += 1;
                    if data.len() < bs {
                        // Final ACK, sent a few times as a lossy link may eat it.
                        for _ in 0..4 {
                            sock.send_to(&ack(b), t).unwrap();
                        }
                        return Ok(out);
                    }
                    if since_ack >= win {
                        sock.send_to(&ack(b), t).unwrap();
                        since_ack = 0;
                    }
                }
                p => panic!("unexpected packet {p:?}"),
            }
        }
        panic!("transfer of {file} did not finish in time");
    }

    /// The latest statistics of `file`, waiting up to 10 s for its transfer to end.
    fn stats_of(s: &Server, file: &str) -> Stats {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let idle = s.wait_idle(Duration::from_secs(5));
            match s.transfers().into_iter().rfind(|t| t.file == file) {
                Some(t) if idle => return t,
                _ if Instant::now() > end => panic!("no stats for {file}"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    #[test]
    fn plain_and_with_options() {
        let root = Root::new("plain");
        let small = content(5000, 7);
        let exact = content(1024, 8);
        root.put("small.bin", &small);
        root.put("exact.bin", &exact);
        let s = server(&root, |_| {});
        assert_eq!(fetch(s.addr(), "small.bin", &[]).unwrap(), small);
        let st = stats_of(&s, "small.bin");
        assert!(st.completed && st.blksize == 512 && st.windowsize == 1 && !st.tsize_asked);
        assert_eq!(st.bytes, 5000);
        // A multiple of the block size ends with an empty block.
        assert_eq!(fetch(s.addr(), "/exact.bin", &[]).unwrap(), exact);
        let opts = [("blksize", "9000"), ("tsize", "0"), ("windowsize", "4")];
        assert_eq!(fetch(s.addr(), "small.bin", &opts).unwrap(), small);
        let st = stats_of(&s, "small.bin");
        assert_eq!((st.blksize, st.windowsize, st.tsize_asked), (1468, 4, true));
        assert_eq!((st.dropped, st.retransmits, st.timeouts), (0, 0, 0));
        assert!(st.mbps() > 0.0);
    }

    /// The firmware's own client (`kexboot_net::tftp::Client`, sans-I/O) downloads through this
    /// server: both ends speak the one wire format, options negotiated as asked.
    #[test]
    fn kexboot_net_client_downloads_byte_exact() {
        use kexboot_net::tftp::{Action, Client, Options};
        let root = Root::new("netclient");
        let data = content(300_000, 11);
        root.put("vmlinuz", &data);
        let s = server(&root, |_| {});
        let opts = Options {
            blksize: Some(1468),
            tsize: true,
            timeout: Some(1),
            windowsize: Some(8),
        };
        let mut c = Client::new("vmlinuz", opts, data.len()).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let t0 = Instant::now();
        let now = || t0.elapsed().as_micros() as u64;
        sock.send_to(&c.start(now()), s.addr()).unwrap();
        let (mut dest, mut buf) = (vec![0u8; data.len()], vec![0u8; 70000]);
        let mut tid = None;
        let size = loop {
            assert!(t0.elapsed() < Duration::from_secs(60), "no end in time");
            let action = match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    tid = Some(from);
                    c.on_packet(&buf[..n], now(), &mut dest)
                }
                Err(_) => c.on_tick(now()),
            };
            match action.unwrap() {
                Action::Send(p) => {
                    sock.send_to(&p, tid.unwrap_or(s.addr())).unwrap();
                }
                Action::Wait => {}
                Action::Done { size, ack } => {
                    sock.send_to(&ack, tid.unwrap()).unwrap();
                    break size;
                }
            }
        };
        assert_eq!(size, data.len());
        assert!(dest == data, "content differs");
        assert_eq!(c.tsize(), Some(data.len() as u64));
        let st = stats_of(&s, "vmlinuz");
        assert!(st.completed, "{st:?}");
        assert_eq!((st.blksize, st.windowsize, st.tsize_asked), (1468, 8, true));
    }

    #[test]
    fn window8_with_10_percent_loss_is_byte_exact() {
        let root = Root::new("loss");
        let data = content(300_000, 9);
        root.put("big.bin", &data);
        let s = server(&root, |c| {
            c.loss = 0.10;
            c.seed = 42;
            c.retries = 20;
        });
        let opts = [("blksize", "1468"), ("windowsize", "8"), ("tsize", "0")];
        let got = fetch(s.addr(), "big.bin", &opts).unwrap();
        assert!(got == data, "content differs");
        let st = stats_of(&s, "big.bin");
        assert!(st.completed, "{st:?}");
        assert_eq!(st.windowsize, 8);
        assert!(st.dropped > 0 && st.retransmits > 0, "{st:?}");
    }

    #[test]
    fn block_numbers_wrap_past_65535() {
        let root = Root::new("wrap");
        // 70000 blocks of 8 bytes.
        let data = content(8 * 70_000 + 3, 10);
        root.put("wrap.bin", &data);
        let s = server(&root, |_| {});
        let got = fetch(
            s.addr(),
            "wrap.bin",
            &[("blksize", "8"), ("windowsize", "64")],
        )
        .unwrap();
        assert!(got == data, "content differs after the wrap");
    }

    #[test]
    fn refusals() {
        let root = Root::new("refuse");
        root.put("a.txt", b"a");
        std::fs::write(root.0.parent().unwrap().join("xtask-tftpd-outside"), b"x").unwrap();
        let s = server(&root, |_| {});
        for bad in [
            "../xtask-tftpd-outside",
            "sub/../../etc/passwd",
            "..\\a.txt",
        ] {
            let (code, msg) = fetch(s.addr(), bad, &[]).unwrap_err();
            assert_eq!(code, E_ACCESS, "{bad}: {msg}");
        }
        assert_eq!(fetch(s.addr(), "nope", &[]).unwrap_err().0, E_NOT_FOUND);
        assert_eq!(fetch(s.addr(), "sub", &[]).unwrap_err().0, E_NOT_FOUND);
        // WRQ: refused with an access violation from the well-known port.
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut wrq = rrq("a.txt", &[]);
        wrq[1] = OP_WRQ as u8;
        c.send_to(&wrq, s.addr()).unwrap();
        let mut buf = [0u8; 600];
        let (n, _) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0, 5, 0, 2]);
        assert!(String::from_utf8_lossy(&buf[4..n]).contains("read-only"));
        // Unknown mode.
        c.send_to(b"\0\x01a.txt\0mail\0", s.addr()).unwrap();
        let _ = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0, 5, 0, 4]);
        let _ = std::fs::remove_file(root.0.parent().unwrap().join("xtask-tftpd-outside"));
    }

    #[test]
    fn silent_mode_answers_nothing_and_records() {
        let root = Root::new("silent");
        root.put("a.txt", b"a");
        let s = server(&root, |c| c.silent = true);
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        c.send_to(&rrq("a.txt", &[]), s.addr()).unwrap();
        let mut buf = [0u8; 600];
        assert!(c.recv_from(&mut buf).is_err());
        let t = s.transfers();
        assert_eq!(t.len(), 1);
        assert!(!t[0].completed && t[0].file == "a.txt");
    }

    #[test]
    fn gives_up_when_the_client_vanishes() {
        let root = Root::new("vanish");
        root.put("a.bin", &content(10_000, 3));
        let s = server(&root, |c| c.retries = 2);
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(&rrq("a.bin", &[("windowsize", "4")]), s.addr())
            .unwrap();
        let st = stats_of(&s, "a.bin");
        assert!(!st.completed && st.timeouts == 3, "{st:?}");
        assert!(st.error.unwrap().contains("no ACK"));
    }

    #[test]
    fn negotiation_only_acknowledges_what_was_asked() {
        let cfg = Config::new("/");
        let req = |o: &[(&str, &str)]| Request {
            file: "f".into(),
            options: o
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let n = negotiate(&cfg, &req(&[]), 10);
        assert!(n.oack.is_empty());
        let n = negotiate(
            &cfg,
            &req(&[
                ("blksize", "4"),
                ("windowsize", "500"),
                ("foo", "1"),
                ("timeout", "3"),
            ]),
            10,
        );
        assert_eq!(n.blksize, 512);
        assert_eq!(n.window, 64);
        assert_eq!(n.rto, Duration::from_secs(3));
        let names: Vec<_> = n.oack.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(names, ["windowsize=64", "timeout=3"]);
    }

    #[test]
    fn request_parser_never_panics_on_garbage() {
        let mut r = Rng(0x1234_5678);
        let good = rrq(
            "pxelinux.cfg/default",
            &[("blksize", "1468"), ("tsize", "0")],
        );
        assert!(parse_request(&good).is_ok());
        for i in 0..20_000 {
            let mut p = if i % 2 == 0 {
                good.clone()
            } else {
                (0..(r.next() % 80) as usize)
                    .map(|_| r.next() as u8)
                    .collect()
            };
            for _ in 0..(r.next() % 4) {
                if !p.is_empty() {
                    let at = (r.next() as usize) % p.len();
                    p[at] = r.next() as u8;
                }
            }
            p.truncate((r.next() as usize) % (p.len() + 1));
            if let Ok(req) = parse_request(&p) {
                let _ = negotiate(&Config::new("/"), &req, 1);
                let _ = resolve(Path::new("/nonexistent-root"), &req.file);
            }
        }
    }
}
