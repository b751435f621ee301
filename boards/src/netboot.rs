//! Netboot, in U-Boot's words: `dhcp`, `tftpboot`, `pxe get`/`pxe boot`, `ping`, and `netboot`
//! (DHCP, then the boot script DHCP names or the PXELINUX-style config). The stack is
//! `kexboot_net` (smoltcp + the TFTP client) over virtio-net; a PXE config is the same extlinux
//! format as on disk and boots through the same flow and relocator, its files fetched by TFTP.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kexboot_boot::commands::parse_hex;
use kexboot_boot::env::Env;
use kexboot_boot::extlinux;
use kexboot_boot::flow::{FileError, Files};
use kexboot_boot::netenv::{self, env_ip, mac_str, netmask, tftp_request};
use kexboot_fs::Error as FsError;
use kexboot_net::{pxe, tftp, Ipv4Addr, Lease, NetError, Progress, Stack, TftpRequest};

use crate::boot::{ConfigBoot, Firmware, Kept, Outcome};
use crate::net_state::{NetPlatform, PxeConfig};
use crate::timer;
use crate::virtio_net::VirtioNet;

/// How long `dhcp` waits for a lease.
const DHCP_TIMEOUT_US: u64 = 15_000_000;
/// How long `ping` waits for the echo reply.
const PING_TIMEOUT_US: u64 = 3_000_000;
/// Largest PXE config or boot script fetched.
const MAX_SMALL_FILE: usize = 1 << 20;
/// Files from this size on get progress lines.
const PROGRESS_FROM: u64 = 4 << 20;

/// `dhcp`: a lease; sets `ipaddr`, `netmask`, `gatewayip`, `dnsip`, `serverip`, `bootfile`.
pub fn dhcp(fw: &mut Firmware, env: &mut Env) -> Result<(), String> {
    let t0 = timer::since_start_us();
    let stack = fw.net.stack(fw.info)?;
    let mac = stack.mac();
    env.set("ethaddr", &mac_str(mac));
    let lease = match stack.dhcp(&mut NetPlatform, DHCP_TIMEOUT_US) {
        Ok(l) => l,
        Err(e) => {
            fw.net.failed(&e);
            return Err(format!("DHCP: {e}"));
        }
    };
    let ms = (timer::since_start_us() - t0) / 1000;
    let router = lease.router.map_or("none".into(), |r| r.to_string());
    let bootfile = lease.bootfile.clone().unwrap_or_default();
    println!(
        "DHCP: {}/{} router {} server {} tftp {} bootfile '{}' ({} ms)",
        lease.address,
        lease.prefix_len,
        router,
        lease.server_id,
        lease.tftp_server(),
        bootfile,
        ms
    );
    env.set("ipaddr", &lease.address.to_string());
    env.set("netmask", &netmask(lease.prefix_len).to_string());
    match lease.router {
        Some(r) => env.set("gatewayip", &r.to_string()),
        None => {
            env.unset("gatewayip");
        }
    }
    if let Some(d) = lease.dns.first() {
        env.set("dnsip", &d.to_string());
    }
    env.set("serverip", &lease.tftp_server().to_string());
    if let Some(b) = &lease.bootfile {
        env.set("bootfile", b);
    }
    timer::mark("DHCP lease");
    fw.net.applied = Some((lease.address, lease.prefix_len, lease.router));
    fw.net.lease = Some(lease);
    fw.net.pxe = None;
    Ok(())
}

/// An address for the network commands, as U-Boot: `ipaddr`/`netmask`/`gatewayip` as they are
/// now in the environment (DHCP sets them; `setenv` changes them), else DHCP.
fn ensure_address(fw: &mut Firmware, env: &mut Env) -> Result<(), String> {
    let want = netenv::static_address(env);
    let applied = fw.net.applied;
    let stack = fw.net.stack(fw.info)?;
    env.set("ethaddr", &mac_str(stack.mac()));
    match want {
        Some(w) if stack.address().is_some() && applied == Some(w) => Ok(()),
        Some((ip, prefix, gateway)) => {
            stack.configure(ip, prefix, gateway);
            fw.net.applied = want;
            Ok(())
        }
        None if stack.address().is_some() => Ok(()),
        None => dhcp(fw, env),
    }
}

/// `dhcp [addr] [[server:]file]`: a lease, then (as U-Boot, unless `autoload` is `no`) the
/// named file by TFTP; a bare `dhcp` downloads `bootfile` only when `autoload` is `yes`.
pub fn dhcp_cmd(fw: &mut Firmware, argv: &[String], env: &mut Env) -> Result<(), String> {
    dhcp(fw, env)?;
    let autoload = env.get("autoload").map(|v| v.trim().to_ascii_lowercase());
    let no = autoload
        .as_deref()
        .is_some_and(|v| v.starts_with('n') || v == "0");
    let yes = autoload
        .as_deref()
        .is_some_and(|v| v.starts_with('y') || v == "1");
    if (argv.len() > 1 && !no) || (argv.len() == 1 && yes) {
        let mut t = alloc::vec![String::from("tftpboot")];
        t.extend(argv.iter().skip(1).cloned());
        return tftpboot(fw, &t, env);
    }
    Ok(())
}

/// The server: `serverip`, else the lease's TFTP server.
fn server(fw: &Firmware, env: &Env) -> Result<Ipv4Addr, String> {
    env_ip(env, "serverip")
        .or_else(|| fw.net.lease.as_ref().map(Lease::tftp_server))
        .ok_or_else(|| "no TFTP server: set serverip or run dhcp".to_string())
}

/// Downloads `file` into `dest` and prints the summary line (size, time, rate, crc32).
fn fetch(
    stack: &mut Stack<VirtioNet>,
    req: &TftpRequest,
    dest: &mut [u8],
) -> Result<usize, NetError> {
    let mut last_print = 0u64;
    let file = req.file;
    let mut progress = |p: &Progress| {
        let big = p.total.unwrap_or(p.received) >= PROGRESS_FROM;
        if !big || p.elapsed_us < last_print + 1_000_000 {
            return;
        }
        last_print = p.elapsed_us;
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        match p.total {
            Some(t) if t > 0 => println!(
                "TFTP '{file}': {:.1} of {:.1} MiB ({}%)",
                mib(p.received),
                mib(t),
                p.received * 100 / t
            ),
            _ => println!("TFTP '{file}': {:.1} MiB", mib(p.received)),
        }
    };
    let t = match stack.tftp_get(&mut NetPlatform, req, dest, &mut progress) {
        Ok(t) => t,
        Err(e) => {
            // The server's own refusals (not found, access) are the caller's to tell: PXE
            // tries several names.
            if !matches!(e, NetError::Tftp(tftp::Error::Remote { .. })) {
                println!("TFTP '{file}': {e} (server {}:{})", req.server, req.port);
            }
            return Err(e);
        }
    };
    let crc = crc32fast::hash(dest.get(..t.size).unwrap_or(&[]));
    let secs = t.elapsed_us.max(1) as f64 / 1e6;
    println!(
        "TFTP '{}': {} bytes in {:.3} s, {:.1} MB/s, blksize {}, window {}, {} timeouts, crc32 {:#010x}",
        file,
        t.size,
        secs,
        t.size as f64 / secs / 1e6,
        t.blksize,
        t.window,
        t.timeouts,
        crc
    );
    Ok(t.size)
}

/// `tftpboot [addr] [[server:]file]`: downloads to RAM at `addr` (default `loadaddr`, else
/// `kernel_addr_r`), refusing anything past the free RAM there; sets `filesize` and `fileaddr`.
pub fn tftpboot(fw: &mut Firmware, argv: &[String], env: &mut Env) -> Result<(), String> {
    let usage = "usage: tftpboot [addr] [[server:]file]";
    let (addr, spec) = match argv {
        [_] => (None, None),
        [_, one] => match parse_hex(one) {
            Some(a) => (Some(a), None),
            None => (None, Some(one.as_str())),
        },
        [_, a, f] => (Some(parse_hex(a).ok_or(usage)?), Some(f.as_str())),
        _ => return Err(usage.into()),
    };
    let addr = match addr {
        Some(a) => a,
        None => ["loadaddr", "kernel_addr_r"]
            .iter()
            .find_map(|n| env.get(n).and_then(parse_hex))
            .ok_or("tftpboot: no address (set loadaddr)")?,
    };
    let spec = spec
        .map(String::from)
        .or_else(|| env.get("bootfile").map(String::from))
        .ok_or("tftpboot: no file name (give one or set bootfile)")?;
    let (srv, file) = match spec.split_once(':') {
        Some((s, f)) => (
            Some(
                s.parse::<Ipv4Addr>()
                    .map_err(|_| format!("'{s}' is not an IPv4 address"))?,
            ),
            f.to_string(),
        ),
        None => (None, spec.clone()),
    };
    let region = crate::loadboot::writable(fw)
        .into_iter()
        .find(|r| r.start() <= addr && addr < r.end())
        .ok_or_else(|| {
            format!("tftpboot: {addr:#x} is not free RAM (kexboot, its heap, reserved memory)")
        })?;
    ensure_address(fw, env)?;
    let server = match srv {
        Some(s) => s,
        None => server(fw, env)?,
    };
    let req = tftp_request(server, env, &file);
    println!("TFTP from {server}: '{file}' to {addr:#x}");
    let dest_len =
        usize::try_from(region.end() - addr).map_err(|_| "tftpboot: region too large")?;
    // SAFETY: `addr..region.end` is free RAM that nothing of kexboot's uses (not kexboot, its
    // heap and stacks, the DTB, reserved or kept memory); the client writes only inside it.
    let dest = unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, dest_len) };
    let stack = fw.net.stack(fw.info)?;
    let got = fetch(stack, &req, dest);
    if let Err(e) = &got {
        fw.net.failed(e);
    }
    let n = got.map_err(|e| match e {
        NetError::Tftp(tftp::Error::Remote { .. }) => format!("tftpboot: '{file}': {e}"),
        _ => "tftpboot: download failed".to_string(), // `fetch` said why
    })?;
    env.set("filesize", &format!("{n:x}"));
    env.set("fileaddr", &format!("{addr:x}"));
    Ok(())
}

/// A small file (config, script) into a fresh buffer.
fn fetch_small(fw: &mut Firmware, env: &Env, file: &str) -> Result<Vec<u8>, NetError> {
    let server = server(fw, env).map_err(|_| NetError::NotConfigured)?;
    let req = tftp_request(server, env, file);
    let mut buf = alloc::vec![0u8; MAX_SMALL_FILE];
    let stack = fw.net.stack(fw.info).map_err(|_| NetError::NotConfigured)?;
    let got = fetch(stack, &req, &mut buf);
    if let Err(e) = &got {
        fw.net.failed(e);
    }
    let n = got?;
    buf.truncate(n);
    Ok(buf)
}

/// `pxe get`: the first of PXELINUX's config names the server has (01-<mac>, the address in
/// hex shortened one digit at a time, `default`), under the directory of the DHCP boot file.
pub fn pxe_get(fw: &mut Firmware, env: &mut Env) -> Result<(), String> {
    ensure_address(fw, env)?;
    let stack = fw.net.stack(fw.info)?;
    let mac = stack.mac();
    let (ip, _) = stack.address().ok_or("pxe: no address")?;
    let bootfile = env.get("bootfile").unwrap_or("").to_string();
    let prefix = env
        .get("pxeprefix")
        .map(String::from)
        .unwrap_or_else(|| pxe::prefix_of(&bootfile).to_string());
    for path in pxe::config_paths(&prefix, mac, ip) {
        println!("PXE: trying {path}");
        match fetch_small(fw, env, &path) {
            Ok(text) => {
                println!("PXE: using {path}");
                fw.net.pxe = Some(PxeConfig { path, prefix, text });
                return Ok(());
            }
            // The server answered (file not found, access denied): try the next name.
            Err(NetError::Tftp(tftp::Error::Remote { .. })) => continue,
            Err(e) => return Err(format!("pxe get: {path}: {e}")),
        }
    }
    Err("pxe get: the server has none of the PXE config files".into())
}

/// Files of a PXE config, fetched by TFTP relative to the boot file's directory.
struct TftpFiles<'a> {
    stack: &'a mut Stack<VirtioNet>,
    /// Server, port and options; the file is set per request.
    template: TftpRequest<'static>,
    prefix: String,
    /// A file fetched whole because the server would not tell its size (no `tsize`).
    cached: Option<(String, Vec<u8>)>,
}

impl TftpFiles<'_> {
    fn request<'p>(&self, path: &'p str) -> TftpRequest<'p> {
        TftpRequest {
            file: path,
            ..self.template.clone()
        }
    }
}

impl Files for TftpFiles<'_> {
    fn size(&mut self, path: &str) -> Result<u64, FileError> {
        let path = pxe::resolve(&self.prefix, path);
        if let Some((p, data)) = &self.cached {
            if *p == path {
                return Ok(data.len() as u64);
            }
        }
        match self.stack.tftp_size(&mut NetPlatform, &self.request(&path)) {
            Ok(Some(n)) => Ok(n),
            Ok(None) => {
                // No tsize: fetch it whole into the heap, within what the heap can spare.
                let cap = (crate::heap::free_bytes() / 2).min(512 << 20);
                let mut buf = Vec::new();
                if buf.try_reserve_exact(cap).is_err() {
                    log::error!("TFTP '{path}': no size from the server and no {cap} bytes to fetch it whole");
                    return Err(FsError::TooLarge {
                        size: cap as u64,
                        capacity: 0,
                    }
                    .into());
                }
                buf.resize(cap, 0);
                let req = self.request(&path);
                let n = fetch(self.stack, &req, &mut buf)?;
                buf.truncate(n);
                self.cached = Some((path, buf));
                Ok(n as u64)
            }
            Err(e) => {
                log::error!("TFTP '{path}': {e}");
                Err(e.into())
            }
        }
    }

    fn read_into(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, FileError> {
        let path = pxe::resolve(&self.prefix, path);
        if let Some((p, data)) = self.cached.take() {
            if p == path {
                let too_large = FsError::TooLarge {
                    size: data.len() as u64,
                    capacity: dst.len() as u64,
                };
                let out = dst.get_mut(..data.len()).ok_or(FileError::Fs(too_large))?;
                out.copy_from_slice(&data);
                return Ok(data.len());
            }
        }
        let req = self.request(&path);
        Ok(fetch(self.stack, &req, dst)?)
    }
}

/// `pxe boot`: boots the config `pxe get` found (getting it first if needed) through the same
/// flow as a disk's extlinux.conf: menu when it asks for one, entries in order, one relocator.
pub fn pxe_boot(fw: &mut Firmware, env: &mut Env) -> Result<(), String> {
    if fw.net.pxe.is_none() {
        pxe_get(fw, env)?;
    }
    let cfg = fw.net.pxe.clone().ok_or("pxe boot: no config (pxe get)")?;
    let config = extlinux::parse_bytes(&cfg.text).map_err(|e| format!("{}: {e}", cfg.path))?;
    for note in &config.notes {
        log::warn!("{}: {note}", cfg.path);
    }
    log::info!("{}: {} entries", cfg.path, config.entries.len());
    let template = tftp_request(server(fw, env)?, env, "");
    let stack = fw.net.stack.as_mut().ok_or("pxe boot: no network device")?;
    let mut files = TftpFiles {
        stack,
        template,
        prefix: cfg.prefix.clone(),
        cached: None,
    };
    let kept = Kept::new(&fw.handoff, &fw.pen, fw.info);
    let boot = ConfigBoot {
        layout: &fw.layout,
        dtb: &fw.base_dtb,
        request: &fw.request,
        kept: &kept,
        force_menu: false,
    };
    match boot.run(&mut files, "", config) {
        Outcome::Failed => Err(format!(
            "pxe boot: no entry of {} could be booted",
            cfg.path
        )),
        Outcome::Shell => Ok(()),
    }
}

/// `ping <ip>`.
pub fn ping(fw: &mut Firmware, argv: &[String], env: &mut Env) -> Result<(), String> {
    let [_, target] = argv else {
        return Err("usage: ping <IPv4 address>".into());
    };
    let ip: Ipv4Addr = target
        .parse()
        .map_err(|_| format!("'{target}' is not an IPv4 address"))?;
    ensure_address(fw, env)?;
    let stack = fw.net.stack(fw.info)?;
    let got = stack.ping(&mut NetPlatform, ip, PING_TIMEOUT_US);
    if let Err(e) = &got {
        fw.net.failed(e);
    }
    match got {
        Ok(us) => {
            println!(
                "host {ip} is alive (rtt {}.{} ms)",
                us / 1000,
                (us % 1000) / 100
            );
            Ok(())
        }
        Err(e) => Err(format!("ping failed; host {ip} is not alive: {e}")),
    }
}

/// What `netboot` leaves for the shell to run.
pub enum Next {
    /// A boot script DHCP named: run it.
    Script { name: String, text: String },
    /// The person left the PXE menu for the shell.
    Shell,
}

/// `netboot`: DHCP, then the boot file when it is a script (`.scr` legacy image or `.txt`),
/// else PXE. Returns the script for the caller's interpreter; Err when nothing booted.
pub fn netboot(fw: &mut Firmware, env: &mut Env) -> Result<Next, String> {
    dhcp(fw, env)?;
    let bootfile = env.get("bootfile").unwrap_or("").to_string();
    let is_script = bootfile.ends_with(".scr") || bootfile.ends_with(".txt");
    if is_script {
        let bytes =
            fetch_small(fw, env, &bootfile).map_err(|e| format!("TFTP '{bootfile}': {e}"))?;
        let text = match bootfile.ends_with(".scr") {
            true => kexboot_boot::script::parse_legacy_script_image(&bytes)
                .map_err(|e| format!("{bootfile}: {e}"))?
                .to_string(),
            false => String::from_utf8_lossy(&bytes).into_owned(),
        };
        log::info!("running boot script {bootfile} from the network");
        return Ok(Next::Script {
            name: bootfile,
            text,
        });
    }
    pxe_get(fw, env)?;
    pxe_boot(fw, env)?;
    Ok(Next::Shell)
}
