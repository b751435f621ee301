//! From the board's start to autoboot: the boot disk and its environment, what this boot
//! keeps for the next (handoff page, ramoops, spin-table pen), kexboot's own device-tree
//! changes, then the shell's autoboot.

use alloc::string::String;
use alloc::vec::Vec;

use kexboot_boot::env::{BootRequest, Env, ENV_PATH, MAX_ENV};
use kexboot_fs::open_boot_fs;
use kexboot_loader::dt::DtInfo;
use kexboot_loader::handoff;

use crate::boot::{BootFs, Firmware, OwnFixups};
use crate::memory::MemoryLayout;
use crate::virtio::VirtioBlk;
use crate::{shell, smp, warm};

fn open_disk(disks: Vec<VirtioBlk>) -> Option<BootFs> {
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

fn read_env(fs: &mut BootFs) -> Env {
    match fs.read_file(ENV_PATH, MAX_ENV as usize) {
        Ok(bytes) => {
            let (env, notes) = Env::parse(&String::from_utf8_lossy(&bytes));
            for n in notes {
                log::warn!("{ENV_PATH}: {n}");
            }
            env
        }
        Err(kexboot_fs::Error::NotFound) => Env::default(),
        Err(e) => {
            log::warn!("{ENV_PATH}: {e}");
            Env::default()
        }
    }
}

/// Runs the boot logic on board `board` (its name); never returns.
pub fn run(
    board: &'static str,
    mut layout: MemoryLayout,
    dtb: &[u8],
    disks: Vec<VirtioBlk>,
    info: &DtInfo,
    entry: handoff::Entry,
) -> ! {
    let mut fs = open_disk(disks);
    let env = fs.as_mut().map(read_env).unwrap_or_default();
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
    let mut fw = Firmware {
        fs,
        layout,
        base_dtb,
        request,
        handoff,
        pen,
        own,
        info,
        store: None,
        net: Default::default(),
        board,
        defaults: shell::default_env(board),
    };
    let mut env = fw.load_env(env);
    shell::autoboot(&mut fw, &mut env)
}
