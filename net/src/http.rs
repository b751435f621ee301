//! HTTP/1.1 for HTTP boot, sans-I/O: URLs, the `GET` request, the response head (by
//! `httparse`, bounded), and the body decoder that writes `Content-Length` or chunked bodies
//! straight into the destination. Nothing here touches a socket: the TCP side (smoltcp) feeds
//! bytes in and takes bytes out, so every rule is tested on the host.
//!
//! Hostile servers are the norm here: a head larger than [`MAX_HEAD`] or with more than
//! [`MAX_HEADERS`] headers, a `Content-Length` that does not parse or disagrees with itself,
//! both `Content-Length` and chunked, a body (declared or sent) larger than the destination,
//! a chunk size that overflows, bytes past the declared end: each is an [`HttpError`], and no
//! byte is ever written past the destination.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// Largest response head accepted (status line and headers).
pub const MAX_HEAD: usize = 16 << 10;
/// Most headers in one response.
pub const MAX_HEADERS: usize = 48;
/// Redirects followed in a row before giving up.
pub const MAX_REDIRECTS: u32 = 5;
/// The default port of `http://` URLs.
pub const HTTP_PORT: u16 = 80;

/// Why an HTTP exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not an `http://host[:port]/path` URL: `why`.
    BadUrl(String),
    /// The response head is malformed: `why`.
    BadResponse(&'static str),
    /// The head is larger than [`MAX_HEAD`] or has more than [`MAX_HEADERS`] headers.
    HeadTooLarge,
    /// The server answered `code` (`reason`).
    Status { code: u16, reason: String },
    /// The body (`size` bytes, declared or sent) does not fit the destination (`room`).
    TooLarge { size: u64, room: u64 },
    /// The chunked body is malformed: `why`.
    BadChunk(&'static str),
    /// The server sent bytes past the body's end.
    ExtraBytes,
    /// The connection closed before the body was complete (`got` of `want` bytes).
    Truncated { got: u64, want: Option<u64> },
    /// The server refused the connection (or it never opened).
    Refused,
    /// The connection closed before the response head.
    NoResponse,
    /// The host name did not resolve: `why`.
    NoHost(String),
    /// More redirects than [`MAX_REDIRECTS`] for one file.
    TooManyRedirects,
    /// A resumed download found another version of the file (its size changed).
    Changed,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadUrl(w) => write!(f, "bad URL: {w}"),
            HttpError::BadResponse(w) => write!(f, "bad HTTP response: {w}"),
            HttpError::HeadTooLarge => write!(
                f,
                "HTTP response head over {MAX_HEAD} bytes or {MAX_HEADERS} headers"
            ),
            HttpError::Status { code, reason } => write!(f, "{code} {reason}"),
            HttpError::TooLarge { size, room } => write!(
                f,
                "{size} bytes do not fit the destination ({room} bytes): refused before writing"
            ),
            HttpError::BadChunk(w) => write!(f, "bad chunked body: {w}"),
            HttpError::ExtraBytes => write!(f, "the server sent more than it announced"),
            HttpError::Truncated { got, want: Some(w) } => {
                write!(f, "connection closed after {got} of {w} bytes")
            }
            HttpError::Truncated { got, want: None } => {
                write!(
                    f,
                    "connection closed after {got} bytes, before the last chunk"
                )
            }
            HttpError::Refused => f.write_str("connection refused"),
            HttpError::NoResponse => f.write_str("connection closed before the response"),
            HttpError::NoHost(w) => write!(f, "host name not resolved: {w}"),
            HttpError::TooManyRedirects => write!(f, "more than {MAX_REDIRECTS} redirects"),
            HttpError::Changed => f.write_str("the file changed on the server"),
        }
    }
}

/// Whether `s` is an `http://` URL (the scheme in any case): fetched by HTTP, where any other
/// path is a TFTP path.
pub fn is_url(s: &str) -> bool {
    s.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
}

/// An `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// From the first `/` on (`/` when the URL has none); query kept, fragment dropped.
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, HttpError> {
        let bad = |w: &str| HttpError::BadUrl(format!("{s:?}: {w}"));
        let rest = s
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("http://"))
            .map(|_| &s[7..])
            .ok_or_else(|| bad("only http:// is supported (HTTPS is not)"))?;
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("user information in URLs is not supported"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
            None => (authority, HTTP_PORT),
        };
        let ok_host = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok_host || port == 0 {
            return Err(bad("bad host or port"));
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("spaces or control characters in the path"));
        }
        let path = match path {
            "" => String::from("/"),
            p if p.starts_with('?') => format!("/{p}"),
            p => String::from(p),
        };
        Ok(Url {
            host: host.into(),
            port,
            path,
        })
    }

    /// `reference` resolved against this URL (RFC 3986 5.2, the cases configs and redirects
    /// use): an absolute `http://` URL, an absolute path, or a path relative to this one's
    /// directory (with `.` and `..` segments resolved).
    pub fn join(&self, reference: &str) -> Result<Url, HttpError> {
        if reference.contains("://") {
            return Url::parse(reference);
        }
        // A scheme-relative reference names another host.
        if let Some(rest) = reference.strip_prefix("//") {
            return Url::parse(&format!("http://{rest}"));
        }
        let path = if reference.starts_with('/') {
            String::from(reference)
        } else {
            let dir = match self.path.split('?').next().unwrap_or("/").rfind('/') {
                Some(i) => &self.path[..=i],
                None => "/",
            };
            format!("{dir}{reference}")
        };
        let mut out: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
        let (p, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path.as_str(), None),
        };
        let segs: alloc::vec::Vec<&str> = p.split('/').skip(1).collect();
        for (i, seg) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            match *seg {
                "." => {
                    if last {
                        out.push("");
                    }
                }
                ".." => {
                    out.pop();
                    if last {
                        out.push("");
                    }
                }
                s => out.push(s),
            }
        }
        let mut joined = String::new();
        for s in &out {
            joined.push('/');
            joined.push_str(s);
        }
        if joined.is_empty() {
            joined.push('/');
        }
        if let Some(q) = query {
            joined.push('?');
            joined.push_str(q);
        }
        Url::parse(&format!("http://{}:{}{joined}", self.host, self.port))
    }

    /// `host` or `host:port` for the `Host` header.
    pub fn authority(&self) -> String {
        match self.port {
            HTTP_PORT => self.host.clone(),
            p => format!("{}:{p}", self.host),
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// The request for `url` (`GET`, or `HEAD` for the size alone), from byte `from` on (`Range`)
/// when not 0, and only if the file is still `if_range` (else the whole file); keep-alive.
pub fn request(url: &Url, from: u64, head_only: bool, if_range: Option<&str>) -> String {
    let mut r = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kexboot/{}\r\nAccept: */*\r\n",
        if head_only { "HEAD" } else { "GET" },
        url.path,
        url.authority(),
        env!("CARGO_PKG_VERSION")
    );
    if from > 0 {
        r += &format!("Range: bytes={from}-\r\n");
        if let Some(v) = if_range {
            r += &format!("If-Range: {v}\r\n");
        }
    }
    r += "Connection: keep-alive\r\n\r\n";
    r
}

/// Where a redirect points, when the head is one with somewhere to go.
pub fn redirect(h: &Head) -> Option<&str> {
    matches!(h.code, 301 | 302 | 303 | 307 | 308)
        .then_some(())
        .and(h.location.as_deref())
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
}

/// A response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub code: u16,
    pub reason: String,
    pub framing: Framing,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// `Content-Range: bytes <start>-<end>/<total>`: the start, the end (inclusive), and the
    /// total when known.
    pub range: Option<(u64, u64, Option<u64>)>,
    /// What names this version of the file for `If-Range`: the `ETag` (a strong one), else
    /// `Last-Modified`.
    pub validator: Option<String>,
    /// `Connection: close` (or HTTP/1.0 without keep-alive).
    pub close: bool,
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    let s = core::str::from_utf8(v).ok()?.trim();
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `bytes 100-199/1000` (or `/*`).
fn parse_content_range(v: &[u8]) -> Option<(u64, u64, Option<u64>)> {
    let s = core::str::from_utf8(v).ok()?.trim();
    let rest = s.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end) = (parse_u64(start.as_bytes())?, parse_u64(end.as_bytes())?);
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(parse_u64(t.as_bytes())?),
    };
    if total.is_some_and(|t| end >= t) {
        return None;
    }
    Some((start, end, total))
}

/// Parses the response head at the start of `buf`: `Ok(None)` while it is incomplete (and
/// under [`MAX_HEAD`]), else the head and its length in bytes. 1xx answers are the caller's to
/// skip (`code < 200`).
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let n = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(_) => return Err(HttpError::BadResponse("malformed status line or header")),
    };
    if n > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let code = r.code.ok_or(HttpError::BadResponse("no status code"))?;
    let reason = String::from(r.reason.unwrap_or(""));
    let http10 = r.version == Some(0);
    let (mut length, mut chunked, mut location, mut range) = (None, false, None, None);
    let (mut etag, mut modified) = (None, None);
    let mut close = http10;
    for h in r.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let v = parse_u64(h.value).ok_or(HttpError::BadResponse("bad Content-Length"))?;
            if length.is_some_and(|l| l != v) {
                return Err(HttpError::BadResponse("two different Content-Lengths"));
            }
            length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let v = core::str::from_utf8(h.value).unwrap_or("");
            let last = v.rsplit(',').next().unwrap_or("").trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::BadResponse(
                    "a transfer coding other than chunked",
                ));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("location") {
            location = core::str::from_utf8(h.value)
                .ok()
                .map(|s| String::from(s.trim()));
        } else if name.eq_ignore_ascii_case("content-range") {
            range = Some(
                parse_content_range(h.value).ok_or(HttpError::BadResponse("bad Content-Range"))?,
            );
        } else if name.eq_ignore_ascii_case("etag") {
            // A weak tag cannot be used with If-Range (RFC 9110 13.1.5).
            etag = core::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| v.starts_with('"') && v.len() < 256)
                .map(String::from);
        } else if name.eq_ignore_ascii_case("last-modified") {
            modified = core::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| {
                    !v.is_empty() && v.len() < 64 && v.bytes().all(|b| (b' '..0x7f).contains(&b))
                })
                .map(String::from);
        } else if name.eq_ignore_ascii_case("connection") {
            let v = core::str::from_utf8(h.value).unwrap_or("");
            for t in v.split(',').map(str::trim) {
                if t.eq_ignore_ascii_case("close") {
                    close = true;
                } else if t.eq_ignore_ascii_case("keep-alive") && http10 {
                    close = false;
                }
            }
        }
    }
    // RFC 9112 6.3: both is a smuggling attempt; refuse it rather than pick one.
    if chunked && length.is_some() {
        return Err(HttpError::BadResponse("both Content-Length and chunked"));
    }
    // A partial answer's two lengths must agree (RFC 9110 14.4).
    if let (206, Some((start, end, _)), Some(l)) = (code, range, length) {
        if l != end - start + 1 {
            return Err(HttpError::BadResponse(
                "Content-Range and Content-Length disagree",
            ));
        }
    }
    let no_body = code < 200 || code == 204 || code == 304;
    let framing = match (no_body, chunked, length) {
        (true, _, _) => Framing::Length(0),
        (_, true, _) => Framing::Chunked,
        (_, _, Some(l)) => Framing::Length(l),
        _ => Framing::UntilClose,
    };
    Ok(Some((
        Head {
            code,
            reason,
            framing,
            location,
            range,
            validator: etag.or(modified),
            close,
        },
        n,
    )))
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// `n` more data bytes of the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data (`n` of its 2 bytes seen).
    DataEnd(u8),
    /// Trailer lines after the last chunk, until an empty line.
    Trailer,
    Done,
}

/// Writes a body into `dst[at..]` as it arrives, never past `dst`'s end.
#[derive(Debug)]
pub struct Body {
    framing: Framing,
    /// Body bytes written so far.
    pub written: u64,
    chunk: Chunk,
    /// A partial chunk-size or trailer line.
    line: alloc::vec::Vec<u8>,
}

/// Longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 1024;

impl Body {
    /// A decoder for `framing` into a destination of `room` bytes: a declared length larger
    /// than `room` is refused before anything is written.
    pub fn new(framing: Framing, room: u64) -> Result<Body, HttpError> {
        if let Framing::Length(l) = framing {
            if l > room {
                return Err(HttpError::TooLarge { size: l, room });
            }
        }
        Ok(Body {
            framing,
            written: 0,
            chunk: Chunk::Size,
            line: alloc::vec::Vec::new(),
        })
    }

    /// How the body's end is known.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the whole body has arrived.
    pub fn done(&self) -> bool {
        match self.framing {
            Framing::Length(l) => self.written == l,
            Framing::Chunked => self.chunk == Chunk::Done,
            Framing::UntilClose => false,
        }
    }

    fn put(&mut self, dst: &mut [u8], data: &[u8]) -> Result<(), HttpError> {
        let at = usize::try_from(self.written).map_err(|_| HttpError::ExtraBytes)?;
        let end = at
            .checked_add(data.len())
            .filter(|&e| e <= dst.len())
            .ok_or(HttpError::TooLarge {
                size: self.written + data.len() as u64,
                room: dst.len() as u64,
            })?;
        dst[at..end].copy_from_slice(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Takes the bytes `input` that arrived, writing body bytes into `dst` (at `written`).
    /// Bytes past the end of the body are an error ([`HttpError::ExtraBytes`]).
    pub fn feed(&mut self, input: &[u8], dst: &mut [u8]) -> Result<(), HttpError> {
        match self.take(input, dst)? {
            n if n < input.len() => Err(HttpError::ExtraBytes),
            _ => Ok(()),
        }
    }

    /// As [`Body::feed`], but bytes past the body's end are left alone: returns how many of
    /// `input` belong to the body (the rest, if any, the server should not have sent).
    pub fn take(&mut self, mut input: &[u8], dst: &mut [u8]) -> Result<usize, HttpError> {
        let all = input.len();
        match self.framing {
            Framing::Length(l) => {
                let n = (l - self.written).min(input.len() as u64) as usize;
                self.put(dst, &input[..n])?;
                Ok(n)
            }
            Framing::UntilClose => self.put(dst, input).map(|()| all),
            Framing::Chunked => {
                while !input.is_empty() {
                    match self.chunk {
                        Chunk::Done => return Ok(all - input.len()),
                        Chunk::Size => {
                            let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                                self.line.extend_from_slice(input);
                                if self.line.len() > MAX_LINE {
                                    return Err(HttpError::BadChunk("chunk-size line too long"));
                                }
                                return Ok(all);
                            };
                            self.line.extend_from_slice(&input[..=nl]);
                            input = &input[nl + 1..];
                            if self.line.len() > MAX_LINE {
                                return Err(HttpError::BadChunk("chunk-size line too long"));
                            }
                            let size = match httparse::parse_chunk_size(&self.line) {
                                Ok(httparse::Status::Complete((_, n))) => n,
                                _ => return Err(HttpError::BadChunk("bad chunk-size line")),
                            };
                            self.line.clear();
                            if size > dst.len() as u64 - self.written {
                                return Err(HttpError::TooLarge {
                                    size: self.written.saturating_add(size),
                                    room: dst.len() as u64,
                                });
                            }
                            self.chunk = match size {
                                0 => Chunk::Trailer,
                                n => Chunk::Data(n),
                            };
                        }
                        Chunk::Data(n) => {
                            let take = (n.min(input.len() as u64)) as usize;
                            self.put(dst, &input[..take])?;
                            input = &input[take..];
                            self.chunk = match n - take as u64 {
                                0 => Chunk::DataEnd(0),
                                m => Chunk::Data(m),
                            };
                        }
                        Chunk::DataEnd(seen) => {
                            let want = if seen == 0 { b'\r' } else { b'\n' };
                            // A bare LF is tolerated, as most clients do.
                            if seen == 0 && input[0] == b'\n' {
                                self.chunk = Chunk::Size;
                            } else if input[0] != want {
                                return Err(HttpError::BadChunk("no CRLF after chunk data"));
                            } else if seen == 1 {
                                self.chunk = Chunk::Size;
                            } else {
                                self.chunk = Chunk::DataEnd(1);
                            }
                            input = &input[1..];
                        }
                        Chunk::Trailer => {
                            let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                                self.line.extend_from_slice(input);
                                if self.line.len() > MAX_LINE {
                                    return Err(HttpError::BadChunk("trailer line too long"));
                                }
                                return Ok(all);
                            };
                            self.line.extend_from_slice(&input[..nl]);
                            input = &input[nl + 1..];
                            if self.line.len() > MAX_LINE {
                                return Err(HttpError::BadChunk("trailer line too long"));
                            }
                            let empty = matches!(self.line.as_slice(), [] | [b'\r']);
                            self.line.clear();
                            if empty {
                                self.chunk = Chunk::Done;
                            }
                        }
                    }
                }
                Ok(all)
            }
        }
    }

    /// The connection closed: fine for a body that ends there, else [`HttpError::Truncated`].
    pub fn closed(&self) -> Result<(), HttpError> {
        match self.framing {
            Framing::UntilClose => Ok(()),
            _ if self.done() => Ok(()),
            Framing::Length(l) => Err(HttpError::Truncated {
                got: self.written,
                want: Some(l),
            }),
            Framing::Chunked => Err(HttpError::Truncated {
                got: self.written,
                want: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://10.0.2.2:8080/boot/vmlinuz").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("10.0.2.2", 8080, "/boot/vmlinuz")
        );
        assert_eq!(u.to_string(), "http://10.0.2.2:8080/boot/vmlinuz");
        let v = Url::parse("http://boot.example.org").unwrap();
        assert_eq!(
            (v.port, v.path.as_str(), v.authority().as_str()),
            (80, "/", "boot.example.org")
        );
        assert_eq!(Url::parse("http://h?x=1").unwrap().path, "/?x=1");
        for bad in [
            "https://h/",
            "ftp://h/",
            "http://",
            "http://h:0/",
            "http://h:99999/",
            "http://u@h/",
            "http://h/a b",
            "http://h_x/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        let base = Url::parse("http://h:81/pxe/pxelinux.cfg/default").unwrap();
        assert_eq!(
            base.join("../vmlinuz").unwrap().to_string(),
            "http://h:81/pxe/vmlinuz"
        );
        assert_eq!(base.join("/x").unwrap().to_string(), "http://h:81/x");
        assert_eq!(
            base.join("a/./b").unwrap().to_string(),
            "http://h:81/pxe/pxelinux.cfg/a/b"
        );
        assert_eq!(
            base.join("../../../../x").unwrap().to_string(),
            "http://h:81/x"
        );
        assert_eq!(base.join("http://o/y").unwrap().to_string(), "http://o/y");
        assert_eq!(base.join("//o:81/y").unwrap().to_string(), "http://o:81/y");
        assert_eq!(Url::parse("Http://h/k").unwrap().to_string(), "http://h/k");
    }

    #[test]
    fn take_stops_at_the_bodys_end() {
        let mut dst = [0u8; 16];
        let mut b = Body::new(Framing::Length(5), 16).unwrap();
        assert_eq!(b.take(b"hel", &mut dst), Ok(3));
        assert_eq!(b.take(b"loEXTRA", &mut dst), Ok(2));
        assert!(b.done());
        assert_eq!(&dst[..6], b"hello\0");
        let mut b = Body::new(Framing::Chunked, 16).unwrap();
        let n = b.take(b"3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200", &mut dst);
        assert_eq!(n, Ok(13));
        assert!(b.done());
        // `feed` calls the same an error.
        let mut b = Body::new(Framing::Length(2), 16).unwrap();
        assert_eq!(b.feed(b"abc", &mut dst), Err(HttpError::ExtraBytes));
    }

    #[test]
    fn request_text() {
        let u = Url::parse("http://h:8080/k").unwrap();
        let r = request(&u, 0, false, None);
        assert!(request(&u, 0, true, None).starts_with("HEAD /k HTTP/1.1\r\n"));
        assert!(r.starts_with("GET /k HTTP/1.1\r\nHost: h:8080\r\n"), "{r}");
        assert!(r.ends_with("Connection: keep-alive\r\n\r\n"));
        assert!(!r.contains("Range"));
        let ranged = request(&u, 100, false, Some("\"v1\""));
        assert!(
            ranged.contains("Range: bytes=100-\r\nIf-Range: \"v1\"\r\n"),
            "{ranged}"
        );
        assert!(!request(&u, 0, false, Some("\"v1\"")).contains("If-Range"));
    }

    fn head(s: &str) -> Result<Option<(Head, usize)>, HttpError> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn heads() {
        let (h, n) = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!((h.code, h.framing, n), (200, Framing::Length(5), 38));
        assert!(!h.close);
        assert_eq!(head("HTTP/1.1 200 OK\r\nContent-Len").unwrap(), None);
        let (h, _) = head("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.code, h.reason.as_str(), h.close),
            (404, "Not Found", true)
        );
        let (h, _) = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let (h, _) = head("HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.close), (Framing::UntilClose, true));
        let (h, _) =
            head("HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.location.as_deref(), Some("/elsewhere"));
        let (h, _) = head("HTTP/1.1 206 Partial\r\nContent-Range: bytes 100-199/1000\r\nContent-Length: 100\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.range, Some((100, 199, Some(1000))));
        let (h, _) = head("HTTP/1.1 200 OK\r\nETag: W/\"weak\"\r\nLast-Modified: Mon, 07 Dec 2026 08:00:00 GMT\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            h.validator.as_deref(),
            Some("Mon, 07 Dec 2026 08:00:00 GMT")
        );
        let (h, _) = head("HTTP/1.1 200 OK\r\nLast-Modified: x\r\nETag: \"abc\"\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.validator.as_deref(), Some("\"abc\""));
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Range: bytes 9-1/10\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Range: bytes 0-10/10\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Range: bytes 100-199/1000\r\nContent-Length: 99\r\n\r\n",
            "NOTHTTP 200\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
        // Huge heads and header floods.
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(head(&long), Err(HttpError::HeadTooLarge));
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(head(&many), Err(HttpError::HeadTooLarge));
    }

    /// Feeds `input` in pieces of `step` bytes.
    fn run(
        framing: Framing,
        room: usize,
        input: &[u8],
        step: usize,
    ) -> Result<(alloc::vec::Vec<u8>, bool), HttpError> {
        let mut dst = alloc::vec![0u8; room];
        let mut b = Body::new(framing, room as u64)?;
        for piece in input.chunks(step.max(1)) {
            b.feed(piece, &mut dst)?;
        }
        let n = b.written as usize;
        dst.truncate(n);
        Ok((dst, b.done()))
    }

    #[test]
    fn bodies() {
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(
                run(Framing::Length(5), 10, b"hello", step),
                Ok((b"hello".to_vec(), true))
            );
            let chunked = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
            assert_eq!(
                run(Framing::Chunked, 100, chunked, step),
                Ok((b"Wikipedia in\r\n\r\nchunks.".to_vec(), true)),
                "step {step}"
            );
        }
        // Declared too large: refused before anything is written.
        assert_eq!(
            run(Framing::Length(11), 10, b"", 1),
            Err(HttpError::TooLarge { size: 11, room: 10 })
        );
        // More than declared.
        assert_eq!(
            run(Framing::Length(3), 10, b"abcd", 10),
            Err(HttpError::ExtraBytes)
        );
        // A chunk larger than the room, an overflowing size, garbage, data past the last chunk.
        assert!(matches!(
            run(Framing::Chunked, 4, b"5\r\nhello\r\n0\r\n\r\n", 100),
            Err(HttpError::TooLarge { .. })
        ));
        assert!(run(Framing::Chunked, 100, b"fffffffffffffffffffff\r\n", 100).is_err());
        assert!(run(Framing::Chunked, 100, b"zz\r\n", 100).is_err());
        assert!(run(Framing::Chunked, 100, b"1\r\naXY", 100).is_err());
        assert_eq!(
            run(Framing::Chunked, 100, b"0\r\n\r\nmore", 100),
            Err(HttpError::ExtraBytes)
        );
        // An endless chunked stream stops at the destination's end.
        let endless: alloc::vec::Vec<u8> = (0..100)
            .flat_map(|_| b"4\r\nabcd\r\n".iter().copied())
            .collect();
        assert!(matches!(
            run(Framing::Chunked, 64, &endless, 13),
            Err(HttpError::TooLarge { .. })
        ));
        // An endless size line.
        assert!(run(Framing::Chunked, 64, &[b'1'; 5000], 100).is_err());
        // Until close: bounded by the room.
        assert!(matches!(
            run(Framing::UntilClose, 4, b"hello", 1),
            Err(HttpError::TooLarge { .. })
        ));
    }

    #[test]
    fn closed_early() {
        let mut dst = [0u8; 10];
        let mut b = Body::new(Framing::Length(5), 10).unwrap();
        b.feed(b"abc", &mut dst).unwrap();
        assert_eq!(
            b.closed(),
            Err(HttpError::Truncated {
                got: 3,
                want: Some(5)
            })
        );
        let b = Body::new(Framing::UntilClose, 10).unwrap();
        assert_eq!(b.closed(), Ok(()));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any body, chunked at any sizes and fed in any pieces, arrives byte-exact.
        #[test]
        fn chunked_round_trip(
            body in proptest::collection::vec(any::<u8>(), 0..2000),
            sizes in proptest::collection::vec(1usize..300, 1..20),
            step in 1usize..64,
        ) {
            let mut wire = alloc::vec::Vec::new();
            let mut rest = &body[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
                i += 1;
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let mut dst = alloc::vec![0u8; body.len()];
            let mut b = Body::new(Framing::Chunked, body.len() as u64).unwrap();
            for piece in wire.chunks(step) {
                b.feed(piece, &mut dst).unwrap();
            }
            prop_assert!(b.done());
            prop_assert_eq!(&dst[..b.written as usize], &body[..]);
        }

        /// Garbage never panics and never claims more than the room.
        #[test]
        fn garbage(input in proptest::collection::vec(any::<u8>(), 0..600), room in 0usize..64, step in 1usize..32) {
            let _ = parse_head(&input);
            for framing in [Framing::Chunked, Framing::UntilClose, Framing::Length(room as u64 / 2)] {
                let mut dst = alloc::vec![0u8; room];
                let mut b = Body::new(framing, room as u64).unwrap();
                for piece in input.chunks(step) {
                    if b.feed(piece, &mut dst).is_err() {
                        break;
                    }
                }
                prop_assert!(b.written <= room as u64);
            }
        }
    }
}
