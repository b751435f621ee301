//! Example-based tests: error messages, allocator misbehaviour, list chaining, hostile lists,
//! the jump checks and `PhysMemory` over a host buffer.

use kexboot_relocate::arch::check_jump;
use kexboot_relocate::*;

const P: u64 = PAGE_SIZE;
const BASE: u64 = 0x4000_0000;

fn ram(pages: u64) -> [Range; 1] {
    [Range::from_len(BASE, pages * P).unwrap()]
}

fn pages_from(start: u64) -> impl FnMut() -> Option<u64> {
    let mut next = start;
    move || {
        let p = next;
        next += P;
        Some(p)
    }
}

fn write_words(mem: &mut VecMemory, addr: u64, words: &[u64]) {
    let b: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    mem.write(addr, &b).unwrap();
}

#[test]
fn overlap_message_names_both_ranges() {
    let ram = [Range::new(0x4000_0000, 0x8000_0000).unwrap()];
    let reserved = [Range::new(0x4100_0000, 0x4101_0000).unwrap()];
    let segs = [
        Segment {
            src: 0x5000_0000,
            len: 0x1000,
            dst: 0x4000_0000,
            memsz: 0x1000,
        },
        Segment {
            src: 0x6000_0000,
            len: 0x100_0000,
            dst: 0x4020_0000,
            memsz: 0x1c0_0000,
        },
    ];
    let e = validate(
        &segs,
        &Layout {
            ram: &ram,
            reserved: &reserved,
            control: &[],
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "destination #1 0x40200000-0x41e00000 overlaps reserved 0x41000000-0x41010000"
    );
    let e = validate(
        &segs,
        &Layout {
            ram: &ram,
            reserved: &[],
            control: &reserved,
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Overlap {
                b_what: What::Control,
                ..
            }
        ),
        "{e}"
    );
    let small = [Range::new(0x4000_0000, 0x4100_0000).unwrap()];
    let e = validate(
        &segs,
        &Layout {
            ram: &small,
            reserved: &[],
            control: &[],
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "destination #1 0x40200000-0x41e00000 is not in RAM"
    );
}

#[test]
fn segment_faults_are_named() {
    let ram = ram(16);
    let l = Layout {
        ram: &ram,
        reserved: &[],
        control: &[],
    };
    let mis = [Segment {
        src: BASE,
        len: 1,
        dst: BASE + 8,
        memsz: 1,
    }];
    assert_eq!(
        validate(&mis, &l),
        Err(Error::Misaligned {
            what: What::Destination(0),
            addr: BASE + 8
        })
    );
    let long = [Segment {
        src: BASE,
        len: 9,
        dst: BASE,
        memsz: 8,
    }];
    assert_eq!(
        validate(&long, &l),
        Err(Error::LenExceedsMemsz {
            index: 0,
            len: 9,
            memsz: 8
        })
    );
    let wrap = [Segment {
        src: BASE,
        len: 1,
        dst: !(P - 1),
        memsz: 1,
    }];
    assert!(matches!(
        validate(&wrap, &l),
        Err(Error::Overflow {
            what: What::Destination(0),
            ..
        })
    ));
    // An inverted range cannot even be built, so no layout can hold one.
    assert_eq!(
        Range::new(5, 4).unwrap_err().to_string(),
        "given range 0x5-0x4 ends before it starts"
    );
}

#[test]
fn ranges_check_their_bounds() {
    assert!(Range::new(4, 5).is_ok());
    assert!(matches!(Range::new(5, 4), Err(Error::InvalidRange { .. })));
    assert!(matches!(
        Range::from_len(u64::MAX, 2),
        Err(Error::Overflow { .. })
    ));
    assert!(Range::page(0x1001).is_err());
    let empty = Range::new(5, 5).unwrap();
    let big = Range::new(0, 10).unwrap();
    assert!(!empty.overlaps(&big) && !big.overlaps(&empty));
    assert!(big.contains_range(&empty));
    assert!(Range::new(0, 5)
        .unwrap()
        .overlaps(&Range::new(4, 6).unwrap()));
    assert!(!Range::new(0, 5)
        .unwrap()
        .overlaps(&Range::new(5, 6).unwrap()));
}

#[test]
fn destination_may_span_adjacent_ram_ranges() {
    let ram = [
        Range::from_len(BASE + 2 * P, 2 * P).unwrap(),
        Range::from_len(BASE, 2 * P).unwrap(),
    ];
    let segs = [Segment {
        src: 0,
        len: 0,
        dst: BASE + P,
        memsz: 2 * P,
    }];
    assert_eq!(
        validate(
            &segs,
            &Layout {
                ram: &ram,
                reserved: &[],
                control: &[]
            }
        ),
        Ok(())
    );
}

#[test]
fn allocator_problems_are_reported() {
    let ram = ram(64);
    let l = Layout {
        ram: &ram,
        reserved: &[],
        control: &[],
    };
    let segs = [Segment {
        src: BASE + 40 * P + 1,
        len: 100,
        dst: BASE,
        memsz: 4 * P,
    }];
    let mut mem = VecMemory::new(BASE, 64 * P as usize).unwrap();
    assert_eq!(
        build(&segs, &l, &mut mem, &mut || None),
        Err(Error::OutOfPages { got: 0 })
    );
    let e = build(&segs, &l, &mut mem, &mut || Some(BASE + P)).unwrap_err();
    assert_eq!(
        e,
        Error::UnusablePages {
            tries: MAX_PAGE_TRIES,
            last: BASE + P,
            problem: PageProblem::Overlaps(
                What::Destination(0),
                Range::from_len(BASE, 4 * P).unwrap()
            )
        }
    );
    assert!(e.to_string().contains("overlaps destination #0"), "{e}");
    // Duplicates and pages over the source are skipped, not reused.
    let mut seq = vec![
        BASE + 40 * P,
        BASE + 10 * P,
        BASE + 10 * P,
        BASE + 11 * P,
        BASE + 12 * P,
    ]
    .into_iter();
    let list = build(&segs, &l, &mut mem, &mut || seq.next()).unwrap();
    assert_eq!(
        list.pages,
        vec![BASE + 10 * P, BASE + 11 * P, BASE + 12 * P]
    );
    assert_eq!((list.bounced_pages, list.zero_filled_pages), (1, 3));
}

#[test]
fn empty_plan_is_done_at_once() {
    let ram = ram(4);
    let mut mem = VecMemory::new(BASE, 4 * P as usize).unwrap();
    let l = Layout {
        ram: &ram,
        reserved: &[],
        control: &[],
    };
    let list = build(&[], &l, &mut mem, &mut || panic!("no page needed")).unwrap();
    assert_eq!((list.head, list.pages.len(), list.bytes), (IND_DONE, 0, 0));
    assert_eq!(simulate(&mut mem, list.head, 1), Ok(SimStats::default()));
}

#[test]
fn long_lists_chain_indirection_pages_and_use_aligned_sources_in_place() {
    let n = 1100; // > 2 * 511 entries: three list pages
    let ram = ram(2 * n + 16);
    let mut mem = VecMemory::new(BASE, ((2 * n + 16) * P) as usize).unwrap();
    for (i, b) in mem.bytes_mut().iter_mut().enumerate() {
        *b = (i * 7 + i / 4096) as u8;
    }
    let orig = mem.clone();
    let src = BASE + (n + 2) * P;
    let segs = [Segment {
        src,
        len: n * P - 10,
        dst: BASE,
        memsz: n * P,
    }];
    let l = Layout {
        ram: &ram,
        reserved: &[],
        control: &[],
    };
    let list = build(&segs, &l, &mut mem, &mut pages_from(BASE + (2 * n + 4) * P)).unwrap();
    assert_eq!(
        list.bounced_pages, 1,
        "only the partial last page is bounced"
    );
    assert_eq!(list.pages.len(), 1 + 3);
    let stats = simulate(&mut mem, list.head, 10_000).unwrap();
    assert_eq!(
        (stats.pages_copied, stats.indirections, stats.destinations),
        (n, 3, 1)
    );
    let dst = Range::from_len(BASE, n * P - 10).unwrap();
    assert_eq!(
        mem.slice(dst).unwrap(),
        orig.slice(Range::from_len(src, n * P - 10).unwrap())
            .unwrap()
    );
    assert!(mem
        .slice(Range::new(dst.end(), BASE + n * P).unwrap())
        .unwrap()
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn hostile_lists_error_in_simulate() {
    let mut mem = VecMemory::new(BASE, 4 * P as usize).unwrap();
    // A list page that points to itself.
    write_words(&mut mem, BASE, &[BASE | IND_INDIRECTION]);
    assert_eq!(
        simulate(&mut mem, BASE | IND_INDIRECTION, 1000),
        Err(Error::TooManyEntries { max: 1000 })
    );
    // Two pages chained in a ring, copying pages on the way.
    write_words(
        &mut mem,
        BASE,
        &[
            (BASE + 2 * P) | IND_DESTINATION,
            (BASE + 3 * P) | IND_SOURCE,
            (BASE + P) | IND_INDIRECTION,
        ],
    );
    write_words(
        &mut mem,
        BASE + P,
        &[(BASE + 2 * P) | IND_DESTINATION, BASE | IND_INDIRECTION],
    );
    assert_eq!(
        simulate(&mut mem, BASE | IND_INDIRECTION, 5000),
        Err(Error::TooManyEntries { max: 5000 })
    );
    // A source outside memory.
    write_words(
        &mut mem,
        BASE,
        &[
            (BASE + 2 * P) | IND_DESTINATION,
            0x1000 | IND_SOURCE,
            IND_DONE,
        ],
    );
    assert_eq!(
        simulate(&mut mem, BASE | IND_INDIRECTION, 100),
        Err(Error::OutOfBounds {
            addr: 0x1000,
            len: P
        })
    );
    // A destination outside memory.
    write_words(
        &mut mem,
        BASE,
        &[
            0x1000 | IND_DESTINATION,
            (BASE + 3 * P) | IND_SOURCE,
            IND_DONE,
        ],
    );
    assert_eq!(
        simulate(&mut mem, BASE | IND_INDIRECTION, 100),
        Err(Error::OutOfBounds {
            addr: 0x1000,
            len: P
        })
    );
    // A list pointer outside memory, and a head that gives no list.
    assert!(matches!(
        simulate(&mut mem, 0x9000 | IND_INDIRECTION, 100),
        Err(Error::OutOfBounds { .. })
    ));
    assert_eq!(
        simulate(&mut mem, BASE | IND_SOURCE, 100),
        Err(Error::BadHead {
            head: BASE | IND_SOURCE
        })
    );
    // A list running off the end of memory without DONE.
    write_words(&mut mem, BASE + 3 * P, &[0; 512]);
    assert!(matches!(
        simulate(&mut mem, (BASE + 3 * P) | IND_INDIRECTION, 10_000),
        Err(Error::OutOfBounds { .. })
    ));
}

#[test]
fn jump_checks() {
    let list = EntryList {
        head: (BASE + 8 * P) | IND_INDIRECTION,
        pages: vec![BASE + 8 * P],
        bytes: P,
        bounced_pages: 0,
        zero_filled_pages: 0,
        in_place_pages: 0,
        sources: vec![Range::from_len(BASE + 12 * P, P).unwrap()],
    };
    let dests = [Range::from_len(BASE, 4 * P).unwrap()];
    assert_eq!(check_jump(&list, &dests, BASE + 9 * P, 300), Ok(()));
    assert!(matches!(
        check_jump(&list, &dests, BASE + P, 300),
        Err(Error::Overlap {
            b_what: What::Destination(0),
            ..
        })
    ));
    assert!(matches!(
        check_jump(&list, &dests, BASE + 8 * P, 300),
        Err(Error::Overlap {
            b_what: What::ListPage,
            ..
        })
    ));
    assert!(matches!(
        check_jump(&list, &dests, BASE + 12 * P, 300),
        Err(Error::Overlap {
            b_what: What::Source(0),
            ..
        })
    ));
    assert!(matches!(
        check_jump(&list, &dests, BASE + 9 * P + 4, 300),
        Err(Error::Misaligned { .. })
    ));
    assert_eq!(
        check_jump(&list, &dests, BASE + 9 * P, P + 4),
        Err(Error::TrampolineTooBig { len: P + 4 })
    );
    let bad = EntryList {
        head: BASE | IND_SOURCE,
        ..list
    };
    assert!(matches!(
        check_jump(&bad, &dests, BASE + 9 * P, 300),
        Err(Error::BadHead { .. })
    ));
}

#[test]
fn phys_memory_stays_in_its_window() {
    let mut buf = vec![0u8; 3 * P as usize];
    let start = buf.as_mut_ptr() as u64;
    let window = Range::from_len(start, 2 * P).unwrap();
    // SAFETY: the window is the first two pages of `buf`, which nothing else touches while
    // `mem` is used, and host addresses are "identity mapped" for this purpose.
    let mut mem = unsafe { PhysMemory::new(window) };
    mem.write(start + 10, b"kexboot").unwrap();
    let mut got = [0u8; 7];
    mem.read(start + 10, &mut got).unwrap();
    assert_eq!(&got, b"kexboot");
    assert!(mem.write(start + 2 * P - 3, b"xxxx").is_err());
    assert!(mem.read(0, &mut got).is_err());
    assert!(mem.read(u64::MAX - 2, &mut got).is_err());
    assert_eq!(&buf[10..17], b"kexboot");
    assert!(buf[2 * P as usize - 3..].iter().all(|&b| b == 0));
}

/// A segment read straight to its destination (`src == dst`) is not copied: its whole pages get
/// no entry, its partial last page is bounced and its tail zero-filled; another segment whose
/// source overlaps that destination still gets its bytes (bounced at plan time, before any
/// write), and its own destination is written as usual.
#[test]
fn in_place_segments_are_not_copied() {
    let ram = ram(64);
    let mut mem = VecMemory::new(BASE, (64 * P) as usize).unwrap();
    for (i, b) in mem.bytes_mut().iter_mut().enumerate() {
        *b = (i * 13 + i / 4096) as u8;
    }
    let orig = mem.clone();
    let in_place = Segment {
        src: BASE,
        len: 5 * P + 100,
        dst: BASE,
        memsz: 8 * P,
    };
    // Reads the in-place segment's pages 2..4 (unaligned), lands at page 16.
    let other = Segment {
        src: BASE + 2 * P + 8,
        len: 2 * P,
        dst: BASE + 16 * P,
        memsz: 2 * P,
    };
    let l = Layout {
        ram: &ram,
        reserved: &[],
        control: &[],
    };
    let segs = [in_place, other];
    let list = build(&segs, &l, &mut mem, &mut pages_from(BASE + 32 * P)).unwrap();
    assert_eq!(list.in_place_pages, 5);
    // The partial page of the in-place segment and both pages of the other (their source
    // overlaps a destination) are bounced; two tail pages come from the zero page.
    assert_eq!((list.bounced_pages, list.zero_filled_pages), (3, 2));
    assert_eq!(list.bytes, (1 + 2 + 2) * P);
    let stats = simulate(&mut mem, list.head, 1000).unwrap();
    assert_eq!(stats.pages_copied * P, list.bytes);
    // One destination entry for the copy segment, one where the in-place one resumes.
    assert_eq!(stats.destinations, 2);
    let r = |s: u64, len: u64| Range::from_len(s, len).unwrap();
    assert_eq!(
        mem.slice(r(BASE, 5 * P + 100)),
        orig.slice(r(BASE, 5 * P + 100))
    );
    assert!(mem
        .slice(r(BASE + 5 * P + 100, 3 * P - 100))
        .unwrap()
        .iter()
        .all(|&b| b == 0));
    assert_eq!(
        mem.slice(r(BASE + 16 * P, 2 * P)),
        orig.slice(r(BASE + 2 * P + 8, 2 * P))
    );
    // An in-place segment still gets every destination check.
    let reserved = [r(BASE + 3 * P, P)];
    let l = Layout {
        reserved: &reserved,
        ..l
    };
    assert!(matches!(
        validate(&[in_place], &l),
        Err(Error::Overlap {
            b_what: What::Reserved,
            ..
        })
    ));
}
