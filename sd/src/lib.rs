//! SD memory cards in SD bus mode: the protocol (card initialisation, addressing, block reads and
//! writes, status checks) over a small [`Host`] trait that a controller driver implements, and
//! the register-level drivers of the controllers kexboot knows, generic over [`regs::Regs`] so
//! their register sequences are host-tested against simulated controllers.
//!
//! The card protocol follows the SD Physical Layer Simplified Specification (version 9.00);
//! section numbers in comments refer to it. Every wait is bounded: waits go through
//! `embedded_hal::delay::DelayNs` and are counted, so a card or controller that never answers
//! ends in a typed [`Error`], never a hang.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod card;
mod error;
pub mod regs;
pub mod sdhci;

pub use sdhci::{Sdhci, SdhciConfig};

pub use card::{Card, CardInfo, CardKind, Options, CMD_DATA_BLOCKS_MAX};
pub use error::{Cmd, Error, HostError, StatusBits};

/// Bytes in one data block. Every transfer kexboot makes uses 512-byte blocks (SDHC/SDXC fix it;
/// SDSC cards are set to it with CMD16).
pub const BLOCK_SIZE: usize = 512;

/// The response a command expects (section 4.9), which tells the host how many bits to receive,
/// whether to check CRC and index, and whether the card signals busy on DAT0 afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// No response (CMD0).
    None,
    /// R1: 48 bits, card status.
    R1,
    /// R1b: R1 followed by busy on DAT0 (CMD7, CMD12).
    R1b,
    /// R2: 136 bits, CID or CSD (CMD2, CMD9, CMD10).
    R2,
    /// R3: 48 bits, OCR; no CRC and no index (ACMD41).
    R3,
    /// R6: 48 bits, published RCA and short status (CMD3).
    R6,
    /// R7: 48 bits, interface condition (CMD8).
    R7,
}

impl ResponseType {
    /// Whether the response carries a valid CRC7 the host should check.
    pub fn has_crc(self) -> bool {
        !matches!(self, ResponseType::None | ResponseType::R3)
    }
    /// Whether the response echoes the command index (R2 and R3 do not).
    pub fn has_index(self) -> bool {
        !matches!(
            self,
            ResponseType::None | ResponseType::R2 | ResponseType::R3
        )
    }
}

/// One command: index (0..=63), 32-bit argument and the response it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    pub index: u8,
    pub arg: u32,
    pub resp: ResponseType,
}

impl Command {
    pub const fn new(index: u8, arg: u32, resp: ResponseType) -> Self {
        Command { index, arg, resp }
    }
}

/// What the card answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// The command had no response.
    None,
    /// Bits 39..8 of a 48-bit response (the card status, OCR, RCA word or R7 word).
    Short(u32),
    /// A 136-bit response as the 128-bit register it carries (CID or CSD) with the register's own
    /// bit numbering: bits 127..8 as received, bits 7..0 (CRC7 and end bit) zero.
    Long(u128),
}

/// The data phase of a command: whole 512-byte blocks to receive or send.
#[derive(Debug)]
pub enum Data<'a> {
    None,
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

/// Width of the data bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusWidth {
    One,
    Four,
}

/// A controller that puts commands on the SD bus. Implementations wait only for a bounded time
/// and report what the controller reports; the protocol (which command when, what a response
/// means) is [`Card`]'s.
pub trait Host {
    /// Whether a card is in the slot (controllers without a detect line say `true`).
    fn card_present(&mut self) -> bool;
    /// Whether the slot's write-protect switch is set (`false` where there is none).
    fn write_protected(&mut self) -> bool;
    /// Sets the bus clock to at most `hz`; returns the clock actually set.
    fn set_clock(&mut self, hz: u32) -> Result<u32, HostError>;
    /// Sets the data bus width on the host side (the card is told with ACMD6 first).
    fn set_bus_width(&mut self, width: BusWidth) -> Result<(), HostError>;
    /// Sends `cmd`, receives its response and, for a data command, moves `data` (whole 512-byte
    /// blocks, `data.len() / 512` of them) and waits for the transfer (and any busy) to end.
    /// Multi-block transfers are stopped by the caller with CMD12.
    fn command(&mut self, cmd: &Command, data: Data<'_>) -> Result<Response, HostError>;
}
