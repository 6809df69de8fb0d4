//! From measurements to findings: each with its evidence (numbers read from the server) and a
//! recommendation for rueidislock's options and leasehold's. Pure: [`analyse`] is a function of
//! [`Measured`] alone.

use std::time::Duration;

use leasehold_core::recommend_slot_wait;
use serde::Serialize;

use super::probe::Measured;
use super::stats::{Distribution, deadline_share, share_above};
use crate::layout::Layout;

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

fn clock(out: &mut Vec<Finding>, m: &Measured) {
    let Some(s) = m.skew else { return };
    let off = s.client_ahead_us.unsigned_abs();
    let bound = s.uncertainty_us + 2_000;
    if off <= bound {
        out.push(Finding {
            id: "clock_skew",
            severity: Severity::Info,
            evidence: format!(
                "this host's clock agrees with the server's TIME within ±{} (measured offset {}{})",
                fmt_us(bound),
                if s.client_ahead_us < 0 { "-" } else { "+" },
                fmt_us(off)
            ),
            recommendation: "rueidislock's PXAT deadlines, computed from the client clock, match the server's here; run doctor on every application host, since each client's own clock sets its keys' expiry".into(),
        });
        return;
    }
    let severity = if off >= KEY_VALIDITY_MS * 1000 && s.client_ahead_us < 0 {
        Severity::Critical
    } else if off >= 50_000 {
        Severity::Warning
    } else {
        Severity::Info
    };
    let fix = "fix time sync on this host (chrony or ntpd, slewing rather than stepping); leasehold is not affected: its keys expire by a relative PX and it counts validity on the client's monotonic clock from the send time";
    let (evidence, recommendation) = if s.client_ahead_us < 0 {
        (
            format!(
                "client clock {} behind the server (±{})",
                fmt_us(off),
                fmt_us(s.uncertainty_us)
            ),
            format!(
                "rueidislock's PXAT keys written from this host live {} shorter than KeyValidity (a client more than KeyValidity behind 'acquires' keys that have already expired); {fix}",
                fmt_us(off)
            ),
        )
    } else {
        (
            format!(
                "client clock {} ahead of the server (±{})",
                fmt_us(off),
                fmt_us(s.uncertainty_us)
            ),
            format!(
                "rueidislock's PXAT keys written from this host live {} longer than KeyValidity: a crashed holder blocks its lock that much longer, while hosts behind the server get shorter keys; {fix}",
                fmt_us(off)
            ),
        )
    };
    out.push(Finding {
        id: "clock_skew",
        severity,
        evidence,
        recommendation,
    });
}

fn server_logs(out: &mut Vec<Finding>, m: &Measured) {
    if let Some(entries) = &m.slowlog
        && !entries.is_empty()
    {
        let over: Vec<_> = entries.iter().filter(|e| e.duration_us > 20_000).collect();
        let worst = entries.iter().max_by_key(|e| e.duration_us);
        let worst_text = worst.map_or_else(String::new, |w| {
            let ago = m
                .skew
                .map(|s| format!(", {} s ago", (s.server_unix - w.at_unix).max(0)))
                .unwrap_or_default();
            format!(
                "{} {}{ago}",
                w.command,
                fmt_us(u64::try_from(w.duration_us).unwrap_or(0))
            )
        });
        if over.is_empty() {
            out.push(Finding {
                id: "slowlog",
                severity: Severity::Info,
                evidence: format!(
                    "SLOWLOG: {} entries, none over 20 ms (slowest {worst_text})",
                    entries.len()
                ),
                recommendation: "nothing recent blocked the server long enough to time out a lock script".into(),
            });
        } else {
            let w = worst.map_or(0, |w| u64::try_from(w.duration_us).unwrap_or(0));
            out.push(Finding {
                id: "slowlog",
                severity: Severity::Warning,
                evidence: format!(
                    "SLOWLOG has {} command{} over 20 ms among its last {} entries (slowest {worst_text})",
                    over.len(),
                    if over.len() == 1 { "" } else { "s" },
                    entries.len()
                ),
                recommendation: format!(
                    "each one stopped every client, lock scripts and extensions included, for that long, and rueidislock calls in flight then ended in 'context deadline exceeded'; find them with SLOWLOG GET (arguments included) and bound them (SCAN instead of KEYS, smaller ranges, shorter scripts); TryNextAfter ≥ {} ms rides out such a stall",
                    ceil_ms(dur_us(recommend_slot_wait(Duration::from_micros(w))))
                ),
            });
        }
    }
    if let Some(events) = &m.latency {
        if events.is_empty() {
            out.push(Finding {
                id: "latency_monitor",
                severity: Severity::Info,
                evidence: "LATENCY LATEST is empty: the latency monitor is off (latency-monitor-threshold 0, the default) or nothing crossed its threshold".into(),
                recommendation: "to record stalls for the next run, an operator can set latency-monitor-threshold 10 (a configuration change: doctor never makes it)".into(),
            });
        } else {
            let list: Vec<String> = events
                .iter()
                .map(|e| format!("{} latest {} ms max {} ms", e.event, e.latest_ms, e.max_ms))
                .collect();
            let bad = events.iter().any(|e| e.max_ms > 20);
            out.push(Finding {
                id: "latency_events",
                severity: if bad { Severity::Warning } else { Severity::Info },
                evidence: format!("LATENCY LATEST: {}", list.join("; ")),
                recommendation: if bad {
                    "spikes over 20 ms stop lock scripts as long as they last (LATENCY DOCTOR on the server explains each event); size TryNextAfter and slot_wait above them or remove their cause".into()
                } else {
                    "no spike reached rueidislock's 20 ms per-key wait".into()
                },
            });
        }
    }
    if let Some(f) = m.info.int("latest_fork_usec")
        && f > 20_000
    {
        out.push(Finding {
            id: "fork_stall",
            severity: Severity::Warning,
            evidence: format!(
                "the last fork (BGSAVE or AOF rewrite) stopped the server for {} (latest_fork_usec {f})",
                fmt_us(u64::try_from(f).unwrap_or(0))
            ),
            recommendation: "every fork stops all clients that long: lock scripts time out and extensions queue; keep the lock Redis's dataset small, or save less often, and size TryNextAfter / slot_wait above it".into(),
        });
    }
}

fn memory(out: &mut Vec<Finding>, m: &Measured) {
    let Some(policy) = m.info.get("maxmemory_policy") else {
        return;
    };
    if policy == "noeviction" {
        return;
    }
    let maxmemory = m.info.int("maxmemory").unwrap_or(0);
    let evicted = m.info.int("evicted_keys").unwrap_or(0);
    let which = if policy.starts_with("volatile-") {
        "lock keys carry a TTL, so volatile-* policies evict exactly them"
    } else {
        "any key, lock keys included, can be evicted"
    };
    out.push(Finding {
        id: "eviction_policy",
        severity: if maxmemory > 0 {
            Severity::Critical
        } else {
            Severity::Warning
        },
        evidence: format!(
            "maxmemory-policy {policy}: lock keys can be evicted ({which}; maxmemory {}, evicted_keys {evicted})",
            if maxmemory > 0 {
                format!("{maxmemory} bytes")
            } else {
                "0: no limit yet, nothing evicted until one is set".into()
            }
        ),
        recommendation: "an evicted lock key is granted to the next caller while its holder still works; use maxmemory-policy noeviction on the Redis that holds locks (or a separate Redis for locks); leasehold's fencing tokens make the evicted holder's writes fail at the resource, rueidislock has none".into(),
    });
}

fn durability(out: &mut Vec<Finding>, m: &Measured, cluster: bool) {
    let role = m.info.get("role");
    let aof = m.info.int("aof_enabled") == Some(1);
    let never_saved =
        m.info.int("rdb_saves") == Some(0) || m.info.int("rdb_last_bgsave_time_sec") == Some(-1);
    let persistence_off = m.info.get("aof_enabled").is_some() && !aof && never_saved;
    let replicas = m.info.int("connected_slaves").unwrap_or(0);
    if role == Some("slave") {
        let master = format!(
            "{}:{}",
            m.info.get("master_host").unwrap_or("?"),
            m.info.get("master_port").unwrap_or("?")
        );
        out.push(Finding {
            id: "replica",
            severity: Severity::Warning,
            evidence: format!(
                "this server is a replica of {master} (master_link_status {})",
                m.info.get("master_link_status").unwrap_or("?")
            ),
            recommendation: "locks are taken on the primary (a lock client pointed here gets READONLY); the reply times, SLOWLOG and keys above are this replica's: run doctor against the primary as well".into(),
        });
    }
    if role == Some("master") && replicas > 0 {
        if persistence_off {
            out.push(Finding {
                id: "failover_regrant",
                severity: Severity::Critical,
                evidence: format!(
                    "persistence off (aof_enabled:0, no RDB snapshot since start) and {replicas} replica{} present",
                    plural(replicas)
                ),
                recommendation: "a failover can re-grant locks: replication is asynchronous, so a promoted replica may lack the newest lock keys, and a primary restarted empty resyncs its replicas to empty. Turn on appendonly yes with appendfsync always, do not restart a primary automatically within the longest lock TTL, and check fencing tokens at the resource (leasehold's never go backwards, they are floored at the server's TIME; rueidislock has none)".into(),
            });
        } else {
            out.push(Finding {
                id: "failover_regrant",
                severity: Severity::Warning,
                evidence: format!(
                    "{replicas} replica{}, replicated asynchronously",
                    plural(replicas)
                ),
                recommendation: "a failover can re-grant locks whose keys had not reached the promoted replica; check fencing tokens at the resource (leasehold's), or hold locks on a majority of independent primaries (leasehold's instances) instead of one replicated primary".into(),
            });
        }
    }
    if m.info.get("aof_enabled").is_some() && !aof && role != Some("slave") {
        out.push(Finding {
            id: "persistence",
            severity: if persistence_off {
                Severity::Warning
            } else {
                Severity::Info
            },
            evidence: format!(
                "aof_enabled:0{} (rdb_saves {}, {} changes since the last snapshot)",
                if persistence_off { ", no RDB snapshot since start: persistence off" } else { "" },
                m.info.get("rdb_saves").unwrap_or("?"),
                m.info.get("rdb_changes_since_last_save").unwrap_or("?")
            ),
            recommendation: "a restart loses every lock key written since the last snapshot and grants those locks again at once; use appendonly yes with appendfsync always, or keep a restarted server out of service for longer than the longest lock TTL (Redlock's delayed restart)".into(),
        });
    }
    if cluster {
        out.push(Finding {
            id: "cluster_node",
            severity: Severity::Warning,
            evidence: "this server is a cluster node (redis_mode:cluster): it serves only its own hash slots, and its keyspace walk saw only its own keys".into(),
            recommendation: "run doctor against every primary of the cluster; rueidislock's keys <prefix>:<i>:<name> carry no hash tag and spread over slots, and so do leasehold's key-majority keys (<prefix>:{name#i}, each in the slot of its own hash tag, with its fence counter)".into(),
        });
    }
}

fn clients(out: &mut Vec<Finding>, m: &Measured) {
    if let Some(b) = m.info.int("blocked_clients")
        && b > 0
    {
        out.push(Finding {
            id: "blocked_clients",
            severity: Severity::Info,
            evidence: format!(
                "{b} client{} blocked (BLPOP, BRPOP, XREAD BLOCK, WAIT, ...)",
                plural(b)
            ),
            recommendation: "normal for queues; on a Redis used only for locks they are a library waiting (Redisson's WAIT on replicas, python-redis-lock's BLPOP): check their timeouts".into(),
        });
    }
    if let (Some(c), Some(max)) = (m.info.int("connected_clients"), m.info.int("maxclients"))
        && max > 0
        && c * 10 >= max * 8
    {
        out.push(Finding {
            id: "clients_near_limit",
            severity: Severity::Warning,
            evidence: format!("{c} clients connected of maxclients {max}"),
            recommendation: "new lock clients will be refused soon; find who holds the connections (CLIENT LIST, outside doctor) and pool them".into(),
        });
    }
    if let Some(r) = m.info.int("rejected_connections")
        && r > 0
    {
        out.push(Finding {
            id: "rejected_connections",
            severity: Severity::Warning,
            evidence: format!("{r} connections rejected (maxclients reached) since the server started"),
            recommendation: "a lock client that cannot connect reports a raw dial error (rueidislock) or QuorumUnreachable (leasehold); raise maxclients or pool connections".into(),
        });
    }
}

fn commandstats(out: &mut Vec<Finding>, m: &Measured) {
    let stats = m.info.commandstats();
    if let Some(k) = stats.iter().find(|s| s.command == "keys" && s.calls > 0) {
        out.push(Finding {
            id: "keys_command",
            severity: Severity::Warning,
            evidence: format!("KEYS was called {} times since the stats were reset", k.calls),
            recommendation: "each KEYS walks the whole keyspace while every other client waits; use SCAN (leasehold watch and doctor never send KEYS)".into(),
        });
    }
    let mut slow: Vec<_> = stats
        .iter()
        .filter(|s| s.calls > 0 && s.usec_per_call >= 1_000.0)
        .collect();
    slow.sort_by(|a, b| b.usec_per_call.total_cmp(&a.usec_per_call));
    if let Some(top) = slow.first() {
        let list: Vec<String> = slow
            .iter()
            .take(5)
            .map(|s| {
                format!(
                    "{} {:.1} ms per call ({} calls)",
                    s.command,
                    s.usec_per_call / 1000.0,
                    s.calls
                )
            })
            .collect();
        out.push(Finding {
            id: "slow_commands",
            severity: if top.usec_per_call > 20_000.0 {
                Severity::Warning
            } else {
                Severity::Info
            },
            evidence: format!("INFO commandstats: {}", list.join("; ")),
            recommendation: "Redis runs one command at a time: a lock script queued behind these waits for them; bound them or move them to another Redis".into(),
        });
    }
}

fn locks(out: &mut Vec<Finding>, m: &Measured) {
    let Some(l) = &m.locks else { return };
    let mut counts: std::collections::BTreeMap<Layout, usize> = std::collections::BTreeMap::new();
    for r in &l.rows {
        *counts.entry(r.layout).or_default() += 1;
    }
    let list: Vec<String> = counts
        .iter()
        .map(|(k, n)| format!("{n} {}", format!("{k:?}").to_lowercase()))
        .collect();
    out.push(Finding {
        id: "locks",
        severity: Severity::Info,
        evidence: format!(
            "{} lock{} found{}{}",
            l.rows.len(),
            if l.rows.len() == 1 { "" } else { "s" },
            if list.is_empty() { String::new() } else { format!(": {}", list.join(", ")) },
            if l.complete { "" } else { " (keyspace walk cut short)" }
        ),
        recommendation: "plain SET NX keys (redsync, redis-py, rslock) are recognised only under --pattern; leasehold and rueidislock keys under --prefix / --rueidis-prefix (defaults leasehold, rueidislock); `leasehold watch` shows them live".into(),
    });
    let no_ttl: Vec<String> = l
        .rows
        .iter()
        .filter(|r| r.ttl_ms.is_none())
        .map(|r| {
            format!(
                "{} ({})",
                r.display_name(),
                format!("{:?}", r.layout).to_lowercase()
            )
        })
        .collect();
    if !no_ttl.is_empty() {
        out.push(Finding {
            id: "lock_without_ttl",
            severity: Severity::Critical,
            evidence: format!(
                "{} lock{} without TTL: {}{}",
                no_ttl.len(),
                if no_ttl.len() == 1 { "" } else { "s" },
                no_ttl.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                if no_ttl.len() > 5 { ", ..." } else { "" }
            ),
            recommendation: "a holder that dies keeps such a lock forever; always acquire with an expiry (redis-py Lock(timeout=None) and python-redis-lock's expire=None are the usual cause); release one by hand only after checking its holder is gone (leasehold watch --allow-writes, X)".into(),
        });
    }
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
