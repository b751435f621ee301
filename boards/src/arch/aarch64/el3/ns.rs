//! The non-secure side: kexboot at EL2 learns it runs under its own monitor and describes it
//! to Linux.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use kexboot_loader::dt::DtInfo;
use kexboot_monitor::psci::{self, fid};

use super::*;

/// x1 and x2 of kexboot's NS entry, saved by the entry code (`entry.rs`).
#[no_mangle]
pub static mut KEXBOOT_ENTRY_ARGS: [u64; 2] = [0; 2];

pub(super) static RESIDENT: AtomicBool = AtomicBool::new(false);

pub(super) fn smc(function: u64, a1: u64) -> i64 {
    let mut r = function as i64;
    // SAFETY: an SMCCC call to the firmware the device tree or the entry registers named;
    // SMCCC may clobber x0-x17, as `clobber_abi("C")` declares.
    unsafe {
        asm!("smc #0", inlateout("x0") r, inlateout("x1") a1 => _, clobber_abi("C"), options(nostack))
    };
    r
}

/// Called at NS start-up (MMU off, before the console is needed for it): finds out whether
/// kexboot's own EL3 monitor is below (entry x1, or on a warm entry a PSCI `smc` firmware that
/// knows kexboot's SiP call), says so, and makes `info` describe PSCI through SMC.
pub fn adopt(info: &mut DtInfo) {
    // SAFETY: written once by the entry code before any Rust ran.
    let [x1, x2] = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(KEXBOOT_ENTRY_ARGS)) };
    let from_entry = x1 == MONITOR_MAGIC;
    let probed = !from_entry
        && crate::arch::current_el() == 2
        && info.psci_method.as_deref() == Some("smc")
        && smc(fid::PSCI_FEATURES, fid::KEXBOOT_SET_RESET_DTB) == psci::ret::SUCCESS;
    if from_entry || probed {
        RESIDENT.store(true, Ordering::Relaxed);
        info.psci_method = Some("smc".into());
        let version = if from_entry {
            x2
        } else {
            smc(fid::PSCI_VERSION, 0) as u64
        };
        println!(
            "kexboot: running under kexboot's EL3 PSCI monitor (PSCI {}.{}, smc)",
            version >> 16,
            version & 0xffff
        );
    }
}

/// The PSCI method kexboot describes in `/psci` for the next kernel: `smc` under its own
/// monitor, else `None` (the tree is passed on as it came).
pub fn psci_method() -> Option<&'static str> {
    RESIDENT.load(Ordering::Relaxed).then_some("smc")
}

/// Tells the monitor where the next kernel's device tree will be, so that its SYSTEM_RESET
/// re-enters kexboot with it (a warm entry). Nothing without kexboot's monitor.
pub fn note_next_dtb(dtb: u64) {
    if RESIDENT.load(Ordering::Relaxed) {
        let r = smc(fid::KEXBOOT_SET_RESET_DTB, dtb);
        if r != 0 {
            log::warn!("EL3 monitor refused the reset device tree at {dtb:#x}: {r}");
        }
    }
}

/// `enable-method = "psci"` for every cpu node when kexboot's monitor is below, else `None`.
pub fn cpu_props(info: &DtInfo) -> Option<alloc::vec::Vec<kexboot_loader::dt::CpuProps<'static>>> {
    psci_method()?;
    Some(
        info.cpu_nodes
            .iter()
            .map(|c| kexboot_loader::dt::CpuProps {
                reg: c.reg,
                props: alloc::vec![("enable-method", b"psci\0".to_vec())],
            })
            .collect(),
    )
}

/// The tree for the next kernel with kexboot's monitor in `/psci` (unchanged without it).
pub fn describe(dtb: alloc::vec::Vec<u8>) -> alloc::vec::Vec<u8> {
    let Some(method) = psci_method() else {
        return dtb;
    };
    match kexboot_loader::dt::set_psci(&dtb, method) {
        Ok(d) => d,
        Err(e) => {
            log::error!("device tree: cannot describe the EL3 PSCI monitor: {e}");
            dtb
        }
    }
}
