//! kexboot's boot logic, sans-I/O and host-tested: the boot configuration (`extlinux.conf`) and
//! the flow that boots it, the one boot-plan builder ([`flow::plan`]: the extlinux flow, PXE and
//! `booti`), `booti` ([`booti`]), the environment and its store, boot counting and what autoboot
//! runs ([`autoboot`]), the script language and the command table ([`commands`]), the network
//! settings the environment holds ([`netenv`]), the menu and line editor; spoken through a
//! [`Console`]; the shell itself ([`shell`]: its state, ONE command table, autoboot, `load`,
//! `booti`, netboot and PXE) over the one [`board::Board`] trait, which `boards/` implements
//! for each machine (devices, clock, RAM, the jump) and host tests implement over simulation.
#![cfg_attr(not(test), no_std)]
extern crate alloc;

pub mod autoboot;
pub mod bls;
pub mod board;
pub mod bootcount;
pub mod booti;
pub mod commands;
pub mod console;
pub mod env;
pub mod envstore;
pub mod extlinux;
pub mod flow;
pub mod line;
pub mod memory;
pub mod netenv;
pub mod script;
pub mod shell;
pub mod storage;
pub mod ui;

pub use console::{Clock, Console, FakeClock, FakeConsole};

use core::fmt;

/// Everything this crate refuses. Soft problems in a config file are [`extlinux::Note`]s, not errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The config is not UTF-8: `offset` is the first bad byte, `line` the 1-based line holding it.
    InvalidUtf8 { offset: usize, line: usize },
    /// A line (without its terminator) is longer than `max` bytes.
    LineTooLong { line: usize, len: usize, max: usize },
    /// A `label` on `line` would be entry number `max + 1`.
    TooManyEntries { line: usize, max: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidUtf8 { offset, line } => {
                write!(
                    f,
                    "config: invalid UTF-8 at byte offset {offset} (line {line})"
                )
            }
            Error::LineTooLong { line, len, max } => {
                write!(
                    f,
                    "config line {line}: {len} bytes long, expected at most {max}"
                )
            }
            Error::TooManyEntries { line, max } => {
                write!(f, "config line {line}: more than {max} labels")
            }
        }
    }
}
