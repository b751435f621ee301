//! Netboot through the shell on the host: `dhcp`, `tftpboot`, `pxe get`/`pxe boot`, `ping`
//! and `netboot` on a [`TestBoard`] plugged into the in-process network of `kexboot-testnet`
//! (one virtual clock), the jump recorded and refused.

use std::cell::RefCell;
use std::rc::Rc;

use kexboot_boot::env::Env;
use kexboot_boot::script::Outcome;
use kexboot_boot::shell::Shell;
use kexboot_testnet::{Network, World, CLIENT_IP, SERVER_IP};
use kexboot_tests::board::*;
use kexboot_tests::*;

type Sh = Shell<TestBoard>;

/// The config names the MAC-specific config would have (the test NIC's MAC).
const MAC_CFG: &str = "pxelinux/pxelinux.cfg/01-52-54-00-12-34-56";
const DEFAULT_CFG: &str = "pxelinux/pxelinux.cfg/default";

/// A diskless shell on a fresh network (seed `seed`) serving `files`; the world to inspect.
fn netshell(seed: u64, files: &[(&str, &[u8])]) -> (Sh, Env, Rc<RefCell<World>>) {
    let net = Network::new(seed);
    let world = net.world.clone();
    for (name, data) in files {
        world.borrow_mut().add_file(name, data);
    }
    let (sh, mut env) = shell_on(on_network(net), None);
    sh.default_addresses(&mut env);
    (sh, env, world)
}

#[test]
fn dhcp_sets_the_lease_variables() {
    let (mut sh, mut env, _) = netshell(1, &[]);
    let (out, said) = run(&mut sh, &mut env, "dhcp");
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(env.get("ipaddr"), Some(CLIENT_IP.to_string().as_str()));
    assert_eq!(env.get("netmask"), Some("255.255.255.0"));
    assert_eq!(env.get("gatewayip"), Some(SERVER_IP.to_string().as_str()));
    assert_eq!(env.get("dnsip"), Some("10.0.2.3"));
    // Option 66 is a name, not an address: the next server (siaddr) it is.
    assert_eq!(env.get("serverip"), Some("10.0.2.4"));
    assert_eq!(env.get("bootfile"), Some("pxelinux/pxelinux.0"));
    assert_eq!(env.get("ethaddr"), Some("52:54:00:12:34:56"));
    assert!(
        said.starts_with("DHCP: 10.0.2.15/24 router 10.0.2.2"),
        "{said}"
    );
    assert!(sh.board().marks.iter().any(|m| m.0 == "DHCP lease"));
}

#[test]
fn dhcp_without_a_nic_or_a_server_fails() {
    let (mut sh, mut env) = shell_on(TestBoard::new(), None);
    let (out, said) = run(&mut sh, &mut env, "dhcp");
    assert_eq!(out, Outcome::Failure);
    assert_eq!(said, "no network device (virtio-net)\n");

    let net = Network::new(2);
    net.world.borrow_mut().dhcp.enabled = false;
    let (mut sh, mut env) = shell_on(on_network(net), None);
    let (out, said) = run(&mut sh, &mut env, "dhcp");
    assert_eq!(out, Outcome::Failure);
    assert!(said.starts_with("DHCP: "), "{said}");
    assert_eq!(env.get("ipaddr"), None);
}

#[test]
fn tftpboot_puts_the_file_in_ram_and_sets_filesize() {
    let blob = pattern(11, 123_457);
    let (mut sh, mut env, world) = netshell(3, &[("images/blob", &blob)]);
    let (out, said) = run(
        &mut sh,
        &mut env,
        "dhcp; tftpboot ${kernel_addr_r} images/blob",
    );
    assert_eq!(out, Outcome::Success, "{said}");
    let a = var(&env, "kernel_addr_r");
    assert_eq!(ram_at(&sh, a, blob.len()), &blob[..]);
    assert_eq!(
        env.get("filesize"),
        Some(format!("{:x}", blob.len()).as_str())
    );
    assert_eq!(env.get("fileaddr"), Some(format!("{a:x}").as_str()));
    let crc = crc32(&blob);
    assert!(
        said.contains(&format!("TFTP 'images/blob': {} bytes", blob.len())),
        "{said}"
    );
    assert!(said.contains(&format!("crc32 {crc:#010x}")), "{said}");
    // A file the server does not have: the server's words, filesize unchanged.
    let (out, said) = run(&mut sh, &mut env, "tftpboot ${ramdisk_addr_r} images/nope");
    assert_eq!(out, Outcome::Failure);
    assert!(said.contains("tftpboot: 'images/nope': "), "{said}");
    assert_eq!(
        env.get("filesize"),
        Some(format!("{:x}", blob.len()).as_str())
    );
    // Into kexboot's heap: refused before anything is asked of the server.
    let asked = world.borrow().requested.len();
    let line = format!("tftpboot {:x} images/blob", BOARD_HEAP.start());
    let (out, said) = run(&mut sh, &mut env, &line);
    assert_eq!(out, Outcome::Failure);
    assert!(said.contains("is not free RAM"), "{said}");
    assert_eq!(world.borrow().requested.len(), asked);
    assert_eq!(world.borrow().requested, ["images/blob", "images/nope"]);
}

fn crc32(data: &[u8]) -> u32 {
    // CRC-32 (IEEE), bitwise: the summary line's checksum, computed independently.
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn pxe_get_prefers_the_mac_config_over_default() {
    let (mut sh, mut env, world) = netshell(
        4,
        &[(MAC_CFG, b"label mac\n"), (DEFAULT_CFG, b"label default\n")],
    );
    let (out, said) = run(&mut sh, &mut env, "pxe get");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(said.contains(&format!("PXE: using {MAC_CFG}\n")), "{said}");
    assert_eq!(world.borrow().requested, [MAC_CFG]);

    // Only `default`: every PXELINUX name is asked for first, in order.
    let (mut sh, mut env, world) = netshell(5, &[(DEFAULT_CFG, b"label default\n")]);
    let (out, said) = run(&mut sh, &mut env, "pxe get");
    assert_eq!(out, Outcome::Success, "{said}");
    let mut want = vec![MAC_CFG.to_string()];
    let hex = "0A00020F"; // 10.0.2.15
    want.extend(
        (1..=8)
            .rev()
            .map(|n| format!("pxelinux/pxelinux.cfg/{}", &hex[..n])),
    );
    want.push(DEFAULT_CFG.into());
    assert_eq!(world.borrow().requested, want);
    assert!(
        said.contains(&format!("PXE: using {DEFAULT_CFG}\n")),
        "{said}"
    );

    // None of them: refused.
    let (mut sh, mut env, _) = netshell(6, &[]);
    let (out, said) = run(&mut sh, &mut env, "pxe get");
    assert_eq!(out, Outcome::Failure);
    assert!(
        said.ends_with("pxe get: the server has none of the PXE config files\n"),
        "{said}"
    );
}

/// A PXE config: `netlinux` (the default) with kernel and initrd, then an entry whose kernel
/// the server does not have.
fn pxe_files(k: &[u8], initrd: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let cfg = "default netlinux\ntimeout 0\n\
               label netlinux\n  kernel images/Image\n  initrd /pxelinux/images/initrd\n  append console=ttyAMA0\n\
               label broken\n  kernel images/none\n";
    vec![
        (DEFAULT_CFG, cfg.as_bytes().to_vec()),
        ("pxelinux/images/Image", k.to_vec()),
        ("pxelinux/images/initrd", initrd.to_vec()),
    ]
}

#[test]
fn pxe_boot_jumps_to_the_entry_fetched_by_tftp() {
    let spec = KernelSpec::new(700_000, 21);
    let (k, initrd) = (spec.build(), pattern(22, 333_333));
    let files = pxe_files(&k, &initrd);
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, &d[..])).collect();
    let (mut sh, mut env, world) = netshell(7, &refs);
    let (out, said) = run(&mut sh, &mut env, "pxe get; pxe boot");
    assert_eq!(out, Outcome::Failure, "the board refuses the jump: {said}");
    assert!(said.contains("pxe boot: no entry of pxelinux/pxelinux.cfg/default could be booted"));
    let jumps = &sh.board().jumps;
    assert_eq!(jumps.len(), 1, "{said}");
    let j = &jumps[0];
    assert_eq!(j.label, "netlinux");
    let kseg = j
        .segments
        .iter()
        .find(|s| s.dst == j.entry)
        .expect("a segment starts at the entry");
    assert_eq!(kseg.len, k.len() as u64);
    assert!(kseg.memsz >= spec.image_size());
    assert!(
        j.segments.iter().any(|s| s.len == initrd.len() as u64),
        "{:?}",
        j.segments
    );
    let asked = world.borrow().requested.clone();
    assert!(
        asked.contains(&"pxelinux/images/Image".to_string()),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"pxelinux/images/initrd".to_string()),
        "{asked:?}"
    );
    assert_eq!(
        asked.last().map(String::as_str),
        Some("pxelinux/images/none"),
        "the next entry was tried after the refused jump"
    );
}

#[test]
fn pxe_boot_with_a_missing_kernel_boots_nothing() {
    let cfg = "label gone\n  kernel images/missing\n";
    let (mut sh, mut env, world) = netshell(8, &[(DEFAULT_CFG, cfg.as_bytes())]);
    let (out, said) = run(&mut sh, &mut env, "pxe boot");
    assert_eq!(out, Outcome::Failure);
    assert!(
        said.ends_with("pxe boot: no entry of pxelinux/pxelinux.cfg/default could be booted\n"),
        "{said}"
    );
    assert!(sh.board().jumps.is_empty());
    assert!(world
        .borrow()
        .requested
        .contains(&"pxelinux/images/missing".to_string()));
}

#[test]
fn ping_the_gateway() {
    let (mut sh, mut env, world) = netshell(9, &[]);
    let (out, said) = run(&mut sh, &mut env, "ping 10.0.2.2");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(said.contains("host 10.0.2.2 is alive (rtt "), "{said}");
    assert_eq!(world.borrow().echo_requests, 1);
    assert_eq!(
        env.get("ipaddr"),
        Some("10.0.2.15"),
        "ping got an address by DHCP first"
    );
    let (out, said) = run(&mut sh, &mut env, "ping 10.0.2.99");
    assert_eq!(out, Outcome::Failure);
    assert!(
        said.contains("ping failed; host 10.0.2.99 is not alive"),
        "{said}"
    );
    let (out, said) = run(&mut sh, &mut env, "ping 10.0.2");
    assert_eq!(out, Outcome::Failure);
    assert_eq!(said, "'10.0.2' is not an IPv4 address\n");
}

#[test]
fn netboot_falls_back_to_pxe() {
    let spec = KernelSpec::new(300_000, 31);
    let (k, initrd) = (spec.build(), pattern(32, 4096));
    let files = pxe_files(&k, &initrd);
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, &d[..])).collect();
    let (mut sh, mut env, _) = netshell(10, &refs);
    let (out, said) = run(&mut sh, &mut env, "netboot");
    assert_eq!(out, Outcome::Failure);
    assert!(
        said.contains("netboot failed: pxe boot: no entry"),
        "{said}"
    );
    let labels: Vec<_> = sh.board().jumps.iter().map(|j| j.label.as_str()).collect();
    assert_eq!(labels, ["netlinux"]);
}

#[test]
fn netboot_runs_the_boot_script_dhcp_names() {
    let net = Network::new(11);
    let world = net.world.clone();
    world.borrow_mut().dhcp.opt67 = Some("scripts/boot.txt");
    let script =
        "echo net-script-ran\nsetenv from_net ${serverip}\ntftpboot ${kernel_addr_r} payload\n";
    world
        .borrow_mut()
        .add_file("scripts/boot.txt", script.as_bytes());
    let payload = pattern(12, 9000);
    world.borrow_mut().add_file("payload", &payload);
    let (mut sh, mut env) = shell_on(on_network(net), None);
    sh.default_addresses(&mut env);
    let (out, said) = run(&mut sh, &mut env, "netboot");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(said.contains("net-script-ran\n"), "{said}");
    assert_eq!(env.get("from_net"), Some("10.0.2.4"));
    assert_eq!(
        ram_at(&sh, var(&env, "kernel_addr_r"), payload.len()),
        &payload[..]
    );
    assert_eq!(world.borrow().requested, ["scripts/boot.txt", "payload"]);
    assert!(sh.board().jumps.is_empty());
}

#[test]
fn a_network_boot_script_cannot_start_netboot_again() {
    let net = Network::new(13);
    let world = net.world.clone();
    world.borrow_mut().dhcp.opt67 = Some("loop.txt");
    // A hostile (or careless) server: the script it names runs netboot, which would fetch and
    // run the same script again, without end.
    world
        .borrow_mut()
        .add_file("loop.txt", b"echo round\nnetboot\necho after\n");
    let (mut sh, mut env) = shell_on(on_network(net), None);
    let (out, said) = run(&mut sh, &mut env, "netboot");
    // The inner netboot fails; the script goes on (as U-Boot's do) and its last line succeeds.
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(said.ends_with("after\n"), "{said}");
    assert_eq!(said.matches("round\n").count(), 1, "{said}");
    assert!(
        said.contains("netboot failed: a boot script from the network cannot run netboot"),
        "{said}"
    );
    assert_eq!(world.borrow().requested, ["loop.txt"]);
    // The shell is usable after: a later netboot runs the script once more.
    let (_, said) = run(&mut sh, &mut env, "netboot");
    assert_eq!(said.matches("round\n").count(), 1, "{said}");
}

#[test]
fn wget_puts_the_file_in_ram_or_says_what_the_server_said() {
    let blob = pattern(41, 234_567);
    let (mut sh, mut env, world) = netshell(41, &[("images/blob", &blob)]);
    let (out, said) = run(
        &mut sh,
        &mut env,
        "dhcp; wget ${kernel_addr_r} http://10.0.2.2/images/blob",
    );
    assert_eq!(out, Outcome::Success, "{said}");
    let a = var(&env, "kernel_addr_r");
    assert_eq!(ram_at(&sh, a, blob.len()), &blob[..]);
    assert_eq!(
        env.get("filesize"),
        Some(format!("{:x}", blob.len()).as_str())
    );
    let crc = crc32(&blob);
    assert!(
        said.contains(&format!("HTTP 'images/blob': {} bytes in ", blob.len())),
        "{said}"
    );
    assert!(said.contains(&format!("crc32 {crc:#010x}")), "{said}");
    // U-Boot's `host:path` form; a file the server does not have.
    let (out, said) = run(
        &mut sh,
        &mut env,
        "wget ${ramdisk_addr_r} 10.0.2.2:/images/nope",
    );
    assert_eq!(out, Outcome::Failure);
    assert!(
        said.contains("HTTP 'images/nope': 404 Not Found from 10.0.2.2\n"),
        "{said}"
    );
    // Into kexboot's heap: refused before anything is asked of the server.
    let asked = world.borrow().http.requests.len();
    let line = format!("wget {:x} http://10.0.2.2/images/blob", BOARD_HEAP.start());
    let (out, said) = run(&mut sh, &mut env, &line);
    assert_eq!(out, Outcome::Failure);
    assert!(said.contains("is not free RAM"), "{said}");
    assert_eq!(world.borrow().http.requests.len(), asked);
    // A host name, resolved by the DNS server DHCP named.
    world
        .borrow_mut()
        .dns_names
        .insert("boot.example".into(), SERVER_IP);
    let (out, said) = run(
        &mut sh,
        &mut env,
        "wget ${kernel_addr_r} boot.example:images/blob",
    );
    assert_eq!(out, Outcome::Success, "{said}");
    assert_eq!(world.borrow().dns_queries, 1);
}

#[test]
fn netboot_over_http_pxe_with_an_http_boot_file() {
    let spec = KernelSpec::new(600_000, 42);
    let (k, initrd) = (spec.build(), pattern(43, 444_444));
    let files = pxe_files(&k, &initrd);
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, &d[..])).collect();
    let (mut sh, mut env, world) = netshell(42, &refs);
    {
        let mut w = world.borrow_mut();
        w.dhcp.opt67 = Some("http://10.0.2.2/pxelinux/pxelinux.0");
        // The kernel's connection drops after 100 000 bytes: resumed by Range.
        w.http.reset_after = vec![100_000];
    }
    env.set("httpboot", "yes");
    let (out, said) = run(&mut sh, &mut env, "netboot");
    assert_eq!(out, Outcome::Failure, "the board refuses the jump: {said}");
    let labels: Vec<_> = sh.board().jumps.iter().map(|j| j.label.as_str()).collect();
    assert_eq!(labels, ["netlinux"], "{said}");
    let w = world.borrow();
    assert_eq!(w.vendor_class, b"HTTPClient:Arch:00022:UNDI:003000");
    // Nothing by TFTP; the PXELINUX names in order by HTTP, the MAC's first (a 404).
    assert!(w.requested.is_empty(), "{:?}", w.requested);
    let paths: Vec<&str> = w.http.requests.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(paths[0], MAC_CFG);
    assert!(
        said.contains(&format!("HTTP '{MAC_CFG}': 404 Not Found from 10.0.2.2\n")),
        "{said}"
    );
    assert!(
        said.contains(&format!("PXE: using http://10.0.2.2/{DEFAULT_CFG}\n")),
        "{said}"
    );
    assert!(paths.contains(&"pxelinux/images/Image"), "{paths:?}");
    assert!(paths.contains(&"pxelinux/images/initrd"), "{paths:?}");
    assert!(
        said.contains("HTTP 'pxelinux/images/Image': connection closed after"),
        "{said}"
    );
    assert!(
        said.contains(&format!("crc32 {:#010x}", crc32(&k))),
        "{said}"
    );
    assert!(
        said.contains(&format!("crc32 {:#010x}", crc32(&initrd))),
        "{said}"
    );
    let resumed = w
        .http
        .requests
        .iter()
        .any(|(p, from)| p == "pxelinux/images/Image" && *from > 0);
    assert!(resumed, "{:?}", w.http.requests);
    // Config names, sizes, kernel and initrd: one connection but for the one reset.
    assert_eq!(w.http.connections, 2, "{said}");
}

#[test]
fn netboot_runs_a_boot_script_named_by_url() {
    let net = Network::new(44);
    let world = net.world.clone();
    world.borrow_mut().dhcp.opt67 = Some("http://10.0.2.2/scripts/boot.txt");
    let script = "echo http-script-ran\nwget ${kernel_addr_r} http://10.0.2.2/payload\n";
    world
        .borrow_mut()
        .add_file("scripts/boot.txt", script.as_bytes());
    let payload = pattern(45, 9000);
    world.borrow_mut().add_file("payload", &payload);
    let (mut sh, mut env) = shell_on(on_network(net), None);
    sh.default_addresses(&mut env);
    let (out, said) = run(&mut sh, &mut env, "netboot");
    assert_eq!(out, Outcome::Success, "{said}");
    assert!(said.contains("http-script-ran\n"), "{said}");
    assert_eq!(
        ram_at(&sh, var(&env, "kernel_addr_r"), payload.len()),
        &payload[..]
    );
    let w = world.borrow();
    assert!(w.requested.is_empty(), "nothing by TFTP: {:?}", w.requested);
    let paths: Vec<&str> = w.http.requests.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(paths, ["scripts/boot.txt", "payload"]);
}

#[test]
fn a_server_that_refuses_head_still_serves_pxe_by_get() {
    let spec = KernelSpec::new(300_000, 46);
    let (k, initrd) = (spec.build(), pattern(47, 5000));
    let files = pxe_files(&k, &initrd);
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, &d[..])).collect();
    let (mut sh, mut env, world) = netshell(46, &refs);
    {
        let mut w = world.borrow_mut();
        w.dhcp.opt67 = Some("http://10.0.2.2/pxelinux/pxelinux.0");
        // The first request for the kernel (the HEAD that sizes it) is refused.
        w.http.status_once = vec![("pxelinux/images/Image".into(), 405)];
    }
    let (_, said) = run(&mut sh, &mut env, "netboot");
    let labels: Vec<_> = sh.board().jumps.iter().map(|j| j.label.as_str()).collect();
    assert_eq!(labels, ["netlinux"], "{said}");
    assert!(
        said.contains("HTTP 'pxelinux/images/Image': 405 Status 405 from 10.0.2.2"),
        "{said}"
    );
    assert!(
        said.contains(&format!("crc32 {:#010x}", crc32(&k))),
        "{said}"
    );
    assert!(
        world.borrow().http.heads >= 2,
        "the initrd still sized by HEAD"
    );
}
