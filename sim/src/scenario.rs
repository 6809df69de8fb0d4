//! Scenario presets, each a fault model with the properties it promises, and swarm derivation.

use std::time::Duration;

use leasehold_core::{Replication, SlotLayout};

use crate::config::{Fencing, Latency, SimConfig};
use crate::rng::{Rng, chance, unit};

/// Every preset, in the order `leasehold sim` runs them.
pub const SCENARIOS: [&str; 12] = [
    "calm",
    "latency",
    "partition",
    "gc-pause",
    "clock-jump",
    "restart-no-fsync",
    "failover",
    "failover-wait",
    "force-release",
    "fence-expiry",
    "chaos",
    "seed-stress",
];

/// User overrides applied on top of a preset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--clients`.
    pub clients: Option<usize>,
    /// `--locks`.
    pub locks: Option<usize>,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--fencing on|writes|off`.
    pub fencing: Option<Fencing>,
    /// `--slot-wait` (seed-stress uses two values of its own unless set).
    pub slot_wait: Option<Duration>,
    /// `--notifications on|off` (push re-checks and wake-ups).
    pub notifications: Option<bool>,
    /// `--drop-faults` (replays of shrunk failures).
    pub drop_faults: Vec<usize>,
    /// `--compat rueidislock:K`: every lock speaks the rueidislock dialect with `KeyMajority`
    /// K (keys `rueidislock:<i>:<name>`, PXAT from the client's wall clock, no fence counter).
    /// In `clock-jump` the clients' wall clocks are also skewed by up to the jump size.
    pub compat: Option<u8>,
    /// A planted bug in every seed: negative controls in tests only (feature `planted-bugs`,
    /// which no shipping crate enables).
    #[cfg(feature = "planted-bugs")]
    pub planted: Option<crate::config::PlantedBug>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The configuration of `scenario` for `seed` (only `chaos` depends on the seed), or `Err` naming
/// an unknown scenario.
pub fn config_for(scenario: &str, seed: u64, o: &Overrides) -> Result<SimConfig, String> {
    let mut c = SimConfig {
        scenario: scenario.to_owned(),
        ..SimConfig::default()
    };
    let f = &mut c.faults;
    match scenario {
        "calm" => {}
        "latency" => {
            f.latency = Latency::HeavyTail;
            f.latency_base = ms(1);
            f.latency_jitter = ms(2);
            f.spike_prob = 0.01;
            f.spike = ms(80);
            f.service_time = Duration::from_micros(50);
        }
        "partition" => {
            c.lock.layout = SlotLayout::Instances { n: 3 };
            f.partitions_per_sec = 0.5;
            f.partition_len = ms(3_000);
            f.resets_per_sec = 0.02;
        }
        "gc-pause" => {
            f.pauses_per_sec = 0.5;
            f.pause_max = ms(3_000);
        }
        "clock-jump" => {
            c.lock.layout = SlotLayout::Instances { n: 3 };
            f.clock_jumps_per_sec = 0.3;
            f.clock_jump = ms(2_000);
        }
        "restart-no-fsync" => {
            f.restarts_per_sec = 0.15;
            f.restart_downtime = ms(200);
            f.persist = false;
        }
        "failover" => {
            f.failovers_per_sec = 0.2;
            f.replication_lag = ms(50);
        }
        "failover-wait" => {
            // `failover`'s faults, with every grant, extension and write-back confirmed by
            // `WAIT 1 100`, and replicas cut off from their primary now and then (WAIT is not
            // acknowledged meanwhile). The promoted replica is the one replica, so it has every
            // acknowledged write: the case where Sentinel promotes a replica that did not
            // acknowledge is outside the model (see `SimConfig::promised`).
            f.failovers_per_sec = 0.2;
            f.replication_lag = ms(50);
            f.replica_stalls_per_sec = 0.2;
            f.replica_stall_len = ms(1_000);
            // a timed-out WAIT returns at Redis's next 100 ms tick: the round waits for that
            c.lock.slot_wait = ms(250);
            c.lock.replication = Some(Replication::new(1, ms(100)));
        }
        "force-release" => {
            f.force_releases_per_sec = 0.3;
        }
        "fence-expiry" => {
            // Fence counters live 1 s past their lock and names sit idle longer than that, so
            // counters expire and are re-created from the server's TIME all the time; operator
            // force-releases and restarts without persistence add counter losses. Every layout.
            c.lock.layout = match seed % 3 {
                0 => SlotLayout::Single,
                1 => SlotLayout::KeyMajority { k: 2 },
                _ => SlotLayout::Instances { n: 3 },
            };
            c.lock.fence_retention = ms(1_000);
            c.clients = 4;
            c.locks = 6;
            c.think = (ms(0), ms(3_000));
            c.hold = (ms(20), ms(1_000));
            f.force_releases_per_sec = 0.3;
            f.restarts_per_sec = 0.1;
            f.restart_downtime = ms(200);
            f.persist = false;
            f.server_drift_ppm = 2_000;
        }
        "chaos" => swarm(&mut c, seed),
        "seed-stress" => {
            c.clients = 200;
            c.locks = 10;
            c.duration = ms(4_000);
            c.heal_before_end = ms(1_000);
            c.wait_fraction = 0.0;
            c.hold = (ms(1), ms(20));
            c.think = (ms(0), ms(20));
            f.service_time = Duration::from_micros(10);
            f.latency_base = Duration::from_micros(100);
            f.latency_jitter = Duration::from_micros(200);
            c.lock.slot_wait = Duration::from_micros(20);
        }
        other => {
            return Err(format!(
                "unknown scenario {other:?}; choose one of: {}",
                SCENARIOS.join(", ")
            ));
        }
    }
    if let Some(k) = o.clients {
        c.clients = k;
    }
    if let Some(l) = o.locks {
        c.locks = l;
    }
    if let Some(d) = o.duration {
        c.duration = d;
        c.heal_before_end = c.heal_before_end.min(d / 3);
    }
    if let Some(f) = o.fencing {
        c.fencing = f;
    }
    if let Some(n) = o.notifications {
        c.notifications = n;
    }
    if let Some(w) = o.slot_wait {
        c.lock.slot_wait = w;
    }
    c.drop_faults.clone_from(&o.drop_faults);
    if let Some(k) = o.compat {
        c.lock.dialect = leasehold_core::Dialect::Rueidislock;
        c.lock.layout = SlotLayout::KeyMajority { k };
        c.lock.prefix = leasehold_core::wire::compat::DEFAULT_PREFIX.to_owned();
        if scenario == "clock-jump" {
            c.faults.client_wall_skew = c.faults.clock_jump;
        }
    }
    #[cfg(feature = "planted-bugs")]
    {
        c.planted = o.planted;
    }
    Ok(c)
}

/// Swarm testing: a random subset of fault kinds at random intensities, derived from the seed.
fn swarm(c: &mut SimConfig, seed: u64) {
    let mut rng = Rng::new(seed ^ 0xC4A0_5000);
    c.lock.layout = match rng.next_u64() % 3 {
        0 => SlotLayout::Single,
        1 => SlotLayout::KeyMajority { k: 2 },
        _ => SlotLayout::Instances { n: 3 },
    };
    let f = &mut c.faults;
    let on = |rng: &mut Rng| chance(rng, 0.5);
    if on(&mut rng) {
        f.latency = Latency::HeavyTail;
        f.latency_jitter = Duration::from_micros(200 + rng.below_inclusive(3_000));
        f.spike_prob = unit(&mut rng) * 0.02;
        f.spike = ms(20 + rng.below_inclusive(100));
    }
    if on(&mut rng) {
        f.resets_per_sec = unit(&mut rng) * 0.05;
    }
    if on(&mut rng) {
        f.partitions_per_sec = unit(&mut rng) * 0.5;
        f.partition_len = ms(200 + rng.below_inclusive(3_000));
    }
    if on(&mut rng) {
        f.restarts_per_sec = unit(&mut rng) * 0.1;
        f.persist = on(&mut rng);
    }
    if on(&mut rng) {
        f.server_drift_ppm = rng.below_inclusive(2_000) as i64;
    }
    if on(&mut rng) {
        f.client_drift_ppm = rng.below_inclusive(2_000) as i64;
    }
    if on(&mut rng) {
        f.clock_jumps_per_sec = unit(&mut rng) * 0.2;
        f.clock_jump = ms(100 + rng.below_inclusive(2_000));
    }
    if on(&mut rng) {
        f.pauses_per_sec = unit(&mut rng) * 0.5;
        f.pause_max = ms(100 + rng.below_inclusive(3_000));
    }
    if on(&mut rng) {
        f.force_releases_per_sec = unit(&mut rng) * 0.3;
    }
    if on(&mut rng) && c.lock.layout == SlotLayout::Single {
        f.failovers_per_sec = unit(&mut rng) * 0.2;
        f.replication_lag = ms(rng.below_inclusive(100));
    }
    if on(&mut rng) {
        // short-lived fence counters: expired and re-created from TIME during the run
        c.lock.fence_retention = ms(1_000 + rng.below_inclusive(2_000));
    }
}

/// One line describing the fault knobs that are on, so one seed says everything needed to replay.
#[must_use]
pub fn describe(c: &SimConfig) -> String {
    let f = &c.faults;
    let mut parts = vec![
        format!("layout={:?}", c.lock.layout),
        format!(
            "clients={} locks={} duration={:?}",
            c.clients, c.locks, c.duration
        ),
        format!(
            "latency={:?}(base {:?}, jitter {:?})",
            f.latency, f.latency_base, f.latency_jitter
        ),
    ];
    if f.spike_prob > 0.0 {
        parts.push(format!("spikes={:.3}x{:?}", f.spike_prob, f.spike));
    }
    if f.resets_per_sec > 0.0 {
        parts.push(format!("resets={:.3}/s/link", f.resets_per_sec));
    }
    if f.partitions_per_sec > 0.0 {
        parts.push(format!(
            "partitions={:.2}/s up to {:?}",
            f.partitions_per_sec, f.partition_len
        ));
    }
    if f.restarts_per_sec > 0.0 {
        parts.push(format!(
            "restarts={:.2}/s persist={}",
            f.restarts_per_sec, f.persist
        ));
    }
    if f.server_drift_ppm != 0 {
        parts.push(format!("server_drift=±{}ppm", f.server_drift_ppm));
    }
    if f.client_drift_ppm != 0 {
        parts.push(format!("client_drift=±{}ppm", f.client_drift_ppm));
    }
    if f.clock_jumps_per_sec > 0.0 {
        parts.push(format!(
            "clock_jumps={:.2}/s of {:?}",
            f.clock_jumps_per_sec, f.clock_jump
        ));
    }
    if f.pauses_per_sec > 0.0 {
        parts.push(format!(
            "pauses={:.2}/s up to {:?}",
            f.pauses_per_sec, f.pause_max
        ));
    }
    if f.failovers_per_sec > 0.0 {
        parts.push(format!(
            "failovers={:.2}/s lag {:?}",
            f.failovers_per_sec, f.replication_lag
        ));
    }
    if f.force_releases_per_sec > 0.0 {
        parts.push(format!("force_releases={:.2}/s", f.force_releases_per_sec));
    }
    if f.replica_stalls_per_sec > 0.0 {
        parts.push(format!(
            "replica_stalls={:.2}/s up to {:?}",
            f.replica_stalls_per_sec, f.replica_stall_len
        ));
    }
    if let Some(r) = c.lock.replication {
        parts.push(format!("wait={}x{:?}", r.replicas, r.timeout));
    }
    if c.lock.fence_retention != leasehold_core::LockConfig::default().fence_retention {
        parts.push(format!("fence_retention={:?}", c.lock.fence_retention));
    }
    if c.fencing != Fencing::On {
        parts.push(format!("fencing={}", c.fencing.as_str()));
    }
    if c.compat() {
        parts.push(format!("compat=rueidislock({:?})", c.lock.layout));
    }
    if !f.client_wall_skew.is_zero() {
        parts.push(format!("client_wall_skew=±{:?}", f.client_wall_skew));
    }
    parts.join(" ")
}
