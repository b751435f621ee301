//! The whole plan from real inputs: QEMU virt's DTB (as `/sys/firmware/fdt` would show it, with
//! an initrd and the old kernel's bootargs), QEMU virt Linux's `/proc/iomem`, a kexboot image.

use std::path::Path;

use fdt::Fdt;
use kexboot_loader::dt::{fixup, DtInfo, Fixups};
use kexboot_loader::Range;
use kexboot_reboot::{build_plan, purgatory, Error, Inputs, PlaceError, EXIT_REFUSED};

const VIRT_DTB: &[u8] = include_bytes!("../../loader/tests/data/qemu-virt.dtb");
const IOMEM: &str = include_str!("data/qemu-virt-iomem.txt");
const IMAGE_SIZE: u64 = 0x36_8000;

/// The DT Linux booted with: QEMU's, plus what a bootloader added to /chosen.
fn linux_fdt() -> Vec<u8> {
    fixup(
        VIRT_DTB,
        &Fixups {
            bootargs: Some("console=ttyAMA0 root=/dev/vda2 -- single"),
            initrd: Some(Range::new(0x4800_0000, 0x480f_2000).unwrap()),
            ..Fixups::default()
        },
    )
    .unwrap()
}

fn kexboot_image() -> Vec<u8> {
    let mut v = vec![0u8; 0x4_6368];
    v[0..4].copy_from_slice(&0x1400_0014u32.to_le_bytes());
    v[0x10..0x18].copy_from_slice(&IMAGE_SIZE.to_le_bytes());
    v[0x18..0x20].copy_from_slice(&0xau64.to_le_bytes());
    v[0x38..0x3c].copy_from_slice(b"ARM\x64");
    v[0x40..0x48].copy_from_slice(b"KEXBOOT!");
    v[0x48..0x4c].copy_from_slice(&1u32.to_le_bytes());
    v
}

fn inputs<'a>(image: &'a [u8], fdt: &'a [u8], iomem: &'a str) -> Inputs<'a> {
    Inputs {
        image_path: Path::new("/boot/kexboot.bin"),
        image,
        fdt,
        iomem,
        entry: Some("rescue"),
        append: Some("quiet systemd.unit=rescue.target"),
        page: 4096,
    }
}

#[test]
fn qemu_virt_plan() {
    let (image, fdt) = (kexboot_image(), linux_fdt());
    assert!(
        DtInfo::parse(&fdt).unwrap().initrd.is_some(),
        "fixture has an initrd"
    );
    let plan = build_plan(&inputs(&image, &fdt, IOMEM)).unwrap();

    // The DTB: new bootargs, no initrd, everything else kept.
    let out = Fdt::new(&plan.dtb).unwrap();
    let chosen = out.find_node("/chosen").unwrap();
    assert_eq!(
        chosen.property("bootargs").unwrap().as_str(),
        Some("kexboot.entry=rescue -- quiet systemd.unit=rescue.target")
    );
    assert!(chosen.property("linux,initrd-start").is_none());
    assert!(chosen.property("linux,initrd-end").is_none());
    let before = Fdt::new(&fdt).unwrap();
    assert_eq!(
        before.all_nodes().count(),
        out.all_nodes().count(),
        "no node lost"
    );
    let info = DtInfo::parse(&plan.dtb).unwrap();
    assert_eq!(info.memory, [Range::new(0x4000_0000, 0x8000_0000).unwrap()]);
    assert_eq!(info.stdout, DtInfo::parse(VIRT_DTB).unwrap().stdout);

    // The segments, in free RAM after Kernel data (0x41caffff).
    let [k, d, p] = plan.segments();
    assert_eq!(
        k.dest,
        Range::new(0x41e0_0000, 0x41e0_0000 + IMAGE_SIZE).unwrap()
    );
    assert_eq!(k.buf, &image[..]);
    assert_eq!(d.dest.start(), 0x41e0_0000 + IMAGE_SIZE);
    assert_eq!(d.dest.len(), plan.dtb.len().next_multiple_of(4096) as u64);
    assert_eq!(p.dest, Range::from_len(d.dest.end(), 4096).unwrap());
    assert_eq!(plan.entry(), p.dest.start());
    assert_eq!(
        p.buf,
        &purgatory::encode(d.dest.start(), k.dest.start())[..]
    );
    for s in [k, d, p] {
        assert!(s.buf.len() as u64 <= s.dest.len(), "{}", s.name);
        assert_eq!(s.dest.start() % 4096, 0);
        assert_eq!(s.dest.len() % 4096, 0);
    }

    let text = plan.to_string();
    assert!(text.contains("kexboot    0x41e00000..0x42168000"), "{text}");
    assert!(text.contains("\"kexboot.entry=rescue -- quiet"), "{text}");
}

#[test]
fn no_entry_no_append_clears_the_old_bootargs() {
    let (image, fdt) = (kexboot_image(), linux_fdt());
    let mut i = inputs(&image, &fdt, IOMEM);
    i.entry = None;
    i.append = None;
    let plan = build_plan(&i).unwrap();
    let out = Fdt::new(&plan.dtb).unwrap();
    assert_eq!(
        out.find_node("/chosen")
            .unwrap()
            .property("bootargs")
            .unwrap()
            .as_str(),
        Some("")
    );
}

#[test]
fn dt_reserved_memory_is_avoided_too() {
    // A /memreserve/ right where kexboot would go, not listed in iomem.
    let image = kexboot_image();
    let fdt = fixup(
        &linux_fdt(),
        &Fixups {
            extra_reserved: &[Range::new(0x41f0_0000, 0x41f0_1000).unwrap()],
            ..Fixups::default()
        },
    )
    .unwrap();
    let plan = build_plan(&inputs(&image, &fdt, IOMEM)).unwrap();
    assert_eq!(plan.layout.kexboot.start(), 0x4200_0000);
}

#[test]
fn refusals() {
    let (image, fdt) = (kexboot_image(), linux_fdt());

    let mut linux = image.clone();
    linux[0x40..0x48].fill(0);
    let e = build_plan(&inputs(&linux, &fdt, IOMEM)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/boot/kexboot.bin: not a kexboot image: no \"KEXBOOT!\" mark"),
        "{e}"
    );
    assert_eq!(e.exit_code(), EXIT_REFUSED);

    let e = build_plan(&inputs(&image, &fdt[..100], IOMEM)).unwrap_err();
    assert!(matches!(e, Error::Dt(_)), "{e}");
    assert!(e.to_string().starts_with("/sys/firmware/fdt: "), "{e}");

    let zeroed = "00000000-00000000 : System RAM\n  00000000-00000000 : Kernel code\n";
    let e = build_plan(&inputs(&image, &fdt, zeroed)).unwrap_err();
    assert!(e.to_string().contains("must run as root"), "{e}");
    assert_eq!(e.exit_code(), 3);

    let small = "40000000-401fffff : System RAM\n";
    let e = build_plan(&inputs(&image, &fdt, small)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Place(PlaceError::NoRoom {
                what: "kexboot",
                ..
            })
        ),
        "{e}"
    );

    let mut i = inputs(&image, &fdt, IOMEM);
    i.entry = Some("two words");
    let e = build_plan(&i).unwrap_err();
    assert!(matches!(e, Error::Args(_)), "{e}");
    assert_eq!(e.exit_code(), EXIT_REFUSED);
}

#[test]
fn kexec_errors_say_what_to_do() {
    use kexboot_reboot::kexec_error_message as m;
    assert_eq!(
        m(libc::EPERM),
        "kexec_load: permission denied: run as root (needs CAP_SYS_BOOT)"
    );
    assert!(m(libc::ENOSYS).contains("this kernel has no kexec (CONFIG_KEXEC)"));
    assert!(m(libc::EBUSY).contains("CPUs are stuck in the kernel"));
    let inval = m(libc::EINVAL);
    assert!(
        inval.starts_with("kexec_load: ") && inval.contains("nvalid argument"),
        "{inval}"
    );
    assert_eq!(Error::Kexec { errno: libc::EPERM }.exit_code(), 3);
}

#[test]
fn missing_image_message() {
    let err = std::io::Error::from(std::io::ErrorKind::NotFound);
    let e = Error::Read {
        path: "/boot/kexboot.bin".into(),
        err,
    };
    assert_eq!(
        e.to_string(),
        "/boot/kexboot.bin: no such file (the default image; give another with --image PATH)"
    );
    assert_eq!(e.exit_code(), EXIT_REFUSED);
}
