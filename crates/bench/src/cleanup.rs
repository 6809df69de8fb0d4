//! Leave the user's Redis as the bench found it: delete every key it wrote (its lock keys, fence
//! counters and floor keys, all under the bench's own prefixes).

use redis::aio::MultiplexedConnection;

/// Delete every key under the bench's prefixes with `SCAN` + `UNLINK` (never `KEYS`). Returns how
/// many were deleted.
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
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(c)
                    .await
                    .map_err(|e| format!("UNLINK: {e}"))?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}
