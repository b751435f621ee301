//! How secondary CPUs reach the kernel. By default as the platform describes it (PSCI on QEMU
//! virt: the secondaries stay off and Linux starts them with CPU_ON). With `smp_method=spin-table`
//! in `/kexboot/env.txt`, kexboot takes them with PSCI CPU_ON at start, parks them in its own pen
//! (`arch::pen`) and offers them to the kernel as `enable-method = "spin-table"` with a
//! `cpu-release-addr` each: the method of boards without PSCI, testable here.

use alloc::vec::Vec;

use kexboot_boot::env::Env;
use kexboot_loader::dt::{CpuProps, DtInfo};
use kexboot_loader::mem::Range;

use crate::arch::psci::{self, CpuState};
use crate::arch::{pen, regs};
use crate::timer::Stopwatch;
use kexboot_boot::memory::Layout;

use kexboot_loader::mem::PAGE_SIZE as PAGE;
/// Mailboxes start here in the pen's page, one u64 per cpu node.
const MAILBOX_OFFSET: u64 = 0x800;
const MAX_CPUS: usize = ((PAGE - MAILBOX_OFFSET) / 8) as usize;
/// How long a secondary may take to reach the pen after CPU_ON.
const CPU_ON_TIMEOUT_US: u64 = 1_000_000;

/// Whether `env.txt` asks for the spin-table method.
pub fn wants_spin_table(env: &Env) -> bool {
    match env.get("smp_method") {
        Some("spin-table") => true,
        Some("psci") | None => false,
        Some(other) => {
            log::warn!("smp_method={other}: unknown (spin-table or psci); using the platform's");
            false
        }
    }
}

/// The pen page and every CPU's mailbox.
pub struct Pen {
    pub page: Range,
    mailboxes: Vec<(u64, u64)>,
}

impl Pen {
    /// Writes the pen, starts every secondary into it with PSCI CPU_ON and waits until each is
    /// on. Refused (nothing started) when there is no PSCI or too many CPUs.
    pub fn start(info: &DtInfo, layout: &mut Layout) -> Result<Pen, &'static str> {
        if info.psci_method.is_none() {
            return Err("no PSCI to take the secondaries with");
        }
        if info.cpu_nodes.len() > MAX_CPUS {
            return Err("more CPUs than mailboxes in one page");
        }
        let code = pen::code();
        if code.len() as u64 > MAILBOX_OFFSET {
            return Err("pen code larger than its slot");
        }
        // A reserved page that starts with this very pen code is kexboot's pen from the boot
        // before (its /memreserve/ came back with the tree): reuse it rather than leak a page per
        // warm boot.
        let previous = info.reserved.iter().copied().find(|r| {
            r.start() % PAGE == 0
                && r.len() == PAGE
                // Never a `no-map` region: it is not mapped, and a read would fault.
                && layout.readable(r)
                // SAFETY: a page-aligned page inside mapped RAM (identity-mapped Normal memory,
                // no `no-map` region); only read.
                && unsafe { core::slice::from_raw_parts(r.start() as *const u8, code.len()) } == code
        });
        let page = match previous {
            Some(r) => {
                log::info!(
                    "spin-table: reusing the pen page {:#x} of the previous boot",
                    r.start()
                );
                r
            }
            None => layout.take_high(PAGE).ok_or("no free page for the pen")?,
        };
        let mailboxes: Vec<(u64, u64)> = info
            .cpu_nodes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.reg, page.start() + MAILBOX_OFFSET + 8 * i as u64))
            .collect();
        // SAFETY: the page was just taken from free RAM for the pen alone (mapped Normal);
        // code and zeroed mailboxes are cleaned to PoC because the secondaries run them with
        // the MMU and caches off, and the I-cache is invalidated for the code.
        unsafe {
            core::ptr::write_bytes(page.start() as *mut u8, 0, PAGE as usize);
            core::ptr::copy_nonoverlapping(code.as_ptr(), page.start() as *mut u8, code.len());
            kexboot_relocate::arch::clean_inval_dcache_range(page.start(), PAGE);
            core::arch::asm!("ic iallu", "dsb ish", "isb", options(nostack));
        }
        let me = regs::mpidr();
        for &(mpidr, mailbox) in mailboxes.iter().filter(|(m, _)| *m != me) {
            if let Err(e) = psci::cpu_on(info, mpidr, page.start(), mailbox) {
                log::warn!("CPU {mpidr:#x}: CPU_ON into the pen: {e}");
                continue;
            }
            let sw = Stopwatch::start();
            while !matches!(psci::affinity_info(info, mpidr), Ok(CpuState::On)) {
                if sw.elapsed_us() > CPU_ON_TIMEOUT_US {
                    log::warn!("CPU {mpidr:#x} did not come on within 1 s");
                    break;
                }
                crate::arch::poll_pause();
            }
        }
        log::info!(
            "spin-table: {} secondaries parked in kexboot's pen at {:#x}",
            mailboxes.len().saturating_sub(1),
            page.start()
        );
        Ok(Pen { page, mailboxes })
    }

    /// `enable-method = "spin-table"` and a `cpu-release-addr` for every cpu node.
    pub fn cpu_props(&self) -> Vec<CpuProps<'static>> {
        self.mailboxes
            .iter()
            .map(|&(reg, mailbox)| CpuProps {
                reg,
                props: alloc::vec![
                    ("enable-method", b"spin-table\0".to_vec()),
                    ("cpu-release-addr", mailbox.to_be_bytes().to_vec()),
                ],
            })
            .collect()
    }
}

/// Without PSCI (a Raspberry Pi's firmware): the secondaries' `cpu-release-addr`s, where the
/// firmware parks them for the kernel to release; and how many have neither PSCI nor one.
pub fn firmware_spin_table(info: &DtInfo) -> (Vec<u64>, usize) {
    let me = regs::mpidr();
    let mut parked = Vec::new();
    let mut stranded = 0;
    for c in info.cpu_nodes.iter().filter(|c| c.reg != me) {
        match (c.enable_method.as_deref(), c.release_addr) {
            (Some("spin-table"), Some(addr)) => parked.push(addr),
            _ => stranded += 1,
        }
    }
    (parked, stranded)
}

/// Says where the secondaries wait when there is no PSCI to ask.
fn report_spin_table(info: &DtInfo, when: &str) {
    let (parked, stranded) = firmware_spin_table(info);
    let mut addrs = alloc::string::String::new();
    for a in &parked {
        addrs += &alloc::format!(" {a:#x}");
    }
    log::info!(
        "{when}: {} secondaries on the firmware's spin-table (cpu-release-addr{addrs}); the kernel releases them",
        parked.len(),
    );
    if stranded > 0 {
        log::warn!("{when}: {stranded} secondaries have neither PSCI nor a spin-table: the kernel cannot start them");
    }
}

/// At start: which CPUs are where. With PSCI, every secondary must be off (the kernel starts
/// them with CPU_ON; after a warm reboot Linux must have returned them with CPU_OFF); without,
/// they wait on the firmware's spin-table.
pub fn report_at_start(info: &DtInfo) {
    let me = regs::mpidr();
    if info.psci_method.is_none() {
        return report_spin_table(info, "CPUs");
    }
    let mut off = 0;
    for cpu in info.cpu_nodes.iter().filter(|c| c.reg != me) {
        match psci::affinity_info(info, cpu.reg) {
            Ok(CpuState::Off) => off += 1,
            Ok(state) => log::warn!(
                "CPU {:#x} is {:?}: it is not under kexboot's control and cannot be handed to the kernel",
                cpu.reg,
                state
            ),
            Err(e) => log::warn!("CPU {:#x}: AFFINITY_INFO: {e}", cpu.reg),
        }
    }
    log::info!(
        "CPUs: boot CPU {me:#x} here, {off} of {} secondaries off (PSCI AFFINITY_INFO)",
        info.cpu_nodes.len().saturating_sub(1)
    );
}

/// Before the jump: with PSCI every secondary must be off (the kernel starts them); with the
/// pen they must all be in it; without PSCI they wait on the firmware's spin-table. Reports
/// either way.
pub fn report_before_jump(info: &DtInfo, pen: Option<&Pen>) {
    if pen.is_none() && info.psci_method.is_none() {
        return report_spin_table(info, "before the jump");
    }
    let me = regs::mpidr();
    let secondaries = info.cpu_nodes.iter().filter(|c| c.reg != me);
    let (mut off, mut on) = (0, 0);
    for c in secondaries {
        match psci::affinity_info(info, c.reg) {
            Ok(CpuState::Off) => off += 1,
            Ok(_) => on += 1,
            Err(_) => {}
        }
    }
    match pen {
        None if on == 0 => log::info!("before the jump: all {off} secondaries off (PSCI)"),
        None => log::warn!("before the jump: {on} secondaries are on outside kexboot's control"),
        Some(p) => log::info!(
            "before the jump: {on} secondaries in the spin-table pen at {:#x}",
            p.page.start()
        ),
    }
}
