//! The warm re-entry QEMU cases: Linux booted by kexboot kexec's back into kexboot (through the
//! helper or kexec-tools), which boots the next kernel; several boots in one QEMU run, split into
//! one transcript per boot and checked boot by boot. Also the direct kexec baseline (Linux to
//! Linux with kexec-tools, no kexboot) that the bench compares against.

use crate::boots::{
    check_boot, check_reserved, direct_args, direct_expect, expect_poweroff, prepare, reserved,
    run_boots, run_kexboot, seg, warm_assets, warm_expect, warm_time, warm_timeout, Entered,
    Expect, BEGIN, CPU_STOPPED, SMP,
};
use crate::check::{Ctx, Transcript};
use crate::qemu;
use crate::warm::{
    Scenario, GUEST_IP, GUEST_UDP_PORT, MACHINE, NO_MAP_PAGE, USER_DTB, USER_DTB_ENTRY,
};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// cold → warm-b → warm-a → warm-b through the helper, every boot checked.
pub fn case_helper_3_cycles(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::Helper3, true)?;
    let b = run_kexboot(c, name, disk, 4)?;
    let order = ["warm-a", "warm-b", "warm-a", "warm-b"];
    for (i, entry) in order.iter().enumerate() {
        let k = i + 1;
        let entered = if k == 1 {
            Entered::Cold
        } else {
            Entered::Warm(order[i - 1])
        };
        check_boot(seg(&b, k)?, k, &warm_expect(entry, k as u32, entered))?;
    }
    check_reserved(&b.segs)?;
    expect_poweroff(&b)
}

/// `kexec -l /boot/kexboot.bin` + `kexec -e`: the default entry boots with its own append only.
pub fn case_tools_default(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::ToolsDefault, false)?;
    let b = run_kexboot(c, name, disk, 2)?;
    check_boot(seg(&b, 1)?, 1, &warm_expect("warm-a", 1, Entered::Cold))?;
    let mut e = warm_expect("warm-a", 1, Entered::Warm("warm-a"));
    e.cmdline = Some(Scenario::ToolsDefault.append("warm-a"));
    e.pstore_mark = Some(1);
    check_boot(seg(&b, 2)?, 2, &e)?;
    check_reserved(&b.segs)
}

/// `kexec -l /boot/kexboot.bin --dtb=/sys/firmware/fdt --append="kexboot.entry=warm-b -- ..."`.
pub fn case_tools_append(c: &Ctx, name: &str) -> Result<(), String> {
    tools_append(c, name, MACHINE, "EL2")
}

/// The same on a machine without EL2: kexboot and Linux run at EL1.
pub fn case_tools_append_el1(c: &Ctx, name: &str) -> Result<(), String> {
    tools_append(c, name, "virt", "EL1")
}

fn tools_append(c: &Ctx, name: &str, m: &str, el: &'static str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::ToolsAppend, false)?;
    let b = run_boots(&c.kexboot(m, SMP, disk), &c.log(name), 2, warm_timeout())?;
    let mut first = warm_expect("warm-a", 1, Entered::Cold);
    first.el = el;
    check_boot(seg(&b, 1)?, 1, &first)?;
    let mut second = warm_expect("warm-b", 2, Entered::Warm("warm-a"));
    second.el = el;
    check_boot(seg(&b, 2)?, 2, &second)?;
    check_reserved(&b.segs)?;
    expect_poweroff(&b)
}

/// The helper names an entry that does not exist: kexboot says so and boots the default.
pub fn case_bad_entry(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::BadEntry, true)?;
    let b = run_kexboot(c, name, disk, 2)?;
    check_boot(seg(&b, 1)?, 1, &warm_expect("warm-a", 1, Entered::Cold))?;
    let s2 = seg(&b, 2)?;
    // Whether the ` -- ` words still apply to the default entry is not specified: no cycle check.
    let mut e = warm_expect("warm-a", 2, Entered::Warm("warm-a"));
    e.cycle = None;
    e.pstore_mark = Some(1);
    check_boot(s2, 2, &e)?;
    let begin = s2.find(|l| l.contains(BEGIN)).map(|(i, _)| i).unwrap_or(0);
    if !s2.lines[..begin]
        .iter()
        .any(|l| l.text.contains("does-not-exist"))
    {
        return Err(
            "boot 2: kexboot did not say that entry 'does-not-exist' does not exist".into(),
        );
    }
    Ok(())
}

/// `kexboot-reboot --image /boot/Image` exits 2 with "not a kexboot image", loads nothing, and
/// Linux goes on.
pub fn case_helper_refuses(c: &Ctx, name: &str) -> Result<(), String> {
    let (w, disk) = prepare(c, Scenario::Refuse, false)?;
    let b = run_kexboot(c, name, disk, 1)?;
    let s = seg(&b, 1)?;
    check_boot(
        s,
        1,
        &Expect {
            entry: "warm-a",
            cmdline: Some(Scenario::Refuse.append("warm-a")),
            cycle: None,
            entered: Entered::Cold,
            pstore_mark: None,
            warm_init: true,
            el: "EL2",
            cpus: SMP,
            allow_stuck: false,
        },
    )?;
    let rc = s.marker("helper-rc").unwrap_or("none").trim();
    let out = s.marker("helper-out").unwrap_or("").trim();
    if let Err(e) = &w.helper {
        return Err(format!(
            "helper not in the initramfs ({e}); it said rc={rc} {out:?}"
        ));
    }
    if rc != "2" {
        return Err(format!(
            "kexboot-reboot --image /boot/Image exited {rc}, expected 2 (output {out:?})"
        ));
    }
    if !out.contains("not a kexboot image") {
        return Err(format!(
            "helper output {out:?} does not say \"not a kexboot image\""
        ));
    }
    let loaded = s.marker("kexec-loaded").unwrap_or("none").trim();
    if loaded != "0" {
        return Err(format!(
            "/sys/kernel/kexec_loaded={loaded} after the refusal: something was loaded"
        ));
    }
    if s.find(|l| l.contains("KEXBOOT-E2E still-running"))
        .is_none()
    {
        return Err("Linux did not go on after the helper refused".into());
    }
    expect_poweroff(&b)
}

/// Linux → kexec-tools (`kexec -l Image --initrd --append`, default checks) → Linux, no kexboot:
/// proves the warm initramfs and kexec-tools, and is the bench's baseline.
pub fn case_direct_baseline(c: &Ctx, name: &str) -> Result<(), String> {
    let w = warm_assets(c)?;
    let b = run_boots(
        &direct_args(c.assets, w, "direct"),
        &c.log(name),
        2,
        warm_timeout(),
    )?;
    let mut first = warm_expect("direct", 1, Entered::NoKexboot);
    first.pstore_mark = None;
    check_boot(seg(&b, 1)?, 1, &first)?;
    let s2 = seg(&b, 2)?;
    check_boot(s2, 2, &direct_expect("direct"))?;
    if let Some(t) = warm_time(s2) {
        println!(
            "  {name}: kexec -e to the next userspace: {:.2} s",
            t.as_secs_f64()
        );
    }
    expect_poweroff(&b)
}

/// QEMU's PSCI with 4 CPUs: a warm cycle (kexec-tools, `--append`) ends with 4 CPUs online,
/// and kexboot found every secondary off (PSCI CPU_OFF by Linux) on its warm entry.
pub fn case_psci_smp4_warm(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::ToolsAppend, false)?;
    let b = run_boots(
        &c.kexboot(MACHINE, 4, disk),
        &c.log(name),
        2,
        warm_timeout(),
    )?;
    let mut first = warm_expect("warm-a", 1, Entered::Cold);
    first.cpus = 4;
    check_boot(seg(&b, 1)?, 1, &first)?;
    let mut second = warm_expect("warm-b", 2, Entered::Warm("warm-a"));
    second.cpus = 4;
    let s2 = seg(&b, 2)?;
    check_boot(s2, 2, &second)?;
    if s2.find(|l| l.contains("3 of 3 secondaries off")).is_none() {
        return Err("kexboot's warm entry did not find all 3 secondaries off".into());
    }
    if s2
        .find(|l| l.contains("before the jump: all 3 secondaries off"))
        .is_none()
    {
        return Err("no check that all 3 secondaries were off before the jump".into());
    }
    expect_poweroff(&b)
}

/// spin-table mode with 4 CPUs (QEMU's PSCI underneath): kexboot takes the secondaries into its
/// pen and Linux brings all 4 up through `cpu-release-addr`, with nothing "stuck".
pub fn case_spin_table_smp4(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::SpinTable, false)?;
    let b = run_boots(
        &c.kexboot(MACHINE, 4, disk),
        &c.log(name),
        1,
        warm_timeout(),
    )?;
    let mut e = warm_expect("warm-a", 1, Entered::Cold);
    e.cpus = 4;
    check_boot(seg(&b, 1)?, 1, &e)?;
    let has = |p: &str| b.all.find(|l| l.contains(p)).is_some();
    if !has("3 secondaries parked in kexboot's pen") {
        return Err("kexboot did not park the 3 secondaries in its spin-table pen".into());
    }
    if !has("before the jump: 3 secondaries in the spin-table pen") {
        return Err("no check of the pen before the jump".into());
    }
    expect_poweroff(&b)
}

/// UDP datagrams from the host to the guest for as long as a case runs: QEMU's user network
/// forwards `127.0.0.1:<port>` to the guest (`hostfwd`), so its NIC keeps receiving, also while
/// kexboot runs after a warm reboot. Bounded in time; only to the loopback address.
struct UdpSender {
    port: u16,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// One datagram every this long (about 500 a second).
const UDP_INTERVAL: Duration = Duration::from_millis(2);

impl UdpSender {
    /// Picks a free host port for QEMU's `hostfwd` and starts sending to it for at most `limit`.
    fn start(limit: Duration) -> Result<UdpSender, String> {
        // The port the OS hands out is free now; QEMU binds it right after (nobody else here
        // picks ports that way).
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(|e| format!("no free UDP port on 127.0.0.1: {e}"))?
            .port();
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("UDP socket: {e}"))?;
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (st, sn) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + limit;
            let mut n = 0u64;
            while !st.load(Ordering::Relaxed) && Instant::now() < end {
                let msg = format!("kexboot e2e datagram {n}");
                // Refused until QEMU listens: ignored, the next one goes all the same.
                if sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).is_ok() {
                    sn.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
                std::thread::sleep(UDP_INTERVAL);
            }
        });
        Ok(UdpSender {
            port,
            stop,
            sent,
            thread: Some(thread),
        })
    }

    /// Stops and returns how many datagrams went out.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.sent.load(Ordering::Relaxed)
    }
}

/// kexboot's entry line for the virtio-net device (`virtio::reset_all` at entry): its index in
/// the part of `seg` before the kernel, and the line.
fn net_reset_line(seg: &Transcript) -> Option<(usize, String)> {
    let begin = seg
        .find(|l| l.contains(BEGIN))
        .map_or(seg.lines.len(), |(i, _)| i);
    seg.lines[..begin]
        .iter()
        .enumerate()
        .find(|(_, l)| l.text.contains("virtio-mmio at") && l.text.contains("Network device"))
        .map(|(i, l)| (i, l.text.trim().to_string()))
}

/// The checks of kexboot's entry and of Linux's network in one boot of the NetRx run: on a
/// warm entry kexboot found the NIC the previous Linux left running and reset it before its
/// MMU (and heap) came up; Linux received the host's traffic.
pub fn check_net_boot(seg: &Transcript, k: usize, warm: bool) -> Result<(), String> {
    let fail = |m: String| Err(format!("boot {k}: {m}"));
    let Some((i, line)) = net_reset_line(seg) else {
        return fail(
            "kexboot did not report (and reset) the virtio-net device at entry: a NIC the \
             previous kernel left receiving would go on doing DMA into kexboot's memory"
                .into(),
        );
    };
    let running = line.contains("running (DRIVER_OK)");
    if warm && !running {
        return fail(format!(
            "on a warm entry the NIC must be found still running (Linux left it so): {line:?}"
        ));
    }
    if !warm && running {
        return fail(format!("the NIC was running on a cold entry: {line:?}"));
    }
    if line.contains("still reads") {
        return fail(format!("the NIC did not reset: {line:?}"));
    }
    match seg.find(|l| l.contains("MMU and caches on")) {
        Some((j, _)) if j > i => {}
        Some(_) => {
            return fail("the NIC was reset only after kexboot's MMU and heap were up".into())
        }
        None => return fail("no \"MMU and caches on\" line".into()),
    }
    if let Some((_, l)) = seg.find(|l| l.contains("KEXBOOT-E2E net-failed")) {
        return fail(format!("Linux: {:?}", l.text.trim()));
    }
    let rx: u64 = seg
        .marker("net-rx")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if rx == 0 {
        return fail("Linux's virtio-net received nothing (no host traffic?)".into());
    }
    Ok(())
}

/// Three warm cycles (cold, then warm-b, warm-a, warm-b, each through Linux's crash path, which
/// leaves devices running) with virtio-net up and receiving UDP from the host all along: every
/// warm entry finds the NIC still running and stops it before it picks memory, and every boot
/// comes up clean.
pub fn case_net_rx_3_cycles(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::NetRx, false)?;
    let sender = UdpSender::start(warm_timeout() + Duration::from_secs(30))?;
    let mut args = c.kexboot(MACHINE, SMP, disk);
    args.extend(qemu::user_net(&format!(
        "hostfwd=udp:127.0.0.1:{}-{GUEST_IP}:{GUEST_UDP_PORT}",
        sender.port
    )));
    let b = run_boots(&args, &c.log(name), 4, warm_timeout());
    let sent = sender.stop();
    let b = b?;
    println!("  {name}: {sent} UDP datagrams sent to the guest");
    let order = ["warm-a", "warm-b", "warm-a", "warm-b"];
    for (i, entry) in order.iter().enumerate() {
        let k = i + 1;
        let entered = match k {
            1 => Entered::Cold,
            _ => Entered::Warm(order[i - 1]),
        };
        let s = seg(&b, k)?;
        check_boot(s, k, &warm_expect(entry, k as u32, entered))?;
        check_net_boot(s, k, k > 1)?;
    }
    check_reserved(&b.segs)?;
    expect_poweroff(&b)
}

/// spin-table mode on a tree with a `no-map` firmware page (QEMU `-dtb`): kexboot never reads
/// that page (the pen-reuse check, `booti` of its address refused), and `booti` with a tree
/// from the disk still hands Linux kexboot's own changes: the pen's cpu nodes (all 4 CPUs up
/// through spin-table), the handoff and ramoops nodes.
pub fn case_user_dtb_no_map(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::UserDtb, false)?;
    let dtb = c.paths.assets.join(USER_DTB);
    let args = qemu::Args::machine(MACHINE, 4)
        .kernel(&c.paths.kexboot_bin())
        .disk(disk)
        .dtb(&dtb)
        .into_vec();
    let b = run_boots(&args, &c.log(name), 1, warm_timeout())?;
    if let Some((_, l)) = b.all.find(|l| l.contains(CPU_STOPPED)) {
        return Err(format!(
            "kexboot stopped ({:?}): a read of the no-map page at {NO_MAP_PAGE:#x}?",
            l.text.trim()
        ));
    }
    let refused = format!("booti: {NO_MAP_PAGE:#x} is not in RAM kexboot may read");
    if b.all.find(|l| l.contains(&refused)).is_none() {
        return Err(format!("no {refused:?} line"));
    }
    let s = seg(&b, 1)?;
    let e = Expect {
        entry: USER_DTB_ENTRY,
        cmdline: Some(Scenario::UserDtb.append(USER_DTB_ENTRY)),
        cycle: None,
        entered: Entered::Cold,
        pstore_mark: None,
        warm_init: true,
        el: "EL2",
        cpus: 4,
        allow_stuck: false,
    };
    check_boot(s, 1, &e)?;
    if s.find(|l| l.contains("3 secondaries parked in kexboot's pen"))
        .is_none()
    {
        return Err("kexboot did not park the 3 secondaries in its spin-table pen".into());
    }
    let r = reserved(s);
    let own = format!("firmware@{NO_MAP_PAGE:x}");
    for want in ["kexboot-handoff@", "ramoops@", own.as_str()] {
        if !r.iter().any(|n| n.starts_with(want)) {
            return Err(format!(
                "the tree booti handed over lacks /reserved-memory/{want}... (reserved={r:?})"
            ));
        }
    }
    expect_poweroff(&b)
}

/// A/B boot counting: with `bootlimit=2`, warm-a reboots (PSCI SYSTEM_RESET, a cold start)
/// without Linux resetting the counter; boots 1 and 2 run `bootcmd` (warm-a), boot 3 has
/// bootcount 3 > 2 and runs `altbootcmd` (warm-b).
pub fn case_bootlimit(c: &Ctx, name: &str) -> Result<(), String> {
    let (_, disk) = prepare(c, Scenario::BootLimit, false)?;
    let b = run_boots(
        &c.kexboot(MACHINE, SMP, disk),
        &c.log(name),
        3,
        warm_timeout(),
    )?;
    for (k, entry) in [(1, "warm-a"), (2, "warm-a"), (3, "warm-b")] {
        let s = seg(&b, k)?;
        let mut e = warm_expect(entry, 1, Entered::Cold);
        e.pstore_mark = None;
        check_boot(s, k, &e)?;
        let want = format!("bootcount {k}:");
        if s.find(|l| l.contains(&want)).is_none() {
            return Err(format!("boot {k}: no {want:?} line"));
        }
    }
    expect_poweroff(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boots::END;

    use crate::check::fake::{lines, transcript as tr};

    #[test]
    fn net_boot_checks() {
        let net = "kexboot: virtio-mmio at 0xa003c00: Network device, status 0xf running (DRIVER_OK); reset";
        let good = [
            (0.0, net),
            (0.1, "MMU and caches on at EL2; heap 400 MiB"),
            (1.0, BEGIN),
            (2.0, "KEXBOOT-E2E net-rx=57"),
            (3.0, END),
        ];
        assert_eq!(check_net_boot(&tr(lines(&good)), 2, true), Ok(()));
        // Cold: the NIC must not have been running.
        assert!(check_net_boot(&tr(lines(&good)), 1, false)
            .unwrap_err()
            .contains("running on a cold entry"));
        // No line: the entry reset is missing.
        let e = check_net_boot(&tr(lines(&good[1..])), 2, true).unwrap_err();
        assert!(e.contains("did not report (and reset)"), "{e}");
        // Reset after the MMU came up.
        let late = [good[1], good[0], good[2], good[3], good[4]];
        let e = check_net_boot(&tr(lines(&late)), 2, true).unwrap_err();
        assert!(e.contains("only after"), "{e}");
        // Found idle on a warm entry: the scenario did not leave it running.
        let idle =
            "kexboot: virtio-mmio at 0xa003c00: Network device, status 0x0 not running; reset";
        let mut v = good;
        v[0].1 = idle;
        assert!(check_net_boot(&tr(lines(&v)), 2, true)
            .unwrap_err()
            .contains("still running"));
        // Linux received nothing.
        let mut v = good;
        v[3].1 = "KEXBOOT-E2E net-rx=0";
        assert!(check_net_boot(&tr(lines(&v)), 2, true)
            .unwrap_err()
            .contains("received nothing"));
    }
}
