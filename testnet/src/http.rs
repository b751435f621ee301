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
}

/// The HTTP server and its knobs.
pub struct HttpServer {
    iface: Interface,
    pub(crate) wire: Wire,
    sockets: SocketSet<'static>,
    conns: HashMap<SocketHandle, Conn>,
    /// Paths (without the leading `/`) answered 404 once each.
    pub not_found_once: Vec<String>,
    /// Reset each connection after this many body bytes, while this is not empty (one entry
    /// used per connection).
    pub reset_after: Vec<usize>,
    /// Paths requested, in order, with the `Range` start asked for.
    pub requests: Vec<(String, u64)>,
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
            not_found_once: vec![],
            reset_after: vec![],
            requests: vec![],
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
        self.iface
            .poll_at(at(now), &self.sockets)
            .map(|t| t.total_micros().max(0) as u64)
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
                while sock.can_recv() && conn.response.is_none() {
                    let _ = sock.recv(|d| {
                        conn.request.extend_from_slice(d);
                        (d.len(), ())
                    });
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut req = httparse::Request::new(&mut headers);
                    if let Ok(httparse::Status::Complete(_)) = req.parse(&conn.request) {
                        let path = req.path.unwrap_or("/").trim_start_matches('/').to_string();
                        let from = req
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("range"))
                            .and_then(|h| std::str::from_utf8(h.value).ok())
                            .and_then(|v| v.strip_prefix("bytes="))
                            .and_then(|v| v.trim_end_matches('-').parse::<u64>().ok())
                            .unwrap_or(0);
                        self.requests.push((path.clone(), from));
                        let once = self.not_found_once.iter().position(|p| *p == path);
                        let (head, body): (String, &[u8]) = match (once, files.get(&path)) {
                            (None, Some(f)) if from > 0 && (from as usize) < f.len() => (
                                format!(
                                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                    f.len() - 1,
                                    f.len(),
                                    f.len() - from as usize
                                ),
                                &f[from as usize..],
                            ),
                            (None, Some(f)) => (
                                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", f.len()),
                                &f[..],
                            ),
                            (Some(i), _) => {
                                self.not_found_once.remove(i);
                                ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(), &[][..])
                            }
                            (None, None) => (
                                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
                                &[][..],
                            ),
                        };
                        let mut r = head.into_bytes();
                        conn.body_at = r.len();
                        r.extend_from_slice(body);
                        conn.response = Some(r);
                    }
                }
                if let Some(r) = &conn.response {
                    if conn.sent == 0 && !self.reset_after.is_empty() && r.len() > conn.body_at {
                        // This connection is reset after that many body bytes.
                        let n = self.reset_after.remove(0);
                        let keep = (conn.body_at + n).min(r.len());
                        let mut cut = r[..keep].to_vec();
                        cut.shrink_to_fit();
                        conn.response = Some(cut);
                        conn.body_at = usize::MAX; // marks "reset when sent"
                    }
                }
                if let Some(r) = &conn.response {
                    while conn.sent < r.len() && sock.can_send() {
                        match sock.send_slice(&r[conn.sent..]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => conn.sent += n,
                        }
                    }
                    if conn.sent == r.len() {
                        if conn.body_at == usize::MAX {
                            if sock.send_queue() == 0 {
                                sock.abort();
                                self.resets += 1;
                                conn.body_at = 0;
                            }
                        } else {
                            sock.close();
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
