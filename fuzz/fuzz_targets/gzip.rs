//! gzip: inflating into a fixed destination never writes outside it, reports at most its length,
//! and what it accepts is what an independent decoder (flate2) reads from the same stream.
#![no_main]

use std::io::Read;

use kexboot_fuzz::Guarded;
use kexboot_loader::compress::{detect, gunzip_into, gzip_size_hint, unsupported_compression};
use libfuzzer_sys::fuzz_target;

/// Largest destination tried (the first two input bytes choose one up to this).
const MAX_DST: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some((len, src)) = data.split_first_chunk::<2>() else {
        return;
    };
    let dst_len = usize::from(u16::from_le_bytes(*len)) % (MAX_DST + 1);
    let _ = (
        detect(src),
        unsupported_compression(src),
        gzip_size_hint(src),
    );
    let mut g = Guarded::new(dst_len);
    let res = gunzip_into(src, g.dst());
    g.check();
    let Ok(n) = res else {
        return;
    };
    assert!(
        n <= dst_len,
        "reported {n} bytes for a {dst_len}-byte destination"
    );
    let mut other = Vec::new();
    let mut dec = flate2::read::GzDecoder::new(src);
    dec.by_ref()
        .take(MAX_DST as u64 + 1)
        .read_to_end(&mut other)
        .expect("accepted a stream flate2 refuses");
    assert!(
        g.data()[..n] == other[..],
        "inflated bytes differ from flate2's"
    );
});
