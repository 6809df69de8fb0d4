//! `leasehold inspect` and `leasehold watch` against a real redis-server.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use leasehold_tests::RedisServer;
use serde_json::Value;

fn leasehold(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(args)
        .output()
        .unwrap()
}

fn find<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing in {v}"))
}

#[test]
fn inspect_json_shows_every_layout_with_correct_fields() {
    let Some(redis) = RedisServer::start("inspect") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lease = rt.block_on(async {
        let mut o = leasehold_redis::LockerOptions::new(redis.url()).ttl(Duration::from_secs(30));
        o.holder = Some("svc-a/1".into());
        let locker = o.build().await.unwrap();
        let lease = locker
            .lock("billing", Duration::from_secs(5))
            .await
            .unwrap();
        let _: () = redis
            .cmd(&["SET", "lock:report", "some-uuid", "PX", "20000"])
            .await
            .unwrap();
        let _: () = redis
            .cmd(&["SET", "rueidislock:0:orders", "r1", "PX", "5000"])
            .await
            .unwrap();
        let _: () = redis
            .cmd(&["SET", "rueidislock:2:orders", "r1", "PX", "5000"])
            .await
            .unwrap();
        let _: i64 = redis
            .cmd(&[
                "HSET",
                "myLock",
                "8743c9c0-0795-4907-87fd-6c719a6b4586:1",
                "1",
            ])
            .await
            .unwrap();
        let _: i64 = redis.cmd(&["PEXPIRE", "myLock", "30000"]).await.unwrap();
        let _: () = redis
            .cmd(&["SET", "leasehold:{stuck}", "\u{1}\u{2}binary"])
            .await
            .unwrap();
        (locker, lease)
    });
    let out = leasehold(&[
        "inspect",
        "--redis",
        &redis.url(),
        "--pattern",
        "lock:*",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = find(&v, "billing");
    assert_eq!(b["layout"], "leasehold");
    assert_eq!(b["holder"], "svc-a/1");
    assert_eq!(b["token"], lease.1.token());
    assert_eq!(b["state"], "held");
    assert!(b["ttl_ms"].as_i64().unwrap() > 20_000);
    assert_eq!(
        (b["keys_held"].as_u64(), b["keys_total"].as_u64()),
        (Some(1), Some(1))
    );
    let p = find(&v, "lock:report");
    assert_eq!(
        (p["layout"].as_str(), p["holder"].as_str()),
        (Some("plain"), Some("some-uuid"))
    );
    let r = find(&v, "orders");
    assert_eq!(
        (
            r["layout"].as_str(),
            r["keys_held"].as_u64(),
            r["keys_total"].as_u64()
        ),
        (Some("rueidislock"), Some(2), Some(3))
    );
    let h = find(&v, "myLock");
    assert_eq!(h["layout"], "redisson");
    assert!(h["holder"].as_str().unwrap().contains("8743c9c0"));
    let s = find(&v, "stuck");
    assert_eq!(
        s["state"], "no TTL!",
        "a lock key without expiry is flagged"
    );
    // the table form lists the same locks
    let table = leasehold(&["inspect", "--redis", &redis.url(), "--pattern", "lock:*"]);
    let text = String::from_utf8(table.stdout).unwrap();
    for name in ["billing", "lock:report", "orders", "myLock", "stuck"] {
        assert!(text.contains(name), "{text}");
    }
    drop(lease);
}

#[test]
fn inspect_and_watch_fail_clearly_without_a_server() {
    let out = leasehold(&["inspect", "--redis", "redis://127.0.0.1:1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    let out = leasehold(&["watch", "--scenario", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scenario"));
}

#[test]
fn watch_without_a_terminal_refuses_and_suggests_inspect() {
    for args in [
        &["watch", "--redis", "redis://127.0.0.1:1"][..],
        &["watch", "--scenario", "calm"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "nothing on stdout, no escape codes: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("needs a terminal") && err.contains("leasehold inspect"),
            "{err}"
        );
    }
}

#[test]
fn empty_or_invalid_patterns_are_usage_errors() {
    for bad in ["", "lock:[ab", "lock:\\"] {
        for cmd in ["inspect", "watch"] {
            let out = leasehold(&[cmd, "--redis", "redis://127.0.0.1:1", "--pattern", bad]);
            assert_eq!(out.status.code(), Some(2), "{cmd} --pattern {bad:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("--pattern"), "{err}");
        }
    }
}

#[test]
fn inspect_patterns_follow_redis_glob_rules() {
    let Some(redis) = RedisServer::start("inspect_glob") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for k in ["lock:x1", "lock:a", "lock:b"] {
            let _: () = redis.cmd(&["SET", k, "v", "PX", "60000"]).await.unwrap();
        }
    });
    let out = leasehold(&[
        "inspect",
        "--redis",
        &redis.url(),
        "--pattern",
        "lock:[xa]*",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["lock:a", "lock:x1"]);
}

/// Kills the tmux session (and the dashboard in it) when the test ends, also on a failed assert.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(session: &str, needle: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        if screen.contains(needle) {
            return screen;
        }
        assert!(
            start.elapsed() < within,
            "{needle:?} never appeared:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_gone(session: &str, needle: &str, within: Duration) {
    let start = Instant::now();
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        if !screen.contains(needle) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{needle:?} never went away:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watch_runs_in_a_terminal_and_survives_a_server_restart() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "tmux is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: tmux not installed");
        return;
    }
    let Some(mut redis) = RedisServer::start("watch_tmux") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let _: () = redis
            .cmd(&[
                "SET",
                "leasehold:{payroll}",
                "lh1:00000000000000aa:batch-7",
                "PX",
                "60000",
            ])
            .await
            .unwrap();
        let _: () = redis
            .cmd(&["SET", "leasehold:{payroll}:fence", "41"])
            .await
            .unwrap();
    });
    let session = format!("lh-watch-{}", std::process::id());
    let _cleanup = KillOnDrop(session.clone());
    let cmd = format!(
        "{} watch --redis {} --refresh 200ms",
        env!("CARGO_BIN_EXE_leasehold"),
        redis.url()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "30",
        &cmd,
    ]);
    wait_for(&session, "payroll", Duration::from_secs(10));
    // the token is read once the row is on screen (fence counters are read for visible rows)
    let screen = wait_for(&session, "41", Duration::from_secs(10));
    assert!(
        screen.contains("batch-7") && screen.contains("held") && screen.contains("41"),
        "{screen}"
    );
    tmux(&["send-keys", "-t", &session, "?"]);
    wait_for(&session, "Keys (Esc or ? to close)", Duration::from_secs(5));
    tmux(&["send-keys", "-t", &session, "Escape"]);
    // a key sent right after Escape would arrive as Alt+key: wait until the overlay is gone
    wait_gone(&session, "Keys (Esc or ? to close)", Duration::from_secs(5));
    // an adapter publishing its events: they reach the Events screen
    let held = rt.block_on(async {
        let mut o = leasehold_redis::LockerOptions::new(redis.url()).ttl(Duration::from_secs(30));
        o.publish_events = true;
        o.holder = Some("publisher-1".into());
        let locker = o.build().await.unwrap();
        let lease = locker.lock("evlock", Duration::from_secs(5)).await.unwrap();
        (locker, lease)
    });
    tmux(&["send-keys", "-t", &session, "4"]);
    // an Events-screen line (the Locks screen shows the lock name too)
    let screen = wait_for(&session, "acquired evlock", Duration::from_secs(10));
    assert!(
        screen.contains("Events (") && screen.contains("publisher-1"),
        "{screen}"
    );
    tmux(&["send-keys", "-t", &session, "5"]);
    wait_for(
        &session,
        "push (CLIENT TRACKING BCAST)",
        Duration::from_secs(5),
    );
    tmux(&["send-keys", "-t", &session, "1"]);
    drop(held);
    // kill the server: the view keeps the data and says so; restart: it reconnects
    redis.kill();
    let screen = wait_for(&session, "DISCONNECTED", Duration::from_secs(10));
    assert!(screen.contains("payroll"), "last data kept:\n{screen}");
    redis.restart();
    rt.block_on(async {
        let _: () = redis
            .cmd(&[
                "SET",
                "leasehold:{after}",
                "lh1:00000000000000bb:svc-9",
                "PX",
                "60000",
            ])
            .await
            .unwrap();
    });
    let screen = wait_for(&session, "after", Duration::from_secs(15));
    assert!(screen.contains("connected"), "{screen}");
    tmux(&["send-keys", "-t", &session, "q"]);
    let start = Instant::now();
    while tmux(&["has-session", "-t", &session]).is_empty()
        && Command::new("tmux")
            .args(["has-session", "-t", &session])
            .status()
            .is_ok_and(|s| s.success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "watch did not quit on q"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_without_redis_shows_a_live_simulation() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "tmux is required in CI (.ci/run installs it)"
        );
        return;
    }
    let session = format!("lh-sim-{}", std::process::id());
    let _cleanup = KillOnDrop(session.clone());
    let cmd = format!("{} watch", env!("CARGO_BIN_EXE_leasehold"));
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "110",
        "-y",
        "24",
        &cmd,
    ]);
    let screen = wait_for(&session, "lock0", Duration::from_secs(10));
    assert!(screen.contains("simulator: calm"), "{screen}");
    tmux(&["send-keys", "-t", &session, "4"]);
    let screen = wait_for(&session, "acquired", Duration::from_secs(10));
    assert!(screen.contains("Events ("), "{screen}");
    tmux(&["send-keys", "-t", &session, "q"]);
    let start = Instant::now();
    while Command::new("tmux")
        .args(["has-session", "-t", &session])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "watch did not quit on q"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_replay_shows_the_lanes_and_jumps_to_a_finding() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "tmux is required in CI (.ci/run installs it)"
        );
        return;
    }
    // a replay line as `leasehold sim` prints it, of a gc-pause seed whose fence rejects a write
    let line = (0..300)
        .find_map(|seed| {
            let cfg =
                leasehold_sim::config_for("gc-pause", seed, &leasehold_sim::Overrides::default())
                    .ok()?;
            let rec = leasehold_tui::source::sim::record(&cfg, seed).ok()?;
            let telling = rec.writes.iter().any(|w| !w.accepted)
                && rec
                    .findings
                    .iter()
                    .any(|f| f.property == "mutual_exclusion");
            telling.then_some(rec.replay)
        })
        .expect("a gc-pause seed with a rejected write and a mutual_exclusion finding");
    let seed_label = line
        .split("--seed ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    let session = format!("lh-replay-{}", std::process::id());
    let _cleanup = KillOnDrop(session.clone());
    let cmd = format!(
        "{} watch --replay '{line}' --speed 2",
        env!("CARGO_BIN_EXE_leasehold")
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "32",
        &cmd,
    ]);
    let screen = wait_for(
        &session,
        &format!("Simulation gc-pause seed {seed_label} "),
        Duration::from_secs(15),
    );
    for lane in ["c0 ", "c4 ", "faults", "findings", "believes it holds"] {
        assert!(screen.contains(lane), "{lane:?} missing:\n{screen}");
    }
    // pause, then jump to the next finding: its explanation is shown
    tmux(&["send-keys", "-t", &session, " "]);
    wait_for(&session, "PAUSED", Duration::from_secs(5));
    tmux(&["send-keys", "-t", &session, "]"]);
    let screen = wait_for(&session, "mutual_exclusion at", Duration::from_secs(5));
    assert!(
        screen.contains("Finding ") && screen.contains("finding outside this fault model"),
        "{screen}"
    );
    // play on at x64 to the end: the fence's rejection of the stale write shows as a red cross
    for _ in 0..5 {
        tmux(&["send-keys", "-t", &session, ">"]);
    }
    tmux(&["send-keys", "-t", &session, " "]);
    let screen = wait_for(&session, "PAUSED", Duration::from_secs(15));
    let end = screen
        .split(" of ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    let screen = wait_for(
        &session,
        &format!("t {end} of {end}"),
        Duration::from_secs(15),
    );
    assert!(screen.contains('✗'), "a rejected write:\n{screen}");
    // the Server screen shows the simulator's figures
    tmux(&["send-keys", "-t", &session, "5"]);
    wait_for(&session, "events/s", Duration::from_secs(5));
    tmux(&["send-keys", "-t", &session, "q"]);
    let start = Instant::now();
    while Command::new("tmux")
        .args(["has-session", "-t", &session])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "watch did not quit on q"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_replay_lines_and_speeds_are_usage_errors() {
    for args in [
        &["watch", "--replay", "leasehold sim --scenario gc-pause"][..],
        &[
            "watch",
            "--replay",
            "leasehold sim --scenario gc-pause --seed 1 --bogus 2",
        ][..],
        &["watch", "--scenario", "gc-pause", "--speed", "1000"][..],
    ] {
        let out = leasehold(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn force_release_evicts_exactly_the_lease_shown_and_aborts_when_it_changed_hands() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "tmux is required in CI (.ci/run installs it)"
        );
        return;
    }
    let Some(redis) = RedisServer::start("watch_force") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (locker, lease) = rt.block_on(async {
        let mut o = leasehold_redis::LockerOptions::new(redis.url()).ttl(Duration::from_secs(30));
        o.holder = Some("svc-old".into());
        let locker = o.build().await.unwrap();
        let lease = locker
            .lock("stuck-job", Duration::from_secs(5))
            .await
            .unwrap();
        // a second lock, with less time left (so listed first), set by hand
        let _: () = redis
            .cmd(&[
                "SET",
                "leasehold:{raced}",
                "lh1:00000000000000aa:svc-a",
                "PX",
                "20000",
            ])
            .await
            .unwrap();
        (locker, lease)
    });
    let token = lease.token();
    let session = format!("lh-force-{}", std::process::id());
    let cmd = format!(
        "{} watch --redis {} --allow-writes --refresh 200ms",
        env!("CARGO_BIN_EXE_leasehold"),
        redis.url()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "200",
        "-y",
        "20",
        &cmd,
    ]);
    wait_for(&session, "stuck-job", Duration::from_secs(10));
    wait_for(&session, "svc-a", Duration::from_secs(10));
    // X on the first row: the prompt names lock, prefix, holder and token
    tmux(&["send-keys", "-t", &session, "X"]);
    let screen = wait_for(&session, "y to confirm", Duration::from_secs(5));
    assert!(
        screen.contains("lock \"raced\" (prefix leasehold) held by svc-a token -"),
        "{screen}"
    );
    // the lock changes hands before y: nothing is deleted, the operator is told
    rt.block_on(async {
        let _: () = redis
            .cmd(&[
                "SET",
                "leasehold:{raced}",
                "lh1:00000000000000bb:svc-b",
                "PX",
                "20000",
            ])
            .await
            .unwrap();
    });
    tmux(&["send-keys", "-t", &session, "y"]);
    let screen = wait_for(&session, "not released", Duration::from_secs(10));
    assert!(
        screen.contains("changed hands") && screen.contains("now held by svc-b"),
        "{screen}"
    );
    let now: String = rt
        .block_on(redis.cmd(&["GET", "leasehold:{raced}"]))
        .unwrap();
    assert_eq!(
        now, "lh1:00000000000000bb:svc-b",
        "the new holder kept its lease"
    );
    // with that lock gone, the leasehold lease is the first row: release it as shown
    let _: i64 = rt
        .block_on(redis.cmd(&["DEL", "leasehold:{raced}"]))
        .unwrap();
    wait_for(&session, "Locks (1)", Duration::from_secs(10));
    tmux(&["send-keys", "-t", &session, "X"]);
    let screen = wait_for(&session, "y to confirm", Duration::from_secs(5));
    assert!(
        screen.contains(&format!(
            "lock \"stuck-job\" (prefix leasehold) held by svc-old token {token}"
        )),
        "{screen}"
    );
    tmux(&["send-keys", "-t", &session, "y"]);
    wait_for(
        &session,
        "force-released stuck-job",
        Duration::from_secs(10),
    );
    wait_for(&session, "leasehold free", Duration::from_secs(10));
    let fence: u64 = rt
        .block_on(redis.cmd(&["GET", "leasehold:{stuck-job}:fence"]))
        .unwrap();
    assert!(
        fence > token,
        "the fence advanced past the evicted holder's token ({fence} vs {token})"
    );
    // the evicted holder learns it lost the lease
    let reason = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(12), lease.lost()).await })
        .unwrap();
    assert_eq!(reason, leasehold_redis::LostReason::Deleted);
    tmux(&["send-keys", "-t", &session, "q"]);
    drop(locker);
}
