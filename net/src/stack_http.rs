//! HTTP over smoltcp's TCP, in two layers:
//!
//! - [`Stack::http_get`]: one request on a connection kept alive between calls (config, kernel
//!   and initrd from one server share it): the sans-I/O rules of [`crate::http`] driven by the
//!   stack's polled loop, the body from the socket's receive buffer straight into the
//!   destination, every wait bounded (connect, head, each gap between body bytes), Ctrl-C.
//! - [`Stack::http_fetch`]: one file the way a boot needs it: the host resolved (DNS), redirects
//!   followed (at most [`MAX_REDIRECTS`]), a dropped or stalled connection retried with backoff
//!   and resumed with `Range` (or fetched again from the start when the server ignores ranges),
//!   5xx answers retried, everything within one overall time limit, so a slow server cannot
//!   hold the boot past it.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{dns, tcp};
use smoltcp::wire::{DnsQueryType, IpAddress};

use super::{turn, NetError, Stack};
use crate::http::{self, Body, Framing, Head, HttpError, Url, MAX_REDIRECTS};
use crate::nic::{Nic, Platform};

/// TCP receive buffer: the window the server may fill before kexboot drains it (smoltcp
/// scales the window past 64 KiB). 256 KiB keeps a 1 Gbit/s link with 2 ms of round trip
/// busy; `cargo xtask bench --net` measures it against TFTP.
const RX_BYTES: usize = 256 * 1024;
const TX_BYTES: usize = 4 * 1024;
/// Error bodies (404 pages) up to this size are read and dropped so the connection stays
/// usable; a larger one closes it.
const DRAIN_BYTES: usize = 4096;
/// First wait before a retry; doubled each time up to [`MAX_BACKOFF_US`].
const FIRST_BACKOFF_US: u64 = 500_000;
const MAX_BACKOFF_US: u64 = 8_000_000;
/// Names remembered after they resolved.
const DNS_CACHE: usize = 8;

/// One request.
#[derive(Debug, Clone)]
pub struct HttpGet<'a> {
    /// The server's address (the URL's host, resolved).
    pub server: Ipv4Addr,
    pub url: &'a Url,
    /// Ask for the body from this byte on (`Range`); the bytes go to `dest[from..]`.
    pub from: u64,
    /// Longest wait for the connection, the head, or the next body bytes.
    pub idle_us: u64,
    /// `HEAD`: the head alone (the size before the download).
    pub head_only: bool,
    /// The clock time (µs) by which it must be over, however busy the server keeps it.
    pub end_us: u64,
    /// For a resume (`from` > 0): the file's version (`If-Range`: a changed file comes whole)
    /// and its size as answered before (a partial answer of another size is refused).
    pub if_range: Option<&'a str>,
    pub total: Option<u64>,
}

/// What a request ended with.
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

/// The connection kept between requests.
pub(super) struct Conn {
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    remote: (Ipv4Addr, u16),
}

/// The HTTP state a stack keeps: the open connection, the DNS servers and what they answered,
/// and how many connections were opened (for the tests and the summary lines).
#[derive(Default)]
pub(super) struct HttpState {
    conn: Option<Conn>,
    pub(super) dns: Vec<Ipv4Addr>,
    resolved: Vec<(String, Ipv4Addr)>,
    connects: u32,
    /// The head of the last 2xx answer (its size and version, for a resume).
    seen: Option<Head>,
}

/// How one exchange on a connection failed.
enum Fail {
    /// A kept-alive connection was closed (or reset) by the server before any of the answer:
    /// try again on a new one.
    Stale,
    Net(NetError),
}

impl From<NetError> for Fail {
    fn from(e: NetError) -> Self {
        Fail::Net(e)
    }
}

impl From<HttpError> for Fail {
    fn from(e: HttpError) -> Self {
        Fail::Net(NetError::Http(e))
    }
}

/// One file to fetch with [`Stack::http_fetch`].
#[derive(Debug, Clone)]
pub struct HttpFetch<'a> {
    pub url: &'a Url,
    /// Longest silence of the server (connect, head, between body bytes) before a retry.
    pub idle_us: u64,
    /// Longest the whole fetch may take, retries and waits included.
    pub limit_us: u64,
    /// Retries after failures (resets, silences, 5xx) before giving up.
    pub retries: u32,
    /// `HEAD`: the size alone.
    pub head_only: bool,
}

/// What [`Stack::http_fetch`] tells while it works.
#[derive(Debug)]
pub enum HttpEvent<'a> {
    /// Body bytes in the destination from its start, and the file's size when known.
    Progress { received: u64, total: Option<u64> },
    /// A redirect to `to`.
    Redirect { to: &'a Url },
    /// `error`; the next try (from byte `from`) follows in `after_us`.
    Retry {
        error: &'a NetError,
        after_us: u64,
        from: u64,
    },
}

/// A finished fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFetched {
    /// The URL the file came from (after redirects) and its server.
    pub url: Url,
    pub server: Ipv4Addr,
    /// Body bytes at the start of the destination (0 for `HEAD`).
    pub size: u64,
    /// The size the server declared (`Content-Length`, or the total of `Content-Range`).
    pub length: Option<u64>,
    pub elapsed_us: u64,
    pub retries: u32,
    pub redirects: u32,
    /// A `Range` was answered with the whole file: the download started again from byte 0.
    pub restarted: bool,
}

/// Whether a failure is worth another try: the network or the server's state, not its answer.
fn retryable(e: &NetError) -> bool {
    match e {
        NetError::Timeout { .. } => true,
        NetError::Http(h) => {
            matches!(
                h,
                HttpError::Truncated { .. }
                    | HttpError::Refused
                    | HttpError::NoResponse
                    | HttpError::Changed
            ) || matches!(h, HttpError::Status { code, .. } if matches!(code, 500 | 502 | 503 | 504))
        }
        _ => false,
    }
}

/// The file's whole size as a 2xx head declares it.
fn declared(h: &Head, start: u64) -> Option<u64> {
    match (h.range, h.framing) {
        (Some((_, _, Some(total))), _) => Some(total),
        (_, Framing::Length(n)) => Some(start.saturating_add(n)),
        _ => None,
    }
}

impl<N: Nic> Stack<N> {
    /// DNS servers for host names in URLs (DHCP's, or `dnsip`).
    pub fn set_dns(&mut self, servers: &[Ipv4Addr]) {
        if self.http.dns != servers {
            self.http.dns = servers.to_vec();
            self.http.resolved.clear();
        }
    }

    /// TCP connections opened for HTTP so far.
    pub fn http_connections(&self) -> u32 {
        self.http.connects
    }

    /// `host` as an address: a dotted quad as it is, a name by DNS (smoltcp's DNS socket, the
    /// servers of [`Stack::set_dns`]), remembered once resolved.
    pub fn resolve(
        &mut self,
        p: &mut dyn Platform,
        host: &str,
        timeout_us: u64,
    ) -> Result<Ipv4Addr, NetError> {
        if let Ok(a) = host.parse::<Ipv4Addr>() {
            return Ok(a);
        }
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some((_, a)) = self.http.resolved.iter().find(|(n, _)| *n == key) {
            return Ok(*a);
        }
        let no_host = |w: &str| NetError::Http(HttpError::NoHost(alloc::format!("{host}: {w}")));
        if self.http.dns.is_empty() {
            return Err(no_host("no DNS server (DHCP gave none; set dnsip)"));
        }
        // One server at a time (smoltcp's socket keeps one), each with its share of the time
        // left: a silent one gives way to the next; an answer, even "no such name", is final.
        let end = p.now_us().saturating_add(timeout_us);
        let servers = self.http.dns.clone();
        for (i, &server) in servers.iter().enumerate() {
            let now = p.now_us();
            let share = end.saturating_sub(now) / (servers.len() - i) as u64;
            match self.resolve_at(p, server, &key, now.saturating_add(share), timeout_us) {
                Ok(Some(a)) => {
                    if self.http.resolved.len() >= DNS_CACHE {
                        self.http.resolved.remove(0);
                    }
                    self.http.resolved.push((key, a));
                    return Ok(a);
                }
                Ok(None) => {
                    return Err(no_host(&alloc::format!(
                        "{server} has no IPv4 address for it"
                    )))
                }
                Err(NetError::Timeout { .. }) if i + 1 < servers.len() => {
                    log::warn!("DNS: no answer from {server}; asking the next server");
                }
                Err(NetError::Timeout { .. }) => {
                    return Err(NetError::Timeout {
                        what: "DNS answer",
                        after_us: timeout_us,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Err(no_host("no DNS server"))
    }

    /// One DNS server's answer for `name` (None: it has none), by `end`.
    fn resolve_at(
        &mut self,
        p: &mut dyn Platform,
        server: Ipv4Addr,
        name: &str,
        end: u64,
        timeout_us: u64,
    ) -> Result<Option<Ipv4Addr>, NetError> {
        self.check_route(server)?;
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(dns::Socket::new(&[server.into()], alloc::vec![None]));
        let query = sockets
            .get_mut::<dns::Socket>(handle)
            .start_query(self.iface.context(), name, DnsQueryType::A)
            .map_err(|e| NetError::Http(HttpError::NoHost(alloc::format!("{name}: {e}"))))?;
        loop {
            let now = turn(p, end, "DNS answer", timeout_us)?;
            let mut busy = self.ingress(now, &mut sockets)?;
            match sockets
                .get_mut::<dns::Socket>(handle)
                .get_query_result(query)
            {
                Ok(addrs) => {
                    return Ok(addrs.iter().find_map(|a| match a {
                        #[allow(unreachable_patterns)]
                        IpAddress::Ipv4(v4) => Some(*v4),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }))
                }
                Err(dns::GetQueryResultError::Failed) => return Ok(None),
                Err(dns::GetQueryResultError::Pending) => {}
            }
            busy |= self.egress(now, &mut sockets)?;
            if !busy {
                self.idle(p, now, &sockets, Some(end));
            }
        }
    }

    /// `GET` (or `HEAD`) `req.url` from `req.server`, on the connection kept from the last
    /// request to the same server when it is still open. A redirect or an error status comes
    /// back as the head with no body written (the caller follows or reports it); a 2xx body is
    /// written into `dest` from `req.from` (206, checked against `Content-Range`) or from 0
    /// (200), never past `dest`'s end. A connection that closes early is
    /// `NetError::Http(Truncated)` with the bytes written so far in `partial`, for a resume
    /// with `Range`. `progress` gets the bytes in `dest` from its start and the file's size.
    pub fn http_get(
        &mut self,
        p: &mut dyn Platform,
        req: &HttpGet,
        dest: &mut [u8],
        partial: &mut u64,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<HttpGot, NetError> {
        self.check_route(req.server)?;
        let remote = (req.server, req.url.port);
        if let Some(mut conn) = self.http.conn.take() {
            // Open, and with nothing unasked for waiting in it: what came for it since the
            // last answer is taken in first (bytes past a body, a FIN, a reset).
            if let Ok(now) = turn(p, u64::MAX, "", 0) {
                self.ingress(now, &mut conn.sockets)?;
            }
            let sock = conn.sockets.get::<tcp::Socket>(conn.handle);
            let open = sock.state() == tcp::State::Established && sock.recv_queue() == 0;
            if conn.remote == remote && open {
                match self.exchange(p, req, conn, dest, partial, progress) {
                    Err(Fail::Stale) => {}
                    Err(Fail::Net(e)) => return Err(e),
                    Ok(got) => return Ok(got),
                }
            } else {
                self.drop_conn(p, conn);
            }
        }
        let conn = self.connect(remote)?;
        match self.exchange(p, req, conn, dest, partial, progress) {
            Err(Fail::Stale) => Err(HttpError::NoResponse.into()),
            Err(Fail::Net(e)) => Err(e),
            Ok(got) => Ok(got),
        }
    }

    fn connect(&mut self, remote: (Ipv4Addr, u16)) -> Result<Conn, NetError> {
        let mut sockets = SocketSet::new(Vec::new());
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(alloc::vec![0; RX_BYTES]),
            tcp::SocketBuffer::new(alloc::vec![0; TX_BYTES]),
        );
        let handle = sockets.add(socket);
        let local = 49152 + (self.random() % 16384) as u16;
        sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(
                self.iface.context(),
                (IpAddress::Ipv4(remote.0), remote.1),
                local,
            )
            .map_err(|_| NetError::Http(HttpError::Refused))?;
        self.http.connects += 1;
        Ok(Conn {
            sockets,
            handle,
            remote,
        })
    }

    /// Closes a connection (abort: nothing more is wanted from it) and lets the RST leave.
    fn drop_conn(&mut self, p: &mut dyn Platform, mut conn: Conn) {
        conn.sockets.get_mut::<tcp::Socket>(conn.handle).abort();
        self.flush(p, &mut conn);
    }

    /// Lets what a connection has to send (an ACK, a FIN, a reset) leave, best effort.
    fn flush(&mut self, p: &mut dyn Platform, conn: &mut Conn) {
        if let Ok(now) = turn(p, u64::MAX, "", 0) {
            let _ = self.egress(now, &mut conn.sockets);
        }
    }

    /// Drops the kept connection, if any (before the machine is handed over, or to start
    /// afresh).
    pub fn http_close(&mut self, p: &mut dyn Platform) {
        if let Some(c) = self.http.conn.take() {
            self.drop_conn(p, c);
        }
    }

    /// One request and its answer on `conn`; the connection is kept for the next request when
    /// the answer was complete and the server allows it.
    fn exchange(
        &mut self,
        p: &mut dyn Platform,
        req: &HttpGet,
        mut conn: Conn,
        dest: &mut [u8],
        partial: &mut u64,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<HttpGot, Fail> {
        let reused =
            conn.sockets.get::<tcp::Socket>(conn.handle).state() == tcp::State::Established;
        let request = http::request(req.url, req.from, req.head_only, req.if_range);
        let mut sent = 0usize;
        let mut head_buf: Vec<u8> = Vec::new();
        // The answer once its head is in: the head, the body decoder, where the body goes
        // (`None`: an error body, drained), and the file's size.
        let mut head: Option<(Head, Body, Option<u64>, Option<u64>)> = None;
        let mut drain: Vec<u8> = Vec::new();
        let mut established = reused;
        let start = p.now_us();
        let next = |now: u64| now.saturating_add(req.idle_us).min(req.end_us);
        let mut deadline = next(start);
        let result: Result<(HttpGot, bool), Fail> = 'exchange: loop {
            let now = match turn(p, deadline, "HTTP answer", req.idle_us) {
                Ok(n) => n,
                Err(e) => break Err(e.into()),
            };
            let mut busy = match self.ingress(now, &mut conn.sockets) {
                Ok(b) => b,
                Err(e) => break Err(e.into()),
            };
            let s = conn.sockets.get_mut::<tcp::Socket>(conn.handle);
            established |= s.state() == tcp::State::Established;
            if sent < request.len() && s.can_send() {
                if let Ok(n) = s.send_slice(&request.as_bytes()[sent..]) {
                    sent += n;
                    busy |= n > 0;
                }
            }
            // The head, out of the buffer until it parses.
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
                deadline = next(p.now_us());
                match parsed {
                    Err(e) => break 'exchange Err(e.into()),
                    Ok(None) => {}
                    Ok(Some((h, _))) if h.code < 200 => head_buf.clear(),
                    Ok(Some((h, _))) => {
                        let ok = (200..300).contains(&h.code);
                        let from = match (h.code, h.range) {
                            (206, Some((_, _, Some(t)))) if req.total.is_some_and(|x| x != t) => {
                                break 'exchange Err(HttpError::Changed.into())
                            }
                            (206, Some((s, _, _))) if s == req.from => req.from,
                            (206, _) => {
                                break 'exchange Err(HttpError::BadResponse(
                                    "a range other than the one asked for",
                                )
                                .into())
                            }
                            _ => 0,
                        };
                        let framing = if req.head_only {
                            // The head declares the size; no body follows.
                            Framing::Length(0)
                        } else {
                            h.framing
                        };
                        let (body, to) = if ok {
                            let room = (dest.len() as u64).saturating_sub(from);
                            match Body::new(framing, room) {
                                Ok(b) => (b, Some(from)),
                                Err(e) => break 'exchange Err(e.into()),
                            }
                        } else {
                            // An error or a redirect: its body (a short page) is read and
                            // dropped so the connection can serve the next request.
                            drain.resize(DRAIN_BYTES, 0);
                            match Body::new(framing, DRAIN_BYTES as u64) {
                                Ok(b) => (b, None),
                                Err(_) => {
                                    let got = HttpGot {
                                        head: h,
                                        start: 0,
                                        written: 0,
                                        elapsed_us: p.now_us().saturating_sub(start),
                                    };
                                    break 'exchange Ok((got, false));
                                }
                            }
                        };
                        let total = if ok { declared(&h, from) } else { None };
                        if ok {
                            self.http.seen = Some(h.clone());
                        }
                        head = Some((h, body, to, total));
                    }
                }
            }
            if let Some((h, body, to, total)) = head.as_mut() {
                let dst: &mut [u8] = match to {
                    Some(from) => &mut dest[*from as usize..],
                    None => &mut drain,
                };
                let mut err = None;
                while s.can_recv() && err.is_none() && !body.done() {
                    // Bytes past the body's end stay in the socket (never written), and the
                    // connection that carried them is not used again.
                    let r = s.recv(|d| match body.take(d, dst) {
                        Ok(n) => (n, Ok(())),
                        Err(e) => (d.len(), Err(e)),
                    });
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => err = Some(e),
                        Err(_) => break,
                    }
                    busy = true;
                    deadline = next(p.now_us());
                    if let Some(from) = to {
                        progress(*from + body.written, *total);
                    }
                }
                if let Some(from) = to {
                    *partial = *from + body.written;
                }
                let elapsed_us = p.now_us().saturating_sub(start);
                let got = |h: &Head| HttpGot {
                    head: h.clone(),
                    start: to.unwrap_or(0),
                    written: if to.is_some() { body.written } else { 0 },
                    elapsed_us,
                };
                if let Some(e) = err {
                    if to.is_none() {
                        // A bad error body: the error is the answer; the connection goes.
                        break Ok((got(h), false));
                    }
                    break Err(e.into());
                }
                if body.done() {
                    let keep = !h.close && s.recv_queue() == 0;
                    break Ok((got(h), keep));
                }
                // A reset (not a FIN) never ends a body, even one that ends at the close.
                if s.state() == tcp::State::Closed && body.framing() == Framing::UntilClose {
                    break Err(HttpError::Truncated {
                        got: body.written,
                        want: None,
                    }
                    .into());
                }
                if !s.may_recv() {
                    break match body.closed() {
                        Ok(()) => Ok((got(h), false)),
                        Err(_) if to.is_none() => Ok((got(h), false)),
                        Err(e) => Err(e.into()),
                    };
                }
            } else if !s.is_open() || (established && !s.may_recv()) {
                // Closed before any of the answer: on a kept connection the server let it go
                // idle; on a new one the server refused it or hung up.
                break Err(if reused && head_buf.is_empty() {
                    Fail::Stale
                } else if !established {
                    HttpError::Refused.into()
                } else {
                    HttpError::NoResponse.into()
                });
            }
            busy |= match self.egress(now, &mut conn.sockets) {
                Ok(b) => b,
                Err(e) => break Err(e.into()),
            };
            if !busy {
                self.idle(p, now, &conn.sockets, Some(deadline));
            }
        };
        match result {
            Ok((got, true)) => {
                // Let the last ACK leave; the connection waits for the next request.
                self.flush(p, &mut conn);
                self.http.conn = Some(conn);
                Ok(got)
            }
            Ok((got, false)) => {
                conn.sockets.get_mut::<tcp::Socket>(conn.handle).close();
                self.flush(p, &mut conn);
                Ok(got)
            }
            Err(e) => {
                self.drop_conn(p, conn);
                Err(e)
            }
        }
    }

    /// One file by HTTP into `dest`: the host resolved, redirects followed, failures
    /// (resets, silences, refusals, 5xx) retried after a doubling wait and resumed with
    /// `Range` from the bytes already in place, all within `f.limit_us`. An answer that is an
    /// error (4xx, a hostile head or body) ends it at once.
    pub fn http_fetch(
        &mut self,
        p: &mut dyn Platform,
        f: &HttpFetch,
        dest: &mut [u8],
        events: &mut dyn FnMut(HttpEvent),
    ) -> Result<HttpFetched, NetError> {
        let start = p.now_us();
        let end = start.saturating_add(f.limit_us);
        let mut url = f.url.clone();
        let (mut retries, mut redirects, mut have) = (0u32, 0u32, 0u64);
        let mut restarted = false;
        // The file as the first answer described it: its version and size, for resumes.
        let (mut version, mut total): (Option<String>, Option<u64>) = (None, None);
        loop {
            let now = turn(p, end, "complete HTTP download", f.limit_us)?;
            let idle_us = f.idle_us.min(end - now);
            let asked_from = have;
            let attempt = match self.resolve(p, &url.host, idle_us) {
                Ok(server) => {
                    let req = HttpGet {
                        server,
                        url: &url,
                        from: have,
                        idle_us,
                        head_only: f.head_only,
                        end_us: end,
                        if_range: version.as_deref(),
                        total,
                    };
                    self.http.seen = None;
                    let mut partial = have;
                    let r = self.http_get(p, &req, dest, &mut partial, &mut |received, total| {
                        events(HttpEvent::Progress { received, total })
                    });
                    have = partial;
                    // A whole answer (not a part) says what the file now is.
                    if let Some(h) = self.http.seen.take() {
                        if h.code != 206 {
                            version = h.validator.clone();
                            total = declared(&h, 0);
                        }
                    }
                    r.map(|got| (server, got))
                }
                Err(e) => Err(e),
            };
            let error = match attempt {
                Ok((_, got)) if http::redirect(&got.head).is_some() => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(HttpError::TooManyRedirects.into());
                    }
                    let to = http::redirect(&got.head).unwrap_or_default();
                    url = url.join(to)?;
                    (have, version, total) = (0, None, None);
                    events(HttpEvent::Redirect { to: &url });
                    continue;
                }
                Ok((_, got)) if !(200..300).contains(&got.head.code) => {
                    NetError::Http(HttpError::Status {
                        code: got.head.code,
                        reason: got.head.reason,
                    })
                }
                // A part that ended before the file did (a server may send less than asked):
                // the rest is asked for at once; it is no failure (the overall limit bounds
                // a server that sends a byte at a time).
                Ok((_, got))
                    if !f.head_only
                        && got.written > 0
                        && declared(&got.head, got.start)
                            .is_some_and(|l| got.start + got.written < l) =>
                {
                    restarted |= asked_from > 0 && got.start == 0;
                    have = got.start + got.written;
                    continue;
                }
                Ok((server, got)) => {
                    // A Range answered with the whole file: it came again from byte 0.
                    restarted |= asked_from > 0 && got.start == 0;
                    return Ok(HttpFetched {
                        length: declared(&got.head, got.start),
                        url,
                        server,
                        size: got.start + got.written,
                        elapsed_us: p.now_us().saturating_sub(start),
                        retries,
                        redirects,
                        restarted,
                    });
                }
                Err(_) if p.now_us() >= end => {
                    return Err(NetError::Timeout {
                        what: "complete HTTP download",
                        after_us: f.limit_us,
                    })
                }
                // Another version of the file: it is fetched again from its start.
                Err(NetError::Http(HttpError::Changed)) => {
                    (have, version, total) = (0, None, None);
                    NetError::Http(HttpError::Changed)
                }
                Err(e) => e,
            };
            if !retryable(&error) || retries >= f.retries {
                return Err(error);
            }
            retries += 1;
            let backoff = (FIRST_BACKOFF_US << (retries - 1).min(8)).min(MAX_BACKOFF_US);
            events(HttpEvent::Retry {
                error: &error,
                after_us: backoff,
                from: have,
            });
            let until = p.now_us().saturating_add(backoff).min(end);
            loop {
                let now = turn(p, end, "complete HTTP download", f.limit_us)?;
                if now >= until {
                    break;
                }
                p.idle(until.min(now + 100_000));
            }
        }
    }
}
