//! `booti` on the host: a kernel, initrd and device tree in simulated RAM (as `load` leaves
//! them), read only where RAM is readable, planned by the one plan builder and relocated.

use std::cell::Cell;

use kexboot_boot::booti::{self, Error, Ram};
use kexboot_boot::flow::{MemoryView, Staging};
use kexboot_loader::Range as LRange;
use kexboot_tests::*;

/// Readable RAM: the buffers `load` filled; everything else stands for `no-map` memory.
struct Loaded<'a>(&'a [HostBuf]);

impl Ram for Loaded<'_> {
    fn read(&self, r: LRange) -> Option<&[u8]> {
        read_bufs(self.0, r)
    }
}

fn read_bufs(bufs: &[HostBuf], r: LRange) -> Option<&[u8]> {
    bufs.iter().find_map(|b| {
        let end = b.addr + b.data.len() as u64;
        (b.addr <= r.start() && r.end() <= end)
            .then(|| &b.data[(r.start() - b.addr) as usize..(r.end() - b.addr) as usize])
    })
}

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn booti_kernel_initrd_and_named_fdt() {
    let spec = KernelSpec::new(MIB as usize + 4321, 41);
    let k = spec.build();
    let initrd = pattern(42, 99_999);
    let m = Machine::default();
    let mut staging = m.staging();
    let mut kbuf = staging.alloc(spec.image_size() as usize).unwrap();
    kbuf.data[..k.len()].copy_from_slice(&k);
    let mut ibuf = staging.alloc(initrd.len()).unwrap();
    ibuf.data.copy_from_slice(&initrd);
    let mut dbuf = staging.alloc(m.dtb.len()).unwrap();
    dbuf.data.copy_from_slice(&m.dtb);
    let loaded = [kbuf, ibuf, dbuf];
    let cmd = format!(
        "booti {:#x} {:x}:{:x} {:#x}",
        loaded[0].addr,
        loaded[1].addr,
        initrd.len(),
        loaded[2].addr
    );
    let fixed = Cell::new(0);
    let own = |d: &[u8]| {
        fixed.set(fixed.get() + 1);
        Ok(d.to_vec())
    };
    let args = booti::parse(&argv(&cmd), &Loaded(&loaded), b"not used", &own).expect("parse");
    assert_eq!(fixed.get(), 1, "a named tree gets kexboot's own fixups");
    let ram = [m.ram];
    let avoid = m.avoid();
    let mem = MemoryView {
        ram: &ram,
        avoid: &avoid,
    };
    let mut p = booti::plan(&args, &mut staging, &mem, "console=ttyAMA0 x").expect("plan");
    let [kbuf, ibuf, _] = loaded;
    p.buffers.insert(0, kbuf);
    p.buffers.insert(1, ibuf);
    // booti sets no seeds: the DTB keeps what it had (the expected seed is the test DTB's).
    let r = m.relocate(&p).expect("relocation");
    let at = LRange::from_len(p.entry, k.len() as u64).unwrap();
    assert!(r.mem.slice(at).unwrap() == k, "kernel byte-exact");
    let i = p.placement.initrd.unwrap();
    let at = LRange::from_len(i.start(), initrd.len() as u64).unwrap();
    assert!(r.mem.slice(at).unwrap() == initrd, "initrd byte-exact");
    let dtb = r
        .mem
        .slice(LRange::from_len(p.dtb, p.segments[2].len).unwrap())
        .unwrap()
        .to_vec();
    let info = kexboot_loader::dt::DtInfo::parse(&dtb).unwrap();
    assert_eq!(info.bootargs.as_deref(), Some("console=ttyAMA0 x"));
    assert_eq!(
        info.initrd,
        Some(LRange::from_len(i.start(), initrd.len() as u64).unwrap())
    );
}

#[test]
fn booti_refuses_what_it_may_not_read_and_says_why() {
    let none = |_: &[u8]| -> Result<Vec<u8>, kexboot_loader::Error> { unreachable!() };
    let nothing = Loaded(&[]);
    let err = |cmd: &str| {
        booti::parse(&argv(cmd), &nothing, &[], &none)
            .err()
            .expect("refused")
    };
    // The e2e case (spin-table-booti-user-dtb-no-map) waits for this very line.
    let e = err("booti 0x40001000");
    assert!(matches!(e, Error::KernelAddr(0x4000_1000)));
    assert_eq!(
        e.to_string(),
        "booti: 0x40001000 is not in RAM kexboot may read (no-map memory is never touched)"
    );
    assert_eq!(err("booti").to_string(), booti::USAGE);
    assert_eq!(
        err("booti 0xzz").to_string(),
        "booti: '0xzz' is not a hex address"
    );
    assert_eq!(err("booti ffffffffffffffff").to_string(), booti::USAGE);
}

#[test]
fn booti_checks_a_named_fdt_header_before_reading_it() {
    let spec = KernelSpec::new(64 * KIB as usize, 43);
    let k = spec.build();
    let mut staging = Machine::default().staging();
    let mut kbuf = staging.alloc(spec.image_size() as usize).unwrap();
    kbuf.data[..k.len()].copy_from_slice(&k);
    let mut not_fdt = staging.alloc(4096).unwrap();
    not_fdt.data[..8].copy_from_slice(b"\xd0\x0d\xfe\xedXXXX"); // magic, then a huge totalsize
    not_fdt.data[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut garbage = staging.alloc(4096).unwrap();
    garbage.data.fill(0x5a);
    let loaded = [kbuf, not_fdt, garbage];
    let own = |_: &[u8]| -> Result<Vec<u8>, kexboot_loader::Error> { unreachable!() };
    for (i, want) in [(1, "totalsize"), (2, "bad magic")] {
        let cmd = format!("booti {:#x} - {:#x}", loaded[0].addr, loaded[i].addr);
        let e = booti::parse(&argv(&cmd), &Loaded(&loaded), b"", &own)
            .err()
            .expect("refused");
        assert!(matches!(e, Error::Fdt { .. }), "{e}");
        assert!(e.to_string().contains(want), "{e}");
    }
}

/// Readable and writable RAM: the buffers of the test, all of them free memory.
struct Writable<'a>(&'a mut [HostBuf]);

impl Ram for Writable<'_> {
    fn read(&self, r: LRange) -> Option<&[u8]> {
        read_bufs(self.0, r)
    }
}

impl booti::RamMut for Writable<'_> {
    fn write(&mut self, r: LRange) -> Option<&mut [u8]> {
        self.0.iter_mut().find_map(|b| {
            let end = b.addr + b.data.len() as u64;
            (b.addr <= r.start() && r.end() <= end)
                .then(|| &mut b.data[(r.start() - b.addr) as usize..(r.end() - b.addr) as usize])
        })
    }
}

/// U-Boot's `booti` of a compressed Image: decompressed from the kernel address to
/// `kernel_comp_addr_r`, reading `kernel_comp_size` bytes, at most ten times that.
#[test]
fn booti_compressed_kernel_uses_kernel_comp_vars() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../loader/tests/data");
    let spec = KernelSpec::new(MIB as usize + 4321, 43);
    let k = spec.build();
    let lz4 = std::fs::read(format!("{fixtures}/kernel.lz4l-sized")).unwrap();
    let zst = std::fs::read(format!("{fixtures}/kernel.zst-stdin")).unwrap();
    let cases: [(&str, Vec<u8>, usize); 3] = [
        ("gzip", gzip(&k), k.len()),
        ("lz4", lz4, 1 << 20),
        ("zstd", zst, 1 << 20),
    ];
    for (name, packed, unpacked_len) in cases {
        let m = Machine::default();
        let mut staging = m.staging();
        // kernel_comp_size is often set larger than the file: what follows is ignored (zero
        // for the legacy lz4 stream, which has no end mark).
        let mut kbuf = staging.alloc(1 << 20).unwrap();
        let fill = if name == "lz4" { 0 } else { 0xa5 };
        kbuf.data.fill(fill);
        kbuf.data[..packed.len()].copy_from_slice(&packed);
        let dbuf = staging.alloc(4 << 20).unwrap();
        let (kaddr, daddr) = (kbuf.addr, dbuf.addr);
        let mut bufs = [kbuf, dbuf];
        let cmd = argv(&format!("booti {kaddr:#x}"));
        let size = Some(1 << 20);

        // Without the variables: U-Boot's complaint, naming both.
        let e = booti::decompress(&cmd, &mut Writable(&mut bufs), None, size).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, Error::CompVars(f) if f.name() == name)
                && msg.contains("kernel_comp_addr_r")
                && msg.contains("kernel_comp_size"),
            "{name}: {msg}"
        );
        // kernel_comp_addr_r where nothing may be written.
        let e = booti::decompress(&cmd, &mut Writable(&mut bufs), Some(0x1000), size);
        assert!(matches!(e, Err(Error::CompDst(_))), "{name}: {e:?}");
        // kernel_comp_size past readable RAM.
        let e = booti::decompress(&cmd, &mut Writable(&mut bufs), Some(daddr), Some(1 << 40));
        assert!(matches!(e, Err(Error::CompSrc(_))), "{name}: {e:?}");

        let d = booti::decompress(&cmd, &mut Writable(&mut bufs), Some(daddr), size)
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.format.name(), d.addr, d.len),
            (name, daddr, unpacked_len)
        );
        if name == "gzip" {
            assert_eq!(&bufs[1].data[..k.len()], &k[..]);
        }
        // Then booti boots from kernel_comp_addr_r.
        let none = |d: &[u8]| Ok(d.to_vec());
        let args = booti::parse(
            &argv(&format!("booti {daddr:#x}")),
            &Loaded(&bufs),
            &m.dtb,
            &none,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(args.kernel.addr, daddr);
        // An uncompressed kernel is left alone.
        let plain = argv(&format!("booti {daddr:#x}"));
        assert_eq!(
            booti::decompress(&plain, &mut Writable(&mut bufs), None, None).unwrap(),
            None
        );
    }
}
