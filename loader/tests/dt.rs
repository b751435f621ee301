//! Device-tree tests: `DtInfo` of QEMU's own virt DTB, fixup round trips, hostile blobs.
//!
//! `data/qemu-virt.dtb` is QEMU 7.2's `-M virt -cpu cortex-a72 -m 1G -smp 2
//! -machine dumpdtb=...` output with `totalsize` cut to the end of its strings block (QEMU pads
//! the blob to 1 MiB).

use fdt::node::FdtNode;
use fdt::Fdt;
use kexboot_loader::dt::{fixup, DtInfo, Fixups, Header, FDT_HEADER_LEN};
use kexboot_loader::{Error, Range};
use proptest::prelude::*;
use vm_fdt::{FdtReserveEntry, FdtWriter};

const VIRT: &[u8] = include_bytes!("data/qemu-virt.dtb");

type Flat = Vec<(String, Vec<(String, Vec<u8>)>)>;

/// Every node as (path, properties in order).
fn flatten(dtb: &[u8]) -> Flat {
    fn walk(n: FdtNode<'_, '_>, path: String, out: &mut Flat) {
        let props = n
            .properties()
            .map(|p| (p.name.to_string(), p.value.to_vec()))
            .collect();
        out.push((path.clone(), props));
        for c in n.children() {
            walk(c, format!("{path}/{}", c.name), out);
        }
    }
    let fdt = Fdt::new(dtb).unwrap();
    let mut out = Vec::new();
    walk(fdt.find_node("/").unwrap(), String::new(), &mut out);
    out
}

fn rsv(dtb: &[u8]) -> Vec<(u64, u64)> {
    let fdt = Fdt::new(dtb).unwrap();
    fdt.memory_reservations()
        .map(|r| (r.address() as u64, r.size() as u64))
        .collect()
}

fn prop<'a>(flat: &'a Flat, path: &str, name: &str) -> Option<&'a [u8]> {
    let (_, props) = flat.iter().find(|(p, _)| p == path)?;
    props
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

#[test]
fn qemu_virt_info() {
    let info = DtInfo::parse(VIRT).unwrap();
    assert_eq!(info.memory, [Range::new(0x4000_0000, 0x8000_0000).unwrap()]);
    let (compat, base) = info.stdout.clone().unwrap();
    assert_eq!((compat.as_str(), base), ("arm,pl011", 0x900_0000));
    assert_eq!(info.virtio_mmio.len(), 32);
    assert!(info
        .virtio_mmio
        .iter()
        .all(|r| r.len() == 0x200 && (0xa00_0000..0xa00_4000).contains(&r.start())));
    assert!(matches!(
        info.psci_method.as_deref(),
        Some("hvc") | Some("smc")
    ));
    assert_eq!(info.cpus, 2);
    assert!(info
        .cpu_nodes
        .iter()
        .all(|c| c.enable_method.as_deref() == Some("psci")));
    assert_eq!(info.cpu_nodes[1].reg, 1);
    assert!(info.reserved.is_empty());
    assert_eq!(info.total_size, VIRT.len());
}

#[test]
fn round_trip_with_fixups() {
    let extra = [Range::new(0x4800_0000, 0x4800_1000).unwrap()];
    let seed = [7u8; 32];
    let f = Fixups {
        bootargs: Some("console=ttyAMA0 root=/dev/vda2"),
        initrd: Some(Range::new(0x4400_0000, 0x4470_0123).unwrap()),
        kaslr_seed: Some(0x1122_3344_5566_7788),
        rng_seed: Some(&seed),
        extra_reserved: &extra,
        reserved_nodes: &[],
        cpu_props: &[],
    };
    let out = fixup(VIRT, &f).unwrap();
    let (a, b) = (flatten(VIRT), flatten(&out));
    // Every original node is there, in order, with every property equal (and in order), except
    // the ones /chosen changes.
    let changed = [
        "bootargs",
        "linux,initrd-start",
        "linux,initrd-end",
        "kaslr-seed",
        "rng-seed",
    ];
    assert_eq!(
        a.iter().map(|n| &n.0).collect::<Vec<_>>(),
        b.iter().map(|n| &n.0).collect::<Vec<_>>()
    );
    for ((path, pa), (_, pb)) in a.iter().zip(&b) {
        let keep = |p: &&(String, Vec<u8>)| path != "/chosen" || !changed.contains(&p.0.as_str());
        let pb_kept: Vec<_> = pb.iter().filter(keep).collect();
        assert_eq!(
            pa.iter().filter(keep).collect::<Vec<_>>(),
            pb_kept,
            "node {path}"
        );
    }
    assert_eq!(
        prop(&b, "/chosen", "bootargs"),
        Some(&b"console=ttyAMA0 root=/dev/vda2\0"[..])
    );
    assert_eq!(
        prop(&b, "/chosen", "linux,initrd-start"),
        Some(&0x4400_0000u64.to_be_bytes()[..])
    );
    assert_eq!(
        prop(&b, "/chosen", "linux,initrd-end"),
        Some(&0x4470_0123u64.to_be_bytes()[..])
    );
    assert_eq!(
        prop(&b, "/chosen", "kaslr-seed"),
        Some(&0x1122_3344_5566_7788u64.to_be_bytes()[..])
    );
    assert_eq!(prop(&b, "/chosen", "rng-seed"), Some(&seed[..]));
    assert_eq!(rsv(&out), [(0x4800_0000, 0x1000)]);

    // What DtInfo reads back agrees.
    let info = DtInfo::parse(&out).unwrap();
    assert_eq!(
        info.bootargs.as_deref(),
        Some("console=ttyAMA0 root=/dev/vda2")
    );
    assert_eq!(info.initrd, f.initrd);
    assert!(info.has_kaslr_seed && info.has_rng_seed);
    assert_eq!(info.reserved, extra);

    // A second fixup without initrd removes it; the other /chosen properties stay as found.
    let again = fixup(&out, &Fixups::default()).unwrap();
    let c = flatten(&again);
    assert_eq!(prop(&c, "/chosen", "linux,initrd-start"), None);
    assert_eq!(prop(&c, "/chosen", "linux,initrd-end"), None);
    assert_eq!(
        prop(&c, "/chosen", "bootargs"),
        prop(&b, "/chosen", "bootargs")
    );
    assert_eq!(prop(&c, "/chosen", "rng-seed"), Some(&seed[..]));
    assert_eq!(rsv(&again), [(0x4800_0000, 0x1000)]);
}

/// A small tree with memreserves, reserved-memory, an alias stdout, no /chosen, 1-cell sizes.
fn custom_dtb(with_chosen: bool) -> Vec<u8> {
    let rsv = [
        FdtReserveEntry::new(0x8000_0000, 0x1000).unwrap(),
        FdtReserveEntry::new(0x8010_0000, 0x2000).unwrap(),
    ];
    let mut w = FdtWriter::new_with_mem_reserv(&rsv).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_string("model", "test").unwrap();
    let a = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "/soc/serial@1c28000").unwrap();
    w.end_node(a).unwrap();
    if with_chosen {
        let c = w.begin_node("chosen").unwrap();
        w.property_string("stdout-path", "serial0:115200n8")
            .unwrap();
        w.property_string("bootargs", "old").unwrap();
        w.property_u32("linux,initrd-start", 0x8200_0000).unwrap();
        w.property_u32("linux,initrd-end", 0x8210_0000).unwrap();
        w.end_node(c).unwrap();
    }
    for (name, base, size) in [
        ("memory@80000000", 0x8000_0000u32, 0x2000_0000u32),
        ("memory@c0000000", 0xc000_0000, 0x1000_0000),
    ] {
        let m = w.begin_node(name).unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u32("reg", &[base, size]).unwrap();
        w.end_node(m).unwrap();
    }
    let rm = w.begin_node("reserved-memory").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    let r = w.begin_node("ramoops@9ff00000").unwrap();
    w.property_string("compatible", "ramoops").unwrap();
    w.property_array_u64("reg", &[0x9ff0_0000, 0x10_0000])
        .unwrap();
    w.end_node(r).unwrap();
    let tz = w.begin_node("secure@9fe00000").unwrap();
    w.property_array_u64("reg", &[0x9fe0_0000, 0x10_0000])
        .unwrap();
    w.property_null("no-map").unwrap();
    w.end_node(tz).unwrap();
    let d = w.begin_node("cma").unwrap();
    w.property_array_u64("size", &[0x400_0000]).unwrap();
    w.property_null("reusable").unwrap();
    w.end_node(d).unwrap();
    w.end_node(rm).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for i in 0..4u32 {
        let c = w.begin_node(&format!("cpu@{i}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_u32("reg", i).unwrap();
        w.property_string("enable-method", "spin-table").unwrap();
        w.property_u64("cpu-release-addr", 0x8000_00f8).unwrap();
        w.end_node(c).unwrap();
    }
    w.end_node(cpus).unwrap();
    let soc = w.begin_node("soc").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let s = w.begin_node("serial@1c28000").unwrap();
    w.property_string_list(
        "compatible",
        vec!["snps,dw-apb-uart".into(), "ns16550a".into()],
    )
    .unwrap();
    w.property_array_u32("reg", &[0x1c2_8000, 0x400]).unwrap();
    w.property_phandle(5).unwrap();
    w.end_node(s).unwrap();
    let v = w.begin_node("virtio@1000").unwrap();
    w.property_string("compatible", "virtio,mmio").unwrap();
    w.property_array_u32("reg", &[0x1000, 0x200]).unwrap();
    w.end_node(v).unwrap();
    w.end_node(soc).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn custom_tree_info() {
    let info = DtInfo::parse(&custom_dtb(true)).unwrap();
    let r = |s, e| Range::new(s, e).unwrap();
    assert_eq!(
        info.memory,
        [r(0x8000_0000, 0xa000_0000), r(0xc000_0000, 0xd000_0000)]
    );
    // Both memreserves and the fixed reserved-memory children; the dynamic `cma` has no
    // address.
    assert_eq!(
        info.reserved,
        [
            r(0x8000_0000, 0x8000_1000),
            r(0x8010_0000, 0x8010_2000),
            r(0x9ff0_0000, 0xa000_0000),
            r(0x9fe0_0000, 0x9ff0_0000)
        ]
    );
    // Only the child marked `no-map` is firmware-owned, never to be mapped.
    assert_eq!(info.no_map, [r(0x9fe0_0000, 0x9ff0_0000)]);
    // ... nor read: the RAM kexboot may touch has a hole there (and only there).
    assert_eq!(
        info.mapped_ram(),
        [
            r(0x8000_0000, 0x9fe0_0000),
            r(0x9ff0_0000, 0xa000_0000),
            r(0xc000_0000, 0xd000_0000)
        ]
    );
    assert_eq!(
        info.stdout,
        Some(("snps,dw-apb-uart".to_string(), 0x1c2_8000))
    );
    assert_eq!(info.virtio_mmio, [r(0x1000, 0x1200)]);
    assert_eq!(info.cpus, 4);
    assert_eq!(info.cpu_nodes[3].release_addr, Some(0x8000_00f8));
    assert_eq!(
        info.cpu_nodes[3].enable_method.as_deref(),
        Some("spin-table")
    );
    assert_eq!(info.psci_method, None);
    assert_eq!(info.bootargs.as_deref(), Some("old"));
    assert_eq!(info.initrd, Some(r(0x8200_0000, 0x8210_0000)));
}

#[test]
fn fixup_creates_chosen_and_keeps_memreserve() {
    let dtb = custom_dtb(false);
    let extra = [Range::new(0x8000_0800, 0x8000_3000).unwrap()]; // overlaps the first entry
    let f = Fixups {
        bootargs: Some("quiet"),
        initrd: None,
        extra_reserved: &extra,
        reserved_nodes: &[],
        cpu_props: &[],
        ..Fixups::default()
    };
    let out = fixup(&dtb, &f).unwrap();
    let b = flatten(&out);
    assert_eq!(b.last().unwrap().0, "/chosen");
    assert_eq!(prop(&b, "/chosen", "bootargs"), Some(&b"quiet\0"[..]));
    assert_eq!(prop(&b, "/chosen", "linux,initrd-start"), None);
    // The tree's own reservations pass through as they were; kexboot's are added after them
    // (overlaps are allowed: Linux reserves the union).
    assert_eq!(
        rsv(&out),
        [
            (0x8000_0000, 0x1000),
            (0x8010_0000, 0x2000),
            (0x8000_0800, 0x2800)
        ]
    );
    // Asking again adds nothing twice.
    assert_eq!(rsv(&fixup(&out, &f).unwrap()), rsv(&out));
    let a = flatten(&dtb);
    assert_eq!(&b[..b.len() - 1], &a[..]);
    assert_eq!(
        prop(&b, "/soc/serial@1c28000", "phandle"),
        Some(&5u32.to_be_bytes()[..])
    );

    // Replacing in place keeps the property's position in /chosen.
    let dtb = custom_dtb(true);
    let out = fixup(
        &dtb,
        &Fixups {
            bootargs: Some("new"),
            initrd: Some(Range::new(1, 2).unwrap()),
            ..Fixups::default()
        },
    )
    .unwrap();
    let names: Vec<_> = flatten(&out)
        .into_iter()
        .find(|n| n.0 == "/chosen")
        .unwrap()
        .1
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(
        names,
        [
            "stdout-path",
            "bootargs",
            "linux,initrd-start",
            "linux,initrd-end"
        ]
    );
}

#[test]
fn bad_trees() {
    assert!(matches!(DtInfo::parse(&[]), Err(Error::BadDtb { .. })));
    assert!(matches!(
        DtInfo::parse(&VIRT[..VIRT.len() - 1]),
        Err(Error::BadDtb { .. })
    ));
    // No memory node.
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let c = w.begin_node("chosen").unwrap();
    w.end_node(c).unwrap();
    w.end_node(root).unwrap();
    let dtb = w.finish().unwrap();
    assert_eq!(DtInfo::parse(&dtb), Err(Error::NoMemoryNode));
    // The lenient read still gives the firmware what it needs to say so on the console.
    assert!(DtInfo::read(&dtb).unwrap().memory.is_empty());
    assert!(fixup(&dtb, &Fixups::default()).is_ok());
    // A bootargs with NUL cannot be written.
    assert!(matches!(
        fixup(
            &dtb,
            &Fixups {
                bootargs: Some("a\0b"),
                ..Fixups::default()
            }
        ),
        Err(Error::DtWrite { .. })
    ));
    // Output beyond 2 MiB is refused.
    let big = vec![0u8; 3 << 20];
    assert!(matches!(
        fixup(
            &dtb,
            &Fixups {
                rng_seed: Some(&big),
                ..Fixups::default()
            }
        ),
        Err(Error::DtbTooLarge { .. })
    ));
}

/// Self-referencing aliases must not recurse.
#[test]
fn alias_loop_terminates() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let a = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "serial0").unwrap();
    w.end_node(a).unwrap();
    let c = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "serial0").unwrap();
    w.end_node(c).unwrap();
    let m = w.begin_node("memory").unwrap();
    w.property_array_u32("reg", &[0, 0x4000_0000, 0x1000]) // default cells: 2 + 1
        .unwrap();
    w.end_node(m).unwrap();
    w.end_node(root).unwrap();
    let info = DtInfo::parse(&w.finish().unwrap()).unwrap();
    assert_eq!(info.stdout, None);
    assert_eq!(info.memory, [Range::new(0x4000_0000, 0x4000_1000).unwrap()]);
}

/// NOP tokens (left by libfdt edits) are accepted and dropped.
#[test]
fn nops_are_dropped() {
    let mut dtb = custom_dtb(true);
    // Turn the `model` property (12-byte header + "test\0" padded to 8) into NOPs.
    let st = u32::from_be_bytes(dtb[8..12].try_into().unwrap()) as usize;
    let pos = (st..dtb.len())
        .step_by(4)
        .find(|&p| dtb[p..p + 4] == [0, 0, 0, 3] && dtb[p + 12..p + 17] == *b"test\0")
        .unwrap();
    for p in (pos..pos + 20).step_by(4) {
        dtb[p..p + 4].copy_from_slice(&4u32.to_be_bytes());
    }
    let info = DtInfo::parse(&dtb).unwrap();
    assert_eq!(info.cpus, 4);
    let out = fixup(&dtb, &Fixups::default()).unwrap();
    assert_eq!(prop(&flatten(&out), "", "model"), None);
    assert_eq!(flatten(&out).len(), flatten(&custom_dtb(true)).len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("DT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 40 {
            // A plausible header so the walk gets going.
            bytes[..4].copy_from_slice(&0xd00d_feedu32.to_be_bytes());
            let n = bytes.len() as u32;
            bytes[4..8].copy_from_slice(&n.to_be_bytes());
            bytes[20..24].copy_from_slice(&17u32.to_be_bytes());
            bytes[24..28].copy_from_slice(&16u32.to_be_bytes());
        }
        let _ = DtInfo::parse(&bytes);
        let _ = fixup(&bytes, &Fixups::default());
    }

    #[test]
    fn mutated_virt_never_panics(edits in proptest::collection::vec((0usize..VIRT.len(), any::<u8>()), 1..4)) {
        let mut d = VIRT.to_vec();
        for (i, v) in edits {
            d[i] = v;
        }
        if let Ok(info) = DtInfo::parse(&d) {
            prop_assert!(!info.memory.is_empty());
        }
        let _ = fixup(&d, &Fixups { bootargs: Some("x"), ..Fixups::default() });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("DT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)))]

    /// Rewrites whole aligned words with token-like or size-like values.
    #[test]
    fn word_mutated_virt_never_panics(edits in proptest::collection::vec(
        (0usize..VIRT.len() / 4, prop_oneof![0u32..12, any::<u32>(), 0xfff0u32..0x1_0010]), 1..3)) {
        let mut d = VIRT.to_vec();
        for (w, v) in edits {
            d[w * 4..w * 4 + 4].copy_from_slice(&v.to_be_bytes());
        }
        let _ = DtInfo::parse(&d);
        let _ = fixup(&d, &Fixups { initrd: Some(Range::new(0, 1).unwrap()), ..Fixups::default() });
    }
}

#[test]
fn reserved_nodes_are_added_then_replaced() {
    use kexboot_loader::dt::{ReservedNode, HANDOFF_BOOT_ID, HANDOFF_COMPATIBLE};
    let virt = include_bytes!("data/qemu-virt.dtb");
    let page = Range::new(0x7fe0_0000, 0x7fe0_1000).unwrap();
    let oops = Range::new(0x7ff0_0000, 0x8000_0000).unwrap();
    let handoff = |id| {
        ReservedNode::new("kexboot-handoff@7fe00000", page)
            .string_prop("compatible", HANDOFF_COMPATIBLE)
            .u64_prop(HANDOFF_BOOT_ID, id)
            .flag("no-map")
    };
    let ramoops = ReservedNode::new("ramoops@7ff00000", oops)
        .string_prop("compatible", "ramoops")
        .u32_prop("record-size", 0x10000);
    // QEMU's tree has no /reserved-memory: it is created.
    let nodes = [handoff(7), ramoops];
    let first = fixup(
        virt,
        &Fixups {
            reserved_nodes: &nodes,
            ..Default::default()
        },
    )
    .unwrap();
    let info = DtInfo::parse(&first).unwrap();
    assert_eq!(
        info.handoff.map(|h| (h.region, h.boot_id)),
        Some((page, Some(7)))
    );
    assert_eq!(info.ramoops, Some(oops));
    assert!(info.reserved.contains(&page) && info.reserved.contains(&oops));
    assert_eq!(info.no_map, [page]);
    // kexboot's own handoff page is `no-map` for Linux but kexboot's to map and write.
    assert!(info.mapped_ram().iter().any(|m| m.contains_range(&page)));
    // A warm boot rewrites the handoff node (new boot id) and keeps ramoops as it came.
    let again = fixup(
        &first,
        &Fixups {
            reserved_nodes: &[handoff(8)],
            ..Default::default()
        },
    )
    .unwrap();
    let info = DtInfo::parse(&again).unwrap();
    assert_eq!(info.handoff.map(|h| h.boot_id), Some(Some(8)));
    assert_eq!(info.ramoops, Some(oops));
    let handoffs = info.reserved.iter().filter(|r| **r == page).count();
    assert_eq!(
        handoffs, 1,
        "the handoff node must be replaced, not duplicated"
    );
    // Everything else of QEMU's tree is still there.
    assert_eq!(info.memory, DtInfo::parse(virt).unwrap().memory);
    assert_eq!(info.virtio_mmio.len(), 32);
}

#[test]
fn cpu_props_switch_cpus_to_spin_table() {
    use kexboot_loader::dt::CpuProps;
    let virt = include_bytes!("data/qemu-virt.dtb");
    let before = DtInfo::parse(virt).unwrap();
    assert!(before.cpu_nodes.len() >= 2, "fixture has secondaries");
    let props: Vec<CpuProps> = before
        .cpu_nodes
        .iter()
        .map(|c| CpuProps {
            reg: c.reg,
            props: vec![
                ("enable-method", b"spin-table\0".to_vec()),
                (
                    "cpu-release-addr",
                    (0x7fff_f800 + 8 * c.reg).to_be_bytes().to_vec(),
                ),
            ],
        })
        .collect();
    let out = fixup(
        virt,
        &Fixups {
            cpu_props: &props,
            ..Default::default()
        },
    )
    .unwrap();
    let after = DtInfo::parse(&out).unwrap();
    assert_eq!(after.cpu_nodes.len(), before.cpu_nodes.len());
    for c in &after.cpu_nodes {
        assert_eq!(c.enable_method.as_deref(), Some("spin-table"));
        assert_eq!(c.release_addr, Some(0x7fff_f800 + 8 * c.reg));
    }
    // Nothing else changed: memory, PSCI, virtio slots.
    assert_eq!(after.memory, before.memory);
    assert_eq!(after.psci_method, before.psci_method);
    assert_eq!(after.virtio_mmio, before.virtio_mmio);
}

/// QEMU's tree for `-M virt,secure=on -bios` (no `/psci`, no `enable-method`): what kexboot's
/// EL3 monitor finds.
const VIRT_EL3: &[u8] = include_bytes!("data/qemu-virt-el3.dtb");

#[test]
fn set_psci_adds_or_replaces_the_node() {
    use kexboot_loader::dt::{set_psci, PSCI_COMPATIBLE};
    let before = DtInfo::parse(VIRT_EL3).unwrap();
    assert_eq!(before.psci_method, None, "fixture has no /psci");
    let out = set_psci(VIRT_EL3, "smc").unwrap();
    let after = DtInfo::parse(&out).unwrap();
    assert_eq!(after.psci_method.as_deref(), Some("smc"));
    let flat = flatten(&out);
    assert_eq!(prop(&flat, "/psci", "compatible"), Some(PSCI_COMPATIBLE));
    assert_eq!(prop(&flat, "/psci", "method"), Some(&b"smc\0"[..]));
    // Everything else is as it was, in order.
    let rest: Flat = flat.into_iter().filter(|(p, _)| p != "/psci").collect();
    assert_eq!(rest, flatten(VIRT_EL3));
    assert_eq!(after.memory, before.memory);
    assert_eq!(after.cpu_nodes, before.cpu_nodes);
    // Again, and over a tree that has QEMU's own /psci: one node, the new method.
    for dtb in [&out[..], VIRT] {
        let again = set_psci(dtb, "smc").unwrap();
        let flat = flatten(&again);
        assert_eq!(flat.iter().filter(|(p, _)| p == "/psci").count(), 1);
        assert_eq!(prop(&flat, "/psci", "method"), Some(&b"smc\0"[..]));
        assert_eq!(prop(&flat, "/psci", "compatible"), Some(PSCI_COMPATIBLE));
    }
    assert!(matches!(set_psci(VIRT_EL3, ""), Err(Error::DtWrite { .. })));
    assert!(matches!(
        set_psci(VIRT_EL3, "s\0mc"),
        Err(Error::DtWrite { .. })
    ));
    assert!(set_psci(&VIRT_EL3[..100], "smc").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn set_psci_on_mutated_trees_never_panics(edits in proptest::collection::vec(
        (0usize..VIRT_EL3.len() / 4, any::<u32>()), 1..4)) {
        let mut d = VIRT_EL3.to_vec();
        for (w, v) in edits {
            d[w * 4..w * 4 + 4].copy_from_slice(&v.to_be_bytes());
        }
        if let Ok(out) = kexboot_loader::dt::set_psci(&d, "smc") {
            prop_assert!(out.len() <= 2 << 20);
        }
    }
}

/// A tree from Linux's crash path (`kexec -p`): the kdump-only `/chosen` properties do not
/// reach the next kernel (it would run confined to the crash region), the rest does.
#[test]
fn kdump_properties_are_dropped() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let c = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", "crashed").unwrap();
    w.property_array_u64("linux,usable-memory-range", &[0x4800_0000, 0x400_0000])
        .unwrap();
    w.property_array_u64("linux,elfcorehdr", &[0x4bff_f000, 0x1000])
        .unwrap();
    w.end_node(c).unwrap();
    let m = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000])
        .unwrap();
    w.end_node(m).unwrap();
    w.end_node(root).unwrap();
    let dtb = w.finish().unwrap();
    let out = fixup(&dtb, &Fixups::default()).unwrap();
    let f = flatten(&out);
    for gone in kexboot_loader::dt::KDUMP_CHOSEN {
        assert_eq!(prop(&f, "/chosen", gone), None, "{gone}");
    }
    assert_eq!(prop(&f, "/chosen", "bootargs"), Some(&b"crashed\0"[..]));
}

/// Found by the `dtb_fixup` fuzz target: with two `/chosen` nodes, `fixup` writes the initrd and
/// bootargs into the first (the one Linux and libfdt's path lookup use) and drops them from the
/// second, but `DtInfo` read the last one, so kexboot saw a different command line and initrd
/// than the kernel would. The first `/chosen` is the one that counts.
#[test]
fn first_of_two_chosen_nodes_counts() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let mem = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000])
        .unwrap();
    w.end_node(mem).unwrap();
    for args in ["first", "second"] {
        let c = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", args).unwrap();
        w.end_node(c).unwrap();
    }
    w.end_node(root).unwrap();
    let dtb = w.finish().unwrap();
    assert_eq!(
        DtInfo::read(&dtb).unwrap().bootargs.as_deref(),
        Some("first")
    );

    let initrd = Range::new(0x4800_0000, 0x4900_0000).unwrap();
    let f = Fixups {
        bootargs: Some("new"),
        initrd: Some(initrd),
        ..Fixups::default()
    };
    let info = DtInfo::read(&fixup(&dtb, &f).unwrap()).unwrap();
    assert_eq!(info.bootargs.as_deref(), Some("new"));
    assert_eq!(info.initrd, Some(initrd));
}

/// The one checked header view: magic, a `totalsize` between the header and the caller's limit.
#[test]
fn header_view_checks_magic_and_totalsize() {
    let h = Header::parse(VIRT, VIRT.len()).unwrap();
    assert_eq!(h.total_size(), VIRT.len());
    // Only the 40 header bytes are needed; the limit is the caller's.
    assert_eq!(Header::parse(&VIRT[..FDT_HEADER_LEN], 2 << 20), Ok(h));
    assert!(Header::parse(&VIRT[..FDT_HEADER_LEN - 1], 2 << 20).is_err());
    assert!(Header::parse(VIRT, VIRT.len() - 1).is_err());
    let mut bad = VIRT[..FDT_HEADER_LEN].to_vec();
    bad[0] ^= 1;
    assert!(matches!(
        Header::parse(&bad, 2 << 20),
        Err(Error::BadDtb { offset: 0, .. })
    ));
    for total in [0u32, FDT_HEADER_LEN as u32 - 1] {
        let mut small = VIRT[..FDT_HEADER_LEN].to_vec();
        small[4..8].copy_from_slice(&total.to_be_bytes());
        assert!(matches!(
            Header::parse(&small, 2 << 20),
            Err(Error::BadDtb { offset: 4, .. })
        ));
    }
    let mut small = VIRT[..FDT_HEADER_LEN].to_vec();
    small[4..8].copy_from_slice(&(FDT_HEADER_LEN as u32).to_be_bytes());
    assert_eq!(
        Header::parse(&small, 2 << 20).map(|h| h.total_size()),
        Ok(FDT_HEADER_LEN)
    );
}

/// `data/soc-bus.dts`, compiled with dtc: devices behind a bus with `ranges`.
const SOC_BUS: &[u8] = include_bytes!("data/soc-bus.dtb");

#[test]
fn bus_addresses_are_translated_through_ranges() {
    let info = DtInfo::parse(SOC_BUS).unwrap();
    assert_eq!(info.compatible, ["raspberrypi,3-model-b", "brcm,bcm2837"]);
    // stdout-path names the mini UART by alias; its bus address 0x7e215040 is 0x3f215040.
    assert_eq!(
        info.stdout,
        Some(("brcm,bcm2835-aux-uart".to_string(), 0x3f21_5040))
    );
    let at = |c: &str| info.device(c).map(|d| (d.reg.start(), d.reg.len()));
    assert_eq!(at("brcm,bcm2835-sdhost"), Some((0x3f20_2000, 0x100)));
    assert_eq!(at("arm,pl011"), Some((0x3f20_1000, 0x200)));
    // The second window maps the ARM local peripherals 1:1.
    assert_eq!(at("brcm,bcm2836-l1-intc"), Some((0x4000_0000, 0x100)));
    // Disabled nodes, I2C children (bus addresses, not memory) and addresses no window covers
    // are not devices the CPU can reach.
    assert_eq!(at("brcm,bcm2835-sdhci"), None);
    assert_eq!(at("atmel,24c32"), None);
    assert_eq!(at("test,outside-ranges"), None);
    assert_eq!(at("brcm,bcm2835-i2c"), Some((0x3f80_4000, 0x1000)));
}

#[test]
fn devices_at_the_root_keep_their_addresses() {
    let info = DtInfo::parse(VIRT).unwrap();
    assert_eq!(
        info.device("arm,pl011").map(|d| d.reg.start()),
        Some(0x0900_0000)
    );
    assert_eq!(info.stdout.as_ref().map(|s| s.1), Some(0x0900_0000));
}

/// Found by the `dt_overlay` fuzz target: a blob whose strings block overlaps its structure
/// block, with NOPs in it. Dropping the NOPs rewrote the structure block in place, and with
/// it strings that had been checked, so the `fdt` crate then panicked on a property name.
#[test]
fn overlapping_blocks_are_refused() {
    let dtb = include_bytes!("data/overlapping-blocks.dtb");
    assert!(matches!(
        DtInfo::read(dtb),
        Err(Error::BadDtb {
            what: "strings block overlaps the structure block",
            ..
        })
    ));
    assert!(fixup(dtb, &Fixups::default()).is_err());
}
