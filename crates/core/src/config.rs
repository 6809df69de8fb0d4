//! Validated configuration: lock names, holder ids, slot layouts and timing.
//!
//! Everything a user can get wrong is rejected here, at construction, with a [`ConfigError`] that
//! names the bad value and says what would be accepted. The machine never panics on config.

use std::time::Duration;

use crate::time::duration_nanos;

/// The longest lock name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// The longest holder id accepted, in bytes.
pub const MAX_HOLDER_LEN: usize = 100;
/// The most slots one lock may span.
pub const MAX_SLOTS: usize = 15;

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A lock name (or key prefix) was empty, too long, or contained a character outside the allowed
    /// set. Rename the lock: letters, digits and `. _ - / @ + =` are accepted, up to 200 bytes.
    #[error(
        "invalid {what} {value:?}: {problem}; use 1-{MAX_NAME_LEN} bytes of letters, digits and . _ - / @ + ="
    )]
    InvalidName {
        /// "lock name" or "key prefix".
        what: &'static str,
        /// The rejected value (truncated to 64 characters).
        value: String,
        /// What was wrong with it.
        problem: &'static str,
    },
    /// A holder id was empty, too long or contained whitespace or control characters. Use a short
    /// printable id such as `host-1/pid-42`.
    #[error(
        "invalid holder id {value:?}: {problem}; use 1-{MAX_HOLDER_LEN} printable non-space ASCII bytes"
    )]
    InvalidHolder {
        /// The rejected value (truncated to 64 characters).
        value: String,
        /// What was wrong with it.
        problem: &'static str,
    },
    /// A duration was zero, out of range, or inconsistent with another one. The message names the
    /// option and the bound it broke; change that option.
    #[error("invalid {option} = {value:?}: {problem}")]
    InvalidDuration {
        /// The option's name as in [`LockConfig`].
        option: &'static str,
        /// The rejected value.
        value: Duration,
        /// The bound it broke and what to do.
        problem: String,
    },
    /// The slot layout cannot form a majority (zero or an even number of slots, or too many).
    /// Use an odd number of instances (1, 3, 5, …) or `KeyMajority { k }` with `k >= 1`. Also
    /// returned for the rueidislock dialect with any layout but `KeyMajority { k }`: give the
    /// `k` of the rueidislock fleet's `KeyMajority`.
    #[error("invalid slot layout {layout:?}: {problem}")]
    InvalidLayout {
        /// The rejected layout.
        layout: SlotLayout,
        /// What was wrong with it.
        problem: &'static str,
    },
    /// The drift factor was not a finite number in `[0, 0.5)`. Redlock's recommendation is 0.01.
    #[error("invalid drift_factor = {0}: must be a finite number in [0, 0.5); 0.01 is usual")]
    InvalidDriftFactor(f64),
    /// [`LockConfig::replication`] asked `WAIT` for no replicas or for an absurd number, or was
    /// set together with the rueidislock dialect. Ask for 1 to 64 replicas, or leave
    /// `replication` unset to count writes without `WAIT`.
    #[error("invalid replication.replicas = {replicas}: {problem}")]
    InvalidReplicas {
        /// The rejected number.
        replicas: u32,
        /// What was wrong with it.
        problem: &'static str,
    },
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The per-slot wait (`slot_wait`, rueidislock's `TryNextAfter`) recommended for an observed reply
/// time (the slowest recent reply, or a measured p99.9): twice it, at least 1 ms. The one formula
/// behind the core's [`crate::AcquireError::SlowReplies`], the simulator's report and
/// `leasehold bench`.
#[must_use]
pub fn recommend_slot_wait(observed: Duration) -> Duration {
    (observed * 2).max(Duration::from_millis(1))
}

/// Check a lock name or key prefix. `what` names it in the error.
pub fn validate_name(what: &'static str, value: &str) -> Result<(), ConfigError> {
    let err = |problem| ConfigError::InvalidName {
        what,
        value: truncate(value),
        problem,
    };
    if value.is_empty() {
        return Err(err("it is empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(err("it is too long"));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || ".-_/@+=".contains(c);
    if !value.chars().all(ok) {
        return Err(err("it contains a forbidden character"));
    }
    Ok(())
}

/// A validated lock name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockName(String);

impl LockName {
    /// Validate `name`: 1-200 bytes of letters, digits and `. _ - / @ + =`.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        validate_name("lock name", &name)?;
        Ok(LockName(name))
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LockName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated holder id, written into every lock value so a dashboard can say who holds a lock.
/// Shared, not copied: every machine of a locker holds the same id, and cloning it is a count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HolderId(std::sync::Arc<str>);

impl HolderId {
    /// Validate `id`: 1-100 printable, non-space ASCII bytes.
    pub fn new(id: impl Into<String>) -> Result<Self, ConfigError> {
        let id = id.into();
        let err = |problem| ConfigError::InvalidHolder {
            value: truncate(&id),
            problem,
        };
        if id.is_empty() {
            return Err(err("it is empty"));
        }
        if id.len() > MAX_HOLDER_LEN {
            return Err(err("it is too long"));
        }
        if !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err(
                "it contains whitespace, control or non-ASCII characters",
            ));
        }
        Ok(HolderId(id.into()))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How one lock maps onto Redis keys ("slots") and how many of them make a quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotLayout {
    /// One key on one Redis deployment (N = 1, quorum 1).
    Single,
    /// `2k-1` keys on one deployment or cluster, held while `k` of them are held
    /// (rueidislock's `KeyMajority`). Each key has its own hash tag so a cluster spreads them.
    KeyMajority {
        /// Keys needed; `2k-1` keys are used.
        k: u8,
    },
    /// The same key on `n` independent Redis instances (Redlock), held on a majority `n/2+1`.
    Instances {
        /// Number of instances; must be odd.
        n: u8,
    },
}

impl SlotLayout {
    /// Number of slots (keys or instances).
    #[must_use]
    pub fn slots(self) -> usize {
        match self {
            SlotLayout::Single => 1,
            SlotLayout::KeyMajority { k } => (2 * usize::from(k)).saturating_sub(1),
            SlotLayout::Instances { n } => usize::from(n),
        }
    }

    /// Slots that must be held.
    #[must_use]
    pub fn quorum(self) -> usize {
        self.slots() / 2 + 1
    }

    /// Whether every slot lives on its own instance (so key names repeat across slots).
    #[must_use]
    pub fn one_key_per_instance(self) -> bool {
        !matches!(self, SlotLayout::KeyMajority { .. })
    }

    fn validate(self) -> Result<(), ConfigError> {
        let err = |problem| ConfigError::InvalidLayout {
            layout: self,
            problem,
        };
        match self {
            SlotLayout::Single => Ok(()),
            SlotLayout::KeyMajority { k: 0 } => Err(err("k must be at least 1")),
            SlotLayout::Instances { n: 0 } => Err(err("there must be at least one instance")),
            SlotLayout::Instances { n } if n % 2 == 0 => Err(err(
                "an even number of instances cannot form a strict majority; use an odd number",
            )),
            _ if self.slots() > MAX_SLOTS => Err(err("too many slots (at most 15)")),
            _ => Ok(()),
        }
    }
}

/// Which wire protocol a lock speaks: leasehold's own (keys with hash tags, `lh1:` values,
/// relative `PX` ttls, fence counters) or rueidislock's, for fleets that mix leasehold with
/// rueidislock/valkeylock clients on the same locks ([`crate::wire::compat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Leasehold's own layout and scripts ([`crate::wire`]).
    #[default]
    Leasehold,
    /// rueidislock's: keys `<prefix>:<i>:<name>`, a random value per attempt, `PXAT` expiry from
    /// the client's wall clock, no fence counter. Needs [`SlotLayout::KeyMajority`] (rueidislock's
    /// `KeyMajority`, equal on every client). What it gives up:
    /// [`crate::wire::compat::GIVEN_UP`].
    Rueidislock,
}

/// Timing and layout of one lock. Public fields; call [`LockConfig::validate`] (the machine does)
/// before use.
#[derive(Debug, Clone, PartialEq)]
pub struct LockConfig {
    /// Key prefix (default `leasehold`).
    pub prefix: String,
    /// Slots and quorum.
    pub layout: SlotLayout,
    /// Lease time-to-live written to Redis (`PX`). Whole milliseconds, at least 1 ms.
    pub ttl: Duration,
    /// How often a held lease is extended. `None` means `ttl / 3`.
    pub extend_interval: Option<Duration>,
    /// How long one acquire round waits for the slots' replies (rueidislock's `TryNextAfter`).
    /// Replies later than this are reported as [`crate::AcquireError::SlowReplies`].
    pub slot_wait: Duration,
    /// Clock drift allowance as a fraction of the ttl (Redlock: 0.01).
    pub drift_factor: f64,
    /// Fixed allowance subtracted from every validity window.
    pub drift_margin: Duration,
    /// Stop extending after holding this long in total (the Redlock spec's cap). `None`: no cap.
    pub hold_cap: Option<Duration>,
    /// First backoff ceiling of `wait` mode (full jitter: sleep uniform in `0..=ceiling`).
    pub backoff_min: Duration,
    /// Largest backoff ceiling of `wait` mode.
    pub backoff_max: Duration,
    /// How long a fence counter outlives its lock key (default 1 hour). Every script that writes a
    /// counter gives it a `PX` of `ttl + fence_retention`, so idle names do not pile up in Redis.
    /// Tokens stay monotonic after a counter expires because a new one starts from the server's
    /// `TIME` (see [`crate::wire::ACQUIRE`]); the retention only has to outlast how far the server
    /// clock may step back. At least 1 s, whole milliseconds.
    pub fence_retention: Duration,
    /// The wire protocol (default [`Dialect::Leasehold`]).
    pub dialect: Dialect,
    /// Count a grant, extension or fence write-back only once `WAIT` says this many replicas
    /// acknowledged it (see [`crate::replication`]). `None` (the default): no `WAIT`, writes
    /// count when the primary answers, as with any asynchronously replicated Redis.
    pub replication: Option<crate::replication::Replication>,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            prefix: "leasehold".to_owned(),
            layout: SlotLayout::Single,
            ttl: Duration::from_secs(10),
            extend_interval: None,
            slot_wait: Duration::from_millis(100),
            drift_factor: 0.01,
            drift_margin: Duration::from_millis(2),
            hold_cap: None,
            backoff_min: Duration::from_millis(2),
            backoff_max: Duration::from_millis(500),
            fence_retention: Duration::from_secs(3_600),
            dialect: Dialect::Leasehold,
            replication: None,
        }
    }
}

impl LockConfig {
    /// The extension interval in force (`ttl / 3` unless set).
    #[must_use]
    pub fn extend_every(&self) -> Duration {
        self.extend_interval.unwrap_or(self.ttl / 3)
    }

    /// `drift(ttl) + margin`: how much shorter than the ttl a lease is trusted locally.
    #[must_use]
    pub fn drift_allowance(&self) -> Duration {
        let drift_ns = (duration_nanos(self.ttl) as f64 * self.drift_factor).ceil() as u64;
        Duration::from_nanos(drift_ns) + self.drift_margin
    }

    /// The locally trusted part of one ttl: `ttl - drift(ttl) - margin`.
    #[must_use]
    pub fn validity_window(&self) -> Duration {
        self.ttl.saturating_sub(self.drift_allowance())
    }

    /// The ttl in whole milliseconds, as sent with `PX`.
    #[must_use]
    pub fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// The fence counter's retention in whole milliseconds (beyond the key's ttl).
    #[must_use]
    pub fn fence_keep_ms(&self) -> u64 {
        u64::try_from(self.fence_retention.as_millis()).unwrap_or(u64::MAX)
    }

    /// Check every field and their relations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_name("key prefix", &self.prefix)?;
        self.layout.validate()?;
        if self.dialect == Dialect::Rueidislock
            && !matches!(self.layout, SlotLayout::KeyMajority { .. })
        {
            return Err(ConfigError::InvalidLayout {
                layout: self.layout,
                problem: "the rueidislock dialect needs KeyMajority { k } (rueidislock's KeyMajority: keys <prefix>:0..2k-2:<name> on one deployment)",
            });
        }
        let bad = |option, value, problem: String| ConfigError::InvalidDuration {
            option,
            value,
            problem,
        };
        if !self.drift_factor.is_finite() || !(0.0..0.5).contains(&self.drift_factor) {
            return Err(ConfigError::InvalidDriftFactor(self.drift_factor));
        }
        if self.ttl < Duration::from_millis(1) {
            return Err(bad("ttl", self.ttl, "must be at least 1ms".into()));
        }
        if !self.ttl.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(bad(
                "ttl",
                self.ttl,
                "must be whole milliseconds (Redis PX precision)".into(),
            ));
        }
        if self.ttl > Duration::from_secs(86_400 * 365) {
            return Err(bad("ttl", self.ttl, "must be at most one year".into()));
        }
        let every = self.extend_every();
        if every.is_zero() {
            return Err(bad("extend_interval", every, "must be above zero".into()));
        }
        if every >= self.ttl {
            return Err(bad(
                "extend_interval",
                every,
                format!(
                    "must be shorter than ttl ({:?}) or the key lapses between extensions; ttl/3 is usual",
                    self.ttl
                ),
            ));
        }
        let window = self.validity_window();
        if every >= window {
            return Err(bad(
                "extend_interval",
                every,
                format!(
                    "must be shorter than the validity window ttl - drift - margin = {window:?}; lower it or the drift allowance"
                ),
            ));
        }
        if self.slot_wait.is_zero() {
            return Err(bad(
                "slot_wait",
                self.slot_wait,
                "must be above zero".into(),
            ));
        }
        if self.slot_wait >= self.ttl {
            return Err(bad(
                "slot_wait",
                self.slot_wait,
                format!(
                    "must be shorter than ttl ({:?}); a grant that arrives after the ttl is useless",
                    self.ttl
                ),
            ));
        }
        if let Some(cap) = self.hold_cap
            && cap < self.ttl
        {
            return Err(bad(
                "hold_cap",
                cap,
                format!("must be at least ttl ({:?})", self.ttl),
            ));
        }
        if self.fence_retention < Duration::from_secs(1)
            || self.fence_retention > Duration::from_secs(86_400 * 365)
            || !self
                .fence_retention
                .subsec_nanos()
                .is_multiple_of(1_000_000)
        {
            return Err(bad(
                "fence_retention",
                self.fence_retention,
                "must be whole milliseconds between 1s and one year; 1h is usual (it must outlast any backward step of the server clock)".into(),
            ));
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return Err(bad(
                "backoff_min",
                self.backoff_min,
                format!(
                    "must be above zero and at most backoff_max ({:?})",
                    self.backoff_max
                ),
            ));
        }
        if let Some(r) = &self.replication {
            if self.dialect == Dialect::Rueidislock {
                return Err(ConfigError::InvalidReplicas {
                    replicas: r.replicas,
                    problem: "the rueidislock dialect does not WAIT for replicas (rueidislock never does, and its keys carry no fence to confirm); leave replication unset with compat",
                });
            }
            r.validate(self.slot_wait)?;
        }
        Ok(())
    }
}
