//! Plans that break the relocator contract (DESIGN.md "The relocator contract"): a destination
//! over reserved memory, over kexboot or its heap (the control pages), outside RAM or over
//! another destination is refused before anything moves, with both ranges named. Also proves
//! the whole-flow checker itself can fail.

use kexboot_relocate::{self as relocate, Error, Memory, VecMemory, What};
use kexboot_tests::*;

const CONF: &str = "/boot/extlinux/extlinux.conf";

fn refused(segs: &[relocate::Segment], m: &Machine) -> Error {
    let control = m.control();
    let layout = m.layout(&control);
    let e = relocate::validate(segs, &layout).expect_err("plan must be refused");
    // `build` refuses the same way, before writing a byte or asking for a page.
    let mut mem = VecMemory::new(RAM.start(), RAM.len() as usize).unwrap();
    fill_ram(&mut mem);
    let before = mem.clone();
    let mut asked = 0;
    let mut alloc = || {
        asked += 1;
        None
    };
    assert_eq!(
        relocate::build(segs, &layout, &mut mem, &mut alloc),
        Err(e.clone())
    );
    assert_eq!(asked, 0);
    assert!(mem == before, "a refused plan wrote memory");
    e
}

#[test]
fn destination_over_reserved_memory() {
    let m = Machine::default();
    let segs = segments(&[(0x4020_0000, 3 * MIB), (RAMOOPS.start() - PAGE, 2 * PAGE)]);
    let e = refused(&segs, &m);
    let dst = Range::new(RAMOOPS.start() - PAGE, RAMOOPS.start() + PAGE).unwrap();
    assert_eq!(
        e,
        Error::Overlap {
            a: dst,
            a_what: What::Destination(1),
            b: RAMOOPS,
            b_what: What::Reserved
        }
    );
    assert_eq!(
        e.to_string(),
        "destination #1 0x43fff000-0x44001000 overlaps reserved 0x44000000-0x44100000"
    );
}

#[test]
fn destination_over_kexboot_or_its_heap() {
    let m = Machine::default();
    let segs = segments(&[(KEXBOOT_IMAGE.end() - PAGE, MIB)]);
    let e = refused(&segs, &m);
    let dst = Range::new(KEXBOOT_IMAGE.end() - PAGE, KEXBOOT_IMAGE.end() - PAGE + MIB).unwrap();
    assert_eq!(
        e,
        Error::Overlap {
            a: dst,
            a_what: What::Destination(0),
            b: KEXBOOT_IMAGE,
            b_what: What::Control
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("0x401ff000-0x402ff000") && msg.contains("control 0x40000000-0x40200000"),
        "{msg}"
    );

    let segs = segments(&[(0x4100_0000, PAGE), (m.heap.start() + 64 * MIB, 5000)]);
    let e = refused(&segs, &m);
    assert!(
        matches!(e, Error::Overlap { a_what: What::Destination(1), b, b_what: What::Control, .. } if b == m.heap),
        "{e:?}"
    );
}

#[test]
fn destination_outside_ram_or_over_another() {
    let m = Machine::default();
    let segs = segments(&[(RAM.end() - PAGE, 2 * PAGE)]);
    let e = refused(&segs, &m);
    assert_eq!(
        e,
        Error::NotInRam {
            range: Range::new(RAM.end() - PAGE, RAM.end() + PAGE).unwrap(),
            what: What::Destination(0)
        }
    );
    assert!(e.to_string().contains("not in RAM"));

    let segs = segments(&[(0x4100_0000, 2 * MIB), (0x4110_0000, MIB)]);
    let e = refused(&segs, &m);
    assert!(
        matches!(
            e,
            Error::Overlap {
                a_what: What::Destination(0),
                b_what: What::Destination(1),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("0x41000000-0x41200000")
            && e.to_string().contains("0x41100000-0x41200000")
    );
}

fn booted_flow(m: &Machine) -> (Outcome, Vec<u8>) {
    let k = kernel(600 * KIB as usize, 50);
    let cfg = b"label l\n  kernel /Image\n  initrd /i\n  append l\n";
    let initrd = pattern(51, 10_000);
    let files: [(&str, &[u8]); 3] = [(CONF, cfg), ("/Image", &k), ("/i", &initrd)];
    (
        m.run(
            &mut open(mbr_fat16(&files)),
            &mut m.staging(),
            &mut FakePlatform::default(),
        ),
        k,
    )
}

#[test]
fn flow_plan_moved_over_reserved_or_control_is_refused() {
    let m = Machine::default();
    let (out, _) = booted_flow(&m);
    let p = out.prepared();
    for (i, target, what) in [
        (2, RAMOOPS.start(), What::Reserved),
        (0, m.heap.start(), What::Control),
        (1, 0x4010_0000, What::Control),
    ] {
        let mut segs = p.segments.clone();
        segs[i].dst = target;
        let e = refused(&segs, &m);
        match e {
            Error::Overlap {
                a, a_what, b_what, ..
            } => {
                assert_eq!(
                    (a.start(), a_what, b_what),
                    (target, What::Destination(i), what)
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
#[should_panic(expected = "/chosen/bootargs")]
fn checker_catches_wrong_command_line() {
    let m = Machine::default();
    let (out, k) = booted_flow(&m);
    let initrd = pattern(51, 10_000);
    m.boot_and_check(
        out.prepared(),
        &Expect {
            kernel: &k,
            initrd: Some(&initrd),
            append: "l ",
            label: "l",
        },
    );
}

#[test]
#[should_panic(expected = "kernel bytes differ")]
fn checker_catches_wrong_kernel_byte() {
    let m = Machine::default();
    let (out, mut k) = booted_flow(&m);
    k[5000] ^= 1;
    let initrd = pattern(51, 10_000);
    m.boot_and_check(
        out.prepared(),
        &Expect {
            kernel: &k,
            initrd: Some(&initrd),
            append: "l",
            label: "l",
        },
    );
}

#[test]
#[should_panic(expected = "changed outside the plan")]
fn checker_catches_a_stray_write() {
    // A list whose extra entry writes one page into the ramoops region: the simulation does it,
    // and the "nothing outside the plan" comparison must see it.
    let m = Machine::default();
    let (out, _) = booted_flow(&m);
    let p = out.prepared();
    let r = m.relocate(p).unwrap();
    let mut mem = r.before.clone();
    let first = r.list.head & !0xfff;
    let mut page = vec![0u8; PAGE as usize];
    mem.read(first, &mut page).unwrap();
    // Prepend DESTINATION(ramoops) + SOURCE(list page itself) by shifting the first page's entries.
    let mut words: Vec<u64> = page
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(
        words.len() >= 3 && words[words.len() - 2..].iter().all(|&w| w == 0),
        "list page full"
    );
    words.insert(0, first | relocate::IND_SOURCE);
    words.insert(0, RAMOOPS.start() | relocate::IND_DESTINATION);
    words.truncate(page.len() / 8);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    mem.write(first, &bytes).unwrap();
    relocate::simulate(&mut mem, r.list.head, 1 << 20).unwrap();
    assert!(
        mem.slice(RAMOOPS) != r.before.slice(RAMOOPS),
        "the stray write happened"
    );
    assert_only_destinations_changed(&r.before, &mem, &p.segments);
}
