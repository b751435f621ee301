//! The redundant environment: round trips, power cuts at every byte, corrupt copies, wrap-around.

mod common;
use common::crc;

use kexboot_boot::env::Env;
use kexboot_boot::envstore::{self, decode, encode, load, Error, Source, COPY_SIZE, REGION_SIZE};
use proptest::prelude::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    let mut e = Env::default();
    for (n, v) in pairs {
        e.set(n, v);
    }
    e
}

fn sorted(e: &Env) -> Vec<(String, String)> {
    e.iter_sorted()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn defaults() -> Env {
    env(&[("bootdelay", "2"), ("bootcmd", "run distro_bootcmd")])
}

/// Saves `e` into `region` the way the firmware does, and returns the new state.
fn save(region: &mut [u8], size: usize, e: &Env) -> envstore::Loaded {
    let mut l = load(region, size, &defaults());
    let plan = l.plan_save(e).unwrap();
    region[plan.offset..plan.offset + plan.bytes.len()].copy_from_slice(&plan.bytes);
    l.saved(&plan, e);
    l
}

#[test]
fn round_trip_and_layout() {
    let e = env(&[
        ("z", "last"),
        ("bootargs", "console=ttyAMA0 root=/dev/vda2"),
        ("a", ""),
    ]);
    let copy = encode(&e, 7, COPY_SIZE).unwrap();
    assert_eq!(copy.len(), COPY_SIZE);
    assert_eq!(copy[4], 7);
    // CRC32 little-endian over the data only (U-Boot's layout), sorted entries, "\0\0" end.
    assert_eq!(&copy[..4], &crc(&copy[5..]).to_le_bytes());
    let data = b"a=\0bootargs=console=ttyAMA0 root=/dev/vda2\0z=last\0\0";
    assert_eq!(&copy[5..5 + data.len()], data);
    assert!(copy[5 + data.len()..].iter().all(|&b| b == 0));
    let (back, seq) = decode(&copy).unwrap();
    assert_eq!((sorted(&back), seq), (sorted(&e), 7));
    // Empty environment.
    let (back, _) = decode(&encode(&Env::default(), 0, 64).unwrap()).unwrap();
    assert!(back.is_empty());
}

#[test]
fn encode_refuses() {
    let big = env(&[("x", &"v".repeat(COPY_SIZE))]);
    assert!(matches!(
        encode(&big, 0, COPY_SIZE),
        Err(Error::TooBig { .. })
    ));
    // Exactly full fits: data = "x=" + value + "\0" + "\0".
    let cap = COPY_SIZE - 5;
    let full = env(&[("x", &"v".repeat(cap - 4))]);
    assert!(encode(&full, 0, COPY_SIZE).is_ok());
    let over = env(&[("x", &"v".repeat(cap - 3))]);
    assert_eq!(
        encode(&over, 0, COPY_SIZE),
        Err(Error::TooBig {
            needed: cap + 1,
            capacity: cap
        })
    );
    assert!(matches!(
        encode(&env(&[("a", "b\0c")]), 0, 64),
        Err(Error::NulInValue { .. })
    ));
    assert!(matches!(
        encode(&env(&[("a=b", "c")]), 0, 64),
        Err(Error::BadName { .. })
    ));
    assert!(matches!(
        encode(&Env::default(), 0, 6),
        Err(Error::CopyTooSmall { size: 6 })
    ));
}

#[test]
fn decode_refuses() {
    let mut c = encode(&env(&[("a", "1")]), 0, 64).unwrap();
    c[10] ^= 0x40;
    assert!(matches!(decode(&c), Err(Error::Crc { .. })));
    // Valid CRC over malformed data.
    let fix = |mut c: Vec<u8>| {
        let crc = crc(&c[5..]);
        c[..4].copy_from_slice(&crc.to_le_bytes());
        c
    };
    let mut c = vec![0u8; 32];
    c[5..12].copy_from_slice(b"novalue");
    assert_eq!(decode(&fix(c)), Err(Error::BadEntry { offset: 0 }));
    let mut c = vec![b'a'; 32];
    c[6] = b'=';
    assert_eq!(decode(&fix(c)), Err(Error::NoTerminator));
    let mut c = vec![0u8; 32];
    c[5..9].copy_from_slice(b"a=\xff\xfe");
    assert_eq!(decode(&fix(c)), Err(Error::NotUtf8 { offset: 0 }));
    assert!(matches!(
        decode(&[1, 2, 3]),
        Err(Error::CopyTooSmall { .. })
    ));
}

#[test]
fn corrupt_copies_are_reported() {
    let mut region = vec![0u8; REGION_SIZE];
    let l = load(&region, COPY_SIZE, &defaults());
    assert_eq!(l.source, Source::Defaults);
    assert_eq!(l.notes, ["no saved environment: using defaults"]);
    assert_eq!(sorted(&l.env), sorted(&defaults()));
    // Erased flash and a missing file read as empty too.
    assert_eq!(
        load(&vec![0xff; REGION_SIZE], COPY_SIZE, &defaults()).source,
        Source::Defaults
    );
    assert_eq!(load(&[], COPY_SIZE, &defaults()).source, Source::Defaults);

    let e1 = env(&[("v", "1")]);
    let e2 = env(&[("v", "2")]);
    save(&mut region, COPY_SIZE, &e1); // -> A
    save(&mut region, COPY_SIZE, &e2); // -> B (current)
    let l = load(&region, COPY_SIZE, &defaults());
    assert_eq!((l.source, l.env.get("v")), (Source::B, Some("2")));
    assert!(l.notes.is_empty());

    let mut r = region.clone();
    r[COPY_SIZE + 100] ^= 1;
    let l = load(&r, COPY_SIZE, &defaults());
    assert_eq!((l.source, l.env.get("v")), (Source::A, Some("1")));
    assert_eq!(l.notes.len(), 1);
    assert!(
        l.notes[0].starts_with("environment copy B is corrupt (CRC: expected")
            && l.notes[0].ends_with("using copy A"),
        "{}",
        l.notes[0]
    );

    let mut r = region.clone();
    r[2] ^= 1;
    let l = load(&r, COPY_SIZE, &defaults());
    assert_eq!((l.source, l.env.get("v")), (Source::B, Some("2")));
    assert!(l.notes[0].starts_with("environment copy A is corrupt (CRC"));

    let mut r = region.clone();
    r[7] ^= 1;
    r[COPY_SIZE + 7] ^= 1;
    let l = load(&r, COPY_SIZE, &defaults());
    assert_eq!(l.source, Source::Defaults);
    assert_eq!(sorted(&l.env), sorted(&defaults()));
    assert!(
        l.notes[0].starts_with("both environment copies corrupt"),
        "{}",
        l.notes[0]
    );

    // A file cut short inside copy B.
    let l = load(&region[..COPY_SIZE + 10], COPY_SIZE, &defaults());
    assert_eq!(l.source, Source::A);
    assert!(l.notes[0].contains("truncated"));
}

#[test]
fn save_never_overwrites_the_current_copy() {
    let mut region = vec![0u8; REGION_SIZE];
    let mut expect = Source::A;
    for i in 0..5 {
        let l = save(&mut region, COPY_SIZE, &env(&[("i", &i.to_string())]));
        assert_eq!(l.source, expect);
        expect = if expect == Source::A {
            Source::B
        } else {
            Source::A
        };
        let plan = l.plan_save(&Env::default()).unwrap();
        assert_eq!(plan.target, expect);
        assert_eq!(plan.offset, if expect == Source::A { 0 } else { COPY_SIZE });
        assert_eq!(plan.seq, l.seq.wrapping_add(1));
    }
}

/// Power cut after k bytes of the new copy, for every k: the environment loaded afterwards is the
/// old one or the new one, never defaults and never a mixture.
#[test]
fn power_cut_at_every_byte() {
    const SIZE: usize = 512;
    // Old target holds an older valid environment, is empty, or is corrupt.
    for prior in 0..3 {
        let mut region = vec![0u8; 2 * SIZE];
        let older = env(&[("gen", "0"), ("bootargs", "old old old")]);
        let current = env(&[("gen", "1"), ("bootargs", "current")]);
        let new = env(&[("gen", "2"), ("bootargs", "brand new"), ("extra", "x")]);
        if prior == 0 {
            save(&mut region, SIZE, &older);
        }
        let mut l = save(&mut region, SIZE, &current);
        if prior != 0 {
            // Put the current copy in B so the target is A.
            region.copy_within(0..SIZE, SIZE);
            region[..SIZE].fill(0);
            if prior == 2 {
                region[..SIZE].fill(0x5a);
            }
            l = load(&region, SIZE, &defaults());
            assert_eq!(l.source, Source::B);
        }
        let plan = l.plan_save(&new).unwrap();
        let (mut saw_old, mut saw_new) = (false, false);
        for k in 0..=SIZE {
            let mut r = region.clone();
            r[plan.offset..plan.offset + k].copy_from_slice(&plan.bytes[..k]);
            let got = load(&r, SIZE, &defaults());
            assert_ne!(got.source, Source::Defaults, "prior {prior} k {k}");
            let g = sorted(&got.env);
            if g == sorted(&current) {
                saw_old = true;
                assert!(k < SIZE);
            } else {
                assert_eq!(g, sorted(&new), "prior {prior} k {k}");
                saw_new = true;
            }
        }
        assert!(saw_old && saw_new);
    }
}

#[test]
fn power_cut_full_size_sampled() {
    let mut region = vec![0u8; REGION_SIZE];
    save(&mut region, COPY_SIZE, &env(&[("a", "1")]));
    let l = save(&mut region, COPY_SIZE, &env(&[("a", "2")]));
    let plan = l.plan_save(&env(&[("a", "3")])).unwrap();
    for k in (0..=COPY_SIZE)
        .step_by(97)
        .chain([4, 5, 6, COPY_SIZE - 1, COPY_SIZE])
    {
        let mut r = region.clone();
        r[plan.offset..plan.offset + k].copy_from_slice(&plan.bytes[..k]);
        let v = load(&r, COPY_SIZE, &defaults())
            .env
            .get("a")
            .map(str::to_string);
        // The new copy is valid once its data is written, as the rest (zero padding) matches.
        match k {
            0..=5 => assert_eq!(v.as_deref(), Some("2"), "k {k}"),
            COPY_SIZE => assert_eq!(v.as_deref(), Some("3"), "k {k}"),
            _ => assert!(matches!(v.as_deref(), Some("2" | "3")), "k {k}"),
        }
    }
}

#[test]
fn sequence_wraps_around() {
    assert!(envstore::is_newer(0, 255));
    assert!(!envstore::is_newer(255, 0));
    assert!(envstore::is_newer(11, 10));
    assert!(!envstore::is_newer(10, 10));
    // Explicit copies: A has 255, B has 0 -> B is newer.
    let mut region = encode(&env(&[("c", "a")]), 255, 256).unwrap();
    region.extend(encode(&env(&[("c", "b")]), 0, 256).unwrap());
    let l = load(&region, 256, &defaults());
    assert_eq!((l.source, l.seq, l.env.get("c")), (Source::B, 0, Some("b")));
    // And 600 saves in a row always load the latest.
    let mut region = vec![0u8; 512];
    for i in 0..600u32 {
        let s = save(&mut region, 256, &env(&[("i", &i.to_string())]));
        let l = load(&region, 256, &defaults());
        assert_eq!(l.env.get("i"), Some(i.to_string().as_str()));
        assert_eq!(l.seq, s.seq);
        assert_eq!(l.seq, ((i + 1) % 256) as u8);
    }
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), size in 0usize..300) {
        let _ = decode(&bytes);
        let l = load(&bytes, size, &defaults());
        let _ = l.plan_save(&l.env);
    }

    #[test]
    fn round_trips(pairs in proptest::collection::vec(("[a-z_][a-z0-9_.-]{0,8}", "[ -~]{0,20}"), 0..20), seq in any::<u8>()) {
        let mut e = Env::default();
        for (n, v) in &pairs { e.set(n, v); }
        let copy = encode(&e, seq, 1024).unwrap();
        let (back, s) = decode(&copy).unwrap();
        prop_assert_eq!(sorted(&back), sorted(&e));
        prop_assert_eq!(s, seq);
    }

    /// Saves with random power cuts: what loads is always the last completed save, or the one
    /// being written.
    #[test]
    fn random_power_cuts(cuts in proptest::collection::vec(proptest::option::of(0usize..256), 1..20)) {
        let mut region = vec![0u8; 512];
        let mut last: Option<String> = None;
        for (i, cut) in cuts.iter().enumerate() {
            let l = load(&region, 256, &defaults());
            prop_assert_eq!(l.env.get("i").map(str::to_string), last.clone());
            let new = env(&[("i", &i.to_string())]);
            let plan = l.plan_save(&new).unwrap();
            let k = cut.unwrap_or(256);
            region[plan.offset..plan.offset + k].copy_from_slice(&plan.bytes[..k]);
            let after = load(&region, 256, &defaults()).env.get("i").map(str::to_string);
            if after.as_deref() == Some(i.to_string().as_str()) {
                last = after;
            } else {
                prop_assert_eq!(after, last.clone());
            }
        }
    }
}
