//! Simulation configuration: workload, lock settings, and the fault model (each fault a knob).

use std::time::Duration;

use leasehold_core::{LockConfig, SlotLayout};

use crate::rng::Rng;

/// How long one-way network latency is, per message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always `base`.
    Constant,
    /// `base` plus uniform `0..=jitter`.
    Uniform,
    /// `base` plus a Pareto-tailed extra (shape 1.5, scale `jitter`), capped at 200 × `jitter`.
    HeavyTail,
}

/// The fault model. Every knob is off (zero) by default.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Shape of the per-message latency.
    pub latency: Latency,
    /// Minimum one-way latency.
    pub latency_base: Duration,
    /// Jitter scale.
    pub latency_jitter: Duration,
    /// Probability that a message is delayed by an extra `spike`.
    pub spike_prob: f64,
    /// Size of a latency spike.
    pub spike: Duration,
    /// Server time per command (queueing under load).
    pub service_time: Duration,
    /// Connection resets per second per client-server link (in-flight replies are lost).
    pub resets_per_sec: f64,
    /// Partitions between one client and one server, per second in total.
    pub partitions_per_sec: f64,
    /// Length of a partition.
    pub partition_len: Duration,
    /// Server crash-restarts per second in total.
    pub restarts_per_sec: f64,
    /// Downtime of a crash.
    pub restart_downtime: Duration,
    /// Whether keys survive a restart (fsync always).
    pub persist: bool,
    /// Server clock rate error, parts per million (either sign).
    pub server_drift_ppm: i64,
    /// Server clock jumps per second in total.
    pub clock_jumps_per_sec: f64,
    /// Size of a clock jump (forward or back, chosen per jump).
    pub clock_jump: Duration,
    /// Client process pauses per second in total (GC, SIGSTOP).
    pub pauses_per_sec: f64,
    /// Longest pause (uniform from a tenth of it).
    pub pause_max: Duration,
    /// Client clock rate error, parts per million.
    pub client_drift_ppm: i64,
    /// Primary failovers per second in total (replica promoted, losing un-replicated writes).
    pub failovers_per_sec: f64,
    /// Replication lag.
    pub replication_lag: Duration,
    /// Replica stalls per second in total (a replica cut off from its primary for up to
    /// `replica_stall_len`; `WAIT` is not acknowledged meanwhile).
    pub replica_stalls_per_sec: f64,
    /// Longest replica stall (uniform from a quarter of it).
    pub replica_stall_len: Duration,
    /// Operator force-releases per second in total (DEL the lock key and advance its fence, as
    /// the dashboard's `--allow-writes` action does).
    pub force_releases_per_sec: f64,
    /// How far each client's *wall* clock is off true time (uniform in `±` this, per client).
    /// Only the rueidislock dialect reads a wall clock (its `PXAT` expiry); leasehold's own
    /// layout never does, so this knob changes nothing for it.
    pub client_wall_skew: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Latency::Uniform,
            latency_base: Duration::from_micros(200),
            latency_jitter: Duration::from_micros(300),
            spike_prob: 0.0,
            spike: Duration::ZERO,
            service_time: Duration::from_micros(10),
            resets_per_sec: 0.0,
            partitions_per_sec: 0.0,
            partition_len: Duration::ZERO,
            restarts_per_sec: 0.0,
            restart_downtime: Duration::from_millis(500),
            persist: true,
            server_drift_ppm: 0,
            clock_jumps_per_sec: 0.0,
            clock_jump: Duration::ZERO,
            pauses_per_sec: 0.0,
            pause_max: Duration::ZERO,
            client_drift_ppm: 0,
            failovers_per_sec: 0.0,
            replication_lag: Duration::ZERO,
            replica_stalls_per_sec: 0.0,
            replica_stall_len: Duration::ZERO,
            force_releases_per_sec: 0.0,
            client_wall_skew: Duration::ZERO,
        }
    }
}

/// A deliberately broken variant of the system, to prove the checker catches it. Test-only:
/// it exists only with the crate's `planted-bugs` feature, which the sim's own tests enable
/// (a dev-dependency on itself) and no shipping crate does.
#[cfg(feature = "planted-bugs")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// The resource accepts any token.
    NoFencing,
    /// The client trusts its lease from the reply time instead of the send time.
    ValidityFromReply,
    /// The client's machine is fed a wall clock that steps back instead of a monotonic clock.
    WallClock,
    /// The server's extend does not compare the value (PEXPIREs whoever holds the key).
    ExtendWithoutCompare,
    /// A fence counter restarts from zero after a restart without persistence, and tokens are a
    /// plain `INCR` (no `TIME` floor), so tokens go backwards.
    CounterFromZero,
    /// The server's `WAIT` answers as many replicas as asked for at once, whatever the replica
    /// has applied (a driver that sends `WAIT` on another connection, or before its write,
    /// confirms nothing in the same way).
    WaitWithoutReplication,
}

/// What the fenced resource checks tokens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fencing {
    /// Reads and writes: a read or write with a token below the highest seen is rejected, and a
    /// read raises the highest seen (so a holder that read before a newer holder cannot write).
    On,
    /// Writes only (the classic description of fencing): enough against stale blind writes, not
    /// against read-modify-write updates, which it loses.
    Writes,
    /// Nothing checked: the resource accepts any token.
    Off,
}

impl Fencing {
    /// The flag's spelling (`on`, `writes`, `off`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Fencing::On => "on",
            Fencing::Writes => "writes",
            Fencing::Off => "off",
        }
    }

    /// Whether writes are checked.
    #[must_use]
    pub fn checks_writes(self) -> bool {
        self != Fencing::Off
    }

    /// Whether reads are checked (and raise the highest token seen).
    #[must_use]
    pub fn checks_reads(self) -> bool {
        self == Fencing::On
    }
}

pub use crate::check::{PROPERTIES, Property};

/// One simulation run's complete configuration. With the seed, it determines the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Preset name (for reports and replay commands).
    pub scenario: String,
    /// Number of clients.
    pub clients: usize,
    /// Number of lock names.
    pub locks: usize,
    /// Virtual time simulated.
    pub duration: Duration,
    /// Lock settings; `layout` decides how many servers there are (one per instance).
    pub lock: LockConfig,
    /// Fraction of acquires in `wait` mode (the rest are `try`).
    pub wait_fraction: f64,
    /// Caller deadline of a `wait` acquire.
    pub wait_timeout: Duration,
    /// Critical section length range (decide to write, compute, send the write, release).
    pub hold: (Duration, Duration),
    /// Think time between iterations.
    pub think: (Duration, Duration),
    /// What the resource checks tokens on.
    pub fencing: Fencing,
    /// Push notifications of key changes to waiters and holders.
    pub notifications: bool,
    /// The fault model.
    pub faults: Faults,
    /// Faults stop this long before the end, so liveness can be judged after they heal.
    pub heal_before_end: Duration,
    /// Fault indices to drop from the derived schedule (set by shrinking and replay).
    pub drop_faults: Vec<usize>,
    /// An explicit fault schedule used instead of the derived one (proptest strategies generate
    /// these and shrink them).
    pub explicit_faults: Option<Vec<crate::faults::FaultEvent>>,
    /// A planted bug (negative controls only).
    #[cfg(feature = "planted-bugs")]
    pub planted: Option<PlantedBug>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            scenario: "calm".into(),
            clients: 5,
            locks: 2,
            duration: Duration::from_secs(30),
            lock: LockConfig {
                layout: SlotLayout::Single,
                ttl: Duration::from_millis(1_000),
                extend_interval: None,
                slot_wait: Duration::from_millis(50),
                drift_factor: 0.01,
                drift_margin: Duration::from_millis(2),
                hold_cap: None,
                backoff_min: Duration::from_millis(2),
                backoff_max: Duration::from_millis(200),
                ..LockConfig::default()
            },
            wait_fraction: 0.5,
            wait_timeout: Duration::from_millis(3_000),
            hold: (Duration::from_millis(20), Duration::from_millis(2_500)),
            think: (Duration::ZERO, Duration::from_millis(200)),
            fencing: Fencing::On,
            notifications: true,
            faults: Faults::default(),
            heal_before_end: Duration::from_secs(8),
            drop_faults: Vec::new(),
            explicit_faults: None,
            #[cfg(feature = "planted-bugs")]
            planted: None,
        }
    }
}

impl SimConfig {
    /// Number of simulated servers (one per instance; key-majority keys share one server).
    #[must_use]
    pub fn servers(&self) -> usize {
        match self.lock.layout {
            SlotLayout::Instances { n } => usize::from(n),
            _ => 1,
        }
    }

    /// The properties this configuration's fault model promises. A violation of one of them is a
    /// bug; a violation of another is a finding with an explanation.
    #[must_use]
    pub fn promised(&self) -> Vec<Property> {
        use Property::*;
        let f = &self.faults;
        let mut p: Vec<Property> = PROPERTIES.to_vec();
        let drop = |p: &mut Vec<Property>, gone: Property| p.retain(|x| *x != gone);
        if f.pauses_per_sec > 0.0 {
            drop(&mut p, MutualExclusion);
        }
        if f.clock_jumps_per_sec > 0.0 {
            drop(&mut p, MutualExclusion);
            drop(&mut p, ValidityOracle);
            if (f.restarts_per_sec > 0.0 && !f.persist) || self.counter_outlived_by_jump() {
                drop(&mut p, TokenOrder);
                drop(&mut p, StaleWritesAccepted);
                drop(&mut p, LostUpdates);
            }
        }
        if f.restarts_per_sec > 0.0 && !f.persist {
            drop(&mut p, MutualExclusion);
            drop(&mut p, ValidityOracle);
        }
        if f.failovers_per_sec > 0.0 && self.lock.replication.is_none() {
            for x in [
                MutualExclusion,
                ValidityOracle,
                TokenOrder,
                StaleWritesAccepted,
                LostUpdates,
            ] {
                drop(&mut p, x);
            }
        }
        if f.force_releases_per_sec > 0.0 {
            drop(&mut p, MutualExclusion);
            drop(&mut p, ValidityOracle);
        }
        if self.compat() {
            // no fence counter: every lease carries token 0, nothing orders or rejects writes
            drop(&mut p, TokenOrder);
            drop(&mut p, StaleWritesAccepted);
            drop(&mut p, LostUpdates);
            if self.client_wall_clocks_disagree() {
                drop(&mut p, MutualExclusion);
                drop(&mut p, ValidityOracle);
            }
        }
        if !self.fencing.checks_writes() {
            drop(&mut p, StaleWritesAccepted);
        }
        if !self.fencing.checks_reads() {
            drop(&mut p, LostUpdates);
        }
        p
    }

    /// Whether the locks speak the rueidislock dialect (`--compat rueidislock[:K]`).
    #[must_use]
    pub fn compat(&self) -> bool {
        self.lock.dialect == leasehold_core::Dialect::Rueidislock
    }

    /// Whether, in the rueidislock dialect, a client's wall clock (which sets its keys' `PXAT`)
    /// can disagree with the servers' clocks: a wall skew, client drift, or server clock jumps
    /// and drift.
    #[must_use]
    pub fn client_wall_clocks_disagree(&self) -> bool {
        let f = &self.faults;
        self.compat()
            && (!f.client_wall_skew.is_zero()
                || f.client_drift_ppm != 0
                || f.server_drift_ppm != 0
                || f.clock_jumps_per_sec > 0.0)
    }

    /// Whether a backward server clock jump can outlast a fence counter's retention: the counter
    /// (which ran ahead of the stepped-back clock) expires before the clock catches up, and the
    /// `TIME` floor of the re-created counter is below tokens already handed out.
    #[must_use]
    pub fn counter_outlived_by_jump(&self) -> bool {
        self.faults.clock_jumps_per_sec > 0.0
            && self.faults.clock_jump >= self.lock.ttl + self.lock.fence_retention
    }
}

/// Why a property is outside a fault model: printed with findings.
#[must_use]
pub fn explain(property: Property, cfg: &SimConfig) -> &'static str {
    use Property::*;
    let f = &cfg.faults;
    match property {
        TokenOrder | StaleWritesAccepted | LostUpdates if cfg.compat() => {
            "rueidislock dialect: there is no fence counter, so every lease carries token 0; the resource cannot tell a superseded holder's write from the current one's (what --compat gives up: GivenUp::FencingToken)"
        }
        MutualExclusion | ValidityOracle if cfg.client_wall_clocks_disagree() => {
            "rueidislock dialect: a key expires at PXAT = the writing client's wall clock + ttl, judged on the server's clock; a client clock behind the server's (skew, drift, a jump) makes the key die before the holder's validity ends, and another client is granted it (what --compat gives up: GivenUp::ClientClockExpiry)"
        }
        MutualExclusion if f.pauses_per_sec > 0.0 => {
            "a paused holder believes it holds until it runs again (Kleppmann 1): no lease lock can prevent this; fencing tokens make its writes harmless"
        }
        TokenOrder | StaleWritesAccepted | LostUpdates
            if f.clock_jumps_per_sec > 0.0 && f.restarts_per_sec > 0.0 && !f.persist =>
        {
            "a restart without fsync loses the fence counter while the server clock is stepped back: the TIME floor of the new counter is below tokens already handed out (tokens assume a server clock that does not step back by more than the outage)"
        }
        TokenOrder | StaleWritesAccepted | LostUpdates if cfg.counter_outlived_by_jump() => {
            "a server clock stepped back by more than the fence counter's retention: the counter expired before the clock caught up, and the re-created counter's TIME floor is below tokens already handed out (set fence_retention above any backward clock step)"
        }
        MutualExclusion | ValidityOracle if f.clock_jumps_per_sec > 0.0 => {
            "a server clock jump expires keys early (Kleppmann 2 / Redlock's wall-clock caveat): validity is only as good as the servers' clocks"
        }
        MutualExclusion | ValidityOracle if f.restarts_per_sec > 0.0 && !f.persist => {
            "a restart without fsync forgets granted keys and re-grants them (Kleppmann 3)"
        }
        _ if f.failovers_per_sec > 0.0 => {
            "asynchronous replication: a promoted replica lacks recent grants and fence increments, so locks are re-granted and tokens can regress (use instances quorum or WAIT)"
        }
        MutualExclusion | ValidityOracle if f.force_releases_per_sec > 0.0 => {
            "an operator force-released the lock: the old holder learns it within one round trip (push) or one extension interval; the advanced fence rejects its writes meanwhile"
        }
        StaleWritesAccepted if !cfg.fencing.checks_writes() => {
            "--fencing off: the resource accepts any token, so a superseded holder's write lands"
        }
        LostUpdates if !cfg.fencing.checks_reads() => {
            "the resource checks tokens on writes only: a holder reads, is superseded by a newer holder that reads the same value, writes back first, and the newer holder's write then overwrites it (write-only fencing loses read-modify-write updates; check tokens on reads too: --fencing on)"
        }
        _ => "outside this scenario's fault model",
    }
}

/// Draw a duration uniformly in `[lo, hi]`.
pub fn uniform(rng: &mut Rng, lo: Duration, hi: Duration) -> Duration {
    let (lo, hi) = (lo.as_nanos() as u64, hi.as_nanos() as u64);
    Duration::from_nanos(lo + rng.below_inclusive(hi.saturating_sub(lo)))
}
