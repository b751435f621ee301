//! End-to-end cases of kexboot as EL3 firmware (`-M virt,secure=on,virtualization=on -bios`):
//! its resident PSCI monitor starts Linux's 4 CPUs, takes them back with CPU_OFF (hotplug,
//! kexec) and turns SYSTEM_RESET into a warm re-entry of kexboot.

use crate::boots::{
    check_boot, expect_poweroff, prepare, run_boots, seg, warm_expect, warm_timeout, Boots,
    Entered, Expect,
};
use crate::check::{Ctx, Transcript};
use crate::qemu;
use crate::warm::Scenario;
use std::path::Path;

/// The machine with TrustZone: kexboot starts at EL3 from the flash (`-bios`).
const MACHINE_EL3: &str = "virt,secure=on,virtualization=on";
const SMP: u32 = 4;
/// What the monitor prints once it is in place (before kexboot's banner).
const MONITOR_RESIDENT: &str = "kexboot: EL3 PSCI monitor resident in secure RAM";
/// What the normal kexboot prints when it finds its own monitor below.
const UNDER_MONITOR: &str = "running under kexboot's EL3 PSCI monitor";

/// The CPU model a case runs on (QEMU `-cpu`): every EL3 case runs on an Armv8.0 core and on
/// QEMU's `max`, whose features (SVE, SME, PAuth, FGT, HCX, ...) the monitor must hand to the
/// non-secure world without a trap to EL3.
pub trait Cpu {
    const NAME: &'static str;
}

pub struct CortexA72;
impl Cpu for CortexA72 {
    const NAME: &'static str = qemu::DEFAULT_CPU;
}

pub struct Max;
impl Cpu for Max {
    const NAME: &'static str = "max";
}

fn el3_args<C: Cpu>(c: &Ctx, disk: &Path) -> Vec<String> {
    qemu::Args::new(MACHINE_EL3, C::NAME, Some(SMP))
        .bios(&c.paths.kexboot_bin())
        .disk(disk)
        .into_vec()
}

fn has(t: &Transcript, p: &str) -> bool {
    t.find(|l| l.contains(p)).is_some()
}

/// The monitor said it is resident, kexboot found it, entered at EL2 with PSCI by SMC, and (on a
/// warm or cold entry alike) found every secondary off.
fn expect_monitor(t: &Transcript, k: usize) -> Result<(), String> {
    let fail = |m: &str| Err(format!("boot {k}: {m}"));
    if k == 1 && !has(t, MONITOR_RESIDENT) {
        return fail("no \"EL3 PSCI monitor resident\" line: the monitor did not install");
    }
    if !has(t, UNDER_MONITOR) {
        return fail("kexboot did not find its EL3 monitor");
    }
    let banner = t
        .find(|l| l.trim_start().starts_with("kexboot ") && l.contains(" EL"))
        .map(|(_, l)| l.text.trim().to_string())
        .ok_or("no kexboot banner")?;
    if !banner.contains("entered at EL2") || !banner.contains("PSCI smc") {
        return fail(&format!("banner {banner:?} does not say EL2 and PSCI smc"));
    }
    if !has(t, "3 of 3 secondaries off") {
        return fail("kexboot did not find all 3 secondaries off (in the monitor's pen)");
    }
    Ok(())
}

fn plain_expect(entry: &str) -> Expect<'_> {
    Expect {
        cycle: None,
        pstore_mark: None,
        warm_init: false,
        cpus: SMP,
        ..warm_expect(entry, 1, Entered::Cold)
    }
}

/// Linux reports 4 CPUs online, all started at EL2, through the monitor's CPU_ON.
pub fn case_smp4<C: Cpu>(c: &Ctx, name: &str) -> Result<(), String> {
    let b = run_boots(
        &el3_args::<C>(c, &c.disks.mbr),
        &c.log(name),
        1,
        warm_timeout(),
    )?;
    let s = seg(&b, 1)?;
    expect_monitor(s, 1)?;
    check_boot(s, 1, &plain_expect("image"))?;
    expect_poweroff(&b)
}

/// cpu1 goes offline (CPU_OFF into the pen, AFFINITY_INFO says OFF) and online again (CPU_ON).
pub fn case_hotplug<C: Cpu>(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::El3Hotplug, false)?;
    let b = run_boots(&el3_args::<C>(c, disk), &c.log(name), 1, warm_timeout())?;
    let s = seg(&b, 1)?;
    expect_monitor(s, 1)?;
    let mut e = warm_expect("warm-a", 1, Entered::Cold);
    e.cpus = SMP;
    check_boot(s, 1, &e)?;
    if let Some((_, l)) = s.find(|l| l.contains("KEXBOOT-E2E hotplug-failed")) {
        return Err(format!("hotplug: {}", l.text.trim()));
    }
    let off = s.marker("hotplug-off").unwrap_or("(none)").trim();
    if off != "0,2-3 cpu1=0" {
        return Err(format!(
            "after cpu1 offline: online={off:?}, expected \"0,2-3 cpu1=0\""
        ));
    }
    let on = s.marker("hotplug-on").unwrap_or("(none)").trim();
    if on != format!("0-3 cpu1=1 nproc={SMP}") {
        return Err(format!(
            "after cpu1 online: online={on:?}, expected \"0-3 cpu1=1 nproc={SMP}\""
        ));
    }
    expect_poweroff(&b)
}

/// A warm cycle with kexec-tools: Linux offlines its secondaries with CPU_OFF, kexboot finds
/// them off on its warm entry and the next Linux brings all 4 up again.
pub fn case_warm_cycle<C: Cpu>(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::ToolsAppend, false)?;
    let b = run_boots(&el3_args::<C>(c, disk), &c.log(name), 2, warm_timeout())?;
    check_cycle(&b, "warm-a", "warm-b")?;
    if !has(seg(&b, 2)?, "before the jump: all 3 secondaries off") {
        return Err("boot 2: no check that all 3 secondaries were off before the jump".into());
    }
    expect_poweroff(&b)
}

/// Both boots run under the monitor with 4 CPUs; the second is kexboot's warm entry.
fn check_cycle(b: &Boots, first: &str, second: &str) -> Result<(), String> {
    let s1 = seg(b, 1)?;
    expect_monitor(s1, 1)?;
    let mut e1 = warm_expect(first, 1, Entered::Cold);
    e1.cpus = SMP;
    check_boot(s1, 1, &e1)?;
    let s2 = seg(b, 2)?;
    expect_monitor(s2, 2)?;
    let mut e2 = warm_expect(second, 2, Entered::Warm(first));
    e2.cpus = SMP;
    check_boot(s2, 2, &e2)
}

/// `reboot -f` (PSCI SYSTEM_RESET): the monitor recalls the CPUs and re-enters kexboot with the
/// last kernel's tree, so the entry is warm and honours `kexboot.entry=` there; the ramoops
/// region comes through untouched (the kernel's dump of the first boot is found).
pub fn case_reboot<C: Cpu>(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::El3Reboot, false)?;
    let b = run_boots(&el3_args::<C>(c, disk), &c.log(name), 2, warm_timeout())?;
    let s2 = seg(&b, 2)?;
    if !has(s2, "kexboot: EL3: SYSTEM_RESET") {
        return Err(format!(
            "boot 2: the monitor did not report the SYSTEM_RESET: {}",
            s2.ending()
        ));
    }
    if has(s2, "some did not answer") {
        return Err("boot 2: not every CPU answered the monitor's recall".into());
    }
    check_cycle(&b, "warm-a", "warm-b")?;
    expect_poweroff(&b)
}

/// spin-table under kexboot's own EL3 monitor: Linux runs its secondaries from kexboot's
/// spin-table pen (so it could not take them offline for kexec), yet `reboot -f` (SYSTEM_RESET)
/// recalls all four into the monitor and re-enters kexboot warm, which parks them again: this is
/// how kexboot gives a spin-table board every CPU back.
pub fn case_spin_table_reboot<C: Cpu>(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::SpinTableEl3Reboot, false)?;
    let b = run_boots(&el3_args::<C>(c, disk), &c.log(name), 2, warm_timeout())?;
    for k in 1..=2 {
        if !has(seg(&b, k)?, "3 secondaries parked in kexboot's pen") {
            return Err(format!(
                "boot {k}: the secondaries were not parked in the spin-table pen"
            ));
        }
    }
    let s2 = seg(&b, 2)?;
    if !has(s2, "reusing the pen page") {
        return Err("boot 2 took a new pen page instead of reusing its own (a page leaked)".into());
    }
    if !has(s2, "kexboot: EL3: SYSTEM_RESET") || has(s2, "some did not answer") {
        return Err(format!(
            "boot 2: no clean SYSTEM_RESET recall: {}",
            s2.ending()
        ));
    }
    check_cycle(&b, "warm-a", "warm-b")?;
    expect_poweroff(&b)
}
