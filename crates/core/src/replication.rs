//! Replication-acknowledged writes: Redis's `WAIT` after every grant, extension and fence
//! write-back ([`LockConfig::replication`](crate::LockConfig::replication)).
//!
//! With asynchronous replication a primary acknowledges a write before any replica has it; a
//! failover then promotes a replica without the grant, and the lock is granted again (and its
//! fence counter goes back). With [`Replication`] set, the machine sends [`Op::Wait`] directly
//! after each such write on the same slot (pipelined: no extra round trip when the replicas keep
//! up) and counts the write only when the `WAIT` reply ([`Reply::Acked`]) says at least
//! `replicas` replicas have it. Until then the write's reply is held here ([`Gate`]); then the
//! machine handles either that reply or, if too few replicas acknowledged, a
//! [`SlotErrorKind::NotReplicated`] error in its place:
//!
//! - a grant not replicated is a failed slot (the round's classification names it among the
//!   errors of `QuorumUnreachable`), and its key is released at once, as a late grant is;
//! - an extension not replicated does not move the validity (the slot stays in the lease; the
//!   next extension retries; a lease that cannot get one confirmed runs out at its validity);
//! - a fence write-back not replicated does not count towards the write-back's majority.
//!
//! What this does not promise (Redis's own caveat: `WAIT` does not make replication strongly
//! consistent): a failover that promotes a replica which did *not* acknowledge (Sentinel picks
//! by its own rules, e.g. the replica with the largest offset among those it can reach, not one
//! that acknowledged this write) loses the grant as before; so does a replica that restarts
//! without persistence after acknowledging.

use std::time::Duration;

use crate::config::ConfigError;
use crate::wire::{Op, Reply, RequestId, SlotError, SlotErrorKind};

/// Most replicas `WAIT` may be asked for (far above any real deployment; guards typos).
pub const MAX_REPLICAS: u32 = 64;

/// How many replicas must acknowledge each lock write, and how long `WAIT` may block for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// `WAIT`'s `numreplicas`: 1 to [`MAX_REPLICAS`].
    pub replicas: u32,
    /// `WAIT`'s timeout: whole milliseconds, at least 1 ms and shorter than `slot_wait` (the
    /// `WAIT` reply must arrive while the acquire round still waits for its slot). Redis
    /// handles blocked clients' timeouts when its event loop wakes, `hz` times a second (10 by
    /// default), so an idle server answers a timed-out `WAIT` up to 100 ms late: give
    /// `slot_wait` at least `timeout + 100 ms` plus a round trip, or an unacknowledged write is
    /// reported as a slow reply instead of as not replicated. (Acknowledgements are prompt: a
    /// primary with a client in `WAIT` asks its replicas for an ack at once.)
    pub timeout: Duration,
}

impl Replication {
    /// `replicas` replicas within `timeout`.
    #[must_use]
    pub fn new(replicas: u32, timeout: Duration) -> Self {
        Replication { replicas, timeout }
    }

    /// The timeout in whole milliseconds, as sent with `WAIT`.
    #[must_use]
    pub fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// The [`Op::Wait`] sent after each write.
    #[must_use]
    pub fn wait_op(&self) -> Op {
        Op::Wait {
            replicas: self.replicas,
            timeout_ms: self.timeout_ms(),
        }
    }

    /// Check the setting against the lock's `slot_wait`.
    pub fn validate(&self, slot_wait: Duration) -> Result<(), ConfigError> {
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return Err(ConfigError::InvalidReplicas {
                replicas: self.replicas,
                problem: "must be between 1 and 64 (leave replication unset for no WAIT)",
            });
        }
        let bad = |problem: String| ConfigError::InvalidDuration {
            option: "replication.timeout",
            value: self.timeout,
            problem,
        };
        if self.timeout < Duration::from_millis(1)
            || !self.timeout.subsec_nanos().is_multiple_of(1_000_000)
        {
            return Err(bad(
                "must be whole milliseconds, at least 1ms (WAIT n 0 would block forever)".into(),
            ));
        }
        if self.timeout >= slot_wait {
            return Err(bad(format!(
                "must be shorter than slot_wait ({slot_wait:?}): the WAIT reply has to arrive while the acquire round waits for its slot; raise slot_wait or lower the timeout"
            )));
        }
        Ok(())
    }

    /// What the machine acts on once the `WAIT` after a write answered: the write's own reply if
    /// enough replicas acknowledged it, otherwise an error in its place.
    #[must_use]
    pub fn verdict(&self, write: Reply, wait: Reply) -> Reply {
        match wait {
            Reply::Acked(n) if n >= self.replicas => write,
            Reply::Acked(n) => Reply::Error(SlotError::new(
                SlotErrorKind::NotReplicated,
                format!(
                    "WAIT {} {}: {n} of {} replicas acknowledged the write in time",
                    self.replicas,
                    self.timeout_ms(),
                    self.replicas
                ),
            )),
            Reply::Error(e) => Reply::Error(e),
            other => Reply::Error(SlotError::new(
                SlotErrorKind::Corrupt,
                format!("WAIT got a reply of the wrong kind: {other:?}"),
            )),
        }
    }
}

/// Successful write replies held until their `WAIT` answers, keyed by the write's request id.
/// `W` is the machine's record of the write request.
#[derive(Debug, Clone)]
pub(crate) struct Gate<W> {
    held: Vec<(RequestId, W, Reply)>,
}

impl<W> Default for Gate<W> {
    fn default() -> Self {
        Gate { held: Vec::new() }
    }
}

impl<W> Gate<W> {
    /// Hold `reply` to `write` (request `id`) until the `WAIT` after it answers.
    pub(crate) fn hold(&mut self, id: RequestId, write: W, reply: Reply) {
        self.held.push((id, write, reply));
    }

    /// The held reply to write request `id`, if any (a write that failed was never held).
    pub(crate) fn take(&mut self, id: RequestId) -> Option<(W, Reply)> {
        let pos = self.held.iter().position(|h| h.0 == id)?;
        let (_, w, r) = self.held.swap_remove(pos);
        Some((w, r))
    }

    /// Forget writes whose `WAIT` is no longer awaited (pruned with the machine's requests).
    pub(crate) fn retain(&mut self, mut awaited: impl FnMut(RequestId) -> bool) {
        self.held.retain(|h| awaited(h.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let ok = Replication::new(1, ms(20));
        assert!(ok.validate(ms(50)).is_ok());
        let e = Replication::new(0, ms(20)).validate(ms(50)).unwrap_err();
        assert!(e.to_string().contains("replicas"), "{e}");
        let e = Replication::new(65, ms(20)).validate(ms(50)).unwrap_err();
        assert!(e.to_string().contains("between 1 and 64"), "{e}");
        let e = Replication::new(1, ms(0)).validate(ms(50)).unwrap_err();
        assert!(e.to_string().contains("block forever"), "{e}");
        let e = Replication::new(1, Duration::from_micros(1500))
            .validate(ms(50))
            .unwrap_err();
        assert!(e.to_string().contains("whole milliseconds"), "{e}");
        let e = Replication::new(1, ms(50)).validate(ms(50)).unwrap_err();
        assert!(e.to_string().contains("slot_wait"), "{e}");
    }

    #[test]
    fn verdict_counts_only_enough_acknowledgements() {
        let r = Replication::new(2, ms(20));
        let g = Reply::Granted { token: 7 };
        assert_eq!(r.verdict(g.clone(), Reply::Acked(2)), g);
        assert_eq!(r.verdict(g.clone(), Reply::Acked(3)), g);
        let Reply::Error(e) = r.verdict(g.clone(), Reply::Acked(1)) else {
            panic!("one of two replicas must not count");
        };
        assert_eq!(e.kind, SlotErrorKind::NotReplicated);
        assert!(e.detail.contains("1 of 2"), "{}", e.detail);
        let cut = SlotError::new(SlotErrorKind::Disconnected, "reset");
        assert_eq!(
            r.verdict(g.clone(), Reply::Error(cut.clone())),
            Reply::Error(cut)
        );
        let Reply::Error(e) = r.verdict(g, Reply::Extended) else {
            panic!("a WAIT answered by a script reply is corrupt");
        };
        assert_eq!(e.kind, SlotErrorKind::Corrupt);
    }

    #[test]
    fn the_gate_hands_back_what_it_holds_once() {
        let mut g: Gate<u8> = Gate::default();
        g.hold(RequestId(3), 1, Reply::Extended);
        g.hold(RequestId(5), 2, Reply::FenceRaised);
        assert_eq!(g.take(RequestId(4)), None);
        assert_eq!(g.take(RequestId(3)), Some((1, Reply::Extended)));
        assert_eq!(g.take(RequestId(3)), None);
        g.retain(|id| id != RequestId(5));
        assert_eq!(g.take(RequestId(5)), None);
    }
}
