//! SHA-256 for FIT hashes and signatures, on the ARMv8 SHA-256 instructions when the CPU has
//! them (Cortex-A72 and most ARMv8 cores with the Cryptographic Extension; not the Pi 3's
//! Cortex-A53, whose BCM2837 left it out), else RustCrypto's `sha2`. `sha2` 0.10 uses the
//! instructions only through an OS's feature report (`cpufeatures`: Linux, Apple), which a
//! bootloader has none of; here the CPU's own ID register says (`ID_AA64ISAR0_EL1.SHA2`, as
//! `compress::crc32` reads it for CRC32).
//!
//! Only the block function is kexboot's: padding and lengths are this file's 30 lines over it,
//! and every digest it makes is checked against `sha2` on the host (the block function
//! swapped for `sha2::compress256`), on a known answer at first use on the CPU (the
//! instructions are refused if they get it wrong), and by every FIT the e2e cases verify.

use sha2::Digest;

/// The SHA-256 initial hash value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The round constants (FIPS 180-4, 4.2.2).
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
const K: [u32; 64] = [
    0x428a_2f98,
    0x7137_4491,
    0xb5c0_fbcf,
    0xe9b5_dba5,
    0x3956_c25b,
    0x59f1_11f1,
    0x923f_82a4,
    0xab1c_5ed5,
    0xd807_aa98,
    0x1283_5b01,
    0x2431_85be,
    0x550c_7dc3,
    0x72be_5d74,
    0x80de_b1fe,
    0x9bdc_06a7,
    0xc19b_f174,
    0xe49b_69c1,
    0xefbe_4786,
    0x0fc1_9dc6,
    0x240c_a1cc,
    0x2de9_2c6f,
    0x4a74_84aa,
    0x5cb0_a9dc,
    0x76f9_88da,
    0x983e_5152,
    0xa831_c66d,
    0xb003_27c8,
    0xbf59_7fc7,
    0xc6e0_0bf3,
    0xd5a7_9147,
    0x06ca_6351,
    0x1429_2967,
    0x27b7_0a85,
    0x2e1b_2138,
    0x4d2c_6dfc,
    0x5338_0d13,
    0x650a_7354,
    0x766a_0abb,
    0x81c2_c92e,
    0x9272_2c85,
    0xa2bf_e8a1,
    0xa81a_664b,
    0xc24b_8b70,
    0xc76c_51a3,
    0xd192_e819,
    0xd699_0624,
    0xf40e_3585,
    0x106a_a070,
    0x19a4_c116,
    0x1e37_6c08,
    0x2748_774c,
    0x34b0_bcb5,
    0x391c_0cb3,
    0x4ed8_aa4a,
    0x5b9c_ca4f,
    0x682e_6ff3,
    0x748f_82ee,
    0x78a5_636f,
    0x84c8_7814,
    0x8cc7_0208,
    0x90be_fffa,
    0xa450_6ceb,
    0xbef9_a3f7,
    0xc671_78f2,
];

/// A block function: `state` through every 64-byte block of `blocks`.
pub(crate) type Compress = fn(&mut [u32; 8], &[u8]);

/// SHA-256 of `parts` concatenated, by `compress`.
pub(crate) fn digest_with(compress: Compress, parts: &[&[u8]]) -> [u8; 32] {
    let mut state = H0;
    let mut buf = [0u8; 64];
    let mut fill = 0usize;
    let mut total = 0u64;
    for p in parts {
        let mut p: &[u8] = p;
        total = total.wrapping_add(p.len() as u64);
        if fill > 0 {
            let take = p.len().min(64 - fill);
            buf[fill..fill + take].copy_from_slice(&p[..take]);
            fill += take;
            p = &p[take..];
            if fill < 64 {
                continue;
            }
            compress(&mut state, &buf);
        }
        let whole = p.len() / 64 * 64;
        compress(&mut state, &p[..whole]);
        let rest = &p[whole..];
        buf[..rest.len()].copy_from_slice(rest);
        fill = rest.len();
    }
    // Padding: 0x80, zeros, the bit length big-endian in the last 8 bytes.
    buf[fill] = 0x80;
    buf[fill + 1..].fill(0);
    if fill >= 56 {
        compress(&mut state, &buf);
        buf.fill(0);
    }
    buf[56..].copy_from_slice(&total.wrapping_mul(8).to_be_bytes());
    compress(&mut state, &buf);
    let mut out = [0u8; 32];
    for (o, s) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&s.to_be_bytes());
    }
    out
}

/// SHA-256 of `parts` concatenated.
pub fn digest(parts: &[&[u8]]) -> [u8; 32] {
    match arm::compress() {
        Some(c) => digest_with(c, parts),
        None => {
            let mut d = sha2::Sha256::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().into()
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use core::arch::aarch64::*;
    use core::sync::atomic::{AtomicU8, Ordering};

    use super::Compress;

    /// Bits [15:12] of ID_AA64ISAR0_EL1: SHA256H/H2/SU0/SU1 implemented when 1 or more.
    const ISAR0_SHA2_SHIFT: u32 = 12;

    /// 0: not checked yet; 1: the instructions are used; 2: they are not.
    static STATE: AtomicU8 = AtomicU8::new(0);

    fn has_sha2() -> bool {
        let isar0: u64;
        // SAFETY: reading an ID register has no side effects and touches no memory.
        unsafe {
            core::arch::asm!("mrs {}, ID_AA64ISAR0_EL1", out(reg) isar0, options(nomem, nostack, preserves_flags));
        }
        (isar0 >> ISAR0_SHA2_SHIFT) & 0xf != 0
    }

    /// The instructions' block function, once the CPU says it has them and they give FIPS
    /// 180-4's answer for "abc" and for a two-block message.
    pub fn compress() -> Option<Compress> {
        let usable = match STATE.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let ok = has_sha2() && known_answers();
                if has_sha2() && !ok {
                    log::error!("SHA-256 instructions give wrong digests: not used");
                }
                STATE.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
                ok
            }
        };
        usable.then_some(hw as Compress)
    }

    fn known_answers() -> bool {
        const ABC: [u8; 32] = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
            0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
            0xf2, 0x00, 0x15, 0xad,
        ];
        const TWO: [u8; 32] = [
            0x24, 0x8d, 0x6a, 0x61, 0xd2, 0x06, 0x38, 0xb8, 0xe5, 0xc0, 0x26, 0x93, 0x0c, 0x3e,
            0x60, 0x39, 0xa3, 0x3c, 0xe4, 0x59, 0x64, 0xff, 0x21, 0x67, 0xf6, 0xec, 0xed, 0xd4,
            0x19, 0xdb, 0x06, 0xc1,
        ];
        super::digest_with(hw, &[b"abc"]) == ABC
            && super::digest_with(
                hw,
                &[b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"],
            ) == TWO
    }

    fn hw(state: &mut [u32; 8], blocks: &[u8]) {
        // SAFETY: only handed out by `compress` after ID_AA64ISAR0_EL1 said the CPU has them.
        unsafe { sha256_blocks(state, blocks) }
    }

    /// The SHA-256 rounds over each 64-byte block of `blocks`, four rounds per SHA256H/H2
    /// pair, the message schedule by SHA256SU0/SU1.
    ///
    /// # Safety
    /// The CPU must implement the SHA-256 instructions.
    #[target_feature(enable = "sha2")]
    unsafe fn sha256_blocks(state: &mut [u32; 8], blocks: &[u8]) {
        // SAFETY: every load reads 16 bytes inside `state` (32 bytes), a 64-byte block of
        // `blocks` or `K` (256 bytes, read up to 16 * 4 + 4 words); the stores write `state`.
        unsafe {
            let mut abcd = vld1q_u32(state.as_ptr());
            let mut efgh = vld1q_u32(state[4..].as_ptr());
            for b in blocks.chunks_exact(64) {
                let (abcd0, efgh0) = (abcd, efgh);
                let word =
                    |i: usize| vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(b[i * 16..].as_ptr())));
                let mut m = [word(0), word(1), word(2), word(3)];
                for g in 0..16 {
                    let wk = vaddq_u32(m[0], vld1q_u32(super::K[g * 4..].as_ptr()));
                    let prev = abcd;
                    abcd = vsha256hq_u32(prev, efgh, wk);
                    efgh = vsha256h2q_u32(efgh, prev, wk);
                    let next = if g < 12 {
                        vsha256su1q_u32(vsha256su0q_u32(m[0], m[1]), m[2], m[3])
                    } else {
                        m[0]
                    };
                    m = [m[1], m[2], m[3], next];
                }
                abcd = vaddq_u32(abcd, abcd0);
                efgh = vaddq_u32(efgh, efgh0);
            }
            vst1q_u32(state.as_mut_ptr(), abcd);
            vst1q_u32(state[4..].as_mut_ptr(), efgh);
        }
    }
}

#[cfg(not(target_arch = "aarch64"))]
mod arm {
    /// Not arm64: `sha2`.
    pub fn compress() -> Option<super::Compress> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(deprecated)] // sha2 0.10's block function takes generic-array 0.14 blocks
    use sha2::digest::generic_array::GenericArray;

    /// `sha2`'s own block function, in [`Compress`]'s shape.
    #[allow(deprecated)]
    fn soft(state: &mut [u32; 8], blocks: &[u8]) {
        let blocks: alloc::vec::Vec<GenericArray<u8, _>> = blocks
            .chunks_exact(64)
            .map(|b| *GenericArray::from_slice(b))
            .collect();
        sha2::compress256(state, &blocks);
    }

    /// The round constants are FIPS 180-4's (`sha2` checks its own; the first 32 bits of the
    /// fractional parts of the cube roots of the first 64 primes, recomputed here).
    #[test]
    fn round_constants() {
        let primes: alloc::vec::Vec<u64> = (2u64..)
            .filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0))
            .take(64)
            .collect();
        for (k, p) in K.iter().zip(primes) {
            let cbrt = (p as f64).cbrt();
            let frac = cbrt - cbrt.floor();
            assert_eq!(*k, (frac * 4294967296.0) as u32, "prime {p}");
        }
    }

    /// The padding and buffering over any split of any message match `sha2`.
    #[test]
    fn matches_sha2_for_every_split() {
        let msg: alloc::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 999, 1000] {
            let m = &msg[..len];
            let want: [u8; 32] = sha2::Sha256::digest(m).into();
            assert_eq!(digest_with(soft, &[m]), want, "{len}");
            for cut in [0, 1, len / 3, len / 2, len.saturating_sub(1), len] {
                let cut = cut.min(len);
                let (a, b) = m.split_at(cut);
                let c = b.len() / 2;
                assert_eq!(
                    digest_with(soft, &[a, &b[..c], &b[c..]]),
                    want,
                    "{len}/{cut}"
                );
            }
        }
        assert_eq!(
            digest(&[b"ab", b"c"]),
            <[u8; 32]>::from(sha2::Sha256::digest(b"abc"))
        );
    }
}
