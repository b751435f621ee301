//! The test initramfs: a gzip'd newc cpio with Debian's static busybox, a `/dev/console` node and
//! an `/init` that prints the `KEXBOOT-E2E` markers (command line, boot EL, CPU count) and powers off.

use cpio::newc::{trailer, Builder, ModeFileType};
use flate2::write::GzEncoder;
use std::io::{self, Write};

/// `/init`: a busybox shell script. Its output is what the QEMU cases match on.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo KEXBOOT-E2E-BEGIN
echo "KEXBOOT-E2E cmdline=$(cat /proc/cmdline)"
el=$(dmesg | grep "started at EL" | head -n 1)
echo "KEXBOOT-E2E el=${el:-unknown}"
cpus=$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)
echo "KEXBOOT-E2E cpus=$cpus"
echo KEXBOOT-E2E-END
poweroff -f
"#;

const DIR: u32 = 0o755;
const EXEC: u32 = 0o755;

/// One archive member.
enum Node<'a> {
    Dir,
    File(u32, &'a [u8]),
    Symlink(&'a str),
    CharDev(u32, u32),
}

/// Builds the gzip'd cpio archive around the given static busybox binary.
pub fn build(busybox: &[u8]) -> io::Result<Vec<u8>> {
    let nodes: Vec<(&str, Node)> = vec![
        ("bin", Node::Dir),
        ("sbin", Node::Dir),
        ("usr", Node::Dir),
        ("usr/bin", Node::Dir),
        ("usr/sbin", Node::Dir),
        ("dev", Node::Dir),
        ("proc", Node::Dir),
        ("sys", Node::Dir),
        ("tmp", Node::Dir),
        ("root", Node::Dir),
        ("dev/console", Node::CharDev(5, 1)),
        ("bin/busybox", Node::File(EXEC, busybox)),
        ("bin/sh", Node::Symlink("busybox")),
        ("init", Node::File(EXEC, INIT.as_bytes())),
    ];
    let mut out = GzEncoder::new(Vec::new(), flate2::Compression::default());
    for (i, (name, node)) in nodes.iter().enumerate() {
        let b = Builder::new(name).ino(i as u32 + 1);
        let (b, data): (Builder, &[u8]) = match node {
            Node::Dir => (
                b.mode(DIR)
                    .nlink(2)
                    .set_mode_file_type(ModeFileType::Directory),
                &[],
            ),
            Node::File(perm, data) => (
                b.mode(*perm).set_mode_file_type(ModeFileType::Regular),
                data,
            ),
            Node::Symlink(to) => (
                b.mode(0o777).set_mode_file_type(ModeFileType::Symlink),
                to.as_bytes(),
            ),
            Node::CharDev(major, minor) => (
                b.mode(0o600)
                    .set_mode_file_type(ModeFileType::Char)
                    .rdev_major(*major)
                    .rdev_minor(*minor),
                &[],
            ),
        };
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "member over 4 GiB"))?;
        let mut w = b.write(&mut out, len);
        w.write_all(data)?;
        w.finish()?;
    }
    trailer(&mut out)?;
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpio::NewcReader;
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn archive_round_trips() {
        let bb = b"\x7fELF fake busybox".repeat(100);
        let gz = build(&bb).unwrap();
        let mut cpio = Vec::new();
        GzDecoder::new(&gz[..]).read_to_end(&mut cpio).unwrap();
        let mut rest = &cpio[..];
        let mut seen = Vec::new();
        loop {
            let mut r = NewcReader::new(rest).unwrap();
            if r.entry().is_trailer() {
                break;
            }
            let e = r.entry();
            let (name, mode, maj, min) = (
                e.name().to_string(),
                e.mode(),
                e.rdev_major(),
                e.rdev_minor(),
            );
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            match name.as_str() {
                "bin/busybox" => {
                    assert_eq!(data, bb);
                    assert_eq!(mode, 0o100755);
                }
                "init" => {
                    assert_eq!(data, INIT.as_bytes());
                    assert!(INIT.starts_with("#!/bin/busybox sh\n"));
                }
                "dev/console" => assert_eq!((mode, maj, min), (0o020600, 5, 1)),
                "bin/sh" => assert_eq!((mode, &data[..]), (0o120777, &b"busybox"[..])),
                _ => {}
            }
            seen.push(name);
            rest = r.finish().unwrap();
        }
        for want in ["init", "bin/busybox", "dev/console", "proc", "sys", "dev"] {
            assert!(
                seen.iter().any(|s| s == want),
                "{want} missing from {seen:?}"
            );
        }
    }

    #[test]
    fn init_prints_every_marker() {
        for m in [
            "KEXBOOT-E2E-BEGIN",
            "cmdline=",
            "el=",
            "cpus=",
            "KEXBOOT-E2E-END",
            "poweroff -f",
        ] {
            assert!(INIT.contains(m), "{m}");
        }
    }
}
