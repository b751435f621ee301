//! Netboot, in U-Boot's words: `dhcp`, `tftpboot`, `pxe get`/`pxe boot`, `ping`, and `netboot`
//! (DHCP, then the boot script DHCP names or the PXELINUX-style config). The stack is
//! [`kexboot_net`] (smoltcp + the TFTP client) over the board's NIC; a PXE config is the same
//! extlinux format as on disk and boots through the same flow and jump, its files fetched by
//! TFTP.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kexboot_fs::Error as FsError;
use kexboot_net::{
    pxe, tftp, Ipv4Addr, Lease, NetError, Nic, Platform, Progress, Stack, TftpRequest,
};

use crate::board::Board;
use crate::commands::parse_hex;
use crate::env::Env;
use crate::extlinux;
use crate::flow::{FileError, Files, Staging};
use crate::netenv::{self, env_ip, mac_str, netmask, tftp_request};
use crate::{Clock, Console};

use super::configboot::{ConfigBoot, Outcome};
use super::{Error, Shell};

/// How long `dhcp` waits for a lease.
const DHCP_TIMEOUT_US: u64 = 15_000_000;
/// How long `ping` waits for the echo reply.
const PING_TIMEOUT_US: u64 = 3_000_000;
/// Largest PXE config or boot script fetched.
const MAX_SMALL_FILE: usize = 1 << 20;
/// Files from this size on get progress lines.
const PROGRESS_FROM: u64 = 4 << 20;
/// Largest file fetched whole into the heap when the server will not tell its size.
const MAX_UNSIZED: usize = 512 << 20;

/// The network state the commands share: the stack once a command needed it, the lease, the
/// config `pxe get` found.
pub(super) struct Net<N: Nic> {
    stack: Option<Stack<N>>,
    probed: bool,
    lease: Option<Lease>,
    pxe: Option<PxeConfig>,
    /// The address, prefix and gateway last given to the stack (from DHCP or the environment).
    applied: Option<(Ipv4Addr, u8, Option<Ipv4Addr>)>,
}

impl<N: Nic> Default for Net<N> {
    fn default() -> Self {
        Net {
            stack: None,
            probed: false,
            lease: None,
            pxe: None,
            applied: None,
        }
    }
}

#[derive(Clone)]
struct PxeConfig {
    path: String,
    prefix: String,
    text: Vec<u8>,
}

/// What the stack needs while it waits: the board's clock, and Ctrl-C from its console.
struct Waiting<C, K> {
    con: C,
    clock: K,
}

impl<C: Console, K: Clock> Platform for Waiting<C, K> {
    fn now_us(&mut self) -> u64 {
        self.clock.now_us()
    }

    fn interrupted(&mut self) -> bool {
        self.con.interrupted()
    }
}

fn waiting<B: Board>(board: &B) -> Waiting<B::Console, B::Clock> {
    Waiting {
        con: board.console(),
        clock: board.clock(),
    }
}

impl<N: Nic> Net<N> {
    /// After a device failure the stack is dropped (the device reset): the next command
    /// probes and initialises it again.
    fn failed(&mut self, e: &NetError) {
        if matches!(e, NetError::Nic(_)) {
            log::warn!("network device failed ({e}); it is set up again on the next command");
            *self = Net::default();
        }
    }

    /// The stack on the board's NIC (probed once, again after a failure).
    fn stack<B: Board<Nic = N>>(&mut self, board: &mut B) -> Result<&mut Stack<N>, Error> {
        if self.stack.is_none() && !self.probed {
            self.probed = true;
            if let Some(nic) = board.find_nic() {
                self.stack = Some(Stack::new(nic, board.clock().now_us()));
            }
        }
        self.stack
            .as_mut()
            .ok_or(Error::Refused("no network device (virtio-net)"))
    }
}

/// Downloads `req.file` into `dest` and prints the summary line (size, time, rate, crc32).
fn fetch<N: Nic>(
    stack: &mut Stack<N>,
    wait: &mut dyn Platform,
    con: &mut dyn Console,
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
        let mib = |b: u64| Fixed::new(b, 1 << 20, 1);
        con.write_str(&match p.total {
            Some(t) if t > 0 => format!(
                "TFTP '{file}': {} of {} MiB ({}%)\n",
                mib(p.received),
                mib(t),
                p.received * 100 / t
            ),
            _ => format!("TFTP '{file}': {} MiB\n", mib(p.received)),
        });
    };
    let t = match stack.tftp_get(wait, req, dest, &mut progress) {
        Ok(t) => t,
        Err(e) => {
            // The server's own refusals (not found, access) are the caller's to tell: PXE
            // tries several names.
            if !matches!(e, NetError::Tftp(tftp::Error::Remote { .. })) {
                con.write_str(&format!(
                    "TFTP '{file}': {e} (server {}:{})\n",
                    req.server, req.port
                ));
            }
            return Err(e);
        }
    };
    let crc = crc32fast::hash(dest.get(..t.size).unwrap_or(&[]));
    let us = t.elapsed_us.max(1);
    con.write_str(&format!(
        "TFTP '{}': {} bytes in {} s, {} MB/s, blksize {}, window {}, {} timeouts, crc32 {:#010x}\n",
        file,
        t.size,
        Fixed::new(us, 1_000_000, 3),
        // Bytes per microsecond are MB/s.
        Fixed::new(t.size as u64, us, 1),
        t.blksize,
        t.window,
        t.timeouts,
        crc
    ));
    Ok(t.size)
}

/// `num / den` printed with `decimals` digits after the point (rounded half up), as `{:.N}` of
/// the float would print it: integer arithmetic, so the firmware carries no float formatting
/// (about 10 KiB of code and tables).
struct Fixed {
    scaled: u128,
    decimals: u32,
}

impl Fixed {
    fn new(num: u64, den: u64, decimals: u32) -> Fixed {
        let scale = 10u128.pow(decimals);
        let den = u128::from(den.max(1));
        Fixed {
            scaled: (u128::from(num) * scale * 2 + den) / (den * 2),
            decimals,
        }
    }
}

impl core::fmt::Display for Fixed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let scale = 10u128.pow(self.decimals);
        let (int, frac) = (self.scaled / scale, self.scaled % scale);
        if self.decimals == 0 {
            return write!(f, "{int}");
        }
        write!(f, "{int}.{frac:0w$}", w = self.decimals as usize)
    }
}

/// Files of a PXE config, fetched by TFTP relative to the boot file's directory.
struct TftpFiles<'a, N: Nic, C: Console, K: Clock> {
    stack: &'a mut Stack<N>,
    wait: Waiting<C, K>,
    con: C,
    /// Server, port and options; the file is set per request.
    template: TftpRequest<'static>,
    prefix: String,
    /// What the heap can spare for a file the server will not size.
    spare: usize,
    /// A file fetched whole because the server would not tell its size (no `tsize`).
    cached: Option<(String, Vec<u8>)>,
}

impl<N: Nic, C: Console, K: Clock> TftpFiles<'_, N, C, K> {
    fn request<'p>(&self, path: &'p str) -> TftpRequest<'p> {
        TftpRequest {
            file: path,
            ..self.template.clone()
        }
    }

    fn fetch(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, NetError> {
        let req = TftpRequest {
            file: path,
            ..self.template.clone()
        };
        fetch(self.stack, &mut self.wait, &mut self.con, &req, dst)
    }
}

impl<N: Nic, C: Console, K: Clock> Files for TftpFiles<'_, N, C, K> {
    fn size(&mut self, path: &str) -> Result<u64, FileError> {
        let path = pxe::resolve(&self.prefix, path);
        if let Some((p, data)) = &self.cached {
            if *p == path {
                return Ok(data.len() as u64);
            }
        }
        let req = self.request(&path);
        match self.stack.tftp_size(&mut self.wait, &req) {
            Ok(Some(n)) => Ok(n),
            Ok(None) => {
                // No tsize: fetch it whole into the heap, within what the heap can spare.
                let cap = (self.spare / 2).min(MAX_UNSIZED);
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
                let n = self.fetch(&path, &mut buf)?;
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
        Ok(self.fetch(&path, dst)?)
    }
}

/// What `netboot` leaves for the shell to run.
pub(super) enum Next {
    /// A boot script DHCP named: run it.
    Script { name: String, text: String },
    /// The person left the PXE menu for the shell.
    Shell,
}

impl<B: Board> Shell<B> {
    /// `dhcp`: a lease; sets `ipaddr`, `netmask`, `gatewayip`, `dnsip`, `serverip`, `bootfile`.
    pub(super) fn dhcp(&mut self, env: &mut Env) -> Result<(), Error> {
        let clock = self.board.clock();
        let t0 = clock.now_us();
        let mut wait = waiting(&self.board);
        let stack = self.net.stack(&mut self.board)?;
        env.set("ethaddr", &mac_str(stack.mac()));
        let lease = match stack.dhcp(&mut wait, DHCP_TIMEOUT_US) {
            Ok(l) => l,
            Err(e) => {
                self.net.failed(&e);
                return Err(Error::Dhcp(e));
            }
        };
        let ms = (clock.now_us() - t0) / 1000;
        let router = lease.router.map_or("none".into(), |r| r.to_string());
        let bootfile = lease.bootfile.clone().unwrap_or_default();
        self.board.console().write_str(&format!(
            "DHCP: {}/{} router {} server {} tftp {} bootfile '{}' ({} ms)\n",
            lease.address,
            lease.prefix_len,
            router,
            lease.server_id,
            lease.tftp_server(),
            bootfile,
            ms
        ));
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
        self.board.mark("DHCP lease");
        self.net.applied = Some((lease.address, lease.prefix_len, lease.router));
        self.net.lease = Some(lease);
        self.net.pxe = None;
        Ok(())
    }

    /// An address for the network commands, as U-Boot: `ipaddr`/`netmask`/`gatewayip` as they
    /// are now in the environment (DHCP sets them; `setenv` changes them), else DHCP.
    fn ensure_address(&mut self, env: &mut Env) -> Result<(), Error> {
        let want = netenv::static_address(env);
        let applied = self.net.applied;
        let stack = self.net.stack(&mut self.board)?;
        env.set("ethaddr", &mac_str(stack.mac()));
        match want {
            Some(w) if stack.address().is_some() && applied == Some(w) => Ok(()),
            Some((ip, prefix, gateway)) => {
                stack.configure(ip, prefix, gateway);
                self.net.applied = want;
                Ok(())
            }
            None if stack.address().is_some() => Ok(()),
            None => self.dhcp(env),
        }
    }

    /// `dhcp [addr] [[server:]file]`: a lease, then (as U-Boot, unless `autoload` is `no`) the
    /// named file by TFTP; a bare `dhcp` downloads `bootfile` only when `autoload` is `yes`.
    pub(super) fn dhcp_cmd(&mut self, argv: &[String], env: &mut Env) -> Result<(), Error> {
        self.dhcp(env)?;
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
            return self.tftpboot(&t, env);
        }
        Ok(())
    }

    /// The server: `serverip`, else the lease's TFTP server.
    fn server(&self, env: &Env) -> Result<Ipv4Addr, Error> {
        env_ip(env, "serverip")
            .or_else(|| self.net.lease.as_ref().map(Lease::tftp_server))
            .ok_or(Error::Refused("no TFTP server: set serverip or run dhcp"))
    }

    /// `tftpboot [addr] [[server:]file]`: downloads to RAM at `addr` (default `loadaddr`, else
    /// `kernel_addr_r`), refusing anything past the free RAM there; sets `filesize` and
    /// `fileaddr`.
    pub(super) fn tftpboot(&mut self, argv: &[String], env: &mut Env) -> Result<(), Error> {
        let usage = Error::Usage("tftpboot [addr] [[server:]file]");
        let (addr, spec) = match argv {
            [_] => (None, None),
            [_, one] => match parse_hex(one) {
                Some(a) => (Some(a), None),
                None => (None, Some(one.as_str())),
            },
            [_, a, f] => (Some(parse_hex(a).ok_or(usage)?), Some(f.as_str())),
            _ => return Err(usage),
        };
        let addr = match addr {
            Some(a) => a,
            None => ["loadaddr", "kernel_addr_r"]
                .iter()
                .find_map(|n| env.get(n).and_then(parse_hex))
                .ok_or(Error::Refused("tftpboot: no address (set loadaddr)"))?,
        };
        let spec = spec
            .map(String::from)
            .or_else(|| env.get("bootfile").map(String::from))
            .ok_or(Error::Refused(
                "tftpboot: no file name (give one or set bootfile)",
            ))?;
        let (srv, file) = match spec.split_once(':') {
            Some((s, f)) => (
                Some(
                    s.parse::<Ipv4Addr>()
                        .map_err(|_| Error::NotIpv4(s.into()))?,
                ),
                f.to_string(),
            ),
            None => (None, spec.clone()),
        };
        let not_free = || Error::NotFree {
            cmd: "tftpboot",
            start: addr,
            end: None,
        };
        let region = self
            .layout
            .writable()
            .into_iter()
            .find(|r| r.start() <= addr && addr < r.end())
            .ok_or_else(not_free)?;
        self.ensure_address(env)?;
        let server = match srv {
            Some(s) => s,
            None => self.server(env)?,
        };
        let req = tftp_request(server, env, &file);
        let mut con = self.board.console();
        con.write_str(&format!("TFTP from {server}: '{file}' to {addr:#x}\n"));
        let dest_range =
            kexboot_loader::mem::Range::new(addr, region.end()).map_err(|_| not_free())?;
        let mut wait = waiting(&self.board);
        let stack = self.net.stack(&mut self.board)?;
        let Some(dest) = self.board.ram_mut(dest_range) else {
            return Err(not_free());
        };
        let got = fetch(stack, &mut wait, &mut con, &req, dest);
        if let Err(e) = &got {
            self.net.failed(e);
        }
        let n = got.map_err(|e| match e {
            NetError::Tftp(tftp::Error::Remote { .. }) => Error::Tftp {
                cmd: "tftpboot",
                file: file.clone(),
                err: e,
            },
            _ => Error::Refused("tftpboot: download failed"), // `fetch` said why
        })?;
        env.set("filesize", &format!("{n:x}"));
        env.set("fileaddr", &format!("{addr:x}"));
        Ok(())
    }

    /// A small file (config, script) into a fresh buffer.
    fn fetch_small(&mut self, env: &Env, file: &str) -> Result<Vec<u8>, NetError> {
        let server = self.server(env).map_err(|_| NetError::NotConfigured)?;
        let req = tftp_request(server, env, file);
        let mut buf = alloc::vec![0u8; MAX_SMALL_FILE];
        let (mut wait, mut con) = (waiting(&self.board), self.board.console());
        let stack = self
            .net
            .stack(&mut self.board)
            .map_err(|_| NetError::NotConfigured)?;
        let got = fetch(stack, &mut wait, &mut con, &req, &mut buf);
        if let Err(e) = &got {
            self.net.failed(e);
        }
        let n = got?;
        buf.truncate(n);
        Ok(buf)
    }

    /// `pxe get`: the first of PXELINUX's config names the server has (01-<mac>, the address in
    /// hex shortened one digit at a time, `default`), under the directory of the DHCP boot file.
    pub(super) fn pxe_get(&mut self, env: &mut Env) -> Result<(), Error> {
        self.ensure_address(env)?;
        let stack = self.net.stack(&mut self.board)?;
        let mac = stack.mac();
        let (ip, _) = stack.address().ok_or(Error::Refused("pxe: no address"))?;
        let bootfile = env.get("bootfile").unwrap_or("").to_string();
        let prefix = env
            .get("pxeprefix")
            .map(String::from)
            .unwrap_or_else(|| pxe::prefix_of(&bootfile).to_string());
        let mut con = self.board.console();
        for path in pxe::config_paths(&prefix, mac, ip) {
            con.write_str(&format!("PXE: trying {path}\n"));
            match self.fetch_small(env, &path) {
                Ok(text) => {
                    con.write_str(&format!("PXE: using {path}\n"));
                    self.net.pxe = Some(PxeConfig { path, prefix, text });
                    return Ok(());
                }
                // The server answered (file not found, access denied): try the next name.
                Err(NetError::Tftp(tftp::Error::Remote { .. })) => continue,
                Err(err) => {
                    return Err(Error::Pxe {
                        what: format!("pxe get: {path}"),
                        err,
                    })
                }
            }
        }
        Err(Error::Refused(
            "pxe get: the server has none of the PXE config files",
        ))
    }

    /// `pxe boot`: boots the config `pxe get` found (getting it first if needed) through the
    /// same flow as a disk's extlinux.conf: menu when it asks for one, entries in order, one
    /// jump.
    pub(super) fn pxe_boot(&mut self, env: &mut Env) -> Result<(), Error> {
        if self.net.pxe.is_none() {
            self.pxe_get(env)?;
        }
        let cfg = self
            .net
            .pxe
            .clone()
            .ok_or(Error::Refused("pxe boot: no config (pxe get)"))?;
        // `include` lines are fetched from the server as every file the config names is.
        let mut read = |p: &str| self.fetch_small(env, &pxe::resolve(&cfg.prefix, p));
        let config = extlinux::parse_with(&cfg.text, "", &mut read).map_err(|e| Error::Parse {
            path: cfg.path.clone(),
            err: e.to_string(),
        })?;
        for note in &config.notes {
            log::warn!("{}: {note}", cfg.path);
        }
        log::info!("{}: {} entries", cfg.path, config.entries.len());
        let template = tftp_request(self.server(env)?, env, "");
        let Shell {
            board,
            staging,
            layout,
            base_dtb,
            request,
            net,
            ..
        } = self;
        let stack = net
            .stack
            .as_mut()
            .ok_or(Error::Refused("pxe boot: no network device"))?;
        let mut files = TftpFiles {
            stack,
            wait: waiting(board),
            con: board.console(),
            template,
            prefix: cfg.prefix.clone(),
            spare: usize::try_from(staging.free_bytes()).unwrap_or(usize::MAX),
            cached: None,
        };
        let mut boot = ConfigBoot {
            board,
            staging,
            layout,
            dtb: base_dtb,
            request,
            force_menu: false,
            fdtfile: env.get("fdtfile"),
        };
        match boot.run(&mut files, "", config) {
            Outcome::Failed => Err(Error::NotBooted(format!(
                "pxe boot: no entry of {} could be booted",
                cfg.path
            ))),
            Outcome::Shell => Ok(()),
        }
    }

    /// `ping <ip>`.
    pub(super) fn ping(&mut self, argv: &[String], env: &mut Env) -> Result<String, Error> {
        let [_, target] = argv else {
            return Err(Error::Usage("ping <IPv4 address>"));
        };
        let ip: Ipv4Addr = target.parse().map_err(|_| Error::NotIpv4(target.clone()))?;
        self.ensure_address(env)?;
        let mut wait = waiting(&self.board);
        let stack = self.net.stack(&mut self.board)?;
        let got = stack.ping(&mut wait, ip, PING_TIMEOUT_US);
        if let Err(e) = &got {
            self.net.failed(e);
        }
        match got {
            Ok(us) => Ok(format!(
                "host {ip} is alive (rtt {}.{} ms)",
                us / 1000,
                (us % 1000) / 100
            )),
            Err(err) => Err(Error::Ping { ip, err }),
        }
    }

    /// `netboot`: DHCP, then the boot file when it is a script (`.scr` legacy image or
    /// `.txt`), else PXE. Returns the script for the caller's interpreter; Err when nothing
    /// booted.
    pub(super) fn netboot(&mut self, env: &mut Env) -> Result<Next, Error> {
        self.dhcp(env)?;
        let bootfile = env.get("bootfile").unwrap_or("").to_string();
        let is_script = bootfile.ends_with(".scr") || bootfile.ends_with(".txt");
        if is_script && self.board.keys().required() {
            log::error!(
                "boot script {bootfile} refused by verified boot (only a script inside a \
                 signed FIT image runs); trying PXE"
            );
        } else if is_script {
            let bytes = self
                .fetch_small(env, &bootfile)
                .map_err(|err| Error::File {
                    path: format!("TFTP '{bootfile}'"),
                    err: err.into(),
                })?;
            let text = match bootfile.ends_with(".scr") {
                true => crate::script::parse_legacy_script_image(&bytes)
                    .map_err(|e| Error::Parse {
                        path: bootfile.clone(),
                        err: e.to_string(),
                    })?
                    .to_string(),
                false => String::from_utf8_lossy(&bytes).into_owned(),
            };
            log::info!("running boot script {bootfile} from the network");
            return Ok(Next::Script {
                name: bootfile,
                text,
            });
        }
        if bootfile.ends_with(".itb") || bootfile.ends_with(".fit") {
            // A FIT as the boot file: fetched to loadaddr and booted as `bootm` would.
            let addr = env
                .get("loadaddr")
                .or_else(|| env.get("kernel_addr_r"))
                .unwrap_or("")
                .to_string();
            let argv = [String::from("tftpboot"), addr.clone(), bootfile.clone()];
            self.tftpboot(&argv, env)?;
            self.bootm(&[String::from("bootm"), addr], env)?;
        }
        self.pxe_get(env)?;
        self.pxe_boot(env)?;
        Ok(Next::Shell)
    }
}

#[cfg(test)]
mod tests {
    use super::Fixed;

    /// The same digits as the float formatting it replaces.
    #[test]
    fn fixed_matches_float_formatting() {
        for (num, den, d) in [
            (1_234_567u64, 1_000_000u64, 3u32),
            (999_999_999, 1_000_000, 3),
            (5, 1_000_000, 3),
            (27_303_872, 403_000, 1),
            (3 << 20, 1 << 20, 1),
            (0, 7, 1),
            (123_456_789, 1 << 20, 1),
        ] {
            let want = format!("{:.*}", d as usize, num as f64 / den as f64);
            assert_eq!(Fixed::new(num, den, d).to_string(), want, "{num}/{den}");
        }
        assert_eq!(Fixed::new(7, 2, 0).to_string(), "4");
        assert_eq!(Fixed::new(1, 0, 1).to_string(), "1.0");
    }
}
