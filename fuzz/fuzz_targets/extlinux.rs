//! extlinux.conf: whatever parses is written back out as a config (`emit` below) that parses to
//! the same entries and settings (parse -> emit -> parse is stable); the boot order is a
//! permutation of the entries.
//!
//! The input is several files separated by NUL bytes: the first is `/e/extlinux.conf`, the
//! n-th (from 1) is `/e/n`, so `include 2` reads the third piece. Includes are read from that
//! in-memory map (loops, depth and count limits get exercised); the merged config must still
//! round-trip through `emit`.
#![no_main]

use std::fmt::Write;

use std::collections::BTreeMap;

use kexboot_boot::extlinux::{parse, parse_with, Config, MAX_INCLUDES};
use libfuzzer_sys::fuzz_target;

/// The config as a file, one key per line.
fn emit(c: &Config) -> String {
    let mut s = String::new();
    if let Some(d) = &c.default {
        writeln!(s, "default {d}").unwrap();
    }
    if let Some(o) = &c.ontimeout {
        writeln!(s, "ontimeout {o}").unwrap();
    }
    if let Some(t) = c.timeout_ds {
        writeln!(s, "timeout {t}").unwrap();
    }
    if let Some(t) = c.total_timeout_ds {
        writeln!(s, "totaltimeout {t}").unwrap();
    }
    if c.menu_hidden {
        s.push_str("menu hidden\n");
    }
    if c.prompt {
        s.push_str("prompt 1\n");
    }
    if let Some(t) = &c.menu_title {
        writeln!(s, "menu title {t}").unwrap();
    }
    for e in &c.entries {
        writeln!(s, "label {}", e.label).unwrap();
        let keys = [
            ("menu label", &e.menu_label),
            ("linux", &e.kernel),
            ("append", &e.append),
            ("fdt", &e.fdt),
            ("fdtdir", &e.fdtdir),
        ];
        for (k, v) in keys {
            if let Some(v) = v {
                writeln!(s, "  {k} {v}").unwrap();
            }
        }
        if !e.initrds.is_empty() {
            writeln!(s, "  initrd {}", e.initrds.join(",")).unwrap();
        }
        if e.menu_default {
            s.push_str("  menu default\n");
        }
        if e.localboot {
            s.push_str("  localboot 1\n");
        }
    }
    s
}

/// The config without what depends on the file's layout: notes and line numbers.
fn essence(mut c: Config) -> Config {
    c.notes.clear();
    for e in &mut c.entries {
        e.line = 0;
    }
    c
}

fuzz_target!(|data: &[u8]| {
    let mut pieces = data.split(|&b| b == 0);
    let top = pieces.next().unwrap_or(&[]);
    let files: BTreeMap<String, &[u8]> = pieces
        .enumerate()
        .map(|(i, f)| (format!("/e/{}", i + 1), f))
        .collect();
    let mut reads = 0usize;
    let mut read = |p: &str| {
        reads += 1;
        files.get(p).map(|f| f.to_vec()).ok_or("no such file")
    };
    let got = parse_with(top, "/e/extlinux.conf", &mut read);
    assert!(reads <= MAX_INCLUDES, "{reads} files read");
    let Ok(cfg) = got else {
        return;
    };
    assert!(cfg.timeout_index() < Some(cfg.entries.len()) || cfg.entries.is_empty());
    let order = cfg.boot_order();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..cfg.entries.len()).collect::<Vec<_>>(),
        "boot order not a permutation"
    );
    assert_eq!(cfg.default_index(), order.first().copied());
    let text = emit(&cfg);
    let again = parse(&text).expect("emitted config does not parse");
    assert_eq!(
        essence(again),
        essence(cfg),
        "parse -> emit -> parse changed the config:\n{text}"
    );
});
