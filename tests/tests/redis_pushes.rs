//! Pushes against a real redis-server: a holder's own script writes come back as invalidation
//! pushes (Redis's NOLOOP does not cover scripts, and the push follows the reply); the adapter
//! drops them as echoes, so a held lease costs one script per extension; a foreign change still
//! reaches the holder within a round trip.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use leasehold_redis::{LockEvent, LockerOptions, LostReason, WakeMode};
use leasehold_tests::RedisServer;

async fn script_calls(redis: &RedisServer) -> u64 {
    let info: String = redis.cmd(&["INFO", "commandstats"]).await.unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split(':')
                .nth(1)?
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_costs_one_script_per_extension() {
    let Some(redis) = RedisServer::start("pushes_one_script") else {
        return;
    };
    let locker = LockerOptions::new(redis.url())
        .ttl(Duration::from_millis(900))
        .build()
        .await
        .unwrap();
    assert_eq!(locker.wake_mode(), WakeMode::Push);
    let mut events = locker.subscribe();
    let lease = locker.try_lock("held").await.unwrap();
    let before = script_calls(&redis).await;
    // hold through several extensions (every 300 ms)
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let after = script_calls(&redis).await;
    assert!(lease.is_held());
    let mut extended = 0u64;
    while let Ok(ev) = events.try_recv() {
        if matches!(ev, LockEvent::Extended { .. }) {
            extended += 1;
        }
    }
    assert!(extended >= 3, "only {extended} extensions in 1.6 s");
    let scripts = after - before;
    // an extension in flight when a count was read may fall on either side of it
    assert!(
        scripts <= extended + 1,
        "{scripts} scripts for {extended} extensions: the holder re-checked its own writes"
    );
    lease.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_delete_reaches_the_holder_within_a_round_trip() {
    let Some(redis) = RedisServer::start("pushes_foreign_delete") else {
        return;
    };
    // extensions every 10 s: only the push can tell the holder early
    let locker = LockerOptions::new(redis.url())
        .ttl(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    for round in 0..3 {
        let lease = locker.try_lock("watched").await.unwrap();
        // let the echo of our own grant arrive first, then delete the key from outside
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _: i64 = redis.cmd(&["DEL", "leasehold:{watched}"]).await.unwrap();
        let lost = tokio::time::timeout(Duration::from_secs(5), lease.lost()).await;
        assert_eq!(
            lost.ok(),
            Some(LostReason::Deleted),
            "round {round}: the holder missed a foreign delete"
        );
    }
}
