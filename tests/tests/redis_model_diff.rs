//! Differential test of the reference model against real Redis: random operation sequences run
//! as the wire's Lua scripts on a real redis-server (via `redis::Script`) and as `Op`s on
//! `ModelServer` (which the proptest suite, the fuzz target, the model checker and the simulator
//! all trust), comparing every reply — including expiry (small ttls and fence retentions, real
//! sleeps), data loss (`FLUSHALL`, and restarts without persistence) and the fence-token rule's
//! `TIME` floor; and the rueidislock dialect's scripts (absolute `PXAT`/`PEXPIREAT` expiry),
//! on the same keys; and `ACQUIRE_BATCH` and `RELEASE_BATCH` over both locks' keys at once,
//! against the model run slot by slot (with the batch's token floor, `ModelServer::batch_floor`).
//!
//! Time: before each operation the model is given the server's own `TIME`; a reply that depends
//! on the instant the script ran (a `TIME`-derived token, a `PTTL`) is accepted within the
//! window between the `TIME` read before and after the operation, and the model is resynced to
//! the token Redis chose. No operation is judged within a few ms of an expiry the model knows of.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use leasehold_core::testkit::ModelServer;
use leasehold_core::wire::{self, Op, ParsedValue, Script, keys};
use leasehold_core::{ForceOutcome, HolderId, Instant, LeaseValue, Reply};
use leasehold_tests::RedisServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::Value;
use redis::aio::MultiplexedConnection;

const PREFIX: &str = "lhdiff";
const LOCKS: usize = 2;
const CLIENTS: usize = 3;
/// No judging within this much of an expiry (before, after), ns.
const GUARD_BEFORE: u64 = 4_000_000;
const GUARD_AFTER: u64 = 15_000_000;

/// One operation of a sequence.
#[derive(Debug, Clone)]
enum Step {
    /// A wire operation by `client` (with one of its two values) on lock `lock`.
    Run {
        client: usize,
        nonce: u64,
        lock: usize,
        op: OpKind,
    },
    /// Real time passes.
    Sleep { ms: u64 },
    /// Every key is lost (`FLUSHALL`): the data-loss equivalent of a restart.
    Flush,
    /// kill -9 and start again without persistence.
    Restart,
    /// `RELEASE_BATCH` of every lock's key at once by `client` with one of its values.
    ReleaseBatch { client: usize, nonce: u64 },
    /// `ACQUIRE_BATCH` of every lock's key at once by `client` (one round's value).
    Batch {
        client: usize,
        nonce: u64,
        ttl_ms: u64,
        force: bool,
        keep_ms: u64,
    },
}

#[derive(Debug, Clone, Copy)]
enum OpKind {
    Acquire {
        ttl_ms: u64,
        force: bool,
        keep_ms: u64,
    },
    Extend {
        ttl_ms: u64,
        keep_ms: u64,
    },
    Check,
    Release,
    /// Raise the fence: `Behind` below the counter, `Next` one above it, `Ahead` ten seconds of
    /// µs past the server's clock (so later tokens come from the counter, not from `TIME`).
    Raise {
        to: Raise,
        keep_ms: u64,
    },
    ForceRelease {
        keep_ms: u64,
    },
    /// The rueidislock dialect's operations, with the absolute expiry `TIME + ttl_ms`.
    CompatAcquire {
        ttl_ms: u64,
        force: bool,
    },
    CompatExtend {
        ttl_ms: u64,
    },
    CompatCheck,
}

#[derive(Debug, Clone, Copy)]
enum Raise {
    Behind,
    Next,
    Ahead,
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![Just(30u64), Just(60), Just(120), Just(1_000)]
}

fn keep() -> impl Strategy<Value = u64> {
    prop_oneof![Just(20u64), Just(80), Just(2_000)]
}

fn op_kind() -> impl Strategy<Value = OpKind> {
    prop_oneof![
        4 => (ttl(), any::<bool>(), keep()).prop_map(|(ttl_ms, f, keep_ms)| OpKind::Acquire {
            ttl_ms,
            force: f,
            keep_ms,
        }),
        2 => (ttl(), keep()).prop_map(|(ttl_ms, keep_ms)| OpKind::Extend { ttl_ms, keep_ms }),
        1 => Just(OpKind::Check),
        2 => Just(OpKind::Release),
        1 => (
            prop_oneof![Just(Raise::Behind), Just(Raise::Next), Just(Raise::Ahead)],
            keep()
        )
            .prop_map(|(to, keep_ms)| OpKind::Raise { to, keep_ms }),
        1 => keep().prop_map(|keep_ms| OpKind::ForceRelease { keep_ms }),
        2 => (ttl(), any::<bool>())
            .prop_map(|(ttl_ms, force)| OpKind::CompatAcquire { ttl_ms, force }),
        1 => ttl().prop_map(|ttl_ms| OpKind::CompatExtend { ttl_ms }),
        1 => Just(OpKind::CompatCheck),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0..CLIENTS, 1..3u64, 0..LOCKS, op_kind())
            .prop_map(|(client, nonce, lock, op)| Step::Run { client, nonce, lock, op }),
        3 => prop_oneof![Just(5u64), Just(25), Just(70)].prop_map(|ms| Step::Sleep { ms }),
        1 => Just(Step::Flush),
        1 => (0..CLIENTS, 1..3u64)
            .prop_map(|(client, nonce)| Step::ReleaseBatch { client, nonce }),
        3 => (0..CLIENTS, 1..3u64, ttl(), any::<bool>(), keep()).prop_map(
            |(client, nonce, ttl_ms, force, keep_ms)| Step::Batch {
                client,
                nonce,
                ttl_ms,
                force,
                keep_ms,
            }
        ),
    ]
}

fn lock_key(lock: usize) -> String {
    keys::lock_key(PREFIX, &format!("l{lock}"), None)
}

fn value_of(client: usize, nonce: u64) -> String {
    let holder = HolderId::new(format!("c{client}")).unwrap();
    wire::render_value(LeaseValue { nonce }, &holder)
}

/// The server's clock (`TIME`) as an instant.
async fn server_time(c: &mut MultiplexedConnection) -> Result<Instant, String> {
    let (s, us): (u64, u64) = redis::cmd("TIME")
        .query_async(c)
        .await
        .map_err(|e| format!("TIME: {e}"))?;
    Ok(Instant::from_nanos((s * 1_000_000 + us) * 1_000))
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn holder(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => match wire::parse_value(b) {
            ParsedValue::Leasehold { holder, .. } => Some(holder),
            ParsedValue::Foreign(text) => Some(format!("foreign {text}")),
        },
        _ => None,
    }
}

/// The script's raw reply as the core's `Reply` (a test-local decoder: anything unexpected is a
/// test failure, never a silent pass).
fn decode(op: &Op, v: &Value) -> Result<Reply, String> {
    let items: &[Value] = match v {
        Value::Array(items) => items,
        _ => &[],
    };
    let first = items.first().and_then(int);
    let bad = || format!("{} returned {v:?}", op.name());
    let token = |t: Option<&Value>| {
        t.and_then(int)
            .and_then(|t| u64::try_from(t).ok())
            .ok_or_else(bad)
    };
    Ok(match op {
        Op::Acquire { .. } => match first {
            Some(1) => Reply::Granted {
                token: token(items.get(1))?,
            },
            Some(0) => Reply::Held {
                holder: items.get(1).and_then(holder),
                remaining: items
                    .get(2)
                    .and_then(int)
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map(Duration::from_millis),
            },
            _ => return Err(bad()),
        },
        Op::Extend { .. } | Op::Check { .. } => match first {
            Some(1) if matches!(op, Op::Check { .. }) => Reply::StillHeld,
            Some(1) => Reply::Extended,
            Some(0) => Reply::NotOwner {
                holder: items.get(1).and_then(holder),
            },
            Some(-1) => Reply::Missing {
                fence_present: items.get(1).and_then(int) == Some(1),
            },
            _ => return Err(bad()),
        },
        Op::Release { .. } => Reply::Released {
            deleted: int(v).ok_or_else(bad)? == 1,
        },
        Op::RaiseFence { .. } => match int(v) {
            Some(1) => Reply::FenceRaised,
            _ => return Err(bad()),
        },
        Op::CompatAcquire { .. } => match v {
            Value::Okay => Reply::GrantedUnfenced,
            Value::SimpleString(s) if s == "OK" => Reply::GrantedUnfenced,
            Value::Nil => Reply::Held {
                holder: None,
                remaining: None,
            },
            _ => return Err(bad()),
        },
        Op::CompatExtend { .. } => match int(v) {
            Some(1) => Reply::Extended,
            Some(0) => Reply::Missing {
                fence_present: true,
            },
            _ => return Err(bad()),
        },
        Op::CompatCheck { .. } => match first {
            Some(1) => Reply::StillHeld,
            Some(0) => Reply::NotOwner {
                holder: items.get(1).and_then(holder),
            },
            Some(-1) => Reply::Missing {
                fence_present: true,
            },
            _ => return Err(bad()),
        },
        Op::ForceRelease { .. } => match first {
            Some(1) => Reply::ForceReleased(ForceOutcome::Deleted {
                token: token(items.get(1))?,
            }),
            Some(0) => Reply::ForceReleased(ForceOutcome::Changed {
                holder: items.get(1).and_then(holder),
            }),
            Some(-1) => Reply::ForceReleased(ForceOutcome::Gone),
            _ => return Err(bad()),
        },
        Op::Wait { .. } => {
            Reply::Acked(int(v).and_then(|n| u32::try_from(n).ok()).ok_or_else(bad)?)
        }
    })
}

/// Run `op` as its Lua script on lock `lock` with the lock value `value`.
async fn run_script(
    c: &mut MultiplexedConnection,
    lock: usize,
    value: &str,
    op: &Op,
) -> Result<Value, String> {
    let key = lock_key(lock);
    let fence = keys::fence_key_of(&key);
    if let Op::Wait {
        replicas,
        timeout_ms,
    } = *op
    {
        // not a script: the plain command (a server without replicas answers 0)
        return redis::cmd("WAIT")
            .arg(replicas)
            .arg(timeout_ms)
            .query_async(c)
            .await
            .map_err(|e| format!("wait: {e}"));
    }
    let (script, keys, args): (Script, Vec<&str>, Vec<String>) = match *op {
        Op::Acquire {
            ttl_ms,
            force,
            keep_ms,
            ..
        } => (
            wire::ACQUIRE,
            vec![&key, &fence],
            vec![
                value.to_owned(),
                ttl_ms.to_string(),
                if force { "1" } else { "0" }.to_owned(),
                keep_ms.to_string(),
            ],
        ),
        Op::Extend {
            ttl_ms, keep_ms, ..
        } => (
            wire::EXTEND,
            vec![&key, &fence],
            vec![value.to_owned(), ttl_ms.to_string(), keep_ms.to_string()],
        ),
        Op::Check { .. } => (wire::CHECK, vec![&key, &fence], vec![value.to_owned()]),
        Op::Release { .. } => (wire::RELEASE, vec![&key], vec![value.to_owned()]),
        Op::RaiseFence { token, keep_ms } => (
            wire::RAISE_FENCE,
            vec![&fence],
            vec![token.to_string(), keep_ms.to_string()],
        ),
        Op::ForceRelease { keep_ms, .. } => (
            wire::FORCE_RELEASE,
            vec![&key, &fence],
            vec![value.to_owned(), keep_ms.to_string()],
        ),
        Op::CompatAcquire {
            expire_at_ms,
            force,
            ..
        } => (
            if force {
                wire::compat::FORCE
            } else {
                wire::compat::ACQUIRE
            },
            vec![&key],
            vec![value.to_owned(), expire_at_ms.to_string()],
        ),
        Op::CompatExtend { expire_at_ms, .. } => (
            wire::compat::EXTEND,
            vec![&key],
            vec![value.to_owned(), expire_at_ms.to_string()],
        ),
        Op::CompatCheck { .. } => (wire::compat::CHECK, vec![&key], vec![value.to_owned()]),
        Op::Wait { .. } => return Err("WAIT is not a script".into()),
    };
    let script = redis::Script::new(script.source);
    let mut inv = script.prepare_invoke();
    for k in keys {
        inv.key(k);
    }
    for a in args {
        inv.arg(a);
    }
    inv.invoke_async(c)
        .await
        .map_err(|e| format!("{}: {e}", op.name()))
}

/// The live differential run.
struct Diff {
    server: RedisServer,
    conn: MultiplexedConnection,
    models: Vec<ModelServer>,
    /// Operations compared, and how many of them returned a `TIME`-derived token.
    compared: usize,
    time_tokens: usize,
    /// Batches that granted every lock's key with one fresh token.
    shared_tokens: usize,
    /// The longest `TIME` window around one operation so far, ns: an expiry the model set from
    /// the `TIME` before an operation may be this much earlier than the one Redis set.
    window: u64,
}

async fn connect(server: &RedisServer) -> Result<MultiplexedConnection, String> {
    redis::Client::open(server.url())
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())
}

impl Diff {
    fn reset_models(&mut self) {
        self.models = vec![ModelServer::default(); LOCKS];
    }

    async fn flush(&mut self) -> Result<(), String> {
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut self.conn)
            .await
            .map_err(|e| format!("FLUSHALL: {e}"))?;
        self.reset_models();
        Ok(())
    }

    /// The server's `TIME`, at least [`GUARD_AFTER`] away from every expiry the model knows
    /// of (sleeping past one that is close).
    async fn clear_time(&mut self) -> Result<Instant, String> {
        for _ in 0..8 {
            let now = server_time(&mut self.conn).await?;
            let t = now.as_nanos();
            let close = self
                .models
                .iter()
                .flat_map(|m| [m.stored().map(|(_, e)| e), m.stored_fence().map(|(_, e)| e)])
                .flatten()
                .map(Instant::as_nanos)
                .filter(|e| *e + GUARD_BEFORE + self.window > t && *e < t + GUARD_AFTER)
                .max();
            match close {
                None => return Ok(now),
                Some(e) => {
                    let wait = e + GUARD_BEFORE + self.window - t;
                    tokio::time::sleep(Duration::from_nanos(wait)).await;
                }
            }
        }
        Err("could not find a time clear of expiries".into())
    }

    async fn step(&mut self, step: &Step) -> Result<(), String> {
        let (client, nonce, lock, kind) = match step {
            Step::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                return Ok(());
            }
            Step::Flush => return self.flush().await,
            Step::Restart => {
                self.server.restart();
                self.conn = connect(&self.server).await?;
                self.reset_models();
                return Ok(());
            }
            Step::Batch {
                client,
                nonce,
                ttl_ms,
                force,
                keep_ms,
            } => {
                let op = Op::Acquire {
                    value: LeaseValue { nonce: *nonce },
                    ttl_ms: *ttl_ms,
                    force: *force,
                    keep_ms: *keep_ms,
                };
                return self.batch(*client, *nonce, op).await;
            }
            Step::ReleaseBatch { client, nonce } => {
                let op = Op::Release {
                    value: LeaseValue { nonce: *nonce },
                };
                return self.batch(*client, *nonce, op).await;
            }
            Step::Run {
                client,
                nonce,
                lock,
                op,
            } => (*client, *nonce, *lock, *op),
        };
        let before = self.clear_time().await?;
        let value = LeaseValue { nonce };
        let cur_fence = self.models[lock]
            .stored_fence()
            .filter(|(_, e)| *e > before)
            .map(|(f, _)| f);
        let op = match kind {
            OpKind::Acquire {
                ttl_ms,
                force,
                keep_ms,
            } => Op::Acquire {
                value,
                ttl_ms,
                force,
                keep_ms,
            },
            OpKind::Extend { ttl_ms, keep_ms } => Op::Extend {
                value,
                ttl_ms,
                keep_ms,
            },
            OpKind::Check => Op::Check { value },
            OpKind::Release => Op::Release { value },
            OpKind::Raise { to, keep_ms } => Op::RaiseFence {
                token: match to {
                    Raise::Behind => cur_fence.unwrap_or(1).saturating_sub(1),
                    Raise::Next => cur_fence.unwrap_or(0) + 1,
                    Raise::Ahead => before.as_nanos() / 1_000 + 10_000_000,
                },
                keep_ms,
            },
            OpKind::ForceRelease { keep_ms } => Op::ForceRelease { value, keep_ms },
            // PXAT from the model's clock, which is the server's TIME here: the absolute
            // expiry is then exactly the one the model sets
            OpKind::CompatAcquire { ttl_ms, force } => Op::CompatAcquire {
                value,
                expire_at_ms: wire::compat::expire_at(before.as_nanos() / 1_000_000, ttl_ms),
                force,
            },
            OpKind::CompatExtend { ttl_ms } => Op::CompatExtend {
                value,
                expire_at_ms: wire::compat::expire_at(before.as_nanos() / 1_000_000, ttl_ms),
            },
            OpKind::CompatCheck => Op::CompatCheck { value },
        };
        let raw = run_script(&mut self.conn, lock, &value_of(client, nonce), &op).await?;
        let after = server_time(&mut self.conn).await?;
        self.window = self
            .window
            .max(after.as_nanos().saturating_sub(before.as_nanos()));
        let real = decode(&op, &raw)?;
        let model = self.models[lock].exec(before, client, op);
        let floor = cur_fence.map_or(0, |f| f + 1);
        if self.judge(
            lock,
            op,
            (&model, &real),
            (cur_fence, floor),
            (before, after),
        ) {
            Ok(())
        } else {
            Err(format!(
                "{} by c{client} (nonce {nonce}) on l{lock}: model {model:?}, redis {real:?} (raw {raw:?}; counter before {cur_fence:?}, TIME {}..{} µs)",
                op.name(),
                before.as_nanos() / 1_000,
                after.as_nanos() / 1_000
            ))
        }
    }

    /// `ACQUIRE_BATCH` of every lock's key by `client`, against the model run key by key with
    /// the batch's floor; every key granted a fresh token must share one.
    async fn batch(&mut self, client: usize, nonce: u64, op: Op) -> Result<(), String> {
        let before = self.clear_time().await?;
        let lock_keys: Vec<String> = (0..LOCKS).map(lock_key).collect();
        let which = wire::batch::script_of(&op).ok_or("a batch is of acquires or releases")?;
        let script = redis::Script::new(which.source);
        let mut inv = script.prepare_invoke();
        let acquire = matches!(op, Op::Acquire { .. });
        for k in &lock_keys {
            inv.key(k);
            if acquire {
                inv.key(keys::fence_key_of(k));
            }
        }
        inv.arg(value_of(client, nonce));
        if let Op::Acquire {
            ttl_ms,
            force,
            keep_ms,
            ..
        } = op
        {
            inv.arg(ttl_ms)
                .arg(if force { "1" } else { "0" })
                .arg(keep_ms);
        }
        let raw: Value = inv
            .invoke_async(&mut self.conn)
            .await
            .map_err(|e| format!("{}: {e}", which.name))?;
        let after = server_time(&mut self.conn).await?;
        self.window = self
            .window
            .max(after.as_nanos().saturating_sub(before.as_nanos()));
        let entries = match &raw {
            Value::Array(items) if items.len() == LOCKS => items.clone(),
            _ => return Err(format!("acquire_batch returned {raw:?}")),
        };
        let floor = self
            .models
            .iter()
            .filter_map(|m| m.clone().batch_floor(before, client, op))
            .max()
            .unwrap_or(0);
        let mut fresh = Vec::new();
        for (lock, entry) in entries.iter().enumerate() {
            let cur_fence = self.models[lock]
                .stored_fence()
                .filter(|(_, e)| *e > before)
                .map(|(f, _)| f);
            let adds = self.models[lock].clone().batch_floor(before, client, op);
            let real = decode(&op, entry)?;
            let model = self.models[lock].exec_in_batch(before, client, op, floor);
            if !self.judge(
                lock,
                op,
                (&model, &real),
                (cur_fence, floor),
                (before, after),
            ) {
                return Err(format!(
                    "{} by c{client} (nonce {nonce}), l{lock}: model {model:?}, redis {real:?} (raw {raw:?}; counter before {cur_fence:?}, batch floor {floor}, TIME {}..{} µs)",
                    which.name,
                    before.as_nanos() / 1_000,
                    after.as_nanos() / 1_000
                ));
            }
            if let (Some(_), Reply::Granted { token }) = (adds, &real) {
                fresh.push(*token);
            }
        }
        if fresh.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!(
                "acquire_batch by c{client}: fresh grants with different tokens {fresh:?} (raw {raw:?})"
            ));
        }
        if fresh.len() == LOCKS {
            self.shared_tokens += 1;
        }
        Ok(())
    }

    /// Whether Redis's `real` reply to `op` on `lock` is the model's `model`: equal, or a fresh
    /// token `max(floor, TIME)` for a `TIME` in the operation's window (the model is then
    /// resynced to it), or a `PTTL` within the window's slack. `cur_fence`: the counter before
    /// the operation (a repeated grant returns it).
    fn judge(
        &mut self,
        lock: usize,
        op: Op,
        (model, real): (&Reply, &Reply),
        (cur_fence, floor): (Option<u64>, u64),
        (before, after): (Instant, Instant),
    ) -> bool {
        self.compared += 1;
        let window = |token: u64| {
            // max(floor, TIME) for some TIME in [before, after]
            let lo = floor.max(before.as_nanos() / 1_000);
            let hi = floor.max(after.as_nanos() / 1_000);
            (lo..=hi).contains(&token)
        };
        match (model, real) {
            (Reply::Granted { token: m }, Reply::Granted { token: r })
            | (
                Reply::ForceReleased(ForceOutcome::Deleted { token: m }),
                Reply::ForceReleased(ForceOutcome::Deleted { token: r }),
            ) if m != r => {
                // a new token from the rule (not a repeated grant, which returns the counter)
                let fresh = matches!(op, Op::ForceRelease { .. }) || Some(*m) != cur_fence;
                if fresh && window(*r) {
                    self.models[lock].resync_fence(*r);
                    self.time_tokens += 1;
                    true
                } else {
                    false
                }
            }
            (
                Reply::Held {
                    holder: mh,
                    remaining: Some(m),
                },
                Reply::Held {
                    holder: rh,
                    remaining: Some(r),
                },
            ) => {
                // PTTL in whole ms of Redis's cached command clock (set at the event loop's
                // turn, a few ms coarser than TIME), and an expiry the server set somewhere in
                // the window of the operation that wrote it (the model uses its start): within
                // this window, the widest window seen (which covers the writing operation's) and
                // that coarseness. On a loaded machine a window can reach several ms.
                let slack = after.saturating_since(before)
                    + Duration::from_nanos(self.window)
                    + Duration::from_millis(8);
                mh == rh && *r <= *m + slack && *r + slack >= *m
            }
            (m, r) => m == r,
        }
    }
}

#[test]
fn random_sequences_get_the_same_replies_from_the_model_and_redis() {
    let Some(server) = RedisServer::start("random_sequences_get_the_same_replies") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt.block_on(connect(&server)).unwrap();
    let diff = std::cell::RefCell::new(Diff {
        server,
        conn,
        models: Vec::new(),
        compared: 0,
        time_tokens: 0,
        shared_tokens: 0,
        window: 0,
    });
    let mut runner = TestRunner::new(Config {
        cases: 100,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(step(), 1..40), |steps| {
        let mut diff = diff.borrow_mut();
        rt.block_on(async {
            diff.flush().await.map_err(TestCaseError::fail)?;
            for (i, s) in steps.iter().enumerate() {
                diff.step(s)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("step {i} {s:?}: {e}")))?;
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // the run compared enough, and the TIME floor was really exercised
    let diff = diff.into_inner();
    assert!(diff.compared > 300, "{} operations compared", diff.compared);
    assert!(
        diff.time_tokens > 10,
        "{} TIME-derived tokens",
        diff.time_tokens
    );
    assert!(
        diff.shared_tokens > 5,
        "{} batches granted every key one token",
        diff.shared_tokens
    );
}

/// A restart without persistence loses keys and counters alike, on both sides; the next token
/// still comes from the rule (the `TIME` floor keeps it above the lost ones).
#[test]
fn a_restart_without_persistence_is_data_loss_on_both_sides() {
    let Some(server) = RedisServer::start("a_restart_without_persistence") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt.block_on(connect(&server)).unwrap();
    let mut diff = Diff {
        server,
        conn,
        models: vec![ModelServer::default(); LOCKS],
        compared: 0,
        time_tokens: 0,
        shared_tokens: 0,
        window: 0,
    };
    let acquire = |client, ttl_ms| Step::Run {
        client,
        nonce: 1,
        lock: 0,
        op: OpKind::Acquire {
            ttl_ms,
            force: false,
            keep_ms: 2_000,
        },
    };
    let extend = Step::Run {
        client: 0,
        nonce: 1,
        lock: 0,
        op: OpKind::Extend {
            ttl_ms: 1_000,
            keep_ms: 2_000,
        },
    };
    let ahead = Step::Run {
        client: 0,
        nonce: 1,
        lock: 0,
        op: OpKind::Raise {
            to: Raise::Ahead,
            keep_ms: 5_000,
        },
    };
    let steps = [
        acquire(0, 1_000),
        ahead,
        acquire(1, 1_000), // Held
        Step::Restart,
        extend.clone(),    // Missing, fence gone: the server lost its data
        acquire(1, 1_000), // granted from TIME again
        acquire(0, 1_000), // Held by c1
    ];
    rt.block_on(async {
        for (i, s) in steps.iter().enumerate() {
            diff.step(s)
                .await
                .unwrap_or_else(|e| panic!("step {i}: {e}"));
        }
    });
    assert_eq!(diff.compared, 6);
    assert!(diff.time_tokens >= 2, "{}", diff.time_tokens);
}
