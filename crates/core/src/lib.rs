//! # leasehold-core
//!
//! A pure, sans-IO lease lock for Redis. One [`Lock`] machine per lock name turns application
//! calls, slot replies, key-change notifications and the passage of time (all handed in by the
//! caller) into wire [`Command`]s and application [`Event`]s with typed outcomes:
//! [`AcquireError`] says whether a failed acquire met contention, slow replies, a passed caller
//! deadline or unreachable slots; [`LostReason`] says why a lease ended.
//!
//! **Architecture invariant:** this crate performs no I/O, never reads a clock, and draws no OS
//! randomness. Time comes in as [`Instant`]; randomness as a seed.
//!
//! The same machine is driven by the deterministic simulator (`leasehold-sim`) and by the Redis
//! adapter; the wire protocol ([`wire`]) is defined once, here.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
mod machine;
pub mod outcome;
#[cfg(feature = "planted-bugs")]
pub mod planted;
pub mod replication;
pub mod rng;
pub mod time;
pub mod wire;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::{
    ConfigError, Dialect, HolderId, LockConfig, LockName, SlotLayout, recommend_slot_wait,
};
pub use machine::{Lock, Phase, Stats};
pub use outcome::{AcquireError, AcquireMode, Event, LostReason, SlotSet, UsageError};
pub use replication::Replication;
pub use time::Instant;
pub use wire::{
    Command, ForceOutcome, LeaseValue, Op, Reply, RequestId, SlotError, SlotErrorKind, SlotKeys,
};
