use super::*;
use vm_fdt::{FdtReserveEntry, FdtWriter};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 1 << 30;
const LOAD: u64 = 0x4820_0000 + TEXT_OFFSET;
const TEXT_OFFSET: u64 = 0x8_0000;
const IMAGE_SIZE: u64 = 0x2_0000;
const DTB_AT: u64 = 0x4f00_0000;
const PEN: u64 = 0x4700_0000;

#[derive(Clone, Copy, PartialEq)]
enum Smp {
    Psci,
    Spin,
}

struct Tree {
    smp: Smp,
    initrd: Option<(u64, u64)>,
    bootargs: &'static str,
    reserve_pen: bool,
    /// Where the reserved page is.
    reserve: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            smp: Smp::Psci,
            initrd: Some((0x4a00_0000, 0x4a10_0000)),
            bootargs: "console=ttyAMA0 probe.initrd=yes",
            reserve_pen: true,
            reserve: PEN,
        }
    }
}

fn dtb(t: &Tree) -> Vec<u8> {
    let rsv = if t.reserve_pen {
        vec![FdtReserveEntry::new(t.reserve, 0x1000).unwrap()]
    } else {
        vec![]
    };
    let mut w = FdtWriter::new_with_mem_reserv(&rsv).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let n = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[RAM, RAM_SIZE]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("pl011@9000000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci-1.0").unwrap();
    w.property_string("method", "hvc").unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "/pl011@9000000").unwrap();
    w.property_string("bootargs", t.bootargs).unwrap();
    if let Some((s, e)) = t.initrd {
        w.property_u64("linux,initrd-start", s).unwrap();
        w.property_u64("linux,initrd-end", e).unwrap();
    }
    w.end_node(n).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for i in 0..4u32 {
        let n = w.begin_node(&format!("cpu@{i}")).unwrap();
        w.property_u32("reg", i).unwrap();
        match t.smp {
            Smp::Psci => w.property_string("enable-method", "psci").unwrap(),
            Smp::Spin => {
                w.property_string("enable-method", "spin-table").unwrap();
                w.property_u64("cpu-release-addr", PEN + 8 * i as u64)
                    .unwrap();
            }
        }
        w.end_node(n).unwrap();
    }
    w.end_node(cpus).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

fn header() -> Vec<u8> {
    let mut h = vec![0u8; IMAGE_HEADER_LEN];
    h[8..16].copy_from_slice(&TEXT_OFFSET.to_le_bytes());
    h[16..24].copy_from_slice(&IMAGE_SIZE.to_le_bytes());
    h[24..32].copy_from_slice(&0xau64.to_le_bytes());
    h[0x38..0x3c].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
    h
}

fn good_entry() -> EntryState {
    EntryState {
        x: [DTB_AT, 0, 0, 0],
        load: LOAD,
        current_el: 2 << 2,
        daif: DAIF_ALL,
        sctlr: 0x30c5_0830, // RES1 bits, I-cache on (allowed), M and C clear
        hcr_el2: 1 << 31,
        cptr_el2: 0x22ff, // RES1 bits only, as kexboot writes it
        cntfrq: 62_500_000,
    }
}

fn a72() -> CpuId {
    CpuId {
        mpidr: 0x8000_0000,
        pfr0: 0x1111, // EL0..EL3 AArch64, no SVE
        pfr1: 0,
    }
}

#[derive(Default)]
struct Fake {
    affinity: Vec<(Conduit, u64)>,
    /// AFFINITY_INFO answer for cpu 2 (others: OFF).
    cpu2: Option<i64>,
    mailbox: u64,
    reads: Vec<u64>,
    fp: bool,
    sve: bool,
    sme: bool,
}

impl Machine for Fake {
    fn affinity_info(&mut self, c: Conduit, target: u64) -> i64 {
        self.affinity.push((c, target));
        match (target, self.cpu2) {
            (2, Some(v)) => v,
            _ => PSCI_AFFINITY_OFF,
        }
    }
    fn read_u64(&mut self, addr: u64) -> u64 {
        self.reads.push(addr);
        self.mailbox
    }
    fn read_counter(&mut self) -> u64 {
        42
    }
    fn run_fp(&mut self) {
        self.fp = true;
    }
    fn run_sve(&mut self) {
        self.sve = true;
    }
    fn run_sme(&mut self) {
        self.sme = true;
    }
}

#[derive(Default)]
struct Lines(Vec<String>);

impl Report for Lines {
    fn line(&mut self, s: Status, name: &str, d: fmt::Arguments) {
        let mut l = String::new();
        write_line(&mut l, s, name, d).unwrap();
        self.0.push(l);
    }
}

impl Lines {
    fn failed(&self) -> Vec<&String> {
        self.0
            .iter()
            .filter(|l| l.starts_with("PROBE FAIL"))
            .collect()
    }
    fn has(&self, p: &str) -> bool {
        self.0.iter().any(|l| l.starts_with(p))
    }
}

fn probe(e: &EntryState, id: CpuId, t: &Tree, m: &mut Fake) -> (Summary, Lines) {
    let mut l = Lines::default();
    let s = run(e, &header(), id, &dtb(t), m, &mut l);
    (s, l)
}

/// Runs with one change and returns the failed lines.
fn fails(f: impl FnOnce(&mut EntryState, &mut CpuId, &mut Tree)) -> Vec<String> {
    let (mut e, mut id, mut t) = (good_entry(), a72(), Tree::default());
    f(&mut e, &mut id, &mut t);
    let (s, l) = probe(&e, id, &t, &mut Fake::default());
    let f: Vec<String> = l.failed().into_iter().cloned().collect();
    assert_eq!(s.failed as usize, f.len(), "{:#?}", l.0);
    f
}

#[test]
fn good_state_is_all_ok() {
    let mut m = Fake::default();
    let (s, l) = probe(&good_entry(), a72(), &Tree::default(), &mut m);
    assert_eq!(s.failed, 0, "{:#?}", l.0);
    assert!(s.ok >= 20, "{s:?} {:#?}", l.0);
    for want in [
        "PROBE ok el: EL2",
        "PROBE ok x1: 0x0",
        "PROBE ok image-base:",
        "PROBE ok dtb-in-ram:",
        "PROBE ok initrd: [0x4a000000, 0x4a100000)",
        "PROBE ok cpu@1: psci AFFINITY_INFO(0x1) via hvc = 1",
        "PROBE ok boot-cpu:",
        "PROBE ok hcr_el2:",
        "PROBE ok cptr_el2:",
        "PROBE ok fp:",
        "PROBE ok cntpct: CNTPCT_EL0 = 42 read at EL2",
        "PROBE info bootargs: console=ttyAMA0 probe.initrd=yes",
    ] {
        assert!(l.has(want), "{want}: {:#?}", l.0);
    }
    // Secondaries asked through the tree's conduit; cpu0 (ourselves) not asked.
    assert_eq!(
        m.affinity,
        [(Conduit::Hvc, 1), (Conduit::Hvc, 2), (Conduit::Hvc, 3)]
    );
    assert!(m.fp && !m.sve && !m.sme);
}

#[test]
fn each_broken_condition_fails_its_line() {
    type Break = Box<dyn Fn(&mut EntryState, &mut CpuId, &mut Tree)>;
    let cases: Vec<(&str, Break)> = vec![
        ("x1", Box::new(|e, _, _| e.x[1] = 0x1234)),
        ("x2", Box::new(|e, _, _| e.x[2] = 1)),
        ("x3", Box::new(|e, _, _| e.x[3] = u64::MAX)),
        ("mmu", Box::new(|e, _, _| e.sctlr |= SCTLR_M)),
        ("dcache", Box::new(|e, _, _| e.sctlr |= SCTLR_C)),
        ("daif", Box::new(|e, _, _| e.daif = 0x2c0)),
        ("el", Box::new(|e, _, _| e.current_el = 3 << 2)),
        ("el", Box::new(|e, _, _| e.current_el = 1 << 2)),
        ("cntfrq", Box::new(|e, _, _| e.cntfrq = 0)),
        ("hcr_el2", Box::new(|e, _, _| e.hcr_el2 |= HCR_E2H)),
        ("hcr_el2", Box::new(|e, _, _| e.hcr_el2 |= HCR_TGE)),
        ("cptr_el2", Box::new(|e, _, _| e.cptr_el2 |= CPTR_TFP)),
        (
            "cptr_el2",
            Box::new(|e, id, _| {
                id.pfr0 |= 1 << 32;
                e.cptr_el2 |= CPTR_TZ
            }),
        ),
        ("image-base", Box::new(|e, _, _| e.load += 0x1000)),
        ("initrd", Box::new(|_, _, t| t.initrd = None)),
        (
            "initrd-vs-image",
            Box::new(|_, _, t| t.initrd = Some((LOAD + 0x1000, LOAD + 0x10_0000))),
        ),
        (
            "initrd-in-ram",
            Box::new(|_, _, t| t.initrd = Some((0x3000_0000, 0x3010_0000))),
        ),
        (
            "initrd-vs-dtb",
            Box::new(|_, _, t| t.initrd = Some((DTB_AT - 0x1000, DTB_AT + 0x1000))),
        ),
        ("dtb-vs-image", Box::new(|e, _, _| e.x[0] = LOAD + 0x1000)),
        ("dtb-align", Box::new(|e, _, _| e.x[0] = DTB_AT + 4)),
        (
            "dtb-in-ram",
            Box::new(|e, _, _| e.x[0] = RAM + RAM_SIZE - 0x10),
        ),
        (
            "image-in-ram",
            Box::new(|e, _, _| e.load = RAM + RAM_SIZE + TEXT_OFFSET),
        ),
        (
            "image-vs-reserved",
            Box::new(|_, _, t| t.reserve = LOAD + 0x1000),
        ),
        ("boot-cpu", Box::new(|_, id, _| id.mpidr = 0x8000_0007)),
    ];
    for (want, f) in cases {
        let got = fails(f);
        assert!(
            got.iter()
                .any(|l| l.starts_with(&format!("PROBE FAIL {want}: "))),
            "{want}: {got:#?}"
        );
    }
}

#[test]
fn dtb_checks_when_x0_is_not_a_dtb() {
    let mut e = good_entry();
    e.x[0] = 0;
    let mut l = Lines::default();
    let s = run(
        &e,
        &header(),
        a72(),
        &[0u8; 64],
        &mut Fake::default(),
        &mut l,
    );
    assert!(
        l.has("PROBE FAIL x0: 0x0 does not hold a DTB: bad magic"),
        "{:#?}",
        l.0
    );
    assert_eq!(s.failed, 1);
    let mut big = dtb(&Tree::default());
    big[4..8].copy_from_slice(&(3u32 << 20).to_be_bytes());
    big.resize(3 << 20, 0);
    let mut l = Lines::default();
    run(
        &good_entry(),
        &header(),
        a72(),
        &big,
        &mut Fake::default(),
        &mut l,
    );
    assert!(l.has("PROBE FAIL dtb-size: 3145728 bytes"), "{:#?}", l.0);
    let mut l = Lines::default();
    let s = run(
        &good_entry(),
        &[0u8; 10],
        a72(),
        &[],
        &mut Fake::default(),
        &mut l,
    );
    assert!(l.has("PROBE FAIL image-header:"), "{:#?}", l.0);
    assert_eq!(s.failed, 1);
}

#[test]
fn secondaries_psci_on_is_a_failure() {
    let (e, id, t) = (good_entry(), a72(), Tree::default());
    for (v, what) in [(0, "= 0"), (2, "= 2"), (-2, "= -2")] {
        let mut m = Fake {
            cpu2: Some(v),
            ..Fake::default()
        };
        let (s, l) = probe(&e, id, &t, &mut m);
        assert_eq!(s.failed, 1, "{:#?}", l.0);
        assert!(
            l.has(&format!(
                "PROBE FAIL cpu@2: psci AFFINITY_INFO(0x2) via hvc {what}"
            )),
            "{:#?}",
            l.0
        );
    }
}

#[test]
fn spin_table_mailboxes() {
    let (e, id) = (good_entry(), a72());
    let t = Tree {
        smp: Smp::Spin,
        ..Tree::default()
    };
    let mut m = Fake::default();
    let (s, l) = probe(&e, id, &t, &mut m);
    assert_eq!(s.failed, 0, "{:#?}", l.0);
    assert!(
        l.has("PROBE ok cpu@3: spin-table mailbox 0x47000018"),
        "{:#?}",
        l.0
    );
    assert_eq!(m.reads, [PEN + 8, PEN + 16, PEN + 24]);
    assert!(m.affinity.is_empty());
    // Not reserved, or already written: FAIL.
    let t2 = Tree {
        reserve_pen: false,
        ..t
    };
    let (s, l) = probe(&e, id, &t2, &mut Fake::default());
    assert_eq!(s.failed, 3, "{:#?}", l.0);
    assert!(l.has(
        "PROBE FAIL cpu@1: spin-table mailbox 0x47000008: aligned=true in-ram=true reserved=false"
    ));
    let t3 = Tree {
        smp: Smp::Spin,
        ..Tree::default()
    };
    let mut m = Fake {
        mailbox: 0x4020_0000,
        ..Fake::default()
    };
    let (s, _) = probe(&e, id, &t3, &mut m);
    assert_eq!(s.failed, 3);
}

#[test]
fn el1_without_el2_is_fine_and_skips_el2_registers() {
    let mut e = good_entry();
    e.current_el = 1 << 2;
    e.hcr_el2 = 0;
    e.cptr_el2 = 0;
    let id = CpuId {
        pfr0: 0x0011, // no EL2, no EL3
        ..a72()
    };
    let (s, l) = probe(&e, id, &Tree::default(), &mut Fake::default());
    assert_eq!(s.failed, 0, "{:#?}", l.0);
    assert!(l.has("PROBE ok el: EL1 (the CPU has no EL2)"));
    assert!(!l.has("PROBE ok hcr_el2"));
}

#[test]
fn sve_and_sme_are_run_when_present() {
    let id = CpuId {
        pfr0: 0x1_0000_1111,
        pfr1: 1 << 24,
        ..a72()
    };
    let mut m = Fake::default();
    let (s, l) = probe(&good_entry(), id, &Tree::default(), &mut m);
    assert_eq!(s.failed, 0, "{:#?}", l.0);
    assert!(m.sve && l.has("PROBE ok sve:"));
    assert!(m.sme && l.has("PROBE ok sme:"));
    assert!(l.has("PROBE ok cptr_el2: 0x22ff: trap bits set 0x0 (expected TFP, TZ, TSM clear)"));
}

#[test]
fn no_initrd_is_fine_when_none_was_asked_for() {
    let t = Tree {
        initrd: None,
        bootargs: "console=ttyAMA0",
        ..Tree::default()
    };
    let (s, l) = probe(&good_entry(), a72(), &t, &mut Fake::default());
    assert_eq!(s.failed, 0, "{:#?}", l.0);
    assert!(l.has("PROBE ok initrd: none in /chosen"));
}

#[test]
fn console_and_conduit_from_the_tree() {
    let d = dtb(&Tree::default());
    let f = Fdt::new(&d).unwrap();
    assert_eq!(stdout_pl011(&f), Some(0x900_0000));
    assert_eq!(psci_conduit(&f), Some(Conduit::Hvc));
    assert_eq!(dtb_total_size(&d), Ok(d.len() as u32));
    assert_eq!(dtb_total_size(&d[..10]), Err(Error::Short));
    assert_eq!(
        ImageHeader::parse(&header()),
        Ok(ImageHeader {
            text_offset: TEXT_OFFSET,
            image_size: IMAGE_SIZE,
            flags: 0xa
        })
    );
    assert!(matches!(
        ImageHeader::parse(&[0u8; 64]),
        Err(Error::BadMagic(0))
    ));
}

#[test]
fn garbage_trees_never_panic_the_header_checks() {
    let mut x = 0x1234_5678u32;
    for n in 0..200 {
        let mut d: Vec<u8> = (0..40 + n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = dtb_total_size(&d);
        d[..4].copy_from_slice(&DTB_MAGIC.to_be_bytes());
        let _ = dtb_total_size(&d);
        let _ = ImageHeader::parse(&d);
    }
}
