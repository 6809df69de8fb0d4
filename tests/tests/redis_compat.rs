//! The rueidislock compatibility layout against a real redis-server, checked against a second,
//! independent client: `Rueidis` below is written from the protocol description of rueidislock
//! (keys `<prefix>:<i>:<name>`, one random value per attempt, `SET NX PXAT` then `GET`, compare
//! then `PEXPIREAT`, compare-and-delete; `KeyMajority` K needs K of 2K-1 keys; waiters wake on
//! OPTOUT client-tracking invalidations of keys their scripts read). Its Lua text is its own,
//! not leasehold's `wire::compat`. Leasehold holding must exclude it and the reverse, and each
//! must see the other's release.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use leasehold_redis::{AcquireError, Compat, GivenUp, LockError, LockerOptions, with_resp3};
use leasehold_tests::RedisServer;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, Script, Value};
use tokio::sync::mpsc;

/// rueidislock's acquire: set if absent with an absolute expiry, read the key (so OPTOUT
/// tracking tracks it), return what SET said.
const ACQAT: &str = r#"
local set = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2])
redis.call('GET', KEYS[1])
return set
"#;
/// rueidislock's extend: if the value is ours, move the absolute expiry and read the key again.
const EXTEND: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local r = redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  redis.call('GET', KEYS[1])
  return r
end
return 0
"#;
/// rueidislock's delkey.
const DELKEY: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

const TTL: Duration = Duration::from_secs(5);

fn wall_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// An independent rueidislock-protocol client: one tracked RESP3 connection, like
/// rueidislock's one connection per node.
struct Rueidis {
    conn: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    prefix: String,
    k: usize,
    seq: u64,
}

impl Rueidis {
    async fn connect(url: &str, prefix: &str, k: usize) -> Rueidis {
        let client = redis::Client::open(with_resp3(url)).unwrap();
        let (tx, pushes) = mpsc::unbounded_channel();
        let cfg = AsyncConnectionConfig::new().set_push_sender(tx);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .unwrap();
        // rueidislock: CLIENT TRACKING ON OPTOUT (keys read by its scripts are tracked)
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("OPTOUT")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        Rueidis {
            conn,
            pushes,
            prefix: prefix.to_owned(),
            k,
            seq: 0,
        }
    }

    fn key(&self, i: usize, name: &str) -> String {
        format!("{}:{i}:{name}", self.prefix)
    }

    /// One attempt (rueidislock's `try`: sequential keys, stopping once K failed; the keys
    /// after a majority are tried as well). On failure every key not reported held by others is deleted. Returns the
    /// value on success.
    async fn try_lock(&mut self, name: &str) -> Option<String> {
        self.seq += 1;
        let value = format!("raw-{:x}-{}", wall_ms(), self.seq);
        let at = wall_ms() + u64::try_from(TTL.as_millis()).unwrap();
        let (mut acquired, mut failures, mut mine) = (0, 0, Vec::new());
        for i in 0..(2 * self.k - 1) {
            // keys left after a majority are acquired too (rueidislock does it in the
            // background); after K failures the attempt stops
            if failures >= self.k {
                break;
            }
            let key = self.key(i, name);
            let r: Value = Script::new(ACQAT)
                .key(&key)
                .arg(&value)
                .arg(at)
                .invoke_async(&mut self.conn)
                .await
                .unwrap();
            if matches!(r, Value::Nil) {
                failures += 1;
            } else {
                acquired += 1;
                mine.push(key);
            }
        }
        if acquired >= self.k {
            return Some(value);
        }
        for key in mine {
            self.del(&key, &value).await;
        }
        None
    }

    async fn del(&mut self, key: &str, value: &str) -> i64 {
        Script::new(DELKEY)
            .key(key)
            .arg(value)
            .invoke_async(&mut self.conn)
            .await
            .unwrap()
    }

    async fn release(&mut self, name: &str, value: &str) -> i64 {
        let mut deleted = 0;
        for i in 0..(2 * self.k - 1) {
            let key = self.key(i, name);
            deleted += self.del(&key, value).await;
        }
        deleted
    }

    async fn extend(&mut self, key: &str, value: &str) -> i64 {
        let at = wall_ms() + u64::try_from(TTL.as_millis()).unwrap();
        Script::new(EXTEND)
            .key(key)
            .arg(value)
            .arg(at)
            .invoke_async(&mut self.conn)
            .await
            .unwrap()
    }

    /// rueidislock's `WithContext`: try; on failure wait for an invalidation of one of the
    /// name's keys (no timer fallback in CSC mode), then try again. Returns the value and the
    /// number of invalidations that woke it.
    async fn lock(&mut self, name: &str, within: Duration) -> Option<(String, usize)> {
        let deadline = tokio::time::Instant::now() + within;
        let mut wakes = 0;
        loop {
            if let Some(v) = self.try_lock(name).await {
                return Some((v, wakes));
            }
            loop {
                let push = tokio::time::timeout_at(deadline, self.pushes.recv())
                    .await
                    .ok()??;
                if self.invalidates(&push, name) {
                    wakes += 1;
                    break;
                }
            }
        }
    }

    fn invalidates(&self, push: &PushInfo, name: &str) -> bool {
        if push.kind != redis::PushKind::Invalidate {
            return false;
        }
        let keys: Vec<String> = push
            .data
            .iter()
            .filter_map(|v| redis::from_redis_value::<Vec<String>>(v.clone()).ok())
            .flatten()
            .collect();
        // a flush (nil) wakes every waiter, as rueidislock's onInvalidations(nil)
        keys.is_empty() || (0..2 * self.k - 1).any(|i| keys.contains(&self.key(i, name)))
    }
}

/// A raw `MONITOR` connection (the server echoes every command, those run inside scripts
/// included, one line each).
struct Monitor {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
}

impl Monitor {
    async fn start(redis: &RedisServer) -> Monitor {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let addr = redis.url().trim_start_matches("redis://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = tokio::io::BufReader::new(stream).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
        Monitor { lines }
    }

    /// The next line containing `needle` (within a generous deadline).
    async fn line_with(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("MONITOR showed no {needle}"))
                .unwrap()
                .unwrap();
            if line.contains(needle) {
                return line;
            }
        }
    }
}

async fn compat_locker(redis: &RedisServer, k: u8) -> leasehold_redis::Locker {
    LockerOptions::new(redis.url())
        .ttl(TTL)
        .compat(Compat::Rueidislock {
            key_majority: k,
            prefix: "rueidislock".into(),
        })
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_values_and_absolute_expiry_are_rueidislocks() {
    let Some(redis) = RedisServer::start("compat_wire") else {
        return;
    };
    let locker = compat_locker(&redis, 2).await;
    let mut monitor = Monitor::start(&redis).await;
    let before = wall_ms();
    let lease = locker.try_lock("jobs").await.unwrap();
    let after = wall_ms();
    // what the acquire script ran on the server, as MONITOR shows commands inside scripts
    let set = monitor.line_with(r#""SET" "rueidislock:0:jobs""#).await;
    let parts: Vec<&str> = set.split(' ').collect();
    let n = parts.len();
    assert!(
        n >= 4 && parts[n - 3] == r#""NX""# && parts[n - 2] == r#""PXAT""#,
        "SET key value NX PXAT <unix ms>, as rueidislock: {set}"
    );
    println!("acquire ran: {set}");
    let at: u64 = parts[n - 1].trim_matches('"').parse().unwrap();
    let ttl = u64::try_from(TTL.as_millis()).unwrap();
    assert!((before + ttl..=after + ttl).contains(&at), "{set}");
    assert_eq!(lease.fencing_token(), None, "no fence counter, no token");
    let mut keys: Vec<String> = redis.cmd(&["KEYS", "*"]).await.unwrap();
    keys.sort();
    assert!(keys.len() >= 2, "a majority of 3 keys: {keys:?}");
    for k in &keys {
        assert!(
            [
                "rueidislock:0:jobs",
                "rueidislock:1:jobs",
                "rueidislock:2:jobs"
            ]
            .contains(&k.as_str()),
            "only rueidislock's keys, no fence counter or other key: {keys:?}"
        );
    }
    let mut values = Vec::new();
    for k in &keys {
        let v: String = redis.cmd(&["GET", k]).await.unwrap();
        values.push(v);
        // PXAT from this client's wall clock: the absolute expiry is sent-time + ttl
        let at: u64 = redis.cmd(&["PEXPIRETIME", k]).await.unwrap();
        let ttl = u64::try_from(TTL.as_millis()).unwrap();
        assert!(
            (before + ttl..=after + ttl).contains(&at),
            "{k} expires at {at}, not within [{}, {}]",
            before + ttl,
            after + ttl
        );
    }
    assert!(
        values.windows(2).all(|w| w[0] == w[1]),
        "one value per attempt: {values:?}"
    );
    assert!(
        !values[0].contains("lh1"),
        "a random value, not leasehold's: {}",
        values[0]
    );
    // the extension (every ttl/3): PEXPIREAT, an absolute instant past the acquire's
    let ext = monitor.line_with(r#""PEXPIREAT" "rueidislock:"#).await;
    println!("extension ran: {ext}");
    let ext_at: u64 = ext
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();
    assert!(ext_at > at && ext_at <= wall_ms() + ttl, "{ext}");
    assert!(ext.contains("lua"), "{ext}");
    // the next attempt draws a new value
    lease.release().await.unwrap();
    let del = monitor.line_with(r#""DEL" "rueidislock:"#).await;
    assert!(del.contains("lua"), "released by its script: {del}");
    let keys: Vec<String> = redis.cmd(&["KEYS", "*"]).await.unwrap();
    assert!(keys.is_empty(), "release deletes every key: {keys:?}");
    let lease = locker.try_lock("jobs").await.unwrap();
    let v: String = redis.cmd(&["GET", "rueidislock:0:jobs"]).await.unwrap();
    assert_ne!(v, values[0]);
    lease.release().await.unwrap();
    assert_eq!(
        Compat::rueidislock().gives_up().first(),
        Some(&GivenUp::FencingToken)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_excludes_the_other() {
    let Some(redis) = RedisServer::start("compat_exclusion") else {
        return;
    };
    for k in [1u8, 2] {
        let name = format!("ex{k}");
        let locker = compat_locker(&redis, k).await;
        let mut raw = Rueidis::connect(&redis.url(), "rueidislock", usize::from(k)).await;
        // leasehold holds: the raw client cannot acquire
        let lease = locker.try_lock(&name).await.unwrap();
        assert_eq!(raw.try_lock(&name).await, None, "K={k}: both would hold");
        // nor can it extend or delete leasehold's keys with a value of its own
        assert_eq!(raw.extend(&raw.key(0, &name), "not-mine").await, 0);
        assert_eq!(raw.release(&name, "not-mine").await, 0);
        assert!(lease.is_held());
        lease.release().await.unwrap();
        // the raw client holds: leasehold cannot acquire, and says it is contended
        let value = raw
            .try_lock(&name)
            .await
            .expect("free after leasehold's release");
        match locker.try_lock(&name).await {
            Err(LockError::Acquire(AcquireError::Contended { .. })) => {}
            other => {
                panic!("K={k}: leasehold acquired or failed oddly while rueidis held: {other:?}")
            }
        }
        assert_eq!(raw.extend(&raw.key(0, &name), &value).await, 1);
        assert_eq!(
            raw.release(&name, &value).await,
            i64::from(2 * k - 1),
            "leasehold's failed attempt left the raw client's keys alone"
        );
        let keys: Vec<String> = redis.cmd(&["KEYS", "*"]).await.unwrap();
        assert!(keys.is_empty(), "no key left behind: {keys:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_of_three_keys_decides() {
    let Some(redis) = RedisServer::start("compat_majority") else {
        return;
    };
    let locker = compat_locker(&redis, 2).await;
    // someone (a rueidislock attempt still in progress, say) holds key 0 only: leasehold gets
    // keys 1 and 2, a majority
    redis
        .cmd::<()>(&["SET", "rueidislock:0:m", "other", "PX", "5000"])
        .await
        .unwrap();
    let lease = locker.try_lock("m").await.unwrap();
    let mut raw = Rueidis::connect(&redis.url(), "rueidislock", 2).await;
    assert_eq!(raw.try_lock("m").await, None);
    lease.release().await.unwrap();
    let left: Option<String> = redis.cmd(&["GET", "rueidislock:0:m"]).await.unwrap();
    assert_eq!(
        left.as_deref(),
        Some("other"),
        "release deletes only its own keys"
    );
    // two keys held by others: no majority is possible
    redis
        .cmd::<()>(&["SET", "rueidislock:2:m", "other", "PX", "5000"])
        .await
        .unwrap();
    match locker.try_lock("m").await {
        Err(LockError::Acquire(AcquireError::Contended { .. })) => {}
        other => panic!("one free key of three is not a majority: {other:?}"),
    }
    let free: Option<String> = redis.cmd(&["GET", "rueidislock:1:m"]).await.unwrap();
    assert_eq!(free, None, "the failed attempt deleted the key it got");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_notices_the_others_release() {
    let Some(redis) = RedisServer::start("compat_notice") else {
        return;
    };
    // backoff far longer than the wait: only an invalidation push can wake this waiter in time
    let mut o = LockerOptions::new(redis.url())
        .ttl(TTL)
        .compat(Compat::Rueidislock {
            key_majority: 2,
            prefix: "rueidislock".into(),
        });
    o.lock.backoff_min = Duration::from_secs(60);
    o.lock.backoff_max = Duration::from_secs(60);
    let locker = o.build().await.unwrap();
    assert_eq!(locker.wake_mode(), leasehold_redis::WakeMode::Push);

    // the raw client holds; leasehold waits and is woken by the raw client's release
    let mut raw = Rueidis::connect(&redis.url(), "rueidislock", 2).await;
    let value = raw.try_lock("n").await.unwrap();
    let waiter = {
        let locker = locker.clone();
        tokio::spawn(async move {
            let lease = locker.lock("n", Duration::from_secs(20)).await;
            (lease, wall_ms())
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let released_at = wall_ms();
    assert_eq!(raw.release("n", &value).await, 3);
    let (lease, acquired_at) = waiter.await.unwrap();
    let lease = lease.expect(
        "leasehold acquires after the raw client's release, woken by its invalidation (its backoff is 60 s)",
    );
    let after = acquired_at.saturating_sub(released_at);
    println!("leasehold acquired {after} ms after rueidis released");
    // a retry by backoff is drawn uniformly from 0..60 s: within a few seconds means the push
    // (a generous bound for a loaded machine; the push takes milliseconds)
    assert!(
        after < 5_000,
        "woken {after} ms after the release: not by its push"
    );

    // leasehold holds; the raw waiter tracks the keys its failed attempt read and is woken
    // by leasehold's release
    let mut raw = Rueidis::connect(&redis.url(), "rueidislock", 2).await;
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let at = wall_ms();
        lease.release().await.unwrap();
        at
    });
    let (value, wakes) = raw
        .lock("n", Duration::from_secs(20))
        .await
        .expect("the raw client acquires after leasehold's release, woken by tracking");
    let released_at = releaser.await.unwrap();
    println!(
        "rueidis acquired {} ms after leasehold released ({wakes} invalidation wake-ups)",
        wall_ms().saturating_sub(released_at)
    );
    assert!(wakes >= 1, "the raw waiter was woken by an invalidation");
    // and leasehold, waiting in its turn, cannot get it while the raw client holds
    match locker.try_lock("n").await {
        Err(LockError::Acquire(AcquireError::Contended { .. })) => {}
        other => panic!("{other:?}"),
    }
    raw.release("n", &value).await;
}

#[tokio::test]
async fn compat_refuses_several_instances_and_an_empty_key_majority() {
    let e = LockerOptions::instances(["redis://127.0.0.1:1", "redis://127.0.0.1:2"])
        .compat(Compat::rueidislock())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LockError::Options(m) if m.contains("one deployment")),
        "{e}"
    );
    let e = LockerOptions::new("redis://127.0.0.1:1")
        .compat(Compat::Rueidislock {
            key_majority: 0,
            prefix: "rueidislock".into(),
        })
        .build()
        .await
        .unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("k must be at least 1"),
        "{e}"
    );
}
