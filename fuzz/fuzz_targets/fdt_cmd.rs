//! The `fdt` command's pieces: U-Boot's value syntax (`fdt_parse_value`) and the edits by path
//! (`dt::set_property`, `remove_property`, `add_node`, `remove_node`, `set_total_size`). A
//! value never panics the parser and stays within its bound; cells and bytes printed by
//! `fdt_format_value` parse back to the same bytes; an edit's output re-reads, carries the
//! value just set, and takes the `totalsize` asked when it fits.
//! Input: the DTB, then a trailer (its length in the last byte): a path choice, a property
//! name choice, and the value's argument words.
#![no_main]

use arbitrary::Unstructured;
use kexboot_boot::shell::{fdt_format_value, fdt_parse_value};
use kexboot_fuzz::split_trailer;
use kexboot_loader::dt;
use libfuzzer_sys::fuzz_target;

const PATHS: &[&str] = &[
    "/",
    "/chosen",
    "/cpus/cpu@0",
    "/memory",
    "serial0",
    "/nope",
    "cpus",
];
const NAMES: &[&str] = &["bootargs", "reg", "x", "#size-cells", "a/b", ""];

fuzz_target!(|data: &[u8]| {
    let (dtb, trailer) = split_trailer(data);
    let mut u = Unstructured::new(trailer);
    let path = *u.choose(PATHS).unwrap_or(&"/");
    let name = *u.choose(NAMES).unwrap_or(&"x");
    let words: Vec<String> = u.arbitrary().unwrap_or_default();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();

    // The parser alone, on any words.
    let value = match fdt_parse_value(&words, &[0, 0, 0, 1]) {
        Ok(v) => {
            assert!(v.len() <= kexboot_boot::shell::FDT_MAX_VALUE);
            v
        }
        Err(_) => return,
    };
    // What `fdt print` shows of cells and bytes reads back as the same bytes.
    let shown = fdt_format_value(&value, usize::MAX);
    if shown.starts_with('<') || shown.starts_with('[') {
        let back: Vec<&str> = shown.split(' ').collect();
        assert_eq!(
            fdt_parse_value(&back, &[]).as_deref(),
            Ok(&value[..]),
            "{shown}"
        );
    }

    let set = u.int_in_range(0..=3u8).unwrap_or(0);
    let edited = match set {
        0 => dt::set_property(dtb, path, name, &value),
        1 => dt::remove_property(dtb, path, name),
        2 => dt::add_node(dtb, path, name),
        _ => dt::remove_node(dtb, path),
    };
    let Ok(mut out) = edited else {
        return;
    };
    let compact_len = dt::compact(&out).expect("an edit's output re-reads").len();
    assert!(compact_len <= out.len());
    let total = out.len() + usize::from(u.arbitrary::<u8>().unwrap_or(0)) * 16;
    dt::set_total_size(&mut out, total).expect("room at the end");
    assert_eq!(out.len(), total);
    assert!(dt::compact(&out).is_ok(), "the padded output re-reads");
    if set == 0 {
        assert_eq!(dt::property(&out, path, name).as_deref(), Ok(&value[..]));
    }
});
