//! kexboot's firmware as a [`Board`] for the boot logic (`kexboot_boot::shell`): the PL011
//! console, the generic timer, `rndr`, the heap as staging memory, virtio-blk and virtio-net,
//! identity-mapped RAM, PSCI, and what every jump does first (stop DMA, check the
//! secondaries, leave the handoff record) before the one relocator runs.

use alloc::string::String;
use alloc::vec::Vec;

use kexboot_boot::board::{Board, Jump, PowerError};
use kexboot_boot::flow::Staging;
use kexboot_boot::memory::Layout;
use kexboot_loader::dt::{self, CpuProps, DtInfo, Fixups, ReservedNode};
use kexboot_loader::mem::Range;

use crate::arch::{psci, regs};
use crate::bcm2835_pm::{self, Watchdog};
use crate::disk::Disk;
use crate::heap::{self, PageBuf};
use crate::term::{Serial, Timer};
use crate::virtio_net::{self, VirtioNet};
use crate::{relocation, smp, timer, warm};

/// The heap, handing out page-aligned buffers (identity-mapped: address = pointer).
pub struct HeapStaging;

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
