//! `leasehold doctor`: read-only, bounded measurements of a Redis that holds locks, turned into
//! findings with evidence and a recommendation each, for rueidislock's options and leasehold's.
//!
//! - [`probe`] talks to Redis: reply times of the command shapes a lock uses (`PING`, and a trivial
//!   read-only script with `EVAL_RO` on 7.0 and later), `TIME` against the local clock, `SLOWLOG
//!   GET 32`, `LATENCY LATEST`, `INFO` sections, and the lock keys the dashboard's
//!   [`crate::scan::Scanner`] recognises. Every command is paid from the dashboard's
//!   [`crate::bucket::TokenBucket`]; nothing is written, nothing unbounded is read (no `KEYS`,
//!   `GET`, `HGETALL`, `CONFIG`, `CLIENT LIST`).
//! - [`findings`] is pure: [`Measured`] in, [`Finding`]s and recommended [`Settings`] out.
//!
//! A check the server refuses (an ACL without `+slowlog`, a command an old server lacks) becomes a
//! [`Skipped`] line, never an error: only an unusable URL or a server that cannot be reached (or
//! refuses `PING`) ends the run with a [`DoctorError`].

pub mod findings;
pub mod info;
pub mod probe;
pub mod stats;

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

pub use findings::{Finding, Settings, Severity, analyse};
pub use info::{Info, LatencyEvent, SlowEntry};
pub use probe::{Locks, Measured, Skew, Skipped, measure};
pub use stats::Distribution;

use crate::layout::Targets;

/// What to measure and how gently.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The server (credentials are never shown).
    pub url: String,
    /// Commands per second doctor may send, everything included (the dashboard's token bucket).
    pub budget: u32,
    /// Reply-time samples per command shape.
    pub samples: u32,
    /// Which lock keys to recognise.
    pub targets: Targets,
    /// Stop walking the keyspace after this long (the report says the walk was cut short).
    pub scan_limit: Duration,
}

impl DoctorOptions {
    /// Defaults for `url`: 1,000 commands/s, 200 samples per shape, the dashboard's targets, 30 s
    /// of keyspace walk.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        DoctorOptions {
            url: url.into(),
            budget: 1_000,
            samples: 200,
            targets: Targets::default(),
            scan_limit: Duration::from_secs(30),
        }
    }
}

/// Why doctor could not run at all. Anything less (a refused check, a replica, a cluster node) is
/// a line in the [`Report`] instead.
#[derive(Debug, Error)]
pub enum DoctorError {
    /// The URL does not parse. Write it as `redis://[user:password@]host:port[/db]` (or
    /// `rediss://` for TLS).
    #[error("invalid --redis {url}: {source}; write it as redis://[user:password@]host:port[/db]")]
    BadUrl {
        /// The redacted URL.
        url: String,
        /// The parser's complaint.
        source: redis::RedisError,
    },
    /// Connecting failed (refused, timed out, TLS, authentication during the handshake). Check
    /// that the server is up and reachable from here, the host and port, and the credentials.
    #[error(
        "cannot connect to {url}: {source}; check that the server is up and reachable from this host, the host and port, and the user and password in the URL"
    )]
    Connect {
        /// The redacted URL.
        url: String,
        /// Redis's error.
        source: redis::RedisError,
    },
    /// The server accepted the connection but refused `PING` (`NOAUTH`, `WRONGPASS`, `NOPERM`,
    /// `LOADING`). Give the URL a user and password that may run `PING`, `INFO`, `TIME`.
    #[error(
        "{url} refused PING: {source}; give the URL a user and password allowed to run PING, TIME and INFO (see the read-only ACL user in the README)"
    )]
    Refused {
        /// The redacted URL.
        url: String,
        /// Redis's error.
        source: redis::RedisError,
    },
}

impl DoctorError {
    /// The process exit status for this error: 2 for a bad URL (usage), 1 otherwise.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            DoctorError::BadUrl { .. } => 2,
            DoctorError::Connect { .. } | DoctorError::Refused { .. } => 1,
        }
    }
}

/// The server, as `INFO server`/`replication` describe it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSummary {
    /// `redis_version`.
    pub version: Option<String>,
    /// `redis_mode`: standalone, cluster, sentinel.
    pub mode: Option<String>,
    /// `role`: master or slave.
    pub role: Option<String>,
    /// `connected_slaves`.
    pub replicas: Option<i64>,
}

/// Reply times per command shape.
#[derive(Debug, Clone, Serialize)]
pub struct Shapes {
    /// `PING`.
    pub ping: Distribution,
    /// `EVAL_RO "return 1" 0` (`None`: not measured, see `skipped`).
    pub eval_ro: Option<Distribution>,
}

/// A count of lock rows by layout, and the rows' health.
#[derive(Debug, Clone, Serialize)]
pub struct LocksSummary {
    /// Lock rows found (one per layout, prefix and name).
    pub locks: usize,
    /// Rows per layout.
    pub by_layout: std::collections::BTreeMap<String, usize>,
    /// Locks whose keys have no expiry.
    pub without_ttl: Vec<String>,
    /// Whether the keyspace walk finished (else it was cut at the scan limit).
    pub complete: bool,
}

/// Everything doctor found, as printed and as `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The redacted URL.
    pub url: String,
    /// The server.
    pub server: ServerSummary,
    /// Reply times of every lock-shaped sample (PING and EVAL_RO together), µs.
    pub reply_us: Distribution,
    /// Reply times per shape.
    pub shapes: Shapes,
    /// The local clock against the server's `TIME`.
    pub clock: Option<Skew>,
    /// `SLOWLOG GET 32` (`None`: not read, see `skipped`).
    pub slowlog: Option<Vec<SlowEntry>>,
    /// `LATENCY LATEST` (`None`: not read).
    pub latency_latest: Option<Vec<LatencyEvent>>,
    /// The lock keys recognised (`None`: not read).
    pub locks: Option<LocksSummary>,
    /// Recommended settings from these measurements.
    pub settings: Settings,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Checks that could not be made, and why.
    pub skipped: Vec<Skipped>,
    /// Commands doctor sent (all paid from the budget).
    pub commands_sent: u64,
}

/// Measure `opts.url` and analyse it.
///
/// # Errors
/// [`DoctorError`] when the URL is bad or the server cannot be reached or refuses `PING`.
pub async fn run(opts: &DoctorOptions) -> Result<Report, DoctorError> {
    let m = measure(opts).await?;
    Ok(report(opts, &m))
}

/// The report of measurements `m` (pure).
#[must_use]
pub fn report(opts: &DoctorOptions, m: &Measured) -> Report {
    let (mut findings, settings) = analyse(m);
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let all: Vec<u64> = m.ping_us.iter().chain(&m.eval_ro_us).copied().collect();
    let locks = m.locks.as_ref().map(|l| {
        let mut by_layout = std::collections::BTreeMap::new();
        for r in &l.rows {
            let name = serde_json::to_value(r.layout)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *by_layout.entry(name).or_insert(0) += 1;
        }
        LocksSummary {
            locks: l.rows.len(),
            by_layout,
            without_ttl: l
                .rows
                .iter()
                .filter(|r| r.ttl_ms.is_none())
                .map(crate::layout::LockRow::display_name)
                .collect(),
            complete: l.complete,
        }
    });
    Report {
        url: leasehold_redis::redact(&opts.url),
        server: ServerSummary {
            version: m.info.get("redis_version").map(str::to_owned),
            mode: m.info.get("redis_mode").map(str::to_owned),
            role: m.info.get("role").map(str::to_owned),
            replicas: m.info.int("connected_slaves"),
        },
        reply_us: Distribution::of(&all),
        shapes: Shapes {
            ping: Distribution::of(&m.ping_us),
            eval_ro: (!m.eval_ro_us.is_empty()).then(|| Distribution::of(&m.eval_ro_us)),
        },
        clock: m.skew,
        slowlog: m.slowlog.clone(),
        latency_latest: m.latency.clone(),
        locks,
        settings,
        findings,
        skipped: m.skipped.clone(),
        commands_sent: m.commands,
    }
}

impl Report {
    /// The report as text for a terminal or a ticket: a header, one block per finding (evidence,
    /// then `→` the recommendation), the checks not made, and the recommended settings.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "?".into());
        let _ = writeln!(
            s,
            "leasehold doctor {}: Redis {} ({}, {}), {} commands sent",
            self.url,
            opt(&self.server.version),
            opt(&self.server.mode),
            opt(&self.server.role),
            self.commands_sent
        );
        let r = &self.reply_us;
        let _ = writeln!(
            s,
            "reply times ({} samples): p50 {}  p99 {}  p99.9 {}  max {}",
            r.samples,
            findings::fmt_us(r.p50),
            findings::fmt_us(r.p99),
            findings::fmt_us(r.p999),
            findings::fmt_us(r.max)
        );
        s.push('\n');
        for f in &self.findings {
            let _ = writeln!(s, "{:<8} {}: {}", f.severity.label(), f.id, f.evidence);
            let _ = writeln!(s, "         → {}", f.recommendation);
        }
        for k in &self.skipped {
            let _ = writeln!(s, "not checked  {}: {}", k.check, k.reason);
        }
        let st = &self.settings;
        let _ = writeln!(
            s,
            "\nrecommended  rueidislock: TryNextAfter {} ms, KeyValidity {} ms, ExtendInterval {} ms, KeyMajority {}",
            st.rueidislock.try_next_after_ms,
            st.rueidislock.key_validity_ms,
            st.rueidislock.extend_interval_ms,
            st.rueidislock.key_majority
        );
        let _ = writeln!(
            s,
            "             leasehold:   slot_wait {} ms, ttl {} ms, extend_interval {} ms",
            st.leasehold.slot_wait_ms, st.leasehold.ttl_ms, st.leasehold.extend_interval_ms
        );
        s
    }
}
