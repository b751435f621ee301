//! HTTP boot end-to-end (issue 16): kexboot with no disk on QEMU's user network, its DHCP boot
//! file an `http://` URL at the host, served by Python's `http.server` (a stock web server
//! nobody on the project wrote: HTTP/1.1 keep-alive, no `Range`). PXE runs under the URL's
//! directory (the MAC's config name is a 404), the kernel and initrd come on one connection;
//! and a server killed mid-kernel and started again: kexboot retries, the server ignores the
//! `Range` asked for, the kernel comes again from its start, byte-exact, and Linux boots.

use crate::assets::CMDLINE_NETBOOT;
use crate::check::{
    case_timeout, expect_kexboot_started, expect_userspace, finish, Ctx, Transcript,
};
use crate::e2e_net::{expect_crcs, expect_line, root, tftp_line, NET_FILES};
use crate::qemu::{self, Session, Wait};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type CaseResult = std::result::Result<(), String>;

/// QEMU's default NIC MAC: the PXELINUX name tried first.
const MAC_CFG: &str = "pxelinux.cfg/01-52-54-00-12-34-56";

/// `python3 -m http.server` on 127.0.0.1 serving a directory, its request log in a file.
pub(crate) struct WebServer {
    child: Option<Child>,
    pub port: u16,
    root: PathBuf,
    log: PathBuf,
}

impl WebServer {
    /// Starts it on a free port, or on `port`; waits until it accepts connections.
    pub(crate) fn start(root: &Path, port: Option<u16>, log: &Path) -> Result<WebServer, String> {
        let port = match port {
            Some(p) => p,
            None => TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port(),
        };
        let mut s = WebServer {
            child: None,
            port,
            root: root.to_path_buf(),
            log: log.to_path_buf(),
        };
        s.restart()?;
        Ok(s)
    }

    /// (Re)starts the server on its port (appending to its log).
    pub(crate) fn restart(&mut self) -> Result<(), String> {
        if let Some(d) = self.log.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--protocol",
                "HTTP/1.1",
                "--bind",
            ])
            .arg("127.0.0.1")
            .arg("--directory")
            .arg(&self.root)
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("python3 -m http.server: {e}"))?;
        self.child = Some(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("http.server exited ({st}): {}", self.log_text()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("http.server not listening on port {}", self.port))
    }

    /// Kills it (SIGKILL, as a crash would) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The boot file URL the guest reaches the server by (slirp's 10.0.2.2 is the host).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://10.0.2.2:{}/{path}", self.port)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// kexboot as `-kernel`, no disk, the NIC on user networking with `bootfile` for DHCP, plus
/// `more` arguments.
fn args(c: &Ctx, smp: u32, bootfile: &str, more: &[&str]) -> Vec<String> {
    qemu::Args::machine("virt,virtualization=on", smp)
        .kernel(&c.paths.kexboot_bin())
        .user_net(&format!("bootfile={bootfile}"))
        .args(more.iter().copied())
        .into_vec()
}

/// Each file's summary line is an HTTP one (nothing came by TFTP) with the host file's crc32.
fn expect_http_crcs(t: &Transcript, root: &Path, files: &[&str]) -> CaseResult {
    expect_crcs(t, root, files)?;
    for f in files {
        match tftp_line(t, f) {
            Some(l) if l.proto == "HTTP" => {}
            other => return Err(format!("{f}: not an HTTP summary line: {other:?}")),
        }
    }
    if let Some((_, l)) = t.find(|l| l.contains("TFTP '")) {
        return Err(format!("something came by TFTP: {:?}", l.text.trim()));
    }
    Ok(())
}

/// The server's log has `GET <path>` answered `code`.
fn expect_served(srv: &WebServer, path: &str, code: u16) -> CaseResult {
    let want = format!("\"GET /{path} HTTP/1.1\" {code}");
    match srv.log_text().contains(&want) {
        true => Ok(()),
        false => Err(format!("the web server's log has no {want:?}")),
    }
}

/// DHCP names `http://10.0.2.2:<port>/pxelinux.0`: PXE over HTTP, the MAC's config a 404,
/// `pxelinux.cfg/default` used, kernel and initrd on one kept-alive connection, byte-exact,
/// Linux reaches its initramfs.
pub(crate) fn case_http_pxe(c: &Ctx, name: &str) -> CaseResult {
    let root = root(c)?;
    let srv = WebServer::start(&root, None, &c.log(&format!("{name}-httpd")))?;
    let t = crate::check::boot_for(
        &args(c, 2, &srv.url("pxelinux.0"), &[]),
        &c.log(name),
        case_timeout(),
    )?;
    expect_userspace(&t, CMDLINE_NETBOOT, Some("EL2"), Some(2))?;
    expect_kexboot_started(&t)?;
    let port = srv.port;
    expect_line(&t, "\"HTTP '<MAC config>': 404 File not found\"", |l| {
        l.contains(&format!(
            "HTTP '{MAC_CFG}': 404 File not found from 10.0.2.2:{port}"
        ))
    })?;
    expect_line(&t, "\"PXE: using http://.../pxelinux.cfg/default\"", |l| {
        l.contains(&format!("PXE: using {}", srv.url("pxelinux.cfg/default")))
    })?;
    expect_http_crcs(&t, &root, &NET_FILES)?;
    let conns: Vec<Option<u32>> = NET_FILES
        .iter()
        .map(|f| tftp_line(&t, f).and_then(|l| l.connection))
        .collect();
    if conns[0].is_none() || conns[0] != conns[1] {
        return Err(format!(
            "kernel and initrd not on one connection: {conns:?}"
        ));
    }
    expect_served(&srv, MAC_CFG, 404)?;
    expect_served(&srv, "vmlinuz", 200)?;
    expect_served(&srv, "initrd.img", 200)
}

/// A web root for the restart case: the TFTP root's config, initrd and boot file, with the
/// 27 MB uncompressed `Image` as the kernel (so more of it is left to come than every socket
/// buffer between the server and the guest can hold when the server dies).
fn restart_root(c: &Ctx, tftp: &Path) -> Result<PathBuf, String> {
    let web = c.paths.assets.join("http-restart");
    fn io(what: &Path) -> impl Fn(std::io::Error) -> String + '_ {
        move |e| format!("{}: {e}", what.display())
    }
    std::fs::create_dir_all(web.join("pxelinux.cfg")).map_err(io(&web))?;
    for f in ["Image", "initrd.img", "pxelinux.0"] {
        let (from, to) = (tftp.join(f), web.join(f));
        let same = std::fs::read(&from).ok() == std::fs::read(&to).ok();
        if !same {
            std::fs::copy(&from, &to).map_err(io(&to))?;
        }
    }
    let cfg = std::fs::read_to_string(tftp.join("pxelinux.cfg/default")).map_err(io(tftp))?;
    let cfg = cfg.replace("kernel vmlinuz", "kernel Image");
    if !cfg.contains("kernel Image") {
        return Err("the PXE config names no `kernel vmlinuz` to replace".into());
    }
    let to = web.join("pxelinux.cfg/default");
    std::fs::write(&to, cfg).map_err(io(&to))?;
    Ok(web)
}

/// The same boot with the link to the guest slowed (QEMU's `filter-buffer` releases its
/// packets every 20 ms), so the kernel takes seconds: at its first progress line the server is
/// killed; once kexboot says it will try again, the server starts again. kexboot asks for the
/// rest by `Range`, the server (which has no ranges) sends the whole file, kexboot takes it
/// from the start: the crc32 is the host file's and Linux boots.
///
/// The kill follows the first line kexboot prints mid-download (about 1.5 MB in); the slowed
/// link (under 2 MB/s) keeps the rest of the 27 MB kernel coming for over ten seconds after
/// it, and the socket buffers between server and guest (here 3.5 MB were still delivered
/// after the kill) hold far less than the rest, so the cut lands mid-file however late the
/// harness acts within that.
pub(crate) fn case_http_restart(c: &Ctx, name: &str) -> CaseResult {
    let root = restart_root(c, &root(c)?)?;
    let mut srv = WebServer::start(&root, None, &c.log(&format!("{name}-httpd")))?;
    let slow = "filter-buffer,id=slow,netdev=n0,queue=rx,interval=20000";
    let a = args(c, 1, &srv.url("pxelinux.0"), &["-object", slow]);
    let mut s = Session::spawn(&a, Some(&c.log(name))).map_err(|e| e.to_string())?;
    let limit = case_timeout() + Duration::from_secs(180);
    let deadline = Instant::now() + limit;
    let progress = |l: &str| l.contains("HTTP 'Image': ") && l.contains(" MiB (");
    let cut = match s.wait_for(deadline, progress) {
        Wait::Found(l) => l.text,
        _ => return Err("no progress line of the kernel download".into()),
    };
    srv.kill();
    let again = |l: &str| l.contains("HTTP 'Image': ") && l.contains("again from byte");
    let retry = match s.wait_for(deadline, again) {
        Wait::Found(l) => l.text,
        _ => {
            return Err(format!(
                "no retry line after the server was killed at {cut:?}"
            ))
        }
    };
    srv.restart()?;
    let t = finish(s, deadline);
    eprintln!("{name}: killed at {:?}; {:?}", cut.trim(), retry.trim());
    expect_userspace(&t, CMDLINE_NETBOOT, None, Some(1))?;
    expect_http_crcs(&t, &root, &["Image", "initrd.img"])?;
    let l = tftp_line(&t, "Image").ok_or("no kernel summary line")?;
    if !l.rest.contains("fetched again from the start") {
        return Err(format!(
            "the kernel line does not say it started over (the server has no ranges): {:?}",
            l.rest
        ));
    }
    // The first try died mid-file: fewer bytes than the file before the retry.
    let size = std::fs::metadata(root.join("Image"))
        .map_err(|e| e.to_string())?
        .len();
    let from: u64 = retry
        .split("again from byte ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no byte count in {retry:?}"))?;
    if from >= size {
        return Err(format!(
            "the cut came after the whole file ({from} of {size})"
        ));
    }
    expect_kexboot_started(&t)
}
