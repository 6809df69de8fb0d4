//! Key majority on one server (`key_majority: Some(2)`: three keys, two needed), through the
//! adapter against a real redis-server: the three acquires go as one `ACQUIRE_BATCH` script (and
//! the three releases as one `RELEASE_BATCH`), every
//! key granted shares the lease's token (so there is no write-back round), and a key the lock
//! cannot use (someone else's, or of another type) costs only its own slot, never its data.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use leasehold_core::wire::keys;
use leasehold_redis::{AcquireError, LockError, Locker, LockerOptions};
use leasehold_tests::RedisServer;

const PREFIX: &str = "lhkm";

async fn locker(server: &RedisServer, holder: &str) -> Locker {
    locker_with(server, holder, true).await
}

async fn locker_with(server: &RedisServer, holder: &str, batch_keys: bool) -> Locker {
    let mut o = LockerOptions::new(server.url())
        .ttl(Duration::from_secs(10))
        .slot_wait(Duration::from_secs(5))
        .prefix(PREFIX);
    o.key_majority = Some(2);
    o.holder = Some(holder.into());
    o.batch_keys = batch_keys;
    o.build().await.unwrap()
}

fn lock_key(name: &str, slot: usize) -> String {
    keys::lock_key(PREFIX, name, Some(slot))
}

async fn fence(server: &RedisServer, name: &str, slot: usize) -> Option<u64> {
    let fence = keys::fence_key_of(&lock_key(name, slot));
    server.cmd(&["GET", &fence]).await.unwrap()
}

/// Scripts run (`EVAL` and `EVALSHA` calls) since the last `CONFIG RESETSTAT`, counted as the
/// bench's `hold` phase counts them.
async fn scripts_run(server: &RedisServer) -> u64 {
    let mut c = [server.connection().await.unwrap()];
    leasehold_bench::hold::command_counts(&mut c)
        .await
        .unwrap()
        .1
}

#[test]
fn three_keys_on_one_server_are_acquired_by_one_script_with_one_token() {
    let Some(server) = RedisServer::start("three_keys_on_one_server") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let l = locker(&server, "one").await;
        // a first cycle loads the scripts
        l.try_lock("job").await.unwrap().release().await.unwrap();
        let _: () = server.cmd(&["CONFIG", "RESETSTAT"]).await.unwrap();
        let lease = l.try_lock("job").await.unwrap();
        assert_eq!(
            scripts_run(&server).await,
            1,
            "one ACQUIRE_BATCH, no per-slot acquires, no write-back"
        );
        let token = lease.token();
        for slot in 0..3 {
            assert_eq!(
                fence(&server, "job", slot).await,
                Some(token),
                "slot {slot}'s counter stands at the lease's token"
            );
        }
        lease.release().await.unwrap();
        assert_eq!(
            scripts_run(&server).await,
            2,
            "and one RELEASE_BATCH for the three releases"
        );
        for slot in 0..3 {
            let v: Option<String> = server.cmd(&["GET", &lock_key("job", slot)]).await.unwrap();
            assert_eq!(v, None, "slot {slot} released");
        }
        // the next lease's token is above this one's
        let next = l.try_lock("job").await.unwrap();
        assert!(next.token() > token);
        next.release().await.unwrap();
    });
}

#[test]
fn a_taken_key_a_corrupt_counter_and_a_key_of_another_type_cost_only_their_slots() {
    let Some(server) = RedisServer::start("a_taken_key_and_a_key_of_another_type") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let l = locker(&server, "one").await;
        // slot 1 holds someone else's value: two of three keys are still a majority
        let taken = lock_key("a", 1);
        let _: () = server.cmd(&["SET", &taken, "someone-else"]).await.unwrap();
        let lease = l.try_lock("a").await.unwrap();
        let token = lease.token();
        assert_eq!(fence(&server, "a", 0).await, Some(token));
        assert_eq!(fence(&server, "a", 2).await, Some(token));
        assert_eq!(fence(&server, "a", 1).await, None, "slot 1 was not taken");
        lease.release().await.unwrap();
        let v: String = server.cmd(&["GET", &taken]).await.unwrap();
        assert_eq!(v, "someone-else", "the foreign value is untouched");

        // slot 0 of `b` is a hash: its slot fails alone, the hash keeps its data
        let hash = lock_key("b", 0);
        let _: () = server.cmd(&["HSET", &hash, "field", "data"]).await.unwrap();
        let lease = l.try_lock("b").await.unwrap();
        assert_eq!(fence(&server, "b", 1).await, Some(lease.token()));
        assert_eq!(fence(&server, "b", 2).await, Some(lease.token()));
        lease.release().await.unwrap();
        let kept: String = server.cmd(&["HGET", &hash, "field"]).await.unwrap();
        assert_eq!(kept, "data");

        // slot 2 of `c` has a counter Lua would read as 1e20: it fails alone, and never becomes
        // the token the other two share
        let bad = keys::fence_key_of(&lock_key("c", 2));
        let _: () = server.cmd(&["SET", &bad, "1e20"]).await.unwrap();
        let lease = l.try_lock("c").await.unwrap();
        assert!(lease.token() < 1 << 53, "{}", lease.token());
        assert_eq!(fence(&server, "c", 0).await, Some(lease.token()));
        assert_eq!(fence(&server, "c", 1).await, Some(lease.token()));
        let kept: String = server.cmd(&["GET", &bad]).await.unwrap();
        assert_eq!(kept, "1e20", "the corrupt counter is left for the operator");
        lease.release().await.unwrap();

        // two such keys leave no majority: the error says what Redis found there
        let _: () = server
            .cmd(&["HSET", &lock_key("b", 1), "field", "data"])
            .await
            .unwrap();
        match l.try_lock("b").await {
            Err(LockError::WrongType { detail, .. }) => {
                assert!(detail.contains("WRONGTYPE"), "{detail}");
            }
            other => panic!("expected WrongType, got {other:?}"),
        }
    });
}

#[test]
fn a_second_locker_finds_the_batch_held_and_gets_it_after_the_release() {
    let Some(server) = RedisServer::start("a_second_locker_finds_the_batch_held") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let a = locker(&server, "a").await;
        let b = locker(&server, "b").await;
        let lease = a.try_lock("job").await.unwrap();
        match b.try_lock("job").await {
            Err(LockError::Acquire(AcquireError::Contended { holder, .. })) => {
                assert_eq!(holder.as_deref(), Some("a"));
            }
            other => panic!("expected Contended, got {other:?}"),
        }
        let token = lease.token();
        let waiter = tokio::spawn(async move { b.lock("job", Duration::from_secs(20)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        lease.release().await.unwrap();
        let next = waiter.await.unwrap().unwrap();
        assert!(next.token() > token);
        next.release().await.unwrap();
    });
}

#[test]
fn with_batch_keys_off_each_key_has_its_script_and_the_token_is_written_back() {
    let Some(server) = RedisServer::start("with_batch_keys_off") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let l = locker_with(&server, "one", false).await;
        l.try_lock("job").await.unwrap().release().await.unwrap();
        let _: () = server.cmd(&["CONFIG", "RESETSTAT"]).await.unwrap();
        let lease = l.try_lock("job").await.unwrap();
        // three acquires, then the write-back to (at least) the quorum of two
        let scripts = scripts_run(&server).await;
        assert!((5..=6).contains(&scripts), "{scripts} scripts");
        let token = lease.token();
        let mut at_token = 0;
        for slot in 0..3 {
            if fence(&server, "job", slot).await == Some(token) {
                at_token += 1;
            }
        }
        assert!(at_token >= 2, "a majority of counters at the lease's token");
        lease.release().await.unwrap();
    });
}
