//! The simulator's seeded randomness (the core's SplitMix64, plus float helpers).

pub use leasehold_core::rng::SplitMix64 as Rng;

/// A float uniform in `[0, 1)`.
pub fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// True with probability `p`.
pub fn chance(rng: &mut Rng, p: f64) -> bool {
    p > 0.0 && unit(rng) < p
}

/// Index below `n` (n > 0).
pub fn index(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}
