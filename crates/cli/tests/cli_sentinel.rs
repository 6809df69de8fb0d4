//! `leasehold inspect` through a `redis+sentinel://` URL reads the primary the Sentinels name.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use leasehold_tests::RedisServer;
use leasehold_tests::topology::Sentinel;
use serde_json::Value;

const MASTER: &str = "dashmaster";

#[test]
fn inspect_follows_a_sentinel_url_to_the_primary() {
    let Some(primary) = RedisServer::start("cli_sentinel") else {
        return;
    };
    let Some(sentinel) = Sentinel::start("cli_sentinel", MASTER, primary.port, 1) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let _: () = primary
            .cmd(&[
                "SET",
                "leasehold:{nightly}",
                "lh1:00000000000000aa:batch-1",
                "PX",
                "600000",
            ])
            .await
            .unwrap();
        let start = Instant::now();
        while sentinel.primary(MASTER).await.is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the Sentinel names no primary"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let url = format!("redis+sentinel://127.0.0.1:{}/{MASTER}", sentinel.port);
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["inspect", "--redis", &url, "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "nightly")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(row["holder"], "batch-1");

    // a master name the Sentinel does not know: a clear error, exit 1
    let bad = format!("redis+sentinel://127.0.0.1:{}/nosuchmaster", sentinel.port);
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["inspect", "--redis", &bad, "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nosuchmaster"), "{err}");
}
