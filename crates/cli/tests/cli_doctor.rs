//! `leasehold doctor` against real redis-server processes: the JSON shape, a planted slow server
//! (the harness's latency proxy), a lock key without TTL, `allkeys-lru`, an ACL user without
//! `SLOWLOG`, a replica and its primary, a cluster node, unreachable servers and bad usage, and
//! proof that doctor writes nothing (the server's dirty counter and `INFO commandstats`).

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use leasehold_tests::{LatencyProxy, RedisServer};
use serde_json::Value;

fn doctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .arg("doctor")
        .args(args)
        .output()
        .expect("the leasehold binary runs")
}

/// Run doctor with `--json`; exit 0 and one JSON object.
fn doctor_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = doctor(&all);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "doctor failed: {err}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn finding<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    v["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["id"] == id))
}

fn must_find<'a>(v: &'a Value, id: &str) -> &'a Value {
    finding(v, id).unwrap_or_else(|| panic!("no finding {id} in {:#}", v["findings"]))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn json_has_findings_reply_percentiles_and_settings() {
    let Some(redis) = RedisServer::start("doctor_json") else {
        return;
    };
    let v = doctor_json(&["--redis", &redis.url(), "--samples", "50"]);
    let f = v["findings"].as_array().expect("findings is an array");
    assert!(!f.is_empty(), "{v:#}");
    for x in f {
        for key in ["id", "severity", "evidence", "recommendation"] {
            assert!(
                x[key].as_str().is_some_and(|s| !s.is_empty()),
                "{key} in {x}"
            );
        }
        assert!(
            ["info", "warning", "critical"].contains(&x["severity"].as_str().unwrap_or("")),
            "{x}"
        );
    }
    let r = &v["reply_us"];
    let p = |k: &str| {
        r[k].as_u64()
            .unwrap_or_else(|| panic!("reply_us.{k} is not a number: {r}"))
    };
    assert!(
        p("p50") > 0 && p("p50") <= p("p99") && p("p99") <= p("p999"),
        "{r}"
    );
    assert_eq!(p("samples"), 100, "50 PING + 50 EVAL_RO on 7.x: {r}");
    assert!(v["shapes"]["eval_ro"]["p50"].as_u64().is_some(), "{v:#}");
    for k in [
        "try_next_after_ms",
        "key_validity_ms",
        "extend_interval_ms",
        "key_majority",
    ] {
        assert!(v["settings"]["rueidislock"][k].as_u64().is_some(), "{k}");
    }
    for k in ["slot_wait_ms", "ttl_ms", "extend_interval_ms"] {
        assert!(v["settings"]["leasehold"][k].as_u64().is_some(), "{k}");
    }
    assert_eq!(v["server"]["role"], "master");
    assert!(v["clock"]["uncertainty_us"].as_u64().is_some(), "{v:#}");
    // the severity follows the rule on this run's own figures (a loaded machine's p99.9 can
    // pass 20 ms): info at or under TryNextAfter, warning above, critical when even p50 is
    let expected = match (p("p50"), p("p999")) {
        (_, q) if q <= 20_000 => "info",
        (m, _) if m <= 20_000 => "warning",
        _ => "critical",
    };
    assert_eq!(must_find(&v, "reply_time")["severity"], expected, "{r}");
    assert!(v["commands_sent"].as_u64().is_some_and(|n| n > 100));
    assert!(v["skipped"].as_array().is_some_and(Vec::is_empty), "{v:#}");
}

#[test]
fn a_slow_server_yields_the_try_next_after_finding_with_twice_the_p999() {
    let Some(redis) = RedisServer::start("doctor_slow") else {
        return;
    };
    let rt = rt();
    let proxy = rt
        .block_on(LatencyProxy::start(redis.port, Duration::from_millis(30)))
        .expect("the latency proxy starts");
    let url = proxy.url();
    // the proxy runs on `rt`'s worker threads while doctor runs as a child process
    let v = doctor_json(&["--redis", &url, "--samples", "40"]);
    let text = doctor(&["--redis", &url, "--samples", "20"]);
    let text = String::from_utf8_lossy(&text.stdout);
    eprintln!("{text}");
    let p999 = v["reply_us"]["p999"].as_u64().expect("p999");
    assert!(p999 > 30_000, "the proxy adds 30 ms: {}", v["reply_us"]);
    let f = must_find(&v, "reply_time");
    assert_ne!(f["severity"], "info", "{f}");
    let evidence = f["evidence"].as_str().unwrap_or("");
    let rec = f["recommendation"].as_str().unwrap_or("");
    assert!(
        evidence.starts_with("p99.9 reply ") && evidence.contains("> TryNextAfter 20 ms"),
        "{evidence}"
    );
    assert!(
        rec.contains("expect 'context deadline exceeded' on ~")
            && rec.contains("set TryNextAfter ≥ "),
        "{rec}"
    );
    let tna = v["settings"]["rueidislock"]["try_next_after_ms"]
        .as_u64()
        .expect("try_next_after_ms");
    let slot = v["settings"]["leasehold"]["slot_wait_ms"]
        .as_u64()
        .expect("slot_wait_ms");
    assert!(
        tna * 1000 >= 2 * p999,
        "TryNextAfter {tna} ms < 2 × p99.9 {p999} µs"
    );
    assert!(
        slot * 1000 >= 2 * p999,
        "slot_wait {slot} ms < 2 × p99.9 {p999} µs"
    );
    assert!(
        rec.contains(&format!("set TryNextAfter ≥ {tna} ms")),
        "{rec}"
    );
    assert!(text.contains("reply_time: p99.9 reply"), "{text}");
}

/// A busy Lua loop of `ms` milliseconds (the server runs nothing else meanwhile).
const BUSY: &str = "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] \
    repeat local n = redis.call('TIME') until (n[1] * 1000000 + n[2]) - s > tonumber(ARGV[1]) * 1000 \
    return 1";

#[test]
fn stalls_from_another_client_show_as_a_share_slowlog_and_latency_events() {
    let Some(redis) =
        RedisServer::start_with("doctor_stalls", &["--latency-monitor-threshold", "10"])
    else {
        return;
    };
    let rt = rt();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = redis.url();
    let stalls = {
        let stop = stop.clone();
        rt.spawn(async move {
            let client = redis::Client::open(url.as_str()).expect("a client");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("a connection");
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // a 60 ms stall every ~200 ms, from a test client (not doctor)
                let _: redis::RedisResult<i64> = redis::cmd("EVAL")
                    .arg(BUSY)
                    .arg(0)
                    .arg(60)
                    .query_async(&mut conn)
                    .await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(140)).await;
            }
            n
        })
    };
    // --budget 100 spreads 300 samples over ~3 s: ~15 stalls, each delaying the sample that
    // meets it by 0-60 ms
    let v = doctor_json(&[
        "--redis",
        &redis.url(),
        "--samples",
        "150",
        "--budget",
        "100",
    ]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let n = rt.block_on(stalls).expect("the stall task");
    let text = serde_json::to_string_pretty(&v["findings"]).unwrap_or_default();
    eprintln!("{n} stalls; reply_us {}\n{text}", v["reply_us"]);
    let p50 = v["reply_us"]["p50"].as_u64().expect("p50");
    let p999 = v["reply_us"]["p999"].as_u64().expect("p999");
    assert!(p50 < 20_000, "most replies are fast: {}", v["reply_us"]);
    assert!(p999 > 20_000, "some sample met a stall: {}", v["reply_us"]);
    let f = must_find(&v, "reply_time");
    assert_eq!(f["severity"], "warning", "{f}");
    let rec = f["recommendation"].as_str().unwrap_or("");
    assert!(
        rec.contains("expect 'context deadline exceeded' on ~"),
        "{rec}"
    );
    assert!(!rec.contains("~100%"), "only a share of calls: {rec}");
    let tna = v["settings"]["rueidislock"]["try_next_after_ms"]
        .as_u64()
        .expect("try_next_after_ms");
    assert!(
        tna * 1000 >= 2 * p999,
        "TryNextAfter {tna} ms < 2 × p99.9 {p999} µs"
    );
    let slow = must_find(&v, "slowlog");
    assert_eq!(slow["severity"], "warning", "{slow}");
    assert!(
        slow["evidence"]
            .as_str()
            .is_some_and(|s| s.starts_with("SLOWLOG has ") && s.contains("EVAL")),
        "{slow}"
    );
    let lat = must_find(&v, "latency_events");
    assert_eq!(lat["severity"], "warning", "{lat}");
    // one host, one clock: the offset is measured from the send, not from before a budget wait
    let clock = must_find(&v, "clock_skew");
    assert!(
        clock["evidence"]
            .as_str()
            .is_some_and(|s| s.starts_with("this host's clock agrees")),
        "{clock}"
    );
}

#[test]
fn a_lock_key_without_ttl_and_allkeys_lru_are_findings() {
    let Some(redis) = RedisServer::start_with(
        "doctor_ttl",
        &["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"],
    ) else {
        return;
    };
    rt().block_on(async {
        let _: () = redis
            .cmd(&["SET", "lock:orders", "web-1"])
            .await
            .expect("SET");
        let _: () = redis
            .cmd(&["SET", "lock:fine", "web-2", "PX", "60000"])
            .await
            .expect("SET");
    });
    let v = doctor_json(&[
        "--redis",
        &redis.url(),
        "--samples",
        "20",
        "--pattern",
        "lock:*",
    ]);
    let ttl = must_find(&v, "lock_without_ttl");
    assert_eq!(ttl["severity"], "critical");
    let ev = ttl["evidence"].as_str().unwrap_or("");
    assert!(
        ev.contains("lock:orders") && !ev.contains("lock:fine"),
        "{ev}"
    );
    assert_eq!(
        v["locks"]["without_ttl"],
        serde_json::json!(["lock:orders"])
    );
    let ev = must_find(&v, "eviction_policy");
    assert_eq!(ev["severity"], "critical");
    assert!(
        ev["evidence"]
            .as_str()
            .is_some_and(|s| s.contains("allkeys-lru: lock keys can be evicted")),
        "{ev}"
    );
    // noeviction (the harness default elsewhere) gives no such finding
    let Some(plain) = RedisServer::start("doctor_noeviction") else {
        return;
    };
    let v = doctor_json(&["--redis", &plain.url(), "--samples", "10"]);
    assert!(
        finding(&v, "eviction_policy").is_none(),
        "{:#}",
        v["findings"]
    );
    assert!(finding(&v, "lock_without_ttl").is_none());
}

#[test]
fn an_acl_user_without_slowlog_gets_a_clear_line_not_a_crash() {
    let Some(redis) = RedisServer::start("doctor_acl") else {
        return;
    };
    rt().block_on(async {
        let _: () = redis
            .cmd(&[
                "ACL", "SETUSER", "doc", "on", ">pw", "~*", "&*", "+@all", "-slowlog",
            ])
            .await
            .expect("ACL SETUSER");
    });
    let port = redis.port;
    let url = format!("redis://doc:pw@127.0.0.1:{port}");
    let out = doctor(&["--redis", &url, "--samples", "10"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("not checked  SLOWLOG GET: no permission for SLOWLOG"),
        "{text}"
    );
    assert!(text.contains("+slowlog|get"), "says what to grant: {text}");
    assert!(!text.contains(":pw@"), "the password is not shown: {text}");
    let v = doctor_json(&["--redis", &url, "--samples", "10"]);
    assert!(v["slowlog"].is_null(), "{v:#}");
    assert!(must_find(&v, "reply_time")["severity"].is_string());
    // the least-privilege user of the README misses nothing
    rt().block_on(async {
        let _: () = redis
            .cmd(&[
                "ACL",
                "SETUSER",
                "leasehold-doctor",
                "on",
                ">pw",
                "resetkeys",
                "%R~*",
                "resetchannels",
                "-@all",
                "+ping",
                "+hello",
                "+info",
                "+time",
                "+slowlog|get",
                "+latency|latest",
                "+eval_ro",
                "+scan",
                "+pttl",
                "+getrange",
                "+strlen",
                "+hrandfield",
                "+hstrlen",
                "+hmget",
                "+client|setname",
            ])
            .await
            .expect("ACL SETUSER");
    });
    let url = format!("redis://leasehold-doctor:pw@127.0.0.1:{port}");
    let v = doctor_json(&["--redis", &url, "--samples", "10"]);
    assert!(
        v["skipped"].as_array().is_some_and(Vec::is_empty),
        "{:#}",
        v["skipped"]
    );
    assert!(v["slowlog"].is_array() && v["latency_latest"].is_array());
}

#[test]
fn a_replica_and_a_primary_with_replicas_are_findings() {
    let Some(primary) =
        RedisServer::start_with("doctor_primary", &["--repl-diskless-sync-delay", "0"])
    else {
        return;
    };
    let port = primary.port.to_string();
    let Some(replica) =
        RedisServer::start_with("doctor_replica", &["--replicaof", "127.0.0.1", &port])
    else {
        return;
    };
    let rt = rt();
    let start = Instant::now();
    loop {
        let info: String = rt
            .block_on(replica.cmd(&["INFO", "replication"]))
            .expect("INFO replication");
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "replica never synced: {info}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = doctor_json(&["--redis", &replica.url(), "--samples", "10"]);
    let r = must_find(&v, "replica");
    assert!(
        r["evidence"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("replica of 127.0.0.1:{port}"))),
        "{r}"
    );
    let v = doctor_json(&["--redis", &primary.url(), "--samples", "10"]);
    let f = must_find(&v, "failover_regrant");
    assert_eq!(f["severity"], "critical", "{f}");
    assert!(
        f["evidence"].as_str().is_some_and(
            |s| s.starts_with("persistence off") && s.contains("and 1 replica present")
        ),
        "{f}"
    );
    assert!(
        f["recommendation"]
            .as_str()
            .is_some_and(|s| s.contains("a failover can re-grant locks")),
        "{f}"
    );
}

#[test]
fn a_blocked_client_is_a_finding() {
    let Some(redis) = RedisServer::start("doctor_blocked") else {
        return;
    };
    let rt = rt();
    let url = redis.url();
    let blocked = rt.spawn(async move {
        let client = redis::Client::open(url.as_str()).expect("a client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("a connection");
        let _: redis::RedisResult<redis::Value> = redis::cmd("BLPOP")
            .arg("queue:empty")
            .arg(0)
            .query_async(&mut conn)
            .await;
    });
    let start = Instant::now();
    loop {
        let info: String = rt
            .block_on(redis.cmd(&["INFO", "clients"]))
            .expect("INFO clients");
        if info.contains("blocked_clients:1") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{info}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = doctor_json(&["--redis", &redis.url(), "--samples", "10"]);
    blocked.abort();
    let f = must_find(&v, "blocked_clients");
    assert!(
        f["evidence"]
            .as_str()
            .is_some_and(|s| s.starts_with("1 client blocked")),
        "{f}"
    );
}

#[test]
fn a_cluster_node_is_a_clear_line() {
    let Some(node) = RedisServer::start_with("doctor_cluster", &["--cluster-enabled", "yes"])
    else {
        return;
    };
    let out = doctor(&["--redis", &node.url(), "--samples", "10"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("cluster_node: this server is a cluster node"),
        "{text}"
    );
}

#[test]
fn unreachable_servers_exit_1_and_bad_usage_exits_2() {
    if leasehold_tests::skip_without_redis("doctor_unreachable") {
        return;
    }
    // a port nothing listens on: bind one, then close it
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let out = doctor(&["--redis", &format!("redis://127.0.0.1:{port}")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot connect to redis://127.0.0.1:"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let out = doctor(&["--redis", "http://nope"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(doctor(&[]).status.code(), Some(2), "--redis is required");
    assert_eq!(
        doctor(&["--redis", "redis://127.0.0.1:1", "--budget", "0"])
            .status
            .code(),
        Some(2)
    );
    // a wrong password: the server answers, but refuses
    let Some(redis) = RedisServer::start_with("doctor_auth", &["--requirepass", "right"]) else {
        return;
    };
    let out = doctor(&[
        "--redis",
        &format!("redis://:wrong@127.0.0.1:{}", redis.port),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("wrong@"), "the password is not shown: {err}");
}

#[test]
fn a_server_that_stops_answering_mid_run_is_a_line_not_a_hang() {
    let Some(redis) = RedisServer::start("doctor_paused") else {
        return;
    };
    let started = Instant::now();
    // --budget 10 paces the run (~9 commands/s), so the pause lands while doctor is sampling
    let child = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args([
            "doctor",
            "--redis",
            &redis.url(),
            "--budget",
            "10",
            "--samples",
            "10",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("doctor starts");
    std::thread::sleep(Duration::from_millis(1_000));
    redis.pause();
    let out = child.wait_with_output().expect("doctor ends");
    redis.resume();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("the server stopped answering"), "{text}");
    assert!(
        text.contains("not checked  lock keys: not sent: the server stopped answering"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "three 2 s timeouts, then nothing more is sent: {:?}",
        started.elapsed()
    );
}

/// `INFO commandstats` as command → calls.
async fn calls(redis: &RedisServer) -> BTreeMap<String, u64> {
    let text: String = redis
        .cmd(&["INFO", "commandstats"])
        .await
        .expect("INFO commandstats");
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let n = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), n))
        })
        .collect()
}

#[test]
fn doctor_never_writes() {
    let Some(redis) = RedisServer::start("doctor_writes") else {
        return;
    };
    let rt = rt();
    let (before, dirty_before) = rt.block_on(async {
        let mut o = leasehold_redis::LockerOptions::new(redis.url()).ttl(Duration::from_secs(60));
        o.holder = Some("svc/1".into());
        let locker = o.build().await.expect("a locker");
        let lease = locker
            .lock("billing", Duration::from_secs(5))
            .await
            .expect("the lock");
        std::mem::forget(lease); // keep the key; the test server goes away with the test
        for args in [
            &["SET", "lock:report", "uuid", "PX", "60000"][..],
            &["SET", "lock:stuck", "uuid"][..],
            &["SET", "rueidislock:0:orders", "r1", "PX", "60000"][..],
            &[
                "HSET",
                "myLock",
                "8743c9c0-0795-4907-87fd-6c719a6b4586:1",
                "1",
            ][..],
            &["SET", "unrelated", "x"][..],
        ] {
            let _: redis::Value = redis.cmd(args).await.expect("setup write");
        }
        drop(locker);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let info: String = redis.cmd(&["INFO", "persistence"]).await.expect("INFO");
        (calls(&redis).await, dirty(&info))
    });
    let out = doctor(&[
        "--redis",
        &redis.url(),
        "--samples",
        "30",
        "--pattern",
        "lock:*",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (after, dirty_after, flags) = rt.block_on(async {
        let info: String = redis.cmd(&["INFO", "persistence"]).await.expect("INFO");
        let after = calls(&redis).await;
        let mut flags = BTreeMap::new();
        for (name, n) in &after {
            if *n > before.get(name).copied().unwrap_or(0) {
                let v: redis::Value = redis
                    .cmd(&["COMMAND", "INFO", name])
                    .await
                    .expect("COMMAND INFO");
                flags.insert(name.clone(), format!("{v:?}"));
            }
        }
        (after, dirty(&info), flags)
    });
    assert_eq!(
        dirty_before, dirty_after,
        "rdb_changes_since_last_save moved: something wrote"
    );
    for used in [
        "ping",
        "eval_ro",
        "time",
        "slowlog|get",
        "latency|latest",
        "scan",
        "pttl",
        "getrange",
        "info",
    ] {
        assert!(
            flags.contains_key(used),
            "doctor did not send {used}: {flags:?}"
        );
    }
    for (name, f) in &flags {
        assert!(
            !f.contains("\"write\"") && !f.contains("write"),
            "doctor sent {name}, a write command: {f}"
        );
        assert!(
            name != "keys" && name != "get" && name != "hgetall",
            "{name}"
        );
    }
    assert!(after.get("eval").copied().unwrap_or(0) == before.get("eval").copied().unwrap_or(0));
}

#[test]
fn doctor_stays_within_its_budget() {
    let Some(redis) = RedisServer::start("doctor_budget") else {
        return;
    };
    let rt = rt();
    let before = rt.block_on(calls(&redis));
    let start = Instant::now();
    let v = doctor_json(&["--redis", &redis.url(), "--budget", "50", "--samples", "40"]);
    let elapsed = start.elapsed().as_secs_f64();
    let after = rt.block_on(calls(&redis));
    let seen: u64 = after
        .iter()
        .map(|(k, n)| n - before.get(k).copied().unwrap_or(0))
        .sum();
    let sent = v["commands_sent"].as_u64().expect("commands_sent");
    // the server saw what doctor paid for, plus the connection handshake and our INFO
    assert!(
        sent >= 80 && seen >= sent && seen <= sent + 4,
        "sent {sent}, seen {seen}"
    );
    // a burst of a tenth of the budget, then 45/s
    #[allow(clippy::cast_precision_loss)]
    let most = 5.0 + 45.0 * elapsed;
    #[allow(clippy::cast_precision_loss)]
    let paid = sent as f64;
    assert!(
        paid <= most + 1.0,
        "{sent} commands in {elapsed:.2} s: over --budget 50"
    );
}

fn dirty(info: &str) -> i64 {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("rdb_changes_since_last_save:"))
        .and_then(|n| n.parse().ok())
        .expect("rdb_changes_since_last_save")
}
