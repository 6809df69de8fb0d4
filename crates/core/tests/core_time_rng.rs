//! The caller's `Instant` arithmetic and its printed form (the simulator's trace is made of it),
//! and the seeded SplitMix64 the machine draws nonces and jitter from. Written for mutation testing
//! (see ARCHITECTURE.md, "Mutation testing").

use std::time::Duration;

use leasehold_core::Instant;
use leasehold_core::rng::SplitMix64;
use leasehold_core::time::duration_nanos;

#[test]
fn instants_subtract_to_the_duration_between_them_saturating_at_zero() {
    let a = Instant::from_millis(1_500);
    let b = Instant::from_nanos(250_000_000);
    assert_eq!(a - b, Duration::from_millis(1_250));
    assert_eq!(b - a, Duration::ZERO);
    assert_eq!(a - a, Duration::ZERO);
    assert_eq!(a.saturating_since(b), Duration::from_millis(1_250));
    assert_eq!(b + Duration::from_millis(1_250), a);
    assert_eq!(a.saturating_sub(Duration::from_millis(1_250)), b);
    assert_eq!(b.saturating_sub(Duration::from_secs(9)), Instant::ZERO);
    assert_eq!(
        Instant::from_nanos(u64::MAX - 1) + Duration::from_secs(1),
        Instant::from_nanos(u64::MAX)
    );
    assert_eq!(a.as_nanos(), 1_500_000_000);
    assert_eq!(duration_nanos(Duration::from_secs(u64::MAX)), u64::MAX);
    assert_eq!(duration_nanos(Duration::from_micros(3)), 3_000);
}

#[test]
fn instants_print_as_the_offset_from_the_origin() {
    assert_eq!(format!("{:?}", Instant::from_millis(1_500)), "t+1.5s");
    assert_eq!(format!("{:?}", Instant::ZERO), "t+0ns");
    assert_eq!(format!("{:?}", Instant::from_nanos(42_000)), "t+42µs");
}

/// SplitMix64's published reference outputs for seed 0.
#[test]
fn splitmix64_matches_the_reference_sequence() {
    let mut r = SplitMix64::new(0);
    assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
}

#[test]
fn below_inclusive_draws_every_value_of_the_range_and_nothing_beyond() {
    let mut r = SplitMix64::new(7);
    for max in [0u64, 1, 3, 9] {
        let mut seen = vec![false; usize::try_from(max).unwrap_or(0) + 1];
        for _ in 0..400 {
            let v = r.below_inclusive(max);
            assert!(v <= max, "{v} > {max}");
            seen[usize::try_from(v).unwrap_or(0)] = true;
        }
        assert!(seen.iter().all(|s| *s), "max {max}: {seen:?}");
    }
    // the full range is one raw draw (no `max + 1` overflow)
    let mut a = SplitMix64::new(11);
    let mut b = SplitMix64::new(11);
    assert_eq!(a.below_inclusive(u64::MAX), b.next_u64());
    // a bounded draw consumes exactly one raw draw too
    let _ = a.below_inclusive(5);
    let _ = b.next_u64();
    assert_eq!(a.next_u64(), b.next_u64());
}
