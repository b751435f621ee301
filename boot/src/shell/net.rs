//! Netboot, in U-Boot's words: `dhcp`, `tftpboot`, `wget`, `pxe get`/`pxe boot`, `ping`, and
//! `netboot` (DHCP, then the boot script DHCP names or the PXELINUX-style config). The stack is
//! [`kexboot_net`] (smoltcp, the TFTP client, HTTP over TCP) over the board's NIC; a PXE config
//! is the same extlinux format as on disk and boots through the same flow and jump.
//!
//! Every path goes one way: an `http://` URL by HTTP, anything else by TFTP from the server. A
//! boot file that is a URL makes its directory the PXE prefix, so the config names, and the
//! kernel, initrd and FDT a config names relative to it, are URLs too: PXE over HTTP is PXE
//! with another prefix.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kexboot_fs::Error as FsError;
use kexboot_net::http::{is_url, HttpError, Url};
use kexboot_net::{
    pxe, tftp, HttpEvent, HttpFetch, Ipv4Addr, Lease, NetError, Nic, Platform, Progress, Stack,
    TftpRequest,
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
/// Longest silence of an HTTP server (connect, head, between body bytes) before another try.
const HTTP_IDLE_US: u64 = 10_000_000;
/// Longest one file may take by HTTP, retries and their waits included.
const HTTP_LIMIT_US: u64 = 600_000_000;
/// Tries again after a dropped connection, a silence or a 5xx (waiting 0.5 s, 1 s, 2 s, 4 s,
/// then 8 s between them).
const HTTP_RETRIES: u32 = 8;

/// The server's "no such file" (a TFTP error packet, an HTTP 4xx): PXE tries the next name.
fn missing(e: &NetError) -> bool {
    matches!(e, NetError::Tftp(tftp::Error::Remote { .. }))
        || matches!(
            e,
            NetError::Http(HttpError::Status {
                code: 400..=499,
                ..
            })
        )
}

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

/// The progress lines of a large download, one a second: `TFTP 'vmlinuz': 3.0 of 8.1 MiB (37%)`.
struct ProgressLines<'a> {
    proto: &'static str,
    file: &'a str,
    last: u64,
}

impl ProgressLines<'_> {
    fn tick(&mut self, con: &mut dyn Console, received: u64, total: Option<u64>, elapsed_us: u64) {
        let big = total.unwrap_or(received) >= PROGRESS_FROM;
        if !big || elapsed_us < self.last + 1_000_000 {
            return;
        }
        self.last = elapsed_us;
        let mib = |b: u64| Fixed::new(b, 1 << 20, 1);
        let (proto, file) = (self.proto, self.file);
        con.write_str(&match total {
            Some(t) if t > 0 => format!(
                "{proto} '{file}': {} of {} MiB ({}%)\n",
                mib(received),
                mib(t),
                received * 100 / t
            ),
            _ => format!("{proto} '{file}': {} MiB\n", mib(received)),
        });
    }
}

/// Downloads `path` into `dest`, by HTTP when it is a URL, else by TFTP with `template`'s
/// server and options, and prints the summary line (size, time, rate, crc32).
fn fetch<N: Nic>(
    stack: &mut Stack<N>,
    wait: &mut dyn Platform,
    con: &mut dyn Console,
    clock: &dyn Clock,
    template: &TftpRequest,
    path: &str,
    dest: &mut [u8],
) -> Result<usize, NetError> {
    if is_url(path) {
        return fetch_http(stack, wait, con, clock, path, dest, false).map(|n| n as usize);
    }
    let req = TftpRequest {
        file: path,
        ..template.clone()
    };
    fetch_tftp(stack, wait, con, &req, dest)
}

/// Downloads `req.file` by TFTP into `dest` and prints the summary line.
fn fetch_tftp<N: Nic>(
    stack: &mut Stack<N>,
    wait: &mut dyn Platform,
    con: &mut dyn Console,
    req: &TftpRequest,
    dest: &mut [u8],
) -> Result<usize, NetError> {
    let file = req.file;
    let mut lines = ProgressLines {
        proto: "TFTP",
        file,
        last: 0,
    };
    let mut progress = |p: &Progress| lines.tick(con, p.received, p.total, p.elapsed_us);
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

/// `url` by HTTP into `dest` (or, `head_only`, its size alone): the lines say each retry and
/// redirect, the errors name the file and the server (`HTTP 'vmlinuz': 404 Not Found from
/// 10.0.2.2:8080`), the summary line has the figures and the crc32 as TFTP's has. Returns the
/// bytes written (the declared size for `head_only`, `u64::MAX` when the server will not say).
fn fetch_http<N: Nic>(
    stack: &mut Stack<N>,
    wait: &mut dyn Platform,
    con: &mut dyn Console,
    clock: &dyn Clock,
    url: &str,
    dest: &mut [u8],
    head_only: bool,
) -> Result<u64, NetError> {
    let parsed = match Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            con.write_str(&format!("HTTP '{url}': {e}\n"));
            return Err(e.into());
        }
    };
    let file = String::from(parsed.path.trim_start_matches('/'));
    let f = HttpFetch {
        url: &parsed,
        idle_us: HTTP_IDLE_US,
        limit_us: HTTP_LIMIT_US,
        retries: HTTP_RETRIES,
        head_only,
    };
    let t0 = clock.now_us();
    let mut lines = ProgressLines {
        proto: "HTTP",
        file: &file,
        last: 0,
    };
    let mut events = |e: HttpEvent| match e {
        HttpEvent::Progress { received, total } => {
            lines.tick(con, received, total, clock.now_us().saturating_sub(t0))
        }
        HttpEvent::Redirect { to } => {
            con.write_str(&format!("HTTP '{}': redirected to {to}\n", lines.file))
        }
        HttpEvent::Retry {
            error,
            after_us,
            from,
        } => con.write_str(&format!(
            "HTTP '{}': {error}; again from byte {from} in {} s\n",
            lines.file,
            Fixed::new(after_us, 1_000_000, 1)
        )),
    };
    let got = match stack.http_fetch(wait, &f, dest, &mut events) {
        Ok(g) => g,
        Err(e) => {
            con.write_str(&format!("HTTP '{file}': {e} from {}\n", parsed.authority()));
            return Err(e);
        }
    };
    if head_only {
        return Ok(got.length.unwrap_or(u64::MAX));
    }
    let n = usize::try_from(got.size).unwrap_or(usize::MAX);
    let crc = crc32fast::hash(dest.get(..n).unwrap_or(&[]));
    let us = got.elapsed_us.max(1);
    con.write_str(&format!(
        "HTTP '{}': {} bytes in {} s, {} MB/s, from {}:{}, connection {}, {} retries{}, crc32 {:#010x}\n",
        file,
        got.size,
        Fixed::new(us, 1_000_000, 3),
        Fixed::new(got.size, us, 1),
        got.server,
        got.url.port,
        stack.http_connections(),
        got.retries,
        if got.restarted { " (the server ignored Range: fetched again from the start)" } else { "" },
        crc
    ));
    Ok(got.size)
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

/// Files of a PXE config, relative to the boot file's directory: by HTTP when that (or the
/// path itself) is a URL, else by TFTP.
struct NetFiles<'a, N: Nic, C: Console, K: Clock> {
    stack: &'a mut Stack<N>,
    wait: Waiting<C, K>,
    con: C,
    clock: K,
    /// TFTP server, port and options; the file is set per request.
    template: TftpRequest<'static>,
    prefix: String,
    /// What the heap can spare for a file the server will not size.
    spare: usize,
    /// A file fetched whole because the server would not tell its size (no `tsize`, a chunked
    /// answer to `HEAD`).
    cached: Option<(String, Vec<u8>)>,
}

impl<N: Nic, C: Console, K: Clock> NetFiles<'_, N, C, K> {
    fn fetch(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, NetError> {
        let (stack, wait, con) = (&mut *self.stack, &mut self.wait, &mut self.con);
        fetch(stack, wait, con, &self.clock, &self.template, path, dst)
    }

    /// The size as the server tells it before the download, if it does.
    fn told_size(&mut self, path: &str) -> Result<Option<u64>, NetError> {
        if is_url(path) {
            let (stack, wait, con) = (&mut *self.stack, &mut self.wait, &mut self.con);
            return match fetch_http(stack, wait, con, &self.clock, path, &mut [], true) {
                Ok(n) => Ok((n != u64::MAX).then_some(n)),
                // Not there: the entry fails as with TFTP.
                Err(
                    e @ NetError::Http(HttpError::Status {
                        code: 404 | 410, ..
                    }),
                ) => Err(e),
                // A server (or a URL signed for GET) that refuses HEAD: the GET may still work,
                // so the file is fetched whole to learn its size.
                Err(NetError::Http(HttpError::Status { .. })) => Ok(None),
                Err(e) => Err(e),
            };
        }
        let req = TftpRequest {
            file: path,
            ..self.template.clone()
        };
        self.stack.tftp_size(&mut self.wait, &req).inspect_err(|e| {
            log::error!("TFTP '{path}': {e}");
        })
    }
}

impl<N: Nic, C: Console, K: Clock> Files for NetFiles<'_, N, C, K> {
    fn size(&mut self, path: &str) -> Result<u64, FileError> {
        let path = pxe::resolve(&self.prefix, path);
        if let Some((p, data)) = &self.cached {
            if *p == path {
                return Ok(data.len() as u64);
            }
        }
        if let Some(n) = self.told_size(&path)? {
            return Ok(n);
        }
        // No size: fetch it whole into the heap, within what the heap can spare.
        let cap = (self.spare / 2).min(MAX_UNSIZED);
        let mut buf = Vec::new();
        if buf.try_reserve_exact(cap).is_err() {
            log::error!("'{path}': no size from the server and no {cap} bytes to fetch it whole");
            return Err(FsError::TooLarge {
                size: cap as u64,
                capacity: 0,
            }
            .into());
        }
        buf.resize(cap, 0);
        let n = self.fetch(&path, &mut buf)?;
        buf.truncate(n);
        buf.shrink_to_fit();
        self.cached = Some((path, buf));
        Ok(n as u64)
    }

    fn read_into(&mut self, path: &str, dst: &mut [u8]) -> Result<usize, FileError> {
        let path = pxe::resolve(&self.prefix, path);
        if self.cached.as_ref().is_some_and(|(p, _)| *p == path) {
            if let Some((_, data)) = self.cached.take() {
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
        // `httpboot=yes`: ask as an HTTP boot client, for servers that hand those a URL.
        let http = env
            .get("httpboot")
            .is_some_and(|v| v.trim().starts_with(['y', 'Y', '1']));
        stack.set_http_client(http);
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
        // Host names in URLs resolve by `dnsip` (and `dnsip2`), as DHCP set them or the person.
        let dns: Vec<Ipv4Addr> = ["dnsip", "dnsip2"]
            .iter()
            .filter_map(|n| env_ip(env, n))
            .collect();
        if !dns.is_empty() {
            stack.set_dns(&dns);
        }
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

    /// The TFTP server for `path` and the paths under it: [`Shell::server`], which a URL does
    /// not need (any address does for it).
    fn server_for(&self, env: &Env, path: &str) -> Result<Ipv4Addr, Error> {
        match self.server(env) {
            Err(_) if is_url(path) => Ok(Ipv4Addr::UNSPECIFIED),
            r => r,
        }
    }

    /// `tftpboot [addr] [[server:]file]`: downloads to RAM at `addr` (default `loadaddr`, else
    /// `kernel_addr_r`), refusing anything past the free RAM there; sets `filesize` and
    /// `fileaddr`.
    pub(super) fn tftpboot(&mut self, argv: &[String], env: &mut Env) -> Result<(), Error> {
        self.download(false, argv, env)
    }

    /// `wget [addr] [URL | [host:]path]` (U-Boot's): the same by HTTP; `host:path` and a bare
    /// path mean `http://host[:httpdstp]/path` with `serverip` as the host by default.
    pub(super) fn wget(&mut self, argv: &[String], env: &mut Env) -> Result<(), Error> {
        self.download(true, argv, env)
    }

    /// `tftpboot` and `wget`: the arguments, the destination checked against the free RAM, the
    /// download, `filesize` and `fileaddr`.
    fn download(&mut self, http: bool, argv: &[String], env: &mut Env) -> Result<(), Error> {
        let (cmd, usage) = match http {
            true => ("wget", Error::Usage("wget [addr] [URL | [host:]path]")),
            false => ("tftpboot", Error::Usage("tftpboot [addr] [[server:]file]")),
        };
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
                .ok_or(Error::Refused("no load address: give one or set loadaddr"))?,
        };
        let spec = spec
            .map(String::from)
            .or_else(|| env.get("bootfile").map(String::from))
            .ok_or(Error::Refused("no file name: give one or set bootfile"))?;
        let (srv, file) = match spec.split_once(':') {
            _ if is_url(&spec) => (None, spec.clone()),
            // `wget host:path`: U-Boot's host may be a name.
            Some((h, f)) if http && h.parse::<Ipv4Addr>().is_err() => {
                let port = env.get("httpdstp").unwrap_or("80").trim();
                (
                    None,
                    format!("http://{h}:{port}/{}", f.trim_start_matches('/')),
                )
            }
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
            cmd,
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
            None => self.server_for(env, &file)?,
        };
        let path = match http && !is_url(&file) {
            true => {
                let port = env.get("httpdstp").unwrap_or("80").trim();
                format!("http://{server}:{port}/{}", file.trim_start_matches('/'))
            }
            false => file,
        };
        let req = tftp_request(server, env, "");
        let mut con = self.board.console();
        match is_url(&path) {
            true => con.write_str(&format!("HTTP GET {path} to {addr:#x}\n")),
            false => con.write_str(&format!("TFTP from {server}: '{path}' to {addr:#x}\n")),
        }
        let dest_range =
            kexboot_loader::mem::Range::new(addr, region.end()).map_err(|_| not_free())?;
        let (mut wait, clock) = (waiting(&self.board), self.board.clock());
        let stack = self.net.stack(&mut self.board)?;
        let Some(dest) = self.board.ram_mut(dest_range) else {
            return Err(not_free());
        };
        let got = fetch(stack, &mut wait, &mut con, &clock, &req, &path, dest);
        if let Err(e) = &got {
            self.net.failed(e);
        }
        let n = got.map_err(|e| match e {
            NetError::Tftp(tftp::Error::Remote { .. }) => Error::Tftp {
                cmd,
                file: path.clone(),
                err: e,
            },
            // `fetch` said why.
            _ if http => Error::Refused("wget: download failed"),
            _ => Error::Refused("tftpboot: download failed"),
        })?;
        env.set("filesize", &format!("{n:x}"));
        env.set("fileaddr", &format!("{addr:x}"));
        Ok(())
    }

    /// A small file (config, script) into a fresh buffer: a URL by HTTP, else by TFTP.
    fn fetch_small(&mut self, env: &Env, file: &str) -> Result<Vec<u8>, NetError> {
        let server = self
            .server_for(env, file)
            .map_err(|_| NetError::NotConfigured)?;
        let req = tftp_request(server, env, "");
        let mut buf = alloc::vec![0u8; MAX_SMALL_FILE];
        let (mut wait, mut con) = (waiting(&self.board), self.board.console());
        let clock = self.board.clock();
        let stack = self
            .net
            .stack(&mut self.board)
            .map_err(|_| NetError::NotConfigured)?;
        let got = fetch(stack, &mut wait, &mut con, &clock, &req, file, &mut buf);
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
                Err(e) if missing(&e) => continue,
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
        let server = self.server_for(env, &cfg.prefix)?;
        let template = tftp_request(server, env, "");
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
        let mut files = NetFiles {
            stack,
            wait: waiting(board),
            con: board.console(),
            clock: board.clock(),
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
                    path: format!("'{bootfile}'"),
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
            self.download(is_url(&bootfile), &argv, env)?;
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
