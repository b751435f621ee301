//! The extlinux.conf text every test disk and the netboot root carry.

/// One `label` of an extlinux.conf.
pub(crate) struct Entry<'a> {
    pub label: &'a str,
    pub linux: &'a str,
    pub initrd: &'a str,
    pub append: &'a str,
}

pub(crate) fn extlinux(default: &str, entries: &[Entry]) -> String {
    let mut s = format!("# written by cargo xtask\ndefault {default}\ntimeout 0\n");
    for e in entries {
        s += &format!(
            "\nlabel {}\n    menu label kexboot test: {}\n    linux {}\n    initrd {}\n    append {}\n",
            e.label, e.label, e.linux, e.initrd, e.append
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extlinux_format() {
        let s = extlinux(
            "a",
            &[Entry {
                label: "a",
                linux: "/boot/Image",
                initrd: "/boot/i",
                append: "x=1",
            }],
        );
        assert!(s.contains("default a\ntimeout 0\n"));
        assert!(s.contains("label a\n"));
        assert!(s.contains("    linux /boot/Image\n    initrd /boot/i\n    append x=1\n"));
    }
}
