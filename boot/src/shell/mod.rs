//! The shell and autoboot, in U-Boot's habits, on any [`Board`]: an environment (`printenv`,
//! `setenv`, `saveenv`, `env default`), `bootcmd` run at boot (or `altbootcmd` once
//! `bootcount` passed `bootlimit`), a boot script when the partition has one, and a
//! `kexboot>` prompt with line editing and history. The language is [`crate::script`]; the
//! commands are one table ([`table`]); what they act on is [`Shell`].

mod configboot;
mod disk;
mod distro;
mod error;
mod fdt;
mod net;
mod table;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kexboot_fs::{BlockDevice, Volume};

use crate::autoboot;
use crate::board::Board;
use crate::commands::Table;
use crate::env::{BootRequest, Env, ENV_PATH, MAX_ENV};
use crate::envstore;
use crate::line::LineEditor;
use crate::memory::Layout;
use crate::script::{self, Ctx, Interp};
use crate::storage::{DiskVolume, Storage};
use crate::{Clock, Console};

pub use configboot::probe_term;
pub use error::Error;
pub use fdt::{
    env_value as fdt_env_value, format_value as fdt_format_value, parse_value as fdt_parse_value,
    MAX_VALUE as FDT_MAX_VALUE,
};
pub use table::commands;

/// kexboot's version (`version`, the `ver` variable).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A file system on a partition of one of the board's disks.
pub type BootFs<D> = DiskVolume<D>;

/// Board defaults (U-Boot's default environment): `boot` runs the disk's extlinux.conf flow,
/// `netboot` (DHCP, then a boot script or PXE) when the disk had nothing to boot.
pub fn default_env(board: &str) -> Env {
    let mut env = Env::default();
    env.set("bootcmd", "boot || netboot");
    env.set("bootdelay", "0");
    env.set("board", board);
    env.set("ver", &format!("kexboot {VERSION}"));
    env
}

/// `/kexboot/env.txt` of the boot partition (empty when it has none).
pub fn env_txt<D: BlockDevice + 'static>(fs: &mut Volume<D>) -> Env {
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

/// What a shell starts from.
pub struct Parts<B: Board> {
    pub board: B,
    pub staging: B::Staging,
    /// The board's disks, the home volume (environment, boot count) found.
    pub storage: Storage<B::Disk>,
    pub layout: Layout,
    /// The device tree handed over when an entry names none, with the board's own changes.
    pub dtb: Vec<u8>,
    /// What the kernel command line that started kexboot asked of this boot (warm re-entry).
    pub request: BootRequest,
}

/// Everything the commands act on: the board, the boot disk, memory, the network, the
/// environment's store.
pub struct Shell<B: Board> {
    board: B,
    staging: B::Staging,
    storage: Storage<B::Disk>,
    layout: Layout,
    base_dtb: Vec<u8>,
    request: BootRequest,
    /// The saved environment's copies (for `saveenv`), once read.
    store: Option<envstore::Loaded>,
    net: net::Net<B::Nic>,
    /// The board's default environment (`env default`).
    defaults: Env,
    interp: Interp,
    /// A boot script fetched by `netboot` is running (it may not run `netboot` again).
    in_net_script: bool,
    /// A boot script of a disk is running (a `boot` it says runs no script again).
    in_disk_script: bool,
    /// The working device tree of `fdt addr` (U-Boot's `working_fdt`), once named.
    fdt_addr: Option<u64>,
}

impl<B: Board> Shell<B> {
    pub fn new(p: Parts<B>) -> Self {
        let defaults = default_env(p.board.name());
        let keys = p.board.keys();
        if !keys.keys.is_empty() {
            log::info!("verified boot: {}", keys.summary());
        }
        Shell {
            board: p.board,
            staging: p.staging,
            storage: p.storage,
            layout: p.layout,
            base_dtb: p.dtb,
            request: p.request,
            store: None,
            net: net::Net::default(),
            defaults,
            interp: Interp::new(),
            in_net_script: false,
            in_disk_script: false,
            fdt_addr: None,
        }
    }

    pub fn board(&self) -> &B {
        &self.board
    }

    pub fn board_mut(&mut self) -> &mut B {
        &mut self.board
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The home volume (environment, boot count, boot script), opened.
    pub fn fs(&mut self) -> Option<&mut BootFs<B::Disk>> {
        self.storage.home()
    }

    pub fn storage(&mut self) -> &mut Storage<B::Disk> {
        &mut self.storage
    }

    /// The environment: the saved one (`/kexboot/env.bin`, two copies with CRC and sequence)
    /// when it has a valid copy, else board defaults plus `/kexboot/env.txt` (`from_txt`).
    pub fn load_env(&mut self, from_txt: Env) -> Env {
        let mut defaults = self.defaults.clone();
        for (k, v) in from_txt.iter_sorted() {
            defaults.set(k, v);
        }
        let region = match self
            .storage
            .home()
            .map(|fs| fs.read_file(envstore::STORE_PATH, envstore::REGION_SIZE))
        {
            Some(Ok(r)) => r,
            Some(Err(kexboot_fs::Error::NotFound)) | None => Vec::new(),
            Some(Err(e)) => {
                log::warn!("{}: {e}", envstore::STORE_PATH);
                Vec::new()
            }
        };
        let loaded = envstore::load(&region, envstore::COPY_SIZE, &defaults);
        for note in &loaded.notes {
            log::info!("environment: {note}");
        }
        let env = loaded.env.clone();
        self.store = Some(loaded);
        env
    }

    /// Runs `text` (a command line or a script named `name`) with the shell's commands; a
    /// parse or bound error is logged with its position and returned.
    pub fn run(
        &mut self,
        env: &mut Env,
        name: &str,
        text: &str,
    ) -> Result<script::Outcome, script::Error> {
        let (mut con, clock) = (self.board.console(), self.board.clock());
        let mut ctx = Ctx {
            env,
            console: &mut con,
            clock: &clock,
        };
        let mut interp = core::mem::take(&mut self.interp);
        let table = commands::<B>();
        let out = interp.run(name, text, &mut ctx, &mut Table::new(self, &table));
        self.interp = interp;
        if let Err(e) = &out {
            log::error!("{e}");
        }
        out
    }

    /// Runs a boot script (from a disk or the network) inside a running command: a fresh
    /// interpreter over the shell's commands, with the caller's environment and console.
    fn run_nested(
        &mut self,
        name: &str,
        text: &str,
        ctx: &mut Ctx,
    ) -> Result<script::Outcome, script::Error> {
        let table = commands::<B>();
        Interp::new().run(name, text, ctx, &mut Table::new(self, &table))
    }

    /// Autoboot: `kernel_addr_r` and friends, the boot count, the `bootdelay` countdown, then
    /// a boot script if the partition has one, else `bootcmd` (or `altbootcmd`). Returns when
    /// that booted nothing or a key stopped it: the prompt is next.
    pub fn autoboot(&mut self, env: &mut Env) {
        self.default_addresses(env);
        let home = self.storage.home().and_then(Volume::fat_mut);
        let counted = autoboot::count_boot(home, env);
        let delay_s = env
            .get("bootdelay")
            .and_then(|d| d.parse::<u64>().ok())
            .unwrap_or(0);
        if delay_s > 0 && self.countdown(delay_s) {
            return;
        }
        let keys = self.board.keys();
        let script = self
            .storage
            .home()
            .and_then(|v| autoboot::find_script(v, keys));
        let run = autoboot::choose(script, counted, env);
        if autoboot::SCRIPTS.contains(&run.name) {
            // Said as the `boot` scan says it, with the variables U-Boot's distro boot gives a
            // script it found.
            if let Some(loc) = self.storage.home_loc() {
                let name = self.storage.name(loc);
                let kind = self.storage.home().map_or("?", |v| v.kind_name());
                self.board.console().write_str(&format!(
                    "Scanning {name}...\npartition {:x}: {kind}\nFound U-Boot script {}\n",
                    loc.part, run.name
                ));
                distro::script_env(&self.storage, loc, run.name, env);
            }
        }
        let _ = self.run(env, run.name, &run.text);
        self.board
            .console()
            .write_str("kexboot: no entry could be booted\n");
    }

    /// "Hit any key to stop autoboot: N"; true when a key was hit.
    fn countdown(&mut self, seconds: u64) -> bool {
        let (mut con, clock) = (self.board.console(), self.board.clock());
        let t0 = clock.now_us();
        let mut shown = u64::MAX;
        loop {
            let elapsed = clock.now_us().saturating_sub(t0) / 1_000_000;
            if elapsed >= seconds {
                con.write_str("\r\n");
                return false;
            }
            if seconds - elapsed != shown {
                shown = seconds - elapsed;
                con.write_str(&format!("\rHit any key to stop autoboot: {shown} "));
            }
            if con.read_byte().is_some() {
                con.write_str("\r\n");
                return true;
            }
            core::hint::spin_loop();
        }
    }

    /// The `kexboot>` prompt, for good.
    pub fn prompt(&mut self, env: &mut Env) -> ! {
        self.board
            .console()
            .write_str("Type 'help' for commands.\n");
        let term = probe_term(&mut self.board.console(), &self.board.clock());
        let mut editor = LineEditor::new(term);
        loop {
            let line = {
                let (mut con, clock) = (self.board.console(), self.board.clock());
                match editor.read_line(&mut con, &clock, "kexboot> ", None) {
                    Ok(l) => l,
                    Err(_) => {
                        con.write_str("\n");
                        continue;
                    }
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            editor.add_history(&line);
            let _ = self.run(env, "shell", &line);
        }
    }
}
