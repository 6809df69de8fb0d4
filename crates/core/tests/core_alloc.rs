//! The core's steady state allocates nothing: acquire → extend → release cycles through the
//! machine, counted by a global allocator that only this test and the core benchmark install.
//! Counted on the test's own thread: the harness's main thread allocates now and then while a
//! test runs (seen under load as a few allocations per run, failing the test at random).
#![allow(unsafe_code)] // the counting allocator (benches/support/counting_alloc.rs)

#[path = "../benches/support/counting_alloc.rs"]
mod counting_alloc;

use leasehold_core::testkit::bench_cycle;
use leasehold_core::{HolderId, Instant, Lock, LockConfig, LockName};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn a_steady_state_cycle_allocates_nothing() {
    let name = LockName::new("alloc").expect("valid name");
    let holder = HolderId::new("alloc").expect("valid holder");
    let mut l = Lock::new(LockConfig::default(), name, holder, 7).expect("valid config");
    let mut t = Instant::from_millis(1);
    for _ in 0..1_000 {
        assert!(bench_cycle(&mut l, &mut t), "a cycle did not complete");
    }
    let before = counting_alloc::allocations_this_thread();
    for _ in 0..10_000 {
        assert!(bench_cycle(&mut l, &mut t));
    }
    let allocs = counting_alloc::allocations_this_thread() - before;
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in 10,000 steady-state cycles"
    );
}
