//! A counting global allocator for the core's allocation checks (the `core_cycle` benchmark and
//! the `core_alloc` test include this file): it forwards to the system allocator and counts each
//! allocation on the thread that makes it. Counting per thread keeps what the test harness's
//! other threads allocate meanwhile (its output capture, its timers) out of the figure, which a
//! process-wide count let in now and then. Only these test and bench builds install it; no
//! shipping binary does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The allocator; install it with `#[global_allocator]`.
pub struct Counting;

thread_local! {
    // const-initialised, no destructor: reading it never allocates
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

/// Allocations made so far by the calling thread.
pub fn allocations() -> u64 {
    ALLOCS.try_with(Cell::get).unwrap_or(0)
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
