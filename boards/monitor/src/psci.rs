//! The PSCI (Arm DEN0022, version 1.0) state machine of kexboot's resident EL3 monitor.
//!
//! Pure logic: one [`Psci`] table holds every CPU's state (OFF, ON_PENDING, ON) and its pending
//! entry point; [`Psci::call`] turns one SMC (function ID and arguments) into an [`Action`] the
//! EL3 glue carries out (return a value, park the caller in its pen, wake a pen, power off,
//! reset). The glue serialises calls (one lock around the table) and owns the pens; nothing here
//! touches a register, so every bad input is tested on the host.
//!
//! Transitions: OFF --CPU_ON--> ON_PENDING --(target leaves its pen: [`Psci::take_start`])--> ON
//! --CPU_OFF / recalled by SYSTEM_RESET ([`Psci::parked`])--> OFF.

/// Most CPUs the table holds (GICv2 targets at most 8).
pub const MAX_CPUS: usize = 8;

/// PSCI 1.0 as `PSCI_VERSION` reports it (major in bits 31:16).
pub const PSCI_VERSION_1_0: u64 = 1 << 16;

/// Function IDs (SMC32 `0x84..`, SMC64 `0xC4..`).
pub mod fid {
    pub const PSCI_VERSION: u64 = 0x8400_0000;
    pub const CPU_SUSPEND32: u64 = 0x8400_0001;
    pub const CPU_SUSPEND64: u64 = 0xc400_0001;
    pub const CPU_OFF: u64 = 0x8400_0002;
    pub const CPU_ON32: u64 = 0x8400_0003;
    pub const CPU_ON64: u64 = 0xc400_0003;
    pub const AFFINITY_INFO32: u64 = 0x8400_0004;
    pub const AFFINITY_INFO64: u64 = 0xc400_0004;
    pub const MIGRATE_INFO_TYPE: u64 = 0x8400_0006;
    pub const SYSTEM_OFF: u64 = 0x8400_0008;
    pub const SYSTEM_RESET: u64 = 0x8400_0009;
    pub const PSCI_FEATURES: u64 = 0x8400_000a;
    /// kexboot's SiP call (SMC64): x1 = physical address of the device tree the next kernel is
    /// booted with; SYSTEM_RESET re-enters kexboot with it (so the entry is warm).
    pub const KEXBOOT_SET_RESET_DTB: u64 = 0xc200_0001;
}

/// PSCI return codes.
pub mod ret {
    pub const SUCCESS: i64 = 0;
    pub const NOT_SUPPORTED: i64 = -1;
    pub const INVALID_PARAMETERS: i64 = -2;
    pub const DENIED: i64 = -3;
    pub const ALREADY_ON: i64 = -4;
    pub const ON_PENDING: i64 = -5;
    pub const INTERNAL_FAILURE: i64 = -6;
    pub const INVALID_ADDRESS: i64 = -9;
}

/// `MIGRATE_INFO_TYPE`: no Trusted OS, nothing to migrate.
pub const MIGRATE_NOT_PRESENT: i64 = 2;

/// CPU_SUSPEND's `power_state` in the original format (DEN0022 5.4.2): StateID in bits 15:0,
/// StateType in bit 16 (0 standby or retention, 1 power down), PowerLevel in bits 25:24, the
/// rest reserved (zero). The monitor implements one state: standby of the calling core (WFI at
/// EL3), StateID 0, power level 0; `PSCI_FEATURES(CPU_SUSPEND)` says the original format
/// without OS-initiated mode (flags 0).
pub mod power_state {
    pub const STATE_ID: u64 = 0xffff;
    pub const STATE_TYPE_POWERDOWN: u64 = 1 << 16;
    pub const POWER_LEVEL: u64 = 0b11 << 24;
    /// The one state implemented: core standby.
    pub const STANDBY: u64 = 0;
}

/// `PSCI_FEATURES(CPU_SUSPEND)` flags: bit 1 clear (original power_state format), bit 0 clear
/// (platform-coordinated mode only).
pub const CPU_SUSPEND_FEATURES: i64 = 0;

/// Affinity bits of an MPIDR (Aff3, Aff2, Aff1, Aff0); the rest (U, MT, RES1) is ignored.
pub const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;

/// One CPU's power state, with the values `AFFINITY_INFO` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CpuState {
    On = 0,
    Off = 1,
    OnPending = 2,
}

/// What the EL3 glue must do after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Return this value in x0 to the caller.
    Return(i64),
    /// CPU_ON accepted: return SUCCESS and wake the target's pen (table index).
    Wake(usize),
    /// CPU_OFF: the caller is OFF now; it goes to its pen and never returns.
    Park,
    /// CPU_SUSPEND to standby: the caller waits for an interrupt (WFI) at EL3, then returns
    /// SUCCESS; a wake-up interrupt is taken once it is back in the lower EL.
    Standby,
    /// SYSTEM_OFF: power the machine off.
    SystemOff,
    /// SYSTEM_RESET: recall these CPUs (bit per table index; they are ON in a lower EL), wait for
    /// each to be [`Psci::parked`], then re-enter kexboot on the caller.
    SystemReset { recall: u32 },
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    mpidr: u64,
    state: CpuState,
    entry: u64,
    context: u64,
}

const EMPTY: Slot = Slot {
    mpidr: 0,
    state: CpuState::Off,
    entry: 0,
    context: 0,
};

/// The state of every CPU, and where a CPU woken by CPU_ON enters the non-secure world.
#[derive(Clone, Debug)]
pub struct Psci {
    slots: [Slot; MAX_CPUS],
    count: usize,
    /// CPU_ON entry points must lie in `[start, end)` (non-secure RAM).
    entry_window: (u64, u64),
    /// Set by SYSTEM_RESET until the reset re-enters kexboot ([`Psci::reset_done`]).
    resetting: bool,
    /// Device tree registered with [`fid::KEXBOOT_SET_RESET_DTB`] (0: none).
    reset_dtb: u64,
}

/// Why a table could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No CPU, or more than [`MAX_CPUS`].
    CpuCount(usize),
    /// The same MPIDR twice.
    Duplicate(u64),
    /// The boot CPU's MPIDR is not among the CPUs.
    NoBootCpu(u64),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::CpuCount(n) => write!(f, "PSCI: {n} CPUs (expected 1 to {MAX_CPUS})"),
            Self::Duplicate(m) => write!(f, "PSCI: MPIDR {m:#x} listed twice"),
            Self::NoBootCpu(m) => write!(f, "PSCI: boot CPU {m:#x} is not in the CPU list"),
        }
    }
}

impl Psci {
    /// A table of `mpidrs` with `boot` ON and every other CPU OFF; CPU_ON entry points must lie
    /// in `entry_window`.
    pub fn new(mpidrs: &[u64], boot: u64, entry_window: (u64, u64)) -> Result<Psci, Error> {
        if mpidrs.is_empty() || mpidrs.len() > MAX_CPUS {
            return Err(Error::CpuCount(mpidrs.len()));
        }
        let mut slots = [EMPTY; MAX_CPUS];
        for (i, &m) in mpidrs.iter().enumerate() {
            let m = m & MPIDR_AFF_MASK;
            if mpidrs[..i].iter().any(|&o| o & MPIDR_AFF_MASK == m) {
                return Err(Error::Duplicate(m));
            }
            slots[i].mpidr = m;
        }
        let mut p = Psci {
            slots,
            count: mpidrs.len(),
            entry_window,
            resetting: false,
            reset_dtb: 0,
        };
        let b = p.index_of(boot).ok_or(Error::NoBootCpu(boot))?;
        p.slots[b].state = CpuState::On;
        Ok(p)
    }

    /// Number of CPUs in the table.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the table is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Table index of the CPU with this MPIDR (affinity bits only).
    pub fn index_of(&self, mpidr: u64) -> Option<usize> {
        let m = mpidr & MPIDR_AFF_MASK;
        self.slots[..self.count].iter().position(|s| s.mpidr == m)
    }

    /// MPIDR (affinity bits) of table index `i`.
    pub fn mpidr(&self, i: usize) -> Option<u64> {
        self.slots[..self.count].get(i).map(|s| s.mpidr)
    }

    /// State of table index `i`.
    pub fn state(&self, i: usize) -> Option<CpuState> {
        self.slots[..self.count].get(i).map(|s| s.state)
    }

    /// Whether a SYSTEM_RESET is recalling CPUs.
    pub fn resetting(&self) -> bool {
        self.resetting
    }

    /// The device tree registered for SYSTEM_RESET (0: none).
    pub fn reset_dtb(&self) -> u64 {
        self.reset_dtb
    }

    /// One SMC from the CPU at table index `caller` (which is ON: it runs in a lower EL).
    pub fn call(&mut self, caller: usize, function: u64, a1: u64, a2: u64, a3: u64) -> Action {
        use Action::Return;
        // SMC32 calls carry 32-bit arguments: the upper halves are not the caller's.
        let smc32 = function & (1 << 30) == 0;
        let w = |v: u64| if smc32 { v & 0xffff_ffff } else { v };
        let (a1, a2, a3) = (w(a1), w(a2), w(a3));
        if caller >= self.count {
            return Return(ret::INTERNAL_FAILURE);
        }
        match function {
            fid::PSCI_VERSION => Return(PSCI_VERSION_1_0 as i64),
            fid::PSCI_FEATURES => Return(match a1 {
                fid::CPU_SUSPEND32 | fid::CPU_SUSPEND64 => CPU_SUSPEND_FEATURES,
                f if Self::supported(f) => ret::SUCCESS,
                _ => ret::NOT_SUPPORTED,
            }),
            fid::CPU_SUSPEND32 | fid::CPU_SUSPEND64 => {
                // Only standby of this core is implemented; any other state (power down, a
                // cluster level, a StateID, reserved bits) is not a state this platform has.
                if a1 == power_state::STANDBY {
                    Action::Standby
                } else {
                    Return(ret::INVALID_PARAMETERS)
                }
            }
            fid::MIGRATE_INFO_TYPE => Return(MIGRATE_NOT_PRESENT),
            fid::CPU_ON32 | fid::CPU_ON64 => self.cpu_on(a1, a2, a3),
            fid::CPU_OFF => {
                // Also during a reset: the caller was being recalled, and parks as expected.
                self.slots[caller].state = CpuState::Off;
                Action::Park
            }
            fid::AFFINITY_INFO32 | fid::AFFINITY_INFO64 => {
                if a2 != 0 {
                    return Return(ret::INVALID_PARAMETERS);
                }
                match self.index_of(a1) {
                    Some(i) if a1 & !MPIDR_AFF_MASK == 0 => Return(self.slots[i].state as i64),
                    _ => Return(ret::INVALID_PARAMETERS),
                }
            }
            fid::SYSTEM_OFF => Action::SystemOff,
            fid::SYSTEM_RESET => {
                if self.resetting {
                    return Return(ret::DENIED);
                }
                self.resetting = true;
                let mut recall = 0;
                for (i, s) in self.slots[..self.count].iter_mut().enumerate() {
                    match s.state {
                        _ if i == caller => {}
                        CpuState::On => recall |= 1 << i,
                        // Still in its pen: it simply stays there.
                        CpuState::OnPending => s.state = CpuState::Off,
                        CpuState::Off => {}
                    }
                }
                Action::SystemReset { recall }
            }
            fid::KEXBOOT_SET_RESET_DTB => {
                if a1 == 0 || !a1.is_multiple_of(8) || !self.in_window(a1) {
                    return Return(ret::INVALID_ADDRESS);
                }
                self.reset_dtb = a1;
                Return(ret::SUCCESS)
            }
            _ => Return(ret::NOT_SUPPORTED),
        }
    }

    fn supported(function: u64) -> bool {
        matches!(
            function,
            fid::PSCI_VERSION
                | fid::PSCI_FEATURES
                | fid::CPU_SUSPEND32
                | fid::CPU_SUSPEND64
                | fid::MIGRATE_INFO_TYPE
                | fid::CPU_ON32
                | fid::CPU_ON64
                | fid::CPU_OFF
                | fid::AFFINITY_INFO32
                | fid::AFFINITY_INFO64
                | fid::SYSTEM_OFF
                | fid::SYSTEM_RESET
                | fid::KEXBOOT_SET_RESET_DTB
        )
    }

    fn in_window(&self, addr: u64) -> bool {
        (self.entry_window.0..self.entry_window.1).contains(&addr)
    }

    fn cpu_on(&mut self, target: u64, entry: u64, context: u64) -> Action {
        use Action::Return;
        // Bits above Aff3 and the U/MT bits must be clear: anything else names no CPU.
        let i = match self.index_of(target) {
            Some(i) if target & !MPIDR_AFF_MASK == 0 => i,
            _ => return Return(ret::INVALID_PARAMETERS),
        };
        if self.resetting {
            return Return(ret::DENIED);
        }
        match self.slots[i].state {
            CpuState::On => return Return(ret::ALREADY_ON),
            CpuState::OnPending => return Return(ret::ON_PENDING),
            CpuState::Off => {}
        }
        if !entry.is_multiple_of(4) || !self.in_window(entry) {
            return Return(ret::INVALID_ADDRESS);
        }
        let s = &mut self.slots[i];
        s.state = CpuState::OnPending;
        s.entry = entry;
        s.context = context;
        Action::Wake(i)
    }

    /// Called by the CPU at table index `me` from its pen: when CPU_ON asked for it, it is ON
    /// now and gets (entry point, context id) to enter the non-secure world with.
    pub fn take_start(&mut self, me: usize) -> Option<(u64, u64)> {
        let s = self.slots[..self.count].get_mut(me)?;
        if s.state != CpuState::OnPending {
            return None;
        }
        s.state = CpuState::On;
        Some((s.entry, s.context))
    }

    /// The CPU at `me` arrived in its pen (recalled by SYSTEM_RESET, or at start-up).
    pub fn parked(&mut self, me: usize) {
        if let Some(s) = self.slots[..self.count].get_mut(me) {
            s.state = CpuState::Off;
        }
    }

    /// Every CPU in `mask` is OFF (the recall of a SYSTEM_RESET is complete).
    pub fn all_off(&self, mask: u32) -> bool {
        self.slots[..self.count]
            .iter()
            .enumerate()
            .all(|(i, s)| mask & (1 << i) == 0 || s.state == CpuState::Off)
    }

    /// The reset re-enters kexboot on `me`: it is the one CPU ON, the others stay as they are
    /// (OFF, or ON when the recall timed out: kexboot reports them).
    pub fn reset_done(&mut self, me: usize) {
        self.resetting = false;
        if let Some(s) = self.slots[..self.count].get_mut(me) {
            s.state = CpuState::On;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WINDOW: (u64, u64) = (0x4000_0000, 0x8000_0000);
    const ENTRY: u64 = 0x4008_0000;

    fn four() -> Psci {
        Psci::new(&[0, 1, 2, 3], 0, WINDOW).unwrap()
    }

    #[test]
    fn starts_with_the_boot_cpu_on() {
        let p = Psci::new(&[0x100, 0x101, 0x80000000 | 0x102], 0x8000_0101, WINDOW).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p.state(1), Some(CpuState::On));
        assert_eq!(p.state(0), Some(CpuState::Off));
        assert_eq!(p.index_of(0x102), Some(2));
        assert_eq!(p.state(3), None);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert_eq!(Psci::new(&[], 0, WINDOW).unwrap_err(), Error::CpuCount(0));
        assert_eq!(
            Psci::new(&[0; 9], 0, WINDOW).unwrap_err(),
            Error::CpuCount(9)
        );
        assert_eq!(
            Psci::new(&[0, 1, 1], 0, WINDOW).unwrap_err(),
            Error::Duplicate(1)
        );
        assert_eq!(
            Psci::new(&[0, 1], 7, WINDOW).unwrap_err(),
            Error::NoBootCpu(7)
        );
        assert!(Error::NoBootCpu(7).to_string().contains("0x7"));
    }

    #[test]
    fn version_features_migrate() {
        let mut p = four();
        assert_eq!(
            p.call(0, fid::PSCI_VERSION, 0, 0, 0),
            Action::Return(0x10000)
        );
        for f in [
            fid::CPU_ON64,
            fid::CPU_OFF,
            fid::AFFINITY_INFO64,
            fid::SYSTEM_RESET,
            fid::SYSTEM_OFF,
            fid::PSCI_FEATURES,
            fid::MIGRATE_INFO_TYPE,
        ] {
            assert_eq!(p.call(0, fid::PSCI_FEATURES, f, 0, 0), Action::Return(0));
        }
        for f in [0x8000_0000, 0xc400_0012, 0] {
            assert_eq!(
                p.call(0, fid::PSCI_FEATURES, f, 0, 0),
                Action::Return(ret::NOT_SUPPORTED)
            );
        }
        assert_eq!(
            p.call(0, fid::MIGRATE_INFO_TYPE, 0, 0, 0),
            Action::Return(MIGRATE_NOT_PRESENT)
        );
    }

    #[test]
    fn unknown_functions_are_not_supported() {
        let mut p = four();
        let before = p.clone();
        for f in [
            0,
            0x8400_0005,
            0x8400_0007,
            0x8400_0012,
            0xc400_0009,
            0xffff_ffff,
            u64::MAX,
        ] {
            assert_eq!(
                p.call(0, f, 1, ENTRY, 0),
                Action::Return(ret::NOT_SUPPORTED),
                "{f:#x}"
            );
        }
        assert_eq!(format!("{before:?}"), format!("{p:?}"));
    }

    /// PSCI 1.0 makes CPU_SUSPEND mandatory: standby is implemented, and PSCI_FEATURES says
    /// so with the original power_state format and no OS-initiated mode.
    #[test]
    fn cpu_suspend_standby() {
        let mut p = four();
        for f in [fid::CPU_SUSPEND32, fid::CPU_SUSPEND64] {
            assert_eq!(
                p.call(0, fid::PSCI_FEATURES, f, 0, 0),
                Action::Return(CPU_SUSPEND_FEATURES)
            );
            assert_eq!(
                p.call(0, f, power_state::STANDBY, ENTRY, 0),
                Action::Standby
            );
        }
        // SMC32: the upper half of power_state is not the caller's.
        assert_eq!(
            p.call(0, fid::CPU_SUSPEND32, 0xffff_ffff_0000_0000, 0, 0),
            Action::Standby
        );
        let before = format!("{p:?}");
        for bad in [
            power_state::STATE_TYPE_POWERDOWN,
            1 << 24,
            power_state::POWER_LEVEL,
            1,
            power_state::STATE_ID,
            1 << 30,
            1 << 17,
        ] {
            assert_eq!(
                p.call(0, fid::CPU_SUSPEND64, bad, ENTRY, 0),
                Action::Return(ret::INVALID_PARAMETERS),
                "{bad:#x}"
            );
        }
        // Standby changes no state: the caller stays ON.
        assert_eq!(before, format!("{p:?}"));
        assert_eq!(p.state(0), Some(CpuState::On));
    }

    #[test]
    fn cpu_on_lifecycle() {
        let mut p = four();
        assert_eq!(p.call(0, fid::CPU_ON64, 2, ENTRY, 0x55), Action::Wake(2));
        assert_eq!(p.state(2), Some(CpuState::OnPending));
        assert_eq!(p.call(0, fid::AFFINITY_INFO64, 2, 0, 0), Action::Return(2));
        assert_eq!(
            p.call(0, fid::CPU_ON64, 2, ENTRY, 0),
            Action::Return(ret::ON_PENDING)
        );
        assert_eq!(p.take_start(1), None);
        assert_eq!(p.take_start(2), Some((ENTRY, 0x55)));
        assert_eq!(p.take_start(2), None);
        assert_eq!(p.call(0, fid::AFFINITY_INFO64, 2, 0, 0), Action::Return(0));
        assert_eq!(
            p.call(0, fid::CPU_ON64, 2, ENTRY, 0),
            Action::Return(ret::ALREADY_ON)
        );
        assert_eq!(
            p.call(0, fid::CPU_ON64, 0, ENTRY, 0),
            Action::Return(ret::ALREADY_ON)
        );
        assert_eq!(p.call(2, fid::CPU_OFF, 0, 0, 0), Action::Park);
        assert_eq!(p.call(0, fid::AFFINITY_INFO32, 2, 0, 0), Action::Return(1));
        // And again: a CPU returned with CPU_OFF can be started once more.
        assert_eq!(p.call(0, fid::CPU_ON32, 2, ENTRY, 7), Action::Wake(2));
        assert_eq!(p.take_start(2), Some((ENTRY, 7)));
    }

    #[test]
    fn cpu_on_bad_inputs() {
        let mut p = four();
        let before = format!("{p:?}");
        for target in [4, 8, 0x100, 0x1_0000_0000, 0x8000_0001, u64::MAX] {
            assert_eq!(
                p.call(0, fid::CPU_ON64, target, ENTRY, 0),
                Action::Return(ret::INVALID_PARAMETERS),
                "{target:#x}"
            );
        }
        for entry in [0, ENTRY + 2, 0x0e00_0000, 0x8000_0000, !3] {
            assert_eq!(
                p.call(0, fid::CPU_ON64, 1, entry, 0),
                Action::Return(ret::INVALID_ADDRESS),
                "{entry:#x}"
            );
        }
        assert_eq!(before, format!("{p:?}"));
        // SMC32 ignores the upper halves of its arguments.
        assert_eq!(
            p.call(
                0,
                fid::CPU_ON32,
                0xdead_0000_0001,
                0xdead_0000_0000 | ENTRY,
                0
            ),
            Action::Wake(1)
        );
        assert_eq!(p.take_start(1), Some((ENTRY, 0)));
    }

    #[test]
    fn affinity_info_bad_inputs() {
        let mut p = four();
        assert_eq!(
            p.call(0, fid::AFFINITY_INFO64, 9, 0, 0),
            Action::Return(ret::INVALID_PARAMETERS)
        );
        assert_eq!(
            p.call(0, fid::AFFINITY_INFO64, 1, 1, 0),
            Action::Return(ret::INVALID_PARAMETERS)
        );
        assert_eq!(
            p.call(0, fid::AFFINITY_INFO64, 0, 0, 0),
            Action::Return(CpuState::On as i64)
        );
        assert_eq!(
            p.call(9, fid::PSCI_VERSION, 0, 0, 0),
            Action::Return(ret::INTERNAL_FAILURE)
        );
    }

    #[test]
    fn system_reset_recalls_running_cpus() {
        let mut p = four();
        assert_eq!(p.call(0, fid::CPU_ON64, 1, ENTRY, 0), Action::Wake(1));
        assert_eq!(p.take_start(1), Some((ENTRY, 0)));
        assert_eq!(p.call(0, fid::CPU_ON64, 2, ENTRY, 0), Action::Wake(2));
        // CPU 2 is still pending; CPU 1 runs; the reset comes from CPU 1.
        assert_eq!(
            p.call(1, fid::SYSTEM_RESET, 0, 0, 0),
            Action::SystemReset { recall: 0b0001 }
        );
        assert!(p.resetting());
        assert_eq!(p.state(2), Some(CpuState::Off));
        assert_eq!(p.take_start(2), None);
        assert_eq!(
            p.call(0, fid::CPU_ON64, 3, ENTRY, 0),
            Action::Return(ret::DENIED)
        );
        assert_eq!(
            p.call(1, fid::SYSTEM_RESET, 0, 0, 0),
            Action::Return(ret::DENIED)
        );
        assert!(!p.all_off(0b0001));
        p.parked(0);
        assert!(p.all_off(0b0001));
        p.reset_done(1);
        assert!(!p.resetting());
        assert_eq!(p.state(1), Some(CpuState::On));
        assert_eq!(p.state(0), Some(CpuState::Off));
        assert_eq!(p.call(1, fid::CPU_ON64, 0, ENTRY, 0), Action::Wake(0));
    }

    #[test]
    fn reset_dtb_is_checked() {
        let mut p = four();
        for bad in [0, 0x0e00_0000, 0x4000_0004, !7] {
            assert_eq!(
                p.call(0, fid::KEXBOOT_SET_RESET_DTB, bad, 0, 0),
                Action::Return(ret::INVALID_ADDRESS)
            );
        }
        assert_eq!(p.reset_dtb(), 0);
        assert_eq!(
            p.call(0, fid::KEXBOOT_SET_RESET_DTB, 0x4800_0000, 0, 0),
            Action::Return(0)
        );
        assert_eq!(p.reset_dtb(), 0x4800_0000);
    }

    /// The table stays consistent: each CPU's state is one of the three, exactly the CPUs a
    /// reset did not leave behind are ON after it, and CPU_ON never accepts an ON CPU.
    fn check(p: &Psci) {
        for i in 0..p.len() {
            let s = p.state(i).unwrap();
            if s == CpuState::OnPending {
                assert!(p.slots[i].entry.is_multiple_of(4) && p.in_window(p.slots[i].entry));
            }
        }
        assert!(p.slots[p.len()..]
            .iter()
            .all(|s| s.mpidr == 0 && s.state == CpuState::Off));
    }

    proptest! {
        #[test]
        fn random_calls_keep_the_table_consistent(
            ops in proptest::collection::vec((0u8..8, 0usize..5, any::<u64>(), any::<u64>(), any::<u64>()), 0..200)
        ) {
            let mut p = four();
            let mut recall = 0u32;
            for (op, who, a1, a2, a3) in ops {
                let on: Vec<usize> = (0..4).filter(|&i| p.state(i) == Some(CpuState::On)).collect();
                // The caller is a CPU that runs (ON); with none running only pens act.
                let caller = on.get(who % on.len().max(1)).copied();
                let target = a1 % 6;
                let entry = if a2 % 3 == 0 { a2 } else { ENTRY + (a2 % 64) * 4 };
                let before = p.state(target as usize);
                match (op, caller) {
                    (0, Some(c)) => match p.call(c, fid::CPU_ON64, target, entry, a3) {
                        Action::Wake(i) => {
                            prop_assert_eq!(before, Some(CpuState::Off));
                            prop_assert_eq!(i as u64, target);
                            prop_assert_eq!(p.state(i), Some(CpuState::OnPending));
                        }
                        Action::Return(r) => {
                            prop_assert!(r < 0);
                            prop_assert_eq!(p.state(target as usize), before);
                            match before {
                                None => prop_assert_eq!(r, ret::INVALID_PARAMETERS),
                                Some(CpuState::On) => prop_assert!(r == ret::ALREADY_ON || r == ret::DENIED),
                                Some(CpuState::OnPending) => prop_assert!(r == ret::ON_PENDING || r == ret::DENIED),
                                Some(CpuState::Off) => prop_assert!(r == ret::INVALID_ADDRESS || r == ret::DENIED),
                            }
                        }
                        a => prop_assert!(false, "unexpected {:?}", a),
                    },
                    (1, Some(c)) => {
                        prop_assert_eq!(p.call(c, fid::CPU_OFF, a1, a2, a3), Action::Park);
                        prop_assert_eq!(p.state(c), Some(CpuState::Off));
                    }
                    (2, Some(c)) => {
                        let r = p.call(c, fid::AFFINITY_INFO64, target, a2 % 2, 0);
                        let want = match (before, a2 % 2) {
                            (Some(s), 0) => s as i64,
                            _ => ret::INVALID_PARAMETERS,
                        };
                        prop_assert_eq!(r, Action::Return(want));
                    }
                    (3, Some(c)) => {
                        // Any function ID: never a panic, never a change unless it is PSCI's.
                        let f = a1;
                        let snapshot = p.clone();
                        let r = p.call(c, f, a2, a3, a1);
                        if !Psci::supported(f) {
                            prop_assert_eq!(r, Action::Return(ret::NOT_SUPPORTED));
                            prop_assert_eq!(format!("{:?}", snapshot), format!("{:?}", p));
                        }
                    }
                    (4, Some(c)) => {
                        if let Action::SystemReset { recall: r } = p.call(c, fid::SYSTEM_RESET, 0, 0, 0) {
                            prop_assert_eq!(r & (1 << c), 0);
                            recall = r;
                        }
                    }
                    (5, _) => {
                        let me = who % 4;
                        let was = p.state(me);
                        let got = p.take_start(me);
                        prop_assert_eq!(got.is_some(), was == Some(CpuState::OnPending));
                        if got.is_some() {
                            prop_assert_eq!(p.state(me), Some(CpuState::On));
                        }
                    }
                    (6, _) if p.resetting() => {
                        // A recalled CPU arrives in its pen; the last one completes the reset.
                        if let Some(i) = (0..4).find(|i| recall & (1 << i) != 0 && p.state(*i) != Some(CpuState::Off)) {
                            p.parked(i);
                        } else {
                            prop_assert!(p.all_off(recall));
                            let me = (0..4).find(|i| p.state(*i) == Some(CpuState::On)).unwrap_or(0);
                            p.reset_done(me);
                            prop_assert_eq!(p.state(me), Some(CpuState::On));
                        }
                    }
                    _ => {}
                }
                check(&p);
            }
        }
    }
}
