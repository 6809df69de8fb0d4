//! Turning one machine [`Command`] into a Redis call: the script and its keys and arguments
//! (`EVALSHA`, with the `redis` crate's `NOSCRIPT` fallback), sent on the instance's multiplexed
//! connection, and the decoded [`Reply`]. A request is a future; whoever drives the machine at
//! that moment (an acquiring caller, a releasing caller, the keeper) awaits it and feeds the reply
//! back under the same lock.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use futures_util::stream::{FuturesUnordered, StreamExt as _};

use leasehold_core::wire::batch;
use leasehold_core::{Command, Lock, Op, Reply, SlotError, SlotErrorKind};

use crate::decode::{decode, error_reply};
use crate::locker::{Scripts, Shared};

/// What one command came back with: the command, the reply, the instance it went to, and how
/// long it took.
pub(crate) type Answer = (Command, Reply, usize, Duration);

/// What a request resolves to: the answer to its one command, or one per command of a batch
/// ([`crate::batch`]), in the order they were sent.
pub(crate) enum Answers {
    One(Answer),
    Batch(Vec<Answer>),
}

impl IntoIterator for Answers {
    type Item = Answer;
    type IntoIter = AnswersIter;

    fn into_iter(self) -> AnswersIter {
        match self {
            Answers::One(a) => AnswersIter::One(Some(a)),
            Answers::Batch(v) => AnswersIter::Batch(v.into_iter()),
        }
    }
}

/// The answers of one request, one by one.
pub(crate) enum AnswersIter {
    One(Option<Answer>),
    Batch(std::vec::IntoIter<Answer>),
}

impl Iterator for AnswersIter {
    type Item = Answer;

    fn next(&mut self) -> Option<Answer> {
        match self {
            AnswersIter::One(a) => a.take(),
            AnswersIter::Batch(v) => v.next(),
        }
    }
}

/// A request in flight.
pub(crate) type Request = Pin<Box<dyn Future<Output = Answers> + Send>>;

/// The requests one caller awaits (an acquisition, a release), answered in any order. The usual
/// one at a time is polled as it is: a `FuturesUnordered` costs two allocations to create and one
/// per request, a good part of a short lease's client-side cost.
#[derive(Default)]
pub(crate) enum Inflight {
    #[default]
    Empty,
    One(Request),
    Many(FuturesUnordered<Request>),
}

impl Inflight {
    /// Await `r` too.
    pub fn push(&mut self, r: Request) {
        *self = match std::mem::take(self) {
            Inflight::Empty => Inflight::One(r),
            Inflight::One(first) => {
                let many = FuturesUnordered::new();
                many.push(first);
                many.push(r);
                Inflight::Many(many)
            }
            Inflight::Many(many) => {
                many.push(r);
                Inflight::Many(many)
            }
        };
    }

    /// Whether nothing is awaited.
    pub fn is_empty(&self) -> bool {
        match self {
            Inflight::Empty => true,
            Inflight::One(_) => false,
            Inflight::Many(many) => many.is_empty(),
        }
    }

    /// How many requests are awaited.
    pub fn len(&self) -> usize {
        match self {
            Inflight::Empty => 0,
            Inflight::One(_) => 1,
            Inflight::Many(many) => many.len(),
        }
    }

    /// The requests, for another driver to await.
    pub fn into_vec(self) -> Vec<Request> {
        match self {
            Inflight::Empty => Vec::new(),
            Inflight::One(r) => vec![r],
            Inflight::Many(many) => many.into_iter().collect(),
        }
    }
}

impl Stream for Inflight {
    type Item = Answers;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Answers>> {
        match &mut *self {
            Inflight::Empty => Poll::Ready(None),
            Inflight::One(r) => match r.as_mut().poll(cx) {
                Poll::Ready(a) => {
                    *self = Inflight::Empty;
                    Poll::Ready(Some(a))
                }
                Poll::Pending => Poll::Pending,
            },
            Inflight::Many(many) => many.poll_next_unpin(cx),
        }
    }
}

/// The request for `cmd` of `lock`: its `EVALSHA` rendered now, into one buffer (keys and value
/// straight from the machine), sent when first polled.
pub(crate) fn request(shared: &Arc<Shared>, lock: &Lock, cmd: Command) -> Request {
    let shared = shared.clone();
    let inst = shared.instance_of(cmd.slot);
    let mut value = String::new();
    if let Some(v) = cmd.op.value() {
        lock.write_value(v, &mut value);
    }
    let call = script_call(
        &shared.scripts,
        &cmd.op,
        lock.keys().lock_key(cmd.slot),
        lock.keys().fence_key(cmd.slot),
        &value,
    );
    Box::pin(async move {
        let sent = tokio::time::Instant::now();
        let reply = execute(&shared, inst, cmd, call).await;
        Answers::One((cmd, reply, inst, sent.elapsed()))
    })
}

/// Drain `lock`'s commands into requests, calling `each` with every request and its (first)
/// command. A write the machine wants confirmed is followed by its `WAIT` on the same slot; the
/// two become one pipeline on one connection ([`crate::confirm`]), so the `WAIT` runs right
/// after the write and can never confirm nothing (on another connection, or before a script
/// re-sent on `NOSCRIPT`). Acquires of one round for several slots on one instance become one
/// script ([`crate::batch`]).
pub(crate) fn drain(shared: &Arc<Shared>, lock: &mut Lock, mut each: impl FnMut(Command, Request)) {
    let mut next = lock.poll_command();
    while let Some(cmd) = next.take() {
        next = lock.poll_command();
        let inst = shared.instance_of(cmd.slot);
        if shared.instances[inst].batches() {
            let cmds = batch::gather(
                cmd,
                &mut next,
                || lock.poll_command(),
                |n| shared.instance_of(n.slot) == inst,
            );
            if !cmds.is_empty() {
                each(cmd, crate::batch::request(shared, lock, cmds));
                continue;
            }
        }
        if let Some(wait) = next
            && matches!(wait.op, Op::Wait { .. })
            && wait.slot == cmd.slot
            && cmd.op.needs_replication()
        {
            next = lock.poll_command();
            let (w, a) = crate::confirm::pipelined(shared, lock, cmd, wait);
            each(cmd, w);
            each(wait, a);
            continue;
        }
        each(cmd, request(shared, lock, cmd));
    }
}

/// `EVALSHA` of `op`'s script with its keys and arguments, rendered into one command (the
/// `redis` crate's `ScriptInvocation` keeps every key and argument in a vector of its own first),
/// and which script it is, to load on `NOSCRIPT`. `None` for a `WAIT`, which is only sent
/// right behind its write ([`drain`]).
pub(crate) fn script_call(
    scripts: &Scripts,
    op: &Op,
    lock_key: &str,
    fence_key: &str,
    value: &str,
) -> Option<(redis::Cmd, Script)> {
    // `EVALSHA sha numkeys keys...`, room for the arguments that follow
    let evalsha = |which: Script, keys: &[&str]| {
        let bytes = keys.iter().map(|k| k.len()).sum::<usize>() + value.len() + 40 + 48;
        let mut c = redis::Cmd::with_capacity(3 + keys.len() + 4, bytes);
        c.arg("EVALSHA")
            .arg(which.of(scripts).get_hash())
            .arg(keys.len());
        for k in keys {
            c.arg(*k);
        }
        (c, which)
    };
    let both = [lock_key, fence_key];
    Some(match *op {
        Op::Acquire {
            ttl_ms,
            force,
            keep_ms,
            ..
        } => {
            let (mut c, w) = evalsha(Script::Acquire, &both);
            c.arg(value)
                .arg(ttl_ms)
                .arg(if force { "1" } else { "0" })
                .arg(keep_ms);
            (c, w)
        }
        Op::Extend {
            ttl_ms, keep_ms, ..
        } => {
            let (mut c, w) = evalsha(Script::Extend, &both);
            c.arg(value).arg(ttl_ms).arg(keep_ms);
            (c, w)
        }
        Op::Check { .. } => {
            let (mut c, w) = evalsha(Script::Check, &both);
            c.arg(value);
            (c, w)
        }
        Op::Release { .. } => {
            let (mut c, w) = evalsha(Script::Release, &[lock_key]);
            c.arg(value);
            (c, w)
        }
        Op::RaiseFence { token, keep_ms } => {
            let (mut c, w) = evalsha(Script::RaiseFence, &[fence_key]);
            c.arg(token).arg(keep_ms);
            (c, w)
        }
        Op::ForceRelease { keep_ms, .. } => {
            let (mut c, w) = evalsha(Script::ForceRelease, &both);
            c.arg(value).arg(keep_ms);
            (c, w)
        }
        Op::CompatAcquire {
            expire_at_ms,
            force,
            ..
        } => {
            let which = if force {
                Script::CompatForce
            } else {
                Script::CompatAcquire
            };
            let (mut c, w) = evalsha(which, &[lock_key]);
            c.arg(value).arg(expire_at_ms);
            (c, w)
        }
        Op::CompatExtend { expire_at_ms, .. } => {
            let (mut c, w) = evalsha(Script::CompatExtend, &[lock_key]);
            c.arg(value).arg(expire_at_ms);
            (c, w)
        }
        Op::CompatCheck { .. } => {
            let (mut c, w) = evalsha(Script::CompatCheck, &[lock_key]);
            c.arg(value);
            (c, w)
        }
        Op::Wait { .. } => return None,
    })
}

/// Which of the locker's scripts a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    Acquire,
    AcquireBatch,
    ReleaseBatch,
    Extend,
    Check,
    Release,
    RaiseFence,
    ForceRelease,
    CompatAcquire,
    CompatForce,
    CompatExtend,
    CompatCheck,
}

impl Script {
    /// The script itself (its hash, and its source to load on `NOSCRIPT`).
    pub(crate) fn of(self, s: &Scripts) -> &redis::Script {
        match self {
            Script::Acquire => &s.acquire,
            Script::AcquireBatch => &s.acquire_batch,
            Script::ReleaseBatch => &s.release_batch,
            Script::Extend => &s.extend,
            Script::Check => &s.check,
            Script::Release => &s.release,
            Script::RaiseFence => &s.raise_fence,
            Script::ForceRelease => &s.force_release,
            Script::CompatAcquire => &s.compat_acquire,
            Script::CompatForce => &s.compat_force,
            Script::CompatExtend => &s.compat_extend,
            Script::CompatCheck => &s.compat_check,
        }
    }
}

/// Whether `e` is Redis saying it does not have the script (`NOSCRIPT`: a restart, a flush, a
/// failover to a server that never loaded it).
pub(crate) fn is_no_script(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

async fn execute(
    shared: &Shared,
    inst: usize,
    cmd: Command,
    call: Option<(redis::Cmd, Script)>,
) -> Reply {
    let Some((call, which)) = call else {
        // a WAIT is only meaningful right behind its write, in one pipeline (`drain`); alone it
        // would confirm whatever this connection wrote before
        let e = SlotError::new(
            SlotErrorKind::Corrupt,
            "WAIT sent without the write it confirms; nothing was sent",
        );
        return Reply::Error(e);
    };
    match query(shared, inst, call, which).await {
        Ok(v) => decode(&cmd.op, &v),
        Err(reply) => reply,
    }
}

/// Run `call` (a script of `which`) on instance `inst`, loading the script on `NOSCRIPT`: the raw
/// reply, or the error as the machine's reply.
pub(crate) async fn query(
    shared: &Shared,
    inst: usize,
    call: redis::Cmd,
    which: Script,
) -> Result<redis::Value, Reply> {
    let instance = &shared.instances[inst];
    let conn = instance.conn.borrow().clone();
    let Some(mut conn) = conn else {
        let e = SlotError::new(
            SlotErrorKind::Disconnected,
            format!("not connected to {}", instance.url),
        );
        return Err(Reply::Error(e));
    };
    let mut result = call.query_async::<redis::Value>(&mut conn).await;
    if result.as_ref().is_err_and(is_no_script) {
        result = match which.of(&shared.scripts).load_async(&mut conn).await {
            Ok(_) => call.query_async::<redis::Value>(&mut conn).await,
            Err(e) => Err(e),
        };
    }
    result.map_err(|e| {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            let _ = instance.kick.send(());
        }
        error_reply(&e)
    })
}
