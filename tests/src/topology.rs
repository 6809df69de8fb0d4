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

/// A `redis-server --sentinel` process on a free loopback port monitoring one primary as
/// `master`, killed on drop. Fast settings for tests: down after 500 ms, failover timeout 3 s.
#[derive(Debug)]
pub struct Sentinel {
    child: Option<std::process::Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Sentinel {
    /// Start a Sentinel monitoring `127.0.0.1:<primary>` as `master` with quorum `quorum`.
    /// `None` when skipping (see [`crate::skip_without_redis`]).
    ///
    /// # Panics
    /// When no Sentinel starts on a free port after 5 attempts.
    #[must_use]
    pub fn start(test: &str, master: &str, primary: u16, quorum: u32) -> Option<Sentinel> {
        if crate::skip_without_redis(test) {
            return None;
        }
        for _ in 0..5 {
            let port = crate::free_port();
            let dir = std::env::temp_dir()
                .join(format!("leasehold-sentinel-{}-{port}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let conf = dir.join("sentinel.conf");
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {master} 127.0.0.1 {primary} {quorum}\nsentinel down-after-milliseconds {master} 500\nsentinel failover-timeout {master} 3000\nsentinel parallel-syncs {master} 1\n",
                dir.display()
            );
            if std::fs::write(&conf, text).is_err() {
                continue;
            }
            let child = std::process::Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            let Ok(mut child) = child else { continue };
            if crate::wait_listening(&mut child, port, Duration::from_secs(10)) {
                return Some(Sentinel {
                    child: Some(child),
                    port,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start redis-server --sentinel on a free loopback port after 5 attempts");
    }

    /// Run one command against this Sentinel.
    pub async fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query_async(&mut conn).await
    }

    /// Wait until this Sentinel knows `replicas` replicas and `peers` other Sentinels of
    /// `master` (what a failover needs), at most `within`.
    ///
    /// # Panics
    /// When it does not within `within`.
    pub async fn wait_discovered(
        &self,
        master: &str,
        replicas: usize,
        peers: usize,
        within: Duration,
    ) {
        let start = Instant::now();
        loop {
            let r: Vec<redis::Value> = self
                .cmd(&["SENTINEL", "REPLICAS", master])
                .await
                .unwrap_or_default();
            let p: Vec<redis::Value> = self
                .cmd(&["SENTINEL", "SENTINELS", master])
                .await
                .unwrap_or_default();
            if r.len() >= replicas && p.len() >= peers {
                return;
            }
            assert!(
                start.elapsed() < within,
                "Sentinel {} knows {} replica(s) and {} peer(s) of {master} after {within:?}",
                self.port,
                r.len(),
                p.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The primary this Sentinel names for `master`.
    pub async fn primary(&self, master: &str) -> Option<(String, u16)> {
        self.cmd(&["SENTINEL", "get-master-addr-by-name", master])
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
