//! The script language: parsing, expansion, built-ins, firmware commands, bounds, boot.scr.

mod common;
use common::crc;

use kexboot_boot::env::Env;
use kexboot_boot::script::{
    self, make_legacy_script_image, parse, parse_legacy_script_image, CmdError, Commands, Ctx,
    Error, Interp, NoCommands, Outcome, Services, Syntax, Usage, BYTES_PER_STEP, MAX_STEPS,
};
use kexboot_boot::{Clock, Console, FakeClock, FakeConsole};
use proptest::prelude::*;

/// Firmware commands for tests: records every call; `fail` fails, `boot` stops. Files for
/// `test -e` (on `virtio` only), RAM for `source`, defaults for `env default`.
#[derive(Default)]
struct Rec {
    calls: Vec<Vec<String>>,
    files: Vec<&'static str>,
    ram: Vec<(u64, Vec<u8>)>,
    defaults: Option<Env>,
}

impl Commands for Rec {
    fn call(&mut self, argv: &[String], ctx: &mut Ctx) -> Result<(), CmdError> {
        self.calls.push(argv.to_vec());
        match argv[0].as_str() {
            "fail" => Err(CmdError::Msg("fail: it failed".into())),
            "boot" | "booti" => Err(CmdError::Stop),
            _ => {
                ctx.console.write_str("<load>");
                Ok(())
            }
        }
    }
    fn has(&self, name: &str) -> bool {
        ["load", "fail", "boot", "booti"].contains(&name)
    }
}

impl Services for Rec {
    fn file_exists(&mut self, iface: &str, dev: &str, path: &str) -> Option<Result<bool, String>> {
        Some(match iface {
            "virtio" => Ok(self.files.contains(&path)),
            _ => Err(format!("** Bad device specification {iface} {dev} **")),
        })
    }
    fn read_memory(&mut self, addr: u64, len: usize) -> Option<Result<Vec<u8>, String>> {
        let found = self.ram.iter().find_map(|(at, bytes)| {
            let off = usize::try_from(addr.checked_sub(*at)?).ok()?;
            bytes.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
        });
        Some(found.ok_or_else(|| format!("{addr:#x}: not RAM")))
    }
    fn default_env(&self) -> Option<Env> {
        self.defaults.clone()
    }
    fn signed_scripts_only(&self) -> bool {
        false
    }
}

struct World {
    env: Env,
    con: FakeConsole,
    clock: FakeClock,
    cmds: Rec,
}

impl World {
    fn new(env: &str) -> Self {
        World {
            env: Env::parse(env).0,
            con: FakeConsole::new(b""),
            clock: FakeClock::new(1000),
            cmds: Rec::default(),
        }
    }

    fn run(&mut self, text: &str) -> Result<Outcome, Error> {
        self.run_in(&mut Interp::new(), text)
    }

    /// Runs `text` with `interp`, whose budget use can be read afterwards.
    fn run_in(&mut self, interp: &mut Interp, text: &str) -> Result<Outcome, Error> {
        let mut ctx = Ctx {
            env: &mut self.env,
            console: &mut self.con,
            clock: &self.clock,
        };
        interp.run("script", text, &mut ctx, &mut self.cmds)
    }

    fn out(&mut self) -> String {
        core::mem::take(&mut self.con.output)
    }
}

fn echo(text: &str, env: &str) -> String {
    let mut w = World::new(env);
    w.run(text).unwrap();
    w.out()
}

#[test]
fn sequences_and_chains() {
    assert_eq!(echo("echo a; echo b\necho c", ""), "a\nb\nc\n");
    assert_eq!(echo("true && echo yes || echo no", ""), "yes\n");
    assert_eq!(echo("false && echo yes || echo no", ""), "no\n");
    assert_eq!(echo("false || false || echo third", ""), "third\n");
    assert_eq!(echo("true || echo skipped; echo next", ""), "next\n");
    // A newline may follow && and ||.
    assert_eq!(echo("true &&\n  echo cont", ""), "cont\n");
    // Comments; `#` inside a word is literal.
    assert_eq!(echo("# whole line\necho a#b # trailing\n", ""), "a#b\n");
    assert_eq!(echo("echo -n x; echo y", ""), "xy\n");
    assert_eq!(echo("echo one \\\n two", ""), "one two\n");
}

#[test]
fn expansion_and_quotes() {
    let env = "a=hello\nb=x y  z\n";
    assert_eq!(
        echo("echo $a ${a}! '$a' \"$a\"", env),
        "hello hello! $a hello\n"
    );
    // Unquoted expansion splits on blanks; quoted keeps one argument.
    let mut w = World::new(env);
    w.run("load $b; load \"$b\"; load pre${b}post; load $missing ''")
        .unwrap();
    assert_eq!(w.cmds.calls[0], ["load", "x", "y", "z"]);
    assert_eq!(w.cmds.calls[1], ["load", "x y  z"]);
    assert_eq!(w.cmds.calls[2], ["load", "prex", "y", "zpost"]);
    assert_eq!(w.cmds.calls[3], ["load", ""]);
    // Escapes; `$` not followed by a name is literal; `${fdt-file}` is a U-Boot-style name.
    let mut w = World::new("");
    w.env.set("fdt-file", "v.dtb");
    w.run(r#"echo \$a "q\"uote" 'it''s' $ 5$ ${fdt-file}"#)
        .unwrap();
    assert_eq!(w.out(), "$a q\"uote its $ 5$ v.dtb\n");
    // $? is the last status.
    assert_eq!(echo("false; echo $?; true; echo $?", ""), "1\n0\n");
    // Values set in the script are seen by later commands.
    assert_eq!(
        echo(
            "setenv x 1 2  3; echo \"[$x]\"; setenv x; echo \"[$x]\"",
            ""
        ),
        "[1 2 3]\n[]\n"
    );
}

#[test]
fn if_then_elif_else_nested() {
    let s = "if test $v = a; then echo A; elif test $v = b; then\n  if true; then echo B1; fi\n  echo B2\nelse echo other; fi; echo done";
    assert_eq!(echo(s, "v=a"), "A\ndone\n");
    assert_eq!(echo(s, "v=b"), "B1\nB2\ndone\n");
    assert_eq!(echo(s, "v=c"), "other\ndone\n");
    // No branch taken and no else: status 0.
    assert_eq!(echo("if false; then echo x; fi; echo $?", ""), "0\n");
    // `if` in a && chain, keywords as plain arguments.
    assert_eq!(
        echo("true && if true; then echo fi then; fi", ""),
        "fi then\n"
    );
}

#[test]
fn builtins_printenv_setenv_test() {
    let mut w = World::new("b=2\na=1\n");
    w.run("printenv").unwrap();
    assert_eq!(w.out(), "a=1\nb=2\n");
    assert_eq!(w.run("printenv b nope a").unwrap(), Outcome::Failure);
    assert_eq!(w.out(), "b=2\n## Error: \"nope\" not defined\na=1\n");
    assert_eq!(w.run("setenv").unwrap(), Outcome::Failure);
    assert_eq!(w.run("setenv a=b c").unwrap(), Outcome::Failure);
    assert!(w.out().contains("illegal variable name"));
    for (t, want) in [
        ("test a = a", true),
        ("test a != a", false),
        ("test -z ''", true),
        ("test -n ''", false),
        ("test -n x", true),
        ("test 3 -eq 3", true),
        ("test 0x10 -eq 16", true),
        ("test 2 -lt 10", true),
        ("test 2 -gt 10", false),
        ("test 5 -le 5 -a 5 -ge 6", false),
        ("test 5 -le 5 -o 5 -ge 6", true),
        ("test ! 1 -ne 1", true),
        // As U-Boot: fewer than two arguments is false, numbers are strtol's (junk is 0).
        ("test", false),
        ("test x", false),
        ("test -z", false),
        ("test x -eq 1", false),
        ("test x -eq 0", true),
        ("test '' -eq 0", true),
        ("test 010 -eq 8", true),
        ("test a = b -o c = c -a d = e", false),
        ("test a = a -o b = c -a c = d", false),
        ("test b '<' c", true),
        ("test b '>' c", false),
        ("test a b c", false),
    ] {
        let got = w.run(t).unwrap() == Outcome::Success;
        assert_eq!(got, want, "{t}");
    }
    assert!(w.out().contains("test: unexpected 'a'\n"));
    // `-e` asks the firmware; a device it cannot read makes the test false, with its word.
    assert_eq!(w.run("test -e mmc 0:1 /vmlinuz").unwrap(), Outcome::Failure);
    assert_eq!(w.out(), "test: ** Bad device specification mmc 0:1 **\n");
    // Firmware without storage: the test says so and is false.
    let mut ctx = Ctx {
        env: &mut w.env,
        console: &mut w.con,
        clock: &w.clock,
    };
    let r = script::run_script("test -e virtio 0:1 /vmlinuz", &mut ctx, &mut NoCommands);
    assert_eq!(r.unwrap(), Outcome::Failure);
    assert_eq!(w.out(), "test: -e: no storage to look in\n");
}

#[test]
fn run_and_recursion_bound() {
    let mut w = World::new("");
    w.env.set("b1", "echo one; run b2");
    w.env.set("b2", "echo two");
    w.run("run b1 b2").unwrap();
    assert_eq!(w.out(), "one\ntwo\ntwo\n");
    // Stops at the first failing variable, like U-Boot.
    w.env.set("f", "false");
    w.run("run f b2").unwrap();
    assert_eq!(w.out(), "");
    assert_eq!(w.run("run nope").unwrap(), Outcome::Failure);
    assert_eq!(w.out(), "## Error: \"nope\" not defined\n");
    // Self recursion is bounded and an error.
    w.env.set("loop", "echo x; run loop");
    let e = w.run("run loop").unwrap_err();
    assert_eq!(e, Error::RunTooDeep { max: 16 });
    assert!(e.to_string().starts_with("run: nesting too deep"));
    assert_eq!(w.out().matches('x').count(), 16);
    // Fan-out is bounded by the step budget, not by patience.
    w.env.set("fan", "run fan fan");
    w.env.set("w", "run w2 w2 w2 w2 w2 w2 w2 w2");
    w.env.set("w2", "run w3 w3 w3 w3 w3 w3 w3 w3");
    w.env.set("w3", "run w4 w4 w4 w4 w4 w4 w4 w4");
    w.env.set("w4", "run w5 w5 w5 w5 w5 w5 w5 w5");
    w.env
        .set("w5", "true; true; true; true; true; true; true; true");
    assert!(matches!(w.run("run w"), Err(Error::TooManySteps { .. })));
    // A syntax error in a variable names the variable.
    w.env.set("bad", "echo a\nfi");
    assert_eq!(
        w.run("run bad").unwrap_err().to_string(),
        "bad:2:1: unexpected 'fi'"
    );
}

/// Most bytes one call may parse, expand or print: the budget, plus the one text or command
/// that crosses the line (a text is charged before it is parsed, so only its bytes count).
fn budget_bytes(crossing: usize) -> u64 {
    u64::from(MAX_STEPS) * BYTES_PER_STEP + crossing as u64
}

/// The budget charges exactly what ran: one step per command, and every text parsed (the
/// script, each `run` of a variable each time), argument expanded and line `printenv` printed.
#[test]
fn budget_charges_commands_and_bytes() {
    let mut w = World::new("");
    let var = "echo $msg; true";
    w.env.set("v", var);
    w.env.set("msg", "hello");
    let text = "run v v; printenv msg";
    let mut interp = Interp::new();
    assert_eq!(w.run_in(&mut interp, text).unwrap(), Outcome::Success);
    assert_eq!(w.out(), "hello\nhello\nmsg=hello\n");
    let used = interp.usage();
    assert_eq!(
        used,
        Usage {
            // run, 2 x (echo, true), printenv
            commands: 6,
            parsed_bytes: (text.len() + 2 * var.len()) as u64,
            // "run v v", 2 x ("echo hello", "true"), "printenv msg"
            expanded_bytes: (5 + 2 * (9 + 4) + 11) as u64,
            printed_bytes: "msg=hello\n".len() as u64,
        }
    );
    assert_eq!(
        used.steps(),
        6 + (used.parsed_bytes + used.expanded_bytes + used.printed_bytes) / BYTES_PER_STEP
    );
    // Each top-level call starts with a fresh budget.
    w.run_in(&mut interp, "true").unwrap();
    assert_eq!(interp.usage().commands, 1);
    assert_eq!(interp.usage().parsed_bytes, 4);
    // A boot script as long as allowed, mostly comments, runs: parsing it costs 512 steps.
    let comment = format!("# {}\n", "c".repeat(98));
    let mut scr = "echo start\n".to_string();
    while scr.len() + comment.len() + "echo end\n".len() <= script::MAX_SCRIPT {
        scr.push_str(&comment);
    }
    scr.push_str("echo end\n");
    assert_eq!(w.run_in(&mut interp, &scr).unwrap(), Outcome::Success);
    assert_eq!(w.out(), "start\nend\n");
    assert!(interp.usage().steps() < u64::from(MAX_STEPS) / 10);
}

/// `run` parses its variable's text each time it runs. An environment of about 31 KiB, far
/// below the 64 KiB limit, whose `a` runs `b` 100 times, each running the 30 KiB `c` 100
/// times, made one `run a` parse 10,000 x 30 KiB = 300 MB (about a second of host CPU, far
/// more on the board) while staying under the old budget of 10,000 commands. Parsed bytes
/// are charged now: it stops with a budget error after about 1.25 MB.
#[test]
fn nested_run_of_large_variables_is_charged_for_its_parsing() {
    let big = format!("# {}\ntrue\n", "p".repeat(30 << 10));
    let mut w = World::new("");
    w.env.set("a", &"run b;".repeat(100));
    w.env.set("b", &"run c;".repeat(100));
    w.env.set("c", &big);
    let env_size: usize = w
        .env
        .iter_sorted()
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    assert!(env_size <= 64 << 10, "{env_size}");
    let mut interp = Interp::new();
    let e = w.run_in(&mut interp, "run a").unwrap_err();
    let Error::TooManySteps { max, used } = e.clone() else {
        panic!("expected a budget error, got {e}");
    };
    assert_eq!(max, MAX_STEPS);
    assert_eq!(used, interp.usage());
    assert!(used.steps() > u64::from(MAX_STEPS));
    assert!(
        used.parsed_bytes <= budget_bytes(big.len()),
        "parsed {} bytes",
        used.parsed_bytes
    );
    // It stopped early: a few dozen of the 10,000 runs of `c`, not thousands.
    assert!(used.commands < 100, "{used:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("script: step budget of 10000 used up ("),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{} bytes parsed", used.parsed_bytes)),
        "{msg}"
    );

    // The same through depth instead of width: 15 levels of `run next next` over 2 KiB
    // variables (32 KiB in all) would parse 2^15 x 2 KiB = 64 MB.
    let mut w = World::new("");
    for i in 0..15 {
        let pad = "q".repeat(2000);
        w.env
            .set(&format!("d{i}"), &format!("# {pad}\nrun d{0} d{0}", i + 1));
    }
    w.env.set("d15", "true");
    let mut interp = Interp::new();
    let e = w.run_in(&mut interp, "run d0").unwrap_err();
    assert!(matches!(e, Error::TooManySteps { .. }), "{e}");
    assert!(interp.usage().parsed_bytes <= budget_bytes(2100));

    // printenv of a large variable, fanned out the same way, is charged for what it prints.
    let mut w = World::new("");
    w.env.set("x", &"v".repeat(60_000));
    w.env.set("a", &"run b;".repeat(100));
    w.env.set("b", &"printenv x;".repeat(100));
    let mut interp = Interp::new();
    let e = w.run_in(&mut interp, "run a").unwrap_err();
    assert!(matches!(e, Error::TooManySteps { .. }), "{e}");
    let printed = interp.usage().printed_bytes;
    assert!(printed <= budget_bytes(60_010), "printed {printed} bytes");
    assert_eq!(w.out().len() as u64, printed);
}

#[test]
fn firmware_commands_unknown_stop_exit() {
    let mut w = World::new("");
    assert_eq!(w.run("frob 1 || echo fallback").unwrap(), Outcome::Success);
    assert_eq!(w.out(), "Unknown command 'frob' - try 'help'\nfallback\n");
    assert_eq!(w.run("fail x; echo $?").unwrap(), Outcome::Success);
    assert_eq!(w.out(), "fail: it failed\n1\n");
    assert_eq!(w.run("load a; boot; echo never").unwrap(), Outcome::Stopped);
    assert_eq!(w.out(), "<load>");
    assert_eq!(w.run("echo a; exit; echo never").unwrap(), Outcome::Success);
    assert_eq!(w.out(), "a\n");
    w.env.set("sub", "exit 1; echo never");
    assert_eq!(w.run("run sub; echo never").unwrap(), Outcome::Failure);
    assert_eq!(w.out(), "");
    // $? carries over between lines of one interpreter (the shell).
    let mut i = Interp::new();
    let mut ctx = Ctx {
        env: &mut w.env,
        console: &mut w.con,
        clock: &w.clock,
    };
    i.run("shell", "false", &mut ctx, &mut NoCommands).unwrap();
    assert!(!i.last_status());
    i.run("shell", "echo $?", &mut ctx, &mut NoCommands)
        .unwrap();
    assert_eq!(w.con.output, "1\n");
}

#[test]
fn sleep_uses_the_clock_and_ignores_keys() {
    let mut w = World::new("");
    w.con.push_input(b"xyz");
    let t0 = w.clock.now_us();
    assert_eq!(w.run("sleep 1.5").unwrap(), Outcome::Success);
    let slept = w.clock.now_us() - t0;
    assert!((1_500_000..1_510_000).contains(&slept), "{slept}");
    // Keys typed meanwhile were dropped (U-Boot), nothing was echoed.
    assert_eq!(w.con.read_byte(), None);
    assert_eq!(w.out(), "");
    // Ctrl-C interrupts.
    w.con.push_input(b"a\x03");
    let t0 = w.clock.now_us();
    assert_eq!(w.run("sleep 100 && echo no").unwrap(), Outcome::Failure);
    assert!(w.clock.now_us() - t0 < 10_000);
    for bad in ["sleep", "sleep x", "sleep 1e3", "sleep 99999", "sleep ."] {
        assert_eq!(w.run(bad).unwrap(), Outcome::Failure, "{bad}");
    }
    let t0 = w.clock.now_us();
    w.run("sleep 0; sleep .25").unwrap();
    assert!((250_000..260_000).contains(&(w.clock.now_us() - t0)));
}

#[test]
fn syntax_errors_have_line_and_column() {
    let cases: &[(&str, &str)] = &[
        ("echo a\n\n  echo b; fi", "script:3:11: unexpected 'fi'"),
        (
            "if true; then echo x",
            "script:1:21: unexpected end of script, expected 'fi'",
        ),
        (
            "if true\necho",
            "script:2:5: unexpected end of script, expected 'then'",
        ),
        ("if; then echo; fi", "script:1:5: unexpected 'then'"),
        ("if then x; fi", "script:1:4: unexpected 'then'"),
        ("echo 'abc", "script:1:6: unterminated single quote"),
        ("echo \"a\nb", "script:1:6: unterminated double quote"),
        ("echo ${a", "script:1:6: unterminated '${'"),
        ("echo ${}", "script:1:6: bad substitution"),
        ("&& echo", "script:1:1: unexpected '&&'"),
        ("echo a |  b", "script:1:8: '|' (pipes) is not supported"),
        (
            "echo a & b",
            "script:1:8: '&' (background jobs) is not supported",
        ),
        ("case x in", "script:1:1: 'case' is not supported"),
        ("for i in 1; echo; done", "script:1:13: unexpected 'echo'"),
        ("for 1-x in a; do done", "script:1:5: unexpected '1-x'"),
        ("for i of a; do done", "script:1:7: unexpected 'of'"),
        (
            "for i in a b",
            "script:1:13: unexpected end of script, expected 'do'",
        ),
        (
            "for i in a; do echo",
            "script:1:20: unexpected end of script, expected 'done'",
        ),
        ("for i in a && b; do done", "script:1:12: unexpected '&&'"),
        ("while; do done", "script:1:8: unexpected 'do'"),
        (
            "until false",
            "script:1:12: unexpected end of script, expected 'do'",
        ),
        ("done", "script:1:1: unexpected 'done'"),
        (
            "if true; then echo; fi echo",
            "script:1:24: unexpected 'echo'",
        ),
        (
            "true &&",
            "script:1:8: unexpected end of script, expected 'command'",
        ),
        ("else", "script:1:1: unexpected 'else'"),
    ];
    for (text, want) in cases {
        let mut w = World::new("");
        let got = w.run(text).unwrap_err().to_string();
        assert_eq!(&got, want, "{text:?}");
        assert_eq!(w.out(), "", "nothing runs when the text does not parse");
    }
}

#[test]
fn bounds() {
    let deep = "if true; then ".repeat(17) + &"fi; ".repeat(17);
    assert!(matches!(
        parse("s", &deep),
        Err(Error::Syntax {
            what: Syntax::NestingTooDeep { .. },
            ..
        })
    ));
    let ok = "if true; then ".repeat(16) + "echo deep; " + &"fi; ".repeat(16);
    assert_eq!(echo(&ok, ""), "deep\n");
    let long = "x".repeat(script::MAX_SCRIPT + 1);
    assert!(matches!(parse("s", &long), Err(Error::TooLong { .. })));
    let many = "echo".to_string() + &" a".repeat(64);
    assert!(matches!(
        parse("s", &many),
        Err(Error::Syntax {
            what: Syntax::TooManyArgs { max: 64 },
            ..
        })
    ));
    // Expansion cannot inflate a command past the bounds.
    let mut w = World::new("");
    w.env.set("big", &"y".repeat(20_000));
    assert!(matches!(
        w.run("echo $big $big"),
        Err(Error::ExpansionTooLong { .. })
    ));
    w.env.set("words", &"w ".repeat(40));
    assert!(matches!(
        w.run("echo $words $words"),
        Err(Error::TooManyArgs { .. })
    ));
    // setenv cannot grow the environment without bound.
    w.env.set("big", &"y".repeat(20_000));
    let r = w.run("setenv a $big; setenv b \"$big\"; setenv c \"$big\"; setenv d \"$big\"");
    assert_eq!(r.unwrap(), Outcome::Failure);
    assert!(w.out().contains("environment full"));
}

#[test]
fn boot_scr_round_trip_and_rejections() {
    let text = "setenv bootargs console=ttyAMA0\nload virtio 0:1 ${kernel_addr_r} Image\n";
    let img = make_legacy_script_image(text, "boot script");
    assert_eq!(parse_legacy_script_image(&img).unwrap(), text);

    let mut bad = img.clone();
    bad[0] ^= 1;
    assert!(matches!(
        parse_legacy_script_image(&bad),
        Err(Error::ImageBadMagic { .. })
    ));
    let mut bad = img.clone();
    bad[40] ^= 1; // name: header CRC
    assert!(matches!(
        parse_legacy_script_image(&bad),
        Err(Error::ImageCrc { part: "header", .. })
    ));
    let mut bad = img.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(matches!(
        parse_legacy_script_image(&bad),
        Err(Error::ImageCrc { part: "data", .. })
    ));
    assert!(matches!(
        parse_legacy_script_image(&img[..img.len() - 1]),
        Err(Error::ImageTruncated { .. })
    ));
    assert!(matches!(
        parse_legacy_script_image(&img[..10]),
        Err(Error::ImageTruncated { .. })
    ));
    // Wrong type / compression, with valid CRCs.
    let retype = |off: usize, v: u8| {
        let mut b = img.clone();
        b[off] = v;
        b[4..8].fill(0);
        let crc = crc(&b[..64]);
        b[4..8].copy_from_slice(&crc.to_be_bytes());
        b
    };
    assert!(matches!(
        parse_legacy_script_image(&retype(30, 2)),
        Err(Error::ImageNotScript { found: 2 })
    ));
    assert!(matches!(
        parse_legacy_script_image(&retype(31, 1)),
        Err(Error::ImageCompressed { comp: 1 })
    ));
    let e = parse_legacy_script_image(&retype(30, 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("type 2") && e.contains("expected 6"), "{e}");
}

proptest! {
    #[test]
    fn garbage_scripts_never_panic(text in "[ -~\n\t]{0,200}") {
        let mut w = World::new("a=1\nb=x y\nr=run r\n");
        let _ = w.run(&text);
    }

    #[test]
    fn shell_like_soup_never_panics(parts in proptest::collection::vec(
        prop::sample::select(vec!["if", "then", "elif", "else", "fi", ";", "\n", "&&", "||",
            "echo", "true", "false", "test", "-n", "=", "$a", "${b}", "'q'", "\"$?\"", "run r",
            "setenv a", "#", "\\", "sleep 0.001", "exit"]), 0..40)) {
        let text = parts.join(" ");
        let mut w = World::new("a=1\nb=x y\nr=run r\n");
        let _ = w.run(&text);
    }

    #[test]
    fn garbage_images_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                  flip in any::<(usize, u8)>()) {
        let _ = parse_legacy_script_image(&bytes);
        let mut img = make_legacy_script_image("echo hi", "x");
        let n = img.len();
        img[flip.0 % n] ^= flip.1 | 1;
        prop_assert!(parse_legacy_script_image(&img).is_err());
    }
}

#[test]
fn for_loops_split_words_and_keep_a_local() {
    let env = "list=/ /boot/\nempty=\n";
    assert_eq!(echo("for x in a b c; do echo $x; done", env), "a\nb\nc\n");
    assert_eq!(
        echo("for p in ${list}\ndo\n  echo \"[$p]\"\ndone", env),
        "[/]\n[/boot/]\n"
    );
    assert_eq!(
        echo("for p in \"${list}\"; do echo \"[$p]\"; done", env),
        "[/ /boot/]\n"
    );
    assert_eq!(
        echo("for p in $empty; do echo never; done; echo $?", env),
        "0\n"
    );
    assert_eq!(
        echo(
            "for a in 1 2; do for b in x y; do echo -n $a$b' '; done; done",
            env
        ),
        "1x 1y 2x 2y "
    );
    // The variable is a hush local: seen by expansion, not in the environment.
    let mut w = World::new(env);
    let out = w
        .run("for v in one two; do true; done; echo $v; printenv v")
        .unwrap();
    assert_eq!(out, Outcome::Failure);
    assert_eq!(w.out(), "two\n## Error: \"v\" not defined\n");
    assert_eq!(w.env.get("v"), None);
    // The status is the body's last; exit leaves the loop and the script.
    assert_eq!(
        w.run("for v in a; do false; done").unwrap(),
        Outcome::Failure
    );
    assert_eq!(
        w.run("for v in a b; do echo $v; exit; done; echo after")
            .unwrap(),
        Outcome::Success
    );
    assert_eq!(w.out(), "a\n");
}

#[test]
fn while_and_until_with_setexpr_and_itest() {
    let counting = "setexpr i 0; while itest $i < 3; do echo -n $i; setexpr i $i + 1; done; echo";
    assert_eq!(echo(counting, ""), "012\n");
    let down = "setenv i 3; until itest $i == 0; do echo -n $i; setexpr i $i - 1; done; echo";
    assert_eq!(echo(down, ""), "321\n");
    // A loop whose condition is false at once succeeds, having run nothing.
    assert_eq!(echo("while false; do echo x; done; echo $?", ""), "0\n");
}

#[test]
fn loops_are_bounded_by_the_budget_and_ctrl_c() {
    for text in [
        "while true; do done",
        "until false; do echo -n; done",
        // A condition that runs no command still costs a step per iteration.
        "while for x in; do done; do done",
        // Fan-out: 60^3 iterations.
        "setenv w \"$w60\"; for a in $w; do for b in $w; do for c in $w; do true; done; done; done",
    ] {
        let mut w = World::new(&format!("w60={}\n", "w ".repeat(60)));
        let mut interp = Interp::new();
        let e = w.run_in(&mut interp, text).unwrap_err();
        assert!(
            matches!(e, Error::TooManySteps { max: MAX_STEPS, .. }),
            "{text}: {e}"
        );
        assert!(interp.usage().steps() <= u64::from(MAX_STEPS) + 1, "{text}");
    }
    let mut w = World::new("");
    w.con = FakeConsole::new(b"\x03");
    assert_eq!(
        w.run("while true; do echo x; done").unwrap(),
        Outcome::Failure
    );
    assert_eq!(w.out(), "<INTERRUPT>\n");
}

#[test]
fn setexpr_and_itest_in_scripts() {
    let mut w = World::new("bootargs=console=ttyS0 quiet\n");
    let r = w.run("setexpr a 0x40000000 + 0x1000; setexpr b ${a} '&' fff; echo $a $b");
    assert_eq!(r.unwrap(), Outcome::Success);
    assert_eq!(w.out(), "40001000 0\n");
    assert_eq!(
        w.run("setexpr bootargs gsub ttyS ttyAMA").unwrap(),
        Outcome::Success
    );
    assert_eq!(w.env.get("bootargs"), Some("console=ttyAMA0 quiet"));
    assert_eq!(w.run("setexpr.l a 1 / 0").unwrap(), Outcome::Failure);
    assert_eq!(w.out(), "setexpr: division by zero\n");
    assert_eq!(w.env.get("a"), Some("40001000"), "unchanged");
    assert_eq!(
        w.run("setexpr a sub nomatch x abc").unwrap(),
        Outcome::Failure
    );
    assert_eq!(w.out(), "abc: No match\n");
    assert_eq!(w.run("setexpr a=b 1").unwrap(), Outcome::Failure);
    assert!(w.out().contains("illegal variable name"));
    assert_eq!(
        w.run("itest.b 1ff == ff && echo same").unwrap(),
        Outcome::Success
    );
    assert_eq!(w.out(), "same\n");
    assert_eq!(w.run("itest 1g -eq 1").unwrap(), Outcome::Failure);
    assert_eq!(w.out(), "'1g' is not a hex number\n");
    assert_eq!(w.run("itest.x 1 -eq 1").unwrap(), Outcome::Failure);
    assert_eq!(w.out(), "Invalid data width specifier '.x'\n");
    // The result goes through setenv's bound on the environment.
    w.env.set("big", &"y".repeat(20_000));
    w.env.set("small", &"y".repeat(5_000));
    let r = w.run("setenv c \"$big\"; setenv d \"$big\"; setexpr e gsub y z \"$small\"");
    assert_eq!(r.unwrap(), Outcome::Failure);
    assert!(w.out().contains("environment full"));
    assert_eq!(w.env.get("e"), None);
    let r = w.run("setexpr e gsub y yyy \"$big\"");
    assert_eq!(r.unwrap(), Outcome::Failure);
    assert!(w
        .out()
        .starts_with("## error: substitution buffer overflow"));
}

#[test]
fn env_subcommands_are_setenv_and_printenv() {
    let mut w = World::new("a=1\n");
    w.cmds.defaults = Some(Env::parse("bootcmd=boot\na=0\n").0);
    assert_eq!(w.run("env exists a").unwrap(), Outcome::Success);
    assert_eq!(w.run("env exists nope").unwrap(), Outcome::Failure);
    assert_eq!(
        w.run("env set b two words; env print b").unwrap(),
        Outcome::Success
    );
    assert_eq!(w.out(), "b=two words\n");
    assert_eq!(w.run("env set a=b c").unwrap(), Outcome::Failure);
    assert!(w.out().contains("illegal variable name"));
    assert_eq!(w.run("env print nope").unwrap(), Outcome::Failure);
    assert_eq!(w.out(), "## Error: \"nope\" not defined\n");
    assert_eq!(
        w.run("env delete -f b; env exists b").unwrap(),
        Outcome::Failure
    );
    assert_eq!(w.run("env default a").unwrap(), Outcome::Success);
    assert_eq!(w.env.get("a"), Some("0"));
    w.env.set("extra", "1");
    assert_eq!(w.run("env default -f -a").unwrap(), Outcome::Success);
    assert_eq!(w.out(), "## Resetting to default environment\n");
    assert_eq!(w.env.get("extra"), None);
    assert_eq!(w.env.get("bootcmd"), Some("boot"));
    assert_eq!(w.run("env frob").unwrap(), Outcome::Failure);
    assert!(w.out().starts_with("Usage: env exists name"));
}

#[test]
fn source_runs_a_script_image_from_ram_here() {
    let mut w = World::new("");
    let img = make_legacy_script_image("echo in $where; setenv from_image 1; exit; echo not", "s");
    w.cmds.ram.push((0x4000_0000, img.clone()));
    let r = w.run("setenv where image; source 40000000 && echo back $from_image");
    assert_eq!(r.unwrap(), Outcome::Success);
    assert_eq!(
        w.out(),
        "## Executing script at 40000000\nin image\nback 1\n"
    );
    // Default address: loadaddr, else scriptaddr.
    w.env.set("scriptaddr", "0x40000000");
    assert_eq!(w.run("source").unwrap(), Outcome::Success);
    assert!(w.out().contains("in image"));
    w.env.unset("scriptaddr");
    assert_eq!(w.run("source").unwrap(), Outcome::Failure);
    assert!(w.out().contains("neither loadaddr nor scriptaddr"));
    // A damaged image, a missing one, a text that does not parse: the command fails, the
    // caller goes on.
    let mut bad = img.clone();
    *bad.last_mut().unwrap() ^= 1;
    w.cmds.ram.push((0x5000_0000, bad));
    let syntax = make_legacy_script_image("if true; then echo", "s");
    w.cmds.ram.push((0x6000_0000, syntax));
    for (line, want) in [
        (
            "source 50000000",
            "source: 0x50000000: boot.scr: bad data CRC32",
        ),
        ("source 70000000", "source: 0x70000000: 0x70000000: not RAM"),
        ("source zz", "source: 'zz' is not a hex number"),
        (
            "source 60000000",
            "source: script@0x60000000:1:19: unexpected end of script, expected 'fi'",
        ),
    ] {
        let r = w.run(&format!("{line}; echo next"));
        assert_eq!(r.unwrap(), Outcome::Success, "{line}");
        let out = w.out();
        assert!(out.contains(want), "{line}: {out}");
        assert!(out.ends_with("next\n"), "{line}: {out}");
    }
    // An image that sources itself stops at the depth bound.
    let mut w = World::new("");
    w.cmds
        .ram
        .push((0x1000, make_legacy_script_image("source 1000", "loop")));
    assert_eq!(
        w.run("source 1000").unwrap_err(),
        Error::SourceTooDeep {
            max: script::MAX_SOURCE_DEPTH
        }
    );
}

/// Debian's flash-kernel generic boot script (tests/data/README.md), as shipped and rendered.
const FLASH_KERNEL_TEMPLATE: &str = include_str!("../../tests/data/bootscr.uboot-generic");
const FLASH_KERNEL_SCRIPT: &str = include_str!("../../tests/data/boot.cmd.flash-kernel-generic");

#[test]
fn flash_kernel_generic_script_parses_and_runs_to_its_loads() {
    for text in [FLASH_KERNEL_TEMPLATE, FLASH_KERNEL_SCRIPT] {
        parse("boot.scr", text).unwrap();
    }
    let env = "devtype=virtio\ndevnum=0\ndistro_bootpart=1\nprefix=/boot/\n\
               fdtfile=vendor/board.dtb\nkernel_addr_r=0x40400000\nfdt_addr_r=0x49000000\n\
               ramdisk_addr_r=0x4a000000\nconsole=ttyAMA0\n";
    let mut w = World::new(env);
    w.cmds.files = vec!["/boot/vmlinuz-6.1.0-18-arm64"];
    let out = w.run(FLASH_KERNEL_SCRIPT).unwrap();
    assert_eq!(out, Outcome::Stopped, "{}", w.out());
    assert_eq!(w.cmds.calls.len(), 4);
    assert_eq!(
        w.cmds.calls[3],
        ["booti", "0x40400000", "0x4a000000:", "0x49000000"],
        "Rec sets no filesize"
    );
    assert_eq!(
        w.cmds.calls[..3],
        [
            [
                "load",
                "virtio",
                "0:1",
                "0x40400000",
                "/boot/vmlinuz-6.1.0-18-arm64"
            ],
            [
                "load",
                "virtio",
                "0:1",
                "0x49000000",
                "/boot/dtbs/6.1.0-18-arm64/vendor/board.dtb"
            ],
            [
                "load",
                "virtio",
                "0:1",
                "0x4a000000",
                "/boot/initrd.img-6.1.0-18-arm64"
            ],
        ]
    );
    assert_eq!(w.env.get("bootargs"), Some("  console=ttyAMA0 quiet"));
    assert!(w
        .out()
        .contains("Booting Debian 6.1.0-18-arm64 from virtio 0:1...\n"));
}
