//! Replication-acknowledged leases (`LockerOptions::replicas`) against a real primary and
//! replica (`--replicaof`): a grant counts only once `WAIT` confirms the replica has it, and with
//! the replica stopped the outcome is the typed "not replicated" one, its key deleted.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use leasehold_redis::{LockError, LockerOptions, LostReason};
use leasehold_tests::RedisServer;

fn opts(url: &str) -> LockerOptions {
    LockerOptions::new(url)
        .ttl(Duration::from_millis(900))
        .slot_wait(Duration::from_millis(500))
        // WAIT's most: a loaded 2-core machine can take over 100 ms to ack
        .replicas(1, Duration::from_millis(300))
}

/// GET `key` on `server` until it is gone, at most 2 s; whether it went.
async fn gone(server: &RedisServer, key: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let v: Option<String> = server.cmd(&["GET", key]).await.unwrap();
        if v.is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_count_once_the_replica_has_them_and_not_without_it() {
    let Some(primary) = RedisServer::start("replication_primary") else {
        return;
    };
    let Some(replica) = RedisServer::start_replica("replication_replica", &primary).await else {
        return;
    };
    let locker = opts(&primary.url()).build().await.unwrap();

    // acknowledged: the moment the lease is ours, the replica already has its key and counter
    let a = locker.try_lock("jobs").await.unwrap();
    let on_replica: Option<String> = replica.cmd(&["GET", "leasehold:{jobs}"]).await.unwrap();
    assert!(
        on_replica.as_deref().is_some_and(|v| v.starts_with("lh1:")),
        "the replica must hold the key when the grant counts: {on_replica:?}"
    );
    let fence: u64 = replica
        .cmd(&["GET", "leasehold:{jobs}:fence"])
        .await
        .unwrap();
    assert_eq!(fence, a.token(), "the replica has the lease's token");

    // extensions are confirmed too: the lease outlives several ttls
    let held = tokio::time::timeout(Duration::from_millis(2_000), a.lost()).await;
    assert!(
        held.is_err(),
        "lost although the replica acknowledges: {held:?}"
    );
    a.release().await.unwrap();

    // the replica stopped (SIGSTOP: its link stays open, it just never acknowledges)
    replica.pause();
    let err = locker.try_lock("stopped").await.unwrap_err();
    assert!(
        err.is_not_replicated(),
        "expected not replicated, got {err}"
    );
    assert!(
        err.to_string().contains("not replicated") && err.to_string().contains("0 of 1"),
        "{err}"
    );
    assert!(
        matches!(err, LockError::Acquire(_)) && !err.is_permanent(),
        "transient: {err:?}"
    );
    // the primary granted; the unconfirmed key is deleted, not left to block others for a ttl
    assert!(
        gone(&primary, "leasehold:{stopped}").await,
        "the unconfirmed grant's key must be released"
    );

    // a lease held when the replica stops cannot get an extension confirmed: it runs out
    replica.resume();
    replica.wait_link_up(Duration::from_secs(10)).await;
    let b = locker.try_lock("held").await.unwrap();
    replica.pause();
    let reason = tokio::time::timeout(Duration::from_secs(3), b.lost())
        .await
        .expect("a lease whose extensions are never confirmed must end");
    assert_eq!(reason, LostReason::ExpiredLocally);
    replica.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_without_replicas_never_confirms() {
    let Some(lone) = RedisServer::start("replication_lone") else {
        return;
    };
    // a timed-out WAIT comes back at the server's next hz tick, up to 100 ms late, and the
    // first write of a connection waits twice (NOSCRIPT: the script is loaded and the pipeline
    // sent again); room for both on a loaded machine
    let locker = LockerOptions::new(lone.url())
        .slot_wait(Duration::from_millis(600))
        .replicas(1, Duration::from_millis(5))
        .build()
        .await
        .unwrap();
    let err = locker.try_lock("alone").await.unwrap_err();
    assert!(err.is_not_replicated(), "{err}");
    assert!(gone(&lone, "leasehold:{alone}").await);
    // without replicas(..) the same server grants as always
    let plain = LockerOptions::new(lone.url()).build().await.unwrap();
    plain
        .try_lock("alone")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_not_below_slot_wait_is_rejected_at_build() {
    let Some(lone) = RedisServer::start("replication_options") else {
        return;
    };
    let err = LockerOptions::new(lone.url())
        .slot_wait(Duration::from_millis(50))
        .replicas(1, Duration::from_millis(50))
        .build()
        .await
        .err()
        .unwrap();
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("replication.timeout"), "{err}");
}
