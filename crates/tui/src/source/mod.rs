//! Sources: tasks that read the world and send the model [`crate::model::Input`]s. The model and
//! the view never do I/O; everything that touches Redis is here and in [`crate::scan`].
//!
//! - [`redis`]: the live Redis source (reconnects, client-tracking pushes, paced passes, server
//!   stats, the events stream).
//! - [`cluster`]: a Redis Cluster: one [`redis`] source per primary within one budget, rows
//!   merged from every primary's keys.
//! - [`release`]: the force-release: compare-and-delete of exactly the values shown.
//! - [`sim`]: a recorded simulator seed for `watch --scenario`/`--replay`.

pub mod cluster;
pub mod redis;
pub mod release;
pub mod sim;

use thiserror::Error;

use crate::layout::LockRow;
use crate::model::{Input, ScanFigures};

/// Send the UI one snapshot: the rows, the commands sent since the last one, the round trip, and
/// the scan's figures. False once the UI has gone.
pub(crate) fn send_rows(
    tx: &tokio::sync::mpsc::UnboundedSender<Input>,
    rows: Vec<LockRow>,
    commands: u64,
    rtt: std::time::Duration,
    figures: ScanFigures,
) -> bool {
    tx.send(Input::Snapshot {
        rows,
        commands,
        rtt,
    })
    .is_ok()
        && tx.send(Input::Scan(figures)).is_ok()
}

/// What went wrong talking to Redis, for the status line (URLs are redacted).
#[derive(Debug, Error)]
pub enum SourceError {
    /// The URL does not parse.
    #[error("invalid --redis {url}: {source}")]
    BadUrl {
        /// The redacted URL.
        url: String,
        /// The parser's complaint.
        source: ::redis::RedisError,
    },
    /// Connecting failed (refused, timed out, authentication).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The redacted URL.
        url: String,
        /// Redis's error.
        source: ::redis::RedisError,
    },
    /// A command failed (connection lost, timeout, a script error).
    #[error("{0}")]
    Redis(#[from] ::redis::RedisError),
}

/// The server `url` names now: itself, or for a `redis+sentinel://` URL the primary its Sentinels
/// name at this moment (asked again on every reconnect, so a failover is followed).
///
/// # Errors
/// [`SourceError::BadUrl`] when the Sentinel URL does not parse or no Sentinel names a primary.
pub async fn resolve(url: &str) -> Result<String, SourceError> {
    leasehold_redis::primary_url_of(url)
        .await
        .map_err(|reason| SourceError::BadUrl {
            url: leasehold_redis::redact(url),
            source: ::redis::RedisError::from((::redis::ErrorKind::Client, "Sentinel", reason)),
        })
}

/// A connection to `url` (resolved by [`resolve`]) with 2 s connect and response timeouts;
/// errors name the redacted URL.
///
/// # Errors
/// [`SourceError::BadUrl`] or [`SourceError::Connect`].
pub async fn connect(url: &str) -> Result<::redis::aio::MultiplexedConnection, SourceError> {
    let shown = leasehold_redis::redact(url);
    let url = resolve(url).await?;
    let client = ::redis::Client::open(url).map_err(|source| SourceError::BadUrl {
        url: shown.clone(),
        source,
    })?;
    let cfg = ::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
        .set_response_timeout(Some(std::time::Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|source| SourceError::Connect { url: shown, source })
}
