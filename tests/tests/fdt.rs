//! U-Boot's `fdt` command on the host: a tree loaded to RAM, named with `fdt addr`, grown with
//! `fdt resize`, edited with `fdt set`/`mknode`/`rm`, shown with `fdt print`/`list`/`get`, and
//! booted by `booti` from RAM; and every refusal (not a tree, not RAM, no room, bad syntax,
//! no such node) says why, writes nothing outside the blob, and never panics.

use kexboot_boot::env::Env;
use kexboot_boot::script::Outcome;
use kexboot_boot::shell::Shell;
use kexboot_loader::dt;
use kexboot_tests::board::*;
use kexboot_tests::*;

type Sh = Shell<TestBoard>;

/// A shell whose disk holds QEMU's virt tree (no free space in it) and a kernel, the tree
/// loaded at `fdt_addr_r` and made the working tree.
fn shell_with_tree() -> (Sh, Env, u64) {
    let k = kernel(64 * KIB as usize, 61);
    let (mut sh, mut env) = shell_on(
        TestBoard::new(),
        Some(mbr_fat16(&[
            ("/boot/virt.dtb", QEMU_VIRT_DTB),
            ("/boot/Image", &k),
        ])),
    );
    sh.default_addresses(&mut env);
    let line = "load virtio 0:1 ${fdt_addr_r} /boot/virt.dtb; load virtio 0:1 ${kernel_addr_r} /boot/Image";
    assert_eq!(run(&mut sh, &mut env, line).0, Outcome::Success);
    let a = var(&env, "fdt_addr_r");
    let (out, said) = run(&mut sh, &mut env, "fdt addr ${fdt_addr_r}");
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(said, format!("Working FDT set to {a:x}\n"));
    (sh, env, a)
}

fn total_size(sh: &Sh, addr: u64) -> usize {
    dt::Header::parse(ram_at(sh, addr, 40), usize::MAX)
        .unwrap()
        .total_size()
}

fn tree(sh: &Sh, addr: u64) -> Vec<u8> {
    ram_at(sh, addr, total_size(sh, addr)).to_vec()
}

fn fails(sh: &mut Sh, env: &mut Env, line: &str, want: &str) {
    let (out, said) = run(sh, env, line);
    assert_eq!(out, Outcome::Failure, "{line}: {said}");
    assert!(said.contains(want), "{line}: wanted '{want}', got '{said}'");
}

#[test]
fn addr_resize_set_print_and_booti_reads_the_edit() {
    let (mut sh, mut env, a) = shell_with_tree();
    assert_eq!(env.get("fdtaddr"), Some(format!("{a:x}").as_str()));
    let (_, said) = run(&mut sh, &mut env, "fdt addr");
    assert_eq!(said, format!("Working fdt: {a:08x}\n"));
    let old = tree(&sh, a);
    assert_eq!(old.len(), QEMU_VIRT_DTB.len());

    // QEMU's tree has no free space: a new property does not fit until `fdt resize`.
    fails(
        &mut sh,
        &mut env,
        "fdt set /chosen foo \"bar\"",
        "libfdt fdt_setprop(): FDT_ERR_NOSPACE",
    );
    assert_eq!(tree(&sh, a), old, "nothing written");
    let (out, said) = run(&mut sh, &mut env, "fdt resize");
    assert_eq!(out, Outcome::Success, "{said}");
    let total = total_size(&sh, a) as u64;
    assert!(total >= old.len() as u64 + 80, "{total:#x}");
    assert_eq!((a + total) % 4096, 0, "ends on a page boundary");

    let (out, said) = run(&mut sh, &mut env, "fdt set /chosen foo \"bar\"");
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(total_size(&sh, a) as u64, total, "totalsize kept");
    let (out, said) = run(&mut sh, &mut env, "fdt print /chosen");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(said.starts_with("chosen {\n"), "{said}");
    assert!(said.contains("\tfoo = \"bar\";\n"), "{said}");
    assert!(
        said.contains("\tstdout-path = \"/pl011@9000000\";\n"),
        "{said}"
    );
    assert!(said.ends_with("};\n"), "{said}");
    let (_, said) = run(&mut sh, &mut env, "fdt print /chosen foo");
    assert_eq!(said, "foo = \"bar\"\n");
    assert_eq!(
        dt::property(&tree(&sh, a), "/chosen", "foo").unwrap(),
        b"bar\0"
    );

    // booti reads the edited tree from RAM.
    let (out, said) = run(&mut sh, &mut env, "booti ${kernel_addr_r} - ${fdt_addr_r}");
    assert_eq!(out, Outcome::Failure, "the test board refuses the jump");
    assert!(said.contains("booti: relocation plan refused"), "{said}");
    assert_eq!(sh.board().jumps.len(), 1);
}

#[test]
fn values_in_u_boot_syntax_and_get() {
    let (mut sh, mut env, _) = shell_with_tree();
    assert_eq!(
        run(&mut sh, &mut env, "fdt resize 0x1000").0,
        Outcome::Success
    );
    for line in [
        "fdt set /chosen cells <0x1 2 010>",
        "fdt set /chosen bytes [00 1f ff]",
        "fdt set /chosen list \"a\" \"b c\"",
        "fdt set /chosen flag",
        "fdt set /chosen/ cells <? 7>",
    ] {
        let (out, said) = run(&mut sh, &mut env, line);
        assert_eq!(out, Outcome::Success, "{line}: {said}");
    }
    let (_, said) = run(&mut sh, &mut env, "fdt print /chosen");
    for want in [
        "\tcells = <0x00000001 0x00000007>;\n",
        "\tbytes = [00 1f ff];\n",
        "\tlist = \"a\", \"b c\";\n",
        "\tflag;\n",
    ] {
        assert!(said.contains(want), "wanted {want:?} in {said}");
    }
    let (_, said) = run(&mut sh, &mut env, "fdt print /chosen flag");
    assert_eq!(said, "/chosen flag\n");
    for (line, var, want) in [
        ("fdt get value v /chosen list", "v", Some("a")),
        ("fdt get value v /chosen list 1", "v", Some("b c")),
        ("fdt get value v /chosen cells 1", "v", Some("0x00000007")),
        (
            "fdt get value v /chosen cells",
            "v",
            Some("0000000100000007"),
        ),
        ("fdt get value v / '#size-cells'", "v", Some("0x00000002")),
        ("fdt get size s /chosen bytes", "s", Some("3")),
        ("fdt get size n /cpus", "n", Some("3")),
        ("fdt get name m /cpus 2", "m", Some("cpu@1")),
        ("fdt get value v /chosen flag", "v", None),
    ] {
        let (out, said) = run(&mut sh, &mut env, line);
        assert_eq!(out, Outcome::Success, "{line}: {said}");
        assert_eq!(env.get(var), want, "{line}");
    }
    // Aliases and unit-address-less names resolve as libfdt's do.
    let (out, said) = run(&mut sh, &mut env, "fdt print /pl011 compatible");
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(said, "compatible = \"arm,pl011\", \"arm,primecell\"\n");
}

#[test]
fn list_mknode_rm_and_header() {
    let (mut sh, mut env, a) = shell_with_tree();
    assert_eq!(run(&mut sh, &mut env, "fdt resize").0, Outcome::Success);
    let (_, said) = run(&mut sh, &mut env, "fdt list /cpus");
    assert!(
        said.starts_with("cpus {\n\t#size-cells = <0x00000000>;\n"),
        "{said}"
    );
    assert!(
        said.contains("\tcpu@0 {\n\t};\n"),
        "children without their properties: {said}"
    );
    assert!(!said.contains("\t\t"), "one level only: {said}");

    for line in ["fdt mknode / kexboot", "fdt set /kexboot x <5>"] {
        let (out, said) = run(&mut sh, &mut env, line);
        assert_eq!(out, Outcome::Success, "{line}: {said}");
    }
    let (_, said) = run(&mut sh, &mut env, "fdt print /kexboot");
    assert_eq!(said, "kexboot {\n\tx = <0x00000005>;\n};\n");
    fails(
        &mut sh,
        &mut env,
        "fdt mknode / kexboot",
        "libfdt fdt_add_subnode(): FDT_ERR_EXISTS",
    );
    assert_eq!(
        run(&mut sh, &mut env, "fdt rm /kexboot x").0,
        Outcome::Success
    );
    fails(
        &mut sh,
        &mut env,
        "fdt rm /kexboot x",
        "libfdt fdt_delprop(): FDT_ERR_NOTFOUND",
    );
    assert_eq!(
        run(&mut sh, &mut env, "fdt rm /kexboot").0,
        Outcome::Success
    );
    fails(
        &mut sh,
        &mut env,
        "fdt print /kexboot",
        "libfdt fdt_path_offset() returned FDT_ERR_NOTFOUND",
    );
    fails(&mut sh, &mut env, "fdt rm /", "FDT_ERR_BADOFFSET");

    let (_, said) = run(&mut sh, &mut env, "fdt header");
    let total = total_size(&sh, a);
    assert!(said.starts_with("magic:\t\t\t0xd00dfeed\n"), "{said}");
    assert!(
        said.contains(&format!("totalsize:\t\t0x{total:x} ({total})\n")),
        "{said}"
    );
    assert!(said.contains("version:\t\t17\n"), "{said}");

    let (_, said) = run(&mut sh, &mut env, "fdt addr -c");
    assert_eq!(said, format!("Control fdt: {:08x}\n", BOARD_IMAGE.start()));
    fails(
        &mut sh,
        &mut env,
        "fdt addr -c ${fdt_addr_r}",
        "cannot be moved",
    );
}

#[test]
fn refusals_say_why_and_write_nothing() {
    let (mut sh, mut env) = shell_on(TestBoard::new(), Some(mbr_fat16(&[])));
    sh.default_addresses(&mut env);
    fails(
        &mut sh,
        &mut env,
        "fdt print",
        "No FDT memory address configured",
    );
    fails(
        &mut sh,
        &mut env,
        "fdt addr",
        "No FDT memory address configured",
    );
    fails(
        &mut sh,
        &mut env,
        "fdt addr ${kernel_addr_r}",
        "libfdt fdt_check_header(): FDT_ERR_BADMAGIC",
    );
    fails(
        &mut sh,
        &mut env,
        "fdt addr 0x1000",
        "fdt: 0x1000-0x1028 is not RAM kexboot may read",
    );
    fails(
        &mut sh,
        &mut env,
        "fdt addr zz",
        "'zz' is not a hex address",
    );
    fails(&mut sh, &mut env, "fdt", "usage: fdt addr");
    assert_eq!(env.get("fdtaddr"), None);

    // A header whose totalsize runs past readable RAM.
    let end = BOARD_RAM.end();
    let at = end - 0x1000;
    let mut hdr = QEMU_VIRT_DTB[..40].to_vec();
    hdr[4..8].copy_from_slice(&0x2000u32.to_be_bytes());
    write_ram(&mut sh, at, &hdr);
    fails(
        &mut sh,
        &mut env,
        &format!("fdt addr {at:#x}"),
        "is not RAM kexboot may read",
    );

    // A tree right below memory kexboot keeps: resize may not grow into it.
    let kept = BOARD_KEPT.start();
    let at = kept - QEMU_VIRT_DTB.len() as u64;
    write_ram(&mut sh, at, QEMU_VIRT_DTB);
    let after = ram_at(&sh, kept - 0x1000, 0x1000).to_vec();
    assert_eq!(
        run(&mut sh, &mut env, &format!("fdt addr {at:#x}")).0,
        Outcome::Success
    );
    fails(&mut sh, &mut env, "fdt resize", "is not free RAM");
    fails(
        &mut sh,
        &mut env,
        &format!("fdt addr {at:#x} 0x200000"),
        "is not free RAM",
    );
    assert_eq!(ram_at(&sh, kept - 0x1000, 0x1000), &after[..]);

    // Bad values, paths and sizes: nothing changes.
    let (mut sh, mut env, a) = shell_with_tree();
    let fill = pattern(9, 0x1000);
    let total = QEMU_VIRT_DTB.len() as u64;
    write_ram(&mut sh, a + total, &fill);
    assert_eq!(
        run(
            &mut sh,
            &mut env,
            &format!("fdt addr {a:x} {:x}", total + 0x100)
        )
        .0,
        Outcome::Success
    );
    let before = tree(&sh, a);
    for (line, want) in [
        (
            "fdt set /chosen x <1 2",
            "Unexpected end of value: no closing '>'",
        ),
        (
            "fdt set /chosen x <1 zz>",
            "Sorry, I could not convert \"zz\"",
        ),
        (
            "fdt set /chosen x [100]",
            "Sorry, I could not convert \"100\"",
        ),
        ("fdt set /chosen x <1> 2", "Unexpected character '2'"),
        (
            "fdt set /nope x <1>",
            "libfdt fdt_path_offset() returned FDT_ERR_NOTFOUND",
        ),
        (
            "fdt set nope x <1>",
            "libfdt fdt_path_offset() returned FDT_ERR_NOTFOUND",
        ),
        (
            "fdt get value v /chosen nope",
            "libfdt fdt_getprop(): FDT_ERR_NOTFOUND",
        ),
        ("fdt get name v /cpus 10", "libfdt node not found"),
        ("fdt set /chosen big [00]", ""),
        ("fdt resize 0x200000", "more than a device tree may have"),
        ("fdt set /chosen a/b 1", "FDT_ERR_BADNAME"),
        ("fdt bogus", "usage: fdt"),
    ] {
        let (out, said) = run(&mut sh, &mut env, line);
        if want.is_empty() {
            // Fits the 0x100 bytes `fdt addr <a> <len>` gave.
            assert_eq!(out, Outcome::Success, "{line}: {said}");
            continue;
        }
        assert_eq!(out, Outcome::Failure, "{line}: {said}");
        assert!(said.contains(want), "{line}: wanted '{want}', got '{said}'");
    }
    let now = tree(&sh, a);
    assert_eq!(now.len(), before.len(), "totalsize kept");
    assert_eq!(dt::property(&now, "/chosen", "big").unwrap(), [0]);
    assert_eq!(
        dt::property(&now, "/chosen", "x"),
        Err(dt::PathError::NoProperty)
    );
    // Past the blob, RAM is as it was.
    let past = before.len() as u64;
    assert_eq!(
        ram_at(&sh, a + past, (total + 0x1000 - past) as usize),
        &fill[(past - total) as usize..]
    );
    // A value too long for the room left.
    fails(
        &mut sh,
        &mut env,
        &format!("fdt set /chosen x \"{}\"", "y".repeat(0x200)),
        "FDT_ERR_NOSPACE",
    );
    // A tree overwritten since `fdt addr`: every command checks it again.
    write_ram(&mut sh, a, &[0; 64]);
    fails(&mut sh, &mut env, "fdt print", "FDT_ERR_BADMAGIC");
}

/// Puts `bytes` in simulated RAM at `at`, free or not (the test stands for whatever wrote it).
fn write_ram(sh: &mut Sh, at: u64, bytes: &[u8]) {
    let off = (at - BOARD_RAM.start()) as usize;
    sh.board_mut().ram[off..off + bytes.len()].copy_from_slice(bytes);
}
