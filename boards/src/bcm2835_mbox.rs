//! The VideoCore mailbox of the BCM2835/2837 (`compatible = "brcm,bcm2835-mbox"`, 0x3f00b880 on
//! the Pi 3) and the firmware's property channel over it: what the device tree does not say
//! (the EMMC base clock, the ARM's share of the RAM), asked of the VideoCore. The messages are
//! built and read by `kexboot_loader::mailbox` (host-tested); this file holds the register
//! handshake, the buffer and the cache maintenance.
//!
//! The handshake, as Linux's `bcm2835-mailbox.c` and U-Boot's `mach-bcm283x/mbox.c` do it:
//! drain mailbox 0 (VideoCore to ARM), wait until mailbox 1 (ARM to VideoCore) has room, write
//! the buffer's bus address with the channel in its low 4 bits, wait until mailbox 0 holds a
//! word, read it: the same address and channel once the firmware has written its answer.
use kexboot_loader::dt::DtInfo;
use kexboot_loader::mailbox::{self, BUFFER_ALIGN, CHANNEL_PROPERTY};
use kexboot_loader::mem::Range;
use kexboot_sd::regs::Regs;

use crate::mmio::Mmio;
use crate::rpi3;
use crate::timer::Stopwatch;

/// The DT `compatible` of the mailbox.
pub const COMPATIBLE: &str = "brcm,bcm2835-mbox";
/// Size of its register block (the DT `reg` says 0x40).
const REG_LEN: usize = 0x40;
/// Mailbox 0 (VideoCore to ARM): read, and its status.
const MAIL0_READ: usize = 0x00;
const MAIL0_STATUS: usize = 0x18;
/// Mailbox 1 (ARM to VideoCore): write, and its status.
const MAIL1_WRITE: usize = 0x20;
const MAIL1_STATUS: usize = 0x38;
/// Status bits: the mailbox is full (no room to write) / empty (nothing to read).
const STATUS_FULL: u32 = 1 << 31;
const STATUS_EMPTY: u32 = 1 << 30;
/// The channel in the low bits of a mailbox word.
const CHANNEL_MASK: u32 = 0xf;
/// Longest wait for the firmware (U-Boot waits 100 ms; the firmware answers in microseconds).
const TIMEOUT_US: u64 = 100_000;
/// Words in the message buffer: every message kexboot sends fits.
const BUF_WORDS: usize = 16;
/// The buffer covers whole cache lines (the Cortex-A53's are 64 bytes): no other variable may
/// share a line with it, or a write to that variable during the wait could make the line dirty
/// and its write-back overwrite the firmware's answer.
const CACHE_LINE: usize = 64;

/// The message buffer: 64-byte aligned (a multiple of the 16 bytes the mailbox needs) and
/// exactly one cache line.
#[repr(C, align(64))]
struct Buffer([u32; BUF_WORDS]);

const _: () = assert!(core::mem::align_of::<Buffer>().is_multiple_of(BUFFER_ALIGN));
const _: () = assert!(core::mem::size_of::<Buffer>().is_multiple_of(CACHE_LINE));

/// Why a property call failed.
#[derive(Debug)]
pub enum MboxError {
    /// The firmware did not take or did not answer the message within [`TIMEOUT_US`].
    Timeout { what: &'static str },
    /// Mailbox 0 returned `word`, not our buffer's address on the property channel.
    Foreign { word: u32 },
    /// The buffer is not where the VideoCore can address it (beyond 1 GiB).
    BufferUnreachable { addr: u64 },
    /// The message does not fit the buffer.
    TooLong { words: usize },
    /// The answer itself.
    Answer(kexboot_loader::Error),
}

impl core::fmt::Display for MboxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MboxError::Timeout { what } => write!(f, "mailbox: timed out {what}"),
            MboxError::Foreign { word } => {
                write!(f, "mailbox: read {word:#010x}, not our message")
            }
            MboxError::BufferUnreachable { addr } => {
                write!(
                    f,
                    "mailbox: buffer at {addr:#x} beyond the VideoCore's reach"
                )
            }
            MboxError::TooLong { words } => write!(f, "mailbox: message of {words} words"),
            MboxError::Answer(e) => write!(f, "{e}"),
        }
    }
}

/// The property channel of the mailbox at `base`.
pub struct Mailbox {
    regs: Mmio,
}

impl Mailbox {
    /// # Safety
    /// `base` must be the mailbox's register block from the DT, Device-mapped in kexboot's
    /// identity map (or the MMU off), and used by nothing else while this value lives.
    pub unsafe fn new(base: usize) -> Self {
        Mailbox {
            // SAFETY: the caller vouches for `base`.
            regs: unsafe { Mmio::new(base, REG_LEN) },
        }
    }

    /// Polls `reg` until `done(status)`, at most [`TIMEOUT_US`].
    fn wait(
        &mut self,
        reg: usize,
        done: fn(u32) -> bool,
        what: &'static str,
    ) -> Result<(), MboxError> {
        let clock = Stopwatch::start();
        while !done(self.regs.read32(reg)) {
            if clock.elapsed_us() > TIMEOUT_US {
                return Err(MboxError::Timeout { what });
            }
            crate::arch::poll_pause();
        }
        Ok(())
    }

    /// Sends `msg` on the property channel and returns the firmware's answer in its place.
    fn call(&mut self, msg: &[u32]) -> Result<[u32; BUF_WORDS], MboxError> {
        let mut words = [0u32; BUF_WORDS];
        words
            .get_mut(..msg.len())
            .ok_or(MboxError::TooLong { words: msg.len() })?
            .copy_from_slice(msg);
        let mut buf = Buffer([0; BUF_WORDS]);
        // SAFETY: `buf` is a live local; volatile, so the request is in it before the clean.
        unsafe { core::ptr::write_volatile(&mut buf.0, words) };
        let addr = core::ptr::addr_of!(buf) as u64;
        let bus = rpi3::vc_bus_address(addr).ok_or(MboxError::BufferUnreachable { addr })?;
        let len = core::mem::size_of::<Buffer>() as u64;
        // The VideoCore does not snoop the ARM's caches: the request goes to memory first.
        // SAFETY: `buf` is ours, mapped (on the stack); maintenance by VA changes no contents.
        unsafe { kexboot_relocate::arch::clean_inval_dcache_range(addr, len) };
        // Drain stale answers (an earlier call that timed out).
        let mut stale = 0;
        while self.regs.read32(MAIL0_STATUS) & STATUS_EMPTY == 0 && stale < BUF_WORDS {
            let _ = self.regs.read32(MAIL0_READ);
            stale += 1;
        }
        self.wait(MAIL1_STATUS, |s| s & STATUS_FULL == 0, "waiting for room")?;
        self.regs.write32(MAIL1_WRITE, bus | CHANNEL_PROPERTY);
        self.wait(
            MAIL0_STATUS,
            |s| s & STATUS_EMPTY == 0,
            "waiting for the answer",
        )?;
        let word = self.regs.read32(MAIL0_READ);
        if word & CHANNEL_MASK != CHANNEL_PROPERTY || word & !CHANNEL_MASK != bus {
            return Err(MboxError::Foreign { word });
        }
        // The answer is in memory; drop whatever the caches hold of the buffer (a speculative
        // fill during the wait would be the request).
        // SAFETY: as above; nothing wrote the buffer since the clean.
        unsafe { kexboot_relocate::arch::clean_inval_dcache_range(addr, len) };
        // SAFETY: `buf` is a live local; the volatile read keeps the compiler from assuming
        // it still holds the request (the VideoCore wrote it behind the compiler's back).
        Ok(unsafe { core::ptr::read_volatile(&buf.0) })
    }

    /// The EMMC (SDHCI) base clock in Hz.
    pub fn emmc_clock_hz(&mut self) -> Result<u32, MboxError> {
        let answer = self.call(&mailbox::clock_rate_request(mailbox::CLOCK_EMMC))?;
        mailbox::clock_rate(&answer, mailbox::CLOCK_EMMC).map_err(MboxError::Answer)
    }

    /// The ARM's share of the RAM.
    pub fn arm_memory(&mut self) -> Result<Range, MboxError> {
        let answer = self.call(&mailbox::arm_memory_request())?;
        mailbox::arm_memory(&answer).map_err(MboxError::Answer)
    }
}

/// The tree's mailbox, if it has one.
fn find(info: &DtInfo) -> Option<Mailbox> {
    let dev = info.device(COMPATIBLE)?;
    // SAFETY: the tree names this mailbox; `start` maps it as Device memory (it is in
    // `board::DRIVEN`) before the MMU goes on, and before that the MMU is off. Only kexboot's
    // single CPU drives it, one call at a time.
    Some(unsafe { Mailbox::new(dev.reg.start() as usize) })
}

/// The EMMC base clock from the firmware, logged; `None` (logged) when the tree has no
/// mailbox or the firmware does not answer: the SDHCI's capabilities are used then.
pub fn emmc_clock_hz(info: &DtInfo) -> Option<u32> {
    match find(info)?.emmc_clock_hz() {
        Ok(hz) => {
            log::info!("EMMC clock {hz} Hz (firmware mailbox)");
            Some(hz)
        }
        Err(e) => {
            log::warn!("EMMC clock: {e}; the SDHCI's capabilities say it");
            None
        }
    }
}

/// The ARM's RAM from the firmware, for a tree whose `/memory` is missing or empty. Runs before
/// the console logger (with the MMU off): says what it found on the console itself.
pub fn arm_memory(info: &DtInfo) -> Option<Range> {
    match find(info)?.arm_memory() {
        Ok(r) => {
            println!(
                "kexboot: no /memory in the device tree; the firmware says RAM {:#x}-{:#x}",
                r.start(),
                r.end()
            );
            Some(r)
        }
        Err(e) => {
            println!("kexboot: no /memory in the device tree, and the firmware: {e}");
            None
        }
    }
}
