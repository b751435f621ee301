//! Helpers for the host-side whole-boot-flow tests in `tests/tests/`: disk images written with
//! third-party tools (`fatfs`, `mbrman`, `gpt`), synthetic arm64 kernels and their gzip, a
//! staging allocator over a simulated heap, a fake platform, and [`Machine::relocate`], which
//! does on the host exactly what `boards/src/relocation.rs` does on hardware: build the entry
//! list with `kexboot_relocate::build`, then run it with `simulate` over a `VecMemory`.
//! [`Booted::check`] asserts everything the arm64 boot protocol and the relocator contract
//! promise about the result.

pub mod board;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::rc::Rc;

use kexboot_boot::extlinux::Config;
use kexboot_boot::flow::{self, Failure, Files, MemoryView, Platform, Prepared, Staging};
use kexboot_fs::{open_boot_fs, FatFs, MemDisk, PartitionDevice};
pub use kexboot_relocate::Range;
use kexboot_relocate::{self as relocate, EntryList, Layout, Segment, SimStats, VecMemory};

/// QEMU 7.2's `-M virt -m 1G` device tree (RAM at 0x4000_0000).
pub const QEMU_VIRT_DTB: &[u8] = include_bytes!("../../loader/tests/data/qemu-virt.dtb");

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const PAGE: u64 = relocate::PAGE_SIZE;
pub const SZ_2M: u64 = 2 * MIB;

/// The simulated RAM: 256 MiB at the base of QEMU virt's RAM.
pub const RAM: Range = Range::constant(0x4000_0000, 0x5000_0000);
/// Where the fake kexboot image (code, data, stack, incoming DTB) sits.
pub const KEXBOOT_IMAGE: Range = Range::constant(0x4000_0000, 0x4020_0000);
/// A preserved region (think ramoops) in the middle of RAM, given as reserved memory.
pub const RAMOOPS: Range = Range::constant(0x4400_0000, 0x4410_0000);
/// Default heap size: the top of RAM, where staging buffers and relocator pages come from.
pub const HEAP_LEN: u64 = 128 * MIB;

/// The made-up `kaslr-seed` the fake platform hands out.
pub const KASLR_SEED: u64 = 0x0123_4567_89ab_cdef;

pub fn round_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Kernels

/// The Image header fields a test may choose.
#[derive(Clone, Copy, Debug)]
pub struct KernelSpec {
    /// Bytes after the 64-byte header.
    pub payload: usize,
    pub text_offset: u64,
    /// `image_size - file length` (BSS), before rounding `image_size` up to a page.
    pub bss: u64,
    pub flags: u64,
    pub seed: u64,
}

impl KernelSpec {
    /// A little-endian 4 KiB-page kernel that may sit anywhere in RAM (flags 0xa), text_offset 0.
    pub fn new(payload: usize, seed: u64) -> Self {
        KernelSpec {
            payload,
            text_offset: 0,
            bss: 512 * KIB,
            flags: 0xa,
            seed,
        }
    }

    pub fn image_size(&self) -> u64 {
        round_up(64 + self.payload as u64 + self.bss, PAGE)
    }

    /// The Image file: header, then a payload that is half random, half repetitive (so gzip
    /// has something to do and the result is still unique).
    pub fn build(&self) -> Vec<u8> {
        let mut v = vec![0u8; 64];
        v[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // code0: b #64
        v[0x08..0x10].copy_from_slice(&self.text_offset.to_le_bytes());
        v[0x10..0x18].copy_from_slice(&self.image_size().to_le_bytes());
        v[0x18..0x20].copy_from_slice(&self.flags.to_le_bytes());
        v[0x38..0x3c].copy_from_slice(b"ARM\x64");
        let noise = pattern(self.seed, self.payload);
        v.extend(noise.chunks(256).enumerate().flat_map(|(i, c)| {
            let fill = (i as u8).wrapping_mul(7);
            c.iter()
                .enumerate()
                .map(move |(j, &b)| if i % 2 == 0 { b } else { fill ^ (j as u8 & 3) })
        }));
        v
    }
}

/// A kernel of `payload` bytes after the header with the default header fields.
pub fn kernel(payload: usize, seed: u64) -> Vec<u8> {
    KernelSpec::new(payload, seed).build()
}

/// gzip of `data`, as `gzip` writes it (with a file name in the header).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .filename("Image")
        .write(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Overwrites the gzip trailer's ISIZE.
pub fn set_isize(gz: &mut [u8], isize: u32) {
    let n = gz.len();
    gz[n - 4..].copy_from_slice(&isize.to_le_bytes());
}

// ---------------------------------------------------------------------------------------------
// Disks

/// Partitioning of a test disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Mbr,
    Gpt,
    /// The FAT volume starts at LBA 0 ("superfloppy").
    None,
}

/// Where the FAT volume starts on disks made by [`disk`] (1 MiB, as partitioners align).
pub const PART_START_LBA: u64 = 2048;

/// A FAT volume of `size` bytes holding `files` (absolute paths; parent directories created).
pub fn fat_volume(fat: fatfs::FatType, size: usize, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut img = vec![0u8; size];
    let mut opts = fatfs::FormatVolumeOptions::new()
        .fat_type(fat)
        .volume_label(*b"KEXBOOT    ");
    if fat == fatfs::FatType::Fat32 {
        opts = opts.bytes_per_cluster(512);
    }
    fatfs::format_volume(Cursor::new(&mut img[..]), opts).expect("format");
    {
        let fs = fatfs::FileSystem::new(Cursor::new(&mut img[..]), fatfs::FsOptions::new())
            .expect("mount");
        let root = fs.root_dir();
        for (path, data) in files {
            let path = path.trim_start_matches('/');
            let parts: Vec<&str> = path.split('/').collect();
            for i in 1..parts.len() {
                let dir = parts[..i].join("/");
                if root.open_dir(&dir).is_err() {
                    root.create_dir(&dir).expect("mkdir");
                }
            }
            let mut f = root.create_file(path).expect("create");
            f.truncate().expect("truncate");
            f.write_all(data).expect("write");
        }
        drop(root);
        fs.unmount().expect("unmount");
    }
    img
}

/// A disk holding `volume` as its one partition (or as the whole disk for [`Table::None`]).
pub fn disk(table: Table, volume: &[u8]) -> Vec<u8> {
    let start = (PART_START_LBA * 512) as usize;
    let size = start + volume.len() + 2 * MIB as usize; // room for the backup GPT
    let sectors = (volume.len() / 512) as u32;
    let mut cur = Cursor::new(vec![0u8; size]);
    match table {
        Table::None => return volume.to_vec(),
        Table::Mbr => {
            let mut mbr =
                mbrman::MBR::new_from(&mut cur, 512, [0x6b, 0x65, 0x78, 0x62]).expect("mbr");
            mbr[1] = mbrman::MBRPartitionEntry {
                boot: mbrman::BOOT_ACTIVE,
                first_chs: mbrman::CHS::empty(),
                sys: 0x0c,
                last_chs: mbrman::CHS::empty(),
                starting_lba: PART_START_LBA as u32,
                sectors,
            };
            mbr.write_into(&mut cur).expect("write mbr");
        }
        Table::Gpt => {
            gpt::mbr::ProtectiveMBR::with_lb_size((size / 512 - 1) as u32)
                .overwrite_lba0(&mut cur)
                .expect("pmbr");
            let mut g = gpt::GptConfig::new()
                .writable(true)
                .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
                .create_from_device(cur, None)
                .expect("gpt");
            g.add_partition_at(
                "boot",
                1,
                PART_START_LBA,
                u64::from(sectors),
                gpt::partition_types::EFI,
                0,
            )
            .expect("partition");
            cur = g.write().expect("write gpt");
        }
    }
    let mut disk = cur.into_inner();
    disk[start..start + volume.len()].copy_from_slice(volume);
    disk
}

/// One partition of [`mbr_disk`]: its MBR type byte, the active (bootable) flag, its bytes.
pub struct Part<'a> {
    pub sys: u8,
    pub bootable: bool,
    pub data: &'a [u8],
}

/// An MBR disk holding `parts` as primary partitions 1.., each starting on a 1 MiB boundary.
pub fn mbr_disk(parts: &[Part]) -> Vec<u8> {
    let mut lba = PART_START_LBA;
    let mut spans = Vec::new();
    for p in parts {
        let sectors = (p.data.len() as u64).div_ceil(512);
        spans.push((lba, sectors));
        lba = round_up(lba + sectors, PART_START_LBA);
    }
    let size = (lba * 512) as usize;
    let mut cur = Cursor::new(vec![0u8; size]);
    let mut mbr = mbrman::MBR::new_from(&mut cur, 512, [0x6b, 0x65, 0x78, 0x62]).expect("mbr");
    for (i, (p, &(first, sectors))) in parts.iter().zip(&spans).enumerate() {
        mbr[i + 1] = mbrman::MBRPartitionEntry {
            boot: match p.bootable {
                true => mbrman::BOOT_ACTIVE,
                false => mbrman::BOOT_INACTIVE,
            },
            first_chs: mbrman::CHS::empty(),
            sys: p.sys,
            last_chs: mbrman::CHS::empty(),
            starting_lba: first as u32,
            sectors: sectors as u32,
        };
    }
    mbr.write_into(&mut cur).expect("write mbr");
    let mut disk = cur.into_inner();
    for (p, &(first, _)) in parts.iter().zip(&spans) {
        let at = (first * 512) as usize;
        disk[at..at + p.data.len()].copy_from_slice(p.data);
    }
    disk
}

/// A 16 MiB FAT16 volume with `files` on an MBR disk: the common case.
pub fn mbr_fat16(files: &[(&str, &[u8])]) -> Vec<u8> {
    disk(
        Table::Mbr,
        &fat_volume(fatfs::FatType::Fat16, 16 * MIB as usize, files),
    )
}

pub type BootFs = FatFs<PartitionDevice<MemDisk>>;

/// Mounts the boot file system the way the firmware does.
pub fn open(disk: Vec<u8>) -> BootFs {
    open_boot_fs(MemDisk::new(disk), None)
        .expect("open_boot_fs")
        .1
}

// ---------------------------------------------------------------------------------------------
// Staging and platform

#[derive(Debug, Default)]
struct Pool {
    /// start -> page-rounded length of each live buffer in the heap window.
    live: BTreeMap<u64, u64>,
    /// start -> page-rounded length of each live buffer handed out by [`Staging::at`].
    placed: BTreeMap<u64, u64>,
}

/// A staging buffer: `Vec`-backed bytes standing for the page-aligned physical range at `addr`.
/// Dropping it frees its range, as dropping a firmware heap buffer does.
#[derive(Debug)]
pub struct HostBuf {
    pub addr: u64,
    pub data: Vec<u8>,
    pool: Rc<RefCell<Pool>>,
}

impl AsRef<[u8]> for HostBuf {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl AsMut<[u8]> for HostBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        let mut pool = self.pool.borrow_mut();
        pool.live.remove(&self.addr);
        pool.placed.remove(&self.addr);
    }
}

/// First-fit page allocator over a window of the simulated RAM (the firmware's heap), and, as
/// the firmware's `HeapStaging`, buffers at fixed addresses in the free RAM it is given.
#[derive(Debug)]
pub struct HostStaging {
    pub window: Range,
    /// RAM [`Staging::at`] may hand out (the firmware: `Layout::writable`); empty: none, so
    /// every file is staged in the heap window.
    pub free: Vec<Range>,
    pool: Rc<RefCell<Pool>>,
    /// Every allocation ever made: (addr, requested len).
    pub log: Vec<(u64, usize)>,
    /// Every buffer [`Staging::at`] handed out: (addr, len).
    pub placed_log: Vec<(u64, usize)>,
}

impl HostStaging {
    /// Staging in `window` only: nothing is read in place.
    pub fn new(window: Range) -> Self {
        HostStaging::with_free(window, Vec::new())
    }

    /// Staging in `window`, and buffers in place anywhere in `free`.
    pub fn with_free(window: Range, free: Vec<Range>) -> Self {
        assert!(window.start().is_multiple_of(PAGE) && window.end().is_multiple_of(PAGE));
        HostStaging {
            window,
            free,
            pool: Rc::default(),
            log: Vec::new(),
            placed_log: Vec::new(),
        }
    }

    /// Ranges of the buffers handed out by [`Staging::at`] still alive.
    pub fn placed(&self) -> Vec<Range> {
        self.pool
            .borrow()
            .placed
            .iter()
            .map(|(&s, &l)| Range::new(s, s + l).unwrap())
            .collect()
    }

    /// Ranges of the buffers still alive.
    pub fn live(&self) -> Vec<Range> {
        self.pool
            .borrow()
            .live
            .iter()
            .map(|(&s, &l)| Range::new(s, s + l).unwrap())
            .collect()
    }
}

impl Staging for HostStaging {
    type Buf = HostBuf;

    fn alloc(&mut self, len: usize) -> Option<HostBuf> {
        let span = round_up((len as u64).max(1), PAGE);
        let start = {
            let pool = self.pool.borrow();
            let mut cur = self.window.start();
            for (&s, &l) in &pool.live {
                if s >= cur + span {
                    break;
                }
                cur = cur.max(s + l);
            }
            (cur + span <= self.window.end()).then_some(cur)?
        };
        self.pool.borrow_mut().live.insert(start, span);
        self.log.push((start, len));
        Some(HostBuf {
            addr: start,
            data: vec![0; len],
            pool: self.pool.clone(),
        })
    }

    fn addr(&self, buf: &HostBuf) -> u64 {
        buf.addr
    }

    fn free_bytes(&self) -> u64 {
        self.window.len() - self.pool.borrow().live.values().sum::<u64>()
    }

    fn at(&mut self, r: Range) -> Option<HostBuf> {
        let span = r.page_rounded()?;
        if span.start() != r.start() || !self.free.iter().any(|f| f.contains_range(&span)) {
            return None;
        }
        if self.placed().iter().any(|p| p.overlaps(&span)) {
            return None;
        }
        self.pool
            .borrow_mut()
            .placed
            .insert(span.start(), span.len());
        self.placed_log.push((r.start(), r.len() as usize));
        Some(HostBuf {
            addr: r.start(),
            // Not zeroed in the firmware: make stray reliance on zeros show.
            data: pattern(r.start(), r.len() as usize),
            pool: self.pool.clone(),
        })
    }
}

/// A machine with a made-up clock (1 ms per reading) and, optionally, a random source.
#[derive(Debug)]
pub struct FakePlatform {
    pub clock_us: Cell<u64>,
    pub seeds: Option<(u64, [u8; 64])>,
    /// The environment's `fdtfile`.
    pub fdtfile: Option<String>,
    /// The verified-boot keys the firmware would have built in.
    pub keys: kexboot_loader::fit::Keys,
}

/// The `/memreserve/` entry [`FakePlatform`]'s own fixups add (inside kexboot's image, which
/// placement avoids anyway), so a test sees that a tree went through them.
pub const OWN_MEMRESERVE: Range = Range::constant(0x4000_0000, 0x4000_1000);

impl Default for FakePlatform {
    fn default() -> Self {
        let mut rng = [0u8; 64];
        rng.copy_from_slice(&pattern(99, 64));
        FakePlatform {
            clock_us: Cell::new(1_000_000),
            seeds: Some((KASLR_SEED, rng)),
            fdtfile: None,
            keys: kexboot_loader::fit::Keys::none(),
        }
    }
}

impl kexboot_boot::Clock for FakePlatform {
    fn now_us(&self) -> u64 {
        let t = self.clock_us.get() + 1000;
        self.clock_us.set(t);
        t
    }
}

impl Platform for FakePlatform {
    fn random_seeds(&mut self) -> Option<(u64, [u8; 64])> {
        self.seeds
    }

    fn own_fixups(&self, dtb: &[u8]) -> Result<Vec<u8>, kexboot_loader::Error> {
        kexboot_loader::dt::fixup(
            dtb,
            &kexboot_loader::dt::Fixups {
                extra_reserved: &[OWN_MEMRESERVE],
                ..Default::default()
            },
        )
    }

    fn fdtfile(&self) -> Option<&str> {
        self.fdtfile.as_deref()
    }

    fn keys(&self) -> &kexboot_loader::fit::Keys {
        &self.keys
    }
}

// ---------------------------------------------------------------------------------------------
// The machine and the whole flow

/// The simulated machine: RAM, reserved memory, kexboot's image and heap.
#[derive(Clone, Debug)]
pub struct Machine {
    pub ram: Range,
    pub reserved: Vec<Range>,
    pub image: Range,
    pub heap: Range,
    /// Extra ranges the placement must avoid (tests squeezing RAM).
    pub extra_avoid: Vec<Range>,
    pub dtb: Vec<u8>,
}

impl Default for Machine {
    fn default() -> Self {
        Machine::with_heap(HEAP_LEN)
    }
}

impl Machine {
    /// QEMU virt's DTB and reserved memory, plus [`RAMOOPS`], and a heap of `heap_len` bytes at
    /// the top of [`RAM`].
    pub fn with_heap(heap_len: u64) -> Self {
        let info = kexboot_loader::dt::DtInfo::parse(QEMU_VIRT_DTB).expect("QEMU DTB");
        let mut reserved: Vec<Range> = info.reserved.to_vec();
        reserved.push(RAMOOPS);
        Machine {
            ram: RAM,
            reserved,
            image: KEXBOOT_IMAGE,
            heap: Range::new(RAM.end() - round_up(heap_len, PAGE), RAM.end()).unwrap(),
            extra_avoid: Vec::new(),
            dtb: QEMU_VIRT_DTB.to_vec(),
        }
    }

    /// Staging as the firmware's: the heap, and in place anywhere in free RAM.
    pub fn staging(&self) -> HostStaging {
        HostStaging::with_free(self.heap, self.free())
    }

    /// Staging in the heap only, as kexboot did before it read files in place.
    pub fn heap_staging(&self) -> HostStaging {
        HostStaging::new(self.heap)
    }

    /// RAM a boot may write now (the firmware's `Layout::writable`).
    pub fn free(&self) -> Vec<Range> {
        kexboot_loader::mem::free_regions(&[self.ram], &self.avoid())
    }

    /// What the boot images must avoid (as `MemoryLayout::avoid` in the firmware).
    pub fn avoid(&self) -> Vec<Range> {
        let mut v: Vec<Range> = self.reserved.to_vec();
        v.extend([self.image, self.heap]);
        v.extend(self.extra_avoid.iter().copied());
        v
    }

    /// The relocator's control pages: kexboot itself and its heap.
    pub fn control(&self) -> Vec<Range> {
        vec![self.image, self.heap]
    }

    pub fn layout<'a>(&'a self, control: &'a [Range]) -> Layout<'a> {
        Layout {
            ram: std::slice::from_ref(&self.ram),
            reserved: &self.reserved,
            control,
        }
    }

    /// `load_config` + `next_bootable` from the first entry, as the firmware's boot loop does.
    pub fn run(
        &self,
        fs: &mut dyn Files,
        staging: &mut HostStaging,
        platform: &mut FakePlatform,
    ) -> Outcome {
        let (source, config) = match flow::load_config(fs) {
            Ok(c) => c,
            Err(e) => {
                return Outcome {
                    source: None,
                    config: None,
                    failures: vec![],
                    prepared: None,
                    config_error: Some(e),
                }
            }
        };
        let ram = [self.ram];
        let avoid = self.avoid();
        let mem = MemoryView {
            ram: &ram,
            avoid: &avoid,
        };
        let path = source.base();
        let (found, failures) =
            flow::next_bootable(fs, staging, platform, &mem, &self.dtb, path, &config, 0);
        Outcome {
            source: Some(source),
            config: Some((path, config)),
            failures,
            prepared: found,
            config_error: None,
        }
    }

    /// Fills RAM with a known pattern, copies the staged buffers in at their addresses, builds
    /// the entry list (pages from the top of the heap, as the firmware's heap would give them)
    /// and runs it with the simulator.
    pub fn relocate(&self, prepared: &Prepared<HostBuf>) -> Result<Relocated, relocate::Error> {
        let mut mem = VecMemory::new(self.ram.start(), self.ram.len() as usize)?;
        fill_ram(&mut mem);
        let initial = mem.clone();
        for b in &prepared.buffers {
            relocate::Memory::write(&mut mem, b.addr, &b.data)?;
        }
        let control = self.control();
        let layout = self.layout(&control);
        let mut next = self.heap.end();
        let low = self.heap.start();
        let mut alloc_page = move || {
            next = next.checked_sub(PAGE).filter(|&n| n >= low)?;
            Some(next)
        };
        let list = relocate::build(&prepared.segments, &layout, &mut mem, &mut alloc_page)?;
        let before = mem.clone();
        let max = 4 * (self.ram.len() / PAGE) + 1024;
        let stats = relocate::simulate(&mut mem, list.head, max)?;
        Ok(Relocated {
            initial,
            before,
            mem,
            list,
            stats,
        })
    }
}

/// RAM as it is before kexboot stages anything: not zeros, so stray writes show up.
pub fn fill_ram(mem: &mut VecMemory) {
    let block = pattern(0x5eed, MIB as usize);
    for (i, chunk) in mem.bytes_mut().chunks_mut(MIB as usize).enumerate() {
        chunk.copy_from_slice(&block[..chunk.len()]);
        chunk[0] = i as u8; // make each MiB distinct
    }
}

/// What one run of the flow gave.
pub struct Outcome {
    /// What `load_config` found (an extlinux.conf path, or BLS entries).
    pub source: Option<flow::ConfigSource>,
    /// The path entries resolve against ([`flow::ConfigSource::base`]) and the config.
    pub config: Option<(&'static str, Config)>,
    pub config_error: Option<flow::BootError>,
    pub failures: Vec<Failure>,
    pub prepared: Option<(usize, Prepared<HostBuf>)>,
}

impl Outcome {
    pub fn prepared(&self) -> &Prepared<HostBuf> {
        match &self.prepared {
            Some((_, p)) => p,
            None => panic!(
                "nothing booted: config error {:?}, failures {:#?}",
                self.config_error, self.failures
            ),
        }
    }

    /// The failure of entry `label`, with its message.
    pub fn failure(&self, label: &str) -> (&flow::BootError, String) {
        let f = self
            .failures
            .iter()
            .find(|f| f.label == label)
            .unwrap_or_else(|| panic!("no failure for '{label}': {:#?}", self.failures));
        (&f.error, f.error.to_string())
    }
}

/// RAM after the relocation.
pub struct Relocated {
    /// Before anything was staged.
    pub initial: VecMemory,
    /// After staging and `build`, just before the trampoline runs.
    pub before: VecMemory,
    /// After the simulated trampoline.
    pub mem: VecMemory,
    pub list: EntryList,
    pub stats: SimStats,
}

/// What a test expects to find after the boot.
pub struct Expect<'a> {
    /// The uncompressed Image.
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub append: &'a str,
    pub label: &'a str,
}

fn read_u32_be(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

fn prop_u64(node: &fdt::node::FdtNode, name: &str) -> Option<u64> {
    let v = node.property(name)?.value;
    match v.len() {
        4 => Some(u64::from(u32::from_be_bytes(v.try_into().ok()?))),
        8 => Some(u64::from_be_bytes(v.try_into().ok()?)),
        _ => None,
    }
}

impl Machine {
    /// Relocates `prepared` and asserts the whole contract; returns the RAM for further checks.
    pub fn boot_and_check(&self, prepared: &Prepared<HostBuf>, want: &Expect) -> Relocated {
        assert_eq!(prepared.label, want.label);
        let control = self.control();
        let layout = self.layout(&control);
        relocate::validate(&prepared.segments, &layout).expect("the flow's plan validates");
        let r = self.relocate(prepared).expect("relocation");
        let mem = &r.mem;
        let p = &prepared.placement;

        // Kernel: byte-exact at the entry point, BSS zeroed, 2 MiB-aligned base + text_offset.
        let (text_offset, image_size) =
            match u64::from_le_bytes(want.kernel[16..24].try_into().unwrap()) {
                0 => (0x8_0000, 16 * MIB), // a kernel older than 3.17: booting.rst's defaults
                n => (
                    u64::from_le_bytes(want.kernel[8..16].try_into().unwrap()),
                    n,
                ),
            };
        assert_eq!(prepared.entry, p.kernel.start());
        assert_eq!(
            (prepared.entry - text_offset) % SZ_2M,
            0,
            "entry {:#x}",
            prepared.entry
        );
        assert_eq!(p.kernel.len(), image_size);
        let at = Range::new(prepared.entry, prepared.entry + want.kernel.len() as u64).unwrap();
        assert!(
            mem.slice(at).unwrap() == want.kernel,
            "kernel bytes differ at {at}"
        );
        let bss = Range::new(at.end(), round_up(p.kernel.end(), PAGE)).unwrap();
        assert!(
            mem.slice(bss).unwrap().iter().all(|&b| b == 0),
            "BSS {bss} not zeroed"
        );

        // initrd: byte-exact at its placement.
        match (want.initrd, p.initrd) {
            (Some(data), Some(i)) => {
                assert_eq!(i.len(), data.len() as u64);
                assert_eq!(i.start() % PAGE, 0);
                assert!(
                    mem.slice(i).unwrap() == data,
                    "initrd bytes differ at {i:?}"
                );
            }
            (None, None) => {}
            (w, g) => panic!(
                "initrd expected {:?} bytes, placed {g:?}",
                w.map(<[u8]>::len)
            ),
        }

        // Every destination lies in RAM, clear of kexboot, its heap and reserved memory.
        let mut avoid = self.reserved.clone();
        avoid.extend(self.control());
        for s in &prepared.segments {
            let d = s.dest_range().unwrap();
            assert!(self.ram.contains_range(&d), "{d} outside RAM");
            for a in &avoid {
                assert!(!d.overlaps(a), "destination {d} overlaps {a}");
            }
        }

        // DTB: 8-byte aligned, parses, /chosen carries exactly what the entry asked for.
        assert_eq!(prepared.dtb, p.dtb.start());
        assert_eq!(prepared.dtb % 8, 0);
        let hdr = mem
            .slice(Range::new(prepared.dtb, prepared.dtb + 40).unwrap())
            .unwrap();
        assert_eq!(read_u32_be(hdr, 0), 0xd00d_feed);
        let total = u64::from(read_u32_be(hdr, 4));
        assert!(total <= p.dtb.len() && total <= 2 * MIB);
        let dtb = mem
            .slice(Range::new(prepared.dtb, prepared.dtb + total).unwrap())
            .unwrap();
        let tree = fdt::Fdt::new(dtb).expect("fixed-up DTB parses (fdt crate)");
        let chosen = tree.find_node("/chosen").expect("/chosen");
        let bootargs = chosen.property("bootargs").expect("bootargs").value;
        assert_eq!(
            bootargs,
            format!("{}\0", want.append).as_bytes(),
            "/chosen/bootargs"
        );
        let info = kexboot_loader::dt::DtInfo::parse(dtb).expect("fixed-up DTB parses (DtInfo)");
        assert_eq!(info.bootargs.as_deref(), Some(want.append));
        let initrd = (
            prop_u64(&chosen, "linux,initrd-start"),
            prop_u64(&chosen, "linux,initrd-end"),
        );
        match p.initrd {
            Some(i) => {
                assert_eq!(initrd, (Some(i.start()), Some(i.end())));
                assert_eq!(info.initrd, Some(i));
            }
            None => assert_eq!(initrd, (None, None)),
        }
        assert_eq!(prop_u64(&chosen, "kaslr-seed"), Some(KASLR_SEED));
        // The memory node is the incoming one.
        let incoming = kexboot_loader::dt::DtInfo::parse(&self.dtb).unwrap();
        assert_eq!(info.memory, incoming.memory);

        // Nothing but the destinations changed while the trampoline ran; reserved memory is
        // exactly what it was before kexboot staged anything.
        assert_only_destinations_changed(&r.before, &r.mem, &prepared.segments);
        for c in self.control() {
            assert!(
                r.mem.slice(c) == r.before.slice(c),
                "control range {c} changed"
            );
        }
        for res in &self.reserved {
            if let (Some(now), Some(then)) = (r.mem.slice(*res), r.initial.slice(*res)) {
                assert!(now == then, "reserved {res} changed");
            }
        }
        assert_eq!(r.stats.pages_copied * PAGE, r.list.bytes);
        r
    }
}

/// Asserts that `after` differs from `before` only inside the segments' destination pages.
pub fn assert_only_destinations_changed(before: &VecMemory, after: &VecMemory, segs: &[Segment]) {
    let ram = before.range();
    let mut dests: Vec<Range> = segs.iter().map(|s| s.dest_range().unwrap()).collect();
    dests.sort();
    let mut cur = ram.start();
    for d in dests
        .iter()
        .chain([&Range::new(ram.end(), ram.end()).unwrap()])
    {
        let gap = Range::new(cur, d.start().max(cur)).unwrap();
        assert!(
            after.slice(gap) == before.slice(gap),
            "bytes in {gap} changed outside the plan"
        );
        cur = cur.max(d.end());
    }
}

/// A plan by hand: `(dst, memsz)` pairs with sources in the heap.
pub fn segments(parts: &[(u64, u64)]) -> Vec<Segment> {
    parts
        .iter()
        .enumerate()
        .map(|(i, &(dst, memsz))| Segment {
            src: RAM.end() - (i as u64 + 1) * 16 * MIB,
            len: memsz.min(PAGE),
            dst,
            memsz,
        })
        .collect()
}

/// A command line with the characters real ones have (`=`, `,`, `/`, `:`, quotes, spaces).
pub const APPEND: &str =
    "console=ttyAMA0,115200 root=/dev/vda2 rw quiet init=/bin/sh dyndbg=\"file x.c +p\"";
