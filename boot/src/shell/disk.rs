//! The commands on the boot disk and RAM, in U-Boot's words: `load` (a file to a RAM address),
//! `booti` (an arm64 Image from RAM, through the same relocator as every other boot: the
//! sources may overlap where the kernel must go; the planner bounces them first), `ls`, `md`,
//! `saveenv`, and U-Boot's default load addresses.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kexboot_loader::mem::Range;

use crate::board::{Board, Jump};
use crate::booti;
use crate::commands::parse_hex;
use crate::env::Env;
use crate::envstore;
use crate::flow::{self, Staging as _};
use crate::memory::Layout;
use crate::storage::{Error as StorageError, Loc};
use crate::Console;

use super::{BootFs, Error, Shell};

const MB: u64 = 1 << 20;
/// Largest `md` dump, in 32-bit words.
const MD_MAX_WORDS: u64 = 4096;
/// `kernel_comp_size`: the largest compressed kernel `booti` takes by default.
const COMP_SIZE: u64 = 64 * MB;
/// `md`'s default count, in 32-bit words.
const MD_WORDS: u64 = 64;

pub(super) fn hex(s: &str) -> Result<u64, Error> {
    parse_hex(s).ok_or_else(|| Error::NotHex(s.into()))
}

/// RAM as `booti` may read it: what the board mapped, never a `no-map` region.
struct MappedRam<'a, B: Board> {
    board: &'a B,
    layout: &'a Layout,
}

impl<B: Board> booti::Ram for MappedRam<'_, B> {
    fn read(&self, r: Range) -> Option<&[u8]> {
        if !self.layout.readable(&r) {
            return None;
        }
        self.board.ram(r)
    }
}

/// RAM as `booti` may write it when it decompresses a kernel: free memory only.
struct WritableRam<'a, B: Board> {
    board: &'a mut B,
    layout: &'a Layout,
}

impl<B: Board> booti::Ram for WritableRam<'_, B> {
    fn read(&self, r: Range) -> Option<&[u8]> {
        if !self.layout.readable(&r) {
            return None;
        }
        self.board.ram(r)
    }
}

impl<B: Board> booti::RamMut for WritableRam<'_, B> {
    fn write(&mut self, r: Range) -> Option<&mut [u8]> {
        if !self.layout.is_writable(&r) {
            return None;
        }
        self.board.ram_mut(r)
    }
}

/// A hex environment variable; unset, empty or not hex is `None` (U-Boot reads those as 0).
fn env_hex(env: &Env, name: &str) -> Option<u64> {
    env.get(name).and_then(parse_hex)
}

impl<B: Board> Shell<B> {
    /// U-Boot's load addresses, chosen in free RAM at start: `kernel_addr_r`, `ramdisk_addr_r`,
    /// `fdt_addr_r`, `scriptaddr`, `pxefile_addr_r`, and where `booti` may decompress a
    /// compressed Image (`kernel_comp_addr_r`, `kernel_comp_size`), as U-Boot's distro boot
    /// environment has them; `fdtcontroladdr` is kexboot's own tree. Set ones are kept.
    pub fn default_addresses(&self, env: &mut Env) {
        let free = self.layout.writable();
        let Some(r) = free.iter().find(|r| r.len() >= 160 * MB) else {
            return;
        };
        let base = r.start().next_multiple_of(2 * MB);
        let mut vars = alloc::vec![
            ("kernel_addr_r", base),
            ("ramdisk_addr_r", base + 96 * MB),
            ("fdt_addr_r", base + 150 * MB),
            ("scriptaddr", base + 151 * MB),
            ("pxefile_addr_r", base + 152 * MB),
        ];
        // Room for a compressed kernel beside the rest (Debian's vmlinuz is gzip).
        if r.end() >= base + (160 + COMP_SIZE / MB) * MB {
            vars.push(("kernel_comp_addr_r", base + 160 * MB));
            vars.push(("kernel_comp_size", COMP_SIZE));
        }
        vars.push(("fdtcontroladdr", self.base_dtb.as_ptr() as u64));
        for (name, value) in vars {
            if env.get(name).is_none() {
                env.set(name, &format!("0x{value:x}"));
            }
        }
    }

    /// The volume `iface dev[:part]` names, checked to be of the kind `cmd` reads
    /// (`fatload` FAT, `ext4load` ext2/3/4, `load` any).
    pub(super) fn volume_for(
        &mut self,
        cmd: &str,
        iface: &str,
        spec: &str,
    ) -> Result<(Loc, &mut BootFs<B::Disk>), Error> {
        let loc = self.storage.locate(iface, spec).map_err(Error::Storage)?;
        let name = self.storage.name(loc);
        let vol = self.storage.open(loc).map_err(Error::Storage)?;
        let wanted = match cmd {
            "fatload" | "fatls" | "fatsize" => Some(true),
            "ext4load" | "ext4ls" | "ext4size" | "ext2load" | "ext2ls" => Some(false),
            _ => None,
        };
        if let Some(fat) = wanted {
            if vol.fat_mut().is_some() != fat {
                return Err(Error::WrongFs {
                    cmd: cmd.into(),
                    name,
                    kind: vol.kind_name(),
                });
            }
        }
        Ok((loc, vol))
    }

    /// `load <interface> <dev[:part]> [<addr> [<path>]]` (and `fatload`, `ext4load`): reads a
    /// file of that partition to `addr` (default `loadaddr`; path default `bootfile`) and sets
    /// `filesize` (hex), refusing anything that would leave free RAM.
    pub(super) fn load(&mut self, argv: &[String], env: &mut Env) -> Result<String, Error> {
        let cmd = argv[0].as_str();
        let (iface, spec) = match argv {
            [_, iface, spec, ..] if argv.len() <= 5 => (iface, spec),
            _ => {
                return Err(Error::Usage(
                    "load <interface> <dev[:part]> [<addr> [<path>]]",
                ))
            }
        };
        let addr = match argv.get(3).map(String::as_str).or(env.get("loadaddr")) {
            Some(a) => hex(a)?,
            None => return Err(Error::Refused("load: no address and no loadaddr")),
        };
        let path = match argv.get(4).map(String::as_str).or(env.get("bootfile")) {
            Some(p) => String::from(p),
            None => return Err(Error::Refused("load: no file name and no bootfile")),
        };
        let (loc, _) = self.volume_for(cmd, iface, spec)?;
        let Shell {
            storage,
            layout,
            board,
            ..
        } = self;
        let fs = storage.open(loc).map_err(Error::Storage)?;
        let file_err = |err: kexboot_fs::Error| Error::File {
            path: path.clone(),
            err: err.into(),
        };
        let size = fs.stat(&path).map_err(file_err)?;
        if size.is_dir {
            return Err(file_err(kexboot_fs::Error::NotAFile));
        }
        let size = size.size;
        let dst = Range::from_len(addr, size.max(1))
            .map_err(|_| Error::Refused("load: address overflows"))?;
        let not_free = Error::NotFree {
            cmd: "load",
            start: dst.start(),
            end: Some(dst.end()),
        };
        if !layout.is_writable(&dst) {
            return Err(not_free);
        }
        let buf = board.ram_mut(dst).ok_or(not_free)?;
        let len = usize::try_from(size).map_err(|_| Error::Refused("load: file too large"))?;
        let n = fs
            .read_file_into(&path, &mut buf[..len])
            .map_err(file_err)?;
        env.set("filesize", &format!("{n:x}"));
        Ok(format!("{n} bytes read"))
    }

    /// `size <interface> <dev[:part]> <path>`: sets `filesize` (hex) to the file's size.
    pub(super) fn size(&mut self, argv: &[String], env: &mut Env) -> Result<(), Error> {
        let [cmd, iface, spec, path] = argv else {
            return Err(Error::Usage("size <interface> <dev[:part]> <path>"));
        };
        let (_, fs) = self.volume_for(cmd, iface, spec)?;
        let info = fs.stat(path).map_err(|err| Error::File {
            path: path.clone(),
            err: err.into(),
        })?;
        env.set("filesize", &format!("{:x}", info.size));
        Ok(())
    }

    /// `test -e <interface> <dev[:part]> <path>`: the file (or directory) exists. A device or
    /// partition that does not exist is an error, not a "no".
    pub(crate) fn file_exists(
        &mut self,
        iface: &str,
        spec: &str,
        path: &str,
    ) -> Result<bool, Error> {
        let (_, fs) = self.volume_for("test", iface, spec)?;
        match fs.stat(path) {
            Ok(_) => Ok(true),
            Err(kexboot_fs::Error::NotFound | kexboot_fs::Error::NotADirectory) => Ok(false),
            Err(err) => Err(Error::File {
                path: path.into(),
                err: err.into(),
            }),
        }
    }

    /// `part list <interface> <dev> [-bootable] [varname]`, `part uuid <interface>
    /// <dev:part> [varname]`: the partition table, as U-Boot's `part`.
    pub(super) fn part(
        &mut self,
        argv: &[String],
        env: &mut Env,
        con: &mut dyn Console,
    ) -> Result<(), Error> {
        const USAGE: &str = "part list <interface> <dev> [-bootable] [varname] | part uuid <interface> <dev:part> [varname]";
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["part", "uuid", iface, spec, rest @ ..] if rest.len() <= 1 => {
                let loc = self.storage.locate(iface, spec).map_err(Error::Storage)?;
                let p = self.storage.partition(loc).map_err(Error::Storage)?;
                let uuid = crate::storage::part_uuid(&p).ok_or_else(|| {
                    Error::NotBooted(format!(
                        "{}: the partition table gives no UUID",
                        self.storage.name(loc)
                    ))
                })?;
                match rest.first() {
                    Some(var) => env.set(var, &uuid),
                    None => con.write_str(&format!("{uuid}\n")),
                }
                Ok(())
            }
            ["part", "list", iface, dev, rest @ ..] if rest.len() <= 2 => {
                let bootable_only = rest.first() == Some(&"-bootable");
                let var = rest.iter().find(|a| !a.starts_with('-'));
                let dev = u32::from_str_radix(dev, 16)
                    .map_err(|_| Error::Storage(StorageError::BadSpec(format!("{iface} {dev}"))))?;
                let slot = self.storage.slot(iface, dev).map_err(Error::Storage)?;
                let parts = self.storage.partitions(slot).map_err(Error::Storage)?;
                let chosen: Vec<_> = parts
                    .iter()
                    .filter(|p| !bootable_only || crate::storage::bootable(p))
                    .collect();
                match var {
                    Some(var) => {
                        let list: Vec<String> =
                            chosen.iter().map(|p| format!("{:x}", p.number)).collect();
                        env.set(var, &list.join(" "));
                    }
                    None => {
                        con.write_str(&format!("\nPartition Map for {iface} device {dev}\n\n"));
                        con.write_str("Part\tStart LBA\tEnd LBA\t\tName / UUID\n");
                        for p in chosen {
                            con.write_str(&format!(
                                "{:3x}\t0x{:08x}\t0x{:08x}\t\"{}\" {}{}\n",
                                p.number,
                                p.first_lba,
                                p.first_lba + p.num_sectors.saturating_sub(1),
                                p.name.as_deref().unwrap_or(""),
                                crate::storage::part_uuid(p).unwrap_or_default(),
                                if crate::storage::bootable(p) {
                                    " bootable"
                                } else {
                                    ""
                                },
                            ));
                        }
                    }
                }
                Ok(())
            }
            _ => Err(Error::Usage(USAGE)),
        }
    }

    /// `booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]`, with `bootargs` from the
    /// environment and kexboot's device tree when no fdt is named; a named one gets the
    /// firmware's memory and reserved regions and the board's own changes first, as every tree
    /// kexboot hands over.
    pub(super) fn booti(&mut self, argv: &[String], env: &Env) -> Result<(), Error> {
        if self.board.keys().required() {
            return Err(Error::Refused(
                "booti: refused by verified boot (a required key is built in): boot a signed \
                 FIT image with bootm",
            ));
        }
        let mut writable = WritableRam {
            board: &mut self.board,
            layout: &self.layout,
        };
        let comp_addr = env_hex(env, booti::COMP_ADDR_VAR);
        let comp_size = env_hex(env, booti::COMP_SIZE_VAR);
        let unpacked =
            booti::decompress(argv, &mut writable, comp_addr, comp_size).map_err(Error::Booti)?;
        // A decompressed kernel is booted from kernel_comp_addr_r (U-Boot moves it back to the
        // kernel address; the relocator copies it to its place from wherever it is).
        let mut argv = argv.to_vec();
        if let Some(d) = &unpacked {
            log::info!(
                "booti: {} kernel {} -> {} bytes, decompressed to {:#x}",
                d.format.name(),
                d.compressed,
                d.len,
                d.addr
            );
            argv[1] = format!("{:#x}", d.addr);
        }
        let argv = &argv[..];
        let ram = MappedRam {
            board: &self.board,
            layout: &self.layout,
        };
        // A named tree gets the firmware's memory (as U-Boot's booti: fdt_fixup_memory_banks)
        // and the board's own changes, as a tree an extlinux entry names.
        let fixups = |d: &[u8]| {
            let kept = kexboot_loader::dt::keep_firmware_memory(&self.base_dtb, d)?;
            self.board.own_fixups(&kept)
        };
        let args = booti::parse(argv, &ram, &self.base_dtb, &fixups).map_err(Error::Booti)?;
        let bootargs = env.get("bootargs").unwrap_or("");
        let avoid = self.layout.avoid();
        let mem = self.layout.view(&avoid);
        let p = booti::plan(&args, &mut self.staging, &mem, bootargs).map_err(Error::Booti)?;
        log::info!(
            "booti: kernel {:#x} -> {:#x}, bootargs '{bootargs}'",
            args.kernel.addr,
            p.placement.kernel.start()
        );
        let jump = Jump {
            segments: &p.segments,
            entry: p.entry,
            dtb: p.dtb,
            label: booti::LABEL,
        };
        let err = self.board.jump(&self.layout, &jump);
        Err(Error::NotBooted(format!(
            "booti: relocation plan refused: {err}"
        )))
    }

    /// The FIT at `addr` in plain RAM: `totalsize` bytes, or `len` (`filesize`) when larger.
    fn fit_in_ram(&self, addr: u64, len: Option<u64>) -> Result<&[u8], Error> {
        let head = self.plain_ram(addr, kexboot_loader::dt::FDT_HEADER_LEN as u64)?;
        if !kexboot_loader::fit::is_fit(head) {
            return Err(Error::NotBooted(format!(
                "no FIT image at {addr:#x} (legacy uImages are not supported)"
            )));
        }
        let total = kexboot_loader::dt::Header::parse(head, usize::MAX)
            .map_err(|e| Error::NotBooted(format!("{addr:#x}: {e}")))?
            .total_size() as u64;
        self.plain_ram(addr, len.filter(|&f| f > total).unwrap_or(total))
    }

    /// `source <addr>[:<name>]` of a FIT: its script image's text, checked.
    pub(super) fn fit_script(
        &self,
        addr: u64,
        name: Option<&str>,
        len: Option<u64>,
    ) -> Result<String, Error> {
        let bytes = self.fit_in_ram(addr, len)?;
        let part = kexboot_loader::fit::open_script(bytes, name, self.board.keys())
            .map_err(|e| Error::NotBooted(e.to_string()))?;
        let text = bytes.get(part.data.clone()).unwrap_or_default();
        let text = text.split(|&b| b == 0).next().unwrap_or_default();
        let text = core::str::from_utf8(text)
            .map_err(|_| Error::NotBooted(format!("script '{}' is not UTF-8 text", part.name)))?;
        log::info!(
            "FIT script '{}' ({} bytes, {})",
            part.name,
            text.len(),
            part.hashes.join(", ")
        );
        Ok(text.to_string())
    }

    /// `bootm [<addr>][#<conf>]`: the FIT image at `addr` (default `loadaddr`), configuration
    /// `conf` (default its `default`), checked as an extlinux entry's FIT is (signatures when a
    /// key requires them, then every image's bounds and hashes) before any of it is used. The
    /// FIT is `totalsize` bytes, or `filesize` when that is larger (external data).
    pub(super) fn bootm(&mut self, argv: &[String], env: &Env) -> Result<(), Error> {
        const USAGE: &str = "bootm [<addr>][#<conf>] - boot a FIT image from RAM";
        let spec = match argv {
            [_] => env.get("loadaddr").ok_or(Error::Usage(USAGE))?,
            [_, spec] => spec.as_str(),
            _ => {
                return Err(Error::Refused(
                    "bootm: kexboot boots FIT images: 'bootm <addr>[#conf]' (its kernel, \
                     ramdisk and fdt come from the configuration)",
                ))
            }
        };
        let (a, conf) = flow::split_conf(spec);
        let addr = hex(a)?;
        let bootm_err = |e: Error| Error::NotBooted(format!("bootm: {e}"));
        let n = self
            .fit_in_ram(addr, env_hex(env, "filesize"))
            .map_err(bootm_err)?
            .len();
        // The FIT is checked and used from kexboot's own copy: nothing can change it between
        // the check and the use.
        let mut buf = self
            .staging
            .alloc(n)
            .ok_or(Error::Refused("bootm: no free memory to check the FIT in"))?;
        let src = self.plain_ram(addr, n as u64)?;
        buf.as_mut()[..n].copy_from_slice(src);
        let bootargs = env.get("bootargs").unwrap_or("");
        let avoid = self.layout.avoid();
        let mem = self.layout.view(&avoid);
        let name = format!("{addr:#x}");
        let mut platform = super::configboot::FlowPlatform {
            clock: self.board.clock(),
            board: &mut self.board,
            fdtfile: None,
        };
        let p = flow::prepare_fit_image(
            &mut self.staging,
            &mut platform,
            &mem,
            &self.base_dtb,
            "bootm",
            bootargs,
            buf,
            n,
            &name,
            conf,
        )
        .map_err(|e| Error::NotBooted(format!("bootm: {e}")))?;
        if self.board.keys().required() && !p.verified {
            return Err(Error::Refused(
                "bootm: refused by verified boot: not a verified FIT",
            ));
        }
        let jump = Jump {
            segments: &p.segments,
            entry: p.entry,
            dtb: p.dtb,
            label: "bootm",
        };
        let err = self.board.jump(&self.layout, &jump);
        Err(Error::NotBooted(format!(
            "bootm: relocation plan refused: {err}"
        )))
    }

    /// `ls <interface> <dev[:part]> [path]` (and `fatls`, `ext4ls`), or `ls [path]` on the
    /// home volume: a directory listing.
    pub(super) fn ls(&mut self, argv: &[String], con: &mut dyn Console) -> Result<(), Error> {
        let path = match argv {
            [_] => "/",
            [_, p] => p.as_str(),
            [_, _, _] => "/",
            [_, _, _, p] => p.as_str(),
            _ => return Err(Error::Usage("ls [<interface> <dev[:part]>] [path]")),
        };
        let fs = match argv {
            [cmd, iface, spec, ..] => self.volume_for(cmd, iface, spec)?.1,
            _ => self
                .storage
                .home()
                .ok_or(Error::Refused("no boot partition"))?,
        };
        let list = fs.read_dir(path).map_err(|err| Error::File {
            path: path.into(),
            err: err.into(),
        })?;
        let (mut files, mut dirs) = (0, 0);
        for e in list {
            let line = match e.is_dir {
                true => {
                    dirs += 1;
                    format!("            {}/\n", e.name)
                }
                false => {
                    files += 1;
                    format!("  {:>10}  {}\n", e.size, e.name)
                }
            };
            con.write_str(&line);
        }
        con.write_str(&format!("\n{files} file(s), {dirs} dir(s)\n\n"));
        Ok(())
    }

    /// `saveenv`: the environment into the store's older copy, power-cut safe.
    pub(super) fn saveenv(&mut self, env: &Env, con: &mut dyn Console) -> Result<(), Error> {
        let fail = |e: &dyn core::fmt::Display| Error::Save(e.to_string());
        let store = self
            .store
            .as_mut()
            .ok_or_else(|| fail(&"no environment store"))?;
        let plan = store.plan_save(env).map_err(|e| fail(&e))?;
        let fs = self
            .storage
            .home()
            .and_then(|v| v.fat_mut())
            .ok_or_else(|| fail(&"no FAT boot partition"))?;
        con.write_str(&format!(
            "Saving Environment to FAT {}... \n",
            envstore::STORE_PATH
        ));
        if fs.stat(envstore::STORE_PATH).is_err() {
            fs.create_file(envstore::STORE_PATH, envstore::REGION_SIZE as u64)
                .map_err(|e| fail(&e))?;
        }
        fs.write_in_place(envstore::STORE_PATH, plan.offset as u64, &plan.bytes)
            .map_err(|e| fail(&e))?;
        store.saved(&plan, env);
        con.write_str("OK\n");
        Ok(())
    }

    /// `len` bytes of plain RAM at `start` (never reserved memory): what `md` shows and
    /// `source` reads.
    pub(super) fn plain_ram(&self, start: u64, len: u64) -> Result<&[u8], Error> {
        let end = start.saturating_add(len);
        let not_plain = || Error::NotPlainRam { start, end };
        let range = Range::new(start, end).map_err(|_| not_plain())?;
        let inside = self.layout.ram.iter().any(|r| r.contains_range(&range))
            && !self.layout.reserved.iter().any(|r| r.overlaps(&range));
        if !inside {
            return Err(not_plain());
        }
        self.board.ram(range).ok_or_else(not_plain)
    }

    /// `md <address> [count]`: 32-bit words of plain RAM (never reserved memory).
    pub(super) fn md(
        &self,
        addr: Option<&str>,
        count: Option<&str>,
        con: &mut dyn Console,
    ) -> Result<(), Error> {
        let usage = || Error::Usage("md <address> [count]");
        let start = addr.and_then(parse_hex).ok_or_else(usage)? & !3;
        let words = count
            .map(|c| parse_hex(c).ok_or_else(usage))
            .transpose()?
            .unwrap_or(MD_WORDS)
            .min(MD_MAX_WORDS);
        start.checked_add(words * 4).ok_or_else(usage)?;
        if words == 0 {
            return Ok(());
        }
        let bytes = self.plain_ram(start, words * 4)?;
        let words: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        for (i, row) in words.chunks(4).enumerate() {
            let mut line = format!("{:08x}:", start + i as u64 * 16);
            for w in row {
                line += &format!(" {w:08x}");
            }
            line += "\n";
            con.write_str(&line);
        }
        Ok(())
    }
}
