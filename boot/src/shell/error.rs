//! Why a shell command failed, in words for the person at the console.

use alloc::string::String;
use core::fmt;

use kexboot_net::{Ipv4Addr, NetError};

use crate::board::PowerError;
use crate::flow::FileError;

/// Why a command of the shell failed. `Display` is what the console shows.
#[derive(Debug)]
pub enum Error {
    /// The command's usage line: it was called wrongly.
    Usage(&'static str),
    /// A sentence saying what is missing or refused (a fixed text).
    Refused(&'static str),
    /// An argument that should be a hex address or size.
    NotHex(String),
    /// An argument that should be an IPv4 address.
    NotIpv4(String),
    /// `start..end` is not free RAM: it holds kexboot, its heap, or reserved memory.
    NotFree {
        cmd: &'static str,
        start: u64,
        end: Option<u64>,
    },
    /// `md` of something that is not plain RAM.
    NotPlainRam { start: u64, end: u64 },
    /// `load` over an interface kexboot has no driver for.
    Interface(String),
    /// A device that is not there (U-Boot's "Bad device specification").
    NoDevice { iface: String, dev: String },
    /// A file could not be read (from the disk, or by TFTP).
    File { path: String, err: FileError },
    /// `saveenv` failed.
    Save(String),
    /// The DHCP exchange failed.
    Dhcp(NetError),
    /// The TFTP server refused `file`.
    Tftp {
        cmd: &'static str,
        file: String,
        err: NetError,
    },
    /// `ping` got no answer.
    Ping { ip: Ipv4Addr, err: NetError },
    /// A PXE step failed (`what` says which, with the file).
    Pxe { what: String, err: NetError },
    /// A boot script's or config's text is not valid.
    Parse { path: String, err: String },
    /// `booti` refused its arguments or could not plan the boot.
    Booti(crate::booti::Error),
    /// A boot command came back: nothing could be booted (it said why as it went).
    NotBooted(String),
    /// Reset or power-off did not happen.
    Power(PowerError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(u) => write!(f, "usage: {u}"),
            Error::Refused(s) => f.write_str(s),
            Error::NotHex(s) => write!(f, "'{s}' is not a hex address"),
            Error::NotIpv4(s) => write!(f, "'{s}' is not an IPv4 address"),
            Error::NotFree { cmd, start, end } => {
                write!(f, "{cmd}: {start:#x}")?;
                if let Some(end) = end {
                    write!(f, "-{end:#x}")?;
                }
                f.write_str(" is not free RAM (kexboot, its heap, reserved memory)")
            }
            Error::NotPlainRam { start, end } => {
                write!(f, "md: {start:#x}..{end:#x} is not plain RAM")
            }
            Error::Interface(i) => write!(f, "load: interface '{i}' not supported (virtio)"),
            Error::NoDevice { iface, dev } => {
                write!(f, "** Bad device specification {iface} {dev} **")
            }
            Error::File { path, err } => write!(f, "{path}: {err}"),
            Error::Save(e) => write!(f, "saveenv: {e}"),
            Error::Dhcp(e) => write!(f, "DHCP: {e}"),
            Error::Tftp { cmd, file, err } => write!(f, "{cmd}: '{file}': {err}"),
            Error::Ping { ip, err } => write!(f, "ping failed; host {ip} is not alive: {err}"),
            Error::Pxe { what, err } => write!(f, "{what}: {err}"),
            Error::Parse { path, err } => write!(f, "{path}: {err}"),
            Error::Booti(e) => write!(f, "{e}"),
            Error::NotBooted(s) => f.write_str(s),
            Error::Power(e) => write!(f, "{e}"),
        }
    }
}

impl From<Error> for crate::script::CmdError {
    fn from(e: Error) -> Self {
        crate::script::CmdError::Msg(alloc::string::ToString::to_string(&e))
    }
}
