//! The fault schedule: every fault of a run, derived from the seed up front, so shrinking can drop
//! faults one by one and a replay names exactly which ones it kept.

use std::time::Duration;

use crate::config::{SimConfig, uniform};
use crate::rng::{Rng, index, unit};

/// One injected fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Reset the connection between client `c` and server `s` (in-flight replies are lost).
    Reset {
        /// Client.
        c: usize,
        /// Server.
        s: usize,
    },
    /// Hold every message between `c` and `s` for `len` (TCP retransmits after it heals).
    Partition {
        /// Client.
        c: usize,
        /// Server.
        s: usize,
        /// How long.
        len: Duration,
    },
    /// Crash server `s`; it restarts after `downtime`, with or without its keys.
    Crash {
        /// Server.
        s: usize,
        /// Downtime.
        downtime: Duration,
    },
    /// Step server `s`'s clock by `delta_ns` (either sign).
    ClockJump {
        /// Server.
        s: usize,
        /// Nanoseconds, forward if positive.
        delta_ns: i64,
    },
    /// Pause client `c`'s process for `len`.
    Pause {
        /// Client.
        c: usize,
        /// How long.
        len: Duration,
    },
    /// Promote server `s`'s replica (losing writes not yet replicated).
    Failover {
        /// Server.
        s: usize,
    },
    /// An operator force-releases lock `l` on server `s`: DEL the key, advance the fence.
    ForceRelease {
        /// Server.
        s: usize,
        /// Lock index.
        l: usize,
    },
    /// Server `s`'s replica is cut off from it for `len`: writes made meanwhile reach the
    /// replica only after the link heals (in order, as a replica's resync does), so `WAIT` in
    /// that window is not acknowledged.
    ReplicaStall {
        /// Server.
        s: usize,
        /// How long.
        len: Duration,
    },
}

impl Fault {
    /// How long the fault's direct effect lasts, ns (resets and reconnects take about 100 ms).
    #[must_use]
    pub fn effect_len(&self) -> u64 {
        let d = match self {
            Fault::Partition { len, .. }
            | Fault::Pause { len, .. }
            | Fault::ReplicaStall { len, .. } => *len,
            Fault::Crash { downtime, .. } => *downtime + Duration::from_millis(200),
            Fault::Reset { .. } | Fault::Failover { .. } | Fault::ForceRelease { .. } => {
                Duration::from_millis(200)
            }
            Fault::ClockJump { .. } => Duration::ZERO,
        };
        d.as_nanos() as u64
    }
}

/// A fault at a true time (ns).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultEvent {
    /// True time, ns.
    pub at: u64,
    /// What happens.
    pub fault: Fault,
}

fn arrivals(rng: &mut Rng, rate: f64, from: u64, to: u64) -> Vec<u64> {
    let mut out = Vec::new();
    if rate <= 0.0 || to <= from {
        return out;
    }
    let mut t = from as f64;
    loop {
        let gap = -(1.0 - unit(rng)).ln() / rate * 1e9;
        t += gap;
        if t >= to as f64 || out.len() >= 10_000 {
            return out;
        }
        out.push(t as u64);
    }
}

/// Derive the fault schedule of `cfg` from `rng` over `[from, to)`, minus `cfg.drop_faults`.
/// `Err` names a `--drop-faults` index the schedule does not have.
pub fn schedule(
    cfg: &SimConfig,
    rng: &mut Rng,
    from: u64,
    to: u64,
) -> Result<Vec<FaultEvent>, String> {
    if let Some(explicit) = &cfg.explicit_faults {
        let mut out: Vec<FaultEvent> = explicit
            .iter()
            .filter(|e| e.at >= from && e.at < to)
            .cloned()
            .collect();
        out.sort_by_key(|e| e.at);
        return Ok(out);
    }
    let f = &cfg.faults;
    let (k, n) = (cfg.clients, cfg.servers());
    let mut out = Vec::new();
    for at in arrivals(rng, f.resets_per_sec * (k * n) as f64, from, to) {
        let fault = Fault::Reset {
            c: index(rng, k),
            s: index(rng, n),
        };
        out.push(FaultEvent { at, fault });
    }
    for at in arrivals(rng, f.partitions_per_sec, from, to) {
        let len = uniform(rng, f.partition_len / 4, f.partition_len);
        let fault = Fault::Partition {
            c: index(rng, k),
            s: index(rng, n),
            len,
        };
        out.push(FaultEvent { at, fault });
    }
    for at in arrivals(rng, f.restarts_per_sec, from, to) {
        let fault = Fault::Crash {
            s: index(rng, n),
            downtime: f.restart_downtime,
        };
        out.push(FaultEvent { at, fault });
    }
    for at in arrivals(rng, f.clock_jumps_per_sec, from, to) {
        let mag = f.clock_jump.as_nanos() as i64;
        let delta_ns = if rng.next_u64().is_multiple_of(2) {
            mag
        } else {
            -mag
        };
        out.push(FaultEvent {
            at,
            fault: Fault::ClockJump {
                s: index(rng, n),
                delta_ns,
            },
        });
    }
    for at in arrivals(rng, f.pauses_per_sec, from, to) {
        let len = uniform(rng, f.pause_max / 10, f.pause_max);
        out.push(FaultEvent {
            at,
            fault: Fault::Pause {
                c: index(rng, k),
                len,
            },
        });
    }
    for at in arrivals(rng, f.failovers_per_sec, from, to) {
        out.push(FaultEvent {
            at,
            fault: Fault::Failover { s: index(rng, n) },
        });
    }
    for at in arrivals(rng, f.force_releases_per_sec, from, to) {
        let fault = Fault::ForceRelease {
            s: index(rng, n),
            l: index(rng, cfg.locks),
        };
        out.push(FaultEvent { at, fault });
    }
    // last, so the draws of every earlier fault kind are the same with or without it
    for at in arrivals(rng, f.replica_stalls_per_sec, from, to) {
        let len = uniform(rng, f.replica_stall_len / 4, f.replica_stall_len);
        let fault = Fault::ReplicaStall {
            s: index(rng, n),
            len,
        };
        out.push(FaultEvent { at, fault });
    }
    out.sort_by_key(|e| e.at);
    if let Some(bad) = cfg.drop_faults.iter().find(|i| **i >= out.len()) {
        return Err(format!(
            "--drop-faults {bad}: this seed's fault schedule has {} fault(s) (indices 0..{}); replay lines name only existing faults, so check the scenario, seed and other flags match the line",
            out.len(),
            out.len().saturating_sub(1)
        ));
    }
    let mut i = 0;
    out.retain(|_| {
        i += 1;
        !cfg.drop_faults.contains(&(i - 1))
    });
    Ok(out)
}
