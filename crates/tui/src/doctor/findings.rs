//! From measurements to findings: each with its evidence (numbers read from the server) and a
//! recommendation for rueidislock's options and leasehold's. Pure: [`analyse`] is a function of
//! [`Measured`] alone.

use std::time::Duration;

use leasehold_core::recommend_slot_wait;
use serde::Serialize;

use super::probe::Measured;
use super::stats::{Distribution, deadline_share, share_above};
use crate::layout::Layout;

mod server;
use server::{clients, clock, commandstats, durability, locks, memory, server_logs};

/// rueidislock's `TryNextAfter` default: the per-key wait of one acquire script.
pub const TRY_NEXT_AFTER_US: u64 = 20_000;
/// rueidislock's `KeyValidity` default.
pub const KEY_VALIDITY_MS: u64 = 5_000;
/// rueidislock's `KeyMajority` default.
pub const KEY_MAJORITY: u32 = 2;
/// leasehold's `ttl` default.
pub const LEASEHOLD_TTL_MS: u64 = 10_000;
/// A lease's TTL should outlast this many of the worst stalls seen: with extensions every ttl/3,
/// two extensions can each wait out a stall twice the worst seen before the key expires.
pub const STALL_FACTOR: u64 = 6;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A measurement worth knowing; nothing to change.
    Info,
    /// Locks will misbehave sometimes (timeouts, shorter leases); tune as recommended.
    Warning,
    /// Locks can be granted twice or held forever; fix before trusting them.
    Critical,
}

impl Severity {
    /// Upper-case label for the text report.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One finding: what was measured and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier (`reply_time`, `clock_skew`, `eviction_policy`, ...).
    pub id: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// What was measured, with the numbers.
    pub evidence: String,
    /// What to do.
    pub recommendation: String,
}

/// rueidislock options recommended from the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RueidislockSettings {
    /// `TryNextAfter`, ms: at least 20 (the default) and twice the p99.9 reply.
    pub try_next_after_ms: u64,
    /// `KeyValidity`, ms.
    pub key_validity_ms: u64,
    /// `ExtendInterval`, ms: a third of `KeyValidity`.
    pub extend_interval_ms: u64,
    /// `KeyMajority`: 1 on one node, 2 on a cluster.
    pub key_majority: u32,
}

/// leasehold options recommended from the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeaseholdSettings {
    /// `slot_wait`, ms ([`recommend_slot_wait`] of the p99.9 reply).
    pub slot_wait_ms: u64,
    /// `ttl`, ms.
    pub ttl_ms: u64,
    /// `extend_interval`, ms (ttl/3, the default).
    pub extend_interval_ms: u64,
}

/// Recommended settings for both libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// rueidislock's options.
    pub rueidislock: RueidislockSettings,
    /// leasehold's options.
    pub leasehold: LeaseholdSettings,
}

/// `31 ms`, `4.2 ms`, `0.41 ms`, `2.0 s`.
#[must_use]
pub fn fmt_us(us: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let ms = us as f64 / 1000.0;
    if us >= 10_000_000 {
        format!("{:.0} s", ms / 1000.0)
    } else if us >= 1_000_000 {
        format!("{:.1} s", ms / 1000.0)
    } else if us >= 10_000 {
        format!("{ms:.0} ms")
    } else if us >= 1_000 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// A share as a percentage with two significant digits.
#[must_use]
pub fn fmt_share(p: f64) -> String {
    let pct = p * 100.0;
    if pct <= 0.0 {
        "0%".into()
    } else if pct < 0.01 {
        "<0.01%".into()
    } else if pct < 1.0 {
        format!("{pct:.2}%")
    } else if pct < 10.0 {
        format!("{pct:.1}%")
    } else {
        format!("{pct:.0}%")
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn ceil_ms(us: u64) -> u64 {
    us.div_ceil(1000)
}

fn dur_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Round `ms` up to a whole 100 ms.
fn round_up_100(ms: u64) -> u64 {
    ms.div_ceil(100) * 100
}

/// The worst stall seen, µs, and where it was seen.
fn worst_stall(m: &Measured, replies: &Distribution) -> (u64, String) {
    let mut worst = (replies.max, "the slowest reply sampled".to_owned());
    for e in m.slowlog.iter().flatten() {
        let d = u64::try_from(e.duration_us).unwrap_or(0);
        if d > worst.0 {
            worst = (d, format!("SLOWLOG: {}", e.command));
        }
    }
    for e in m.latency.iter().flatten() {
        let d = u64::try_from(e.max_ms).unwrap_or(0).saturating_mul(1000);
        if d > worst.0 {
            worst = (d, format!("LATENCY LATEST: {}", e.event));
        }
    }
    if let Some(f) = m.info.int("latest_fork_usec") {
        let d = u64::try_from(f).unwrap_or(0);
        if d > worst.0 {
            worst = (d, "the last fork (latest_fork_usec)".to_owned());
        }
    }
    worst
}

/// Findings (unsorted) and recommended settings for measurements `m`.
#[must_use]
pub fn analyse(m: &Measured) -> (Vec<Finding>, Settings) {
    let mut out = Vec::new();
    let all: Vec<u64> = m.ping_us.iter().chain(&m.eval_ro_us).copied().collect();
    let d = Distribution::of(&all);
    let slot_wait = dur_us(recommend_slot_wait(Duration::from_micros(d.p999)));
    let try_next_after = slot_wait.max(TRY_NEXT_AFTER_US);
    let cluster =
        m.info.get("redis_mode") == Some("cluster") || m.info.int("cluster_enabled") == Some(1);
    let (stall, stall_source) = worst_stall(m, &d);
    let validity = round_up_100(ceil_ms(stall.saturating_mul(STALL_FACTOR))).max(KEY_VALIDITY_MS);
    let ttl = round_up_100(ceil_ms(stall.saturating_mul(STALL_FACTOR))).max(LEASEHOLD_TTL_MS);
    let settings = Settings {
        rueidislock: RueidislockSettings {
            try_next_after_ms: ceil_ms(try_next_after),
            key_validity_ms: validity,
            extend_interval_ms: validity / 3,
            key_majority: if cluster { 2 } else { 1 },
        },
        leasehold: LeaseholdSettings {
            slot_wait_ms: ceil_ms(slot_wait),
            ttl_ms: ttl,
            extend_interval_ms: ttl / 3,
        },
    };

    if !all.is_empty() {
        reply_time(&mut out, m, &all, &d, slot_wait, try_next_after);
        key_majority(&mut out, m, &all, cluster);
    }
    key_validity(&mut out, stall, &stall_source, validity, ttl);
    clock(&mut out, m);
    server_logs(&mut out, m);
    memory(&mut out, m);
    durability(&mut out, m, cluster);
    clients(&mut out, m);
    commandstats(&mut out, m);
    locks(&mut out, m);
    (out, settings)
}

fn shape(name: &str, s: &[u64]) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let d = Distribution::of(s);
    Some(format!(
        "{name} p50 {} p99 {} p99.9 {} max {}",
        fmt_us(d.p50),
        fmt_us(d.p99),
        fmt_us(d.p999),
        fmt_us(d.max)
    ))
}

fn reply_time(
    out: &mut Vec<Finding>,
    m: &Measured,
    all: &[u64],
    d: &Distribution,
    slot_wait: u64,
    try_next_after: u64,
) {
    let p = share_above(all, TRY_NEXT_AFTER_US);
    let over = all.iter().filter(|s| **s > TRY_NEXT_AFTER_US).count();
    let shapes: Vec<String> = [shape("PING", &m.ping_us), shape("EVAL_RO", &m.eval_ro_us)]
        .into_iter()
        .flatten()
        .collect();
    let detail = format!(
        "{}; {over} of {} samples over 20 ms",
        shapes.join(", "),
        all.len()
    );
    let shares = format!(
        "KeyMajority 1: ~{}, 2: ~{}, 3: ~{}",
        fmt_share(deadline_share(p, 1)),
        fmt_share(deadline_share(p, 2)),
        fmt_share(deadline_share(p, 3))
    );
    if d.p999 > TRY_NEXT_AFTER_US {
        out.push(Finding {
            id: "reply_time",
            severity: if d.p50 > TRY_NEXT_AFTER_US {
                Severity::Critical
            } else {
                Severity::Warning
            },
            evidence: format!(
                "p99.9 reply {} > TryNextAfter 20 ms ({detail})",
                fmt_us(d.p999)
            ),
            recommendation: format!(
                "expect 'context deadline exceeded' on ~{} of TryWithContext calls with the default KeyMajority 2, contention or not ({shares}); set TryNextAfter ≥ {} ms; leasehold: slot_wait ≥ {} ms (twice the p99.9 reply; its default 100 ms {})",
                fmt_share(deadline_share(p, KEY_MAJORITY)),
                ceil_ms(try_next_after),
                ceil_ms(slot_wait),
                if slot_wait <= 100_000 { "covers it" } else { "does not" }
            ),
        });
    } else {
        out.push(Finding {
            id: "reply_time",
            severity: Severity::Info,
            evidence: format!(
                "p99.9 reply {} ≤ TryNextAfter 20 ms ({detail})",
                fmt_us(d.p999)
            ),
            recommendation: format!(
                "slow replies on this path predict 'context deadline exceeded' on {} of TryWithContext calls ({shares}); if you see more, it is your own context deadline running out, a stall (see SLOWLOG, LATENCY and fork findings), or a lost lease, not Redis's usual speed; TryNextAfter 20 ms is enough here; leasehold: slot_wait ≥ {} ms (its default 100 ms covers it)",
                if over == 0 {
                    format!("almost none (no sample of {} was over 20 ms)", all.len())
                } else {
                    format!("only ~{}", fmt_share(deadline_share(p, KEY_MAJORITY)))
                },
                ceil_ms(slot_wait)
            ),
        });
    }
}

fn key_majority(out: &mut Vec<Finding>, m: &Measured, all: &[u64], cluster: bool) {
    let rueidis: Vec<u32> = m
        .locks
        .iter()
        .flat_map(|l| &l.rows)
        .filter(|r| r.layout == Layout::Rueidislock)
        .map(|r| r.keys_total)
        .collect();
    let seen = if rueidis.is_empty() {
        "no rueidislock keys seen".to_owned()
    } else {
        format!(
            "{} rueidislock locks seen, spanning up to {} keys",
            rueidis.len(),
            rueidis.iter().max().copied().unwrap_or(0)
        )
    };
    let p = share_above(all, TRY_NEXT_AFTER_US);
    let (evidence, recommendation) = if cluster {
        (
            format!("a cluster node; {seen}"),
            "KeyMajority 2 (3 keys spread over slots by CRC16) can survive one shard's loss when the keys land on different shards; it must be the same on every Locker; leasehold: key_majority Some(2) for the same trade, or instances over independent primaries".to_owned(),
        )
    } else {
        (
            format!("one standalone server; {seen}"),
            format!(
                "on one node KeyMajority > 1 adds a sequential round trip per key and no fault tolerance (rueidislock's README advises 1); it only masks single late replies (predicted deadline share per call: KeyMajority 1 ~{}, 2 ~{}). Raise TryNextAfter first, then use KeyMajority 1, the same on every Locker; leasehold: SlotLayout::Single",
                fmt_share(deadline_share(p, 1)),
                fmt_share(deadline_share(p, 2))
            ),
        )
    };
    out.push(Finding {
        id: "key_majority",
        severity: Severity::Info,
        evidence,
        recommendation,
    });
}

fn key_validity(out: &mut Vec<Finding>, stall: u64, source: &str, validity: u64, ttl: u64) {
    let too_long = stall.saturating_mul(STALL_FACTOR) > KEY_VALIDITY_MS * 1000;
    out.push(Finding {
        id: "key_validity",
        severity: if too_long {
            Severity::Warning
        } else {
            Severity::Info
        },
        evidence: if too_long {
            format!(
                "the worst stall seen, {} ({source}), is more than a sixth of KeyValidity 5 s: an extension that meets such a stall twice lets the keys lapse while their holder still works",
                fmt_us(stall)
            )
        } else {
            format!(
                "the worst stall seen, {} ({source}), is under a sixth of KeyValidity 5 s",
                fmt_us(stall)
            )
        },
        recommendation: format!(
            "KeyValidity ≥ {validity} ms with ExtendInterval ≤ {} ms (a third; rueidislock's default V/2 leaves room for one late extension, and it does not check ExtendInterval < KeyValidity); leasehold: ttl ≥ {ttl} ms, extend_interval ttl/3 (its default)",
            validity / 3
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::probe::Skew;

    fn find<'a>(f: &'a [Finding], id: &str) -> &'a Finding {
        f.iter()
            .find(|x| x.id == id)
            .unwrap_or_else(|| panic!("no {id} in {f:#?}"))
    }

    #[test]
    #[allow(clippy::field_reassign_with_default)]
    fn slow_replies_recommend_twice_the_p999_and_predict_the_deadline_share() {
        let mut m = Measured::default();
        // 1000 samples, 4 over 20 ms, the slowest 31 ms
        m.ping_us = (0..996)
            .map(|_| 500)
            .chain([25_000, 26_000, 30_000, 31_000])
            .collect();
        let (f, s) = analyse(&m);
        let r = find(&f, "reply_time");
        assert_eq!(r.severity, Severity::Warning);
        assert!(
            r.evidence
                .starts_with("p99.9 reply 30 ms > TryNextAfter 20 ms"),
            "{}",
            r.evidence
        );
        assert!(
            r.recommendation.contains("set TryNextAfter ≥ 60 ms"),
            "{}",
            r.recommendation
        );
        assert_eq!(s.rueidislock.try_next_after_ms, 60);
        assert_eq!(s.leasehold.slot_wait_ms, 60);
        // p = 0.4%: one key 0.40%, two of three ~0.0048%
        assert!(
            r.recommendation.contains("KeyMajority 1: ~0.40%"),
            "{}",
            r.recommendation
        );
    }

    #[test]
    fn fast_replies_say_slowness_is_not_the_cause() {
        let m = Measured {
            ping_us: vec![300; 100],
            ..Measured::default()
        };
        let (f, s) = analyse(&m);
        let r = find(&f, "reply_time");
        assert_eq!(r.severity, Severity::Info);
        assert!(r.recommendation.contains("your own context deadline"));
        assert_eq!(s.rueidislock.try_next_after_ms, 20);
        assert_eq!(s.leasehold.slot_wait_ms, 1);
        assert_eq!(s.rueidislock.key_validity_ms, 5_000);
    }

    #[test]
    #[allow(clippy::field_reassign_with_default)]
    fn clock_behind_shortens_pxat_keys() {
        let mut m = Measured::default();
        m.skew = Some(Skew {
            client_ahead_us: -80_000,
            uncertainty_us: 200,
            server_unix: 0,
        });
        let (f, _) = analyse(&m);
        let c = find(&f, "clock_skew");
        assert_eq!(c.severity, Severity::Warning);
        assert!(
            c.evidence.starts_with("client clock 80 ms behind"),
            "{}",
            c.evidence
        );
        assert!(c.recommendation.contains("live 80 ms shorter"));
        m.skew = Some(Skew {
            client_ahead_us: 80_000,
            uncertainty_us: 200,
            server_unix: 0,
        });
        let (f, _) = analyse(&m);
        assert!(
            find(&f, "clock_skew")
                .recommendation
                .contains("80 ms longer")
        );
    }

    #[test]
    fn info_findings_eviction_persistence_replicas() {
        let mut m = Measured::default();
        m.info.absorb(
            "maxmemory:104857600\nmaxmemory_policy:allkeys-lru\nevicted_keys:3\nrole:master\nconnected_slaves:1\naof_enabled:0\nrdb_saves:0\nrdb_changes_since_last_save:5\n",
        );
        let (f, _) = analyse(&m);
        assert_eq!(find(&f, "eviction_policy").severity, Severity::Critical);
        assert_eq!(find(&f, "failover_regrant").severity, Severity::Critical);
        assert!(
            find(&f, "failover_regrant")
                .evidence
                .contains("persistence off")
        );
        assert_eq!(find(&f, "persistence").severity, Severity::Warning);
        let mut r = Measured::default();
        r.info
            .absorb("role:slave\nmaster_host:10.0.0.1\nmaster_port:6379\nmaster_link_status:up\n");
        let (f, _) = analyse(&r);
        assert!(
            find(&f, "replica")
                .evidence
                .contains("replica of 10.0.0.1:6379")
        );
    }

    #[test]
    #[allow(clippy::field_reassign_with_default)]
    fn a_long_stall_raises_key_validity() {
        let mut m = Measured::default();
        m.ping_us = vec![300; 10];
        m.slowlog = Some(vec![crate::doctor::SlowEntry {
            id: 1,
            at_unix: 0,
            duration_us: 1_500_000,
            command: "EVAL".into(),
        }]);
        let (f, s) = analyse(&m);
        assert_eq!(find(&f, "key_validity").severity, Severity::Warning);
        assert_eq!(s.rueidislock.key_validity_ms, 9_000);
        assert_eq!(s.rueidislock.extend_interval_ms, 3_000);
        assert_eq!(s.leasehold.ttl_ms, 10_000);
        assert_eq!(find(&f, "slowlog").severity, Severity::Warning);
    }
}
