//! Typed outcomes: why an acquire failed, why a lease was lost, and the events a machine emits.
//!
//! These replace "context deadline exceeded": every failure says which of the possible causes it
//! was, with the numbers needed to act on it.

use std::fmt;
use std::time::Duration;

use crate::time::Instant;
use crate::wire::SlotError;

/// A set of slot indices (at most [`crate::config::MAX_SLOTS`]), as a bit mask.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SlotSet(pub u16);

impl SlotSet {
    /// The empty set.
    pub const EMPTY: SlotSet = SlotSet(0);

    /// Slots `0..n`.
    #[must_use]
    pub fn first(n: usize) -> SlotSet {
        SlotSet(((1u32 << n.min(16)) - 1) as u16)
    }
    /// Add a slot.
    pub fn insert(&mut self, slot: usize) {
        if slot < 16 {
            self.0 |= 1 << slot;
        }
    }
    /// Remove a slot.
    pub fn remove(&mut self, slot: usize) {
        if slot < 16 {
            self.0 &= !(1 << slot);
        }
    }
    /// Membership.
    #[must_use]
    pub fn contains(self, slot: usize) -> bool {
        slot < 16 && self.0 & (1 << slot) != 0
    }
    /// Number of members.
    #[must_use]
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    /// Whether empty.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Members in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..16).filter(move |i| self.contains(*i))
    }
}

impl fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// How to acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireMode {
    /// One round; each slot's reply is awaited at most `slot_wait`.
    Try,
    /// Rounds with exponential backoff and full jitter (or at once on a key-change notification)
    /// until acquired or `deadline` passes.
    Wait {
        /// The caller's deadline on the caller's clock.
        deadline: Instant,
    },
    /// One round that overwrites any other holder's value. The previous holder learns it at its
    /// next extension or key-change notification ([`LostReason::Taken`]).
    Force,
}

/// Why an acquire did not produce a lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// Another holder has the lock on enough slots that no quorum is possible. Retry later
    /// (`wait` mode does this for you), or `force` it if you know the holder is dead.
    #[error("held by {}{}; retry later or wait for it", holder.as_deref().unwrap_or("another holder"), remaining.map(|r| format!(" for another {r:?}")).unwrap_or_default())]
    Contended {
        /// The holder id found in a slot, when it is a leasehold value.
        holder: Option<String>,
        /// Remaining ttl reported by the server, when known.
        remaining: Option<Duration>,
    },
    /// Slots did not reply within the per-slot wait, and their replies could have made the quorum.
    /// This is *not* contention: Redis (or the network) answered more slowly than `slot_wait`.
    /// Raise `slot_wait` above the observed reply time (see [`AcquireError::suggested_slot_wait`]).
    #[error("no reply from slot(s) {slots} within slot_wait {waited:?}{}", match (observed, suggested) {
        (Some(o), Some(s)) => format!("; replies took {o:?} recently, so a slot_wait (try_next_after) of {s:?} would have sufficed"),
        _ => "; no reply time observed yet: measure it with `leasehold bench` and set slot_wait above it".to_owned(),
    })]
    SlowReplies {
        /// The slots that stayed silent.
        slots: SlotSet,
        /// How long the round waited.
        waited: Duration,
        /// The slowest recent reply time seen on those slots (including replies that came late).
        observed: Option<Duration>,
        /// A slot_wait that would have covered the observed reply time with room to spare.
        suggested: Option<Duration>,
    },
    /// The caller's deadline passed before a lease was acquired. `last_cause` says what the last
    /// round ran into: contention, slow replies or unreachable slots.
    #[error("caller deadline passed after {waited:?} and {attempts} round(s){}", last_cause.as_ref().map(|c| format!("; last round: {c}")).unwrap_or_default())]
    DeadlineExceeded {
        /// Time from the start of the acquire to the deadline.
        waited: Duration,
        /// Rounds sent.
        attempts: u32,
        /// What the last round failed with, if one finished.
        last_cause: Option<Box<AcquireError>>,
    },
    /// Too many slots answered with errors for a quorum. Check that the Redis instances are up and
    /// reachable; the per-slot errors say what each one answered.
    #[error("quorum unreachable: {granted} of {quorum} needed slots granted; errors: {}", errors.iter().map(|(s, e)| format!("slot {s}: {e}")).collect::<Vec<_>>().join("; "))]
    QuorumUnreachable {
        /// Slots granted in the round.
        granted: usize,
        /// Slots needed.
        quorum: usize,
        /// Errors by slot.
        errors: Vec<(usize, SlotError)>,
    },
    /// A quorum was granted, but so late that the validity window (counted from when the first
    /// request was sent) had already run out. Raise the ttl, or find what stalls the client.
    #[error(
        "granted after {elapsed:?}, past the validity window of {window:?}; raise the ttl or find the stall"
    )]
    ValidityConsumed {
        /// Time from sending to the quorum.
        elapsed: Duration,
        /// `ttl - drift - margin`.
        window: Duration,
    },
    /// The caller cancelled the acquire. Keys possibly written are being deleted in the background.
    #[error("cancelled by the caller")]
    Cancelled,
}

impl AcquireError {
    /// The `slot_wait` that would have covered the observed reply time, for slow replies (also
    /// when they were the last cause of a passed deadline).
    #[must_use]
    pub fn suggested_slot_wait(&self) -> Option<Duration> {
        match self {
            AcquireError::SlowReplies { suggested, .. } => *suggested,
            AcquireError::DeadlineExceeded {
                last_cause: Some(c),
                ..
            } => c.suggested_slot_wait(),
            _ => None,
        }
    }

    /// Whether the round failed because replicas did not acknowledge its writes in time
    /// (`LockConfig::replication`): a `QuorumUnreachable` whose slot errors include
    /// [`crate::SlotErrorKind::NotReplicated`] (also as a passed deadline's last cause). The
    /// primary granted, the grant would not have survived a failover, and its key was released.
    #[must_use]
    pub fn is_not_replicated(&self) -> bool {
        match self {
            AcquireError::QuorumUnreachable { errors, .. } => errors
                .iter()
                .any(|(_, e)| e.kind == crate::wire::SlotErrorKind::NotReplicated),
            AcquireError::DeadlineExceeded {
                last_cause: Some(c),
                ..
            } => c.is_not_replicated(),
            _ => false,
        }
    }

    /// A stable snake_case name for counting outcomes.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            AcquireError::Contended { .. } => "contended",
            AcquireError::SlowReplies { .. } => "slow_replies",
            AcquireError::DeadlineExceeded { .. } => "deadline_exceeded",
            AcquireError::QuorumUnreachable { .. } => "quorum_unreachable",
            AcquireError::ValidityConsumed { .. } => "validity_consumed",
            AcquireError::Cancelled => "cancelled",
        }
    }
}

/// Why a held lease ended without the holder releasing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LostReason {
    /// The validity instant passed before an extension was confirmed (Redis slow or silent, or the
    /// process paused). Stop writing; reacquire if the work must go on.
    #[error("expired locally: no extension was confirmed before the validity instant")]
    ExpiredLocally,
    /// Another holder's value is in the key (a `force`, or the key expired and was re-granted).
    /// Stop writing; the new holder's token is higher.
    #[error("taken by {}", holder.as_deref().unwrap_or("another holder"))]
    Taken {
        /// The new holder, when it is a leasehold value.
        holder: Option<String>,
    },
    /// The key vanished while the fence counter remained (deleted by an operator, or expired early).
    #[error("the lock key was deleted")]
    Deleted,
    /// The key and its fence counter are both gone: the server restarted without persistence or
    /// was flushed.
    #[error("the server lost its data (restart without persistence or flush)")]
    ServerRestarted,
    /// The configured `hold_cap` was reached; extensions stopped.
    #[error("hold cap reached: extensions stop after the configured total hold time")]
    HoldCapReached,
    /// The connection to slots holding the lease was down when the validity instant passed.
    #[error("disconnected from Redis until the validity instant passed")]
    Disconnected,
}

impl LostReason {
    /// A stable snake_case name for counting.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            LostReason::ExpiredLocally => "expired_locally",
            LostReason::Taken { .. } => "taken",
            LostReason::Deleted => "deleted",
            LostReason::ServerRestarted => "server_restarted",
            LostReason::HoldCapReached => "hold_cap_reached",
            LostReason::Disconnected => "disconnected",
        }
    }
}

/// Something the application must learn about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lease was acquired.
    Acquired {
        /// Fencing token: greater than every earlier holder's token of this lock.
        token: u64,
        /// The lease is trusted until this instant unless extended.
        validity: Instant,
        /// When the first request of the winning round was sent.
        sent_at: Instant,
        /// How it was acquired.
        mode: AcquireMode,
    },
    /// An acquire ended without a lease.
    AcquireFailed(AcquireError),
    /// An extension was confirmed by a quorum.
    Extended {
        /// The lease's token.
        token: u64,
        /// New validity instant.
        validity: Instant,
        /// How much validity was left when the extension was confirmed.
        slack: Duration,
    },
    /// The lease ended without a release. Reported at or before the validity instant.
    Lost {
        /// The lease's token.
        token: u64,
        /// Why.
        reason: LostReason,
    },
    /// The caller released the lease; deletes were sent.
    Released {
        /// The lease's token.
        token: u64,
    },
}

/// A call that is not legal in the machine's current state. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// `acquire` while acquiring or holding. Release or cancel first.
    #[error("already acquiring or holding this lock; release or cancel it first")]
    Busy,
    /// `release` while not holding.
    #[error("not holding this lock")]
    NotHeld,
}
