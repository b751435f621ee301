//! The card protocol against a simulated card: initialisation of SDHC and SDSC cards, block
//! round trips through `kexboot_fs::BlockDevice`, every error as a typed error, and no panic on
//! any response.
mod common;

use common::{Clock, Kind, SimCard, RCA};
use kexboot_fs::BlockDevice;
use kexboot_sd::{
    BusWidth, Card, CardKind, Cmd, Command, Data, Error, Host, HostError, Options, Response,
    StatusBits,
};
use proptest::prelude::*;

const SDHC_BLOCKS: u64 = 8 * 1024; // 4 MiB
const SDSC_BLOCKS: u64 = 4096; // 2 MiB

fn card(kind: Kind, blocks: u64) -> (SimCard, Clock) {
    let clock = Clock::default();
    (SimCard::new(kind, blocks, clock.clone()), clock)
}

fn init(sim: SimCard, clock: Clock) -> Result<Card<SimCard, Clock>, Error> {
    Card::init(sim, clock, Options::default())
}

fn init_err(sim: SimCard, clock: Clock) -> Error {
    match init(sim, clock) {
        Ok(_) => panic!("init succeeded"),
        Err(e) => e,
    }
}

fn indices(log: &[(u8, u32, bool)]) -> Vec<u8> {
    log.iter().map(|c| c.0).collect()
}

#[test]
fn sdhc_init_sequence_and_capacity() {
    let (sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    let c = init(sim, clock).unwrap();
    let info = *c.info();
    assert_eq!(info.kind, CardKind::Sdhc);
    assert_eq!(info.blocks, SDHC_BLOCKS);
    assert_eq!(info.rca, RCA);
    assert_eq!(info.bus_width, BusWidth::Four);
    assert_eq!(info.clock_hz, 25_000_000);
    assert_eq!(c.num_sectors(), SDHC_BLOCKS);
    let sim = c.into_host();
    assert_eq!(indices(&sim.log), [0, 8, 55, 41, 2, 3, 9, 7, 55, 6]);
    assert_eq!(sim.log[1].1, 0x1AA, "CMD8: 2.7-3.6 V, pattern 0xAA");
    assert_ne!(sim.log[3].1 & (1 << 30), 0, "ACMD41 with HCS");
    assert_eq!(sim.log[7].1, u32::from(RCA) << 16, "CMD7 selects the RCA");
    assert_eq!(sim.bus_width, BusWidth::Four);
}

#[test]
fn sdsc_v2_and_v1_init_set_block_length() {
    for kind in [Kind::SdscV2, Kind::SdscV1] {
        let (sim, clock) = card(kind, SDSC_BLOCKS);
        let c = init(sim, clock).unwrap();
        let want = if kind == Kind::SdscV1 {
            CardKind::SdscV1
        } else {
            CardKind::SdscV2
        };
        assert_eq!(c.info().kind, want);
        assert_eq!(c.info().blocks, SDSC_BLOCKS);
        let sim = c.into_host();
        assert!(indices(&sim.log).contains(&16), "CMD16 on SDSC");
        let hcs = sim.log.iter().find(|c| c.0 == 41).unwrap().1 & (1 << 30);
        assert_eq!(
            hcs != 0,
            kind == Kind::SdscV2,
            "HCS only after CMD8 answered"
        );
    }
}

#[test]
fn sdsc_csd_v1_with_1024_byte_read_bl_len() {
    let (mut sim, clock) = card(Kind::SdscV2, 8192);
    sim.read_bl_len = 10;
    let c = init(sim, clock).unwrap();
    assert_eq!(c.info().blocks, 8192);
}

fn round_trip(kind: Kind, blocks: u64) {
    let (sim, clock) = card(kind, blocks);
    let mut c = init(sim, clock).unwrap();
    let data: Vec<u8> = (0..512 * 7).map(|i| (i * 7 + i / 512) as u8).collect();
    c.write_sectors(100, &data).unwrap();
    c.write_sectors(blocks - 1, &data[..512]).unwrap();
    let mut back = vec![0; data.len()];
    c.read_sectors(100, &mut back).unwrap();
    assert_eq!(back, data);
    let mut one = vec![0; 512];
    c.read_sectors(blocks - 1, &mut one).unwrap();
    assert_eq!(one, data[..512]);
    let sim = c.into_host();
    let scale = if kind == Kind::Sdhc { 1 } else { 512 };
    let reads: Vec<_> = sim.log.iter().filter(|c| c.0 == 18 || c.0 == 17).collect();
    assert_eq!(
        reads[0].1,
        100 * scale,
        "address unit: blocks on SDHC, bytes on SDSC"
    );
    assert_eq!(reads[1].0, 17, "one block: CMD17");
    let after_18 = sim.log.iter().position(|c| c.0 == 18).unwrap();
    assert_eq!(sim.log[after_18 + 1].0, 12, "CMD18 is stopped by CMD12");
    let after_25 = sim.log.iter().position(|c| c.0 == 25).unwrap();
    assert_eq!(indices(&sim.log[after_25..after_25 + 3]), [25, 12, 13]);
    assert_eq!(sim.block(106), data[6 * 512..]);
}

#[test]
fn sdhc_multi_block_round_trip() {
    round_trip(Kind::Sdhc, SDHC_BLOCKS);
}

#[test]
fn sdsc_multi_block_round_trip() {
    round_trip(Kind::SdscV1, SDSC_BLOCKS);
}

#[test]
fn large_reads_are_split_into_bounded_commands() {
    let (sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    let mut c = init(sim, clock).unwrap();
    let mut buf = vec![0; 512 * 5000];
    c.read_sectors(0, &mut buf).unwrap();
    let sim = c.into_host();
    let args: Vec<u32> = sim.log.iter().filter(|c| c.0 == 18).map(|c| c.1).collect();
    assert_eq!(args, [0, 2048, 4096]);
}

#[test]
fn write_waits_while_the_card_programs() {
    let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    sim.program_ns = 30_000_000; // 30 ms
    let mut c = init(sim, clock.clone()).unwrap();
    let before = clock.now_ns();
    c.write_sectors(5, &[0x5A; 512]).unwrap();
    assert!(clock.now_ns() - before >= 30_000_000);
    assert!(c.into_host().log.iter().filter(|c| c.0 == 13).count() > 1);
}

#[test]
fn write_busy_forever_is_bounded() {
    let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    sim.program_ns = u64::MAX / 2;
    let mut c = init(sim, clock).unwrap();
    assert_eq!(
        c.write_sectors(5, &[0; 512]),
        Err(kexboot_fs::Error::WriteIo { lba: 5 })
    );
    assert_eq!(
        c.last_error(),
        Some(&Error::Busy {
            cmd: Cmd::new(24),
            waited_ms: 500
        })
    );
}

#[test]
fn slow_power_up_is_waited_for_within_one_second() {
    let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    sim.ready_at_ns = 600_000_000;
    let c = init(sim, clock).unwrap();
    assert!(c.into_host().log.iter().filter(|c| c.0 == 41).count() > 50);
}

#[test]
fn power_up_longer_than_one_second_fails() {
    let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    sim.ready_at_ns = 5_000_000_000;
    let e = init_err(sim, clock);
    assert_eq!(
        e,
        Error::Busy {
            cmd: Cmd::acmd(41),
            waited_ms: 1000
        }
    );
    assert_eq!(e.to_string(), "sd: card still busy 1000 ms after ACMD41");
}

#[test]
fn no_card() {
    let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    sim.present = false;
    let e = init_err(sim, clock);
    assert_eq!(e, Error::NoCard);
    assert_eq!(e.to_string(), "sd: no card in the slot");
}

#[test]
fn timeout_names_the_command() {
    for index in [0u8, 2, 3, 7, 9] {
        let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
        sim.timeout_on.push(index);
        let e = init_err(sim, clock);
        assert_eq!(
            e,
            Error::Timeout {
                cmd: Cmd::new(index)
            }
        );
        assert_eq!(e.to_string(), format!("sd: no response to CMD{index}"));
    }
}

#[test]
fn crc_error_names_the_command() {
    let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    sim.crc_on = Some((9, 1));
    let e = init_err(sim, clock);
    assert_eq!(e, Error::Crc { cmd: Cmd::new(9) });
    assert_eq!(e.to_string(), "sd: CRC error in the response to CMD9");
}

#[test]
fn mmc_card_is_unsupported() {
    let (sim, clock) = card(Kind::Mmc, SDSC_BLOCKS);
    let e = init_err(sim, clock);
    assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
    assert!(e
        .to_string()
        .starts_with("sd: unsupported card: no answer to CMD8"));
}

/// A host that rewrites one command's response.
struct Tamper<F: FnMut(&Command, Response) -> Result<Response, HostError>> {
    sim: SimCard,
    f: F,
}

impl<F: FnMut(&Command, Response) -> Result<Response, HostError>> Host for Tamper<F> {
    fn card_present(&mut self) -> bool {
        self.sim.card_present()
    }
    fn write_protected(&mut self) -> bool {
        self.sim.write_protected()
    }
    fn set_clock(&mut self, hz: u32) -> Result<u32, HostError> {
        self.sim.set_clock(hz)
    }
    fn set_bus_width(&mut self, w: BusWidth) -> Result<(), HostError> {
        self.sim.set_bus_width(w)
    }
    fn command(&mut self, cmd: &Command, data: Data<'_>) -> Result<Response, HostError> {
        let r = self.sim.command(cmd, data)?;
        (self.f)(cmd, r)
    }
}

fn tampered(f: impl FnMut(&Command, Response) -> Result<Response, HostError>) -> Result<(), Error> {
    let (sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    Card::init(Tamper { sim, f }, clock, Options::default()).map(|_| ())
}

#[test]
fn response_errors() {
    let e = tampered(|c, r| {
        Ok(if c.index == 8 {
            Response::Short(0x1AB)
        } else {
            r
        })
    });
    assert_eq!(
        e,
        Err(Error::Response {
            cmd: Cmd::new(8),
            why: "check pattern or voltage not echoed"
        })
    );
    let e = tampered(|c, r| {
        if c.index == 3 {
            Err(HostError::CommandIndex)
        } else {
            Ok(r)
        }
    });
    assert_eq!(
        e.unwrap_err().to_string(),
        "sd: bad response to CMD3: wrong command index"
    );
    let e = tampered(|c, r| Ok(if c.index == 9 { Response::Short(0) } else { r }));
    assert!(matches!(e, Err(Error::Response { cmd, .. }) if cmd == Cmd::new(9)));
    // A CSD 1.0 from a card that said it is high capacity.
    let e = tampered(|c, r| {
        Ok(if c.index == 9 {
            Response::Long(9 << 80)
        } else {
            r
        })
    });
    assert!(matches!(e, Err(Error::Response { cmd, .. }) if cmd == Cmd::new(9)));
    // SDUC (CSD 3.0).
    let e = tampered(|c, r| {
        Ok(if c.index == 9 {
            Response::Long(2 << 126)
        } else {
            r
        })
    });
    assert_eq!(e, Err(Error::Unsupported("SDUC cards (CSD 3.0)")));
    // RCA 0 for ever.
    let e = tampered(|c, r| Ok(if c.index == 3 { Response::Short(0) } else { r }));
    assert!(matches!(e, Err(Error::Response { cmd, .. }) if cmd == Cmd::new(3)));
    // Error bits in R6.
    let e = tampered(|c, r| {
        Ok(if c.index == 3 {
            Response::Short(1 << 13)
        } else {
            r
        })
    });
    assert_eq!(
        e.unwrap_err().to_string(),
        "sd: card reports ERROR after CMD3"
    );
    // The controller gives up on CMD7's busy.
    let e = tampered(|c, r| {
        if c.index == 7 {
            Err(HostError::Stuck("busy end"))
        } else {
            Ok(r)
        }
    });
    assert_eq!(
        e.unwrap_err().to_string(),
        "sd: CMD7: controller stuck: busy end"
    );
}

#[test]
fn write_protect_switch() {
    let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    sim.wp_switch = true;
    let mut c = init(sim, clock).unwrap();
    assert_eq!(
        c.write_sectors(0, &[0; 512]),
        Err(kexboot_fs::Error::ReadOnly)
    );
    assert_eq!(c.last_error(), Some(&Error::WriteProtected));
    assert!(!c.into_host().log.iter().any(|c| c.0 == 24));
}

#[test]
fn card_status_error_bits() {
    let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    sim.wp_card = true;
    let mut c = init(sim, clock).unwrap();
    let e = c.write_blocks(3, &[0; 1024]).unwrap_err();
    assert_eq!(
        e,
        Error::CardStatus {
            cmd: Cmd::new(25),
            status: StatusBits(1 << 26)
        }
    );
    assert_eq!(e.to_string(), "sd: card reports WP_VIOLATION after CMD25");
    let sim = c.into_host();
    assert_eq!(
        sim.log.last().unwrap().0,
        12,
        "the transfer is still stopped"
    );
}

#[test]
fn data_crc_and_out_of_range() {
    let (mut sim, clock) = card(Kind::Sdhc, SDHC_BLOCKS);
    sim.data_crc_on_read = true;
    let mut c = init(sim, clock).unwrap();
    let mut buf = vec![0; 1024];
    assert_eq!(
        c.read_sectors(8, &mut buf),
        Err(kexboot_fs::Error::Io { lba: 8 })
    );
    assert_eq!(c.last_error(), Some(&Error::DataCrc { cmd: Cmd::new(18) }));
    assert_eq!(
        c.read_sectors(SDHC_BLOCKS - 1, &mut buf),
        Err(kexboot_fs::Error::OutOfRange {
            lba: SDHC_BLOCKS - 1,
            count: 2,
            size: SDHC_BLOCKS
        })
    );
    assert_eq!(
        c.read_sectors(0, &mut [0; 100]),
        Err(kexboot_fs::Error::BadBuffer { len: 100 })
    );
    assert_eq!(
        Error::OutOfRange {
            lba: 9,
            count: 2,
            blocks: 10
        }
        .to_string(),
        "sd: 2 blocks at 9 are outside the card (10 blocks)"
    );
    assert_eq!(
        Error::DataTimeout { cmd: Cmd::new(17) }.to_string(),
        "sd: data timeout in CMD17"
    );
}

/// A host answering from a script of random responses and errors.
struct Random {
    script: Vec<(u8, u128)>,
    at: usize,
}

impl Host for Random {
    fn card_present(&mut self) -> bool {
        true
    }
    fn write_protected(&mut self) -> bool {
        false
    }
    fn set_clock(&mut self, hz: u32) -> Result<u32, HostError> {
        Ok(hz)
    }
    fn set_bus_width(&mut self, _w: BusWidth) -> Result<(), HostError> {
        Ok(())
    }
    fn command(&mut self, _cmd: &Command, data: Data<'_>) -> Result<Response, HostError> {
        let (kind, v) = self.script[self.at % self.script.len()];
        self.at += 1;
        if let Data::Read(b) = data {
            b.fill(v as u8);
        }
        match kind % 8 {
            0 => Err(HostError::CommandTimeout),
            1 => Err(HostError::CommandCrc),
            2 => Err(HostError::DataCrc),
            3 => Ok(Response::None),
            4 => Ok(Response::Long(v)),
            _ => Ok(Response::Short(v as u32)),
        }
    }
}

proptest! {
    #[test]
    fn any_responses_end_in_a_result(script in proptest::collection::vec((any::<u8>(), any::<u128>()), 1..64)) {
        let host = Random { script, at: 0 };
        if let Ok(mut c) = Card::init(host, Clock::default(), Options::default()) {
            let mut buf = vec![0; 512 * 3];
            let _ = c.read_sectors(0, &mut buf);
            let _ = c.write_sectors(1, &buf);
            let _ = c.read_sectors(u64::MAX, &mut buf);
            prop_assert!(c.into_host().at < 10_000, "bounded number of commands");
        }
    }
}
