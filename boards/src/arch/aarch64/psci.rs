//! PSCI (Arm DEN0022) calls through the conduit the device tree names (`/psci` method).

use core::fmt;
use kexboot_loader::dt::DtInfo;

const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
const PSCI_AFFINITY_INFO64: u64 = 0xc400_0004;
const PSCI_CPU_ON64: u64 = 0xc400_0003;

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
    Err(PsciError::Returned(call3(info, function, 0, 0)?))
}

/// An SMCCC call with two arguments, returning x0.
fn call3(info: &DtInfo, function: u64, a1: u64, a2: u64) -> Result<i64, PsciError> {
    call4(info, function, a1, a2, 0)
}

/// One SMCCC call through `smc` or `hvc`: x0 = function (and result), x1..x3 = arguments.
macro_rules! smccc {
    ($insn:literal, $ret:ident, $a1:expr, $a2:expr, $a3:expr) => {
        core::arch::asm!(
            concat!($insn, " #0"),
            inlateout("x0") $ret,
            inlateout("x1") $a1 => _,
            inlateout("x2") $a2 => _,
            inlateout("x3") $a3 => _,
            clobber_abi("C"),
            options(nostack)
        )
    };
}

/// An SMCCC call with three arguments, returning x0.
fn call4(info: &DtInfo, function: u64, a1: u64, a2: u64, a3: u64) -> Result<i64, PsciError> {
    let mut ret = function as i64;
    match info.psci_method.as_deref() {
        // SAFETY: a PSCI call through the conduit the platform describes; SMCCC may clobber
        // what the C ABI lets a callee clobber (x0-x17), which `clobber_abi` declares.
        Some("smc") => unsafe { smccc!("smc", ret, a1, a2, a3) },
        // SAFETY: as above, through HVC.
        Some("hvc") => unsafe { smccc!("hvc", ret, a1, a2, a3) },
        _ => return Err(PsciError::NoPsci),
    }
    Ok(ret)
}

/// PSCI CPU_ON (64-bit): start `mpidr` at `entry` with x0 = `context`.
pub fn cpu_on(info: &DtInfo, mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    match call4(info, PSCI_CPU_ON64, mpidr, entry, context)? {
        0 => Ok(()),
        code => Err(PsciError::Returned(code)),
    }
}

/// PSCI AFFINITY_INFO (64-bit) for one CPU at affinity level 0.
pub fn affinity_info(info: &DtInfo, mpidr: u64) -> Result<CpuState, PsciError> {
    match call3(info, PSCI_AFFINITY_INFO64, mpidr, 0)? {
        0 => Ok(CpuState::On),
        1 => Ok(CpuState::Off),
        2 => Ok(CpuState::OnPending),
        code => Err(PsciError::Returned(code)),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuState {
    On,
    Off,
    OnPending,
}

pub fn system_reset(info: &DtInfo) -> Result<(), PsciError> {
    call(info, PSCI_SYSTEM_RESET)
}

pub fn system_off(info: &DtInfo) -> Result<(), PsciError> {
    call(info, PSCI_SYSTEM_OFF)
}
