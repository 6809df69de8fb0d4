//! # leasehold-redis
//!
//! Drives the `leasehold-core` lease machine against real Redis with tokio and the `redis`
//! crate: single instance, key majority (2k-1 keys) or a majority of independent instances;
//! fencing tokens; auto-extension; loss notification at or before validity; push wake-ups via
//! RESP3 client tracking with a polling fallback; in-process queueing per lock name.
//!
//! ```no_run
//! # async fn demo() -> Result<(), leasehold_redis::LockError> {
//! use std::time::Duration;
//! use leasehold_redis::LockerOptions;
//!
//! let locker = LockerOptions::new("redis://127.0.0.1:6379").ttl(Duration::from_secs(10)).build().await?;
//! let lease = locker.lock("nightly-report", Duration::from_secs(30)).await?;
//! // pass the token with every write; the store rejects writes with lower tokens
//! println!("fencing token {}", lease.token());
//! tokio::select! {
//!     _ = async { /* the critical section */ } => lease.release().await?,
//!     reason = lease.lost() => eprintln!("lost the lock: {reason}"),
//! }
//! # Ok(()) }
//! ```
//!
//! Errors are typed ([`LockError`]). Permanent ones ([`LockError::is_permanent`]: credentials,
//! ACL permissions, a key of the wrong type, a missing database, TLS verification, an unknown
//! host, one server given twice, bad options) fail at once, whatever the wait, naming the cause
//! as Redis reported it. Transient ones (refused, timed out, reset, contended, slow) are retried
//! within the wait and end as [`LockError::Acquire`] with the last cause;
//! [`Locker::connection_errors`] adds what each unreachable instance last said.
//!
//! **Architecture invariant:** extension and loss logic live only in the core machine; this crate
//! only moves its commands to Redis and its events to the application.

mod acquire;
mod batch;
pub mod cell;
mod cluster;
mod compat;
mod confirm;
mod conn;
mod decode;
mod drive;
mod error;
mod keeper;
mod lease;
mod locker;
mod observe;
mod placement;
mod send;
mod sentinel;
mod sync;

pub use cluster::{cluster_url_from_seeds, connect_cluster, is_cluster_url, key_slot};
pub use compat::{Compat, GivenUp};
pub use conn::{Conn, WakeMode};
pub use error::{LockError, redact};
pub use lease::Lease;
pub use leasehold_core::replication::MAX_REPLICAS;
pub use leasehold_core::{AcquireError, LockConfig, LostReason, Replication};
pub use locker::{Locker, LockerOptions, RunOutcome, with_resp3};
pub use observe::LockEvent;
pub use placement::{KeyPlacement, Placement};
pub use sentinel::primary_url_of;
