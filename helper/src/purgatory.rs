//! The purgatory page: with `kexec_load` (not `kexec_file_load`) arm64 Linux enters the new image
//! with x0 = 0, so the kexec entry point is this tiny stub, which sets up the arm64 boot protocol
//! registers for kexboot and branches to it. It runs with the MMU off; both literals are 8-byte
//! aligned, as Device memory requires.
//!
//! ```text
//! 0x00  ldr  x0, 0x18      // x0 = DTB physical address
//! 0x04  mov  x1, xzr
//! 0x08  mov  x2, xzr
//! 0x0c  mov  x3, xzr
//! 0x10  ldr  x4, 0x20      // x4 = kexboot entry
//! 0x14  br   x4
//! 0x18  .quad dtb
//! 0x20  .quad kexboot_entry
//! ```

/// `LDR Xt, label` (literal, 64-bit): opcode; imm19 (word offset) at bits 5..24, Rt at 0..5.
const LDR_X_LITERAL: u32 = 0x5800_0000;
/// `ORR Xd, XZR, XZR` (the `mov Xd, xzr` alias): Rd at bits 0..5.
const MOV_X_XZR: u32 = 0xaa1f_03e0;
/// `BR Xn`: Rn at bits 5..10.
const BR_X: u32 = 0xd61f_0000;

const fn ldr_literal(rt: u32, byte_offset: u32) -> u32 {
    LDR_X_LITERAL | ((byte_offset / 4) << 5) | rt
}

/// Offset of the DTB address literal.
pub const DTB_LITERAL: usize = 0x18;
/// Offset of the kexboot entry literal.
pub const ENTRY_LITERAL: usize = 0x20;
/// Bytes of code and literals (the rest of the page is zero).
pub const PURGATORY_LEN: usize = 0x28;

/// `ldr x0, DTB_LITERAL` at 0x00 (PC-relative: 0x18 ahead).
pub const INSN_LDR_X0_DTB: u32 = ldr_literal(0, DTB_LITERAL as u32);
/// `mov x1, xzr`.
pub const INSN_MOV_X1_XZR: u32 = MOV_X_XZR | 1;
/// `mov x2, xzr`.
pub const INSN_MOV_X2_XZR: u32 = MOV_X_XZR | 2;
/// `mov x3, xzr`.
pub const INSN_MOV_X3_XZR: u32 = MOV_X_XZR | 3;
/// `ldr x4, ENTRY_LITERAL` at 0x10 (PC-relative: 0x10 ahead).
pub const INSN_LDR_X4_ENTRY: u32 = ldr_literal(4, (ENTRY_LITERAL - 0x10) as u32);
/// `br x4`.
pub const INSN_BR_X4: u32 = BR_X | (4 << 5);

/// The instructions, from offset 0.
pub const CODE: [u32; 6] = [
    INSN_LDR_X0_DTB,
    INSN_MOV_X1_XZR,
    INSN_MOV_X2_XZR,
    INSN_MOV_X3_XZR,
    INSN_LDR_X4_ENTRY,
    INSN_BR_X4,
];

/// The purgatory bytes (little-endian) for a DTB at `dtb` and kexboot entered at `entry`.
pub fn encode(dtb: u64, entry: u64) -> [u8; PURGATORY_LEN] {
    let mut out = [0u8; PURGATORY_LEN];
    for (slot, insn) in out.chunks_exact_mut(4).zip(CODE) {
        slot.copy_from_slice(&insn.to_le_bytes());
    }
    out[DTB_LITERAL..DTB_LITERAL + 8].copy_from_slice(&dtb.to_le_bytes());
    out[ENTRY_LITERAL..ENTRY_LITERAL + 8].copy_from_slice(&entry.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodings as `llvm-mc-14 -triple=aarch64 -show-encoding` prints them (bytes in memory
    /// order), taken once while writing this module.
    #[test]
    fn encodings_match_the_assembler() {
        let cases: [(u32, [u8; 4], &str); 6] = [
            (INSN_LDR_X0_DTB, [0xc0, 0x00, 0x00, 0x58], "ldr x0, #24"),
            (INSN_MOV_X1_XZR, [0xe1, 0x03, 0x1f, 0xaa], "mov x1, xzr"),
            (INSN_MOV_X2_XZR, [0xe2, 0x03, 0x1f, 0xaa], "mov x2, xzr"),
            (INSN_MOV_X3_XZR, [0xe3, 0x03, 0x1f, 0xaa], "mov x3, xzr"),
            (INSN_LDR_X4_ENTRY, [0x84, 0x00, 0x00, 0x58], "ldr x4, #16"),
            (INSN_BR_X4, [0x80, 0x00, 0x1f, 0xd6], "br x4"),
        ];
        for (insn, bytes, asm) in cases {
            assert_eq!(insn.to_le_bytes(), bytes, "{asm}: {insn:#010x}");
        }
    }

    /// Decodes the two PC-relative loads and checks they reach their literals.
    #[test]
    fn literals_are_where_the_loads_point() {
        let p = encode(0x4216_8000, 0x41e0_0000);
        let word = |off: usize| u32::from_le_bytes(p[off..off + 4].try_into().unwrap());
        let quad = |off: usize| u64::from_le_bytes(p[off..off + 8].try_into().unwrap());
        for (pc, rt, value) in [(0x00, 0, 0x4216_8000), (0x10, 4, 0x41e0_0000)] {
            let insn = word(pc);
            assert_eq!(
                insn & 0xff00_0000,
                LDR_X_LITERAL,
                "LDR (literal, 64-bit) at {pc:#x}"
            );
            assert_eq!(insn & 0x1f, rt);
            let target = pc + (((insn >> 5) & 0x7_ffff) as usize) * 4;
            assert_eq!(target % 8, 0, "literal aligned for Device memory");
            assert_eq!(quad(target), value);
        }
        // br x4 uses the register the second load filled.
        assert_eq!((word(0x14) >> 5) & 0x1f, 4);
        assert_eq!(word(0x14) & !(0x1f << 5), BR_X);
    }

    #[test]
    fn different_addresses_change_only_the_literals() {
        let a = encode(1, 2);
        let b = encode(u64::MAX, 0x1234_5678_9abc_def0);
        assert_eq!(a[..DTB_LITERAL], b[..DTB_LITERAL]);
        assert_eq!(&b[DTB_LITERAL..ENTRY_LITERAL], &u64::MAX.to_le_bytes());
        assert_eq!(&b[ENTRY_LITERAL..], &0x1234_5678_9abc_def0u64.to_le_bytes());
        assert_eq!(&a[DTB_LITERAL..ENTRY_LITERAL], &1u64.to_le_bytes());
    }
}
