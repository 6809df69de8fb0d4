//! The lease handle an application holds.

use leasehold_core::LostReason;
use tokio::sync::{mpsc, oneshot};

use crate::cell::{CellState, LeaseCell};
use crate::driver::DriverCmd;
use crate::error::LockError;

/// A held lease. Use [`Lease::token`] as the fencing token on every write to the protected
/// resource; watch [`Lease::lost`]; call [`Lease::release`]. Dropping it releases in the
/// background without blocking and without panicking.
#[derive(Debug)]
pub struct Lease {
    name: String,
    cell: LeaseCell,
    origin: tokio::time::Instant,
    cmds: mpsc::UnboundedSender<DriverCmd>,
}

impl Lease {
    pub(crate) fn new(
        name: String,
        cell: LeaseCell,
        origin: tokio::time::Instant,
        cmds: mpsc::UnboundedSender<DriverCmd>,
    ) -> Self {
        Lease {
            name,
            cell,
            origin,
            cmds,
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
        self.cell.snapshot().0
    }

    /// Until when the lease is trusted (moves forward with each extension). `None` once lost or
    /// released.
    #[must_use]
    pub fn valid_until(&self) -> Option<tokio::time::Instant> {
        match self.cell.snapshot().1 {
            CellState::Held { validity_ns } => {
                Some(self.origin + std::time::Duration::from_nanos(validity_ns))
            }
            _ => None,
        }
    }

    /// Whether the lease is still held (not lost, not released).
    #[must_use]
    pub fn is_held(&self) -> bool {
        matches!(self.cell.snapshot().1, CellState::Held { .. })
    }

    /// Resolves with the reason once the lease is lost, at or before its validity instant.
    /// Cancel-safe: dropping the future and calling again loses nothing. If the lease is released
    /// instead, it never resolves.
    pub async fn lost(&self) -> LostReason {
        self.cell.lost().await
    }

    /// Release: compare-and-delete on every held slot. `Err(LockError::Lost)` if the lease had
    /// already been lost (your critical section may have overlapped another holder's).
    pub async fn release(self) -> Result<(), LockError> {
        if let CellState::Lost(r) = self.cell.snapshot().1 {
            let _ = self.cell.request_release();
            return Err(LockError::Lost(r));
        }
        if !self.cell.request_release() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(DriverCmd::Release(Some(tx))).is_err() {
            return match self.cell.snapshot().1 {
                CellState::Lost(r) => Err(LockError::Lost(r)),
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
        if self.cell.request_release() {
            // non-blocking: the driver releases in the background
            let _ = self.cmds.send(DriverCmd::Release(None));
        }
    }
}
