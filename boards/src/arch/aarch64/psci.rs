//! PSCI (Arm DEN0022) calls through the conduit the device tree names (`/psci` method).

use core::fmt;
use kexboot_loader::dt::DtInfo;

const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;

#[derive(Debug)]
pub enum PsciError {
    NoPsci,
    Returned(i64),
}

impl fmt::Display for PsciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPsci => write!(f, "the device tree describes no PSCI (smc/hvc) firmware"),
            Self::Returned(code) => write!(f, "PSCI call failed with {code}"),
        }
    }
}

fn call(info: &DtInfo, function: u64) -> Result<(), PsciError> {
    let ret: i64;
    match info.psci_method.as_deref() {
        // SAFETY: a PSCI call through the conduit the platform describes; SMCCC lets it clobber
        // x0-x17, which is declared.
        Some("smc") => unsafe {
            core::arch::asm!("smc #0", inlateout("x0") function as i64 => ret,
                lateout("x1") _, lateout("x2") _, lateout("x3") _, lateout("x4") _,
                lateout("x5") _, lateout("x6") _, lateout("x7") _, lateout("x8") _,
                lateout("x9") _, lateout("x10") _, lateout("x11") _, lateout("x12") _,
                lateout("x13") _, lateout("x14") _, lateout("x15") _, lateout("x16") _,
                lateout("x17") _, options(nostack))
        },
        // SAFETY: as above, through HVC.
        Some("hvc") => unsafe {
            core::arch::asm!("hvc #0", inlateout("x0") function as i64 => ret,
                lateout("x1") _, lateout("x2") _, lateout("x3") _, lateout("x4") _,
                lateout("x5") _, lateout("x6") _, lateout("x7") _, lateout("x8") _,
                lateout("x9") _, lateout("x10") _, lateout("x11") _, lateout("x12") _,
                lateout("x13") _, lateout("x14") _, lateout("x15") _, lateout("x16") _,
                lateout("x17") _, options(nostack))
        },
        _ => return Err(PsciError::NoPsci),
    }
    Err(PsciError::Returned(ret))
}

pub fn system_reset(info: &DtInfo) -> Result<(), PsciError> {
    call(info, PSCI_SYSTEM_RESET)
}

pub fn system_off(info: &DtInfo) -> Result<(), PsciError> {
    call(info, PSCI_SYSTEM_OFF)
}
