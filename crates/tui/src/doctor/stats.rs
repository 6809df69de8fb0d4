//! Reply-time samples and what they predict for rueidislock's `TryWithContext`. Pure.

use serde::Serialize;

/// Reply times of one command shape, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Distribution {
    /// Samples taken.
    pub samples: usize,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile (the largest sample when there are fewer than 1,000).
    pub p999: u64,
    /// The slowest sample.
    pub max: u64,
}

/// Nearest-rank quantile of sorted samples (`q` in `[0, 1]`); 0 when empty.
#[must_use]
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Distribution {
    /// The distribution of `samples` (any order).
    #[must_use]
    pub fn of(samples: &[u64]) -> Self {
        let mut s = samples.to_vec();
        s.sort_unstable();
        Distribution {
            samples: s.len(),
            p50: quantile(&s, 0.50),
            p99: quantile(&s, 0.99),
            p999: quantile(&s, 0.999),
            max: s.last().copied().unwrap_or(0),
        }
    }
}

/// The share of samples strictly above `limit_us`.
#[must_use]
pub fn share_above(samples: &[u64], limit_us: u64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let over = samples.iter().filter(|s| **s > limit_us).count();
    #[allow(clippy::cast_precision_loss)]
    let share = over as f64 / samples.len() as f64;
    share
}

/// The share of uncontended `TryWithContext` calls that end in "context deadline exceeded" with
/// `KeyMajority` `m`, when each key's script reply is late (over `TryNextAfter`) with probability
/// `p`, independently. rueidislock tries the 2m−1 keys in order until m are acquired or m have
/// failed; without contention every failure is a timeout, and the call fails, with the last
/// timeout's error, exactly when at least m of the 2m−1 keys time out.
#[must_use]
pub fn deadline_share(p: f64, m: u32) -> f64 {
    let n = 2 * m.max(1) - 1;
    let p = p.clamp(0.0, 1.0);
    (m.max(1)..=n)
        .map(|k| binomial(n, k) * p.powi(k.cast_signed()) * (1.0 - p).powi((n - k).cast_signed()))
        .sum()
}

fn binomial(n: u32, k: u32) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let s: Vec<u64> = (1..=1000).collect();
        let d = Distribution::of(&s);
        assert_eq!((d.p50, d.p99, d.p999, d.max), (500, 990, 999, 1000));
        let small = Distribution::of(&[5, 1, 3]);
        assert_eq!((small.p50, small.p999, small.max), (3, 5, 5));
        assert_eq!(Distribution::of(&[]), Distribution::default());
    }

    #[test]
    fn deadline_share_follows_the_key_majority() {
        // one key: every late reply is a deadline
        assert!((deadline_share(0.004, 1) - 0.004).abs() < 1e-12);
        // two of three keys must be late: 3p^2 - 2p^3
        let p: f64 = 0.1;
        let expect = 3.0 * p * p - 2.0 * p * p * p;
        assert!((deadline_share(p, 2) - expect).abs() < 1e-12);
        assert!((deadline_share(1.0, 3) - 1.0).abs() < 1e-12);
        assert!(deadline_share(0.0, 2).abs() < 1e-12);
        assert!((share_above(&[1, 20_000, 20_001, 40_000], 20_000) - 0.5).abs() < 1e-12);
    }
}
