//! Faults against real redis-server processes: contention with a fenced counter, a SIGSTOPped
//! server, kill -9 and restart without persistence, quorum with instances down, slow replies
//! through a latency proxy.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leasehold_redis::{AcquireError, LockError, LockerOptions, LostReason};
use leasehold_tests::{LatencyProxy, RedisServer};

/// Per name: (inside the section, highest token the fenced "resource" accepted, writes).
type Section = (bool, u64, u64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tasks_on_five_names_never_overlap_and_tokens_increase() {
    let Some(redis) = RedisServer::start("fifty_tasks") else {
        return;
    };
    // two lockers, as two processes would have
    let a = LockerOptions::new(redis.url())
        .ttl(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let b = LockerOptions::new(redis.url())
        .ttl(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    // per name: (inside the section, highest token accepted by the fenced "resource", writes)
    let state: Arc<Mutex<HashMap<String, Section>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for t in 0..50 {
        let locker = if t % 2 == 0 { a.clone() } else { b.clone() };
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("n{}", t % 5);
            while Instant::now() < deadline {
                let Ok(lease) = locker.lock(&name, Duration::from_secs(10)).await else {
                    continue;
                };
                {
                    let mut s = state.lock().unwrap();
                    let e = s.entry(name.clone()).or_insert((false, 0, 0));
                    assert!(!e.0, "two holders of {name} at once");
                    assert!(
                        lease.token() > e.1,
                        "token {} after {} on {name}",
                        lease.token(),
                        e.1
                    );
                    *e = (true, lease.token(), e.2 + 1);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                state.lock().unwrap().get_mut(&name).unwrap().0 = false;
                lease.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = state.lock().unwrap();
    let total: u64 = s.values().map(|e| e.2).sum();
    assert_eq!(s.len(), 5);
    assert!(total > 100, "only {total} critical sections in 3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_costs_the_lease_before_validity_ends() {
    let Some(redis) = RedisServer::start("sigstop") else {
        return;
    };
    let locker = LockerOptions::new(redis.url())
        .ttl(Duration::from_millis(1_000))
        .build()
        .await
        .unwrap();
    let lease = locker.lock("s", Duration::from_secs(5)).await.unwrap();
    redis.pause();
    let valid_until = lease.valid_until().unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(3), lease.lost())
        .await
        .expect("loss reported");
    let learned = tokio::time::Instant::now();
    assert!(
        learned <= valid_until + Duration::from_millis(50),
        "learned {:?} after validity",
        learned - valid_until
    );
    assert!(
        matches!(
            reason,
            LostReason::ExpiredLocally | LostReason::Disconnected
        ),
        "{reason:?}"
    );
    // wait past the server-side expiry, then resume: nobody holds a stale lease
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    redis.resume();
    let other = LockerOptions::new(redis.url())
        .ttl(Duration::from_millis(1_000))
        .build()
        .await
        .unwrap();
    let next = other.lock("s", Duration::from_secs(5)).await.unwrap();
    assert!(next.token() > lease.token());
    assert!(matches!(lease.release().await, Err(LockError::Lost(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_keep_increasing_after_a_restart_without_persistence() {
    let Some(mut redis) = RedisServer::start("restart") else {
        return;
    };
    let locker = LockerOptions::new(redis.url())
        .ttl(Duration::from_millis(1_000))
        .build()
        .await
        .unwrap();
    let mut last = 0;
    for _ in 0..20 {
        let l = locker.lock("r", Duration::from_secs(5)).await.unwrap();
        last = l.token();
        l.release().await.unwrap();
    }
    let held = locker.lock("r", Duration::from_secs(5)).await.unwrap();
    redis.restart();
    let reason = tokio::time::timeout(Duration::from_secs(3), held.lost())
        .await
        .expect("loss reported");
    assert!(
        matches!(
            reason,
            LostReason::ServerRestarted | LostReason::Disconnected | LostReason::ExpiredLocally
        ),
        "{reason:?}"
    );
    let after = locker.lock("r", Duration::from_secs(10)).await.unwrap();
    assert!(
        after.token() > last,
        "token {} after restart, {last} before",
        after.token()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_tolerate_one_down_and_report_quorum_loss_promptly() {
    let (Some(a), Some(b), Some(mut c)) = (
        RedisServer::start("quorum_a"),
        RedisServer::start("quorum_b"),
        RedisServer::start("quorum_c"),
    ) else {
        return;
    };
    c.kill();
    let locker = LockerOptions::instances([a.url(), b.url(), c.url()])
        .ttl(Duration::from_millis(1_000))
        .build()
        .await
        .unwrap();
    let lease = locker.try_lock("q").await.unwrap();
    assert!(lease.token() > 0);
    lease.release().await.unwrap();
    drop(b);
    let start = Instant::now();
    match locker.try_lock("q").await {
        Err(LockError::Acquire(AcquireError::QuorumUnreachable {
            granted,
            quorum: 2,
            errors,
        })) => {
            // reported as soon as two of three slots failed, whether or not the live one answered
            assert!(granted <= 1, "{granted}");
            assert_eq!(errors.len(), 2, "{errors:?}");
            assert!(
                errors.iter().all(|(slot, _)| *slot != 0),
                "instance 0 is up: {errors:?}"
            );
        }
        other => panic!("expected a quorum error, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_replies_are_reported_as_slow_not_as_contention() {
    let Some(redis) = RedisServer::start("slow") else {
        return;
    };
    let proxy = LatencyProxy::start(redis.port, Duration::from_millis(40))
        .await
        .unwrap();
    let slow = LockerOptions::new(proxy.url())
        .ttl(Duration::from_secs(2))
        .slot_wait(Duration::from_millis(15))
        .build()
        .await
        .unwrap();
    // the first round has seen no reply yet; the late grant it gets is cleaned up
    let first = slow.try_lock("x").await.unwrap_err();
    assert!(
        matches!(first, LockError::Acquire(AcquireError::SlowReplies { .. })),
        "{first:?}"
    );
    // once a late reply has been observed, the error names the wait that would have sufficed
    let mut second = None;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let e = slow.try_lock("x").await.unwrap_err();
        let LockError::Acquire(err) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(err.reason(), "slow_replies", "{e}");
        if err.suggested_slot_wait().is_some() {
            second = Some(e);
            break;
        }
    }
    let second = second.expect("no reply time observed after 5 slow rounds");
    let LockError::Acquire(err) = &second else {
        panic!("{second:?}")
    };
    let suggested = err
        .suggested_slot_wait()
        .expect("a suggested wait after observing a reply");
    assert!(suggested >= Duration::from_millis(40), "{suggested:?}");
    assert!(
        second.to_string().contains("would have sufficed"),
        "{second}"
    );
    // no key is left behind by the slow attempts
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v: Option<String> = redis.cmd(&["GET", "leasehold:{x}"]).await.unwrap();
    assert_eq!(v, None);
    // the same code without the delay acquires
    let direct = LockerOptions::new(redis.url())
        .ttl(Duration::from_secs(2))
        .slot_wait(Duration::from_millis(15))
        .build()
        .await
        .unwrap();
    direct.try_lock("x").await.unwrap().release().await.unwrap();
}

/// A try right after a slow round: the round's grant arrives late (the link was cut, so the
/// acquire reached Redis only after the round gave up). The next try of the name must not find
/// that late grant of ours and report it as someone else's contention: it waits for the cleanup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_right_after_a_slow_round_does_not_take_its_late_grant_for_contention() {
    let Some(redis) = RedisServer::start("late_own_grant") else {
        return;
    };
    let proxy = LatencyProxy::start(redis.port, Duration::ZERO)
        .await
        .unwrap();
    let locker = LockerOptions::new(proxy.url())
        .ttl(Duration::from_secs(5))
        .slot_wait(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    for round in 0..3 {
        proxy.partition();
        let first = locker.try_lock("y").await.unwrap_err();
        assert!(
            matches!(first, LockError::Acquire(AcquireError::SlowReplies { .. })),
            "round {round}: {first:?}"
        );
        proxy.heal(); // the held acquire reaches Redis now and is granted, too late
        let second = locker.try_lock("y").await;
        let lease = second.unwrap_or_else(|e| panic!("round {round}: {e}"));
        lease.release().await.unwrap();
    }
    let v: Option<String> = redis.cmd(&["GET", "leasehold:{y}"]).await.unwrap();
    assert_eq!(v, None, "no key left behind");
}

/// Three instances, one dies while a lease is held: the lease keeps being extended on the two
/// that are left; a second one dying loses it before its validity instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_survives_one_of_three_instances_dying() {
    let (Some(a), Some(b), Some(mut c)) = (
        RedisServer::start("survive_a"),
        RedisServer::start("survive_b"),
        RedisServer::start("survive_c"),
    ) else {
        return;
    };
    let locker = LockerOptions::instances([a.url(), b.url(), c.url()])
        .ttl(Duration::from_millis(2_000))
        .build()
        .await
        .unwrap();
    let mut events = locker.subscribe();
    let lease = locker.try_lock("survivor").await.unwrap();
    c.kill();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut extended = 0;
    while let Ok(ev) = events.try_recv() {
        if matches!(ev, leasehold_redis::LockEvent::Extended { .. }) {
            extended += 1;
        }
    }
    assert!(
        lease.is_held(),
        "lost with a majority up after {extended} extensions: {:?}",
        tokio::time::timeout(Duration::from_millis(1), lease.lost())
            .await
            .ok()
    );
    assert!(extended >= 2, "{extended} extensions in 2.5 s");
    b.pause();
    let lost = tokio::time::timeout(Duration::from_secs(4), lease.lost()).await;
    b.resume();
    assert!(lost.is_ok(), "not lost with a majority gone");
    drop(a);
}
