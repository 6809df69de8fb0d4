//! `leasehold exec` against a real redis-server.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use leasehold_tests::RedisServer;

fn exec(url: &str, extra: &[&str], name: &str, cmd: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["exec", "--redis", url, "--ttl", "1s"])
        .args(extra)
        .arg(name)
        .arg("--")
        .args(cmd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

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
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    assert_eq!(parts.next(), Some("job"));
    assert!(parts.next().unwrap().parse::<u64>().unwrap() > 0);
}

#[test]
fn a_held_lock_exits_75_with_the_reason() {
    let Some(redis) = RedisServer::start("exec_held") else {
        return;
    };
    let holder = exec(&redis.url(), &[], "busy", &["sleep", "5"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = exec(&redis.url(), &["--wait", "300ms"], "busy", &["true"])
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("could not acquire") && err.contains("held by"),
        "{err}"
    );
    let mut holder = holder;
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
        &["--grace", "500ms"],
        "lost",
        &["sleep", "30"],
    );
    std::thread::sleep(Duration::from_millis(700));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let deleted: i64 = rt
        .block_on(redis.cmd(&["DEL", "leasehold:{lost}"]))
        .unwrap();
    assert_eq!(
        deleted, 1,
        "the lease key should exist while the command runs"
    );
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
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
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["exec", "--ttl", "soon", "x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ttl"));
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["exec", "--redis", "http://nope", "x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("scheme"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
