//! The dashboard's reads against a real redis-server: bounded (never `GET`, `HGETALL`, `KEYS`),
//! cheap (commands per key per pass counted by the server's own `INFO commandstats`), and
//! following changes between passes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use leasehold_tests::RedisServer;
use leasehold_tui::layout::{Layout, Targets, classify};
use leasehold_tui::scan::{Budget, Scanner, Tokens, scan};
use redis::aio::MultiplexedConnection;

async fn conn(r: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(r.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `INFO commandstats` as command -> calls.
async fn commandstats(c: &mut MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Commands the server ran between two `commandstats` reads, without the measuring client's
/// own `INFO` and `CONFIG` calls.
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(k, _)| !k.starts_with("info") && !k.starts_with("config"))
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn targets() -> Targets {
    Targets {
        plain: vec!["lock:*".into()],
        ..Targets::default()
    }
}

fn unlimited() -> Budget {
    Budget {
        commands_per_sec: 100_000,
        ..Budget::default()
    }
}

#[test]
fn reads_are_bounded_whatever_the_values_hold() {
    let Some(redis) = RedisServer::start("tui_bounded") else {
        return;
    };
    rt().block_on(async {
        let mut c = conn(&redis).await;
        let big = vec![b'x'; 10 * 1024 * 1024];
        let _: () = redis::cmd("SET")
            .arg("lock:huge")
            .arg(&big)
            .arg("PX")
            .arg(60_000)
            .query_async(&mut c)
            .await
            .unwrap();
        // a 200k-field hash (the slowlog culprit) and a Redisson lock
        for chunk in 0..20 {
            let mut hset = redis::cmd("HSET");
            hset.arg("cart:big");
            for i in 0..10_000 {
                hset.arg(format!("f{}", chunk * 10_000 + i)).arg("v");
            }
            let _: () = hset.query_async(&mut c).await.unwrap();
        }
        let _: () = redis::cmd("HSET")
            .arg("myLock")
            .arg("8743c9c0-0795-4907-87fd-6c719a6b4586:1")
            .arg("2")
            .query_async(&mut c)
            .await
            .unwrap();
        let _: () = redis::cmd("PEXPIRE")
            .arg("myLock")
            .arg(30_000)
            .query_async(&mut c)
            .await
            .unwrap();
        // a hash shaped like Redisson's but with a huge "count": not read
        let _: () = redis::cmd("HSET")
            .arg("fakeLock")
            .arg("id:1")
            .arg(&big[..1_000_000])
            .query_async(&mut c)
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("leasehold:{jobs}")
            .arg("lh1:00000000000000aa:web-1")
            .arg("PX")
            .arg(60_000)
            .query_async(&mut c)
            .await
            .unwrap();
        let before = commandstats(&mut c).await;
        let mut s = Scanner::new(targets(), unlimited());
        for _ in 0..3 {
            s.begin_pass();
            while s.in_pass() {
                s.step(&mut c).await.unwrap();
            }
        }
        let used = delta(&before, &commandstats(&mut c).await);
        for banned in [
            "get", "hgetall", "keys", "mget", "hvals", "hkeys", "type", "dump", "hscan",
        ] {
            assert!(!used.contains_key(banned), "{banned} was sent: {used:?}");
        }
        let largest = s.stats().largest_reply;
        assert!(largest <= 4_096, "largest reply {largest} bytes: {used:?}");
        let rows = s.rows(Instant::now());
        let find = |n: &str| rows.iter().find(|r| r.name == n).unwrap();
        assert_eq!(
            find("lock:huge").holder.as_deref(),
            Some("(10485760-byte value, not read)")
        );
        assert_eq!(find("myLock").layout, Layout::Redisson);
        assert_eq!(find("jobs").holder.as_deref(), Some("web-1"));
        assert!(
            rows.iter()
                .all(|r| r.name != "fakeLock" && r.name != "cart:big"),
            "{rows:?}"
        );
    });
}

/// `n` held leasehold locks `job-<i>` (holder `worker-<i>`, 10 minutes left) with fence counters
/// at `1000 + i`.
fn push_leasehold_locks(p: &mut redis::Pipeline, n: u64) {
    for i in 0..n {
        p.cmd("SET")
            .arg(format!("leasehold:{{job-{i}}}"))
            .arg(format!("lh1:{i:016x}:worker-{i}"))
            .arg("PX")
            .arg(600_000)
            .ignore();
        p.cmd("SET")
            .arg(format!("leasehold:{{job-{i}}}:fence"))
            .arg(1_000 + i)
            .ignore();
    }
}

/// 10,000 keys of every layout: 3,000 leasehold locks (lock key and fence counter), 2,000
/// rueidislock keys, 2,000 plain keys, plus 1,000 hashes that are not locks.
async fn fill(c: &mut MultiplexedConnection) {
    let mut p = redis::pipe();
    push_leasehold_locks(&mut p, 3_000);
    for i in 0..2_000 {
        p.cmd("SET")
            .arg(format!("rueidislock:{}:r-{}", i % 3, i / 3))
            .arg("x")
            .arg("PX")
            .arg(600_000)
            .ignore();
        p.cmd("SET")
            .arg(format!("lock:p-{i}"))
            .arg(format!("uuid-{i}"))
            .arg("PX")
            .arg(600_000)
            .ignore();
    }
    for i in 0..1_000 {
        p.cmd("HSET")
            .arg(format!("user:{i}"))
            .arg("name")
            .arg("x")
            .ignore();
    }
    let _: () = p.query_async(c).await.unwrap();
}

fn total(used: &BTreeMap<String, u64>) -> u64 {
    used.values().sum()
}

#[test]
fn a_pass_over_10k_keys_costs_at_most_1_2_commands_per_key_once_known() {
    let Some(redis) = RedisServer::start("tui_cost") else {
        return;
    };
    rt().block_on(async {
        let mut c = conn(&redis).await;
        fill(&mut c).await;
        let keys = 11_000.0; // 10,000 lock keys and 1,000 other hashes
        let mut s = Scanner::new(targets(), unlimited());
        let mut per_pass = Vec::new();
        for _ in 0..3 {
            let before = commandstats(&mut c).await;
            s.begin_pass();
            while s.in_pass() {
                s.step(&mut c).await.unwrap();
            }
            let used = delta(&before, &commandstats(&mut c).await);
            assert_eq!(
                total(&used),
                s.stats().last_pass.unwrap().commands,
                "the scanner counts commands as Redis does: {used:?}"
            );
            per_pass.push((total(&used) as f64 / keys, used));
        }
        for (i, (per_key, used)) in per_pass.iter().enumerate() {
            eprintln!("pass {}: {per_key:.3} commands/key {used:?}", i + 1);
        }
        let (first, second, third) = (&per_pass[0], &per_pass[1], &per_pass[2]);
        // first sight: PTTL + GETRANGE per lock key, GETRANGE per fence, HRANDFIELD per hash
        assert!(
            first.0 <= 2.0,
            "first pass {:.3}/key: {:?}",
            first.0,
            first.1
        );
        assert!(
            second.0 <= 1.2,
            "second pass {:.3}/key: {:?}",
            second.0,
            second.1
        );
        assert!(
            third.0 <= 1.2,
            "third pass {:.3}/key: {:?}",
            third.0,
            third.1
        );
        let rows = s.rows(Instant::now());
        assert_eq!(rows.len(), 3_000 + 667 + 2_000, "every lock, once");
        let held = rows.iter().filter(|r| r.keys_held > 0).count();
        assert_eq!(held, rows.len());
    });
}

#[test]
fn changes_between_passes_are_seen_and_gone_keys_dropped() {
    let Some(redis) = RedisServer::start("tui_changes") else {
        return;
    };
    rt().block_on(async {
        let mut c = conn(&redis).await;
        let set = |k: &str, v: &str, px: u64| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(k).arg(v).arg("PX").arg(px);
            cmd
        };
        let _: () = set("leasehold:{a}", "lh1:00000000000000aa:first", 60_000)
            .query_async(&mut c)
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("leasehold:{a}:fence")
            .arg(5)
            .query_async(&mut c)
            .await
            .unwrap();
        let _: () = set("lock:gone", "x", 60_000)
            .query_async(&mut c)
            .await
            .unwrap();
        let mut s = Scanner::new(targets(), unlimited());
        run_pass(&mut s, &mut c).await;
        let rows = s.rows(Instant::now());
        let a = rows.iter().find(|r| r.name == "a").unwrap();
        assert_eq!((a.holder.as_deref(), a.token), (Some("first"), Some(5)));
        // a new holder (new value, fresh ttl, fence advanced); a key deleted
        let _: () = set("leasehold:{a}", "lh1:00000000000000bb:second", 30_000)
            .query_async(&mut c)
            .await
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("leasehold:{a}:fence")
            .arg(6)
            .query_async(&mut c)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg("lock:gone")
            .query_async(&mut c)
            .await
            .unwrap();
        run_pass(&mut s, &mut c).await;
        let rows = s.rows(Instant::now());
        let a = rows.iter().find(|r| r.name == "a").unwrap();
        assert_eq!((a.holder.as_deref(), a.token), (Some("second"), Some(6)));
        assert!(a.ttl_ms.unwrap() <= 30_000);
        assert!(rows.iter().all(|r| r.name != "lock:gone"), "{rows:?}");
        // a push names a key: it is read without a pass
        let _: () = set("lock:new", "fresh", 60_000)
            .query_async(&mut c)
            .await
            .unwrap();
        s.read_soon(&["lock:new".to_owned()]);
        while s.in_pass() {
            s.step(&mut c).await.unwrap();
        }
        let rows = s.rows(Instant::now());
        let n = rows.iter().find(|r| r.name == "lock:new").unwrap();
        assert_eq!(n.holder.as_deref(), Some("fresh"));
    });
}

async fn run_pass(s: &mut Scanner, c: &mut MultiplexedConnection) {
    s.begin_pass();
    while s.in_pass() {
        s.step(c).await.unwrap();
    }
}

#[test]
fn inspect_style_one_shot_scan_and_pattern_with_brackets() {
    let Some(redis) = RedisServer::start("tui_oneshot") else {
        return;
    };
    rt().block_on(async {
        let mut c = conn(&redis).await;
        for k in ["lock:x1", "lock:a", "lock:b", "lock:[x]"] {
            let _: () = redis::cmd("SET")
                .arg(k)
                .arg("v")
                .arg("PX")
                .arg(60_000)
                .query_async(&mut c)
                .await
                .unwrap();
        }
        let t = Targets {
            plain: vec!["lock:[xa]*".into()],
            redisson: false,
            ..Targets::default()
        };
        let (keys, cost) = scan(&mut c, &t, unlimited()).await.unwrap();
        let mut names: Vec<String> = classify(&t, &keys).into_iter().map(|r| r.name).collect();
        names.sort();
        assert_eq!(names, ["lock:a", "lock:x1"]);
        assert!(cost.commands > 0 && cost.elapsed < Duration::from_secs(60));
    });
}

/// Run reads (early ones, after `set_tokens`) until the scanner is idle.
async fn drain(s: &mut Scanner, c: &mut MultiplexedConnection) {
    while s.in_pass() {
        s.step(c).await.unwrap();
    }
}

fn token_of(s: &Scanner, name: &str) -> Option<u64> {
    s.rows(Instant::now())
        .into_iter()
        .find(|r| r.name == name)
        .and_then(|r| r.token)
}

#[test]
fn tokens_are_read_only_for_the_locks_on_screen_and_never_shown_stale() {
    let Some(redis) = RedisServer::start("tui_tokens") else {
        return;
    };
    rt().block_on(async {
        let mut c = conn(&redis).await;
        let mut p = redis::pipe();
        push_leasehold_locks(&mut p, 50);
        let _: () = p.query_async(&mut c).await.unwrap();
        let t = Targets {
            redisson: false,
            ..Targets::default()
        };
        let want = |names: &[&str]| {
            Tokens::Of(
                names
                    .iter()
                    .map(|n| ("leasehold".to_owned(), (*n).to_owned()))
                    .collect(),
            )
        };
        let mut s = Scanner::new(t, unlimited());
        s.set_tokens(want(&[]));

        // nothing on screen: no fence counter is read, yet every lock is a row
        let before = commandstats(&mut c).await;
        run_pass(&mut s, &mut c).await;
        let used = delta(&before, &commandstats(&mut c).await);
        assert_eq!(
            used.get("getrange"),
            Some(&50),
            "lock values only: {used:?}"
        );
        let rows = s.rows(Instant::now());
        assert_eq!(rows.len(), 50);
        assert!(rows.iter().all(|r| r.token.is_none() && r.keys_held == 1));

        // one row comes on screen: exactly its counter is read, at once (no pass needed)
        let before = commandstats(&mut c).await;
        s.set_tokens(want(&["job-7", "job-3"]));
        drain(&mut s, &mut c).await;
        let used = delta(&before, &commandstats(&mut c).await);
        assert_eq!(used.get("getrange"), Some(&2), "{used:?}");
        assert_eq!(token_of(&s, "job-7"), Some(1_007));
        assert_eq!(token_of(&s, "job-3"), Some(1_003));
        assert_eq!(token_of(&s, "job-8"), None);

        // job-3 scrolls off, then changes hands: its old token must not come back with it
        s.set_tokens(want(&["job-7"]));
        let _: () = redis::pipe()
            .cmd("SET")
            .arg("leasehold:{job-3}")
            .arg("lh1:00000000000000ff:worker-new")
            .arg("PX")
            .arg(300_000)
            .ignore()
            .cmd("SET")
            .arg("leasehold:{job-3}:fence")
            .arg(2_000)
            .ignore()
            .query_async(&mut c)
            .await
            .unwrap();
        run_pass(&mut s, &mut c).await;
        let row = s
            .rows(Instant::now())
            .into_iter()
            .find(|r| r.name == "job-3")
            .unwrap();
        assert_eq!(row.holder.as_deref(), Some("worker-new"));
        assert_eq!(
            row.token, None,
            "the old token 1003 belongs to the old holder"
        );
        s.set_tokens(want(&["job-3"]));
        drain(&mut s, &mut c).await;
        assert_eq!(token_of(&s, "job-3"), Some(2_000));

        // inspect's default: every token
        s.set_tokens(Tokens::All);
        drain(&mut s, &mut c).await;
        let rows = s.rows(Instant::now());
        assert!(rows.iter().all(|r| r.token.is_some()), "{rows:?}");
    });
}
