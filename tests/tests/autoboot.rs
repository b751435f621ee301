//! Autoboot order and boot counting on the host, over a FAT disk image: what runs at power-on
//! (`altbootcmd` / boot script / `bootcmd` / `boot`) and the counter saved on the partition.

use kexboot_boot::autoboot::{choose, count_boot, find_script, Autorun};
use kexboot_boot::bootcount::BOOTCOUNT_PATH;
use kexboot_boot::env::Env;
use kexboot_tests::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    let mut e = Env::default();
    for (k, v) in pairs {
        e.set(k, v);
    }
    e
}

/// One power-on: count, then pick (as the firmware's autoboot does).
fn power_on(fs: &mut BootFs, env: &mut Env) -> Autorun {
    let counted = count_boot(Some(&mut *fs), env);
    let script = find_script(fs, &kexboot_loader::fit::Keys::none());
    choose(script, counted, env)
}

#[test]
fn bootlimit_switches_to_altbootcmd_and_the_count_is_saved() {
    let mut fs = open(mbr_fat16(&[
        ("/kexboot/env.txt", b"x=1\n"),
        ("/kexboot/boot.txt", b"echo script\n"),
    ]));
    let vars = [
        ("bootlimit", "2"),
        ("bootcmd", "boot"),
        ("altbootcmd", "boot rescue"),
    ];
    // Boots 1 and 2 are within the limit: the boot script wins over bootcmd.
    for n in 1..=2 {
        let mut e = env(&vars);
        let run = power_on(&mut fs, &mut e);
        assert_eq!(run.name, "/kexboot/boot.txt", "boot {n}");
        assert_eq!(e.get("bootcount"), Some(n.to_string().as_str()));
    }
    // Boot 3 passed the limit: altbootcmd, even over the script.
    let mut e = env(&vars);
    let run = power_on(&mut fs, &mut e);
    assert_eq!(
        run,
        Autorun {
            name: "altbootcmd",
            text: "boot rescue".into()
        }
    );
    let saved = fs.read_file(BOOTCOUNT_PATH, 64).unwrap();
    assert_eq!(kexboot_boot::bootcount::decode_count(&saved), Ok(3));
    // Linux resets the counter: back to the script.
    fs.write_in_place(BOOTCOUNT_PATH, 0, b"0\n              ")
        .unwrap();
    let mut e = env(&vars);
    assert_eq!(power_on(&mut fs, &mut e).name, "/kexboot/boot.txt");
}

#[test]
fn a_damaged_counter_counts_from_zero() {
    let mut fs = open(mbr_fat16(&[(BOOTCOUNT_PATH, b"garbage\n")]));
    let mut e = env(&[("bootlimit", "1"), ("bootcmd", "netboot")]);
    let run = power_on(&mut fs, &mut e);
    assert_eq!(
        run,
        Autorun {
            name: "bootcmd",
            text: "netboot".into()
        }
    );
    assert_eq!(e.get("bootcount"), Some("1"));
}

#[test]
fn without_bootlimit_script_then_bootcmd_then_boot() {
    let mut fs = open(mbr_fat16(&[("/kexboot/boot.txt", b"echo txt\n")]));
    let mut e = env(&[("bootcmd", "boot || netboot")]);
    assert_eq!(power_on(&mut fs, &mut e).name, "/kexboot/boot.txt");
    assert_eq!(e.get("bootcount"), None, "no counting without bootlimit");

    let mut fs = open(mbr_fat16(&[("/kexboot/env.txt", b"")]));
    assert_eq!(
        power_on(&mut fs, &mut e),
        Autorun {
            name: "bootcmd",
            text: "boot || netboot".into()
        }
    );
    assert_eq!(power_on(&mut fs, &mut Env::default()).text, "boot");
    assert!(fs.stat(BOOTCOUNT_PATH).is_err(), "nothing written");
}
