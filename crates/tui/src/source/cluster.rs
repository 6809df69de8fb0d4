//! Redis Cluster: every primary is read, within one budget.
//!
//! A cluster spreads keys over primaries by hash slot, and `SCAN` walks only the node it is sent
//! to, so one connection sees a fraction of the locks (and of a key-majority lock's keys, which
//! sit on different slots by design). Here [`primaries`] asks the seed node (`INFO cluster`,
//! `CLUSTER SLOTS`) for every primary, [`run`] reads each with its own
//! [`super::redis`] source at `budget / primaries` commands/s, and a merger builds the rows from
//! the union of their keys, so a lock whose keys live on three primaries is one row with its
//! three keys. [`scan`] does the same once, for `inspect`.
//!
//! Limits: the primaries are found once, at start. After a failover or a resharding a primary's
//! source reports the error (the view says which primary is missing) and `watch` must be
//! restarted to read the new layout.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use redis::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

use super::redis::{NodeMsg, RedisSource, Sink, TokenWindow, run_into};
use super::{SourceError, connect};
use crate::layout::{RawKey, Targets, classify};
use crate::model::{Input, ScanFigures};
use crate::scan::Budget;

/// The URL of the node at `host:port`, with the seed URL's scheme, credentials, database and
/// options. `None` when the seed is not a `redis://`/`rediss://` URL with a host.
#[must_use]
pub fn node_url(seed: &str, host: &str, port: u16) -> Option<String> {
    let (scheme, rest) = seed.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let userinfo = authority
        .rsplit_once('@')
        .map_or(String::new(), |(u, _)| format!("{u}@"));
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // IPv6
    } else {
        host.to_owned()
    };
    Some(format!("{scheme}://{userinfo}{host}:{port}{tail}"))
}

/// The host of a `redis://` URL (for primaries whose address the cluster leaves empty).
fn seed_host(seed: &str) -> Option<String> {
    let (_, rest) = seed.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => hostport,
    };
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

/// The URLs of every primary of the cluster `seed` belongs to (sorted), or `None` when `seed`
/// is not a cluster node (`cluster_enabled:0`, or a server that does not say).
///
/// # Errors
/// Connecting to the seed, or its `CLUSTER SLOTS` reply.
pub async fn primaries(seed: &str) -> Result<Option<Vec<String>>, SourceError> {
    let mut conn = connect(seed).await?;
    primaries_on(&mut conn, seed).await
}

/// [`primaries`], asked on `conn`, a connection the caller already has to `seed`.
///
/// # Errors
/// Its `INFO cluster` or `CLUSTER SLOTS` reply.
pub async fn primaries_on(
    conn: &mut redis::aio::MultiplexedConnection,
    seed: &str,
) -> Result<Option<Vec<String>>, SourceError> {
    let info: String = redis::cmd("INFO").arg("cluster").query_async(conn).await?;
    if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
        return Ok(None);
    }
    let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    let fallback = seed_host(seed).unwrap_or_else(|| "127.0.0.1".into());
    let mut nodes = BTreeSet::new();
    if let Value::Array(ranges) = slots {
        for range in ranges {
            // [start, end, [host, port, id, ...], replicas...]
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(primary)) = parts.get(2) else {
                continue;
            };
            let host = match primary.first() {
                Some(Value::BulkString(b)) if !b.is_empty() && b.as_slice() != b"?" => {
                    String::from_utf8_lossy(b).into_owned()
                }
                _ => fallback.clone(),
            };
            let Some(Value::Int(port)) = primary.get(1) else {
                continue;
            };
            if let Ok(port) = u16::try_from(*port) {
                nodes.insert((host, port));
            }
        }
    }
    let urls: Option<Vec<String>> = nodes
        .into_iter()
        .map(|(h, p)| node_url(seed, &h, p))
        .collect();
    match urls {
        Some(u) if !u.is_empty() => Ok(Some(u)),
        _ => Err(SourceError::Redis(redis::RedisError::from((
            redis::ErrorKind::Client,
            "CLUSTER SLOTS named no primary (is the cluster set up? `redis-cli --cluster create`)",
        )))),
    }
}

/// `budget` shared by `n` primaries: each gets `commands_per_sec / n` (at least 1), so the sum
/// stays within the budget.
#[must_use]
pub fn share(budget: Budget, n: usize) -> Budget {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    Budget {
        commands_per_sec: (budget.commands_per_sec / n).max(1),
        ..budget
    }
}

/// One pass over every primary, for `inspect`: the union of their keys, and the commands sent.
///
/// # Errors
/// The first primary that could not be read, named.
pub async fn scan(
    urls: &[String],
    targets: &Targets,
    budget: Budget,
) -> Result<(Vec<RawKey>, u64), String> {
    let each = share(budget, urls.len());
    let mut keys = Vec::new();
    let mut commands = 0;
    for url in urls {
        let shown = leasehold_redis::redact(url);
        let mut conn = connect(url).await.map_err(|e| e.to_string())?;
        let (k, cost) = crate::scan::scan(&mut conn, targets, each)
            .await
            .map_err(|e| format!("reading primary {shown} failed: {e}"))?;
        keys.extend(k);
        commands += cost.commands;
    }
    Ok((keys, commands))
}

/// What the merger knows of one primary.
#[derive(Default)]
struct NodeState {
    keys: Vec<RawKey>,
    rtt: Duration,
    figures: Option<ScanFigures>,
    ops: u64,
    expired: u64,
    down: Option<String>,
}

/// Read every primary in `urls` as [`super::redis::run`] reads one server, and send the UI rows
/// built from all of them. `src.url` is only shown; `src.budget` is shared by the primaries.
/// Returns when the UI goes away.
pub async fn run(
    src: RedisSource,
    urls: Vec<String>,
    tx: UnboundedSender<Input>,
    mut refresh: UnboundedReceiver<()>,
    tokens: watch::Receiver<TokenWindow>,
    origin: Instant,
) {
    let (merge_tx, mut merge_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, NodeMsg)>();
    let each = share(src.budget, urls.len());
    let mut refreshers = Vec::new();
    let shown: Vec<String> = urls.iter().map(|u| leasehold_redis::redact(u)).collect();
    for (i, url) in urls.iter().enumerate() {
        let (rtx, rrx) = tokio::sync::mpsc::unbounded_channel();
        refreshers.push(rtx);
        let node = RedisSource {
            url: url.clone(),
            targets: src.targets.clone(),
            budget: each,
            every: src.every,
        };
        let sink = Sink::Node {
            node: i,
            tx: merge_tx.clone(),
        };
        tokio::spawn(run_into(node, sink, rrx, tokens.clone(), origin));
    }
    drop(merge_tx);
    let mut nodes: BTreeMap<usize, NodeState> =
        (0..urls.len()).map(|i| (i, NodeState::default())).collect();
    loop {
        let (i, msg) = tokio::select! {
            m = merge_rx.recv() => match m {
                Some(m) => m,
                None => return,
            },
            r = refresh.recv() => {
                if r.is_none() {
                    return;
                }
                for r in &refreshers {
                    let _ = r.send(());
                }
                continue;
            }
        };
        let name = shown.get(i).cloned().unwrap_or_default();
        let Some(state) = nodes.get_mut(&i) else {
            continue;
        };
        let sent = match msg {
            NodeMsg::Keys {
                keys,
                commands,
                rtt,
                figures,
            } => {
                state.keys = keys;
                state.rtt = rtt;
                state.figures = Some(figures);
                state.down = None;
                let down: Vec<&String> = nodes.values().filter_map(|n| n.down.as_ref()).collect();
                if let Some(first) = down.first() {
                    // the rows would miss that primary's locks: keep saying so
                    tx.send(Input::Disconnected {
                        error: (*first).clone(),
                    })
                    .is_ok()
                } else {
                    let all: Vec<RawKey> = nodes
                        .values()
                        .flat_map(|n| n.keys.iter().cloned())
                        .collect();
                    let rows = classify(&src.targets, &all);
                    let rtt = nodes.values().map(|n| n.rtt).max().unwrap_or_default();
                    let figs: Vec<ScanFigures> = nodes.values().filter_map(|n| n.figures).collect();
                    let figures = ScanFigures {
                        keys: figs.iter().map(|f| f.keys).sum(),
                        pass_commands: figs.iter().map(|f| f.pass_commands).sum(),
                        pass_ms: figs.iter().map(|f| f.pass_ms).max().unwrap_or(0),
                        largest_reply: figs.iter().map(|f| f.largest_reply).max().unwrap_or(0),
                        budget: src.budget.commands_per_sec,
                    };
                    super::send_rows(&tx, rows, commands, rtt, figures)
                }
            }
            NodeMsg::Other(Input::Disconnected { error }) => {
                let error =
                    format!("primary {name}: {error} (the view misses its locks until it is back)");
                state.down = Some(error.clone());
                tx.send(Input::Disconnected { error }).is_ok()
            }
            NodeMsg::Other(Input::Server {
                ops_per_sec,
                expired_keys,
                mode,
            }) => {
                state.ops = ops_per_sec;
                state.expired = expired_keys;
                tx.send(Input::Server {
                    ops_per_sec: nodes.values().map(|n| n.ops).sum(),
                    expired_keys: nodes.values().map(|n| n.expired).sum(),
                    mode: format!("cluster of {} primaries, each: {mode}", urls.len()),
                })
                .is_ok()
            }
            NodeMsg::Other(other) => tx.send(other).is_ok(),
        };
        if !sent {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_keep_scheme_credentials_database_and_options() {
        assert_eq!(
            node_url("redis://127.0.0.1:7000", "127.0.0.1", 7001).as_deref(),
            Some("redis://127.0.0.1:7001")
        );
        assert_eq!(
            node_url(
                "rediss://u:p%40ss@h.example:7000/0?protocol=resp3",
                "10.0.0.2",
                7002
            )
            .as_deref(),
            Some("rediss://u:p%40ss@10.0.0.2:7002/0?protocol=resp3")
        );
        assert_eq!(
            node_url("redis://[::1]:7000", "::1", 7003).as_deref(),
            Some("redis://[::1]:7003")
        );
        assert_eq!(node_url("127.0.0.1:7000", "h", 1), None);
        assert_eq!(
            seed_host("redis://u:p@[::1]:7000/0").as_deref(),
            Some("::1")
        );
        assert_eq!(seed_host("redis://h.example").as_deref(), Some("h.example"));
    }

    #[test]
    fn shares_split_the_budget_at_least_one_each() {
        let b = Budget::default();
        assert_eq!(share(b, 3).commands_per_sec, 333);
        assert_eq!(share(b, 0).commands_per_sec, 1_000);
        let tiny = Budget {
            commands_per_sec: 2,
            ..b
        };
        assert_eq!(share(tiny, 5).commands_per_sec, 1);
    }
}
