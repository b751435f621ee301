//! Network boot for kexboot: a polled NIC trait ([`Nic`]), an IPv4 stack over smoltcp ([`Stack`]:
//! DHCP, TFTP, ping), the sans-I/O TFTP client ([`tftp`]) with its receive fast path
//! ([`fastpath`]) and PXELINUX config lookup ([`pxe`]).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod fastpath;
pub mod http;
pub mod nic;
pub mod pxe;
pub mod stack;
pub mod tftp;

pub use core::net::Ipv4Addr;
pub use nic::*;
pub use stack::*;
