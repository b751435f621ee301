//! The command shell and autoboot, in U-Boot's habits: an environment (`printenv`, `setenv`,
//! `saveenv`, `env default`), `bootcmd` run at boot (or `altbootcmd` once `bootcount` passed
//! `bootlimit`), a boot script when the partition has one, and a `kexboot>` prompt with line
//! editing and history. The language is `kexboot_boot::script`; this file supplies the
//! firmware's commands.

use alloc::format;
use alloc::string::{String, ToString};

use kexboot_boot::autoboot;
use kexboot_boot::commands::{parse_hex, Command, Table};
use kexboot_boot::env::Env;
use kexboot_boot::envstore;
use kexboot_boot::line::LineEditor;
use kexboot_boot::script::{self, CmdError, Ctx, Interp};
use kexboot_boot::{Clock, Console};

use crate::arch::psci;
use crate::boot::Firmware;
use crate::term::{Serial, Timer};

/// Board defaults (U-Boot's default environment): `boot` runs the disk's extlinux.conf flow,
/// `netboot` (DHCP, then a boot script or PXE) when the disk had nothing to boot.
pub fn default_env(board: &str) -> Env {
    let mut env = Env::default();
    env.set("bootcmd", "boot || netboot");
    env.set("bootdelay", "0");
    env.set("board", board);
    env.set("ver", &format!("kexboot {}", crate::VERSION));
    env
}

type Res = Result<(), CmdError>;

fn say(ctx: &mut Ctx, s: &str) {
    ctx.console.write_str(s);
    ctx.console.write_str("\n");
}

fn msg(e: impl core::fmt::Display) -> CmdError {
    CmdError::Msg(e.to_string())
}

/// The firmware's commands beside the language's built-ins: the one list dispatch and `help`
/// read (`help` itself is the table's).
fn commands<'a>() -> [Command<Firmware<'a>>; 18] {
    let c = |name, aliases, help, run| Command {
        name,
        aliases,
        help,
        run,
    };
    [
        c("boot", &["sysboot"], "boot [label] - run the extlinux.conf boot flow (optionally one entry)", |fw, argv, _| {
            fw.boot(argv.get(1).map(String::as_str), false).map_err(msg)
        }),
        c("bootmenu", &[], "bootmenu - show the boot menu", |fw, _, _| fw.boot(None, true).map_err(msg)),
        c("load", &[], "load virtio <dev[:part]> <addr> <path> - read a file to RAM, set filesize", |fw, argv, ctx| {
            let said = crate::loadboot::load(fw, argv, ctx.env).map_err(CmdError::Msg)?;
            say(ctx, &said);
            Ok(())
        }),
        c("booti", &[], "booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>] - boot an arm64 Image from RAM", |fw, argv, ctx| {
            crate::loadboot::booti(fw, argv, ctx.env).map_err(CmdError::Msg)
        }),
        c("saveenv", &[], "saveenv - save the environment (two copies, power-cut safe)", |fw, _, ctx| fw.saveenv(ctx)),
        c("env", &[], "env default [-a] - reset the environment to the defaults", env_cmd),
        c("ls", &[], "ls [path] - list a directory of the boot partition", ls),
        c("dhcp", &[], "dhcp [addr] [[server:]file] - get an address (serverip, bootfile) by DHCP, then load the file unless autoload=no", |fw, argv, ctx| {
            crate::netboot::dhcp_cmd(fw, argv, ctx.env).map_err(CmdError::Msg)
        }),
        c("tftpboot", &["tftp"], "tftpboot [addr] [[server:]file] - download a file by TFTP, set filesize", |fw, argv, ctx| {
            crate::netboot::tftpboot(fw, argv, ctx.env).map_err(CmdError::Msg)
        }),
        c("pxe", &[], "pxe get | pxe boot - find the PXELINUX config on the TFTP server / boot it", |fw, argv, ctx| {
            match argv.get(1).map(String::as_str) {
                Some("get") => crate::netboot::pxe_get(fw, ctx.env).map_err(CmdError::Msg),
                Some("boot") => crate::netboot::pxe_boot(fw, ctx.env).map_err(CmdError::Msg),
                _ => Err(CmdError::Msg("usage: pxe get | pxe boot".into())),
            }
        }),
        c("ping", &[], "ping <ip> - send an ICMP echo request", |fw, argv, ctx| {
            crate::netboot::ping(fw, argv, ctx.env).map_err(CmdError::Msg)
        }),
        c("netboot", &[], "netboot - dhcp, then the boot script DHCP names, else pxe get + pxe boot", netboot),
        c("md", &[], "md <address> [count] - display RAM (32-bit words)", |fw, argv, ctx| {
            fw.md(argv.get(1).map(String::as_str), argv.get(2).map(String::as_str), ctx)
        }),
        c("bootstage", &[], "bootstage - time since kexboot's entry and since machine reset", bootstage),
        c("version", &[], "version - print kexboot's version", |fw, _, ctx| {
            say(ctx, &format!("kexboot {} ({})", crate::VERSION, fw.board));
            Ok(())
        }),
        c("reset", &[], "reset - reset the machine (PSCI SYSTEM_RESET)", |fw, _, _| psci::system_reset(fw.info).map_err(msg)),
        c("poweroff", &[], "poweroff - power off (PSCI SYSTEM_OFF)", |fw, _, _| psci::system_off(fw.info).map_err(msg)),
        c("exception", &[], "exception undefined - raise an exception (tests the report)", |_, argv, _| {
            match argv.get(1).map(String::as_str) {
                Some("undefined") => crate::arch::undefined_instruction(),
                _ => Err(CmdError::Msg("usage: exception undefined".into())),
            }
        }),
    ]
}

fn env_cmd(fw: &mut Firmware, argv: &[String], ctx: &mut Ctx) -> Res {
    match argv.get(1).map(String::as_str) {
        Some("default") => {
            *ctx.env = fw.defaults.clone();
            say(ctx, "## Resetting to default environment");
            Ok(())
        }
        _ => Err(CmdError::Msg("usage: env default [-a]".into())),
    }
}

fn ls(fw: &mut Firmware, argv: &[String], ctx: &mut Ctx) -> Res {
    let path = argv.get(1).map_or("/", String::as_str);
    let fs = fw
        .fs
        .as_mut()
        .ok_or(CmdError::Msg("no boot partition".into()))?;
    let list = fs
        .read_dir(path)
        .map_err(|e| CmdError::Msg(format!("{path}: {e}")))?;
    for e in list {
        let line = match e.is_dir {
            true => format!("            {}/", e.name),
            false => format!("  {:>10}  {}", e.size, e.name),
        };
        say(ctx, &line);
    }
    Ok(())
}

fn netboot(fw: &mut Firmware, _: &[String], ctx: &mut Ctx) -> Res {
    match crate::netboot::netboot(fw, ctx.env) {
        Ok(crate::netboot::Next::Script { name, text }) => {
            let table = commands();
            match Interp::new().run(&name, &text, ctx, &mut Table::new(fw, &table)) {
                Ok(script::Outcome::Success) => Ok(()),
                Ok(script::Outcome::Stopped) => Err(CmdError::Stop),
                Ok(script::Outcome::Failure) => Err(CmdError::Msg(format!(
                    "netboot failed: boot script {name} did not boot"
                ))),
                Err(e) => Err(CmdError::Msg(format!("netboot failed: {e}"))),
            }
        }
        Ok(crate::netboot::Next::Shell) => Ok(()),
        Err(e) => Err(CmdError::Msg(format!("netboot failed: {e}"))),
    }
}

fn bootstage(_: &mut Firmware, _: &[String], ctx: &mut Ctx) -> Res {
    say(ctx, "Timer summary in microseconds since kexboot's entry:");
    say(ctx, "       Mark  Stage");
    for (name, us) in crate::timer::stages() {
        say(ctx, &format!("{us:>11}  {name}"));
    }
    let now = crate::timer::since_start_us();
    say(
        ctx,
        &format!(
            "{now:>11}  now ({} ms since machine reset)",
            crate::timer::since_reset_us() / 1000
        ),
    );
    Ok(())
}

impl Firmware<'_> {
    fn saveenv(&mut self, ctx: &mut Ctx) -> Result<(), CmdError> {
        let fail = |e: String| CmdError::Msg(format!("saveenv: {e}"));
        let store = self
            .store
            .as_mut()
            .ok_or_else(|| fail("no environment store".into()))?;
        let plan = store.plan_save(ctx.env).map_err(|e| fail(e.to_string()))?;
        let fs = self
            .fs
            .as_mut()
            .ok_or_else(|| fail("no boot partition".into()))?;
        say(
            ctx,
            &format!("Saving Environment to FAT {}... ", envstore::STORE_PATH),
        );
        if fs.stat(envstore::STORE_PATH).is_err() {
            fs.create_file(envstore::STORE_PATH, envstore::REGION_SIZE as u64)
                .map_err(|e| fail(e.to_string()))?;
        }
        fs.write_in_place(envstore::STORE_PATH, plan.offset as u64, &plan.bytes)
            .map_err(|e| fail(e.to_string()))?;
        store.saved(&plan, ctx.env);
        say(ctx, "OK");
        Ok(())
    }

    fn md(&self, addr: Option<&str>, count: Option<&str>, ctx: &mut Ctx) -> Result<(), CmdError> {
        let usage = || CmdError::Msg("usage: md <address> [count]".into());
        let start = addr.and_then(parse_hex).ok_or_else(usage)? & !3;
        let words = count
            .map(|c| parse_hex(c).ok_or_else(usage))
            .transpose()?
            .unwrap_or(64)
            .min(4096);
        let end = start.checked_add(words * 4).ok_or_else(usage)?;
        let inside = self
            .layout
            .ram
            .iter()
            .any(|r| r.start() <= start && end <= r.end())
            && !self
                .layout
                .reserved
                .iter()
                .any(|r| r.start() < end && start < r.end());
        if !inside {
            return Err(CmdError::Msg(format!(
                "md: {start:#x}..{end:#x} is not plain RAM"
            )));
        }
        for row in (start..end).step_by(16) {
            let mut line = format!("{row:08x}:");
            for a in (row..(row + 16).min(end)).step_by(4) {
                // SAFETY: checked above to lie in mapped RAM outside reserved regions.
                let w = unsafe { core::ptr::read_volatile(a as *const u32) };
                line += &format!(" {w:08x}");
            }
            say(ctx, &line);
        }
        Ok(())
    }
}

fn ctx<'a>(env: &'a mut Env, con: &'a mut Serial, clock: &'a Timer) -> Ctx<'a> {
    Ctx {
        env,
        console: con,
        clock,
    }
}

/// Runs `text` and prints a parse/bound error with its position.
fn run_text(fw: &mut Firmware, interp: &mut Interp, env: &mut Env, name: &str, text: &str) {
    let (mut con, clock) = (Serial, Timer);
    let table = commands();
    let mut cmds = Table::new(fw, &table);
    if let Err(e) = interp.run(name, text, &mut ctx(env, &mut con, &clock), &mut cmds) {
        log::error!("{e}");
    }
}

/// Autoboot: `bootdelay` countdown, then a boot script if present, else `bootcmd` (or
/// `altbootcmd`); if that returns, the shell.
pub fn autoboot(fw: &mut Firmware, env: &mut Env) -> ! {
    let mut interp = Interp::new();
    crate::loadboot::default_addresses(fw, env);
    let counted = autoboot::count_boot(fw.fs.as_mut(), env);
    let delay_s = env
        .get("bootdelay")
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(0);
    let interrupted = delay_s > 0 && countdown(delay_s);
    if !interrupted {
        let script = fw.fs.as_mut().and_then(autoboot::find_script);
        let run = autoboot::choose(script, counted, env);
        if autoboot::SCRIPTS.contains(&run.name) {
            log::info!("running boot script {}", run.name);
        }
        run_text(fw, &mut interp, env, run.name, &run.text);
        println!("kexboot: no entry could be booted");
    }
    shell(fw, env, &mut interp)
}

/// "Hit any key to stop autoboot: N"; true when a key was hit.
fn countdown(seconds: u64) -> bool {
    let (mut con, clock) = (Serial, Timer);
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

/// The `kexboot>` prompt.
fn shell(fw: &mut Firmware, env: &mut Env, interp: &mut Interp) -> ! {
    println!("Type 'help' for commands.");
    let term = crate::boot::probe_term();
    let mut editor = LineEditor::new(term);
    loop {
        let line = {
            let (mut con, clock) = (Serial, Timer);
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
        run_text(fw, interp, env, "shell", &line);
    }
}
