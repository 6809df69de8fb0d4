//! [`Compat`]: speak another lock library's wire protocol, so a fleet can mix leasehold with
//! that library's clients on the same locks ([`crate::LockerOptions::compat`]).

use leasehold_core::wire::compat::{DEFAULT_KEY_MAJORITY, DEFAULT_PREFIX, GIVEN_UP};
use leasehold_core::{Dialect, Lock};

use crate::locker::{LockerOptions, Shared};

pub use leasehold_core::wire::compat::GivenUp;

/// A foreign wire protocol a [`crate::Locker`] can speak instead of leasehold's own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compat {
    /// rueidislock (and valkeylock): keys `<prefix>:<i>:<name>` for `i` in `0..2K-1`, a
    /// random value per attempt, `PXAT`/`PEXPIREAT` expiry from this process's wall clock,
    /// rueidislock's acquire/extend/delete scripts, no fence counter. A leasehold holder then
    /// excludes rueidislock waiters and the reverse, and each side notices the other's release
    /// through client tracking. Needs Redis 6.2 or later (`PXAT`), like rueidislock without
    /// `FallbackSETPX` (fleets on that fallback are not supported). See [`Compat::gives_up`]
    /// for what this costs.
    Rueidislock {
        /// rueidislock's `KeyMajority` (`K`, 1-8): `2K-1` keys, `K` needed. It must be the
        /// same on every client of a name, rueidislock's included (default 2).
        key_majority: u8,
        /// rueidislock's `KeyPrefix` (default `rueidislock`).
        prefix: String,
    },
}

impl Compat {
    /// rueidislock with its defaults: `KeyMajority` 2, prefix `rueidislock`.
    #[must_use]
    pub fn rueidislock() -> Self {
        Compat::Rueidislock {
            key_majority: DEFAULT_KEY_MAJORITY,
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    /// What a locker gives up by speaking this protocol instead of leasehold's own, most
    /// important first: no fencing token ([`crate::Lease::fencing_token`] is `None`), expiry
    /// from the client's wall clock, no holder identity, a less precise loss cause, a
    /// non-idempotent acquire, and a `K` that must match the other clients'.
    #[must_use]
    pub fn gives_up(&self) -> &'static [GivenUp] {
        match self {
            Compat::Rueidislock { .. } => &GIVEN_UP,
        }
    }
}

impl LockerOptions {
    /// Speak another library's wire protocol instead of leasehold's own, so this locker and
    /// that library's clients exclude each other on the same lock names. Sets the key layout
    /// (`key_majority`), the prefix and the dialect; keep one URL (the deployment the other
    /// clients use). What this costs is [`Compat::gives_up`]: above all, no fencing token.
    #[must_use]
    pub fn compat(mut self, compat: Compat) -> Self {
        match compat {
            Compat::Rueidislock {
                key_majority,
                prefix,
            } => {
                self.key_majority = Some(key_majority);
                self.lock.prefix = prefix;
                self.lock.dialect = Dialect::Rueidislock;
            }
        }
        self
    }
}

impl Shared {
    /// Give `lock` this process's wall clock now, for the rueidislock dialect's absolute
    /// expiries (rueidislock reads the wall clock at every acquire and extension; so do we).
    pub fn stamp_wall_clock(&self, lock: &mut Lock) {
        if lock.config().dialect == Dialect::Leasehold {
            return;
        }
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        lock.set_wall_clock(self.core_now(), unix_ms);
    }
}
