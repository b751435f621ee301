//! Signed FIT images for the verified-boot cases and bench, made with Debian's own tools around
//! the Debian kernel of the assets: keys by `openssl`, key blobs by `mkimage -K` (plus `fdtput`
//! to mark the ECDSA key required: Debian 12's mkimage writes no `required` for it), FITs by
//! `mkimage -f image.its -k keydir -K keys.dtb -r`.
//!
//! Under `target/assets/fit/`:
//! - `keys/`: `dev` and `other` (RSA 2048, with the `.crt` mkimage 2023.01 reads) and `ec`
//!   (P-256);
//! - `keys-rsa.dtb` (`dev`, required conf), `keys-ec.dtb` (`ec`, required conf), and
//!   `virt-keys.dtb`: QEMU virt's own tree with `dev` added, for U-Boot's control FDT;
//! - the FITs (kernel, ramdisk and QEMU virt's tree; `conf-1` signed, `conf-2` not):
//!   `good.itb` (the 27 MB Image, sha256,rsa2048 by `dev`), `good-gz.itb` (Image.gz),
//!   `tampered.itb` (good-gz with one kernel byte changed), `unsigned.itb` (no signature
//!   node), `other.itb` (signed by `other`), `ec.itb` (sha256,ecdsa256 by `ec`);
//! - two disks: `disk-fit-rsa.img` and `disk-fit-ec.img` (see [`build`]).

use crate::assets::Assets;
use crate::disk::{Disk, Scheme};
use crate::qemu;
use crate::util::{err, run_status, Context, Paths, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when what is written for the same inputs changes.
const VERSION: u32 = 2;

/// The machine the FITs' device tree is QEMU's own for (`-M virt`, 2 CPUs, 1 GiB).
pub const SMP: u32 = 2;

/// Command lines of the entries: which one booted is read from the initramfs's marker.
pub fn cmdline(tag: &str) -> String {
    format!("console=ttyAMA0 kexboot.test=fit-{tag} quiet")
}

/// What [`build`] made.
pub struct FitAssets {
    pub keys_rsa: PathBuf,
    pub keys_ec: PathBuf,
    /// QEMU virt's tree with the `dev` key, for U-Boot (`-dtb`).
    pub virt_keys: PathBuf,
    pub good: PathBuf,
    /// Entries (in order): tampered, unsigned, other, plain Image, good: each refused but the
    /// last, with a key required; without one, the unsigned and the plain ones boot.
    pub disk_rsa: PathBuf,
    /// Entries: the RSA-signed good-gz, then ec: with the ECDSA key required, the first is
    /// refused and the second boots.
    pub disk_ec: PathBuf,
}

fn tool(prog: &str) -> Result<PathBuf> {
    crate::tools::find(prog)
        .ok_or_else(|| err!("{prog} not found (`cargo xtask assets` installs it)"))
}

fn run(prog: &str, args: &[&str], dir: &Path) -> Result<()> {
    run_status(Command::new(tool(prog)?).args(args).current_dir(dir))
}

/// An empty key blob with the `/signature` node mkimage 2023.01 needs for ECDSA keys.
fn empty_keys(dir: &Path, name: &str) -> Result<()> {
    let src = dir.join(format!("{name}.dts"));
    fs::write(&src, "/dts-v1/;\n/ { signature { }; };\n").ctx(src.display())?;
    run(
        "dtc",
        &["-I", "dts", "-O", "dtb", "-o", name, &format!("{name}.dts")],
        dir,
    )
}

/// The `.its` of a FIT holding `kernel` (compressed as `comp`), the initramfs and `fdt`, with
/// `conf-1` signed as `algo` by key `hint` (no signature node when `hint` is empty).
fn its(kernel: &str, comp: &str, algo: &str, hint: &str) -> String {
    let sig = if hint.is_empty() {
        String::new()
    } else {
        format!(
            "signature-1 {{ algo = \"{algo}\"; key-name-hint = \"{hint}\"; \
             sign-images = \"kernel\", \"fdt\", \"ramdisk\"; }};"
        )
    };
    format!(
        "/dts-v1/;\n/ {{\n  description = \"kexboot e2e: Debian arm64 kernel, initramfs, QEMU virt tree\";\n  \
         #address-cells = <1>;\n  images {{\n    \
         kernel-1 {{ description = \"Debian arm64 kernel\"; data = /incbin/(\"{kernel}\"); \
         type = \"kernel\"; arch = \"arm64\"; os = \"linux\"; compression = \"{comp}\"; \
         load = <0x40480000>; entry = <0x40480000>; hash-1 {{ algo = \"sha256\"; }}; }};\n    \
         ramdisk-1 {{ description = \"initramfs\"; data = /incbin/(\"initrd.img\"); type = \"ramdisk\"; \
         arch = \"arm64\"; os = \"linux\"; compression = \"none\"; hash-1 {{ algo = \"sha256\"; }}; }};\n    \
         fdt-1 {{ description = \"QEMU virt\"; data = /incbin/(\"virt.dtb\"); type = \"flat_dt\"; \
         arch = \"arm64\"; compression = \"none\"; hash-1 {{ algo = \"sha256\"; }}; }};\n  }};\n  \
         configurations {{\n    default = \"conf-1\";\n    \
         conf-1 {{ description = \"signed\"; kernel = \"kernel-1\"; ramdisk = \"ramdisk-1\"; fdt = \"fdt-1\"; {sig} }};\n    \
         conf-2 {{ description = \"unsigned\"; kernel = \"kernel-1\"; ramdisk = \"ramdisk-1\"; fdt = \"fdt-1\"; }};\n  }};\n}};\n"
    )
}

/// `mkimage -f <name>.its [-k keys -K <blob> -r] <name>.itb`.
fn mkimage(dir: &Path, name: &str, text: &str, blob: Option<&str>) -> Result<()> {
    let src = format!("{name}.its");
    fs::write(dir.join(&src), text).ctx(dir.join(&src).display())?;
    let out = format!("{name}.itb");
    match blob {
        Some(b) => run(
            "mkimage",
            &["-q", "-f", &src, "-k", "keys", "-K", b, "-r", &out],
            dir,
        ),
        None => run("mkimage", &["-q", "-f", &src, &out], dir),
    }
}

/// Builds everything (when the inputs or [`VERSION`] changed).
pub fn build(paths: &Paths, a: &Assets) -> Result<FitAssets> {
    let dir = paths.assets.join("fit");
    let f = FitAssets {
        keys_rsa: dir.join("keys-rsa.dtb"),
        keys_ec: dir.join("keys-ec.dtb"),
        virt_keys: dir.join("virt-keys.dtb"),
        good: dir.join("good.itb"),
        disk_rsa: paths.assets.join("disk-fit-rsa.img"),
        disk_ec: paths.assets.join("disk-fit-ec.img"),
    };
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let stamp_key = format!(
        "{VERSION} {} {} {}\n",
        size(&a.image),
        size(&a.image_gz),
        size(&a.initrd)
    );
    let stamp = dir.join("stamp");
    let done = [
        &f.disk_rsa,
        &f.disk_ec,
        &f.keys_rsa,
        &f.keys_ec,
        &f.virt_keys,
    ]
    .iter()
    .all(|p| p.is_file());
    if done && fs::read_to_string(&stamp).ok().as_deref() == Some(&stamp_key) {
        return Ok(f);
    }
    let _ = fs::remove_file(&stamp);
    let keys = dir.join("keys");
    fs::create_dir_all(&keys).ctx(keys.display())?;
    for (name, bits) in [("dev", "2048"), ("other", "2048")] {
        let key = format!("{name}.key");
        if !keys.join(&key).is_file() {
            run(
                "openssl",
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    &format!("rsa_keygen_bits:{bits}"),
                    "-out",
                    &key,
                ],
                &keys,
            )?;
        }
        run(
            "openssl",
            &[
                "req",
                "-batch",
                "-new",
                "-x509",
                "-key",
                &key,
                "-out",
                &format!("{name}.crt"),
                "-subj",
                &format!("/CN={name}"),
            ],
            &keys,
        )?;
    }
    if !keys.join("ec.key").is_file() {
        run(
            "openssl",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec.pem",
            ],
            &keys,
        )?;
        fs::copy(keys.join("ec.pem"), keys.join("ec.key")).ctx("ec.key")?;
    }
    for (from, to) in [
        (&a.image, "Image"),
        (&a.image_gz, "Image.gz"),
        (&a.initrd, "initrd.img"),
    ] {
        let dst = dir.join(to);
        let _ = fs::remove_file(&dst);
        fs::copy(from, &dst).ctx(dst.display())?;
    }
    let virt = dir.join("virt.dtb");
    run_status(Command::new(qemu::QEMU).args(qemu::Args::dump_dtb("virt", SMP, &virt).into_vec()))
        .map_err(|e| err!("dumping QEMU's device tree: {e}"))?;
    fs::copy(&virt, &f.virt_keys).ctx(f.virt_keys.display())?;
    empty_keys(&dir, "keys-rsa.dtb")?;
    empty_keys(&dir, "keys-ec.dtb")?;
    empty_keys(&dir, "keys-scratch.dtb")?;
    let rsa = "sha256,rsa2048";
    mkimage(
        &dir,
        "good",
        &its("Image", "none", rsa, "dev"),
        Some("keys-rsa.dtb"),
    )?;
    // U-Boot's control tree gets the same key (mkimage -K into QEMU's own tree).
    mkimage(
        &dir,
        "good-gz",
        &its("Image.gz", "gzip", rsa, "dev"),
        Some("virt-keys.dtb"),
    )?;
    mkimage(
        &dir,
        "other",
        &its("Image.gz", "gzip", rsa, "other"),
        Some("keys-scratch.dtb"),
    )?;
    mkimage(&dir, "unsigned", &its("Image.gz", "gzip", rsa, ""), None)?;
    mkimage(
        &dir,
        "ec",
        &its("Image.gz", "gzip", "sha256,ecdsa256", "ec"),
        Some("keys-ec.dtb"),
    )?;
    run(
        "fdtput",
        &[
            "-t",
            "s",
            "keys-ec.dtb",
            "/signature/ec",
            "required",
            "conf",
        ],
        &dir,
    )?;
    // One byte of the kernel changed, found the way kexboot finds it.
    let mut tampered = fs::read(dir.join("good-gz.itb")).ctx("good-gz.itb")?;
    let k = kexboot_loader::fit::open(&tampered, None, &kexboot_loader::fit::Keys::none())
        .map_err(|e| err!("good-gz.itb: {e}"))?
        .kernel
        .ok_or_else(|| err!("good-gz.itb: no kernel"))?;
    tampered[k.data.start + k.data.len() / 2] ^= 0x40;
    fs::write(dir.join("tampered.itb"), &tampered).ctx("tampered.itb")?;
    for blob in [&f.keys_rsa, &f.keys_ec, &f.virt_keys] {
        check_keys(blob)?;
    }

    let read = |n: &str| fs::read(dir.join(n)).ctx(dir.join(n).display());
    let (good, good_gz, other, unsigned, ec) = (
        read("good.itb")?,
        read("good-gz.itb")?,
        read("other.itb")?,
        read("unsigned.itb")?,
        read("ec.itb")?,
    );
    let image = fs::read(&a.image).ctx(a.image.display())?;
    let initrd = fs::read(&a.initrd).ctx(a.initrd.display())?;
    let entry = |label: &str, kernel: &str, extra: &str| {
        format!(
            "\nlabel {label}\n    menu label FIT test: {label}\n    fit {kernel}\n{extra}    append {}\n",
            cmdline(label)
        )
    };
    let mut conf = String::from("# written by cargo xtask\ndefault tampered\ntimeout 0\n");
    conf += &entry("tampered", "/boot/tampered.itb", "");
    conf += &entry("unsigned", "/boot/unsigned.itb", "");
    conf += &entry("other", "/boot/other.itb#conf-1", "");
    conf += &format!(
        "\nlabel plain\n    linux /boot/Image\n    initrd /boot/initrd.img\n    append {}\n",
        cmdline("plain")
    );
    conf += &entry("good", "/boot/good.itb#conf-1", "");
    Disk::new(Scheme::Mbr)
        .file("/boot/tampered.itb", &tampered[..])
        .file("/boot/unsigned.itb", &unsigned[..])
        .file("/boot/other.itb", &other[..])
        .file("/boot/Image", &image[..])
        .file("/boot/initrd.img", &initrd[..])
        .file("/boot/good.itb", &good[..])
        .extlinux(conf)
        .write(&f.disk_rsa)?;
    let mut conf = String::from("# written by cargo xtask\ndefault rsa\ntimeout 0\n");
    conf += &entry("rsa", "/boot/good-gz.itb", "");
    conf += &entry("ecdsa", "/boot/ec.itb", "");
    Disk::new(Scheme::Mbr)
        .file("/boot/good-gz.itb", &good_gz[..])
        .file("/boot/ec.itb", &ec[..])
        .extlinux(conf)
        .write(&f.disk_ec)?;
    fs::write(&stamp, stamp_key).ctx(stamp.display())?;
    Ok(f)
}

/// A key blob must be usable by kexboot (what `--keys` builds in): parsed as the firmware
/// parses it, with at least one required key. Returns its summary.
pub fn check_keys(blob: &Path) -> Result<String> {
    let bytes = fs::read(blob).ctx(blob.display())?;
    let keys =
        kexboot_loader::fit::Keys::parse(&bytes).map_err(|e| err!("{}: {e}", blob.display()))?;
    if !keys.required() {
        eprintln!(
            "warning: {}: no key is marked required (mkimage -r, or fdtput -t s <blob> \
             /signature/<key> required conf): kexboot will not insist on signatures",
            blob.display()
        );
    }
    Ok(keys.summary())
}
