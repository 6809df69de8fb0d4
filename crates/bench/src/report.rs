//! The typed report of one `leasehold bench` run, its JSON (serde) and its text rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

pub use crate::samples::Latency;

/// One call style's figures: the same phases run from the caller's own task (`main_thread`, as
/// code inside `#[tokio::main]` runs) and from spawned tasks (`spawned`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallStyle {
    /// `SET NX PX` + compare-and-delete script, on the floor's own connection.
    pub floor: Latency,
    /// `try_lock` + `release` through a `Locker`, sampled alternately with the floor.
    pub cycle: Latency,
    /// `cycle.p50 / floor.p50`.
    pub cycle_ratio: f64,
    /// The 3-key floor: three `SET NX PX` in parallel, then three compare-and-deletes in parallel.
    pub floor3: Latency,
    /// Key majority `k = 2` (3 keys) `try_lock` + `release`.
    pub cycle3: Latency,
    /// `cycle3.p50 / floor3.p50`.
    pub cycle3_ratio: f64,
    /// 64 loops on their own names: leasehold cycles per second.
    pub leasehold_ops: f64,
    /// 64 loops on their own keys: floor cycles per second.
    pub floor_ops: f64,
    /// `leasehold_ops / floor_ops`.
    pub throughput_ratio: f64,
}

/// Throughput, 64 tasks on their own names (spawned tasks, as most services run them).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    /// leasehold cycles per second.
    pub leasehold_ops: f64,
    /// Floor cycles per second.
    pub floor_ops: f64,
    /// `leasehold_ops / floor_ops`.
    pub ratio: f64,
    /// leasehold's acquire and release scripts called by hand at the same concurrency: the
    /// server-side cost of fencing, with no leasehold client code (a profile aid).
    pub fenced_scripts_ops: f64,
}

/// Contenders on one name, one `Locker` (own connections) each, as separate processes would be.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Handoff {
    /// Contenders.
    pub contenders: u32,
    /// Hand-offs (the holder changed) per second.
    pub per_sec: f64,
    /// Acquisitions per second, hand-offs or not.
    pub acquisitions_per_sec: f64,
    /// Wait of one `lock` call, µs.
    pub wait_p50_us: f64,
    /// Wait of one `lock` call, p99, µs.
    pub wait_p99_us: f64,
    /// From the holder sending its release to the next (other) holder's acquire returning, µs.
    pub gap_p50_us: f64,
    /// The same, p99.
    pub gap_p99_us: f64,
    /// `gap_p50_us` in round trips (rtt p50).
    pub gap_p50_rtts: f64,
    /// `gap_p99_us` in round trips.
    pub gap_p99_rtts: f64,
}

/// Many leases held at once through one `Locker`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Hold {
    /// Leases held.
    pub leases: u64,
    /// The lease ttl, ms.
    pub ttl_ms: u64,
    /// Growth of this process's resident memory per held lease, bytes, measured after holding
    /// them through several extensions (the steady state, not the acquisition burst).
    pub rss_bytes_per_lease: f64,
    /// Commands Redis counted per second while they were held (`INFO commandstats`, script
    /// internals included).
    pub redis_cmds_per_sec: f64,
    /// Scripts (`EVALSHA` + `EVAL`) per second while they were held.
    pub scripts_per_sec: f64,
    /// Scripts per lease per extension interval (1.0: one script per extension).
    pub scripts_per_extension: f64,
    /// Seconds to acquire them all.
    pub acquire_secs: f64,
}

/// The core machine alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Core {
    /// ns per acquire → extend → release cycle (allocations: `cargo bench -p leasehold-core`).
    pub ns_per_cycle: f64,
}

/// The simulator alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sim {
    /// Events per second on `calm`, one core.
    pub events_per_sec: f64,
    /// Seeds run.
    pub seeds: u64,
}

/// Settings recommended from the measurements.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recommend {
    /// `slot_wait` (rueidislock's `TryNextAfter`), µs.
    pub slot_wait_us: u64,
    /// Lease ttl, ms.
    pub ttl_ms: u64,
    /// Extension interval, ms.
    pub extend_interval_ms: u64,
    /// Why, one line each.
    pub why: Vec<String>,
}

/// What the bench left behind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleanup {
    /// Keys the bench wrote and deleted at the end (lock keys, fence counters, floor keys).
    pub keys_deleted: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    /// The Redis measured (password hidden).
    pub redis: String,
    /// Length of one phase, ms.
    pub phase_ms: u64,
    /// Replicas `WAIT` waited for after every lock write (0: none).
    pub replicas: u32,
    /// `single` (one server, or the primary under Sentinel) or `cluster`.
    pub topology: String,
    /// Primaries the measured keys are spread over (1 for a single server).
    pub primaries: u32,
    /// `PING` round trips.
    pub rtt: Latency,
    /// The floor in the worse call style (see `call_styles`).
    pub floor: Latency,
    /// The cycle in the worse call style.
    pub cycle: Latency,
    /// The worse of the two call styles' `cycle_ratio`.
    pub cycle_ratio: f64,
    /// The 3-key floor in the worse call style.
    pub floor3: Latency,
    /// The 3-key cycle in the worse call style.
    pub cycle3: Latency,
    /// The worse of the two call styles' `cycle3_ratio`.
    pub cycle3_ratio: f64,
    /// Every latency and throughput figure per call style: `main_thread`, `spawned`.
    pub call_styles: BTreeMap<String, CallStyle>,
    /// Throughput of spawned tasks.
    pub throughput: Throughput,
    /// Hand-off across lockers: `push` (client-tracking wake-ups) and `poll` (only `poll` on a
    /// cluster, where lockers cannot track keys).
    pub handoff: BTreeMap<String, Handoff>,
    /// 200 `try_lock` loops on 10 names: outcomes by reason, per slot_wait.
    pub try_storm: BTreeMap<String, BTreeMap<String, u64>>,
    /// Held leases: 1,000 and 10,000.
    pub hold: Vec<Hold>,
    /// The core machine alone.
    pub core: Core,
    /// The simulator alone.
    pub sim: Sim,
    /// Recommended settings.
    pub recommend: Recommend,
    /// What was cleaned up.
    pub cleanup: Cleanup,
}

impl BenchReport {
    /// The report as one JSON object.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as text, one measurement a line.
    #[must_use]
    pub fn render(&self) -> String {
        let mut o = String::new();
        let us = |l: &Latency| {
            format!(
                "p50 {}µs  p99 {}µs  p99.9 {}µs  ({}/s)",
                l.p50_us, l.p99_us, l.p999_us, l.per_sec
            )
        };
        let _ = writeln!(o, "leasehold bench against {}", self.redis);
        if self.topology == "cluster" {
            let _ = writeln!(
                o,
                "  a Redis Cluster of {} primaries: floor and locks routed by key (MOVED/ASK \
                 followed); rtt, command counts and cleanup per primary; waiters poll",
                self.primaries
            );
        }
        if self.replicas > 0 {
            let _ = writeln!(
                o,
                "  every lock write confirmed by WAIT {} (the floor is not)",
                self.replicas
            );
        }
        let _ = writeln!(o, "  rtt          {}", us(&self.rtt));
        for (style, c) in &self.call_styles {
            let _ = writeln!(o, "  [{style}]");
            let _ = writeln!(
                o,
                "    floor      {}   (SET NX PX + compare-and-delete, own connection)",
                us(&c.floor)
            );
            let _ = writeln!(o, "    cycle      {}   (try_lock + release)", us(&c.cycle));
            let _ = writeln!(o, "    cycle_ratio  {}   (target <= 1.10)", c.cycle_ratio);
            let _ = writeln!(o, "    floor3     {}   (3 keys in parallel)", us(&c.floor3));
            let _ = writeln!(o, "    cycle3     {}   (key majority k=2)", us(&c.cycle3));
            let _ = writeln!(o, "    cycle3_ratio {}   (target <= 1.10)", c.cycle3_ratio);
            let _ = writeln!(
                o,
                "    throughput leasehold {} ops/s, floor {} ops/s, ratio {} (target >= 0.90)",
                c.leasehold_ops, c.floor_ops, c.throughput_ratio
            );
        }
        let _ = writeln!(
            o,
            "  fenced scripts alone (64 tasks): {} ops/s (server-side cost of fencing)",
            self.throughput.fenced_scripts_ops
        );
        for (mode, h) in &self.handoff {
            let _ = writeln!(
                o,
                "  handoff {mode:<4} {} lockers: {} hand-offs/s ({} acquisitions/s), gap p50 {}µs ({} RTTs) p99 {}µs ({} RTTs), wait p50 {}µs",
                h.contenders,
                h.per_sec,
                h.acquisitions_per_sec,
                h.gap_p50_us,
                h.gap_p50_rtts,
                h.gap_p99_us,
                h.gap_p99_rtts,
                h.wait_p50_us
            );
        }
        for (k, v) in &self.try_storm {
            let parts: Vec<String> = v.iter().map(|(r, n)| format!("{r}={n}")).collect();
            let _ = writeln!(o, "  try_storm {k}: {}", parts.join(" "));
        }
        for h in &self.hold {
            let _ = writeln!(
                o,
                "  hold {:>6} leases (ttl {}ms): {:.0} bytes RSS/lease, Redis {:.0} cmds/s, {:.0} scripts/s = {:.2} per lease per extension; acquired in {:.1}s",
                h.leases,
                h.ttl_ms,
                h.rss_bytes_per_lease,
                h.redis_cmds_per_sec,
                h.scripts_per_sec,
                h.scripts_per_extension,
                h.acquire_secs
            );
        }
        let _ = writeln!(o, "  core       {} ns/cycle", self.core.ns_per_cycle);
        let _ = writeln!(
            o,
            "  sim        {} events/s on calm (one core)",
            self.sim.events_per_sec
        );
        let r = &self.recommend;
        let _ = writeln!(
            o,
            "  recommend  slot_wait {}µs, ttl {}ms, extend every {}ms",
            r.slot_wait_us, r.ttl_ms, r.extend_interval_ms
        );
        for why in &r.why {
            let _ = writeln!(o, "             {why}");
        }
        let _ = writeln!(
            o,
            "  cleanup    {} keys the bench wrote were deleted",
            self.cleanup.keys_deleted
        );
        o
    }
}
