//! `leasehold bench --json` against a harness Redis: the shape and sanity of every field (not the
//! speed, which the targets judge on a quiet machine).
#![allow(clippy::unwrap_used)]

use std::process::Command;

use leasehold_tests::RedisServer;
use serde_json::Value;

fn pos(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[part],
        };
    }
    let x = cur
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {cur}"));
    assert!(x.is_finite() && x >= 0.0, "{path} = {x}");
    x
}

#[test]
fn bench_json_has_every_field_with_sane_values() {
    let Some(redis) = RedisServer::start("bench_json") else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args([
            "bench",
            "--redis",
            &redis.url(),
            "--duration",
            "1200ms",
            "--hold",
            "200",
            "--json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("bench: rtt"),
        "progress lines on stderr: {err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for section in ["rtt", "floor", "cycle", "floor3", "cycle3"] {
        let p50 = pos(&v, &format!("{section}.p50_us"));
        let p99 = pos(&v, &format!("{section}.p99_us"));
        assert!(p50 > 0.0 && p99 >= p50, "{section}: {}", v[section]);
        assert!(pos(&v, &format!("{section}.per_sec")) > 0.0);
    }
    assert!(pos(&v, "cycle_ratio") > 0.0);
    assert!(pos(&v, "cycle3_ratio") > 0.0);
    // both call styles, each with every latency and throughput figure
    for style in ["main_thread", "spawned"] {
        for f in [
            "floor.p50_us",
            "cycle.p50_us",
            "cycle_ratio",
            "floor3.p50_us",
            "cycle3.p50_us",
            "cycle3_ratio",
            "leasehold_ops",
            "floor_ops",
            "throughput_ratio",
        ] {
            assert!(
                pos(&v, &format!("call_styles.{style}.{f}")) > 0.0,
                "{style}.{f}"
            );
        }
    }
    // the headline ratio is the worse call style's
    let worst = ["main_thread", "spawned"]
        .iter()
        .map(|s| pos(&v, &format!("call_styles.{s}.cycle_ratio")))
        .fold(0.0, f64::max);
    assert_eq!(pos(&v, "cycle_ratio"), worst);
    let hold = v["hold"].as_array().unwrap();
    assert_eq!(hold.len(), 1);
    assert_eq!(hold[0]["leases"], 200);
    assert!(pos(&v, "hold.0.redis_cmds_per_sec") > 0.0);
    assert!(pos(&v, "hold.0.scripts_per_extension") > 0.0);
    pos(&v, "hold.0.rss_bytes_per_lease");
    assert!(pos(&v, "throughput.leasehold_ops") > 0.0);
    assert!(pos(&v, "throughput.floor_ops") > 0.0);
    assert!(pos(&v, "throughput.ratio") > 0.0);
    for mode in ["push", "poll"] {
        assert_eq!(v["handoff"][mode]["contenders"], 16);
        for f in [
            "per_sec",
            "acquisitions_per_sec",
            "gap_p50_us",
            "gap_p99_us",
            "gap_p50_rtts",
            "gap_p99_rtts",
        ] {
            pos(&v, &format!("handoff.{mode}.{f}"));
        }
    }
    let storm = v["try_storm"].as_object().unwrap();
    let fast = storm["slot_wait_20us"].as_object().unwrap();
    assert!(
        fast.get("slow_replies")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            > 0,
        "20µs must meet slow replies: {fast:?}"
    );
    let slow = storm["slot_wait_100000us"].as_object().unwrap();
    assert!(
        slow.get("acquired").and_then(Value::as_u64).unwrap_or(0) > 0,
        "100ms must acquire: {slow:?}"
    );
    assert!(pos(&v, "core.ns_per_cycle") > 0.0);
    assert!(pos(&v, "sim.events_per_sec") > 0.0);
    assert!(pos(&v, "recommend.slot_wait_us") >= 1_000.0);
    assert!(pos(&v, "recommend.ttl_ms") > pos(&v, "recommend.extend_interval_ms"));
    assert_eq!(v["recommend"]["why"].as_array().unwrap().len(), 3);
    // it cleaned up after itself: nothing of its own is left in the user's Redis
    assert!(pos(&v, "cleanup.keys_deleted") > 0.0);
    assert_eq!(leftover_keys(&redis), Vec::<String>::new());
}

fn leftover_keys(redis: &RedisServer) -> Vec<String> {
    let c = redis::Client::open(redis.url()).unwrap();
    let mut c = c.get_connection().unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.sort();
    keys
}

/// Ctrl-C (SIGINT) or SIGTERM mid-run: the bench deletes what it wrote to a user's Redis, and
/// exits 128 + signal.
#[test]
fn an_interrupted_bench_leaves_nothing_behind() {
    use std::io::{BufRead as _, BufReader};
    let Some(redis) = RedisServer::start("bench_interrupt") else {
        return;
    };
    for (sig, code) in [
        (nix::sys::signal::Signal::SIGINT, 130),
        (nix::sys::signal::Signal::SIGTERM, 143),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_leasehold"))
            .args([
                "bench",
                "--redis",
                &redis.url(),
                "--duration",
                "60s",
                "--hold",
                "0",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // wait until it is writing keys (the latency phases), then interrupt it
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push(line.clone());
            if line.contains("main_thread") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(800));
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, sig).unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{seen:?} {rest:?}");
        assert!(
            rest.iter().any(|l| l.contains("interrupted; deleted")),
            "{rest:?}"
        );
        assert_eq!(leftover_keys(&redis), Vec::<String>::new(), "after {sig:?}");
    }
}

#[test]
fn bench_against_an_unreachable_redis_fails_with_the_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args([
            "bench",
            "--redis",
            "redis://127.0.0.1:1",
            "--duration",
            "1s",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn bench_with_replicas_starts_its_own_replica_and_confirms_every_write() {
    if leasehold_tests::skip_without_redis("bench_replicas") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args([
            "bench",
            "--replicas",
            "1",
            "--replicas-timeout",
            "100ms",
            "--duration",
            "1200ms",
            "--hold",
            "100",
            "--json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("with 1 replica(s)"), "{err}");
    assert!(err.contains("try_storm skipped"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["replicas"], 1);
    assert!(pos(&v, "cycle.p50_us") > 0.0);
    assert_eq!(v["hold"][0]["leases"], 100, "{}", v["hold"]);
    let bad = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["bench", "--replicas", "1", "--replicas-timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid --replicas-timeout"));
}
