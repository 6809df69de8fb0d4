//! The Redis source as `watch` runs it, without a terminal: snapshots arrive, a client-tracking
//! push makes a new lock show up before the next pass, and the server-counted commands stay
//! within the budget however short `--refresh` is.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use leasehold_tests::RedisServer;
use leasehold_tui::layout::Targets;
use leasehold_tui::model::Input;
use leasehold_tui::scan::Budget;
use leasehold_tui::source::redis::{RedisSource, run, tracking_prefixes};
use tokio::sync::mpsc::UnboundedReceiver;

async fn commands(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Wait for a snapshot whose rows satisfy `ok`.
async fn until(
    rx: &mut UnboundedReceiver<Input>,
    within: Duration,
    ok: impl Fn(&[leasehold_tui::layout::LockRow]) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no matching snapshot within {within:?}");
        if let Ok(Some(Input::Snapshot { rows, .. })) = tokio::time::timeout(left, rx.recv()).await
            && ok(&rows)
        {
            return;
        }
    }
}

#[test]
fn a_push_shows_a_new_lock_before_the_next_pass() {
    let Some(redis) = RedisServer::start("source_push") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (_refresh_tx, refresh_rx) = tokio::sync::mpsc::unbounded_channel();
        let src = RedisSource {
            url: redis.url(),
            targets: Targets {
                plain: vec!["lock:*".into()],
                ..Targets::default()
            },
            budget: Budget::default(),
            every: Duration::from_secs(3_600), // one pass, then only pushes
        };
        // the UI has the lock "pushed" on screen: its token is read too
        let (_tokens_tx, tokens_rx) = tokio::sync::watch::channel(
            [("leasehold".to_owned(), "pushed".to_owned())]
                .into_iter()
                .collect(),
        );
        let task = tokio::spawn(run(src, tx, refresh_rx, tokens_rx, Instant::now()));
        until(&mut rx, Duration::from_secs(10), |r| r.is_empty()).await;
        // give the tracking connection a moment after the first pass
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _: () = redis
            .cmd(&[
                "SET",
                "leasehold:{pushed}",
                "lh1:00000000000000aa:early",
                "PX",
                "60000",
            ])
            .await
            .unwrap();
        let _: () = redis
            .cmd(&["SET", "leasehold:{pushed}:fence", "42"])
            .await
            .unwrap();
        let _: () = redis
            .cmd(&["SET", "lock:pushed", "plain-early", "PX", "60000"])
            .await
            .unwrap();
        until(&mut rx, Duration::from_secs(10), |rows| {
            rows.iter()
                .any(|r| r.holder.as_deref() == Some("early") && r.token == Some(42))
                && rows
                    .iter()
                    .any(|r| r.holder.as_deref() == Some("plain-early"))
        })
        .await;
        task.abort();
    });
}

#[test]
fn the_budget_holds_across_passes_with_no_refresh_period() {
    let Some(redis) = RedisServer::start("source_budget") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut p = redis::pipe();
        for i in 0..300 {
            p.cmd("SET")
                .arg(format!("leasehold:{{j{i}}}"))
                .arg("lh1:00000000000000aa:w")
                .arg("PX")
                .arg(600_000)
                .ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (_refresh_tx, refresh_rx) = tokio::sync::mpsc::unbounded_channel();
        let budget = 200;
        let src = RedisSource {
            url: redis.url(),
            targets: Targets::default(),
            budget: Budget {
                commands_per_sec: budget,
                ..Budget::default()
            },
            every: Duration::ZERO,
        };
        let before = commands(&mut c).await;
        let started = Instant::now();
        let (_tokens_tx, tokens_rx) = tokio::sync::watch::channel(Default::default());
        let task = tokio::spawn(run(src, tx, refresh_rx, tokens_rx, Instant::now()));
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        tokio::time::sleep(Duration::from_secs(3)).await;
        task.abort();
        let elapsed = started.elapsed().as_secs_f64();
        drain.abort();
        let used = commands(&mut c).await - before;
        // the bucket's bound: one burst (a tenth of the budget) plus the refill over the time
        // the source ran; a slow machine only sends fewer
        let bound = f64::from(budget) / 10.0 + f64::from(budget) * 0.9 * elapsed + 5.0;
        assert!(
            (used as f64) <= bound,
            "{used} commands in {elapsed:.2}s over a budget of {budget}/s (bound {bound:.0})"
        );
        assert!(used > 0);
    });
}

#[test]
fn tracking_prefixes_never_overlap() {
    let t = Targets {
        leasehold: vec!["leasehold".into(), "lease".into()],
        rueidislock: vec!["rueidislock".into()],
        plain: vec!["lock:*".into(), "lock:a*".into(), "*:lock".into()],
        redisson: true,
    };
    assert_eq!(
        tracking_prefixes(&t),
        ["lease:", "leasehold:", "lock:", "rueidislock:"],
        "lock:a is inside lock:, and a leading wildcard is not tracked"
    );
}
