//! The adapter's error enum, and the classification of what Redis says into permanent errors
//! (fix the configuration; retrying cannot help) and transient ones (retried within the wait).

use leasehold_core::{AcquireError, ConfigError, LostReason, SlotErrorKind};

/// Everything the Redis adapter can fail with.
///
/// Permanent errors ([`LockError::is_permanent`]) come from a configuration Redis rejects:
/// retrying cannot help, fix what the message names. Transient ones (refused connections,
/// timeouts, resets) are retried within the caller's wait and end as [`LockError::Acquire`]
/// carrying the last cause.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// An option is invalid (a name, a duration, the layout). Fix the option named in the message.
    #[error("invalid option: {0}")]
    Config(#[from] ConfigError),
    /// A Redis URL could not be parsed or uses an unsupported scheme. Use
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` with the `tls` feature).
    #[error("invalid Redis URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The options are inconsistent (for instance key majority with several URLs). The message
    /// says which.
    #[error("invalid options: {0}")]
    Options(String),
    /// Two of the URLs reach the same Redis server: the same address twice, or different
    /// addresses whose servers report the same `run_id` (`INFO server`). A majority of "instances"
    /// that share a server is no majority: one failure takes several votes, and a holder's own
    /// release on one URL deletes the key the other URL granted. Give each server once.
    #[error("{first} and {second} are the same Redis server ({how}); give each instance once")]
    DuplicateInstance {
        /// The first URL (password hidden).
        first: String,
        /// The URL that repeats it (password hidden).
        second: String,
        /// How the duplicate was recognised: "the same address" or "the same run_id ...".
        how: String,
    },
    /// Redis refused our credentials (`WRONGPASS`, `NOAUTH`, an `AUTH` failure). Check the
    /// username and password in the URL.
    #[error("Redis at {url} refused authentication: {detail}")]
    Auth {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What Redis said.
        detail: String,
    },
    /// The ACL user may not run a command leasehold needs (`EVALSHA`/`EVAL`, `CLIENT`, `PING`)
    /// or may not touch the lock's keys (`NOPERM`). Grant them, e.g. `+@scripting +ping
    /// +client ~<prefix>:*`.
    #[error("Redis at {url} denied permission: {detail}")]
    Permission {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What Redis said.
        detail: String,
    },
    /// A key leasehold uses holds another type (`WRONGTYPE`), or the fence counter is not an
    /// integer: something else writes under the key prefix. Choose another prefix or lock name,
    /// or delete the foreign key.
    #[error("Redis at {url} has a key of the wrong type for this lock: {detail}")]
    WrongType {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What Redis said.
        detail: String,
    },
    /// The database number in the URL does not exist on the server (`redis://host/99` on a
    /// server with 16 databases), or the server (a cluster) has no databases to select. Use a
    /// number below the server's `databases` setting, or none.
    #[error("Redis at {url} rejected the database: {detail}")]
    BadDatabase {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What Redis said.
        detail: String,
    },
    /// The TLS handshake failed: the server's certificate was not trusted or did not match the
    /// host, or the server does not speak TLS. Trust its CA (`LockerOptions::tls_root_ca`), fix
    /// the host name, or use `redis://` for a plain server.
    #[error("TLS with {url} failed: {detail}")]
    Tls {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What the TLS layer said.
        detail: String,
    },
    /// The host name in the URL does not resolve. Fix the host name.
    #[error("unknown host in {url}: {detail}")]
    UnknownHost {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What the resolver said.
        detail: String,
    },
    /// The acquire failed; the typed reason says why (contention, slow replies, your deadline,
    /// unreachable instances). Transient: retrying later may succeed.
    #[error("{0}")]
    Acquire(#[from] AcquireError),
    /// The lease was lost before the operation; the reason says why.
    #[error("lease lost: {0}")]
    Lost(LostReason),
    /// The locker's background tasks are gone (the runtime is shutting down).
    #[error("the locker is shut down")]
    Closed,
    /// [`crate::Locker::placement`] could not learn where the keys live: not connected to
    /// `url` yet, or the cluster did not answer `CLUSTER SLOTS` (down, or a node unreachable).
    /// Transient: ask again later; the locks themselves are not affected.
    #[error("cannot tell where the keys live on {url}: {detail}")]
    Placement {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

impl LockError {
    /// Whether an acquire failed because replicas did not acknowledge its grant within
    /// [`crate::LockerOptions::replicas`]'s timeout (also as a passed deadline's last cause):
    /// the primary granted, the grant would not survive a failover, and its key was deleted.
    /// Transient: a replica is down, lagging or cut off.
    #[must_use]
    pub fn is_not_replicated(&self) -> bool {
        matches!(self, LockError::Acquire(e) if e.is_not_replicated())
    }

    /// Whether retrying cannot help: the configuration (URL, credentials, ACL, database, TLS,
    /// keys, options) must change first.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            LockError::Acquire(_)
                | LockError::Lost(_)
                | LockError::Closed
                | LockError::Placement { .. }
        )
    }
}

/// A permanent error for what Redis (or the transport) said about `url`, or `None` when the
/// error is transient (refused, reset, timeout, a busy or loading server) or unknown.
#[must_use]
pub(crate) fn permanent(url: &str, detail: &str) -> Option<LockError> {
    let has = |needles: &[&str]| needles.iter().any(|n| detail.contains(n));
    let url = url.to_owned();
    // the redis crate prints some codes its own way ("NoPerm: ..."): show Redis's spelling
    let detail = match detail.split_once("NoPerm: ") {
        Some((before, after)) => format!("{before}NOPERM {after}"),
        None => detail.to_owned(),
    };
    if has(&["NOPERM", "NoPerm"]) {
        Some(LockError::Permission { url, detail })
    } else if has(&[
        "WRONGPASS",
        "NOAUTH",
        "invalid password",
        "invalid username-password",
        "AuthenticationFailed",
        "Password authentication failed",
    ]) {
        Some(LockError::Auth { url, detail })
    } else if has(&["WRONGTYPE", "value is not an integer", "non-integer value"]) {
        Some(LockError::WrongType { url, detail })
    } else if has(&[
        "DB index is out of range",
        "invalid DB index",
        "SELECT is not allowed",
    ]) {
        Some(LockError::BadDatabase { url, detail })
    } else if has(&[
        "certificate",
        "UnknownIssuer",
        "NotValidForName",
        "InvalidCertificate",
        "HandshakeFailure",
        "CorruptMessage",
        "received corrupt message",
        "tls handshake",
    ]) {
        Some(LockError::Tls { url, detail })
    } else if has(&[
        "failed to lookup address",
        "Name or service not known",
        "nodename nor servname",
        "No address associated with hostname",
    ]) && !has(&["Temporary failure"])
    {
        Some(LockError::UnknownHost { url, detail })
    } else {
        None
    }
}

/// The permanent error behind a failed acquire round, when the slots Redis rejected
/// permanently are too many for a quorum ever to form (`rejected > slots - quorum`).
/// `url_of(slot)` names a slot's instance.
pub(crate) fn permanent_acquire(
    e: &AcquireError,
    slots: usize,
    url_of: impl Fn(usize) -> String,
) -> Option<LockError> {
    let AcquireError::QuorumUnreachable { quorum, errors, .. } = e else {
        return None;
    };
    let mut rejected: Vec<(usize, LockError)> = Vec::new();
    for (slot, err) in errors {
        if err.kind != SlotErrorKind::Server || rejected.iter().any(|(s, _)| s == slot) {
            continue;
        }
        if let Some(p) = permanent(&url_of(*slot), &err.detail) {
            rejected.push((*slot, p));
        }
    }
    if rejected.len() > slots.saturating_sub(*quorum) {
        rejected.into_iter().next().map(|(_, p)| p)
    } else {
        None
    }
}

/// Hide the password in a Redis URL for messages.
#[must_use]
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold_core::SlotError;

    #[test]
    fn redis_replies_are_classified_permanent_or_transient() {
        let p = |d: &str| permanent("redis://h:1", d);
        assert!(matches!(
            p("WRONGPASS invalid username-password pair or user is disabled."),
            Some(LockError::Auth { .. })
        ));
        assert!(matches!(
            p("NOAUTH Authentication required."),
            Some(LockError::Auth { .. })
        ));
        assert!(matches!(
            p("NOPERM this user has no permissions to run the 'evalsha' command"),
            Some(LockError::Permission { .. })
        ));
        assert!(matches!(
            p("NoPerm: this user has no permissions to run the 'evalsha' command"),
            Some(LockError::Permission { .. })
        ));
        assert!(matches!(
            p("WRONGTYPE Operation against a key holding the wrong kind of value"),
            Some(LockError::WrongType { .. })
        ));
        assert!(matches!(
            p("ERR DB index is out of range"),
            Some(LockError::BadDatabase { .. })
        ));
        assert!(matches!(
            p("invalid peer certificate: UnknownIssuer"),
            Some(LockError::Tls { .. })
        ));
        assert!(matches!(
            p("failed to lookup address information: Name or service not known"),
            Some(LockError::UnknownHost { .. })
        ));
        for transient in [
            "Connection refused (os error 111)",
            "Connection reset by peer (os error 104)",
            "timed out",
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script",
            "failed to lookup address information: Temporary failure in name resolution",
        ] {
            assert_eq!(p(transient), None, "{transient}");
        }
    }

    #[test]
    fn an_acquire_is_permanent_only_when_rejections_rule_out_a_quorum() {
        let wrongtype = SlotError::new(SlotErrorKind::Server, "WRONGTYPE Operation");
        let refused = SlotError::new(SlotErrorKind::Disconnected, "not connected");
        let url = |s: usize| format!("redis://h:{s}");
        let one = AcquireError::QuorumUnreachable {
            granted: 0,
            quorum: 1,
            errors: vec![(0, wrongtype.clone())],
        };
        assert!(matches!(
            permanent_acquire(&one, 1, url),
            Some(LockError::WrongType { .. })
        ));
        // 1 of 3 rejected, 1 unreachable: the unreachable one may come back
        let some = AcquireError::QuorumUnreachable {
            granted: 1,
            quorum: 2,
            errors: vec![(0, wrongtype.clone()), (1, refused)],
        };
        assert_eq!(permanent_acquire(&some, 3, url), None);
        let two = AcquireError::QuorumUnreachable {
            granted: 1,
            quorum: 2,
            errors: vec![(0, wrongtype.clone()), (2, wrongtype)],
        };
        assert!(permanent_acquire(&two, 3, url).is_some());
    }
}
