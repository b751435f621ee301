//! `cargo xtask test`: host tests, the firmware build, clippy, then the QEMU end-to-end cases of
//! [`crate::cases`], each with a timeout and its serial log in `target/e2e/<case>.log`.

use crate::cases::CASES;
use crate::check::Ctx;
use crate::disks::build_disks;
use crate::util::{cargo, err, run_status, Paths, Result};
use crate::{assets, firmware, fuzz};
use std::time::{Duration, Instant};

/// Options of `cargo xtask test`.
#[derive(Default)]
struct Opts {
    no_e2e: bool,
    no_clippy: bool,
    only: Option<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-e2e" => o.no_e2e = true,
            "--no-clippy" => o.no_clippy = true,
            "--only" => {
                let c = it.next().ok_or_else(|| err!("--only needs a case name"))?;
                if !CASES.iter().any(|k| k.name == c) {
                    let names: Vec<_> = CASES.iter().map(|k| k.name).collect();
                    return Err(err!("unknown case {c}; cases: {}", names.join(", ")));
                }
                o.only = Some(c.clone());
            }
            other => return Err(err!("unexpected argument `{other}`")),
        }
    }
    Ok(o)
}

/// Collects and prints step results.
#[derive(Default)]
struct Report {
    lines: Vec<(bool, String)>,
}

impl Report {
    fn add(
        &mut self,
        kind: &str,
        name: &str,
        res: std::result::Result<(), String>,
        took: Duration,
    ) {
        match &res {
            Ok(()) => println!("{kind} {name} ... ok"),
            Err(why) => println!("{kind} {name} ... FAILED ({why})"),
        }
        let verdict = if res.is_ok() { "ok" } else { "FAILED" };
        let summary = format!("{verdict:<6} {:>6.1}s  {kind} {name}", took.as_secs_f64());
        self.lines.push((res.is_ok(), summary));
    }

    fn step(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> bool {
        let t0 = Instant::now();
        let r = f().map_err(|e| e.to_string());
        let ok = r.is_ok();
        self.add("step", name, r, t0.elapsed());
        ok
    }
}

/// `cargo xtask test`.
pub fn cmd_test(paths: &Paths, args: &[String]) -> Result<()> {
    let o = parse_opts(args)?;
    let mut rep = Report::default();
    let full = o.only.is_none();
    if full {
        rep.step("host-tests", || {
            run_status(cargo(paths).args(["test", "--workspace", "--exclude", "kexboot-boards"]))
        });
    }
    if full {
        rep.step("fuzz-smoke", || fuzz::smoke(paths));
    }
    let needs_fw = !o.no_e2e
        && CASES
            .iter()
            .any(|k| k.needs_firmware && o.only.as_deref().is_none_or(|c| c == k.name));
    let fw_ok = (full || needs_fw)
        && rep.step("firmware-build", || {
            firmware::build(paths)
                .and_then(|_| firmware::build_probe(paths))
                .map(|_| ())
        });
    if full && !o.no_clippy {
        rep.step("clippy-host", || {
            run_status(cargo(paths).args([
                "clippy",
                "--workspace",
                "--exclude",
                "kexboot-boards",
                "--all-targets",
            ]))
        });
        rep.step("clippy-firmware", || {
            run_status(cargo(paths).args([
                "clippy",
                "-p",
                "kexboot-boards",
                "--target",
                firmware::TARGET,
            ]))
        });
    }
    if !o.no_e2e {
        let mut prepared = Err("not built".to_string());
        rep.step("assets", || {
            let a = assets::ensure(paths)?;
            let d = build_disks(paths, &a)?;
            prepared = Ok((a, d));
            Ok(())
        });
        for case in CASES {
            let (name, needs_fw) = (case.name, case.needs_firmware);
            if o.only.as_deref().is_some_and(|c| c != name) {
                continue;
            }
            let t0 = Instant::now();
            let res = match &prepared {
                Err(_) => Err("assets missing (see step assets)".into()),
                Ok(_) if needs_fw && !fw_ok => Err("firmware build failed".into()),
                Ok(_) if needs_fw && !paths.kexboot_bin().is_file() => {
                    Err("target/kexboot.bin missing".into())
                }
                Ok((a, d)) => {
                    let ctx = Ctx {
                        paths,
                        assets: a,
                        disks: d,
                    };
                    (case.run)(&ctx, name)
                }
            };
            rep.add("e2e", name, res, t0.elapsed());
        }
    }
    println!("\nsummary (logs in {}):", paths.e2e.display());
    for (_, l) in &rep.lines {
        println!("  {l}");
    }
    let passed = rep.lines.iter().filter(|(ok, _)| *ok).count();
    let failed = rep.lines.len() - passed;
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        Ok(())
    } else {
        Err(err!("{failed} failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opts() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(parse_opts(&a(&["--only", "el2-image-mbr", "--no-clippy"])).is_ok());
        assert!(parse_opts(&a(&["--only", "nope"])).is_err());
        assert!(parse_opts(&a(&["--only"])).is_err());
        assert!(parse_opts(&a(&["--bogus"])).is_err());
    }
}
