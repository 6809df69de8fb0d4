//! Micro-benchmark: one acquire -> extend -> release cycle through the machine, with a counting
//! allocator. Prints ns per cycle and heap allocations per cycle (goal: < 1000 ns, 0 allocations).
//! Run with `just bench` or `cargo bench -p leasehold-core --bench core_cycle`.
#![allow(unsafe_code)] // the counting allocator below

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use leasehold_core::testkit::bench_cycle;
use leasehold_core::{HolderId, Instant, Lock, LockConfig, LockName};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let name = LockName::new("bench").expect("valid name");
    let holder = HolderId::new("bench").expect("valid holder");
    let mut l = Lock::new(LockConfig::default(), name, holder, 42).expect("valid config");
    let mut t = Instant::from_millis(1);
    for _ in 0..10_000 {
        assert!(bench_cycle(&mut l, &mut t), "a cycle did not complete");
    }
    let iters: u32 = std::env::var("LEASEHOLD_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let start = std::time::Instant::now();
    for _ in 0..iters {
        bench_cycle(&mut l, &mut t);
    }
    let elapsed = start.elapsed();
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let ns = elapsed.as_nanos() as f64 / f64::from(iters);
    println!(
        "core_cycle: {iters} acquire->extend->release cycles, {ns:.0} ns/cycle, {:.3} allocs/cycle",
        allocs as f64 / f64::from(iters)
    );
}
