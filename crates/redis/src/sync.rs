//! The usual loom shim (as tokio does): under `--cfg leasehold_loom` the in-process shared state
//! uses loom's primitives so `tests/loom_*.rs` can explore every interleaving; otherwise std's.

#[cfg(leasehold_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(leasehold_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Lock a mutex, recovering from poisoning (a panic elsewhere must not wedge the lock state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(leasehold_loom)]
    {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
    #[cfg(not(leasehold_loom))]
    {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
