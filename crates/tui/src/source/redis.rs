//! The live Redis source: connect (and reconnect with backoff), arm client tracking for early
//! reads, run paced passes of the [`Scanner`], read `INFO stats` and the events stream, all
//! within one command budget, and send the model [`Input`]s. Read-only.

use std::time::{Duration, Instant};

use leasehold_core::wire::keys::events;
use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

use crate::layout::Targets;
use crate::model::{EventLine, Input, ScanFigures};
use crate::scan::{Budget, Scanner, Tokens};

use super::connect;

/// Where and how the Redis source reads.
#[derive(Debug, Clone)]
pub struct RedisSource {
    /// The server (credentials are never shown).
    pub url: String,
    /// What to look for.
    pub targets: Targets,
    /// The command budget.
    pub budget: Budget,
    /// Time between the starts of two passes (a pass that takes longer is followed at once).
    pub every: Duration,
}

/// The client-tracking prefixes for `targets`: each leasehold and rueidislock prefix, and the
/// literal start of each `--pattern`, without overlaps (Redis refuses overlapping BCAST
/// prefixes). A pattern that starts with a wildcard is not tracked (it would track every key).
#[must_use]
pub fn tracking_prefixes(targets: &Targets) -> Vec<String> {
    let mut all: Vec<String> = targets
        .leasehold
        .iter()
        .chain(&targets.rueidislock)
        .map(|p| format!("{p}:"))
        .chain(targets.plain.iter().filter_map(|p| {
            let lit = crate::glob::literal_prefix(p.as_bytes());
            (!lit.is_empty()).then(|| String::from_utf8_lossy(&lit).into_owned())
        }))
        .collect();
    all.sort();
    all.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in all {
        if !out.iter().any(|q| p.starts_with(q.as_str())) {
            out.push(p);
        }
    }
    out
}

/// A RESP3 connection with `CLIENT TRACKING ON BCAST` for the lock prefixes (read-only, no
/// configuration change), whose invalidations arrive on `push`. `None` where the server refuses.
pub async fn tracking_connection(
    url: &str,
    targets: &Targets,
    push: UnboundedSender<redis::PushInfo>,
) -> Option<MultiplexedConnection> {
    let prefixes = tracking_prefixes(targets);
    if prefixes.is_empty() {
        return None;
    }
    let url = super::resolve(url).await.ok()?;
    let client = redis::Client::open(leasehold_redis::with_resp3(&url)).ok()?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_push_sender(push);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .ok()?;
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING").arg("ON").arg("BCAST");
    for p in prefixes {
        cmd.arg("PREFIX").arg(p);
    }
    cmd.query_async::<()>(&mut conn).await.ok()?;
    Some(conn)
}

/// The keys an invalidation names; `None` for a flush (every key).
fn invalidated(p: &redis::PushInfo) -> Option<Vec<String>> {
    if p.kind != redis::PushKind::Invalidate {
        return Some(Vec::new());
    }
    match p.data.first() {
        Some(Value::Array(keys)) => Some(
            keys.iter()
                .filter_map(|k| match k {
                    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

fn since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Where a source's messages go: straight to the UI, or to a cluster's merger (one source per
/// primary; rows are built there from every primary's keys, since one lock's keys may live on
/// several primaries).
pub(crate) enum Sink {
    /// The UI.
    Ui(UnboundedSender<Input>),
    /// The merger of a cluster's sources, tagged with this primary's index.
    Node {
        /// Index of this primary.
        node: usize,
        /// The merger.
        tx: UnboundedSender<(usize, NodeMsg)>,
    },
}

/// What one primary's source tells the cluster merger.
pub(crate) enum NodeMsg {
    /// The keys as read on this primary, with the commands sent since the last message.
    Keys {
        keys: Vec<crate::layout::RawKey>,
        commands: u64,
        rtt: Duration,
        figures: ScanFigures,
    },
    /// Anything else, as the UI would get it.
    Other(Input),
}

impl Sink {
    /// Send `input`; false once the receiver has gone.
    fn send(&self, input: Input) -> bool {
        match self {
            Sink::Ui(tx) => tx.send(input).is_ok(),
            Sink::Node { node, tx } => tx.send((*node, NodeMsg::Other(input))).is_ok(),
        }
    }
}

struct Emitter {
    sink: Sink,
    sent_before: u64,
    budget: u32,
}

impl Emitter {
    /// Send the rows (or, to a merger, the keys) as of now; false once the receiver has gone.
    fn snapshot(&mut self, s: &Scanner) -> bool {
        let stats = s.stats();
        let commands = stats.commands - self.sent_before;
        self.sent_before = stats.commands;
        let rtt = stats.last_pass.map(|c| c.rtt).unwrap_or_default();
        let figures = ScanFigures {
            keys: stats.last_pass.map_or(0, |c| c.keys),
            pass_commands: stats.last_pass.map_or(0, |c| c.commands),
            pass_ms: stats.last_pass.map_or(0, |c| {
                u64::try_from(c.elapsed.as_millis()).unwrap_or(u64::MAX)
            }),
            largest_reply: stats.largest_reply,
            budget: self.budget,
        };
        match &self.sink {
            Sink::Ui(tx) => super::send_rows(tx, s.rows(Instant::now()), commands, rtt, figures),
            Sink::Node { node, tx } => tx
                .send((
                    *node,
                    NodeMsg::Keys {
                        keys: s.raw_keys(Instant::now()),
                        commands,
                        rtt,
                        figures,
                    },
                ))
                .is_ok(),
        }
    }
}

/// The locks whose tokens the UI shows, as (prefix, name) ([`crate::model::Model::token_window`]).
pub type TokenWindow = std::collections::BTreeSet<(String, String)>;

/// Run the Redis source until the UI goes away (`tx` closed, or `tokens`' sender dropped). Never
/// returns an error: failures become [`Input::Disconnected`] and a reconnect with backoff (200 ms
/// doubling to 5 s). `refresh` asks for a pass now; `tokens` names the locks whose fence counters
/// to read (the rows on or near the screen); `origin` is the UI clock's zero (event times are
/// mapped to it).
pub async fn run(
    src: RedisSource,
    tx: UnboundedSender<Input>,
    refresh: UnboundedReceiver<()>,
    tokens: watch::Receiver<TokenWindow>,
    origin: Instant,
) {
    run_into(src, Sink::Ui(tx), refresh, tokens, origin).await;
}

/// [`run`], sending to `sink`.
pub(crate) async fn run_into(
    src: RedisSource,
    sink: Sink,
    mut refresh: UnboundedReceiver<()>,
    mut tokens: watch::Receiver<TokenWindow>,
    origin: Instant,
) {
    let mut scanner = Scanner::new(src.targets.clone(), src.budget);
    scanner.set_tokens(Tokens::Of(tokens.borrow_and_update().clone()));
    let mut out = Emitter {
        sink,
        sent_before: 0,
        budget: src.budget.commands_per_sec,
    };
    let mut backoff = Duration::from_millis(200);
    let mut last_ids: Vec<String> = src.targets.leasehold.iter().map(|_| "0-0".into()).collect();
    loop {
        let mut conn = match connect(&src.url).await {
            Ok(c) => c,
            Err(e) => {
                if !out.sink.send(Input::Disconnected {
                    error: e.to_string(),
                }) {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // be identifiable in CLIENT LIST, and leave no trace in LRU/LFU stats (Redis >= 7.2;
        // older servers refuse NO-TOUCH, which is fine)
        scanner.bucket().spend(2).await;
        let _: redis::RedisResult<()> = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg("leasehold-dash")
            .query_async(&mut conn)
            .await;
        let _: redis::RedisResult<()> = redis::cmd("CLIENT")
            .arg("NO-TOUCH")
            .arg("ON")
            .query_async(&mut conn)
            .await;
        let (push_tx, mut push_rx) = tokio::sync::mpsc::unbounded_channel::<redis::PushInfo>();
        let tracking = tracking_connection(&src.url, &src.targets, push_tx).await;
        let mode = if tracking.is_some() {
            format!("push (CLIENT TRACKING BCAST) + SCAN every {:?}", src.every)
        } else {
            format!("SCAN polling every {:?}", src.every)
        };
        scanner.forget(); // the server may have restarted: read everything afresh
        let error = 'passes: loop {
            let started = Instant::now();
            scanner.begin_pass();
            let mut last_emit = Instant::now();
            while scanner.in_pass() {
                while let Ok(p) = push_rx.try_recv() {
                    if let Some(keys) = invalidated(&p) {
                        scanner.read_soon(&keys);
                    }
                }
                if tokens.has_changed().unwrap_or(false) {
                    scanner.set_tokens(Tokens::Of(tokens.borrow_and_update().clone()));
                }
                if let Err(e) = scanner.step(&mut conn).await {
                    break 'passes e;
                }
                if last_emit.elapsed() >= Duration::from_millis(250) {
                    if !out.snapshot(&scanner) {
                        return;
                    }
                    last_emit = Instant::now();
                }
            }
            if !out.snapshot(&scanner) {
                return;
            }
            backoff = Duration::from_millis(200);
            scanner.bucket().spend(1).await;
            if let Ok((ops, expired)) = server_stats(&mut conn).await {
                let _ = out.sink.send(Input::Server {
                    ops_per_sec: ops,
                    expired_keys: expired,
                    mode: mode.clone(),
                });
            }
            let (now_unix, now_ui) = (unix_ms(), since(origin));
            for (prefix, last) in src.targets.leasehold.iter().zip(last_ids.iter_mut()) {
                scanner.bucket().spend(1).await;
                let stream = events::stream_key(prefix);
                if let Ok(evs) = read_events(&mut conn, &stream, last).await {
                    let lines: Vec<_> = evs
                        .into_iter()
                        .map(|e| EventLine {
                            at_ms: now_ui.saturating_sub(now_unix.saturating_sub(e.at_unix_ms)),
                            lock: e.name,
                            kind: e.kind,
                            detail: e.detail,
                        })
                        .collect();
                    if !lines.is_empty() && !out.sink.send(Input::Events(lines)) {
                        return;
                    }
                }
            }
            // until the next pass: early reads of the keys pushes name
            let deadline = tokio::time::Instant::from_std(started + src.every);
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    r = refresh.recv() => {
                        if r.is_none() {
                            return;
                        }
                        break;
                    }
                    r = tokens.changed() => {
                        if r.is_err() {
                            return; // the UI has gone
                        }
                        scanner.set_tokens(Tokens::Of(tokens.borrow_and_update().clone()));
                        while scanner.in_pass() {
                            if let Err(e) = scanner.step(&mut conn).await {
                                break 'passes e;
                            }
                        }
                        if !out.snapshot(&scanner) {
                            return;
                        }
                    }
                    Some(p) = push_rx.recv() => {
                        // coalesce a burst of invalidations into one read
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let mut keys = Vec::new();
                        let mut flushed = false;
                        for p in std::iter::once(p).chain(std::iter::from_fn(|| push_rx.try_recv().ok())) {
                            match invalidated(&p) {
                                Some(k) => keys.extend(k),
                                None => flushed = true,
                            }
                        }
                        if flushed {
                            break;
                        }
                        scanner.read_soon(&keys);
                        while scanner.in_pass() {
                            if let Err(e) = scanner.step(&mut conn).await {
                                break 'passes e;
                            }
                        }
                        if !out.snapshot(&scanner) {
                            return;
                        }
                    }
                }
            }
        };
        drop(tracking);
        if !out.sink.send(Input::Disconnected {
            error: error.to_string(),
        }) {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0)
}

/// `instantaneous_ops_per_sec` and `expired_keys` from `INFO stats`.
///
/// # Errors
/// Redis's.
pub async fn server_stats(conn: &mut MultiplexedConnection) -> redis::RedisResult<(u64, u64)> {
    let info: String = redis::cmd("INFO").arg("stats").query_async(conn).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok((field("instantaneous_ops_per_sec"), field("expired_keys")))
}

/// One entry of a leasehold events stream (`<prefix>:events`, written by adapters with
/// `publish_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// Server time of the entry (from its id), ms since the epoch.
    pub at_unix_ms: u64,
    /// Lock name.
    pub name: String,
    /// `acquired`, `acquire_failed`, `extended`, `lost`, `released`.
    pub kind: String,
    /// Holder, token, reason and latency as published.
    pub detail: String,
}

/// Entries of `stream` after `last_id` (at most 100), advancing `last_id`. A missing stream is no
/// error: nothing has been published yet.
///
/// # Errors
/// Redis's.
pub async fn read_events(
    conn: &mut MultiplexedConnection,
    stream: &str,
    last_id: &mut String,
) -> redis::RedisResult<Vec<StreamEvent>> {
    let reply: Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg(stream)
        .arg(last_id.as_str())
        .query_async(conn)
        .await?;
    let mut out = Vec::new();
    let streams: Vec<&Value> = match &reply {
        Value::Array(items) => items.iter().collect(),
        Value::Map(items) => items.iter().map(|(_, v)| v).collect(),
        _ => return Ok(out),
    };
    for s in streams {
        let entries = match s {
            Value::Array(pair) if pair.len() == 2 => &pair[1],
            other => other,
        };
        let Value::Array(entries) = entries else {
            continue;
        };
        for e in entries {
            let Value::Array(parts) = e else { continue };
            let (Some(id), Some(Value::Array(kv))) = (parts.first().and_then(text), parts.get(1))
            else {
                continue;
            };
            let mut fields = std::collections::BTreeMap::new();
            for pair in kv.chunks(2) {
                if let (Some(k), Some(v)) =
                    (pair.first().and_then(text), pair.get(1).and_then(text))
                {
                    fields.insert(k, v);
                }
            }
            let at_unix_ms = id
                .split('-')
                .next()
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(0);
            let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
            let mut detail = get(events::HOLDER);
            for k in [
                events::TOKEN,
                events::REASON,
                events::LATENCY_US,
                events::SLACK_US,
            ] {
                if let Some(v) = fields.get(k) {
                    detail.push_str(&format!(" {k}={v}"));
                }
            }
            let kind = match get(events::KIND).as_str() {
                events::KIND_ACQUIRE_FAILED => "timeout".to_owned(),
                k => k.to_owned(),
            };
            out.push(StreamEvent {
                at_unix_ms,
                name: get(events::NAME),
                kind,
                detail,
            });
            *last_id = id;
        }
    }
    Ok(out)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        _ => None,
    }
}
