//! Property tests of the planner and the simulator over fake RAM: valid plans relocate every
//! byte and touch nothing else; contract-breaking plans are refused with the right error.

use kexboot_relocate::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

const P: u64 = PAGE_SIZE;

/// splitmix64: a small deterministic generator driven by a proptest seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

fn round_up(x: u64) -> u64 {
    x.div_ceil(P) * P
}

#[derive(Debug, Clone)]
struct Case {
    ram: Vec<Range>,
    reserved: Vec<Range>,
    control: Vec<Range>,
    segs: Vec<Segment>,
    mem: Range,
    seed: u64,
}

impl Case {
    fn layout(&self) -> Layout<'_> {
        Layout {
            ram: &self.ram,
            reserved: &self.reserved,
            control: &self.control,
        }
    }
    fn dest(&self, i: usize) -> Range {
        let s = self.segs[i];
        Range::new(s.dst, s.dst + round_up(s.memsz)).unwrap()
    }
}

enum Region {
    Dest(usize),
    Res,
    Ctl,
}

/// A plan that keeps the contract: destinations, reserved and control ranges laid out in RAM in
/// random order with random gaps; sources anywhere, including over destinations.
fn gen_valid(seed: u64, nseg: usize, nres: usize, nctl: usize, split: bool) -> Case {
    let mut r = Rng(seed);
    let base = match r.below(3) {
        0 => 0,
        1 => r.below(256) * P,
        _ => 0x4000_0000 + r.below(64) * P,
    };
    let mut memsz = Vec::new();
    for _ in 0..nseg {
        memsz.push(if r.chance(12) {
            0
        } else if r.chance(3) {
            r.below(4) * P + P
        } else {
            1 + r.below(6 * P)
        });
    }
    let mut order: Vec<Region> = (0..nseg).map(Region::Dest).collect();
    order.extend((0..nres).map(|_| Region::Res));
    order.extend((0..nctl).map(|_| Region::Ctl));
    for i in (1..order.len()).rev() {
        order.swap(i, r.below(i as u64 + 1) as usize);
    }
    let mut cursor = base + r.below(4) * P;
    let (mut dst, mut reserved, mut control) = (vec![0; nseg], vec![], vec![]);
    for region in order {
        match region {
            Region::Dest(i) => {
                cursor = round_up(cursor) + r.below(3) * P;
                dst[i] = cursor;
                cursor += round_up(memsz[i]);
            }
            Region::Res | Region::Ctl => {
                let start = cursor + r.below(2) * P + r.below(P);
                let range = Range::from_len(start, 1 + r.below(3 * P)).unwrap();
                cursor = range.end();
                if matches!(region, Region::Res) {
                    reserved.push(range)
                } else {
                    control.push(range)
                }
            }
        }
    }
    let dest_pages: u64 = memsz.iter().map(|&m| round_up(m) / P).sum();
    let ram_end = round_up(cursor) + (dest_pages + 40 + r.below(16)) * P;
    let mut ram = vec![Range::new(base, ram_end).unwrap()];
    if split {
        let cut = base + r.below((ram_end - base) / P) * P;
        ram = vec![
            Range::new(cut, ram_end).unwrap(),
            Range::new(base, cut).unwrap(),
        ];
    }
    // Four pages past RAM that exist in the fake memory but must never be used.
    let mem = Range::new(base, ram_end + 4 * P).unwrap();
    let mut segs = Vec::new();
    for i in 0..nseg {
        let len = if r.chance(3) {
            memsz[i]
        } else {
            r.below(memsz[i] + 1)
        };
        let mut src = match r.below(4) {
            0 => base + r.below((mem.end() - base) / P) * P,
            1 => base + r.below(mem.end() - base),
            2 => dst[r.below(nseg as u64) as usize] + r.below(2 * P),
            _ => dst[i],
        };
        if src + len > mem.end() {
            src = mem.end() - len;
        }
        segs.push(Segment {
            src,
            len,
            dst: dst[i],
            memsz: memsz[i],
        });
    }
    Case {
        ram,
        reserved,
        control,
        segs,
        mem,
        seed: r.next(),
    }
}

/// Pages of the fake memory in random order, with some garbage in front, as the allocator.
fn allocator(case: &Case) -> impl FnMut() -> Option<u64> {
    let mut r = Rng(case.seed);
    let mut pages: Vec<u64> = (case.mem.start() / P..case.mem.end() / P)
        .map(|p| p * P)
        .collect();
    for i in (1..pages.len()).rev() {
        pages.swap(i, r.below(i as u64 + 1) as usize);
    }
    let garbage = [
        case.mem.start() + 3,
        !(P - 1),
        case.mem.end() + 0x10_0000,
        1,
    ];
    let mut all: Vec<u64> = garbage.to_vec();
    all.extend(pages);
    all.reverse();
    move || all.pop()
}

fn filled_memory(case: &Case) -> VecMemory {
    let mut mem = VecMemory::new(case.mem.start(), case.mem.len() as usize).unwrap();
    let mut r = Rng(case.seed ^ 0x5555);
    for chunk in mem.bytes_mut().chunks_mut(8) {
        let v = r.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    mem
}

fn bytes(mem: &VecMemory, r: Range) -> &[u8] {
    mem.slice(r)
        .unwrap_or_else(|| panic!("{r} outside fake memory"))
}

/// Builds and simulates a plan `validate` accepted and checks every byte of memory.
fn check_valid(case: &Case) -> Result<(), TestCaseError> {
    let layout = case.layout();
    let mut mem = filled_memory(case);
    let orig = mem.clone();
    let mut alloc = allocator(case);
    let list = match build(&case.segs, &layout, &mut mem, &mut alloc) {
        Ok(l) => l,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "build refused a valid plan: {e}"
            )))
        }
    };
    let dests: Vec<Range> = (0..case.segs.len()).map(|i| case.dest(i)).collect();
    let list_pages: BTreeSet<u64> = list.pages.iter().copied().collect();
    prop_assert_eq!(
        list_pages.len(),
        list.pages.len(),
        "a page was handed out twice"
    );
    for &p in &list.pages {
        let pr = Range::new(p, p + P).unwrap();
        prop_assert!(
            p % P == 0 && case.ram.iter().any(|m| m.contains_range(&pr)),
            "page {p:#x} not in RAM"
        );
        for (i, s) in case.segs.iter().enumerate() {
            prop_assert!(
                !dests[i].overlaps(&pr),
                "list page {p:#x} in destination #{i}"
            );
            prop_assert!(
                !Range::from_len(s.src, s.len).unwrap().overlaps(&pr),
                "list page {p:#x} over source #{i}"
            );
        }
        prop_assert!(
            !case.reserved.iter().any(|r| r.overlaps(&pr)),
            "list page {p:#x} in reserved"
        );
    }
    // build writes only to the pages it got.
    for p in (case.mem.start() / P..case.mem.end() / P).map(|p| p * P) {
        if !list_pages.contains(&p) {
            let pr = Range::new(p, p + P).unwrap();
            prop_assert!(
                bytes(&mem, pr) == bytes(&orig, pr),
                "build changed page {p:#x}"
            );
        }
    }
    let total: u64 = dests.iter().map(|d| d.len()).sum();
    // Whole pages of in-place segments (`src == dst`) are neither listed nor copied.
    let in_place: u64 = case
        .segs
        .iter()
        .filter(|s| s.in_place())
        .map(|s| s.len / P)
        .sum();
    prop_assert_eq!(list.in_place_pages, in_place);
    prop_assert_eq!(list.bytes + in_place * P, total);
    let post = mem.clone();
    let stats = simulate(&mut mem, list.head, 1 << 20)
        .map_err(|e| TestCaseError::fail(format!("simulate: {e}")))?;
    prop_assert_eq!(stats.pages_copied * P, list.bytes);
    for (i, s) in case.segs.iter().enumerate() {
        let got = bytes(&mem, Range::from_len(s.dst, s.len).unwrap());
        let want = bytes(&orig, Range::from_len(s.src, s.len).unwrap());
        prop_assert!(got == want, "destination #{i} differs from its source");
        let pad = bytes(&mem, Range::new(s.dst + s.len, dests[i].end()).unwrap());
        prop_assert!(
            pad.iter().all(|&b| b == 0),
            "padding of destination #{i} not zero"
        );
    }
    // The simulation writes destinations only: reserved, control, list and sources are intact.
    for (k, (a, b)) in mem.bytes().iter().zip(post.bytes()).enumerate() {
        let addr = case.mem.start() + k as u64;
        if a != b {
            prop_assert!(
                dests.iter().any(|d| d.contains(addr)),
                "simulation wrote {addr:#x} outside destinations"
            );
        }
    }
    Ok(())
}

// ---- an independent oracle of the contract ----

#[derive(Debug, PartialEq)]
enum Violation {
    Misaligned(usize),
    LenExceeds(usize),
    Overflow(usize),
    NotInRam(usize),
    DestDest(usize, usize),
    Reserved(usize, Range),
    Control(usize, Range),
    BadLayout,
}

fn violations(case: &Case) -> Vec<Violation> {
    let mut v = Vec::new();
    let all = case.ram.iter().chain(&case.reserved).chain(&case.control);
    if all.clone().any(|r| r.end() < r.start()) {
        v.push(Violation::BadLayout);
        return v;
    }
    for (i, s) in case.segs.iter().enumerate() {
        if s.dst % P != 0 {
            v.push(Violation::Misaligned(i));
        }
        if s.len > s.memsz {
            v.push(Violation::LenExceeds(i));
        }
        if s.dst
            .checked_add(s.memsz)
            .and_then(|e| e.checked_add(P - 1))
            .is_none()
            || s.src.checked_add(s.len).is_none()
        {
            v.push(Violation::Overflow(i));
        }
    }
    if !v.is_empty() {
        return v; // per-segment faults make destination ranges meaningless
    }
    let d: Vec<Range> = (0..case.segs.len()).map(|i| case.dest(i)).collect();
    for i in 0..d.len() {
        let mut page = d[i].start();
        while page < d[i].end() {
            let pr = Range::new(page, page + P).unwrap();
            if !case
                .ram
                .iter()
                .any(|m| m.start() <= pr.start() && pr.end() <= m.end())
            {
                v.push(Violation::NotInRam(i));
                break;
            }
            page += P;
        }
        let hit = |a: &Range, b: &Range| a.start().max(b.start()) < a.end().min(b.end());
        for j in 0..i {
            if hit(&d[i], &d[j]) {
                v.push(Violation::DestDest(j, i));
            }
        }
        v.extend(
            case.reserved
                .iter()
                .filter(|r| hit(&d[i], r))
                .map(|r| Violation::Reserved(i, *r)),
        );
        v.extend(
            case.control
                .iter()
                .filter(|r| hit(&d[i], r))
                .map(|r| Violation::Control(i, *r)),
        );
    }
    v
}

fn matches(case: &Case, e: &Error, v: &Violation) -> bool {
    use What::*;
    match (e, v) {
        (Error::InvalidRange { .. }, Violation::BadLayout) => true,
        (
            Error::Misaligned {
                what: Destination(i),
                addr,
            },
            Violation::Misaligned(j),
        ) => i == j && *addr == case.segs[*j].dst,
        (Error::LenExceedsMemsz { index, .. }, Violation::LenExceeds(j)) => index == j,
        (
            Error::Overflow {
                what: Destination(i) | Source(i),
                ..
            },
            Violation::Overflow(j),
        ) => i == j,
        (
            Error::NotInRam {
                range,
                what: Destination(i),
            },
            Violation::NotInRam(j),
        ) => i == j && *range == case.dest(*j),
        (
            Error::Overlap {
                a,
                a_what: Destination(i),
                b,
                b_what: Destination(k),
            },
            Violation::DestDest(j, l),
        ) => (i, k) == (j, l) && *a == case.dest(*j) && *b == case.dest(*l),
        (
            Error::Overlap {
                a,
                a_what: Destination(i),
                b,
                b_what: Reserved,
            },
            Violation::Reserved(j, r),
        ) => i == j && a == &case.dest(*j) && b == r,
        (
            Error::Overlap {
                a,
                a_what: Destination(i),
                b,
                b_what: Control,
            },
            Violation::Control(j, r),
        ) => i == j && a == &case.dest(*j) && b == r,
        _ => false,
    }
}

/// `validate` and `build` agree with the oracle; a refused plan touches neither memory nor allocator.
fn check_against_oracle(case: &Case) -> Result<bool, TestCaseError> {
    let v = violations(case);
    let res = validate(&case.segs, &case.layout());
    if v.is_empty() {
        prop_assert!(res.is_ok(), "valid plan refused: {:?}", res);
        return Ok(true);
    }
    let e = match res {
        Ok(()) => return Err(TestCaseError::fail(format!("accepted a plan with {v:?}"))),
        Err(e) => e,
    };
    prop_assert!(
        v.iter().any(|x| matches(case, &e, x)),
        "error `{e}` is none of {v:?}"
    );
    let mut mem = filled_memory(case);
    let before = mem.clone();
    let mut calls = 0;
    let res = build(&case.segs, &case.layout(), &mut mem, &mut || {
        calls += 1;
        None
    });
    prop_assert_eq!(res, Err(e));
    prop_assert_eq!(calls, 0);
    prop_assert!(mem == before, "refused build wrote memory");
    Ok(false)
}

#[derive(Debug, Clone, Copy)]
enum Break {
    OverControl,
    OverReserved,
    OverDest,
    OutsideRam,
}

fn apply(case: &mut Case, brk: Break, pick: u64) -> Option<Violation> {
    let k = (pick % case.segs.len() as u64) as usize;
    let seg = &mut case.segs[k];
    match brk {
        Break::OverControl | Break::OverReserved => {
            let list = if matches!(brk, Break::OverControl) {
                &case.control
            } else {
                &case.reserved
            };
            let r = *list.get((pick / 7) as usize % list.len().max(1))?;
            seg.dst = r.start() / P * P;
            seg.memsz = seg.memsz.max(1);
            Some(if matches!(brk, Break::OverControl) {
                Violation::Control(k, r)
            } else {
                Violation::Reserved(k, r)
            })
        }
        Break::OverDest => {
            let j = (0..case.segs.len()).find(|&j| j != k && case.segs[j].memsz > 0)?;
            let (other, memsz) = (case.segs[j].dst, case.segs[k].memsz.max(1));
            case.segs[k].dst = other;
            case.segs[k].memsz = memsz;
            Some(Violation::DestDest(j.min(k), j.max(k)))
        }
        Break::OutsideRam => {
            let end = case.ram.iter().map(|r| r.end()).max()?;
            seg.dst = end - (pick % 2) * P; // straddling the end of RAM or wholly past it
            seg.memsz = seg.memsz.max(2 * P);
            seg.len = seg.len.min(seg.memsz);
            Some(Violation::NotInRam(k))
        }
    }
}

/// A plan with no order to it: destinations anywhere (some misaligned, some past the address
/// space), RAM with holes, reserved and control ranges of any size.
fn gen_random(seed: u64) -> Case {
    let mut r = Rng(seed);
    let base = 0x1000_0000;
    let span = 64 * P;
    let mut ram = Vec::new();
    let mut cur = base;
    for _ in 0..1 + r.below(3) {
        let start = cur + r.below(3) * P;
        let end = start + (1 + r.below(24)) * P;
        ram.push(Range::new(start, end).unwrap());
        cur = end;
    }
    let any_range = |r: &mut Rng| {
        let start = base + r.below(span);
        Range::new(start, start + r.below(3 * P)).unwrap()
    };
    let reserved = (0..r.below(3)).map(|_| any_range(&mut r)).collect();
    let control = (0..r.below(3)).map(|_| any_range(&mut r)).collect();
    let mut segs = Vec::new();
    for _ in 0..1 + r.below(4) {
        let memsz = r.below(5 * P);
        let mut s = Segment {
            src: base + r.below(span - 5 * P),
            len: r.below(memsz + 1),
            dst: base + r.below(64) * P,
            memsz,
        };
        match r.below(24) {
            0 => s.dst += 1 + r.below(P - 1),
            1 => s.len = memsz + 1 + r.below(P),
            2 => s.dst = !(P - 1),
            3 => s.src = u64::MAX - r.below(8),
            _ => {}
        }
        segs.push(s);
    }
    let mem = Range::new(base, base + span + 8 * P).unwrap();
    Case {
        ram,
        reserved,
        control,
        segs,
        mem,
        seed: r.next(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_plans_relocate_exactly(seed in any::<u64>(), nseg in 1usize..=4, nres in 0usize..=3, nctl in 0usize..=3, split in any::<bool>()) {
        let case = gen_valid(seed, nseg, nres, nctl, split);
        prop_assert!(check_against_oracle(&case)?, "generator made an invalid plan");
        check_valid(&case)?;
    }

    #[test]
    fn broken_plans_are_refused_with_the_right_error(seed in any::<u64>(), nseg in 1usize..=4, nres in 0usize..=3, nctl in 0usize..=3, brk in prop_oneof![Just(Break::OverControl), Just(Break::OverReserved), Just(Break::OverDest), Just(Break::OutsideRam)], pick in any::<u64>()) {
        let mut case = gen_valid(seed, nseg, nres, nctl, false);
        if let Some(expected) = apply(&mut case, brk, pick) {
            prop_assert!(violations(&case).contains(&expected), "mutation {:?} did not break the plan", brk);
            prop_assert!(!check_against_oracle(&case)?);
        }
    }

    #[test]
    fn random_plans_agree_with_the_oracle(seed in any::<u64>()) {
        let case = gen_random(seed);
        if check_against_oracle(&case)? {
            // Accepted: it must also build and relocate, unless free RAM truly ran out.
            let mut mem = filled_memory(&case);
            match build(&case.segs, &case.layout(), &mut mem, &mut allocator(&case)) {
                Ok(_) => check_valid(&case)?,
                Err(Error::OutOfPages { .. }) => {}
                Err(e) => prop_assert!(false, "build failed: {}", e),
            }
        }
    }

    #[test]
    fn simulate_never_hangs_or_panics_on_garbage(seed in any::<u64>(), head in any::<u64>(), max in 0u64..5000) {
        let case = Case { ram: vec![], reserved: vec![], control: vec![], segs: vec![], mem: Range::new(0x8000, 0x8000 + 8 * P).unwrap(), seed };
        let mut mem = filled_memory(&case);
        // Steer some words towards plausible entries so the walk gets somewhere.
        let mut r = Rng(seed);
        for w in mem.bytes_mut().chunks_mut(8) {
            if r.chance(2) {
                let e = (0x8000 + r.below(8) * P) | [IND_DESTINATION, IND_INDIRECTION, IND_SOURCE, IND_DONE][r.below(4) as usize];
                w.copy_from_slice(&e.to_le_bytes());
            }
        }
        let head = if r.chance(2) { head } else { (0x8000 + r.below(8) * P) | IND_INDIRECTION };
        if let Ok(stats) = simulate(&mut mem, head, max) {
            prop_assert!(stats.entries <= max);
        }
    }
}
