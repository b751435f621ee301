//! The firmware side of the boot flow (`kexboot_boot::flow`): the boot disk, the heap as
//! staging memory, the generic timer as the clock, `rndr` as the random source. The flow tries
//! the entries in order; each plan it yields goes to the one relocator.

use alloc::vec::Vec;

use alloc::string::String;
use kexboot_boot::env::{BootRequest, Env};
use kexboot_boot::envstore;
use kexboot_boot::flow::{self, MemoryView, Platform, Staging};
use kexboot_fs::{FatFs, PartitionDevice};
use kexboot_loader::dt::{self, CpuProps, DtInfo, Fixups, ReservedNode};
use kexboot_loader::mem::Range;

use crate::arch::regs;
use crate::heap::{self, PageBuf};
use crate::memory::MemoryLayout;
use crate::virtio::VirtioBlk;
use kexboot_boot::line::Term;
use kexboot_boot::ui::{Menu, MenuAction};
use kexboot_boot::{Clock, Console};

use crate::net_state::Net;
use crate::{relocation, smp, term, timer, warm};

/// A file that asks for the in-guest copy benchmark before booting.
const BENCH_MARKER: &str = "/kexboot/bench";

pub type BootFs = FatFs<PartitionDevice<VirtioBlk>>;

/// The heap, handing out page-aligned buffers (identity-mapped: address = pointer).
pub(crate) struct HeapStaging;

impl Staging for HeapStaging {
    type Buf = PageBuf;

    fn alloc(&mut self, len: usize) -> Option<PageBuf> {
        PageBuf::new(len)
    }

    fn addr(&self, buf: &PageBuf) -> u64 {
        buf.addr()
    }

    fn free_bytes(&self) -> u64 {
        heap::free_bytes() as u64
    }
}

/// The flow's clock and random source: the generic timer and `rndr`.
struct FlowPlatform;

impl Clock for FlowPlatform {
    fn now_us(&self) -> u64 {
        timer::since_start_us()
    }
}

impl Platform for FlowPlatform {
    fn random_seeds(&mut self) -> Option<(u64, [u8; 64])> {
        let kaslr = regs::hw_random()?;
        let mut rng = [0u8; 64];
        for chunk in rng.chunks_mut(8) {
            chunk.copy_from_slice(&regs::hw_random()?.to_le_bytes());
        }
        Some((kaslr, rng))
    }
}

/// Everything the boot commands and the shell act on.
pub struct Firmware<'a> {
    pub fs: Option<BootFs>,
    pub layout: MemoryLayout,
    pub base_dtb: Vec<u8>,
    pub request: BootRequest,
    pub handoff: Option<warm::Handoff>,
    pub pen: Option<smp::Pen>,
    /// kexboot's own changes to every device tree it hands over.
    pub own: OwnFixups,
    pub info: &'a DtInfo,
    /// The saved environment's copies (for `saveenv`), once read.
    pub store: Option<envstore::Loaded>,
    /// The network, once a network command needed it.
    pub net: Net,
    /// The board's name (`version`, the `board` variable).
    pub board: &'static str,
    /// The board's default environment (`env default`).
    pub defaults: Env,
}

impl Firmware<'_> {
    /// The environment: the saved one (`/kexboot/env.bin`, two copies with CRC and sequence)
    /// when it has a valid copy, else board defaults plus `/kexboot/env.txt`.
    pub fn load_env(&mut self, from_txt: Env) -> Env {
        let mut defaults = self.defaults.clone();
        for (k, v) in from_txt.iter_sorted() {
            defaults.set(k, v);
        }
        let region = match self
            .fs
            .as_mut()
            .map(|fs| fs.read_file(envstore::STORE_PATH, envstore::REGION_SIZE))
        {
            Some(Ok(r)) => r,
            Some(Err(kexboot_fs::Error::NotFound)) | None => Vec::new(),
            Some(Err(e)) => {
                log::warn!("{}: {e}", envstore::STORE_PATH);
                Vec::new()
            }
        };
        let loaded = envstore::load(&region, envstore::COPY_SIZE, &defaults);
        for note in &loaded.notes {
            log::info!("environment: {note}");
        }
        let env = loaded.env.clone();
        self.store = Some(loaded);
        env
    }

    /// Hands `segments` to the relocator (for `booti`), after what every jump does first;
    /// returns only when the plan is refused.
    pub fn jump(
        &mut self,
        segments: &[kexboot_relocate::Segment],
        entry: u64,
        dtb: u64,
        label: &str,
    ) -> kexboot_relocate::Error {
        let kept = Kept::new(&self.handoff, &self.pen, self.info);
        let mut before_jump = || kept.before_jump(label, dtb);
        relocation::boot(segments, &self.layout, entry, dtb, &mut before_jump)
    }

    /// Runs the extlinux flow (optionally for one label); returns only when nothing booted.
    pub fn boot(&mut self, label: Option<&str>, force_menu: bool) -> Result<(), DiskBootError> {
        let Some(fs) = self.fs.as_mut() else {
            return Err(DiskBootError::NoDisk);
        };
        let mut request = self.request.clone();
        if let Some(l) = label {
            request.entry = Some(l.into());
        }
        let kept = Kept::new(&self.handoff, &self.pen, self.info);
        match boot_from_config(
            fs,
            &self.layout,
            &self.base_dtb,
            &request,
            &kept,
            force_menu,
        ) {
            Outcome::Failed => Err(DiskBootError::NothingBooted),
            Outcome::Shell => Ok(()),
        }
    }
}

/// Why `boot` (the disk's extlinux flow) came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBootError {
    NoDisk,
    /// Every entry failed (each said why as it was tried).
    NothingBooted,
}

impl core::fmt::Display for DiskBootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DiskBootError::NoDisk => "no disk with a FAT boot partition",
            DiskBootError::NothingBooted => "no entry could be booted",
        })
    }
}

/// kexboot's own changes to a device tree, the one place every tree it hands over goes through
/// (the extlinux flow, PXE and a warm entry through the tree they start from, `booti` with a
/// tree the person names): the handoff page and the ramoops region as `/reserved-memory`
/// nodes, in spin-table mode the pen's `/memreserve/` and every cpu node's `enable-method` and
/// `cpu-release-addr`, under kexboot's EL3 monitor `enable-method = "psci"` and its `/psci`.
/// Without them the kernel could take the page the secondaries spin in, or lose the handoff.
pub struct OwnFixups {
    handoff: Option<(String, ReservedNode<'static>)>,
    ramoops: Option<(String, ReservedNode<'static>)>,
    cpu_props: Vec<CpuProps<'static>>,
    memreserve: Vec<Range>,
}

impl OwnFixups {
    pub fn new(
        handoff: Option<&warm::Handoff>,
        ramoops: Option<warm::Ramoops>,
        pen: Option<&smp::Pen>,
        info: &DtInfo,
    ) -> Self {
        let cpu_props = pen.map(smp::Pen::cpu_props).unwrap_or_default();
        // Under kexboot's own EL3 monitor, cpu nodes say "psci" (unless the pen took them).
        let cpu_props = match (pen.is_none(), crate::arch::el3::cpu_props(info)) {
            (true, Some(psci)) => psci,
            _ => cpu_props,
        };
        OwnFixups {
            handoff: handoff.map(|h| (h.node_name(), h.node(""))),
            ramoops: ramoops.map(|r| (r.node_name(), r.node(""))),
            cpu_props,
            memreserve: pen.iter().map(|p| p.page).collect(),
        }
    }

    /// `dtb` with kexboot's changes.
    pub fn apply(&self, dtb: &[u8]) -> Result<Vec<u8>, kexboot_loader::Error> {
        let nodes: Vec<ReservedNode> = [&self.handoff, &self.ramoops]
            .into_iter()
            .flatten()
            .map(|(name, node)| ReservedNode {
                name: name.as_str(),
                ..node.clone()
            })
            .collect();
        let fixups = Fixups {
            reserved_nodes: &nodes,
            cpu_props: &self.cpu_props,
            extra_reserved: &self.memreserve,
            ..Default::default()
        };
        let d = dt::fixup(dtb, &fixups)?;
        Ok(crate::arch::el3::describe(d)) // `/psci` of kexboot's EL3 monitor, when it runs
    }
}

/// What this boot keeps for the kernel and the next kexboot.
pub(crate) struct Kept<'a> {
    pub handoff: Option<&'a warm::Handoff>,
    pub pen: Option<&'a smp::Pen>,
    pub info: &'a DtInfo,
}

impl<'a> Kept<'a> {
    pub fn new(
        handoff: &'a Option<warm::Handoff>,
        pen: &'a Option<smp::Pen>,
        info: &'a DtInfo,
    ) -> Self {
        Kept {
            handoff: handoff.as_ref(),
            pen: pen.as_ref(),
            info,
        }
    }

    /// What every jump does once nothing can fail any more: reset every virtio device (disk,
    /// network: no DMA into the next kernel), check the secondaries, leave the handoff record,
    /// and tell an EL3 monitor which DTB a SYSTEM_RESET should bring back.
    pub(crate) fn before_jump(&self, label: &str, dtb: u64) {
        crate::virtio::reset_all(&self.info.virtio_mmio, |_| {});
        smp::report_before_jump(self.info, self.pen);
        if let Some(h) = self.handoff {
            h.write(label);
        }
        crate::arch::el3::note_next_dtb(dtb);
    }
}

/// Why the boot flow came back.
pub(crate) enum Outcome {
    /// No entry could be booted.
    Failed,
    /// The person asked for the shell.
    Shell,
}

/// How long a terminal may take to answer the cursor-position query.
const TERM_PROBE_US: u64 = 30_000;

/// ANSI when the terminal answers a cursor-position query (`ESC [ 6 n` → `ESC [ r ; c R`) within
/// 30 ms, else plain text (a log, a pipe, a dumb terminal).
pub fn probe_term() -> Term {
    let (mut con, clock) = (term::Serial, term::Timer);
    while con.read_byte().is_some() {} // nothing typed before counts as an answer
    con.write_str("\x1b[6n");
    let t0 = clock.now_us();
    let mut seen_esc = false;
    while clock.now_us().saturating_sub(t0) < TERM_PROBE_US {
        match con.read_byte() {
            Some(0x1b) => seen_esc = true,
            Some(b'R') if seen_esc => return Term::ANSI,
            _ => core::hint::spin_loop(),
        }
    }
    // Nobody answered: a log or a dumb terminal, where the query may show as text; start what
    // follows on a line of its own.
    con.write_str("\r\n");
    Term::DUMB
}

/// Shows the boot menu if the config asks for one (timeout/prompt), else boots the default.
fn show_menu(config: &kexboot_boot::extlinux::Config, always: bool) -> MenuAction {
    let immediate = config.timeout_ds.unwrap_or(0) == 0 && !config.prompt && !always;
    let term = if immediate { Term::DUMB } else { probe_term() };
    let mut menu = match always {
        true => Menu::interactive(config, term),
        false => Menu::new(config, term),
    };
    menu.run_with(&mut term::Serial, &term::Timer, |_, t| {
        timer::mark("boot menu drawn");
        log::info!("boot menu drawn ({} ms after kexboot entry)", t / 1000)
    })
}

/// The disk's extlinux.conf flow; returns only when no entry could be booted.
fn boot_from_config(
    fs: &mut BootFs,
    layout: &MemoryLayout,
    dtb: &[u8],
    request: &BootRequest,
    kept: &Kept,
    force_menu: bool,
) -> Outcome {
    if fs.stat(BENCH_MARKER).is_ok() {
        crate::bench::run(layout);
    }
    let (path, config) = match flow::load_config(fs) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return Outcome::Failed;
        }
    };
    timer::mark("config read");
    log::info!("{path}: {} entries", config.entries.len());
    let boot = ConfigBoot {
        layout,
        dtb,
        request,
        kept,
        force_menu,
    };
    boot.run(fs, path, config)
}

/// One boot through an extlinux-format config, from the disk or over the network (PXE).
pub(crate) struct ConfigBoot<'a> {
    pub layout: &'a MemoryLayout,
    pub dtb: &'a [u8],
    pub request: &'a BootRequest,
    pub kept: &'a Kept<'a>,
    pub force_menu: bool,
}

impl ConfigBoot<'_> {
    /// The menu (when the config asks for one), then every entry in boot order, with paths
    /// resolved against `path` by `files`; returns only when none could be booted.
    pub fn run(
        &self,
        files: &mut dyn flow::Files,
        path: &str,
        mut config: kexboot_boot::extlinux::Config,
    ) -> Outcome {
        let (layout, dtb, request, kept, force_menu) = (
            self.layout,
            self.dtb,
            self.request,
            self.kept,
            self.force_menu,
        );
        for said in request.apply(&mut config) {
            log::info!("{said}");
        }
        // The boot menu, when the config asks for one; a warm reboot that named its entry skips it.
        if request.entry.is_none() || force_menu {
            match show_menu(&config, force_menu) {
                MenuAction::Shell => return Outcome::Shell,
                MenuAction::Boot {
                    index,
                    append_override,
                } => {
                    config.default = Some(config.entries[index].label.clone());
                    if let Some(a) = append_override {
                        config.entries[index].append = Some(a);
                    }
                }
            }
        }
        let avoid = layout.avoid();
        let mem = MemoryView {
            ram: &layout.ram,
            avoid: &avoid,
        };
        let mut from = 0;
        loop {
            let (found, _failures) = flow::next_bootable(
                files,
                &mut HeapStaging,
                &mut FlowPlatform,
                &mem,
                dtb,
                path,
                &config,
                from,
            );
            let Some((pos, prepared)) = found else {
                return Outcome::Failed;
            };
            let label = prepared.label.clone();
            let mut before_jump = || kept.before_jump(&label, prepared.dtb);
            let err = relocation::boot(
                &prepared.segments,
                layout,
                prepared.entry,
                prepared.dtb,
                &mut before_jump,
            );
            log::error!(
                "entry '{}': {}",
                prepared.label,
                flow::BootError::Relocate(err)
            );
            from = pos + 1;
        }
    }
}
