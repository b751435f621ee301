//! The device tree: what the firmware was given ([`DtInfo`]) and what the kernel gets ([`fixup`]).
//!
//! Reading uses the `fdt` crate, whose walkers panic or recurse without bound on malformed blobs.
//! So every blob first goes through [`check`], a bounded, checked walk over the whole structure
//! block (header offsets, tokens, names, property lengths, string offsets, nesting depth); only a
//! blob that passes reaches `fdt`. `FDT_NOP` tokens, which `fdt` mishandles, are dropped into a
//! normalised copy. Path lookups (stdout-path, aliases) are done here, one alias level deep,
//! never through `fdt`'s recursive alias fallback.
//!
//! Writing edits the checked tree in `dtoolkit`'s model ([`fixup`], [`set_psci`],
//! [`apply_overlay`]): every node, property and memory reservation passes through as it was
//! (`__symbols__`, `__fixups__`, `__local_fixups__`, phandles), only what kexboot changes is
//! changed.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::overlay::OverlayApplier;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::overlay::{NODE_FIXUPS, NODE_SYMBOLS};
use dtoolkit::{Node as _, Property as _};
use fdt::node::{CellSizes, FdtNode};
use fdt::Fdt;

use crate::mem::Range;
use crate::{Error, Result, MAX_DTB_SIZE};

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Size of a flattened device tree header (`struct fdt_header`, devicetree spec 5.2).
pub const FDT_HEADER_LEN: usize = 40;
/// Deepest nesting accepted (real trees stay below 10; `fdt` breaks at 64).
const MAX_DEPTH: usize = 32;

const OFF_TOTALSIZE: usize = 4;
const OFF_DT_STRUCT: usize = 8;
const OFF_DT_STRINGS: usize = 12;
const OFF_MEM_RSVMAP: usize = 16;
const OFF_VERSION: usize = 20;
const OFF_LAST_COMP: usize = 24;
const OFF_BOOT_CPUID: usize = 28;
const OFF_SIZE_STRINGS: usize = 32;
const OFF_SIZE_STRUCT: usize = 36;

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some((u64::from(be32(b, off)?) << 32) | u64::from(be32(b, off + 4)?))
}

fn bad(offset: usize, what: &'static str) -> Error {
    Error::BadDtb { offset, what }
}

/// A device tree header whose magic and `totalsize` were checked: the one place kexboot reads
/// an untrusted `struct fdt_header` (the firmware entry, the EL3 monitor, `booti` and [`check`]
/// all start here). It holds no reference, so a caller reading memory can copy the 40 header
/// bytes out, check them, and only then read the `totalsize` bytes it promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    raw: [u8; FDT_HEADER_LEN],
    total: usize,
}

impl Header {
    /// Checks the header at the start of `bytes` (at least [`FDT_HEADER_LEN`] of them): the
    /// magic, and a `totalsize` no smaller than the header and no larger than `max_total`.
    pub fn parse(bytes: &[u8], max_total: usize) -> Result<Header> {
        let raw: [u8; FDT_HEADER_LEN] = bytes
            .get(..FDT_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(bad(0, "shorter than the 40-byte header"))?;
        if be32(&raw, 0) != Some(FDT_MAGIC) {
            return Err(bad(0, "bad magic (expected d00dfeed)"));
        }
        let total = be32(&raw, OFF_TOTALSIZE).unwrap_or(0) as usize;
        if total > max_total || total < FDT_HEADER_LEN {
            return Err(bad(
                OFF_TOTALSIZE,
                "totalsize larger than the blob or below the header",
            ));
        }
        Ok(Header { raw, total })
    }

    /// The blob's `totalsize` in bytes (at least [`FDT_HEADER_LEN`]).
    pub fn total_size(&self) -> usize {
        self.total
    }

    /// The big-endian header word at byte offset `off` (one of the `OFF_*` fields).
    fn field(&self, off: usize) -> u32 {
        be32(&self.raw, off).unwrap_or(0)
    }
}

/// A blob that passed [`check`], cut to its `totalsize`, without NOPs.
struct Checked<'a> {
    bytes: Cow<'a, [u8]>,
    rsv: Vec<Range>,
    boot_cpuid: u32,
}

/// Validates the whole blob; returns it (or a NOP-free copy) and its memory reservations.
fn check(dtb: &[u8]) -> Result<Checked<'_>> {
    let (header, st, strings) = blocks(dtb)?;
    let total = header.total_size();
    let blob = &dtb[..total];

    // Memory reservation block: (u64 address, u64 size) pairs up to a (0, 0) entry.
    let mut rsv = Vec::new();
    let mut off = header.field(OFF_MEM_RSVMAP) as usize;
    loop {
        let (Some(addr), Some(size)) = (be64(blob, off), be64(blob, off + 8)) else {
            return Err(bad(off, "memory reservation block not terminated"));
        };
        if addr == 0 && size == 0 {
            break;
        }
        if size != 0 {
            rsv.push(Range::from_len(addr, size).map_err(|_| bad(off, "memreserve overflows"))?);
        }
        off += 16; // the loop ends once `off` passes `total`
    }

    let mut has_nop = false;
    walk(blob, st.clone(), strings.clone(), &mut |_, _, t| {
        has_nop |= matches!(t, Token::Nop);
        Ok(())
    })?;
    let bytes = if has_nop {
        let mut s = Vec::with_capacity(st.len());
        walk(blob, st.clone(), strings, &mut |pos, next, t| {
            if !matches!(t, Token::Nop) {
                s.extend_from_slice(&blob[pos..next]);
            }
            Ok(())
        })?;
        let mut copy = blob.to_vec();
        // Dropping NOPs only shrinks the block: `s` fits where the old block was.
        copy[st.start..st.start + s.len()].copy_from_slice(&s);
        copy[OFF_SIZE_STRUCT..OFF_SIZE_STRUCT + 4].copy_from_slice(&(s.len() as u32).to_be_bytes());
        Cow::Owned(copy)
    } else {
        Cow::Borrowed(blob)
    };
    Ok(Checked {
        bytes,
        rsv,
        boot_cpuid: header.field(OFF_BOOT_CPUID),
    })
}

fn cstr_at(b: &[u8], off: usize) -> Option<&str> {
    let rest = b.get(off..)?;
    let nul = rest.iter().position(|&c| c == 0)?;
    core::str::from_utf8(&rest[..nul]).ok()
}

/// One token of the structure block, as [`walk`] hands it to its visitor.
#[derive(Debug, Clone)]
pub(crate) enum Token<'a> {
    /// `FDT_BEGIN_NODE` with the node's name (empty for the root).
    Begin(&'a str),
    /// `FDT_END_NODE`.
    End,
    /// `FDT_PROP`: the property's name and where its value is (offsets in the blob).
    Prop(&'a str, core::ops::Range<usize>),
    Nop,
    /// `FDT_END`, the last token.
    Finish,
}

/// The checked header of `dtb` and where its structure and strings blocks are (offsets in the
/// blob): version 17 (compatible with 16), both blocks inside `totalsize`, not overlapping.
pub(crate) fn blocks(
    dtb: &[u8],
) -> Result<(Header, core::ops::Range<usize>, core::ops::Range<usize>)> {
    let header = Header::parse(dtb, dtb.len())?;
    let h = |off| header.field(off);
    let total = header.total_size();
    if h(OFF_VERSION) < 17 || h(OFF_LAST_COMP) > 17 {
        return Err(bad(
            OFF_VERSION,
            "unsupported version (need 17, compatible with 16)",
        ));
    }
    let block = |off_field, size_field| -> Result<core::ops::Range<usize>> {
        let off = h(off_field) as usize;
        let end = off
            .checked_add(h(size_field) as usize)
            .filter(|&e| e <= total);
        end.map(|e| off..e)
            .ok_or(bad(off_field, "block extends past totalsize"))
    };
    let st = block(OFF_DT_STRUCT, OFF_SIZE_STRUCT)?;
    let strings = block(OFF_DT_STRINGS, OFF_SIZE_STRINGS)?;
    // Dropping NOPs rewrites the structure block in place: a strings block sharing its bytes
    // would change after it was checked (and the `fdt` crate then panics on a name).
    if st.start < strings.end && strings.start < st.end {
        return Err(bad(
            OFF_DT_STRINGS,
            "strings block overlaps the structure block",
        ));
    }
    Ok((header, st, strings))
}

/// One bounded pass over the structure block `st` of `blob` (names looked up in `strings`, a
/// range of `blob`): every token goes to `visit` with its offset and the next token's (both in
/// `blob`), in order. Checks nesting (at most [`MAX_DEPTH`], one root, properties before
/// children), names, property bounds and the terminating `FDT_END`; returns the offset just
/// past `FDT_END`.
pub(crate) fn walk<'a>(
    blob: &'a [u8],
    st: core::ops::Range<usize>,
    strings: core::ops::Range<usize>,
    visit: &mut dyn FnMut(usize, usize, Token<'a>) -> Result<()>,
) -> Result<usize> {
    let s = blob
        .get(st.clone())
        .ok_or(bad(st.start, "structure block past the blob"))?;
    let strings = blob
        .get(strings)
        .ok_or(bad(0, "strings block past the blob"))?;
    let at = |pos: usize| st.start + pos;
    let (mut pos, mut depth, mut root_done, mut props_closed) = (0, 0, false, false);
    loop {
        let tok = be32(s, pos).ok_or(bad(at(pos), "structure block ends without FDT_END"))?;
        let (next, token) = match tok {
            FDT_BEGIN_NODE => {
                if root_done {
                    return Err(bad(at(pos), "second root node"));
                }
                let name = cstr_at(s, pos + 4).ok_or(bad(
                    at(pos + 4),
                    "node name not a NUL-terminated UTF-8 string",
                ))?;
                if depth == 0 && !name.is_empty() {
                    return Err(bad(at(pos + 4), "root node has a name"));
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(bad(at(pos), "nodes nested too deeply"));
                }
                props_closed = false;
                ((pos + 4 + name.len() + 1 + 3) & !3, Token::Begin(name))
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(bad(at(pos), "FDT_END_NODE without a node"));
                }
                depth -= 1;
                root_done = depth == 0;
                props_closed = true;
                (pos + 4, Token::End)
            }
            FDT_PROP => {
                if depth == 0 || props_closed {
                    return Err(bad(
                        at(pos),
                        "property outside a node or after a child node",
                    ));
                }
                let (Some(len), Some(nameoff)) = (be32(s, pos + 4), be32(s, pos + 8)) else {
                    return Err(bad(at(pos), "truncated property"));
                };
                let len = len as usize;
                let end = (pos + 12).checked_add(len).filter(|&e| e <= s.len());
                let end = end.ok_or(bad(at(pos + 4), "property value past the structure block"))?;
                let name = cstr_at(strings, nameoff as usize).ok_or(bad(
                    at(pos + 8),
                    "property name offset not a UTF-8 string in the strings block",
                ))?;
                if (name == "#address-cells" || name == "#size-cells") && len != 4 {
                    return Err(bad(
                        at(pos + 4),
                        "#address-cells/#size-cells is not one cell",
                    ));
                }
                ((end + 3) & !3, Token::Prop(name, at(pos + 12)..at(end)))
            }
            FDT_NOP => (pos + 4, Token::Nop),
            FDT_END => {
                if !root_done {
                    return Err(bad(at(pos), "FDT_END before the root node closed"));
                }
                visit(at(pos), at(pos + 4), Token::Finish)?;
                return Ok(at(pos + 4));
            }
            _ => return Err(bad(at(pos), "unknown structure token")),
        };
        if next > s.len() {
            return Err(bad(at(pos), "token past the block"));
        }
        visit(at(pos), at(next), token)?;
        pos = next; // strictly increasing, so the loop ends within the block
    }
}

/// A `cpu` node under `/cpus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    /// The `reg` value (MPIDR affinity bits).
    pub reg: u64,
    /// `enable-method`, e.g. "psci" or "spin-table".
    pub enable_method: Option<String>,
    /// `cpu-release-addr` for spin-table CPUs.
    pub release_addr: Option<u64>,
}

/// What kexboot needs to know from the device tree it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DtInfo {
    /// `reg` of every memory node (`device_type = "memory"`, or named `memory` without one).
    pub memory: Vec<Range>,
    /// Every `/memreserve/` entry and every `/reserved-memory` child with a fixed `reg`.
    pub reserved: Vec<Range>,
    /// The `/reserved-memory` children marked `no-map`: firmware-owned, never mapped (not even
    /// cacheable, where a speculative fill could fault), also listed in `reserved`.
    pub no_map: Vec<Range>,
    /// kexboot's own handoff page from an earlier boot (`compatible = "kexboot,handoff"`).
    pub handoff: Option<Handoff>,
    /// A `/reserved-memory` child compatible with "ramoops" (a pstore region).
    pub ramoops: Option<Range>,
    /// `/chosen/stdout-path` resolved: first `compatible` string and `reg` base.
    pub stdout: Option<(String, u64)>,
    /// `reg` of every node compatible with "virtio,mmio", in tree order.
    pub virtio_mmio: Vec<Range>,
    /// Every enabled device node with a `reg`, at its CPU address (`ranges` applied).
    pub devices: Vec<Device>,
    /// The root node's `compatible` strings: the board, most specific first.
    pub compatible: Vec<String>,
    /// `/psci` `method`: "hvc" or "smc".
    pub psci_method: Option<String>,
    /// Number of cpu nodes under `/cpus`.
    pub cpus: usize,
    /// The cpu nodes themselves.
    pub cpu_nodes: Vec<CpuInfo>,
    /// `/chosen/bootargs`.
    pub bootargs: Option<String>,
    /// `/chosen/linux,initrd-start` .. `linux,initrd-end`, when both are present and ordered.
    pub initrd: Option<Range>,
    /// `/chosen/kaslr-seed` is present.
    pub has_kaslr_seed: bool,
    /// `/chosen/rng-seed` is present.
    pub has_rng_seed: bool,
    /// The blob's `totalsize`.
    pub total_size: usize,
}

fn base_name(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

fn prop_str<'a>(n: FdtNode<'_, 'a>, name: &str) -> Option<&'a str> {
    let v = n.property(name)?.value;
    let v = v.split(|&b| b == 0).next().unwrap_or(v);
    core::str::from_utf8(v).ok()
}

/// A 1- or 2-cell big-endian number (4 or 8 bytes).
fn prop_num(n: FdtNode<'_, '_>, name: &str) -> Option<u64> {
    let v = n.property(name)?.value;
    match v.len() {
        4 => be32(v, 0).map(u64::from),
        8 => be64(v, 0),
        _ => None,
    }
}

/// Decodes `reg` of `n` with its parent's cell sizes.
fn reg(n: FdtNode<'_, '_>, cells: CellSizes) -> Result<Vec<Range>> {
    let err = |what| Error::BadReg {
        node: n.name.to_string(),
        what,
    };
    let Some(p) = n.property("reg") else {
        return Ok(Vec::new());
    };
    let (ac, sc) = (cells.address_cells, cells.size_cells);
    if !(1..=2).contains(&ac) || sc > 2 {
        return Err(err("#address-cells/#size-cells beyond 64 bits"));
    }
    let stride = (ac + sc) * 4;
    if p.value.len() % stride != 0 {
        return Err(err("reg length not a multiple of its cells"));
    }
    let num = |b: &[u8], cells: usize| match cells {
        0 => Some(0),
        1 => be32(b, 0).map(u64::from),
        _ => be64(b, 0),
    };
    let mut out = Vec::new();
    for e in p.value.chunks_exact(stride) {
        let (Some(a), Some(s)) = (num(e, ac), num(&e[ac * 4..], sc)) else {
            continue;
        };
        out.push(Range::from_len(a, s).map_err(|_| err("reg entry overflows"))?);
    }
    Ok(out)
}

fn parent_cells(n: FdtNode<'_, '_>) -> CellSizes {
    n.cell_sizes()
}

/// One `ranges` entry: `child..child+len` on a bus is `parent..` on the bus above.
#[derive(Clone, Copy, Debug)]
struct Window {
    child: u64,
    parent: u64,
    len: u64,
}

/// Decodes the `ranges` of bus node `n` (child cells: `n`'s; parent cells: `parent`'s): None
/// (the identity) for an empty `ranges`, and for none at all on a bus whose children have a
/// size (lenient: trees omit it on simple buses, and a console beats none); no windows when
/// the children's `reg` has no size (an I2C or SPI bus: bus addresses, not memory).
fn windows(n: FdtNode<'_, '_>, parent: CellSizes) -> Option<Vec<Window>> {
    let Some(p) = n.property("ranges") else {
        return (n.cell_sizes().size_cells == 0).then(Vec::new);
    };
    let v = p.value;
    if v.is_empty() {
        return None;
    }
    let own = n.cell_sizes();
    let (ca, pa, cs) = (own.address_cells, parent.address_cells, own.size_cells);
    if !(1..=2).contains(&ca) || !(1..=2).contains(&pa) || !(1..=2).contains(&cs) {
        return Some(Vec::new()); // beyond 64 bits: nothing translates
    }
    let num = |b: &[u8], cells: usize| match cells {
        1 => be32(b, 0).map(u64::from),
        _ => be64(b, 0),
    };
    let stride = (ca + pa + cs) * 4;
    Some(
        v.chunks_exact(stride)
            .filter_map(|e| {
                Some(Window {
                    child: num(e, ca)?,
                    parent: num(&e[ca * 4..], pa)?,
                    len: num(&e[(ca + pa) * 4..], cs)?,
                })
            })
            .collect(),
    )
}

/// The address windows of the buses above a node, outermost first (None: the identity).
type Buses = Vec<Option<Vec<Window>>>;

/// `addr` on the innermost bus of `buses` (outermost first) as the CPU sees it; None when a
/// bus's `ranges` do not cover it.
fn translate(addr: u64, buses: &[Option<Vec<Window>>]) -> Option<u64> {
    buses.iter().rev().try_fold(addr, |a, bus| match bus {
        None => Some(a),
        Some(ws) => ws.iter().find_map(|w| {
            let off = a.checked_sub(w.child)?;
            (off < w.len).then(|| w.parent.checked_add(off))?
        }),
    })
}

/// Finds `path` (absolute, or starting with an alias), returning the node, its parent's cells
/// and the address windows of the buses above it (outermost first).
fn resolve<'b, 'a>(
    root: FdtNode<'b, 'a>,
    path: &str,
) -> Option<(FdtNode<'b, 'a>, CellSizes, Buses)> {
    let owned;
    let path = if path.starts_with('/') {
        path
    } else {
        let (alias, rest) = path.split_once('/').unwrap_or((path, ""));
        let aliases = root.children().find(|c| c.name == "aliases")?;
        let target = prop_str(aliases, alias)?;
        if !target.starts_with('/') {
            return None; // one alias level only
        }
        owned = if rest.is_empty() {
            target.to_string()
        } else {
            alloc::format!("{target}/{rest}")
        };
        &owned
    };
    let mut node = root;
    let mut cells = CellSizes {
        address_cells: 2,
        size_cells: 1,
    };
    let mut buses = Vec::new();
    let mut at_root = true;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let exact = part.contains('@');
        let child = node.children().find(|c| {
            if exact {
                c.name == part
            } else {
                base_name(c.name) == part
            }
        })?;
        // The root's children are addressed as the CPU sees them; below, each bus translates.
        if !at_root {
            buses.push(windows(node, cells));
        }
        at_root = false;
        cells = parent_cells(node);
        node = child;
    }
    Some((node, cells, buses))
}

fn root_of<'b, 'a>(fdt: &'b Fdt<'a>) -> Result<FdtNode<'b, 'a>> {
    // `check` guarantees the first node is the unnamed root, so this lookup cannot fail or recurse.
    fdt.find_node("/").ok_or(bad(0, "no root node"))
}

fn open<'c>(c: &'c Checked<'_>) -> Result<Fdt<'c>> {
    Fdt::new(&c.bytes).map_err(|_| bad(0, "rejected by the fdt reader"))
}

impl DtInfo {
    /// Reads what kexboot needs from the blob `dtb`. A tree without memory is an error.
    pub fn parse(dtb: &[u8]) -> Result<DtInfo> {
        let info = Self::read(dtb)?;
        if info.memory.is_empty() {
            return Err(Error::NoMemoryNode);
        }
        Ok(info)
    }

    /// The RAM kexboot maps, reads and writes: every memory range less the `no-map` reserved
    /// regions (firmware-owned: even a read, or a speculative fill of a cacheable mapping, may
    /// fault or be seen), except kexboot's own handoff page, which is kexboot's to write.
    /// Nothing outside these ranges may be dereferenced.
    pub fn mapped_ram(&self) -> Vec<Range> {
        let own = self.handoff.map(|h| h.region);
        let no_map: Vec<Range> = self
            .no_map
            .iter()
            .copied()
            .filter(|r| Some(*r) != own)
            .collect();
        crate::mem::free_regions(&self.memory, &no_map)
    }

    /// Like [`DtInfo::parse`], but a tree without memory is returned as it is: the firmware
    /// finds its console this way and can say what is wrong with the tree.
    pub fn read(dtb: &[u8]) -> Result<DtInfo> {
        let c = check(dtb)?;
        let fdt = open(&c)?;
        let root = root_of(&fdt)?;
        let root_cells = root.cell_sizes();
        let mut info = DtInfo {
            reserved: c.rsv.clone(),
            total_size: fdt.total_size(),
            ..DtInfo::default()
        };

        info.compatible = root
            .compatible()
            .map(|c| c.all().take(MAX_COMPATIBLE).map(String::from).collect())
            .unwrap_or_default();
        // Linux (libfdt's path lookup, `of_find_node_by_path`) uses the first `/chosen` of a
        // tree that has several, and so does `fixup`: the others are ignored here too.
        let mut seen_chosen = false;
        for n in root.children() {
            let base = base_name(n.name);
            let dev_type = prop_str(n, "device_type");
            let is_memory = dev_type == Some("memory") || (dev_type.is_none() && base == "memory");
            if is_memory && prop_str(n, "status").is_none_or(|s| s == "okay" || s == "ok") {
                info.memory
                    .extend(reg(n, root_cells)?.into_iter().filter(|r| !r.is_empty()));
            }
            match base {
                "reserved-memory" => {
                    let cells = n.cell_sizes();
                    for child in n.children() {
                        let regs: Vec<Range> = reg(child, cells)?
                            .into_iter()
                            .filter(|r| !r.is_empty())
                            .collect();
                        if child.property("no-map").is_some() {
                            info.no_map.extend(regs.iter().copied());
                        }
                        let compatible = prop_str(child, "compatible");
                        if compatible == Some(HANDOFF_COMPATIBLE) {
                            info.handoff = regs.first().map(|r| Handoff {
                                region: *r,
                                boot_id: prop_num(child, HANDOFF_BOOT_ID),
                            });
                        } else if compatible == Some("ramoops") {
                            info.ramoops = regs.first().copied();
                        }
                        info.reserved.extend(regs);
                    }
                }
                "psci" => info.psci_method = prop_str(n, "method").map(String::from),
                "cpus" => {
                    let cells = n.cell_sizes();
                    for cpu in n.children() {
                        let is_cpu = prop_str(cpu, "device_type")
                            .map_or(base_name(cpu.name) == "cpu", |t| t == "cpu");
                        if !is_cpu {
                            continue;
                        }
                        let id = cpu.property("reg").map(|p| p.value).unwrap_or(&[]);
                        let reg = match (cells.address_cells, id.len()) {
                            (1, 4..) => be32(id, 0).map(u64::from),
                            (2, 8..) => be64(id, 0),
                            _ => None,
                        };
                        info.cpu_nodes.push(CpuInfo {
                            reg: reg.unwrap_or(0),
                            enable_method: prop_str(cpu, "enable-method").map(String::from),
                            release_addr: prop_num(cpu, "cpu-release-addr"),
                        });
                    }
                    info.cpus = info.cpu_nodes.len();
                }
                "chosen" if n.name == "chosen" && !seen_chosen => {
                    seen_chosen = true;
                    info.bootargs = prop_str(n, "bootargs").map(String::from);
                    info.has_kaslr_seed = n.property("kaslr-seed").is_some();
                    info.has_rng_seed = n.property("rng-seed").is_some();
                    let (s, e) = (
                        prop_num(n, "linux,initrd-start"),
                        prop_num(n, "linux,initrd-end"),
                    );
                    info.initrd = s.zip(e).and_then(|(s, e)| Range::new(s, e).ok());
                    let path =
                        prop_str(n, "stdout-path").or_else(|| prop_str(n, "linux,stdout-path"));
                    if let Some(path) = path {
                        let path = path.split(':').next().unwrap_or(path);
                        if let Some((node, cells, buses)) = resolve(root, path) {
                            let compat =
                                node.compatible().and_then(|c| c.all().next()).unwrap_or("");
                            let base = reg(node, cells)
                                .ok()
                                .and_then(|r| r.first().map(|r| r.start()))
                                .and_then(|b| translate(b, &buses));
                            info.stdout = base.map(|b| (compat.to_string(), b));
                        }
                    }
                }
                _ => {}
            }
        }
        collect_virtio(root, root_cells, &mut info.virtio_mmio, 0)?;
        collect_devices(root, root_cells, &mut Vec::new(), &mut info.devices);
        Ok(info)
    }

    /// The first enabled device compatible with `compatible`.
    pub fn device(&self, compatible: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.compatible == compatible)
    }
}

/// A device node: its first `compatible` and its first `reg`, as the CPU addresses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub compatible: String,
    pub reg: Range,
}

/// Most root `compatible` strings kept.
const MAX_COMPATIBLE: usize = 16;

/// Most device nodes kept (a hostile tree cannot make the list grow without end).
const MAX_DEVICES: usize = 512;

/// Every enabled node with a `compatible` and a `reg`, its address translated through the
/// `ranges` of the buses above it (a Raspberry Pi's `/soc` maps bus 0x7e000000 to 0x3f000000).
fn collect_devices<'b, 'a>(
    n: FdtNode<'b, 'a>,
    my_cells: CellSizes,
    buses: &mut Buses,
    out: &mut Vec<Device>,
) {
    if buses.len() > MAX_DEPTH {
        return;
    }
    for child in n.children() {
        if out.len() >= MAX_DEVICES {
            return;
        }
        let okay = prop_str(child, "status").is_none_or(|s| s == "okay" || s == "ok");
        if !okay {
            continue;
        }
        let compat = child.compatible().and_then(|c| c.all().next());
        let first = reg(child, my_cells).ok().and_then(|r| r.first().copied());
        if let (Some(c), Some(r)) = (compat, first) {
            if let Some(start) = translate(r.start(), buses) {
                if let Ok(reg) = Range::from_len(start, r.len()) {
                    out.push(Device {
                        compatible: c.to_string(),
                        reg,
                    });
                }
            }
        }
        buses.push(windows(child, my_cells));
        collect_devices(child, child.cell_sizes(), buses, out);
        buses.pop();
    }
}

fn collect_virtio(
    n: FdtNode<'_, '_>,
    my_cells: CellSizes,
    out: &mut Vec<Range>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for child in n.children() {
        if child
            .compatible()
            .is_some_and(|c| c.all().any(|s| s == "virtio,mmio"))
        {
            out.extend(reg(child, my_cells)?.first());
        }
        collect_virtio(child, child.cell_sizes(), out, depth + 1)?;
    }
    Ok(())
}

/// `compatible` of the `/reserved-memory` node kexboot adds for its handoff page.
pub const HANDOFF_COMPATIBLE: &str = "kexboot,handoff";
/// Property of that node holding the boot id the page's record must carry.
pub const HANDOFF_BOOT_ID: &str = "kexboot,boot-id";

/// kexboot's handoff page as a device tree describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub region: Range,
    /// `kexboot,boot-id`, if the node has it.
    pub boot_id: Option<u64>,
}

/// Changes [`fixup`] makes to the tree.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fixups<'a> {
    /// Sets or replaces `/chosen/bootargs` (left as found when `None`).
    pub bootargs: Option<&'a str>,
    /// Sets `/chosen/linux,initrd-start`/`-end` (u64); `None` removes them.
    pub initrd: Option<Range>,
    /// Sets `/chosen/kaslr-seed` (u64) when given.
    pub kaslr_seed: Option<u64>,
    /// Sets `/chosen/rng-seed` when given.
    pub rng_seed: Option<&'a [u8]>,
    /// Added as `/memreserve/` entries.
    pub extra_reserved: &'a [Range],
    /// Children written under `/reserved-memory` (created, with 2 address and 2 size cells and
    /// `ranges`, when absent); an existing child of the same name is replaced.
    pub reserved_nodes: &'a [ReservedNode<'a>],
    /// Properties set (added or replaced) on the `/cpus` children whose `reg` matches.
    pub cpu_props: &'a [CpuProps<'a>],
}

/// `compatible` of the `/psci` node [`set_psci`] writes.
pub const PSCI_COMPATIBLE: &[u8] = b"arm,psci-1.0\0arm,psci-0.2\0";

/// Properties for the cpu node with this `reg` (its MPIDR affinity), as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuProps<'a> {
    pub reg: u64,
    pub props: Vec<(&'a str, Vec<u8>)>,
}

/// A `/reserved-memory` child: `name` (e.g. `ramoops@7ff00000`), its `reg`, and further
/// properties as raw big-endian bytes (see [`ReservedNode::u32_prop`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedNode<'a> {
    pub name: &'a str,
    pub reg: Range,
    pub props: Vec<(&'a str, Vec<u8>)>,
}

impl<'a> ReservedNode<'a> {
    pub fn new(name: &'a str, reg: Range) -> Self {
        Self {
            name,
            reg,
            props: Vec::new(),
        }
    }

    pub fn string_prop(mut self, name: &'a str, value: &str) -> Self {
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        self.props.push((name, v));
        self
    }

    pub fn u32_prop(mut self, name: &'a str, value: u32) -> Self {
        self.props.push((name, value.to_be_bytes().to_vec()));
        self
    }

    pub fn u64_prop(mut self, name: &'a str, value: u64) -> Self {
        self.props.push((name, value.to_be_bytes().to_vec()));
        self
    }

    pub fn flag(mut self, name: &'a str) -> Self {
        self.props.push((name, Vec::new()));
        self
    }
}

/// `/chosen` properties only a kdump kernel may see, which [`fixup`] always removes.
pub const KDUMP_CHOSEN: [&str; 2] = ["linux,usable-memory-range", "linux,elfcorehdr"];

/// Cells `reg` uses under a node without `#address-cells`/`#size-cells` (devicetree spec 2.3.5).
const DEFAULT_ADDRESS_CELLS: u32 = 2;
const DEFAULT_SIZE_CELLS: u32 = 1;

fn write_err(at: impl Into<String>, why: &'static str) -> Error {
    Error::DtWrite { at: at.into(), why }
}

/// A checked blob as an editable tree (`dtoolkit`'s model), its `/memreserve/` entries kept.
struct Tree {
    tree: DeviceTree,
    boot_cpuid: u32,
}

/// Copies `n` and its subtree into the model. Names and values go in unchanged (the model's
/// name rules would refuse real trees: Linux's own DTBs carry property names above 31
/// characters). A second sibling of the same name is dropped: the model keys children by name,
/// and Linux and libfdt's path lookup use the first, as [`DtInfo`] does. `check` bounded the
/// depth, so the recursion is bounded.
fn model_node(n: FdtNode<'_, '_>, name: &str) -> DeviceTreeNode {
    let mut out = DeviceTreeNode::new_unchecked(name);
    for p in n.properties() {
        if out.property(p.name).is_none() {
            out.add_property(DeviceTreeProperty::new_unchecked(p.name, p.value.to_vec()));
        }
    }
    for c in n.children() {
        // `child_mut` looks the exact name up; `child` would take `foo` for `foo@1`.
        if out.child_mut(c.name).is_none() {
            out.add_child(model_node(c, c.name));
        }
    }
    out
}

impl Tree {
    /// Checks `dtb` completely, then reads it into the model.
    fn load(dtb: &[u8]) -> Result<Tree> {
        let c = check(dtb)?;
        let fdt = open(&c)?;
        let mut tree = DeviceTree::new();
        tree.root = model_node(root_of(&fdt)?, "");
        tree.memory_reservations = c
            .rsv
            .iter()
            .map(|r| MemoryReservation::new(r.start(), r.len()))
            .collect();
        Ok(Tree {
            tree,
            boot_cpuid: c.boot_cpuid,
        })
    }

    /// Serialises the tree (version 17), keeping the blob's `boot_cpuid_phys`. Refuses an
    /// output above the 2 MiB the boot protocol allows.
    fn store(&self) -> Result<Vec<u8>> {
        let mut out = self.tree.to_dtb();
        if out.len() as u64 > MAX_DTB_SIZE {
            return Err(Error::DtbTooLarge {
                size: out.len() as u64,
            });
        }
        // The model writes a zero `boot_cpuid_phys`; the header is at least 40 bytes.
        if let Some(field) = out.get_mut(OFF_BOOT_CPUID..OFF_BOOT_CPUID + 4) {
            field.copy_from_slice(&self.boot_cpuid.to_be_bytes());
        }
        Ok(out)
    }
}

fn set(node: &mut DeviceTreeNode, name: &str, value: Vec<u8>) {
    node.add_property(DeviceTreeProperty::new_unchecked(name, value));
}

fn cells(node: &DeviceTreeNode, name: &str, default: u32) -> usize {
    node.property(name)
        .and_then(|p| be32(p.value(), 0))
        .unwrap_or(default) as usize
}

/// The `/chosen` changes of `f`.
fn fix_chosen(root: &mut DeviceTreeNode, f: &Fixups<'_>) -> Result<()> {
    if f.bootargs.is_some_and(|b| b.contains('\0')) {
        return Err(write_err("/chosen/bootargs", "contains a NUL byte"));
    }
    let chosen = root.add_child_mut(DeviceTreeNode::new_unchecked("chosen"));
    if let Some(b) = f.bootargs {
        let mut bytes = b.as_bytes().to_vec();
        bytes.push(0);
        set(chosen, "bootargs", bytes);
    }
    match f.initrd {
        Some(r) => {
            set(
                chosen,
                "linux,initrd-start",
                r.start().to_be_bytes().to_vec(),
            );
            set(chosen, "linux,initrd-end", r.end().to_be_bytes().to_vec());
        }
        None => {
            chosen.remove_property("linux,initrd-start");
            chosen.remove_property("linux,initrd-end");
        }
    }
    // A tree from Linux's crash path (`kexec -p`) tells a dump kernel where the crashed one's
    // memory is; no kernel kexboot boots is one: it would run confined to the crash region.
    for kdump_only in KDUMP_CHOSEN {
        chosen.remove_property(kdump_only);
    }
    if let Some(s) = f.kaslr_seed {
        set(chosen, "kaslr-seed", s.to_be_bytes().to_vec());
    }
    if let Some(s) = f.rng_seed {
        set(chosen, "rng-seed", s.to_vec());
    }
    Ok(())
}

/// `reg` bytes for `r` with the given cell counts (1 or 2 each).
fn encode_reg(r: &Range, address_cells: usize, size_cells: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    for (value, cells) in [(r.start(), address_cells), (r.len(), size_cells)] {
        match cells {
            1 => v.extend(u32::try_from(value).ok()?.to_be_bytes()),
            2 => v.extend(value.to_be_bytes()),
            _ => return None,
        }
    }
    Some(v)
}

/// Writes `f.reserved_nodes` under `/reserved-memory` (created with 2/2 cells and `ranges`
/// when absent), each replacing a child of its name.
fn fix_reserved(root: &mut DeviceTreeNode, f: &Fixups<'_>) -> Result<()> {
    if f.reserved_nodes.is_empty() {
        return Ok(());
    }
    let rm = if let Some(rm) = root.child_mut("reserved-memory") {
        rm
    } else {
        let mut rm = DeviceTreeNode::new_unchecked("reserved-memory");
        set(&mut rm, "#address-cells", 2u32.to_be_bytes().to_vec());
        set(&mut rm, "#size-cells", 2u32.to_be_bytes().to_vec());
        set(&mut rm, "ranges", Vec::new());
        root.add_child_mut(rm)
    };
    let ac = cells(rm, "#address-cells", DEFAULT_ADDRESS_CELLS);
    let sc = cells(rm, "#size-cells", DEFAULT_SIZE_CELLS);
    for rn in f.reserved_nodes {
        let at = || alloc::format!("/reserved-memory/{}", rn.name);
        if rn.name.is_empty() || rn.name.contains(['/', '\0']) {
            return Err(write_err(at(), "not a node name"));
        }
        let reg = encode_reg(&rn.reg, ac, sc).ok_or_else(|| {
            write_err(
                at(),
                "reg does not fit the node's #address-cells/#size-cells",
            )
        })?;
        let mut node = DeviceTreeNode::new_unchecked(rn.name);
        set(&mut node, "reg", reg);
        for (name, value) in &rn.props {
            if name.is_empty() || name.contains('\0') {
                return Err(write_err(at(), "property name empty or with a NUL byte"));
            }
            set(&mut node, name, value.clone());
        }
        rm.remove_child(rn.name);
        rm.add_child(node);
    }
    Ok(())
}

/// Sets `f.cpu_props` on the `/cpus` children whose `reg` (one or two cells) matches.
fn fix_cpus(root: &mut DeviceTreeNode, f: &Fixups<'_>) -> Result<()> {
    let Some(cpus) = root.child_mut("cpus") else {
        return Ok(());
    };
    for cpu in cpus.children_mut() {
        let reg = cpu.property("reg").and_then(|p| match p.value().len() {
            4 => be32(p.value(), 0).map(u64::from),
            8 => be64(p.value(), 0),
            _ => None,
        });
        let Some(c) = reg.and_then(|reg| f.cpu_props.iter().find(|c| c.reg == reg)) else {
            continue;
        };
        for (name, value) in &c.props {
            if name.is_empty() || name.contains('\0') {
                return Err(write_err("/cpus", "property name empty or with a NUL byte"));
            }
            set(cpu, name, value.clone());
        }
    }
    Ok(())
}

/// Edits `dtb` with the changes in `f` and nothing else: every other node and property
/// (`__symbols__`, `__fixups__`, `__local_fixups__`, phandles included) and every
/// `/memreserve/` entry pass through unchanged, `f.extra_reserved` is added (an entry equal to
/// one already there is not repeated), `/chosen` is created if absent, the kdump-only
/// [`KDUMP_CHOSEN`] properties are dropped. Refuses an output above 2 MiB.
pub fn fixup(dtb: &[u8], f: &Fixups<'_>) -> Result<Vec<u8>> {
    let mut t = Tree::load(dtb)?;
    fix_chosen(&mut t.tree.root, f)?;
    fix_reserved(&mut t.tree.root, f)?;
    fix_cpus(&mut t.tree.root, f)?;
    for r in f.extra_reserved.iter().filter(|r| !r.is_empty()) {
        let entry = MemoryReservation::new(r.start(), r.len());
        if !t.tree.memory_reservations.contains(&entry) {
            t.tree.memory_reservations.push(entry);
        }
    }
    t.store()
}

/// Whether a root child is a memory node (`device_type = "memory"`, or named `memory`).
fn is_memory_node(n: &DeviceTreeNode) -> bool {
    n.property("device_type")
        .is_some_and(|p| p.value().split(|&b| b == 0).next() == Some(b"memory"))
        || base_name(n.name()) == "memory"
}

/// `into` (a tree named in place of the firmware's) with the memory the firmware's tree
/// `from` describes, as U-Boot does for a tree an entry names (`fdt_fixup_memory_banks`): the
/// firmware's RAM replaces the named tree's `/memory` nodes (a tree from a file says what a board
/// of its kind may have, the firmware what this one has: a Pi 3's file says 1 GiB, its
/// firmware 960 MiB, the rest being the VideoCore's), every `/memreserve/` entry of `from` that
/// `into` lacks, and every `/reserved-memory` child of `from` whose name `into` lacks
/// (`/reserved-memory` is created with `from`'s cells and `ranges` when `into` has none). Both
/// trees are checked first.
pub fn keep_firmware_memory(from: &[u8], into: &[u8]) -> Result<Vec<u8>> {
    let f = Tree::load(from)?;
    let mut t = Tree::load(into)?;
    // The firmware's RAM, re-encoded in the named tree's cells (one node, as U-Boot writes).
    let ram = DtInfo::read(from)?.memory;
    if let Some(first) = ram.first() {
        let ac = cells(&t.tree.root, "#address-cells", DEFAULT_ADDRESS_CELLS);
        let sc = cells(&t.tree.root, "#size-cells", DEFAULT_SIZE_CELLS);
        let mut reg = Vec::new();
        for r in &ram {
            reg.extend(encode_reg(r, ac, sc).ok_or_else(|| {
                write_err(
                    "/memory",
                    "the firmware's RAM does not fit the named tree's #address-cells/#size-cells",
                )
            })?);
        }
        let old: Vec<String> = t
            .tree
            .root
            .children()
            .filter(|n| is_memory_node(n))
            .map(|n| String::from(n.name()))
            .collect();
        for name in old {
            t.tree.root.remove_child(&name);
        }
        let mut node = DeviceTreeNode::new_unchecked(alloc::format!("memory@{:x}", first.start()));
        set(&mut node, "device_type", b"memory\0".to_vec());
        set(&mut node, "reg", reg);
        t.tree.root.add_child(node);
    }
    for r in f.tree.memory_reservations {
        if !t.tree.memory_reservations.contains(&r) {
            t.tree.memory_reservations.push(r);
        }
    }
    if let Some(frm) = f.tree.root.child("reserved-memory") {
        let rm = match t.tree.root.child_mut("reserved-memory") {
            Some(rm) => rm,
            None => {
                let mut rm = DeviceTreeNode::new_unchecked("reserved-memory");
                for name in ["#address-cells", "#size-cells", "ranges"] {
                    if let Some(p) = frm.property(name) {
                        set(&mut rm, name, p.value().to_vec());
                    }
                }
                t.tree.root.add_child_mut(rm)
            }
        };
        let same_cells = ["#address-cells", "#size-cells"].iter().all(|n| {
            rm.property(n).map(|p| p.value().to_vec())
                == frm.property(n).map(|p| p.value().to_vec())
        });
        for child in frm.children() {
            if rm.child_mut(child.name()).is_some() {
                continue;
            }
            if !same_cells {
                return Err(write_err(
                    alloc::format!("/reserved-memory/{}", child.name()),
                    "the named tree's /reserved-memory uses other #address-cells/#size-cells",
                ));
            }
            rm.add_child(child.clone());
        }
    }
    t.store()
}

/// Edits `dtb` with `/psci` written for kexboot's own EL3 monitor: `compatible =
/// "arm,psci-1.0", "arm,psci-0.2"` and `method` (e.g. `"smc"`), replacing any `/psci` the tree
/// has. Everything else passes through unchanged.
pub fn set_psci(dtb: &[u8], method: &str) -> Result<Vec<u8>> {
    if method.is_empty() || method.contains('\0') {
        return Err(write_err("/psci/method", "empty or with a NUL byte"));
    }
    let mut t = Tree::load(dtb)?;
    let mut psci = DeviceTreeNode::new_unchecked("psci");
    set(&mut psci, "compatible", PSCI_COMPATIBLE.to_vec());
    let mut m = method.as_bytes().to_vec();
    m.push(0);
    set(&mut psci, "method", m);
    t.tree.root.remove_child("psci");
    t.tree.root.add_child(psci);
    t.store()
}

/// Why an overlay cannot be applied (what libfdt's `fdt_overlay_apply` refuses, named).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverlayError {
    /// The overlay blob is not a device tree: `what` at byte `offset`.
    Blob { offset: usize, what: &'static str },
    /// Fragment `fragment` has neither `target` nor `target-path`, both, or one that does not
    /// decode (a 4-byte phandle, a string).
    FragmentTarget { fragment: String },
    /// The node `target` a fragment (or a `__symbols__` entry) names is not in the base tree.
    TargetNotFound { target: String },
    /// `__fixups__` refers to `label`, which the base tree's `__symbols__` does not have (a
    /// base tree compiled without `dtc -@` has none).
    UnresolvedLabel { label: String },
    /// A `__fixups__` location of `label` ("path:property:offset") is malformed or points
    /// outside the overlay.
    BadFixup {
        label: String,
        location: String,
        what: &'static str,
    },
    /// A `__local_fixups__` entry for property `prop` points at `offset`, outside it.
    BadLocalFixup { prop: String, offset: usize },
    /// Renumbering the overlay's phandles above the base's overflows 32 bits.
    PhandleOverflow,
    /// The merged tree is not a valid device tree (e.g. nested too deeply): `what`.
    Merged { what: String },
}

impl core::fmt::Display for OverlayError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use OverlayError::*;
        match self {
            Blob { offset, what } => write!(f, "not a device tree at offset {offset:#x}: {what}"),
            FragmentTarget { fragment } => write!(
                f,
                "{fragment}: needs exactly one of target (a phandle) or target-path (a string)"
            ),
            TargetNotFound { target } => write!(f, "target {target} is not in the base tree"),
            UnresolvedLabel { label } => write!(
                f,
                "label {label} (from __fixups__) is not in the base tree's __symbols__"
            ),
            BadFixup {
                label,
                location,
                what,
            } => write!(f, "__fixups__/{label} entry \"{location}\": {what}"),
            BadLocalFixup { prop, offset } => write!(
                f,
                "__local_fixups__ of property {prop}: offset {offset} is outside it"
            ),
            PhandleOverflow => write!(f, "phandles overflow 32 bits when renumbered"),
            Merged { what } => write!(f, "the merged tree is not valid: {what}"),
        }
    }
}

fn ov(e: OverlayError) -> Error {
    Error::Overlay(e)
}

/// The child named exactly `name` (the model's `child` takes `foo` for `foo@1` too).
fn exact_child<'n>(n: &'n DeviceTreeNode, name: &str) -> Option<&'n DeviceTreeNode> {
    n.children().find(|c| c.name() == name)
}

/// Checks every `__fixups__` entry of `overlay` against `base` before the overlay is applied,
/// so each fault gets its own error (libfdt: `overlay_fixup_phandles`).
fn check_fixups(base: &DeviceTree, overlay: &DeviceTree) -> Result<()> {
    let Some(fixups) = exact_child(&overlay.root, NODE_FIXUPS) else {
        return Ok(());
    };
    let symbols = exact_child(&base.root, NODE_SYMBOLS);
    for p in fixups.properties() {
        let label = p.name();
        let sym = symbols.and_then(|s| s.property(label));
        let path = sym
            .as_ref()
            .and_then(|s| s.value().strip_suffix(&[0]))
            .and_then(|s| core::str::from_utf8(s).ok())
            .ok_or_else(|| {
                ov(OverlayError::UnresolvedLabel {
                    label: label.to_string(),
                })
            })?;
        if base.find_node(path).is_none() {
            return Err(ov(OverlayError::TargetNotFound {
                target: path.to_string(),
            }));
        }
        let bad = |location: &str, what| {
            ov(OverlayError::BadFixup {
                label: label.to_string(),
                location: location.to_string(),
                what,
            })
        };
        let value = p.value().strip_suffix(&[0]).ok_or_else(|| {
            bad(
                &String::from_utf8_lossy(p.value()),
                "not NUL-terminated strings",
            )
        })?;
        for raw in value.split(|&b| b == 0) {
            let location = core::str::from_utf8(raw).map_err(|_| bad("?", "not UTF-8"))?;
            let mut parts = location.rsplitn(3, ':');
            let (Some(offset), Some(prop), Some(node)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(location, "not path:property:offset"));
            };
            let offset: usize = offset
                .parse()
                .map_err(|_| bad(location, "offset is not a decimal number"))?;
            if !offset.is_multiple_of(4) {
                return Err(bad(location, "offset is not a multiple of 4"));
            }
            let target = overlay
                .find_node(node)
                .ok_or_else(|| bad(location, "no such node in the overlay"))?
                .property(prop)
                .ok_or_else(|| bad(location, "no such property in the overlay"))?;
            if offset
                .checked_add(4)
                .is_none_or(|end| end > target.value().len())
            {
                return Err(bad(location, "offset past the property's end"));
            }
        }
    }
    Ok(())
}

fn map_overlay_error(e: dtoolkit::error::OverlayError) -> Error {
    use dtoolkit::error::OverlayError as E;
    ov(match e {
        E::InvalidFragmentTarget | E::Property(_) => OverlayError::FragmentTarget {
            fragment: String::from("a fragment"),
        },
        E::PhandleOverflow => OverlayError::PhandleOverflow,
        E::UnresolvedSymbol(label) => OverlayError::UnresolvedLabel { label },
        E::TargetNotFound(target) => OverlayError::TargetNotFound { target },
        E::InvalidLocalFixup { prop, offset } => OverlayError::BadLocalFixup { prop, offset },
        E::InvalidFixupLocation => OverlayError::BadFixup {
            label: String::from("?"),
            location: String::from("?"),
            what: "malformed",
        },
        // `Parse`, `Model`, `MalformedData`: the checks before the applier rule these out.
        _ => OverlayError::Merged {
            what: String::from("refused by the overlay applier"),
        },
    })
}

/// Applies the overlay `overlay` to the tree `base` as libfdt's `fdt_overlay_apply` does: the
/// overlay's phandles are renumbered above the base's largest, `__local_fixups__` adjusted,
/// `__fixups__` resolved through the base's `__symbols__`, each `fragment@N`'s `__overlay__`
/// merged into its `target` (a phandle) or `target-path` (a path, or a label of the base's
/// `__symbols__` or `/aliases`), and the overlay's `__symbols__` merged into the base's, their
/// paths rewritten to where the nodes landed. `base` itself is never changed: on any error the
/// caller still has it as it was.
///
/// One difference from libfdt: a label whose node has no phandle gets a new one (libfdt
/// refuses); `dtc -@` gives every referenced node one, so real trees do not tell the two apart.
pub fn apply_overlay(base: &[u8], overlay: &[u8]) -> Result<Vec<u8>> {
    let mut b = Tree::load(base)?;
    let o = Tree::load(overlay).map_err(|e| match e {
        Error::BadDtb { offset, what } => ov(OverlayError::Blob { offset, what }),
        other => other,
    })?;
    check_fixups(&b.tree, &o.tree)?;
    for frag in o.tree.root.children() {
        if frag.name().split('@').next() != Some("fragment") {
            continue;
        }
        let target = frag.property("target").map(|p| p.value().len() == 4);
        let path = frag.property("target-path").map(|p| {
            p.value()
                .strip_suffix(&[0])
                .is_some_and(|s| core::str::from_utf8(s).is_ok())
        });
        if !matches!((target, path), (Some(true), None) | (None, Some(true))) {
            return Err(ov(OverlayError::FragmentTarget {
                fragment: frag.name().to_string(),
            }));
        }
    }
    OverlayApplier::new(&mut b.tree)
        .apply_overlay_tree(o.tree)
        .map_err(map_overlay_error)?;
    let out = b.store()?;
    // The merge can nest nodes deeper than either tree: the result must pass the same check.
    check(&out).map_err(|e| {
        ov(OverlayError::Merged {
            what: e.to_string(),
        })
    })?;
    Ok(out)
}

/// Why a read or edit by path (U-Boot's `fdt` command) was not made, in libfdt's terms so the
/// shell can say what U-Boot says.
#[derive(Debug, PartialEq, Eq)]
pub enum PathError {
    /// No node at the path (libfdt's `fdt_path_offset()` FDT_ERR_NOTFOUND).
    NoNode,
    /// The node has no such property (`fdt_getprop()`/`fdt_delprop()` FDT_ERR_NOTFOUND).
    NoProperty,
    /// `add_node`: the parent already has a child of that name (FDT_ERR_EXISTS).
    Exists,
    /// A node or property name that cannot be written: empty, or with `/` or NUL
    /// (FDT_ERR_BADNAME).
    BadName,
    /// The root node cannot be removed (FDT_ERR_BADOFFSET in libfdt).
    Root,
    /// The blob is not a valid device tree, or the result would be too large.
    Dt(Error),
}

impl From<Error> for PathError {
    fn from(e: Error) -> Self {
        PathError::Dt(e)
    }
}

impl core::fmt::Display for PathError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PathError::NoNode | PathError::NoProperty => f.write_str("FDT_ERR_NOTFOUND"),
            PathError::Exists => f.write_str("FDT_ERR_EXISTS"),
            PathError::BadName => f.write_str("FDT_ERR_BADNAME"),
            PathError::Root => f.write_str("FDT_ERR_BADOFFSET (the root node)"),
            PathError::Dt(e) => write!(f, "{e}"),
        }
    }
}

/// One step of [`visit`]: a node opens (its properties and children follow), a property, a
/// node closes. `depth` is 0 for the node the path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit<'a> {
    /// A node opens; the named node's name is `""` when it is the root.
    Node {
        name: &'a str,
        depth: usize,
    },
    Prop {
        name: &'a str,
        value: &'a [u8],
        depth: usize,
    },
    End {
        depth: usize,
    },
}

/// Whether `name` names `node` the way libfdt's path lookup matches a component: exactly, or
/// by its part before `@` when the component has no unit address.
fn component_matches(node: &str, name: &str) -> bool {
    node == name || (!name.contains('@') && base_name(node) == name)
}

/// The exact child names leading from the root to `path` (absolute, or starting with an alias
/// of `/aliases`, one level deep, as libfdt's `fdt_path_offset`): the first child matching each
/// component, in tree order.
fn path_names(root: &DeviceTreeNode, path: &str) -> Option<Vec<String>> {
    let owned;
    let path = if path.starts_with('/') {
        path
    } else {
        let (alias, rest) = path.split_once('/').unwrap_or((path, ""));
        let aliases = root.child("aliases")?;
        let prop = aliases.property(alias)?;
        let target = core::str::from_utf8(prop.value().strip_suffix(&[0])?).ok()?;
        if !target.starts_with('/') {
            return None;
        }
        owned = alloc::format!("{target}/{rest}");
        &owned
    };
    let mut node = root;
    let mut names = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        node = node
            .children()
            .find(|c| component_matches(c.name(), part))?;
        names.push(String::from(node.name()));
    }
    Some(names)
}

fn node_ref<'t>(root: &'t DeviceTreeNode, names: &[String]) -> Option<&'t DeviceTreeNode> {
    names.iter().try_fold(root, |n, name| n.child(name))
}

fn node_mut<'t>(root: &'t mut DeviceTreeNode, names: &[String]) -> Option<&'t mut DeviceTreeNode> {
    names.iter().try_fold(root, |n, name| n.child_mut(name))
}

/// A checked tree and the node `path` names in it.
fn load_at(dtb: &[u8], path: &str) -> core::result::Result<(Tree, Vec<String>), PathError> {
    let t = Tree::load(dtb)?;
    let names = path_names(&t.tree.root, path).ok_or(PathError::NoNode)?;
    Ok((t, names))
}

/// Writes an edited tree out and checks it as any blob read (a `#size-cells` of two cells,
/// say, would make a tree `booti` refuses later: refused here, where the edit is named).
fn store_checked(t: &Tree) -> core::result::Result<Vec<u8>, PathError> {
    let out = t.store()?;
    check(&out)?;
    Ok(out)
}

fn writable_name(name: &str) -> core::result::Result<(), PathError> {
    if name.is_empty() || name.contains(['/', '\0']) {
        return Err(PathError::BadName);
    }
    Ok(())
}

/// The value of property `name` of the node at `path` in `dtb` (checked completely first).
pub fn property(dtb: &[u8], path: &str, name: &str) -> core::result::Result<Vec<u8>, PathError> {
    let (t, names) = load_at(dtb, path)?;
    let node = node_ref(&t.tree.root, &names).ok_or(PathError::NoNode)?;
    let p = node.property(name).ok_or(PathError::NoProperty)?;
    Ok(p.value().to_vec())
}

/// Walks the subtree at `path` in tree order (properties before children), `max_depth` levels
/// below it at most, telling `f` each step until it returns false. `check` bounds the depth
/// of any blob, so the recursion is bounded.
pub fn visit(
    dtb: &[u8],
    path: &str,
    max_depth: usize,
    f: &mut dyn FnMut(Visit<'_>) -> bool,
) -> core::result::Result<(), PathError> {
    fn go(
        n: &DeviceTreeNode,
        depth: usize,
        max: usize,
        f: &mut dyn FnMut(Visit<'_>) -> bool,
    ) -> bool {
        if !f(Visit::Node {
            name: n.name(),
            depth,
        }) {
            return false;
        }
        for p in n.properties() {
            let (name, value) = (p.name(), p.value());
            if !f(Visit::Prop { name, value, depth }) {
                return false;
            }
        }
        if depth < max {
            for c in n.children() {
                if !go(c, depth + 1, max, f) {
                    return false;
                }
            }
        }
        f(Visit::End { depth })
    }
    let (t, names) = load_at(dtb, path)?;
    let node = node_ref(&t.tree.root, &names).ok_or(PathError::NoNode)?;
    go(node, 0, max_depth, f);
    Ok(())
}

/// `dtb` with property `name` of the node at `path` set to `value` (added at the end of the
/// node's properties when new, in place when not). Everything else passes through; the result
/// is the compact blob (no free space: see [`set_total_size`]).
pub fn set_property(
    dtb: &[u8],
    path: &str,
    name: &str,
    value: &[u8],
) -> core::result::Result<Vec<u8>, PathError> {
    writable_name(name)?;
    let (mut t, names) = load_at(dtb, path)?;
    let node = node_mut(&mut t.tree.root, &names).ok_or(PathError::NoNode)?;
    match node.property_mut(name) {
        Some(p) => p.set_value(value.to_vec()),
        None => set(node, name, value.to_vec()),
    }
    store_checked(&t)
}

/// `dtb` without property `name` of the node at `path`.
pub fn remove_property(
    dtb: &[u8],
    path: &str,
    name: &str,
) -> core::result::Result<Vec<u8>, PathError> {
    let (mut t, names) = load_at(dtb, path)?;
    let node = node_mut(&mut t.tree.root, &names).ok_or(PathError::NoNode)?;
    node.remove_property(name).ok_or(PathError::NoProperty)?;
    store_checked(&t)
}

/// `dtb` without the node at `path` and its subtree (never the root).
pub fn remove_node(dtb: &[u8], path: &str) -> core::result::Result<Vec<u8>, PathError> {
    let (mut t, mut names) = load_at(dtb, path)?;
    let last = names.pop().ok_or(PathError::Root)?;
    let parent = node_mut(&mut t.tree.root, &names).ok_or(PathError::NoNode)?;
    parent.remove_child(&last).ok_or(PathError::NoNode)?;
    store_checked(&t)
}

/// `dtb` with an empty node `name` added as the last child of the node at `path`.
pub fn add_node(dtb: &[u8], path: &str, name: &str) -> core::result::Result<Vec<u8>, PathError> {
    writable_name(name)?;
    let (mut t, names) = load_at(dtb, path)?;
    if names.len() + 1 >= MAX_DEPTH {
        return Err(PathError::Dt(write_err(name, "nodes nested too deeply")));
    }
    let parent = node_mut(&mut t.tree.root, &names).ok_or(PathError::NoNode)?;
    if parent.child_mut(name).is_some() {
        return Err(PathError::Exists);
    }
    parent.add_child(DeviceTreeNode::new_unchecked(name));
    store_checked(&t)
}

/// `dtb` (checked completely) written out again in the standard layout with no free space:
/// header, reservations, structure, strings. Its length is what the tree needs.
pub fn compact(dtb: &[u8]) -> Result<Vec<u8>> {
    Tree::load(dtb)?.store()
}

/// Gives the blob `dtb` (as [`compact`] and the edits return it: free space only at its end)
/// the `totalsize` `total`, zero-filling the new free space. Refuses a size below what the
/// tree uses or above the 2 MiB the boot protocol allows.
pub fn set_total_size(dtb: &mut Vec<u8>, total: usize) -> Result<()> {
    let header = Header::parse(dtb, dtb.len())?;
    let used = [
        (OFF_DT_STRUCT, OFF_SIZE_STRUCT),
        (OFF_DT_STRINGS, OFF_SIZE_STRINGS),
    ]
    .iter()
    .map(|&(o, s)| header.field(o) as usize + header.field(s) as usize)
    .max()
    .unwrap_or(FDT_HEADER_LEN);
    if total < used {
        return Err(write_err(
            "the header",
            "totalsize below what the tree uses",
        ));
    }
    if total as u64 > MAX_DTB_SIZE {
        return Err(Error::DtbTooLarge { size: total as u64 });
    }
    dtb.resize(total, 0);
    dtb[OFF_TOTALSIZE..OFF_TOTALSIZE + 4].copy_from_slice(&(total as u32).to_be_bytes());
    Ok(())
}
