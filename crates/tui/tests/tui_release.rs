//! Force-release against a real redis-server, without a terminal: exactly the lease the dashboard
//! showed is evicted; a changed holder aborts; rows are per prefix.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use leasehold_tests::RedisServer;
use leasehold_tui::layout::{Layout, LockRow, Targets};
use leasehold_tui::model::ReleaseOutcome;
use leasehold_tui::scan::{Budget, Scanner};
use leasehold_tui::source::release::{fence_keep_ms, force_release};
use redis::aio::MultiplexedConnection;

struct Fx {
    _redis: RedisServer,
    rt: tokio::runtime::Runtime,
    conn: MultiplexedConnection,
    targets: Targets,
}

fn fx(name: &str) -> Option<Fx> {
    let redis = RedisServer::start(name)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt.block_on(async {
        redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    });
    Some(Fx {
        _redis: redis,
        rt,
        conn,
        targets: Targets {
            leasehold: vec!["leasehold".into(), "other".into()],
            plain: vec!["lock:*".into()],
            ..Targets::default()
        },
    })
}

impl Fx {
    fn cmd<T: redis::FromRedisValue>(&mut self, args: &[&[u8]]) -> T {
        let mut c = redis::cmd(std::str::from_utf8(args[0]).unwrap());
        for a in &args[1..] {
            c.arg(*a);
        }
        self.rt.block_on(c.query_async(&mut self.conn)).unwrap()
    }

    fn rows(&mut self) -> Vec<LockRow> {
        let mut s = Scanner::new(
            self.targets.clone(),
            Budget {
                commands_per_sec: 100_000,
                ..Budget::default()
            },
        );
        self.rt.block_on(async {
            s.begin_pass();
            while s.in_pass() {
                s.step(&mut self.conn).await.unwrap();
            }
        });
        s.rows(Instant::now())
    }

    fn row(&mut self, layout: Layout, prefix: &str, name: &str) -> LockRow {
        self.rows()
            .into_iter()
            .find(|r| r.layout == layout && r.prefix == prefix && r.name == name)
            .unwrap_or_else(|| panic!("no {layout:?} {prefix}/{name}"))
    }

    fn release(&mut self, row: &LockRow) -> ReleaseOutcome {
        self.rt
            .block_on(force_release(&mut self.conn, row, fence_keep_ms()))
    }

    fn get(&mut self, key: &str) -> Option<String> {
        self.cmd(&[b"GET", key.as_bytes()])
    }
}

#[test]
fn leasehold_release_deletes_only_the_shown_value_and_advances_the_fence() {
    let Some(mut f) = fx("release_lh") else {
        return;
    };
    let _: () = f.cmd(&[
        b"SET",
        b"leasehold:{jobs}",
        b"lh1:00000000000000aa:web-1",
        b"PX",
        b"60000",
    ]);
    let _: () = f.cmd(&[b"SET", b"leasehold:{jobs}:fence", b"17"]);
    // the same name under another prefix is another lock
    let _: () = f.cmd(&[
        b"SET",
        b"other:{jobs}",
        b"lh1:00000000000000bb:web-2",
        b"PX",
        b"60000",
    ]);
    let rows = f.rows();
    assert_eq!(
        rows.iter().filter(|r| r.name == "jobs").count(),
        2,
        "one row per prefix: {rows:?}"
    );
    let row = f.row(Layout::Leasehold, "leasehold", "jobs");
    assert_eq!(
        (row.holder.as_deref(), row.token),
        (Some("web-1"), Some(17))
    );

    // the lock changes hands between X and y: nothing is deleted
    let _: () = f.cmd(&[
        b"SET",
        b"leasehold:{jobs}",
        b"lh1:00000000000000cc:intruder",
        b"PX",
        b"60000",
    ]);
    match f.release(&row) {
        ReleaseOutcome::Changed {
            key,
            now,
            released_before: 0,
        } => assert_eq!(
            (key.as_str(), now.as_str()),
            ("leasehold:{jobs}", "intruder")
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.get("leasehold:{jobs}").as_deref(),
        Some("lh1:00000000000000cc:intruder"),
        "the new holder keeps its lease"
    );
    assert_eq!(f.get("leasehold:{jobs}:fence").as_deref(), Some("17"));

    // released as shown: key gone, fence advanced past the evicted token, other prefix intact
    let row = f.row(Layout::Leasehold, "leasehold", "jobs");
    match f.release(&row) {
        ReleaseOutcome::Released { keys: 1, token } => assert!(token.unwrap() > 17),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.get("leasehold:{jobs}"), None);
    let fence: u64 = f.get("leasehold:{jobs}:fence").unwrap().parse().unwrap();
    assert!(fence > 17);
    assert_eq!(
        f.get("other:{jobs}").as_deref(),
        Some("lh1:00000000000000bb:web-2"),
        "the same name under the other prefix is untouched"
    );
    // released twice: already gone
    assert_eq!(f.release(&row), ReleaseOutcome::Gone);
}

#[test]
fn foreign_layouts_compare_and_delete_the_shown_value() {
    let Some(mut f) = fx("release_foreign") else {
        return;
    };
    let _: () = f.cmd(&[b"SET", b"lock:report", b"uuid-1", b"PX", b"60000"]);
    let _: () = f.cmd(&[b"SET", b"rueidislock:0:orders", b"r1", b"PX", b"60000"]);
    let _: () = f.cmd(&[b"SET", b"rueidislock:2:orders", b"r1", b"PX", b"60000"]);
    let _: i64 = f.cmd(&[
        b"HSET",
        b"myLock",
        b"8743c9c0-0795-4907-87fd-6c719a6b4586:1",
        b"1",
    ]);
    let _: i64 = f.cmd(&[b"PEXPIRE", b"myLock", b"60000"]);

    // plain: changed value aborts, shown value is deleted
    let row = f.row(Layout::Plain, "", "lock:report");
    let _: () = f.cmd(&[b"SET", b"lock:report", b"uuid-2", b"PX", b"60000"]);
    assert!(matches!(f.release(&row), ReleaseOutcome::Changed { ref now, .. } if now == "uuid-2"));
    assert_eq!(f.get("lock:report").as_deref(), Some("uuid-2"));
    let row = f.row(Layout::Plain, "", "lock:report");
    assert_eq!(
        f.release(&row),
        ReleaseOutcome::Released {
            keys: 1,
            token: None
        }
    );
    assert_eq!(f.get("lock:report"), None);

    // rueidislock: every held key, each compared
    let row = f.row(Layout::Rueidislock, "rueidislock", "orders");
    assert_eq!(row.held.len(), 2);
    assert_eq!(
        f.release(&row),
        ReleaseOutcome::Released {
            keys: 2,
            token: None
        }
    );
    assert_eq!(f.get("rueidislock:0:orders"), None);

    // Redisson: the shown holder field must still be there
    let row = f.row(Layout::Redisson, "", "myLock");
    let _: i64 = f.cmd(&[b"DEL", b"myLock"]);
    let _: i64 = f.cmd(&[
        b"HSET",
        b"myLock",
        b"0000aaaa-0795-4907-87fd-6c719a6b4586:7",
        b"1",
    ]);
    assert!(matches!(
        f.release(&row),
        ReleaseOutcome::Changed { ref now, .. } if now.starts_with("0000aaaa")
    ));
    let exists: i64 = f.cmd(&[b"EXISTS", b"myLock"]);
    assert_eq!(exists, 1, "the new Redisson holder keeps its lock");
    let row = f.row(Layout::Redisson, "", "myLock");
    assert_eq!(
        f.release(&row),
        ReleaseOutcome::Released {
            keys: 1,
            token: None
        }
    );
    let exists: i64 = f.cmd(&[b"EXISTS", b"myLock"]);
    assert_eq!(exists, 0);
}

#[test]
fn a_value_too_large_to_read_is_never_released_and_a_type_change_aborts() {
    let Some(mut f) = fx("release_big") else {
        return;
    };
    let big = vec![b'x'; 1 << 20];
    let _: () = f.cmd(&[b"SET", b"lock:big", &big, b"PX", b"60000"]);
    let row = f.row(Layout::Plain, "", "lock:big");
    assert!(
        matches!(f.release(&row), ReleaseOutcome::Failed(ref why) if why.contains("too large"))
    );
    let len: i64 = f.cmd(&[b"STRLEN", b"lock:big"]);
    assert_eq!(len, 1 << 20);

    let _: () = f.cmd(&[b"SET", b"lock:t", b"v", b"PX", b"60000"]);
    let row = f.row(Layout::Plain, "", "lock:t");
    let _: i64 = f.cmd(&[b"DEL", b"lock:t"]);
    let _: i64 = f.cmd(&[b"RPUSH", b"lock:t", b"v"]);
    assert!(matches!(f.release(&row), ReleaseOutcome::Changed { ref now, .. } if now == "a list"));
}
