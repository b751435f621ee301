//! Network boot for kexboot: for now the sans-I/O TFTP client (see [`tftp`]).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod tftp;
