//! Device tree fixups (`fixup`, `set_psci`): the output fits the 2 MiB the boot protocol allows,
//! re-parses (with kexboot's checked reader and with the `fdt` crate), carries every property
//! just set, and keeps what the fixup did not touch (memory, CPUs, virtio, PSCI, console).
//! Input: the DTB, then a trailer (its length in the last byte) choosing the fixups.
#![no_main]

use arbitrary::{Result, Unstructured};
use kexboot_fuzz::{has_duplicate_siblings, split_trailer};
use kexboot_loader::dt::{fixup, set_psci, CpuProps, DtInfo, Fixups, ReservedNode};
use kexboot_loader::{Range, MAX_DTB_SIZE};
use libfuzzer_sys::fuzz_target;

const NODE_NAMES: &[&str] = &["ramoops@7ff00000", "kexboot-handoff@7fe00000", "x", "a@1"];
const PROP_NAMES: &[&str] = &["compatible", "no-map", "record-size", "kexboot,boot-id"];
const CPU_PROPS: &[&str] = &["enable-method", "cpu-release-addr"];

fn range(u: &mut Unstructured) -> Result<Range> {
    let (a, b): (u64, u64) = (u.arbitrary()?, u.arbitrary()?);
    Ok(Range::new(a.min(b), a.max(b)).unwrap())
}

fn props(
    u: &mut Unstructured,
    names: &'static [&'static str],
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let n = u.int_in_range(0..=2)?;
    (0..n)
        .map(|_| Ok((*u.choose(names)?, u.arbitrary::<Vec<u8>>()?)))
        .collect()
}

/// Ranges covered by the union of `set` (exact, touching ones merged).
fn covered(r: &Range, set: &[Range]) -> bool {
    let mut v: Vec<Range> = set.to_vec();
    v.sort_by_key(|r| r.start());
    let mut at = r.start();
    for s in v {
        if s.start() <= at && s.end() > at {
            at = s.end();
        }
    }
    at >= r.end()
}

fn unchanged(before: &DtInfo, after: &DtInfo) {
    assert_eq!(before.memory, after.memory);
    assert_eq!(before.cpus, after.cpus);
    assert_eq!(before.virtio_mmio, after.virtio_mmio);
    assert_eq!(before.stdout, after.stdout);
    for r in before.reserved.iter().filter(|r| !r.is_empty()) {
        assert!(covered(r, &after.reserved), "reservation {r} lost");
    }
}

fuzz_target!(|data: &[u8]| {
    let (dtb, trailer) = split_trailer(data);
    let Ok(before) = DtInfo::read(dtb) else {
        return;
    };
    let dup = has_duplicate_siblings(dtb);
    let mut u = Unstructured::new(trailer);
    let Ok(bootargs) = u.arbitrary::<Option<String>>() else {
        return;
    };
    let initrd = u
        .arbitrary::<bool>()
        .unwrap_or(false)
        .then(|| range(&mut u).ok())
        .flatten();
    let kaslr_seed: Option<u64> = u.arbitrary().unwrap_or(None);
    let rng_seed: Option<Vec<u8>> = u.arbitrary().unwrap_or(None);
    let extra: Vec<Range> = (0..u.int_in_range(0..=2).unwrap_or(0))
        .filter_map(|_| range(&mut u).ok())
        .collect();
    let nodes: Vec<ReservedNode> = (0..u.int_in_range(0..=2).unwrap_or(0))
        .filter_map(|_| {
            let name = *u.choose(NODE_NAMES).ok()?;
            Some(ReservedNode {
                name,
                reg: range(&mut u).ok()?,
                props: props(&mut u, PROP_NAMES).ok()?,
            })
        })
        .collect();
    let cpus: Vec<CpuProps> = (0..u.int_in_range(0..=2).unwrap_or(0))
        .filter_map(|_| {
            Some(CpuProps {
                reg: u.int_in_range(0..=3).ok()?,
                props: props(&mut u, CPU_PROPS).ok()?,
            })
        })
        .collect();
    let f = Fixups {
        bootargs: bootargs.as_deref(),
        initrd,
        kaslr_seed,
        rng_seed: rng_seed.as_deref(),
        extra_reserved: &extra,
        reserved_nodes: &nodes,
        cpu_props: &cpus,
    };
    if let Ok(out) = fixup(dtb, &f) {
        assert!(out.len() as u64 <= MAX_DTB_SIZE, "{} bytes out", out.len());
        assert!(fdt::Fdt::new(&out).is_ok(), "fixed-up tree rejected by fdt");
        let after = match DtInfo::read(&out) {
            Ok(a) => a,
            // The first of two `#address-cells` is kept; it may not decode `reg`.
            Err(_) if dup => return,
            Err(e) => panic!("fixed-up tree does not re-parse: {e}"),
        };
        if !dup {
            unchanged(&before, &after);
        }
        match &bootargs {
            Some(b) => assert_eq!(after.bootargs.as_deref(), Some(b.as_str())),
            None => assert_eq!(after.bootargs, before.bootargs),
        }
        assert_eq!(after.initrd, initrd);
        assert!(kaslr_seed.is_none() || after.has_kaslr_seed);
        assert!(rng_seed.is_none() || after.has_rng_seed);
        // Of two requested nodes with one name the later replaces the earlier, as a node of
        // that name already in the tree is replaced.
        let last_of_name = nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| !nodes[i + 1..].iter().any(|m| m.name == n.name))
            .map(|(_, n)| &n.reg);
        for r in extra.iter().chain(last_of_name).filter(|r| !r.is_empty()) {
            assert!(
                covered(r, &after.reserved),
                "reservation {r} not in the output"
            );
        }
    }
    let method = u.arbitrary::<&str>().unwrap_or("smc");
    if let Ok(out) = set_psci(dtb, method) {
        assert!(out.len() as u64 <= MAX_DTB_SIZE);
        let Ok(after) = DtInfo::read(&out) else {
            assert!(dup, "set_psci output does not re-parse");
            return;
        };
        if !dup {
            unchanged(&before, &after);
        }
        assert_eq!(after.psci_method.as_deref(), Some(method));
    }
});
