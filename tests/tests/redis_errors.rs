//! The adapter's typed errors against real redis-server: permanent ones (Redis rejected the
//! setup) fail at once whatever the wait, transient ones are retried within it and carry the last
//! cause; one server is never counted twice; RESP2 URLs work by polling.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use leasehold_redis::{AcquireError, LockError, LockerOptions, WakeMode};
use leasehold_tests::RedisServer;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_server_twice_is_refused_naming_both_urls() {
    let (Some(a), Some(b)) = (RedisServer::start("dup_a"), RedisServer::start("dup_b")) else {
        return;
    };
    let same = LockerOptions::instances([a.url(), b.url(), a.url()])
        .build()
        .await
        .unwrap_err();
    match &same {
        LockError::DuplicateInstance { first, second, .. } => {
            assert_eq!((first, second), (&a.url(), &a.url()));
        }
        other => panic!("{other:?}"),
    }
    assert!(same.is_permanent());
    // another spelling of the same server: only its run_id tells
    let alias = format!("redis://localhost:{}", a.port);
    let e = LockerOptions::instances([a.url(), b.url(), alias.clone()])
        .build()
        .await
        .unwrap_err();
    match &e {
        LockError::DuplicateInstance { first, second, how } => {
            assert_eq!((first, second), (&a.url(), &alias));
            assert!(how.contains("run_id"), "{how}");
        }
        other => panic!("{other:?}"),
    }
    // a password does not hide the address, and is not shown
    let e = LockerOptions::instances([
        format!("redis://:pw1@127.0.0.1:{}", a.port),
        b.url(),
        format!("redis://:pw2@127.0.0.1:{}/2", a.port),
    ])
    .build()
    .await
    .unwrap_err();
    assert!(
        matches!(e, LockError::DuplicateInstance { .. }) && !e.to_string().contains("pw"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_rejections_end_a_long_wait_at_once() {
    let Some(redis) = RedisServer::start_with(
        "permanent",
        &[
            "--user",
            "default",
            "on",
            "nopass",
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
    let admin = redis::Client::open(redis.url()).unwrap();
    let mut conn = admin.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("LPUSH")
        .arg("leasehold:{listy}")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let locker = LockerOptions::new(redis.url()).build().await.unwrap();
    let start = Instant::now();
    let e = locker
        .lock("listy", Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(e, LockError::WrongType { .. }), "{e:?}");
    assert!(e.to_string().contains("WRONGTYPE"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    let limited = LockerOptions::new(format!("redis://noscript:pw@127.0.0.1:{}", redis.port))
        .build()
        .await
        .unwrap();
    let start = Instant::now();
    let e = limited
        .lock("free", Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(e, LockError::Permission { .. }), "{e:?}");
    assert!(e.to_string().contains("NOPERM"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    let e = LockerOptions::new(format!("{}/99", redis.url()))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, LockError::BadDatabase { .. }), "{e:?}");
    assert!(e.to_string().contains("DB index"), "{e}");

    let e = LockerOptions::new("redis://no-such-host.invalid:6379")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, LockError::UnknownHost { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_retried_within_the_wait_with_the_cause_kept() {
    let port = free_port();
    let locker = LockerOptions::new(format!("redis://127.0.0.1:{port}"))
        .build()
        .await
        .unwrap();
    let start = Instant::now();
    let e = locker
        .lock("x", Duration::from_millis(800))
        .await
        .unwrap_err();
    assert!(
        start.elapsed() >= Duration::from_millis(750),
        "{:?}",
        start.elapsed()
    );
    assert!(!e.is_permanent(), "{e:?}");
    assert!(
        matches!(e, LockError::Acquire(AcquireError::DeadlineExceeded { attempts, .. }) if attempts >= 1),
        "{e:?}"
    );
    let causes = locker.connection_errors();
    assert_eq!(causes.len(), 1);
    assert!(causes[0].1.to_lowercase().contains("refused"), "{causes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wait_makes_at_least_one_attempt() {
    let Some(redis) = RedisServer::start("tiny_wait") else {
        return;
    };
    let locker = LockerOptions::new(redis.url()).build().await.unwrap();
    for wait in [
        Duration::from_nanos(1),
        Duration::from_millis(50),
        Duration::from_millis(150),
    ] {
        let lease = locker.lock("tiny", wait).await.unwrap();
        lease.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp2_urls_poll_and_hand_over() {
    let Some(redis) = RedisServer::start("resp2") else {
        return;
    };
    let url = format!("{}?protocol=resp2", redis.url());
    let a = LockerOptions::new(url.clone())
        .ttl(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let b = LockerOptions::new(url).build().await.unwrap();
    assert_eq!(a.wake_mode(), WakeMode::Polling);
    let held = a.lock("r2", Duration::from_secs(2)).await.unwrap();
    let waiter = tokio::spawn(async move {
        let lease = b.lock("r2", Duration::from_secs(10)).await;
        (lease.map(|l| l.token()), b)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = held.token();
    held.release().await.unwrap();
    let (second, _b) = waiter.await.unwrap();
    assert!(second.unwrap() > first);
}
