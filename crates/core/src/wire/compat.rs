//! The rueidislock wire dialect ([`crate::Dialect::Rueidislock`]): rueidislock's key layout,
//! value, scripts and absolute expiry, so a leasehold holder and a rueidislock (or valkeylock)
//! holder of the same lock exclude each other and each sees the other's release.
//!
//! What the wire looks like (rueidis `rueidislock/lock.go`, as described in the project's
//! reference, section 1):
//!
//! - keys: `<prefix>:<i>:<name>` for `i` in `0..2K-1` (`K` = `KeyMajority`), no hash tag, no
//!   fence counter;
//! - value: random per attempt, the same on every key of the attempt, never parsed by anyone
//!   (leasehold writes its 64-bit nonce as 16 hex digits; rueidislock writes random bytes);
//! - expiry: absolute, `PXAT`/`PEXPIREAT` of the *client's* wall clock plus the ttl (`now + d`),
//!   so a client clock that is off shortens or lengthens the key's life on the server;
//! - scripts: [`ACQUIRE`] (`SET NX PXAT`), [`FORCE`] (`SET PXAT`), [`EXTEND`] (compare, then
//!   `PEXPIREAT`) and [`DELKEY`] (compare-and-delete), whose texts and replies are rueidislock's;
//!   the trailing `GET`s are rueidislock's way of making OPTOUT client tracking track the key.
//!   [`CHECK`] is leasehold's own: a read-only re-check after a key-change push (rueidislock
//!   re-runs `extend` with its current deadline there; a read writes nothing, so other clients
//!   are not woken by it).
//!
//! What the dialect gives up against leasehold's own layout is listed, typed, by
//! [`GivenUp`] ([`GIVEN_UP`]).

/// `SET k v NX PXAT at; GET k; return the SET reply`: `OK` granted, nil held (by anyone, us
/// included: a resent acquire whose first reply was lost finds its own value and says nil, as
/// rueidislock's does). `KEYS = [lock]`, `ARGV = [value, at_unix_ms]`.
pub const ACQUIRE: super::Script = super::Script {
    name: "rueidislock_acqat",
    source: r#"local r = redis.call("SET",KEYS[1],ARGV[1],"NX","PXAT",ARGV[2]);redis.call("GET",KEYS[1]);return r;"#,
};

/// [`ACQUIRE`] without `NX` (rueidislock's `ForceWithContext`): always `OK`.
pub const FORCE: super::Script = super::Script {
    name: "rueidislock_fcqat",
    source: r#"local r = redis.call("SET",KEYS[1],ARGV[1],"PXAT",ARGV[2]);redis.call("GET",KEYS[1]);return r;"#,
};

/// If the key holds our value, `PEXPIREAT k at` and return its reply (1); otherwise 0 (taken,
/// deleted or expired: the reply does not say which). `KEYS = [lock]`, `ARGV = [value, at_unix_ms]`.
pub const EXTEND: super::Script = super::Script {
    name: "rueidislock_extend",
    source: r#"if redis.call("GET",KEYS[1]) == ARGV[1] then local r = redis.call("PEXPIREAT",KEYS[1],ARGV[2]);redis.call("GET",KEYS[1]);return r;end;return 0;"#,
};

/// Compare-and-delete: 1 deleted, 0 not ours. `KEYS = [lock]`, `ARGV = [value]`. The same
/// semantics and reply as [`super::RELEASE`], so the machine's `Op::Release` runs it (several of
/// them on one standalone server go as one [`super::batch::RELEASE_BATCH`], the same
/// compare-and-delete per key).
pub const DELKEY: super::Script = super::Script {
    name: "rueidislock_delkey",
    source: r#"if redis.call("GET",KEYS[1]) == ARGV[1] then return redis.call("DEL",KEYS[1]) end;return 0;"#,
};

/// Leasehold's read-only re-check in this dialect: `{1}` still ours, `{0, value}` someone
/// else's, `{-1}` gone. `KEYS = [lock]`, `ARGV = [value]`. Writes nothing.
pub const CHECK: super::Script = super::Script {
    name: "rueidislock_check",
    source: r#"local cur = redis.call("GET",KEYS[1]);if cur == ARGV[1] then return {1} end;if cur then return {0, cur} end;return {-1};"#,
};

/// Every script of the dialect, for preloading.
pub const SCRIPTS: [super::Script; 5] = [ACQUIRE, FORCE, EXTEND, DELKEY, CHECK];

/// rueidislock's default key prefix.
pub const DEFAULT_PREFIX: &str = "rueidislock";

/// rueidislock's default `KeyMajority` (3 keys, 2 needed).
pub const DEFAULT_KEY_MAJORITY: u8 = 2;

/// The key of slot `i` of `name` under `prefix`: `<prefix>:<i>:<name>`.
#[must_use]
pub fn lock_key(prefix: &str, name: &str, i: usize) -> String {
    format!("{prefix}:{i}:{name}")
}

/// A rueidislock key read back: `(name, slot)`, or `None` for any other key under `prefix`.
/// The slot is digits and the name everything after the colon that follows them, so names a
/// rueidislock client chose with `:` in them parse too (leasehold's own names never have one);
/// the dashboard recognises rueidislock fleets' keys with it.
#[must_use]
pub fn parse_key<'k>(prefix: &str, key: &'k str) -> Option<(&'k str, usize)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(':')?;
    let (i, name) = rest.split_once(':')?;
    if name.is_empty() || i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, i.parse().ok()?))
}

/// Append the value of one attempt (`nonce` as 16 hex digits) to `out`.
pub fn write_value(out: &mut String, value: super::LeaseValue) {
    use std::fmt::Write as _;
    let _ = write!(out, "{:016x}", value.nonce);
}

/// The absolute expiry rueidislock sends: the client's wall clock `wall_ms` (Unix ms) plus the
/// ttl, saturating.
#[must_use]
pub fn expire_at(wall_ms: u64, ttl_ms: u64) -> u64 {
    wall_ms.saturating_add(ttl_ms)
}

impl crate::config::Dialect {
    /// The acquire operation of this dialect for one slot. `wall_ms` is the client's wall clock
    /// (Unix ms) at sending; leasehold's own dialect ignores it.
    #[must_use]
    pub fn acquire_op(
        self,
        config: &crate::LockConfig,
        value: super::LeaseValue,
        force: bool,
        wall_ms: u64,
    ) -> super::Op {
        match self {
            crate::Dialect::Leasehold => super::Op::Acquire {
                value,
                ttl_ms: config.ttl_ms(),
                force,
                keep_ms: config.fence_keep_ms(),
            },
            crate::Dialect::Rueidislock => super::Op::CompatAcquire {
                value,
                expire_at_ms: expire_at(wall_ms, config.ttl_ms()),
                force,
            },
        }
    }

    /// The extend operation of this dialect (see [`Self::acquire_op`] for `wall_ms`).
    #[must_use]
    pub fn extend_op(
        self,
        config: &crate::LockConfig,
        value: super::LeaseValue,
        wall_ms: u64,
    ) -> super::Op {
        match self {
            crate::Dialect::Leasehold => super::Op::Extend {
                value,
                ttl_ms: config.ttl_ms(),
                keep_ms: config.fence_keep_ms(),
            },
            crate::Dialect::Rueidislock => super::Op::CompatExtend {
                value,
                expire_at_ms: expire_at(wall_ms, config.ttl_ms()),
            },
        }
    }

    /// The read-only re-check of this dialect.
    #[must_use]
    pub fn check_op(self, value: super::LeaseValue) -> super::Op {
        match self {
            crate::Dialect::Leasehold => super::Op::Check { value },
            crate::Dialect::Rueidislock => super::Op::CompatCheck { value },
        }
    }

    /// Whether an acquired lease's token is written back to a majority: only where there are
    /// fence counters.
    #[must_use]
    pub fn has_fence(self) -> bool {
        self == crate::Dialect::Leasehold
    }
}

/// What a leasehold client gives up by speaking rueidislock's dialect instead of its own
/// layout. Each variant says what is lost and what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GivenUp {
    /// No fencing token: there is no counter on the wire, so a holder that paused past its
    /// lease can still write to the protected resource after the next holder did, and nothing
    /// rejects it. `Lease::fencing_token()` is `None`. Do not use the compat layout to guard a
    /// resource that needs fencing; migrate the fleet to leasehold's own layout instead.
    FencingToken,
    /// The key's expiry is an absolute instant from the writing client's wall clock
    /// (`PXAT now + ttl`): a client clock behind the server's shortens the key's life (by more
    /// than the ttl: the key is born expired), one ahead lengthens it, and a step of the wall
    /// clock between extensions moves it. Leasehold's own layout sends relative `PX`, judged on
    /// the server's clock. Keep every client's clock NTP-disciplined.
    ClientClockExpiry,
    /// No holder in the value: it is random per attempt, so `Contended` and the dashboard
    /// cannot say who holds the lock (leasehold's `lh1:<nonce>:<holder>` can).
    HolderIdentity,
    /// The extend reply is 0 for "taken", "deleted" and "expired" alike, so a lost lease says
    /// `Deleted` where leasehold's own layout can say `Taken` or `ServerRestarted`.
    LossCause,
    /// A resent acquire whose first reply was lost finds its own value, which `SET NX` answers
    /// with nil: the attempt fails and the key stays until its expiry (rueidislock's gap 7);
    /// leasehold's own acquire recognises its value and repeats the grant.
    IdempotentAcquire,
    /// One deployment only (no independent-instance majority), and `K` must equal every
    /// rueidislock Locker's `KeyMajority` of the same names, or the two sides can each hold a
    /// majority of different keys.
    MatchingKeyMajority,
}

/// Every cost of the rueidislock dialect, in order of weight.
pub const GIVEN_UP: [GivenUp; 6] = [
    GivenUp::FencingToken,
    GivenUp::ClientClockExpiry,
    GivenUp::HolderIdentity,
    GivenUp::LossCause,
    GivenUp::IdempotentAcquire,
    GivenUp::MatchingKeyMajority,
];

impl GivenUp {
    /// One line for humans (CLI help, logs).
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            GivenUp::FencingToken => {
                "no fencing token: a paused holder's late writes are not rejected"
            }
            GivenUp::ClientClockExpiry => {
                "expiry is PXAT from the client's wall clock: clock skew or steps change a key's life"
            }
            GivenUp::HolderIdentity => "values are random: nobody can tell who holds the lock",
            GivenUp::LossCause => {
                "a lost lease reports Deleted: the wire cannot say taken or expired"
            }
            GivenUp::IdempotentAcquire => {
                "an acquire retried after a lost reply fails and orphans the key until it expires"
            }
            GivenUp::MatchingKeyMajority => {
                "one deployment only, and K must equal every rueidislock Locker's KeyMajority"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_other_keys_do_not_parse() {
        let k = lock_key("rueidislock", "jobs", 2);
        assert_eq!(k, "rueidislock:2:jobs");
        assert_eq!(parse_key("rueidislock", &k), Some(("jobs", 2)));
        assert_eq!(
            parse_key("rueidislock", "rueidislock:10:a:b"),
            Some(("a:b", 10))
        );
        for other in [
            "rueidislock",
            "rueidislock:",
            "rueidislock:x:jobs",
            "rueidislock:1:",
            "rueidislock::jobs",
            "leasehold:{jobs}",
            "rueidislockx:1:jobs",
        ] {
            assert_eq!(parse_key("rueidislock", other), None, "{other}");
        }
    }

    #[test]
    fn value_is_the_nonce_in_hex_and_expiry_is_absolute() {
        let mut s = String::new();
        write_value(&mut s, super::super::LeaseValue { nonce: 0xab });
        assert_eq!(s, "00000000000000ab");
        assert_eq!(expire_at(1_700_000_000_000, 5_000), 1_700_000_005_000);
        assert_eq!(expire_at(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn scripts_use_one_key_and_absolute_expiry() {
        for s in SCRIPTS {
            assert!(s.source.contains("KEYS[1]"), "{}", s.name);
            assert!(!s.source.contains("KEYS[2]"), "{}", s.name);
            assert!(
                !s.source.contains("\"PX\""),
                "{} uses a relative ttl",
                s.name
            );
        }
        assert!(ACQUIRE.source.contains(r#""NX","PXAT""#));
        assert!(!FORCE.source.contains("NX"));
        assert!(EXTEND.source.contains("PEXPIREAT"));
        assert!(!CHECK.source.contains("SET") && !CHECK.source.contains("EXPIRE"));
        assert!(GIVEN_UP.iter().all(|g| !g.describe().is_empty()));
    }
}
