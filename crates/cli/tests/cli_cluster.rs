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
    // the same cluster given as --cluster with two of its nodes as redis:// seeds: a later
    // token of the same counter
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["exec", "--cluster", "--redis", &c.nodes[2].url()])
        .args(["--redis", &c.nodes[0].url(), "--ttl", "2s", "job", "--"])
        .args(["sh", "-c", "echo \"$LEASEHOLD_TOKEN\""])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    let second: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(second > token, "{second} after {token}");
    // seeds with different credentials are a usage error naming the seed
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["exec", "--cluster", "--redis", &c.nodes[2].url()])
        .args(["--redis", "redis://:pw@127.0.0.1:1", "job", "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the same credentials"), "{err}");
    // a malformed cluster URL is a usage error naming the problem
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["exec", "--redis", "redis+cluster://h", "job", "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not host:port"), "{err}");
}

/// `leasehold bench --cluster --redis <seed>` on a real 3-primary cluster: every figure of the
/// single-server report (push hand-off aside: lockers on a cluster poll), scripts run on every
/// primary, and every key it wrote deleted from every primary.
#[test]
fn bench_on_a_cluster_reports_its_figures_and_cleans_every_primary() {
    let Some(c) = RedisCluster::start("cli_cluster_bench", 3) else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args([
            "bench",
            "--cluster",
            "--redis",
            &c.nodes[1].url(),
            "--duration",
            "1200ms",
            "--hold",
            "300",
            "--json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("handoff push skipped"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["topology"], "cluster");
    assert_eq!(v["primaries"], 3);
    let num = |path: &str| -> f64 {
        let mut cur = &v;
        for part in path.split('.') {
            cur = match part.parse::<usize>() {
                Ok(i) => &cur[i],
                Err(_) => &cur[part],
            };
        }
        cur.as_f64()
            .unwrap_or_else(|| panic!("{path} is not a number: {cur}"))
    };
    for f in [
        "rtt.p50_us",
        "floor.p50_us",
        "cycle.p50_us",
        "cycle_ratio",
        "floor3.p50_us",
        "cycle3.p50_us",
        "cycle3_ratio",
        "throughput.leasehold_ops",
        "throughput.floor_ops",
        "throughput.ratio",
        "throughput.fenced_scripts_ops",
        "handoff.poll.per_sec",
        "hold.0.redis_cmds_per_sec",
        "hold.0.scripts_per_extension",
        "cleanup.keys_deleted",
    ] {
        assert!(num(f) > 0.0, "{f} = {}", num(f));
    }
    for style in ["main_thread", "spawned"] {
        assert!(num(&format!("call_styles.{style}.cycle_ratio")) > 0.0);
    }
    assert!(v["handoff"].get("push").is_none(), "no push on a cluster");
    assert_eq!(v["hold"][0]["leases"], 300);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (i, n) in c.nodes.iter().enumerate() {
            // the locks and the floor ran on every primary
            let stats: String = n.cmd(&["INFO", "commandstats"]).await.unwrap();
            let scripts: u64 = stats
                .lines()
                .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
                .and_then(|r| r.split(',').next())
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            assert!(scripts > 0, "no script ran on primary {i}: {stats}");
            // and nothing of the bench is left on it
            let left: Vec<String> = n.cmd(&["KEYS", "*"]).await.unwrap();
            assert_eq!(left, Vec::<String>::new(), "left on primary {i}");
        }
    });
}

#[test]
fn bench_refuses_replicas_on_a_cluster_and_a_seed_it_cannot_read() {
    for args in [
        vec!["bench", "--cluster", "--replicas", "1"],
        vec!["bench", "--cluster", "--redis", "memcached://127.0.0.1:1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--replicas is not available on a Redis Cluster")
                || err.contains("a cluster seed is redis://"),
            "{args:?}: {err}"
        );
    }
}

/// Without --redis, `bench --cluster` starts a private cluster of three primaries, measures it,
/// and stops every node of it before exiting.
#[test]
fn bench_starts_and_stops_its_private_cluster() {
    if leasehold_tests::skip_without_redis("cli_cluster_private_bench") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args([
            "bench",
            "--cluster",
            "--duration",
            "400ms",
            "--hold",
            "0",
            "--json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["primaries"], 3, "{v}");
    let started = err
        .lines()
        .find_map(|l| l.split("redis+cluster://").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no private cluster named: {err}"));
    let ports: Vec<u16> = started
        .split(',')
        .filter_map(|a| a.rsplit(':').next()?.parse().ok())
        .collect();
    assert_eq!(ports.len(), 3, "{started}");
    for p in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", p)).is_err(),
            "the private node on port {p} still listens"
        );
    }
}
