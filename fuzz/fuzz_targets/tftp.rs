//! TFTP client: a fuzzed sequence of server packets (well-formed DATA around the expected block,
//! raw packets, OACKs, ERRORs) and clock ticks. The client never counts more bytes than its
//! destination holds, never writes outside it, and when only well-formed DATA of one file
//! arrived, a finished transfer holds exactly that file. Every packet that parses re-parses
//! from its `emit` to the same value.
#![no_main]

use arbitrary::{Result, Unstructured};
use kexboot_fuzz::Guarded;
use kexboot_net::tftp::{Action, Client, Options, Packet, OP_DATA, OP_ERROR, OP_OACK};
use libfuzzer_sys::fuzz_target;

const MAX_EVENTS: usize = 96;
const OPTION_NAMES: &[&str] = &["blksize", "tsize", "timeout", "windowsize", "BLKSIZE", "x"];

/// Byte `i` of the file the well-behaved server sends.
fn file_byte(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

fn oack(u: &mut Unstructured) -> Result<Vec<u8>> {
    let mut v = OP_OACK.to_be_bytes().to_vec();
    for _ in 0..u.int_in_range(0..=3)? {
        v.extend_from_slice(u.choose(OPTION_NAMES)?.as_bytes());
        v.push(0);
        let value: String = if u.arbitrary()? {
            u.int_in_range(0..=70000u32)?.to_string()
        } else {
            u.arbitrary()?
        };
        v.extend_from_slice(value.as_bytes());
        v.push(0);
    }
    Ok(v)
}

fn run(u: &mut Unstructured) -> Result<()> {
    let opts = Options {
        blksize: u.arbitrary()?,
        tsize: u.arbitrary()?,
        timeout: u.arbitrary()?,
        windowsize: u.arbitrary::<Option<u8>>()?.map(u16::from),
    };
    let capacity = usize::from(u.arbitrary::<u16>()?);
    let file_len = usize::from(u.arbitrary::<u16>()?);
    let file: Vec<u8> = (0..file_len).map(file_byte).collect();
    let mut client = Client::new("vmlinuz", opts, capacity).unwrap();
    let mut dest = Guarded::new(capacity);
    let mut now = 0u64;
    let _rrq = client.start(now);
    // Content is checked only if nothing but well-formed DATA of `file` at one block size came.
    let mut clean = true;
    let mut data_blksize = None;
    for _ in 0..MAX_EVENTS {
        if u.is_empty() {
            break;
        }
        now += u64::from(u.int_in_range(0..=2_000_000u32)?);
        let pkt: Vec<u8> = match u.int_in_range(0..=4u8)? {
            0 => {
                let b = client.blksize();
                if *data_blksize.get_or_insert(b) != b {
                    clean = false;
                }
                let expected = client.received() / b.max(1) + 1;
                let block =
                    (expected as i64 + i64::from(u.int_in_range(-2..=2i8)?)).max(1) as usize;
                let start = ((block - 1) * b).min(file.len());
                let end = (block * b).min(file.len());
                let mut v = OP_DATA.to_be_bytes().to_vec();
                v.extend_from_slice(&(block as u16).to_be_bytes());
                v.extend_from_slice(&file[start..end]);
                v
            }
            1 => {
                let raw: Vec<u8> = u.arbitrary()?;
                if let Ok(p) = Packet::parse(&raw) {
                    assert_eq!(
                        Packet::parse(&p.emit()),
                        Ok(p.clone()),
                        "emit does not re-parse"
                    );
                    if matches!(p, Packet::Data { .. }) {
                        clean = false;
                    }
                }
                raw
            }
            2 => {
                let _ = client.on_tick(now);
                dest.check();
                continue;
            }
            3 => oack(u)?,
            _ => {
                let mut v = OP_ERROR.to_be_bytes().to_vec();
                v.extend_from_slice(&u.arbitrary::<u16>()?.to_be_bytes());
                v.extend_from_slice(b"no\0");
                v
            }
        };
        let res = client.on_packet(&pkt, now, dest.dst());
        dest.check();
        assert!(
            client.received() <= capacity,
            "{} bytes counted into {capacity}",
            client.received()
        );
        if let Ok(Action::Done { size, .. }) = res {
            assert!(size <= capacity);
            assert_eq!(size, client.received());
            if clean {
                assert_eq!(size, file.len(), "transfer ended early");
                assert!(
                    dest.data()[..size] == file[..],
                    "received bytes differ from the file"
                );
            }
            break;
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
