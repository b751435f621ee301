//! The network settings the environment holds, in U-Boot's names: the address (`ipaddr`,
//! `netmask`, `gatewayip`), the TFTP server and port (`serverip`, `tftpdstp`) and the TFTP
//! options (`tftpblocksize`, `tftpwindowsize`, `tftptimeout`).

use alloc::string::String;
use alloc::vec::Vec;

use kexboot_net::{tftp, Ipv4Addr, TftpRequest};

use crate::env::Env;

/// U-Boot's default TFTP block size: a 1500-byte MTU without IP fragments.
pub const DEFAULT_BLKSIZE: u16 = 1468;
/// kexboot's default RFC 7440 window (U-Boot's default is 1; 32 measured best under QEMU).
pub const DEFAULT_WINDOW: u16 = 32;
/// The TFTP port without `tftpdstp`.
pub const TFTP_PORT: u16 = 69;
/// The prefix length without `netmask` (a /24, as U-Boot's default netmask).
pub const DEFAULT_PREFIX: u8 = 24;
/// RFC 2348's block size bounds.
const BLKSIZE_MIN: u32 = 8;
const BLKSIZE_MAX: u32 = 65464;
/// The window sizes kexboot accepts.
const WINDOW_MAX: u32 = 256;
/// RFC 2349's timeout bounds, in seconds.
const TIMEOUT_MIN_S: u32 = 1;
const TIMEOUT_MAX_S: u32 = 255;
const MS_PER_S: u32 = 1000;

/// `aa:bb:cc:dd:ee:ff`, as `ethaddr`.
pub fn mac_str(mac: [u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| alloc::format!("{b:02x}")).collect();
    parts.join(":")
}

/// The netmask of a prefix length (`24` → `255.255.255.0`).
pub fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

/// The prefix length of a netmask (its leading ones).
pub fn prefix_len(mask: Ipv4Addr) -> u8 {
    u32::from(mask).leading_ones() as u8
}

/// The IPv4 address in variable `name`, if it holds one.
pub fn env_ip(env: &Env, name: &str) -> Option<Ipv4Addr> {
    env.get(name).and_then(|v| v.trim().parse().ok())
}

/// The address the environment sets (`ipaddr`, `netmask`, `gatewayip`): address, prefix
/// length, gateway; `None` without `ipaddr`.
pub fn static_address(env: &Env) -> Option<(Ipv4Addr, u8, Option<Ipv4Addr>)> {
    let ip = env_ip(env, "ipaddr")?;
    let prefix = env_ip(env, "netmask").map_or(DEFAULT_PREFIX, prefix_len);
    Some((ip, prefix, env_ip(env, "gatewayip")))
}

/// TFTP options from the environment: `tftpblocksize`, `tftpwindowsize`, `tftptimeout` (ms, as
/// U-Boot; sent as whole seconds), always `tsize`.
pub fn tftp_options(env: &Env) -> tftp::Options {
    let num = |name: &str| env.get(name).and_then(|v| v.trim().parse::<u32>().ok());
    let blksize = num("tftpblocksize").map_or(DEFAULT_BLKSIZE, |b| {
        b.clamp(BLKSIZE_MIN, BLKSIZE_MAX) as u16
    });
    let window = num("tftpwindowsize").map_or(DEFAULT_WINDOW, |w| w.clamp(1, WINDOW_MAX) as u16);
    let timeout = num("tftptimeout").map_or(TIMEOUT_MIN_S as u8, |ms| {
        (ms / MS_PER_S).clamp(TIMEOUT_MIN_S, TIMEOUT_MAX_S) as u8
    });
    tftp::Options {
        blksize: Some(blksize),
        tsize: true,
        timeout: Some(timeout),
        windowsize: Some(window),
    }
}

/// A download of `file` from `server` with the environment's port (`tftpdstp`) and options.
pub fn tftp_request<'f>(server: Ipv4Addr, env: &Env, file: &'f str) -> TftpRequest<'f> {
    TftpRequest {
        server,
        port: env
            .get("tftpdstp")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(TFTP_PORT),
        file,
        options: tftp_options(env),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut e = Env::default();
        for (k, v) in pairs {
            e.set(k, v);
        }
        e
    }

    #[test]
    fn tftp_options_and_port_from_the_environment() {
        let d = tftp_request(Ipv4Addr::new(10, 0, 2, 2), &Env::default(), "f");
        assert_eq!(d.port, TFTP_PORT);
        assert_eq!(d.options.blksize, Some(DEFAULT_BLKSIZE));
        assert_eq!(d.options.windowsize, Some(DEFAULT_WINDOW));
        assert_eq!(d.options.timeout, Some(1));
        assert!(d.options.tsize);
        let e = env(&[
            ("tftpblocksize", "512"),
            ("tftpwindowsize", "4"),
            ("tftptimeout", "5000"),
            ("tftpdstp", " 6969 "),
        ]);
        let r = tftp_request(Ipv4Addr::new(10, 0, 2, 2), &e, "f");
        assert_eq!(r.port, 6969);
        assert_eq!(
            (r.options.blksize, r.options.windowsize, r.options.timeout),
            (Some(512), Some(4), Some(5))
        );
        // Out of range: clamped, not refused; nonsense: the default.
        let e = env(&[
            ("tftpblocksize", "1"),
            ("tftpwindowsize", "100000"),
            ("tftptimeout", "999999"),
            ("tftpdstp", "x"),
        ]);
        let r = tftp_request(Ipv4Addr::new(10, 0, 2, 2), &e, "f");
        assert_eq!(r.port, TFTP_PORT);
        assert_eq!(
            (r.options.blksize, r.options.windowsize, r.options.timeout),
            (Some(8), Some(256), Some(255))
        );
    }

    #[test]
    fn addresses_and_masks() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(netmask(40), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 240, 0)), 20);
        assert_eq!(
            mac_str([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            "52:54:00:12:34:56"
        );
        assert_eq!(static_address(&Env::default()), None);
        let e = env(&[("ipaddr", "10.0.2.15"), ("netmask", "255.255.0.0")]);
        assert_eq!(
            static_address(&e),
            Some((Ipv4Addr::new(10, 0, 2, 15), 16, None))
        );
        let e = env(&[("ipaddr", "10.0.2.15"), ("gatewayip", "10.0.2.2")]);
        assert_eq!(
            static_address(&e),
            Some((
                Ipv4Addr::new(10, 0, 2, 15),
                24,
                Some(Ipv4Addr::new(10, 0, 2, 2))
            ))
        );
    }
}
