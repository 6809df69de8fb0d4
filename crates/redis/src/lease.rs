//! The lease handle an application holds.

use leasehold_core::LostReason;
use tokio::sync::{mpsc, oneshot, watch};

use crate::driver::{DriverCmd, LeaseState};
use crate::error::LockError;

/// A held lease. Use [`Lease::token`] as the fencing token on every write to the protected
/// resource; watch [`Lease::lost`]; call [`Lease::release`]. Dropping it releases in the
/// background without blocking and without panicking.
#[derive(Debug)]
pub struct Lease {
    name: String,
    token: u64,
    state: watch::Receiver<LeaseState>,
    cmds: mpsc::UnboundedSender<DriverCmd>,
    released: bool,
}

impl Lease {
    pub(crate) fn new(
        name: String,
        token: u64,
        state: watch::Receiver<LeaseState>,
        cmds: mpsc::UnboundedSender<DriverCmd>,
    ) -> Self {
        Lease {
            name,
            token,
            state,
            cmds,
            released: false,
        }
    }

    /// The lock name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing token: strictly greater than every earlier holder's token of this lock.
    #[must_use]
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Until when the lease is trusted (moves forward with each extension). `None` once lost or
    /// released.
    #[must_use]
    pub fn valid_until(&self) -> Option<tokio::time::Instant> {
        match &*self.state.borrow() {
            LeaseState::Held { validity } => Some(*validity),
            _ => None,
        }
    }

    /// Whether the lease is still held (not lost, not released).
    #[must_use]
    pub fn is_held(&self) -> bool {
        matches!(&*self.state.borrow(), LeaseState::Held { .. })
    }

    /// Resolves with the reason once the lease is lost, at or before its validity instant.
    /// Cancel-safe: dropping the future and calling again loses nothing. If the lease is released
    /// instead, it never resolves.
    pub async fn lost(&self) -> LostReason {
        let mut rx = self.state.clone();
        loop {
            if let LeaseState::Lost(r) = &*rx.borrow_and_update() {
                return r.clone();
            }
            if rx.changed().await.is_err() {
                // the driver ended without a loss: released
                return std::future::pending().await;
            }
        }
    }

    /// Release: compare-and-delete on every held slot. `Err(LockError::Lost)` if the lease had
    /// already been lost (your critical section may have overlapped another holder's).
    pub async fn release(mut self) -> Result<(), LockError> {
        self.released = true;
        if let LeaseState::Lost(r) = &*self.state.borrow() {
            return Err(LockError::Lost(r.clone()));
        }
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(DriverCmd::Release(Some(tx))).is_err() {
            return match &*self.state.borrow() {
                LeaseState::Lost(r) => Err(LockError::Lost(r.clone())),
                _ => Ok(()),
            };
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(LockError::Lost(reason)),
            Err(_) => Err(LockError::Closed),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            // non-blocking: the driver releases in the background
            let _ = self.cmds.send(DriverCmd::Release(None));
        }
    }
}
