//! Turning one machine [`Command`] into a Redis call: the script and its keys and arguments
//! (`EVALSHA`, with the `redis` crate's `NOSCRIPT` fallback), sent on the instance's multiplexed
//! connection, and the decoded [`Reply`]. A request is a future; whoever drives the machine at
//! that moment (an acquiring caller, a releasing caller, the keeper) awaits it and feeds the reply
//! back under the same lock.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use leasehold_core::{Command, Lock, Op, Reply, RequestId, SlotError, SlotErrorKind};

use crate::decode::{decode, error_reply};
use crate::locker::{Scripts, Shared};

/// What a request resolves to: the command, the reply, the instance it went to, and how long it
/// took.
pub(crate) type Answer = (Command, Reply, usize, Duration);

/// A request in flight.
pub(crate) type Request = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// The request for `cmd` of `lock` (keys and value rendered now, sent when first polled).
pub(crate) fn request(shared: &Arc<Shared>, lock: &Lock, cmd: Command) -> Request {
    let shared = shared.clone();
    let inst = shared.instance_of(cmd.slot);
    let lock_key = lock.keys().lock_key(cmd.slot).to_owned();
    let fence_key = lock.keys().fence_key(cmd.slot).to_owned();
    let mut value = String::new();
    if let Some(v) = cmd.op.value() {
        lock.write_value(v, &mut value);
    }
    Box::pin(async move {
        let sent = tokio::time::Instant::now();
        let (_, reply) = execute(&shared, inst, cmd, lock_key, fence_key, value).await;
        (cmd, reply, inst, sent.elapsed())
    })
}

/// Drain `lock`'s commands into requests, calling `each` with every command and its request. A
/// write the machine wants confirmed is followed by its `WAIT` on the same slot; the two become
/// one pipeline on one connection ([`crate::confirm`]), so the `WAIT` runs right after the
/// write and can never confirm nothing (on another connection, or before a script re-sent on
/// `NOSCRIPT`).
pub(crate) fn drain(shared: &Arc<Shared>, lock: &mut Lock, mut each: impl FnMut(Command, Request)) {
    let mut next = lock.poll_command();
    while let Some(cmd) = next.take() {
        next = lock.poll_command();
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

/// The script call for `op` with its keys and arguments (`None` for operations that are not one
/// of the locker's preloaded scripts: an operator's force-release, a `WAIT`).
pub(crate) fn invocation<'a>(
    scripts: &'a Scripts,
    op: &Op,
    lock_key: &str,
    fence_key: &str,
    value: &str,
) -> Option<redis::ScriptInvocation<'a>> {
    Some(match *op {
        Op::Acquire {
            ttl_ms,
            force,
            keep_ms,
            ..
        } => {
            let mut i = scripts.acquire.key(lock_key);
            i.key(fence_key)
                .arg(value)
                .arg(ttl_ms)
                .arg(if force { "1" } else { "0" })
                .arg(keep_ms);
            i
        }
        Op::Extend {
            ttl_ms, keep_ms, ..
        } => {
            let mut i = scripts.extend.key(lock_key);
            i.key(fence_key).arg(value).arg(ttl_ms).arg(keep_ms);
            i
        }
        Op::Check { .. } => {
            let mut i = scripts.check.key(lock_key);
            i.key(fence_key).arg(value);
            i
        }
        Op::Release { .. } => {
            let mut i = scripts.release.key(lock_key);
            i.arg(value);
            i
        }
        Op::RaiseFence { token, keep_ms } => {
            let mut i = scripts.raise_fence.key(fence_key);
            i.arg(token).arg(keep_ms);
            i
        }
        Op::CompatAcquire {
            expire_at_ms,
            force,
            ..
        } => {
            let script = if force {
                &scripts.compat_force
            } else {
                &scripts.compat_acquire
            };
            let mut i = script.key(lock_key);
            i.arg(value).arg(expire_at_ms);
            i
        }
        Op::CompatExtend { expire_at_ms, .. } => {
            let mut i = scripts.compat_extend.key(lock_key);
            i.arg(value).arg(expire_at_ms);
            i
        }
        Op::CompatCheck { .. } => {
            let mut i = scripts.compat_check.key(lock_key);
            i.arg(value);
            i
        }
        Op::ForceRelease { .. } | Op::Wait { .. } => return None,
    })
}

/// Whether `reply` to `op` says our script wrote the slot's lock key (so Redis will send this
/// connection an invalidation push about it: `NOLOOP` does not cover writes made in scripts).
pub(crate) fn wrote_lock_key(op: &Op, reply: &Reply) -> bool {
    matches!(
        (op, reply),
        (Op::Acquire { .. }, Reply::Granted { .. })
            | (Op::Extend { .. }, Reply::Extended)
            | (Op::Release { .. }, Reply::Released { deleted: true })
            | (Op::CompatAcquire { .. }, Reply::GrantedUnfenced)
            | (Op::CompatExtend { .. }, Reply::Extended)
    )
}

async fn execute(
    shared: &Shared,
    inst: usize,
    cmd: Command,
    lock_key: String,
    fence_key: String,
    value: String,
) -> (RequestId, Reply) {
    {
        let instance = &shared.instances[inst];
        let conn = instance.conn.borrow().clone();
        let Some(mut conn) = conn else {
            let e = SlotError::new(
                SlotErrorKind::Disconnected,
                format!("not connected to {}", instance.url),
            );
            return (cmd.request, Reply::Error(e));
        };
        let inv = match cmd.op {
            Op::ForceRelease { keep_ms, .. } => {
                // never emitted by the machine (operators' tools send it); rendered here so
                // the adapter can run every operation of the wire protocol
                let script = redis::Script::new(leasehold_core::wire::FORCE_RELEASE.source);
                let mut i = script.key(&lock_key);
                i.key(&fence_key).arg(&value).arg(keep_ms);
                let reply = match i.invoke_async::<redis::Value>(&mut conn).await {
                    Ok(v) => decode(&cmd.op, &v),
                    Err(e) => error_reply(&e),
                };
                return (cmd.request, reply);
            }
            Op::Wait { .. } => {
                // a WAIT is only meaningful right behind its write, in one pipeline (`drain`);
                // alone it would confirm whatever this connection wrote before
                let e = SlotError::new(
                    SlotErrorKind::Corrupt,
                    "WAIT sent without the write it confirms; nothing was sent",
                );
                return (cmd.request, Reply::Error(e));
            }
            _ => match invocation(&shared.scripts, &cmd.op, &lock_key, &fence_key, &value) {
                Some(i) => i,
                None => {
                    let e = SlotError::new(SlotErrorKind::Corrupt, "no script for this operation");
                    return (cmd.request, Reply::Error(e));
                }
            },
        };
        let reply = match inv.invoke_async::<redis::Value>(&mut conn).await {
            Ok(v) => decode(&cmd.op, &v),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    let _ = instance.kick.send(());
                }
                error_reply(&e)
            }
        };
        (cmd.request, reply)
    }
}
