//! `leasehold inspect` pointed at one node of a real 3-primary Redis Cluster lists the locks of
//! every primary; `leasehold exec --redis redis+cluster://...` runs a command under a lock there.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use leasehold_tests::RedisCluster;
use serde_json::Value;

#[test]
fn inspect_on_one_cluster_node_lists_every_primarys_locks() {
    let Some(c) = RedisCluster::start("cli_cluster", 3) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut owners = std::collections::BTreeSet::new();
    rt.block_on(async {
        for i in 0..20 {
            let key = format!("leasehold:{{job-{i}}}");
            let n = c.node_of(&key);
            owners.insert(n);
            let value = format!("lh1:{i:016x}:w-{i}");
            let _: () = c.nodes[n]
                .cmd(&["SET", &key, &value, "PX", "600000"])
                .await
                .unwrap();
        }
    });
    assert_eq!(owners.len(), 3, "20 names spread over the 3 primaries");
    let cluster_url = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
        c.nodes[1].port, c.nodes[0].port
    );
    for seed in [c.nodes[0].url(), c.nodes[2].url(), cluster_url] {
        let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
            .args(["inspect", "--redis", &seed, "--json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let names: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(names.len(), 20, "seed node {seed}: {names:?}");
        assert!(
            v.as_array()
                .unwrap()
                .iter()
                .all(|r| r["holder"].as_str().is_some_and(|h| h.starts_with("w-")))
        );
    }
}

#[test]
fn exec_runs_under_a_lock_on_the_cluster() {
    let Some(c) = RedisCluster::start("cli_cluster_exec", 3) else {
        return;
    };
    let seeds: Vec<String> = c
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let url = format!("redis+cluster://{}", seeds.join(","));
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["exec", "--redis", &url, "--ttl", "2s", "job", "--"])
        .args(["sh", "-c", "echo \"$LEASEHOLD_TOKEN\"; exit 3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{err}");
    let token: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(token > 0);
    // the counter sits on the primary serving the lock's slot, and the lock was released
    let key = "leasehold:{job}";
    let n = c.node_of(key);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fence: u64 = rt
        .block_on(c.nodes[n].cmd(&["GET", "leasehold:{job}:fence"]))
        .unwrap();
    assert_eq!(fence, token);
    let left: i64 = rt.block_on(c.nodes[n].cmd(&["EXISTS", key])).unwrap();
    assert_eq!(left, 0);
    // a malformed cluster URL is a usage error naming the problem
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["exec", "--redis", "redis+cluster://h", "job", "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not host:port"), "{err}");
}
