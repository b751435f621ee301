//! Device trees as real firmware passes them (`__symbols__`, phandles, `/memreserve/`) through
//! `fixup`, and overlays through `apply_overlay`, checked node by node and, where `fdtoverlay`
//! (Debian `device-tree-compiler`) is installed, against libfdt's own result.

use std::collections::BTreeMap;

use fdt::node::FdtNode;
use fdt::Fdt;
use kexboot_loader::dt::{apply_overlay, fixup, DtInfo, Fixups, OverlayError};
use kexboot_loader::{Error, Range};

const BASE: &[u8] = include_bytes!("data/overlay/base.dtb");
const OVERLAY: &[u8] = include_bytes!("data/overlay/overlay.dtbo");
const BAD_LABEL: &[u8] = include_bytes!("data/overlay/bad-label.dtbo");
const BAD_PATH: &[u8] = include_bytes!("data/overlay/bad-path.dtbo");
const BAD_FIXUP_STRING: &[u8] = include_bytes!("data/overlay/bad-fixup-string.dtbo");
const BAD_FIXUP_OFFSET: &[u8] = include_bytes!("data/overlay/bad-fixup-offset.dtbo");
const BAD_LOCAL_FIXUP: &[u8] = include_bytes!("data/overlay/bad-local-fixup.dtbo");

/// Path -> (property -> value), order ignored (libfdt and kexboot order merged properties
/// differently; the kernel does not care).
type Tree = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

fn tree(dtb: &[u8]) -> Tree {
    fn walk(n: FdtNode<'_, '_>, path: String, out: &mut Tree) {
        let props = n
            .properties()
            .map(|p| (p.name.to_string(), p.value.to_vec()))
            .collect();
        for c in n.children() {
            walk(c, format!("{path}/{}", c.name), out);
        }
        out.insert(if path.is_empty() { "/".into() } else { path }, props);
    }
    let fdt = Fdt::new(dtb).unwrap();
    let mut out = Tree::new();
    walk(fdt.find_node("/").unwrap(), String::new(), &mut out);
    out
}

fn rsv(dtb: &[u8]) -> Vec<(u64, u64)> {
    Fdt::new(dtb)
        .unwrap()
        .memory_reservations()
        .map(|r| (r.address() as u64, r.size() as u64))
        .collect()
}

fn get<'a>(t: &'a Tree, path: &str, prop: &str) -> &'a [u8] {
    t.get(path)
        .and_then(|p| p.get(prop))
        .unwrap_or_else(|| panic!("{path}:{prop} missing"))
}

fn u32s(v: &[u8]) -> Vec<u32> {
    v.chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

/// The old writer refused `__symbols__` (vm-fdt rejects node names not starting with a
/// letter); now every node, property and reservation passes through, only `/chosen` changes.
#[test]
fn fixup_keeps_symbols_phandles_and_memreserve() {
    let merged = apply_overlay(BASE, OVERLAY).unwrap();
    for dtb in [BASE, &merged[..]] {
        let initrd = Range::new(0x100_0000, 0x200_0000).unwrap();
        let out = fixup(
            dtb,
            &Fixups {
                bootargs: Some("console=ttyS1"),
                initrd: Some(initrd),
                ..Fixups::default()
            },
        )
        .unwrap();
        let (mut a, mut b) = (tree(dtb), tree(&out));
        assert!(b.contains_key("/__symbols__"));
        let (ca, cb) = (a.remove("/chosen").unwrap(), b.remove("/chosen").unwrap());
        assert_eq!(a, b, "only /chosen changes");
        assert_eq!(cb["bootargs"], b"console=ttyS1\0");
        assert_eq!(ca.get("overlay-applied"), cb.get("overlay-applied"));
        assert_eq!(rsv(&out), rsv(dtb));
        assert_eq!(DtInfo::parse(&out).unwrap().initrd, Some(initrd));
    }
}

#[test]
fn overlay_applies_as_libfdt_does() {
    let out = apply_overlay(BASE, OVERLAY).unwrap();
    let t = tree(&out);
    let base = tree(BASE);
    let i2c = "/soc/i2c@3f804000";
    assert_eq!(get(&t, i2c, "status"), b"okay\0");
    assert_eq!(u32s(get(&t, i2c, "clock-frequency")), [100_000]);
    assert_eq!(get(&t, "/chosen", "overlay-applied"), b"yes\0");
    assert_eq!(get(&t, "/chosen", "bootargs"), b"console=ttyAMA0\0");
    assert_eq!(get(&t, "/soc/serial@3f201000", "status"), b"disabled\0");
    // The overlay's phandles are renumbered above the base's largest (5) ...
    let clk = u32s(get(&t, &format!("{i2c}/clock-gen@50"), "phandle"))[0];
    let rtc = format!("{i2c}/rtc@68");
    assert!(clk > 5 && u32s(get(&t, &rtc, "phandle"))[0] > 5);
    // ... and references inside the overlay follow (__local_fixups__),
    assert_eq!(u32s(get(&t, &rtc, "clocks")), [clk]);
    // references to the base go through its __symbols__ (__fixups__),
    let gpio = u32s(get(&base, "/soc/gpio@3f200000", "phandle"))[0];
    assert_eq!(u32s(get(&t, &rtc, "reset-gpios")), [gpio, 4, 0, gpio, 5, 0]);
    // and the overlay's labels join the base's, at the nodes' new paths.
    assert_eq!(
        get(&t, "/__symbols__", "rtc"),
        format!("{rtc}\0").as_bytes()
    );
    assert_eq!(get(&t, "/__symbols__", "uart0"), b"/soc/serial@3f201000\0");
    assert_eq!(rsv(&out), rsv(BASE));
    // Nothing of the overlay's own bookkeeping reaches the tree.
    assert!(!t
        .keys()
        .any(|k| k.contains("fragment") || k.contains("fixups")));
    // Every base node is still there.
    assert!(base.keys().all(|k| t.contains_key(k)));

    // libfdt's result, where its tool is installed.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/overlay");
    let libfdt = std::process::Command::new("fdtoverlay")
        .args(["-i", "base.dtb", "-o", "/dev/stdout", "overlay.dtbo"])
        .current_dir(dir)
        .output();
    match libfdt {
        Ok(o) if o.status.success() => assert_eq!(t, tree(&o.stdout), "differs from fdtoverlay"),
        _ => eprintln!("fdtoverlay not installed: checked node by node only"),
    }
}

#[test]
fn bad_overlays_are_typed_errors_and_leave_the_base() {
    let before = BASE.to_vec();
    let err = |o: &[u8]| match apply_overlay(BASE, o) {
        Err(Error::Overlay(e)) => {
            assert!(!e.to_string().is_empty());
            e
        }
        other => panic!("expected an overlay error, got {other:?}"),
    };
    assert_eq!(
        err(BAD_LABEL),
        OverlayError::UnresolvedLabel {
            label: "spi0".into()
        }
    );
    assert_eq!(
        err(BAD_PATH),
        OverlayError::TargetNotFound {
            target: "/soc/spi@3f204000".into()
        }
    );
    let mut bad_magic = OVERLAY.to_vec();
    bad_magic[0] ^= 0xff;
    assert!(matches!(
        err(&bad_magic),
        OverlayError::Blob { offset: 0, .. }
    ));
    assert!(matches!(err(&OVERLAY[..100]), OverlayError::Blob { .. }));
    // A base compiled without `-@` has no __symbols__: every label is unresolved.
    let plain = fixup_strip_symbols(BASE);
    assert!(matches!(
        apply_overlay(&plain, OVERLAY),
        Err(Error::Overlay(OverlayError::UnresolvedLabel { .. }))
    ));
    assert_eq!(BASE, &before[..]);
    // The base itself must be a tree.
    assert!(matches!(
        apply_overlay(&BASE[..64], OVERLAY),
        Err(Error::BadDtb { .. })
    ));
    assert!(matches!(
        err(BAD_FIXUP_STRING),
        OverlayError::BadFixup {
            what: "not path:property:offset",
            ..
        }
    ));
    assert!(matches!(
        err(BAD_FIXUP_OFFSET),
        OverlayError::BadFixup {
            what: "offset past the property's end",
            ..
        }
    ));
    assert_eq!(
        err(BAD_LOCAL_FIXUP),
        OverlayError::BadLocalFixup {
            prop: "ref".into(),
            offset: 8
        }
    );
}

/// `BASE` with `/__symbols__` renamed out of reach (same length, so the blob stays valid).
fn fixup_strip_symbols(dtb: &[u8]) -> Vec<u8> {
    let mut b = dtb.to_vec();
    let at = b.windows(12).position(|w| w == b"__symbols__\0").unwrap();
    b[at..at + 11].copy_from_slice(b"xxsymbolsxx");
    b
}

/// Found by the `dtb_fixup` fuzz target: the tree model's `child("chosen")` also matches
/// `chosen@9020000`, so a `/chosen` after a `chosen@...` sibling was taken for a duplicate and
/// dropped with its `stdout-path`. Siblings are told apart by their exact names.
#[test]
fn unit_address_sibling_does_not_hide_a_node() {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let a = w.begin_node("chosen@9020000").unwrap();
    w.property_string("compatible", "qemu,fw-cfg-mmio").unwrap();
    w.end_node(a).unwrap();
    let c = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", "keep").unwrap();
    w.end_node(c).unwrap();
    w.end_node(root).unwrap();
    let dtb = w.finish().unwrap();
    let out = fixup(&dtb, &Fixups::default()).unwrap();
    assert_eq!(tree(&out), tree(&dtb));
}

/// A named tree gets the firmware's memory: its `/memory` replaced by the firmware tree's
/// (the file describes the board's kind, the firmware this board), as U-Boot does.
#[test]
fn named_tree_gets_the_firmware_memory() {
    use kexboot_loader::dt::{keep_firmware_memory, DtInfo};
    use kexboot_loader::Range;
    let firmware = include_bytes!("data/soc-bus-960m.dtb");
    let named = include_bytes!("data/soc-bus.dtb");
    let mem = |d: &[u8]| DtInfo::parse(d).unwrap().memory;
    assert_eq!(mem(named), [Range::new(0, 0x4000_0000).unwrap()]);
    let out = keep_firmware_memory(firmware, named).unwrap();
    assert_eq!(mem(&out), [Range::new(0, 0x3c00_0000).unwrap()]);
    // Everything else is the named tree's.
    assert_eq!(
        DtInfo::parse(&out).unwrap().devices,
        DtInfo::parse(named).unwrap().devices
    );
}
