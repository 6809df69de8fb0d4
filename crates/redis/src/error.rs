//! The adapter's error enum.

use leasehold_core::{AcquireError, ConfigError, LostReason};

/// Everything the Redis adapter can fail with.
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
    /// Redis refused our credentials or permissions (`WRONGPASS`, `NOAUTH`, `NOPERM`). Check the
    /// username and password in the URL and the user's ACL.
    #[error("Redis at {url} refused authentication: {detail}")]
    Auth {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What Redis said.
        detail: String,
    },
    /// The acquire failed; the typed reason says why (contention, slow replies, your deadline,
    /// unreachable instances).
    #[error("{0}")]
    Acquire(#[from] AcquireError),
    /// The lease was lost before the operation; the reason says why.
    #[error("lease lost: {0}")]
    Lost(LostReason),
    /// The locker's background tasks are gone (the runtime is shutting down).
    #[error("the locker is shut down")]
    Closed,
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
