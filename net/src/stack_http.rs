//! One HTTP GET over a smoltcp TCP socket ([`Stack::http_get`]): the sans-I/O rules of
//! [`crate::http`] driven by the stack's polled loop. The body goes from the socket's receive
//! buffer straight into the destination; every wait is bounded (connect, head, and each gap
//! between body bytes), Ctrl-C aborts.

use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

use super::{turn, NetError, Stack};
use crate::http::{self, Body, Head, HttpError, Url};
use crate::nic::{Nic, Platform};

/// TCP receive buffer: the window the server may fill before kexboot drains it (smoltcp
/// scales the window past 64 KiB).
const RX_BYTES: usize = 256 * 1024;
const TX_BYTES: usize = 4 * 1024;

/// One GET.
#[derive(Debug, Clone)]
pub struct HttpGet<'a> {
    /// The server's address (the URL's host, resolved).
    pub server: Ipv4Addr,
    pub url: &'a Url,
    /// Ask for the body from this byte on (`Range`); the bytes go to `dest[from..]`.
    pub from: u64,
    /// Longest wait for the connection, the head, or the next body bytes.
    pub idle_us: u64,
}

/// What a GET ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGot {
    pub head: Head,
    /// Where the body starts in `dest` (the `from` asked for, or 0 when the server sent the
    /// whole file instead of a range).
    pub start: u64,
    /// Body bytes written from `start`.
    pub written: u64,
    pub elapsed_us: u64,
}

impl From<HttpError> for NetError {
    fn from(e: HttpError) -> Self {
        NetError::Http(e)
    }
}

impl<N: Nic> Stack<N> {
    /// `GET req.url` from `req.server`: a redirect or an error status comes back as the head
    /// with no body written (the caller follows or reports it); a 2xx body is written into
    /// `dest` from `req.from` (206, checked against `Content-Range`) or from 0 (200), never past
    /// `dest`'s end. A connection that closes early is `NetError::Http(Truncated)` with the
    /// bytes written so far in `partial`, for a resume with `Range`.
    pub fn http_get(
        &mut self,
        p: &mut dyn Platform,
        req: &HttpGet,
        dest: &mut [u8],
        partial: &mut u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<HttpGot, NetError> {
        self.check_route(req.server)?;
        let mut sockets = SocketSet::new(Vec::new());
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(alloc::vec![0; RX_BYTES]),
            tcp::SocketBuffer::new(alloc::vec![0; TX_BYTES]),
        );
        let handle = sockets.add(socket);
        let local = 49152 + (self.random() % 16384) as u16;
        let remote = (IpAddress::Ipv4(req.server), req.url.port);
        sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(self.iface.context(), remote, local)
            .map_err(|_| NetError::Http(HttpError::BadUrl("cannot connect".into())))?;
        let request = http::request(req.url, req.from);
        let mut sent = 0usize;
        let mut head_buf: Vec<u8> = Vec::new();
        let mut head: Option<(Head, Body, u64)> = None;
        let start = p.now_us();
        let mut deadline = start.saturating_add(req.idle_us);
        let result = loop {
            let now = match turn(p, deadline, "HTTP answer", req.idle_us) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            let mut busy = match self.ingress(now, &mut sockets) {
                Ok(b) => b,
                Err(e) => break Err(e),
            };
            let s = sockets.get_mut::<tcp::Socket>(handle);
            if sent < request.len() && s.can_send() {
                if let Ok(n) = s.send_slice(&request.as_bytes()[sent..]) {
                    sent += n;
                    busy |= n > 0;
                }
            }
            // The head, byte by byte out of the buffer until it parses.
            while head.is_none() && s.can_recv() {
                let mut parsed = Ok(None);
                let _ = s.recv(|d| {
                    let room = http::MAX_HEAD.saturating_sub(head_buf.len()).max(1);
                    let take = d.len().min(room);
                    head_buf.extend_from_slice(&d[..take]);
                    parsed = http::parse_head(&head_buf);
                    match &parsed {
                        // Give back what follows the head: it is body.
                        Ok(Some((_, n))) => {
                            let over = head_buf.len() - n;
                            head_buf.truncate(*n);
                            (take - over, ())
                        }
                        _ => (take, ()),
                    }
                });
                busy = true;
                deadline = p.now_us().saturating_add(req.idle_us);
                match parsed {
                    Err(e) => return Err(e.into()),
                    Ok(None) => {}
                    Ok(Some((h, _))) if h.code < 200 => head_buf.clear(),
                    Ok(Some((h, _))) => {
                        let ok = (200..300).contains(&h.code);
                        let from = match (h.code, h.range) {
                            (206, Some((s, _))) if s == req.from => req.from,
                            (206, _) => {
                                return Err(HttpError::BadResponse(
                                    "a range other than the one asked for",
                                )
                                .into())
                            }
                            _ => 0,
                        };
                        if !ok {
                            // A redirect or an error: the head is the answer; no body read.
                            return Ok(HttpGot {
                                head: h,
                                start: 0,
                                written: 0,
                                elapsed_us: p.now_us().saturating_sub(start),
                            });
                        }
                        let room = (dest.len() as u64).saturating_sub(from);
                        let body = Body::new(h.framing, room)?;
                        head = Some((h, body, from));
                    }
                }
            }
            if let Some((h, body, from)) = head.as_mut() {
                let dst = &mut dest[*from as usize..];
                let mut err = None;
                while s.can_recv() && err.is_none() {
                    let r = s.recv(|d| (d.len(), body.feed(d, dst)));
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => err = Some(e),
                        Err(_) => break,
                    }
                    busy = true;
                    deadline = p.now_us().saturating_add(req.idle_us);
                    progress(*from + body.written);
                }
                *partial = *from + body.written;
                if let Some(e) = err {
                    s.abort();
                    break Err(e.into());
                }
                if body.done() {
                    s.close();
                    break Ok(HttpGot {
                        head: h.clone(),
                        start: *from,
                        written: body.written,
                        elapsed_us: p.now_us().saturating_sub(start),
                    });
                }
                if !s.may_recv() && s.state() != tcp::State::SynSent {
                    break match body.closed() {
                        Ok(()) => Ok(HttpGot {
                            head: h.clone(),
                            start: *from,
                            written: body.written,
                            elapsed_us: p.now_us().saturating_sub(start),
                        }),
                        Err(e) => Err(e.into()),
                    };
                }
            } else if !s.is_open()
                || (!s.may_recv() && sent > 0 && s.state() != tcp::State::SynSent)
            {
                break Err(HttpError::Truncated { got: 0, want: None }.into());
            }
            busy |= match self.egress(now, &mut sockets) {
                Ok(b) => b,
                Err(e) => break Err(e),
            };
            if !busy {
                self.idle(p, now, &sockets, Some(deadline));
            }
        };
        // Let a FIN or RST leave before the socket goes (best effort).
        if let Ok(now) = turn(p, u64::MAX, "", 0) {
            let _ = self.egress(now, &mut sockets);
        }
        if matches!(result, Err(NetError::Interrupted)) {
            sockets.get_mut::<tcp::Socket>(handle).abort();
            if let Ok(now) = turn(p, u64::MAX, "", 0) {
                let _ = self.egress(now, &mut sockets);
            }
        }
        result
    }
}

/// Whether a head is a redirect with somewhere to go.
pub fn redirect(h: &Head) -> Option<&str> {
    matches!(h.code, 301 | 302 | 303 | 307 | 308)
        .then_some(())
        .and(h.location.as_deref())
}
