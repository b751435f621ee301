//! The shell on the host: its commands, run through the one command table on a [`TestBoard`].

use kexboot_boot::script::Outcome;
use kexboot_tests::board::*;
use kexboot_tests::*;

#[test]
fn load_reads_a_file_to_ram_and_sets_filesize() {
    let data = pattern(3, 5000);
    let disk = mbr_fat16(&[("/boot/blob", &data)]);
    let (mut sh, mut env) = shell_on(TestBoard::new(), Some(disk));
    sh.default_addresses(&mut env);
    let addr = env.get("kernel_addr_r").expect("kernel_addr_r").to_string();
    let line = format!("load virtio 0:1 {addr} /boot/blob; version");
    assert_eq!(sh.run(&mut env, "t", &line).unwrap(), Outcome::Success);
    assert_eq!(env.get("filesize"), Some("1388"));
    let a = u64::from_str_radix(addr.trim_start_matches("0x"), 16).unwrap();
    assert_eq!(ram_at(&sh, a, data.len()), &data[..]);
    let out = sh.board().output();
    assert!(out.contains("5000 bytes read\n"), "{out}");
    assert!(out.contains("(host-test)"), "{out}");
    // Into kexboot's heap: refused, nothing written.
    let line = format!("load virtio 0:1 {:#x} /boot/blob", BOARD_HEAP.start());
    assert_eq!(sh.run(&mut env, "t", &line).unwrap(), Outcome::Failure);
    assert!(sh.board().output().contains("is not free RAM"));
}
