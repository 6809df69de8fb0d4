//! The bench's own connections, to one Redis or to a Redis Cluster: the floor's commands, `PING`,
//! and the per-primary reads (cleanup, `INFO commandstats`) go through [`Conn`], so every phase
//! runs unchanged on either topology.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::BenchError;

/// A connection the bench sends its own commands on: one server's multiplexed connection, or the
/// cluster client (routes each command by its key, follows `MOVED`/`ASK`). The adapter's own
/// type, so both speak `redis::aio::ConnectionLike` the same way.
pub use leasehold_redis::Conn;

fn connect_err(url: &str) -> impl Fn(String) -> BenchError + '_ {
    move |detail| BenchError::Connect {
        url: leasehold_redis::redact(url),
        detail,
    }
}

/// One server's connection (2 s to connect, 5 s per reply).
pub(crate) async fn single(url: &str) -> Result<MultiplexedConnection, BenchError> {
    let err = connect_err(url);
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    redis::Client::open(url)
        .map_err(|e| err(e.to_string()))?
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| err(e.to_string()))
}

/// A connection to what `url` names: a cluster for `redis+cluster://`, else one server.
pub async fn connect(url: &str) -> Result<Conn, BenchError> {
    if leasehold_redis::is_cluster_url(url) {
        leasehold_redis::connect_cluster(url, Duration::from_secs(5))
            .await
            .map(Conn::Cluster)
            .map_err(connect_err(url))
    } else {
        single(url).await.map(Conn::Single)
    }
}

/// A connection to every primary `url` stands for (each primary of a cluster, the current
/// primary under Sentinel, or the server), for per-primary work: `PING`, command counts, cleanup.
pub async fn primary_connections(url: &str) -> Result<Vec<MultiplexedConnection>, BenchError> {
    let mut nodes = Vec::new();
    for node in primaries(url).await? {
        let resolved = leasehold_redis::primary_url_of(&node)
            .await
            .map_err(connect_err(&node))?;
        nodes.push(single(&resolved).await?);
    }
    Ok(nodes)
}

/// The `redis://` URL of every primary `url` stands for: the cluster's primaries (from `CLUSTER
/// SLOTS` on a seed), or `url` itself. Per-primary work (cleanup, command counts) connects to each.
pub async fn primaries(url: &str) -> Result<Vec<String>, BenchError> {
    if !leasehold_redis::is_cluster_url(url) {
        return Ok(vec![url.to_owned()]);
    }
    let err = connect_err(url);
    let seed = leasehold_tui::source::resolve(url)
        .await
        .map_err(|e| err(e.to_string()))?;
    match leasehold_tui::source::cluster::primaries(&seed).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(err(
            "the seed is not a cluster node (cluster_enabled:0): use redis:// for one server"
                .into(),
        )),
        Err(e) => Err(err(e.to_string())),
    }
}
