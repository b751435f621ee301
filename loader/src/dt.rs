//! The device tree: what the firmware was given ([`DtInfo`]) and what the kernel gets ([`fixup`]).
//!
//! Reading uses the `fdt` crate, whose walkers panic or recurse without bound on malformed blobs.
//! So every blob first goes through [`check`], a bounded, checked walk over the whole structure
//! block (header offsets, tokens, names, property lengths, string offsets, nesting depth); only a
//! blob that passes reaches `fdt`. `FDT_NOP` tokens, which `fdt` mishandles, are dropped into a
//! normalised copy. Path lookups (stdout-path, aliases) are done here, one alias level deep,
//! never through `fdt`'s recursive alias fallback.
//!
//! Writing rebuilds the whole tree with `vm-fdt`: every node and property copied in order, the
//! memory reservations kept, and `/chosen` updated.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use fdt::node::{CellSizes, FdtNode};
use fdt::Fdt;
use vm_fdt::{FdtReserveEntry, FdtWriter};

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
    let header = Header::parse(dtb, dtb.len())?;
    let h = |off| Ok::<u32, Error>(header.field(off));
    let total = header.total_size();
    if h(OFF_VERSION)? < 17 || h(OFF_LAST_COMP)? > 17 {
        return Err(bad(
            OFF_VERSION,
            "unsupported version (need 17, compatible with 16)",
        ));
    }
    let blob = &dtb[..total];
    let block = |off_field, size_field| -> Result<core::ops::Range<usize>> {
        let off = h(off_field)? as usize;
        let end = off
            .checked_add(h(size_field)? as usize)
            .filter(|&e| e <= total);
        end.map(|e| off..e)
            .ok_or(bad(off_field, "block extends past totalsize"))
    };
    let st = block(OFF_DT_STRUCT, OFF_SIZE_STRUCT)?;
    let strings = &blob[block(OFF_DT_STRINGS, OFF_SIZE_STRINGS)?];

    // Memory reservation block: (u64 address, u64 size) pairs up to a (0, 0) entry.
    let mut rsv = Vec::new();
    let mut off = h(OFF_MEM_RSVMAP)? as usize;
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

    let has_nop = walk(blob, st.clone(), strings, None)?;
    let bytes = if has_nop {
        let mut s = Vec::with_capacity(st.len());
        walk(blob, st.clone(), strings, Some(&mut s))?;
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
        boot_cpuid: h(OFF_BOOT_CPUID)?,
    })
}

fn cstr_at(b: &[u8], off: usize) -> Option<&str> {
    let rest = b.get(off..)?;
    let nul = rest.iter().position(|&c| c == 0)?;
    core::str::from_utf8(&rest[..nul]).ok()
}

/// One bounded pass over the structure block. Returns whether NOPs were seen; copies every
/// non-NOP token into `out` when given.
fn walk(
    blob: &[u8],
    st: core::ops::Range<usize>,
    strings: &[u8],
    mut out: Option<&mut Vec<u8>>,
) -> Result<bool> {
    let s = &blob[st.clone()];
    let at = |pos: usize| st.start + pos;
    let (mut pos, mut depth, mut has_nop, mut root_done, mut props_closed) =
        (0, 0, false, false, false);
    loop {
        let tok = be32(s, pos).ok_or(bad(at(pos), "structure block ends without FDT_END"))?;
        let next = match tok {
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
                (pos + 4 + name.len() + 1 + 3) & !3
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(bad(at(pos), "FDT_END_NODE without a node"));
                }
                depth -= 1;
                root_done = depth == 0;
                props_closed = true;
                pos + 4
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
                (end + 3) & !3
            }
            FDT_NOP => {
                has_nop = true;
                pos + 4
            }
            FDT_END => {
                if !root_done {
                    return Err(bad(at(pos), "FDT_END before the root node closed"));
                }
                if let Some(o) = out.as_deref_mut() {
                    o.extend_from_slice(&s[pos..pos + 4]);
                }
                return Ok(has_nop);
            }
            _ => return Err(bad(at(pos), "unknown structure token")),
        };
        if let Some(o) = out.as_deref_mut() {
            if tok != FDT_NOP {
                o.extend_from_slice(
                    s.get(pos..next)
                        .ok_or(bad(at(pos), "token past the block"))?,
                );
            }
        }
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

enum Change {
    Set(Vec<u8>),
    Remove,
}

/// `/chosen` properties only a kdump kernel may see, which [`fixup`] always removes.
pub const KDUMP_CHOSEN: [&str; 2] = ["linux,usable-memory-range", "linux,elfcorehdr"];

/// The `/chosen` changes, in the order new properties are appended.
fn chosen_changes(f: &Fixups<'_>) -> Result<Vec<(&'static str, Change)>> {
    let mut v = Vec::new();
    if let Some(b) = f.bootargs {
        if b.contains('\0') {
            return Err(Error::DtWrite {
                at: "/chosen/bootargs".into(),
                why: vm_fdt::Error::InvalidString,
            });
        }
        let mut bytes = b.as_bytes().to_vec();
        bytes.push(0);
        v.push(("bootargs", Change::Set(bytes)));
    }
    match f.initrd {
        Some(r) => {
            v.push((
                "linux,initrd-start",
                Change::Set(r.start().to_be_bytes().to_vec()),
            ));
            v.push((
                "linux,initrd-end",
                Change::Set(r.end().to_be_bytes().to_vec()),
            ));
        }
        None => {
            v.push(("linux,initrd-start", Change::Remove));
            v.push(("linux,initrd-end", Change::Remove));
        }
    }
    // A tree from Linux's crash path (`kexec -p`) tells a dump kernel where the crashed one's
    // memory is; no kernel kexboot boots is one: it would run confined to the crash region.
    for kdump_only in KDUMP_CHOSEN {
        v.push((kdump_only, Change::Remove));
    }
    if let Some(s) = f.kaslr_seed {
        v.push(("kaslr-seed", Change::Set(s.to_be_bytes().to_vec())));
    }
    if let Some(s) = f.rng_seed {
        v.push(("rng-seed", Change::Set(s.to_vec())));
    }
    Ok(v)
}

struct Writer<'f> {
    w: FdtWriter,
    changes: Vec<(&'static str, Change)>,
    done: Vec<&'static str>,
    path: String,
    reserved_nodes: &'f [ReservedNode<'f>],
    cpu_props: &'f [CpuProps<'f>],
    in_cpus: bool,
    /// Replaces `/psci` with a node of this method ([`set_psci`]).
    psci_method: Option<&'f str>,
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

impl Writer<'_> {
    /// Writes the requested `/reserved-memory` children.
    fn reserved_children(&mut self, address_cells: usize, size_cells: usize) -> Result<()> {
        for rn in self.reserved_nodes {
            let reg = encode_reg(&rn.reg, address_cells, size_cells)
                .ok_or_else(|| self.err(rn.name, vm_fdt::Error::InvalidMemoryReservation))?;
            let h = self
                .w
                .begin_node(rn.name)
                .map_err(|e| self.err(rn.name, e))?;
            self.prop("reg", &reg)?;
            for (name, value) in &rn.props {
                self.prop(name, value)?;
            }
            self.w.end_node(h).map_err(|e| self.err(rn.name, e))?;
        }
        Ok(())
    }

    fn err(&self, name: &str, why: vm_fdt::Error) -> Error {
        Error::DtWrite {
            at: alloc::format!("{}/{}", self.path, name),
            why,
        }
    }

    fn prop(&mut self, name: &str, value: &[u8]) -> Result<()> {
        self.w.property(name, value).map_err(|e| self.err(name, e))
    }

    /// Writes change `i` unless it removes a property or was written already.
    fn emit(&mut self, i: usize) -> Result<()> {
        let (name, change) = &self.changes[i];
        if let (Change::Set(v), false) = (change, self.done.contains(name)) {
            self.w.property(name, v).map_err(|why| Error::DtWrite {
                at: alloc::format!("{}/{}", self.path, name),
                why,
            })?;
            self.done.push(name);
        }
        Ok(())
    }

    fn node(&mut self, n: FdtNode<'_, '_>, depth: usize) -> Result<()> {
        let name = if depth == 0 { "" } else { n.name };
        let handle = self.w.begin_node(name).map_err(|e| self.err(name, e))?;
        let saved = self.path.len();
        if depth > 0 {
            self.path.push('/');
            self.path.push_str(name);
        }
        let chosen = depth == 1 && name == "chosen";
        // A cpu node under /cpus whose `reg` has overrides: those replace its properties.
        let cpu = (self.in_cpus && depth == 2)
            .then(|| prop_num(n, "reg"))
            .flatten()
            .and_then(|reg| self.cpu_props.iter().find(|c| c.reg == reg));
        if let Some(c) = cpu {
            for p in n
                .properties()
                .filter(|p| !c.props.iter().any(|(k, _)| *k == p.name))
            {
                self.prop(p.name, p.value)?;
            }
            for (k, v) in &c.props {
                self.prop(k, v)?;
            }
        }
        for p in n.properties().filter(|_| cpu.is_none()) {
            let change = if chosen {
                self.changes.iter().position(|(c, _)| *c == p.name)
            } else {
                None
            };
            match change {
                None => self.prop(p.name, p.value)?,
                Some(i) => self.emit(i)?,
            }
        }
        if chosen {
            (0..self.changes.len()).try_for_each(|i| self.emit(i))?;
        }
        let reserved = depth == 1 && name == "reserved-memory";
        let saved_cpus = self.in_cpus;
        self.in_cpus = depth == 1 && name == "cpus";
        let mut has_chosen = false;
        let mut has_reserved = false;
        for child in n.children() {
            has_chosen |= depth == 0 && child.name == "chosen";
            has_reserved |= depth == 0 && child.name == "reserved-memory";
            if reserved && self.reserved_nodes.iter().any(|r| r.name == child.name) {
                continue; // replaced below
            }
            if depth == 0 && child.name == "psci" && self.psci_method.is_some() {
                continue; // replaced below
            }
            self.node(child, depth + 1)?;
        }
        self.in_cpus = saved_cpus;
        if reserved {
            let cells = n.cell_sizes();
            self.reserved_children(cells.address_cells, cells.size_cells)?;
        }
        if depth == 0 && !has_reserved && !self.reserved_nodes.is_empty() {
            let h = self
                .w
                .begin_node("reserved-memory")
                .map_err(|e| self.err("reserved-memory", e))?;
            self.prop("#address-cells", &2u32.to_be_bytes())?;
            self.prop("#size-cells", &2u32.to_be_bytes())?;
            self.prop("ranges", &[])?;
            self.reserved_children(2, 2)?;
            self.w
                .end_node(h)
                .map_err(|e| self.err("reserved-memory", e))?;
        }
        if let (0, Some(method)) = (depth, self.psci_method) {
            let h = self.w.begin_node("psci").map_err(|e| self.err("psci", e))?;
            self.path.push_str("/psci");
            self.prop("compatible", PSCI_COMPATIBLE)?;
            let mut m = method.as_bytes().to_vec();
            m.push(0);
            self.prop("method", &m)?;
            self.path.truncate(saved);
            self.w.end_node(h).map_err(|e| self.err("psci", e))?;
        }
        if depth == 0 && !has_chosen {
            let c = self
                .w
                .begin_node("chosen")
                .map_err(|e| self.err("chosen", e))?;
            self.path.push_str("/chosen");
            (0..self.changes.len()).try_for_each(|i| self.emit(i))?;
            self.w.end_node(c).map_err(|e| self.err("", e))?;
        }
        self.path.truncate(saved);
        self.w.end_node(handle).map_err(|e| self.err("", e))
    }
}

/// Rebuilds `dtb` with the changes in `f`: every node and property copied in order, every
/// `/memreserve/` kept (overlapping ones merged, as the writer requires) plus
/// `f.extra_reserved`, `/chosen` created if absent, the kdump-only [`KDUMP_CHOSEN`] properties
/// dropped. Refuses an output above 2 MiB.
pub fn fixup(dtb: &[u8], f: &Fixups<'_>) -> Result<Vec<u8>> {
    rebuild(dtb, f, chosen_changes(f)?, None)
}

/// Rebuilds `dtb` with `/psci` written for kexboot's own EL3 monitor: `compatible =
/// "arm,psci-1.0", "arm,psci-0.2"` and `method` (e.g. `"smc"`), replacing any `/psci` the tree
/// has. Everything else is copied as it is.
pub fn set_psci(dtb: &[u8], method: &str) -> Result<Vec<u8>> {
    if method.is_empty() || method.contains('\0') {
        return Err(Error::DtWrite {
            at: "/psci/method".into(),
            why: vm_fdt::Error::InvalidString,
        });
    }
    rebuild(dtb, &Fixups::default(), Vec::new(), Some(method))
}

fn rebuild(
    dtb: &[u8],
    f: &Fixups<'_>,
    changes: Vec<(&'static str, Change)>,
    psci_method: Option<&str>,
) -> Result<Vec<u8>> {
    let c = check(dtb)?;
    let fdt = open(&c)?;
    let root = root_of(&fdt)?;

    let mut rsv: Vec<Range> = c.rsv.clone();
    rsv.extend(f.extra_reserved.iter().filter(|r| !r.is_empty()));
    let entries = merge_overlapping(rsv)
        .into_iter()
        .map(|r| FdtReserveEntry::new(r.start(), r.len()))
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(|why| Error::DtWrite {
            at: "/memreserve/".into(),
            why,
        })?;
    let mut w = FdtWriter::new_with_mem_reserv(&entries).map_err(|why| Error::DtWrite {
        at: "/memreserve/".into(),
        why,
    })?;
    w.set_boot_cpuid_phys(c.boot_cpuid);

    let mut wr = Writer {
        w,
        changes,
        done: Vec::new(),
        path: String::new(),
        reserved_nodes: f.reserved_nodes,
        cpu_props: f.cpu_props,
        psci_method,
        in_cpus: false,
    };
    wr.node(root, 0)?;
    let out = wr.w.finish().map_err(|why| Error::DtWrite {
        at: "/".into(),
        why,
    })?;
    if out.len() as u64 > MAX_DTB_SIZE {
        return Err(Error::DtbTooLarge {
            size: out.len() as u64,
        });
    }
    Ok(out)
}

/// Sorts and merges only overlapping ranges (touching ones stay separate entries).
fn merge_overlapping(mut v: Vec<Range>) -> Vec<Range> {
    v.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.start() < last.end() => *last = last.hull(&r),
            _ => out.push(r),
        }
    }
    out
}
