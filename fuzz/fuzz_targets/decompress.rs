//! Every compressed-kernel format through the loader's one dispatch (gzip, lz4 legacy and frame,
//! zstd): decoding into a fixed destination never writes outside it, reports at most its
//! length, and a larger destination gives the same bytes (what a short one holds, on
//! `InflatesBeyond`, is a prefix of the output). The size hints never panic.
#![no_main]

use kexboot_fuzz::Guarded;
use kexboot_loader::compress::{decompress_into, decompressed_bound, detect, size_hint};
use kexboot_loader::Error;
use libfuzzer_sys::fuzz_target;

/// Largest destination tried (the first two input bytes choose one up to this).
const MAX_DST: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some((len, src)) = data.split_first_chunk::<2>() else {
        return;
    };
    let dst_len = usize::from(u16::from_le_bytes(*len)) % (MAX_DST + 1);
    let format = detect(src);
    let _ = size_hint(format, src);
    let _ = decompressed_bound(format, src);
    let mut g = Guarded::new(dst_len);
    let res = decompress_into(format, src, g.dst());
    g.check();
    let mut big = Guarded::new(MAX_DST * 2);
    let res_big = decompress_into(format, src, big.dst());
    big.check();
    match res {
        Ok(n) => {
            assert!(
                n <= dst_len,
                "reported {n} bytes for a {dst_len}-byte destination"
            );
            assert_eq!(res_big, Ok(n), "a larger destination changed the result");
            assert!(g.data()[..n] == big.data()[..n], "output differs");
        }
        Err(Error::InflatesBeyond { limit }) => {
            assert_eq!(limit, dst_len);
            if let Ok(m) = res_big {
                assert!(m > dst_len, "InflatesBeyond but only {m} bytes of output");
                assert!(g.data() == &big.data()[..dst_len], "prefix differs");
            }
        }
        Err(_) => {}
    }
});
