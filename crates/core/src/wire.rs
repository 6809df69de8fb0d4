//! The wire protocol as data: key names, lock values, Lua scripts, the commands the machine emits
//! and the replies it accepts.
//!
//! The simulator's Redis model and the Redis adapter both execute *these* definitions, so the two
//! can never disagree about what a lock operation does. Every script touches one lock key and its
//! fence counter, which share a hash tag (`{...}`), so the scripts run on Redis Cluster; the
//! exceptions, [`batch::ACQUIRE_BATCH`] and [`batch::RELEASE_BATCH`], are only sent to one
//! standalone server that holds every slot.
//!
//! Key layout (prefix `leasehold`, lock `jobs`):
//! - one key per instance (`Single`, `Instances`): lock `leasehold:{jobs}`, fence `leasehold:{jobs}:fence`;
//! - key majority, slot `i`: lock `leasehold:{jobs#i}`, fence `leasehold:{jobs#i}:fence`.
//!
//! Lock value: `lh1:<16 hex digits of nonce>:<holder id>`.
//!
//! Keys in both directions (build and parse) and the event stream's fields: [`keys`].
//!
//! Key-change pushes: a locker's connection runs `CLIENT TRACKING ON NOLOOP` (default mode, as
//! rueidislock does): Redis tracks for a connection the keys its scripts *read*, and after a
//! write forgets them until they are read again. So every script that writes a lock key and
//! wants to hear of the next foreign change ends with a read of it (`PTTL`), after its write;
//! `NOLOOP` keeps our own script's write from notifying ourselves (Redis ≥ 7.0.5 applies it to
//! script writes in this mode; in `BCAST` mode it does not).
//!
//! A second dialect, rueidislock's (keys `<prefix>:<i>:<name>`, `PXAT` expiry, no fence counter),
//! for fleets shared with rueidislock clients: [`compat`], chosen by
//! [`crate::LockConfig::dialect`].

pub mod batch;
pub mod compat;
pub mod keys;

use std::time::Duration;

use crate::config::{Dialect, HolderId, LockConfig, LockName, SlotLayout};

/// Version tag that starts every lock value written by leasehold.
pub const VALUE_TAG: &str = "lh1";

/// A Lua script with a stable name (for logs and dashboards) and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    /// Short name, e.g. `acquire`.
    pub name: &'static str,
    /// Lua source, run with `EVALSHA` (falling back to `EVAL`/`SCRIPT LOAD` on `NOSCRIPT`).
    pub source: &'static str,
}

/// The fence-token rule, the one Lua text shared by every script that advances a counter
/// ([`ACQUIRE`], [`FORCE_RELEASE`]): the next token is `max(counter + 1, server TIME in µs)`,
/// stored back with a retention of `KEEP_MS` (a local the including script defines).
///
/// The `TIME` floor makes tokens survive the counter's loss (a restart without persistence, a
/// flush, an expired, lowered or hand-reset counter): a token handed out at server time `T` is at
/// most `T` plus however far the counter ran ahead of the clock, so a counter re-created later
/// starts above it. ARCHITECTURE.md ("Fence tokens") gives the argument and its assumptions.
/// Sets the Lua local `token` (a number, exact below 2^53; µs since 1970 are about 2^51).
macro_rules! next_token_lua {
    () => {
        r#"
local raw = redis.call('GET', KEYS[2])
local cur = 0
if raw then
  cur = tonumber(raw)
  if cur == nil or not string.find(raw, '^%-?%d+$') or cur >= 9007199254740992 then
    return redis.error_reply('leasehold: fence counter ' .. KEYS[2] .. ' holds a non-integer value (a counter is a whole number below 2^53); delete it (the next token is then taken from TIME)')
  end
end
local t = redis.call('TIME')
local token = math.max(cur + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
redis.call('SET', KEYS[2], string.format('%d', token), 'PX', KEEP_MS)
"#
    };
}

/// Acquire (or, with `ARGV[3] == "1"`, force) one slot.
///
/// `KEYS = [lock, fence]`, `ARGV = [value, ttl_ms, force, fence_keep_ms]`. Returns:
/// - `{1, token}`: granted; the token follows the fence-token rule: `max(counter + 1, server
///   TIME in µs)`, stored back in the counter with a retention of `ttl_ms + fence_keep_ms`. A
///   missing, expired, lowered or reset counter therefore never sends tokens backwards while the
///   server's clock does not step back by more than the retention. If the key already holds
///   *our* value (a resent script whose first reply was lost) the grant is repeated with the
///   current counter, instead of orphaning the key.
/// - `{0, holder_value, pttl}`: held by someone else.
///
/// Either way the lock key is read last, so the caller's connection hears of its next change
/// (see the module's note on pushes).
pub const ACQUIRE: Script = Script {
    name: "acquire",
    source: concat!(
        r#"
local KEEP_MS = tonumber(ARGV[2]) + tonumber(ARGV[4])
local mine = redis.call('GET', KEYS[1])
if mine == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], KEEP_MS)
  redis.call('PTTL', KEYS[1])
  return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
if mine and ARGV[3] ~= '1' then
  return {0, mine, redis.call('PTTL', KEYS[1])}
end"#,
        next_token_lua!(),
        r#"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PTTL', KEYS[1])
return {1, token}
"#
    ),
};

/// Extend one slot if it still holds our value.
///
/// `KEYS = [lock, fence]`, `ARGV = [value, ttl_ms, fence_keep_ms]`. Returns `{1}` extended (the
/// fence counter's retention is renewed too, so it outlives the lease), `{0, other_value}` taken
/// by someone else, `{-1, fence_exists}` key gone (`fence_exists == 0` means the server lost its
/// data: a restart without persistence or a flush). The key is read after the `PEXPIRE`, so the
/// holder's connection hears of the next foreign change.
pub const EXTEND: Script = Script {
    name: "extend",
    source: r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[3]))
  redis.call('PTTL', KEYS[1])
  return {1}
end
if cur then return {0, cur} end
return {-1, redis.call('EXISTS', KEYS[2])}
"#,
};

/// Check, without writing, that one slot still holds our value (a holder's re-check after a
/// key-change notification; its read keeps the key tracked, and writing nothing wakes no waiter).
///
/// `KEYS = [lock, fence]`, `ARGV = [value]`. Returns `{1}` still ours, `{0, other_value}`,
/// `{-1, fence_exists}` as [`EXTEND`] does.
pub const CHECK: Script = Script {
    name: "check",
    source: r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return {1} end
if cur then return {0, cur} end
return {-1, redis.call('EXISTS', KEYS[2])}
"#,
};

/// Delete one slot only if it holds our value. `KEYS = [lock]`, `ARGV = [value]`; returns 1 or 0.
pub const RELEASE: Script = Script {
    name: "release",
    source: r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
};

/// Raise a fence counter to at least `token` (written back to a majority before a multi-slot lease
/// is reported acquired, when its grants did not all carry that token). `KEYS = [fence]`, `ARGV = [token, keep_ms]`; the counter's retention
/// becomes `keep_ms` (the lease's ttl plus the fence retention); returns 1.
pub const RAISE_FENCE: Script = Script {
    name: "raise_fence",
    source: r#"
local raw = redis.call('GET', KEYS[1])
local cur = tonumber(raw or '0')
if cur == nil or (raw and not string.find(raw, '^%-?%d+$')) or cur >= 9007199254740992 then
  return redis.error_reply('leasehold: fence counter ' .. KEYS[1] .. ' holds a non-integer value (a counter is a whole number below 2^53); delete it (the next token is then taken from TIME)')
end
if cur < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"#,
};

/// An operator's force-release of exactly the lease they saw (the dashboard's `X`, the
/// simulator's force-release fault, any future tool): compare-and-delete, then advance the fence
/// by the fence-token rule, so the next holder's token is above the evicted one's even if that
/// next holder's acquire finds the counter gone.
///
/// `KEYS = [lock, fence]`, `ARGV = [expected_value, fence_keep_ms]`. Returns `{1, token}` deleted
/// and the counter advanced to `token`, `{0, current_value}` someone else's value is there now
/// (nothing was changed: the holder changed since the operator looked), `{-1}` the key is gone.
pub const FORCE_RELEASE: Script = Script {
    name: "force_release",
    source: concat!(
        r#"
local KEEP_MS = tonumber(ARGV[2])
local mine = redis.call('GET', KEYS[1])
if not mine then return {-1} end
if mine ~= ARGV[1] then return {0, mine} end
redis.call('DEL', KEYS[1])"#,
        next_token_lua!(),
        r#"return {1, token}
"#
    ),
};

/// Every script, for preloading.
pub const SCRIPTS: [Script; 6] = [ACQUIRE, EXTEND, CHECK, RELEASE, RAISE_FENCE, FORCE_RELEASE];

/// The random part of one acquisition's value. Every acquire round draws a fresh nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseValue {
    /// 64 random bits from the caller's seed.
    pub nonce: u64,
}

/// Identifies one request so its reply can be matched. Unique per machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// One operation on one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Run [`ACQUIRE`] (`force == false`) or force it (`force == true`).
    Acquire {
        /// Our value for this round.
        value: LeaseValue,
        /// `PX` in milliseconds.
        ttl_ms: u64,
        /// Overwrite another holder's value.
        force: bool,
        /// The fence counter's retention beyond the key's ttl, ms.
        keep_ms: u64,
    },
    /// Run [`EXTEND`].
    Extend {
        /// Our value.
        value: LeaseValue,
        /// New `PX` in milliseconds.
        ttl_ms: u64,
        /// The fence counter's retention beyond the key's ttl, ms.
        keep_ms: u64,
    },
    /// Run [`CHECK`] (read-only).
    Check {
        /// Our value.
        value: LeaseValue,
    },
    /// Run [`RELEASE`].
    Release {
        /// Our value.
        value: LeaseValue,
    },
    /// Run [`RAISE_FENCE`].
    RaiseFence {
        /// The token chosen for the lease.
        token: u64,
        /// The counter's retention from now, ms (the lease's ttl plus the fence retention).
        keep_ms: u64,
    },
    /// rueidislock dialect: run [`compat::ACQUIRE`] (`force == false`) or [`compat::FORCE`].
    /// Granted is [`Reply::GrantedUnfenced`]; `Op::Release` releases it ([`compat::DELKEY`]).
    CompatAcquire {
        /// Our value for this attempt.
        value: LeaseValue,
        /// `PXAT`: the client's wall clock at sending plus the ttl, Unix ms ([`compat::expire_at`]).
        expire_at_ms: u64,
        /// Overwrite another holder's value (`SET` without `NX`).
        force: bool,
    },
    /// rueidislock dialect: run [`compat::EXTEND`] (`PEXPIREAT`).
    CompatExtend {
        /// Our value.
        value: LeaseValue,
        /// `PEXPIREAT`: the client's wall clock at sending plus the ttl, Unix ms.
        expire_at_ms: u64,
    },
    /// rueidislock dialect: run [`compat::CHECK`] (read-only).
    CompatCheck {
        /// Our value.
        value: LeaseValue,
    },
    /// Run [`FORCE_RELEASE`]: an operator evicts exactly this value. Never emitted by [`crate::Lock`];
    /// tools (the dashboard, the simulator's operator) build it from the value they saw.
    ForceRelease {
        /// The value the operator saw.
        value: LeaseValue,
        /// The counter's retention from now, ms.
        keep_ms: u64,
    },
    /// Run Redis's `WAIT replicas timeout_ms` (not a script): block until `replicas` replicas
    /// acknowledged every write this connection made so far, or `timeout_ms` passed, and reply
    /// with how many did ([`Reply::Acked`]). Emitted by [`crate::Lock`] only with
    /// [`crate::LockConfig::replication`] set, directly after each grant, extension and fence
    /// write-back on the same slot; a driver must send it on the *same connection, in order
    /// after that write* (one pipeline: a `WAIT` on another connection, or before a script the
    /// driver re-sends on `NOSCRIPT`, would confirm nothing). See [`crate::replication`].
    Wait {
        /// `numreplicas`: how many replicas must acknowledge.
        replicas: u32,
        /// `timeout` in milliseconds (never 0: `WAIT n 0` blocks forever).
        timeout_ms: u64,
    },
}

impl Op {
    /// The script that performs this operation (`None` for [`Op::Wait`], a plain command).
    #[must_use]
    pub fn script(&self) -> Option<Script> {
        match self {
            Op::Acquire { .. } => Some(ACQUIRE),
            Op::Extend { .. } => Some(EXTEND),
            Op::Check { .. } => Some(CHECK),
            Op::Release { .. } => Some(RELEASE),
            Op::RaiseFence { .. } => Some(RAISE_FENCE),
            Op::ForceRelease { .. } => Some(FORCE_RELEASE),
            Op::CompatAcquire { force: false, .. } => Some(compat::ACQUIRE),
            Op::CompatAcquire { force: true, .. } => Some(compat::FORCE),
            Op::CompatExtend { .. } => Some(compat::EXTEND),
            Op::CompatCheck { .. } => Some(compat::CHECK),
            Op::Wait { .. } => None,
        }
    }

    /// Whether this operation's script, answering `reply`, wrote the slot's lock key (a change
    /// Redis reports to every other connection that read the key since its last change).
    #[must_use]
    pub fn wrote_lock_key(&self, reply: &Reply) -> bool {
        matches!(
            (self, reply),
            (Op::Acquire { .. }, Reply::Granted { .. })
                | (Op::Extend { .. }, Reply::Extended)
                | (Op::Release { .. }, Reply::Released { deleted: true })
                | (
                    Op::ForceRelease { .. },
                    Reply::ForceReleased(ForceOutcome::Deleted { .. })
                )
                | (Op::CompatAcquire { .. }, Reply::GrantedUnfenced)
                | (Op::CompatExtend { .. }, Reply::Extended)
        )
    }

    /// Whether the caller's connection tracks the lock key after this operation's script
    /// answered `reply` (`None`: the script does not touch the lock key). Every script ends
    /// with a read of the key (see the module's note on pushes), except a compare-and-delete
    /// that deleted it.
    #[must_use]
    pub fn tracks_lock_key(&self, reply: &Reply) -> Option<bool> {
        match (self, reply) {
            (Op::RaiseFence { .. } | Op::Wait { .. }, _) => None,
            (Op::Release { .. }, Reply::Released { deleted: true })
            | (Op::ForceRelease { .. }, Reply::ForceReleased(ForceOutcome::Deleted { .. })) => {
                Some(false)
            }
            _ => Some(true),
        }
    }

    /// Whether the machine must have this write acknowledged by replicas (with
    /// [`crate::LockConfig::replication`] set): a grant, an extension or a fence write-back.
    /// Releases and checks are not confirmed (a release that is lost in a failover only delays
    /// the next holder by the key's ttl).
    #[must_use]
    pub fn needs_replication(&self) -> bool {
        matches!(
            self,
            Op::Acquire { .. } | Op::Extend { .. } | Op::RaiseFence { .. }
        )
    }

    /// The lock value this operation carries (`None` for [`Op::RaiseFence`], [`Op::Wait`]). Exhaustive, so a
    /// driver that renders values cannot forget an operation.
    #[must_use]
    pub fn value(&self) -> Option<LeaseValue> {
        match *self {
            Op::Acquire { value, .. }
            | Op::Extend { value, .. }
            | Op::Check { value }
            | Op::Release { value }
            | Op::ForceRelease { value, .. }
            | Op::CompatAcquire { value, .. }
            | Op::CompatExtend { value, .. }
            | Op::CompatCheck { value } => Some(value),
            Op::RaiseFence { .. } | Op::Wait { .. } => None,
        }
    }

    /// Short name for traces.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Op::Acquire { force: false, .. } => "acquire",
            Op::Acquire { force: true, .. } => "force",
            Op::Extend { .. } => "extend",
            Op::Check { .. } => "check",
            Op::Release { .. } => "release",
            Op::RaiseFence { .. } => "raise_fence",
            Op::ForceRelease { .. } => "force_release",
            Op::CompatAcquire { force: false, .. } => "acqat",
            Op::CompatAcquire { force: true, .. } => "fcqat",
            Op::CompatExtend { .. } => "extend_at",
            Op::CompatCheck { .. } => "check_compat",
            Op::Wait { .. } => "wait",
        }
    }
}

/// A request the caller must send to slot `slot` and whose reply it must feed back with
/// [`crate::Lock::handle_reply`] under the same `request` id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// Matches the reply.
    pub request: RequestId,
    /// Which slot (index into [`SlotKeys`]).
    pub slot: usize,
    /// What to run there.
    pub op: Op,
}

/// Why a slot could not answer. `detail` is free text from the transport or server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct SlotError {
    /// The class of failure.
    pub kind: SlotErrorKind,
    /// What the transport or server said.
    pub detail: String,
}

impl SlotError {
    /// A slot error of `kind` with a detail message.
    pub fn new(kind: SlotErrorKind, detail: impl Into<String>) -> Self {
        SlotError {
            kind,
            detail: detail.into(),
        }
    }
}

/// Classes of slot failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotErrorKind {
    /// The connection is down or was reset before the reply came.
    Disconnected,
    /// The server answered with an error (`-ERR`, `READONLY`, `WRONGTYPE`, `NOSCRIPT` twice, …).
    Server,
    /// The server answered something the protocol does not allow: a corrupt lock value or
    /// fence counter, or a reply of the wrong shape.
    Corrupt,
    /// The write succeeded on the primary but `WAIT` ([`Op::Wait`]) reported fewer replicas
    /// than [`crate::LockConfig::replication`] asks for within its timeout: the write would not
    /// survive a failover, so the slot is not counted (and a grant is released). Transient:
    /// a replica is down, lagging or partitioned; the next round or extension tries again.
    NotReplicated,
}

impl std::fmt::Display for SlotErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlotErrorKind::Disconnected => "disconnected",
            SlotErrorKind::Server => "server error",
            SlotErrorKind::Corrupt => "corrupt reply",
            SlotErrorKind::NotReplicated => "not replicated",
        })
    }
}

/// A decoded reply to one [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Acquire: granted with this fence counter value.
    Granted {
        /// The slot's fence counter after the increment.
        token: u64,
    },
    /// Acquire in the rueidislock dialect: granted, and there is no fence counter, so no token
    /// (see [`compat::GivenUp::FencingToken`]).
    GrantedUnfenced,
    /// Acquire: someone else holds the slot.
    Held {
        /// Holder id parsed from the other value, if it is a leasehold value.
        holder: Option<String>,
        /// Remaining ttl the server reported, if any.
        remaining: Option<Duration>,
    },
    /// Extend: our key was extended.
    Extended,
    /// Check: the key still holds our value (nothing was written).
    StillHeld,
    /// Extend or check: the key holds another value now.
    NotOwner {
        /// Holder id parsed from the other value, if it is a leasehold value.
        holder: Option<String>,
    },
    /// Extend or check: the key is gone. `fence_present == false` means the server lost its data.
    Missing {
        /// Whether the fence counter still exists.
        fence_present: bool,
    },
    /// Release: `deleted` says whether our value was still there.
    Released {
        /// The key held our value and was deleted.
        deleted: bool,
    },
    /// Raise fence: done.
    FenceRaised,
    /// Force-release: what happened.
    ForceReleased(ForceOutcome),
    /// Wait ([`Op::Wait`]): this many replicas acknowledged the connection's writes so far.
    Acked(u32),
    /// The slot failed to answer.
    Error(SlotError),
}

/// What an operator's [`FORCE_RELEASE`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForceOutcome {
    /// The value seen was still there: deleted, and the fence counter advanced to `token`.
    Deleted {
        /// The counter after the advance.
        token: u64,
    },
    /// Another value is there now (the lock changed hands since the operator looked); nothing
    /// was changed.
    Changed {
        /// Holder id parsed from the current value, if it is a leasehold value.
        holder: Option<String>,
    },
    /// The key is gone (released or expired); nothing was changed.
    Gone,
}

/// The Redis key names of every slot of one lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotKeys {
    lock: Vec<String>,
    fence: Vec<String>,
}

impl SlotKeys {
    /// Keys for `name` as `config` lays them out (its prefix, layout and dialect). In the
    /// rueidislock dialect the keys are `<prefix>:<i>:<name>` and there are no fence keys
    /// ([`SlotKeys::fence_key`] is empty).
    #[must_use]
    pub fn for_config(config: &LockConfig, name: &LockName) -> Self {
        match config.dialect {
            Dialect::Leasehold => SlotKeys::new(&config.prefix, name, config.layout),
            Dialect::Rueidislock => SlotKeys {
                lock: (0..config.layout.slots())
                    .map(|i| compat::lock_key(&config.prefix, name.as_str(), i))
                    .collect(),
                fence: vec![String::new(); config.layout.slots()],
            },
        }
    }

    /// Keys for `name` under `prefix` in `layout` (leasehold's own dialect).
    #[must_use]
    pub fn new(prefix: &str, name: &LockName, layout: SlotLayout) -> Self {
        let n = layout.slots();
        let mut lock = Vec::with_capacity(n);
        let mut fence = Vec::with_capacity(n);
        for i in 0..n {
            let slot = (!layout.one_key_per_instance()).then_some(i);
            let key = keys::lock_key(prefix, name.as_str(), slot);
            fence.push(keys::fence_key_of(&key));
            lock.push(key);
        }
        SlotKeys { lock, fence }
    }

    /// The lock key of `slot`.
    #[must_use]
    pub fn lock_key(&self, slot: usize) -> &str {
        self.lock.get(slot).map_or("", String::as_str)
    }

    /// The fence counter key of `slot`.
    #[must_use]
    pub fn fence_key(&self, slot: usize) -> &str {
        self.fence.get(slot).map_or("", String::as_str)
    }

    /// Number of slots.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock.len()
    }

    /// Whether there are no slots (never, for a validated layout).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock.is_empty()
    }
}

/// Append the lock value for `nonce` and `holder` to `out`: `lh1:<nonce hex>:<holder>`.
pub fn write_value(out: &mut String, value: LeaseValue, holder: &HolderId) {
    // by hand, not `write!`: rendered for every request on the adapter's hot path
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(VALUE_TAG.len() + 18 + holder.as_str().len());
    out.push_str(VALUE_TAG);
    out.push(':');
    for shift in (0..16).rev() {
        out.push(char::from(
            HEX[((value.nonce >> (shift * 4)) & 0xf) as usize],
        ));
    }
    out.push(':');
    out.push_str(holder.as_str());
}

/// The lock value for `nonce` and `holder` as a new string.
#[must_use]
pub fn render_value(value: LeaseValue, holder: &HolderId) -> String {
    let mut s = String::with_capacity(24 + holder.as_str().len());
    write_value(&mut s, value, holder);
    s
}

/// A lock value found in Redis, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedValue {
    /// A leasehold value.
    Leasehold {
        /// The nonce of the acquisition.
        nonce: u64,
        /// Who holds it.
        holder: String,
    },
    /// Anything else (another library's value, or corruption), kept raw for display.
    Foreign(String),
}

/// Decode a value found under a lock key. Never fails: unknown formats come back as
/// [`ParsedValue::Foreign`] with invalid UTF-8 replaced.
#[must_use]
pub fn parse_value(raw: &[u8]) -> ParsedValue {
    let text = String::from_utf8_lossy(raw);
    let mut parts = text.splitn(3, ':');
    if let (Some(VALUE_TAG), Some(nonce), Some(holder)) = (parts.next(), parts.next(), parts.next())
        && nonce.len() == 16
        && !holder.is_empty()
        && let Ok(nonce) = u64::from_str_radix(nonce, 16)
    {
        return ParsedValue::Leasehold {
            nonce,
            holder: holder.to_owned(),
        };
    }
    ParsedValue::Foreign(text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_rendered_by_hand_are_the_documented_format() {
        let holder = HolderId::new("host-1/pid:42").unwrap();
        for nonce in [
            0,
            1,
            0xabc,
            0x0123_4567_89ab_cdef,
            u64::MAX,
            0x8000_0000_0000_0000,
        ] {
            let mut out = String::from("x");
            write_value(&mut out, LeaseValue { nonce }, &holder);
            assert_eq!(out, format!("x{VALUE_TAG}:{nonce:016x}:host-1/pid:42"));
        }
    }

    #[test]
    fn keys_share_a_hash_tag_per_slot() {
        let name = LockName::new("jobs").unwrap();
        let single = SlotKeys::new("leasehold", &name, SlotLayout::Instances { n: 3 });
        assert_eq!(single.lock_key(2), "leasehold:{jobs}");
        assert_eq!(single.fence_key(2), "leasehold:{jobs}:fence");
        let km = SlotKeys::new("lh", &name, SlotLayout::KeyMajority { k: 2 });
        assert_eq!(km.len(), 3);
        assert_eq!(km.lock_key(1), "lh:{jobs#1}");
        assert_eq!(km.fence_key(1), "lh:{jobs#1}:fence");
        assert_eq!(km.lock_key(9), "");
    }

    #[test]
    fn values_round_trip_and_foreign_values_stay_raw() {
        let holder = HolderId::new("host-1/pid:42").unwrap();
        let v = render_value(LeaseValue { nonce: 0xabc }, &holder);
        assert_eq!(v, "lh1:0000000000000abc:host-1/pid:42");
        assert_eq!(
            parse_value(v.as_bytes()),
            ParsedValue::Leasehold {
                nonce: 0xabc,
                holder: "host-1/pid:42".into()
            }
        );
        assert_eq!(
            parse_value(b"lh1:zz:x"),
            ParsedValue::Foreign("lh1:zz:x".into())
        );
        assert_eq!(
            parse_value(&[0xff, b'a']),
            ParsedValue::Foreign("\u{fffd}a".into())
        );
    }

    #[test]
    fn every_script_touches_keys_only_through_keys_array() {
        for s in SCRIPTS {
            assert!(!s.source.contains("KEYS[3]"), "{} uses a third key", s.name);
            assert!(s.source.contains("KEYS[1]"), "{} uses no key", s.name);
        }
    }
}
