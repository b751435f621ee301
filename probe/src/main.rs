//! The entry-condition probe: a tiny arm64 Image that kexboot boots like any kernel. Its first
//! instructions capture the registers the boot protocol specifies (before any memory write);
//! then it relocates itself, finds the PL011 and PSCI in the DTB at x0, prints one
//! `PROBE ok|FAIL <condition>: ...` line per condition (`kexboot_probe::run`), a
//! `PROBE done: N ok, M failed` line, and powers off with PSCI SYSTEM_OFF.
//!
//! Built only for `aarch64-unknown-none` (by `cargo xtask build`); on the host this file is an
//! empty program so that `cargo test`/`clippy --workspace` build the crate's library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the probe runs only on aarch64-unknown-none (cargo xtask build)");
}

#[cfg(target_os = "none")]
mod target {
    use core::arch::{asm, global_asm};
    use core::fmt::{self, Write};
    use kexboot_probe::{
        dtb_total_size, psci_conduit, run, stdout_pl011, write_line, Conduit, CpuId, EntryState,
        Machine, Report, Status, DTB_HEADER_LEN, IMAGE_HEADER_LEN, IMAGE_MAGIC,
        PSCI_AFFINITY_INFO_64, PSCI_SYSTEM_OFF,
    };

    /// The probe's text_offset: not 0, so that a loader that ignores it is caught
    /// (`image-base`). 0x80000 is what Linux used before v5.8.
    const TEXT_OFFSET: u64 = 0x8_0000;
    /// Image flags: little-endian, 4 KiB pages (bits 1-2 = 1), any 2 MiB aligned base (bit 3).
    const IMAGE_FLAGS: u64 = (1 << 1) | (1 << 3);
    const R_AARCH64_RELATIVE: u64 = 1027;
    const RELA_SIZE: u64 = 24;
    /// CurrentEL: the EL field (bits 3:2) and its values for EL2 and EL1.
    const CURRENT_EL_MASK: u64 = 0b11 << 2;
    const CURRENT_EL_EL2: u64 = 2 << 2;
    const CURRENT_EL_EL1: u64 = 1 << 2;
    /// HCR_EL2.E2H: selects the CPTR_EL2 layout used to enable FP at EL2.
    const HCR_E2H_BIT: u64 = 34;
    /// The trap controls of the probe's own EL. CPTR_EL2 with E2H = 0: TFP (10), TZ (8), TSM
    /// (12) trap when set. CPACR_EL1, and CPTR_EL2 with E2H = 1: FPEN (21:20), ZEN (17:16),
    /// SMEN (25:24) enable when 0b11. The entry code enables FP only (Rust code may use SIMD
    /// registers); SVE and SME are enabled just before their instruction runs, and only on a CPU
    /// that has them (the fields are RES0/RES1 otherwise).
    const CPTR_TFP: u64 = 1 << 10;
    const CPTR_TZ: u64 = 1 << 8;
    const CPTR_TSM: u64 = 1 << 12;
    const CPACR_FPEN: u64 = 0b11 << 20;
    const CPACR_ZEN: u64 = 0b11 << 16;
    const CPACR_SMEN: u64 = 0b11 << 24;
    /// The stack frame the entry state is stored in: the 11 u64 of `EntryState` at the offsets
    /// the `stp`/`str` above use, rounded up to the 16-byte stack alignment.
    const ENTRY_FRAME: usize = (core::mem::size_of::<EntryState>() + 15) & !15;
    const _: () = assert!(core::mem::size_of::<EntryState>() == 11 * 8);
    /// Largest DTB the probe maps as a slice (far above the protocol's 2 MiB, so an oversize
    /// DTB is still read and reported, not cut).
    const DTB_SLICE_MAX: u32 = 64 << 20;
    /// The PL011's data register and flag register (TXFF, bit 5: transmit FIFO full).
    const UARTDR: u64 = 0x00;
    const UARTFR: u64 = 0x18;
    const UARTFR_TXFF: u32 = 1 << 5;

    // Register use until `probe_main`: x19..x22 = x0..x3 at entry, x23 = load address,
    // x24 = CurrentEL, x25 = DAIF, x26 = CNTFRQ_EL0, x27 = SCTLR_ELx, x28 = HCR_EL2,
    // x18 = CPTR_EL2 (both 0 at EL1). They are stored in `EntryState` order on the stack.
    global_asm!(
        r#"
    .section .text.head, "ax"
    .global _start
_start:
    b       probe_entry             /* code0 */
    .long   0                       /* code1 */
    .quad   {text_offset}           /* text_offset */
    .quad   __probe_image_size      /* image_size: file + BSS + stack */
    .quad   {flags}                 /* flags */
    .quad   0                       /* res2 */
    .quad   0                       /* res3 */
    .quad   0                       /* res4 */
    .long   {magic}                 /* magic "ARM\x64" */
    .long   0                       /* res5 */

probe_entry:
    /* The entry state, before anything is written. */
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3
    adr     x23, _start
    mrs     x24, CurrentEL
    mrs     x25, daif
    mrs     x26, cntfrq_el0
    mov     x28, xzr
    mov     x18, xzr
    and     x9, x24, #{el_mask}
    cmp     x9, #{el2}
    b.eq    1f
    cmp     x9, #{el1}
    b.ne    .Lhang                  /* EL3 or EL0: nothing sensible to report through */
    mrs     x27, sctlr_el1
    b       2f
1:  mrs     x27, sctlr_el2
    mrs     x28, hcr_el2
    mrs     x18, cptr_el2
2:
    /* Relocate: *(base + r_offset) = base + r_addend */
    adrp    x9, __rela_start
    add     x9, x9, :lo12:__rela_start
    adrp    x10, __rela_end
    add     x10, x10, :lo12:__rela_end
3:  cmp     x9, x10
    b.hs    4f
    ldp     x11, x12, [x9]
    ldr     x13, [x9, #16]
    add     x9, x9, #{rela_size}
    cmp     x12, #{r_relative}
    b.ne    .Lhang
    add     x13, x13, x23
    str     x13, [x23, x11]
    b       3b
4:  /* Zero BSS */
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
5:  cmp     x9, x10
    b.hs    6f
    stp     xzr, xzr, [x9], #16
    b       5b
6:  msr     spsel, #1
    adrp    x9, __stack_top
    add     x9, x9, :lo12:__stack_top
    mov     sp, x9
    /* FP/SIMD at our own EL: Rust code may use SIMD registers. */
    and     x9, x24, #{el_mask}
    cmp     x9, #{el2}
    b.eq    7f
    mrs     x10, cpacr_el1
    mov     x11, #{cpacr_en}
    orr     x10, x10, x11
    msr     cpacr_el1, x10
    b       8f
7:  mrs     x10, cptr_el2
    tbnz    x28, #{e2h_bit}, 9f
    mov     x11, #{cptr_traps}
    bic     x10, x10, x11
    b       10f
9:  mov     x11, #{cpacr_en}
    orr     x10, x10, x11
10: msr     cptr_el2, x10
8:  isb
    sub     sp, sp, #{frame}
    stp     x19, x20, [sp, #0]      /* x[0], x[1] */
    stp     x21, x22, [sp, #16]     /* x[2], x[3] */
    stp     x23, x24, [sp, #32]     /* load, current_el */
    stp     x25, x27, [sp, #48]     /* daif, sctlr */
    stp     x28, x18, [sp, #64]     /* hcr_el2, cptr_el2 */
    str     x26, [sp, #80]          /* cntfrq */
    mov     x0, sp
    bl      probe_main
.Lhang:
    wfe
    b       .Lhang
"#,
        text_offset = const TEXT_OFFSET,
        flags = const IMAGE_FLAGS,
        magic = const IMAGE_MAGIC,
        el_mask = const CURRENT_EL_MASK,
        frame = const ENTRY_FRAME,
        el2 = const CURRENT_EL_EL2,
        el1 = const CURRENT_EL_EL1,
        rela_size = const RELA_SIZE,
        r_relative = const R_AARCH64_RELATIVE,
        cpacr_en = const CPACR_FPEN,
        cptr_traps = const CPTR_TFP,
        e2h_bit = const HCR_E2H_BIT,
    );

    /// The console: a PL011 the previous stage left initialised (QEMU's is always usable; on
    /// real hardware the loader's console is left running too).
    struct Pl011(u64);

    impl Write for Pl011 {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for b in s.bytes() {
                if b == b'\n' {
                    self.put(b'\r');
                }
                self.put(b);
            }
            Ok(())
        }
    }

    impl Pl011 {
        fn put(&mut self, b: u8) {
            // SAFETY: `self.0` is the PL011 the DTB's stdout-path names; its flag and data
            // registers are MMIO, read and written with volatile accesses only.
            unsafe {
                while core::ptr::read_volatile((self.0 + UARTFR) as *const u32) & UARTFR_TXFF != 0 {
                }
                core::ptr::write_volatile((self.0 + UARTDR) as *mut u32, b as u32);
            }
        }
    }

    impl Report for Pl011 {
        fn line(&mut self, s: Status, name: &str, d: fmt::Arguments) {
            let _ = write_line(self, s, name, d);
            let _ = self.write_str("\n");
        }
    }

    /// A PSCI call (SMC Calling Convention: function id and arguments in x0..x3, result in x0).
    fn psci(c: Conduit, fid: u32, a1: u64, a2: u64) -> i64 {
        let mut x0 = fid as u64;
        // SAFETY: a PSCI call through the conduit the DTB names; SMCCC lets the callee clobber
        // x0-x17, which `clobber_abi("C")` declares; it touches no memory of ours.
        unsafe {
            match c {
                Conduit::Hvc => asm!("hvc #0", inout("x0") x0, in("x1") a1, in("x2") a2,
                    in("x3") 0u64, clobber_abi("C"), options(nostack)),
                Conduit::Smc => asm!("smc #0", inout("x0") x0, in("x1") a1, in("x2") a2,
                    in("x3") 0u64, clobber_abi("C"), options(nostack)),
            }
        }
        x0 as i64
    }

    /// The machine as the probe found it: its EL and HCR_EL2.E2H (the CPTR_EL2 layout).
    struct Hw {
        el: u64,
        e2h: bool,
    }

    impl Machine for Hw {
        fn affinity_info(&mut self, c: Conduit, target: u64) -> i64 {
            psci(c, PSCI_AFFINITY_INFO_64, target, 0)
        }
        fn read_u64(&mut self, addr: u64) -> u64 {
            // SAFETY: the caller checked that `addr` is 8-byte aligned and inside RAM.
            unsafe { core::ptr::read_volatile(addr as *const u64) }
        }
        fn read_counter(&mut self) -> u64 {
            let v: u64;
            // SAFETY: reads the physical counter; no memory or other register effect.
            unsafe { asm!("isb", "mrs {0}, cntpct_el0", out(reg) v, options(nomem, nostack)) };
            v
        }
        fn run_fp(&mut self) {
            // SAFETY: FP/SIMD was enabled at this EL at entry; the instruction only writes d0,
            // declared as clobbered.
            unsafe { asm!("fmov d0, xzr", out("d0") _, options(nomem, nostack)) };
        }
        fn run_sve(&mut self) {
            self.enable(CPACR_ZEN, CPTR_TZ);
            // SAFETY: SVE is enabled at this EL (above); `rdvl` only reads the vector length
            // into a general register.
            unsafe {
                asm!(".arch_extension sve", "rdvl {0}, #1", out(reg) _, options(nomem, nostack))
            };
        }
        fn run_sme(&mut self) {
            self.enable(CPACR_SMEN, CPTR_TSM);
            // SAFETY: SME is enabled at this EL (above); `rdsvl` only reads the streaming
            // vector length into a general register (it needs no streaming mode).
            unsafe {
                asm!(".arch_extension sme", "rdsvl {0}, #1", out(reg) _, options(nomem, nostack))
            };
        }
    }

    impl Hw {
        /// Stops the probe's own EL from trapping a feature: sets `cpacr_bits` in CPACR_EL1 (or
        /// in CPTR_EL2 with E2H = 1), clears `cptr_trap` in CPTR_EL2 with E2H = 0.
        fn enable(&self, cpacr_bits: u64, cptr_trap: u64) {
            // SAFETY: changes only the probe's own EL's trap controls for SVE/SME, which no
            // other code relies on; `isb` makes the change visible to the next instruction.
            unsafe {
                match (self.el, self.e2h) {
                    (1, _) => asm!("mrs {t}, cpacr_el1", "orr {t}, {t}, {b}", "msr cpacr_el1, {t}",
                        "isb", t = out(reg) _, b = in(reg) cpacr_bits, options(nomem, nostack)),
                    (_, true) => {
                        asm!("mrs {t}, cptr_el2", "orr {t}, {t}, {b}", "msr cptr_el2, {t}",
                        "isb", t = out(reg) _, b = in(reg) cpacr_bits, options(nomem, nostack))
                    }
                    (_, false) => {
                        asm!("mrs {t}, cptr_el2", "bic {t}, {t}, {b}", "msr cptr_el2, {t}",
                        "isb", t = out(reg) _, b = in(reg) cptr_trap, options(nomem, nostack))
                    }
                }
            }
        }
    }

    /// Reads a system register.
    macro_rules! sysreg {
        ($name:literal) => {{
            let v: u64;
            // SAFETY: reading an ID register has no side effect and is allowed at EL1 and EL2.
            unsafe { asm!(concat!("mrs {0}, ", $name), out(reg) v, options(nomem, nostack)) };
            v
        }};
    }

    fn off_or_spin(conduit: Option<Conduit>, out: Option<&mut Pl011>) -> ! {
        match conduit {
            Some(c) => {
                psci(c, PSCI_SYSTEM_OFF, 0, 0);
                if let Some(o) = out {
                    let _ = writeln!(o, "PROBE info poweroff: SYSTEM_OFF returned; spinning");
                }
            }
            None => {
                if let Some(o) = out {
                    let _ = writeln!(o, "PROBE info poweroff: no PSCI in the DTB; spinning");
                }
            }
        }
        loop {
            // SAFETY: waits for an event; no memory or register effect.
            unsafe { asm!("wfe", options(nomem, nostack)) };
        }
    }

    #[no_mangle]
    extern "C" fn probe_main(entry: &EntryState) -> ! {
        let id = CpuId {
            mpidr: sysreg!("mpidr_el1"),
            pfr0: sysreg!("id_aa64pfr0_el1"),
            pfr1: sysreg!("id_aa64pfr1_el1"),
        };
        let x0 = entry.x[0];
        // SAFETY: the probe's own header, `IMAGE_HEADER_LEN` bytes at its load address.
        let header =
            unsafe { core::slice::from_raw_parts(entry.load as *const u8, IMAGE_HEADER_LEN) };
        if x0 == 0 {
            off_or_spin(None, None);
        }
        // SAFETY: x0 is non-zero; the boot protocol says it is a DTB in RAM. Its header is read
        // first; a bad magic ends here (no console to report to without a DTB).
        let hdr = unsafe { core::slice::from_raw_parts(x0 as *const u8, DTB_HEADER_LEN) };
        let Ok(size) = dtb_total_size(hdr) else {
            off_or_spin(None, None)
        };
        // SAFETY: a DTB header with the right magic says this many bytes follow at x0.
        let dtb = unsafe {
            core::slice::from_raw_parts(x0 as *const u8, size.min(DTB_SLICE_MAX) as usize)
        };
        let Ok(fdt) = fdt::Fdt::new(dtb) else {
            off_or_spin(None, None)
        };
        let conduit = psci_conduit(&fdt);
        let Some(uart) = stdout_pl011(&fdt) else {
            off_or_spin(conduit, None)
        };
        let mut out = Pl011(uart);
        // SAFETY: one CPU, no interrupts: written once here, read only by the panic handler.
        unsafe { PANIC_OUT = (uart, conduit) };
        let _ = writeln!(
            out,
            "\nPROBE begin: entered at {:#x}, x0={x0:#x}",
            entry.load
        );
        let mut hw = Hw {
            el: entry.el(),
            e2h: entry.hcr_el2 & kexboot_probe::HCR_E2H != 0,
        };
        let s = run(entry, header, id, dtb, &mut hw, &mut out);
        let _ = writeln!(out, "PROBE done: {} ok, {} failed", s.ok, s.failed);
        off_or_spin(conduit, Some(&mut out))
    }

    /// The console's base (0 until found) and the PSCI conduit, for the panic handler.
    static mut PANIC_OUT: (u64, Option<Conduit>) = (0, None);

    /// A panic (e.g. the `fdt` crate on a malformed tree) is a failed run: say so, power off.
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        // SAFETY: one CPU, no interrupts; a copy of the value `probe_main` wrote.
        let (uart, conduit) = unsafe { PANIC_OUT };
        if uart == 0 {
            off_or_spin(conduit, None)
        }
        let mut out = Pl011(uart);
        let _ = writeln!(out, "PROBE FAIL panic: {info}");
        let _ = writeln!(out, "PROBE done: panicked");
        off_or_spin(conduit, Some(&mut out))
    }
}
