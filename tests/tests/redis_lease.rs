//! Leases against a real redis-server: acquire/release, tokens, extension, loss by delete or
//! overwrite, force, run(), drop-release, events.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use leasehold_redis::{
    AcquireError, LockError, LockEvent, LockerOptions, LostReason, RunOutcome, WakeMode,
};
use leasehold_tests::RedisServer;

fn opts(url: &str) -> LockerOptions {
    LockerOptions::new(url)
        .ttl(Duration::from_millis(1_000))
        .slot_wait(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncontended_lock_release_and_increasing_tokens() {
    let Some(redis) = RedisServer::start("uncontended_lock_release") else {
        return;
    };
    let locker = opts(&redis.url()).build().await.unwrap();
    let mut events = locker.subscribe();
    let a = locker.lock("jobs", Duration::from_secs(5)).await.unwrap();
    assert!(a.is_held());
    let t1 = a.token();
    a.release().await.unwrap();
    let b = locker.try_lock("jobs").await.unwrap();
    assert!(b.token() > t1, "{} > {t1}", b.token());
    // the key carries our holder id; the fence counter the token
    let v: String = redis.cmd(&["GET", "leasehold:{jobs}"]).await.unwrap();
    assert!(v.starts_with("lh1:"), "{v}");
    let fence: u64 = redis.cmd(&["GET", "leasehold:{jobs}:fence"]).await.unwrap();
    assert_eq!(fence, b.token());
    b.release().await.unwrap();
    let gone: Option<String> = redis.cmd(&["GET", "leasehold:{jobs}"]).await.unwrap();
    assert_eq!(gone, None);
    assert_eq!(locker.wake_mode(), WakeMode::Push);
    let first = events.recv().await.unwrap();
    assert!(
        matches!(first, LockEvent::Acquired { token, .. } if token == t1),
        "{first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_survives_many_ttls_by_extension() {
    let Some(redis) = RedisServer::start("lease_survives") else {
        return;
    };
    let locker = LockerOptions::new(redis.url())
        .ttl(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let lease = locker.lock("long", Duration::from_secs(5)).await.unwrap();
    let held = tokio::time::timeout(Duration::from_millis(2_000), lease.lost()).await;
    assert!(held.is_err(), "lost after all: {held:?}");
    assert!(lease.is_held());
    let pttl: i64 = redis.cmd(&["PTTL", "leasehold:{long}"]).await.unwrap();
    assert!(pttl > 0 && pttl <= 300, "pttl {pttl}");
    lease.release().await.unwrap();
}

async fn lost_within(lease: &leasehold_redis::Lease, within: Duration) -> (LostReason, Duration) {
    let start = Instant::now();
    let r = tokio::time::timeout(within, lease.lost())
        .await
        .expect("loss not reported in time");
    (r, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_overwrite_end_the_lease_within_a_round_trip() {
    let Some(redis) = RedisServer::start("delete_and_overwrite") else {
        return;
    };
    // a long extension interval: only the push re-check can explain a fast loss
    let locker = LockerOptions::new(redis.url())
        .ttl(Duration::from_secs(10))
        .extend_interval(Duration::from_secs(3))
        .build()
        .await
        .unwrap();
    let lease = locker.lock("del", Duration::from_secs(5)).await.unwrap();
    let _: i64 = redis.cmd(&["DEL", "leasehold:{del}"]).await.unwrap();
    let (reason, took) = lost_within(&lease, Duration::from_secs(2)).await;
    assert_eq!(reason, LostReason::Deleted);
    assert!(
        took < Duration::from_millis(500),
        "push re-check took {took:?}"
    );
    assert!(matches!(
        lease.release().await,
        Err(LockError::Lost(LostReason::Deleted))
    ));

    let lease = locker.lock("ovr", Duration::from_secs(5)).await.unwrap();
    let _: () = redis
        .cmd(&["SET", "leasehold:{ovr}", "lh1:0000000000000001:intruder"])
        .await
        .unwrap();
    let (reason, _) = lost_within(&lease, Duration::from_secs(2)).await;
    assert_eq!(
        reason,
        LostReason::Taken {
            holder: Some("intruder".into())
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_mode_detects_loss_at_the_next_extension() {
    let Some(redis) = RedisServer::start("polling_loss") else {
        return;
    };
    let mut o = LockerOptions::new(redis.url()).ttl(Duration::from_millis(900));
    o.push = false;
    let locker = o.build().await.unwrap();
    assert_eq!(locker.wake_mode(), WakeMode::Polling);
    let lease = locker.lock("p", Duration::from_secs(5)).await.unwrap();
    let _: i64 = redis.cmd(&["DEL", "leasehold:{p}"]).await.unwrap();
    let (reason, took) = lost_within(&lease, Duration::from_secs(2)).await;
    assert_eq!(reason, LostReason::Deleted);
    assert!(
        took <= Duration::from_millis(900),
        "one extension interval (300ms) plus slack: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_takes_over_and_the_old_holder_learns_it() {
    let Some(redis) = RedisServer::start("force") else {
        return;
    };
    let a = opts(&redis.url()).build().await.unwrap();
    let mut ob = opts(&redis.url());
    ob.holder = Some("operator".into());
    let b = ob.build().await.unwrap();
    let old = a.lock("f", Duration::from_secs(5)).await.unwrap();
    match b.try_lock("f").await {
        Err(LockError::Acquire(AcquireError::Contended {
            remaining: Some(r), ..
        })) => assert!(r <= Duration::from_secs(1)),
        other => panic!("expected contention, got {other:?}"),
    }
    let new = b.force_lock("f").await.unwrap();
    assert!(new.token() > old.token());
    let (reason, _) = lost_within(&old, Duration::from_secs(2)).await;
    assert_eq!(
        reason,
        LostReason::Taken {
            holder: Some("operator".into())
        }
    );
    new.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_cancels_the_closure_when_the_lease_is_lost() {
    let Some(redis) = RedisServer::start("run") else {
        return;
    };
    let locker = opts(&redis.url()).build().await.unwrap();
    let done = locker
        .run("r", Duration::from_secs(5), async { 7 })
        .await
        .unwrap();
    assert!(matches!(done, RunOutcome::Finished(7)));
    let url = redis.url();
    let outcome = locker
        .run("r", Duration::from_secs(5), async move {
            let c = redis::Client::open(url).unwrap();
            let mut conn = c.get_multiplexed_async_connection().await.unwrap();
            let _: i64 = redis::cmd("DEL")
                .arg("leasehold:{r}")
                .query_async(&mut conn)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            8
        })
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Lost(LostReason::Deleted)),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_lease_or_an_acquire_leaves_no_key_behind() {
    let Some(redis) = RedisServer::start("drop_release") else {
        return;
    };
    let locker = opts(&redis.url()).build().await.unwrap();
    let lease = locker.lock("d", Duration::from_secs(5)).await.unwrap();
    drop(lease);
    let start = Instant::now();
    loop {
        let v: Option<String> = redis.cmd(&["GET", "leasehold:{d}"]).await.unwrap();
        if v.is_none() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "key still there after drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // a waiter dropped mid-wait must not leave its key either
    let holder = locker.lock("d", Duration::from_secs(5)).await.unwrap();
    let other = opts(&redis.url()).build().await.unwrap();
    let waiting = tokio::time::timeout(
        Duration::from_millis(100),
        other.lock("d", Duration::from_secs(5)),
    )
    .await;
    assert!(waiting.is_err(), "the waiter should still be waiting");
    holder.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v: Option<String> = redis.cmd(&["GET", "leasehold:{d}"]).await.unwrap();
    assert_eq!(v, None, "cancelled waiter left its key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_wakes_within_about_a_round_trip_of_the_release() {
    let Some(redis) = RedisServer::start("push_wake") else {
        return;
    };
    let mut o = opts(&redis.url());
    o.lock.backoff_min = Duration::from_millis(500);
    o.lock.backoff_max = Duration::from_secs(2);
    let a = o.clone().build().await.unwrap();
    let b = o.build().await.unwrap();
    assert_eq!(b.wake_mode(), WakeMode::Push);
    let lease = a.lock("w", Duration::from_secs(5)).await.unwrap();
    let waiter = tokio::spawn(async move {
        let l = b.lock("w", Duration::from_secs(5)).await.unwrap();
        (Instant::now(), l.token())
    });
    tokio::time::sleep(Duration::from_millis(600)).await; // the waiter is in a long backoff now
    let released_at = Instant::now();
    lease.release().await.unwrap();
    let (acquired_at, _) = waiter.await.unwrap();
    let gap = acquired_at - released_at;
    // polling alone would sleep up to 2 s here
    assert!(gap < Duration::from_millis(150), "hand-off gap {gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_to_a_capped_stream_only_when_asked() {
    let Some(redis) = RedisServer::start("publish") else {
        return;
    };
    let quiet = opts(&redis.url()).build().await.unwrap();
    quiet
        .lock("e", Duration::from_secs(5))
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    let none: i64 = redis.cmd(&["XLEN", "leasehold:events"]).await.unwrap();
    assert_eq!(none, 0, "off by default");
    let mut o = opts(&redis.url());
    o.publish_events = true;
    o.holder = Some("svc-a".into());
    let loud = o.build().await.unwrap();
    let lease = loud.lock("e", Duration::from_secs(5)).await.unwrap();
    let token = lease.token();
    lease.release().await.unwrap();
    let start = Instant::now();
    loop {
        let n: i64 = redis.cmd(&["XLEN", "leasehold:events"]).await.unwrap();
        if n >= 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "events not published"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let entries: redis::Value = redis
        .cmd(&["XRANGE", "leasehold:events", "-", "+"])
        .await
        .unwrap();
    let text = format!("{entries:?}");
    assert!(
        text.contains("acquired") && text.contains("released") && text.contains("svc-a"),
        "{text}"
    );
    assert!(text.contains(&token.to_string()), "{text}");
}
