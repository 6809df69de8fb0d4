//! `leasehold bench` as a library: lock latency, throughput, hand-off and held-lease cost on a real
//! Redis against the round-trip floor, the core's own cost, the simulator's speed, and recommended
//! settings, returned as a typed [`BenchReport`].
//!
//! Honest by construction: the floor runs on its own connection with keys outside every prefix a
//! `Locker` tracks (no invalidation push lands on either side's socket); every latency and
//! throughput phase runs in both call styles (awaited by the caller, as code in `#[tokio::main]`
//! runs, and in spawned tasks) and the headline figures are the worse of the two; hand-off
//! contenders each have their own `Locker`, as separate processes would. Every key the bench
//! writes is deleted at the end ([`cleanup::delete_bench_keys`]).

pub mod cleanup;
pub mod conn;
pub mod floor;
pub mod hold;
mod local;
mod phases;
pub mod report;
pub mod samples;

use std::time::{Duration, Instant};

use leasehold_redis::LockerOptions;

pub use report::BenchReport;

/// Prefix of every lock key and fence counter the bench writes.
pub const LOCK_PREFIX: &str = "leasehold-bench";
/// Prefix of the floor's keys: outside [`LOCK_PREFIX`], so no locker is notified of them.
pub const FLOOR_PREFIX: &str = "lhbench-floor";

/// What went wrong; every variant says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BenchError {
    /// The Redis could not be reached or refused us. Check the URL, that redis-server runs, and
    /// the credentials.
    #[error(
        "cannot connect to {url}: {detail}; check the URL, that redis-server runs there and the credentials"
    )]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// What failed.
        detail: String,
    },
    /// A phase failed against a reachable Redis (a lease lost under load, an unexpected reply).
    /// Re-run on a quieter machine; the message names the phase.
    #[error("bench phase {phase}: {detail}")]
    Phase {
        /// The phase.
        phase: &'static str,
        /// What failed.
        detail: String,
    },
}

/// How to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The Redis to measure.
    pub url: String,
    /// Time for the latency phases (split over the call styles); other phases scale with it.
    pub duration: Duration,
    /// Leases to hold in the hold phase (default 1,000 and 10,000).
    pub hold: Vec<usize>,
    /// `(replicas, timeout)`: every lock write confirmed by `WAIT` (`LockerOptions::replicas`),
    /// with a per-slot wait of `timeout + 150 ms`; the try-storm phase (which compares two
    /// per-slot waits) is skipped. `None`: no `WAIT`.
    pub replicas: Option<(u32, Duration)>,
}

impl BenchOptions {
    /// Defaults for `url`: 16 s, holding 1,000 and 10,000 leases.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        BenchOptions {
            url: url.into(),
            duration: Duration::from_secs(16),
            hold: vec![1_000, 10_000],
            replicas: None,
        }
    }
}

/// `l` with every write confirmed by `WAIT` when `replicas` is set, and a per-slot wait that
/// covers the `WAIT` (Redis answers a timed-out one at its next 100 ms `hz` tick).
pub(crate) fn with_replicas(l: LockerOptions, replicas: Option<(u32, Duration)>) -> LockerOptions {
    match replicas {
        Some((n, timeout)) => {
            let wait = (timeout + Duration::from_millis(150)).max(l.lock.slot_wait);
            l.replicas(n, timeout).slot_wait(wait)
        }
        None => l,
    }
}

fn phase_err(phase: &'static str) -> impl Fn(String) -> BenchError {
    move |detail| BenchError::Phase { phase, detail }
}

/// Run every phase against `o.url` (one server, `redis+sentinel://` or `redis+cluster://`);
/// `progress` is told each phase as it starts. Deletes the keys it wrote, on every primary,
/// before returning, on success or error.
pub async fn run(o: &BenchOptions, progress: &dyn Fn(&str)) -> Result<BenchReport, BenchError> {
    let cluster = leasehold_redis::is_cluster_url(&o.url);
    if cluster && o.replicas.is_some() {
        return Err(BenchError::Phase {
            phase: "setup",
            detail: "WAIT-confirmed leases (replicas) are not available on a Redis Cluster; \
                     bench the cluster without replicas"
                .into(),
        });
    }
    let mut nodes = conn::primary_connections(&o.url).await?;
    let result = measure(o, progress, &mut nodes).await;
    progress("cleanup (deleting every key the bench wrote)");
    let deleted = cleanup::delete_on(&mut nodes)
        .await
        .map_err(phase_err("cleanup"))?;
    let mut report = result?;
    report.cleanup.keys_deleted = deleted;
    Ok(report)
}

async fn measure(
    o: &BenchOptions,
    progress: &dyn Fn(&str),
    nodes: &mut [redis::aio::MultiplexedConnection],
) -> Result<BenchReport, BenchError> {
    let cluster = leasehold_redis::is_cluster_url(&o.url);
    let phase = (o.duration / 8).max(Duration::from_millis(150));
    let url = o.url.as_str();
    let opts = || {
        let mut l = LockerOptions::new(url.to_owned())
            .ttl(Duration::from_secs(10))
            .prefix(LOCK_PREFIX);
        l.lock.fence_retention = Duration::from_secs(1);
        with_replicas(l, o.replicas)
    };
    let build = |l: LockerOptions| async move {
        l.build().await.map_err(|e| BenchError::Connect {
            url: leasehold_redis::redact(url),
            detail: e.to_string(),
        })
    };
    let mut report = BenchReport {
        redis: leasehold_redis::redact(url),
        phase_ms: u64::try_from(phase.as_millis()).unwrap_or(u64::MAX),
        replicas: o.replicas.map_or(0, |(n, _)| n),
        topology: if cluster { "cluster" } else { "single" }.to_owned(),
        primaries: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
        ..BenchReport::default()
    };
    let Some(admin) = nodes.first_mut() else {
        return Err(phase_err("setup")("no primary to measure".into()));
    };

    progress("rtt (PING)");
    let mut rtt = samples::Samples::default();
    let t = Instant::now();
    while t.elapsed() < phase {
        let s = Instant::now();
        let _: () = redis::cmd("PING")
            .query_async(admin)
            .await
            .map_err(|e| phase_err("rtt")(e.to_string()))?;
        rtt.add(s.elapsed());
    }
    report.rtt = rtt.latency(t.elapsed().as_secs_f64());

    let mut k3 = opts();
    k3.key_majority = Some(2);
    let rig = phases::Rig {
        locker: build(opts()).await?,
        locker3: build(k3).await?,
        floor: conn::connect(url).await?,
    };
    for style in [phases::Style::MainThread, phases::Style::Spawned] {
        progress(&format!(
            "{}: floor vs cycle, floor3 vs cycle3 (alternating), then 64-task throughput",
            style.key()
        ));
        let c = phases::call_style(style, &rig, phase)
            .await
            .map_err(phase_err("latency"))?;
        report.call_styles.insert(style.key().to_owned(), c);
    }
    // headline figures: the worse call style
    let worst = |ratio: fn(&report::CallStyle) -> f64| {
        report
            .call_styles
            .values()
            .max_by(|a, b| ratio(a).total_cmp(&ratio(b)))
            .cloned()
    };
    if let Some(w) = worst(|c| c.cycle_ratio) {
        (report.floor, report.cycle, report.cycle_ratio) = (w.floor, w.cycle, w.cycle_ratio);
    }
    if let Some(w) = worst(|c| c.cycle3_ratio) {
        (report.floor3, report.cycle3, report.cycle3_ratio) = (w.floor3, w.cycle3, w.cycle3_ratio);
    }
    if let Some(sp) = report.call_styles.get("spawned") {
        report.throughput.leasehold_ops = sp.leasehold_ops;
        report.throughput.floor_ops = sp.floor_ops;
        report.throughput.ratio = sp.throughput_ratio;
    }
    progress("fenced scripts alone (64 tasks, by hand)");
    report.throughput.fenced_scripts_ops = phases::fenced_scripts(&rig.floor, phase).await;
    drop(rig);

    let modes: &[(&str, bool)] = if cluster {
        progress("handoff push skipped: lockers on a cluster poll (no key tracking per node)");
        &[("poll", false)]
    } else {
        &[("push", true), ("poll", false)]
    };
    for &(mode, push) in modes {
        progress(&format!(
            "handoff {mode}: 16 lockers contending on one name"
        ));
        let mut lockers = Vec::new();
        for _ in 0..16 {
            let mut l = opts();
            l.push = push;
            lockers.push(build(l).await?);
        }
        let h = phases::handoff(lockers, phase, report.rtt.p50_us).await;
        report.handoff.insert(mode.to_owned(), h);
    }

    let storm_waits: &[Duration] = if o.replicas.is_some() {
        progress("try_storm skipped: its per-slot waits are below the WAIT timeout");
        &[]
    } else {
        &[Duration::from_micros(20), Duration::from_millis(100)]
    };
    for &wait in storm_waits {
        progress(&format!(
            "try_storm: 200 tasks, 10 names, slot_wait {wait:?}"
        ));
        let mut lockers = Vec::new();
        for _ in 0..20 {
            lockers.push(build(opts().slot_wait(wait)).await?);
        }
        let counts = phases::try_storm(lockers, phase).await;
        report
            .try_storm
            .insert(format!("slot_wait_{}us", wait.as_micros()), counts);
    }

    for &n in &o.hold {
        progress(&format!("hold: {n} leases through one locker (ttl 3s)"));
        let h = hold::hold(url, nodes, n, phase.max(Duration::from_secs(4)), o.replicas)
            .await
            .map_err(phase_err("hold"))?;
        report.hold.push(h);
    }

    progress("core (the machine alone)");
    report.core = local::core_cost();
    progress("sim (calm, one core)");
    report.sim = local::sim_speed(phase);
    let p999 = report.rtt.p999_us.max(report.floor.p999_us / 2.0);
    report.recommend = local::recommend(p999);
    Ok(report)
}
