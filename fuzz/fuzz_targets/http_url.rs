//! URLs of HTTP boot (`net/src/http.rs` `Url::parse`/`join`, `net/src/pxe.rs` `resolve`): a
//! boot file URL from DHCP and a path from a PXE config or a `Location` header, both hostile.
//! Never a panic; a parsed URL prints as a URL that parses back to itself; a relative path
//! stays on the base's host and port; what `resolve` makes of a path under a URL prefix is a
//! URL (the joined one when the path joins), never a TFTP path.
#![no_main]

use kexboot_net::http::{is_url, Url};
use kexboot_net::pxe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (base, reference) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = pxe::resolve(base, reference);
    let Ok(u) = Url::parse(base) else {
        return;
    };
    let again = Url::parse(&u.to_string()).expect("a printed URL parses");
    assert_eq!(again, u);
    assert!(u.path.starts_with('/'));
    if let Ok(j) = u.join(reference) {
        // A path (not a URL, not scheme-relative `//host/...`) stays on the base's server.
        if !reference.contains("://") && !reference.starts_with("//") {
            assert_eq!((&j.host, j.port), (&u.host, u.port));
        }
        assert!(j.path.starts_with('/'));
        assert_eq!(Url::parse(&j.to_string()).as_ref(), Ok(&j));
    }
    let r = pxe::resolve(&u.to_string(), reference);
    assert!(is_url(&r), "{r:?}");
    let rel = reference.trim();
    if !rel.starts_with("::") && !is_url(rel) {
        if let Ok(j) = u.join(rel) {
            assert_eq!(r, j.to_string());
        }
    }
});
