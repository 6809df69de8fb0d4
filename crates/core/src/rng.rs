//! A tiny deterministic generator (SplitMix64) seeded by the caller.
//!
//! The core takes no randomness from the OS: the caller passes a seed, and lease nonces and backoff
//! jitter are drawn from it, so the simulator replays exactly and the adapter seeds from the OS.

/// SplitMix64: fast, statistically fine for jitter and nonces, never used for secrets.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator that starts from `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value uniformly drawn from `0..=max` (tiny modulo bias is irrelevant for jitter).
    pub fn below_inclusive(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            self.next_u64()
        } else {
            self.next_u64() % (max + 1)
        }
    }
}
