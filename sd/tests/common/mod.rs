//! A simulated SD card behind a perfect host (the test double of [`kexboot_sd::Host`]) and a
//! virtual clock for [`embedded_hal::delay::DelayNs`].
#![allow(dead_code)]
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use embedded_hal::delay::DelayNs;
use kexboot_sd::{BusWidth, Command, Data, Host, HostError, Response, ResponseType};

/// Virtual time in nanoseconds, shared by the delay and the card.
#[derive(Clone, Default)]
pub struct Clock(pub Rc<Cell<u64>>);

impl Clock {
    pub fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

impl DelayNs for Clock {
    fn delay_ns(&mut self, ns: u32) {
        self.0.set(self.0.get() + u64::from(ns));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sdhc,
    SdscV2,
    SdscV1,
    /// Answers neither CMD8 nor CMD55/ACMD41.
    Mmc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Ready,
    Ident,
    Stby,
    Tran,
}

const STATE_TRAN: u32 = 4;
const STATE_PRG: u32 = 7;
const READY_FOR_DATA: u32 = 1 << 8;
const APP_CMD: u32 = 1 << 5;
const OUT_OF_RANGE: u32 = 1 << 31;
const ADDRESS_ERROR: u32 = 1 << 30;
const WP_VIOLATION: u32 = 1 << 26;
const ILLEGAL_COMMAND: u32 = 1 << 22;

pub const RCA: u16 = 0xB368;

pub struct SimCard {
    pub kind: Kind,
    pub blocks: u64,
    /// READ_BL_LEN of an SDSC card's CSD (9 = 512, 10 = 1024, 11 = 2048).
    pub read_bl_len: u32,
    pub clock: Clock,
    pub present: bool,
    /// Write-protect switch of the slot.
    pub wp_switch: bool,
    /// The card's own permanent write protection (writes answer WP_VIOLATION).
    pub wp_card: bool,
    /// Commands that get no response.
    pub timeout_on: Vec<u8>,
    /// Command index and how many of its responses fail the CRC check.
    pub crc_on: Option<(u8, u32)>,
    pub data_crc_on_read: bool,
    /// ACMD41 reports busy until the clock reaches this.
    pub ready_at_ns: u64,
    /// After a write the card programs for this long.
    pub program_ns: u64,
    /// Every command as (index, argument, app).
    pub log: Vec<(u8, u32, bool)>,
    pub bus_width: BusWidth,
    pub clock_hz: u32,
    data: BTreeMap<u64, Vec<u8>>,
    state: State,
    app: bool,
    hcs: bool,
    busy_until: u64,
}

impl SimCard {
    pub fn new(kind: Kind, blocks: u64, clock: Clock) -> Self {
        SimCard {
            kind,
            blocks,
            read_bl_len: 9,
            clock,
            present: true,
            wp_switch: false,
            wp_card: false,
            timeout_on: Vec::new(),
            crc_on: None,
            data_crc_on_read: false,
            ready_at_ns: 0,
            program_ns: 0,
            log: Vec::new(),
            bus_width: BusWidth::One,
            clock_hz: 0,
            data: BTreeMap::new(),
            state: State::Idle,
            app: false,
            hcs: false,
            busy_until: 0,
        }
    }

    pub fn block(&self, lba: u64) -> Vec<u8> {
        self.data.get(&lba).cloned().unwrap_or_else(|| vec![0; 512])
    }

    fn high_capacity(&self) -> bool {
        self.kind == Kind::Sdhc
    }

    fn status(&self) -> u32 {
        let busy = self.clock.now_ns() < self.busy_until;
        let state = match (self.state, busy) {
            (State::Tran, true) => STATE_PRG,
            (State::Tran, false) => STATE_TRAN,
            (State::Stby, _) => 3,
            (State::Ident, _) => 2,
            (State::Ready, _) => 1,
            (State::Idle, _) => 0,
        };
        (state << 9) | if busy { 0 } else { READY_FOR_DATA }
    }

    pub fn csd(&self) -> u128 {
        if self.high_capacity() {
            let c_size = u128::from(self.blocks / 1024 - 1);
            (1u128 << 126) | (9u128 << 80) | (c_size << 48)
        } else {
            // capacity = (C_SIZE + 1) * 2^(C_SIZE_MULT + 2) * 2^READ_BL_LEN, C_SIZE_MULT = 7.
            let unit = (1u64 << 9) << self.read_bl_len;
            let c_size = u128::from(self.blocks * 512 / unit - 1);
            (u128::from(self.read_bl_len) << 80) | (c_size << 62) | (7u128 << 47)
        }
    }

    /// The block an address argument names, or the status error bits.
    fn lba(&self, arg: u32) -> Result<u64, u32> {
        let lba = if self.high_capacity() {
            u64::from(arg)
        } else {
            if !arg.is_multiple_of(512) {
                return Err(ADDRESS_ERROR);
            }
            u64::from(arg) / 512
        };
        if lba >= self.blocks {
            return Err(OUT_OF_RANGE);
        }
        Ok(lba)
    }

    fn exec(&mut self, cmd: &Command, data: Data<'_>) -> Result<Response, HostError> {
        let app = std::mem::take(&mut self.app);
        self.log.push((cmd.index, cmd.arg, app));
        if !self.present {
            return Err(HostError::NoCard);
        }
        if self.timeout_on.contains(&cmd.index) {
            return Err(HostError::CommandTimeout);
        }
        let r1 = |s: u32| Ok(Response::Short(s));
        match (cmd.index, app) {
            (0, _) => {
                self.state = State::Idle;
                Ok(Response::None)
            }
            (8, _) => match self.kind {
                Kind::Sdhc | Kind::SdscV2 => Ok(Response::Short(cmd.arg & 0xFFF)),
                _ => Err(HostError::CommandTimeout),
            },
            (55, _) => {
                if self.kind == Kind::Mmc {
                    return Err(HostError::CommandTimeout);
                }
                self.app = true;
                r1(self.status() | APP_CMD)
            }
            (41, true) => {
                self.hcs = cmd.arg & (1 << 30) != 0;
                let mut ocr = 0x00FF_8000;
                let ready =
                    self.clock.now_ns() >= self.ready_at_ns && (self.hcs || !self.high_capacity());
                if ready {
                    ocr |= 1 << 31;
                    if self.high_capacity() {
                        ocr |= 1 << 30;
                    }
                    self.state = State::Ready;
                }
                Ok(Response::Short(ocr))
            }
            (2, _) if self.state == State::Ready => {
                self.state = State::Ident;
                Ok(Response::Long(0x0353_4453_4331_3647_8012_3456_7801_2300))
            }
            (3, _) if matches!(self.state, State::Ident | State::Stby) => {
                self.state = State::Stby;
                Ok(Response::Short(
                    (u32::from(RCA) << 16) | (self.status() & 0x1E00),
                ))
            }
            (9, _) if self.state == State::Stby => Ok(Response::Long(self.csd())),
            (7, _) if cmd.arg >> 16 == u32::from(RCA) => {
                let s = self.status();
                self.state = State::Tran;
                r1(s)
            }
            (16, _) => r1(self.status() | if cmd.arg == 512 { 0 } else { 1 << 29 }),
            (6, true) => {
                self.bus_width = if cmd.arg == 2 {
                    BusWidth::Four
                } else {
                    BusWidth::One
                };
                r1(self.status() | APP_CMD)
            }
            (13, _) => r1(self.status()),
            (12, _) => r1(self.status()),
            (17 | 18, _) if self.state == State::Tran => {
                let Data::Read(buf) = data else {
                    return Err(HostError::Unsupported("read without buffer"));
                };
                let first = match self.lba(cmd.arg) {
                    Ok(l) => l,
                    Err(e) => return r1(self.status() | e),
                };
                for (i, b) in buf.chunks_mut(512).enumerate() {
                    if first + i as u64 >= self.blocks {
                        return r1(self.status() | OUT_OF_RANGE);
                    }
                    b.copy_from_slice(&self.block(first + i as u64));
                }
                if self.data_crc_on_read {
                    return Err(HostError::DataCrc);
                }
                r1(self.status())
            }
            (24 | 25, _) if self.state == State::Tran => {
                let Data::Write(buf) = data else {
                    return Err(HostError::Unsupported("write without buffer"));
                };
                let first = match self.lba(cmd.arg) {
                    Ok(l) => l,
                    Err(e) => return r1(self.status() | e),
                };
                if self.wp_card {
                    return r1(self.status() | WP_VIOLATION);
                }
                let s = self.status();
                for (i, b) in buf.chunks(512).enumerate() {
                    if first + i as u64 >= self.blocks {
                        return r1(s | OUT_OF_RANGE);
                    }
                    self.data.insert(first + i as u64, b.to_vec());
                }
                self.busy_until = self.clock.now_ns() + self.program_ns;
                r1(s)
            }
            _ => r1(self.status() | ILLEGAL_COMMAND),
        }
    }
}

impl Host for SimCard {
    fn card_present(&mut self) -> bool {
        self.present
    }
    fn write_protected(&mut self) -> bool {
        self.wp_switch
    }
    fn set_clock(&mut self, hz: u32) -> Result<u32, HostError> {
        self.clock_hz = hz;
        Ok(hz)
    }
    fn set_bus_width(&mut self, _width: BusWidth) -> Result<(), HostError> {
        Ok(())
    }
    fn command(&mut self, cmd: &Command, data: Data<'_>) -> Result<Response, HostError> {
        let resp = self.exec(cmd, data)?;
        if let Some((index, n)) = self.crc_on.as_mut() {
            if *index == cmd.index && *n > 0 && cmd.resp != ResponseType::R3 {
                *n -= 1;
                return Err(HostError::CommandCrc);
            }
        }
        Ok(resp)
    }
}
