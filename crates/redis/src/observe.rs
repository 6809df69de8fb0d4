//! Lock events applications can subscribe to (`Locker::subscribe`).

use std::time::Duration;

use leasehold_core::LostReason;

/// One observable thing that happened to a lock in this process.
#[derive(Debug, Clone, PartialEq)]
pub enum LockEvent {
    /// A lease was acquired after `latency`.
    Acquired {
        /// Lock name.
        name: String,
        /// Fencing token (0 under [`crate::Compat::Rueidislock`], which has none: see
        /// [`crate::Lease::fencing_token`]).
        token: u64,
        /// Time from the acquire call to the grant.
        latency: Duration,
    },
    /// An acquire failed with the typed `reason` after `latency`.
    AcquireFailed {
        /// Lock name.
        name: String,
        /// `AcquireError::reason()`.
        reason: &'static str,
        /// Time from the acquire call to the failure.
        latency: Duration,
    },
    /// An extension was confirmed with `slack` validity left.
    Extended {
        /// Lock name.
        name: String,
        /// Validity that was left.
        slack: Duration,
    },
    /// A lease was lost.
    Lost {
        /// Lock name.
        name: String,
        /// Its token.
        token: u64,
        /// Why.
        reason: LostReason,
    },
    /// A lease was released.
    Released {
        /// Lock name.
        name: String,
        /// Its token.
        token: u64,
    },
}
