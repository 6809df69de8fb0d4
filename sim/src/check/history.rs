//! What happened in true time, and the checker that judges it.

use std::collections::BTreeMap;

use super::Property;

/// One broken property, with when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The property broken.
    pub property: Property,
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
    /// True times of the first and last server operation that issued the lease (the winning
    /// round's grants and its fence write-backs).
    issued: (u64, u64),
}

/// The most acquisitions one seed may record before it is stopped as too large to check.
pub const MAX_TENURES: usize = 4_000_000;

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
    /// Reads the resource answered and rejected.
    pub reads: (u64, u64),
    /// Faults injected.
    pub faults: u64,
    /// Fence counters re-created from the server's TIME after they expired or were lost.
    pub fences_recreated: u64,
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
    pub fn violation(&mut self, property: Property, at: u64, detail: String) {
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

    /// A lease was acquired at `at`; the servers issued it between `issued.0` and `issued.1`.
    pub fn acquired(
        &mut self,
        lock: usize,
        client: usize,
        token: u64,
        at: u64,
        issued: (u64, u64),
    ) {
        *self.outcomes.entry("acquired".into()).or_default() += 1;
        self.last_acquired[lock] = at;
        self.tenures.push(Tenure {
            lock,
            client,
            token,
            start: at,
            end: None,
            issued,
        });
    }

    /// Whether the run recorded as many acquisitions as one seed may hold ([`MAX_TENURES`]).
    #[must_use]
    pub fn full(&self) -> bool {
        self.tenures.len() >= MAX_TENURES
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

    /// A read reached the resource.
    pub fn read(&mut self, accepted: bool) {
        if accepted {
            self.reads.0 += 1
        } else {
            self.reads.1 += 1
        }
    }

    /// A fault was injected at `at`.
    pub fn fault(&mut self, _at: u64) {
        self.faults += 1;
    }

    /// A `wait` acquire that started at `started` hit its deadline at `now`. After the faults
    /// healed (plus one ttl for orphaned keys to expire), a waiter may only time out while the
    /// lock was in use: a violation is a wait during which nobody acquired the lock *and* nobody
    /// held it (a holder that acquired before the wait and held through it is legitimate use,
    /// not starvation).
    pub fn check_liveness(&mut self, lock: usize, client: usize, started: u64, now: u64, ttl: u64) {
        if started < self.fault_end + ttl || self.last_acquired[lock] >= started {
            return;
        }
        let held_during = self
            .tenures
            .iter()
            .rev()
            .any(|t| t.lock == lock && t.start <= now && t.end.is_none_or(|e| e >= started));
        if !held_during {
            self.violation(
                Property::Liveness,
                now,
                format!("lock {lock}: client {client} waited from t={started}ns to its deadline after faults healed, and nobody acquired or held the lock meanwhile"),
            );
        }
    }

    /// Acquisitions.
    #[must_use]
    pub fn acquisitions(&self) -> u64 {
        self.tenures.len() as u64
    }

    /// Offline checks on the whole history, per lock: mutual exclusion (belief intervals in
    /// true time) and token order.
    ///
    /// `token_order` is judged in the order the *servers issued* leases, not the order clients
    /// learned of them: when lease A's issuing operations (its winning round's grants and fence
    /// write-backs) all executed before any of lease B's did, A's token must be below B's. That
    /// is what a fenced resource relies on. The order in which clients learn of grants depends
    /// on network delay, which no lock controls: a grant reply that arrives after a restart
    /// re-granted the key carries an older, smaller token, and the damage it can do (a write
    /// from the older lease) is what `stale_writes_accepted` and `lost_updates` judge.
    pub fn finish(&mut self, end: u64) {
        let mut by_lock: BTreeMap<usize, Vec<Tenure>> = BTreeMap::new();
        for t in &self.tenures {
            by_lock.entry(t.lock).or_default().push(t.clone());
        }
        for (lock, mut ts) in by_lock {
            ts.sort_by_key(|t| (t.start, t.client));
            let mut reach: Option<(u64, usize)> = None;
            for t in &ts {
                if let Some((until, who)) = reach
                    && t.start < until
                    && who != t.client
                {
                    self.violation(
                            Property::MutualExclusion,
                            t.start,
                            format!("lock {lock}: client {} acquired at t={}ns while client {who} believed it held until t={until}ns", t.client, t.start),
                        );
                }
                let end_t = t.end.unwrap_or(end);
                if reach.is_none_or(|(u, _)| end_t > u) {
                    reach = Some((end_t, t.client));
                }
            }
            self.check_token_order(lock, &mut ts);
        }
    }

    fn check_token_order(&mut self, lock: usize, ts: &mut [Tenure]) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        ts.sort_by_key(|t| (t.issued.0, t.issued.1, t.client));
        // leases not yet completely issued when the current one started, by their last operation
        let mut open: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
        // the highest token among leases completely issued before the current one started
        let mut best: Option<(u64, usize, u64)> = None;
        for t in ts.iter() {
            while let Some(Reverse((last, token, client))) = open.peek().copied() {
                if last >= t.issued.0 {
                    break;
                }
                open.pop();
                if best.is_none_or(|(b, _, _)| token > b) {
                    best = Some((token, client, last));
                }
            }
            if let Some((b, who, at)) = best
                && t.token <= b
            {
                self.violation(
                    Property::TokenOrder,
                    t.issued.0,
                    format!(
                        "lock {lock}: client {} got token {} issued from t={}ns, after client {who}'s token {b} was completely issued at t={at}ns",
                        t.client, t.token, t.issued.0
                    ),
                );
            }
            open.push(Reverse((t.issued.1, t.token, t.client)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{History, MAX_TENURES, Property};

    #[test]
    fn violations_are_kept_up_to_20_per_property_each() {
        let mut h = History::new(1, 0);
        for i in 0..25 {
            h.violation(Property::MutualExclusion, i, format!("m{i}"));
        }
        h.violation(Property::TokenOrder, 99, "t".into());
        let count = |p| h.violations.iter().filter(|v| v.property == p).count();
        assert_eq!(count(Property::MutualExclusion), 20);
        assert_eq!(
            count(Property::TokenOrder),
            1,
            "another property has its own 20"
        );
        assert_eq!(
            h.violations[19].detail, "m19",
            "the first 20 are the ones kept"
        );
    }

    #[test]
    fn acquisitions_are_counted_and_a_release_closes_that_clients_lease_of_that_lock() {
        let mut h = History::new(2, 0);
        h.acquired(0, 0, 1, 1, (1, 1));
        h.acquired(1, 0, 1, 2, (2, 2));
        assert_eq!(h.outcomes.get("acquired"), Some(&2));
        assert_eq!(h.acquisitions(), 2);
        // client 0 releases lock 0 (not its lease of lock 1), then client 1 takes lock 0
        h.released(0, 0, 5);
        h.acquired(0, 1, 2, 10, (10, 10));
        h.finish(100);
        assert!(h.violations.is_empty(), "{:?}", h.violations);
        // whereas a client taking lock 1, still held by client 0, overlaps
        let mut h2 = h.clone();
        h2.acquired(1, 1, 2, 20, (20, 20));
        h2.finish(100);
        assert_eq!(h2.violations.len(), 1, "{:?}", h2.violations);
        assert_eq!(h2.violations[0].property, Property::MutualExclusion);
    }

    #[test]
    fn a_history_is_full_at_max_tenures() {
        let mut h = History::new(1, 0);
        for i in 0..MAX_TENURES as u64 - 1 {
            h.acquired(0, 0, i, i, (i, i));
            h.released(0, 0, i);
        }
        assert!(!h.full());
        h.acquired(0, 0, 0, 0, (0, 0));
        assert!(h.full());
    }

    fn liveness(h: &History) -> usize {
        h.violations
            .iter()
            .filter(|v| v.property == Property::Liveness)
            .count()
    }

    #[test]
    fn liveness_is_judged_only_after_faults_and_a_ttl_and_only_for_an_unused_lock() {
        // faults end at 1,000, ttl 100: waits that start at 1,100 or later are judged
        let fresh = || History::new(1, 1_000);
        let mut h = fresh();
        h.check_liveness(0, 0, 500, 2_000, 100);
        assert_eq!(liveness(&h), 0, "a wait that began during the faults");
        h.check_liveness(0, 0, 1_099, 2_000, 100);
        assert_eq!(
            liveness(&h),
            0,
            "a wait that began before orphaned keys expired"
        );
        h.check_liveness(0, 0, 1_100, 2_000, 100);
        assert_eq!(
            liveness(&h),
            1,
            "from faults' end plus a ttl, an unused lock is a violation"
        );
        let mut h = fresh();
        h.check_liveness(0, 0, 5_000, 6_000, 100);
        assert_eq!(liveness(&h), 1);
        // someone acquired during the wait
        let mut h = fresh();
        h.acquired(0, 1, 1, 5_500, (5_500, 5_500));
        h.released(0, 1, 5_600);
        h.check_liveness(0, 0, 5_000, 6_000, 100);
        assert_eq!(liveness(&h), 0);
        // someone acquired before the wait and held through it
        let mut h = fresh();
        h.acquired(0, 1, 1, 4_000, (4_000, 4_000));
        h.check_liveness(0, 0, 5_000, 6_000, 100);
        assert_eq!(liveness(&h), 0);
        // ... or released before the wait began: the lock was unused
        h.released(0, 1, 4_900);
        h.check_liveness(0, 0, 5_000, 6_000, 100);
        assert_eq!(liveness(&h), 1);
    }

    #[test]
    fn writes_reads_and_faults_are_counted() {
        let mut h = History::new(1, 0);
        h.write(true);
        h.write(true);
        h.write(false);
        h.read(true);
        h.read(false);
        h.read(false);
        h.fault(1);
        h.fault(2);
        assert_eq!((h.writes, h.reads, h.faults), ((2, 1), (1, 2), 2));
    }

    #[test]
    fn a_lease_starting_as_the_last_one_ends_is_not_an_overlap() {
        let mut h = History::new(1, 0);
        h.acquired(0, 0, 1, 0, (0, 0));
        h.released(0, 0, 10);
        h.acquired(0, 1, 2, 10, (10, 10));
        h.finish(100);
        assert!(h.violations.is_empty(), "{:?}", h.violations);
    }

    #[test]
    fn an_overlap_is_judged_against_the_first_holder_that_reaches_furthest() {
        // A (client 0) and B (client 1) both believe until 20; C (client 1) starts at 15: it
        // overlaps A, which still reaches 20, though its own client's B does too
        let mut h = History::new(1, 0);
        h.acquired(0, 0, 1, 0, (0, 0));
        h.acquired(0, 1, 2, 10, (10, 10));
        h.acquired(0, 1, 3, 15, (15, 15));
        h.released(0, 1, 30); // C
        h.released(0, 1, 20); // B
        h.released(0, 0, 20); // A
        h.finish(100);
        let me: Vec<u64> = h
            .violations
            .iter()
            .filter(|v| v.property == Property::MutualExclusion)
            .map(|v| v.at)
            .collect();
        assert_eq!(me, [10, 15], "{:?}", h.violations);
    }

    #[test]
    fn token_order_compares_with_the_highest_token_completely_issued_before() {
        let mut h = History::new(1, 0);
        h.acquired(0, 0, 5, 1, (0, 1));
        h.released(0, 0, 2);
        h.acquired(0, 1, 9, 4, (3, 4));
        h.released(0, 1, 5);
        h.acquired(0, 2, 7, 7, (6, 7)); // issued after both: below 9
        h.released(0, 2, 8);
        h.finish(100);
        let to: Vec<&str> = h
            .violations
            .iter()
            .filter(|v| v.property == Property::TokenOrder)
            .map(|v| v.detail.as_str())
            .collect();
        assert_eq!(to.len(), 1, "{:?}", h.violations);
        assert!(
            to[0].contains("client 2 got token 7") && to[0].contains("client 1's token 9"),
            "{}",
            to[0]
        );
    }
}
