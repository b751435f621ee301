//! TFTP client: RFC 1350 with options (RFC 2347), `blksize` (2348), `tsize`/`timeout` (2349) and
//! `windowsize` (7440). The wire format is parsed through checked views into [`Packet`]; the
//! [`Client`] is a sans-I/O state machine: the caller passes in received packets and the current
//! time in microseconds, and sends whatever [`Action::Send`] hands back.

use alloc::{string::String, vec::Vec};
use core::fmt;

/// Read request.
pub const OP_RRQ: u16 = 1;
/// Write request (never sent by this client).
pub const OP_WRQ: u16 = 2;
/// Data block.
pub const OP_DATA: u16 = 3;
/// Acknowledgement.
pub const OP_ACK: u16 = 4;
/// Error.
pub const OP_ERROR: u16 = 5;
/// Option acknowledgement.
pub const OP_OACK: u16 = 6;

/// Largest block size allowed by RFC 2348.
pub const MAX_BLKSIZE: u16 = 65464;
/// Smallest block size allowed by RFC 2348.
pub const MIN_BLKSIZE: u16 = 8;
/// Largest packet we accept: a DATA header plus the largest block.
pub const MAX_PACKET: usize = 4 + MAX_BLKSIZE as usize;
/// Retransmissions of one packet before the transfer fails with [`Error::Timeout`].
pub const MAX_RETRIES: u32 = 6;
/// Retransmission timeout used when no `timeout` option is requested.
pub const DEFAULT_TIMEOUT_US: u64 = 1_000_000;
/// Ceiling of the exponential backoff.
pub const MAX_RTO_US: u64 = 8_000_000;

/// TFTP error codes sent in ERROR packets.
pub mod code {
    /// Not defined, see message.
    pub const UNDEFINED: u16 = 0;
    /// File not found.
    pub const FILE_NOT_FOUND: u16 = 1;
    /// Access violation.
    pub const ACCESS_VIOLATION: u16 = 2;
    /// Disk full or allocation exceeded.
    pub const DISK_FULL: u16 = 3;
    /// Illegal TFTP operation.
    pub const ILLEGAL: u16 = 4;
    /// Unknown transfer ID.
    pub const UNKNOWN_TID: u16 = 5;
    /// Option negotiation refused (RFC 2347).
    pub const OPTION_REFUSED: u16 = 8;
}

/// Everything that can go wrong in parsing or in a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The packet ended before `what` was complete.
    Truncated { what: &'static str, len: usize },
    /// A string field had no NUL terminator or was not UTF-8.
    BadString { what: &'static str, offset: usize },
    /// Unknown opcode, or one that a client cannot receive in its current state.
    Opcode(u16),
    /// A packet or a DATA payload was longer than allowed.
    Oversized { len: usize, max: usize },
    /// DATA with a block number outside both the current window and the past.
    UnexpectedBlock { expected: u16, found: u16 },
    /// The server's OACK carried an option the client did not ask for (or twice).
    UnexpectedOption(String),
    /// The server's OACK carried a value outside what was requested.
    BadOption { name: String, value: String },
    /// The server sent an ERROR packet.
    Remote { code: u16, message: String },
    /// The file (announced by `tsize`, or its data) does not fit the destination.
    TooLarge { size: u64, capacity: usize },
    /// No answer after the bounded number of retransmissions.
    Timeout { retries: u32 },
    /// `on_packet`/`on_tick` called before `start`.
    NotStarted,
}

impl Error {
    /// Whether the transfer is over (the client returns this error from then on).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::UnexpectedOption(_)
                | Error::BadOption { .. }
                | Error::Remote { .. }
                | Error::TooLarge { .. }
                | Error::Timeout { .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { what, len } => {
                write!(f, "tftp: packet of {len} bytes too short for {what}")
            }
            Error::BadString { what, offset } => {
                write!(
                    f,
                    "tftp: {what} at offset {offset} is not a NUL-terminated UTF-8 string"
                )
            }
            Error::Opcode(op) => write!(f, "tftp: unexpected opcode {op}"),
            Error::Oversized { len, max } => write!(f, "tftp: {len} bytes, expected at most {max}"),
            Error::UnexpectedBlock { expected, found } => {
                write!(f, "tftp: DATA block {found}, expected {expected} or a block of the current window")
            }
            Error::UnexpectedOption(name) => write!(
                f,
                "tftp: server acknowledged option '{name}' that was not requested"
            ),
            Error::BadOption { name, value } => write!(
                f,
                "tftp: server granted {name}={value}, outside the requested range"
            ),
            Error::Remote { code, message } => write!(f, "tftp: server error {code}: {message}"),
            Error::TooLarge { size, capacity } => {
                write!(
                    f,
                    "tftp: file needs at least {size} bytes, destination holds {capacity}"
                )
            }
            Error::Timeout { retries } => {
                write!(f, "tftp: no answer after {retries} retransmissions")
            }
            Error::NotStarted => write!(f, "tftp: transfer not started"),
        }
    }
}

/// A parsed TFTP packet borrowing from the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request with RFC 2347 options (name, value).
    Rrq {
        filename: &'a str,
        mode: &'a str,
        options: Vec<(&'a str, &'a str)>,
    },
    /// Data block (payload at most the negotiated block size).
    Data { block: u16, data: &'a [u8] },
    /// Acknowledgement of a block (0 acknowledges an OACK).
    Ack { block: u16 },
    /// Error code and message.
    Error { code: u16, message: &'a str },
    /// Option acknowledgement.
    Oack { options: Vec<(&'a str, &'a str)> },
}

fn be16(b: &[u8], what: &'static str) -> Result<u16, Error> {
    match b {
        [h, l, ..] => Ok(u16::from_be_bytes([*h, *l])),
        _ => Err(Error::Truncated { what, len: b.len() }),
    }
}

/// Splits `b` (starting at packet offset `base`) into NUL-terminated strings.
fn cstrings<'a>(b: &'a [u8], base: usize, what: &'static str) -> Result<Vec<&'a str>, Error> {
    let mut out = Vec::new();
    let mut rest = b;
    let mut off = base;
    // Each round consumes at least one byte, so this loop is bounded by the packet length.
    while !rest.is_empty() {
        let nul = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or(Error::BadString { what, offset: off })?;
        let s = core::str::from_utf8(&rest[..nul])
            .map_err(|_| Error::BadString { what, offset: off })?;
        out.push(s);
        rest = &rest[nul + 1..];
        off += nul + 1;
    }
    Ok(out)
}

fn pairs<'a>(strs: &[&'a str], base: usize) -> Result<Vec<(&'a str, &'a str)>, Error> {
    if !strs.len().is_multiple_of(2) {
        return Err(Error::BadString {
            what: "option value",
            offset: base,
        });
    }
    Ok(strs.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

impl<'a> Packet<'a> {
    /// Parses one UDP payload.
    pub fn parse(b: &'a [u8]) -> Result<Self, Error> {
        if b.len() > MAX_PACKET {
            return Err(Error::Oversized {
                len: b.len(),
                max: MAX_PACKET,
            });
        }
        let op = be16(b, "opcode")?;
        let body = &b[2..];
        match op {
            OP_RRQ => {
                let s = cstrings(body, 2, "RRQ string")?;
                if s.len() < 2 {
                    return Err(Error::Truncated {
                        what: "RRQ filename and mode",
                        len: b.len(),
                    });
                }
                Ok(Packet::Rrq {
                    filename: s[0],
                    mode: s[1],
                    options: pairs(&s[2..], 2)?,
                })
            }
            OP_DATA => Ok(Packet::Data {
                block: be16(body, "DATA block number")?,
                data: &body[2..],
            }),
            OP_ACK => {
                let block = be16(body, "ACK block number")?;
                if body.len() != 2 {
                    return Err(Error::Oversized {
                        len: b.len(),
                        max: 4,
                    });
                }
                Ok(Packet::Ack { block })
            }
            OP_ERROR => {
                let code = be16(body, "ERROR code")?;
                let s = cstrings(&body[2..], 4, "ERROR message")?;
                match s.as_slice() {
                    [message] => Ok(Packet::Error { code, message }),
                    [] => Err(Error::Truncated {
                        what: "ERROR message",
                        len: b.len(),
                    }),
                    _ => Err(Error::BadString {
                        what: "ERROR message (trailing data)",
                        offset: 4,
                    }),
                }
            }
            OP_OACK => Ok(Packet::Oack {
                options: pairs(&cstrings(body, 2, "OACK option")?, 2)?,
            }),
            other => Err(Error::Opcode(other)),
        }
    }

    /// The opcode of this packet.
    pub fn opcode(&self) -> u16 {
        match self {
            Packet::Rrq { .. } => OP_RRQ,
            Packet::Data { .. } => OP_DATA,
            Packet::Ack { .. } => OP_ACK,
            Packet::Error { .. } => OP_ERROR,
            Packet::Oack { .. } => OP_OACK,
        }
    }

    /// Serialises the packet. Strings must not contain NUL (the client checks its own).
    pub fn emit(&self) -> Vec<u8> {
        let mut v = Vec::from(self.opcode().to_be_bytes());
        let put = |v: &mut Vec<u8>, s: &str| {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
        };
        match self {
            Packet::Rrq {
                filename,
                mode,
                options,
            } => {
                put(&mut v, filename);
                put(&mut v, mode);
                for (n, val) in options {
                    put(&mut v, n);
                    put(&mut v, val);
                }
            }
            Packet::Data { block, data } => {
                v.extend_from_slice(&block.to_be_bytes());
                v.extend_from_slice(data);
            }
            Packet::Ack { block } => v.extend_from_slice(&block.to_be_bytes()),
            Packet::Error { code, message } => {
                v.extend_from_slice(&code.to_be_bytes());
                put(&mut v, message);
            }
            Packet::Oack { options } => {
                for (n, val) in options {
                    put(&mut v, n);
                    put(&mut v, val);
                }
            }
        }
        v
    }
}

/// Options requested in the RRQ; `None`/`false` means not requested.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// RFC 2348 block size (clamped to 8..=65464).
    pub blksize: Option<u16>,
    /// RFC 2349 transfer size: ask the server for the file size up front.
    pub tsize: bool,
    /// RFC 2349 timeout in seconds (1..=255); also the client's base retransmission timeout.
    pub timeout: Option<u8>,
    /// RFC 7440 window size (at least 1).
    pub windowsize: Option<u16>,
}

/// What the caller should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this UDP payload to the server.
    Send(Vec<u8>),
    /// Nothing to send; call `on_tick` by [`Client::deadline`].
    Wait,
    /// The file is complete (`size` bytes in the destination); send `ack`, the final ACK.
    Done { size: usize, ack: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    Requested,
    Transfer,
    Done,
    Failed(Error),
}

/// Sans-I/O TFTP read (download) client.
#[derive(Debug, Clone)]
pub struct Client {
    filename: String,
    opts: Options,
    capacity: usize,
    state: State,
    blksize: usize,
    granted_window: u16,
    window: u16,
    tsize: Option<u64>,
    /// Absolute (non-wrapping) number of the next block expected, starting at 1.
    next_block: u64,
    since_ack: u16,
    clean: bool,
    last_sent: Vec<u8>,
    last_activity_us: u64,
    base_rto_us: u64,
    rto_us: u64,
    retries: u32,
    last_dup_ack_us: Option<u64>,
    /// `next_block` when the last re-ACK was sent: one re-ACK per stall point at once, then at
    /// most one per timeout while the transfer stays stuck there.
    dup_ack_block: Option<u64>,
    size: usize,
    abort: Option<Vec<u8>>,
}

impl Client {
    /// A client that will fetch `filename` into a destination of at most `dest_capacity` bytes.
    pub fn new(filename: &str, options: Options, dest_capacity: usize) -> Result<Self, Error> {
        if filename.is_empty() || filename.contains('\0') {
            return Err(Error::BadString {
                what: "filename",
                offset: 0,
            });
        }
        let opts = Options {
            blksize: options.blksize.map(|b| b.clamp(MIN_BLKSIZE, MAX_BLKSIZE)),
            timeout: options.timeout.map(|t| t.max(1)),
            windowsize: options.windowsize.map(|w| w.max(1)),
            tsize: options.tsize,
        };
        let base = opts
            .timeout
            .map_or(DEFAULT_TIMEOUT_US, |t| u64::from(t) * 1_000_000);
        Ok(Client {
            filename: String::from(filename),
            opts,
            capacity: dest_capacity,
            state: State::Idle,
            blksize: 512,
            granted_window: 1,
            window: 1,
            tsize: None,
            next_block: 1,
            since_ack: 0,
            clean: true,
            last_sent: Vec::new(),
            last_activity_us: 0,
            base_rto_us: base,
            rto_us: base,
            retries: 0,
            last_dup_ack_us: None,
            dup_ack_block: None,
            size: 0,
            abort: None,
        })
    }

    /// Starts (or restarts) the transfer: returns the RRQ to send.
    pub fn start(&mut self, now_us: u64) -> Vec<u8> {
        let mut bufs: Vec<(&str, String)> = Vec::new();
        if let Some(b) = self.opts.blksize {
            bufs.push(("blksize", alloc::format!("{b}")));
        }
        if self.opts.tsize {
            bufs.push(("tsize", String::from("0")));
        }
        if let Some(t) = self.opts.timeout {
            bufs.push(("timeout", alloc::format!("{t}")));
        }
        if let Some(w) = self.opts.windowsize {
            bufs.push(("windowsize", alloc::format!("{w}")));
        }
        let options = bufs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let rrq = Packet::Rrq {
            filename: &self.filename,
            mode: "octet",
            options,
        }
        .emit();
        let fresh = Client::new(&self.filename, self.opts, self.capacity);
        if let Ok(fresh) = fresh {
            *self = fresh;
        }
        self.state = State::Requested;
        self.sent(rrq.clone(), now_us);
        rrq
    }

    /// Bytes written so far (contiguous from the start of the destination).
    pub fn received(&self) -> usize {
        self.size
    }

    /// File size announced by the server (`tsize`), if any.
    pub fn tsize(&self) -> Option<u64> {
        self.tsize
    }

    /// Negotiated block size.
    pub fn blksize(&self) -> usize {
        self.blksize
    }

    /// Current adaptive window, and the window granted by the server.
    pub fn window(&self) -> (u16, u16) {
        (self.window, self.granted_window)
    }

    /// When `on_tick` must be called next, while the transfer is in progress.
    pub fn deadline(&self) -> Option<u64> {
        match self.state {
            State::Requested | State::Transfer => {
                Some(self.last_activity_us.saturating_add(self.rto_us))
            }
            _ => None,
        }
    }

    /// After a fatal error: the ERROR packet to send to the server, if one is due.
    pub fn take_abort(&mut self) -> Option<Vec<u8>> {
        self.abort.take()
    }

    fn sent(&mut self, pkt: Vec<u8>, now_us: u64) {
        self.last_sent = pkt;
        self.last_activity_us = now_us;
    }

    fn fail(&mut self, e: Error, abort: Option<(u16, &str)>) -> Error {
        self.abort = abort.map(|(code, message)| Packet::Error { code, message }.emit());
        self.state = State::Failed(e.clone());
        e
    }

    fn ack_packet(&self) -> Vec<u8> {
        let block = (self.next_block.wrapping_sub(1) & 0xffff) as u16;
        Packet::Ack { block }.emit()
    }

    fn send_ack(&mut self, now_us: u64) -> Action {
        let ack = self.ack_packet();
        self.since_ack = 0;
        self.sent(ack.clone(), now_us);
        Action::Send(ack)
    }

    /// Re-ACK of the last good block for duplicates and gaps: at once for a new stall point
    /// (so the server restarts its window from there without waiting for a timeout), then at
    /// most once per timeout while stuck at the same block; the rest of a window in flight
    /// after a gap gets no answer, so duplicates never multiply (no sorcerer's apprentice).
    fn dup_ack(&mut self, now_us: u64) -> Action {
        let same_stall = self.dup_ack_block == Some(self.next_block);
        let due = !same_stall
            || self
                .last_dup_ack_us
                .is_none_or(|t| now_us.saturating_sub(t) >= self.rto_us);
        if !due {
            return Action::Wait;
        }
        self.dup_ack_block = Some(self.next_block);
        self.last_dup_ack_us = Some(now_us);
        // The retransmission clock is left alone: only progress (an in-order block) or a
        // timeout moves it, so a stream of duplicates cannot keep a dead transfer alive.
        let ack = self.ack_packet();
        if self.state != State::Done {
            self.since_ack = 0;
            self.last_sent = ack.clone();
        }
        Action::Send(ack)
    }

    /// Handles one packet from the server, writing DATA straight into `dest`.
    ///
    /// Errors for which [`Error::is_fatal`] is false reject only this packet.
    pub fn on_packet(&mut self, pkt: &[u8], now_us: u64, dest: &mut [u8]) -> Result<Action, Error> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Idle => return Err(Error::NotStarted),
            _ => {}
        }
        match Packet::parse(pkt)? {
            Packet::Error { code, message } => Err(self.fail(
                Error::Remote {
                    code,
                    message: String::from(message),
                },
                None,
            )),
            Packet::Oack { options } => match self.state {
                State::Requested => self.accept_oack(&options, now_us),
                // Our ACK 0 was lost and the server repeats its OACK.
                State::Transfer if self.next_block == 1 => Ok(self.dup_ack(now_us)),
                _ => Err(Error::Opcode(OP_OACK)),
            },
            Packet::Data { block, data } => self.on_data(block, data, now_us, dest),
            other => Err(Error::Opcode(other.opcode())),
        }
    }

    fn accept_oack(&mut self, options: &[(&str, &str)], now_us: u64) -> Result<Action, Error> {
        let mut seen = [false; 4];
        for &(name, value) in options {
            let idx = ["blksize", "tsize", "timeout", "windowsize"]
                .iter()
                .position(|o| o.eq_ignore_ascii_case(name));
            let requested = match idx {
                Some(0) => self.opts.blksize.is_some(),
                Some(1) => self.opts.tsize,
                Some(2) => self.opts.timeout.is_some(),
                Some(3) => self.opts.windowsize.is_some(),
                _ => false,
            };
            let Some(i) = idx.filter(|&i| requested && !seen[i]) else {
                let e = Error::UnexpectedOption(String::from(name));
                return Err(self.fail(e, Some((code::OPTION_REFUSED, "unexpected option"))));
            };
            seen[i] = true;
            let bad = || Error::BadOption {
                name: String::from(name),
                value: String::from(value),
            };
            let Ok(n) = value.parse::<u64>() else {
                return Err(self.fail(bad(), Some((code::OPTION_REFUSED, "bad option value"))));
            };
            let ok = match i {
                0 => {
                    n >= u64::from(MIN_BLKSIZE) && n <= u64::from(self.opts.blksize.unwrap_or(512))
                }
                1 => true,
                2 => Some(n) == self.opts.timeout.map(u64::from),
                _ => n >= 1 && n <= u64::from(self.opts.windowsize.unwrap_or(1)),
            };
            if !ok {
                return Err(self.fail(bad(), Some((code::OPTION_REFUSED, "bad option value"))));
            }
            match i {
                0 => self.blksize = n as usize,
                1 => {
                    self.tsize = Some(n);
                    if n > self.capacity as u64 {
                        let e = Error::TooLarge {
                            size: n,
                            capacity: self.capacity,
                        };
                        return Err(
                            self.fail(e, Some((code::DISK_FULL, "file too large for destination")))
                        );
                    }
                }
                2 => {}
                _ => {
                    self.granted_window = n as u16;
                    self.window = n as u16;
                }
            }
        }
        self.state = State::Transfer;
        self.retries = 0;
        Ok(self.send_ack(now_us))
    }

    fn on_data(
        &mut self,
        block: u16,
        data: &[u8],
        now_us: u64,
        dest: &mut [u8],
    ) -> Result<Action, Error> {
        if self.state == State::Requested {
            // The server ignored our options: RFC 1350 defaults.
            self.state = State::Transfer;
            self.retries = 0;
        }
        if data.len() > self.blksize {
            return Err(Error::Oversized {
                len: data.len(),
                max: self.blksize,
            });
        }
        let expected = (self.next_block & 0xffff) as u16;
        let diff = block.wrapping_sub(expected);
        if self.state == State::Done {
            // Only the final block can legitimately be repeated: its ACK was lost.
            return Ok(if diff >= 0x8000 {
                self.dup_ack(now_us)
            } else {
                Action::Wait
            });
        }
        if diff != 0 {
            if diff < self.granted_window || diff >= 0x8000 {
                // A gap inside the window, or an old duplicate.
                self.clean = false;
                return Ok(self.dup_ack(now_us));
            }
            return Err(Error::UnexpectedBlock {
                expected,
                found: block,
            });
        }
        let cap = self.capacity.min(dest.len());
        let offset = (self.next_block - 1).saturating_mul(self.blksize as u64);
        let end = offset.saturating_add(data.len() as u64);
        if end > cap as u64 {
            let e = Error::TooLarge {
                size: end,
                capacity: cap,
            };
            return Err(self.fail(e, Some((code::DISK_FULL, "file too large for destination"))));
        }
        // `end <= cap <= dest.len()`, so both fit in usize.
        let (offset, end) = (offset as usize, end as usize);
        if let Some(slot) = dest.get_mut(offset..end) {
            slot.copy_from_slice(data);
        }
        self.size = end;
        self.next_block += 1;
        self.since_ack += 1;
        self.retries = 0;
        self.rto_us = self.base_rto_us;
        self.last_activity_us = now_us;
        if data.len() < self.blksize {
            self.state = State::Done;
            let ack = self.ack_packet();
            self.sent(ack.clone(), now_us);
            return Ok(Action::Done { size: end, ack });
        }
        if self.since_ack >= self.window {
            if self.clean {
                self.window = self.window.saturating_add(1).min(self.granted_window);
            }
            self.clean = true;
            return Ok(self.send_ack(now_us));
        }
        Ok(Action::Wait)
    }

    /// Drives retransmissions: call at [`Client::deadline`] (calling earlier is harmless).
    pub fn on_tick(&mut self, now_us: u64) -> Result<Action, Error> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Idle => return Err(Error::NotStarted),
            State::Done => return Ok(Action::Wait),
            _ => {}
        }
        if now_us < self.last_activity_us.saturating_add(self.rto_us) {
            return Ok(Action::Wait);
        }
        if self.retries >= MAX_RETRIES {
            let e = Error::Timeout {
                retries: self.retries,
            };
            return Err(self.fail(e, Some((code::UNDEFINED, "timeout"))));
        }
        self.retries += 1;
        self.rto_us = self.rto_us.saturating_mul(2).min(MAX_RTO_US);
        self.window = (self.window / 2).max(1);
        self.clean = false;
        if self.state == State::Transfer {
            return Ok(self.send_ack(now_us));
        }
        let pkt = self.last_sent.clone();
        self.sent(pkt.clone(), now_us);
        Ok(Action::Send(pkt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(block: u16, d: &[u8]) -> Vec<u8> {
        Packet::Data { block, data: d }.emit()
    }

    fn oack(opts: &[(&str, &str)]) -> Vec<u8> {
        Packet::Oack {
            options: opts.to_vec(),
        }
        .emit()
    }

    #[test]
    fn wire_roundtrip() {
        let pkts = [
            Packet::Rrq {
                filename: "a/b",
                mode: "octet",
                options: alloc::vec![("blksize", "1468"), ("tsize", "0")],
            },
            Packet::Data {
                block: 7,
                data: b"hello",
            },
            Packet::Ack { block: 65535 },
            Packet::Error {
                code: 1,
                message: "File not found",
            },
            Packet::Oack {
                options: alloc::vec![("windowsize", "16")],
            },
        ];
        for p in pkts {
            assert_eq!(Packet::parse(&p.emit()), Ok(p.clone()));
        }
    }

    #[test]
    fn malformed_packets_are_typed_errors() {
        assert!(matches!(Packet::parse(&[0]), Err(Error::Truncated { .. })));
        assert!(matches!(
            Packet::parse(&[0, 3, 1]),
            Err(Error::Truncated { .. })
        ));
        assert_eq!(Packet::parse(&[0, 9, 0, 0]), Err(Error::Opcode(9)));
        assert!(matches!(
            Packet::parse(&[0, 5, 0, 1, b'x']),
            Err(Error::BadString { .. })
        ));
        assert!(matches!(
            Packet::parse(&[0, 6, b'a', 0]),
            Err(Error::BadString { .. })
        ));
        assert!(matches!(
            Packet::parse(&[0, 4, 0, 1, 2]),
            Err(Error::Oversized { .. })
        ));
        assert!(matches!(
            Packet::parse(&[0u8; MAX_PACKET + 1]),
            Err(Error::Oversized { .. })
        ));
    }

    fn started(opts: Options, cap: usize) -> Client {
        let mut c = Client::new("f", opts, cap).unwrap();
        c.start(0);
        c
    }

    #[test]
    fn hostile_packets_to_client() {
        let mut dest = [0u8; 4096];
        let mut c = started(Options::default(), 4096);
        assert!(matches!(
            c.on_packet(&[0, 3], 1, &mut dest),
            Err(Error::Truncated { .. })
        ));
        assert_eq!(
            c.on_packet(&[0, 42, 0, 1], 1, &mut dest),
            Err(Error::Opcode(42))
        );
        assert_eq!(
            c.on_packet(&Packet::Ack { block: 1 }.emit(), 1, &mut dest),
            Err(Error::Opcode(OP_ACK))
        );
        assert_eq!(
            c.on_packet(&data(100, &[1; 512]), 1, &mut dest),
            Err(Error::UnexpectedBlock {
                expected: 1,
                found: 100
            })
        );
        assert_eq!(
            c.on_packet(&data(1, &[1; 600]), 1, &mut dest),
            Err(Error::Oversized { len: 600, max: 512 })
        );
        assert!(dest.iter().all(|&b| b == 0), "rejected packets wrote data");
        // Non-fatal: a good block is still accepted.
        assert_eq!(
            c.on_packet(&data(1, &[7; 512]), 2, &mut dest),
            Ok(Action::Send(Packet::Ack { block: 1 }.emit()))
        );
        assert_eq!(&dest[..512], &[7; 512]);
    }

    #[test]
    fn unasked_oack_option_is_refused_with_error_8() {
        let mut dest = [0u8; 16];
        let mut c = started(
            Options {
                blksize: Some(1024),
                ..Default::default()
            },
            16,
        );
        let e = c
            .on_packet(
                &oack(&[("blksize", "1024"), ("windowsize", "4")]),
                1,
                &mut dest,
            )
            .unwrap_err();
        assert_eq!(e, Error::UnexpectedOption("windowsize".into()));
        let abort = c.take_abort().unwrap();
        assert!(matches!(
            Packet::parse(&abort),
            Ok(Packet::Error {
                code: code::OPTION_REFUSED,
                ..
            })
        ));
        // Fatal: later packets get the same error.
        assert_eq!(c.on_packet(&data(1, &[0; 4]), 2, &mut dest), Err(e));
        let mut c = started(
            Options {
                blksize: Some(1024),
                ..Default::default()
            },
            16,
        );
        assert!(matches!(
            c.on_packet(&oack(&[("blksize", "2048")]), 1, &mut dest),
            Err(Error::BadOption { .. })
        ));
        let mut c = started(
            Options {
                blksize: Some(1024),
                ..Default::default()
            },
            16,
        );
        let dup = oack(&[("blksize", "512"), ("BLKSIZE", "512")]);
        assert!(matches!(
            c.on_packet(&dup, 1, &mut dest),
            Err(Error::UnexpectedOption(_))
        ));
    }

    #[test]
    fn tsize_too_large_refused_before_data() {
        let mut dest = [0u8; 100];
        let mut c = started(
            Options {
                tsize: true,
                ..Default::default()
            },
            100,
        );
        let e = c
            .on_packet(&oack(&[("tsize", "101")]), 1, &mut dest)
            .unwrap_err();
        assert_eq!(
            e,
            Error::TooLarge {
                size: 101,
                capacity: 100
            }
        );
        assert!(matches!(
            Packet::parse(&c.take_abort().unwrap()),
            Ok(Packet::Error {
                code: code::DISK_FULL,
                ..
            })
        ));
    }

    #[test]
    fn data_beyond_destination_refused_and_rest_intact() {
        let mut buf = [0xAAu8; 2000];
        let mut c = started(Options::default(), 1000);
        let dest = &mut buf[..1000];
        assert!(matches!(
            c.on_packet(&data(1, &[1; 512]), 1, dest),
            Ok(Action::Send(_))
        ));
        let e = c.on_packet(&data(2, &[2; 512]), 2, dest).unwrap_err();
        assert_eq!(
            e,
            Error::TooLarge {
                size: 1024,
                capacity: 1000
            }
        );
        assert!(buf[..512].iter().all(|&b| b == 1));
        assert!(
            buf[512..].iter().all(|&b| b == 0xAA),
            "bytes past the accepted data were written"
        );
    }

    #[test]
    fn silent_server_times_out_with_backoff() {
        let mut c = started(Options::default(), 10);
        let mut sends = Vec::new();
        let mut now = 0;
        let err = loop {
            now += 100_000;
            assert!(now < 1_000_000_000, "never timed out");
            match c.on_tick(now) {
                Ok(Action::Send(p)) => sends.push((now, p)),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(
            err,
            Error::Timeout {
                retries: MAX_RETRIES
            }
        );
        assert_eq!(sends.len(), MAX_RETRIES as usize);
        assert!(sends
            .iter()
            .all(|(_, p)| matches!(Packet::parse(p), Ok(Packet::Rrq { .. }))));
        let gaps: Vec<u64> = sends.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(
            gaps.windows(2).all(|g| g[1] >= g[0]) && gaps[0] < *gaps.last().unwrap(),
            "no backoff: {gaps:?}"
        );
    }

    #[test]
    fn duplicates_answered_at_most_once_per_timeout() {
        let mut dest = [0u8; 4096];
        let mut c = started(Options::default(), 4096);
        c.on_packet(&data(1, &[1; 512]), 10, &mut dest).unwrap();
        let dup = data(1, &[1; 512]);
        let first = c.on_packet(&dup, 20, &mut dest).unwrap();
        assert!(matches!(first, Action::Send(_)));
        for t in 21..100 {
            assert_eq!(c.on_packet(&dup, t, &mut dest), Ok(Action::Wait));
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 1..20),
                                    win in 1u16..8, oack_first in any::<bool>()) {
            let mut dest = [0u8; 2048];
            let mut c = started(Options { blksize: Some(600), tsize: true, timeout: Some(1), windowsize: Some(win) }, 2048);
            if oack_first {
                let _ = c.on_packet(&oack(&[("blksize", "600"), ("windowsize", "4")]), 1, &mut dest);
            }
            for (i, p) in pkts.iter().enumerate() {
                let mut p = p.clone();
                if p.len() >= 2 && i % 2 == 0 { p[0] = 0; p[1] = (p[1] % 7).max(1); }
                let _ = c.on_packet(&p, i as u64, &mut dest);
                let _ = c.on_tick(i as u64 * 500_000);
                let _ = Packet::parse(&p);
            }
        }
    }

    /// A server (or a spoofer) repeating an old block forever cannot keep a transfer alive:
    /// duplicates are answered, but only progress moves the retransmission clock.
    #[test]
    fn duplicate_flood_still_times_out() {
        let mut c = Client::new("f", Options::default(), 1 << 20).unwrap();
        let _ = c.start(0);
        let block1 = Packet::Data {
            block: 1,
            data: &[7u8; 512],
        }
        .emit();
        let mut dest = vec![0u8; 1 << 20];
        assert!(c.on_packet(&block1, 0, &mut dest).is_ok());
        let mut now = 0u64;
        let mut acks = 0;
        let end = loop {
            now += 1_000;
            assert!(now < 200_000_000, "still alive after 200 s of duplicates");
            if let Ok(Action::Send(_)) = c.on_packet(&block1, now, &mut dest) {
                acks += 1;
            }
            if let Err(e) = c.on_tick(now) {
                break e;
            }
        };
        assert_eq!(
            end,
            Error::Timeout {
                retries: MAX_RETRIES
            }
        );
        assert!(acks > 0, "duplicates were re-ACKed");
        assert_eq!(c.received(), 512);
    }
}
