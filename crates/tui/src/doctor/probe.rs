//! The I/O half of doctor: read-only, bounded reads of one Redis, every command paid from the
//! dashboard's token bucket (shared with the [`Scanner`]'s keyspace walk).
//!
//! Sent, in order: `PING`, `CLIENT SETNAME leasehold-doctor`, `INFO <section>` for server,
//! clients, memory, persistence, stats, replication, cluster and commandstats (one section per
//! command, so an ACL that refuses one refuses only it), `CLIENT NO-TOUCH ON` on 7.2+, the
//! reply-time samples (`PING` and `EVAL_RO "return 1" 0` alternately; the script only on 7.0+),
//! `TIME` five times, `SLOWLOG GET 32`, `LATENCY LATEST`, then the dashboard's keyspace walk
//! (`SCAN ... TYPE`, `PTTL`, `GETRANGE 0 255`, `HRANDFIELD 5`, ...), stopped at the scan limit.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, RedisError, Value};
use serde::Serialize;

use super::info::{self, Info, LatencyEvent, SlowEntry};
use super::{DoctorError, DoctorOptions};
use crate::layout::LockRow;
use crate::scan::{Budget, Scanner};

/// The offset of the local clock from the server's `TIME`, NTP-style: the server read its clock
/// somewhere during the round trip, taken as its midpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Skew {
    /// Local clock minus server clock at the same instant, µs (positive: this host is ahead).
    pub client_ahead_us: i64,
    /// Half the round trip of the sample used: the offset is known to within this.
    pub uncertainty_us: u64,
    /// The server's `TIME` (Unix seconds) when it was read.
    pub server_unix: i64,
}

impl Skew {
    /// The offset from one `TIME` exchange: sent at `sent` (local wall clock since the Unix
    /// epoch), answered after `rtt` with the server's `secs` and `micros`. The server read its
    /// clock somewhere in the round trip; its midpoint is the estimate, half the round trip the
    /// uncertainty.
    #[must_use]
    pub fn of(sent: Duration, rtt: Duration, secs: i64, micros: i64) -> Skew {
        let mid = i64::try_from((sent + rtt / 2).as_micros()).unwrap_or(i64::MAX);
        let server = secs.saturating_mul(1_000_000).saturating_add(micros);
        Skew {
            client_ahead_us: mid.saturating_sub(server),
            uncertainty_us: u64::try_from((rtt / 2).as_micros()).unwrap_or(u64::MAX),
            server_unix: secs,
        }
    }
}

/// A check that could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// What was not checked (`SLOWLOG GET`, `INFO memory`, ...).
    pub check: String,
    /// Why, and what to do about it.
    pub reason: String,
}

/// The lock keys recognised.
#[derive(Debug, Clone, Default)]
pub struct Locks {
    /// One row per (layout, prefix, name).
    pub rows: Vec<LockRow>,
    /// The walk reached the end of the keyspace (false: cut at the scan limit).
    pub complete: bool,
}

/// Everything measured, before analysis.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Every `INFO` field read.
    pub info: Info,
    /// `PING` reply times, µs (a sample that timed out counts as the 2 s timeout).
    pub ping_us: Vec<u64>,
    /// `EVAL_RO "return 1" 0` reply times, µs (empty: not measured).
    pub eval_ro_us: Vec<u64>,
    /// The clock offset (`None`: `TIME` was refused).
    pub skew: Option<Skew>,
    /// `SLOWLOG GET 32` (`None`: not read).
    pub slowlog: Option<Vec<SlowEntry>>,
    /// `LATENCY LATEST` (`None`: not read).
    pub latency: Option<Vec<LatencyEvent>>,
    /// The lock keys (`None`: not read).
    pub locks: Option<Locks>,
    /// Checks not made.
    pub skipped: Vec<Skipped>,
    /// Commands sent.
    pub commands: u64,
}

const INFO_SECTIONS: [&str; 8] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cluster",
    "commandstats",
];
/// The description of a command not sent because the connection was lost earlier.
const NOT_SENT: &str = "not sent";
/// The reply time recorded for a sample that hit the connection's response timeout.
const TIMEOUT_US: u64 = 2_000_000;
/// Sampling stops after this many timeouts (the server is stalled; the report says so).
const MAX_TIMEOUTS: usize = 3;

/// The checks an `INFO` section feeds.
fn feeds(section: &str) -> &'static str {
    match section {
        "server" => "server version and mode",
        "clients" => "blocked clients and the client limit",
        "memory" => "the eviction policy",
        "persistence" => "persistence",
        "stats" => "evictions, forks and rejected connections",
        "replication" => "replicas and failover",
        "cluster" => "cluster mode",
        "commandstats" => "slow commands and KEYS",
        _ => "its fields",
    }
}

/// Why Redis refused a check, in words that say what to do.
fn why(check: &str, e: &RedisError) -> String {
    if e.kind() == ErrorKind::Io
        && let Some(d) = e.detail()
        && e.to_string().starts_with(NOT_SENT)
    {
        return format!("{NOT_SENT}: {d}");
    }
    let cmd = check.split_whitespace().next().unwrap_or(check);
    let acl = check
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join("|")
        .to_lowercase();
    let acl = if cmd.eq_ignore_ascii_case("INFO") {
        "info".to_owned()
    } else {
        acl
    };
    if e.code() == Some("NOPERM") || e.to_string().contains("NOPERM") {
        format!(
            "no permission for {cmd} ({e}); grant it to this ACL user (ACL SETUSER <user> +{acl}) to include it"
        )
    } else if e.kind() == ErrorKind::Io || e.is_timeout() || e.is_connection_dropped() {
        format!("the connection failed ({e})")
    } else {
        format!("the server refused it ({e})")
    }
}

struct Probe<'a> {
    conn: MultiplexedConnection,
    scanner: Scanner,
    m: Measured,
    opts: &'a DoctorOptions,
    /// Replies that timed out in a row; at [`MAX_TIMEOUTS`] the server is taken as gone.
    timeouts_in_a_row: usize,
    /// The connection dropped, or the server stopped answering: later checks are not sent.
    lost: Option<String>,
}

impl Probe<'_> {
    fn skip(&mut self, check: &str, reason: String) {
        self.m.skipped.push(Skipped {
            check: check.to_owned(),
            reason,
        });
    }

    /// One command, paid from the budget; its round-trip time with the reply.
    async fn send(&mut self, cmd: &redis::Cmd) -> (Duration, Result<Value, RedisError>) {
        let (_, rtt, r) = self.send_at(cmd).await;
        (rtt, r)
    }

    /// [`Probe::send`], also returning the wall-clock time it was sent (after any wait for the
    /// budget, so the round trip and the send time describe the same interval).
    async fn send_at(
        &mut self,
        cmd: &redis::Cmd,
    ) -> (SystemTime, Duration, Result<Value, RedisError>) {
        if let Some(why) = &self.lost {
            let e = RedisError::from((ErrorKind::Io, NOT_SENT, why.clone()));
            return (SystemTime::now(), Duration::ZERO, Err(e));
        }
        self.scanner.bucket().spend(1).await;
        let wall = SystemTime::now();
        let t = Instant::now();
        let r: Result<Value, RedisError> = cmd.query_async(&mut self.conn).await;
        let rtt = t.elapsed();
        let r = match r {
            Ok(Value::ServerError(e)) => Err(e.into()),
            other => other,
        };
        match &r {
            Err(e) if e.is_timeout() => {
                self.timeouts_in_a_row += 1;
                if self.timeouts_in_a_row >= MAX_TIMEOUTS {
                    self.lost = Some(format!(
                        "the server stopped answering ({MAX_TIMEOUTS} replies in a row took more than 2 s)"
                    ));
                }
            }
            Err(e) if e.is_connection_dropped() || e.is_connection_refusal() => {
                self.lost = Some(format!("the connection was lost ({e})"));
            }
            _ => self.timeouts_in_a_row = 0,
        }
        (wall, rtt, r)
    }

    /// `INFO`, one section per command; refused sections are grouped into one line per reason.
    async fn info(&mut self) {
        let mut refused: Vec<(String, Vec<&str>)> = Vec::new();
        for section in INFO_SECTIONS {
            match self.send(redis::cmd("INFO").arg(section)).await.1 {
                Ok(v) => {
                    let text = match v {
                        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                        Value::VerbatimString { text, .. } | Value::SimpleString(text) => text,
                        _ => String::new(),
                    };
                    self.m.info.absorb(&text);
                }
                Err(e) => {
                    let reason = why("INFO", &e);
                    match refused.iter_mut().find(|(r, _)| *r == reason) {
                        Some((_, sections)) => sections.push(section),
                        None => refused.push((reason, vec![section])),
                    }
                }
            }
        }
        for (reason, sections) in refused {
            let costs: Vec<&str> = sections.iter().map(|s| feeds(s)).collect();
            self.skip(
                &format!("INFO {}", sections.join(", ")),
                format!("{reason}; not checked without it: {}", costs.join(", ")),
            );
        }
    }

    async fn samples(&mut self, with_script: bool) {
        let mut script = with_script;
        let mut timeouts = 0;
        let mut ping = redis::cmd("PING");
        ping.arg("leasehold-doctor");
        let mut eval = redis::cmd("EVAL_RO");
        eval.arg("return 1").arg(0);
        for _ in 0..self.opts.samples {
            for (is_script, cmd) in [(false, &ping), (true, &eval)] {
                if is_script && !script {
                    continue;
                }
                let (rtt, r) = self.send(cmd).await;
                let us = match r {
                    Ok(_) => u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
                    Err(e) if e.is_timeout() => {
                        timeouts += 1;
                        TIMEOUT_US
                    }
                    Err(e) => {
                        let check = if is_script { "EVAL_RO" } else { "PING" };
                        let reason = why(check, &e);
                        self.skip(&format!("{check} reply times"), reason);
                        if is_script {
                            script = false;
                            continue;
                        }
                        return;
                    }
                };
                if is_script {
                    self.m.eval_ro_us.push(us);
                } else {
                    self.m.ping_us.push(us);
                }
                if timeouts >= MAX_TIMEOUTS {
                    self.skip(
                        "reply times",
                        format!("sampling stopped after {timeouts} replies took more than 2 s (the server is stalled or unreachable)"),
                    );
                    return;
                }
            }
        }
    }

    async fn clock(&mut self) {
        let mut best: Option<Skew> = None;
        for _ in 0..5 {
            let (wall, rtt, r) = self.send_at(&redis::cmd("TIME")).await;
            let reply =
                r.and_then(|v| redis::from_redis_value::<(i64, i64)>(v).map_err(Into::into));
            let (secs, micros) = match reply {
                Ok(t) => t,
                Err(e) => {
                    let reason = why("TIME", &e);
                    self.skip("clock skew (TIME)", reason);
                    return;
                }
            };
            let Ok(since) = wall.duration_since(UNIX_EPOCH) else {
                self.skip("clock skew (TIME)", "the local clock is before 1970".into());
                return;
            };
            let s = Skew::of(since, rtt, secs, micros);
            if best.is_none_or(|b| s.uncertainty_us < b.uncertainty_us) {
                best = Some(s);
            }
        }
        self.m.skew = best;
    }

    async fn logs(&mut self) {
        match self.send(redis::cmd("SLOWLOG").arg("GET").arg(32)).await.1 {
            Ok(v) => self.m.slowlog = Some(info::slowlog(&v)),
            Err(e) => {
                let reason = why("SLOWLOG GET", &e);
                self.skip("SLOWLOG GET", reason);
            }
        }
        match self.send(redis::cmd("LATENCY").arg("LATEST")).await.1 {
            Ok(v) => self.m.latency = Some(info::latency_latest(&v)),
            Err(e) => {
                let reason = why("LATENCY LATEST", &e);
                self.skip("LATENCY LATEST", reason);
            }
        }
    }

    async fn locks(&mut self) {
        if let Some(why) = self.lost.clone() {
            self.skip("lock keys", format!("{NOT_SENT}: {why}"));
            return;
        }
        let start = Instant::now();
        self.scanner.begin_pass();
        let mut complete = true;
        while self.scanner.in_pass() {
            if start.elapsed() > self.opts.scan_limit {
                complete = false;
                self.skip(
                    "lock keys",
                    format!(
                        "the keyspace walk was stopped after {} s (--budget limits it); the keys read so far are reported",
                        self.opts.scan_limit.as_secs()
                    ),
                );
                break;
            }
            if let Err(e) = self.scanner.step(&mut self.conn).await {
                let reason = why("SCAN", &e);
                self.skip("lock keys", reason);
                return;
            }
        }
        self.m.locks = Some(Locks {
            rows: self.scanner.rows(Instant::now()),
            complete,
        });
    }
}

/// Take every measurement of `opts.url` (read-only, within `opts.budget`).
///
/// # Errors
/// [`DoctorError::BadUrl`], [`DoctorError::Connect`], or [`DoctorError::Refused`] when the
/// first `PING` is refused.
pub async fn measure(opts: &DoctorOptions) -> Result<Measured, DoctorError> {
    let shown = leasehold_redis::redact(&opts.url);
    // a redis+sentinel:// URL: the primary its Sentinels name now
    let url = leasehold_redis::primary_url_of(&opts.url)
        .await
        .map_err(|reason| DoctorError::BadUrl {
            url: shown.clone(),
            source: RedisError::from((redis::ErrorKind::Client, "Sentinel", reason)),
        })?;
    let client = redis::Client::open(url.as_str()).map_err(|source| DoctorError::BadUrl {
        url: shown.clone(),
        source,
    })?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|source| DoctorError::Connect {
            url: shown.clone(),
            source,
        })?;
    let first: Result<Value, RedisError> = redis::cmd("PING").query_async(&mut conn).await;
    match first {
        Ok(Value::ServerError(e)) => {
            return Err(DoctorError::Refused {
                url: shown,
                source: e.into(),
            });
        }
        Err(source) if source.is_timeout() || source.is_connection_dropped() => {
            return Err(DoctorError::Connect { url: shown, source });
        }
        Err(source) => return Err(DoctorError::Refused { url: shown, source }),
        Ok(_) => {}
    }
    let budget = Budget {
        commands_per_sec: opts.budget,
        ..Budget::default()
    };
    let mut p = Probe {
        conn,
        scanner: Scanner::new(opts.targets.clone(), budget),
        m: Measured::default(),
        opts,
        timeouts_in_a_row: 0,
        lost: None,
    };
    p.scanner.bucket().spend(1).await; // the first PING
    let _ = p
        .send(redis::cmd("CLIENT").arg("SETNAME").arg("leasehold-doctor"))
        .await;
    p.info().await;
    let version = p.m.info.get("redis_version").and_then(info::version);
    if version >= Some((7, 2)) {
        let _ = p.send(redis::cmd("CLIENT").arg("NO-TOUCH").arg("ON")).await;
    }
    // unknown (INFO server refused): try the script; a refusal is then a skipped line
    let script = version.is_none_or(|v| v >= (7, 0));
    if !script {
        let v =
            p.m.info
                .get("redis_version")
                .unwrap_or("unknown")
                .to_owned();
        p.skip(
            "EVAL_RO reply times",
            format!("EVAL_RO needs Redis 7.0 or later (this server: {v}); only PING was timed"),
        );
    }
    p.samples(script).await;
    p.clock().await;
    p.logs().await;
    p.locks().await;
    p.m.commands = p.scanner.stats().commands;
    Ok(p.m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_taken_at_the_midpoint_of_the_round_trip() {
        // sent at 1000.000 s, reply after 10 ms, the server read 1000.005 s: clocks agree
        let s = Skew::of(
            Duration::from_secs(1_000),
            Duration::from_millis(10),
            1_000,
            5_000,
        );
        assert_eq!((s.client_ahead_us, s.uncertainty_us), (0, 5_000));
        // the server read 1000.085 s at our 1000.005 s: this host is 80 ms behind
        let s = Skew::of(
            Duration::from_secs(1_000),
            Duration::from_millis(10),
            1_000,
            85_000,
        );
        assert_eq!(s.client_ahead_us, -80_000);
    }

    #[test]
    fn refusals_say_what_to_grant() {
        let e = RedisError::from((
            ErrorKind::Io,
            NOT_SENT,
            "the server stopped answering".to_owned(),
        ));
        assert_eq!(why("TIME", &e), "not sent: the server stopped answering");
        let e = RedisError::from((ErrorKind::Io, "broken pipe"));
        assert!(why("SLOWLOG GET", &e).starts_with("the connection failed"));
    }
}
