//! Shared by the menu crate's host tests.

/// Bitwise CRC32 (IEEE), independent of the crates under test (they use `crc32fast`).
pub fn crc(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}
