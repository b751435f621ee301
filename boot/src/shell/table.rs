//! The shell's commands beside the language's built-ins: the one list that dispatch, `help` and
//! completion read (`help` itself is the table's).

use alloc::format;
use alloc::string::String;

use crate::board::{Board, PowerError};
use crate::commands::Command;
use crate::env::Env;
use crate::script::Services;
use crate::script::{self, CmdError, Ctx};

use super::net::Next;
use super::{Error, Shell, VERSION};

type Res = Result<(), CmdError>;

fn say(ctx: &mut Ctx, s: &str) {
    ctx.console.write_str(s);
    ctx.console.write_str("\n");
}

fn arg(argv: &[String], i: usize) -> Option<&str> {
    argv.get(i).map(String::as_str)
}

/// Every command of the shell, for a board `B`.
pub fn commands<B: Board>() -> [Command<Shell<B>>; 23] {
    let c = |name, aliases, help, run| Command {
        name,
        aliases,
        help,
        run,
    };
    [
        c("boot", &[], "boot [label] - distro boot: every disk and partition's extlinux.conf, else boot.scr", |sh, argv, ctx| {
            super::distro::boot(sh, arg(argv, 1), false, ctx)
        }),
        c("sysboot", &[], "sysboot [-p] <interface> <dev[:part]> <any|fat|ext4> [addr] [file] - boot that partition's extlinux.conf", super::distro::sysboot),
        c("bootmenu", &[], "bootmenu - show the boot menu", |sh, _, ctx| {
            super::distro::boot(sh, None, true, ctx)
        }),
        c("load", &["fatload", "ext4load", "ext2load"], "load <interface> <dev[:part]> [addr [path]] - read a file to RAM, set filesize", |sh, argv, ctx| {
            let said = sh.load(argv, ctx.env)?;
            say(ctx, &said);
            Ok(())
        }),
        c("size", &["fatsize", "ext4size"], "size <interface> <dev[:part]> <path> - set filesize to a file's size", |sh, argv, ctx| {
            Ok(sh.size(argv, ctx.env)?)
        }),
        c("part", &[], "part list <interface> <dev> [-bootable] [var] | part uuid <interface> <dev:part> [var] - partition table", |sh, argv, ctx| {
            Ok(sh.part(argv, ctx.env, ctx.console)?)
        }),
        c("booti", &[], "booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>] - boot an arm64 Image from RAM", |sh, argv, ctx| {
            Ok(sh.booti(argv, ctx.env)?)
        }),
        c("bootm", &[], "bootm [<addr>][#<conf>] - boot a FIT image from RAM (signatures checked when a key requires them)", |sh, argv, ctx| {
            Ok(sh.bootm(argv, ctx.env)?)
        }),
        c("saveenv", &[], "saveenv - save the environment (two copies, power-cut safe)", |sh, _, ctx| {
            Ok(sh.saveenv(ctx.env, ctx.console)?)
        }),
        c("ls", &["fatls", "ext4ls", "ext2ls"], "ls [<interface> <dev[:part]>] [path] - list a directory", |sh, argv, ctx| {
            Ok(sh.ls(argv, ctx.console)?)
        }),
        c("dhcp", &[], "dhcp [addr] [[server:]file] - get an address (serverip, bootfile) by DHCP, then load the file unless autoload=no", |sh, argv, ctx| {
            Ok(sh.dhcp_cmd(argv, ctx.env)?)
        }),
        c("tftpboot", &["tftp"], "tftpboot [addr] [[server:]file] - download a file by TFTP, set filesize", |sh, argv, ctx| {
            Ok(sh.tftpboot(argv, ctx.env)?)
        }),
        c("wget", &[], "wget [addr] [URL | [host:]path] - download a file by HTTP, set filesize", |sh, argv, ctx| {
            Ok(sh.wget(argv, ctx.env)?)
        }),
        c("pxe", &[], "pxe get | pxe boot - find the PXELINUX config on the TFTP server / boot it", |sh, argv, ctx| {
            match arg(argv, 1) {
                Some("get") => Ok(sh.pxe_get(ctx.env)?),
                Some("boot") => Ok(sh.pxe_boot(ctx.env)?),
                _ => Err(Error::Usage("pxe get | pxe boot").into()),
            }
        }),
        c("ping", &[], "ping <ip> - send an ICMP echo request", |sh, argv, ctx| {
            let said = sh.ping(argv, ctx.env)?;
            say(ctx, &said);
            Ok(())
        }),
        c("netboot", &[], "netboot - dhcp, then the boot script DHCP names, else pxe get + pxe boot", netboot),
        c("md", &[], "md <address> [count] - display RAM (32-bit words)", |sh, argv, ctx| {
            Ok(sh.md(arg(argv, 1), arg(argv, 2), ctx.console)?)
        }),
        c("fdt", &[], "fdt addr [<addr> [<len>]] | resize [<extra>] | print|list [<path> [<prop>]] | get value|size|name <var> <path> [<prop>] | set <path> <prop> [<val>] | mknode | rm | header - the working device tree", super::fdt::fdt),
        c("bootstage", &[], "bootstage - time since kexboot's entry and since machine reset", bootstage),
        c("version", &[], "version - print kexboot's version", |sh, _, ctx| {
            say(ctx, &format!("kexboot {VERSION} ({})", sh.board.name()));
            Ok(())
        }),
        c("reset", &[], "reset - reset the machine (PSCI SYSTEM_RESET)", |sh, _, _| power(sh.board.reset())),
        c("poweroff", &[], "poweroff - power off (PSCI SYSTEM_OFF)", |sh, _, _| power(sh.board.power_off())),
        c("exception", &[], "exception undefined - raise an exception (tests the report)", |sh, argv, _| {
            match arg(argv, 1) {
                Some("undefined") => {
                    sh.board.raise_exception();
                    Err(Error::Refused("exception: this board cannot raise one").into())
                }
                _ => Err(Error::Usage("exception undefined").into()),
            }
        }),
    ]
}

/// What the language's built-ins (`test -e`, `source`, `env default`) need of the shell.
impl<B: Board> Services for Shell<B> {
    fn file_exists(&mut self, iface: &str, dev: &str, path: &str) -> Option<Result<bool, String>> {
        Some(
            Shell::file_exists(self, iface, dev, path)
                .map_err(|e| alloc::string::ToString::to_string(&e)),
        )
    }

    fn read_memory(
        &mut self,
        addr: u64,
        len: usize,
    ) -> Option<Result<alloc::vec::Vec<u8>, String>> {
        Some(
            self.plain_ram(addr, len as u64)
                .map(<[u8]>::to_vec)
                .map_err(|e| alloc::string::ToString::to_string(&e)),
        )
    }

    fn default_env(&self) -> Option<Env> {
        Some(self.defaults.clone())
    }

    fn fit_script(
        &mut self,
        addr: u64,
        name: Option<&str>,
        len: Option<u64>,
    ) -> Option<Result<String, String>> {
        Some(
            Shell::fit_script(self, addr, name, len)
                .map_err(|e| alloc::string::ToString::to_string(&e)),
        )
    }

    fn signed_scripts_only(&self) -> bool {
        self.board.keys().required()
    }
}

fn power(e: PowerError) -> Res {
    Err(Error::Power(e).into())
}

fn netboot<B: Board>(sh: &mut Shell<B>, _: &[String], ctx: &mut Ctx) -> Res {
    let failed = |e: &dyn core::fmt::Display| CmdError::Msg(format!("netboot failed: {e}"));
    // A boot script from the network that says `netboot` would fetch itself again, without end.
    if sh.in_net_script {
        return Err(failed(&"a boot script from the network cannot run netboot"));
    }
    match sh.netboot(ctx.env) {
        Ok(Next::Script { name, text }) => {
            sh.in_net_script = true;
            let ran = sh.run_nested(&name, &text, ctx);
            sh.in_net_script = false;
            match ran {
                Ok(script::Outcome::Success) => Ok(()),
                Ok(script::Outcome::Stopped) => Err(CmdError::Stop),
                Ok(script::Outcome::Failure) => {
                    Err(failed(&format_args!("boot script {name} did not boot")))
                }
                Err(e) => Err(failed(&e)),
            }
        }
        Ok(Next::Shell) => Ok(()),
        Err(e) => Err(failed(&e)),
    }
}

fn bootstage<B: Board>(sh: &mut Shell<B>, _: &[String], ctx: &mut Ctx) -> Res {
    say(ctx, "Timer summary in microseconds since kexboot's entry:");
    say(ctx, "       Mark  Stage");
    for (name, us) in sh.board.stages() {
        say(ctx, &format!("{us:>11}  {name}"));
    }
    let now = ctx.clock.now_us();
    say(
        ctx,
        &format!(
            "{now:>11}  now ({} ms since machine reset)",
            sh.board.since_reset_us() / 1000
        ),
    );
    Ok(())
}
