//! Boot Loader Specification entries: any set of files loads without panicking into a config
//! whose entries all have a kernel, at most one per file, in an order `compare` agrees with; the
//! version comparison is antisymmetric and reflexive on whatever strings the files hold.
//!
//! The input is several entry files separated by NUL bytes, named `0.conf`, `1.conf`, ...; a
//! piece starting with `!` cannot be read (an I/O error), to exercise that path.
#![no_main]

use std::cmp::Ordering;
use std::collections::BTreeMap;

use kexboot_boot::bls::{compare, load, parse_entry, vercmp, ENTRIES_DIR};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files: BTreeMap<String, &[u8]> = data
        .split(|&b| b == 0)
        .take(64)
        .enumerate()
        .map(|(i, f)| (format!("{i}.conf"), f))
        .collect();
    let names: Vec<String> = files.keys().cloned().collect();
    let mut read = |p: &str| {
        let name = p.strip_prefix(ENTRIES_DIR).and_then(|n| n.strip_prefix('/'));
        match name.and_then(|n| files.get(n)) {
            Some(f) if f.first() == Some(&b'!') => Err("I/O error"),
            Some(f) => Ok(f.to_vec()),
            None => Err("no such file"),
        }
    };
    let Ok(cfg) = load(&names, &mut read) else {
        return;
    };
    assert!(cfg.entries.len() <= names.len());
    assert!(cfg.entries.iter().all(|e| e.kernel.is_some()));
    // The order agrees with `compare` on the parsed entries.
    let mut parsed: Vec<_> = files
        .iter()
        .filter_map(|(n, f)| parse_entry(n, f).ok())
        .filter(|e| cfg.entries.iter().any(|c| c.label == e.id()))
        .collect();
    parsed.sort_by(compare);
    for w in parsed.windows(2) {
        assert_ne!(compare(&w[0], &w[1]), Ordering::Greater);
        assert_eq!(compare(&w[0], &w[1]), compare(&w[1], &w[0]).reverse());
    }
    for e in &parsed {
        let v = e.version.as_deref().unwrap_or("");
        let t = e.title.as_deref().unwrap_or("");
        assert_eq!(vercmp(v, v), Ordering::Equal);
        assert_eq!(vercmp(v, t), vercmp(t, v).reverse(), "{v:?} vs {t:?}");
    }
});
