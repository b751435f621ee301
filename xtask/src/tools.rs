//! The real distribution tools the "real layout" disks are made with, so the cases test what
//! Debian and Fedora machines actually carry rather than what we think they carry: `mke2fs -d`
//! (e2fsprogs), Debian's `u-boot-update` (u-boot-menu), flash-kernel's generic boot script
//! with `mkimage` (u-boot-tools), `lz4 -l`, `zstd`, `mkfs.vfat --offset` (dosfstools) and
//! `sgdisk` (gdisk).

use crate::util::{err, run_status, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every program the real-layout disks need, with the Debian package that carries it.
pub const TOOLS: &[(&str, &str)] = &[
    ("mke2fs", "e2fsprogs"),
    ("u-boot-update", "u-boot-menu"),
    ("linux-version", "linux-base"),
    ("mkimage", "u-boot-tools"),
    ("lz4", "lz4"),
    ("zstd", "zstd"),
    ("mkfs.vfat", "dosfstools"),
    ("sgdisk", "gdisk"),
    ("openssl", "openssl"),
    ("dtc", "device-tree-compiler"),
    ("fdtput", "device-tree-compiler"),
    // The HTTP boot cases' web server: Python's `http.server`.
    ("python3", "python3"),
];

/// Where `prog` is: on `$PATH`, or in the sbin directories a non-root `$PATH` lacks.
pub fn find(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// The packages of [`TOOLS`] whose program is missing.
pub fn missing_packages() -> Vec<&'static str> {
    TOOLS
        .iter()
        .filter(|(prog, _)| find(prog).is_none())
        .map(|&(_, pkg)| pkg)
        .collect()
}

/// `prog`'s path, or an error naming the package to install.
fn tool(prog: &str) -> Result<PathBuf> {
    find(prog).ok_or_else(|| {
        let pkg = TOOLS.iter().find(|t| t.0 == prog).map_or("?", |t| t.1);
        err!("{prog} not found (apt package {pkg}; `cargo xtask assets` installs it)")
    })
}

/// The file systems [`mke2fs`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extfs {
    /// `mke2fs -t ext4` with Debian's defaults (metadata_csum, 64bit, extents, flex_bg).
    Ext4,
    /// `mke2fs -t ext4 -O ^metadata_csum,^64bit`: what older mke2fs and some vendor images make.
    Ext4NoCsum64,
    /// `mke2fs -t ext2`: no journal, no extents (indirect blocks).
    Ext2,
}

/// Fixed time and UUID, so the same tree gives the same image.
const FAKE_TIME: &str = "1700000000";
const FS_UUID: &str = "6b657862-6f6f-7400-8000-000000000001";

/// `mke2fs -d <dir>`: a `mib` MiB file system of kind `ext` holding the tree `dir` (owned by
/// root, links and symlinks as they are), returned as bytes. Below 512 MiB mke2fs picks 1 KiB
/// blocks (its "small" type, what a Debian `/boot` partition gets); `big_blocks` asks for the
/// 4 KiB blocks of a root file system.
pub fn mke2fs(
    dir: &Path,
    ext: Extfs,
    mib: u32,
    big_blocks: bool,
    scratch: &Path,
) -> Result<Vec<u8>> {
    let out = scratch.join("fs.img");
    let _ = fs::remove_file(&out);
    let mut c = Command::new(tool("mke2fs")?);
    c.args(["-q", "-F", "-L", "kexboot", "-U", FS_UUID]);
    c.args(["-E", &format!("root_owner=0:0,hash_seed={FS_UUID}")]);
    match ext {
        Extfs::Ext4 => c.args(["-t", "ext4"]),
        Extfs::Ext4NoCsum64 => c.args(["-t", "ext4", "-O", "^metadata_csum,^64bit"]),
        Extfs::Ext2 => c.args(["-t", "ext2"]),
    };
    if big_blocks {
        c.args(["-b", "4096"]);
    }
    c.arg("-d").arg(dir).arg(&out).arg(format!("{mib}M"));
    c.env("E2FSPROGS_FAKE_TIME", FAKE_TIME);
    run_status(&mut c).map_err(|e| err!("making {ext:?} from {}: {e}", dir.display()))?;
    let data = fs::read(&out).ctx(out.display())?;
    let _ = fs::remove_file(&out);
    Ok(data)
}

/// The textual changes that make Debian's `/usr/sbin/u-boot-update` (u-boot-menu 4.x) work on the
/// tree `$KX_ROOT` instead of `/`. It has no option for another root, so every path it reads or
/// writes gets the prefix; its one privileged check (`id -u`) is dropped (it writes only under the
/// fake root); `linux-version list --paths` (which globs `/boot` only) becomes the same glob under
/// the root; and "is /boot its own file system" (`stat %d` of `/` and `/boot`) is answered by
/// `$KX_BOOT_ON_ROOT`. The config header keeps the real `/boot/extlinux` path. Each pattern must
/// match at least once, so a changed script fails loudly instead of writing to the host's `/boot`.
const UBOOT_UPDATE_REWRITES: &[(&str, &str)] = &[
    (
        "_U_BOOT_DIRECTORY=\"/boot/extlinux\"",
        "_U_BOOT_DIRECTORY=\"${KX_ROOT}/boot/extlinux\"",
    ),
    (
        "## ${_U_BOOT_DIRECTORY}/extlinux.conf",
        "## /boot/extlinux/extlinux.conf",
    ),
    ("if [ \"$(id -u)\" -ne 0 ]", "if false"),
    (" /etc/", " ${KX_ROOT}/etc/"),
    (
        " /usr/share/u-boot-menu/",
        " ${KX_ROOT}/usr/share/u-boot-menu/",
    ),
    (" /usr/lib/os-release", " ${KX_ROOT}/usr/lib/os-release"),
    (" /proc/cmdline", " ${KX_ROOT}/proc/cmdline"),
    ("linux-version list --paths", "kx_list_kernels"),
    (
        "[ \"$(stat --printf %d /)\" = \"$(stat --printf %d /boot)\" ]",
        "[ \"${KX_BOOT_ON_ROOT}\" = yes ]",
    ),
    (
        "\"/boot/${U_BOOT_INITRD}",
        "\"${KX_ROOT}/boot/${U_BOOT_INITRD}",
    ),
    ("\"${_BOOT_PATH}", "\"${KX_ROOT}${_BOOT_PATH}"),
];

/// `linux-version list --paths` under `$KX_ROOT`: `<version> <path>` of each `boot/vmlinu[xz]-*`.
const LIST_KERNELS: &str = r#"
kx_list_kernels () {
	for _kx in "${KX_ROOT}"/boot/vmlinu[xz]-*; do
		if [ -e "$_kx" ]; then echo "${_kx#"${KX_ROOT}"/boot/vmlinu?-} $_kx"; fi
	done
}
"#;

/// Debian's `u-boot-update` script rewritten by [`UBOOT_UPDATE_REWRITES`].
pub fn uboot_update_script(real: &str) -> Result<String> {
    let mut s = real.to_string();
    for (from, to) in UBOOT_UPDATE_REWRITES {
        if !s.contains(from) {
            return Err(err!(
                "u-boot-update: {from:?} not found; the script changed, review the rewrites"
            ));
        }
        s = s.replace(from, to);
    }
    let body = s
        .strip_prefix("#!/bin/sh\n")
        .ok_or_else(|| err!("u-boot-update: no #!/bin/sh line"))?;
    Ok(format!("#!/bin/sh\n{LIST_KERNELS}{body}"))
}

/// Runs Debian's `u-boot-update` on the tree `root` (its `etc/default/u-boot` and
/// `boot/vmlinuz-*`), writing `root/boot/extlinux/extlinux.conf` as it would on a machine
/// whose `/boot` is (`boot_on_root`) or is not on the root file system.
pub fn uboot_update(root: &Path, boot_on_root: bool, scratch: &Path) -> Result<String> {
    let real_path = tool("u-boot-update")?;
    tool("linux-version")?;
    let real = fs::read_to_string(&real_path).ctx(real_path.display())?;
    let script = scratch.join("u-boot-update");
    fs::write(&script, uboot_update_script(&real)?).ctx(script.display())?;
    run_status(
        Command::new("sh")
            .arg(&script)
            .env("KX_ROOT", root)
            .env("KX_BOOT_ON_ROOT", if boot_on_root { "yes" } else { "no" }),
    )
    .map_err(|e| err!("u-boot-update on {}: {e}", root.display()))?;
    let conf = root.join("boot/extlinux/extlinux.conf");
    fs::read_to_string(&conf).ctx(conf.display())
}

/// flash-kernel's boot script `template` (`bootscr.uboot-generic`) filled in as its
/// `mkimage_script` does for kernel `kvers` on arm64 (`@@BOOT_CMD@@` = booti) with
/// `LINUX_KERNEL_CMDLINE` = `cmdline` and empty defaults, no ubootenv.d or preboot.d snippets,
/// behind the header the `generic` method writes before each script it concatenates.
pub fn flash_kernel_script(template: &str, kvers: &str, cmdline: &str) -> String {
    let mut out = String::from("\n#\n# flash-kernel: bootscr.uboot-generic\n#\n\n");
    for line in template.lines() {
        let l = line
            .replace("@@KERNEL_VERSION@@", kvers)
            .replace("@@LINUX_KERNEL_CMDLINE_DEFAULTS@@", "")
            .replace("@@LINUX_KERNEL_CMDLINE@@", cmdline)
            .replace("@@BOOT_CMD@@", "booti")
            .replace("@@UBOOT_ENV_EXTRA@@", "")
            .replace("@@UBOOT_PREBOOT_EXTRA@@", "");
        out += &l;
        out.push('\n');
    }
    out
}

/// `mkimage -A arm64 -O linux -T script -C none -n "boot script" -d <text>`: a legacy-image
/// `boot.scr`, as flash-kernel makes it (no U-Boot-Script-Address in the generic entries, so
/// load and entry are 0).
pub fn mkimage_script(text: &str, scratch: &Path) -> Result<Vec<u8>> {
    let (src, out) = (scratch.join("boot.script"), scratch.join("boot.scr"));
    fs::write(&src, text).ctx(src.display())?;
    let mut c = Command::new(tool("mkimage")?);
    c.args(["-A", "arm64", "-O", "linux", "-T", "script", "-C", "none"]);
    c.args(["-a", "0", "-e", "0", "-n", "boot script", "-d"]);
    c.arg(&src).arg(&out).env("SOURCE_DATE_EPOCH", FAKE_TIME);
    let o = c.output().ctx("mkimage")?;
    if !o.status.success() {
        return Err(err!(
            "mkimage -T script failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    fs::read(&out).ctx(out.display())
}

/// Compressors of the kernel on the compressed-kernel disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compressor {
    /// `lz4 -l`: the legacy frame the kernel's `Image.lz4` target uses.
    Lz4Legacy,
    /// `zstd`: the frame format of `Image.zst`.
    Zstd,
}

/// `data` compressed by the real `lz4 -l` or `zstd`.
pub fn compress(data: &[u8], how: Compressor, scratch: &Path) -> Result<Vec<u8>> {
    let (src, out) = (scratch.join("kernel.raw"), scratch.join("kernel.cmp"));
    fs::write(&src, data).ctx(src.display())?;
    let _ = fs::remove_file(&out);
    let mut c = match how {
        Compressor::Lz4Legacy => {
            let mut c = Command::new(tool("lz4")?);
            c.args(["-q", "-l", "-9", "-f"]);
            c
        }
        Compressor::Zstd => {
            let mut c = Command::new(tool("zstd")?);
            c.args(["-q", "-f", "-o"]).arg(&out);
            c
        }
    };
    c.arg(&src);
    if how == Compressor::Lz4Legacy {
        c.arg(&out);
    }
    run_status(&mut c)?;
    let _ = fs::remove_file(&src);
    let data = fs::read(&out).ctx(out.display())?;
    let _ = fs::remove_file(&out);
    Ok(data)
}

/// `mkfs.vfat -F 32 --offset <start_lba> <image>` with no size: the FAT volume runs from
/// `start_lba` to the end of the image file, whatever partition table comes later.
pub fn mkfs_vfat_offset(image: &Path, start_lba: u64) -> Result<()> {
    run_status(
        Command::new(tool("mkfs.vfat")?)
            .args(["-F", "32", "-n", "KEXBOOT", "-i", "4b455842", "--offset"])
            .arg(start_lba.to_string())
            .arg(image),
    )
}

/// `sgdisk -n 1:<first>:<last> -t 1:0700 -A 1:set:2`: a fresh GPT with one basic-data partition,
/// marked legacy-BIOS-bootable.
pub fn sgdisk_one(image: &Path, first: u64, last: u64) -> Result<()> {
    run_status(
        Command::new(tool("sgdisk")?)
            .args(["-o", "-n"])
            .arg(format!("1:{first}:{last}"))
            .args(["-t", "1:0700", "-A", "1:set:2", "-U", "kexboot-e2e-fixed"])
            .arg(image)
            .stdout(std::process::Stdio::null()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of u-boot-menu 4.2.2's script the rewrites rely on.
    const SAMPLE: &str = "#!/bin/sh\n\
        _U_BOOT_DIRECTORY=\"/boot/extlinux\"\n\
        if [ \"$(id -u)\" -ne 0 ]\n\
        if [ -e /etc/default/u-boot ]\n\
        for file in /usr/share/u-boot-menu/conf.d/*.conf /etc/u-boot-menu/conf.d/*.conf\n\
        elif [ -e /usr/lib/os-release ]\n\
        for param in $(cat /proc/cmdline)\n\
        ## ${_U_BOOT_DIRECTORY}/extlinux.conf\n\
        _KERNELS=$(linux-version list --paths | linux-version sort --reverse)\n\
        if [ \"$(stat --printf %d /)\" = \"$(stat --printf %d /boot)\" ]\n\
        if [ -e \"/boot/${U_BOOT_INITRD}-${_VERSION}\" ]\n\
        elif [ -d \"${_BOOT_PATH}${U_BOOT_FDT_DIR}${_VERSION}/\" ]\n\
        elif [ -f \"${_BOOT_PATH}/x\" ] && [ /usr/lib/linux-image- = \"${U_BOOT_FDT_DIR}\" ]\n";

    #[test]
    fn uboot_update_rewrites_every_path() {
        let s = uboot_update_script(SAMPLE).unwrap();
        assert!(s.starts_with("#!/bin/sh\n\nkx_list_kernels () {"));
        for want in [
            "_U_BOOT_DIRECTORY=\"${KX_ROOT}/boot/extlinux\"",
            "if false",
            "[ -e ${KX_ROOT}/etc/default/u-boot ]",
            "${KX_ROOT}/usr/share/u-boot-menu/conf.d/*.conf ${KX_ROOT}/etc/u-boot-menu/",
            "$(cat ${KX_ROOT}/proc/cmdline)",
            "## /boot/extlinux/extlinux.conf",
            "$(kx_list_kernels | linux-version sort --reverse)",
            "[ \"${KX_BOOT_ON_ROOT}\" = yes ]",
            "\"${KX_ROOT}/boot/${U_BOOT_INITRD}-",
            "-d \"${KX_ROOT}${_BOOT_PATH}${U_BOOT_FDT_DIR}",
            // A comparison with a literal, not a path it opens: untouched.
            "[ /usr/lib/linux-image- = ",
        ] {
            assert!(s.contains(want), "no {want:?} in\n{s}");
        }
        assert!(uboot_update_script("#!/bin/sh\necho nothing\n").is_err());
    }

    #[test]
    fn flash_kernel_placeholders_are_filled() {
        let t = "setenv bootargs \"@@LINUX_KERNEL_CMDLINE_DEFAULTS@@ ${bootargs} @@LINUX_KERNEL_CMDLINE@@\"\n\
                 @@UBOOT_ENV_EXTRA@@\n\
                 setenv fk_kvers '@@KERNEL_VERSION@@'\n\
                 && @@BOOT_CMD@@ ${kernel_addr_r}\n";
        let s = flash_kernel_script(t, "6.1.0-9-arm64", "console=ttyAMA0 quiet");
        assert!(s.starts_with("\n#\n# flash-kernel: bootscr.uboot-generic\n#\n"));
        assert!(s.contains("setenv bootargs \" ${bootargs} console=ttyAMA0 quiet\"\n"));
        assert!(s.contains("setenv fk_kvers '6.1.0-9-arm64'\n"));
        assert!(s.contains("&& booti ${kernel_addr_r}\n"));
        assert!(!s.contains("@@"));
    }
}
