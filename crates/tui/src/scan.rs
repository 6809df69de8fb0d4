//! Read lock keys from a live Redis safely: `SCAN` with `MATCH` and a modest `COUNT` (never
//! `KEYS`), de-duplicated results, pipelined `TYPE`/`PTTL` and value reads, paced so the
//! dashboard's own load stays under a command budget. Read-only.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::layout::{RawKey, Targets};

/// Pacing and batch sizes.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Commands per second the dashboard may send (default 1,000).
    pub commands_per_sec: u32,
    /// `SCAN ... COUNT` hint.
    pub scan_count: u32,
    /// Keys per pipeline.
    pub batch: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            commands_per_sec: 1_000,
            scan_count: 200,
            batch: 100,
        }
    }
}

/// What one pass cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Commands sent in the pass.
    pub commands: u64,
    /// Wall time of the pass.
    pub elapsed: Duration,
    /// Round trip of the first `PING` of the pass.
    pub rtt: Duration,
}

struct Pacer {
    budget: u32,
    window_start: Instant,
    sent: u32,
    total: u64,
}

impl Pacer {
    /// Reserve `n` commands before sending them: waits for the next one-second window when this
    /// one cannot take them, so no window ever exceeds the budget.
    async fn spend(&mut self, n: u32) {
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.sent = 0;
        }
        if self.sent + n > self.budget && self.sent > 0 {
            let wait = Duration::from_secs(1).saturating_sub(self.window_start.elapsed());
            tokio::time::sleep(wait).await;
            self.window_start = Instant::now();
            self.sent = 0;
        }
        self.total += u64::from(n);
        self.sent += n;
    }
}

/// The SCAN patterns (and type filters) for `targets`.
#[must_use]
pub fn patterns(targets: &Targets) -> Vec<(String, Option<&'static str>)> {
    let mut p: Vec<(String, Option<&'static str>)> = Vec::new();
    for x in &targets.leasehold {
        p.push((format!("{x}:*"), None));
    }
    for x in &targets.rueidislock {
        p.push((format!("{x}:*"), None));
    }
    for x in &targets.plain {
        p.push((x.clone(), Some("string")));
    }
    if targets.redisson {
        p.push(("*".into(), Some("hash")));
    }
    p
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        _ => None,
    }
}

/// One pass over every target. Errors are Redis's, for the caller to show and retry.
pub async fn scan(
    conn: &mut MultiplexedConnection,
    targets: &Targets,
    budget: Budget,
) -> redis::RedisResult<(Vec<RawKey>, Cost)> {
    let started = Instant::now();
    let mut pacer = Pacer {
        budget: budget.commands_per_sec.max(10),
        window_start: started,
        sent: 0,
        total: 0,
    };
    pacer.spend(1).await;
    let t = Instant::now();
    let _: () = redis::cmd("PING").query_async(conn).await?;
    let rtt = t.elapsed();
    let mut names = BTreeSet::new(); // SCAN may return a key twice: de-duplicate
    for (pattern, kind) in patterns(targets) {
        let mut cursor: u64 = 0;
        loop {
            let mut c = redis::cmd("SCAN");
            c.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(budget.scan_count);
            if let Some(k) = kind {
                c.arg("TYPE").arg(k);
            }
            pacer.spend(1).await;
            let (next, keys): (u64, Vec<Vec<u8>>) = c.query_async(conn).await?;
            for k in keys {
                names.insert(String::from_utf8_lossy(&k).into_owned());
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    let names: Vec<String> = names.into_iter().collect();
    let mut out = Vec::with_capacity(names.len());
    for chunk in names.chunks(budget.batch.max(1)) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("TYPE").arg(k).cmd("PTTL").arg(k);
        }
        pacer
            .spend(u32::try_from(chunk.len() * 2).unwrap_or(u32::MAX))
            .await;
        let meta: Vec<Value> = p.query_async(conn).await?;
        let mut reads = redis::pipe();
        let mut kinds = Vec::with_capacity(chunk.len());
        for (i, k) in chunk.iter().enumerate() {
            let kind = meta
                .get(2 * i)
                .and_then(text)
                .unwrap_or_else(|| "none".into());
            let pttl = match meta.get(2 * i + 1) {
                Some(Value::Int(n)) => *n,
                _ => -2,
            };
            match kind.as_str() {
                "string" => {
                    reads.cmd("GET").arg(k);
                }
                "hash" => {
                    reads.cmd("HGETALL").arg(k);
                }
                _ => {
                    reads.cmd("EXISTS").arg(k);
                }
            }
            kinds.push((kind, pttl));
        }
        pacer
            .spend(u32::try_from(chunk.len()).unwrap_or(u32::MAX))
            .await;
        let values: Vec<Value> = reads.query_async(conn).await?;
        for ((k, (kind, pttl)), v) in chunk.iter().zip(kinds).zip(values) {
            let mut raw = RawKey {
                key: k.clone(),
                kind,
                pttl_ms: pttl,
                value: None,
                fields: Vec::new(),
            };
            match (&raw.kind[..], v) {
                ("string", Value::BulkString(b)) => raw.value = Some(b),
                ("hash", Value::Array(items)) => {
                    raw.fields = items
                        .chunks(2)
                        .filter_map(|f| Some((text(f.first()?)?, text(f.get(1)?)?)))
                        .collect();
                }
                ("hash", Value::Map(items)) => {
                    raw.fields = items
                        .iter()
                        .filter_map(|(f, v)| Some((text(f)?, text(v)?)))
                        .collect();
                }
                _ => {}
            }
            out.push(raw);
        }
    }
    Ok((
        out,
        Cost {
            commands: pacer.total,
            elapsed: started.elapsed(),
            rtt,
        },
    ))
}

/// `instantaneous_ops_per_sec` and `expired_keys` from `INFO stats`.
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

/// Entries of `stream` after `last_id` (at most 500), advancing `last_id`. A missing stream is no
/// error: nothing has been published yet.
pub async fn read_events(
    conn: &mut MultiplexedConnection,
    stream: &str,
    last_id: &mut String,
) -> redis::RedisResult<Vec<StreamEvent>> {
    let reply: Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(500)
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
            let mut detail = get("holder");
            for k in ["token", "reason", "latency_us", "slack_us"] {
                if let Some(v) = fields.get(k) {
                    detail.push_str(&format!(" {k}={v}"));
                }
            }
            let kind = match get("kind").as_str() {
                "acquire_failed" => "timeout".to_owned(),
                k => k.to_owned(),
            };
            out.push(StreamEvent {
                at_unix_ms,
                name: get("name"),
                kind,
                detail,
            });
            *last_id = id;
        }
    }
    Ok(out)
}
