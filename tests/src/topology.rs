//! Replicated topologies on loopback ports: a replica of a [`RedisServer`] (`--replicaof`),
//! started and stopped by the test like any other server.

use std::time::{Duration, Instant};

use crate::RedisServer;

impl RedisServer {
    /// Start a replica of `primary` (`--replicaof 127.0.0.1 <port>`) and wait until its link to
    /// the primary is up and the initial sync is done (`master_link_status:up`), at most 10 s.
    /// `None` when skipping (see [`crate::skip_without_redis`]).
    ///
    /// # Panics
    /// When the replica does not come up in sync within 10 s.
    pub async fn start_replica(test: &str, primary: &RedisServer) -> Option<RedisServer> {
        let port = primary.port.to_string();
        let replica = RedisServer::start_with(test, &["--replicaof", "127.0.0.1", &port])?;
        replica.wait_link_up(Duration::from_secs(10)).await;
        Some(replica)
    }

    /// Wait until this replica reports `master_link_status:up`.
    ///
    /// # Panics
    /// When it does not within `within`.
    pub async fn wait_link_up(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let info: String = self.cmd(&["INFO", "replication"]).await.unwrap_or_default();
            if info.contains("master_link_status:up") {
                return;
            }
            assert!(
                start.elapsed() < within,
                "replica on port {} not in sync after {within:?}: {info}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
