//! The dashboard's command budget as a token bucket that spans passes, refreshes, server stats and
//! event reads: whatever the refresh period, no one-second window carries more than the budget.
//! Pure (time passed in), so the arithmetic is tested without sleeping.

use std::time::{Duration, Instant};

/// A token bucket of `budget` commands per second.
///
/// Capacity is a tenth of the budget (at least 1) and the refill rate the rest, so a full burst
/// plus one second of refill is exactly the budget: any window of one second holds at most
/// `budget` commands, provided each reservation is at most [`TokenBucket::capacity`] (callers
/// size their pipelines with it).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
    spent: u64,
}

impl TokenBucket {
    /// A full bucket for `budget` commands per second (at least 1).
    #[must_use]
    pub fn new(budget: u32, now: Instant) -> Self {
        let budget = f64::from(budget.max(1));
        let capacity = (budget / 10.0).floor().max(1.0);
        TokenBucket {
            capacity,
            rate: (budget - capacity).max(0.5),
            tokens: capacity,
            last: now,
            spent: 0,
        }
    }

    /// The most commands one reservation may take (the pipeline size limit).
    #[must_use]
    pub fn capacity(&self) -> usize {
        // capacity is a small positive whole number
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let c = self.capacity as usize;
        c.max(1)
    }

    /// Commands reserved so far.
    #[must_use]
    pub fn spent(&self) -> u64 {
        self.spent
    }

    /// Reserve `n` commands at `now`; returns how long to wait before sending them. The
    /// reservation is committed: the caller must wait that long, then send.
    pub fn reserve(&mut self, n: usize, now: Instant) -> Duration {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        #[allow(clippy::cast_precision_loss)]
        let n_f = n as f64;
        self.tokens -= n_f;
        self.spent += n as u64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Reserve `n` and sleep until they may be sent.
    pub async fn spend(&mut self, n: usize) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulate a caller that reserves `chunk` at a time as fast as allowed, and count what is
    /// sent in every one-second window.
    fn worst_window(budget: u32, chunk: usize, seconds: u64) -> u64 {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(budget, t0);
        let chunk = chunk.min(b.capacity());
        let mut now = t0;
        let mut sends: Vec<(Duration, u64)> = Vec::new();
        while now.duration_since(t0) < Duration::from_secs(seconds) {
            let wait = b.reserve(chunk, now);
            now += wait;
            sends.push((now.duration_since(t0), chunk as u64));
        }
        let mut worst = 0;
        for (i, (start, _)) in sends.iter().enumerate() {
            let in_window: u64 = sends[i..]
                .iter()
                .take_while(|(t, _)| *t < *start + Duration::from_secs(1))
                .map(|(_, n)| n)
                .sum();
            worst = worst.max(in_window);
        }
        worst
    }

    #[test]
    fn no_one_second_window_exceeds_the_budget() {
        for (budget, chunk) in [
            (1_000, 100),
            (1_000, 7),
            (1_000, 1),
            (10, 5),
            (37, 3),
            (5_000, 500),
        ] {
            let worst = worst_window(budget, chunk, 5);
            assert!(
                worst <= u64::from(budget),
                "budget {budget}, chunk {chunk}: a window held {worst}"
            );
            assert!(
                worst * 10 >= u64::from(budget) * 8,
                "budget {budget}, chunk {chunk}: only {worst}/s, the budget is wasted"
            );
        }
    }

    #[test]
    fn spans_calls_an_idle_caller_gets_one_burst_not_a_second_of_credit() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1_000, t0);
        assert_eq!(b.capacity(), 100);
        assert_eq!(b.reserve(100, t0), Duration::ZERO, "the burst");
        // an hour idle still refills only to capacity
        let later = t0 + Duration::from_secs(3_600);
        assert_eq!(b.reserve(100, later), Duration::ZERO);
        let wait = b.reserve(90, later);
        assert_eq!(wait, Duration::from_millis(100), "90 tokens at 900/s");
        assert_eq!(b.spent(), 290);
    }
}
