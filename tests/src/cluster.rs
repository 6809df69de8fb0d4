//! A Redis Cluster on loopback: `n` primaries started with `--cluster-enabled yes` on free ports
//! (client and bus port each chosen free), joined by `redis-cli --cluster create ...
//! --cluster-replicas r --cluster-yes`, ready when every node says `cluster_state:ok`. Stopped on
//! drop, like [`RedisServer`].

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{RedisServer, skip_without_redis};

/// A running cluster of primaries, with or without replicas.
#[derive(Debug)]
pub struct RedisCluster {
    /// Its nodes: the primaries first, each owning a `1/n`th of the slots, then their replicas.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Start `n` (at least 3) primaries and join them. `None` when skipping (see
    /// [`skip_without_redis`]).
    ///
    /// # Panics
    /// When the nodes cannot start or `redis-cli --cluster create` fails (its output is shown).
    #[must_use]
    pub fn start(test: &str, n: usize) -> Option<RedisCluster> {
        Self::start_with_replicas(test, n, 0)
    }

    /// Start `n` (at least 3) primaries with `replicas` replicas each and join them. Nodes
    /// `0..n` are the primaries (`redis-cli --cluster create` makes the first addresses
    /// primaries), the rest their replicas. `None` when skipping.
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    #[must_use]
    pub fn start_with_replicas(test: &str, n: usize, replicas: usize) -> Option<RedisCluster> {
        if skip_without_redis(test) {
            return None;
        }
        let mut nodes = Vec::new();
        for _ in 0..n.max(3) * (1 + replicas) {
            let node = RedisServer::start_node(
                test,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
                true,
            )?;
            nodes.push(node);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "redis-cli --cluster create failed:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!(
                "cannot run redis-cli ({e}): install it (Debian: apt-get install -y redis-tools)"
            ),
        }
        let c = RedisCluster { nodes };
        c.wait_ok(Duration::from_secs(30));
        // a replica can be promoted only once it has synced with its primary
        let start = Instant::now();
        for r in &c.nodes[n.max(3)..] {
            loop {
                let out = Command::new("redis-cli")
                    .args(["-p", &r.port.to_string(), "info", "replication"])
                    .output();
                if out.is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout).contains("master_link_status:up")
                }) {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "replica on port {} did not sync with its primary within 30s",
                    r.port
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(c)
    }

    /// Wait until every node reports `cluster_state:ok` and knows every other node.
    ///
    /// # Panics
    /// When that does not happen `within`.
    pub fn wait_ok(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let ok = self.nodes.iter().all(|n| {
                let out = Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output();
                out.is_ok_and(|o| {
                    let text = String::from_utf8_lossy(&o.stdout).into_owned();
                    text.contains("cluster_state:ok")
                        && text.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
                })
            });
            if ok {
                return;
            }
            assert!(
                start.elapsed() < within,
                "the cluster did not reach cluster_state:ok within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first node's URL: a seed from which the others are found.
    #[must_use]
    pub fn seed_url(&self) -> String {
        self.nodes[0].url()
    }

    /// The node (index into [`RedisCluster::nodes`]) serving `key`, asked of the cluster itself
    /// (`CLUSTER KEYSLOT`, then the `CLUSTER NODES` line whose slot ranges hold it).
    ///
    /// # Panics
    /// When the cluster does not answer.
    #[must_use]
    pub fn node_of(&self, key: &str) -> usize {
        let cli = |args: &[&str]| {
            Command::new("redis-cli")
                .args(["-p", &self.nodes[0].port.to_string()])
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let slot: u16 = cli(&["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {key} gave no number"));
        for line in cli(&["cluster", "nodes"]).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let owns = fields.iter().skip(8).any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            let port = fields
                .get(1)
                .and_then(|a| a.split('@').next())
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if owns && let Some(i) = self.nodes.iter().position(|n| Some(n.port) == port) {
                return i;
            }
        }
        panic!("no node owns slot {slot} of {key}");
    }
}
