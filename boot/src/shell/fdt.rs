//! U-Boot's `fdt` command, as far as boot scripts use it: `fdt addr` names the working tree
//! (a blob in RAM, its header checked), `fdt resize` gives it free space, `fdt print`/`list`
//! show it in U-Boot's dts-like form, `fdt get`, `fdt set`, `fdt mknode` and `fdt rm` read and
//! edit it in place. `booti ... <fdt_addr>` reads the tree from RAM, so edits made here are
//! what the kernel gets.
//!
//! The tree is re-read and checked completely at every command (a `load` may have replaced it
//! since `fdt addr`). An edit goes through `kexboot_loader::dt` (the checked tree model) and is
//! written back at the working address only when it fits the blob's `totalsize`, as libfdt
//! edits in place: a tree without the room fails with libfdt's FDT_ERR_NOSPACE, and nothing
//! outside `addr..addr+totalsize` is ever written but by `fdt resize` and `fdt addr <a> <len>`,
//! which check that RAM is free first.
//!
//! Console wording follows U-Boot's `cmd/fdt.c` (libfdt's error names included), since users
//! and scripts know it.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kexboot_loader::dt::{self, Header, PathError, Visit, FDT_HEADER_LEN};
use kexboot_loader::mem::Range;
use kexboot_loader::MAX_DTB_SIZE;

use crate::board::Board;
use crate::commands::parse_hex;
use crate::script::{CmdError, Ctx};

use super::{Error, Shell};

type Res = Result<(), CmdError>;

/// The usage line (`help` shows the table's shorter one).
pub const USAGE: &str = "fdt addr [-c] [-q] [<addr> [<length>]] | fdt resize [<extrasize>] | \
fdt print|list [<path> [<prop>]] | fdt get value|size|name <var> <path> [<prop>|<index>] | \
fdt set <path> <prop> [<val>]... | fdt mknode <path> <node> | fdt rm <path> [<prop>] | fdt header";

/// How deep `fdt print` goes (U-Boot's MAX_LEVEL; the tree check allows no deeper).
const MAX_LEVEL: usize = 32;
/// Lines `fdt print` writes at most: a tree has a few thousand; a hostile one stops here.
const MAX_PRINT_LINES: usize = 20_000;
/// Values longer than this many bytes print as `* [0x<len>]` unless `fdt_max_dump` says
/// otherwise (U-Boot prints every byte by default; a 2 MiB property would be 11 MB of text).
const DEFAULT_MAX_DUMP: usize = 4096;
/// Longest value `fdt set` builds or `fdt get value` puts in a variable.
pub const MAX_VALUE: usize = 64 * 1024;
/// `fdt resize` ends the blob on a page boundary...
const RESIZE_ALIGN: u64 = 4096;
/// ...after room for five more memory reservations, as U-Boot's `fdt_shrink_to_minimum`.
const RESIZE_SLACK: u64 = 5 * 16;
const FDT_MAGIC: [u8; 4] = [0xd0, 0x0d, 0xfe, 0xed];
/// The header's ten big-endian words, in order (U-Boot's `fdt header` names).
const HEADER_FIELDS: [&str; 10] = [
    "magic",
    "totalsize",
    "off_dt_struct",
    "off_dt_strings",
    "off_mem_rsvmap",
    "version",
    "last_comp_version",
    "boot_cpuid_phys",
    "size_dt_strings",
    "size_dt_struct",
];

const NO_FDT: &str = "No FDT memory address configured. Please configure\n\
the FDT address via \"fdt addr <address>\" command.\nAborting!";

fn fail(msg: impl Into<String>) -> CmdError {
    CmdError::Msg(msg.into())
}

fn usage() -> CmdError {
    Error::Usage(USAGE).into()
}

fn say(ctx: &mut Ctx, s: &str) {
    ctx.console.write_str(s);
    ctx.console.write_str("\n");
}

fn hex_arg(s: &str) -> Result<u64, CmdError> {
    parse_hex(s).ok_or_else(|| Error::NotHex(s.into()).into())
}

/// A lookup or edit that failed, in libfdt's words: `call` is the libfdt function U-Boot
/// would have called for the step after the path lookup.
fn path_fail(e: PathError, call: &str) -> CmdError {
    match e {
        PathError::NoNode => fail("libfdt fdt_path_offset() returned FDT_ERR_NOTFOUND"),
        PathError::Dt(e) => fail(format!("fdt: {e}")),
        other => fail(format!("libfdt {call}(): {other}")),
    }
}

/// `fdt ...`: dispatches on the subcommand as U-Boot does (by its first letters).
pub(super) fn fdt<B: Board>(sh: &mut Shell<B>, argv: &[String], ctx: &mut Ctx) -> Res {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let sub = *args.get(1).ok_or_else(usage)?;
    if sub.starts_with("ad") {
        return sh.fdt_addr(&args[2..], ctx);
    }
    let addr = sh.fdt_addr.ok_or_else(|| fail(NO_FDT))?;
    let rest = &args[2..];
    match sub {
        s if s.starts_with("re") => sh.fdt_resize(addr, rest),
        s if s.starts_with('p') || s.starts_with('l') => {
            sh.fdt_print(addr, rest, s.starts_with('l'), ctx)
        }
        s if s.starts_with('g') => sh.fdt_get(addr, rest, ctx),
        s if s.starts_with("se") => sh.fdt_set(addr, rest),
        s if s.starts_with("mk") => match rest {
            [path, name] => {
                let blob = sh.fdt_blob(addr)?;
                let out = dt::add_node(&blob, path, name);
                sh.fdt_store(addr, blob.len(), out, "fdt_add_subnode")
            }
            _ => Err(usage()),
        },
        s if s.starts_with("rm") => {
            let blob = sh.fdt_blob(addr)?;
            let (out, call) = match rest {
                [path] => (dt::remove_node(&blob, path), "fdt_del_node"),
                [path, prop] => (dt::remove_property(&blob, path, prop), "fdt_delprop"),
                _ => return Err(usage()),
            };
            sh.fdt_store(addr, blob.len(), out, call)
        }
        s if s.starts_with('h') && rest.is_empty() => {
            let blob = sh.fdt_blob(addr)?;
            for (i, name) in HEADER_FIELDS.iter().enumerate() {
                let v = be32(&blob, i * 4);
                let line = match *name {
                    "totalsize" => format!("{name}:\t\t0x{v:x} ({v})"),
                    "version" | "last_comp_version" => format!("{name}:{}{v}", tabs_for(name)),
                    _ => format!("{name}:{}0x{v:x}", tabs_for(name)),
                };
                say(ctx, &line);
            }
            say(ctx, "");
            Ok(())
        }
        _ => Err(usage()),
    }
}

/// U-Boot's `fdt header` aligns its values with tabs after the name.
fn tabs_for(name: &str) -> &'static str {
    match name.len() + 1 {
        0..=7 => "\t\t\t",
        8..=15 => "\t\t",
        _ => "\t",
    }
}

fn be32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

impl<B: Board> Shell<B> {
    /// `len` bytes of RAM at `addr` that kexboot may read, copied.
    fn fdt_ram(&self, addr: u64, len: u64) -> Option<Vec<u8>> {
        let r = Range::from_len(addr, len).ok()?;
        if !self.layout.readable(&r) {
            return None;
        }
        self.board.ram(r).map(<[u8]>::to_vec)
    }

    /// The blob at `addr`, its header checked and cut to its `totalsize` (the structure is
    /// checked by every `dt` call that reads it).
    fn fdt_blob(&self, addr: u64) -> Result<Vec<u8>, CmdError> {
        let not_ram = |end: u64| {
            fail(format!(
                "fdt: {addr:#x}-{end:#x} is not RAM kexboot may read"
            ))
        };
        let head = self
            .fdt_ram(addr, FDT_HEADER_LEN as u64)
            .ok_or_else(|| not_ram(addr.saturating_add(FDT_HEADER_LEN as u64)))?;
        if head[..4] != FDT_MAGIC {
            return Err(fail("libfdt fdt_check_header(): FDT_ERR_BADMAGIC"));
        }
        let h = Header::parse(&head, MAX_DTB_SIZE as usize)
            .map_err(|e| fail(format!("libfdt fdt_check_header(): at {addr:#x}: {e}")))?;
        let total = h.total_size() as u64;
        self.fdt_ram(addr, total)
            .ok_or_else(|| not_ram(addr.saturating_add(total)))
    }

    /// Writes `blob` at `addr`, where it must all be free RAM.
    fn fdt_write(&mut self, addr: u64, blob: &[u8]) -> Res {
        let not_free = || -> CmdError {
            Error::NotFree {
                cmd: "fdt",
                start: addr,
                end: Some(addr.saturating_add(blob.len() as u64)),
            }
            .into()
        };
        let r = Range::from_len(addr, blob.len() as u64).map_err(|_| not_free())?;
        if !self.layout.is_writable(&r) {
            return Err(not_free());
        }
        let ram = self.board.ram_mut(r).ok_or_else(not_free)?;
        ram.copy_from_slice(blob);
        Ok(())
    }

    /// Writes an edited tree back at `addr` with the blob's `totalsize` `total`, or says why
    /// not in libfdt's words (`call` names the libfdt function U-Boot would have called).
    fn fdt_store(
        &mut self,
        addr: u64,
        total: usize,
        edited: Result<Vec<u8>, PathError>,
        call: &str,
    ) -> Res {
        let mut out = edited.map_err(|e| path_fail(e, call))?;
        if out.len() > total {
            return Err(fail(format!(
                "libfdt {call}(): FDT_ERR_NOSPACE\n\
                 (the tree at {addr:#x} has {total:#x} bytes and needs {:#x}: `fdt resize <extrasize>` makes room)",
                out.len()
            )));
        }
        dt::set_total_size(&mut out, total).map_err(|e| fail(format!("fdt: {e}")))?;
        self.fdt_write(addr, &out)
    }

    /// `fdt addr [-c] [-q] [<addr> [<length>]]`: shows or sets the working tree (and
    /// `fdtaddr`); a length grows the blob to it in place. `-c` shows kexboot's own tree,
    /// which cannot be moved.
    fn fdt_addr(&mut self, args: &[&str], ctx: &mut Ctx) -> Res {
        let (mut control, mut quiet, mut i) = (false, false, 0);
        while let Some(flags) = args.get(i).and_then(|a| a.strip_prefix('-')) {
            for f in flags.chars() {
                match f {
                    'c' => control = true,
                    'q' => quiet = true,
                    _ => return Err(usage()),
                }
            }
            i += 1;
        }
        let args = &args[i..];
        if args.len() > 2 {
            return Err(usage());
        }
        let Some(a) = args.first() else {
            let line = if control {
                format!("Control fdt: {:08x}", self.layout.dtb.start())
            } else {
                let addr = self.fdt_addr.ok_or_else(|| fail(NO_FDT))?;
                self.fdt_blob(addr)?;
                format!("Working fdt: {addr:08x}")
            };
            say(ctx, &line);
            return Ok(());
        };
        if control {
            return Err(fail(
                "fdt addr -c: kexboot's own device tree cannot be moved (it is read at start)",
            ));
        }
        let addr = hex_arg(a)?;
        let blob = self.fdt_blob(addr)?;
        self.fdt_addr = Some(addr);
        ctx.env.set("fdtaddr", &format!("{addr:x}"));
        if !quiet {
            say(ctx, &format!("Working FDT set to {addr:x}"));
        }
        let Some(len) = args.get(1) else {
            return Ok(());
        };
        let len = hex_arg(len)?;
        if len < blob.len() as u64 {
            if !quiet {
                say(
                    ctx,
                    &format!(
                        "New length {len} < existing length {}, ignoring",
                        blob.len()
                    ),
                );
            }
            return Ok(());
        }
        self.fdt_grow(addr, &blob, len, "fdt_open_into")
    }

    /// Writes `blob` compacted at `addr` with `totalsize` `total` (checked: at most 2 MiB,
    /// free RAM).
    fn fdt_grow(&mut self, addr: u64, blob: &[u8], total: u64, call: &str) -> Res {
        let mut out = dt::compact(blob).map_err(|e| fail(format!("fdt: {e}")))?;
        let total = usize::try_from(total)
            .ok()
            .filter(|&t| t as u64 <= MAX_DTB_SIZE)
            .ok_or_else(|| {
                fail(format!(
                    "libfdt {call}(): FDT_ERR_NOSPACE ({total:#x} bytes is more than the \
                     {MAX_DTB_SIZE:#x} a device tree may have)"
                ))
            })?;
        dt::set_total_size(&mut out, total).map_err(|e| fail(format!("libfdt {call}(): {e}")))?;
        self.fdt_write(addr, &out)
    }

    /// `fdt resize [<extrasize>]`: the blob's `totalsize` becomes what the tree uses, plus
    /// room for five memory reservations and `extrasize` bytes, up to the next 4 KiB
    /// boundary of RAM (U-Boot's `fdt_shrink_to_minimum`; it may shrink). Unlike U-Boot no
    /// memory reservation for the blob is added: `booti` copies the tree elsewhere.
    fn fdt_resize(&mut self, addr: u64, args: &[&str]) -> Res {
        let extra = match args {
            [] => 0,
            [e] => hex_arg(e)?,
            _ => return Err(usage()),
        };
        let blob = self.fdt_blob(addr)?;
        let used = dt::compact(&blob)
            .map_err(|e| fail(format!("fdt: {e}")))?
            .len() as u64;
        let too_big = || {
            fail(format!(
                "fdt resize: {extra:#x} more bytes is more than a device tree may have \
                 ({MAX_DTB_SIZE:#x})"
            ))
        };
        let end = addr
            .checked_add(used + RESIZE_SLACK)
            .and_then(|e| e.checked_add(extra))
            .and_then(|e| e.checked_next_multiple_of(RESIZE_ALIGN))
            .ok_or_else(too_big)?;
        let total = end - addr;
        if total > MAX_DTB_SIZE {
            return Err(too_big());
        }
        self.fdt_grow(addr, &blob, total, "fdt_shrink_to_minimum")
    }

    /// `fdt print|list [<path> [<prop>]]`: the subtree (list: one level) or one property.
    fn fdt_print(&mut self, addr: u64, args: &[&str], list: bool, ctx: &mut Ctx) -> Res {
        let (path, prop) = match args {
            [] => ("/", None),
            [p] => (*p, None),
            [p, prop] => (*p, Some(*prop)),
            _ => return Err(usage()),
        };
        let blob = self.fdt_blob(addr)?;
        let max_dump = ctx
            .env
            .get("fdt_max_dump")
            .and_then(parse_hex)
            .map_or(DEFAULT_MAX_DUMP, |m| {
                usize::try_from(m).unwrap_or(usize::MAX)
            });
        if let Some(prop) = prop {
            let v = dt::property(&blob, path, prop).map_err(|e| path_fail(e, "fdt_getprop"))?;
            let line = if v.is_empty() {
                format!("{path} {prop}")
            } else {
                format!("{prop} = {}", format_value(&v, max_dump))
            };
            say(ctx, &line);
            return Ok(());
        }
        let depth = if list { 1 } else { MAX_LEVEL };
        let mut lines = 0;
        let con = &mut *ctx.console;
        let mut line = |text: &str, level: usize| {
            lines += 1;
            if lines > MAX_PRINT_LINES {
                return false;
            }
            for _ in 0..level {
                con.write_str("\t");
            }
            con.write_str(text);
            con.write_str("\n");
            true
        };
        dt::visit(&blob, path, depth, &mut |v| match v {
            Visit::Node { name, depth } => {
                let name = if name.is_empty() { "/" } else { name };
                line(&format!("{name} {{"), depth)
            }
            // A listed child's properties are one level too deep, as in U-Boot.
            Visit::Prop { depth: d, .. } if d >= depth => true,
            Visit::Prop {
                name,
                value: [],
                depth,
            } => line(&format!("{name};"), depth + 1),
            Visit::Prop { name, value, depth } => line(
                &format!("{name} = {};", format_value(value, max_dump)),
                depth + 1,
            ),
            Visit::End { depth } => line("};", depth),
        })
        .map_err(|e| path_fail(e, "fdt_getprop"))?;
        if lines > MAX_PRINT_LINES {
            return Err(fail(format!(
                "fdt print: stopped after {MAX_PRINT_LINES} lines"
            )));
        }
        Ok(())
    }

    /// `fdt get value <var> <path> <prop> [<index>]`, `fdt get size <var> <path> [<prop>]`,
    /// `fdt get name <var> <path> <index>`.
    fn fdt_get(&mut self, addr: u64, args: &[&str], ctx: &mut Ctx) -> Res {
        let blob = self.fdt_blob(addr)?;
        match args {
            [kind, var, path, prop, index @ ..] if kind.starts_with('v') && index.len() <= 1 => {
                let index = match index.first() {
                    Some(i) => Some(
                        i.parse::<usize>()
                            .map_err(|_| fail(format!("fdt get value: '{i}' is not an index")))?,
                    ),
                    None => None,
                };
                let v = dt::property(&blob, path, prop).map_err(|e| path_fail(e, "fdt_getprop"))?;
                if v.is_empty() {
                    // U-Boot sets the variable to "", which deletes it.
                    ctx.env.unset(var);
                    return Ok(());
                }
                let s = env_value(&v, index).ok_or_else(|| {
                    fail(format!(
                        "fdt get value: {path} {prop} has no element {}",
                        index.unwrap_or(0)
                    ))
                })?;
                ctx.env.set(var, &s);
                Ok(())
            }
            [kind, var, path, prop] if kind.starts_with('s') => {
                let v = dt::property(&blob, path, prop).map_err(|e| path_fail(e, "fdt_getprop"))?;
                ctx.env.set(var, &format!("{:x}", v.len()));
                Ok(())
            }
            [kind, var, path] if kind.starts_with('s') => {
                let names = children(&blob, path)?;
                ctx.env.set(var, &names.len().to_string());
                Ok(())
            }
            [kind, var, path, index] if kind.starts_with('n') => {
                let i = hex_arg(index)?;
                let names = children(&blob, path)?;
                let name = usize::try_from(i)
                    .ok()
                    .and_then(|i| names.get(i))
                    .ok_or_else(|| fail("libfdt node not found"))?;
                ctx.env.set(var, name);
                Ok(())
            }
            [kind, ..] if kind.starts_with('a') => Err(fail(
                "fdt get addr: not supported (kexboot edits a copy of the tree)",
            )),
            _ => Err(usage()),
        }
    }

    /// `fdt set <path> <prop> [<val>]...`: sets (or adds) the property, in U-Boot's value
    /// syntax ([`parse_value`]); no value makes it empty.
    fn fdt_set(&mut self, addr: u64, args: &[&str]) -> Res {
        let [path, prop, vals @ ..] = args else {
            return Err(usage());
        };
        let blob = self.fdt_blob(addr)?;
        let value = if vals.is_empty() {
            Vec::new()
        } else {
            let old = match dt::property(&blob, path, prop) {
                Ok(v) => v,
                Err(PathError::NoProperty) => Vec::new(),
                Err(e) => return Err(path_fail(e, "fdt_getprop")),
            };
            parse_value(vals, &old).map_err(fail)?
        };
        let out = dt::set_property(&blob, path, prop, &value);
        self.fdt_store(addr, blob.len(), out, "fdt_setprop")
    }
}

/// The names of the children of the node at `path`, in order.
fn children(blob: &[u8], path: &str) -> Result<Vec<String>, CmdError> {
    let mut names = Vec::new();
    dt::visit(blob, path, 1, &mut |v| {
        if let Visit::Node { name, depth: 1 } = v {
            names.push(String::from(name));
        }
        true
    })
    .map_err(|e| path_fail(e, "fdt_getprop"))?;
    Ok(names)
}

/// Whether `v` is one or more NUL-terminated strings of printable ASCII, none empty (U-Boot's
/// `is_printable_string`).
fn is_string_list(v: &[u8]) -> bool {
    v.last() == Some(&0)
        && v[..v.len() - 1]
            .split(|&b| b == 0)
            .all(|s| !s.is_empty() && s.iter().all(|c| (0x20..0x7f).contains(c)))
}

fn strings(v: &[u8]) -> impl Iterator<Item = &str> {
    v[..v.len().saturating_sub(1)]
        .split(|&b| b == 0)
        .map(|s| core::str::from_utf8(s).unwrap_or(""))
}

/// A property value as `fdt print` shows it: `"a", "b"` for strings, `<0x00000001 ...>` for
/// whole cells, `[01 02]` for other bytes, `* [0x<len>]` when longer than `max_dump` bytes.
pub fn format_value(v: &[u8], max_dump: usize) -> String {
    if v.is_empty() {
        return String::new();
    }
    if is_string_list(v) {
        let quoted: Vec<String> = strings(v).map(|s| format!("\"{s}\"")).collect();
        return quoted.join(", ");
    }
    if v.len() > max_dump {
        return format!("* [0x{:08x}]", v.len());
    }
    if v.len().is_multiple_of(4) {
        let cells: Vec<String> = v
            .chunks_exact(4)
            .map(|c| format!("0x{:08x}", u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        format!("<{}>", cells.join(" "))
    } else {
        let bytes: Vec<String> = v.iter().map(|b| format!("{b:02x}")).collect();
        format!("[{}]", bytes.join(" "))
    }
}

/// A property value as `fdt get value` puts it in a variable (U-Boot's `fdt_value_env_set`):
/// string `index` of a string list (default the first), `0x%08X` of a one-cell value or of
/// cell `index`, else every byte in hex. None when `index` is past the end or the value is too
/// long for a variable.
pub fn env_value(v: &[u8], index: Option<usize>) -> Option<String> {
    if v.len() > MAX_VALUE {
        return None;
    }
    let cell = |i: usize| {
        let c = v.get(i * 4..i * 4 + 4)?;
        Some(format!(
            "0x{:08X}",
            u32::from_be_bytes([c[0], c[1], c[2], c[3]])
        ))
    };
    if is_string_list(v) {
        return strings(v).nth(index.unwrap_or(0)).map(String::from);
    }
    match (v.len(), index) {
        (4, _) => cell(0),
        (n, Some(i)) if n.is_multiple_of(4) => cell(i),
        _ => Some(v.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

/// A C-style number, as U-Boot's `simple_strtoul(.., 0)`: `0x` hex, a leading `0` octal, else
/// decimal; it must fit a cell.
fn cell_number(tok: &str) -> Option<u32> {
    let (digits, radix) = if let Some(h) = tok.strip_prefix("0x").or(tok.strip_prefix("0X")) {
        (h, 16)
    } else if tok.len() > 1 && tok.starts_with('0') {
        (&tok[1..], 8)
    } else {
        (tok, 10)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// `fdt set`'s value arguments in U-Boot's syntax: `<0x1 2 010>` cells (C numbers; `?` keeps
/// the cell `old` has there), `[00 1f]` hex bytes, anything else one string per argument
/// (each NUL-terminated: a string list). The brackets may span arguments (`<1` `2>`). The
/// error is what to print.
pub fn parse_value(args: &[&str], old: &[u8]) -> Result<Vec<u8>, String> {
    let first = args.first().copied().unwrap_or("");
    let too_long = || format!("fdt set: value longer than {MAX_VALUE} bytes");
    let mut out = Vec::new();
    let (open, close) = match first.chars().next() {
        Some('<') => ('<', '>'),
        Some('[') => ('[', ']'),
        _ => {
            for a in args {
                if a.contains('\0') {
                    return Err("fdt set: a string cannot hold a NUL byte".into());
                }
                out.extend_from_slice(a.as_bytes());
                out.push(0);
                if out.len() > MAX_VALUE {
                    return Err(too_long());
                }
            }
            return Ok(out);
        }
    };
    let joined = args.join(" ");
    let body = &joined[open.len_utf8()..];
    let Some(end) = body.find(close) else {
        return Err(format!("Unexpected end of value: no closing '{close}'"));
    };
    if let Some(c) = body[end + 1..].chars().find(|c| !c.is_whitespace()) {
        return Err(format!("Unexpected character '{c}'"));
    }
    for (i, tok) in body[..end].split_whitespace().enumerate() {
        let bad = || format!("Sorry, I could not convert \"{tok}\"");
        if open == '<' {
            let cell = if tok == "?" {
                old.get(i * 4..i * 4 + 4)
                    .map_or([0; 4], |c| [c[0], c[1], c[2], c[3]])
            } else {
                cell_number(tok).ok_or_else(bad)?.to_be_bytes()
            };
            out.extend_from_slice(&cell);
        } else {
            let b = u8::from_str_radix(tok, 16).map_err(|_| bad())?;
            out.push(b);
        }
        if out.len() > MAX_VALUE {
            return Err(too_long());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_u_boot_reads_them() {
        assert_eq!(parse_value(&["bar"], &[]).unwrap(), b"bar\0");
        assert_eq!(parse_value(&["a", "b c"], &[]).unwrap(), b"a\0b c\0");
        assert_eq!(
            parse_value(&["<0x1", "2", "010>"], &[]).unwrap(),
            [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 8]
        );
        assert_eq!(parse_value(&["<>"], &[]).unwrap(), b"");
        assert_eq!(
            parse_value(&["<?", "5>"], &[0, 0, 0, 9]).unwrap(),
            [0, 0, 0, 9, 0, 0, 0, 5]
        );
        assert_eq!(
            parse_value(&["[00 1f", "ff]"], &[]).unwrap(),
            [0, 0x1f, 0xff]
        );
        for bad in [
            &["<1 2"][..],
            &["<0x>"],
            &["<1> x"],
            &["[100]"],
            &["[zz]"],
            &["<4294967296>"],
            &["<-1>"],
        ] {
            assert!(parse_value(bad, &[]).is_err(), "{bad:?}");
        }
        let huge = "1 ".repeat(MAX_VALUE);
        assert!(parse_value(&[&format!("<{huge}>")], &[]).is_err());
    }

    #[test]
    fn values_print_as_u_boot_prints_them() {
        assert_eq!(format_value(b"bar\0", 64), "\"bar\"");
        assert_eq!(format_value(b"a\0b\0", 64), "\"a\", \"b\"");
        assert_eq!(
            format_value(&[0, 0, 0, 1, 0, 0, 0, 2], 64),
            "<0x00000001 0x00000002>"
        );
        assert_eq!(format_value(&[1, 2, 3], 64), "[01 02 03]");
        assert_eq!(format_value(b"\0\0", 64), "[00 00]");
        assert_eq!(format_value(&[0; 100], 64), "* [0x00000064]");
        assert_eq!(env_value(&[0, 0, 0, 0x2a], None).unwrap(), "0x0000002A");
        assert_eq!(
            env_value(&[0, 0, 0, 1, 0, 0, 0, 2], Some(1)).unwrap(),
            "0x00000002"
        );
        assert_eq!(
            env_value(&[0, 0, 0, 1, 0, 0, 0, 2], None).unwrap(),
            "0000000100000002"
        );
        assert_eq!(env_value(b"a\0b\0", Some(1)).unwrap(), "b");
        assert_eq!(env_value(b"a\0b\0", Some(2)), None);
    }
}
