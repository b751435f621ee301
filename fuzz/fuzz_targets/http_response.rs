//! HTTP response parser and body decoder (`net/src/http.rs`): any bytes from a hostile server,
//! delivered in fuzz-chosen pieces into a destination with guard bytes on both sides. Never a
//! panic, never a byte outside the destination, never more than a declared length, and a body
//! reported complete only when its framing says so.
#![no_main]

use kexboot_net::http::{parse_head, Body, Framing};
use libfuzzer_sys::fuzz_target;

const GUARD: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, data)) = data.split_first() else {
        return;
    };
    let room = usize::from(knobs & 0x3f) * 37;
    let step = usize::from(knobs >> 6) * 7 + 1;
    let Ok(Some((head, n))) = parse_head(data) else {
        return;
    };
    assert!(n <= data.len());
    let Ok(mut body) = Body::new(head.framing, room as u64) else {
        if let Framing::Length(l) = head.framing {
            assert!(l > room as u64);
        }
        return;
    };
    let mut buf = vec![0xa5u8; room + 2 * GUARD];
    let (_, rest) = buf.split_at_mut(GUARD);
    let (dst, _) = rest.split_at_mut(room);
    for piece in data[n..].chunks(step) {
        if body.feed(piece, dst).is_err() {
            break;
        }
    }
    assert!(body.written <= room as u64);
    if let Framing::Length(l) = head.framing {
        assert!(body.written <= l);
        assert_eq!(body.done(), body.written == l);
    }
    assert!(buf[..GUARD].iter().all(|&b| b == 0xa5), "written before the destination");
    assert!(buf[GUARD + room..].iter().all(|&b| b == 0xa5), "written past the destination");
});
