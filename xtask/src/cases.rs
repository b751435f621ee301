//! The e2e case table: every QEMU case `cargo xtask test` runs, in order.

use crate::check::CaseFn;
use crate::e2e_el3::{CortexA72, Max};
use crate::{
    e2e_boot, e2e_el3, e2e_fit, e2e_http, e2e_net, e2e_probe, e2e_real, e2e_rpi3, e2e_warm,
};

/// One e2e case.
pub(crate) struct Case {
    /// Its name (`--only <name>`, `target/e2e/<name>.log`).
    pub name: &'static str,
    /// Whether it boots kexboot (so needs `target/kexboot.bin`).
    pub needs_firmware: bool,
    /// Runs it.
    pub run: CaseFn,
}

impl Case {
    /// A case that boots kexboot.
    const fn fw(name: &'static str, run: CaseFn) -> Case {
        Case {
            name,
            needs_firmware: true,
            run,
        }
    }

    /// A case without kexboot (the kernel, the disk or kexec-tools alone).
    const fn no_fw(name: &'static str, run: CaseFn) -> Case {
        Case {
            name,
            needs_firmware: false,
            run,
        }
    }
}

/// Every case, in the order they run.
#[rustfmt::skip]
pub(crate) const CASES: &[Case] = &[
    Case::no_fw("direct-linux", e2e_boot::case_direct),
    Case::no_fw("uboot-image-mbr", e2e_boot::case_uboot),
    Case::fw("el2-image-mbr", e2e_boot::case_el2_image_mbr),
    Case::fw("el1-imagegz-gpt", e2e_boot::case_el1_imagegz_gpt),
    Case::fw("fallback-missing-kernel", e2e_boot::case_fallback),
    Case::fw("all-entries-bad", e2e_boot::case_all_bad),
    Case::fw("el2-cpumax-rng-seeds", e2e_boot::case_cpumax_seeds),
    Case::fw("exception-report", e2e_boot::case_exception_report),
    Case::fw("boot-menu-choose-edit", e2e_boot::case_menu),
    Case::fw("shell-saveenv-reset", e2e_boot::case_saveenv),
    Case::fw("shell-load-booti", e2e_boot::case_load_booti),
    Case::fw("bootlimit-altbootcmd", e2e_warm::case_bootlimit),
    Case::no_fw("uboot-real-ext4-root", e2e_real::case_uboot_ext4_root),
    Case::fw("real-ext4-uboot-menu-root", e2e_real::case_ext4_root),
    Case::no_fw("uboot-real-ext4-bootpart", e2e_real::case_uboot_ext4_bootpart),
    Case::fw("real-ext4-uboot-menu-bootpart", e2e_real::case_ext4_bootpart),
    Case::no_fw("uboot-real-ext4-nocsum", e2e_real::case_uboot_ext4_nocsum),
    Case::fw("real-ext4-nocsum-no64bit", e2e_real::case_ext4_nocsum),
    Case::no_fw("uboot-real-ext2", e2e_real::case_uboot_ext2),
    Case::fw("real-ext2-uboot-menu", e2e_real::case_ext2),
    Case::no_fw("uboot-real-bootscr-ext4", e2e_real::case_uboot_bootscr_ext4),
    Case::fw("real-flash-kernel-bootscr-ext4", e2e_real::case_bootscr_ext4),
    Case::fw("real-flash-kernel-bootscr-fat", e2e_real::case_bootscr_fat),
    Case::fw("real-bls-version-sort", e2e_real::case_bls),
    Case::no_fw("uboot-real-lz4-legacy-refused", e2e_real::case_uboot_lz4_refused),
    Case::fw("real-kernel-lz4-legacy", e2e_real::case_lz4),
    Case::no_fw("uboot-real-zstd-refused", e2e_real::case_uboot_zstd_refused),
    Case::fw("real-kernel-zstd", e2e_real::case_zstd),
    Case::no_fw("uboot-real-fat-oversize", e2e_real::case_uboot_fat_oversize),
    Case::fw("real-fat-larger-than-partition", e2e_real::case_fat_oversize),
    Case::no_fw("uboot-real-two-disks", e2e_real::case_uboot_two_disks),
    Case::fw("real-shell-load-two-disks", e2e_real::case_two_disks),
    Case::no_fw("kexec-tools-direct-baseline", e2e_warm::case_direct_baseline),
    Case::fw("warm-3-cycles-helper", e2e_warm::case_helper_3_cycles),
    Case::fw("warm-kexec-tools-default", e2e_warm::case_tools_default),
    Case::fw("warm-kexec-tools-append", e2e_warm::case_tools_append),
    Case::fw("warm-el1-kexec-tools-append", e2e_warm::case_tools_append_el1),
    Case::fw("warm-bad-entry", e2e_warm::case_bad_entry),
    Case::fw("psci-smp4-warm-cycle", e2e_warm::case_psci_smp4_warm),
    Case::fw("spin-table-smp4", e2e_warm::case_spin_table_smp4),
    Case::fw("warm-3-cycles-net-rx", e2e_warm::case_net_rx_3_cycles),
    Case::fw("spin-table-booti-user-dtb-no-map", e2e_warm::case_user_dtb_no_map),
    Case::fw("helper-refuses-non-kexboot", e2e_warm::case_helper_refuses),
    Case::fw("el3-psci-smp4", e2e_el3::case_smp4::<CortexA72>),
    Case::fw("el3-psci-hotplug", e2e_el3::case_hotplug::<CortexA72>),
    Case::fw("el3-psci-warm-cycle", e2e_el3::case_warm_cycle::<CortexA72>),
    Case::fw("el3-psci-reboot", e2e_el3::case_reboot::<CortexA72>),
    Case::fw("el3-spin-table-reboot", e2e_el3::case_spin_table_reboot::<CortexA72>),
    Case::fw("el3-psci-smp4-cpumax", e2e_el3::case_smp4::<Max>),
    Case::fw("el3-psci-hotplug-cpumax", e2e_el3::case_hotplug::<Max>),
    Case::fw("el3-psci-warm-cycle-cpumax", e2e_el3::case_warm_cycle::<Max>),
    Case::fw("el3-psci-reboot-cpumax", e2e_el3::case_reboot::<Max>),
    Case::fw("el3-spin-table-reboot-cpumax", e2e_el3::case_spin_table_reboot::<Max>),
    Case::fw("probe-cold-el2-a72", e2e_probe::case),
    Case::fw("probe-cold-el1-a72", e2e_probe::case),
    Case::fw("probe-cold-el2-max", e2e_probe::case),
    Case::fw("probe-cold-el1-max", e2e_probe::case),
    Case::fw("probe-el3-a72", e2e_probe::case),
    Case::fw("probe-el3-max", e2e_probe::case),
    Case::fw("probe-spin-table-el2-a72", e2e_probe::case),
    Case::fw("probe-spin-table-el1-max", e2e_probe::case),
    Case::fw("probe-el3-spin-table-a72", e2e_probe::case),
    Case::fw("probe-warm-el2-a72", e2e_probe::case),
    Case::fw("probe-warm-el1-a72", e2e_probe::case),
    Case::fw("probe-el3-warm-a72", e2e_probe::case),
    Case::no_fw("rpi3-uboot-sd", e2e_rpi3::case_uboot_sd),
    Case::fw("rpi3-sd-cold-4cpus", e2e_rpi3::case_cold_sd),
    Case::fw("rpi3-sd-imagegz", e2e_rpi3::case_imagegz_sd),
    Case::fw("rpi3-sd-corrupt", e2e_rpi3::case_corrupt_sd),
    Case::fw("rpi3-dtb-symbols-kept", e2e_rpi3::case_symbols),
    Case::fw("rpi3-fdtdir-overlay", e2e_rpi3::case_fdtdir_overlay),
    Case::fw("rpi3-fdt-line", e2e_rpi3::case_fdt),
    Case::fw("rpi3-warm-nr-cpus-1", e2e_rpi3::case_warm_one_cpu),
    Case::fw("rpi3-saveenv-reset", e2e_rpi3::case_saveenv_reset),
    Case::fw("rpi3-poweroff", e2e_rpi3::case_poweroff),
    Case::fw("netboot-qemu-tftp", e2e_net::case_qemu_tftp),
    Case::fw("netboot-loss5", e2e_net::case_loss5),
    Case::fw("netboot-loss20", e2e_net::case_loss20),
    Case::fw("netboot-dhcp-script", e2e_net::case_dhcp_script),
    Case::fw("netboot-server-silent", e2e_net::case_server_silent),
    Case::fw("netboot-http-pxe", e2e_http::case_http_pxe),
    Case::fw("netboot-http-restart", e2e_http::case_http_restart),
    Case::fw("fit-no-keys-hashes-checked", e2e_fit::case_no_keys),
    Case::fw("fit-rsa-refusals-then-signed-boots", e2e_fit::case_rsa),
    Case::fw("fit-ecdsa-required", e2e_fit::case_ecdsa),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique() {
        let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let all = names.len();
        names.dedup();
        assert_eq!(all, names.len(), "a case is listed twice");
    }

    /// Every EL3 case also runs on `-cpu max` (SVE, SME, PAuth, ... handed to the NS world).
    #[test]
    fn every_el3_case_has_a_cpumax_variant() {
        let names: Vec<_> = CASES.iter().map(|c| c.name).collect();
        let plain = names
            .iter()
            .filter(|n| n.starts_with("el3-") && !n.ends_with("-cpumax"));
        for n in plain {
            let max = format!("{n}-cpumax");
            assert!(names.contains(&max.as_str()), "no {max}");
        }
    }
}
