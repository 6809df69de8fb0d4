//! `leasehold exec` against a real redis-server: exit statuses, option and Redis errors
//! (permanent fail fast, transient retried), duplicate instances, RESP2. Stopping the command
//! (signals, loss, the deadline, Ctrl-Z, SIGKILL) is in `cli_exec_stop.rs`.
#![allow(clippy::unwrap_used)]

mod exec_common;

use std::time::{Duration, Instant};

use exec_common::*;
use leasehold_tests::{LatencyProxy, RedisServer};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn runs_the_command_with_its_token_and_exits_with_its_status() {
    let Some(redis) = RedisServer::start("exec_status") else {
        return;
    };
    let out = exec(
        &redis.url(),
        &[],
        "job",
        &[
            "sh",
            "-c",
            "echo \"$LEASEHOLD_NAME $LEASEHOLD_TOKEN\"; exit 7",
        ],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    assert_eq!(parts.next(), Some("job"));
    assert!(parts.next().unwrap().parse::<u64>().unwrap() > 0);
    let left: i64 = rt()
        .block_on(redis.cmd(&["EXISTS", "leasehold:{job}"]))
        .unwrap();
    assert_eq!(left, 0, "the lock is released when the command exits");
}

#[test]
fn a_held_lock_exits_75_with_the_reason() {
    let Some(redis) = RedisServer::start("exec_held") else {
        return;
    };
    let mut holder = exec(&redis.url(), &[], "busy", &["sleep", "5"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = exec(&redis.url(), &["--wait", "300ms"], "busy", &["true"])
        .wait_with_output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("could not acquire") && err.contains("held by"),
        "{err}"
    );
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn a_lost_lease_terminates_the_command_and_exits_76() {
    let Some(redis) = RedisServer::start("exec_lost") else {
        return;
    };
    let child = exec(
        &redis.url(),
        &["--grace", "300ms"],
        "lost",
        &["sleep", "30"],
    );
    std::thread::sleep(Duration::from_millis(700));
    let deleted: i64 = rt()
        .block_on(redis.cmd(&["DEL", "leasehold:{lost}"]))
        .unwrap();
    assert_eq!(
        deleted, 1,
        "the lease key should exist while the command runs"
    );
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(76), "{err}");
    assert!(err.contains("lost") && err.contains("deleted"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn bad_durations_and_urls_are_usage_errors() {
    let out = leasehold()
        .args(["exec", "--ttl", "soon", "x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--ttl"));
    let out = leasehold()
        .args(["exec", "--redis", "http://nope", "x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("scheme"), "{}", stderr(&out));
}

#[test]
fn option_errors_name_execs_own_flags_and_the_valid_range() {
    for (args, flag, range) in [
        (&["--ttl", "10ms"][..], "invalid --ttl 10ms", "500ms"),
        (&["--ttl", "1ms"][..], "invalid --ttl 1ms", "500ms"),
        (
            &["--ttl", "1500us"][..],
            "invalid --ttl",
            "whole milliseconds",
        ),
        (
            &["--ttl", "3s", "--grace", "5s"][..],
            "invalid --grace 5s",
            "1s 168ms",
        ),
        (&["--wait", "400years"][..], "invalid --wait", "365d"),
    ] {
        let out = leasehold()
            .args(["exec", "--redis", "redis://127.0.0.1:1"])
            .args(args)
            .args(["x", "--", "true"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag) && err.contains(range), "{args:?}: {err}");
        for internal in ["slot_wait", "extend_interval"] {
            assert!(!err.contains(internal), "{args:?}: {err}");
        }
    }
}

#[test]
fn a_tiny_wait_on_a_free_lock_still_makes_an_attempt() {
    let Some(redis) = RedisServer::start("exec_tiny_wait") else {
        return;
    };
    for wait in ["1ns", "50ms", "150ms"] {
        let out = exec(&redis.url(), &["--wait", wait], "tiny", &["true"])
            .wait_with_output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "--wait {wait}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn the_same_server_twice_is_a_usage_error_naming_both_urls() {
    let (Some(a), Some(b)) = (
        RedisServer::start("exec_dup_a"),
        RedisServer::start("exec_dup_b"),
    ) else {
        return;
    };
    let url = a.url();
    let out = leasehold()
        .args(["exec", "--redis", &url, "--redis", &url, "--redis", &url])
        .args(["dup", "--", "true"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.matches(&url).count() >= 2 && err.contains("same"),
        "{err}"
    );
    // a different spelling of the same server: recognised by its run_id
    let other = format!("redis://localhost:{}", a.port);
    let out = leasehold()
        .args([
            "exec",
            "--redis",
            &url,
            "--redis",
            &b.url(),
            "--redis",
            &other,
        ])
        .args(["dup", "--", "true"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&url) && err.contains(&other) && err.contains("run_id"),
        "{err}"
    );
    // three distinct servers run the command
    let c = RedisServer::start("exec_dup_c").unwrap();
    let out = leasehold()
        .args([
            "exec",
            "--redis",
            &url,
            "--redis",
            &b.url(),
            "--redis",
            &c.url(),
        ])
        .args(["dup", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn permanent_errors_fail_fast_with_what_redis_said() {
    let Some(redis) = RedisServer::start_with(
        "exec_auth",
        &[
            "--user",
            "default",
            "on",
            ">s3cret",
            "~*",
            "&*",
            "+@all",
            "--user",
            "noscript",
            "on",
            ">pw",
            "~*",
            "&*",
            "+@all",
            "-@scripting",
        ],
    ) else {
        return;
    };
    let port = redis.port;
    let rt = rt();
    let client = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{port}")).unwrap();
    rt.block_on(async {
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("LPUSH")
            .arg("leasehold:{listy}")
            .arg("x")
            .query_async(&mut c)
            .await
            .unwrap();
    });
    let wrong = format!("redis://:wrong@127.0.0.1:{port}");
    let none = format!("redis://127.0.0.1:{port}");
    let good = format!("redis://:s3cret@127.0.0.1:{port}");
    let db99 = format!("redis://:s3cret@127.0.0.1:{port}/99");
    let noscript = format!("redis://noscript:pw@127.0.0.1:{port}");
    for (url, name, expect) in [
        (wrong.as_str(), "x", "WRONGPASS"),
        (none.as_str(), "x", "NOAUTH"),
        (good.as_str(), "listy", "WRONGTYPE"),
        (db99.as_str(), "x", "DB index"),
        (noscript.as_str(), "x", "NOPERM"),
        ("redis://no-such-host.invalid:6379", "x", "lookup"),
    ] {
        let start = Instant::now();
        let out = leasehold()
            .args(["exec", "--redis", url, "--wait", "30s", name, "--", "true"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{url}: {err}");
        assert!(err.contains(expect), "{url}: {err}");
        assert!(
            !err.contains("s3cret") && !err.contains(":wrong@") && !err.contains(":pw@"),
            "{err}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{url}: took {:?} (should not wait for --wait 30s)",
            start.elapsed()
        );
    }
}

#[test]
fn an_untrusted_tls_certificate_exits_78() {
    let Some(redis) = RedisServer::start_tls("exec_tls") else {
        return;
    };
    let start = Instant::now();
    let out = leasehold()
        .args([
            "exec",
            "--redis",
            &redis.url(),
            "--wait",
            "30s",
            "x",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10), "{err}");
}

#[test]
fn a_signal_while_waiting_ends_the_wait_without_running_the_command() {
    let Some(redis) = RedisServer::start("exec_wait_signal") else {
        return;
    };
    let dir = scratch("wait_signal");
    let ran = dir.join("ran");
    let mut holder = exec(&redis.url(), &[], "w", &["sleep", "10"]);
    std::thread::sleep(Duration::from_millis(500));
    let script = format!("touch {}", ran.display());
    let mut waiter = exec(
        &redis.url(),
        &["--wait", "30s"],
        "w",
        &["sh", "-c", &script],
    );
    std::thread::sleep(Duration::from_millis(500));
    kill(
        Pid::from_raw(i32::try_from(waiter.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_child(&mut waiter, Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(143));
    assert!(!ran.exists(), "the command ran after the signal");
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn refused_connections_are_retried_within_wait_and_end_75_with_the_cause() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let out = leasehold()
        .args(["exec", "--redis", &format!("redis://127.0.0.1:{port}")])
        .args(["--wait", "1500ms", "x", "--", "true"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(1400), "{err}");
}

#[test]
fn resp2_urls_work_by_polling() {
    let Some(redis) = RedisServer::start("exec_resp2") else {
        return;
    };
    let url = format!("{}?protocol=resp2", redis.url());
    let mut holder = exec(&url, &[], "r2", &["sleep", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    let out = exec(&url, &["--wait", "10s"], "r2", &["echo", "second"])
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "second");
    assert_eq!(holder.wait().unwrap().code(), Some(0));
}

/// A server that accepts the connection but never answers (the link cut behind the proxy): a
/// transient timeout, retried within --wait, ending 75 with the timeout as the cause.
#[test]
fn a_silent_server_is_retried_within_wait_and_ends_75_with_a_timeout() {
    let Some(redis) = RedisServer::start("exec_silent") else {
        return;
    };
    let rt = rt();
    let proxy = rt
        .block_on(LatencyProxy::start(redis.port, Duration::ZERO))
        .unwrap();
    proxy.partition();
    let start = Instant::now();
    let out = leasehold()
        .args([
            "exec",
            "--redis",
            &proxy.url(),
            "--wait",
            "1s",
            "x",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("timed out"), "{err}");
    // --wait counts connecting too (the connect attempt alone times out after 2 s)
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "took {:?}: {err}",
        start.elapsed()
    );
}
