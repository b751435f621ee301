//! Reads and edits by path (`dt::property`, `visit`, `set_property`, `remove_*`, `add_node`,
//! `set_total_size`): libfdt's path rules, everything else passing through, refusals named.

use kexboot_loader::dt::{self, PathError, Visit};
use kexboot_loader::Error;

const VIRT: &[u8] = include_bytes!("data/qemu-virt.dtb");

#[test]
fn paths_resolve_as_libfdt_resolves_them() {
    assert_eq!(
        dt::property(VIRT, "/pl011", "compatible").unwrap(),
        b"arm,pl011\0arm,primecell\0"
    );
    assert_eq!(
        dt::property(VIRT, "//cpus//cpu@1/", "reg").unwrap(),
        [0, 0, 0, 1]
    );
    assert_eq!(dt::property(VIRT, "/nope", "reg"), Err(PathError::NoNode));
    assert_eq!(
        dt::property(VIRT, "/cpus", "nope"),
        Err(PathError::NoProperty)
    );
    assert_eq!(
        dt::property(VIRT, "ethernet0", "reg"),
        Err(PathError::NoNode),
        "no /aliases"
    );
    let with_alias = dt::add_node(VIRT, "/", "aliases").unwrap();
    let with_alias =
        dt::set_property(&with_alias, "/aliases", "serial0", b"/pl011@9000000\0").unwrap();
    assert_eq!(
        dt::property(&with_alias, "serial0", "reg").unwrap().len(),
        16
    );
    assert!(matches!(
        dt::property(&VIRT[..100], "/", "x"),
        Err(PathError::Dt(Error::BadDtb { .. }))
    ));
}

#[test]
fn edits_change_only_what_they_name() {
    let out = dt::set_property(VIRT, "/chosen", "bootargs", b"console=ttyAMA0\0").unwrap();
    assert_eq!(
        dt::property(&out, "/chosen", "bootargs").unwrap(),
        b"console=ttyAMA0\0"
    );
    let out = dt::remove_property(&out, "/chosen", "bootargs").unwrap();
    let out = dt::remove_node(&out, "/cpus/cpu-map").unwrap();
    let mut names = Vec::new();
    dt::visit(&out, "/cpus", 1, &mut |v| {
        if let Visit::Node { name, depth: 1 } = v {
            names.push(name.to_string());
        }
        true
    })
    .unwrap();
    assert_eq!(names, ["cpu@0", "cpu@1"]);
    assert_eq!(dt::add_node(&out, "/", "cpus"), Err(PathError::Exists));
    assert_eq!(dt::add_node(&out, "/", "a/b"), Err(PathError::BadName));
    assert_eq!(
        dt::set_property(&out, "/", "", b""),
        Err(PathError::BadName)
    );
    assert_eq!(dt::remove_node(&out, "/"), Err(PathError::Root));
    // A tree booti would refuse is refused where the edit is made.
    assert!(matches!(
        dt::set_property(VIRT, "/", "#size-cells", &[0; 8]),
        Err(PathError::Dt(Error::BadDtb { .. }))
    ));
    // The rest is as it was.
    assert_eq!(
        dt::compact(VIRT).unwrap(),
        dt::compact(
            &dt::remove_property(
                &dt::set_property(VIRT, "/chosen", "x", b"").unwrap(),
                "/chosen",
                "x"
            )
            .unwrap()
        )
        .unwrap()
    );
}

#[test]
fn total_size_grows_and_refuses_what_does_not_fit() {
    let mut b = dt::compact(VIRT).unwrap();
    let used = b.len();
    dt::set_total_size(&mut b, used + 0x1000).unwrap();
    assert_eq!(b.len(), used + 0x1000);
    assert_eq!(
        dt::Header::parse(&b, b.len()).unwrap().total_size(),
        used + 0x1000
    );
    assert_eq!(
        dt::property(&b, "/chosen", "stdout-path").unwrap(),
        b"/pl011@9000000\0"
    );
    assert!(dt::set_total_size(&mut b, used - 1).is_err());
    assert!(matches!(
        dt::set_total_size(&mut b, 3 << 20),
        Err(Error::DtbTooLarge { .. })
    ));
}
