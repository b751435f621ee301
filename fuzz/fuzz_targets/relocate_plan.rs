//! Relocation plan: random segments, RAM, reserved and control ranges and a random page
//! allocator. `validate` and `build` agree; a list `build` returns runs in the host simulator
//! (the trampoline's loop) and leaves every destination holding exactly its source bytes then
//! zeros, every other byte as it was. Building writes only pages the allocator handed out
//! (in the firmware they come from its heap, part of the control region) and never reserved
//! memory.
#![no_main]

use arbitrary::{Result, Unstructured};
use kexboot_relocate::{build, simulate, validate, Layout, Range, Segment, VecMemory, PAGE_SIZE};
use libfuzzer_sys::fuzz_target;

const BASE: u64 = 0x4000_0000;
/// 64 KiB of fake RAM: below malloc's mmap threshold, so each run reuses the heap instead of
/// faulting fresh pages in.
const PAGES: u64 = 16;
const SIZE: u64 = PAGES * PAGE_SIZE;
const MAX_ENTRIES: u64 = 1 << 16;

fn page_range(u: &mut Unstructured) -> Result<Range> {
    let a = u.int_in_range(0..=PAGES)?;
    let b = u.int_in_range(0..=PAGES)?;
    Ok(Range::new(BASE + a.min(b) * PAGE_SIZE, BASE + a.max(b) * PAGE_SIZE).unwrap())
}

fn byte_range(u: &mut Unstructured) -> Result<Range> {
    let a = u.int_in_range(0..=SIZE)?;
    let b = u.int_in_range(0..=SIZE)?;
    Ok(Range::new(BASE + a.min(b), BASE + a.max(b)).unwrap())
}

fn ranges(
    u: &mut Unstructured,
    max: usize,
    f: fn(&mut Unstructured) -> Result<Range>,
) -> Result<Vec<Range>> {
    (0..u.int_in_range(0..=max)?).map(|_| f(u)).collect()
}

fn segment(u: &mut Unstructured) -> Result<Segment> {
    // Sources lie in the fake memory (in the firmware: where the loader put the files, in RAM);
    // the planner does not read full aligned source pages, so it cannot check them.
    let off = u.int_in_range(0..=SIZE)?;
    let src = BASE + off;
    let len = u.int_in_range(0..=SIZE / 4)?.min(SIZE - off);
    let mut dst = BASE + u.int_in_range(0..=PAGES)? * PAGE_SIZE;
    if u.ratio(1, 16)? {
        dst += u.int_in_range(1..=PAGE_SIZE - 1)?;
    }
    let memsz = if u.ratio(1, 16)? {
        u.arbitrary()?
    } else {
        len + u.int_in_range(0..=2 * PAGE_SIZE)?
    };
    Ok(Segment {
        src,
        len,
        dst,
        memsz,
    })
}

fn bytes(mem: &VecMemory, r: &Range) -> Vec<u8> {
    mem.slice(*r).map(<[u8]>::to_vec).unwrap_or_default()
}

/// The fake RAM's initial contents: no zero byte, so zero-filled pages show.
fn pattern() -> &'static [u8] {
    static P: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        (0..SIZE)
            .map(|i| (i ^ (i >> 9)).wrapping_mul(0x9e37) as u8 | 1)
            .collect()
    })
}

/// Pages (index, address) whose bytes differ between `a` and `b`.
fn changed_pages(a: &VecMemory, b: &VecMemory) -> Vec<(usize, u64)> {
    let p = PAGE_SIZE as usize;
    a.bytes()
        .chunks(p)
        .zip(b.bytes().chunks(p))
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| (i, BASE + (i * p) as u64))
        .collect()
}

fn run(u: &mut Unstructured) -> Result<()> {
    let ram = {
        let mut v = ranges(u, 2, page_range)?;
        if v.is_empty() {
            v.push(Range::new(BASE, BASE + SIZE).unwrap());
        }
        v
    };
    let reserved = ranges(u, 2, byte_range)?;
    let control = ranges(u, 2, page_range)?;
    let segs: Vec<Segment> = (0..u.int_in_range(0..=4)?)
        .map(|_| segment(u))
        .collect::<Result<_>>()?;
    let pages: Vec<u64> = (0..u.int_in_range(0..=32)?)
        .map(|_| Ok(BASE + u.int_in_range(0..=PAGES + 1)? * PAGE_SIZE))
        .collect::<Result<_>>()?;
    let layout = Layout {
        ram: &ram,
        reserved: &reserved,
        control: &control,
    };

    let mut mem = VecMemory::new(BASE, SIZE as usize).unwrap();
    mem.bytes_mut().copy_from_slice(pattern());
    let valid = validate(&segs, &layout);
    // What each destination must hold in the end: the source bytes, then zeros.
    let expected: Vec<(Range, Vec<u8>)> = segs
        .iter()
        .filter_map(|s| {
            let d = s.dest_range().ok().filter(|d| d.len() <= SIZE)?;
            let mut v = bytes(&mem, &s.source_range().ok()?);
            if v.len() as u64 != s.len {
                return None; // source outside the fake RAM: build must fail reading it
            }
            v.resize(d.len() as usize, 0);
            Some((d, v))
        })
        .collect();
    let before = mem.clone();
    let mut next = pages.into_iter();
    let mut handed = Vec::new();
    let built = build(&segs, &layout, &mut mem, &mut || {
        let p = next.next();
        handed.extend(p);
        p
    });
    let list = match (valid, built) {
        (Err(_), Ok(_)) => panic!("build accepted a plan validate refuses"),
        (_, Err(_)) => return Ok(()),
        (Ok(()), Ok(list)) => list,
    };
    for r in &reserved {
        assert!(
            bytes(&mem, r) == bytes(&before, r),
            "build wrote into reserved {r}"
        );
    }
    for (i, page) in changed_pages(&mem, &before) {
        assert!(
            handed.contains(&page),
            "build wrote page {page:#x} (#{i}), not one it was given"
        );
    }
    let built_mem = mem.clone();
    simulate(&mut mem, list.head, MAX_ENTRIES).expect("a built list does not run");
    assert_eq!(
        expected.len(),
        segs.len(),
        "built a plan with an unreadable source"
    );
    for (d, want) in &expected {
        assert!(
            &bytes(&mem, d) == want,
            "destination {d} wrong after the copy"
        );
    }
    for (_, page) in changed_pages(&mem, &built_mem) {
        let inside = expected
            .iter()
            .any(|(d, _)| d.start() <= page && page < d.end());
        assert!(
            inside,
            "page {page:#x} outside every destination changed by the copy"
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
