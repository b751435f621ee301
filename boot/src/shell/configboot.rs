//! One boot through an extlinux-format config, from the disk (`boot`, `bootmenu`) or over the
//! network (`pxe boot`): the menu when the config asks for one, then every entry in boot order
//! through the one boot-plan builder ([`flow`]) and the board's jump.

use alloc::vec::Vec;

use crate::board::{Board, Jump};
use crate::env::BootRequest;
use crate::extlinux::Config;
use crate::flow::{self, Files, Platform};
use crate::line::Term;
use crate::memory::Layout;
use crate::storage::Loc;
use crate::ui::{Menu, MenuAction};
use crate::{Clock, Console};

use super::Shell;

/// A file on the boot disk that asks for the in-guest copy benchmark before booting.
const BENCH_MARKER: &str = "/kexboot/bench";

/// How long a terminal may take to answer the cursor-position query.
const TERM_PROBE_US: u64 = 30_000;

/// Why the boot flow came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// No entry could be booted.
    Failed,
    /// The person asked for the shell.
    Shell,
}

/// ANSI when the terminal answers a cursor-position query (`ESC [ 6 n` → `ESC [ r ; c R`) within
/// 30 ms, else plain text (a log, a pipe, a dumb terminal).
pub fn probe_term(con: &mut dyn Console, clock: &dyn Clock) -> Term {
    while con.read_byte().is_some() {} // nothing typed before counts as an answer
    con.write_str("\x1b[6n");
    let t0 = clock.now_us();
    let mut seen_esc = false;
    while clock.now_us().saturating_sub(t0) < TERM_PROBE_US {
        match con.read_byte() {
            Some(0x1b) => seen_esc = true,
            Some(b'R') if seen_esc => return Term::ANSI,
            _ => core::hint::spin_loop(),
        }
    }
    // Nobody answered: a log or a dumb terminal, where the query may show as text; start what
    // follows on a line of its own.
    con.write_str("\r\n");
    Term::DUMB
}

/// The flow's clock, random source and device-tree changes: the board's; `fdtfile` from the
/// environment.
pub(super) struct FlowPlatform<'a, B: Board> {
    pub board: &'a mut B,
    pub clock: B::Clock,
    pub fdtfile: Option<&'a str>,
}

impl<B: Board> Clock for FlowPlatform<'_, B> {
    fn now_us(&self) -> u64 {
        self.clock.now_us()
    }
}

impl<B: Board> Platform for FlowPlatform<'_, B> {
    fn random_seeds(&mut self) -> Option<(u64, [u8; 64])> {
        self.board.random_seeds()
    }

    fn own_fixups(&self, dtb: &[u8]) -> Result<Vec<u8>, kexboot_loader::Error> {
        self.board.own_fixups(dtb)
    }

    fn fdtfile(&self) -> Option<&str> {
        self.fdtfile
    }

    fn keys(&self) -> &kexboot_loader::fit::Keys {
        self.board.keys()
    }
}

/// One boot through an extlinux-format config: what it needs of the shell's state.
pub(super) struct ConfigBoot<'a, B: Board> {
    pub board: &'a mut B,
    pub staging: &'a mut B::Staging,
    pub layout: &'a Layout,
    pub dtb: &'a [u8],
    pub request: &'a BootRequest,
    pub force_menu: bool,
    /// The environment's `fdtfile`: the file an entry's `fdtdir` names.
    pub fdtfile: Option<&'a str>,
}

impl<B: Board> ConfigBoot<'_, B> {
    /// Shows the boot menu if the config asks for one (timeout/prompt), else boots the default.
    fn menu(&mut self, config: &Config) -> MenuAction {
        let always = self.force_menu;
        let (mut con, clock) = (self.board.console(), self.board.clock());
        let immediate = crate::ui::boots_at_once(config) && !always;
        let term = match immediate {
            true => Term::DUMB,
            false => probe_term(&mut con, &clock),
        };
        let mut menu = match always {
            true => Menu::interactive(config, term),
            false => Menu::new(config, term),
        };
        let board = &mut *self.board;
        menu.run_with(&mut con, &clock, |_, t| {
            board.mark("boot menu drawn");
            log::info!("boot menu drawn ({} ms after kexboot entry)", t / 1000)
        })
    }

    /// The menu (when the config asks for one), then every entry in boot order, with paths
    /// resolved against `path` by `files`; returns only when none could be booted.
    pub fn run(&mut self, files: &mut dyn Files, path: &str, mut config: Config) -> Outcome {
        for said in self.request.apply(&mut config) {
            log::info!("{said}");
        }
        // The boot menu, when the config asks for one; a warm reboot that named its entry skips it.
        if self.request.entry.is_none() || self.force_menu {
            match self.menu(&config) {
                MenuAction::Shell => return Outcome::Shell,
                MenuAction::Boot {
                    index,
                    append_override,
                } => {
                    config.default = Some(config.entries[index].label.clone());
                    if let Some(a) = append_override {
                        config.entries[index].append = Some(a);
                    }
                }
            }
        }
        let avoid = self.layout.avoid();
        let mem = self.layout.view(&avoid);
        let mut from = 0;
        loop {
            let mut platform = FlowPlatform {
                clock: self.board.clock(),
                board: &mut *self.board,
                fdtfile: self.fdtfile,
            };
            let (found, _failures) = flow::next_bootable(
                files,
                &mut *self.staging,
                &mut platform,
                &mem,
                self.dtb,
                path,
                &config,
                from,
            );
            let Some((pos, prepared)) = found else {
                return Outcome::Failed;
            };
            // The last gate before anything runs (prepare refuses earlier, with the reason).
            if self.board.keys().required() && !prepared.verified {
                log::error!(
                    "entry '{}': refused by verified boot: not a verified FIT",
                    prepared.label
                );
                from = pos + 1;
                continue;
            }
            let jump = Jump {
                segments: &prepared.segments,
                entry: prepared.entry,
                dtb: prepared.dtb,
                label: &prepared.label,
            };
            let err = self.board.jump(self.layout, &jump);
            log::error!(
                "entry '{}': {}",
                prepared.label,
                flow::BootError::Relocate(err)
            );
            from = pos + 1;
        }
    }
}

impl<B: Board> Shell<B> {
    /// The extlinux flow from `config` (read from `path` on the volume at `loc`), optionally
    /// for one label; returns only when nothing booted or the person asked for the shell.
    pub(super) fn boot_config(
        &mut self,
        loc: Loc,
        path: &str,
        config: Config,
        label: Option<&str>,
        force_menu: bool,
        fdtfile: Option<&str>,
    ) -> Outcome {
        let Shell {
            board,
            staging,
            storage,
            layout,
            base_dtb,
            request,
            ..
        } = self;
        let Ok(fs) = storage.open(loc) else {
            return Outcome::Failed;
        };
        if fs.stat(BENCH_MARKER).is_ok() {
            board.copy_benchmark(layout);
        }
        board.mark("config read");
        log::info!("{path}: {} entries", config.entries.len());
        let mut request = request.clone();
        if let Some(l) = label {
            request.entry = Some(l.into());
        }
        let mut boot = ConfigBoot {
            board,
            staging,
            layout,
            dtb: base_dtb,
            request: &request,
            force_menu,
            fdtfile,
        };
        boot.run(fs, path, config)
    }
}
