//! When the servers issued a lease: the record both checkers (the simulator's and the exhaustive
//! one) keep of each acquisition's grants and fence write-backs, so `token_order` can be judged in
//! the servers' issue order (see ARCHITECTURE.md, "Fence tokens").

/// The server operations that issued one client's current acquisition, with their instants (any
/// monotonic unit: true time in ns, or an operation sequence number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueLog {
    /// `(Some(nonce), at)` for a grant of the round with that value, `(None, at)` for a fence
    /// write-back.
    ops: Vec<(Option<u64>, u64)>,
}

impl IssueLog {
    /// A grant of the round whose value has `nonce`, executed at `at`.
    pub fn grant(&mut self, nonce: u64, at: u64) {
        self.ops.push((Some(nonce), at));
    }

    /// A fence write-back executed at `at`.
    pub fn write_back(&mut self, at: u64) {
        self.ops.push((None, at));
    }

    /// Forget everything (a new acquisition starts).
    pub fn clear(&mut self) {
        self.ops.clear();
    }

    /// The first and last operation that issued the lease whose winning round had `nonce`: its
    /// grants, and the write-backs from its first grant on. `now` when nothing was recorded. The
    /// log is emptied for the next acquisition.
    pub fn take_span(&mut self, nonce: Option<u64>, now: u64) -> (u64, u64) {
        let ops = std::mem::take(&mut self.ops);
        let first = ops
            .iter()
            .filter(|(n, _)| n.is_some() && *n == nonce)
            .map(|(_, t)| *t)
            .min()
            .unwrap_or(now);
        let last = ops
            .iter()
            .filter(|(n, t)| (n.is_some() && *n == nonce) || (n.is_none() && *t >= first))
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(first);
        (first, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_covers_the_winning_rounds_grants_and_later_write_backs() {
        let mut log = IssueLog::default();
        log.grant(1, 5); // an earlier round's grant
        log.write_back(6); // before the winning round: not part of it
        log.grant(2, 10);
        log.grant(2, 12);
        log.write_back(15);
        assert_eq!(log.take_span(Some(2), 99), (10, 15));
        assert_eq!(log.take_span(Some(2), 99), (99, 99), "taken");
    }
}
