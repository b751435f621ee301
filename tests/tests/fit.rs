//! FIT images and verified boot in the whole flow: extlinux entries naming mkimage-signed FITs
//! (`loader/tests/data/fit/`), with and without a required key, and the shell's `bootm`,
//! `booti` and `source` under the same policy.

use kexboot_boot::flow::BootError;
use kexboot_boot::script::Outcome as Ran;
use kexboot_boot::shell::Shell;
use kexboot_loader::fit::{FitError, Keys};
use kexboot_tests::board::*;
use kexboot_tests::*;

const CONF: &str = "/boot/extlinux/extlinux.conf";

fn fixture(name: &str) -> Vec<u8> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../loader/tests/data/fit/");
    std::fs::read(format!("{p}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn keys(name: &str) -> Keys {
    Keys::parse(&fixture(name)).expect("keys")
}

/// rsa.itb with one byte of its kernel data changed.
fn tampered() -> Vec<u8> {
    let mut fit = fixture("rsa.itb");
    let kernel = fixture("kernel");
    let at = fit
        .windows(kernel.len())
        .position(|w| w == kernel)
        .expect("embedded kernel");
    fit[at + 5000] ^= 0x01;
    fit
}

fn boot(body: &str, files: &[(&str, &[u8])], keys: Keys) -> Outcome {
    let mut all: Vec<(&str, &[u8])> = vec![(CONF, body.as_bytes())];
    all.extend_from_slice(files);
    let m = Machine::default();
    let mut staging = m.staging();
    let mut platform = FakePlatform {
        keys,
        ..FakePlatform::default()
    };
    m.run(&mut open(mbr_fat16(&all)), &mut staging, &mut platform)
}

/// The FIT's kernel, ramdisk and device tree land byte-exact where the boot protocol wants them.
fn check_fit_boot(out: &Outcome, label: &str) {
    let p = out.prepared();
    assert_eq!(p.label, label);
    let kernel = fixture("kernel");
    let ramdisk = fixture("ramdisk");
    let want = Expect {
        kernel: &kernel,
        initrd: Some(&ramdisk),
        append: "console=ttyAMA0 fit",
        label,
    };
    let m = Machine::default();
    let r = m.boot_and_check(p, &want);
    let dtb = r
        .mem
        .slice(kexboot_loader::Range::from_len(p.dtb, p.segments.last().unwrap().len).unwrap())
        .unwrap()
        .to_vec();
    let info = kexboot_loader::dt::DtInfo::parse(&dtb).expect("the FIT's tree, fixed up");
    assert_eq!(info.compatible, ["test"], "the FIT's fdt is handed over");
}

#[test]
fn signed_fit_entry_boots_with_the_key_required() {
    let rsa = fixture("rsa.itb");
    let out = boot(
        "default fit\nlabel fit\n fit /boot/image.itb\n append console=ttyAMA0 fit\n",
        &[("/boot/image.itb", &rsa)],
        keys("keys-rsa.dtb"),
    );
    assert!(out.failures.is_empty(), "{:#?}", out.failures);
    assert!(out.prepared().verified);
    check_fit_boot(&out, "fit");
}

#[test]
fn every_refused_entry_names_its_reason_then_the_good_one_boots() {
    let rsa = fixture("rsa.itb");
    let bad = tampered();
    let evil = fixture("evil.itb");
    let k = fixture("kernel");
    let body = "default one\n\
        label one\n kernel /boot/tampered.itb\n append console=ttyAMA0 fit\n\
        label two\n kernel /boot/evil.itb#conf-1\n append console=ttyAMA0 fit\n\
        label three\n kernel /boot/Image\n append console=ttyAMA0 fit\n\
        label four\n kernel /boot/image.itb#conf-2\n append console=ttyAMA0 fit\n\
        label five\n kernel /boot/image.itb\n initrd /boot/initrd\n append console=ttyAMA0 fit\n\
        label six\n kernel /boot/image.itb#conf-1\n append console=ttyAMA0 fit\n";
    let out = boot(
        body,
        &[
            ("/boot/image.itb", &rsa),
            ("/boot/tampered.itb", &bad),
            ("/boot/evil.itb", &evil),
            ("/boot/Image", &k),
            ("/boot/initrd", b"unsigned initrd"),
        ],
        keys("keys-rsa.dtb"),
    );
    let (e, text) = out.failure("one");
    assert!(
        matches!(e, BootError::Fit { err: FitError::HashMismatch { image, .. }, .. } if image == "kernel-1"),
        "{text}"
    );
    let (_, text) = out.failure("two");
    assert!(
        text.contains("/boot/evil.itb: FIT configuration 'conf-1': signature check failed"),
        "{text}"
    );
    let (e, text) = out.failure("three");
    assert!(matches!(e, BootError::NotVerified { .. }), "{text}");
    assert!(text.contains("not a FIT image"), "{text}");
    let (_, text) = out.failure("four");
    assert!(
        text.contains("'conf-2'") && text.contains("no signature node"),
        "{text}"
    );
    let (e, text) = out.failure("five");
    assert!(matches!(e, BootError::NotVerified { .. }), "{text}");
    assert!(text.contains("outside the FIT"), "{text}");
    check_fit_boot(&out, "six");
}

#[test]
fn without_keys_fits_and_plain_images_both_boot() {
    let rsa = fixture("rsa.itb");
    let k = fixture("kernel");
    // A FIT named like any kernel is recognised by its content.
    let out = boot(
        "default a\nlabel a\n kernel /boot/vmlinuz\n append console=ttyAMA0 fit\n",
        &[("/boot/vmlinuz", &rsa)],
        Keys::none(),
    );
    assert!(out.failures.is_empty(), "{:#?}", out.failures);
    assert!(!out.prepared().verified);
    check_fit_boot(&out, "a");
    // Hashes are checked with no key: the tampered FIT fails, the plain Image boots.
    let bad = tampered();
    let out = boot(
        "default a\nlabel a\n kernel /boot/t.itb\nlabel b\n kernel /boot/Image\n",
        &[("/boot/t.itb", &bad), ("/boot/Image", &k)],
        Keys::none(),
    );
    let (_, text) = out.failure("a");
    assert!(text.contains("sha256 hash mismatch"), "{text}");
    assert_eq!(out.prepared().label, "b");
}

#[test]
fn gzip_kernel_in_a_signed_fit() {
    let gz = fixture("gz.itb");
    let out = boot(
        "default g\nlabel g\n fit /boot/gz.itb#conf-1\n append console=ttyAMA0 fit\n",
        &[("/boot/gz.itb", &gz)],
        keys("keys-rsa.dtb"),
    );
    assert!(out.failures.is_empty(), "{:#?}", out.failures);
    check_fit_boot(&out, "g");
}

// --- The shell. ---

type Sh = Shell<TestBoard>;

fn shell(files: &[(&str, &[u8])], keys: Keys) -> (Sh, kexboot_boot::env::Env) {
    let board = TestBoard {
        keys,
        ..TestBoard::new()
    };
    let (sh, mut env) = shell_on(board, Some(mbr_fat16(files)));
    sh.default_addresses(&mut env);
    (sh, env)
}

#[test]
fn bootm_boots_a_signed_fit_and_refuses_a_tampered_one() {
    let rsa = fixture("rsa.itb");
    let bad = tampered();
    let (mut sh, mut env) = shell(
        &[("/rsa.itb", &rsa), ("/bad.itb", &bad)],
        keys("keys-rsa.dtb"),
    );
    let said = |sh: &mut Sh, env: &mut _, line: &str| run(sh, env, line).1;
    said(
        &mut sh,
        &mut env,
        "load virtio 0:1 ${kernel_addr_r} /bad.itb",
    );
    let text = said(&mut sh, &mut env, "bootm ${kernel_addr_r}");
    assert!(text.contains("sha256 hash mismatch"), "{text}");
    assert!(sh.board().jumps.is_empty());
    said(
        &mut sh,
        &mut env,
        "load virtio 0:1 ${kernel_addr_r} /rsa.itb",
    );
    let text = said(&mut sh, &mut env, "bootm ${kernel_addr_r}#conf-2");
    assert!(text.contains("no signature node"), "{text}");
    assert!(sh.board().jumps.is_empty());
    let text = said(&mut sh, &mut env, "bootm ${kernel_addr_r}#conf-1");
    assert!(text.contains("bootm: relocation plan refused"), "{text}");
    let j = &sh.board().jumps[0];
    assert_eq!(j.label, "bootm");
    let kernel = j
        .segments
        .iter()
        .find(|s| j.entry >= s.dst && j.entry < s.dst + s.memsz)
        .unwrap();
    assert_eq!(kernel.len, fixture("kernel").len() as u64);
    // booti is refused while a key is required.
    let text = said(&mut sh, &mut env, "booti ${kernel_addr_r}");
    assert!(text.contains("refused by verified boot"), "{text}");
    assert_eq!(sh.board().jumps.len(), 1);
}

#[test]
fn source_runs_a_script_only_from_a_verified_fit() {
    let script = fixture("script.itb");
    let legacy = {
        // mkimage -T script layout is checked elsewhere; any non-FIT bytes do here.
        vec![0x27u8, 0x05, 0x19, 0x56, 0, 0, 0, 0]
    };
    let (mut sh, mut env) = shell(
        &[("/s.itb", &script), ("/boot.scr", &legacy)],
        keys("keys-rsa.dtb"),
    );
    run(&mut sh, &mut env, "load virtio 0:1 ${scriptaddr} /s.itb");
    let (out, text) = run(&mut sh, &mut env, "source ${scriptaddr}:script-1");
    assert_eq!(out, Ran::Success, "{text}");
    assert_eq!(env.get("fitscript"), Some("ran"));
    assert!(text.contains("script from a signed FIT"), "{text}");
    // Without a name: the default configuration's script.
    env.unset("fitscript");
    run(&mut sh, &mut env, "source ${scriptaddr}");
    assert_eq!(env.get("fitscript"), Some("ran"));
    // A script image outside a FIT is refused.
    run(&mut sh, &mut env, "load virtio 0:1 ${scriptaddr} /boot.scr");
    let (_, text) = run(&mut sh, &mut env, "source ${scriptaddr}");
    assert!(text.contains("refused by verified boot"), "{text}");
    // And with a key that did not sign it, the FIT's script is refused too.
    let (mut sh, mut env) = shell(&[("/s.itb", &script)], keys("keys-big.dtb"));
    run(&mut sh, &mut env, "load virtio 0:1 ${scriptaddr} /s.itb");
    let (_, text) = run(&mut sh, &mut env, "source ${scriptaddr}:script-1");
    assert!(text.contains("signature check failed"), "{text}");
    assert_eq!(env.get("fitscript"), None);
}

/// The one place a disk boot script is found (autoboot and the `boot` scan): with a required
/// key only a script inside a verified FIT, else also plain and legacy ones.
#[test]
fn disk_boot_scripts_under_verified_boot() {
    use kexboot_boot::autoboot::find_script;
    let script = fixture("script.itb");
    let text = fixture("script.txt");
    let find = |files: &[(&str, &[u8])], keys: &Keys| {
        let mut fs = open(mbr_fat16(files));
        find_script(&mut fs, keys)
    };
    let plain: &[(&str, &[u8])] = &[("/kexboot/boot.txt", b"echo plain\n")];
    assert!(find(plain, &keys("keys-rsa.dtb")).is_none());
    assert_eq!(
        find(plain, &Keys::none()).map(|(_, t)| t).as_deref(),
        Some("echo plain\n")
    );
    let fit: &[(&str, &[u8])] = &[
        ("/boot.scr", &script),
        ("/kexboot/boot.txt", b"echo plain\n"),
    ];
    let (path, t) = find(fit, &keys("keys-rsa.dtb")).expect("the signed FIT's script");
    assert_eq!((path, t.as_bytes()), ("/boot.scr", &text[..]));
    // Signed by a key that is not the required one: refused, and the plain one is not a fallback.
    assert!(find(fit, &keys("keys-big.dtb")).is_none());
    assert_eq!(find(fit, &Keys::none()).map(|(p, _)| p), Some("/boot.scr"));
}

/// Image keys only (`required = "image"`): a FIT whose every image is signed boots, and the
/// jump gates let it through; the configuration-signed FIT has no image signatures: refused.
#[test]
fn image_signed_fit_boots_with_an_image_key() {
    let img = fixture("img.itb");
    let rsa = fixture("rsa.itb");
    let out = boot(
        "default conf\nlabel conf\n fit /boot/rsa.itb\n append console=ttyAMA0 fit\n\
         label img\n fit /boot/img.itb\n append console=ttyAMA0 fit\n",
        &[("/boot/img.itb", &img), ("/boot/rsa.itb", &rsa)],
        keys("keys-img.dtb"),
    );
    let (_, text) = out.failure("conf");
    assert!(
        text.contains("signature check failed: no signature node"),
        "{text}"
    );
    assert!(out.prepared().verified);
    check_fit_boot(&out, "img");
    // And bootm reaches the jump with it.
    let (mut sh, mut env) = shell(&[("/img.itb", &img)], keys("keys-img.dtb"));
    run(
        &mut sh,
        &mut env,
        "load virtio 0:1 ${kernel_addr_r} /img.itb",
    );
    let (_, text) = run(&mut sh, &mut env, "bootm ${kernel_addr_r}");
    assert!(text.contains("bootm: relocation plan refused"), "{text}");
    assert_eq!(sh.board().jumps.len(), 1);
}
