//! Netboot end-to-end cases (issue 6): kexboot with no disk and a virtio-net NIC on QEMU's user
//! networking autoboots over DHCP + PXE (or a DHCP-named boot script) from QEMU's own TFTP server
//! or from the project's test server ([`crate::tftpd`] on 127.0.0.1:69, named to the guest by
//! DHCP option 66 since slirp keeps 10.0.2.2:69 for its own TFTP server) with injected loss, and falls back to its prompt when the
//! server stays silent.

use crate::assets::{CMDLINE_NETBOOT, CMDLINE_NETSCRIPT};
use crate::check::{
    boot_for, case_timeout, expect_kexboot_started, expect_userspace, is_prompt, Ctx, Transcript,
    KEXBOOT_STARTING,
};
use crate::qemu;
use crate::tftpd::{Config, Server, Stats};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The files the PXE label loads.
pub const NET_FILES: [&str; 2] = ["vmlinuz", "initrd.img"];
/// The firmware's line after a failed netboot.
const NETBOOT_FAILED: &str = "netboot failed:";

type CaseResult = std::result::Result<(), String>;

/// Where the guest fetches from: QEMU's built-in TFTP server (serving a directory) or ours.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tftp<'a> {
    /// `tftp=DIR`: slirp's own server at 10.0.2.2 (no windowsize).
    Builtin(&'a Path),
    /// Our server at this address, named in DHCP option 66 (`tftp-server-name=`).
    Own(std::net::IpAddr),
}

/// `-netdev user` with the TFTP server and boot file DHCP names, plus the virtio-net
/// (virtio-mmio) NIC.
pub(crate) fn netdev(args: qemu::Args, tftp: Tftp, bootfile: &str) -> qemu::Args {
    let tftp = match tftp {
        Tftp::Builtin(r) => format!("tftp={}", r.display()),
        Tftp::Own(ip) => format!("tftp-server-name={ip}"),
    };
    args.user_net(&format!("{tftp},bootfile={bootfile}"))
}

/// kexboot as `-kernel`, no disk, the NIC on user networking.
fn kexboot_net(c: &Ctx, smp: u32, tftp: Tftp, bootfile: &str) -> Vec<String> {
    let a = qemu::Args::machine("virt,virtualization=on", smp).kernel(&c.paths.kexboot_bin());
    netdev(a, tftp, bootfile).into_vec()
}

/// The lossy cases need longer than one clean boot: the case limit plus two minutes.
fn lossy_limit() -> Duration {
    case_timeout() + Duration::from_secs(120)
}

/// The TFTP root (built or refreshed from the assets).
pub(crate) fn root(c: &Ctx) -> std::result::Result<PathBuf, String> {
    crate::assets::tftp_root(c.paths, c.assets).map_err(|e| e.to_string())
}

/// Our server on 127.0.0.1:69.
fn serve(root: &Path, f: impl FnOnce(&mut Config)) -> std::result::Result<Server, String> {
    let mut cfg = Config::new(root);
    f(&mut cfg);
    Server::start(cfg).map_err(|e| e.to_string())
}

/// One `TFTP '<file>': ...` or `HTTP '<file>': ...` line of the firmware.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TftpLine {
    /// `TFTP` or `HTTP`.
    pub proto: &'static str,
    pub file: String,
    pub bytes: Option<u64>,
    pub window: Option<u16>,
    pub crc32: Option<u32>,
    /// HTTP: the number of the connection it came on.
    pub connection: Option<u32>,
    /// The whole text after `': '` (the error, when there are no figures).
    pub rest: String,
}

/// Parses `TFTP 'vmlinuz': 31560000 bytes in 1.234 s, ..., window 16, ..., crc32 0x1a2b3c4d`
/// (or the `HTTP '...'` line of the same shape).
pub(crate) fn parse_tftp_line(l: &str) -> Option<TftpLine> {
    let (at, proto) = match (l.find("TFTP '"), l.find("HTTP '")) {
        (Some(a), _) => (a, "TFTP"),
        (None, Some(a)) => (a, "HTTP"),
        (None, None) => return None,
    };
    let after = &l[at + 6..];
    let q = after.find("': ")?;
    let rest = after[q + 3..].trim().to_string();
    let words: Vec<&str> = rest
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let after_word = |w: &str| {
        words
            .iter()
            .position(|x| *x == w)
            .and_then(|i| words.get(i + 1))
    };
    let bytes = words
        .iter()
        .position(|x| *x == "bytes")
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| words[i].parse().ok());
    Some(TftpLine {
        proto,
        file: after[..q].to_string(),
        bytes,
        window: after_word("window").and_then(|w| w.parse().ok()),
        crc32: after_word("crc32")
            .and_then(|w| w.strip_prefix("0x"))
            .filter(|h| h.len() == 8)
            .and_then(|h| u32::from_str_radix(h, 16).ok()),
        connection: after_word("connection").and_then(|w| w.parse().ok()),
        rest,
    })
}

/// The last successful `TFTP` line for `file` (matched by its last path component).
pub(crate) fn tftp_line(t: &Transcript, file: &str) -> Option<TftpLine> {
    t.lines
        .iter()
        .rev()
        .filter_map(|l| parse_tftp_line(&l.text))
        .find(|x| x.file.rsplit('/').next() == Some(file) && x.crc32.is_some())
}

/// kexboot's CRC-32 and size for each file equal the host file's.
pub(crate) fn expect_crcs(t: &Transcript, root: &Path, files: &[&str]) -> CaseResult {
    for f in files {
        let data = std::fs::read(root.join(f)).map_err(|e| format!("{f}: {e}"))?;
        let want = crc32fast::hash(&data);
        let l = tftp_line(t, f).ok_or_else(|| {
            format!(
                "no \"TFTP '{f}': ... crc32 0x........\" line ({})",
                t.ending()
            )
        })?;
        if l.crc32 != Some(want) {
            return Err(format!(
                "{f}: kexboot crc32 {:08x?}, host file {want:08x}",
                l.crc32
            ));
        }
        if l.bytes.is_some_and(|b| b != data.len() as u64) {
            return Err(format!(
                "{f}: kexboot read {:?} bytes, host file has {}",
                l.bytes,
                data.len()
            ));
        }
    }
    Ok(())
}

/// The completed server-side transfer of `file`, if any.
fn completed<'a>(stats: &'a [Stats], file: &str) -> Option<&'a Stats> {
    stats
        .iter()
        .rev()
        .find(|s| s.file.trim_start_matches('/') == file && s.completed)
}

/// The server-side transfer of `file` that delivered the most acknowledged bytes. Under loss its
/// final ACK may never arrive (the client has its data and moved on), so it need not be complete;
/// the client's CRC-32 proves the content.
fn served<'a>(stats: &'a [Stats], file: &str) -> Option<&'a Stats> {
    stats
        .iter()
        .filter(|s| s.file.trim_start_matches('/') == file)
        .max_by_key(|s| (s.completed, s.bytes))
}

pub(crate) fn expect_line(t: &Transcript, what: &str, pred: impl Fn(&str) -> bool) -> CaseResult {
    t.find(pred)
        .map(|_| ())
        .ok_or_else(|| format!("no {what} line ({})", t.ending()))
}

/// QEMU's built-in DHCP + TFTP (no windowsize): DHCP, PXE config lookup, kernel and initrd.
pub(crate) fn case_qemu_tftp(c: &Ctx, name: &str) -> CaseResult {
    let root = root(c)?;
    let t = boot_for(
        &kexboot_net(c, 2, Tftp::Builtin(&root), "pxelinux.0"),
        &c.log(name),
        case_timeout(),
    )?;
    expect_userspace(&t, CMDLINE_NETBOOT, Some("EL2"), Some(2))?;
    expect_kexboot_started(&t)?;
    expect_line(&t, "\"DHCP: 10.0.2.15\"", |l| {
        l.trim_start().starts_with("DHCP: 10.0.2.15") && l.contains("pxelinux.0")
    })?;
    expect_line(&t, "\"PXE: using pxelinux.cfg/default\"", |l| {
        l.contains("PXE: using pxelinux.cfg/default")
    })?;
    expect_crcs(&t, &root, &NET_FILES)
}

/// Our server with `loss` on every DATA/OACK and ACK: the kernel and initrd still arrive
/// byte-exact (kexboot's CRC-32 equals the host's) through a window above 1.
fn lossy(c: &Ctx, name: &str, loss: f64, seed: u64) -> CaseResult {
    let root = root(c)?;
    let mut srv = serve(&root, |cfg| {
        cfg.loss = loss;
        cfg.seed = seed;
        // Recover a lost window tail or ACK quickly, but keep trying for 30 s: the client
        // answers duplicates at most once per its own (backed-off, up to 16 s) timeout.
        cfg.rto = Some(Duration::from_millis(100));
        cfg.retries = 300;
    })?;
    let t = boot_for(
        &kexboot_net(c, 1, Tftp::Own(srv.addr().ip()), "pxelinux.0"),
        &c.log(name),
        lossy_limit(),
    )?;
    // Transfers whose final ACK was dropped are still retransmitting: end them.
    srv.wait_idle(Duration::from_secs(2));
    srv.stop();
    let stats = srv.transfers();
    let mut summary = Vec::new();
    let mut errors = Vec::new();
    for f in NET_FILES {
        match served(&stats, f) {
            Some(s) if s.windowsize > 1 && s.dropped > 0 => summary.push(format!(
                "{f}: {} window {} blksize {} dropped {} retransmits {} timeouts {} {:.2} MB/s",
                match s.completed {
                    true => "final ACK received,",
                    false => "final ACK lost,",
                },
                s.windowsize,
                s.blksize,
                s.dropped,
                s.retransmits,
                s.timeouts,
                s.mbps()
            )),
            Some(s) => errors.push(format!(
                "{f}: server negotiated window {} and dropped {} (want > 1 and > 0)",
                s.windowsize, s.dropped
            )),
            None => errors.push(format!(
                "{f}: not requested from the server ({} transfers: {:?})",
                stats.len(),
                stats.iter().map(|s| &s.file).collect::<Vec<_>>()
            )),
        }
    }
    eprintln!("{name}: {}", summary.join("; "));
    expect_userspace(&t, CMDLINE_NETBOOT, None, Some(1))?;
    expect_crcs(&t, &root, &NET_FILES)?;
    match errors.is_empty() {
        true => expect_kexboot_started(&t),
        false => Err(errors.join("; ")),
    }
}

/// 5% loss (seed fixed).
pub(crate) fn case_loss5(c: &Ctx, name: &str) -> CaseResult {
    lossy(c, name, 0.05, 5)
}

/// 20% loss (seed fixed).
pub(crate) fn case_loss20(c: &Ctx, name: &str) -> CaseResult {
    lossy(c, name, 0.20, 20)
}

/// DHCP names `netboot.txt`: kexboot fetches and runs it as a script, which loads and boots.
pub(crate) fn case_dhcp_script(c: &Ctx, name: &str) -> CaseResult {
    let root = root(c)?;
    let srv = serve(&root, |_| {})?;
    let t = boot_for(
        &kexboot_net(c, 1, Tftp::Own(srv.addr().ip()), "netboot.txt"),
        &c.log(name),
        case_timeout(),
    )?;
    let ran = t.find(|l| l.trim() == "NETSCRIPT-RAN");
    expect_userspace(&t, CMDLINE_NETSCRIPT, None, None)?;
    if ran.is_none() {
        return Err("no NETSCRIPT-RAN line: the script did not run".into());
    }
    srv.wait_idle(Duration::from_secs(5));
    let stats = srv.transfers();
    for f in ["netboot.txt", "Image", "initrd.img"] {
        if completed(&stats, f).is_none() {
            return Err(format!("{f} was not fetched from the test server"));
        }
    }
    expect_crcs(&t, &root, &["Image", "initrd.img"])
}

/// The server answers nothing: kexboot reports a TFTP timeout, says netboot failed and falls
/// back to its prompt in bounded time; the server saw the request retransmitted.
pub(crate) fn case_server_silent(c: &Ctx, name: &str) -> CaseResult {
    let root = root(c)?;
    let srv = serve(&root, |cfg| cfg.silent = true)?;
    let limit = lossy_limit();
    let t = boot_for(
        &kexboot_net(c, 1, Tftp::Own(srv.addr().ip()), "pxelinux.0"),
        &c.log(name),
        limit,
    )?;
    if let Some((_, l)) = t.find(|l| l.contains("KEXBOOT-E2E") || l.contains(KEXBOOT_STARTING)) {
        return Err(format!("a kernel was started: {:?}", l.text.trim()));
    }
    let (p, prompt) = t.find(is_prompt).ok_or_else(|| {
        format!(
            "no kexboot> prompt within {}s ({})",
            limit.as_secs(),
            t.ending()
        )
    })?;
    let timeout_word = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("timeout")
            || s.contains("timed out")
            || s.contains("no answer")
            || s.contains("stopped answering")
    };
    let (e, _) = t
        .find(|l| parse_tftp_line(l).is_some_and(|x| x.crc32.is_none() && timeout_word(&x.rest)))
        .ok_or("no \"TFTP '<file>': <timeout error>\" line")?;
    let (f, _) = t
        .find(|l| l.trim_start().starts_with(NETBOOT_FAILED))
        .ok_or_else(|| format!("no {NETBOOT_FAILED:?} line"))?;
    if !(e < f && f < p) {
        return Err(format!(
            "order: TFTP error (line {e}), {NETBOOT_FAILED:?} (line {f}), prompt (line {p})"
        ));
    }
    let asked = srv.transfers();
    let first = asked.first().map(|s| s.file.clone()).unwrap_or_default();
    let tries = asked.iter().filter(|s| s.file == first).count();
    if tries < 2 {
        return Err(format!(
            "the server saw {} request(s) for {first:?}: the client did not retransmit",
            tries
        ));
    }
    eprintln!(
        "{name}: prompt after {:.1} s; {} requests seen, {tries} for {first:?}",
        prompt.at.as_secs_f64(),
        asked.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tftp_line_parsing() {
        let l = "TFTP 'vmlinuz': 31560000 bytes in 1.234 s, 25.6 MB/s, blksize 1468, window 16, \
                 3 timeouts, crc32 0x1a2b3c4d";
        let x = parse_tftp_line(l).unwrap();
        assert_eq!(x.file, "vmlinuz");
        assert_eq!(x.bytes, Some(31_560_000));
        assert_eq!(x.window, Some(16));
        assert_eq!(x.crc32, Some(0x1a2b_3c4d));
        let e = parse_tftp_line(
            "  TFTP 'pxelinux.cfg/default': tftp: no answer after 6 retransmissions",
        )
        .unwrap();
        assert_eq!(e.file, "pxelinux.cfg/default");
        assert_eq!((e.crc32, e.bytes), (None, None));
        assert!(e.rest.contains("no answer"));
        let h = parse_tftp_line(
            "HTTP 'initrd.img': 31171932 bytes in 2.004 s, 15.6 MB/s, from 10.0.2.2:8000, \
             connection 3, 1 retries, crc32 0x0badf00d",
        )
        .unwrap();
        assert_eq!((h.proto, h.file.as_str()), ("HTTP", "initrd.img"));
        assert_eq!(
            (h.bytes, h.connection, h.crc32),
            (Some(31_171_932), Some(3), Some(0x0bad_f00d))
        );
        assert_eq!(x.proto, "TFTP");
        assert!(parse_tftp_line("DHCP: 10.0.2.15/24").is_none());
        assert!(parse_tftp_line("TFTP 'x").is_none());
        assert_eq!(
            parse_tftp_line("TFTP 'a': crc32 0x123").unwrap().crc32,
            None
        );
        // Garbage never panics.
        for s in [
            "TFTP '': ",
            "TFTP '':  bytes",
            "TFTP 'a': window",
            "TFTP 'é': crc32 0xzzzzzzzz",
        ] {
            let _ = parse_tftp_line(s);
        }
    }

    #[test]
    fn netdev_args() {
        let none = || qemu::Args::new("virt", "max", None);
        let n = none().into_vec().len();
        let a = netdev(none(), Tftp::Builtin(Path::new("/r")), "pxelinux.0").into_vec();
        assert_eq!(a[n + 1], "user,id=n0,tftp=/r,bootfile=pxelinux.0");
        assert_eq!(a[n + 3], "virtio-net-device,netdev=n0");
        let ip = std::net::IpAddr::from([192, 0, 2, 2]);
        assert_eq!(
            netdev(none(), Tftp::Own(ip), "netboot.txt").into_vec()[n + 1],
            "user,id=n0,tftp-server-name=192.0.2.2,bootfile=netboot.txt"
        );
    }
}
