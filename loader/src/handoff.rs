//! kexboot's handoff record: how a kexboot entered through Linux kexec knows it is a warm entry.
//!
//! On every boot kexboot keeps one page of RAM for itself, declared to the kernel as
//! `/reserved-memory/kexboot-handoff@ADDR` (`compatible = "kexboot,handoff"`, `no-map`, and a
//! `kexboot,boot-id` property), and writes this record there just before the jump. Linux never
//! maps the page and hands its device tree back on kexec; the next kexboot finds the node,
//! checks the page lies in RAM clear of itself, and accepts the record only if magic, version,
//! length, CRC32 and the boot id named in the tree all agree. Anything else is a cold entry,
//! with a warning when a record was there but did not check out.

use alloc::string::String;
use alloc::vec::Vec;

use crate::dt::Handoff;
use crate::mem::{Range, PAGE_SIZE};
use crate::{Error, Result};

pub const MAGIC: [u8; 8] = *b"KXBHOFF\0";
pub const VERSION: u32 = 1;
/// Longest label kept (longer ones are cut at a character boundary).
pub const LABEL_MAX: usize = 64;
/// magic, version, length, generation, boot id, label, CRC32.
pub const RECORD_LEN: usize = 8 + 4 + 4 + 8 + 8 + LABEL_MAX + 4;
const CRC_AT: usize = RECORD_LEN - 4;

/// What one boot tells the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1 on a cold boot, then one more per warm re-entry.
    pub generation: u64,
    /// Unique per boot; also written into the device tree the kernel gets.
    pub boot_id: u64,
    /// The extlinux label that was booted.
    pub label: String,
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Record {
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(RECORD_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.generation.to_le_bytes());
        b[24..32].copy_from_slice(&self.boot_id.to_le_bytes());
        let mut n = self.label.len().min(LABEL_MAX);
        while !self.label.is_char_boundary(n) {
            n -= 1;
        }
        b[32..32 + n].copy_from_slice(&self.label.as_bytes()[..n]);
        let crc = crc32fast::hash(&b[..CRC_AT]);
        b[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Checks every field of an untrusted record.
    pub fn decode(b: &[u8]) -> Result<Record> {
        let bad = |why| Error::BadHandoff { why };
        if b.len() < RECORD_LEN {
            return Err(bad("shorter than a record"));
        }
        if b[0..8] != MAGIC {
            return Err(bad("no record (magic)"));
        }
        let version = le32(b, 8);
        if version != VERSION {
            return Err(Error::HandoffVersion {
                found: version,
                expected: VERSION,
            });
        }
        if le32(b, 12) as usize != RECORD_LEN {
            return Err(bad("length field"));
        }
        let expected = le32(b, CRC_AT);
        let found = crc32fast::hash(&b[..CRC_AT]);
        if expected != found {
            return Err(Error::HandoffChecksum { expected, found });
        }
        let raw = &b[32..32 + LABEL_MAX];
        let end = raw.iter().position(|&c| c == 0).unwrap_or(LABEL_MAX);
        let label = core::str::from_utf8(&raw[..end]).map_err(|_| bad("label is not UTF-8"))?;
        Ok(Record {
            generation: le64(b, 16),
            boot_id: le64(b, 24),
            label: label.into(),
        })
    }
}

/// How kexboot was entered.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Cold,
    /// A valid record from the boot before.
    Warm(Record),
    /// A handoff node was there but its record was not usable: treated as cold.
    ColdWithWarning(Error),
}

/// Decides cold or warm from the incoming device tree's handoff node. `read` returns the
/// record bytes at an address (called only once the region was checked to be RAM clear of
/// `avoid`: kexboot itself and the incoming DTB).
pub fn classify(
    handoff: Option<Handoff>,
    ram: &[Range],
    avoid: &[Range],
    read: &mut dyn FnMut(u64) -> Vec<u8>,
) -> Entry {
    let Some(h) = handoff else { return Entry::Cold };
    let bad = |why| Entry::ColdWithWarning(Error::BadHandoff { why });
    let r = h.region;
    if r.start() % PAGE_SIZE != 0 || r.len() < RECORD_LEN as u64 {
        return bad("handoff region misaligned or too small");
    }
    if !ram.iter().any(|m| m.contains_range(&r)) {
        return bad("handoff region outside RAM");
    }
    if avoid.iter().any(|a| a.overlaps(&r)) {
        return bad("handoff region overlaps kexboot or the device tree");
    }
    let Some(boot_id) = h.boot_id else {
        return bad("handoff node has no boot id");
    };
    match Record::decode(&read(r.start())) {
        Ok(rec) if rec.boot_id != boot_id => bad("stale record (boot id differs from the tree's)"),
        Ok(rec) => Entry::Warm(rec),
        Err(e) => Entry::ColdWithWarning(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn rec() -> Record {
        Record {
            generation: 3,
            boot_id: 0xfeed_beef_1234,
            label: "warm-b".into(),
        }
    }

    const RAM: Range = Range::constant(0x4000_0000, 0x8000_0000);
    const PAGE: Range = Range::constant(0x7fe0_0000, 0x7fe0_1000);

    fn node(boot_id: Option<u64>) -> Option<Handoff> {
        Some(Handoff {
            region: PAGE,
            boot_id,
        })
    }

    #[test]
    fn round_trip_and_every_field_checked() {
        let b = rec().encode();
        assert_eq!(Record::decode(&b).unwrap(), rec());
        // Any single flipped byte is caught (CRC covers everything but itself).
        for i in 0..RECORD_LEN {
            let mut c = b;
            c[i] ^= 0x40;
            assert!(Record::decode(&c).is_err(), "flip at {i} accepted");
        }
        assert!(matches!(
            Record::decode(&b[..RECORD_LEN - 1]),
            Err(Error::BadHandoff { .. })
        ));
        let mut v = b;
        v[8] = 2;
        assert_eq!(
            Record::decode(&v),
            Err(Error::HandoffVersion {
                found: 2,
                expected: VERSION
            })
        );
    }

    #[test]
    fn long_labels_are_cut_at_a_char_boundary() {
        let label = "é".repeat(40); // 80 bytes
        let r = Record { label, ..rec() };
        let back = Record::decode(&r.encode()).unwrap();
        assert_eq!(back.label.chars().count(), LABEL_MAX / 2);
    }

    #[test]
    fn classify_cold_warm_and_every_refusal() {
        let good = rec().encode().to_vec();
        let mut read = |_| good.clone();
        assert_eq!(classify(None, &[RAM], &[], &mut read), Entry::Cold);
        assert_eq!(
            classify(node(Some(rec().boot_id)), &[RAM], &[], &mut read),
            Entry::Warm(rec())
        );
        let warn = |e: Entry| matches!(e, Entry::ColdWithWarning(_));
        // stale: the tree names another boot
        assert!(warn(classify(node(Some(1)), &[RAM], &[], &mut read)));
        assert!(warn(classify(node(None), &[RAM], &[], &mut read)));
        // outside RAM, misaligned, overlapping what must be avoided: never read
        let mut never = |_| -> Vec<u8> { panic!("read a region that failed its checks") };
        let outside = Some(Handoff {
            region: Range::constant(0x1000, 0x2000),
            boot_id: Some(1),
        });
        assert!(warn(classify(outside, &[RAM], &[], &mut never)));
        let odd = Some(Handoff {
            region: Range::constant(PAGE.start() + 8, PAGE.end() + 8),
            boot_id: Some(1),
        });
        assert!(warn(classify(odd, &[RAM], &[], &mut never)));
        assert!(warn(classify(node(Some(1)), &[RAM], &[PAGE], &mut never)));
        // garbage in the page
        let mut junk = |_| vec![0xa5u8; 4096];
        assert!(warn(classify(
            node(Some(rec().boot_id)),
            &[RAM],
            &[],
            &mut junk
        )));
    }
}
