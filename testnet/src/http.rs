//! The world's HTTP server: a smoltcp interface of its own (10.0.2.2, the server's MAC) with a
//! listening TCP socket on port 80, serving the world's files (`GET /<name>`, `Range: bytes=N-`
//! answered 206), one response per connection (`Connection: close`). Fault knobs: a 404 for
//! chosen paths, and a reset after a number of body bytes (once per knob).

use std::collections::{HashMap, VecDeque};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpCidr, Ipv4Address};

use crate::{SERVER_IP, SERVER_MAC};

/// The port the server listens on.
pub const HTTP_PORT: u16 = 80;

/// Frames into and out of the server's interface.
#[derive(Default)]
pub(crate) struct Wire {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: Vec<Vec<u8>>,
}

pub(crate) struct Rx(Vec<u8>);
pub(crate) struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for Wire {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((Rx(f), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

/// One connection's exchange.
#[derive(Default)]
struct Conn {
    request: Vec<u8>,
    response: Option<Vec<u8>>,
    sent: usize,
    /// Where the body starts in `response`.
    body_at: usize,
    /// What to do when the response is sent.
    then: Then,
    /// Time the next byte may go (drip).
    next_at: u64,
    counted: bool,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Wait for the next request.
    #[default]
    KeepAlive,
    Close,
    Reset,
    /// Send nothing more, keep the connection open.
    Stall,
}

/// The HTTP server and its knobs.
pub struct HttpServer {
    iface: Interface,
    pub(crate) wire: Wire,
    sockets: SocketSet<'static>,
    conns: HashMap<SocketHandle, Conn>,
    /// Answers given once each instead of the file: (path without the leading `/`, status).
    pub status_once: Vec<(String, u16)>,
    /// Redirects: path -> `Location` (302), every time.
    pub redirects: HashMap<String, String>,
    /// Reset the connection after this many body bytes, while this is not empty (one entry
    /// used per response whose body is longer).
    pub reset_after: Vec<usize>,
    /// Fall silent (connection open) after this many body bytes, one entry per response whose
    /// body is longer.
    pub stall_after: Vec<usize>,
    /// Answer `Range` requests with the whole file (200), as servers without ranges do.
    pub no_ranges: bool,
    /// Close the connection after each response (`Connection: close`).
    pub close_each: bool,
    /// Send each response one byte per this many µs (a slow-loris server).
    pub drip_us: Option<u64>,
    /// Bytes sent after each body, past its `Content-Length` (a server that sends more than
    /// it announced).
    pub trailing: Vec<u8>,
    /// A partial answer carries at most this many bytes (its `Content-Range` says so).
    pub short_ranges: Option<usize>,
    /// Once a connection was reset by the knob, this path serves this content instead (the
    /// file replaced on the server mid-download).
    pub replacement: Option<(String, Vec<u8>)>,
    /// Send no `ETag` (files are otherwise tagged by their content, and `If-Range` honoured).
    pub no_etag: bool,
    /// Send files without `Content-Length`, closing the connection at the end (HTTP/1.0
    /// style).
    pub no_length: bool,
    /// Paths requested, in order, with the `Range` start asked for.
    pub requests: Vec<(String, u64)>,
    /// `HEAD` requests among them.
    pub heads: usize,
    /// Connections accepted.
    pub connections: usize,
    /// Connections reset by the knob.
    pub resets: usize,
}

fn at(us: u64) -> Instant {
    Instant::from_micros(us as i64)
}

impl HttpServer {
    pub(crate) fn new(now: u64) -> Self {
        let mut wire = Wire::default();
        let config = Config::new(HardwareAddress::Ethernet(SERVER_MAC));
        let mut iface = Interface::new(config, &mut wire, at(now));
        iface.update_ip_addrs(|a| {
            let o = SERVER_IP.octets();
            let _ = a.push(IpCidr::new(
                Ipv4Address::new(o[0], o[1], o[2], o[3]).into(),
                24,
            ));
        });
        let mut s = HttpServer {
            iface,
            wire,
            sockets: SocketSet::new(vec![]),
            conns: HashMap::new(),
            status_once: vec![],
            redirects: HashMap::new(),
            reset_after: vec![],
            stall_after: vec![],
            no_ranges: false,
            close_each: false,
            drip_us: None,
            trailing: vec![],
            short_ranges: None,
            replacement: None,
            no_etag: false,
            no_length: false,
            requests: vec![],
            heads: 0,
            connections: 0,
            resets: 0,
        };
        s.listen();
        s
    }

    fn listen(&mut self) {
        let mut sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 16 * 1024]),
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        );
        let _ = sock.listen(HTTP_PORT);
        let h = self.sockets.add(sock);
        self.conns.insert(h, Conn::default());
    }

    /// When the server next needs to run.
    pub(crate) fn poll_at(&mut self, now: u64) -> Option<u64> {
        let drip = self.conns.values().filter_map(|c| {
            let pending = c.response.as_ref().is_some_and(|r| c.sent < r.len());
            (self.drip_us.is_some() && pending).then_some(c.next_at.max(now + 1))
        });
        self.iface
            .poll_at(at(now), &self.sockets)
            .map(|t| t.total_micros().max(0) as u64)
            .into_iter()
            .chain(drip)
            .min()
    }

    /// Runs the interface and the connections; frames to send are left in `wire.tx`.
    pub(crate) fn poll(&mut self, now: u64, files: &HashMap<String, Vec<u8>>) {
        for _ in 0..4 {
            self.iface.poll(at(now), &mut self.wire, &mut self.sockets);
            let handles: Vec<SocketHandle> = self.conns.keys().copied().collect();
            let mut listening = false;
            for h in handles {
                let sock = self.sockets.get_mut::<tcp::Socket>(h);
                let conn = self.conns.get_mut(&h).unwrap();
                if sock.state() == tcp::State::Listen {
                    listening = true;
                    continue;
                }
                if !sock.is_open() {
                    self.sockets.remove(h);
                    self.conns.remove(&h);
                    continue;
                }
                if sock.state() == tcp::State::Established && !conn.counted {
                    conn.counted = true;
                    self.connections += 1;
                }
                while sock.can_recv() {
                    let _ = sock.recv(|d| {
                        conn.request.extend_from_slice(d);
                        (d.len(), ())
                    });
                }
                if conn.response.is_none() {
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut req = httparse::Request::new(&mut headers);
                    if let Ok(httparse::Status::Complete(n)) = req.parse(&conn.request) {
                        let head_only = req.method == Some("HEAD");
                        let path = req.path.unwrap_or("/").trim_start_matches('/').to_string();
                        let header = |name: &str| {
                            req.headers
                                .iter()
                                .find(|h| h.name.eq_ignore_ascii_case(name))
                                .and_then(|h| std::str::from_utf8(h.value).ok())
                        };
                        let from = header("range")
                            .and_then(|v| v.strip_prefix("bytes="))
                            .and_then(|v| v.trim_end_matches('-').parse::<u64>().ok())
                            .filter(|_| !self.no_ranges)
                            .unwrap_or(0);
                        let asked = header("range")
                            .and_then(|v| v.strip_prefix("bytes="))
                            .and_then(|v| v.trim_end_matches('-').parse::<u64>().ok())
                            .unwrap_or(0);
                        let client_close =
                            header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                        let if_range = header("if-range").map(String::from);
                        conn.request.drain(..n);
                        self.requests.push((path.clone(), asked));
                        self.heads += usize::from(head_only);
                        let close = if self.close_each || client_close {
                            "Connection: close\r\n"
                        } else {
                            ""
                        };
                        let once = self.status_once.iter().position(|(p, _)| *p == path);
                        let replaced = self
                            .replacement
                            .as_ref()
                            .filter(|(p, _)| self.resets > 0 && *p == path)
                            .map(|(_, d)| d);
                        let file = replaced.or(files.get(&path));
                        // The content's tag: FNV-1a of the bytes.
                        let tag = file.map(|f| {
                            let h = f.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                            });
                            format!("\"{h:x}\"")
                        });
                        let etag = match (&tag, self.no_etag) {
                            (Some(t), false) => format!("ETag: {t}\r\n"),
                            _ => String::new(),
                        };
                        // `If-Range` with another tag: the whole (new) file.
                        let stale = if_range.is_some_and(|v| Some(v) != tag);
                        let from = if stale && !self.no_etag { 0 } else { from };
                        let close = match self.no_length {
                            true => "Connection: close\r\n",
                            false => close,
                        };
                        let part = |f: &[u8]| {
                            let n = f.len() - from as usize;
                            self.short_ranges.map_or(n, |m| m.min(n))
                        };
                        let (head, body): (String, &[u8]) =
                            match (once, self.redirects.get(&path), file) {
                                (Some(i), _, _) => {
                                    let (_, code) = self.status_once.remove(i);
                                    let page = b"<html>no</html>";
                                    (
                                        format!("HTTP/1.1 {code} Status {code}\r\nContent-Length: {}\r\n{close}\r\n", page.len()),
                                        &page[..],
                                    )
                                }
                                (None, Some(to), _) => (
                                    format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n{close}\r\n"),
                                    &[][..],
                                ),
                                (None, None, Some(f)) if from > 0 && (from as usize) < f.len() => (
                                    format!(
                                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{}\r\nContent-Length: {}\r\n{etag}{close}\r\n",
                                        from as usize + part(f) - 1,
                                        f.len(),
                                        part(f)
                                    ),
                                    &f[from as usize..from as usize + part(f)],
                                ),
                                (None, None, Some(f)) if self.no_length => (
                                    format!("HTTP/1.1 200 OK\r\n{etag}{close}\r\n"),
                                    &f[..],
                                ),
                                (None, None, Some(f)) => (
                                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{etag}{close}\r\n", f.len()),
                                    &f[..],
                                ),
                                (None, None, None) => (
                                    format!("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n{close}\r\n"),
                                    &b"not found"[..],
                                ),
                            };
                        let mut r = head.into_bytes();
                        conn.body_at = r.len();
                        if !head_only {
                            r.extend_from_slice(body);
                            r.extend_from_slice(&self.trailing);
                        }
                        conn.then = if close.is_empty() {
                            Then::KeepAlive
                        } else {
                            Then::Close
                        };
                        if r.len() > conn.body_at {
                            let mut cut = |knob: &mut Vec<usize>, then: Then, conn: &mut Conn| {
                                // Only a body longer than the cut is cut.
                                if knob.first().is_some_and(|&n| conn.body_at + n < r.len()) {
                                    let n = knob.remove(0);
                                    r.truncate((conn.body_at + n).min(r.len()));
                                    conn.then = then;
                                }
                            };
                            cut(&mut self.reset_after, Then::Reset, conn);
                            cut(&mut self.stall_after, Then::Stall, conn);
                        }
                        conn.response = Some(r);
                        conn.sent = 0;
                    }
                }
                if let Some(r) = &conn.response {
                    while conn.sent < r.len() && sock.can_send() {
                        let end = match self.drip_us {
                            Some(_) if now < conn.next_at => break,
                            Some(d) => {
                                conn.next_at = now + d;
                                conn.sent + 1
                            }
                            None => r.len(),
                        };
                        match sock.send_slice(&r[conn.sent..end]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => conn.sent += n,
                        }
                    }
                    if conn.sent == r.len() {
                        match conn.then {
                            Then::Reset if sock.send_queue() == 0 => {
                                sock.abort();
                                self.resets += 1;
                                conn.response = None;
                            }
                            Then::Reset | Then::Stall => {}
                            Then::Close => sock.close(),
                            Then::KeepAlive => conn.response = None,
                        }
                    }
                }
            }
            if !listening {
                self.listen();
            }
        }
    }
}
