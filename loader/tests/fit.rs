//! FIT images and verified boot against FITs and keys made by Debian's mkimage
//! (`tests/data/fit/mkfit.sh`), and the attacks that broke U-Boot's verified boot.

use kexboot_loader::fit::{self, Compression, Fit, FitError, Keys, Opened};
use proptest::prelude::*;

fn data(name: &str) -> Vec<u8> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fit/");
    std::fs::read(format!("{p}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn keys(name: &str) -> Keys {
    Keys::parse(&data(name)).expect("keys parse")
}

/// The image bytes `open` handed out, against the payload files.
fn check_payloads(buf: &[u8], o: &Opened, kernel_file: &str) {
    let part = |p: &Option<fit::Part>| buf[p.as_ref().expect("part").data.clone()].to_vec();
    assert_eq!(part(&o.kernel), data(kernel_file));
    assert_eq!(part(&o.fdt), data("fdt.dtb"));
    assert_eq!(part(&o.ramdisk), data("ramdisk"));
}

fn config_err(r: Result<Opened, FitError>) -> String {
    match r {
        Err(e @ FitError::ConfigSignature { .. }) => e.to_string(),
        other => panic!("expected a configuration signature failure, got {other:?}"),
    }
}

// --- The FDT splicing the attack tests need (offsets from `Fit::nodes`). ---

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

fn set32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// `fit` with `bytes` (a whole number of tokens) inserted at `at` in the structure block, and
/// `remove` bytes dropped there first; the header follows.
fn splice(fit: &[u8], at: usize, remove: usize, bytes: &[u8]) -> Vec<u8> {
    assert_eq!(bytes.len() % 4, 0);
    assert_eq!(remove % 4, 0);
    let mut v = fit[..at].to_vec();
    v.extend_from_slice(bytes);
    v.extend_from_slice(&fit[at + remove..]);
    let delta = bytes.len() as i64 - remove as i64;
    let adj = |x: u32| (x as i64 + delta) as u32;
    set32(&mut v, 4, adj(be32(fit, 4))); // totalsize
    set32(&mut v, 36, adj(be32(fit, 36))); // size_dt_struct
    if be32(fit, 12) as usize > at {
        set32(&mut v, 12, adj(be32(fit, 12))); // off_dt_strings
    }
    v
}

/// The strings block offset of property name `name` (it must exist).
fn nameoff(fit: &[u8], name: &str) -> u32 {
    let (off, size) = (be32(fit, 12) as usize, be32(fit, 32) as usize);
    let strings = &fit[off..off + size];
    let mut pos = 0;
    for s in strings.split(|&b| b == 0) {
        if s == name.as_bytes() {
            return pos as u32;
        }
        pos += s.len() + 1;
    }
    panic!("no string {name}")
}

fn pad(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn begin(name: &str) -> Vec<u8> {
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    pad(&mut v);
    v
}

fn end() -> Vec<u8> {
    2u32.to_be_bytes().to_vec()
}

fn prop(fit: &[u8], name: &str, value: &[u8]) -> Vec<u8> {
    let mut v = 3u32.to_be_bytes().to_vec();
    v.extend_from_slice(&(value.len() as u32).to_be_bytes());
    v.extend_from_slice(&nameoff(fit, name).to_be_bytes());
    v.extend_from_slice(value);
    pad(&mut v);
    v
}

fn node<'a>(f: &'a Fit, path: &str) -> &'a fit::Node<'a> {
    f.nodes().iter().find(|n| n.path == path).expect(path)
}

fn find<'a>(nodes: &'a [fit::Node<'a>], path: &str) -> &'a fit::Node<'a> {
    nodes.iter().find(|n| n.path == path).expect(path)
}

/// Where property `name` of node `path` has its token and how long the token is.
fn prop_token(buf: &[u8], path: &str, name: &str) -> (usize, usize) {
    let nodes = fit::nodes(buf).unwrap();
    let n = find(&nodes, path);
    let (_, r) = n.props.iter().find(|(p, _)| *p == name).expect(name);
    let start = r.start - 12;
    (start, r.end.div_ceil(4) * 4 - start)
}

/// `buf` with property `name` of node `path` set to `value` (the token rewritten).
fn set_prop(buf: &[u8], path: &str, name: &str, value: &[u8]) -> Vec<u8> {
    let (at, len) = prop_token(buf, path, name);
    let p = prop(buf, name, value);
    splice(buf, at, len, &p)
}

fn prop_value(buf: &[u8], path: &str, name: &str) -> Vec<u8> {
    let nodes = fit::nodes(buf).unwrap();
    let n = find(&nodes, path);
    let (_, r) = n.props.iter().find(|(p, _)| *p == name).expect(name);
    buf[r.clone()].to_vec()
}

fn strlist(items: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for i in items {
        v.extend_from_slice(i.as_bytes());
        v.push(0);
    }
    v
}

// --- Good FITs of every kind Debian's mkimage signs. ---

#[test]
fn mkimage_signed_fits_verify() {
    for (itb, keyfile, how) in [
        (
            "rsa.itb",
            "keys-rsa.dtb",
            "signature-1 sha256,rsa2048 key 'key-dev'",
        ),
        (
            "pss.itb",
            "keys-rsa.dtb",
            "signature-1 sha256,rsa2048 key 'key-dev'",
        ),
        (
            "ext.itb",
            "keys-rsa.dtb",
            "signature-1 sha256,rsa2048 key 'key-dev'",
        ),
        (
            "rsa4096.itb",
            "keys-big.dtb",
            "signature-1 sha512,rsa4096 key 'key-big'",
        ),
        (
            "ec.itb",
            "keys-ec.dtb",
            "signature-1 sha256,ecdsa256 key 'ec'",
        ),
    ] {
        let buf = data(itb);
        let o = fit::open(&buf, None, &keys(keyfile)).unwrap_or_else(|e| panic!("{itb}: {e}"));
        assert_eq!(o.conf, "conf-1");
        assert_eq!(o.verified.as_deref(), Some(how), "{itb}");
        check_payloads(&buf, &o, "kernel");
        let k = o.kernel.as_ref().unwrap();
        assert_eq!(k.compression, Compression::None);
        assert_eq!(k.load, Some(0x4048_0000));
        assert_eq!(k.hashes, ["hash-1 sha256", "hash-2 crc32"]);
    }
}

#[test]
fn gzip_kernel_and_named_configuration() {
    let buf = data("gz.itb");
    let o = fit::open(&buf, Some("conf-1"), &keys("keys-rsa.dtb")).unwrap();
    assert_eq!(o.kernel.as_ref().unwrap().compression, Compression::Gzip);
    check_payloads(&buf, &o, "kernel.gz");
    assert!(matches!(
        fit::open(&buf, Some("conf-9"), &Keys::none()),
        Err(FitError::NoConfig(_))
    ));
}

#[test]
fn without_keys_hashes_are_still_checked() {
    let buf = data("rsa.itb");
    let o = fit::open(&buf, Some("conf-2"), &Keys::none()).unwrap();
    assert_eq!(o.verified, None);
    assert!(o.fdt.is_none() && o.ramdisk.is_none());
    let k = o.kernel.unwrap();
    assert_eq!(buf[k.data.clone()], data("kernel")[..]);
    let mut bad = buf.clone();
    bad[k.data.start + 1000] ^= 1;
    assert_eq!(
        fit::open(&bad, None, &Keys::none()).unwrap_err(),
        FitError::HashMismatch {
            image: "kernel-1".into(),
            hash: "hash-1".into(),
            algo: "sha256".into()
        }
    );
}

#[test]
fn key_summary_and_bad_key_blobs() {
    assert_eq!(keys("keys-rsa.dtb").summary(), "1 key, required: conf");
    assert_eq!(keys("keys-two.dtb").summary(), "2 keys, required: conf");
    assert_eq!(
        keys("keys-any.dtb").summary(),
        "2 keys, required: conf (any one key)"
    );
    assert_eq!(keys("keys-img.dtb").summary(), "1 key, required: image");
    assert!(!Keys::none().required());
    assert!(Keys::parse(b"not a dtb").is_err());
    // A modulus that is not num-bits long.
    let k = data("keys-rsa.dtb");
    let m = prop_value(&k, "/signature/key-dev", "rsa,modulus");
    let short = set_prop(&k, "/signature/key-dev", "rsa,modulus", &m[4..]);
    assert!(matches!(Keys::parse(&short), Err(FitError::Keys(_))));
}

// --- Tampered FITs and the wrong keys. ---

#[test]
fn one_changed_kernel_byte_is_refused() {
    let buf = data("rsa.itb");
    let o = fit::open(&buf, None, &keys("keys-rsa.dtb")).unwrap();
    let mut bad = buf.clone();
    bad[o.kernel.unwrap().data.start + 7] ^= 0x80;
    let e = fit::open(&bad, None, &keys("keys-rsa.dtb")).unwrap_err();
    assert!(
        matches!(e, FitError::HashMismatch { ref image, .. } if image == "kernel-1"),
        "{e}"
    );
}

#[test]
fn another_key_unsigned_and_empty_signatures_are_refused() {
    let k = keys("keys-rsa.dtb");
    let e = config_err(fit::open(&data("evil.itb"), None, &k));
    assert!(
        e.contains("required key 'key-dev' verifies no signature"),
        "{e}"
    );
    assert!(e.contains("RSA verification failed"), "{e}");
    // conf-2 has no signature node.
    let e = config_err(fit::open(&data("rsa.itb"), Some("conf-2"), &k));
    assert!(e.contains("no signature node"), "{e}");
    // A signature node mkimage wrote but never signed (no value).
    let e = config_err(fit::open(&data("nosig.itb"), None, &k));
    assert!(
        e.contains("no hashed-strings") || e.contains("no signature value"),
        "{e}"
    );
    // The signature node emptied of everything.
    let buf = data("rsa.itb");
    let f = Fit::parse(&buf).unwrap();
    let s = node(&f, "/configurations/conf-1/signature-1");
    let mut empty = begin("signature-1");
    empty.extend(end());
    let bad = splice(&buf, s.begin, s.end - s.begin, &empty);
    let e = config_err(fit::open(&bad, None, &k));
    assert!(e.contains("signature-1:"), "{e}");
    // The signature node removed.
    let bad = splice(&buf, s.begin, s.end - s.begin, &[]);
    let e = config_err(fit::open(&bad, None, &k));
    assert!(e.contains("no signature node"), "{e}");
}

#[test]
fn a_changed_signed_property_is_refused() {
    let buf = data("rsa.itb");
    let k = keys("keys-rsa.dtb");
    // The kernel's load address, and the configuration's ramdisk.
    let bad = set_prop(
        &buf,
        "/images/kernel-1",
        "load",
        &0x4000_0000u32.to_be_bytes(),
    );
    assert!(config_err(fit::open(&bad, None, &k)).contains("RSA verification failed"));
    let bad = set_prop(&buf, "/configurations/conf-1", "description", b"other\0");
    assert!(config_err(fit::open(&bad, None, &k)).contains("RSA verification failed"));
    // The hash value (hash and data changed together).
    let o = fit::open(&buf, None, &k).unwrap();
    let mut bad = buf.clone();
    let kd = o.kernel.unwrap().data;
    bad[kd.start] ^= 1;
    let h = sha256(&bad[kd.clone()]);
    let bad = set_prop(&bad, "/images/kernel-1/hash-1", "value", &h);
    let crc = crc32fast::hash(&bad[kd.clone()]).to_be_bytes();
    let bad = set_prop(&bad, "/images/kernel-1/hash-2", "value", &crc);
    assert!(config_err(fit::open(&bad, None, &k)).contains("RSA verification failed"));
}

fn sha256(b: &[u8]) -> Vec<u8> {
    fit::sig::Hash::Sha256.digest(&[b])
}

#[test]
fn required_mode_all_and_any() {
    let buf = data("rsa.itb");
    let e = config_err(fit::open(&buf, None, &keys("keys-two.dtb")));
    assert!(e.contains("required key 'key-big'"), "{e}");
    let o = fit::open(&buf, None, &keys("keys-any.dtb")).unwrap();
    assert_eq!(
        o.verified.as_deref(),
        Some("signature-1 sha256,rsa2048 key 'key-dev'")
    );
}

#[test]
fn image_signatures() {
    let buf = data("img.itb");
    let k = keys("keys-img.dtb");
    let o = fit::open(&buf, None, &k).unwrap();
    assert_eq!(
        o.verified.as_deref(),
        Some("every image signed, key key-dev")
    );
    check_payloads(&buf, &o, "kernel");
    // The kernel's data changed (and its hash with it): its image signature fails.
    let kd = o.kernel.as_ref().unwrap().data.clone();
    let mut bad = buf.clone();
    bad[kd.start + 9] ^= 4;
    let h = sha256(&bad[kd.clone()]);
    let bad = set_prop(&bad, "/images/kernel-1/hash-1", "value", &h);
    let crc = crc32fast::hash(&bad[kd.clone()]).to_be_bytes();
    let bad = set_prop(&bad, "/images/kernel-1/hash-2", "value", &crc);
    let e = fit::open(&bad, None, &k).unwrap_err();
    assert!(
        matches!(e, FitError::ImageSignature { ref image, .. } if image == "kernel-1"),
        "{e}"
    );
    let v = prop_value(&buf, "/images/fdt-1/signature-1", "value");
    let mut flipped = v.clone();
    flipped[10] ^= 1;
    let bad = set_prop(&buf, "/images/fdt-1/signature-1", "value", &flipped);
    let e = fit::open(&bad, None, &k).unwrap_err();
    assert!(
        matches!(e, FitError::ImageSignature { ref image, .. } if image == "fdt-1"),
        "{e}"
    );
    // And rsa.itb has no image signatures at all.
    assert!(matches!(
        fit::open(&data("rsa.itb"), None, &k),
        Err(FitError::ImageSignature { .. })
    ));
}

#[test]
fn algorithm_other_than_the_keys_is_refused() {
    let buf = data("rsa.itb");
    let k = keys("keys-rsa.dtb");
    for algo in [
        "sha512,rsa2048",
        "sha1,rsa2048",
        "sha256,ecdsa256",
        "sha256,rsa4096",
    ] {
        let mut v = algo.as_bytes().to_vec();
        v.push(0);
        let bad = set_prop(&buf, "/configurations/conf-1/signature-1", "algo", &v);
        let e = config_err(fit::open(&bad, None, &k));
        assert!(
            e.contains(&format!("signed as {algo}, but key 'key-dev' is")),
            "{e}"
        );
    }
    // A PSS signature checked as PKCS#1 v1.5.
    let pss = data("pss.itb");
    let bad = set_prop(
        &pss,
        "/configurations/conf-1/signature-1",
        "padding",
        b"pkcs-1.5\0",
    );
    assert!(config_err(fit::open(&bad, None, &k)).contains("RSA verification failed"));
    // An ECDSA key given an RSA-signed FIT.
    let e = config_err(fit::open(&buf, None, &keys("keys-ec.dtb")));
    assert!(
        e.contains("signed as sha256,rsa2048, but key 'ec' is ecdsa256"),
        "{e}"
    );
}

// --- The attacks that broke U-Boot. ---

/// CVE-2020-10648: a new configuration naming a new image, with a copy of the signed
/// configuration's signature, made the default.
#[test]
fn cve_2020_10648_signature_copied_to_another_configuration() {
    let buf = data("rsa.itb");
    let k = keys("keys-rsa.dtb");
    let f = Fit::parse(&buf).unwrap();
    let evil_data = vec![0x5au8; 4096];
    let mut img = begin("evil");
    img.extend(prop(&buf, "data", &evil_data));
    img.extend(prop(&buf, "type", b"kernel\0"));
    img.extend(prop(&buf, "arch", b"arm64\0"));
    img.extend(prop(&buf, "compression", b"none\0"));
    img.extend(begin("hash-1"));
    img.extend(prop(&buf, "algo", b"sha256\0"));
    img.extend(prop(&buf, "value", &sha256(&evil_data)));
    img.extend(end());
    img.extend(end());
    let sig = node(&f, "/configurations/conf-1/signature-1");
    let sig_bytes = buf[sig.begin..sig.end].to_vec();
    let mut conf = begin("conf-3");
    conf.extend(prop(&buf, "kernel", b"evil\0"));
    conf.extend(prop(&buf, "fdt", b"fdt-1\0"));
    conf.extend(sig_bytes);
    conf.extend(end());
    // conf-3 after conf-2 (the end of /configurations), the image before kernel-1.
    let confs_end = node(&f, "/configurations").end - 4;
    let at_img = node(&f, "/images/kernel-1").begin;
    let bad = splice(&buf, confs_end, 0, &conf);
    let bad = splice(&bad, at_img, 0, &img);
    let bad = set_prop(&bad, "/configurations", "default", b"conf-3\0");
    // Unsigned, it would boot the evil kernel: the FIT is well formed.
    let o = fit::open(&bad, None, &Keys::none()).unwrap();
    assert_eq!(bad[o.kernel.unwrap().data], evil_data[..]);
    // With the key required it is refused.
    let e = config_err(fit::open(&bad, None, &k));
    assert!(e.contains("conf-3"), "{e}");
    // And conf-1 still boots its own kernel from the same file.
    let o = fit::open(&bad, Some("conf-1"), &k).unwrap();
    check_payloads(&bad, &o, "kernel");
}

/// CVE-2021-27138: a node whose name differs from a signed one only by a unit address.
#[test]
fn cve_2021_27138_unit_address_aliases() {
    let buf = data("rsa.itb");
    let k = keys("keys-rsa.dtb");
    let f = Fit::parse(&buf).unwrap();
    let evil = vec![0xa5u8; 4096];
    let mut img = begin("kernel-1@0");
    img.extend(prop(&buf, "data", &evil));
    img.extend(prop(&buf, "type", b"kernel\0"));
    img.extend(prop(&buf, "compression", b"none\0"));
    img.extend(begin("hash-1"));
    img.extend(prop(&buf, "algo", b"sha256\0"));
    img.extend(prop(&buf, "value", &sha256(&evil)));
    img.extend(end());
    img.extend(end());
    // Before and after the signed node: exact lookups never pick it.
    for at in [
        node(&f, "/images/kernel-1").begin,
        node(&f, "/images/kernel-1").end,
    ] {
        let bad = splice(&buf, at, 0, &img);
        let o = fit::open(&bad, None, &k).unwrap();
        check_payloads(&bad, &o, "kernel");
    }
    // A configuration with a unit address next to the signed one.
    let mut conf = begin("conf-1@0");
    conf.extend(prop(&buf, "kernel", b"kernel-1\0"));
    conf.extend(end());
    let bad = splice(&buf, node(&f, "/configurations/conf-1").begin, 0, &conf);
    assert!(fit::open(&bad, None, &k).is_ok());
    let e = fit::open(&bad, Some("conf-1@0"), &k).unwrap_err();
    assert!(e.to_string().contains("unit address"), "{e}");
    // A FIT whose own names have unit addresses: refused outright with keys, fine without.
    let unit = data("unit.itb");
    let e = fit::open(&unit, None, &k).unwrap_err();
    assert!(e.to_string().contains("'conf@1' has a unit address"), "{e}");
    let o = fit::open(&unit, None, &Keys::none()).unwrap();
    check_payloads(&unit, &o, "kernel");
}

#[test]
fn hashed_nodes_that_do_not_match_are_refused() {
    let buf = data("rsa.itb");
    let k = keys("keys-rsa.dtb");
    let path = "/configurations/conf-1/signature-1";
    let good = [
        "/",
        "/configurations/conf-1",
        "/images/kernel-1",
        "/images/kernel-1/hash-1",
        "/images/kernel-1/hash-2",
        "/images/fdt-1",
        "/images/fdt-1/hash-1",
        "/images/ramdisk-1",
        "/images/ramdisk-1/hash-1",
    ];
    // The same set in another order still verifies (the regions follow the tree).
    let mut shuffled = good;
    shuffled.reverse();
    let ok = set_prop(&buf, path, "hashed-nodes", &strlist(&shuffled));
    assert!(fit::open(&ok, None, &k).is_ok());
    let mut missing = good.to_vec();
    missing.retain(|p| !p.starts_with("/images/ramdisk-1"));
    let mut twice = good.to_vec();
    twice.push("/images/kernel-1");
    let mut ghost = good.to_vec();
    ghost.push("/images/nothere");
    for (list, want) in [
        (missing, "does not cover '/images/ramdisk-1'"),
        (twice, "names '/images/kernel-1' twice"),
        (ghost, "names '/images/nothere'"),
    ] {
        let bad = set_prop(&buf, path, "hashed-nodes", &strlist(&list));
        let e = config_err(fit::open(&bad, None, &k));
        assert!(e.contains(want), "{e}");
    }
    // mkimage itself left fdt and ramdisk out (sign-images = "kernel").
    let e = config_err(fit::open(&data("partial.itb"), None, &k));
    assert!(e.contains("does not cover '/images/fdt-1'"), "{e}");
    // hashed-strings past the strings block.
    let bad = set_prop(&buf, path, "hashed-strings", &[0, 0, 0, 0, 0, 1, 0, 0]);
    assert!(config_err(fit::open(&bad, None, &k)).contains("hashed-strings"));
}

/// CVE-2021-27097 and friends: external data outside the file, inside the tree, overlapping
/// another image, or of a huge size. These properties are not signed: the bounds refuse them.
#[test]
fn external_data_out_of_bounds_is_refused() {
    let buf = data("ext.itb");
    let k = keys("keys-rsa.dtb");
    let o = fit::open(&buf, None, &k).unwrap();
    assert!(o.kernel.as_ref().unwrap().data.start >= be32(&buf, 4) as usize);
    let kernel_off = prop_value(&buf, "/images/kernel-1", "data-offset");
    let cases: [(&str, &str, Vec<u8>, &str); 5] = [
        (
            "/images/kernel-1",
            "data-size",
            0xffff_fff0u32.to_be_bytes().to_vec(),
            "runs past the end",
        ),
        (
            "/images/kernel-1",
            "data-offset",
            0xffff_fff0u32.to_be_bytes().to_vec(),
            "runs past the end",
        ),
        (
            "/images/fdt-1",
            "data-offset",
            kernel_off.clone(),
            "overlaps image 'kernel-1'",
        ),
        (
            "/images/fdt-1",
            "data-size",
            vec![0, 0, 0],
            "without data-size",
        ),
        (
            "/images/kernel-1",
            "data-size",
            0x1_0000u32.to_be_bytes().to_vec(),
            "hash mismatch",
        ),
    ];
    for (path, name, value, want) in cases {
        let bad = set_prop(&buf, path, name, &value);
        let e = fit::open(&bad, None, &k).unwrap_err().to_string();
        assert!(e.contains(want), "{path} {name}: {e}");
    }
    // Data placed inside the tree itself: data-offset wraps to the FIT's start.
    let total = be32(&buf, 4);
    let to_start = (u32::MAX - total.div_ceil(4) * 4).wrapping_add(1);
    let bad = set_prop(
        &buf,
        "/images/kernel-1",
        "data-offset",
        &to_start.to_be_bytes(),
    );
    let e = fit::open(&bad, None, &k).unwrap_err().to_string();
    assert!(
        e.contains("overlaps the FIT's own tree") || e.contains("runs past the end"),
        "{e}"
    );
}

/// `fit` with `name` appended to its strings block (header following); its offset.
fn add_string(fit: &[u8], name: &str) -> (Vec<u8>, u32) {
    let (off, size) = (be32(fit, 12) as usize, be32(fit, 32) as usize);
    let at = off + size;
    let mut v = fit[..at].to_vec();
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    v.extend_from_slice(&fit[at..]);
    let n = name.len() as u32 + 1;
    set32(&mut v, 32, size as u32 + n);
    set32(&mut v, 4, be32(fit, 4) + n);
    (v, size as u32)
}

/// External data placed inside the tree itself (`data-position` 0): refused before anything
/// reads it (the property is not signed).
#[test]
fn external_data_inside_the_tree_is_refused() {
    let buf = data("ext.itb");
    let k = keys("keys-rsa.dtb");
    let (grown, pos_name) = add_string(&buf, "data-position");
    let (at, len) = prop_token(&grown, "/images/kernel-1", "data-offset");
    let mut tok = 3u32.to_be_bytes().to_vec();
    tok.extend_from_slice(&4u32.to_be_bytes());
    tok.extend_from_slice(&pos_name.to_be_bytes());
    tok.extend_from_slice(&0u32.to_be_bytes());
    let bad = splice(&grown, at, len, &tok);
    for keys in [&k, &Keys::none()] {
        let e = fit::open(&bad, None, keys).unwrap_err().to_string();
        assert!(
            e.contains("image 'kernel-1'") && e.contains("overlaps the FIT's own tree"),
            "{e}"
        );
    }
}

/// Names that would make a path naming another node.
#[test]
fn empty_and_slashed_node_names_are_refused() {
    let buf = data("rsa.itb");
    let f = Fit::parse(&buf).unwrap();
    for name in ["", "a/b"] {
        let mut n = begin(name);
        n.extend(end());
        let bad = splice(&buf, node(&f, "/images/kernel-1").begin, 0, &n);
        let e = fit::open(&bad, None, &Keys::none())
            .unwrap_err()
            .to_string();
        assert!(e.contains("node name empty or with a '/'"), "{name:?}: {e}");
    }
}

/// Limits on what a hostile tree can make kexboot allocate or hash.
#[test]
fn hostile_sizes_are_bounded() {
    let buf = data("rsa.itb");
    let k = keys("keys-rsa.dtb");
    // A string list of 100,000 empty strings where the kernel is named.
    let bad = set_prop(
        &buf,
        "/configurations/conf-1",
        "kernel",
        &vec![0u8; 100_000],
    );
    assert!(fit::open(&bad, None, &k).is_err());
    // 20,000 NOPs.
    let f = Fit::parse(&buf).unwrap();
    let nops: Vec<u8> = (0..20_000).flat_map(|_| 4u32.to_be_bytes()).collect();
    let bad = splice(&buf, node(&f, "/images/kernel-1").begin, 0, &nops);
    let e = fit::open(&bad, None, &k).unwrap_err().to_string();
    assert!(e.contains("too many tokens"), "{e}");
    // Nine signature nodes.
    let sig = node(&f, "/configurations/conf-1/signature-1");
    let one = buf[sig.begin..sig.end].to_vec();
    let mut many = Vec::new();
    for i in 0..9 {
        let mut n = one.clone();
        let name = format!("signature-{i}");
        n.splice(
            4..4 + 12,
            begin(&name)[4..]
                .iter()
                .copied()
                .chain(std::iter::repeat(0))
                .take(12),
        );
        many.extend(n);
    }
    let bad = splice(&buf, sig.begin, sig.end - sig.begin, &many);
    let e = fit::open(&bad, None, &k).unwrap_err().to_string();
    assert!(e.contains("more than the 8"), "{e}");
}

#[test]
fn too_deep_nesting_is_refused() {
    let buf = data("rsa.itb");
    let f = Fit::parse(&buf).unwrap();
    let mut deep = Vec::new();
    for i in 0..40 {
        deep.extend(begin(&format!("n{i}")));
    }
    for _ in 0..40 {
        deep.extend(end());
    }
    let bad = splice(&buf, node(&f, "/images/kernel-1").begin, 0, &deep);
    let e = fit::open(&bad, None, &Keys::none()).unwrap_err();
    assert!(e.to_string().contains("nested too deeply"), "{e}");
}

#[test]
fn truncated_fits_are_refused() {
    let buf = data("rsa.itb");
    let k = keys("keys-rsa.dtb");
    for len in [0, 3, 40, 100, 1000, buf.len() / 2, buf.len() - 1] {
        assert!(fit::open(&buf[..len], None, &k).is_err(), "{len}");
    }
    let ext = data("ext.itb");
    let e = fit::open(&ext[..ext.len() - 1], None, &k).unwrap_err();
    assert!(e.to_string().contains("runs past the end"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any one byte changed anywhere: either refused, or exactly the signed payloads come out.
    #[test]
    fn one_flipped_byte_never_yields_other_payloads(pos in 0usize..77318, bit in 0u8..8) {
        let buf = data("rsa.itb");
        let k = keys("keys-rsa.dtb");
        let mut bad = buf.clone();
        let pos = pos % bad.len();
        bad[pos] ^= 1 << bit;
        if let Ok(o) = fit::open(&bad, None, &k) {
            check_payloads(&bad, &o, "kernel");
        }
    }

    /// Random bytes after a valid header never panic the parser or the verifier.
    #[test]
    fn garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut buf = data("rsa.itb")[..40].to_vec();
        buf.extend(tail);
        let _ = fit::open(&buf, None, &keys("keys-rsa.dtb"));
        let _ = fit::open(&buf, None, &Keys::none());
        let _ = Keys::parse(&buf);
    }
}
