//! The crate's error types: what a controller reports ([`HostError`]) and what the card layer
//! makes of it ([`Error`], which names the command).
use core::fmt;

/// What a controller reports for one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// No response within the controller's command timeout.
    CommandTimeout,
    /// The response's CRC7 did not match.
    CommandCrc,
    /// The response's end bit was zero.
    CommandEndBit,
    /// The response carried another command index.
    CommandIndex,
    /// The card sent no data (or stayed busy) within the data timeout.
    DataTimeout,
    /// A data block's CRC16 did not match (or the card reported a bad CRC on a write).
    DataCrc,
    /// A data block's end bit was zero.
    DataEndBit,
    /// The controller did not finish a step within its bound; says which.
    Stuck(&'static str),
    /// The card is not in the slot.
    NoCard,
    /// The controller cannot do what was asked (a clock it cannot make, a buffer that is not
    /// whole blocks); says what.
    Unsupported(&'static str),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::CommandTimeout => f.write_str("no response"),
            HostError::CommandCrc => f.write_str("response CRC error"),
            HostError::CommandEndBit => f.write_str("response end-bit error"),
            HostError::CommandIndex => f.write_str("response index error"),
            HostError::DataTimeout => f.write_str("data timeout"),
            HostError::DataCrc => f.write_str("data CRC error"),
            HostError::DataEndBit => f.write_str("data end-bit error"),
            HostError::Stuck(what) => write!(f, "controller stuck: {what}"),
            HostError::NoCard => f.write_str("no card"),
            HostError::Unsupported(what) => write!(f, "controller cannot {what}"),
        }
    }
}

/// The error bits of an R1 card status (section 4.10.1), printed by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusBits(pub u32);

/// Every R1 bit that reports an error, with its name.
const STATUS_ERRORS: [(u32, &str); 15] = [
    (1 << 31, "OUT_OF_RANGE"),
    (1 << 30, "ADDRESS_ERROR"),
    (1 << 29, "BLOCK_LEN_ERROR"),
    (1 << 28, "ERASE_SEQ_ERROR"),
    (1 << 27, "ERASE_PARAM"),
    (1 << 26, "WP_VIOLATION"),
    (1 << 24, "LOCK_UNLOCK_FAILED"),
    (1 << 23, "COM_CRC_ERROR"),
    (1 << 22, "ILLEGAL_COMMAND"),
    (1 << 21, "CARD_ECC_FAILED"),
    (1 << 20, "CC_ERROR"),
    (1 << 19, "ERROR"),
    (1 << 16, "CSD_OVERWRITE"),
    (1 << 15, "WP_ERASE_SKIP"),
    (1 << 3, "AKE_SEQ_ERROR"),
];

impl StatusBits {
    /// The mask of all error bits.
    pub const ERROR_MASK: u32 = {
        let mut m = 0;
        let mut i = 0;
        while i < STATUS_ERRORS.len() {
            m |= STATUS_ERRORS[i].0;
            i += 1;
        }
        m
    };
    /// The error bits of `status`, if any is set.
    pub fn errors(status: u32) -> Option<StatusBits> {
        let e = status & Self::ERROR_MASK;
        (e != 0).then_some(StatusBits(e))
    }
}

impl fmt::Display for StatusBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in STATUS_ERRORS {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            write!(f, "{:#010x}", self.0)?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to an SD card. `cmd` is the command index (ACMDs are
/// named as such in messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No card in the slot.
    NoCard,
    /// The card did not answer `cmd`.
    Timeout { cmd: Cmd },
    /// The response to `cmd` failed its CRC check.
    Crc { cmd: Cmd },
    /// The response to `cmd` was malformed (index, end bit, check pattern, kind); says how.
    Response { cmd: Cmd, why: &'static str },
    /// The data of `cmd` did not arrive in time.
    DataTimeout { cmd: Cmd },
    /// The data of `cmd` failed its CRC check.
    DataCrc { cmd: Cmd },
    /// The card's status after `cmd` has error bits set.
    CardStatus { cmd: Cmd, status: StatusBits },
    /// The card was still busy after `waited_ms` (power-up in ACMD41, programming after a write).
    Busy { cmd: Cmd, waited_ms: u32 },
    /// The controller failed `cmd` in its own way.
    Host { cmd: Cmd, err: HostError },
    /// Not an SD memory card kexboot can drive; says why.
    Unsupported(&'static str),
    /// `count` blocks at `lba` do not fit a card of `blocks` blocks.
    OutOfRange { lba: u64, count: u64, blocks: u64 },
    /// A buffer of `len` bytes is not a non-zero multiple of 512.
    BadBuffer { len: usize },
    /// The card's write-protect switch is set.
    WriteProtected,
}

/// A command as named in messages: `CMD17` or `ACMD41`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmd {
    pub index: u8,
    pub app: bool,
}

impl Cmd {
    pub const fn new(index: u8) -> Self {
        Cmd { index, app: false }
    }
    pub const fn acmd(index: u8) -> Self {
        Cmd { index, app: true }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = if self.app { "A" } else { "" };
        write!(f, "{a}CMD{}", self.index)
    }
}

impl Error {
    /// The card-level error for a controller error on `cmd`.
    pub fn from_host(cmd: Cmd, err: HostError) -> Self {
        match err {
            HostError::CommandTimeout => Error::Timeout { cmd },
            HostError::CommandCrc => Error::Crc { cmd },
            HostError::CommandEndBit => Error::Response {
                cmd,
                why: "end bit not set",
            },
            HostError::CommandIndex => Error::Response {
                cmd,
                why: "wrong command index",
            },
            HostError::DataTimeout => Error::DataTimeout { cmd },
            HostError::DataCrc => Error::DataCrc { cmd },
            HostError::NoCard => Error::NoCard,
            err => Error::Host { cmd, err },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoCard => f.write_str("sd: no card in the slot"),
            Error::Timeout { cmd } => write!(f, "sd: no response to {cmd}"),
            Error::Crc { cmd } => write!(f, "sd: CRC error in the response to {cmd}"),
            Error::Response { cmd, why } => write!(f, "sd: bad response to {cmd}: {why}"),
            Error::DataTimeout { cmd } => write!(f, "sd: data timeout in {cmd}"),
            Error::DataCrc { cmd } => write!(f, "sd: data CRC error in {cmd}"),
            Error::CardStatus { cmd, status } => {
                write!(f, "sd: card reports {status} after {cmd}")
            }
            Error::Busy { cmd, waited_ms } => {
                write!(f, "sd: card still busy {waited_ms} ms after {cmd}")
            }
            Error::Host { cmd, err } => write!(f, "sd: {cmd}: {err}"),
            Error::Unsupported(why) => write!(f, "sd: unsupported card: {why}"),
            Error::OutOfRange { lba, count, blocks } => write!(
                f,
                "sd: {count} blocks at {lba} are outside the card ({blocks} blocks)"
            ),
            Error::BadBuffer { len } => {
                write!(f, "sd: buffer of {len} bytes is not whole 512-byte blocks")
            }
            Error::WriteProtected => f.write_str("sd: card is write-protected"),
        }
    }
}
