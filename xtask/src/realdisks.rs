//! The "real layout" disks: `/boot` trees as Debian and Fedora machines carry them, made by the
//! distributions' own tools ([`crate::tools`]) around the Debian kernel of the assets, so the
//! cases check kexboot against what U-Boot boots on the same images.
//!
//! - ext4 (Debian defaults), ext4 without metadata_csum/64bit and ext2, with the extlinux.conf
//!   Debian's `u-boot-update` writes: `/boot` on the root file system, and `/boot` on its own
//!   partition (files at the partition root);
//! - flash-kernel's generic `boot.scr` (real script, real `mkimage`) on ext4 and FAT;
//! - a Fedora BLS `/loader/entries` directory with three versions, one bootable;
//! - the kernel compressed by `lz4 -l` and by `zstd`;
//! - a FAT volume that claims more sectors than its GPT partition (`mkfs.vfat --offset`);
//! - two disks and three partitions (FAT, ext4, random bytes) for `load virtio <dev>:<part>`.

use crate::assets::{self, UBOOT_BIN};
use crate::disk::{self, assemble, FatType, Part, PartKind, Scheme, EXTLINUX_CONF};
use crate::extlinux::{extlinux, Entry};
use crate::qemu;
use crate::tools::{self, Compressor, Extfs};
use crate::util::{err, run_status, write_unless_same, Context, Paths, Result};
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when a builder changes what it writes for the same inputs.
const LAYOUT_VERSION: u32 = 2;

/// Size of every ext2/ext4 partition.
const EXT_MIB: u32 = 64;

/// The `/etc/default/u-boot` of the Debian trees: the command line (`u-boot-update` adds the
/// `root=` it reads from `/etc/fstab`), and a 1 s menu instead of 5 s.
fn default_u_boot(tag: &str) -> String {
    format!(
        "## /etc/default/u-boot - configuration file for u-boot-update(8)\n\
         U_BOOT_PARAMETERS=\"console=ttyAMA0 kexboot.test={tag} quiet\"\n\
         U_BOOT_TIMEOUT=\"10\"\n"
    )
}

/// The command line the first (`l0`) entry of a `u-boot-update` extlinux.conf carries: the
/// root from the tree's fstab, then `U_BOOT_PARAMETERS`.
pub fn debian_cmdline(tag: &str, root_dev: &str) -> String {
    format!("root={root_dev} console=ttyAMA0 kexboot.test={tag} quiet")
}

/// A plain test command line (`kexboot.test=<tag>`).
pub fn cmdline(tag: &str) -> String {
    format!("console=ttyAMA0 kexboot.test={tag} quiet")
}

/// The BLS disk: the machine id of the entries' names, the bootable version (the Debian kernel
/// renamed), a newer one and an older one whose files are missing. Sorted newest first by
/// version, 6.10 comes before 6.9 (a plain string sort puts it last).
pub const BLS_MACHINE_ID: &str = "8a2e5b0c3f9d4e6a9b1c2d3e4f5a6b7c";
pub const BLS_GOOD: &str = "6.9.7-200.fc40.aarch64";
pub const BLS_NEWER_MISSING: &str = "6.10.2-200.fc40.aarch64";
pub const BLS_OLDER_MISSING: &str = "6.8.5-301.fc40.aarch64";

/// Command line of BLS entry `version`.
pub fn bls_cmdline(version: &str) -> String {
    format!("root=UUID=6b657862-6f6f-7400-8000-000000000002 ro console=ttyAMA0 kexboot.test=bls-{version} quiet")
}

/// The real-layout disk images.
#[derive(Clone, Debug)]
pub struct RealDisks {
    /// Debian kernel version (`vmlinuz-<kvers>`).
    pub kvers: String,
    /// GPT, one ext4 root file system with `/boot/extlinux/extlinux.conf` (u-boot-update).
    pub ext4_root: PathBuf,
    /// MBR, `/boot` ext4 (partition 1, files at its root) and the root ext4 (partition 2).
    pub ext4_bootpart: PathBuf,
    /// MBR, ext4 made with `-O ^metadata_csum,^64bit`, root layout.
    pub ext4_nocsum: PathBuf,
    /// MBR, ext2, root layout.
    pub ext2: PathBuf,
    /// MBR, ext4 `/boot` partition with flash-kernel's `boot.scr` and QEMU's tree (as the
    /// machine kexboot boots on sees it) as `dtb-<kvers>`.
    pub bootscr_ext4: PathBuf,
    /// The same on FAT.
    pub bootscr_fat: PathBuf,
    /// [`RealDisks::bootscr_ext4`] with the tree QEMU gives a `-bios` firmware (no pl061), for
    /// the U-Boot run.
    pub bootscr_ext4_uboot: PathBuf,
    /// GPT, ext4 `/boot` with three BLS entries.
    pub bls: PathBuf,
    /// MBR FAT, extlinux.conf naming `/boot/Image.lz4` (`lz4 -l`).
    pub lz4: PathBuf,
    /// GPT ext4, extlinux.conf naming `/boot/Image.zst`.
    pub zstd: PathBuf,
    /// GPT whose FAT volume claims more sectors than its partition.
    pub fat_oversize: PathBuf,
    /// MBR: 1 FAT without any boot config, 2 ext4 with `/boot/Image`, 3 random bytes.
    pub multi: PathBuf,
    /// MBR: 1 ext4 with `/boot/initrd.img` (the second disk of the multi case).
    pub multi_second: PathBuf,
}

impl RealDisks {
    /// Every image path.
    pub fn all(&self) -> Vec<&PathBuf> {
        vec![
            &self.ext4_root,
            &self.ext4_bootpart,
            &self.ext4_nocsum,
            &self.ext2,
            &self.bootscr_ext4,
            &self.bootscr_fat,
            &self.bootscr_ext4_uboot,
            &self.bls,
            &self.lz4,
            &self.zstd,
            &self.fat_oversize,
            &self.multi,
            &self.multi_second,
        ]
    }
}

/// The Debian kernel package's `boot/vmlinuz-<version>`, unpacked by `cargo xtask assets`.
fn debian_kernel(paths: &Paths) -> Result<(String, PathBuf)> {
    let boot = paths.assets.join("debs/kernel/boot");
    for e in fs::read_dir(&boot).ctx(boot.display())? {
        let p = e.ctx(boot.display())?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(v) = name.strip_prefix("vmlinuz-") {
            return Ok((v.to_string(), p.clone()));
        }
    }
    Err(err!("no vmlinuz-* in {}", boot.display()))
}

/// Writes `files` (relative paths) and `links` (path, target) under a fresh `root`.
fn stage(root: &Path, files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Result<()> {
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root).ctx(root.display())?;
    for (rel, data) in files {
        let p = root.join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).ctx(d.display())?;
        }
        fs::write(&p, data).ctx(p.display())?;
    }
    for (rel, target) in links {
        let p = root.join(rel);
        std::os::unix::fs::symlink(target, &p).ctx(p.display())?;
    }
    Ok(())
}

/// The inputs every builder shares.
struct Inputs<'a> {
    paths: &'a Paths,
    kvers: String,
    kernel: Vec<u8>,
    initrd: Vec<u8>,
    /// Hash of the kernel, the initramfs and [`LAYOUT_VERSION`].
    key: u64,
    scratch: PathBuf,
}

impl Inputs<'_> {
    /// The stamp key of the disk `name`.
    fn key(&self, name: &str) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.key, name).hash(&mut h);
        h.finish()
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// Writes `target/assets/<file>` with `make` unless it was made from the same inputs.
    fn disk(&self, file: &str, make: impl FnOnce() -> Result<Vec<u8>>) -> Result<PathBuf> {
        let path = self.paths.assets.join(file);
        write_unless_same(&path, self.key(file), || {
            eprintln!("assets: building {}", path.display());
            make().map_err(|e| err!("{}: {e}", path.display()))
        })?;
        Ok(path)
    }
}

/// Builds (or keeps) every real-layout disk. Needs the programs of [`tools::TOOLS`].
pub fn build(paths: &Paths, initrd: &Path) -> Result<RealDisks> {
    let (kvers, vmlinuz) = debian_kernel(paths)?;
    let kernel = fs::read(&vmlinuz).ctx(vmlinuz.display())?;
    let initrd = fs::read(initrd).ctx(initrd.display())?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (LAYOUT_VERSION, &kvers, &kernel, &initrd).hash(&mut h);
    let scratch = paths.assets.join("real-stage");
    fs::create_dir_all(&scratch).ctx(scratch.display())?;
    let i = Inputs {
        paths,
        kvers,
        kernel,
        initrd,
        key: h.finish(),
        scratch,
    };
    let d = RealDisks {
        kvers: i.kvers.clone(),
        ext4_root: i.disk("disk-ext4-root.img", || {
            debian_root(&i, Extfs::Ext4, "ext4-root", Scheme::Gpt)
        })?,
        ext4_bootpart: i.disk("disk-ext4-bootpart.img", || debian_bootpart(&i))?,
        ext4_nocsum: i.disk("disk-ext4-nocsum.img", || {
            debian_root(&i, Extfs::Ext4NoCsum64, "ext4-nocsum", Scheme::Mbr)
        })?,
        ext2: i.disk("disk-ext2.img", || {
            debian_root(&i, Extfs::Ext2, "ext2", Scheme::Mbr)
        })?,
        bootscr_ext4: i.disk("disk-bootscr-ext4.img", || bootscr(&i, false, false))?,
        bootscr_fat: i.disk("disk-bootscr-fat.img", || bootscr(&i, true, false))?,
        bootscr_ext4_uboot: i.disk("disk-bootscr-ext4-uboot.img", || bootscr(&i, false, true))?,
        bls: i.disk("disk-bls.img", || bls(&i))?,
        lz4: i.disk("disk-lz4.img", || compressed(&i, Compressor::Lz4Legacy))?,
        zstd: i.disk("disk-zstd.img", || compressed(&i, Compressor::Zstd))?,
        fat_oversize: i.disk("disk-fat-oversize.img", || fat_oversize(&i))?,
        multi: i.disk("disk-multi.img", || multi(&i))?,
        multi_second: i.disk("disk-multi-second.img", || multi_second(&i))?,
    };
    let _ = fs::remove_dir_all(&i.scratch);
    Ok(d)
}

/// A Debian root tree under `root`: `/etc/default/u-boot`, `/etc/fstab`, `/etc/os-release`,
/// `/boot/vmlinuz-<v>` and `/boot/initrd.img-<v>` with Debian's symlinks (`/vmlinuz`,
/// `/initrd.img` at the root as linux-base makes them, and `/boot/vmlinuz` beside the kernel),
/// then `u-boot-update` run on it.
fn debian_tree(i: &Inputs, root: &Path, tag: &str, fstab: &str, boot_on_root: bool) -> Result<()> {
    let (k, rd) = (
        format!("boot/vmlinuz-{}", i.kvers),
        format!("boot/initrd.img-{}", i.kvers),
    );
    let conf = default_u_boot(tag);
    let os = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
    stage(
        root,
        &[
            ("etc/default/u-boot", conf.as_bytes()),
            ("etc/fstab", fstab.as_bytes()),
            ("etc/os-release", os.as_bytes()),
            (&k, &i.kernel),
            (&rd, &i.initrd),
        ],
        &[
            ("vmlinuz", &k),
            ("initrd.img", &rd),
            ("boot/vmlinuz", &k["boot/".len()..]),
            ("boot/initrd.img", &rd["boot/".len()..]),
        ],
    )?;
    fs::create_dir_all(root.join("proc")).ctx(root.display())?;
    let written = tools::uboot_update(root, boot_on_root, &i.scratch)?;
    eprintln!("assets: u-boot-update wrote for {tag}:\n{written}");
    Ok(())
}

/// One file system with `/boot` on it.
fn debian_root(i: &Inputs, ext: Extfs, tag: &str, scheme: Scheme) -> Result<Vec<u8>> {
    let root = i.dir(tag);
    let fstype = if ext == Extfs::Ext2 { "ext2" } else { "ext4" };
    let fstab = format!("# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/vda1 / {fstype} errors=remount-ro 0 1\n");
    debian_tree(i, &root, tag, &fstab, true)?;
    let data = tools::mke2fs(&root, ext, EXT_MIB, true, &i.scratch)?;
    let _ = fs::remove_dir_all(&root);
    assemble(
        &[Part {
            kind: PartKind::Linux,
            bootable: true,
            data,
        }],
        scheme,
    )
}

/// `/boot` on partition 1 (ext4, files at its root), `/` on partition 2.
fn debian_bootpart(i: &Inputs) -> Result<Vec<u8>> {
    let (root, boot) = (i.dir("bootpart-root"), i.dir("bootpart-boot"));
    let fstab = "/dev/vda2 / ext4 errors=remount-ro 0 1\n/dev/vda1 /boot ext4 defaults 0 2\n";
    debian_tree(i, &root, "ext4-bootpart", fstab, false)?;
    let _ = fs::remove_dir_all(&boot);
    fs::rename(root.join("boot"), &boot).ctx(boot.display())?;
    fs::create_dir(root.join("boot")).ctx(root.display())?;
    let bootfs = tools::mke2fs(&boot, Extfs::Ext4, EXT_MIB, false, &i.scratch)?;
    let rootfs = tools::mke2fs(&root, Extfs::Ext4, EXT_MIB, false, &i.scratch)?;
    let _ = (fs::remove_dir_all(&root), fs::remove_dir_all(&boot));
    let part = |data, bootable| Part {
        kind: PartKind::Linux,
        bootable,
        data,
    };
    assemble(&[part(bootfs, true), part(rootfs, false)], Scheme::Mbr)
}

/// QEMU's own device tree for the one-CPU `virt` machine: as a `-kernel` payload (kexboot) sees
/// it, or as a `-bios` firmware (U-Boot) does; they differ (no pl061 GPIO with firmware), and
/// a board's boot partition carries the tree of its own board. Cached in `target/assets`.
fn qemu_dtb(i: &Inputs, for_uboot: bool) -> Result<Vec<u8>> {
    let name = if for_uboot {
        "virt-smp1-bios.dtb"
    } else {
        "virt-smp1-kernel.dtb"
    };
    let out = i.paths.assets.join(name);
    if !out.is_file() {
        let mut a = qemu::Args::dump_dtb("virt", 1, &out);
        if for_uboot {
            a = a.bios(Path::new(UBOOT_BIN));
        }
        run_status(Command::new(qemu::QEMU).args(a.into_vec()))
            .map_err(|e| err!("dumping QEMU's device tree: {e}"))?;
    }
    fs::read(&out).ctx(out.display())
}

/// The `/boot` partition flash-kernel's generic method leaves: `boot.scr`, `vmlinuz-<v>`,
/// `initrd.img-<v>`, `dtb-<v>` (and on ext4 its `dtb` symlink).
fn bootscr(i: &Inputs, fat: bool, for_uboot: bool) -> Result<Vec<u8>> {
    let template = flash_kernel_template(i.paths)?;
    let tag = if fat { "bootscr-fat" } else { "bootscr-ext4" };
    let text = tools::flash_kernel_script(&template, &i.kvers, &cmdline(tag));
    let scr = tools::mkimage_script(&text, &i.scratch)?;
    let dtb = qemu_dtb(i, for_uboot)?;
    let v = &i.kvers;
    let (k, rd, dt) = (
        format!("vmlinuz-{v}"),
        format!("initrd.img-{v}"),
        format!("dtb-{v}"),
    );
    let files: [(&str, &[u8]); 4] = [
        ("boot.scr", &scr),
        (&k, &i.kernel),
        (&rd, &i.initrd),
        (&dt, &dtb),
    ];
    if fat {
        let abs: Vec<(String, &[u8])> = files.iter().map(|(p, d)| (format!("/{p}"), *d)).collect();
        let refs: Vec<(&str, &[u8])> = abs.iter().map(|(p, d)| (p.as_str(), *d)).collect();
        return disk::build(&refs, Scheme::Mbr);
    }
    let dir = i.dir(tag);
    stage(&dir, &files, &[("dtb", &dt)])?;
    let data = tools::mke2fs(&dir, Extfs::Ext4, EXT_MIB, false, &i.scratch)?;
    let _ = fs::remove_dir_all(&dir);
    assemble(
        &[Part {
            kind: PartKind::Linux,
            bootable: true,
            data,
        }],
        Scheme::Mbr,
    )
}

/// `etc/flash-kernel/bootscript/bootscr.uboot-generic` of Debian's flash-kernel package
/// (downloaded and unpacked by `cargo xtask assets`).
fn flash_kernel_template(paths: &Paths) -> Result<String> {
    let p =
        assets::flash_kernel_dir(paths).join("etc/flash-kernel/bootscript/bootscr.uboot-generic");
    fs::read_to_string(&p).ctx(p.display())
}

/// A Fedora `/boot` partition: `/loader/entries/<machine-id>-<version>.conf` for three
/// versions; only [`BLS_GOOD`]'s kernel and initramfs exist (the Debian ones, renamed).
fn bls(i: &Inputs) -> Result<Vec<u8>> {
    let entry = |v: &str| {
        format!(
            "title Fedora Linux ({v}) 40 (Forty)\nversion {v}\nlinux /vmlinuz-{v}\n\
             initrd /initramfs-{v}.img\noptions {}\ngrub_users $grub_users\n\
             grub_arg --unrestricted\ngrub_class fedora\n",
            bls_cmdline(v)
        )
    };
    let name = |v: &str| format!("loader/entries/{BLS_MACHINE_ID}-{v}.conf");
    let (newer, good, older) = (BLS_NEWER_MISSING, BLS_GOOD, BLS_OLDER_MISSING);
    let (en, eg, eo) = (entry(newer), entry(good), entry(older));
    let (nn, ng, no) = (name(newer), name(good), name(older));
    let (k, rd) = (format!("vmlinuz-{good}"), format!("initramfs-{good}.img"));
    let dir = i.dir("bls");
    stage(
        &dir,
        &[
            (&nn, en.as_bytes()),
            (&ng, eg.as_bytes()),
            (&no, eo.as_bytes()),
            (&k, &i.kernel),
            (&rd, &i.initrd),
        ],
        &[],
    )?;
    let data = tools::mke2fs(&dir, Extfs::Ext4, EXT_MIB, false, &i.scratch)?;
    let _ = fs::remove_dir_all(&dir);
    assemble(
        &[Part {
            kind: PartKind::Linux,
            bootable: true,
            data,
        }],
        Scheme::Gpt,
    )
}

/// The kernel compressed by `how` as `/boot/Image.lz4` (FAT, MBR) or `/boot/Image.zst` (ext4,
/// GPT), named by the default entry of `/extlinux/extlinux.conf`.
fn compressed(i: &Inputs, how: Compressor) -> Result<Vec<u8>> {
    let packed = tools::compress(&i.kernel, how, &i.scratch)?;
    let (tag, linux) = match how {
        Compressor::Lz4Legacy => ("lz4", "/boot/Image.lz4"),
        Compressor::Zstd => ("zstd", "/boot/Image.zst"),
    };
    let append = cmdline(tag);
    let conf = extlinux(
        tag,
        &[Entry {
            label: tag,
            linux,
            initrd: "/boot/initrd.img",
            append: &append,
        }],
    );
    let files: [(&str, &[u8]); 3] = [
        (linux, &packed),
        ("/boot/initrd.img", &i.initrd),
        (EXTLINUX_CONF, conf.as_bytes()),
    ];
    if how == Compressor::Lz4Legacy {
        return disk::build(&files, Scheme::Mbr);
    }
    let dir = i.dir(tag);
    let rel: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (&p[1..], *d)).collect();
    stage(&dir, &rel, &[])?;
    let data = tools::mke2fs(&dir, Extfs::Ext4, EXT_MIB, false, &i.scratch)?;
    let _ = fs::remove_dir_all(&dir);
    assemble(
        &[Part {
            kind: PartKind::Linux,
            bootable: true,
            data,
        }],
        Scheme::Gpt,
    )
}

/// First LBA and size of the FAT partition of the oversize disk, and how far the volume runs
/// on past the partition's end.
pub const OVERSIZE_START_LBA: u64 = 2048;
pub const OVERSIZE_PART_MIB: u64 = 100;
pub const OVERSIZE_EXTRA_MIB: u64 = 32;

/// `mkfs.vfat --offset 2048` on the whole image (so the volume runs to the end of the file),
/// the kernel, initramfs and extlinux.conf copied in, then `sgdisk` writes a GPT whose one
/// partition stops [`OVERSIZE_EXTRA_MIB`] before the volume does.
fn fat_oversize(i: &Inputs) -> Result<Vec<u8>> {
    let img = i.scratch.join("fat-oversize.img");
    let part_sectors = OVERSIZE_PART_MIB << 11;
    let total = (OVERSIZE_START_LBA + part_sectors) * disk::SECTOR + (OVERSIZE_EXTRA_MIB << 20);
    let _ = fs::remove_file(&img);
    fs::File::create(&img)
        .and_then(|f| f.set_len(total))
        .ctx(img.display())?;
    tools::mkfs_vfat_offset(&img, OVERSIZE_START_LBA)?;
    let mut bytes = fs::read(&img).ctx(img.display())?;
    let append = cmdline("fat-oversize");
    let conf = extlinux(
        "fat-oversize",
        &[Entry {
            label: "fat-oversize",
            linux: "/boot/Image",
            initrd: "/boot/initrd.img",
            append: &append,
        }],
    );
    let files: [(&str, &[u8]); 3] = [
        ("/boot/Image", &i.kernel),
        ("/boot/initrd.img", &i.initrd),
        (EXTLINUX_CONF, conf.as_bytes()),
    ];
    let start = (OVERSIZE_START_LBA * disk::SECTOR) as usize;
    disk::copy_into_fat(&mut bytes[start..], &files)?;
    fs::write(&img, &bytes).ctx(img.display())?;
    tools::sgdisk_one(
        &img,
        OVERSIZE_START_LBA,
        OVERSIZE_START_LBA + part_sectors - 1,
    )?;
    let out = fs::read(&img).ctx(img.display())?;
    let _ = fs::remove_file(&img);
    Ok(out)
}

/// Size of the random third partition of the multi disk.
const RANDOM_PART_BYTES: usize = 4 << 20;

/// Partition 1 FAT16 with only a README (nothing to boot, so kexboot ends at its prompt),
/// partition 2 ext4 with `/boot/Image`, partition 3 random bytes (no file system).
fn multi(i: &Inputs) -> Result<Vec<u8>> {
    let fat = disk::volume(
        16 << 20,
        FatType::Fat16,
        &[("/README", &b"nothing to boot here\n"[..])],
    )?;
    let dir = i.dir("multi");
    stage(&dir, &[("boot/Image", &i.kernel)], &[])?;
    let ext = tools::mke2fs(&dir, Extfs::Ext4, EXT_MIB, false, &i.scratch)?;
    let _ = fs::remove_dir_all(&dir);
    let random = disk::garbage(RANDOM_PART_BYTES);
    let part = |kind, data| Part {
        kind,
        bootable: false,
        data,
    };
    assemble(
        &[
            part(PartKind::Fat, fat),
            part(PartKind::Linux, ext),
            part(PartKind::Linux, random),
        ],
        Scheme::Mbr,
    )
}

/// The second disk: partition 1 ext4 with `/boot/initrd.img`.
fn multi_second(i: &Inputs) -> Result<Vec<u8>> {
    let dir = i.dir("multi-second");
    stage(&dir, &[("boot/initrd.img", &i.initrd)], &[])?;
    let ext = tools::mke2fs(&dir, Extfs::Ext4, 16, false, &i.scratch)?;
    let _ = fs::remove_dir_all(&dir);
    assemble(
        &[Part {
            kind: PartKind::Linux,
            bootable: false,
            data: ext,
        }],
        Scheme::Mbr,
    )
}
