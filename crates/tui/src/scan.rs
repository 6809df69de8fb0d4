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
