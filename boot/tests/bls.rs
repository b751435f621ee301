//! Boot Loader Specification entries: parsing, the UAPI version order on the specification's and
//! systemd's examples, the entry order on a Fedora-style layout, conversion into the one
//! `Config`, and bad input (never a panic).

use std::cmp::Ordering::{self, Equal, Greater, Less};
use std::collections::BTreeMap;

use kexboot_boot::bls::{self, compare, load, parse_entry, to_config, vercmp, BlsEntry};
use kexboot_boot::extlinux::{MAX_ENTRIES, MAX_LINE_LEN};
use kexboot_boot::Error;
use proptest::prelude::*;

const MID: &str = "4098b3f648d74c13b1f04ccfba7798e8";

#[test]
fn version_format_specification_examples() {
    // The examples of the UAPI Version Format Specification.
    let cases: &[(&str, &str, Ordering)] = &[
        ("11", "11", Equal),
        ("systemd-123", "systemd-123", Equal),
        ("bar-123", "foo-123", Less),
        ("123a", "123", Greater),
        ("123.a", "123", Greater),
        ("123.a", "123.b", Less),
        ("123a", "123.a", Greater),
        ("11α", "11β", Equal),
        ("A", "a", Less),
        ("", "0", Less),
        ("0.", "0", Greater),
        ("0.0", "0", Greater),
        ("1_", "1", Equal),
        ("_1", "1", Equal),
        ("1_", "1.2", Less),
        ("1_2_3", "1.3.3", Greater),
        ("1+", "1", Equal),
        ("+1", "1", Equal),
        ("1+", "1.2", Less),
        ("1+2+3", "1.3.3", Greater),
        // Where the specification's list says '' < '~' and '0' < '~', systemd (whose test suite
        // the boot loaders follow) checks '~' first: a '~' string is older than anything.
        ("", "~", Greater),
        ("~", "~", Equal),
    ];
    for &(a, b, want) in cases {
        assert_eq!(vercmp(a, b), want, "{a:?} vs {b:?}");
        assert_eq!(vercmp(b, a), want.reverse(), "{b:?} vs {a:?}");
    }
}

#[test]
fn version_order_of_systemds_test_list() {
    // systemd's test-string-util list, oldest first: every later one is newer.
    let list = [
        "~1",
        "",
        "ab",
        "abb",
        "abc",
        "0001",
        "002",
        "12",
        "122",
        "122.9",
        "123~rc1",
        "123",
        "123-a",
        "123-a.1",
        "123-a1",
        "123-a1.1",
        "123-3",
        "123-3.1",
        "123^patch1",
        "123^1",
        "123.a-1",
        "123.1-1",
        "123a-1",
        "124",
    ];
    for (i, a) in list.iter().enumerate() {
        assert_eq!(vercmp(a, a), Equal, "{a:?}");
        for b in &list[i + 1..] {
            assert_eq!(vercmp(a, b), Less, "{a:?} < {b:?}");
            assert_eq!(vercmp(b, a), Greater, "{b:?} > {a:?}");
        }
    }
    let pairs = [
        ("123.45-67.88", "123.45-67.89"),
        ("123.45-67.ab", "123.45-67.89"),
        ("123~rc1-99.99", "123.45-67.89"),
        ("123^aa2-67.89", "123aa2-67.89"),
        ("1.0^git1", "1.01"),
        ("1.0^20160101", "1.0.1"),
        ("1.0^git1~pre", "1.0^git1"),
        ("6.0", "6.0.rc1"),
        ("10.1xyz", "10xyz"),
        ("xyz.4", "2"),
        ("1.fc17", "1b.fc17"),
    ];
    for (older, newer) in pairs {
        assert_eq!(vercmp(older, newer), Less, "{older:?} < {newer:?}");
    }
    assert_eq!(vercmp("10.0001", "10.1"), Equal);
    assert_eq!(vercmp("123_aa2-67.89", "123aa+2-67.89"), Equal);
    assert_eq!(vercmp("123..0", "123.0"), Less);
    // Numbers of any length, no overflow.
    assert_eq!(
        vercmp("99999999999999999999999999", "99999999999999999999999998"),
        Greater
    );
}

fn fedora(version: &str, sort_key: Option<&str>) -> String {
    let key = sort_key.map_or(String::new(), |k| format!("sort-key {k}\n"));
    format!(
        "title Fedora Linux ({version}) 40 (Server Edition)\nversion {version}\n\
         linux /vmlinuz-{version}\ninitrd /initramfs-{version}.img\n\
         options root=UUID=1234 ro\noptions rhgb quiet\ngrub_users $grub_users\n\
         grub_arg --unrestricted\ngrub_class fedora\nmachine-id {MID}\n{key}"
    )
}

/// A Fedora-style `/loader/entries`: three kernels and the rescue entry, named
/// `<machine-id>-<version>.conf`.
fn fedora_layout(sort_key: Option<&str>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        "6.5.6-300.fc39.aarch64",
        "6.10.0-0.rc1.fc41",
        "6.9.12-200.fc40",
    ]
    .iter()
    .map(|ver| (format!("{MID}-{ver}.conf"), fedora(ver, sort_key)))
    .collect();
    let rescue = format!("0-rescue-{MID}");
    let text = fedora(&rescue, sort_key);
    v.push((format!("{MID}-0-rescue.conf"), text));
    v
}

fn parsed(files: &[(String, String)]) -> Vec<BlsEntry> {
    files
        .iter()
        .map(|(n, t)| parse_entry(n, t.as_bytes()).unwrap())
        .collect()
}

#[test]
fn fedora_entry_fields() {
    let e = parse_entry("x.conf", fedora("6.9.12-200.fc40", None).as_bytes()).unwrap();
    assert_eq!(
        e.title.as_deref(),
        Some("Fedora Linux (6.9.12-200.fc40) 40 (Server Edition)")
    );
    assert_eq!(e.linux.as_deref(), Some("/vmlinuz-6.9.12-200.fc40"));
    assert_eq!(e.initrds, ["/initramfs-6.9.12-200.fc40.img"]);
    assert_eq!(e.options.as_deref(), Some("root=UUID=1234 ro rhgb quiet"));
    assert_eq!(e.machine_id.as_deref(), Some(MID));
    // grub's own keys are noted, not errors.
    assert_eq!(e.notes.len(), 3, "{:?}", e.notes);
    assert_eq!(
        e.notes[0].to_string(),
        "/loader/entries/x.conf: line 7: unknown key 'grub_users' ignored"
    );
}

#[test]
fn fedora_order_newest_first_rescue_last() {
    for key in [None, Some("fedora")] {
        let mut files = fedora_layout(key);
        files.reverse();
        let cfg = to_config(parsed(&files));
        let labels: Vec<&str> = cfg.entries.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                format!("{MID}-6.10.0-0.rc1.fc41"),
                format!("{MID}-6.9.12-200.fc40"),
                format!("{MID}-6.5.6-300.fc39.aarch64"),
                format!("{MID}-0-rescue"),
            ],
            "sort-key {key:?}"
        );
        assert_eq!(cfg.default_index(), Some(0));
        let e = &cfg.entries[0];
        assert_eq!(
            e.title(),
            "Fedora Linux (6.10.0-0.rc1.fc41) 40 (Server Edition)"
        );
        assert_eq!(e.kernel.as_deref(), Some("/vmlinuz-6.10.0-0.rc1.fc41"));
        assert_eq!(e.append.as_deref(), Some("root=UUID=1234 ro rhgb quiet"));
    }
}

#[test]
fn sort_key_rules() {
    let entry = |file: &str, text: &str| parse_entry(file, text.as_bytes()).unwrap();
    let files = [
        entry("zzz.conf", "linux /z\n"),
        entry(
            "b-fedora.conf",
            "sort-key fedora\nmachine-id bbb\nversion 1\nlinux /b\n",
        ),
        entry(
            "a-fedora-old.conf",
            "sort-key fedora\nmachine-id aaa\nversion 1.9\nlinux /a1\n",
        ),
        entry(
            "a-fedora-new.conf",
            "sort-key fedora\nmachine-id aaa\nversion 1.10\nlinux /a2\n",
        ),
        entry("debian.conf", "sort-key debian\nmachine-id zzz\nlinux /d\n"),
        entry("aaa.conf", "linux /y\n"),
        entry("bad+0-3.conf", "sort-key aaaa\nlinux /bad\n"),
        entry("tries+2.conf", "linux /tries\n"),
    ];
    let mut sorted = files.to_vec();
    sorted.sort_by(compare);
    let ids: Vec<&str> = sorted.iter().map(|e| e.id()).collect();
    assert_eq!(
        ids,
        [
            // sort-key ascending, then machine-id ascending, then version descending
            "debian",
            "a-fedora-new",
            "a-fedora-old",
            "b-fedora",
            // without sort-key: file name, descending version order
            "zzz",
            "tries+2",
            "aaa",
            // boot counting says bad: last, whatever its sort-key
            "bad+0-3",
        ]
    );
    assert!(files[6].is_bad() && !files[7].is_bad() && !files[0].is_bad());
}

#[test]
fn skipped_entries_and_notes() {
    let files = [
        ("x86.conf", "title X86\narchitecture x64\nlinux /k\n"),
        ("efi.conf", "title EFI only\nefi /EFI/fedora/grubaa64.efi\n"),
        ("arm.conf", "title Arm\narchitecture AA64\nlinux k\ninitrd a\ninitrd b\ndevicetree d.dtb\ndevicetree-overlay o1.dtbo  /o2.dtbo\ndevicetree-overlay o3.dtbo\n"),
        ("vars.conf", "title Vars\nlinux /v\noptions $kernelopts $tuned_params\n"),
        ("notitle.conf", "linux /n\n"),
    ];
    let mut names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    names.push("README".into());
    names.push("loader.conf.bak".into());
    let map: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(n, t)| (format!("/loader/entries/{n}"), t.as_bytes().to_vec()))
        .collect();
    let mut read = |p: &str| map.get(p).cloned().ok_or("not found");
    let cfg = load(&names, &mut read).unwrap();
    let labels: Vec<&str> = cfg.entries.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(labels, ["vars", "notitle", "arm"]);
    let arm = &cfg.entries[2];
    assert_eq!(
        arm.kernel.as_deref(),
        Some("/k"),
        "paths are from the partition root"
    );
    assert_eq!(arm.initrds, ["/a", "/b"]);
    assert_eq!(arm.fdt.as_deref(), Some("/d.dtb"));
    assert_eq!(arm.fdtoverlays, ["/o1.dtbo", "/o2.dtbo", "/o3.dtbo"]);
    assert_eq!(cfg.entries[1].title(), "notitle", "no title: the file name");
    let notes: Vec<String> = cfg.notes.iter().map(|n| n.to_string()).collect();
    let has = |s: &str| notes.iter().any(|n| n.contains(s));
    assert!(
        has("/loader/entries/x86.conf: line 0: entry for architecture 'x64', not aa64: skipped"),
        "{notes:#?}"
    );
    assert!(
        has("/loader/entries/efi.conf: line 2: unknown key 'efi' ignored"),
        "{notes:#?}"
    );
    assert!(
        has("/loader/entries/efi.conf: line 0: no 'linux' line: entry skipped"),
        "{notes:#?}"
    );
    assert!(has("/loader/entries/vars.conf: line 0: options '$kernelopts $tuned_params' are only grub variables"), "{notes:#?}");
    assert_eq!(notes.len(), 4, "{notes:#?}");
}

#[test]
fn same_titles_get_their_version() {
    let a = parse_entry("a.conf", b"title Fedora\nversion 1\nlinux /a\n").unwrap();
    let b = parse_entry("b.conf", b"title Fedora\nversion 2\nlinux /b\n").unwrap();
    let c = parse_entry("c.conf", b"title Other\nversion 3\nlinux /c\n").unwrap();
    let cfg = to_config(vec![a, b, c]);
    let titles: Vec<&str> = cfg.entries.iter().map(|e| e.title()).collect();
    assert_eq!(titles, ["Other", "Fedora (2)", "Fedora (1)"]);
}

#[test]
fn bad_input_is_a_clear_error_or_note() {
    let long = format!("title x\noptions {}\n", "a".repeat(MAX_LINE_LEN));
    assert_eq!(
        parse_entry("l.conf", long.as_bytes()),
        Err(Error::LineTooLong {
            line: 2,
            len: MAX_LINE_LEN + 8,
            max: MAX_LINE_LEN
        })
    );
    assert_eq!(
        parse_entry("u.conf", b"title \xc3\x28\n"),
        Err(Error::InvalidUtf8 { offset: 6, line: 1 })
    );
    // Through `load`: a bad file is skipped with a note naming it; the rest boots.
    let names: Vec<String> = ["ok.conf", "bad.conf", "gone.conf"]
        .map(String::from)
        .to_vec();
    let mut read = |p: &str| match p {
        "/loader/entries/ok.conf" => Ok(b"linux /ok\n".to_vec()),
        "/loader/entries/bad.conf" => Ok(b"linux /\xff\n".to_vec()),
        _ => Err("I/O error reading sector 9"),
    };
    let cfg = load(&names, &mut read).unwrap();
    assert_eq!(cfg.entries.len(), 1);
    let notes: Vec<String> = cfg.notes.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        notes,
        [
            "/loader/entries/bad.conf: line 0: config: invalid UTF-8 at byte offset 7 (line 1); entry skipped",
            "/loader/entries/gone.conf: line 0: I/O error reading sector 9; entry skipped",
        ]
    );
    // Too many entry files: refused.
    let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("{i}.conf")).collect();
    let mut read = |_: &str| Ok::<_, &str>(b"linux /k\n".to_vec());
    assert_eq!(
        load(&many, &mut read),
        Err(Error::TooManyEntries {
            line: 0,
            max: MAX_ENTRIES
        })
    );
    let just: Vec<String> = (0..MAX_ENTRIES).map(|i| format!("{i}.conf")).collect();
    assert_eq!(load(&just, &mut read).unwrap().entries.len(), MAX_ENTRIES);
    assert_eq!(bls::ENTRIES_DIR, "/loader/entries");
}

proptest! {
    #[test]
    fn vercmp_is_an_order(a in "[0-9a-zA-Z.~^_+-]{0,12}", b in "[0-9a-zA-Z.~^_+-]{0,12}", c in "[0-9a-zA-Z.~^-]{0,12}") {
        prop_assert_eq!(vercmp(&a, &a), Equal);
        prop_assert_eq!(vercmp(&a, &b), vercmp(&b, &a).reverse());
        if vercmp(&a, &b) != Greater && vercmp(&b, &c) != Greater {
            prop_assert_ne!(vercmp(&a, &c), Greater, "{:?} {:?} {:?}", a, b, c);
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        if let Ok(e) = parse_entry("g.conf", &bytes) {
            let cfg = to_config(vec![e.clone(), e]);
            prop_assert!(cfg.entries.len() <= 2);
        }
    }
}
