//! Many leases held at once through one `Locker`: memory per lease and what they cost Redis.

use std::time::{Duration, Instant};

use leasehold_redis::{Lease, LockerOptions};
use redis::aio::MultiplexedConnection;

use crate::report::Hold;

/// This process's resident memory in bytes (`VmRSS` of `/proc/self/status`); 0 where unknown.
#[must_use]
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Commands Redis has counted (every `cmdstat_*` of `INFO commandstats`, script internals
/// included) and the scripts among them (`evalsha` + `eval`), summed over `nodes` (every
/// primary of a cluster, or the one server).
pub async fn command_counts(nodes: &mut [MultiplexedConnection]) -> Result<(u64, u64), String> {
    let (mut all, mut scripts) = (0, 0);
    for c in nodes {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(c)
            .await
            .map_err(|e| format!("INFO commandstats: {e}"))?;
        // the dashboard's doctor parses INFO; one parser for both
        let mut parsed = leasehold_tui::doctor::Info::default();
        parsed.absorb(&info);
        for stat in parsed.commandstats() {
            all += stat.calls;
            if stat.command == "evalsha" || stat.command == "eval" {
                scripts += stat.calls;
            }
        }
    }
    Ok((all, scripts))
}

/// Hold `n` leases (ttl 3 s) through one fresh locker for `hold` (at least three extension
/// intervals), then release them.
pub async fn hold(
    url: &str,
    nodes: &mut [MultiplexedConnection],
    n: usize,
    hold: Duration,
    replicas: Option<(u32, Duration)>,
) -> Result<Hold, String> {
    let ttl = Duration::from_secs(3);
    // a burst of thousands of acquires on a loaded 2-core machine: replies can take long, and
    // this phase measures holding, not acquiring
    let mut o = LockerOptions::new(url.to_owned())
        .ttl(ttl)
        .slot_wait(Duration::from_secs(1))
        .prefix(crate::LOCK_PREFIX);
    o.lock.fence_retention = Duration::from_secs(1);
    let locker = crate::with_replicas(o, replicas)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let before = rss_bytes();
    let started = Instant::now();
    let mut leases: Vec<Lease> = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let got = futures_util::future::join_all(chunk.iter().map(|i| {
            let l = &locker;
            async move { l.lock(&format!("hold{i}"), Duration::from_secs(30)).await }
        }))
        .await;
        for g in got {
            leases.push(g.map_err(|e| format!("holding {n} leases: {e}"))?);
        }
    }
    let acquire_secs = started.elapsed().as_secs_f64();
    let (c0, s0) = command_counts(nodes).await?;
    let t = Instant::now();
    tokio::time::sleep(hold).await;
    let (c1, s1) = command_counts(nodes).await?;
    // steady state: after several extension rounds, not right after the burst of acquisitions
    let after = rss_bytes();
    let secs = t.elapsed().as_secs_f64();
    let lost = leases.iter().filter(|l| !l.is_held()).count();
    for l in leases {
        let _ = l.release().await;
    }
    if lost > 0 {
        return Err(format!(
            "{lost} of {n} held leases were lost while held: the machine is too loaded to measure"
        ));
    }
    let scripts_per_sec = s1.saturating_sub(s0) as f64 / secs;
    let extend_every = ttl.as_secs_f64() / 3.0;
    Ok(Hold {
        leases: n as u64,
        ttl_ms: 3_000,
        rss_bytes_per_lease: (after.saturating_sub(before) as f64 / n as f64).round(),
        redis_cmds_per_sec: (c1.saturating_sub(c0) as f64 / secs).round(),
        scripts_per_sec: scripts_per_sec.round(),
        scripts_per_extension: crate::samples::round3(scripts_per_sec * extend_every / n as f64),
        acquire_secs: crate::samples::round1(acquire_secs),
    })
}
