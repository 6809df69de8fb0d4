//! Read lock keys from a live Redis safely and cheaply. Read-only.
//!
//! - **Discovery**: `SCAN cursor [MATCH p] COUNT n TYPE string|hash` (never `KEYS`), one walk per
//!   type; names are matched client-side with Redis's own glob rules and de-duplicated. Keys whose
//!   name no layout claims are never read.
//! - **Bounded reads**: the type comes from `SCAN ... TYPE`; string values are read with
//!   `GETRANGE key 0 255` (at most [`MAX_VALUE`] bytes; `STRLEN` only when that was not all).
//!   Hashes: `HRANDFIELD key 5` (at most 5 field names, so it also tells "more than 4 fields:
//!   not a lock" without a separate `HLEN`); only a hash of 1 to 4 fields all shaped like
//!   Redisson's `<id>:<thread>` is looked at further: `HSTRLEN` of each, then `HMGET` of those
//!   fields when short. Never `GET`, `HGETALL`, `KEYS` or `TYPE`.
//! - **Cheap passes**: a key's value is read when it is new, when a client-tracking push names
//!   it, or when its `PTTL` departs from the countdown predicted from the last read (a re-`SET`,
//!   an extension, a delete and re-create). Otherwise a pass costs one `PTTL` per lock key, none
//!   per fence counter or per hash that is not a lock, plus the `SCAN` pages.
//! - **Tokens on demand**: a fence counter is read only when its lock's token is wanted
//!   ([`Tokens`]): every one for `inspect`, only the rows on or near the screen for `watch`. A
//!   counter whose lock changed hands while it was not wanted is forgotten (shown as unknown) and
//!   read again when it is. So the first pass of `watch` costs `PTTL` + `GETRANGE` per lock key
//!   and nothing per fence counter off screen.
//! - **Budget**: every command goes through one [`TokenBucket`] shared with the server-stats and
//!   event reads, across passes: pipelines are at most the bucket's capacity.
//!
//! The [`Scanner`] keeps what it has read between passes and advances one pipeline per
//! [`Scanner::step`], so the caller can show progress and interleave early reads.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use leasehold_core::wire::keys;
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::bucket::TokenBucket;
use crate::layout::{LockRow, MAX_VALUE, RawKey, Role, Targets, classify, leasehold_key, role_of};

/// Pacing and batch sizes.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Commands per second the dashboard may send (default 1,000), all reads included.
    pub commands_per_sec: u32,
    /// `SCAN ... COUNT` hint.
    pub scan_count: u32,
    /// Most commands per pipeline (also limited by the budget's burst).
    pub batch: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            commands_per_sec: 1_000,
            scan_count: 1_000,
            batch: 100,
        }
    }
}

/// What one full pass cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Commands sent in the pass (a pipeline of N commands counts N, as Redis counts).
    pub commands: u64,
    /// Lock-related keys known at the end of the pass.
    pub keys: usize,
    /// Wall time of the pass.
    pub elapsed: Duration,
    /// Fastest round trip seen in the pass.
    pub rtt: Duration,
}

/// Running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScanStats {
    /// Commands sent since the scanner was made.
    pub commands: u64,
    /// Full passes completed.
    pub passes: u64,
    /// The last full pass.
    pub last_pass: Option<Cost>,
    /// Bytes of the largest single reply read (one command's reply).
    pub largest_reply: usize,
}

/// Which fence counters (tokens) the scanner reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Tokens {
    /// Every leasehold lock's (`inspect`, one-shot reads).
    #[default]
    All,
    /// Only these leasehold locks' (prefix, name): the rows on or near the screen.
    Of(BTreeSet<(String, String)>),
}

impl Tokens {
    /// Whether the fence counter `key` is wanted.
    fn wants(&self, prefixes: &[String], key: &str) -> bool {
        match self {
            Tokens::All => true,
            Tokens::Of(locks) => leasehold_key(prefixes, key)
                .is_some_and(|(prefix, name, _, _)| locks.contains(&(prefix.to_owned(), name))),
        }
    }
}

/// Placeholder `pttl` of a key not read yet.
const UNREAD: i64 = i64::MIN;
/// Hashes with more fields than this are not locks (Redisson's lock hash has one field per
/// holding thread).
const MAX_LOCK_FIELDS: i64 = 4;
/// A Redisson hold count is an integer: longer field values are not read.
const MAX_FIELD_VALUE: i64 = 20;
/// Keys without expiry, and hashes that are not locks, are re-read every this many passes
/// (spread over the passes by key), in case they changed without a push.
const REVALIDATE_EVERY: u64 = 20;

#[derive(Debug, Clone)]
struct Entry {
    role: Role,
    pttl: i64,
    read_at: Option<Instant>,
    value: Option<Vec<u8>>,
    too_large: Option<u64>,
    fields: Vec<(String, String)>,
    /// Hashes: `Some(true)` a Redisson lock, `Some(false)` not a lock, `None` not probed.
    redisson: Option<bool>,
    seen_pass: u64,
    spread: u64,
}

impl Entry {
    fn new(role: Role, pass: u64, key: &str) -> Self {
        let spread = key
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Entry {
            role,
            pttl: UNREAD,
            read_at: None,
            value: None,
            too_large: None,
            fields: Vec::new(),
            redisson: None,
            seen_pass: pass,
            spread,
        }
    }

    fn is_string(&self) -> bool {
        self.role != Role::Hash
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Pttl,
    Range,
    Strlen,
    HRand,
    HStrlen(Vec<String>),
    HMget(Vec<String>),
}

impl Op {
    fn commands(&self) -> usize {
        match self {
            Op::HStrlen(f) => f.len(),
            _ => 1,
        }
    }

    fn push(&self, key: &str, p: &mut redis::Pipeline) {
        match self {
            Op::Pttl => {
                p.cmd("PTTL").arg(key);
            }
            Op::Range => {
                p.cmd("GETRANGE").arg(key).arg(0).arg(MAX_VALUE - 1);
            }
            Op::Strlen => {
                p.cmd("STRLEN").arg(key);
            }
            Op::HRand => {
                p.cmd("HRANDFIELD").arg(key).arg(MAX_LOCK_FIELDS + 1);
            }
            Op::HStrlen(fields) => {
                for f in fields {
                    p.cmd("HSTRLEN").arg(key).arg(f);
                }
            }
            Op::HMget(fields) => {
                p.cmd("HMGET").arg(key).arg(fields);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Phase {
    Idle,
    Walk {
        walks: Vec<(&'static str, Option<String>)>,
        idx: usize,
        cursor: u64,
    },
    Read,
}

/// Reads lock keys pass after pass within a budget, remembering what it read (see the module
/// docs). Drive it with [`Scanner::begin_pass`] and [`Scanner::step`] until
/// [`Scanner::in_pass`] is false.
#[derive(Debug)]
pub struct Scanner {
    targets: Targets,
    budget: Budget,
    bucket: TokenBucket,
    entries: BTreeMap<String, Entry>,
    phase: Phase,
    queue: VecDeque<(String, Op)>,
    pass: u64,
    full: bool,
    pass_started: Instant,
    pass_commands: u64,
    pass_rtt: Option<Duration>,
    stats: ScanStats,
    tokens: Tokens,
}

/// Escape glob metacharacters so `s` matches only itself.
#[must_use]
pub fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `SCAN` walks for `targets`: (type, server-side MATCH). One walk per type; MATCH is sent
/// when a single pattern covers that type, else names are matched client-side.
#[must_use]
pub fn walks(targets: &Targets) -> Vec<(&'static str, Option<String>)> {
    let mut strings: Vec<String> = Vec::new();
    for p in &targets.leasehold {
        strings.push(format!("{}:{{*", escape_glob(p)));
    }
    for p in &targets.rueidislock {
        strings.push(format!("{}:*", escape_glob(p)));
    }
    strings.extend(targets.plain.iter().cloned());
    let mut w = Vec::new();
    match strings.len() {
        0 => {}
        1 => w.push(("string", strings.pop())),
        _ => w.push(("string", None)),
    }
    if targets.redisson {
        w.push(("hash", None));
    }
    w
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        _ => None,
    }
}

/// Bytes a reply carried (bulk payloads and names), for the largest-reply figure.
fn reply_size(v: &Value) -> usize {
    match v {
        Value::BulkString(b) => b.len(),
        Value::SimpleString(s) => s.len(),
        Value::VerbatimString { text, .. } => text.len(),
        Value::Array(items) | Value::Set(items) => items.iter().map(reply_size).sum(),
        Value::Map(items) => items
            .iter()
            .map(|(k, v)| reply_size(k) + reply_size(v))
            .sum(),
        _ => 8,
    }
}

impl Scanner {
    /// A scanner for `targets` within `budget`.
    #[must_use]
    pub fn new(targets: Targets, budget: Budget) -> Self {
        let now = Instant::now();
        Scanner {
            targets,
            budget,
            bucket: TokenBucket::new(budget.commands_per_sec, now),
            entries: BTreeMap::new(),
            phase: Phase::Idle,
            queue: VecDeque::new(),
            pass: 0,
            full: false,
            pass_started: now,
            pass_commands: 0,
            pass_rtt: None,
            stats: ScanStats::default(),
            tokens: Tokens::All,
        }
    }

    /// Read these locks' tokens from now on (the default is [`Tokens::All`]). Counters newly
    /// wanted and not known are read soon, as [`Scanner::read_soon`] does.
    pub fn set_tokens(&mut self, tokens: Tokens) {
        if tokens == self.tokens {
            return;
        }
        self.tokens = tokens;
        for (k, e) in &self.entries {
            if e.role == Role::Fence
                && e.value.is_none()
                && self.tokens.wants(&self.targets.leasehold, k)
            {
                self.queue.push_front((k.clone(), Op::Range));
            }
        }
        if matches!(self.phase, Phase::Idle) && !self.queue.is_empty() {
            self.full = false;
            self.phase = Phase::Read;
        }
    }

    /// Running totals.
    #[must_use]
    pub fn stats(&self) -> ScanStats {
        ScanStats {
            commands: self.bucket.spent(),
            ..self.stats
        }
    }

    /// The shared budget: other reads (server stats, events) spend from it too.
    pub fn bucket(&mut self) -> &mut TokenBucket {
        &mut self.bucket
    }

    /// Forget what was read (after a reconnect: the server may have restarted or been
    /// flushed). The budget carries on.
    pub fn forget(&mut self) {
        self.entries.clear();
        self.queue.clear();
        self.phase = Phase::Idle;
    }

    /// Whether a pass (or a targeted read) is under way.
    #[must_use]
    pub fn in_pass(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    /// Start a full pass: walk the keyspace, then read what changed.
    pub fn begin_pass(&mut self) {
        self.pass += 1;
        self.full = true;
        self.pass_started = Instant::now();
        self.pass_commands = self.bucket.spent();
        self.pass_rtt = None;
        self.queue.clear();
        self.phase = Phase::Walk {
            walks: walks(&self.targets),
            idx: 0,
            cursor: 0,
        };
    }

    /// Read these keys soon (client-tracking pushes name them). Outside a pass this starts a
    /// short read of just them; during a pass they join its reads.
    pub fn read_soon(&mut self, keys: &[String]) {
        for k in keys {
            if !self.entries.contains_key(k) {
                // a new key: assume a string lock key; a wrong guess is dropped on WRONGTYPE
                let Some(role) = role_of(&self.targets, k, "string") else {
                    continue;
                };
                self.entries
                    .insert(k.clone(), Entry::new(role, self.pass, k));
            }
            let Some(e) = self.entries.get(k) else {
                continue;
            };
            if e.role == Role::Fence && !self.tokens.wants(&self.targets.leasehold, k) {
                // not wanted now: forget the old count, read it when it is wanted
                if let Some(e) = self.entries.get_mut(k) {
                    e.value = None;
                }
            } else if e.is_string() {
                if e.role != Role::Fence {
                    self.queue.push_front((k.clone(), Op::Pttl));
                }
                self.queue.push_front((k.clone(), Op::Range));
            } else {
                self.queue.push_front((k.clone(), Op::HRand));
            }
        }
        if matches!(self.phase, Phase::Idle) && !self.queue.is_empty() {
            self.full = false;
            self.phase = Phase::Read;
        }
    }

    /// The keys as last read, with each TTL counted down to `now` (never healthier than read).
    #[must_use]
    pub fn raw_keys(&self, now: Instant) -> Vec<RawKey> {
        let mut out = Vec::with_capacity(self.entries.len());
        for (k, e) in &self.entries {
            let lockish = match e.role {
                Role::Fence => {
                    let lock = keys::lock_key_of_fence(k).unwrap_or(k);
                    if self.entries.get(lock).is_some_and(|l| l.pttl == UNREAD) {
                        continue; // its lock key is not read yet: do not show it free
                    }
                    false
                }
                Role::Hash => {
                    if e.redisson != Some(true) {
                        continue;
                    }
                    true
                }
                _ => true,
            };
            if lockish && (e.pttl == UNREAD || e.pttl == -2) {
                continue;
            }
            let pttl = match (lockish, e.read_at) {
                (false, _) => -1,
                (true, Some(at)) if e.pttl > 0 => {
                    let age = i64::try_from(now.saturating_duration_since(at).as_millis())
                        .unwrap_or(i64::MAX);
                    (e.pttl - age).max(1)
                }
                _ => e.pttl,
            };
            out.push(RawKey {
                key: k.clone(),
                kind: if e.is_string() { "string" } else { "hash" }.into(),
                pttl_ms: pttl,
                value: e.value.clone(),
                too_large: e.too_large,
                fields: e.fields.clone(),
            });
        }
        out
    }

    /// The lock rows as of `now`.
    #[must_use]
    pub fn rows(&self, now: Instant) -> Vec<LockRow> {
        classify(&self.targets, &self.raw_keys(now))
    }

    /// Send the next `SCAN` page or pipeline of reads (waiting for the budget first). Does
    /// nothing when idle. Errors are Redis's (connection lost, timeouts); the caller reconnects.
    ///
    /// # Errors
    /// The connection's error.
    pub async fn step(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        match &mut self.phase {
            Phase::Idle => Ok(()),
            Phase::Walk { walks, idx, cursor } => {
                let Some((kind, pattern)) = walks.get(*idx).cloned() else {
                    self.end_walk();
                    return Ok(());
                };
                let mut c = redis::cmd("SCAN");
                c.arg(*cursor);
                if let Some(p) = &pattern {
                    c.arg("MATCH").arg(p);
                }
                c.arg("COUNT")
                    .arg(self.budget.scan_count)
                    .arg("TYPE")
                    .arg(kind);
                self.bucket.spend(1).await;
                let t = Instant::now();
                let reply: Value = c.query_async(conn).await?;
                self.note_rtt(t.elapsed());
                self.stats.largest_reply = self.stats.largest_reply.max(reply_size(&reply));
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply)?;
                for k in keys {
                    let k = String::from_utf8_lossy(&k).into_owned();
                    let Some(role) = role_of(&self.targets, &k, kind) else {
                        continue;
                    };
                    let pass = self.pass;
                    let e = self
                        .entries
                        .entry(k.clone())
                        .or_insert_with(|| Entry::new(role.clone(), pass, &k));
                    if e.role != role {
                        *e = Entry::new(role, pass, &k); // the key changed type
                    }
                    e.seen_pass = pass;
                }
                if let Phase::Walk { idx, cursor, .. } = &mut self.phase {
                    *cursor = next;
                    if next == 0 {
                        *idx += 1;
                    }
                }
                Ok(())
            }
            Phase::Read => {
                if self.queue.is_empty() {
                    self.end_pass();
                    return Ok(());
                }
                self.read_batch(conn).await
            }
        }
    }

    fn note_rtt(&mut self, d: Duration) {
        self.pass_rtt = Some(self.pass_rtt.map_or(d, |r| r.min(d)));
    }

    /// The walk is complete: forget keys it did not see, then queue this pass's reads.
    fn end_walk(&mut self) {
        let pass = self.pass;
        self.entries.retain(|_, e| e.seen_pass == pass);
        let mut hashes = Vec::new();
        let revalidate = |e: &Entry| pass.wrapping_add(e.spread).is_multiple_of(REVALIDATE_EVERY);
        for (k, e) in &self.entries {
            let fresh = e.pttl == UNREAD;
            match e.role {
                Role::Fence => {
                    if (e.value.is_none() || revalidate(e))
                        && self.tokens.wants(&self.targets.leasehold, k)
                    {
                        self.queue.push_back((k.clone(), Op::Range));
                    }
                }
                Role::Hash => match e.redisson {
                    Some(true) => hashes.push((k.clone(), Op::Pttl)),
                    Some(false) if !revalidate(e) => {}
                    _ => hashes.push((k.clone(), Op::HRand)),
                },
                _ => {
                    self.queue.push_back((k.clone(), Op::Pttl));
                    if fresh || (e.pttl == -1 && revalidate(e)) {
                        self.queue.push_back((k.clone(), Op::Range));
                    }
                }
            }
        }
        self.queue.extend(hashes); // lock strings first: they are what most users watch
        self.phase = Phase::Read;
    }

    fn end_pass(&mut self) {
        self.phase = Phase::Idle;
        if self.full {
            self.stats.passes += 1;
            self.stats.last_pass = Some(Cost {
                commands: self.bucket.spent() - self.pass_commands,
                keys: self.entries.len(),
                elapsed: self.pass_started.elapsed(),
                rtt: self.pass_rtt.unwrap_or_default(),
            });
        }
    }

    async fn read_batch(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let cap = self.bucket.capacity().min(self.budget.batch.max(1));
        let mut ops: Vec<(String, Op)> = Vec::new();
        let mut n = 0;
        while let Some((_, op)) = self.queue.front() {
            let c = op.commands();
            if n > 0 && n + c > cap {
                break;
            }
            n += c;
            if let Some(x) = self.queue.pop_front() {
                ops.push(x);
            }
        }
        let mut p = redis::pipe();
        p.ignore_errors();
        for (k, op) in &ops {
            op.push(k, &mut p);
        }
        self.bucket.spend(n).await;
        let sent = Instant::now();
        let replies: Vec<Value> = p.query_async(conn).await?;
        self.note_rtt(sent.elapsed());
        let tolerance = Duration::from_millis(100) + sent.elapsed() * 2;
        let mut replies = replies.into_iter();
        for (k, op) in ops {
            let got: Vec<Value> = replies.by_ref().take(op.commands()).collect();
            for v in &got {
                self.stats.largest_reply = self.stats.largest_reply.max(reply_size(v));
            }
            self.apply(&k, op, got, sent, tolerance);
        }
        Ok(())
    }

    /// Take one op's replies into the entry for `key`, queueing follow-up reads.
    fn apply(&mut self, key: &str, op: Op, got: Vec<Value>, sent: Instant, tolerance: Duration) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        if got.iter().any(|v| matches!(v, Value::ServerError(_))) {
            // WRONGTYPE: the key is no longer what its name and type said; forget it
            self.entries.remove(key);
            return;
        }
        let first = got.first();
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        };
        let mut follow: Vec<Op> = Vec::new();
        let mut fence_dirty = false;
        match op {
            Op::Pttl => {
                let new = int(first).unwrap_or(-2);
                let changed = match e.read_at {
                    // the first read: its value read is queued already
                    _ if e.pttl == UNREAD => false,
                    None => false,
                    Some(_) if (e.pttl == -1) != (new == -1) => true,
                    Some(_) if new == -1 => false,
                    Some(at) => {
                        // an untouched key counts down in step with our clock
                        let elapsed = i64::try_from(sent.saturating_duration_since(at).as_millis())
                            .unwrap_or(i64::MAX);
                        let tol = i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX);
                        (new - (e.pttl - elapsed)).abs() > tol
                    }
                };
                e.pttl = new;
                e.read_at = Some(sent);
                if new == -2 {
                    fence_dirty = e.role == Role::LeaseholdLock;
                    self.entries.remove(key);
                } else if changed {
                    follow.push(if e.is_string() { Op::Range } else { Op::HRand });
                }
            }
            Op::Range => {
                let v = match first {
                    Some(Value::BulkString(b)) => b.clone(),
                    _ => Vec::new(),
                };
                if v.len() >= MAX_VALUE {
                    follow.push(Op::Strlen);
                } else {
                    e.too_large = None;
                }
                // a new value under a lock key: a new holder, so a new token
                fence_dirty = e.role == Role::LeaseholdLock && e.value.as_ref() != Some(&v);
                e.value = Some(v);
            }
            Op::Strlen => {
                e.too_large = int(first).and_then(|n| u64::try_from(n).ok());
            }
            Op::HRand => {
                let names: Vec<String> = match first {
                    Some(Value::Array(items)) => items.iter().filter_map(text).collect(),
                    _ => Vec::new(),
                };
                if names.is_empty() {
                    self.entries.remove(key); // gone
                    return;
                }
                let few = i64::try_from(names.len()).is_ok_and(|n| n <= MAX_LOCK_FIELDS);
                if few && names.iter().all(|f| redisson_field(f)) {
                    follow.push(Op::HStrlen(names));
                } else {
                    e.redisson = Some(false);
                    e.fields.clear();
                }
            }
            Op::HStrlen(names) => {
                let short = got.len() == names.len()
                    && got
                        .iter()
                        .all(|v| int(Some(v)).is_some_and(|n| (1..=MAX_FIELD_VALUE).contains(&n)));
                if short {
                    follow.push(Op::HMget(names));
                } else {
                    e.redisson = Some(false);
                    e.fields.clear();
                }
            }
            Op::HMget(names) => {
                let values: Vec<Option<String>> = match first {
                    Some(Value::Array(items)) => items.iter().map(text).collect(),
                    _ => Vec::new(),
                };
                e.fields = names
                    .into_iter()
                    .zip(values)
                    .filter_map(|(f, v)| Some((f, v?)))
                    .collect();
                let lock =
                    !e.fields.is_empty() && e.fields.iter().all(|(_, v)| v.parse::<i64>().is_ok());
                e.redisson = Some(lock);
                if lock {
                    follow.push(Op::Pttl);
                }
            }
        }
        for op in follow.into_iter().rev() {
            self.queue.push_front((key.to_owned(), op));
        }
        if fence_dirty {
            let fence = keys::fence_key_of(key);
            let wanted = self.tokens.wants(&self.targets.leasehold, &fence);
            if let Some(f) = self.entries.get_mut(&fence) {
                if !wanted {
                    f.value = None; // stale: read again when wanted
                } else if f.value.is_some() {
                    // (a fence not read yet is queued already)
                    self.queue.push_front((fence, Op::Range));
                }
            }
        }
    }
}

/// Redisson's holder field: `<connection manager id>:<thread id>`.
fn redisson_field(f: &str) -> bool {
    f.rsplit_once(':')
        .is_some_and(|(id, t)| !id.is_empty() && t.parse::<u64>().is_ok())
}

/// One full pass over every target with a fresh scanner (for `inspect` and tests).
///
/// # Errors
/// Redis's error, for the caller to show.
pub async fn scan(
    conn: &mut MultiplexedConnection,
    targets: &Targets,
    budget: Budget,
) -> redis::RedisResult<(Vec<RawKey>, Cost)> {
    let mut s = Scanner::new(targets.clone(), budget);
    s.begin_pass();
    while s.in_pass() {
        s.step(conn).await?;
    }
    let cost = s.stats().last_pass.unwrap_or_default();
    Ok((s.raw_keys(Instant::now()), cost))
}
