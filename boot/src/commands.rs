//! The firmware's command table: one entry per command (its names, its help line, its
//! handler), from which dispatch, `help` and the list of names all derive, so a command cannot
//! be listed in one place and missing from another.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::env::Env;
use crate::script::{CmdError, Commands, Ctx, Services, BUILTINS};

/// The name of the command the table answers itself: every command's help line, then the
/// language's built-ins.
pub const HELP: &str = "help";
const HELP_LINE: &str = "help - this list";

/// What a command does with the state `T` it acts on.
pub type Handler<T> = fn(&mut T, &[String], &mut Ctx) -> Result<(), CmdError>;

/// One command of the table.
pub struct Command<T: ?Sized> {
    pub name: &'static str,
    /// Other names it answers to (U-Boot's `tftp` for `tftpboot`).
    pub aliases: &'static [&'static str],
    /// One line: usage, ` - `, what it does.
    pub help: &'static str,
    pub run: Handler<T>,
}

/// A command table over the state `T` it runs on: what the interpreter calls.
pub struct Table<'a, T: ?Sized> {
    state: &'a mut T,
    commands: &'a [Command<T>],
}

impl<'a, T: ?Sized> Table<'a, T> {
    pub fn new(state: &'a mut T, commands: &'a [Command<T>]) -> Self {
        Table { state, commands }
    }

    fn find(&self, name: &str) -> Option<&Command<T>> {
        self.commands
            .iter()
            .find(|c| c.name == name || c.aliases.contains(&name))
    }

    /// Every name the table answers to (commands, their aliases and `help`), e.g. for completion.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.commands
            .iter()
            .flat_map(|c| core::iter::once(c.name).chain(c.aliases.iter().copied()))
            .chain([HELP])
    }

    /// The `help` text: one line per command, then the built-ins.
    pub fn help_lines(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.commands
            .iter()
            .map(|c| c.help)
            .chain([HELP_LINE])
            .chain(BUILTINS.iter().map(|(_, h)| *h))
    }
}

impl<T: ?Sized + Services> Commands for Table<'_, T> {
    fn has(&self, name: &str) -> bool {
        name == HELP || self.find(name).is_some()
    }

    fn call(&mut self, argv: &[String], ctx: &mut Ctx) -> Result<(), CmdError> {
        let name = argv.first().map_or("", String::as_str);
        if name == HELP {
            for line in self.help_lines() {
                ctx.console.write_str(line);
                ctx.console.write_str("\n");
            }
            return Ok(());
        }
        match self.find(name) {
            Some(c) => (c.run)(self.state, argv, ctx),
            None => Err(CmdError::Msg(format!(
                "Unknown command '{name}' - try 'help'"
            ))),
        }
    }
}

/// The table's state answers what the built-ins ask of the firmware.
impl<T: ?Sized + Services> Services for Table<'_, T> {
    fn file_exists(&mut self, iface: &str, dev: &str, path: &str) -> Option<Result<bool, String>> {
        self.state.file_exists(iface, dev, path)
    }

    fn read_memory(&mut self, addr: u64, len: usize) -> Option<Result<Vec<u8>, String>> {
        self.state.read_memory(addr, len)
    }

    fn default_env(&self) -> Option<Env> {
        self.state.default_env()
    }

    fn fit_script(
        &mut self,
        addr: u64,
        name: Option<&str>,
        len: Option<u64>,
    ) -> Option<Result<String, String>> {
        self.state.fit_script(addr, name, len)
    }

    fn signed_scripts_only(&self) -> bool {
        self.state.signed_scripts_only()
    }
}

/// U-Boot's number syntax for addresses and sizes: hex, with or without `0x`.
pub fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{Interp, Outcome};
    use crate::{FakeClock, FakeConsole};
    use alloc::vec::Vec;

    #[derive(Default)]
    struct State {
        seen: Vec<Vec<String>>,
    }

    impl Services for State {
        fn file_exists(&mut self, _: &str, _: &str, path: &str) -> Option<Result<bool, String>> {
            Some(Ok(path == "/there"))
        }
        fn signed_scripts_only(&self) -> bool {
            false
        }
    }

    fn record(s: &mut State, argv: &[String], _: &mut Ctx) -> Result<(), CmdError> {
        s.seen.push(argv.to_vec());
        Ok(())
    }

    fn refuse(_: &mut State, _: &[String], _: &mut Ctx) -> Result<(), CmdError> {
        Err(CmdError::Msg("tftpboot: no server".into()))
    }

    const TABLE: &[Command<State>] = &[
        Command {
            name: "load",
            aliases: &[],
            help: "load <addr> - read a file",
            run: record,
        },
        Command {
            name: "tftpboot",
            aliases: &["tftp"],
            help: "tftpboot [addr] [file] - download a file",
            run: refuse,
        },
    ];

    fn run(text: &str, state: &mut State) -> (Outcome, String) {
        let (mut env, mut con, clock) = (Env::default(), FakeConsole::new(b""), FakeClock::new(1));
        let mut ctx = Ctx {
            env: &mut env,
            console: &mut con,
            clock: &clock,
        };
        let out = Interp::new()
            .run("t", text, &mut ctx, &mut Table::new(state, TABLE))
            .unwrap();
        (out, con.output.clone())
    }

    #[test]
    fn hex_with_or_without_prefix() {
        assert_eq!(parse_hex("0x40200000"), Some(0x4020_0000));
        assert_eq!(parse_hex("ff"), Some(0xff));
        assert_eq!(parse_hex("0x"), None);
        assert_eq!(parse_hex("12g"), None);
    }

    #[test]
    fn dispatch_help_and_names_come_from_the_one_table() {
        let mut s = State::default();
        let (out, _) = run("load 0x1000 /a", &mut s);
        assert_eq!(out, Outcome::Success);
        assert_eq!(s.seen, [["load", "0x1000", "/a"]]);
        // An alias runs its command, and its error is printed.
        let (out, said) = run("tftp 0x10 f", &mut s);
        assert_eq!(out, Outcome::Failure);
        assert_eq!(said, "tftpboot: no server\n");
        // help lists each table entry, help itself and the built-ins, in that order.
        let (_, said) = run("help", &mut s);
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines[..3], [TABLE[0].help, TABLE[1].help, HELP_LINE]);
        assert_eq!(lines.len(), 3 + BUILTINS.len());
        let names: Vec<&str> = Table::new(&mut s, TABLE).names().collect();
        assert_eq!(names, ["load", "tftpboot", "tftp", "help"]);
        let (out, said) = run("nope", &mut s);
        assert_eq!(out, Outcome::Failure);
        assert_eq!(said, "Unknown command 'nope' - try 'help'\n");
    }

    #[test]
    fn the_table_forwards_what_built_ins_need() {
        let mut s = State::default();
        let (out, _) = run("test -e virtio 0:1 /there", &mut s);
        assert_eq!(out, Outcome::Success);
        let (out, _) = run("test -e virtio 0:1 /gone", &mut s);
        assert_eq!(out, Outcome::Failure);
        // What the state does not provide, the built-in says it lacks.
        let (out, said) = run("source 1000", &mut s);
        assert_eq!(out, Outcome::Failure);
        assert!(said.contains("cannot read RAM"), "{said}");
        let (out, said) = run("env default -a", &mut s);
        assert_eq!(out, Outcome::Failure);
        assert!(said.contains("no default environment"), "{said}");
    }
}
