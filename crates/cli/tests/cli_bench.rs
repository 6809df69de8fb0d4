//! `leasehold bench --json` against a harness Redis: the shape and sanity of every field (not the
//! speed, which the targets judge on a quiet machine).
#![allow(clippy::unwrap_used)]

use std::process::Command;

use leasehold_tests::RedisServer;
use serde_json::Value;

fn pos(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for part in path.split('.') {
        cur = &cur[part];
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
    for section in ["rtt", "floor", "cycle"] {
        let p50 = pos(&v, &format!("{section}.p50_us"));
        let p99 = pos(&v, &format!("{section}.p99_us"));
        assert!(p50 > 0.0 && p99 >= p50, "{section}: {}", v[section]);
        assert!(pos(&v, &format!("{section}.per_sec")) > 0.0);
    }
    assert!(pos(&v, "cycle_ratio") > 0.0);
    assert!(pos(&v, "throughput.leasehold_ops") > 0.0);
    assert!(pos(&v, "throughput.floor_ops") > 0.0);
    assert!(pos(&v, "throughput.ratio") > 0.0);
    for mode in ["push", "poll"] {
        for f in ["per_sec", "gap_p50_us", "gap_p99_us", "gap_p50_rtts"] {
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
    assert!(pos(&v, "core.allocs_per_cycle") < 1.0, "{}", v["core"]);
    assert!(pos(&v, "sim.events_per_sec") > 0.0);
    assert!(pos(&v, "recommend.slot_wait_us") >= 1_000.0);
    assert!(pos(&v, "recommend.ttl_ms") > pos(&v, "recommend.extend_interval_ms"));
    assert_eq!(v["recommend"]["why"].as_array().unwrap().len(), 3);
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
