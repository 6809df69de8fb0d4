//! Pushes against a real redis-server. A locker's connection tracks in default mode with
//! `NOLOOP` (as rueidislock does): Redis pushes a change of a key the connection's scripts read,
//! never one of its own scripts' writes, and forgets a key once written until it is read again.
//! So the scripts end with a read of the key they wrote; a held lease costs one script per
//! extension (no echo to re-check), and a foreign change still reaches the holder within a round
//! trip, after a grant and after an extension alike.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use leasehold_redis::{LockEvent, LockerOptions, LostReason, WakeMode};
use leasehold_tests::RedisServer;

/// Scripts run (`EVAL` and `EVALSHA` calls) so far, counted as the bench's `hold` phase counts
/// them.
async fn script_calls(redis: &RedisServer) -> u64 {
    let mut c = [redis.connection().await.unwrap()];
    leasehold_bench::hold::command_counts(&mut c)
        .await
        .unwrap()
        .1
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
        // let the grant settle, then delete the key from outside
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

/// Redis spares a connection its own writes, and a locker's leases share one: a lease taken
/// over by `force_lock` on the same locker still hears of it at once, from the locker itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_by_the_same_locker_reaches_its_other_lease_without_waiting_for_an_extension() {
    let Some(redis) = RedisServer::start("pushes_same_locker_force") else {
        return;
    };
    // extensions every 10 s: only the locker's own notice can tell the first lease early
    let locker = LockerOptions::new(redis.url())
        .ttl(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let first = locker.try_lock("shared").await.unwrap();
    let second = locker.force_lock("shared").await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(5), first.lost()).await;
    assert!(
        matches!(lost, Ok(LostReason::Taken { .. })),
        "the first lease did not hear of the takeover within 5 s: {lost:?}"
    );
    assert!(second.is_held());
    second.release().await.unwrap();
}

/// A raw RESP3 connection: commands out, and whatever arrives within a short wait back as text
/// (a reply, or `>2 invalidate ...` pushes).
struct Raw(std::net::TcpStream);

impl Raw {
    fn open(port: u16) -> Raw {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        let mut raw = Raw(s);
        raw.send(&["HELLO", "3"]);
        raw
    }

    /// Send one command; its reply, and whatever else arrives until 150 ms pass in silence.
    fn send(&mut self, args: &[&str]) -> String {
        use std::io::Write;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.write_all(out.as_bytes()).unwrap();
        // a stalled machine can hold the reply back for a while: wait for it generously
        let mut got = self.read_until(|t| !t.is_empty(), Duration::from_secs(10));
        got.push_str(&self.read_until(|_| false, Duration::ZERO));
        got
    }

    /// Wait (up to 10 s) for a push naming `key`; what arrived, with or without it.
    fn wait_push(&mut self, key: &str) -> String {
        self.read_until(|t| pushed(t, key), Duration::from_secs(10))
    }

    /// Read until `done` says so of what arrived, or `patience` has passed and then 150 ms pass
    /// in silence.
    fn read_until(&mut self, done: impl Fn(&str) -> bool, patience: Duration) -> String {
        use std::io::Read;
        let start = std::time::Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) if start.elapsed() >= patience => break,
                Err(_) => {}
            }
            if done(&String::from_utf8_lossy(&got)) {
                break;
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }
}

fn pushed(text: &str, key: &str) -> bool {
    text.contains("invalidate") && text.contains(key)
}

/// The contract the adapter's wake-ups rest on, checked on the scripts themselves (wire.rs):
/// no push for our own grant or extension, a push for the next foreign write after each of
/// them, and a push for the holder's release to a waiter that found the key held.
#[test]
fn the_scripts_keep_their_key_tracked_and_never_notify_their_caller() {
    use leasehold_core::wire::{ACQUIRE, EXTEND, RELEASE};
    let Some(redis) = RedisServer::start("pushes_wire_contract") else {
        return;
    };
    let (lock, fence) = ("leasehold:{w}", "leasehold:{w}:fence");
    let mut a = Raw::open(redis.port);
    let mut b = Raw::open(redis.port);
    // Redis applies NOLOOP to script writes since 7.0.5 (redis/redis#11052); an older server
    // reports our own writes too, which the adapter tolerates (a read-only re-check each)
    let info = a.send(&["INFO", "server"]);
    let version: Vec<u32> = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("0")
        .trim()
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    if version < vec![7, 0, 5] {
        eprintln!("redis-server {version:?} predates NOLOOP for scripts: contract not checked");
        return;
    }
    assert!(
        a.send(&["CLIENT", "TRACKING", "ON", "NOLOOP"])
            .contains("OK")
    );
    let acquire = |c: &mut Raw, v: &str| {
        c.send(&[
            "EVAL",
            ACQUIRE.source,
            "2",
            lock,
            fence,
            v,
            "30000",
            "0",
            "60000",
        ])
    };
    // our grant: a reply, no push
    let r = acquire(&mut a, "va");
    assert!(r.starts_with("*2") && !pushed(&r, lock), "{r:?}");
    // a foreign write after it: pushed
    b.send(&["SET", lock, "vb"]);
    assert!(
        pushed(&a.wait_push(lock), lock),
        "no push for a foreign write after our grant"
    );
    // a waiter's attempt reads the key: the holder's release reaches it
    let r = acquire(&mut a, "va2");
    assert!(r.starts_with("*3") && r.contains("vb"), "{r:?}");
    b.send(&["EVAL", RELEASE.source, "1", lock, "vb"]);
    assert!(
        pushed(&a.wait_push(lock), lock),
        "no push for the holder's release to a waiter"
    );
    // grant, then our extension: no push; a foreign write after the extension: pushed
    let r = acquire(&mut a, "va3");
    assert!(r.starts_with("*2"), "{r:?}");
    let r = a.send(&[
        "EVAL",
        EXTEND.source,
        "2",
        lock,
        fence,
        "va3",
        "30000",
        "60000",
    ]);
    assert!(r.contains(":1") && !pushed(&r, lock), "{r:?}");
    b.send(&["DEL", lock]);
    assert!(
        pushed(&a.wait_push(lock), lock),
        "no push for a foreign delete after our extension"
    );
    // our own release: no push
    acquire(&mut a, "va4");
    let r = a.send(&["EVAL", RELEASE.source, "1", lock, "va4"]);
    assert!(!pushed(&r, lock), "our own release notified us: {r:?}");
}
