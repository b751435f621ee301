//! From the board's start to autoboot: the boot disk and its environment, what this boot
//! keeps for the next (handoff page, ramoops, spin-table pen), kexboot's own device-tree
//! changes, then the shell (`kexboot_boot::shell`): autoboot, then the prompt.

use alloc::vec::Vec;

use kexboot_boot::env::BootRequest;
use kexboot_boot::memory::Layout;
use kexboot_boot::shell::{self, BootFs, Parts, Shell};
use kexboot_fs::open_boot_fs;
use kexboot_loader::dt::DtInfo;
use kexboot_loader::handoff;

use crate::firmware::{Firmware, HeapStaging, OwnFixups};
use crate::virtio::VirtioBlk;
use crate::{smp, warm};

fn open_disk(disks: Vec<VirtioBlk>) -> Option<BootFs<VirtioBlk>> {
    for disk in disks {
        let base = disk.base;
        match open_boot_fs(disk, None) {
            Ok((part, fs)) => {
                log::info!(
                    "disk at {:#x}: partition {} ({} MiB), FAT file system",
                    base,
                    part.number,
                    part.num_sectors >> 11
                );
                return Some(fs);
            }
            Err(e) => log::warn!("disk at {base:#x}: no boot file system: {e}"),
        }
    }
    None
}

/// Runs the boot logic on board `board` (its name); never returns.
pub fn run(
    board: &'static str,
    mut layout: Layout,
    dtb: &[u8],
    disks: Vec<VirtioBlk>,
    info: &DtInfo,
    entry: handoff::Entry,
) -> ! {
    let mut fs = open_disk(disks);
    let env = fs.as_mut().map(shell::env_txt).unwrap_or_default();
    // What this boot reserves for the next: the handoff page, and a ramoops region if asked.
    let handoff = warm::Handoff::new(&entry, info, &mut layout);
    let ramoops = warm::Ramoops::plan(&env, info, &mut layout);
    // spin-table, when asked: the secondaries go to kexboot's pen now, their nodes say so, and
    // the pen's page is a /memreserve/.
    let pen = match smp::wants_spin_table(&env) {
        false => None,
        true => smp::Pen::start(info, &mut layout)
            .map_err(|e| log::warn!("spin-table: {e}; CPUs stay as the platform has them"))
            .ok(),
    };
    let own = OwnFixups::new(handoff.as_ref(), ramoops, pen.as_ref(), info);
    let base_dtb = match own.apply(dtb) {
        Ok(d) => d,
        Err(e) => {
            log::error!("device tree: cannot add kexboot's reserved nodes: {e}");
            dtb.to_vec()
        }
    };
    let request = BootRequest::from_bootargs(info.bootargs.as_deref().unwrap_or(""));
    let firmware = Firmware {
        name: board,
        info,
        handoff,
        pen,
        own,
        mapped: layout.mapped.clone(),
        writable: layout.writable(),
    };
    let mut shell = Shell::new(Parts {
        board: firmware,
        staging: HeapStaging,
        fs,
        layout,
        dtb: base_dtb,
        request,
    });
    let mut env = shell.load_env(env);
    shell.autoboot(&mut env);
    shell.prompt(&mut env)
}
