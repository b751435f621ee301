//! The monitor proper: SMC dispatch into the PSCI state machine, the recall FIQ, SYSTEM_RESET,
//! power-off and restart through the secure GPIO, and monitor bugs.

use core::arch::asm;

use kexboot_monitor::psci::{self, Action, CpuState, MAX_CPUS};

use super::*;

pub(super) fn gpio_pulse(pin: u32) -> ! {
    // SAFETY: the ready word (secure RAM): after this reset the secondaries wait for the new
    // boot's monitor (see READY_ADDR).
    unsafe { core::ptr::write_volatile(READY_ADDR as *mut u64, 0) };
    dmb();
    mmio_write(
        SECURE_GPIO + PL061_DIR,
        mmio_read(SECURE_GPIO + PL061_DIR) | (1 << pin),
    );
    // PL061 data: address bits 9:2 mask the pins written.
    let data = SECURE_GPIO + (4u64 << pin);
    mmio_write(data, 0);
    mmio_write(data, 1 << pin);
    loop {
        wfe();
    }
}

/// A synchronous exception from a lower EL: an SMC, or a monitor bug.
#[no_mangle]
extern "C" fn el3_sync(frame: &mut Frame) {
    let esr: u64;
    // SAFETY: reading ESR_EL3 has no effect.
    unsafe { asm!("mrs {v}, esr_el3", v = out(reg) esr, options(nomem, nostack)) };
    let ec = (esr >> 26) & 0x3f;
    if ec != EC_SMC64 && ec != EC_SMC32 {
        println!("kexboot: EL3: unexpected exception from a lower EL (ESR {esr:#x}); CPU stopped");
        crate::arch::halt()
    }
    let [f, a1, a2, a3] = [frame.x[0], frame.x[1], frame.x[2], frame.x[3]];
    let action = locked(|m| {
        let me = caller_index(m)?;
        Some((me, m.psci.as_mut()?.call(me, f, a1, a2, a3)))
    });
    let Some((me, action)) = action else {
        frame.x[0] = psci::ret::INTERNAL_FAILURE as u64;
        return;
    };
    match action {
        Action::Return(v) => frame.x[0] = v as u64,
        Action::Wake(_) => {
            frame.x[0] = psci::ret::SUCCESS as u64;
            sev();
        }
        Action::Park => pen(me),
        Action::Standby => {
            // Outside the lock: the other CPUs go on. Any interrupt wakes the core (also one
            // routed to the lower EL, which is taken right after the return); so does the
            // recall FIQ of a SYSTEM_RESET.
            // SAFETY: `dsb` + `wfi` only order memory and wait.
            unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
            frame.x[0] = psci::ret::SUCCESS as u64;
        }
        Action::SystemOff => {
            println!("kexboot: EL3: SYSTEM_OFF");
            gpio_pulse(GPIO_POWEROFF_PIN)
        }
        Action::SystemReset { recall } => system_reset(me, recall),
    }
}

/// The recall FIQ: acknowledged; during a SYSTEM_RESET this CPU parks, else it returns.
#[no_mangle]
extern "C" fn el3_fiq(_frame: &mut Frame) {
    let parked = locked(|m| {
        let iar = mmio_read(m.gicc + GICC_IAR);
        if iar & 0x3ff < 1020 {
            mmio_write(m.gicc + GICC_EOIR, iar);
        }
        let me = caller_index(m)?;
        let p = m.psci.as_mut()?;
        if p.resetting() && p.state(me) == Some(CpuState::On) {
            p.parked(me);
            return Some(me);
        }
        None
    });
    if let Some(me) = parked {
        sev();
        pen(me)
    }
}

/// SYSTEM_RESET: recall running CPUs, then re-enter kexboot at NS-EL2 from a pristine image.
pub(super) fn system_reset(me: usize, recall: u32) -> ! {
    let targets = locked(|m| {
        (0..MAX_CPUS)
            .filter(|i| recall & (1 << i) != 0)
            .fold(0u32, |t, i| t | u32::from(m.gic_mask[i]))
    });
    let gicd = locked(|m| m.gicd);
    if targets != 0 {
        mmio_write(gicd + GICD_SGIR, (targets << 16) | RECALL_SGI);
    }
    let freq = crate::arch::regs::counter_freq().max(1);
    let t0 = crate::arch::regs::counter();
    let all = loop {
        if locked(|m| m.psci.as_ref().is_some_and(|p| p.all_off(recall))) {
            break true;
        }
        if crate::arch::regs::counter().wrapping_sub(t0) > freq {
            break false;
        }
        core::hint::spin_loop();
    };
    let (entry, dtb, warm) = locked(|m| {
        let registered = m.psci.as_ref().map_or(0, |p| p.reset_dtb());
        let ns_image = (m.ns_base, m.ns_base + m.ns_size);
        let usable = last_kernel_dtb(registered, m.ram)
            .is_some_and(|len| registered + len <= ns_image.0 || registered >= ns_image.1);
        let dtb = if usable {
            registered
        } else {
            // RAM the last kernel used: lines it left dirty there would later overwrite the
            // copy made around the caches.
            clean_inval(m.dtb, m.dtb_len);
            copy(m.dtb, SAVED_DTB, m.dtb_len);
            m.dtb
        };
        // The flash must still hold kexboot (arm64 Image magic), else a real reset.
        if mmio_read(m.flash + 0x38) != 0x644d_5241 {
            gpio_pulse(GPIO_RESTART_PIN)
        }
        install_ns_image(m);
        if let Some(p) = m.psci.as_mut() {
            p.reset_done(me);
        }
        (m.ns_base, dtb, usable)
    });
    println!(
        "kexboot: EL3: SYSTEM_RESET: {} CPUs recalled{}; re-entering kexboot with the {} device tree",
        recall.count_ones(),
        if all { "" } else { " (some did not answer)" },
        if warm { "last kernel's" } else { "firmware's" }
    );
    // SAFETY: the pristine image is in place; this CPU's monitor stack is its own.
    unsafe {
        kexboot_el3_enter_ns(
            entry,
            dtb,
            MONITOR_MAGIC,
            psci::PSCI_VERSION_1_0,
            stack_top(my_slot()),
        )
    }
}

/// A monitor bug (exception at EL3): reported, CPU stopped.
#[no_mangle]
extern "C" fn el3_unexpected(_frame: &mut Frame) {
    let (esr, elr): (u64, u64);
    // SAFETY: reading ESR_EL3 and ELR_EL3 has no effect.
    unsafe {
        asm!("mrs {e}, esr_el3", "mrs {l}, elr_el3", e = out(reg) esr, l = out(reg) elr, options(nomem, nostack))
    };
    println!("kexboot: EL3: exception in the monitor (ESR {esr:#x}, ELR {elr:#x}); CPU stopped");
}
