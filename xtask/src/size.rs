//! `cargo xtask size`: where the firmware's bytes go, from the ELF's symbol table: its sections,
//! the bytes per crate (code and read-only data), and the largest functions. `docs/size.md`
//! quotes its output.

use crate::firmware::{self, TARGET};
use crate::util::{err, Context, Paths, Result};
use object::elf::{FileHeader64, SHF_ALLOC, SHT_NOBITS, STT_FUNC, STT_OBJECT};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::Endianness;
use std::collections::HashMap;
use std::fmt::Write as _;

/// How many of the largest symbols are listed.
const TOP: usize = 30;

/// One symbol with a size: its section kind and its (partly demangled) name.
struct Symbol {
    size: u64,
    code: bool,
    name: String,
}

/// `cargo xtask size [--no-build] [--top N] [--elf PATH]`: builds the firmware (unless
/// `--no-build` or `--elf`) and prints the report for its ELF (or for another build's, to compare).
pub fn cmd_size(paths: &Paths, args: &[String]) -> Result<()> {
    let mut build = true;
    let mut top = TOP;
    let mut elf_path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-build" => build = false,
            "--elf" => {
                elf_path = Some(std::path::PathBuf::from(
                    it.next().ok_or_else(|| err!("--elf needs a path"))?,
                ));
                build = false;
            }
            "--top" => {
                top = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| err!("--top needs a number"))?
            }
            other => return Err(err!("unexpected argument `{other}`")),
        }
    }
    if build {
        firmware::build(paths)?;
    }
    let elf_path = elf_path.unwrap_or_else(|| {
        paths
            .cargo_target_dir()
            .join(TARGET)
            .join("release")
            .join("kexboot")
    });
    let elf = std::fs::read(&elf_path).ctx(elf_path.display())?;
    print!("{}", report(&elf, top).ctx(elf_path.display())?);
    Ok(())
}

/// The whole report for an ELF64 little-endian image.
pub fn report(elf: &[u8], top: usize) -> Result<String> {
    let flat = firmware::elf_to_bin(elf)?.len();
    let hdr = FileHeader64::<Endianness>::parse(elf).map_err(|e| err!("not an ELF64 file: {e}"))?;
    let endian = hdr.endian().map_err(|e| err!("ELF endianness: {e}"))?;
    let sections = hdr
        .sections(endian, elf)
        .map_err(|e| err!("ELF sections: {e}"))?;
    let mut out = format!(
        "flat image (kexboot.bin): {flat} bytes ({:.1} KiB)\n\n",
        kib(flat as u64)
    );
    out += "| section | bytes |\n|---|---:|\n";
    let mut code_total = 0;
    let mut ro_total = 0;
    for s in sections.iter() {
        let flags = s.sh_flags(endian);
        if flags.0 & SHF_ALLOC.0 == 0 || s.sh_type(endian) == SHT_NOBITS {
            continue;
        }
        let name = String::from_utf8_lossy(sections.section_name(endian, s).unwrap_or(b"?"));
        let size = s.sh_size(endian);
        if name == ".text" {
            code_total = size;
        } else {
            ro_total += size;
        }
        let _ = writeln!(out, "| `{name}` | {size} |");
    }
    let syms = symbols(elf)?;
    let mut by_crate: HashMap<String, (u64, u64)> = HashMap::new();
    let (mut code_named, mut ro_named) = (0, 0);
    for s in &syms {
        let e = by_crate.entry(crate_of(&s.name)).or_default();
        if s.code {
            e.0 += s.size;
            code_named += s.size;
        } else {
            e.1 += s.size;
            ro_named += s.size;
        }
    }
    let mut rows: Vec<_> = by_crate.into_iter().collect();
    rows.sort_by_key(|(n, (c, d))| (std::cmp::Reverse(c + d), n.clone()));
    out += "\n| crate | code | data | total |\n|---|---:|---:|---:|\n";
    for (name, (c, d)) in &rows {
        let _ = writeln!(out, "| {name} | {c} | {d} | {} |", c + d);
    }
    let _ = writeln!(
        out,
        "| (no symbol: code padding, string literals, constants, vtables, relocations) | {} | {} | {} |",
        code_total.saturating_sub(code_named),
        ro_total.saturating_sub(ro_named),
        (code_total + ro_total).saturating_sub(code_named + ro_named)
    );
    let mut big: Vec<&Symbol> = syms.iter().collect();
    big.sort_by_key(|s| std::cmp::Reverse(s.size));
    let _ = writeln!(out, "\n| largest symbols | bytes |\n|---|---:|");
    for s in big.iter().take(top) {
        let _ = writeln!(out, "| `{}` | {} |", s.name.replace('|', "\\|"), s.size);
    }
    Ok(out)
}

fn kib(b: u64) -> f64 {
    b as f64 / 1024.0
}

/// Functions and data objects with a size, in sections that are part of the file.
fn symbols(elf: &[u8]) -> Result<Vec<Symbol>> {
    let hdr = FileHeader64::<Endianness>::parse(elf).map_err(|e| err!("not an ELF64 file: {e}"))?;
    let endian = hdr.endian().map_err(|e| err!("ELF endianness: {e}"))?;
    let sections = hdr
        .sections(endian, elf)
        .map_err(|e| err!("ELF sections: {e}"))?;
    let table = sections
        .symbols(endian, elf, object::elf::SHT_SYMTAB)
        .map_err(|e| err!("ELF symbol table: {e}"))?;
    let mut out = Vec::new();
    for sym in table.iter() {
        let kind = sym.st_type();
        let size = sym.st_size(endian);
        if size == 0 || (kind != STT_FUNC && kind != STT_OBJECT) {
            continue;
        }
        let Some(idx) = sym.st_shndx(endian).index() else {
            continue;
        };
        let Ok(sec) = sections.section(object::SectionIndex(usize::from(idx))) else {
            continue;
        };
        if sec.sh_type(endian) == SHT_NOBITS {
            continue;
        }
        let name = String::from_utf8_lossy(table.symbol_name(endian, sym).unwrap_or(b"?"));
        out.push(Symbol {
            size,
            code: kind == STT_FUNC,
            name: demangle(&name),
        });
    }
    Ok(out)
}

/// Rust's legacy mangling (`_ZN<len><part>...17h<hash>E`) made readable: the parts joined by
/// `::`, the `$..$` escapes decoded, the hash dropped. Other names are returned as they are.
pub fn demangle(sym: &str) -> String {
    if let Some(v0) = sym.strip_prefix("_R") {
        return demangle_v0(v0);
    }
    let Some(mut rest) = sym.strip_prefix("_ZN") else {
        return sym.to_string();
    };
    let mut parts = Vec::new();
    while let Some(digits) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&n| n > 0) {
        let Ok(len) = rest[..digits].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(digits..digits + len) else {
            break;
        };
        parts.push(part);
        rest = &rest[digits + len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.len() == 17 && p.starts_with('h'))
    {
        parts.pop();
    }
    let mut s = parts.join("::");
    for (from, to) in [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$RF$", "&"),
        ("$BP$", "*"),
        ("$LP$", "("),
        ("$RP$", ")"),
        ("$C$", ","),
        ("$u20$", " "),
        ("$u27$", "'"),
        ("$u5b$", "["),
        ("$u5d$", "]"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("$u7e$", "~"),
        ("..", "::"),
    ] {
        s = s.replace(from, to);
    }
    s.replace("_<", "<").replace("::_<", "::<")
}

/// Rust's v0 mangling (`_R...`, the precompiled `core` and `alloc`), roughly: the identifiers
/// from the first crate root on, joined by `::` (no generics, no back-references).
fn demangle_v0(s: &str) -> String {
    let b = s.as_bytes();
    // The first crate root: `C` [`s` <base-62 hash> `_`] <length> <name>.
    let mut start = None;
    for i in 0..b.len() {
        if b[i] != b'C' {
            continue;
        }
        let mut j = i + 1;
        if b.get(j) == Some(&b's') {
            match b[j..].iter().position(|&c| c == b'_') {
                Some(p) => j += p + 1,
                None => continue,
            }
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            start = Some(j);
            break;
        }
    }
    let Some(mut i) = start else {
        return format!("_R{s}");
    };
    let mut parts = Vec::new();
    while i < b.len() {
        // Back-references (`B` <base-62> `_`) and disambiguators (`s` <base-62> `_`) are not
        // identifiers.
        if matches!(b[i], b'B' | b's') {
            i += b[i..]
                .iter()
                .position(|&c| c == b'_')
                .unwrap_or(b.len() - i)
                + 1;
            continue;
        }
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            i += 1;
            continue;
        }
        let len: usize = s[i..i + digits].parse().unwrap_or(0);
        let mut at = i + digits;
        if b.get(at) == Some(&b'_') {
            at += 1;
        }
        match s.get(at..at + len) {
            Some(id) if len > 0 && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') => {
                parts.push(id);
                i = at + len;
            }
            _ => i += digits,
        }
    }
    parts.join("::")
}

/// The crate a (demangled) symbol belongs to: the first path's crate; for `<T as Trait>` and
/// `<impl T>` that of `T`, or of the trait when `T` is a primitive or a slice. Names that are
/// not Rust paths (assembly labels, `memcpy`) are grouped together.
pub fn crate_of(name: &str) -> String {
    let s = name.trim_start_matches('<').trim_start_matches("impl ");
    let s = s
        .trim_start_matches(['&', '*', '[', '('])
        .trim_start_matches("mut ");
    let head: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let is_path = s[head.len()..].starts_with("::");
    if is_path && !head.is_empty() {
        return head;
    }
    if let Some(i) = name.find(" as ") {
        return crate_of(&name[i + 4..]);
    }
    if name.starts_with('<') || !head.is_empty() && name.contains("::") {
        return "core".into();
    }
    if name.starts_with("OUTLINED_FUNCTION_") {
        return "(machine outliner: sequences shared by several functions)".into();
    }
    "(assembly and C symbols)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_legacy_names() {
        assert_eq!(
            demangle("_ZN12kexboot_boot5shell14Shell$LT$B$GT$8autoboot17h1b0d473a5c2ffae1E"),
            "kexboot_boot::shell::Shell<B>::autoboot"
        );
        assert_eq!(
            demangle("_ZN70_$LT$kexboot..disk..Disk$u20$as$u20$kexboot_fs..block..BlockDevice$GT$13write_sectors17ha38b80ee57a671deE"),
            "<kexboot::disk::Disk as kexboot_fs::block::BlockDevice>::write_sectors"
        );
        assert_eq!(demangle("el3_sync"), "el3_sync");
        assert_eq!(
            demangle("_RNvXsW_NtNtCsbcsGJ9IzBgZ_4core3fmt3nummNtB7_5Debug3fmt"),
            "core::fmt::num::Debug::fmt"
        );
        assert_eq!(
            demangle(
                "_RNvNtNtCs7yBULlKOBOw_17compiler_builtins3int19specialized_div_rem12u128_div_rem"
            ),
            "compiler_builtins::int::specialized_div_rem::u128_div_rem"
        );
    }

    #[test]
    fn crates() {
        assert_eq!(
            crate_of("kexboot_boot::shell::Shell<B>::autoboot"),
            "kexboot_boot"
        );
        assert_eq!(
            crate_of("<kexboot::disk::Disk as kexboot_fs::block::BlockDevice>::write_sectors"),
            "kexboot"
        );
        assert_eq!(
            crate_of("<impl kexboot_boot::shell::Shell<B>>::dhcp"),
            "kexboot_boot"
        );
        assert_eq!(crate_of("<u32 as core::fmt::Display>::fmt"), "core");
        assert_eq!(crate_of("<&T as core::fmt::Debug>::fmt"), "core");
        assert_eq!(crate_of("memcpy"), "(assembly and C symbols)");
        assert!(crate_of("OUTLINED_FUNCTION_12").contains("outliner"));
    }
}
