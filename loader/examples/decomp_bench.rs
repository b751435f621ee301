//! Host micro-bench of the kernel decompressors: `cargo run --release -p kexboot-loader
//! --example decomp_bench -- Image.gz Image.lz4 Image.zst` (make them from
//! `target/assets/Image` with `gzip -9 -n`, `lz4 -l -9`, `zstd -19`).
//!
//! Each file goes through the loader's own dispatch (`compress::decompress_into`, what the boot
//! flow runs); a gzip file is also inflated by the candidate inflaters alone (miniz_oxide and
//! zlib-rs, raw deflate into the final buffer, no checksum) and its CRC32 timed on its own, so
//! the parts of the gzip figure show. Best of `ROUNDS` by thread CPU time (the host is shared with
//! other builds: wall time would time them too), MB = 10^6 bytes of output. A host CPU is
//! not the firmware's: take the ratios, and confirm in the guest with `cargo xtask bench
//! --decompress`.

use kexboot_loader::compress::{self, Format};
use std::time::Duration;

const ROUNDS: usize = 5;

/// This thread's CPU time so far.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Best time of `ROUNDS` runs of `f`, and what it returned.
fn best<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..ROUNDS {
        let t = cpu_time();
        let r = f();
        best = best.min(cpu_time() - t);
        out = Some(r);
    }
    (best, out.expect("ROUNDS > 0"))
}

fn report(name: &str, file: &str, out_len: usize, t: Duration) {
    let mbs = out_len as f64 / t.as_secs_f64() / 1e6;
    println!(
        "{file:<12} {name:<28} {:>8.1} ms {mbs:>8.1} MB/s",
        t.as_secs_f64() * 1e3
    );
}

/// The raw deflate data of a gzip file without FEXTRA/FNAME/FCOMMENT/FHCRC (`gzip -n`).
fn deflate_body(gz: &[u8]) -> &[u8] {
    assert_eq!(gz[3], 0, "bench wants a gzip -n file (no header fields)");
    &gz[10..gz.len() - 8]
}

fn miniz_raw(src: &[u8], dst: &mut [u8]) -> usize {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    let mut st = Box::<DecompressorOxide>::default();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, _, n) = decompress(&mut st, src, dst, 0, flags);
    assert_eq!(status, miniz_oxide::inflate::TINFLStatus::Done);
    n
}

fn zlib_rs_raw(src: &[u8], dst: &mut [u8]) -> usize {
    let mut inf = zlib_rs::Inflate::new(false, 15);
    let st = inf
        .decompress(src, dst, zlib_rs::InflateFlush::Finish)
        .expect("zlib-rs inflate");
    assert_eq!(st, zlib_rs::Status::StreamEnd);
    inf.total_out() as usize
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: decomp_bench <Image.gz|Image.lz4|Image.zst>...");
        std::process::exit(2);
    }
    for path in &files {
        let src = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let name = std::path::Path::new(path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        let format = compress::detect(&src);
        let bound = compress::decompressed_bound(format, &src).expect("bound") as usize;
        let mut dst = vec![0u8; bound];
        let (t, n) = best(|| compress::decompress_into(format, &src, &mut dst).expect("decode"));
        report(&format!("loader {}", format.name()), &name, n, t);
        if format != Format::Gzip {
            continue;
        }
        let body = deflate_body(&src);
        let (t, n) = best(|| miniz_raw(body, &mut dst));
        report("miniz_oxide raw inflate", &name, n, t);
        let (t, n2) = best(|| zlib_rs_raw(body, &mut dst));
        assert_eq!(n, n2);
        report("zlib-rs raw inflate", &name, n, t);
        let out = &dst[..n];
        let (t, _) = best(|| crc32fast::hash(out));
        report("crc32fast (host SIMD)", &name, n, t);
        let (t, _) = best(|| {
            let mut h = crc32fast::Hasher::internal_new_baseline(0, 0);
            h.update(out);
            h.finalize()
        });
        report("crc32fast table (firmware)", &name, n, t);
    }
}
