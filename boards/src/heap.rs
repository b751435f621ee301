//! The firmware's allocator. Until the MMU is on, allocations come from a bump arena in BSS
//! (the device tree's parse and kexboot's page tables); after that from one large region of
//! free RAM, chosen by `memory::choose_heap`, managed by `linked_list_allocator`.
//!
//! With the MMU off every data access is Device memory, where exclusive loads/stores (atomic
//! read-modify-write, spin locks) may never succeed on real hardware; so the arena uses plain
//! loads and stores (one CPU, interrupts masked) and the locked heap is not touched before the
//! MMU is on.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use linked_list_allocator::LockedHeap;

/// Room for a 2 MiB device tree copy (the DT checker cleans `FDT_NOP`s into a copy) plus the
/// page tables.
const BOOT_ARENA_SIZE: usize = 3 << 20;

#[repr(C, align(4096))]
struct BootArena(UnsafeCell<[u8; BOOT_ARENA_SIZE]>);

// SAFETY: the arena is handed out by a bump pointer advanced only by the one CPU kexboot runs
// on, with interrupts masked; no two allocations overlap.
unsafe impl Sync for BootArena {}

static BOOT_ARENA: BootArena = BootArena(UnsafeCell::new([0; BOOT_ARENA_SIZE]));

struct KexbootAlloc {
    boot_next: AtomicUsize,
    main_ready: AtomicBool,
    main: LockedHeap,
}

impl KexbootAlloc {
    fn in_boot_arena(&self, ptr: *mut u8) -> bool {
        let start = BOOT_ARENA.0.get() as usize;
        (start..start + BOOT_ARENA_SIZE).contains(&(ptr as usize))
    }
}

// SAFETY: the bump arena never hands out overlapping blocks (single CPU), and the
// main heap is `linked_list_allocator`'s locked heap over memory `init_main` was given.
unsafe impl GlobalAlloc for KexbootAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.main_ready.load(Ordering::Acquire) {
            // SAFETY: forwarded with the caller's layout.
            return unsafe { self.main.alloc(layout) };
        }
        let base = BOOT_ARENA.0.get() as usize;
        let next = self.boot_next.load(Ordering::Relaxed);
        let start = (base + next).next_multiple_of(layout.align()) - base;
        match start.checked_add(layout.size()) {
            Some(end) if end <= BOOT_ARENA_SIZE => {
                // Plain store, no read-modify-write: see the module docs.
                self.boot_next.store(end, Ordering::Relaxed);
                (base + start) as *mut u8
            }
            _ => null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.in_boot_arena(ptr) {
            return; // bump arena: never reused
        }
        // SAFETY: `ptr` came from the main heap with this layout (it is not in the arena).
        unsafe { self.main.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: KexbootAlloc = KexbootAlloc {
    boot_next: AtomicUsize::new(0),
    main_ready: AtomicBool::new(false),
    main: LockedHeap::empty(),
};

/// Hands `[start, start + size)` to the main heap.
///
/// # Safety
/// The range must be free RAM, identity-mapped (or the MMU off), used by nothing else, ever.
pub unsafe fn init_main(start: usize, size: usize) {
    // SAFETY: the caller gives us exclusive use of this memory.
    unsafe { ALLOC.main.lock().init(start as *mut u8, size) };
    ALLOC.main_ready.store(true, Ordering::Release);
}

/// Free bytes in the main heap.
pub fn free_bytes() -> usize {
    ALLOC.main.lock().free()
}

/// A zeroed, page-aligned buffer from the heap: file contents, decompressed kernels,
/// device trees and relocator control pages live in these.
pub struct PageBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

/// The one page size (`kexboot_loader::mem::PAGE_SIZE`) as a `usize`.
pub const PAGE: usize = kexboot_loader::mem::PAGE_SIZE as usize;

impl PageBuf {
    /// `None` when the heap cannot hold `len` bytes (rounded up to pages).
    pub fn new(len: usize) -> Option<Self> {
        let size = len.max(1).checked_next_multiple_of(PAGE)?;
        let layout = Layout::from_size_align(size, PAGE).ok()?;
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc::alloc::alloc(layout) })?;
        // SAFETY: the fresh allocation is ours; zeroing it makes every byte initialised.
        unsafe { crate::arch::zero_memory(ptr.as_ptr(), size) };
        Some(Self { ptr, layout })
    }

    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: we own `layout.size()` initialised bytes at `ptr`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as above, shared.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// Keeps the memory for good (it is handed to the relocator).
    pub fn leak(self) -> u64 {
        let a = self.addr();
        core::mem::forget(self);
        a
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl AsRef<[u8]> for PageBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsMut<[u8]> for PageBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}
