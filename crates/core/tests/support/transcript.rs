//! Helpers of the transcript tests (`core_transcript*.rs`), included by `#[path]`: a machine
//! with the tests' configuration, and its commands and events drained as short strings.
#![allow(dead_code)] // each including test file uses its own subset
#![allow(clippy::unwrap_used)] // test helpers

use std::time::Duration;

use leasehold_core::{
    Event, HolderId, Instant, Lock, LockConfig, LockName, Reply, SlotError, SlotErrorKind,
    SlotLayout,
};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn config(layout: SlotLayout) -> LockConfig {
    LockConfig {
        layout,
        ttl: ms(3_000),
        extend_interval: Some(ms(1_000)),
        slot_wait: ms(20),
        drift_factor: 0.01,
        drift_margin: ms(2),
        ..LockConfig::default()
    }
}

pub fn lock(layout: SlotLayout) -> Lock {
    Lock::new(
        config(layout),
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap()
}

/// Drain commands as short strings: `slot:op`.
pub fn sent(l: &mut Lock) -> Vec<(String, leasehold_core::RequestId)> {
    std::iter::from_fn(|| l.poll_command())
        .map(|c| (format!("{}:{}", c.slot, c.op.name()), c.request))
        .collect()
}

pub fn names(v: &[(String, leasehold_core::RequestId)]) -> Vec<&str> {
    v.iter().map(|(s, _)| s.as_str()).collect()
}

pub fn events(l: &mut Lock) -> Vec<Event> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

pub const T0: Instant = Instant::from_millis(10_000);

/// A slot's "held by someone else" reply.
pub fn held(holder: Option<&str>, remaining: Option<Duration>) -> Reply {
    Reply::Held {
        holder: holder.map(Into::into),
        remaining,
    }
}

/// A slot's server error reply (`ERR <what>`).
pub fn server_error(what: &str) -> Reply {
    Reply::Error(SlotError::new(SlotErrorKind::Server, format!("ERR {what}")))
}
