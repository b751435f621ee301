//! Builds the firmware (`kexboot-boards`, binary `kexboot`, for `aarch64-unknown-none`) and turns
//! its ELF into the flat `target/kexboot.bin` that QEMU `-kernel` loads; the same for the
//! entry-condition probe (`probe/`, `target/probe.bin`).

use crate::util::{cargo, err, is_arm64_image, run_status, write_atomic, Context, Paths, Result};
use object::elf::{FileHeader64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;
use std::path::PathBuf;

/// Rust target of the firmware.
pub const TARGET: &str = "aarch64-unknown-none";
/// Largest flat image accepted (a bogus ELF could otherwise ask for gigabytes of zeros).
const MAX_BIN: u64 = 64 << 20;

/// Cargo package and binary of the entry-condition probe, and its flat image in `target/`.
pub const PROBE_PKG: &str = "kexboot-probe";
const PROBE_BIN: &str = "probe";
pub const PROBE_FILE: &str = "probe.bin";

/// `cargo build --release` of the firmware, then ELF → `target/kexboot.bin`. Returns its path.
pub fn build(paths: &Paths) -> Result<PathBuf> {
    build_flat(
        paths,
        "kexboot-boards",
        "kexboot",
        &paths.kexboot_bin(),
        None,
    )
}

/// The firmware with the verified-boot key blob `keys` built in (`KEXBOOT_KEYS`), flattened
/// into `out`. The blob is checked first as the firmware will read it.
pub fn build_with_keys(
    paths: &Paths,
    keys: &std::path::Path,
    out: &std::path::Path,
) -> Result<PathBuf> {
    let summary = crate::fitimg::check_keys(keys)?;
    println!("verified boot keys {}: {summary}", keys.display());
    let keys = std::fs::canonicalize(keys).ctx(keys.display())?;
    build_flat(paths, "kexboot-boards", "kexboot", out, Some(&keys))
}

/// The same for the entry-condition probe (`probe/`): `target/probe.bin`, an arm64 Image that
/// kexboot boots like a kernel. Returns its path.
pub fn build_probe(paths: &Paths) -> Result<PathBuf> {
    build_flat(
        paths,
        PROBE_PKG,
        PROBE_BIN,
        &paths.target.join(PROBE_FILE),
        None,
    )
}

/// `cargo build --release -p <pkg> --bin <bin> --target aarch64-unknown-none`, then the ELF
/// flattened into `out`, which must carry the arm64 Image magic (a warning otherwise).
fn build_flat(
    paths: &Paths,
    pkg: &str,
    bin: &str,
    out: &std::path::Path,
    keys: Option<&std::path::Path>,
) -> Result<PathBuf> {
    let mut cmd = cargo(paths);
    // boards/build.rs embeds the blob KEXBOOT_KEYS names (none when unset or empty).
    cmd.env(
        "KEXBOOT_KEYS",
        keys.map(|k| k.as_os_str()).unwrap_or_default(),
    );
    run_status(cmd.args([
        "build",
        "--release",
        "-p",
        pkg,
        "--bin",
        bin,
        "--target",
        TARGET,
    ]))?;
    let elf_path = paths
        .cargo_target_dir()
        .join(TARGET)
        .join("release")
        .join(bin);
    let elf = std::fs::read(&elf_path).ctx(elf_path.display())?;
    let flat = elf_to_bin(&elf).ctx(elf_path.display())?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if !is_arm64_image(&flat) {
        eprintln!("build: warning: {name} has no arm64 Image magic at 0x38 (QEMU -kernel will treat it as raw)");
    }
    std::fs::create_dir_all(&paths.target).ctx(paths.target.display())?;
    write_atomic(out, &flat)?;
    println!(
        "{name}: {} bytes ({:.1} KiB) from {}",
        flat.len(),
        flat.len() as f64 / 1024.0,
        elf_path.display()
    );
    Ok(out.to_path_buf())
}

/// Flattens an ELF64 little-endian image: every `PT_LOAD` segment's file bytes at
/// `p_paddr - lowest p_paddr`, gaps zero-filled, ending at the last byte of file data (no BSS).
pub fn elf_to_bin(elf: &[u8]) -> Result<Vec<u8>> {
    let hdr = FileHeader64::<Endianness>::parse(elf).map_err(|e| err!("not an ELF64 file: {e}"))?;
    let endian = hdr.endian().map_err(|e| err!("ELF endianness: {e}"))?;
    let phdrs = hdr
        .program_headers(endian, elf)
        .map_err(|e| err!("ELF program headers: {e}"))?;
    let loads: Vec<_> = phdrs
        .iter()
        .filter(|p| p.p_type(endian) == PT_LOAD && p.p_filesz(endian) > 0)
        .collect();
    let base = loads
        .iter()
        .map(|p| p.p_paddr(endian))
        .min()
        .ok_or_else(|| err!("ELF has no PT_LOAD segment with file data"))?;
    let mut end = 0u64;
    for p in &loads {
        let e = (p.p_paddr(endian) - base)
            .checked_add(p.p_filesz(endian))
            .ok_or_else(|| err!("PT_LOAD at paddr {:#x} overflows", p.p_paddr(endian)))?;
        end = end.max(e);
    }
    if end > MAX_BIN {
        return Err(err!(
            "flat image would be {end} bytes (limit {MAX_BIN}): segments far apart?"
        ));
    }
    let mut out = vec![0u8; end as usize];
    for p in &loads {
        let data = p.data(endian, elf).map_err(|_| {
            err!(
                "PT_LOAD at offset {:#x} lies outside the file",
                p.p_offset(endian)
            )
        })?;
        let at = (p.p_paddr(endian) - base) as usize;
        out[at..at + data.len()].copy_from_slice(data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 LE with the given (paddr, data, memsz) PT_LOAD segments.
    fn make_elf(segs: &[(u64, &[u8], u64)]) -> Vec<u8> {
        let phoff = 64u64;
        let mut data_off = phoff + 56 * segs.len() as u64;
        let mut e = vec![0u8; 64];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2; // 64-bit
        e[5] = 1; // little-endian
        e[6] = 1;
        e[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        e[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        e[20..24].copy_from_slice(&1u32.to_le_bytes());
        e[32..40].copy_from_slice(&phoff.to_le_bytes());
        e[52..54].copy_from_slice(&64u16.to_le_bytes());
        e[54..56].copy_from_slice(&56u16.to_le_bytes());
        e[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        let mut body = Vec::new();
        for (paddr, data, memsz) in segs {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&PT_LOAD.0.to_le_bytes());
            ph[8..16].copy_from_slice(&data_off.to_le_bytes());
            ph[16..24].copy_from_slice(&(paddr + 0xffff_0000_0000_0000).to_le_bytes()); // vaddr differs
            ph[24..32].copy_from_slice(&paddr.to_le_bytes());
            ph[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            e.extend_from_slice(&ph);
            body.extend_from_slice(data);
            data_off += data.len() as u64;
        }
        e.extend_from_slice(&body);
        e
    }

    #[test]
    fn segments_placed_by_paddr_with_gap_and_no_bss() {
        // Second segment listed first; third is BSS only (no file bytes).
        let elf = make_elf(&[
            (0x4008_0010, b"BBBB", 0x1000),
            (0x4008_0000, b"AAAA", 4),
            (0x4009_0000, b"", 0x10000),
        ]);
        let bin = elf_to_bin(&elf).unwrap();
        assert_eq!(bin.len(), 0x14);
        assert_eq!(&bin[..4], b"AAAA");
        assert!(bin[4..0x10].iter().all(|&b| b == 0));
        assert_eq!(&bin[0x10..], b"BBBB");
    }

    #[test]
    fn rejects_garbage_and_huge_gaps() {
        assert!(elf_to_bin(b"not an elf at all, really not").is_err());
        assert!(elf_to_bin(&make_elf(&[])).is_err());
        assert!(elf_to_bin(&make_elf(&[(0, b"a", 1), (1 << 40, b"b", 1)])).is_err());
        let mut truncated = make_elf(&[(0, b"abcdefgh", 8)]);
        truncated.truncate(truncated.len() - 4);
        assert!(elf_to_bin(&truncated).is_err());
        // Random mutations never panic.
        let good = make_elf(&[(0x1000, b"hello", 5), (0x2000, b"world", 16)]);
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut m = good.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % m.len();
                m[i] = (x >> 24) as u8;
            }
            let _ = elf_to_bin(&m);
        }
    }
}
