//! The boards kexboot knows, one module each (`qemu_virt`, `rpi3`), and the one place that
//! tells which of them this is: the device tree's root `compatible`. One image serves every
//! board; a tree that names none of them is run as `qemu-virt` would be (everything from the
//! tree), under its own first `compatible` string.

use kexboot_loader::dt::DtInfo;

use crate::{qemu_virt, rpi3};

/// Names and root compatibles of every board, most specific first.
const BOARDS: &[(&str, &[&str])] = &[
    (rpi3::NAME, rpi3::COMPATIBLE),
    (qemu_virt::NAME, qemu_virt::COMPATIBLE),
];

/// The board's name for the banner, `version` and the `board` variable.
pub fn name(info: &DtInfo) -> &'static str {
    BOARDS
        .iter()
        .find(|(_, compat)| info.compatible.iter().any(|c| compat.contains(&c.as_str())))
        .map_or(qemu_virt::NAME, |(name, _)| name)
}

/// Device tree `compatible`s of the devices kexboot drives itself beyond the console and
/// virtio: mapped as device memory at start when the tree has them.
pub const DRIVEN: &[&str] = &[
    "brcm,bcm2835-sdhost",
    "brcm,bcm2835-sdhci",
    "brcm,bcm2835-gpio",
    crate::bcm2835_mbox::COMPATIBLE,
    crate::bcm2835_pm::COMPATIBLE[0],
    crate::bcm2835_pm::COMPATIBLE[1],
];
