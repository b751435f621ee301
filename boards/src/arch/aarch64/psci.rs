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
    let mut ret = function as i64;
    match info.psci_method.as_deref() {
        // SAFETY: a PSCI call through the conduit the platform describes; SMCCC may clobber
        // what the C ABI lets a callee clobber (x0-x17), which `clobber_abi` declares.
        Some("smc") => unsafe {
            core::arch::asm!("smc #0", inlateout("x0") ret, clobber_abi("C"), options(nostack))
        },
        // SAFETY: as above, through HVC.
        Some("hvc") => unsafe {
            core::arch::asm!("hvc #0", inlateout("x0") ret, clobber_abi("C"), options(nostack))
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
