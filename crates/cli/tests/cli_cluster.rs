//! `leasehold inspect` pointed at one node of a real 3-primary Redis Cluster lists the locks of
//! every primary.
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
    for seed in [0, 2] {
        let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
            .args(["inspect", "--redis", &c.nodes[seed].url(), "--json"])
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
