//! Skewed clocks: every client and every server reads time through one of these.
//!
//! **Invariant:** a reading is a pure function of true time and the clock's offset, drift and
//! (for a planted wall clock) one step; nothing reads the host's clock.

use crate::rng::Rng;

/// A clock that runs `drift_ppm` fast (or slow), starts `offset` ns away from true time, and may
/// step once by `step.1` ns at true time `step.0`.
#[derive(Debug, Clone)]
pub(super) struct SkewedClock {
    offset: i64,
    drift_ppm: i64,
    step: Option<(u64, i64)>,
}

/// A drift drawn uniformly in `[-max, +max]` ppm (`max` 0: no draw).
pub(super) fn draw_drift(rng: &mut Rng, max_ppm: i64) -> i64 {
    if max_ppm == 0 {
        0
    } else {
        rng.below_inclusive(2 * max_ppm.unsigned_abs()) as i64 - max_ppm.abs()
    }
}

impl SkewedClock {
    pub(super) fn new(offset: i64, drift_ppm: i64, step: Option<(u64, i64)>) -> SkewedClock {
        SkewedClock {
            offset,
            drift_ppm,
            step,
        }
    }

    /// The reading at true time `t` (ns; never below 0).
    pub(super) fn read(&self, t: u64) -> u64 {
        let mut v =
            t as i128 + (t as i128 * self.drift_ppm as i128) / 1_000_000 + self.offset as i128;
        if let Some((at, step)) = self.step
            && t >= at
        {
            v += step as i128;
        }
        v.max(0) as u64
    }

    /// The earliest true time, not before `not_before`, at which the clock reads at least
    /// `reading` (a timer's wake-up).
    pub(super) fn earliest(&self, reading: u64, not_before: u64) -> u64 {
        let base = (reading as i128 - self.offset as i128).max(0);
        let mut t = (base * 1_000_000 / (1_000_000 + self.drift_ppm as i128)).max(0) as u64;
        t = t.max(not_before);
        for _ in 0..8 {
            let v = self.read(t);
            if v >= reading {
                return t;
            }
            t += reading - v;
        }
        t
    }

    /// The true time at which the clock reads `reading`, ignoring any step (a server's expiry
    /// instant in true time).
    pub(super) fn to_true(&self, reading: u64) -> u64 {
        let v = reading as i128 - self.offset as i128;
        (v * 1_000_000 / (1_000_000 + self.drift_ppm as i128)).max(0) as u64
    }

    /// Step the clock by `delta_ns` from now on (a clock jump).
    pub(super) fn jump(&mut self, delta_ns: i64) {
        self.offset += delta_ns;
    }
}
