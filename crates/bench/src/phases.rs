//! The measured phases against Redis: latency and throughput per call style, the fenced scripts
//! alone, hand-off across lockers, and the try storm.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use leasehold_redis::{LockError, Locker};

use crate::conn::Conn;
use crate::floor;
use crate::report::{CallStyle, Handoff};
use crate::samples::{Samples, ratio, round1};

/// How a phase's loop is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Awaited directly by the caller (code in `#[tokio::main]`, the runtime's `block_on` thread).
    MainThread,
    /// Inside `tokio::spawn`ed tasks on the runtime's workers.
    Spawned,
}

impl Style {
    /// The report's key.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Style::MainThread => "main_thread",
            Style::Spawned => "spawned",
        }
    }
}

/// Run `fut` in `style`.
async fn drive<T: Send + 'static>(
    style: Style,
    fut: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    match style {
        Style::MainThread => Some(fut.await),
        Style::Spawned => tokio::spawn(fut).await.ok(),
    }
}

/// What the latency and throughput phases need.
#[derive(Clone)]
pub struct Rig {
    /// Single-key locker (prefix [`crate::LOCK_PREFIX`]).
    pub locker: Locker,
    /// Key-majority (k = 2) locker.
    pub locker3: Locker,
    /// The floor's own connection.
    pub floor: Conn,
}

fn lerr(e: LockError) -> String {
    e.to_string()
}

/// Floor and cycle alternately, then floor3 and cycle3 alternately, for `phase` each.
async fn latency(rig: Rig, phase: Duration) -> Result<[Samples; 4], String> {
    let del = redis::Script::new(floor::FLOOR_DEL);
    let (mut f, mut c, mut f3, mut c3) = Default::default();
    let mut conn = rig.floor.clone();
    let key = format!("{}:{{one}}", crate::FLOOR_PREFIX);
    let t = Instant::now();
    while t.elapsed() < phase {
        let s = Instant::now();
        floor::cycle(&mut conn, &del, &key, "v").await?;
        Samples::add(&mut f, s.elapsed());
        let s = Instant::now();
        rig.locker
            .try_lock("cycle")
            .await
            .map_err(lerr)?
            .release()
            .await
            .map_err(lerr)?;
        Samples::add(&mut c, s.elapsed());
    }
    let keys = ["a", "b", "c"].map(|k| format!("{}:{{three-{k}}}", crate::FLOOR_PREFIX));
    let t = Instant::now();
    while t.elapsed() < phase {
        let s = Instant::now();
        floor::cycle3(&conn, &del, &keys, "v").await?;
        Samples::add(&mut f3, s.elapsed());
        let s = Instant::now();
        rig.locker3
            .try_lock("cycle3")
            .await
            .map_err(lerr)?
            .release()
            .await
            .map_err(lerr)?;
        Samples::add(&mut c3, s.elapsed());
    }
    Ok([f, c, f3, c3])
}

/// `tasks` loops for `phase`; each returns its completed cycles. Cycles per second.
async fn loops<F, Fut>(style: Style, tasks: usize, phase: Duration, make: F) -> f64
where
    F: Fn(usize, Instant) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    let end = Instant::now() + phase;
    let started = Instant::now();
    let done: u64 = match style {
        Style::MainThread => futures_util::future::join_all((0..tasks).map(|i| make(i, end)))
            .await
            .into_iter()
            .sum(),
        Style::Spawned => {
            let handles: Vec<_> = (0..tasks).map(|i| tokio::spawn(make(i, end))).collect();
            let mut n = 0;
            for h in handles {
                n += h.await.unwrap_or(0);
            }
            n
        }
    };
    done as f64 / started.elapsed().as_secs_f64().max(1e-9)
}

/// 64 loops on their own names through the locker, and 64 floor loops on their own keys.
async fn throughput(style: Style, rig: &Rig, phase: Duration) -> (f64, f64) {
    let lh = loops(style, 64, phase, |i, end| {
        let l = rig.locker.clone();
        async move {
            let name = format!("tp{i}");
            let mut n = 0;
            while Instant::now() < end {
                if let Ok(lease) = l.try_lock(&name).await
                    && lease.release().await.is_ok()
                {
                    n += 1;
                }
            }
            n
        }
    })
    .await;
    let fl = loops(style, 64, phase, |i, end| {
        let mut c = rig.floor.clone();
        async move {
            let del = redis::Script::new(floor::FLOOR_DEL);
            let key = format!("{}:{{tp{i}}}", crate::FLOOR_PREFIX);
            let mut n = 0;
            while Instant::now() < end {
                if floor::cycle(&mut c, &del, &key, "v").await.is_ok() {
                    n += 1;
                }
            }
            n
        }
    })
    .await;
    (lh, fl)
}

/// Every latency and throughput figure in one call style.
pub async fn call_style(style: Style, rig: &Rig, phase: Duration) -> Result<CallStyle, String> {
    let r = rig.clone();
    let [f, c, f3, c3] = drive(style, latency(r, phase))
        .await
        .ok_or("the latency task panicked")??;
    let secs = phase.as_secs_f64();
    let (leasehold_ops, floor_ops) = throughput(style, rig, phase).await;
    Ok(CallStyle {
        cycle_ratio: ratio(c.pct_us(0.5), f.pct_us(0.5)),
        cycle3_ratio: ratio(c3.pct_us(0.5), f3.pct_us(0.5)),
        floor: f.latency(secs),
        cycle: c.latency(secs),
        floor3: f3.latency(secs),
        cycle3: c3.latency(secs),
        leasehold_ops: leasehold_ops.round(),
        floor_ops: floor_ops.round(),
        throughput_ratio: ratio(leasehold_ops, floor_ops),
    })
}

/// leasehold's acquire and release scripts called by hand by 64 tasks: the server-side cost.
pub async fn fenced_scripts(floor: &Conn, phase: Duration) -> f64 {
    loops(Style::Spawned, 64, phase, |i, end| {
        let mut c = floor.clone();
        async move {
            let acq = redis::Script::new(leasehold_core::wire::ACQUIRE.source);
            let rel = redis::Script::new(leasehold_core::wire::RELEASE.source);
            let key = format!("{}:{{sc{i}}}", crate::FLOOR_PREFIX);
            let fence = leasehold_core::wire::keys::fence_key_of(&key);
            let mut n = 0;
            while Instant::now() < end {
                let a: redis::RedisResult<redis::Value> = acq
                    .key(&key)
                    .key(&fence)
                    .arg("v")
                    .arg(10_000)
                    .arg("0")
                    .arg(1_000)
                    .invoke_async(&mut c)
                    .await;
                let r: redis::RedisResult<i64> = rel.key(&key).arg("v").invoke_async(&mut c).await;
                if a.is_ok() && r.is_ok() {
                    n += 1;
                }
            }
            n
        }
    })
    .await
    .round()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `lockers.len()` contenders on one name, one locker each, for `phase`.
pub async fn handoff(lockers: Vec<Locker>, phase: Duration, rtt_p50_us: f64) -> Handoff {
    let contenders = lockers.len() as u32;
    // when the holder sent its release, and who it was
    let last: Arc<Mutex<Option<(Instant, usize)>>> = Arc::default();
    let gaps = Arc::new(Mutex::new(Samples::default()));
    let waits = Arc::new(Mutex::new(Samples::default()));
    let end = Instant::now() + phase;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (me, l) in lockers.into_iter().enumerate() {
        let (last, gaps, waits) = (last.clone(), gaps.clone(), waits.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let s = Instant::now();
                let Ok(lease) = l.lock("handoff", Duration::from_secs(5)).await else {
                    continue;
                };
                let now = Instant::now();
                lock(&waits).add(now - s);
                // a hand-off goes to another locker; re-acquiring one's own lock is not one
                if let Some((r, who)) = lock(&last).take()
                    && who != me
                {
                    lock(&gaps).add(now - r);
                }
                *lock(&last) = Some((Instant::now(), me));
                let _ = lease.release().await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let (gaps, waits) = (lock(&gaps).clone(), lock(&waits).clone());
    let rtt = rtt_p50_us.max(1e-3);
    Handoff {
        contenders,
        per_sec: (gaps.len() as f64 / secs).round(),
        acquisitions_per_sec: (waits.len() as f64 / secs).round(),
        wait_p50_us: waits.pct_us(0.5),
        wait_p99_us: waits.pct_us(0.99),
        gap_p50_us: gaps.pct_us(0.5),
        gap_p99_us: gaps.pct_us(0.99),
        gap_p50_rtts: round1(gaps.pct_us(0.5) / rtt),
        gap_p99_rtts: round1(gaps.pct_us(0.99) / rtt),
    }
}

/// 200 `try_lock` loops on 10 names (20 lockers of 10 tasks, each task of a locker on its own
/// name, so the storm meets Redis rather than the in-process queue): outcomes by reason.
pub async fn try_storm(lockers: Vec<Locker>, phase: Duration) -> BTreeMap<String, u64> {
    let counts: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let end = Instant::now() + phase;
    let mut tasks = Vec::new();
    for i in 0..lockers.len() * 10 {
        let (l, counts) = (lockers[i / 10].clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("storm{}", i % 10);
            while Instant::now() < end {
                let reason = match l.try_lock(&name).await {
                    Ok(lease) => {
                        let _ = lease.release().await;
                        "acquired".to_owned()
                    }
                    Err(LockError::Acquire(e)) => e.reason().to_owned(),
                    Err(e) => format!("error: {e}"),
                };
                *lock(&counts).entry(reason).or_default() += 1;
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    lock(&counts).clone()
}
