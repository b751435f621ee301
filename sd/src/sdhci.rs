//! A standard SD Host Controller (SD Host Controller Simplified Specification, version 3.00)
//! driven by programmed I/O: the Arasan controller of the BCM2835/2837 (`brcm,bcm2835-sdhci`,
//! 0x3f300000 on the Pi 3), which QEMU's `raspi3b` connects the SD card to after reset.
//!
//! Only 32-bit register accesses are made: the BCM2835's Arasan block drops 8- and 16-bit writes
//! (Linux `sdhci-iproc.c` shadows them into 32-bit writes), so TRANSFER_MODE and COMMAND are
//! written together as one word, which is also what starts the command.
use embedded_hal::delay::DelayNs;

use crate::regs::Regs;
use crate::{BusWidth, Command, Data, Host, HostError, Response, ResponseType, BLOCK_SIZE};

// Register offsets (section 2.1 of the host controller specification).
const BLOCK_SIZE_COUNT: usize = 0x04;
const ARGUMENT: usize = 0x08;
const TRANSFER_COMMAND: usize = 0x0C;
const RESPONSE: usize = 0x10;
const BUFFER: usize = 0x20;
const PRESENT_STATE: usize = 0x24;
const HOST_CONTROL: usize = 0x28;
const CLOCK_CONTROL: usize = 0x2C;
const INT_STATUS: usize = 0x30;
const INT_STATUS_ENABLE: usize = 0x34;
const INT_SIGNAL_ENABLE: usize = 0x38;
const CAPABILITIES: usize = 0x40;
const HOST_VERSION: usize = 0xFC;

// PRESENT_STATE bits.
const PS_CMD_INHIBIT: u32 = 1 << 0;
const PS_DAT_INHIBIT: u32 = 1 << 1;
const PS_CARD_INSERTED: u32 = 1 << 16;
/// Write-protect pin level: 1 = writes allowed.
const PS_WRITE_ENABLED: u32 = 1 << 19;

// HOST_CONTROL word: host control 1 (byte 0), power control (byte 1).
const HC_4BIT: u32 = 1 << 1;
const POWER_ON: u32 = 1 << 8;
const POWER_3V3: u32 = 0b111 << 9;

// CLOCK_CONTROL word: clock control (bits 15..0), timeout control (byte 2), software reset (byte 3).
const CLK_INTERNAL_EN: u32 = 1 << 0;
const CLK_INTERNAL_STABLE: u32 = 1 << 1;
const CLK_SD_EN: u32 = 1 << 2;
const CLK_DIV_SHIFT: u32 = 8;
const CLK_DIV_HI_SHIFT: u32 = 6;
/// Data timeout counter TMCLK x 2^27, the largest (section 2.2.15).
const TIMEOUT_MAX: u32 = 0xE << 16;
const RESET_ALL: u32 = 1 << 24;
const RESET_CMD: u32 = 1 << 25;
const RESET_DAT: u32 = 1 << 26;

// INT_STATUS: normal (bits 15..0), error (bits 31..16).
const INT_CMD_DONE: u32 = 1 << 0;
const INT_XFER_DONE: u32 = 1 << 1;
const INT_BUF_WRITE_READY: u32 = 1 << 4;
const INT_BUF_READ_READY: u32 = 1 << 5;
const INT_ERROR: u32 = 1 << 15;
const ERR_CMD_TIMEOUT: u32 = 1 << 16;
const ERR_CMD_CRC: u32 = 1 << 17;
const ERR_CMD_END_BIT: u32 = 1 << 18;
const ERR_CMD_INDEX: u32 = 1 << 19;
const ERR_DATA_TIMEOUT: u32 = 1 << 20;
const ERR_DATA_CRC: u32 = 1 << 21;
const ERR_DATA_END_BIT: u32 = 1 << 22;
const INT_ALL: u32 = 0xFFFF_FFFF;
/// Status bits latched: normal 7..0 (not card interrupt), error 9..0. Nothing is signalled: the
/// driver polls.
const INT_ENABLE_POLLED: u32 = 0x03FF_00FF;

// COMMAND (upper half of TRANSFER_COMMAND) and TRANSFER_MODE (lower half).
const CMD_RESP_136: u32 = 1 << 16;
const CMD_RESP_48: u32 = 2 << 16;
const CMD_RESP_48_BUSY: u32 = 3 << 16;
const CMD_CRC_CHECK: u32 = 1 << 19;
const CMD_INDEX_CHECK: u32 = 1 << 20;
const CMD_DATA: u32 = 1 << 21;
const CMD_INDEX_SHIFT: u32 = 24;
const TM_BLOCK_COUNT_EN: u32 = 1 << 1;
const TM_READ: u32 = 1 << 4;
const TM_MULTI: u32 = 1 << 5;

/// Largest block count of one transfer (a 16-bit field).
const MAX_BLOCKS: usize = 0xFFFF;
/// Capabilities: base clock in MHz, bits 15..8 (8 bits from version 3.00, 6 before).
const CAP_BASE_CLOCK_SHIFT: u32 = 8;
const CAP_BASE_CLOCK_MASK_V3: u32 = 0xFF;
const CAP_BASE_CLOCK_MASK_V2: u32 = 0x3F;
const SPEC_VERSION_3: u32 = 2;
/// 10-bit divided clock mode (version 3.00): SDCLK = base / (2 N), N up to 1023.
const DIV_MAX_V3: u32 = 0x3FF;
/// Before 3.00 the divisor is a power of two from 2 to 256, written as divisor / 2.
const DIV_MAX_V2: u32 = 256;

// Bounds (the spec gives none for the controller itself; these are generous).
const POLL_US: u32 = 10;
const RESET_TIMEOUT_US: u32 = 100_000;
const CLOCK_STABLE_TIMEOUT_US: u32 = 20_000;
const CMD_TIMEOUT_US: u32 = 100_000;
/// A data block or the end of a transfer, including a write's busy time (section 4.6.2 of the
/// physical layer spec: read access at most 100 ms, write busy at most 500 ms).
const DATA_TIMEOUT_US: u32 = 1_000_000;

/// How the board wired the controller.
#[derive(Debug, Clone, Copy)]
pub struct SdhciConfig {
    /// The base clock when the capabilities register does not give it (the BCM2835's Arasan
    /// reports 0; the board asks the VideoCore firmware for the EMMC clock).
    pub base_clock_hz: Option<u32>,
    /// Whether PRESENT_STATE's card-detect bit is wired (QEMU: yes; the Pi 3's microSD slot on
    /// the Arasan: no, Linux marks it `non-removable`/polls).
    pub card_detect: bool,
    /// Whether the write-protect pin is wired (microSD has no switch).
    pub write_protect: bool,
    /// Space register writes by two SD clock cycles: the BCM2835's Arasan loses back-to-back
    /// writes at low clocks (Linux `sdhci-iproc.c`, U-Boot `bcm2835_sdhci.c`). QEMU does not
    /// model it.
    pub space_writes: bool,
}

/// The controller, over its registers `R`, waiting with `D`.
pub struct Sdhci<R: Regs, D: DelayNs> {
    regs: R,
    delay: D,
    cfg: SdhciConfig,
    base_hz: u32,
    spec_v3: bool,
    clock_hz: u32,
}

impl<R: Regs, D: DelayNs> Sdhci<R, D> {
    /// Resets the controller, powers the card at 3.3 V and sets polled status reporting.
    ///
    /// Real hardware: the Pi's card power is always on (no regulator switch); 1.8 V signalling
    /// (UHS) is never requested, so the card stays at 3.3 V default speed.
    pub fn new(regs: R, delay: D, cfg: SdhciConfig) -> Result<Self, HostError> {
        let mut s = Sdhci {
            regs,
            delay,
            cfg,
            base_hz: 0,
            spec_v3: false,
            clock_hz: 0,
        };
        s.write(CLOCK_CONTROL, RESET_ALL);
        s.wait(RESET_TIMEOUT_US, "reset", |s| {
            s.regs.read32(CLOCK_CONTROL) & RESET_ALL == 0
        })?;
        s.spec_v3 = (s.regs.read32(HOST_VERSION) >> 16) & 0xFF >= SPEC_VERSION_3;
        let mask = if s.spec_v3 {
            CAP_BASE_CLOCK_MASK_V3
        } else {
            CAP_BASE_CLOCK_MASK_V2
        };
        let cap_mhz = (s.regs.read32(CAPABILITIES) >> CAP_BASE_CLOCK_SHIFT) & mask;
        s.base_hz = cfg.base_clock_hz.unwrap_or(cap_mhz * 1_000_000);
        if s.base_hz == 0 {
            return Err(HostError::Unsupported("find its base clock"));
        }
        s.write(HOST_CONTROL, POWER_3V3 | POWER_ON);
        s.write(INT_STATUS_ENABLE, INT_ENABLE_POLLED);
        s.write(INT_SIGNAL_ENABLE, 0);
        s.write(INT_STATUS, INT_ALL);
        Ok(s)
    }

    /// Gives the registers back.
    pub fn into_regs(self) -> R {
        self.regs
    }

    fn write(&mut self, offset: usize, value: u32) {
        self.regs.write32(offset, value);
        if self.cfg.space_writes {
            // Two SD clock cycles; before the clock is set, two cycles of 400 kHz.
            let hz = if self.clock_hz == 0 {
                400_000
            } else {
                self.clock_hz
            };
            self.delay.delay_ns(2_000_000_000 / hz + 1);
        }
    }

    /// Polls `done` every [`POLL_US`] for at most `timeout_us`.
    fn wait(
        &mut self,
        timeout_us: u32,
        what: &'static str,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<(), HostError> {
        let mut waited = 0;
        while !done(self) {
            if waited >= timeout_us {
                return Err(HostError::Stuck(what));
            }
            self.delay.delay_us(POLL_US);
            waited += POLL_US;
        }
        Ok(())
    }

    /// Waits for any of `bits` in INT_STATUS or an error; clears the bits seen.
    fn wait_int(
        &mut self,
        bits: u32,
        timeout_us: u32,
        what: &'static str,
    ) -> Result<(), HostError> {
        let mut st = 0;
        self.wait(timeout_us, what, |s| {
            st = s.regs.read32(INT_STATUS);
            st & (bits | INT_ERROR) != 0
        })?;
        if st & INT_ERROR != 0 {
            let err = decode_error(st);
            // The spec's error recovery (section 3.10): reset the CMD and DAT lines.
            let clock = self.clock_word();
            self.write(CLOCK_CONTROL, clock | RESET_CMD | RESET_DAT);
            let reset = self.wait(RESET_TIMEOUT_US, "line reset", |s| {
                s.regs.read32(CLOCK_CONTROL) & (RESET_CMD | RESET_DAT) == 0
            });
            self.write(INT_STATUS, INT_ALL);
            reset?;
            return Err(err);
        }
        self.write(INT_STATUS, st & bits);
        Ok(())
    }

    fn clock_word(&mut self) -> u32 {
        (self.regs.read32(CLOCK_CONTROL) & 0xFFFF) | TIMEOUT_MAX
    }
}

/// The first error in an INT_STATUS word.
fn decode_error(st: u32) -> HostError {
    if st & ERR_CMD_TIMEOUT != 0 {
        HostError::CommandTimeout
    } else if st & ERR_CMD_CRC != 0 {
        HostError::CommandCrc
    } else if st & ERR_CMD_END_BIT != 0 {
        HostError::CommandEndBit
    } else if st & ERR_CMD_INDEX != 0 {
        HostError::CommandIndex
    } else if st & ERR_DATA_TIMEOUT != 0 {
        HostError::DataTimeout
    } else if st & ERR_DATA_CRC != 0 {
        HostError::DataCrc
    } else if st & ERR_DATA_END_BIT != 0 {
        HostError::DataEndBit
    } else {
        HostError::Stuck("controller error (current limit, auto CMD12 or ADMA)")
    }
}

/// The divisor field and the clock it gives for at most `hz` from `base`.
fn divider(base: u32, hz: u32, v3: bool) -> (u32, u32) {
    if hz >= base {
        return (0, base);
    }
    if v3 {
        let n = base.div_ceil(2 * hz.max(1)).min(DIV_MAX_V3);
        let field = ((n & 0xFF) << CLK_DIV_SHIFT) | ((n >> 8) << CLK_DIV_HI_SHIFT);
        (field, base / (2 * n))
    } else {
        let mut div = 2;
        while div < DIV_MAX_V2 && base / div > hz {
            div *= 2;
        }
        ((div / 2) << CLK_DIV_SHIFT, base / div)
    }
}

impl<R: Regs, D: DelayNs> Host for Sdhci<R, D> {
    fn card_present(&mut self) -> bool {
        !self.cfg.card_detect || self.regs.read32(PRESENT_STATE) & PS_CARD_INSERTED != 0
    }

    fn write_protected(&mut self) -> bool {
        self.cfg.write_protect && self.regs.read32(PRESENT_STATE) & PS_WRITE_ENABLED == 0
    }

    fn set_clock(&mut self, hz: u32) -> Result<u32, HostError> {
        let (field, actual) = divider(self.base_hz, hz, self.spec_v3);
        // Stop SDCLK, change the divisor, wait for the internal clock, start SDCLK (3.2.3).
        self.write(CLOCK_CONTROL, TIMEOUT_MAX);
        self.write(CLOCK_CONTROL, TIMEOUT_MAX | field | CLK_INTERNAL_EN);
        self.wait(CLOCK_STABLE_TIMEOUT_US, "internal clock stable", |s| {
            s.regs.read32(CLOCK_CONTROL) & CLK_INTERNAL_STABLE != 0
        })?;
        self.write(
            CLOCK_CONTROL,
            TIMEOUT_MAX | field | CLK_INTERNAL_EN | CLK_SD_EN,
        );
        self.clock_hz = actual;
        Ok(actual)
    }

    fn set_bus_width(&mut self, width: BusWidth) -> Result<(), HostError> {
        let hc = self.regs.read32(HOST_CONTROL) & 0xFFFF;
        let hc = match width {
            BusWidth::One => hc & !HC_4BIT,
            BusWidth::Four => hc | HC_4BIT,
        };
        self.write(HOST_CONTROL, hc);
        Ok(())
    }

    fn command(&mut self, cmd: &Command, mut data: Data<'_>) -> Result<Response, HostError> {
        if !self.card_present() {
            return Err(HostError::NoCard);
        }
        let len = match &data {
            Data::None => 0,
            Data::Read(b) => b.len(),
            Data::Write(b) => b.len(),
        };
        let blocks = len / BLOCK_SIZE;
        let has_data = !matches!(data, Data::None);
        if has_data && (len == 0 || len % BLOCK_SIZE != 0 || blocks > MAX_BLOCKS) {
            return Err(HostError::Unsupported(
                "transfer other than 1..=65535 whole blocks",
            ));
        }
        let inhibit = if has_data || cmd.resp == ResponseType::R1b {
            PS_CMD_INHIBIT | PS_DAT_INHIBIT
        } else {
            PS_CMD_INHIBIT
        };
        self.wait(CMD_TIMEOUT_US, "command/data line busy", |s| {
            s.regs.read32(PRESENT_STATE) & inhibit == 0
        })?;
        self.write(INT_STATUS, INT_ALL);

        let mut word = u32::from(cmd.index & 0x3F) << CMD_INDEX_SHIFT;
        word |= match cmd.resp {
            ResponseType::None => 0,
            ResponseType::R2 => CMD_RESP_136,
            ResponseType::R1b => CMD_RESP_48_BUSY,
            _ => CMD_RESP_48,
        };
        if cmd.resp.has_crc() {
            word |= CMD_CRC_CHECK;
        }
        if cmd.resp.has_index() {
            word |= CMD_INDEX_CHECK;
        }
        if has_data {
            self.write(
                BLOCK_SIZE_COUNT,
                ((blocks as u32) << 16) | BLOCK_SIZE as u32,
            );
            word |= CMD_DATA | TM_BLOCK_COUNT_EN;
            if blocks > 1 {
                word |= TM_MULTI;
            }
            if matches!(data, Data::Read(_)) {
                word |= TM_READ;
            }
        }
        self.write(ARGUMENT, cmd.arg);
        self.write(TRANSFER_COMMAND, word);
        self.wait_int(INT_CMD_DONE, CMD_TIMEOUT_US, "command complete")?;

        let resp = match cmd.resp {
            ResponseType::None => Response::None,
            ResponseType::R2 => {
                // RESPONSE holds register bits 127..8 in its bits 119..0.
                let mut r = 0u128;
                for i in (0..4).rev() {
                    r = (r << 32) | u128::from(self.regs.read32(RESPONSE + 4 * i));
                }
                Response::Long(r << 8)
            }
            _ => Response::Short(self.regs.read32(RESPONSE)),
        };

        match &mut data {
            Data::None => {}
            Data::Read(buf) => {
                for block in buf.chunks_exact_mut(BLOCK_SIZE) {
                    self.wait_int(INT_BUF_READ_READY, DATA_TIMEOUT_US, "read buffer ready")?;
                    for word in block.chunks_exact_mut(4) {
                        word.copy_from_slice(&self.regs.read32(BUFFER).to_le_bytes());
                    }
                }
            }
            Data::Write(buf) => {
                for block in buf.chunks_exact(BLOCK_SIZE) {
                    self.wait_int(INT_BUF_WRITE_READY, DATA_TIMEOUT_US, "write buffer ready")?;
                    for word in block.chunks_exact(4) {
                        let w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                        self.write(BUFFER, w);
                    }
                }
            }
        }
        if has_data {
            self.wait_int(INT_XFER_DONE, DATA_TIMEOUT_US, "transfer complete")?;
        } else if cmd.resp == ResponseType::R1b {
            // Busy on DAT0 holds DAT inhibit (QEMU never sets it; a real card does).
            self.wait(DATA_TIMEOUT_US, "busy end", |s| {
                s.regs.read32(PRESENT_STATE) & PS_DAT_INHIBIT == 0
            })?;
            self.write(INT_STATUS, INT_XFER_DONE);
        }
        Ok(resp)
    }
}
