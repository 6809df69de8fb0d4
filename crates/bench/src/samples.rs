//! Latency samples and their percentiles.

use std::time::Duration;

use serde::Serialize;

/// Latency samples, in nanoseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u64>);

/// Percentiles of one set of samples, in microseconds, and the rate over the phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Samples taken.
    pub count: u64,
    /// Samples per second of the phase.
    pub per_sec: f64,
}

impl Samples {
    /// Add one sample.
    pub fn add(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Add every sample of `other`.
    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `p` quantile (0..=1) in µs; 0 without samples.
    #[must_use]
    pub fn pct_us(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        let i = ((v.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
        round1(v[i] as f64 / 1_000.0)
    }

    /// Percentiles and the rate over `secs`.
    #[must_use]
    pub fn latency(&self, secs: f64) -> Latency {
        Latency {
            p50_us: self.pct_us(0.5),
            p99_us: self.pct_us(0.99),
            p999_us: self.pct_us(0.999),
            count: self.0.len() as u64,
            per_sec: (self.0.len() as f64 / secs.max(1e-9)).round(),
        }
    }
}

/// Round to one decimal.
#[must_use]
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Round to three decimals (ratios).
#[must_use]
pub fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// `a / b`, rounded to three decimals; 0 when `b` is 0.
#[must_use]
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { round3(a / b) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_samples() {
        let mut s = Samples::default();
        for us in 1..=1_000u64 {
            s.add(Duration::from_micros(us));
        }
        let l = s.latency(2.0);
        assert_eq!(l.count, 1_000);
        assert_eq!(l.per_sec, 500.0);
        assert!((l.p50_us - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.p99_us - 990.0).abs() <= 1.0, "{l:?}");
        assert_eq!(Samples::default().pct_us(0.5), 0.0);
        assert_eq!(ratio(1.0, 0.0), 0.0);
        assert_eq!(ratio(11.0, 10.0), 1.1);
    }
}
