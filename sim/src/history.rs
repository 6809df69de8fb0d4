//! What happened in true time, and the checker that judges it.

use std::collections::BTreeMap;

/// One broken property, with when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// One of [`crate::config::PROPERTIES`].
    pub property: &'static str,
    /// True time, ns.
    pub at: u64,
    /// Human-readable detail.
    pub detail: String,
}

#[derive(Debug, Clone)]
struct Tenure {
    lock: usize,
    client: usize,
    token: u64,
    start: u64,
    end: Option<u64>,
}

/// The history of one run.
#[derive(Debug, Clone, Default)]
pub struct History {
    tenures: Vec<Tenure>,
    last_acquired: Vec<u64>,
    fault_end: u64,
    /// Acquire failures and losses by reason.
    pub outcomes: BTreeMap<String, u64>,
    /// Violations found online and by [`History::finish`].
    pub violations: Vec<Violation>,
    /// Acquire reply times (send to delivery, true ns).
    pub reply_times: Vec<u64>,
    /// Writes the resource accepted and rejected.
    pub writes: (u64, u64),
    /// Faults injected.
    pub faults: u64,
    /// Events processed.
    pub events: u64,
}

impl History {
    /// An empty history for `locks` locks whose faults stop at `fault_end`.
    #[must_use]
    pub fn new(locks: usize, fault_end: u64) -> Self {
        History {
            last_acquired: vec![0; locks],
            fault_end,
            ..History::default()
        }
    }

    /// Record a broken property.
    pub fn violation(&mut self, property: &'static str, at: u64, detail: String) {
        if self
            .violations
            .iter()
            .filter(|v| v.property == property)
            .count()
            < 20
        {
            self.violations.push(Violation {
                property,
                at,
                detail,
            });
        }
    }

    /// A lease was acquired.
    pub fn acquired(&mut self, lock: usize, client: usize, token: u64, at: u64) {
        *self.outcomes.entry("acquired".into()).or_default() += 1;
        self.last_acquired[lock] = at;
        self.tenures.push(Tenure {
            lock,
            client,
            token,
            start: at,
            end: None,
        });
    }

    fn close(&mut self, lock: usize, client: usize, at: u64) {
        if let Some(t) = self
            .tenures
            .iter_mut()
            .rev()
            .find(|t| t.lock == lock && t.client == client && t.end.is_none())
        {
            t.end = Some(at);
        }
    }

    /// A lease was released.
    pub fn released(&mut self, lock: usize, client: usize, at: u64) {
        self.close(lock, client, at);
    }

    /// A lease was lost, for `reason`.
    pub fn lost(&mut self, lock: usize, client: usize, at: u64, reason: &str) {
        *self.outcomes.entry(format!("lost_{reason}")).or_default() += 1;
        self.close(lock, client, at);
    }

    /// An acquire failed for `reason`.
    pub fn outcome(&mut self, reason: &str) {
        *self.outcomes.entry(reason.to_owned()).or_default() += 1;
    }

    /// A write reached the resource.
    pub fn write(&mut self, accepted: bool) {
        if accepted {
            self.writes.0 += 1
        } else {
            self.writes.1 += 1
        }
    }

    /// A fault was injected at `at`.
    pub fn fault(&mut self, _at: u64) {
        self.faults += 1;
    }

    /// A `wait` acquire that started at `started` hit its deadline at `now`. After the faults
    /// healed (plus one ttl for orphaned keys to expire), someone must have acquired the lock.
    pub fn check_liveness(&mut self, lock: usize, client: usize, started: u64, now: u64, ttl: u64) {
        if started >= self.fault_end + ttl && self.last_acquired[lock] < started {
            self.violation(
                "liveness",
                now,
                format!("lock {lock}: client {client} waited from t={started}ns to its deadline after faults healed and nobody acquired"),
            );
        }
    }

    /// Acquisitions.
    #[must_use]
    pub fn acquisitions(&self) -> u64 {
        self.tenures.len() as u64
    }

    /// Offline checks on the whole history: mutual exclusion and token order, per lock.
    pub fn finish(&mut self, end: u64) {
        let mut by_lock: BTreeMap<usize, Vec<Tenure>> = BTreeMap::new();
        for t in &self.tenures {
            by_lock.entry(t.lock).or_default().push(t.clone());
        }
        for (lock, mut ts) in by_lock {
            ts.sort_by_key(|t| (t.start, t.client));
            let mut reach: Option<(u64, usize)> = None;
            let mut prev_token: Option<(u64, usize)> = None;
            for t in &ts {
                if let Some((until, who)) = reach
                    && t.start < until
                    && who != t.client
                {
                    self.violation(
                            "mutual_exclusion",
                            t.start,
                            format!("lock {lock}: client {} acquired at t={}ns while client {who} believed it held until t={until}ns", t.client, t.start),
                        );
                }
                let end_t = t.end.unwrap_or(end);
                if reach.is_none_or(|(u, _)| end_t > u) {
                    reach = Some((end_t, t.client));
                }
                if let Some((p, who)) = prev_token
                    && t.token <= p
                {
                    self.violation(
                        "token_order",
                        t.start,
                        format!(
                            "lock {lock}: client {} got token {} after client {who} got {p}",
                            t.client, t.token
                        ),
                    );
                }
                prev_token = Some((t.token, t.client));
            }
        }
    }
}
