//! A counting global allocator for the core's allocation checks (the `core_cycle` benchmark and
//! the `core_alloc` test include this file): it forwards to the system allocator and adds one
//! relaxed atomic increment per allocation, plus one to a counter of the allocating thread. Only
//! these test and bench builds install it; no shipping binary does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The allocator; install it with `#[global_allocator]`.
pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // const-initialised, no destructor: reading it never allocates
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// Allocations so far, process-wide.
#[allow(dead_code)] // each includer reads one of the two counters
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Allocations so far by the calling thread (a test harness's own threads allocate while a test
/// runs, e.g. when it wakes to check for slow tests).
#[allow(dead_code)] // each includer reads one of the two counters
pub fn allocations_this_thread() -> u64 {
    THREAD_ALLOCS.with(Cell::get)
}

fn count() {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    // a thread being torn down has no counter left: count it process-wide only
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
