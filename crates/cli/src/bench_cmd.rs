//! `leasehold bench`: lock latency, throughput and hand-off on a real Redis against the
//! round-trip floor, the core's own cost, the simulator's speed, and recommended settings.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use leasehold_core::testkit::bench_cycle;
use leasehold_core::{HolderId, Lock, LockConfig, LockName};
use leasehold_redis::{LockError, LockerOptions};
use serde_json::{Value, json};

use crate::sim_cmd::parse_duration;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Redis to measure; without it, a private redis-server is started on a free loopback port.
    #[arg(long)]
    redis: Option<String>,
    /// Total measuring time, split across the phases.
    #[arg(long, default_value = "16s", value_parser = parse_duration)]
    duration: Duration,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

struct OwnRedis(std::process::Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Result<(OwnRedis, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))?;
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("cannot start redis-server ({e}): install it (Debian/Ubuntu: apt-get install -y redis-server) or pass --redis URL")
        })?;
    let own = OwnRedis(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not start listening within 10s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((own, format!("redis://127.0.0.1:{port}")))
}

/// Latency samples in microseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn add(&mut self, d: Duration) {
        self.0
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }
    fn pct(&self, p: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
    fn json(&self, secs: f64) -> Value {
        json!({
            "p50_us": self.pct(0.5), "p99_us": self.pct(0.99), "p999_us": self.pct(0.999),
            "count": self.0.len(), "per_sec": (self.0.len() as f64 / secs.max(1e-9)).round(),
        })
    }
}

/// One progress line per phase, on stderr (stdout stays the report or the JSON object).
fn progress(_json: bool, what: &str) {
    eprintln!("bench: {what}...");
}

pub fn run(a: BenchArgs) -> ExitCode {
    let Some(rt) = crate::runtime("bench") else {
        return ExitCode::from(1);
    };
    let (_own, url) = match &a.redis {
        Some(u) => (None, u.clone()),
        None => match start_redis() {
            Ok((own, url)) => {
                eprintln!(
                    "bench: started a private redis-server at {url} (pass --redis URL to measure yours)"
                );
                (Some(own), url)
            }
            Err(e) => {
                eprintln!("leasehold bench: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match rt.block_on(bench(&a, &url)) {
        Ok(report) => {
            if a.json {
                println!("{report}");
            } else {
                print_report(&report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("leasehold bench: {e}");
            ExitCode::from(1)
        }
    }
}

const FLOOR_DEL: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

async fn floor_cycle(
    c: &mut redis::aio::MultiplexedConnection,
    script: &redis::Script,
    key: &str,
    val: &str,
) -> Result<(), String> {
    let ok: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(val)
        .arg("NX")
        .arg("PX")
        .arg(10_000)
        .query_async(c)
        .await
        .map_err(|e| e.to_string())?;
    if ok.is_none() {
        return Err(format!("floor key {key} unexpectedly held"));
    }
    let _: i64 = script
        .key(key)
        .arg(val)
        .invoke_async(c)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Run `tasks` loops concurrently until `phase` ends; `task(i, end)` makes loop `i`, which returns
/// how many cycles it completed. Completed cycles per second over the phase.
async fn ops_per_sec<F, Fut>(tasks: usize, phase: Duration, task: F) -> f64
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let end = Instant::now() + phase;
    let handles: Vec<_> = (0..tasks).map(|i| tokio::spawn(task(i, end))).collect();
    let mut done = 0u64;
    for h in handles {
        done += h.await.unwrap_or(0);
    }
    done as f64 / phase.as_secs_f64()
}

async fn bench(a: &BenchArgs, url: &str) -> Result<Value, String> {
    let phase = (a.duration / 8).max(Duration::from_millis(150));
    let quiet = a.json;
    let mut c = crate::connect(url).await?;
    let lerr = |e: LockError| e.to_string();
    let opts = || {
        LockerOptions::new(url.to_owned())
            .ttl(Duration::from_secs(10))
            .prefix("leasehold-bench")
    };

    progress(quiet, "rtt (PING)");
    let mut rtt = Samples::default();
    let t = Instant::now();
    while t.elapsed() < phase {
        let s = Instant::now();
        let _: () = redis::cmd("PING")
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        rtt.add(s.elapsed());
    }
    let rtt_secs = t.elapsed().as_secs_f64();

    progress(
        quiet,
        "floor and cycle, alternating (SET NX PX + compare-and-delete vs leasehold try_lock + release)",
    );
    let script = redis::Script::new(FLOOR_DEL);
    let locker = opts().build().await.map_err(lerr)?;
    let (mut floor, mut cycle) = (Samples::default(), Samples::default());
    let t = Instant::now();
    while t.elapsed() < 2 * phase {
        let s = Instant::now();
        floor_cycle(&mut c, &script, "leasehold-bench:{floor}", "v").await?;
        floor.add(s.elapsed());
        let s = Instant::now();
        locker
            .try_lock("cycle")
            .await
            .map_err(lerr)?
            .release()
            .await
            .map_err(lerr)?;
        cycle.add(s.elapsed());
    }
    let floor_secs = t.elapsed().as_secs_f64();
    let cycle_secs = floor_secs;
    let cycle_ratio = cycle.pct(0.5) as f64 / floor.pct(0.5).max(1) as f64;

    progress(
        quiet,
        "throughput (64 tasks, own names: leasehold vs floor)",
    );
    let leasehold_ops = ops_per_sec(64, phase, |i, end| {
        let l = locker.clone();
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
    let floor_ops = ops_per_sec(64, phase, |i, end| {
        let mut c = c.clone();
        async move {
            let script = redis::Script::new(FLOOR_DEL);
            let key = format!("leasehold-bench:{{fl{i}}}");
            let mut n = 0;
            while Instant::now() < end {
                if floor_cycle(&mut c, &script, &key, "v").await.is_ok() {
                    n += 1;
                }
            }
            n
        }
    })
    .await;

    // profile aid: the same fenced acquire + release scripts leasehold runs, called by hand at the
    // same concurrency; the gap to `floor_ops` is the server-side cost of fencing in Lua
    progress(quiet, "throughput of the fenced scripts alone (64 tasks)");
    let scripted_ops = ops_per_sec(64, phase, |i, end| {
        let mut c = c.clone();
        async move {
            let acq = redis::Script::new(leasehold_core::wire::ACQUIRE.source);
            let rel = redis::Script::new(leasehold_core::wire::RELEASE.source);
            let key = format!("leasehold-bench:{{sc{i}}}");
            let fence = format!("{key}:fence");
            let mut n = 0;
            while Instant::now() < end {
                let a: redis::RedisResult<redis::Value> = acq
                    .key(&key)
                    .key(&fence)
                    .arg("v")
                    .arg(10_000)
                    .arg("0")
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
    .await;

    let rtt_p50 = rtt.pct(0.5).max(1);
    let mut handoff = serde_json::Map::new();
    for (mode, push) in [("push", true), ("poll", false)] {
        progress(
            quiet,
            &format!("handoff ({mode}: 16 clients contending on one name)"),
        );
        let mut lockers = Vec::new();
        for _ in 0..16 {
            let mut o = opts();
            o.push = push;
            lockers.push(o.build().await.map_err(lerr)?);
        }
        // (when the previous holder sent its release, which client it was)
        let last_release: Arc<Mutex<Option<(Instant, usize)>>> = Arc::default();
        let gaps = Arc::new(Mutex::new(Samples::default()));
        let waits = Arc::new(Mutex::new(Samples::default()));
        let end = Instant::now() + phase;
        let mut tasks = Vec::new();
        for (me, l) in lockers.into_iter().enumerate() {
            let (last, gaps, waits) = (last_release.clone(), gaps.clone(), waits.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let s = Instant::now();
                    let Ok(lease) = l.lock("handoff", Duration::from_secs(5)).await else {
                        continue;
                    };
                    let now = Instant::now();
                    waits
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .add(now - s);
                    // a hand-off goes to another client; re-acquiring one's own lock is not one
                    let prev = last
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take();
                    if let Some((r, who)) = prev
                        && who != me
                    {
                        gaps.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .add(now - r);
                    }
                    *last
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((Instant::now(), me));
                    let _ = lease.release().await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let gaps = std::mem::take(
            &mut *gaps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let waits = std::mem::take(
            &mut *waits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        handoff.insert(
            mode.into(),
            json!({
                "per_sec": (gaps.0.len() as f64 / phase.as_secs_f64()).round(),
                "wait_p50_us": waits.pct(0.5), "wait_p99_us": waits.pct(0.99),
                "gap_p50_us": gaps.pct(0.5), "gap_p99_us": gaps.pct(0.99),
                "gap_p50_rtts": (gaps.pct(0.5) as f64 / rtt_p50 as f64 * 100.0).round() / 100.0,
            }),
        );
    }

    let mut try_storm = serde_json::Map::new();
    for wait in [Duration::from_micros(20), Duration::from_millis(100)] {
        progress(
            quiet,
            &format!("try_storm (200 tasks, 10 names, slot_wait {wait:?})"),
        );
        // 20 clients of 10 tasks each, every task of a client on its own name, so the storm
        // meets Redis (not the in-process queue): 200 tasks on 10 names
        let mut lockers = Vec::new();
        for _ in 0..20 {
            lockers.push(opts().slot_wait(wait).build().await.map_err(lerr)?);
        }
        let counts: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
        let end = Instant::now() + phase;
        let mut tasks = Vec::new();
        for i in 0..200 {
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
                    *counts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(reason)
                        .or_default() += 1;
                    tokio::task::yield_now().await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let c = counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        try_storm.insert(format!("slot_wait_{}us", wait.as_micros()), json!(c));
    }

    progress(quiet, "core (machine alone)");
    let core = core_cost();
    progress(quiet, "sim (calm, one core)");
    let sim = sim_speed(phase);

    let p999 = rtt.pct(0.999).max(floor.pct(0.999) / 2);
    let slot_wait_us = (p999 * 4).max(1_000);
    let ttl_ms = ((slot_wait_us / 1_000) * 100).clamp(1_000, 30_000);
    let recommend = json!({
        "slot_wait_us": slot_wait_us,
        "ttl_ms": ttl_ms,
        "extend_interval_ms": ttl_ms / 3,
        "why": [
            format!("slot_wait {}us: 4x the p99.9 round trip ({}us), at least 1ms, so a reply in the measured tail is never reported as slow", slot_wait_us, p999),
            format!("ttl {}ms: 100x slot_wait, at least 1s, so a few slow rounds and a pause cannot eat the lease", ttl_ms),
            format!("extend every {}ms (ttl/3): two extensions can fail before the lease runs out", ttl_ms / 3),
        ],
    });
    Ok(json!({
        "redis": leasehold_redis::redact(url),
        "phase_ms": phase.as_millis() as u64,
        "rtt": rtt.json(rtt_secs),
        "floor": floor.json(floor_secs),
        "cycle": cycle.json(cycle_secs),
        "cycle_ratio": (cycle_ratio * 1000.0).round() / 1000.0,
        "throughput": {
            "leasehold_ops": leasehold_ops.round(),
            "floor_ops": floor_ops.round(),
            "ratio": ((leasehold_ops / floor_ops.max(1.0)) * 1000.0).round() / 1000.0,
            "fenced_scripts_ops": scripted_ops.round(),
        },
        "handoff": handoff,
        "try_storm": try_storm,
        "core": core,
        "sim": sim,
        "recommend": recommend,
    }))
}

/// ns and heap allocations per acquire -> extend -> release cycle of the core machine alone.
fn core_cost() -> Value {
    let (Ok(name), Ok(holder)) = (LockName::new("bench"), HolderId::new("bench")) else {
        return json!({"error": "invalid bench name"});
    };
    let Ok(mut l) = Lock::new(LockConfig::default(), name, holder, 42) else {
        return json!({"error": "invalid bench config"});
    };
    let mut t = leasehold_core::Instant::from_millis(1);
    for _ in 0..10_000 {
        if !bench_cycle(&mut l, &mut t) {
            return json!({"error": "the core cycle did not complete"});
        }
    }
    let n = 500_000u32;
    let a0 = crate::alloc_count::allocations();
    let s = Instant::now();
    for _ in 0..n {
        bench_cycle(&mut l, &mut t);
    }
    let ns = s.elapsed().as_nanos() as f64 / f64::from(n);
    let allocs = (crate::alloc_count::allocations() - a0) as f64 / f64::from(n);
    json!({"ns_per_cycle": ns.round(), "allocs_per_cycle": allocs})
}

/// Simulated events per second on `calm`, one core.
fn sim_speed(budget: Duration) -> Value {
    let o = leasehold_sim::Overrides::default();
    let (mut events, mut seed) = (0u64, 0u64);
    let s = Instant::now();
    while s.elapsed() < budget || seed == 0 {
        if let Ok(cfg) = leasehold_sim::config_for("calm", seed, &o)
            && let Ok(r) = leasehold_sim::run_seed(&cfg, seed)
        {
            events += r.events;
        }
        seed += 1;
    }
    json!({"events_per_sec": (events as f64 / s.elapsed().as_secs_f64()).round(), "seeds": seed})
}

fn print_report(r: &Value) {
    let us = |v: &Value| {
        format!(
            "p50 {}µs  p99 {}µs  p99.9 {}µs  ({}/s)",
            v["p50_us"], v["p99_us"], v["p999_us"], v["per_sec"]
        )
    };
    println!(
        "leasehold bench against {}",
        r["redis"].as_str().unwrap_or("?")
    );
    println!("  rtt        {}", us(&r["rtt"]));
    println!(
        "  floor      {}   (SET NX PX + compare-and-delete, hand-written)",
        us(&r["floor"])
    );
    println!(
        "  cycle      {}   (leasehold try_lock + release)",
        us(&r["cycle"])
    );
    println!("  cycle_ratio {}   (target <= 1.10)", r["cycle_ratio"]);
    let tp = &r["throughput"];
    println!(
        "  throughput leasehold {} ops/s, floor {} ops/s, ratio {} (target >= 0.90)",
        tp["leasehold_ops"], tp["floor_ops"], tp["ratio"]
    );
    println!(
        "             the fenced acquire/release scripts alone: {} ops/s (server-side cost of fencing)",
        tp["fenced_scripts_ops"]
    );
    for mode in ["push", "poll"] {
        let h = &r["handoff"][mode];
        println!(
            "  handoff {mode:<4} {} hand-offs/s, wait p50 {}µs p99 {}µs, gap p50 {}µs ({} RTTs) p99 {}µs",
            h["per_sec"],
            h["wait_p50_us"],
            h["wait_p99_us"],
            h["gap_p50_us"],
            h["gap_p50_rtts"],
            h["gap_p99_us"]
        );
    }
    for (k, v) in r["try_storm"].as_object().into_iter().flatten() {
        println!("  try_storm {k}: {v}");
    }
    println!(
        "  core       {} ns/cycle, {} allocations/cycle",
        r["core"]["ns_per_cycle"], r["core"]["allocs_per_cycle"]
    );
    println!(
        "  sim        {} events/s on calm (one core)",
        r["sim"]["events_per_sec"]
    );
    println!(
        "  recommend  slot_wait {}µs, ttl {}ms, extend every {}ms",
        r["recommend"]["slot_wait_us"],
        r["recommend"]["ttl_ms"],
        r["recommend"]["extend_interval_ms"]
    );
    for why in r["recommend"]["why"].as_array().into_iter().flatten() {
        println!("             {}", why.as_str().unwrap_or(""));
    }
}
