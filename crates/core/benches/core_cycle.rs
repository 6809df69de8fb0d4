//! Micro-benchmark: one acquire -> extend -> release cycle through the machine, with a counting
//! allocator. Prints ns per cycle and heap allocations per cycle (goal: < 1000 ns, 0 allocations).
//! Run with `just bench` or `cargo bench -p leasehold-core --bench core_cycle`.
#![allow(unsafe_code)] // the counting allocator (support/counting_alloc.rs)

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use leasehold_core::testkit::bench_cycle;
use leasehold_core::{HolderId, Instant, Lock, LockConfig, LockName};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

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
    let a0 = counting_alloc::allocations();
    let start = std::time::Instant::now();
    for _ in 0..iters {
        bench_cycle(&mut l, &mut t);
    }
    let elapsed = start.elapsed();
    let allocs = counting_alloc::allocations() - a0;
    let ns = elapsed.as_nanos() as f64 / f64::from(iters);
    println!(
        "core_cycle: {iters} acquire->extend->release cycles, {ns:.0} ns/cycle, {:.3} allocs/cycle",
        allocs as f64 / f64::from(iters)
    );
}
