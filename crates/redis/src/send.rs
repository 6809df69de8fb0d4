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
use crate::locker::Shared;

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
        let scripts = &shared.scripts;
        let inv = match cmd.op {
            Op::Acquire {
                ttl_ms,
                force,
                keep_ms,
                ..
            } => {
                let mut i = scripts.acquire.key(&lock_key);
                i.key(&fence_key)
                    .arg(&value)
                    .arg(ttl_ms)
                    .arg(if force { "1" } else { "0" })
                    .arg(keep_ms);
                i
            }
            Op::Extend {
                ttl_ms, keep_ms, ..
            } => {
                let mut i = scripts.extend.key(&lock_key);
                i.key(&fence_key).arg(&value).arg(ttl_ms).arg(keep_ms);
                i
            }
            Op::Check { .. } => {
                let mut i = scripts.check.key(&lock_key);
                i.key(&fence_key).arg(&value);
                i
            }
            Op::Release { .. } => {
                let mut i = scripts.release.key(&lock_key);
                i.arg(&value);
                i
            }
            Op::RaiseFence { token, keep_ms } => {
                let mut i = scripts.raise_fence.key(&fence_key);
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
                let mut i = script.key(&lock_key);
                i.arg(&value).arg(expire_at_ms);
                i
            }
            Op::CompatExtend { expire_at_ms, .. } => {
                let mut i = scripts.compat_extend.key(&lock_key);
                i.arg(&value).arg(expire_at_ms);
                i
            }
            Op::CompatCheck { .. } => {
                let mut i = scripts.compat_check.key(&lock_key);
                i.arg(&value);
                i
            }
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
