//! The lease handle an application holds.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::stream::StreamExt;
use leasehold_core::{LostReason, Phase};

use crate::cell::CellState;
use crate::drive::{Entry, apply_events};
use crate::error::LockError;
use crate::keeper::{KeeperHandle, KeeperMsg};
use crate::locker::Shared;
use crate::send::{Inflight, drain};

/// A held lease. Use [`Lease::token`] as the fencing token on every write to the protected
/// resource; watch [`Lease::lost`]; call [`Lease::release`]. Dropping it releases in the
/// background without blocking and without panicking.
pub struct Lease {
    name: String,
    entry: Arc<Entry>,
    shared: Arc<Shared>,
    keeper: KeeperHandle,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("token", &self.token())
            .field("held", &self.is_held())
            .finish()
    }
}

impl Lease {
    pub(crate) fn new(
        name: String,
        entry: Arc<Entry>,
        shared: Arc<Shared>,
        keeper: KeeperHandle,
    ) -> Self {
        Lease {
            name,
            entry,
            shared,
            keeper,
        }
    }

    /// The lock name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing token: strictly greater than every earlier holder's token of this lock.
    /// Always 0 under [`crate::Compat::Rueidislock`], which has no fence counter: use
    /// [`Lease::fencing_token`] where a locker may speak a compat dialect.
    #[must_use]
    pub fn token(&self) -> u64 {
        self.entry.cell.snapshot().0
    }

    /// The fencing token, or `None` when the locker speaks a dialect without one
    /// ([`crate::Compat::Rueidislock`]: see [`crate::GivenUp::FencingToken`]).
    #[must_use]
    pub fn fencing_token(&self) -> Option<u64> {
        self.shared.config.dialect.has_fence().then(|| self.token())
    }

    /// Until when the lease is trusted (moves forward with each extension). `None` once lost or
    /// released.
    #[must_use]
    pub fn valid_until(&self) -> Option<tokio::time::Instant> {
        match self.entry.cell.snapshot().1 {
            CellState::Held { validity_ns } => {
                Some(self.shared.origin + std::time::Duration::from_nanos(validity_ns))
            }
            _ => None,
        }
    }

    /// Whether the lease is still held (not lost, not released).
    #[must_use]
    pub fn is_held(&self) -> bool {
        matches!(self.entry.cell.snapshot().1, CellState::Held { .. })
    }

    /// Resolves with the reason once the lease is lost, at or before its validity instant.
    /// Cancel-safe: dropping the future and calling again loses nothing. If the lease is released
    /// instead, it never resolves.
    pub async fn lost(&self) -> LostReason {
        self.entry.cell.lost().await
    }

    /// Release: compare-and-delete on every held slot, sent and awaited by the caller's own task.
    /// `Err(LockError::Lost)` if the lease had already been lost (your critical section may have
    /// overlapped another holder's).
    pub async fn release(self) -> Result<(), LockError> {
        let cell = &self.entry.cell;
        if let CellState::Lost(r) = cell.snapshot().1 {
            let _ = cell.request_release();
            return Err(LockError::Lost(r));
        }
        if !cell.request_release() {
            return Ok(());
        }
        let mut replies = Inflight::Empty;
        {
            let mut m = self.entry.machine();
            if m.lock.release(self.shared.core_now()).is_err() {
                // no longer held: lost (told to the cell by the keeper, or now)
                apply_events(&self.shared, &self.entry, &mut m);
                drop(m);
                self.keeper.send(KeeperMsg::Poke(self.entry.id));
                return match cell.snapshot().1 {
                    CellState::Lost(r) => Err(LockError::Lost(r)),
                    _ => Err(LockError::Lost(LostReason::ExpiredLocally)),
                };
            }
            drain(&self.shared, &mut m.lock, |_, r| replies.push(r));
            apply_events(&self.shared, &self.entry, &mut m);
        }
        let outstanding = Outstanding::new(&self.entry, &self.keeper, replies.len());
        while let Some(answers) = replies.next().await {
            let mut m = self.entry.machine();
            m.feed_all(&self.shared, answers);
            apply_events(&self.shared, &self.entry, &mut m);
        }
        {
            // released: no push concerns this lease any more. Its routes go now, not at the
            // keeper's next look (up to a TICK away): until then every write of the name by this
            // locker (the next grant, the next release) would be passed on to them and wake the
            // keeper for nothing
            let m = self.entry.machine();
            if m.lock.phase() == Phase::Idle {
                let keys = self.shared.route_keys(m.lock.keys());
                self.shared.router.unregister(self.entry.id, keys);
            }
        }
        drop(outstanding);
        Ok(())
    }
}

/// Requests a releasing caller awaits: the keeper keeps the entry (and the gate stays closed)
/// until they are all answered or the caller gives up on them (its future dropped).
struct Outstanding<'a> {
    entry: &'a Arc<Entry>,
    keeper: &'a KeeperHandle,
    n: usize,
}

impl<'a> Outstanding<'a> {
    fn new(entry: &'a Arc<Entry>, keeper: &'a KeeperHandle, n: usize) -> Self {
        entry.external.fetch_add(n, Ordering::AcqRel);
        Outstanding { entry, keeper, n }
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.entry.external.fetch_sub(self.n, Ordering::AcqRel);
        // the releases are answered: the next local waiter may go, and the keeper may forget the
        // lease at its next wake-up (nothing about it is urgent any more)
        self.entry.open_gate();
        self.keeper.send_lazily(KeeperMsg::Poke(self.entry.id));
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.entry.cell.request_release() {
            // non-blocking: the keeper releases in the background
            self.keeper.send(KeeperMsg::Release(self.entry.id));
        }
    }
}
