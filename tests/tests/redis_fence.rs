//! The fence-token rule and the operator's force-release, run as Lua on a real redis-server: tokens
//! never go backwards after a lost, lowered, reset or expired counter, counters expire after
//! their retention, and a force-release evicts exactly the value it was given.
#![allow(clippy::unwrap_used)]

use leasehold_core::wire::{ACQUIRE, EXTEND, FORCE_RELEASE, RELEASE, Script};
use leasehold_tests::RedisServer;
use redis::Value;
use redis::aio::MultiplexedConnection;

const LOCK: &str = "lh:{fence-test}";
const FENCE: &str = "lh:{fence-test}:fence";

async fn conn(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn run(c: &mut MultiplexedConnection, s: Script, keys: &[&str], args: &[&str]) -> Value {
    let script = redis::Script::new(s.source);
    let mut inv = script.prepare_invoke();
    for k in keys {
        inv.key(*k);
    }
    for a in args {
        inv.arg(*a);
    }
    inv.invoke_async(c).await.unwrap()
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// `{1, token}` from ACQUIRE: the token.
fn granted(v: &Value) -> u64 {
    match v {
        Value::Array(items) if items.len() == 2 && int(&items[0]) == 1 => {
            u64::try_from(int(&items[1])).unwrap()
        }
        other => panic!("expected a grant, got {other:?}"),
    }
}

async fn server_time_us(c: &mut MultiplexedConnection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(c).await.unwrap();
    s * 1_000_000 + us
}

async fn acquire(c: &mut MultiplexedConnection, value: &str) -> u64 {
    granted(&run(c, ACQUIRE, &[LOCK, FENCE], &[value, "60000", "0", "1000"]).await)
}

async fn release(c: &mut MultiplexedConnection, value: &str) {
    let v = run(c, RELEASE, &[LOCK], &[value]).await;
    assert_eq!(int(&v), 1, "release of our own value deletes it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_go_backwards_after_the_counter_is_lost_lowered_or_reset() {
    let Some(server) = RedisServer::start("redis_fence_backwards") else {
        return;
    };
    let mut c = conn(&server).await;
    let before = server_time_us(&mut c).await;
    let t1 = acquire(&mut c, "lh1:0000000000000001:a").await;
    let after = server_time_us(&mut c).await;
    assert!(
        (before..=after + 1).contains(&t1),
        "the first token is the server's TIME in µs: {before} <= {t1} <= {after}"
    );
    release(&mut c, "lh1:0000000000000001:a").await;

    // counters a second apart in the same µs still strictly increase
    let t2 = acquire(&mut c, "lh1:0000000000000002:b").await;
    assert!(t2 > t1);
    release(&mut c, "lh1:0000000000000002:b").await;

    // lowered by hand: the TIME floor wins
    let _: () = redis::cmd("SET")
        .arg(FENCE)
        .arg(5)
        .query_async(&mut c)
        .await
        .unwrap();
    let t3 = acquire(&mut c, "lh1:0000000000000003:c").await;
    assert!(t3 > t2, "a counter lowered to 5 gave {t3} after {t2}");
    release(&mut c, "lh1:0000000000000003:c").await;

    // data lost (a restart without persistence looks the same to the scripts)
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    let t4 = acquire(&mut c, "lh1:0000000000000004:d").await;
    assert!(t4 > t3, "after FLUSHALL the token {t4} came after {t3}");

    // a counter far in the future (raised by another instance's write-back) keeps counting up
    release(&mut c, "lh1:0000000000000004:d").await;
    let future = after + 3_600_000_000;
    let _: () = redis::cmd("SET")
        .arg(FENCE)
        .arg(future)
        .query_async(&mut c)
        .await
        .unwrap();
    let t5 = acquire(&mut c, "lh1:0000000000000005:e").await;
    assert_eq!(t5, future + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_counters_expire_after_their_retention_and_restart_above_old_tokens() {
    let Some(server) = RedisServer::start("redis_fence_expiry") else {
        return;
    };
    let mut c = conn(&server).await;
    let v = "lh1:00000000000000aa:x";
    let t1 = granted(&run(&mut c, ACQUIRE, &[LOCK, FENCE], &[v, "200", "0", "1000"]).await);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(FENCE)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        (900..=1_200).contains(&pttl),
        "counter kept ttl 200 + retention 1000 ms, got PTTL {pttl}"
    );
    // an extension renews the counter's retention along with the key
    let ext = run(&mut c, EXTEND, &[LOCK, FENCE], &[v, "200", "5000"]).await;
    assert_eq!(ext, Value::Array(vec![Value::Int(1)]));
    let pttl: i64 = redis::cmd("PTTL")
        .arg(FENCE)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 4_000, "extension renewed the counter: PTTL {pttl}");
    release(&mut c, v).await;
    // a short retention: the counter goes away by itself
    let v2 = "lh1:00000000000000bb:y";
    let t2 = granted(&run(&mut c, ACQUIRE, &[LOCK, FENCE], &[v2, "50", "0", "1000"]).await);
    assert!(t2 > t1);
    release(&mut c, v2).await;
    let mut gone = false;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let n: i64 = redis::cmd("EXISTS")
            .arg(FENCE)
            .query_async(&mut c)
            .await
            .unwrap();
        if n == 0 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the fence counter expired after ttl + retention");
    let t3 = acquire(&mut c, "lh1:00000000000000cc:z").await;
    assert!(
        t3 > t2,
        "a re-created counter starts above old tokens: {t3} after {t2}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_release_evicts_exactly_the_value_seen() {
    let Some(server) = RedisServer::start("redis_fence_force") else {
        return;
    };
    let mut c = conn(&server).await;
    let holder = "lh1:0000000000000001:old-holder";
    let t1 = acquire(&mut c, holder).await;

    // the operator saw another value: nothing changes, the current value is named
    let r = run(
        &mut c,
        FORCE_RELEASE,
        &[LOCK, FENCE],
        &["lh1:0000000000000009:someone", "1000"],
    )
    .await;
    assert_eq!(
        r,
        Value::Array(vec![
            Value::Int(0),
            Value::BulkString(holder.as_bytes().to_vec())
        ])
    );
    let still: Option<String> = redis::cmd("GET")
        .arg(LOCK)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(still.as_deref(), Some(holder));

    // the value seen: deleted, and the counter advanced above the evicted token
    let r = run(&mut c, FORCE_RELEASE, &[LOCK, FENCE], &[holder, "1000"]).await;
    let forced = granted(&r);
    assert!(forced > t1);
    let gone: Option<String> = redis::cmd("GET")
        .arg(LOCK)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(gone, None);
    let next = acquire(&mut c, "lh1:0000000000000002:new-holder").await;
    assert!(next > forced);

    // nothing there: {-1}
    release(&mut c, "lh1:0000000000000002:new-holder").await;
    let r = run(&mut c, FORCE_RELEASE, &[LOCK, FENCE], &[holder, "1000"]).await;
    assert_eq!(r, Value::Array(vec![Value::Int(-1)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_counter_is_a_clear_error_naming_the_key() {
    let Some(server) = RedisServer::start("redis_fence_corrupt") else {
        return;
    };
    let mut c = conn(&server).await;
    // Lua's tonumber takes all of these; none is a counter (tokens are exact below 2^53)
    for corrupt in [
        "not-a-number",
        "1e20",
        "0x10",
        "1.5",
        " 5",
        "9007199254740993",
    ] {
        let _: () = redis::cmd("SET")
            .arg(FENCE)
            .arg(corrupt)
            .query_async(&mut c)
            .await
            .unwrap();
        let script = redis::Script::new(ACQUIRE.source);
        let err = script
            .key(LOCK)
            .key(FENCE)
            .arg("lh1:0000000000000001:a")
            .arg(1000)
            .arg("0")
            .arg(1000)
            .invoke_async::<Value>(&mut c)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("fence counter") && msg.contains(FENCE),
            "{corrupt:?}: the error names the corrupt counter: {msg}"
        );
        // the lock key was not written, the counter kept as it was
        let v: Option<String> = redis::cmd("GET")
            .arg(LOCK)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(v, None, "{corrupt:?}");
        let kept: String = redis::cmd("GET")
            .arg(FENCE)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(kept, corrupt);
    }
    // a hand-lowered (even negative) counter is no corruption: the TIME floor wins
    let _: () = redis::cmd("SET")
        .arg(FENCE)
        .arg("-3")
        .query_async(&mut c)
        .await
        .unwrap();
    let token = acquire(&mut c, "lh1:0000000000000002:a").await;
    assert!(token > 1_000_000_000_000_000, "{token}");
}
