//! Boot counting: U-Boot's bootlimit/altbootcmd decision and the counter record.

use kexboot_boot::bootcount::{
    decode_count, encode_count, next_boot, Error, MAX_COUNT, RECORD_LEN,
};
use kexboot_boot::env::Env;
use proptest::prelude::*;

fn env(text: &str) -> Env {
    Env::parse(text).0
}

#[test]
fn switches_after_bootlimit_failed_boots() {
    let e = env("bootcmd=run a\naltbootcmd=run b\nbootlimit=3\n");
    let mut stored = 0;
    let mut used = Vec::new();
    // Five boots that never reach Linux's reset.
    for _ in 0..5 {
        let d = next_boot(&e, stored);
        stored = d.count;
        used.push((d.count, d.use_alt, d.command(&e).unwrap().to_string()));
    }
    assert_eq!(
        used,
        [
            (1, false, "run a".to_string()),
            (2, false, "run a".into()),
            (3, false, "run a".into()),
            (4, true, "run b".into()),
            (5, true, "run b".into()),
        ]
    );
    assert_eq!(
        next_boot(&e, 3).reason,
        "Warning: Bootlimit (3) exceeded. Using altbootcmd."
    );
    // Linux reset the counter: back to bootcmd.
    let reset = decode_count(b"0\n").unwrap();
    assert!(!next_boot(&e, reset).use_alt);
}

#[test]
fn bootlimit_unset_zero_or_bad() {
    for text in [
        "bootcmd=x\n",
        "bootcmd=x\nbootlimit=0\n",
        "bootcmd=x\nbootlimit=abc\n",
    ] {
        let d = next_boot(&env(text), 1000);
        assert!(!d.use_alt, "{text}");
        assert_eq!(d.limit, None);
        assert_eq!(d.count, 1001);
    }
    assert!(next_boot(&env("bootlimit=abc"), 0)
        .reason
        .contains("not a number"));
    // altbootcmd missing: no fallback to bootcmd (U-Boot), and the reason says so.
    let e = env("bootcmd=x\nbootlimit=1\n");
    let d = next_boot(&e, 1);
    assert!(d.use_alt);
    assert_eq!(d.command(&e), None);
    assert!(d.reason.contains("altbootcmd is not set"));
    // The count saturates.
    assert_eq!(next_boot(&e, u32::MAX).count, MAX_COUNT);
    // export sets the variable scripts see.
    let mut e = Env::default();
    next_boot(&e.clone(), 6).export(&mut e);
    assert_eq!(e.get("bootcount"), Some("7"));
}

#[test]
fn record_encoding() {
    assert_eq!(&encode_count(3), b"bootcount=00003\n");
    assert_eq!(encode_count(0).len(), RECORD_LEN);
    assert_eq!(&encode_count(u32::MAX), b"bootcount=99999\n");
    for n in [0, 1, 9, 10, 12345, MAX_COUNT] {
        assert_eq!(decode_count(&encode_count(n)), Ok(n));
    }
    // What Linux leaves behind.
    for (bytes, n) in [
        (&b""[..], 0),
        (b"0", 0),
        (b"0\n", 0),
        (b"bootcount=0", 0),
        (b"bootcount=0\n\0\0\0", 0),
        (b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 0),
        (b" 7 \r\n", 7),
        (b"bootcount= 12\n", 12),
        (b"99999999999999999999", MAX_COUNT),
    ] {
        assert_eq!(decode_count(bytes), Ok(n), "{bytes:?}");
    }
    for bad in [
        &b"x"[..],
        b"-1",
        b"1 2",
        b"bootcount=a",
        b"\xff\xff",
        b"count=1",
    ] {
        assert!(
            matches!(decode_count(bad), Err(Error::NotANumber { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        decode_count(&[b'0'; 65]),
        Err(Error::TooLong { len: 65, .. })
    ));
    let msg = decode_count(b"junk").unwrap_err().to_string();
    assert!(
        msg.contains("/kexboot/bootcnt.txt") && msg.contains("junk"),
        "{msg}"
    );
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(n) = decode_count(&bytes) {
            prop_assert!(n <= MAX_COUNT);
        }
    }

    #[test]
    fn round_trip(n in any::<u32>()) {
        prop_assert_eq!(decode_count(&encode_count(n)), Ok(n.min(MAX_COUNT)));
    }
}
