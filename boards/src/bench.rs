//! In-guest copy benchmark, run when the boot partition holds `/kexboot/bench`: the relocator's
//! copy engine (entry-list walk, 4 KiB page copies, `dc civac` of each destination page, MMU
//! and caches on) against the best plain copy loops kexboot can run on the same machine, over
//! the same bytes. Prints `BENCH ...` lines for `cargo xtask bench`.

use kexboot_loader::mem::free_regions;
use kexboot_relocate::{self as relocate, Segment};

use crate::heap::{PageBuf, PAGE};
use crate::timer::{mb_per_s, Stopwatch};
use kexboot_boot::memory::Layout;

/// Bytes copied per round, and rounds (the best round counts).
const BENCH_BYTES: usize = 64 << 20;
const ROUNDS: usize = 3;

fn best_of(mut f: impl FnMut()) -> u64 {
    (0..ROUNDS)
        .map(|_| {
            let sw = Stopwatch::start();
            f();
            sw.elapsed_us()
        })
        .min()
        .unwrap_or(u64::MAX)
}

/// 128 bytes per iteration with q-register pairs: the fastest loop we know for this core.
///
/// # Safety
/// `dst` and `src` valid for `len` bytes (a multiple of 128), not overlapping.
unsafe fn copy_ldp_stp_q(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller guarantees both ranges; only q0-q7 and the pointers are touched.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldp q0, q1, [{s}]",
            "ldp q2, q3, [{s}, #32]",
            "ldp q4, q5, [{s}, #64]",
            "ldp q6, q7, [{s}, #96]",
            "add {s}, {s}, #128",
            "stp q0, q1, [{d}]",
            "stp q2, q3, [{d}, #32]",
            "stp q4, q5, [{d}, #64]",
            "stp q6, q7, [{d}, #96]",
            "add {d}, {d}, #128",
            "subs {n}, {n}, #128",
            "b.ne 2b",
            s = inout(reg) src => _,
            d = inout(reg) dst => _,
            n = inout(reg) len => _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            options(nostack),
        );
    }
}

pub fn run(layout: &Layout) {
    let Some(mut src) = PageBuf::new(BENCH_BYTES) else {
        log::warn!("bench: no room for {} MiB", BENCH_BYTES >> 20);
        return;
    };
    for (i, b) in src.as_mut_slice().iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31);
    }
    let free = free_regions(&layout.ram, &layout.avoid());
    let Some(dst) = free.iter().find(|r| r.len() >= BENCH_BYTES as u64) else {
        log::warn!(
            "bench: no free {} MiB destination outside the heap",
            BENCH_BYTES >> 20
        );
        return;
    };
    let dst = dst.start().next_multiple_of(PAGE as u64);
    let segs = [Segment {
        src: src.addr(),
        len: BENCH_BYTES as u64,
        dst,
        memsz: BENCH_BYTES as u64,
    }];
    let list = match crate::relocation::build_list(&segs, layout) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("bench: plan refused: {e}");
            return;
        }
    };
    let n = BENCH_BYTES as u64;
    // SAFETY: the plan was validated: the destination is free RAM outside kexboot and its heap.
    let engine = best_of(|| unsafe { relocate::arch::copy_engine_run(&list) });
    // SAFETY: the destination is RAM the engine just wrote; read back before anything else
    // writes it, to check the engine's copy.
    let ok =
        unsafe { core::slice::from_raw_parts(dst as *const u8, BENCH_BYTES) } == src.as_slice();
    // SAFETY: same destination, `n` bytes, a multiple of 128, not overlapping the source.
    let q =
        best_of(|| unsafe { copy_ldp_stp_q(dst as *mut u8, src.addr() as *const u8, BENCH_BYTES) });
    // SAFETY: as above, through compiler_builtins' memcpy.
    let memcpy = best_of(|| unsafe {
        core::ptr::copy_nonoverlapping(src.addr() as *const u8, dst as *mut u8, BENCH_BYTES)
    });
    // The engine's work for a jump with the MMU off: the copy, then every destination line
    // cleaned to PoC (which the plain loops leave in the cache). Timed as a loop and a pass.
    // SAFETY: as above; the clean only writes back lines of the destination.
    let q_clean = best_of(|| unsafe {
        copy_ldp_stp_q(dst as *mut u8, src.addr() as *const u8, BENCH_BYTES);
        relocate::arch::clean_inval_dcache_range(dst, n);
    });
    let best = q.min(memcpy);
    let best_name = if q <= memcpy { "ldp-stp-q" } else { "memcpy" };
    println!(
        "BENCH copy-engine bytes={n} us={engine} MBps={}",
        mb_per_s(n, engine)
    );
    println!(
        "BENCH loop name=ldp-stp-q bytes={n} us={q} MBps={}",
        mb_per_s(n, q)
    );
    println!(
        "BENCH loop name=memcpy bytes={n} us={memcpy} MBps={}",
        mb_per_s(n, memcpy)
    );
    println!(
        "BENCH loop name=ldp-stp-q+clean bytes={n} us={q_clean} MBps={}",
        mb_per_s(n, q_clean)
    );
    let hundredths = |a: u64, b: u64| {
        let r = a * 100 / b.max(1);
        alloc::format!("{}.{:02}", r / 100, r % 100)
    };
    println!(
        "BENCH engine-vs-best best={best_name} ratio={} verified={ok}",
        hundredths(best, engine)
    );
    println!(
        "BENCH engine-vs-loop-and-clean ratio={}",
        hundredths(q_clean, engine)
    );
}
