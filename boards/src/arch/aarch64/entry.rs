//! Entry point: the arm64 Image header, self-relocation, BSS, stack, FP/SIMD, vectors.
//!
//! kexboot is itself an arm64 Image (Linux `Documentation/arch/arm64/booting.rst`), so QEMU
//! `-kernel`, another bootloader's `booti` and Linux `kexec -l` all load it the same way and pass
//! x0 = physical address of the device tree. It is linked at 0 as a position-independent
//! executable and applies its own relative relocations (RELR, and any `R_AARCH64_RELATIVE`) before any
//! Rust code runs.
//!
//! Register use in `primary_entry` until Rust is called:
//! - x19: device tree address from the previous stage (x0 at entry)
//! - x20: physical address the image was loaded at (runtime `_start`)
//! - x21, x22: x1 and x2 at entry (kexboot's EL3 monitor says it is there with them: `el3.rs`)
//!
//! At EL3 (kexboot as `-bios` firmware, from flash) every CPU goes to `el3_reset` first
//! (`el3.rs`): the boot CPU copies the image to secure RAM and comes back to `primary_relocate`
//! there, which runs the steps below and ends in `el3_start` instead of `kexboot_main`.

use core::arch::global_asm;

/// Image header flags: little-endian (bit 0 = 0), 4 KiB pages (bits 1-2 = 1), and the image may
/// be placed at any 2 MiB aligned base in RAM (bit 3).
const IMAGE_FLAGS: u64 = (1 << 1) | (1 << 3);
/// "ARM\x64", little-endian, at offset 0x38.
const IMAGE_MAGIC: u32 = 0x644d_5241;
/// ELF relocation type of the only relocations a static PIE has.
const R_AARCH64_RELATIVE: u64 = 1027;
/// Size of one `Elf64_Rela`.
const RELA_SIZE: u64 = 24;
/// CPTR_EL2 (E2H = 0 layout) with only its RES1 bits (13, 9, 7:0) set: TFP (10), TZ (8) and
/// TSM (12) clear, so FP/SIMD, SVE and SME are not trapped.
const CPTR_EL2_NO_TRAPS: u64 = (1 << 13) | (1 << 9) | 0xff;
/// CPTR_EL2 in its E2H = 1 layout (Arm ARM D19.2.33, the CPACR_EL1-like one): FPEN (21:20),
/// ZEN (17:16) and SMEN (25:24) = 0b11, nothing trapped; TTA (28), TAM (30), TCPAC (31) clear;
/// no RES1 bits. Used when HCR_EL2.E2H reads back 1 after kexboot wrote 0: a CPU without
/// FEAT_E2H0 has E2H stuck at 1, and the E2H = 0 value above would leave FPEN = 0b00 there, so
/// FP/SIMD trapped. QEMU's `-cpu max` has FEAT_E2H0 (E2H writable), so no QEMU case takes this
/// path: it is written from the Arm ARM.
const CPTR_EL2_E2H_NO_TRAPS: u64 = (0b11 << 20) | (0b11 << 16) | (0b11 << 24);
/// HCR_EL2.E2H, read back after HCR_EL2 is written.
const HCR_EL2_E2H_BIT: u64 = 34;
/// HCR_EL2 with only RW (EL1 is AArch64): E2H and TGE clear, so the EL2 registers have their
/// non-VHE layout even when a VHE kernel kexec'ed into kexboot with E2H still set.
const HCR_EL2_NVHE: u64 = 1 << 31;
/// CPACR_EL1.FPEN = 0b11: FP/SIMD not trapped at EL0/EL1.
const CPACR_EL1_FPEN: u64 = 0b11 << 20;
/// CurrentEL value (bits 3:2) for EL2 and EL1.
const CURRENT_EL_EL2: u64 = 2 << 2;
const CURRENT_EL_EL1: u64 = 1 << 2;
const CURRENT_EL_EL3: u64 = 3 << 2;

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    /* arm64 Image header (64 bytes) */
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset */
    .quad   __kexboot_image_size    /* image_size: file + BSS + stack */
    .quad   {flags}                 /* flags */
    .quad   0                       /* res2 */
    .quad   0                       /* res3 */
    .quad   0                       /* res4 */
    .long   {magic}                 /* magic "ARM\x64" */
    .long   0                       /* res5: no PE header */

    /* kexboot's own mark, right after the header: the Linux helper refuses any image that does
       not carry it. Offset 0x40: "KEXBOOT!", 0x48: handoff protocol version, 0x4c: 0. */
    .ascii  "KEXBOOT!"
    .long   {handoff_version}
    .long   0

primary_entry:
    msr     daifset, #0xf
    /* EL3 (firmware, running from flash that must not be written): el3.rs first. */
    mrs     x9, CurrentEL
    cmp     x9, #{el3}
    b.eq    el3_reset
    .global primary_relocate
primary_relocate:
    mov     x19, x0
    mov     x21, x1
    mov     x22, x2
    adr     x20, _start

    /* Invalidate the whole image (file, BSS, stack) to PoC before writing it with the MMU off,
       so no stale line from the previous stage is hit once the caches are on. The previous stage
       cleaned the loaded image to PoC (boot protocol), so nothing is lost. */
    adrp    x0, __image_start
    add     x0, x0, :lo12:__image_start
    adrp    x1, __image_end
    add     x1, x1, :lo12:__image_end
    bl      dcache_inval_range

    /* Apply R_AARCH64_RELATIVE relocations: *(base + r_offset) = base + r_addend */
    adrp    x9, __rela_start
    add     x9, x9, :lo12:__rela_start
    adrp    x10, __rela_end
    add     x10, x10, :lo12:__rela_end
1:  cmp     x9, x10
    b.hs    2f
    ldp     x11, x12, [x9]          /* r_offset, r_info */
    ldr     x13, [x9, #16]          /* r_addend */
    add     x9, x9, #{rela_size}
    cmp     x12, #{r_relative}
    b.ne    .Lbad_reloc
    add     x13, x13, x20
    str     x13, [x20, x11]
    b       1b
2:
    /* Apply the RELR relocations (`-z pack-relative-relocs`: relative, addend in place):
       an even entry is an offset, *(base + offset) += base, and the next word follows; an odd
       entry is a bitmap whose bit i (1..63) relocates word i - 1 from there, which then
       advances by 63 words. x11 = that next word. */
    adrp    x9, __relr_start
    add     x9, x9, :lo12:__relr_start
    adrp    x10, __relr_end
    add     x10, x10, :lo12:__relr_end
    mov     x11, x20
11: cmp     x9, x10
    b.hs    15f
    ldr     x12, [x9], #8
    tbnz    x12, #0, 12f
    add     x11, x20, x12
    ldr     x13, [x11]
    add     x13, x13, x20
    str     x13, [x11], #8
    b       11b
12: mov     x14, x11
    lsr     x12, x12, #1
13: cbz     x12, 14f
    tbz     x12, #0, 16f
    ldr     x13, [x14]
    add     x13, x13, x20
    str     x13, [x14]
16: lsr     x12, x12, #1
    add     x14, x14, #8
    b       13b
14: add     x11, x11, #(63 * 8)
    b       11b
15:
    /* Zero BSS */
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
3:  cmp     x9, x10
    b.hs    4f
    stp     xzr, xzr, [x9], #16
    b       3b
4:
    /* Use SP_ELx (a previous stage may have left SP_EL0 selected), then set it. */
    msr     spsel, #1
    adrp    x9, __stack_top
    add     x9, x9, :lo12:__stack_top
    mov     sp, x9

    /* FP/SIMD access and exception vectors for the EL we run at */
    adrp    x9, exception_vectors
    add     x9, x9, :lo12:exception_vectors
    mrs     x10, CurrentEL
    and     x10, x10, #0xc
    cmp     x10, #{el2}
    b.eq    5f
    cmp     x10, #{el3}
    b.eq    el3_start               /* the secure copy of the boot CPU: el3.rs */
    cmp     x10, #{el1}
    b.ne    .Lunsupported_el
    mov     x11, #{cpacr_fpen}
    msr     cpacr_el1, x11
    msr     vbar_el1, x9
    b       6f
5:  mov     x11, #{hcr_el2}
    msr     hcr_el2, x11
    isb
    /* A known SCTLR_EL2 (MMU, caches and alignment checks off, little-endian), whatever the
       previous stage left, until the MMU goes on (mmu.rs writes its full value there). */
    mov     x11, #{sctlr_el2_lo}
    movk    x11, #{sctlr_el2_hi}, lsl #16
    msr     sctlr_el2, x11
    isb
    /* E2H stuck at 1 (no FEAT_E2H0): CPTR_EL2 has its other layout. */
    mrs     x11, hcr_el2
    tbnz    x11, #{hcr_e2h_bit}, 9f
    mov     x11, #{cptr_el2}
    b       10f
9:  mov     x11, #{cptr_el2_e2h}
10: msr     cptr_el2, x11
    msr     vbar_el2, x9
6:  isb
    adrp    x9, KEXBOOT_ENTRY_ARGS
    add     x9, x9, :lo12:KEXBOOT_ENTRY_ARGS
    stp     x21, x22, [x9]
    mov     x0, x19
    mov     x1, x20
    bl      kexboot_main
.Lunsupported_el:
.Lbad_reloc:
    wfe
    b       .Lbad_reloc

/* dcache_inval_range(x0 = start, x1 = end): dc ivac by VA over [start, end). Clobbers x2-x4. */
    .global dcache_inval_range
dcache_inval_range:
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4         /* DminLine: log2(words) */
    mov     x2, #4
    lsl     x2, x2, x3              /* line size in bytes */
    sub     x4, x2, #1
    bic     x0, x0, x4
7:  cmp     x0, x1
    b.hs    8f
    dc      ivac, x0
    add     x0, x0, x2
    b       7b
8:  dsb     sy
    ret
"#,
    flags = const IMAGE_FLAGS,
    handoff_version = const crate::HANDOFF_VERSION,
    magic = const IMAGE_MAGIC,
    rela_size = const RELA_SIZE,
    r_relative = const R_AARCH64_RELATIVE,
    el2 = const CURRENT_EL_EL2,
    el1 = const CURRENT_EL_EL1,
    el3 = const CURRENT_EL_EL3,
    cpacr_fpen = const CPACR_EL1_FPEN,
    cptr_el2 = const CPTR_EL2_NO_TRAPS,
    cptr_el2_e2h = const CPTR_EL2_E2H_NO_TRAPS,
    hcr_e2h_bit = const HCR_EL2_E2H_BIT,
    sctlr_el2_lo = const super::mmu::SCTLR_EL2_MMU_OFF & 0xffff,
    sctlr_el2_hi = const super::mmu::SCTLR_EL2_MMU_OFF >> 16,
    hcr_el2 = const HCR_EL2_NVHE,
);
