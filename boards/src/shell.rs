//! The prompt kexboot falls back to when nothing could be booted. The full command shell
//! (environment, `load`, `booti`, scripts) is the interactive-menu issue's; this is its seed.

use alloc::string::String;
use kexboot_loader::dt::DtInfo;

use crate::arch::psci;
use crate::console;

const MAX_LINE: usize = 256;

fn read_line() -> String {
    let mut line = String::new();
    loop {
        let Some(b) = console::try_read_byte() else {
            core::hint::spin_loop();
            continue;
        };
        match b {
            b'\r' | b'\n' => {
                println!();
                return line;
            }
            0x08 | 0x7f if line.pop().is_some() => {
                print!("\x08 \x08");
            }
            0x20..=0x7e if line.len() < MAX_LINE => {
                line.push(b as char);
                print!("{}", b as char);
            }
            _ => {} // control bytes, escape sequences, overlong lines: ignored
        }
    }
}

/// Reads commands until one asks to boot again.
pub fn prompt(info: &DtInfo) {
    println!("Type 'help' for commands.");
    loop {
        print!("kexboot> ");
        let line = read_line();
        match line.trim() {
            "" => {}
            "help" => println!(
                "commands: boot (try the entries again), reset, poweroff, version, \
                 exception undefined (test the exception report), help"
            ),
            // U-Boot's `exception` command: proves an unexpected exception is reported.
            "exception undefined" => crate::arch::undefined_instruction(),
            "boot" => return,
            "version" => println!("kexboot {}", crate::VERSION),
            "reset" => report(psci::system_reset(info)),
            "poweroff" => report(psci::system_off(info)),
            other => println!("unknown command '{other}': try 'help'"),
        }
    }
}

fn report(r: Result<(), psci::PsciError>) {
    if let Err(e) = r {
        println!("error: {e}");
    }
}
