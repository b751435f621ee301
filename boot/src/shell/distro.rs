//! `boot` and `sysboot`: U-Boot's distro boot (`distro_bootcmd`) over every disk and partition,
//! a disk's bootable partitions first, FAT or ext2/3/4: an extlinux.conf
//! (`/extlinux/extlinux.conf`, `/boot/extlinux/extlinux.conf`), then a boot script
//! (`boot.scr`, with the variables U-Boot's scan sets for it: `devtype`, `devnum`,
//! `distro_bootpart`, `prefix`). Every partition passed over says why.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::autoboot;
use crate::board::Board;
use crate::env::Env;
use crate::extlinux::{self, Config};
use crate::flow::{self, BootError, ConfigSource, Files};
use crate::script::{self, CmdError, Ctx};
use crate::storage::{why_not, Loc, Storage};
use kexboot_loader::fit::Keys;

use super::configboot::Outcome;
use super::{Error, Shell};

type Res = Result<(), CmdError>;

/// What a volume offers to boot.
enum Found {
    Config(ConfigSource, Config),
    Script(&'static str, String),
    Nothing,
}

fn say(ctx: &mut Ctx, s: &str) {
    ctx.console.write_str(s);
    ctx.console.write_str("\n");
}

/// The extlinux config, else the boot script, of the open volume `files`.
fn probe(files: &mut dyn Files, scripts: bool, keys: &Keys) -> Found {
    match flow::load_config(files) {
        Ok((source, config)) => return Found::Config(source, config),
        Err(BootError::NoConfig) => {}
        Err(e) => log::error!("{e}"),
    }
    if scripts {
        if let Some((path, text)) = autoboot::find_script(files, keys) {
            return Found::Script(path, text);
        }
    }
    Found::Nothing
}

/// The environment U-Boot's distro boot gives a boot script found at `path` on `loc`.
pub(super) fn script_env<D: kexboot_fs::BlockDevice>(
    storage: &Storage<D>,
    loc: Loc,
    path: &str,
    env: &mut Env,
) {
    if let Some((iface, num)) = storage.id(loc.slot) {
        env.set("devtype", iface);
        env.set("devnum", &format!("{num}"));
    }
    env.set("distro_bootpart", &format!("{:x}", loc.part));
    env.set("bootpart", &format!("{:x}", loc.part));
    let prefix = path.rsplit_once('/').map_or("/", |(d, _)| d);
    let prefix = match prefix {
        "" => "/".to_string(),
        p => format!("{p}/"),
    };
    env.set("prefix", &prefix);
}

/// Runs the boot script `text` (`path` on `loc`) in the shell; true when it asked to stop.
fn run_script<B: Board>(
    sh: &mut Shell<B>,
    loc: Loc,
    path: &str,
    text: &str,
    ctx: &mut Ctx,
) -> bool {
    script_env(&sh.storage, loc, path, ctx.env);
    sh.in_disk_script = true;
    let name = format!("{}:{path}", sh.storage.name(loc));
    let ran = sh.run_nested(&name, text, ctx);
    sh.in_disk_script = false;
    match ran {
        Ok(script::Outcome::Stopped) => true,
        Ok(_) => {
            log::warn!("{name}: the boot script did not boot");
            false
        }
        Err(e) => {
            log::error!("{e}");
            false
        }
    }
}

/// `boot [label]`, `bootmenu`: every volume in distro-boot order until one boots. Returns only
/// when nothing booted (or the person asked for the shell).
pub(super) fn boot<B: Board>(
    sh: &mut Shell<B>,
    label: Option<&str>,
    force_menu: bool,
    ctx: &mut Ctx,
) -> Res {
    if sh.storage.is_empty() {
        return Err(CmdError::Msg("boot: no disk".into()));
    }
    let fdtfile = ctx.env.get("fdtfile").map(String::from);
    // A script that says `boot` scans again, but runs no script: no script runs itself.
    let scripts = !sh.in_disk_script;
    let mut found_any = false;
    for loc in sh.storage.boot_order() {
        let name = sh.storage.name(loc);
        say(ctx, &format!("Scanning {name}..."));
        let (found, kind) = match sh.storage.open(loc) {
            Ok(vol) => (probe(vol, scripts, sh.board.keys()), vol.kind_name()),
            Err(e) => {
                say(ctx, &format!("partition {:x}: {}", loc.part, why_not(&e)));
                continue;
            }
        };
        if !matches!(found, Found::Nothing) {
            say(ctx, &format!("partition {:x}: {kind}", loc.part));
        }
        match found {
            Found::Config(source, config) => {
                found_any = true;
                say(ctx, &format!("Found {source}"));
                let fdt = fdtfile.as_deref();
                let base = source.base();
                if sh.boot_config(loc, base, config, label, force_menu, fdt) == Outcome::Shell {
                    return Ok(());
                }
            }
            Found::Script(path, text) => {
                found_any = true;
                say(ctx, &format!("Found U-Boot script {path}"));
                if run_script(sh, loc, path, &text, ctx) {
                    return Err(CmdError::Stop);
                }
            }
            Found::Nothing => {
                say(
                    ctx,
                    &format!("partition {:x}: {kind}, no boot files", loc.part),
                );
            }
        }
    }
    let why = match found_any {
        true => "no entry could be booted",
        false => "no disk holds boot files (extlinux.conf, boot.scr)",
    };
    Err(CmdError::Msg(format!("boot: {why}")))
}

/// `sysboot [-p] <interface> <dev[:part]> <any|fat|ext2|ext4> [addr] [file]`: the extlinux
/// flow from that partition's config (`file`, else the usual places). `addr` is accepted and
/// not needed: the config is read straight from the disk.
pub(super) fn sysboot<B: Board>(sh: &mut Shell<B>, argv: &[String], ctx: &mut Ctx) -> Res {
    const USAGE: &str =
        "sysboot [-p] <interface> <dev[:part]> <any|fat|ext2|ext4> [addr] [filename]";
    let mut args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let force_menu = args.first() == Some(&"-p");
    if force_menu {
        args.remove(0);
    }
    let (iface, spec, fstype, file) = match args.as_slice() {
        [i, s, t] | [i, s, t, _] => (*i, *s, *t, None),
        [i, s, t, _, f] => (*i, *s, *t, Some(String::from(*f))),
        _ => return Err(Error::Usage(USAGE).into()),
    };
    let cmd = match fstype {
        "any" => "load",
        "fat" => "fatload",
        "ext2" | "ext4" => "ext4load",
        _ => return Err(Error::Usage(USAGE).into()),
    };
    let (loc, vol) = sh.volume_for(cmd, iface, spec)?;
    let (path, config) = match file {
        None => match flow::load_config(vol) {
            Ok((source, c)) => (String::from(source.base()), c),
            Err(e) => return Err(CmdError::Msg(format!("sysboot: {e}"))),
        },
        Some(f) => {
            let config = read_config(vol, &f)?;
            (f, config)
        }
    };
    let fdtfile = ctx.env.get("fdtfile").map(String::from);
    match sh.boot_config(loc, &path, config, None, force_menu, fdtfile.as_deref()) {
        Outcome::Shell => Ok(()),
        Outcome::Failed => Err(CmdError::Msg("sysboot: no entry could be booted".into())),
    }
}

/// The extlinux config at `path` of `files`.
fn read_config(files: &mut dyn Files, path: &str) -> Result<Config, CmdError> {
    let file_err = |err| Error::File {
        path: path.into(),
        err,
    };
    let size = files.size(path).map_err(file_err)?;
    if size > flow::MAX_CONFIG {
        return Err(CmdError::Msg(format!(
            "{path}: {size} bytes, larger than a config may be"
        )));
    }
    let mut buf = alloc::vec![0u8; size as usize];
    let n = files.read_into(path, &mut buf).map_err(file_err)?;
    buf.truncate(n);
    let config = extlinux::parse_bytes(&buf).map_err(|e| Error::Parse {
        path: path.into(),
        err: e.to_string(),
    })?;
    for note in &config.notes {
        log::warn!("{path}: {note}");
    }
    Ok(config)
}
