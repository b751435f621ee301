//! One SD memory card: the initialisation state machine (section 4.2, figure 4-2), the data
//! transfer commands with their status checks, and [`kexboot_fs::BlockDevice`] over them.
use embedded_hal::delay::DelayNs;
use sdio_host::common_cmd::{self, Cmd as RawCmd, Resp};
use sdio_host::sd::{CSD, OCR, SD};
use sdio_host::sd_cmd;

use crate::error::{Cmd, Error, StatusBits};
use crate::{BusWidth, Command, Data, Host, Response, ResponseType, BLOCK_SIZE};

/// Clock during identification (section 4.2: at most 400 kHz).
const IDENT_CLOCK_HZ: u32 = 400_000;
/// Default-speed clock (section 6.6.3: up to 25 MHz).
const DEFAULT_SPEED_HZ: u32 = 25_000_000;
/// CMD8 argument: VHS = 2.7-3.6 V (bits 11..8 = 1) and the check pattern 0xAA (section 4.3.13).
const CMD8_VHS_27_36: u8 = 0x1;
const CMD8_CHECK_PATTERN: u8 = 0xAA;
/// ACMD41 voltage window: 2.7-3.6 V, OCR bits 23..15 (table 5-1).
const OCR_VOLTAGE_WINDOW: u16 = 0x1FF;
/// The card's power-up may take up to 1 s (section 4.2.3); ACMD41 is repeated every 10 ms.
const ACMD41_TIMEOUT_MS: u32 = 1000;
const ACMD41_POLL_MS: u32 = 10;
/// Time the card needs after power/clock on before CMD0: 74 clocks at 400 kHz is 185 us; 1 ms.
const POWER_UP_DELAY_US: u32 = 1000;
/// Bound on the card's busy (programming) time after a write: 250 ms for SDHC, 500 ms for SDXC
/// (section 4.6.2.2); the larger is used.
const WRITE_BUSY_TIMEOUT_MS: u32 = 500;
const STATUS_POLL_US: u32 = 100;
/// CMD3 may publish RCA 0, which is reserved; the card is asked again (section 4.2.2).
const RCA_ATTEMPTS: usize = 3;
/// R1 CURRENT_STATE (bits 12..9) and READY_FOR_DATA (bit 8).
const R1_STATE_SHIFT: u32 = 9;
const R1_STATE_MASK: u32 = 0xF;
const R1_STATE_TRAN: u32 = 4;
const R1_READY_FOR_DATA: u32 = 1 << 8;
/// R6 carries status bits 23, 22, 19 in its bits 15, 14, 13 (section 4.9.5).
const R6_ERROR_BITS: [(u32, u32); 3] = [(1 << 15, 1 << 23), (1 << 14, 1 << 22), (1 << 13, 1 << 19)];
/// OCR bit 30: card capacity status (CCS), 1 = SDHC/SDXC (block addressed).
const OCR_CCS: u32 = 1 << 30;
/// Largest number of blocks one CMD18/CMD25 moves (an SDHCI block count is 16 bits; 1 MiB keeps
/// every controller in range).
pub const CMD_DATA_BLOCKS_MAX: usize = 2048;

/// Standard capacity (byte addressed, up to 2 GB) or high/extended capacity (block addressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    /// SDSC, physical layer 1.x (no answer to CMD8).
    SdscV1,
    /// SDSC, physical layer 2.0 or later.
    SdscV2,
    /// SDHC or SDXC.
    Sdhc,
}

/// What initialisation learnt about the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardInfo {
    pub kind: CardKind,
    pub rca: u16,
    /// Capacity in 512-byte blocks.
    pub blocks: u64,
    /// The CID register (manufacturer, product name, serial).
    pub cid: u128,
    /// Bus clock after initialisation.
    pub clock_hz: u32,
    pub bus_width: BusWidth,
}

/// Choices for initialisation.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Switch to the 4-bit bus (ACMD6); every SD memory card supports it (section 3.6.3 says 1
    /// and 4 bits are mandatory).
    pub four_bit: bool,
    /// Upper bound on the transfer clock (default speed is 25 MHz).
    pub max_clock_hz: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            four_bit: true,
            max_clock_hz: DEFAULT_SPEED_HZ,
        }
    }
}

/// An initialised SD card behind host `H`, with `D` for bounded waits.
pub struct Card<H: Host, D: DelayNs> {
    host: H,
    delay: D,
    info: CardInfo,
    last_error: Option<Error>,
}

fn command<R: Resp>(raw: RawCmd<R>, resp: ResponseType) -> Command {
    Command::new(raw.cmd, raw.arg, resp)
}

impl<H: Host, D: DelayNs> Card<H, D> {
    /// Initialises the card in `host`'s slot (section 4.2): reset, interface condition, power-up
    /// with host capacity support, identification, RCA, CSD, selection, bus width and block
    /// length. Every step either succeeds or returns which command failed and how.
    pub fn init(host: H, delay: D, opts: Options) -> Result<Self, Error> {
        let mut card = Card {
            host,
            delay,
            info: CardInfo {
                kind: CardKind::SdscV1,
                rca: 0,
                blocks: 0,
                cid: 0,
                clock_hz: 0,
                bus_width: BusWidth::One,
            },
            last_error: None,
        };
        card.identify(opts)?;
        Ok(card)
    }

    /// What initialisation found.
    pub fn info(&self) -> &CardInfo {
        &self.info
    }

    /// The last error a [`kexboot_fs::BlockDevice`] call met, in full (that trait's error keeps
    /// only the LBA).
    pub fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref()
    }

    /// Gives the host back.
    pub fn into_host(self) -> H {
        self.host
    }

    fn send(&mut self, name: Cmd, cmd: Command, data: Data<'_>) -> Result<Response, Error> {
        self.host
            .command(&cmd, data)
            .map_err(|e| Error::from_host(name, e))
    }

    fn short(&mut self, name: Cmd, cmd: Command) -> Result<u32, Error> {
        match self.send(name, cmd, Data::None)? {
            Response::Short(r) => Ok(r),
            _ => Err(Error::Response {
                cmd: name,
                why: "expected a 48-bit response",
            }),
        }
    }

    fn long(&mut self, name: Cmd, cmd: Command) -> Result<u128, Error> {
        match self.send(name, cmd, Data::None)? {
            Response::Long(r) => Ok(r),
            _ => Err(Error::Response {
                cmd: name,
                why: "expected a 136-bit response",
            }),
        }
    }

    /// Sends an R1/R1b command and checks the status's error bits.
    fn r1(&mut self, name: Cmd, cmd: Command, data: Data<'_>) -> Result<u32, Error> {
        let status = match self.send(name, cmd, data)? {
            Response::Short(r) => r,
            _ => {
                return Err(Error::Response {
                    cmd: name,
                    why: "expected a 48-bit response",
                })
            }
        };
        check_status(name, status)
    }

    fn app_cmd(&mut self, rca: u16) -> Result<(), Error> {
        let status = self.short(
            Cmd::new(55),
            command(common_cmd::app_cmd(rca), ResponseType::R1),
        )?;
        check_status(Cmd::new(55), status)?;
        Ok(())
    }

    fn identify(&mut self, opts: Options) -> Result<(), Error> {
        if !self.host.card_present() {
            return Err(Error::NoCard);
        }
        let host_err = |cmd| move |e| Error::from_host(cmd, e);
        self.host
            .set_bus_width(BusWidth::One)
            .map_err(host_err(Cmd::new(0)))?;
        self.host
            .set_clock(IDENT_CLOCK_HZ)
            .map_err(host_err(Cmd::new(0)))?;
        self.delay.delay_us(POWER_UP_DELAY_US);

        // CMD0: every card to idle.
        self.send(
            Cmd::new(0),
            command(common_cmd::idle(), ResponseType::None),
            Data::None,
        )?;

        // CMD8: a 2.0+ card echoes the voltage and pattern; a 1.x card (or MMC) stays silent.
        let cmd8 = command(
            sd_cmd::send_if_cond(CMD8_VHS_27_36, CMD8_CHECK_PATTERN),
            ResponseType::R7,
        );
        let v2 = match self.short(Cmd::new(8), cmd8) {
            Ok(r7) => {
                if r7 & 0xFFF != cmd8.arg & 0xFFF {
                    return Err(Error::Response {
                        cmd: Cmd::new(8),
                        why: "check pattern or voltage not echoed",
                    });
                }
                true
            }
            Err(Error::Timeout { .. }) => false,
            Err(e) => return Err(e),
        };

        // ACMD41 until the card leaves busy, with HCS set for a 2.0 card.
        let acmd41 = command(
            sd_cmd::sd_send_op_cond(v2, false, false, OCR_VOLTAGE_WINDOW),
            ResponseType::R3,
        );
        let mut waited_ms = 0;
        let ocr = loop {
            let asked = self
                .app_cmd(0)
                .and_then(|()| self.short(Cmd::acmd(41), acmd41));
            let raw = match asked {
                Ok(raw) => raw,
                Err(Error::Timeout { .. }) if !v2 => {
                    return Err(Error::Unsupported(
                        "no answer to CMD8 nor to ACMD41 (an MMC card?)",
                    ))
                }
                Err(e) => return Err(e),
            };
            let ocr: OCR<SD> = raw.into();
            if !ocr.is_busy() {
                break raw;
            }
            if waited_ms >= ACMD41_TIMEOUT_MS {
                return Err(Error::Busy {
                    cmd: Cmd::acmd(41),
                    waited_ms,
                });
            }
            self.delay.delay_ms(ACMD41_POLL_MS);
            waited_ms += ACMD41_POLL_MS;
        };
        let kind = match (v2, ocr & OCR_CCS != 0) {
            (true, true) => CardKind::Sdhc,
            (true, false) => CardKind::SdscV2,
            (false, _) => CardKind::SdscV1,
        };

        // CMD2 (CID), CMD3 (RCA).
        let cid = self.long(
            Cmd::new(2),
            command(common_cmd::all_send_cid(), ResponseType::R2),
        )?;
        let mut rca = 0;
        for _ in 0..RCA_ATTEMPTS {
            let r6 = self.short(
                Cmd::new(3),
                command(sd_cmd::send_relative_address(), ResponseType::R6),
            )?;
            let status = R6_ERROR_BITS
                .iter()
                .filter(|(r6_bit, _)| r6 & r6_bit != 0)
                .fold(0, |s, (_, bit)| s | bit);
            if let Some(errors) = StatusBits::errors(status) {
                return Err(Error::CardStatus {
                    cmd: Cmd::new(3),
                    status: errors,
                });
            }
            rca = (r6 >> 16) as u16;
            if rca != 0 {
                break;
            }
        }
        if rca == 0 {
            return Err(Error::Response {
                cmd: Cmd::new(3),
                why: "the card keeps publishing RCA 0",
            });
        }

        // CMD9 (CSD): capacity.
        let csd_raw = self.long(
            Cmd::new(9),
            command(common_cmd::send_csd(rca), ResponseType::R2),
        )?;
        let blocks = capacity_blocks(kind, csd_raw)?;

        let clock_hz = self
            .host
            .set_clock(opts.max_clock_hz.min(DEFAULT_SPEED_HZ))
            .map_err(host_err(Cmd::new(7)))?;

        // CMD7: select; the card moves to the transfer state.
        self.r1(
            Cmd::new(7),
            command(common_cmd::select_card(rca), ResponseType::R1b),
            Data::None,
        )?;
        if kind != CardKind::Sdhc {
            self.r1(
                Cmd::new(16),
                command(
                    common_cmd::set_block_length(BLOCK_SIZE as u32),
                    ResponseType::R1,
                ),
                Data::None,
            )?;
        }
        let mut bus_width = BusWidth::One;
        if opts.four_bit {
            self.app_cmd(rca)?;
            self.r1(
                Cmd::acmd(6),
                command(sd_cmd::set_bus_width(true), ResponseType::R1),
                Data::None,
            )?;
            self.host
                .set_bus_width(BusWidth::Four)
                .map_err(host_err(Cmd::acmd(6)))?;
            bus_width = BusWidth::Four;
        }
        self.info = CardInfo {
            kind,
            rca,
            blocks,
            cid,
            clock_hz,
            bus_width,
        };
        log::info!(
            "sd: {:?} card, {} MiB, RCA {rca:#x}, {} kHz, {:?}-bit bus",
            kind,
            blocks / 2048,
            clock_hz / 1000,
            bus_width
        );
        Ok(())
    }

    /// The address argument of a data command for block `lba`: blocks on SDHC/SDXC, bytes on
    /// SDSC (section 4.3.14).
    fn address(&self, lba: u64) -> Result<u32, Error> {
        let addr = match self.info.kind {
            CardKind::Sdhc => Some(lba),
            _ => lba.checked_mul(BLOCK_SIZE as u64),
        };
        addr.and_then(|a| u32::try_from(a).ok())
            .ok_or(Error::OutOfRange {
                lba,
                count: 1,
                blocks: self.info.blocks,
            })
    }

    fn check_range(&self, lba: u64, len: usize) -> Result<u64, Error> {
        if len == 0 || !len.is_multiple_of(BLOCK_SIZE) {
            return Err(Error::BadBuffer { len });
        }
        let count = (len / BLOCK_SIZE) as u64;
        match lba.checked_add(count) {
            Some(end) if end <= self.info.blocks => Ok(count),
            _ => Err(Error::OutOfRange {
                lba,
                count,
                blocks: self.info.blocks,
            }),
        }
    }

    /// Reads `buf.len() / 512` blocks from `lba` (CMD17, or CMD18 then CMD12).
    pub fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.check_range(lba, buf.len())?;
        let chunk_bytes = CMD_DATA_BLOCKS_MAX * BLOCK_SIZE;
        for (i, chunk) in buf.chunks_mut(chunk_bytes).enumerate() {
            let at = lba + (i * CMD_DATA_BLOCKS_MAX) as u64;
            let addr = self.address(at)?;
            if chunk.len() == BLOCK_SIZE {
                let cmd = command(common_cmd::read_single_block(addr), ResponseType::R1);
                self.r1(Cmd::new(17), cmd, Data::Read(chunk))?;
            } else {
                let cmd = command(common_cmd::read_multiple_blocks(addr), ResponseType::R1);
                let read = self.r1(Cmd::new(18), cmd, Data::Read(chunk));
                let stop = self.stop();
                read?;
                stop?;
            }
        }
        Ok(())
    }

    /// Writes `buf.len() / 512` blocks at `lba` (CMD24, or CMD25 then CMD12) and waits, bounded,
    /// until the card has programmed them, checking its status.
    pub fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), Error> {
        self.check_range(lba, buf.len())?;
        if self.host.write_protected() {
            return Err(Error::WriteProtected);
        }
        let chunk_bytes = CMD_DATA_BLOCKS_MAX * BLOCK_SIZE;
        for (i, chunk) in buf.chunks(chunk_bytes).enumerate() {
            let at = lba + (i * CMD_DATA_BLOCKS_MAX) as u64;
            let addr = self.address(at)?;
            let name;
            if chunk.len() == BLOCK_SIZE {
                name = Cmd::new(24);
                let cmd = command(common_cmd::write_single_block(addr), ResponseType::R1);
                self.r1(name, cmd, Data::Write(chunk))?;
            } else {
                name = Cmd::new(25);
                let cmd = command(common_cmd::write_multiple_blocks(addr), ResponseType::R1);
                let written = self.r1(name, cmd, Data::Write(chunk));
                let stop = self.stop();
                written?;
                stop?;
            }
            self.wait_ready(name)?;
        }
        Ok(())
    }

    /// CMD12: ends a multi-block transfer.
    fn stop(&mut self) -> Result<(), Error> {
        let cmd = command(common_cmd::stop_transmission(), ResponseType::R1b);
        self.r1(Cmd::new(12), cmd, Data::None).map(|_| ())
    }

    /// Polls CMD13 until the card is back in the transfer state and ready for data (its
    /// programming ended), at most [`WRITE_BUSY_TIMEOUT_MS`]; error bits fail at once.
    fn wait_ready(&mut self, after: Cmd) -> Result<(), Error> {
        let cmd = command(
            common_cmd::card_status(self.info.rca, false),
            ResponseType::R1,
        );
        let mut waited_us = 0;
        loop {
            let status = self.r1(Cmd::new(13), cmd, Data::None)?;
            let state = (status >> R1_STATE_SHIFT) & R1_STATE_MASK;
            if status & R1_READY_FOR_DATA != 0 && state == R1_STATE_TRAN {
                return Ok(());
            }
            if waited_us >= WRITE_BUSY_TIMEOUT_MS * 1000 {
                return Err(Error::Busy {
                    cmd: after,
                    waited_ms: waited_us / 1000,
                });
            }
            self.delay.delay_us(STATUS_POLL_US);
            waited_us += STATUS_POLL_US;
        }
    }
}

/// Checks the error bits of an R1 status.
fn check_status(cmd: Cmd, status: u32) -> Result<u32, Error> {
    match StatusBits::errors(status) {
        Some(errors) => Err(Error::CardStatus {
            cmd,
            status: errors,
        }),
        None => Ok(status),
    }
}

/// The capacity in 512-byte blocks from a CSD (section 5.3): version 1.0 for SDSC, 2.0 for
/// SDHC/SDXC; the version must match what ACMD41 said.
fn capacity_blocks(kind: CardKind, raw: u128) -> Result<u64, Error> {
    let csd: CSD<SD> = raw.into();
    let cmd = Cmd::new(9);
    let bytes = match (csd.version(), kind) {
        (0, CardKind::SdscV1 | CardKind::SdscV2) | (1, CardKind::Sdhc) => csd.card_size(),
        (0 | 1, _) => {
            return Err(Error::Response {
                cmd,
                why: "CSD version does not match the card's capacity status",
            })
        }
        (2, _) => return Err(Error::Unsupported("SDUC cards (CSD 3.0)")),
        _ => {
            return Err(Error::Response {
                cmd,
                why: "reserved CSD structure version",
            })
        }
    };
    let blocks = bytes / BLOCK_SIZE as u64;
    if blocks == 0 {
        return Err(Error::Response {
            cmd,
            why: "CSD gives a capacity of zero",
        });
    }
    Ok(blocks)
}

impl<H: Host, D: DelayNs> kexboot_fs::BlockDevice for Card<H, D> {
    fn num_sectors(&self) -> u64 {
        self.info.blocks
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), kexboot_fs::Error> {
        self.read_blocks(lba, buf).map_err(|e| {
            log::error!("{e}");
            let fs = to_fs_error(&e, lba, false);
            self.last_error = Some(e);
            fs
        })
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), kexboot_fs::Error> {
        self.write_blocks(lba, buf).map_err(|e| {
            log::error!("{e}");
            let fs = to_fs_error(&e, lba, true);
            self.last_error = Some(e);
            fs
        })
    }
}

/// The file-system error for an SD error (the full error is logged and kept in `last_error`).
fn to_fs_error(e: &Error, lba: u64, write: bool) -> kexboot_fs::Error {
    match *e {
        Error::OutOfRange { lba, count, blocks } => kexboot_fs::Error::OutOfRange {
            lba,
            count,
            size: blocks,
        },
        Error::BadBuffer { len } => kexboot_fs::Error::BadBuffer { len },
        Error::WriteProtected => kexboot_fs::Error::ReadOnly,
        _ if write => kexboot_fs::Error::WriteIo { lba },
        _ => kexboot_fs::Error::Io { lba },
    }
}
