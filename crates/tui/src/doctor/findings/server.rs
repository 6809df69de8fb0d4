//! The findings read from the server itself rather than from reply times: its clock, its logs
//! (slowlog, latency monitor), memory and eviction, durability, clients, command statistics,
//! and the lock keys it holds. Each adds its findings to `out`, as [`super::analyse`] asks.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn clock(out: &mut Vec<Finding>, m: &Measured) {
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

pub(super) fn server_logs(out: &mut Vec<Finding>, m: &Measured) {
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

pub(super) fn memory(out: &mut Vec<Finding>, m: &Measured) {
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

pub(super) fn durability(out: &mut Vec<Finding>, m: &Measured, cluster: bool) {
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

pub(super) fn clients(out: &mut Vec<Finding>, m: &Measured) {
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

pub(super) fn commandstats(out: &mut Vec<Finding>, m: &Measured) {
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

pub(super) fn locks(out: &mut Vec<Finding>, m: &Measured) {
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
