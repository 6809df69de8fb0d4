//! Bad input gets a clear error naming what was wrong, never a panic.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use leasehold_redis::{AcquireError, LockError, LockerOptions};
use leasehold_tests::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_fail_at_build_time() {
    let cases: Vec<(LockerOptions, &str)> = vec![
        (
            LockerOptions::new("redis://127.0.0.1:1").ttl(Duration::ZERO),
            "ttl",
        ),
        (
            LockerOptions::new("redis://127.0.0.1:1")
                .ttl(Duration::from_secs(1))
                .extend_interval(Duration::from_secs(1)),
            "extend_interval",
        ),
        (LockerOptions::new("not a url"), "scheme"),
        (
            LockerOptions::new("redis://host:notaport"),
            "invalid Redis URL",
        ),
        (LockerOptions::new("http://127.0.0.1:1"), "scheme"),
        (
            LockerOptions::instances(Vec::<String>::new()),
            "at least one",
        ),
        (
            LockerOptions::instances(["redis://127.0.0.1:1", "redis://127.0.0.1:2"]),
            "odd",
        ),
        (
            LockerOptions::new("redis://127.0.0.1:1").prefix("bad prefix"),
            "key prefix",
        ),
    ];
    for (o, needle) in cases {
        let err = o.build().await.unwrap_err().to_string();
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_wrong_passwords_and_foreign_values_are_clear_errors() {
    let Some(redis) = RedisServer::start_with("bad_input", &["--requirepass", "s3cret"]) else {
        return;
    };
    let bad = LockerOptions::new(format!("redis://:wrong@127.0.0.1:{}", redis.port))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(bad, LockError::Auth { .. }), "{bad:?}");
    assert!(
        !bad.to_string().contains("wrong@"),
        "the password is redacted: {bad}"
    );
    let url = format!("redis://:s3cret@127.0.0.1:{}", redis.port);
    let locker = LockerOptions::new(url.clone())
        .ttl(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    for name in ["", &"n".repeat(201), "a b", "a{b}"] {
        let e = locker.try_lock(name).await.unwrap_err().to_string();
        assert!(e.contains("lock name"), "{name:?}: {e}");
    }
    let admin = redis::Client::open(url).unwrap();
    let mut conn = admin.get_multiplexed_async_connection().await.unwrap();
    // a Redisson-style hash under our key name
    let _: () = redis::cmd("HSET")
        .arg("leasehold:{h}")
        .arg("uuid:1")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    // a permanent error, named as Redis said it
    match locker.try_lock("h").await {
        Err(e @ LockError::WrongType { .. }) => {
            assert!(
                e.is_permanent() && e.to_string().contains("WRONGTYPE"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    // another library's plain value: contention, shown raw
    let _: () = redis::cmd("SET")
        .arg("leasehold:{p}")
        .arg("redsync-value")
        .arg("PX")
        .arg(5000)
        .query_async(&mut conn)
        .await
        .unwrap();
    match locker.try_lock("p").await {
        Err(LockError::Acquire(AcquireError::Contended {
            holder: Some(h), ..
        })) => assert!(h.contains("redsync-value"), "{h}"),
        other => panic!("{other:?}"),
    }
    // a corrupt fence counter
    let _: () = redis::cmd("SET")
        .arg("leasehold:{c}:fence")
        .arg("not-a-number")
        .query_async(&mut conn)
        .await
        .unwrap();
    // permanent too: something else writes under our prefix
    let e = locker.try_lock("c").await.unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("not an integer") || e.contains("non-integer"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_users_and_database_numbers_work() {
    let Some(redis) = RedisServer::start_with(
        "acl_db",
        &[
            "--user", "default", "off", "--user", "locker", "on", ">pw", "~*", "&*", "+@all",
        ],
    ) else {
        return;
    };
    let url = format!("redis://locker:pw@127.0.0.1:{}/3", redis.port);
    let locker = LockerOptions::new(url.clone())
        .ttl(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let lease = locker.lock("acl", Duration::from_secs(2)).await.unwrap();
    let admin = redis::Client::open(url).unwrap();
    let mut conn = admin.get_multiplexed_async_connection().await.unwrap();
    let v: Option<String> = redis::cmd("GET")
        .arg("leasehold:{acl}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        v.is_some_and(|v| v.starts_with("lh1:")),
        "the key lives in database 3"
    );
    lease.release().await.unwrap();
    let bad = LockerOptions::new(format!("redis://locker:nope@127.0.0.1:{}/3", redis.port))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(bad, LockError::Auth { .. }), "{bad:?}");
    assert!(bad.to_string().contains("locker:***@"), "{bad}");
}

/// `rediss://` against a real TLS-only redis-server (a throwaway CA made with openssl): leases,
/// fencing tokens and push tracking work over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_take_leases() {
    let Some(redis) = RedisServer::start_tls("tls") else {
        return;
    };
    assert!(redis.url().starts_with("rediss://"));
    // without trusting the test CA, the certificate is refused at once: a permanent TLS error
    let untrusted = LockerOptions::new(redis.url())
        .ttl(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(untrusted, LockError::Tls { .. }) && untrusted.is_permanent(),
        "{untrusted:?}"
    );
    let mut o = LockerOptions::new(redis.url()).ttl(Duration::from_secs(2));
    o.tls_root_ca = Some(redis.ca_pem());
    let locker = o.build().await.unwrap();
    let a = locker.lock("secure", Duration::from_secs(5)).await.unwrap();
    let t = a.token();
    a.release().await.unwrap();
    let b = locker.try_lock("secure").await.unwrap();
    assert!(b.token() > t);
    assert_eq!(
        locker.wake_mode(),
        leasehold_redis::WakeMode::Push,
        "tracking works over TLS too"
    );
    b.release().await.unwrap();
    // plain redis:// to the TLS port fails at build time or at the first acquire, never hangs
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    if let Ok(l) = LockerOptions::new(plain)
        .ttl(Duration::from_secs(2))
        .build()
        .await
    {
        let e = tokio::time::timeout(Duration::from_secs(5), l.try_lock("secure"))
            .await
            .unwrap();
        assert!(
            e.is_err(),
            "a plaintext client must not get a lease from a TLS-only server"
        );
    }
}
