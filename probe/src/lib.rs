//! The entry-condition probe's checking logic: from the registers captured at the probe's first
//! instruction ([`EntryState`]), its own Image header and the device tree at x0, one verdict line
//! per condition that Linux `Documentation/arch/arm64/booting.rst` puts on the boot loader.
//!
//! Pure and host-tested: the registers come in as data, the few things only the machine can
//! answer (PSCI AFFINITY_INFO, a spin-table mailbox, running an FP/SVE instruction) go through
//! [`Machine`], and the lines go to a [`Report`]. The aarch64 binary (`main.rs`) supplies both.
//!
//! Section names in the comments (e.g. "booting.rst 4. Call the kernel image") refer to that
//! document.
#![cfg_attr(not(test), no_std)]

use core::fmt;
use fdt::Fdt;

/// The prefix of every line the probe prints.
pub const PREFIX: &str = "PROBE";
/// Images are placed `text_offset` bytes past a 2 MiB aligned base ("4. Call the kernel image").
pub const IMAGE_ALIGN: u64 = 2 << 20;
/// The DTB "must be placed on an 8-byte boundary and must not exceed 2 megabytes in size"
/// ("2. Setup the device tree").
pub const DTB_ALIGN: u64 = 8;
pub const DTB_MAX: u64 = 2 << 20;
/// Flattened device tree magic and header length.
pub const DTB_MAGIC: u32 = 0xd00d_feed;
pub const DTB_HEADER_LEN: usize = 40;
/// Length and magic ("ARM\x64" at 0x38) of the arm64 Image header.
pub const IMAGE_HEADER_LEN: usize = 64;
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// "initrd ... must reside entirely within a 1 GB aligned physical memory window of up to 32 GB
/// in size that fully covers the kernel Image as well" ("3. Setup the initrd" / "4.").
pub const INITRD_WINDOW_ALIGN: u64 = 1 << 30;
pub const INITRD_WINDOW_MAX: u64 = 32 << 30;

/// PSTATE.DAIF: D (9), A (8), I (7), F (6).
pub const DAIF_ALL: u64 = 0xf << 6;
/// SCTLR_ELx.M (MMU enable) and .C (data cache enable).
pub const SCTLR_M: u64 = 1 << 0;
pub const SCTLR_C: u64 = 1 << 2;
/// HCR_EL2.E2H (34) and .TGE (27).
pub const HCR_E2H: u64 = 1 << 34;
pub const HCR_TGE: u64 = 1 << 27;
/// CPTR_EL2 (E2H = 0 layout): TFP (10) traps FP/SIMD, TZ (8) SVE, TSM (12) SME.
pub const CPTR_TFP: u64 = 1 << 10;
pub const CPTR_TZ: u64 = 1 << 8;
pub const CPTR_TSM: u64 = 1 << 12;
/// ID_AA64PFR0_EL1.EL2 (bits 11:8) and .SVE (35:32); ID_AA64PFR1_EL1.SME (27:24).
const PFR0_EL2_SHIFT: u32 = 8;
const PFR0_SVE_SHIFT: u32 = 32;
const PFR1_SME_SHIFT: u32 = 24;
const ID_FIELD_MASK: u64 = 0xf;
/// MPIDR_EL1 affinity fields Aff3 (39:32) and Aff2..Aff0 (23:0): what a cpu node's `reg` holds.
pub const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;
/// PSCI (Arm DEN0022) AFFINITY_INFO (SMC64) and SYSTEM_OFF, and AFFINITY_INFO's "OFF".
pub const PSCI_AFFINITY_INFO_64: u32 = 0xc400_0004;
pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
pub const PSCI_AFFINITY_OFF: i64 = 1;

/// The registers as the probe found them at its first instructions, before it wrote any memory.
/// `main.rs` stores them in this order (`#[repr(C)]`, every field a u64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryState {
    /// x0..x3 at entry.
    pub x: [u64; 4],
    /// Where the probe runs: `adr` of its first byte (the Image header).
    pub load: u64,
    /// CurrentEL (EL in bits 3:2).
    pub current_el: u64,
    /// PSTATE.DAIF.
    pub daif: u64,
    /// SCTLR_EL2 at EL2, SCTLR_EL1 at EL1.
    pub sctlr: u64,
    /// HCR_EL2 (0 when entered below EL2, where it cannot be read).
    pub hcr_el2: u64,
    /// CPTR_EL2 (0 when entered below EL2).
    pub cptr_el2: u64,
    /// CNTFRQ_EL0.
    pub cntfrq: u64,
}

impl EntryState {
    /// The exception level entered at.
    pub fn el(&self) -> u64 {
        (self.current_el >> 2) & 0b11
    }
}

/// CPU identification registers (read after the entry state: they do not change).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuId {
    pub mpidr: u64,
    pub pfr0: u64,
    pub pfr1: u64,
}

impl CpuId {
    fn field(reg: u64, shift: u32) -> u64 {
        (reg >> shift) & ID_FIELD_MASK
    }
    pub fn has_el2(&self) -> bool {
        Self::field(self.pfr0, PFR0_EL2_SHIFT) != 0
    }
    pub fn has_sve(&self) -> bool {
        Self::field(self.pfr0, PFR0_SVE_SHIFT) != 0
    }
    pub fn has_sme(&self) -> bool {
        Self::field(self.pfr1, PFR1_SME_SHIFT) != 0
    }
}

/// The fields of the probe's own arm64 Image header that placement depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    pub image_size: u64,
    pub flags: u64,
}

/// Why a header or tree could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the header needs.
    Short,
    /// The magic number is wrong (found).
    BadMagic(u32),
    /// The DTB's totalsize is smaller than its header.
    BadSize(u32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Short => write!(f, "too short for a header"),
            Error::BadMagic(m) => write!(f, "bad magic {m:#010x}"),
            Error::BadSize(s) => write!(f, "totalsize {s} is smaller than the header"),
        }
    }
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn be_cells(b: &[u8]) -> Option<u64> {
    match b.len() {
        4 => Some(u32::from_be_bytes(b.try_into().ok()?) as u64),
        8 => Some(u64::from_be_bytes(b.try_into().ok()?)),
        _ => None,
    }
}

impl ImageHeader {
    /// Parses the 64-byte arm64 Image header ("4. Call the kernel image").
    pub fn parse(b: &[u8]) -> Result<Self, Error> {
        let h = b.get(..IMAGE_HEADER_LEN).ok_or(Error::Short)?;
        let magic = u32::from_le_bytes([h[0x38], h[0x39], h[0x3a], h[0x3b]]);
        if magic != IMAGE_MAGIC {
            return Err(Error::BadMagic(magic));
        }
        Ok(ImageHeader {
            text_offset: le64(h, 8).ok_or(Error::Short)?,
            image_size: le64(h, 16).ok_or(Error::Short)?,
            flags: le64(h, 24).ok_or(Error::Short)?,
        })
    }
}

/// The totalsize of the flattened device tree whose header is `b` (checks the magic).
pub fn dtb_total_size(b: &[u8]) -> Result<u32, Error> {
    let h = b.get(..DTB_HEADER_LEN).ok_or(Error::Short)?;
    let magic = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    if magic != DTB_MAGIC {
        return Err(Error::BadMagic(magic));
    }
    let size = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if (size as usize) < DTB_HEADER_LEN {
        return Err(Error::BadSize(size));
    }
    Ok(size)
}

/// How PSCI is called (`/psci` `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

impl fmt::Display for Conduit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conduit::Hvc => "hvc",
            Conduit::Smc => "smc",
        })
    }
}

/// The PSCI conduit the tree names, if any.
pub fn psci_conduit(fdt: &Fdt) -> Option<Conduit> {
    let node = fdt.find_node("/psci")?;
    match node.property("method")?.as_str()? {
        "hvc" => Some(Conduit::Hvc),
        "smc" => Some(Conduit::Smc),
        _ => None,
    }
}

/// The MMIO base of the PL011 that `/chosen/stdout-path` names (alias or path, `:options` cut).
pub fn stdout_pl011(fdt: &Fdt) -> Option<u64> {
    let chosen = fdt.find_node("/chosen")?;
    let path = chosen
        .property("stdout-path")
        .or_else(|| chosen.property("linux,stdout-path"))?
        .as_str()?;
    let path = path.split(':').next()?;
    let node = if path.starts_with('/') {
        fdt.find_node(path)?
    } else {
        fdt.find_node(fdt.aliases()?.resolve(path)?)?
    };
    if !node.compatible()?.all().any(|c| c == "arm,pl011") {
        return None;
    }
    Some(node.reg()?.next()?.starting_address as u64)
}

/// A physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// `[start, start + len)`, or `None` when that wraps.
    pub fn new(start: u64, len: u64) -> Option<Range> {
        Some(Range {
            start,
            end: start.checked_add(len)?,
        })
    }
    pub fn overlaps(&self, o: &Range) -> bool {
        self.start < o.end && o.start < self.end
    }
    pub fn within(&self, o: &Range) -> bool {
        o.start <= self.start && self.end <= o.end
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start, self.end)
    }
}

/// The `reg` ranges of a node (parent's cell sizes), skipping entries that do not fit u64.
fn reg_ranges<'a>(node: fdt::node::FdtNode<'_, 'a>) -> impl Iterator<Item = Range> + 'a {
    node.raw_reg()
        .into_iter()
        .flatten()
        .filter_map(|r| Range::new(be_cells(r.address)?, be_cells(r.size)?))
}

/// What the tree says about memory.
struct Memory<'t, 'a> {
    fdt: &'t Fdt<'a>,
}

impl Memory<'_, '_> {
    /// Every RAM range of every `/memory*` node (device_type "memory").
    fn ram(&self) -> impl Iterator<Item = Range> + '_ {
        self.fdt
            .find_node("/")
            .into_iter()
            .flat_map(|r| r.children())
            .filter(|n| {
                n.name.split('@').next() == Some("memory")
                    || n.property("device_type").and_then(|p| p.as_str()) == Some("memory")
            })
            .flat_map(reg_ranges)
    }
    /// `/memreserve/` entries and `/reserved-memory` children with a `reg`.
    fn reserved(&self) -> impl Iterator<Item = Range> + '_ {
        let rsv = self
            .fdt
            .memory_reservations()
            .filter_map(|m| Range::new(m.address() as u64, m.size() as u64));
        let nodes = self
            .fdt
            .find_node("/reserved-memory")
            .into_iter()
            .flat_map(|n| n.children())
            .flat_map(reg_ranges);
        rsv.chain(nodes)
    }
    fn in_ram(&self, r: &Range) -> bool {
        self.ram().any(|m| r.within(&m))
    }
}

/// What only the machine can answer.
pub trait Machine {
    /// PSCI AFFINITY_INFO(`target`, lowest affinity level 0) through `conduit`: the raw result.
    fn affinity_info(&mut self, conduit: Conduit, target: u64) -> i64;
    /// The u64 at physical address `addr` (8-byte aligned, inside RAM: the caller checked).
    fn read_u64(&mut self, addr: u64) -> u64;
    /// Reads CNTPCT_EL0. Returns only if no higher EL trapped the read.
    fn read_counter(&mut self) -> u64;
    /// Runs an FP/SIMD instruction (after enabling it at the probe's own EL). Returns only if no
    /// higher EL trapped it.
    fn run_fp(&mut self);
    /// The same for an SVE instruction (called only when the CPU has SVE; enables SVE at the
    /// probe's own EL first).
    fn run_sve(&mut self);
    /// The same for an SME instruction (called only when the CPU has SME).
    fn run_sme(&mut self);
}

/// A verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
    /// Not a verdict: what the probe saw or is about to do.
    Info,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Fail => "FAIL",
            Status::Info => "info",
        })
    }
}

/// Where the lines go.
pub trait Report {
    fn line(&mut self, status: Status, name: &str, detail: fmt::Arguments);
}

/// Writes one line: `PROBE <status> <name>: <detail>` (no newline).
pub fn write_line(
    w: &mut impl fmt::Write,
    status: Status,
    name: &str,
    detail: fmt::Arguments,
) -> fmt::Result {
    write!(w, "{PREFIX} {status} {name}: {detail}")
}

/// Counts verdicts on their way to the report.
struct Tally<'r, R: Report> {
    r: &'r mut R,
    ok: u32,
    failed: u32,
}

impl<R: Report> Tally<'_, R> {
    fn check(&mut self, pass: bool, name: &str, detail: fmt::Arguments) {
        if pass {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        let s = if pass { Status::Ok } else { Status::Fail };
        self.r.line(s, name, detail);
    }
    fn info(&mut self, name: &str, detail: fmt::Arguments) {
        self.r.line(Status::Info, name, detail);
    }
}

/// The counts of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub ok: u32,
    pub failed: u32,
}

/// The boot-arguments word that says an initrd must have been passed.
pub const EXPECT_INITRD: &str = "probe.initrd=yes";

/// Every check. `header` is the probe's own Image header (64 bytes at `entry.load`), `dtb` the
/// bytes at x0 (its header's totalsize, or fewer when that could not be read).
pub fn run(
    entry: &EntryState,
    header: &[u8],
    id: CpuId,
    dtb: &[u8],
    m: &mut impl Machine,
    r: &mut impl Report,
) -> Summary {
    let mut t = Tally {
        r,
        ok: 0,
        failed: 0,
    };
    check_cpu(entry, id, &mut t);
    let image = match ImageHeader::parse(header) {
        Ok(h) => h,
        Err(e) => {
            t.check(
                false,
                "image-header",
                format_args!("own header at {:#x}: {e}", entry.load),
            );
            return Summary {
                ok: t.ok,
                failed: t.failed,
            };
        }
    };
    // "4. Call the kernel image": text_offset bytes past a 2 MiB aligned base.
    let base_ok = entry
        .load
        .wrapping_sub(image.text_offset)
        .is_multiple_of(IMAGE_ALIGN);
    t.check(
        base_ok,
        "image-base",
        format_args!(
            "loaded at {:#x}, text_offset {:#x} (expected a 2 MiB aligned base + text_offset)",
            entry.load, image.text_offset
        ),
    );
    let img = Range::new(entry.load, image.image_size).unwrap_or(Range {
        start: entry.load,
        end: u64::MAX,
    });
    check_tree(entry, &img, dtb, id, m, &mut t);
    check_counter(entry, m, &mut t);
    check_fp(entry, id, m, &mut t);
    Summary {
        ok: t.ok,
        failed: t.failed,
    }
}

/// "4. Call the kernel image": CPU mode, caches and MMU, registers, timers, system registers.
fn check_cpu<R: Report>(e: &EntryState, id: CpuId, t: &mut Tally<R>) {
    let el = e.el();
    // "CPU mode": non-secure EL2 (recommended, so the kernel can run KVM) or EL1. kexboot's own
    // contract (DESIGN.md) is EL2 whenever the CPU has it.
    let (el_ok, why) = match el {
        2 => (true, ""),
        1 if id.has_el2() => (
            false,
            " but the CPU has EL2 (kexboot enters at EL2 when it can)",
        ),
        1 => (true, " (the CPU has no EL2)"),
        _ => (false, " (expected EL2 or EL1)"),
    };
    t.check(el_ok, "el", format_args!("EL{el}{why}"));
    // "CPU mode": all forms of interrupts masked in PSTATE.DAIF.
    t.check(
        e.daif & DAIF_ALL == DAIF_ALL,
        "daif",
        format_args!(
            "{:#x} (expected D, A, I, F all masked: {DAIF_ALL:#x})",
            e.daif
        ),
    );
    // "Caches, MMUs": the MMU must be off; the D-cache off (the image cleaned to PoC).
    t.check(
        e.sctlr & SCTLR_M == 0,
        "mmu",
        format_args!("SCTLR_EL{el}={:#x}, M={}", e.sctlr, e.sctlr & SCTLR_M),
    );
    t.check(
        e.sctlr & SCTLR_C == 0,
        "dcache",
        format_args!(
            "SCTLR_EL{el}={:#x}, C={}",
            e.sctlr,
            (e.sctlr & SCTLR_C) >> 2
        ),
    );
    // "Primary CPU general-purpose register settings": x1 = x2 = x3 = 0.
    for (i, name) in [(1, "x1"), (2, "x2"), (3, "x3")] {
        t.check(
            e.x[i] == 0,
            name,
            format_args!("{:#x} (expected 0)", e.x[i]),
        );
    }
    // "Architected timers": CNTFRQ must be programmed.
    t.check(
        e.cntfrq != 0,
        "cntfrq",
        format_args!("{} Hz (expected non-zero)", e.cntfrq),
    );
    if el == 2 {
        // booting.rst only asks the registers to be initialised ("System registers"); kexboot
        // hands over HCR_EL2 with the non-VHE layout (E2H and TGE clear), which every kernel
        // (VHE-capable or not) can start from, and is what its relocator turned the MMU off for.
        t.check(
            e.hcr_el2 & (HCR_E2H | HCR_TGE) == 0,
            "hcr_el2",
            format_args!(
                "{:#x}: E2H={} TGE={} (expected both clear)",
                e.hcr_el2,
                (e.hcr_el2 & HCR_E2H != 0) as u8,
                (e.hcr_el2 & HCR_TGE != 0) as u8
            ),
        );
        // The contract: no FP/SIMD, SVE or SME trap left in CPTR_EL2 (E2H = 0 layout).
        // booting.rst demands these values of CPTR_EL2 for an EL1 entry ("System registers":
        // TFP, TZ, TSM must be 0); for an EL2 entry they are the kernel's own, but a loader
        // that leaves them clear hands over the same state either way. TZ and TSM exist only
        // with SVE and SME (RES1 / RES0 otherwise), so they are checked only then.
        let mut traps = e.cptr_el2 & CPTR_TFP;
        if id.has_sve() {
            traps |= e.cptr_el2 & CPTR_TZ;
        }
        if id.has_sme() {
            traps |= e.cptr_el2 & CPTR_TSM;
        }
        t.check(
            traps == 0,
            "cptr_el2",
            format_args!(
                "{:#x}: trap bits set {traps:#x} (expected TFP{}{} clear)",
                e.cptr_el2,
                if id.has_sve() { ", TZ" } else { "" },
                if id.has_sme() { ", TSM" } else { "" }
            ),
        );
    }
}

/// x0, the DTB, the image, the initrd and the secondary CPUs.
fn check_tree<R: Report>(
    e: &EntryState,
    img: &Range,
    dtb: &[u8],
    id: CpuId,
    m: &mut impl Machine,
    t: &mut Tally<R>,
) {
    let x0 = e.x[0];
    // "2. Setup the device tree" and "4.": x0 = physical address of the DTB in system RAM.
    let size = match dtb_total_size(dtb) {
        Ok(s) => s as u64,
        Err(err) => {
            t.check(
                false,
                "x0",
                format_args!("{x0:#x} does not hold a DTB: {err}"),
            );
            return;
        }
    };
    let fdt = match Fdt::new(dtb) {
        Ok(f) => f,
        Err(err) => {
            t.check(
                false,
                "x0",
                format_args!("{x0:#x}: DTB unreadable: {err:?}"),
            );
            return;
        }
    };
    t.check(
        true,
        "x0",
        format_args!("{x0:#x} holds a DTB ({DTB_MAGIC:#x}, {size} bytes)"),
    );
    t.check(
        x0.is_multiple_of(DTB_ALIGN),
        "dtb-align",
        format_args!("{x0:#x} (expected 8-byte aligned)"),
    );
    t.check(
        size <= DTB_MAX,
        "dtb-size",
        format_args!("{size} bytes (expected at most {DTB_MAX})"),
    );
    let mem = Memory { fdt: &fdt };
    if mem.ram().next().is_none() {
        t.check(false, "memory", format_args!("no /memory node with a reg"));
    }
    let dtb_r = Range::new(x0, size).unwrap_or(Range {
        start: x0,
        end: u64::MAX,
    });
    t.check(
        mem.in_ram(&dtb_r),
        "dtb-in-ram",
        format_args!("{dtb_r} (expected inside one /memory range)"),
    );
    t.check(
        !dtb_r.overlaps(img),
        "dtb-vs-image",
        format_args!("DTB {dtb_r}, image {img} (image_size bytes from the load address)"),
    );
    // "4.": at least image_size bytes from the start of the image free for the kernel: in RAM,
    // and not reserved memory (a loader must not place a kernel over what it reserves).
    t.check(
        mem.in_ram(img),
        "image-in-ram",
        format_args!("{img} (expected inside one /memory range)"),
    );
    match mem.reserved().find(|r| r.overlaps(img)) {
        Some(r) => t.check(
            false,
            "image-vs-reserved",
            format_args!("image {img} overlaps reserved {r}"),
        ),
        None => t.check(
            true,
            "image-vs-reserved",
            format_args!("image {img} overlaps no /memreserve/ or /reserved-memory region"),
        ),
    }
    let bootargs = fdt
        .find_node("/chosen")
        .and_then(|c| c.property("bootargs"))
        .and_then(|p| p.as_str())
        .unwrap_or("");
    t.info("bootargs", format_args!("{bootargs}"));
    check_initrd(&fdt, &mem, img, &dtb_r, bootargs, t);
    check_secondaries(&fdt, &mem, img, id, m, t);
}

/// "3. Setup the initrd": `/chosen` linux,initrd-start/-end, in RAM, clear of the image and the
/// DTB, and in a 1 GiB aligned window of at most 32 GiB that also covers the image.
fn check_initrd<R: Report>(
    fdt: &Fdt,
    mem: &Memory,
    img: &Range,
    dtb: &Range,
    bootargs: &str,
    t: &mut Tally<R>,
) {
    let expected = bootargs.split_whitespace().any(|w| w == EXPECT_INITRD);
    let prop = |n: &str| {
        fdt.find_node("/chosen")?
            .property(n)
            .and_then(|p| be_cells(p.value))
    };
    let (start, end) = match (prop("linux,initrd-start"), prop("linux,initrd-end")) {
        (Some(s), Some(e)) => (s, e),
        (None, None) => {
            t.check(
                !expected,
                "initrd",
                format_args!(
                    "none in /chosen{}",
                    if expected {
                        " but the command line says one was passed"
                    } else {
                        ""
                    }
                ),
            );
            return;
        }
        (s, e) => {
            t.check(
                false,
                "initrd",
                format_args!(
                    "linux,initrd-start {s:?} and -end {e:?}: one is missing or not 1 or 2 cells"
                ),
            );
            return;
        }
    };
    if end <= start {
        t.check(
            false,
            "initrd",
            format_args!("end {end:#x} is not above start {start:#x}"),
        );
        return;
    }
    let r = Range { start, end };
    t.check(true, "initrd", format_args!("{r} ({} bytes)", end - start));
    t.check(
        mem.in_ram(&r),
        "initrd-in-ram",
        format_args!("{r} (expected inside one /memory range)"),
    );
    t.check(
        !r.overlaps(img),
        "initrd-vs-image",
        format_args!("initrd {r}, image {img}"),
    );
    t.check(
        !r.overlaps(dtb),
        "initrd-vs-dtb",
        format_args!("initrd {r}, DTB {dtb}"),
    );
    let lo = r.start.min(img.start) & !(INITRD_WINDOW_ALIGN - 1);
    let hi = r.end.max(img.end);
    t.check(
        hi - lo <= INITRD_WINDOW_MAX,
        "initrd-window",
        format_args!(
            "initrd and image span [{lo:#x}, {hi:#x}) from a 1 GiB boundary (at most 32 GiB)"
        ),
    );
}

/// "4.": every other CPU is off (PSCI: AFFINITY_INFO says OFF) or parked on its spin-table
/// mailbox, which is zero, naturally aligned, in a `/memreserve/`d region and not in the image.
fn check_secondaries<R: Report>(
    fdt: &Fdt,
    mem: &Memory,
    img: &Range,
    id: CpuId,
    m: &mut impl Machine,
    t: &mut Tally<R>,
) {
    let Some(cpus) = fdt.find_node("/cpus") else {
        t.check(false, "cpus", format_args!("no /cpus node"));
        return;
    };
    let conduit = psci_conduit(fdt);
    let me = id.mpidr & MPIDR_AFF_MASK;
    let (mut seen_self, mut n) = (false, 0u32);
    for cpu in cpus.children() {
        if cpu.name.split('@').next() != Some("cpu") {
            continue;
        }
        n += 1;
        let name = cpu.name;
        let Some(reg) = cpu.property("reg").and_then(|p| be_cells(p.value)) else {
            t.check(false, name, format_args!("no usable reg"));
            continue;
        };
        if reg & MPIDR_AFF_MASK == me {
            seen_self = true;
            continue;
        }
        match cpu.property("enable-method").and_then(|p| p.as_str()) {
            Some("psci") => {
                let Some(c) = conduit else {
                    t.check(
                        false,
                        name,
                        format_args!("enable-method psci but no /psci method"),
                    );
                    continue;
                };
                let st = m.affinity_info(c, reg);
                t.check(
                    st == PSCI_AFFINITY_OFF,
                    name,
                    format_args!("psci AFFINITY_INFO({reg:#x}) via {c} = {st} (expected 1, OFF)"),
                );
            }
            Some("spin-table") => {
                let Some(mb) = cpu
                    .property("cpu-release-addr")
                    .and_then(|p| be_cells(p.value))
                else {
                    t.check(
                        false,
                        name,
                        format_args!("spin-table without a cpu-release-addr"),
                    );
                    continue;
                };
                let slot = Range::new(mb, 8).unwrap_or(Range {
                    start: mb,
                    end: u64::MAX,
                });
                let aligned = mb.is_multiple_of(8);
                let in_ram = mem.in_ram(&slot);
                let reserved = mem.reserved().any(|r| slot.within(&r));
                let outside = !slot.overlaps(img);
                // Read it only when it is plain RAM we may touch.
                let value = (aligned && in_ram).then(|| m.read_u64(mb));
                let ok = aligned && in_ram && reserved && outside && value == Some(0);
                t.check(
                    ok,
                    name,
                    format_args!(
                        "spin-table mailbox {mb:#x}: aligned={aligned} in-ram={in_ram} \
                         reserved={reserved} outside-image={outside} value={value:?} \
                         (expected all true, value Some(0))"
                    ),
                );
            }
            other => t.check(
                false,
                name,
                format_args!("enable-method {other:?} (expected \"psci\" or \"spin-table\")"),
            ),
        }
    }
    t.check(
        seen_self,
        "boot-cpu",
        format_args!(
            "MPIDR {me:#x} {} among {n} cpu nodes",
            if seen_self { "found" } else { "not found" }
        ),
    );
}

/// "Architected timers": entered at EL1, CNTHCTL_EL2.EL1PCTEN must be set where EL2 exists, so
/// the physical counter is readable at EL1. The probe cannot read CNTHCTL_EL2 from EL1, so it
/// reads CNTPCT_EL0: a trap to EL2 never returns (the e2e case then sees no "done" line).
fn check_counter<R: Report>(e: &EntryState, m: &mut impl Machine, t: &mut Tally<R>) {
    t.info("cntpct", format_args!("reading the physical counter"));
    let v = m.read_counter();
    t.check(
        true,
        "cntpct",
        format_args!("CNTPCT_EL0 = {v} read at EL{} without a trap", e.el()),
    );
}

/// The FP/SIMD, SVE and SME traps of the levels above the probe. booting.rst "System registers"
/// requires CPTR_EL3.TFP = 0 and CPTR_EL3.EZ = 1 (and, for an EL1 entry, CPTR_EL2.TFP = TZ = 0):
/// the probe cannot read those registers, so it runs the instructions. A trap taken above hangs
/// or kills the run, so the "trying" line comes first and the e2e case sees no "done" line.
fn check_fp<R: Report>(e: &EntryState, id: CpuId, m: &mut impl Machine, t: &mut Tally<R>) {
    let above = match e.el() {
        1 => "EL2/EL3",
        _ => "EL3",
    };
    t.info("fp", format_args!("running an FP/SIMD instruction"));
    m.run_fp();
    t.check(
        true,
        "fp",
        format_args!("FP/SIMD instruction ran: not trapped by {above}"),
    );
    if id.has_sve() {
        t.info("sve", format_args!("running an SVE instruction"));
        m.run_sve();
        t.check(
            true,
            "sve",
            format_args!("SVE instruction ran: not trapped by {above}"),
        );
    } else {
        t.info("sve", format_args!("the CPU has no SVE"));
    }
    // SME: CPTR_EL3.ESM = 1 (and for an EL1 entry CPTR_EL2.TSM = 0, SMEN = 0b11).
    if id.has_sme() {
        t.info("sme", format_args!("running an SME instruction"));
        m.run_sme();
        t.check(
            true,
            "sme",
            format_args!("SME instruction ran: not trapped by {above}"),
        );
    } else {
        t.info("sme", format_args!("the CPU has no SME"));
    }
}

#[cfg(test)]
mod tests;
