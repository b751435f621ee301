//! The e2e disk set under `target/assets/` (MBR, GPT, fallback, all-bad, bench, menu, warm),
//! each written through [`Disk`].

use crate::assets::Assets;
use crate::disk::{self, Disk, Scheme};
use crate::extlinux::{extlinux, Entry};
use crate::realdisks::{self, RealDisks};
use crate::util::{Context, Paths, Result};
use crate::warm::{self, WarmDisks};
use std::path::{Path, PathBuf};

/// Command line of the default entry of the MBR disk.
pub const CMDLINE_IMAGE: &str = "console=ttyAMA0 kexboot.test=image quiet";
/// Command line of the default entry of the GPT disk (gzip'd Image).
pub const CMDLINE_IMAGEGZ: &str = "console=ttyAMA0 kexboot.test=imagegz quiet";
/// Command line of the good (second) entry of the fallback disk.
pub const CMDLINE_FALLBACK: &str = "console=ttyAMA0 kexboot.test=fallback quiet";

/// The disk images the cases use.
pub struct Disks {
    /// MBR; default entry boots `/boot/Image`.
    pub mbr: PathBuf,
    /// GPT; default entry boots `/boot/Image.gz`.
    pub gpt: PathBuf,
    /// MBR; default entry's kernel is missing, the second entry is good.
    pub missing: PathBuf,
    /// MBR; every entry is broken.
    pub allbad: PathBuf,
    /// The MBR disk plus `/kexboot/bench`, which makes the firmware run its in-guest copy
    /// benchmark (relocator engine vs plain copy loops) before booting.
    pub bench: PathBuf,
    /// The MBR disk with a boot menu (`timeout 30`, a `menu title`).
    pub menu: PathBuf,
    /// The warm re-entry disks (one per scenario), or why there are none.
    pub warm: std::result::Result<WarmDisks, String>,
    /// The disks made by the distributions' own tools, or why there are none.
    pub real: std::result::Result<RealDisks, String>,
    /// The verified-boot FITs, keys and disks (made by mkimage), or why there are none.
    pub fit: std::result::Result<crate::fitimg::FitAssets, String>,
}

impl Disks {
    /// Every image path.
    pub fn all(&self) -> Vec<&PathBuf> {
        let mut v = vec![
            &self.mbr,
            &self.gpt,
            &self.missing,
            &self.allbad,
            &self.bench,
            &self.menu,
        ];
        if let Ok(w) = &self.warm {
            v.extend(w.0.iter().map(|(_, p)| p));
        }
        if let Ok(r) = &self.real {
            v.extend(r.all());
        }
        if let Ok(f) = &self.fit {
            v.extend([&f.disk_rsa, &f.disk_ec]);
        }
        v
    }
}

/// Builds the four test disks under `target/assets/`.
pub fn build_disks(paths: &Paths, a: &Assets) -> Result<Disks> {
    let read = |p: &Path| std::fs::read(p).ctx(p.display());
    let (image, image_gz, initrd) = (read(&a.image)?, read(&a.image_gz)?, read(&a.initrd)?);
    let good = |label, linux, append| Entry {
        label,
        linux,
        initrd: "/boot/initrd.img",
        append,
    };
    let mut d = Disks {
        mbr: paths.assets.join("disk-mbr.img"),
        gpt: paths.assets.join("disk-gpt.img"),
        missing: paths.assets.join("disk-missing.img"),
        allbad: paths.assets.join("disk-allbad.img"),
        bench: paths.assets.join("disk-bench.img"),
        menu: paths.assets.join("disk-menu.img"),
        warm: Err("not built".into()),
        real: Err("not built".into()),
        fit: Err("not built".into()),
    };
    let all = [
        ("/boot/Image", &image[..]),
        ("/boot/Image.gz", &image_gz[..]),
        ("/boot/initrd.img", &initrd[..]),
    ];
    let both = [
        good("kexboot-image", "/boot/Image", CMDLINE_IMAGE),
        good("kexboot-imagegz", "/boot/Image.gz", CMDLINE_IMAGEGZ),
    ];
    Disk::new(Scheme::Mbr)
        .files(&all)
        .extlinux(extlinux("kexboot-image", &both))
        .write(&d.mbr)?;
    Disk::new(Scheme::Gpt)
        .files(&all)
        .extlinux(extlinux("kexboot-imagegz", &both))
        .write(&d.gpt)?;
    Disk::new(Scheme::Mbr)
        .files(&all)
        .file("/kexboot/bench", &b"run the copy benchmark\n"[..])
        .extlinux(extlinux("kexboot-image", &both))
        .write(&d.bench)?;
    let menu_conf = extlinux("kexboot-image", &both).replacen(
        "timeout 0\n",
        "timeout 30\nmenu title kexboot test menu\n",
        1,
    );
    Disk::new(Scheme::Mbr)
        .files(&all)
        .extlinux(menu_conf)
        .write(&d.menu)?;
    let missing = [
        good("kexboot-missing", "/boot/missing-Image", CMDLINE_IMAGE),
        good("kexboot-fallback", "/boot/Image", CMDLINE_FALLBACK),
    ];
    Disk::new(Scheme::Mbr)
        .files(&[all[0], all[2]])
        .extlinux(extlinux("kexboot-missing", &missing))
        .write(&d.missing)?;
    let bad = [
        good("kexboot-missing", "/boot/missing-Image", CMDLINE_IMAGE),
        good("kexboot-corrupt", "/boot/corrupt-Image", CMDLINE_IMAGE),
        Entry {
            label: "kexboot-noinitrd",
            linux: "/boot/Image",
            initrd: "/boot/missing-initrd.img",
            append: CMDLINE_IMAGE,
        },
    ];
    let junk = disk::garbage(1 << 20);
    Disk::new(Scheme::Mbr)
        .files(&[all[0], ("/boot/corrupt-Image", &junk[..]), all[2]])
        .extlinux(extlinux("kexboot-missing", &bad))
        .write(&d.allbad)?;
    d.warm = match &a.warm {
        Ok(w) => warm::build_disks(paths, &a.image, &a.initrd, w).map_err(|e| e.to_string()),
        Err(e) => Err(format!("no warm initramfs: {e}")),
    };
    d.real = realdisks::build(paths, &a.initrd).map_err(|e| e.to_string());
    d.fit = crate::fitimg::build(paths, a).map_err(|e| e.to_string());
    if let Err(e) = &d.fit {
        eprintln!("assets: warning: no verified-boot FITs: {e}");
    }
    if let Err(e) = &d.real {
        eprintln!("assets: warning: no real-layout disks: {e}");
    }
    Ok(d)
}
