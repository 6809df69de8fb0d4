//! Leave the user's Redis as the bench found it: delete every key it wrote (its lock keys, fence
//! counters and floor keys, all under the bench's own prefixes), on every primary of a cluster.

use redis::aio::MultiplexedConnection;

/// Delete every key under the bench's prefixes on the server `c` is connected to, with `SCAN` +
/// `UNLINK` (never `KEYS`). Each page's keys are unlinked one key a command, pipelined in one
/// round trip, so a cluster node never sees a cross-slot `UNLINK`. Returns how many were deleted.
///
/// # Errors
/// A `SCAN` or `UNLINK` that failed, named.
pub async fn delete_bench_keys(c: &mut MultiplexedConnection) -> Result<u64, String> {
    let mut deleted = 0u64;
    for pattern in [
        format!("{}:*", crate::LOCK_PREFIX),
        format!("{}:*", crate::FLOOR_PREFIX),
    ] {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1_000)
                .query_async(c)
                .await
                .map_err(|e| format!("SCAN {pattern}: {e}"))?;
            if !keys.is_empty() {
                let mut p = redis::pipe();
                for k in &keys {
                    p.cmd("UNLINK").arg(k);
                }
                let n: Vec<u64> = p.query_async(c).await.map_err(|e| format!("UNLINK: {e}"))?;
                deleted += n.iter().sum::<u64>();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}

/// [`delete_bench_keys`] on every primary `url` stands for (each primary of a
/// `redis+cluster://` URL, the current primary of a `redis+sentinel://` URL, or the server).
///
/// # Errors
/// A primary that cannot be reached, or its `SCAN`/`UNLINK`.
pub async fn delete_everywhere(url: &str) -> Result<u64, String> {
    let mut nodes = crate::conn::primary_connections(url)
        .await
        .map_err(|e| e.to_string())?;
    delete_on(&mut nodes).await
}

/// [`delete_bench_keys`] on each of `nodes`; how many were deleted in all.
///
/// # Errors
/// The first `SCAN` or `UNLINK` that failed.
pub async fn delete_on(nodes: &mut [MultiplexedConnection]) -> Result<u64, String> {
    let mut deleted = 0;
    for node in nodes {
        deleted += delete_bench_keys(node).await?;
    }
    Ok(deleted)
}
