//! kexboot's firmware as a [`Board`] for the boot logic (`kexboot_boot::shell`): the PL011
//! console, the generic timer, `rndr`, the heap as staging memory, virtio-blk and virtio-net,
//! identity-mapped RAM, PSCI, and what every jump does first (stop DMA, check the
//! secondaries, leave the handoff record) before the one relocator runs.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use kexboot_boot::board::{Board, Jump, PowerError};
use kexboot_boot::flow::Staging;
use kexboot_boot::memory::Layout;
use kexboot_loader::dt::{self, CpuProps, DtInfo, Fixups, ReservedNode};
use kexboot_loader::fit::Keys;
use kexboot_loader::mem::Range;

use crate::arch::{psci, regs};
use crate::bcm2835_pm::{self, Watchdog};
use crate::disk::Disk;
use crate::heap::{self, PageBuf};
use crate::term::{Serial, Timer};
use crate::virtio_net::{self, VirtioNet};
use crate::{relocation, smp, timer, warm};

/// The heap, handing out page-aligned buffers (identity-mapped: address = pointer), and buffers
/// at a boot image's final place in free RAM, so a file is read where it runs and the relocator
/// only cleans it ([`Staging::at`]).
pub struct HeapStaging {
    /// Free RAM ([`Layout::writable`]): mapped, clear of kexboot, its heap, the DTB, reserved
    /// and kept memory. In a warm entry the same view: what the previous kernel left in use is
    /// reserved or kept, never here.
    writable: Vec<Range>,
    /// Page spans of the live buffers [`Staging::at`] handed out.
    placed: Rc<RefCell<Vec<Range>>>,
}

impl HeapStaging {
    pub fn new(writable: Vec<Range>) -> Self {
        HeapStaging {
            writable,
            placed: Rc::default(),
        }
    }
}

/// A buffer in the heap, or at a fixed place in free RAM.
pub enum StagedBuf {
    Heap(PageBuf),
    Placed(PlacedBuf),
}

/// `len` bytes of free RAM at `addr`, this buffer's alone until it is dropped.
pub struct PlacedBuf {
    addr: u64,
    len: usize,
    /// The pages it holds, given back on drop.
    span: Range,
    placed: Rc<RefCell<Vec<Range>>>,
}

impl Drop for PlacedBuf {
    fn drop(&mut self) {
        self.placed.borrow_mut().retain(|r| *r != self.span);
    }
}

impl AsRef<[u8]> for StagedBuf {
    fn as_ref(&self) -> &[u8] {
        match self {
            StagedBuf::Heap(b) => b.as_ref(),
            // SAFETY: `HeapStaging::at` checked that `[addr, addr + len)` is identity-mapped
            // free RAM that nothing of kexboot's uses and no other live buffer holds.
            StagedBuf::Placed(p) => unsafe {
                core::slice::from_raw_parts(p.addr as *const u8, p.len)
            },
        }
    }
}

impl AsMut<[u8]> for StagedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            StagedBuf::Heap(b) => b.as_mut(),
            // SAFETY: as in `as_ref`; `&mut self` makes this the only reference.
            StagedBuf::Placed(p) => unsafe {
                core::slice::from_raw_parts_mut(p.addr as *mut u8, p.len)
            },
        }
    }
}

impl Staging for HeapStaging {
    type Buf = StagedBuf;

    fn alloc(&mut self, len: usize) -> Option<StagedBuf> {
        PageBuf::new(len).map(StagedBuf::Heap)
    }

    fn addr(&self, buf: &StagedBuf) -> u64 {
        match buf {
            StagedBuf::Heap(b) => b.addr(),
            StagedBuf::Placed(p) => p.addr,
        }
    }

    fn free_bytes(&self) -> u64 {
        heap::free_bytes() as u64
    }

    fn at(&mut self, r: Range) -> Option<StagedBuf> {
        let span = r.page_rounded()?;
        let len = usize::try_from(r.len()).ok()?;
        let free = span.start() == r.start()
            && self.writable.iter().any(|w| w.contains_range(&span))
            && !self.placed.borrow().iter().any(|p| p.overlaps(&span));
        if !free {
            return None;
        }
        self.placed.borrow_mut().push(span);
        Some(StagedBuf::Placed(PlacedBuf {
            addr: r.start(),
            len,
            span,
            placed: self.placed.clone(),
        }))
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

/// The firmware as the boot logic's board: what it keeps for the kernel and the next kexboot
/// (handoff page, spin-table pen), its device-tree changes, and the RAM it may hand out.
pub struct Firmware<'a> {
    pub name: &'static str,
    pub info: &'a DtInfo,
    pub handoff: Option<warm::Handoff>,
    pub pen: Option<smp::Pen>,
    pub own: OwnFixups,
    /// RAM kexboot mapped (no `no-map` region): the only RAM it reads.
    pub mapped: Vec<Range>,
    /// Free RAM: mapped, and clear of kexboot, its heap, the DTB, reserved and kept memory.
    pub writable: Vec<Range>,
    /// The trusted verified-boot keys built in ([`built_in_keys`]).
    pub keys: Keys,
}

/// The key blob `cargo xtask build --keys` built in (empty: none).
static KEYS_DTB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/keys.dtb"));

/// The built-in keys. xtask checks the blob before it builds; should it still not parse here,
/// verified boot fails closed: every boot is refused.
pub fn built_in_keys() -> Keys {
    match Keys::parse(KEYS_DTB) {
        Ok(k) => k,
        Err(e) => {
            log::error!("verified boot: the built-in keys are unusable ({e}): nothing will boot");
            Keys::broken()
        }
    }
}

impl Firmware<'_> {
    /// The BCM2835 power-management watchdog, when the tree has one and no PSCI (a Raspberry
    /// Pi's firmware gives none; kexboot's own EL3 monitor, when it runs, does).
    fn watchdog(&self) -> Option<Watchdog> {
        if self.info.psci_method.is_some() {
            return None;
        }
        let dev = bcm2835_pm::COMPATIBLE
            .iter()
            .find_map(|c| self.info.device(c))?;
        // SAFETY: the tree names this PM block; start() mapped it as Device memory (it is in
        // `board::DRIVEN`), and nothing else drives it.
        Some(unsafe { Watchdog::new(dev.reg.start() as usize) })
    }

    /// What every jump does once nothing can fail any more: reset every virtio device (disk,
    /// network: no DMA into the next kernel), check the secondaries, leave the handoff record,
    /// and tell an EL3 monitor which DTB a SYSTEM_RESET should bring back.
    fn before_jump(&self, label: &str, dtb: u64) {
        crate::virtio::reset_all(&self.info.virtio_mmio, |_| {});
        smp::report_before_jump(self.info, self.pen.as_ref());
        if let Some(h) = &self.handoff {
            h.write(label);
        }
        crate::arch::el3::note_next_dtb(dtb);
    }
}

/// The watchdog reset or halt returned: the machine is still running.
fn watchdog_failed() -> PowerError {
    log::error!("the BCM2835 watchdog did not reset the machine");
    PowerError::Returned(0)
}

fn power(r: Result<(), psci::PsciError>) -> PowerError {
    match r {
        Err(psci::PsciError::NoPsci) => PowerError::Unsupported,
        Err(psci::PsciError::Returned(code)) => PowerError::Returned(code),
        Ok(()) => PowerError::Returned(0),
    }
}

impl Board for Firmware<'_> {
    type Console = Serial;
    type Clock = Timer;
    type Disk = Disk;
    type Nic = VirtioNet;
    type Staging = HeapStaging;

    fn name(&self) -> &'static str {
        self.name
    }

    fn console(&self) -> Serial {
        Serial
    }

    fn clock(&self) -> Timer {
        Timer
    }

    fn since_reset_us(&self) -> u64 {
        timer::since_reset_us()
    }

    fn mark(&mut self, stage: &'static str) {
        timer::mark(stage);
    }

    fn stages(&self) -> Vec<(&'static str, u64)> {
        timer::stages()
    }

    fn random_seeds(&mut self) -> Option<(u64, [u8; 64])> {
        let kaslr = regs::hw_random()?;
        let mut rng = [0u8; 64];
        for chunk in rng.chunks_mut(8) {
            chunk.copy_from_slice(&regs::hw_random()?.to_le_bytes());
        }
        Some((kaslr, rng))
    }

    fn find_nic(&mut self) -> Option<VirtioNet> {
        let nic = virtio_net::find(&self.info.virtio_mmio)?;
        log::info!(
            "virtio-net at {:#x}, MAC {}",
            nic.base,
            kexboot_boot::netenv::mac_str(kexboot_net::Nic::mac(&nic))
        );
        Some(nic)
    }

    fn ram(&self, r: Range) -> Option<&[u8]> {
        if !self.mapped.iter().any(|m| m.contains_range(&r)) {
            return None;
        }
        let len = usize::try_from(r.len()).ok()?;
        // SAFETY: `r` lies in RAM kexboot identity-mapped (checked above); nothing of kexboot's
        // writes it while a command runs (one CPU, one command at a time).
        Some(unsafe { core::slice::from_raw_parts(r.start() as *const u8, len) })
    }

    fn ram_mut(&mut self, r: Range) -> Option<&mut [u8]> {
        if !self.writable.iter().any(|w| w.contains_range(&r)) {
            return None;
        }
        let len = usize::try_from(r.len()).ok()?;
        // SAFETY: `r` is identity-mapped free RAM that nothing of kexboot's uses (not its image,
        // heap and stacks, the DTB, reserved or kept memory: checked above).
        Some(unsafe { core::slice::from_raw_parts_mut(r.start() as *mut u8, len) })
    }

    fn keys(&self) -> &Keys {
        &self.keys
    }

    fn own_fixups(&self, dtb: &[u8]) -> Result<Vec<u8>, kexboot_loader::Error> {
        self.own.apply(dtb)
    }

    fn jump(&mut self, layout: &Layout, j: &Jump) -> kexboot_relocate::Error {
        let mut before_jump = || self.before_jump(j.label, j.dtb);
        relocation::boot(j.segments, layout, j.entry, j.dtb, &mut before_jump)
    }

    fn reset(&mut self) -> PowerError {
        match self.watchdog() {
            Some(mut w) => {
                w.reset();
                watchdog_failed()
            }
            None => power(psci::system_reset(self.info)),
        }
    }

    fn power_off(&mut self) -> PowerError {
        match self.watchdog() {
            Some(mut w) => {
                w.power_off();
                watchdog_failed()
            }
            None => power(psci::system_off(self.info)),
        }
    }

    fn raise_exception(&mut self) {
        crate::arch::undefined_instruction()
    }

    fn copy_benchmark(&mut self, layout: &Layout) {
        crate::bench::run(layout)
    }
}
