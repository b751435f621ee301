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
    // The trusted verified-boot keys (`cargo xtask build --keys keys.dtb` sets KEXBOOT_KEYS):
    // a U-Boot key blob, or none (an empty file).
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let keys = match std::env::var("KEXBOOT_KEYS") {
        Ok(path) if !path.is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            std::fs::read(&path).unwrap_or_else(|e| panic!("KEXBOOT_KEYS={path}: {e}"))
        }
        _ => Vec::new(),
    };
    std::fs::write(format!("{out}/keys.dtb"), keys).expect("write OUT_DIR/keys.dtb");
    println!("cargo:rerun-if-env-changed=KEXBOOT_KEYS");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
}
