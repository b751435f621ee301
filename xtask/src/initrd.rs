//! The test initramfs: a gzip'd newc cpio with Debian's static busybox, a `/dev/console` node and
//! an `/init` that prints the `KEXBOOT-E2E` markers (command line, boot EL, CPU count, the
//! device tree's model, its `__symbols__` count and the test overlay's marker) and powers off.
//! [`build_with`] makes other archives (the warm re-entry one) with their own `/init` and files.

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
dt=/proc/device-tree
echo "KEXBOOT-E2E model=$(tr -d '\000' <$dt/model 2>/dev/null)"
echo "KEXBOOT-E2E symbols=$(ls $dt/__symbols__ 2>/dev/null | wc -l)"
echo "KEXBOOT-E2E overlay=$(tr -d '\000' <$dt/soc/kexboot-test/kexboot,marker 2>/dev/null)"
echo KEXBOOT-E2E-END
poweroff -f
"#;

const DIR: u32 = 0o755;
/// Permissions of executables in the archives.
pub const EXEC: u32 = 0o755;

/// One archive member.
enum Node<'a> {
    Dir,
    File(u32, &'a [u8]),
    Symlink(&'a str),
    CharDev(u32, u32),
}

/// A file added to an archive beside busybox and `/init`.
pub struct Extra {
    /// Path inside the archive, without the leading `/` (parent directories are created).
    pub path: String,
    /// Permission bits.
    pub perm: u32,
    /// Contents.
    pub data: Vec<u8>,
}

/// Builds the gzip'd cpio archive around the given static busybox binary.
pub fn build(busybox: &[u8]) -> io::Result<Vec<u8>> {
    build_with(INIT, busybox, &[])
}

/// Builds a gzip'd cpio archive: busybox, the given `/init` script and `extra` files.
pub fn build_with(init: &str, busybox: &[u8], extra: &[Extra]) -> io::Result<Vec<u8>> {
    let mut nodes: Vec<(String, Node)> = [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root",
    ]
    .iter()
    .map(|d| (d.to_string(), Node::Dir))
    .collect();
    nodes.push(("dev/console".into(), Node::CharDev(5, 1)));
    nodes.push(("bin/busybox".into(), Node::File(EXEC, busybox)));
    nodes.push(("bin/sh".into(), Node::Symlink("busybox")));
    nodes.push(("init".into(), Node::File(EXEC, init.as_bytes())));
    for e in extra {
        let path = e.path.trim_start_matches('/');
        let mut dir = String::new();
        for part in path
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(part);
            if !nodes.iter().any(|(n, _)| *n == dir) {
                nodes.push((dir.clone(), Node::Dir));
            }
        }
        if nodes.iter().any(|(n, _)| n == path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: already in the archive"),
            ));
        }
        nodes.push((path.to_string(), Node::File(e.perm, &e.data)));
    }
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
    fn extra_files_get_their_directories_and_duplicates_fail() {
        let extra = [
            Extra {
                path: "lib/aarch64-linux-gnu/libz.so.1".into(),
                perm: EXEC,
                data: b"z".to_vec(),
            },
            Extra {
                path: "/boot/Image".into(),
                perm: 0o644,
                data: b"img".to_vec(),
            },
        ];
        let gz = build_with("#!/bin/busybox sh\n", b"bb", &extra).unwrap();
        let mut cpio = Vec::new();
        GzDecoder::new(&gz[..]).read_to_end(&mut cpio).unwrap();
        let mut rest = &cpio[..];
        let mut seen = Vec::new();
        loop {
            let mut r = NewcReader::new(rest).unwrap();
            if r.entry().is_trailer() {
                break;
            }
            let (name, mode) = (r.entry().name().to_string(), r.entry().mode());
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            seen.push((name, mode, data));
            rest = r.finish().unwrap();
        }
        let pos = |n: &str| {
            seen.iter()
                .position(|(s, _, _)| s == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert!(pos("lib") < pos("lib/aarch64-linux-gnu"));
        assert!(pos("lib/aarch64-linux-gnu") < pos("lib/aarch64-linux-gnu/libz.so.1"));
        assert!(pos("boot") < pos("boot/Image"));
        assert_eq!(seen[pos("boot")].1, 0o040755);
        assert_eq!(
            seen[pos("boot/Image")],
            ("boot/Image".into(), 0o100644, b"img".to_vec())
        );
        assert_eq!(seen.iter().filter(|(n, _, _)| n == "lib").count(), 1);
        let dup = [Extra {
            path: "init".into(),
            perm: EXEC,
            data: vec![],
        }];
        assert!(build_with("x", b"bb", &dup).is_err());
    }

    #[test]
    fn init_prints_every_marker() {
        for m in [
            "KEXBOOT-E2E-BEGIN",
            "cmdline=",
            "el=",
            "cpus=",
            "model=",
            "symbols=",
            "overlay=",
            "KEXBOOT-E2E-END",
            "poweroff -f",
        ] {
            assert!(INIT.contains(m), "{m}");
        }
    }
}
