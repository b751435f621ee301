//! The SDHCI driver's register sequences against a simulated controller that behaves like
//! QEMU's `hw/sd/sdhci.c` (status bits latch only when enabled, commands are lost while the SD
//! clock is off, PIO through the buffer port), with the simulated card behind it.
mod common;

use common::{Clock, Kind, SimCard};
use kexboot_fs::BlockDevice;
use kexboot_sd::regs::Regs;
use kexboot_sd::{
    Card, CardKind, Cmd, Command, Data, Error, Host, HostError, Options, Response, ResponseType,
    Sdhci, SdhciConfig,
};

const INT_CMD_DONE: u32 = 1;
const INT_XFER_DONE: u32 = 2;
const INT_WR_READY: u32 = 1 << 4;
const INT_RD_READY: u32 = 1 << 5;
const INT_ERROR: u32 = 1 << 15;

struct SimSdhci {
    card: SimCard,
    blk: u32,
    arg: u32,
    resp: [u32; 4],
    hostctl: u32,
    clk: u32,
    ints: u32,
    int_en: u32,
    rd: Vec<u8>,
    wr: Vec<u8>,
    wr_need: usize,
    wr_cmd: Option<Command>,
    /// Every TRANSFER_COMMAND word written.
    commands: Vec<u32>,
}

impl SimSdhci {
    fn new(card: SimCard) -> Self {
        SimSdhci {
            card,
            blk: 0,
            arg: 0,
            resp: [0; 4],
            hostctl: 0,
            clk: 0,
            ints: 0,
            int_en: 0,
            rd: Vec::new(),
            wr: Vec::new(),
            wr_need: 0,
            wr_cmd: None,
            commands: Vec::new(),
        }
    }

    fn raise(&mut self, bits: u32) {
        let latched = bits & self.int_en;
        self.ints |= latched;
        if latched >> 16 != 0 {
            self.ints |= INT_ERROR;
        }
    }

    fn error_bit(e: HostError) -> u32 {
        match e {
            HostError::CommandTimeout | HostError::NoCard => 1 << 16,
            HostError::CommandCrc => 1 << 17,
            HostError::DataCrc => 1 << 21,
            _ => 1 << 20,
        }
    }

    fn issue(&mut self, word: u32) {
        self.commands.push(word);
        if self.clk & 0b101 != 0b101 {
            return; // QEMU: "Can't issue command" while the clock is off.
        }
        let resp = match (word >> 16) & 3 {
            0 => ResponseType::None,
            1 => ResponseType::R2,
            3 => ResponseType::R1b,
            _ => ResponseType::R1,
        };
        let cmd = Command::new((word >> 24) as u8 & 0x3F, self.arg, resp);
        let data = word & (1 << 21) != 0;
        let read = word & (1 << 4) != 0;
        let len = (self.blk >> 16) as usize * 512;
        let result = if data && read {
            let mut buf = vec![0; len];
            let r = self.card.command(&cmd, Data::Read(&mut buf));
            self.rd = buf;
            r
        } else if data {
            self.wr.clear();
            self.wr_need = len;
            self.wr_cmd = Some(cmd);
            self.card.command(&cmd, Data::Write(&vec![0; len]))
        } else {
            self.card.command(&cmd, Data::None)
        };
        match result {
            Ok(Response::Short(r)) => self.resp = [r, 0, 0, 0],
            Ok(Response::Long(r)) => {
                let r = r >> 8;
                self.resp = [0, 1, 2, 3].map(|i| (r >> (32 * i)) as u32);
            }
            Ok(Response::None) => {}
            Err(e) => {
                self.raise(INT_CMD_DONE | Self::error_bit(e));
                return;
            }
        }
        self.raise(INT_CMD_DONE);
        if data && read {
            self.raise(INT_RD_READY);
        } else if data {
            self.raise(INT_WR_READY);
        }
    }
}

impl Regs for SimSdhci {
    fn read32(&mut self, offset: usize) -> u32 {
        match offset {
            0x10..=0x1C => self.resp[(offset - 0x10) / 4],
            0x20 => {
                let w: Vec<u8> = self.rd.drain(..4.min(self.rd.len())).collect();
                let mut b = [0; 4];
                b[..w.len()].copy_from_slice(&w);
                if self.rd.is_empty() {
                    self.raise(INT_XFER_DONE);
                } else if self.rd.len().is_multiple_of(512) {
                    self.raise(INT_RD_READY);
                }
                u32::from_le_bytes(b)
            }
            0x24 => {
                let mut ps = 0;
                if self.card.present {
                    ps |= 1 << 16;
                }
                if !self.card.wp_switch {
                    ps |= 1 << 19;
                }
                ps
            }
            0x28 => self.hostctl,
            0x2C => self.clk,
            0x30 => self.ints,
            0x40 => 0x0578_34b4, // QEMU's default capabilities: 52 MHz base clock
            0xFC => 2 << 16,     // specification version 3.00
            _ => 0,
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        match offset {
            0x04 => self.blk = value,
            0x08 => self.arg = value,
            0x0C => self.issue(value),
            0x20 => {
                self.wr.extend_from_slice(&value.to_le_bytes());
                if self.wr.len() == self.wr_need {
                    let cmd = self.wr_cmd.take().unwrap();
                    let data = std::mem::take(&mut self.wr);
                    let _ = self.card.command(&cmd, Data::Write(&data));
                    self.raise(INT_XFER_DONE);
                } else if self.wr.len().is_multiple_of(512) {
                    self.raise(INT_WR_READY);
                }
            }
            0x28 => self.hostctl = value,
            0x2C => {
                // Resets (byte 3) complete at once; the internal clock is stable at once.
                self.clk = value & 0xFFFF & !2;
                if value & 1 != 0 {
                    self.clk |= 2;
                }
                if value & (1 << 24) != 0 {
                    self.int_en = 0;
                    self.ints = 0;
                }
            }
            0x30 => {
                self.ints &= !value;
                if self.ints >> 16 == 0 {
                    self.ints &= !INT_ERROR;
                }
            }
            0x34 => self.int_en = value,
            _ => {}
        }
    }
}

const CONFIG: SdhciConfig = SdhciConfig {
    base_clock_hz: None,
    card_detect: true,
    write_protect: true,
    space_writes: false,
};

fn open(sim: SimCard, clock: Clock) -> Result<Card<Sdhci<SimSdhci, Clock>, Clock>, Error> {
    let host = Sdhci::new(SimSdhci::new(sim), clock.clone(), CONFIG).unwrap();
    Card::init(host, clock, Options::default())
}

#[test]
fn sdhc_through_sdhci_round_trip() {
    let clock = Clock::default();
    let sim = SimCard::new(Kind::Sdhc, 8192, clock.clone());
    let mut c = open(sim, clock).unwrap();
    assert_eq!(c.info().kind, CardKind::Sdhc);
    assert_eq!(c.info().blocks, 8192);
    assert_eq!(
        c.info().clock_hz,
        52_000_000 / 4,
        "divisor N = 2 under 25 MHz"
    );
    let data: Vec<u8> = (0..512 * 3).map(|i| (i % 251) as u8).collect();
    c.write_sectors(40, &data).unwrap();
    let mut back = vec![0; data.len()];
    c.read_sectors(40, &mut back).unwrap();
    assert_eq!(back, data);
    c.read_sectors(41, &mut back[..512]).unwrap();
    assert_eq!(back[..512], data[512..1024]);
    let sim = c.into_host();
    let _ = sim;
}

#[test]
fn sdhci_command_words() {
    let clock = Clock::default();
    let sim = SimCard::new(Kind::Sdhc, 8192, clock.clone());
    let mut c = open(sim, clock).unwrap();
    c.read_sectors(0, &mut [0; 1024]).unwrap();
    let words = c.into_host().into_regs().commands;
    // ACMD41: R3, no CRC or index check.
    assert!(words.contains(&0x2902_0000));
    // CMD18: 48-bit response with CRC and index check, data, block count, read, multi-block.
    assert!(words.contains(&0x123A_0032), "{words:x?}");
    // CMD12: R1b.
    assert!(words.contains(&0x0C1B_0000));
}

#[test]
fn sdhci_errors_are_typed() {
    let clock = Clock::default();
    let mut sim = SimCard::new(Kind::Sdhc, 8192, clock.clone());
    sim.timeout_on.push(2);
    assert_eq!(
        open(sim, clock.clone()).err(),
        Some(Error::Timeout { cmd: Cmd::new(2) })
    );

    let mut sim = SimCard::new(Kind::Sdhc, 8192, clock.clone());
    sim.crc_on = Some((3, 1));
    assert_eq!(
        open(sim, clock.clone()).err(),
        Some(Error::Crc { cmd: Cmd::new(3) })
    );

    let mut sim = SimCard::new(Kind::Sdhc, 8192, clock.clone());
    sim.present = false;
    assert_eq!(open(sim, clock.clone()).err(), Some(Error::NoCard));

    let mut sim = SimCard::new(Kind::Sdhc, 8192, clock.clone());
    sim.data_crc_on_read = true;
    let mut c = open(sim, clock.clone()).unwrap();
    assert_eq!(
        c.read_blocks(0, &mut [0; 512]),
        Err(Error::DataCrc { cmd: Cmd::new(17) })
    );

    let mut sim = SimCard::new(Kind::Sdhc, 8192, clock.clone());
    sim.wp_switch = true;
    let mut c = open(sim, clock).unwrap();
    assert_eq!(c.write_blocks(0, &[0; 512]), Err(Error::WriteProtected));
}
