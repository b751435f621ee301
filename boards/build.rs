//! Links the firmware with its own linker script as a position-independent executable, so that
//! it runs wherever QEMU, another bootloader or Linux kexec places it (it applies its own
//! `R_AARCH64_RELATIVE` relocations at entry).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/src/arch/aarch64/kexboot.ld");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("aarch64") {
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rustc-link-arg-bins=--pie");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        println!("cargo:rustc-link-arg-bins=-znotext");
        // RELR: the relative relocations as address bitmaps (about 1 KiB) instead of 24-byte
        // `Elf64_Rela` entries (about 20 KiB); the entry code applies both forms.
        println!("cargo:rustc-link-arg-bins=-zpack-relative-relocs");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
}
