//! PXELINUX conventions: the boot file's directory prefix, the order in which config files are
//! looked up over TFTP, and how paths named in a config resolve against the prefix.

use alloc::{
    format,
    string::{String, ToString},
    vec::Vec,
};
use core::net::Ipv4Addr;

/// Directory part of the DHCP boot file ("pxelinux/pxelinux.0" -> "pxelinux/", "pxelinux.0" -> "").
pub fn prefix_of(bootfile: &str) -> &str {
    match bootfile.rfind('/') {
        Some(i) => &bootfile[..=i],
        None => "",
    }
}

/// PXELINUX's config file order under `prefix`: "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff" (lower-case hex), then the address as 8 upper-case hex digits shortened one digit at a time (C000025B, C000025, ..., C), then "default".
pub fn config_paths(prefix: &str, mac: [u8; 6], ip: Ipv4Addr) -> Vec<String> {
    let [a, b, c, d, e, f] = mac;
    let mut out = Vec::with_capacity(10);
    out.push(format!(
        "{prefix}pxelinux.cfg/01-{a:02x}-{b:02x}-{c:02x}-{d:02x}-{e:02x}-{f:02x}"
    ));
    let hex = format!("{:08X}", u32::from(ip));
    for len in (1..=hex.len()).rev() {
        out.push(format!("{prefix}pxelinux.cfg/{}", &hex[..len]));
    }
    out.push(format!("{prefix}pxelinux.cfg/default"));
    out
}

/// A path named inside a PXE config, relative to `prefix` (absolute "/x" → "x" from the TFTP root, like PXELINUX; "::x" too).
/// Under an `http://` prefix the same rules give URLs ("/x" from the web server's root, "../x"
/// resolved); a path that is itself an `http://` URL stays as it is.
pub fn resolve(prefix: &str, path: &str) -> String {
    let path = path.trim();
    if crate::http::is_url(path) {
        return String::from(path);
    }
    if crate::http::is_url(prefix) {
        let rel = match path.strip_prefix("::") {
            Some(rest) => format!("/{}", rest.trim_start_matches('/')),
            None => String::from(path),
        };
        // A path that makes no URL stays a (bad) URL, which its fetch reports; it never
        // turns into a TFTP path.
        return match crate::http::Url::parse(prefix).and_then(|u| u.join(&rel)) {
            Ok(u) => u.to_string(),
            Err(_) => format!("{prefix}{path}"),
        };
    }
    if let Some(rest) = path.strip_prefix("::") {
        return String::from(rest.trim_start_matches('/'));
    }
    if path.starts_with('/') {
        return String::from(path.trim_start_matches('/'));
    }
    format!("{prefix}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefix() {
        assert_eq!(prefix_of("pxelinux/pxelinux.0"), "pxelinux/");
        assert_eq!(prefix_of("a/b/c.efi"), "a/b/");
        assert_eq!(prefix_of("pxelinux.0"), "");
        assert_eq!(prefix_of(""), "");
        assert_eq!(prefix_of("/"), "/");
    }

    #[test]
    fn pxelinux_doc_example_order() {
        // The example of the PXELINUX documentation.
        let p = config_paths(
            "boot/",
            [0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd],
            Ipv4Addr::new(192, 0, 2, 91),
        );
        let want = [
            "01-88-99-aa-bb-cc-dd",
            "C000025B",
            "C000025",
            "C00002",
            "C0000",
            "C000",
            "C00",
            "C0",
            "C",
            "default",
        ];
        let want: Vec<String> = want
            .iter()
            .map(|s| format!("boot/pxelinux.cfg/{s}"))
            .collect();
        assert_eq!(p, want);
        // Leading zeros are kept: 8 digits always.
        let p = config_paths("", [0; 6], Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(p[1], "pxelinux.cfg/0A00020F");
        assert_eq!(p[0], "pxelinux.cfg/01-00-00-00-00-00-00");
    }

    #[test]
    fn resolve_paths() {
        assert_eq!(resolve("pxelinux/", "vmlinuz"), "pxelinux/vmlinuz");
        assert_eq!(
            resolve("pxelinux/", "debian/initrd.gz"),
            "pxelinux/debian/initrd.gz"
        );
        assert_eq!(resolve("pxelinux/", "/boot/vmlinuz"), "boot/vmlinuz");
        assert_eq!(resolve("pxelinux/", "::boot/vmlinuz"), "boot/vmlinuz");
        assert_eq!(resolve("pxelinux/", "::/boot/vmlinuz"), "boot/vmlinuz");
        assert_eq!(resolve("", "Image"), "Image");
    }

    #[test]
    fn resolve_under_an_http_prefix_gives_urls() {
        let p = "http://10.0.2.2:8080/boot/";
        assert_eq!(resolve(p, "vmlinuz"), "http://10.0.2.2:8080/boot/vmlinuz");
        assert_eq!(resolve(p, "../k"), "http://10.0.2.2:8080/k");
        assert_eq!(resolve(p, "/debian/k"), "http://10.0.2.2:8080/debian/k");
        assert_eq!(resolve(p, "::debian/k"), "http://10.0.2.2:8080/debian/k");
        // A URL is taken as it is, under any prefix.
        assert_eq!(resolve("pxelinux/", "http://o/k"), "http://o/k");
        assert_eq!(resolve(p, "HTTP://o/k"), "HTTP://o/k");
        // A path that makes no URL stays a URL (its fetch says why), never a TFTP path.
        assert_eq!(resolve(p, "a b"), "http://10.0.2.2:8080/boot/a b");
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,80}", prefix in "[a-z/]{0,10}", mac in any::<[u8; 6]>(), ip in any::<u32>()) {
            let pre = prefix_of(&s);
            prop_assert!(s.starts_with(pre));
            let r = resolve(&prefix, &s);
            prop_assert!(!r.starts_with('/') || prefix.starts_with('/'));
            let paths = config_paths(&prefix, mac, Ipv4Addr::from(ip));
            prop_assert_eq!(paths.len(), 10);
        }
    }
}
