//! `leasehold exec --compat rueidislock[:K]` against a real redis-server: the command runs under
//! rueidislock's keys (`rueidislock:<i>:<name>`, absolute `PXAT` expiry, no fence counter), a
//! rueidislock-style holder (`SET NX PXAT` on a majority of the keys) keeps exec out, and a bad
//! `--compat` is a usage error naming the flag.
#![allow(clippy::unwrap_used)]

mod exec_common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use exec_common::*;
use leasehold_tests::RedisServer;

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn wall_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[test]
fn exec_holds_rueidislocks_keys_and_a_rueidislock_holder_keeps_it_out() {
    let Some(redis) = RedisServer::start("exec_compat") else {
        return;
    };
    // no token under --compat: LEASEHOLD_TOKEN is unset (even if inherited), never 0
    let holder = leasehold()
        .env("LEASEHOLD_TOKEN", "99")
        .args([
            "exec",
            "--redis",
            &redis.url(),
            "--ttl",
            "3s",
            "--grace",
            "300ms",
        ])
        .args(["--compat", "rueidislock:2", "shared", "--"])
        .args(["sh", "-c", "test -z \"${LEASEHOLD_TOKEN+set}\" && sleep 3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let mut keys: Vec<String> = block(redis.cmd(&["KEYS", "*"])).unwrap();
    keys.sort();
    assert!(keys.len() >= 2, "{keys:?}");
    assert!(
        keys.iter().all(|k| [
            "rueidislock:0:shared",
            "rueidislock:1:shared",
            "rueidislock:2:shared"
        ]
        .contains(&k.as_str())),
        "{keys:?}"
    );
    let at: u64 = block(redis.cmd(&["PEXPIRETIME", &keys[0]])).unwrap();
    assert!(at > wall_ms(), "an absolute expiry in the future: {at}");
    // a rueidislock acquire (SET NX PXAT) of the held keys gets nil
    let at = (wall_ms() + 5_000).to_string();
    for k in &keys {
        let r: Option<String> =
            block(redis.cmd(&["SET", k, "rueidis", "NX", "PXAT", &at])).unwrap();
        assert_eq!(
            r, None,
            "{k} was free to a rueidislock client while exec held it"
        );
    }
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let left: Vec<String> = block(redis.cmd(&["KEYS", "*"])).unwrap();
    assert!(left.is_empty(), "released: {left:?}");

    // a rueidislock holder of two of the three keys: exec cannot have the lock
    for i in [0, 2] {
        let k = format!("rueidislock:{i}:shared");
        let _: Option<String> =
            block(redis.cmd(&["SET", &k, "rueidis", "NX", "PXAT", &at])).unwrap();
    }
    let out = exec(
        &redis.url(),
        &["--compat", "rueidislock", "--wait", "300ms"],
        "shared",
        &["true"],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let v: Option<String> = block(redis.cmd(&["GET", "rueidislock:1:shared"])).unwrap();
    assert_eq!(v, None, "exec's failed attempt cleaned up the key it got");
}

#[test]
fn a_bad_compat_is_a_usage_error_naming_the_flag() {
    for bad in ["redsync", "rueidislock:0", "rueidislock:9", "rueidislock:x"] {
        let out = leasehold()
            .args(["exec", "--compat", bad, "x", "--", "true"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("--compat") && err.contains("1 to 8"),
            "{bad}: {err}"
        );
    }
}
