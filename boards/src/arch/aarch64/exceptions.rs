//! Exception vectors. kexboot takes no interrupts; any exception is unexpected, so every vector
//! saves the general registers and calls [`unexpected_exception`], which prints the syndrome
//! (ESR, FAR, ELR, SPSR) and the EL, then stops the CPU: never a silent hang.

use core::arch::global_asm;

use super::{current_el, regs};

/// Bytes of one saved frame: x0..x30 and one pad word.
const FRAME_SIZE: usize = 32 * 8;

global_asm!(
    r#"
.macro VECTOR kind
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mov     x0, #\kind
    mov     x1, sp
    bl      unexpected_exception
.endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global exception_vectors
exception_vectors:
    VECTOR 0
    VECTOR 1
    VECTOR 2
    VECTOR 3
    VECTOR 4
    VECTOR 5
    VECTOR 6
    VECTOR 7
    VECTOR 8
    VECTOR 9
    VECTOR 10
    VECTOR 11
    VECTOR 12
    VECTOR 13
    VECTOR 14
    VECTOR 15
"#,
    frame = const FRAME_SIZE,
);

const KINDS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
const ORIGINS: [&str; 4] = [
    "current EL, SP0",
    "current EL, SPx",
    "lower EL, AArch64",
    "lower EL, AArch32",
];

/// Called from every vector with the vector index and the saved registers.
#[no_mangle]
extern "C" fn unexpected_exception(kind: u64, frame: *const [u64; 31]) -> ! {
    let k = kind as usize % 16;
    let s = regs::syndrome();
    crate::console::emergency_fmt(format_args!(
        "\n*** kexboot: unexpected {} exception from {} at EL{}\n    ESR=0x{:016x} (EC=0x{:02x}) FAR=0x{:016x}\n    ELR=0x{:016x} SPSR=0x{:016x}\n",
        KINDS[k % 4],
        ORIGINS[k / 4],
        current_el(),
        s.esr,
        (s.esr >> 26) & 0x3f,
        s.far,
        s.elr,
        s.spsr,
    ));
    // SAFETY: `frame` points at the registers the vector just saved on the stack.
    let frame = unsafe { &*frame };
    for (i, pair) in frame.chunks(2).enumerate() {
        match pair {
            [a, b] => crate::console::emergency_fmt(format_args!(
                "    x{:<2}=0x{:016x} x{:<2}=0x{:016x}\n",
                2 * i,
                a,
                2 * i + 1,
                b
            )),
            [a] => crate::console::emergency_fmt(format_args!("    x{:<2}=0x{:016x}\n", 2 * i, a)),
            _ => {}
        }
    }
    crate::console::emergency_fmt(format_args!("*** kexboot: CPU stopped.\n"));
    super::halt()
}
