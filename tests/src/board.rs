//! A [`Board`] on the host, for running kexboot's shell (`kexboot_boot::shell`) end to end
//! without hardware: 1 GiB of simulated RAM laid out as QEMU virt's, a console that records
//! what is written and replays what is typed, a clock on virtual time, the staging heap of
//! [`HostStaging`], a FAT boot disk image, and optionally a NIC on the in-process network of
//! `kexboot-testnet` (DHCP, TFTP, ARP, ICMP). The jump is recorded, not taken: the shell is
//! told the plan was refused, so it goes on as after a failed entry.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use kexboot_boot::board::{Board, Jump, PowerError};
use kexboot_boot::env::{BootRequest, Env};
use kexboot_boot::memory::Layout;
use kexboot_boot::shell::{self, Parts, Shell};
use kexboot_boot::storage::Storage;
use kexboot_boot::{Clock, Console, FakeConsole};
use kexboot_fs::MemDisk;
use kexboot_relocate::{self as relocate, Segment};
use kexboot_testnet::TestNic;

use crate::{pattern, HostStaging, Range, KASLR_SEED, MIB, QEMU_VIRT_DTB};

/// The shell board's RAM: QEMU virt's 1 GiB.
pub const BOARD_RAM: Range = Range::constant(0x4000_0000, 0x8000_0000);
/// kexboot's image, at the start of RAM.
pub const BOARD_IMAGE: Range = Range::constant(0x4000_0000, 0x4020_0000);
/// kexboot's heap (the staging memory): the top 128 MiB.
pub const BOARD_HEAP: Range = Range::constant(0x7800_0000, 0x8000_0000);
/// A page kexboot keeps across reboots (think handoff record).
pub const BOARD_KEPT: Range = Range::constant(0x77ff_f000, 0x7800_0000);
/// Microseconds the clock moves on each reading.
pub const CLOCK_STEP_US: u64 = 50;

/// A console handle over one shared [`FakeConsole`].
#[derive(Clone, Default)]
pub struct SharedConsole(pub Rc<RefCell<FakeConsole>>);

impl Console for SharedConsole {
    fn write_str(&mut self, s: &str) {
        self.0.borrow_mut().write_str(s)
    }

    fn read_byte(&mut self) -> Option<u8> {
        self.0.borrow_mut().read_byte()
    }

    fn interrupted(&mut self) -> bool {
        self.0.borrow_mut().interrupted()
    }
}

/// A clock on virtual time shared with the test network: each reading moves it on by
/// [`CLOCK_STEP_US`], so every wait ends.
#[derive(Clone)]
pub struct SharedClock(pub Rc<Cell<u64>>);

impl Clock for SharedClock {
    fn now_us(&self) -> u64 {
        let t = self.0.get() + CLOCK_STEP_US;
        self.0.set(t);
        t
    }
}

/// One hand-over the shell asked for.
#[derive(Debug, Clone)]
pub struct Jumped {
    pub segments: Vec<Segment>,
    pub entry: u64,
    pub dtb: u64,
    pub label: String,
}

/// The host board.
pub struct TestBoard {
    pub con: SharedConsole,
    pub clock: SharedClock,
    /// Simulated RAM, `BOARD_RAM.start()` at index 0.
    pub ram: Vec<u8>,
    pub layout: Layout,
    pub nic: Option<TestNic>,
    pub jumps: Vec<Jumped>,
    pub marks: Vec<(&'static str, u64)>,
    pub resets: usize,
    pub power_offs: usize,
    pub exceptions: usize,
    /// The verified-boot keys built in.
    pub keys: kexboot_loader::fit::Keys,
}

impl TestBoard {
    /// A board with nothing typed and no NIC.
    pub fn new() -> Self {
        let layout = Layout {
            ram: vec![BOARD_RAM],
            reserved: kexboot_loader::dt::DtInfo::parse(QEMU_VIRT_DTB)
                .expect("QEMU DTB")
                .reserved
                .to_vec(),
            image: BOARD_IMAGE,
            dtb: BOARD_IMAGE,
            heap: BOARD_HEAP,
            kept: vec![BOARD_KEPT],
            mapped: vec![BOARD_RAM],
        };
        TestBoard {
            con: SharedConsole::default(),
            clock: SharedClock(Rc::new(Cell::new(1_000_000))),
            ram: vec![0; BOARD_RAM.len() as usize],
            layout,
            nic: None,
            jumps: Vec::new(),
            marks: Vec::new(),
            resets: 0,
            power_offs: 0,
            exceptions: 0,
            keys: kexboot_loader::fit::Keys::none(),
        }
    }

    /// Everything the console showed so far.
    pub fn output(&self) -> String {
        self.con.0.borrow().output.clone()
    }

    fn offset(&self, r: &Range) -> Option<std::ops::Range<usize>> {
        BOARD_RAM.contains_range(r).then_some(())?;
        let start = (r.start() - BOARD_RAM.start()) as usize;
        Some(start..start + r.len() as usize)
    }
}

impl Default for TestBoard {
    fn default() -> Self {
        TestBoard::new()
    }
}

impl Board for TestBoard {
    type Console = SharedConsole;
    type Clock = SharedClock;
    type Disk = MemDisk;
    type Nic = TestNic;
    type Staging = HostStaging;

    fn name(&self) -> &'static str {
        "host-test"
    }

    fn console(&self) -> SharedConsole {
        self.con.clone()
    }

    fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    fn since_reset_us(&self) -> u64 {
        self.clock.0.get() + 2_000_000
    }

    fn mark(&mut self, stage: &'static str) {
        let now = self.clock.now_us();
        self.marks.push((stage, now));
    }

    fn stages(&self) -> Vec<(&'static str, u64)> {
        self.marks.clone()
    }

    fn random_seeds(&mut self) -> Option<(u64, [u8; 64])> {
        let mut rng = [0u8; 64];
        rng.copy_from_slice(&pattern(7, 64));
        Some((KASLR_SEED, rng))
    }

    fn find_nic(&mut self) -> Option<TestNic> {
        self.nic.take()
    }

    fn ram(&self, r: Range) -> Option<&[u8]> {
        self.layout.readable(&r).then_some(())?;
        let o = self.offset(&r)?;
        self.ram.get(o)
    }

    fn ram_mut(&mut self, r: Range) -> Option<&mut [u8]> {
        self.layout.is_writable(&r).then_some(())?;
        let o = self.offset(&r)?;
        self.ram.get_mut(o)
    }

    fn keys(&self) -> &kexboot_loader::fit::Keys {
        &self.keys
    }

    fn own_fixups(&self, dtb: &[u8]) -> Result<Vec<u8>, kexboot_loader::Error> {
        Ok(dtb.to_vec())
    }

    fn jump(&mut self, _: &Layout, j: &Jump) -> relocate::Error {
        self.jumps.push(Jumped {
            segments: j.segments.to_vec(),
            entry: j.entry,
            dtb: j.dtb,
            label: j.label.into(),
        });
        relocate::Error::OutOfPages { got: 0 }
    }

    fn reset(&mut self) -> PowerError {
        self.resets += 1;
        PowerError::Unsupported
    }

    fn power_off(&mut self) -> PowerError {
        self.power_offs += 1;
        PowerError::Returned(-1)
    }

    fn raise_exception(&mut self) {
        self.exceptions += 1;
    }
}

/// A shell on a [`TestBoard`] booting from `disk` (a whole disk image), with its environment
/// loaded as the firmware loads it (defaults, `env.txt`, the saved store).
pub fn shell_on(board: TestBoard, disk: Option<Vec<u8>>) -> (Shell<TestBoard>, Env) {
    shell_on_disks(board, disk.into_iter().collect())
}

/// A shell on a [`TestBoard`] with several disks (`virtio 0`, `virtio 1`, ...), the home
/// volume found as the firmware finds it.
pub fn shell_on_disks(board: TestBoard, disks: Vec<Vec<u8>>) -> (Shell<TestBoard>, Env) {
    let mut storage = Storage::new(
        disks
            .into_iter()
            .map(|d| ("virtio", MemDisk::new(d)))
            .collect(),
    );
    storage.find_home();
    let txt = storage.home().map(shell::env_txt).unwrap_or_default();
    let layout = board.layout.clone();
    let mut sh = Shell::new(Parts {
        board,
        staging: HostStaging::new(BOARD_HEAP),
        storage,
        layout,
        dtb: QEMU_VIRT_DTB.to_vec(),
        request: BootRequest::default(),
    });
    let env = sh.load_env(txt);
    (sh, env)
}

/// The boot disk's bytes as the shell left them: what the next power-on (a fresh
/// [`shell_on`]) finds.
pub fn disk_bytes(sh: &mut Shell<TestBoard>) -> Vec<u8> {
    let fs = sh.fs().expect("a boot disk");
    fs.device_mut().inner_mut().data().to_vec()
}

/// A board on `net`: its NIC, and its clock on the network's virtual time (keep a clone of
/// `net.world` to add files and read what the server saw).
pub fn on_network(net: kexboot_testnet::Network) -> TestBoard {
    let mut board = TestBoard::new();
    board.clock = SharedClock(net.world.borrow().now.clone());
    board.nic = Some(net.nic);
    board
}

/// Bytes of simulated RAM at `addr`.
pub fn ram_at(sh: &Shell<TestBoard>, addr: u64, len: usize) -> &[u8] {
    let r = Range::from_len(addr, len as u64).expect("range");
    sh.board().ram(r).expect("readable RAM")
}

/// Runs `line` in the shell; its outcome and what the console showed meanwhile.
pub fn run(
    sh: &mut Shell<TestBoard>,
    env: &mut Env,
    line: &str,
) -> (kexboot_boot::script::Outcome, String) {
    let before = sh.board().output().len();
    let out = sh.run(env, "t", line).expect("the line parses");
    (out, sh.board().output()[before..].to_string())
}

/// A hex address variable of `env`.
pub fn var(env: &Env, name: &str) -> u64 {
    kexboot_boot::commands::parse_hex(env.get(name).expect(name)).expect("hex")
}

/// A MiB count in bytes (for readability in tests).
pub const fn mib(n: u64) -> u64 {
    n * MIB
}
