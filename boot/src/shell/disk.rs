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
use crate::memory::Layout;
use crate::Console;

use super::{Error, Shell};

const MB: u64 = 1 << 20;
/// Largest `md` dump, in 32-bit words.
const MD_MAX_WORDS: u64 = 4096;
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
    /// U-Boot's `kernel_addr_r`, `ramdisk_addr_r`, `fdt_addr_r`, chosen in free RAM at start.
    pub fn default_addresses(&self, env: &mut Env) {
        let free = self.layout.writable();
        let Some(r) = free.iter().find(|r| r.len() >= 160 * MB) else {
            return;
        };
        let base = r.start().next_multiple_of(2 * MB);
        for (name, off) in [
            ("kernel_addr_r", 0),
            ("ramdisk_addr_r", 96 * MB),
            ("fdt_addr_r", 150 * MB),
        ] {
            if env.get(name).is_none() {
                env.set(name, &format!("0x{:x}", base + off));
            }
        }
    }

    /// `load <interface> <dev[:part]> <addr> <path>`: reads a file of the boot partition to
    /// `addr` and sets `filesize` (hex), refusing anything that would leave free RAM.
    pub(super) fn load(&mut self, argv: &[String], env: &mut Env) -> Result<String, Error> {
        let [_, iface, _dev, addr, path] = argv else {
            return Err(Error::Usage("load <interface> <dev[:part]> <addr> <path>"));
        };
        if iface != "virtio" {
            return Err(Error::Interface(iface.clone()));
        }
        let addr = hex(addr)?;
        let fs = self
            .fs
            .as_mut()
            .ok_or(Error::Refused("load: no boot partition"))?;
        let file_err = |err: kexboot_fs::Error| Error::File {
            path: path.clone(),
            err: err.into(),
        };
        let size = fs.stat(path).map_err(file_err)?.size;
        let dst = Range::from_len(addr, size.max(1))
            .map_err(|_| Error::Refused("load: address overflows"))?;
        let not_free = Error::NotFree {
            cmd: "load",
            start: dst.start(),
            end: Some(dst.end()),
        };
        if !self.layout.is_writable(&dst) {
            return Err(not_free);
        }
        let buf = self.board.ram_mut(dst).ok_or(not_free)?;
        let len = usize::try_from(size).map_err(|_| Error::Refused("load: file too large"))?;
        let n = fs.read_file_into(path, &mut buf[..len]).map_err(file_err)?;
        env.set("filesize", &format!("{n:x}"));
        Ok(format!("{n} bytes read"))
    }

    /// `booti <kernel_addr> [<initrd_addr>:<size> | -] [<fdt_addr>]`, with `bootargs` from the
    /// environment and kexboot's device tree when no fdt is named; a named one gets the
    /// firmware's memory and reserved regions and the board's own changes first, as every tree
    /// kexboot hands over.
    pub(super) fn booti(&mut self, argv: &[String], env: &Env) -> Result<(), Error> {
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

    /// `ls [path]`: a directory of the boot partition.
    pub(super) fn ls(&mut self, path: &str, con: &mut dyn Console) -> Result<(), Error> {
        let fs = self
            .fs
            .as_mut()
            .ok_or(Error::Refused("no boot partition"))?;
        let list = fs.read_dir(path).map_err(|err| Error::File {
            path: path.into(),
            err: err.into(),
        })?;
        for e in list {
            let line = match e.is_dir {
                true => format!("            {}/\n", e.name),
                false => format!("  {:>10}  {}\n", e.size, e.name),
            };
            con.write_str(&line);
        }
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
        let fs = self.fs.as_mut().ok_or_else(|| fail(&"no boot partition"))?;
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
        let end = start.checked_add(words * 4).ok_or_else(usage)?;
        let not_plain = || Error::NotPlainRam { start, end };
        if words == 0 {
            return Ok(());
        }
        let range = Range::new(start, end).map_err(|_| not_plain())?;
        let inside = self.layout.ram.iter().any(|r| r.contains_range(&range))
            && !self.layout.reserved.iter().any(|r| r.overlaps(&range));
        if !inside {
            return Err(not_plain());
        }
        let bytes = self.board.ram(range).ok_or_else(not_plain)?;
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
