//! What autoboot runs, in U-Boot's order: `altbootcmd` once boot counting passed `bootlimit`,
//! else a boot script on the boot partition, else `bootcmd` (else `boot`). Boot counting
//! ([`crate::bootcount`]) stores the new count before anything boots.

use alloc::string::{String, ToString};

use kexboot_fs::{BlockDevice, Error as FsError, FatFs};

use kexboot_loader::fit::{self, Keys};

use crate::flow::Files;

use crate::bootcount::{self, BOOTCOUNT_PATH};
use crate::env::Env;
use crate::script;

/// Boot scripts looked for at boot, in order: U-Boot's `boot.scr` (legacy image) and plain text.
pub const SCRIPTS: [&str; 3] = ["/boot.scr", "/boot/boot.scr", "/kexboot/boot.txt"];
/// Largest boot script file read.
pub const MAX_SCRIPT_FILE: usize = 64 << 10;

/// The first boot script of [`SCRIPTS`] that reads and (for `.scr`) unwraps: its path and text.
/// A `.scr` that is a FIT image runs its default script image, checked (hashes; signatures
/// when `keys` require them); with a required key nothing else runs: this is the one place
/// a disk boot script is found, for autoboot and for the `boot` scan alike.
pub fn find_script(fs: &mut dyn Files, keys: &Keys) -> Option<(&'static str, String)> {
    for path in SCRIPTS {
        let Ok(size) = fs.size(path) else {
            continue;
        };
        if size > MAX_SCRIPT_FILE as u64 {
            log::error!("{path}: {size} bytes, larger than a boot script may be");
            continue;
        }
        let mut bytes = alloc::vec![0u8; size as usize];
        match fs.read_into(path, &mut bytes) {
            Ok(n) => bytes.truncate(n),
            Err(e) => {
                log::error!("{path}: {e}");
                continue;
            }
        }
        let text = if fit::is_fit(&bytes) {
            match fit::open_script(&bytes, None, keys) {
                Ok(p) => {
                    let t = bytes.get(p.data.clone()).unwrap_or_default();
                    let t = t.split(|&b| b == 0).next().unwrap_or_default();
                    log::info!("{path}: FIT script '{}' ({})", p.name, p.hashes.join(", "));
                    String::from_utf8_lossy(t).into_owned()
                }
                Err(e) => {
                    log::error!("{path}: {e}");
                    continue;
                }
            }
        } else if keys.required() {
            log::error!(
                "{path}: boot script refused by verified boot (only a script inside a signed \
                 FIT image runs)"
            );
            continue;
        } else if path.ends_with(".scr") {
            match script::parse_legacy_script_image(&bytes) {
                Ok(t) => t.to_string(),
                Err(e) => {
                    log::error!("{path}: {e}");
                    continue;
                }
            }
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        return Some((path, text));
    }
    None
}

/// The command boot counting chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub command: String,
    /// It is `altbootcmd`: the count passed `bootlimit`.
    pub alt: bool,
}

/// U-Boot's boot counting: with `bootlimit` set, [`BOOTCOUNT_PATH`] is incremented and saved
/// before each boot (Linux resets it once it is happy) and `bootcount` is set in `env`. Returns
/// the command to run, `None` without `bootlimit` or a boot partition.
pub fn count_boot<D: BlockDevice>(fs: Option<&mut FatFs<D>>, env: &mut Env) -> Option<Counted> {
    env.get("bootlimit")?;
    let fs = fs?;
    let stored = match fs.read_file(BOOTCOUNT_PATH, bootcount::RECORD_LEN) {
        Ok(b) => bootcount::decode_count(&b).unwrap_or_else(|e| {
            log::warn!("{e}; counting from 0");
            0
        }),
        Err(_) => 0,
    };
    let decision = bootcount::next_boot(env, stored);
    let record = bootcount::encode_count(decision.count);
    let saved = match fs.stat(BOOTCOUNT_PATH) {
        Ok(i) if i.size >= record.len() as u64 => Ok(()),
        Ok(_) => Err(FsError::TooLarge {
            size: record.len() as u64,
            capacity: 0,
        }),
        Err(_) => fs.create_file(BOOTCOUNT_PATH, record.len() as u64),
    }
    .and_then(|()| fs.write_in_place(BOOTCOUNT_PATH, 0, &record));
    if let Err(e) = saved {
        log::warn!("{BOOTCOUNT_PATH}: cannot save the boot count: {e}");
    }
    decision.export(env);
    log::info!("bootcount {}: {}", decision.count, decision.reason);
    decision.command(env).map(|c| Counted {
        command: String::from(c),
        alt: decision.use_alt,
    })
}

/// What autoboot runs: a name for messages and the script text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autorun {
    pub name: &'static str,
    pub text: String,
}

/// Picks what autoboot runs: `altbootcmd` when counting chose it, else the boot script, else
/// the counted `bootcmd`, else `bootcmd` from `env` (`boot` without one).
pub fn choose(
    script: Option<(&'static str, String)>,
    counted: Option<Counted>,
    env: &Env,
) -> Autorun {
    match (script, counted) {
        (_, Some(c)) if c.alt => Autorun {
            name: "altbootcmd",
            text: c.command,
        },
        (Some((path, text)), _) => Autorun { name: path, text },
        (None, Some(c)) => Autorun {
            name: "bootcmd",
            text: c.command,
        },
        (None, None) => Autorun {
            name: "bootcmd",
            text: env.get("bootcmd").unwrap_or("boot").to_string(),
        },
    }
}
