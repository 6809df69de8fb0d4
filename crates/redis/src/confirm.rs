//! A write and the `WAIT` that confirms it (`LockerOptions::replicas`), sent as one pipeline on
//! the instance's connection: `EVALSHA <script> ...` then `WAIT <replicas> <timeout>`. The core
//! decides from both replies (`leasehold_core::replication`); this module only moves them.
//!
//! The two replies go back to the machine as two answers, one per request id: the write's
//! request future runs the pipeline and hands the `WAIT`'s reply to the second future over a
//! oneshot. If the write's future is dropped (an acquire abandoned), the `WAIT`'s resolves to a
//! `Disconnected` error, which the machine ignores (nothing waits for it any more).
//!
//! `NOSCRIPT` (a server that lost its script cache: a restart, a failover to a replica, `SCRIPT
//! FLUSH`): the `WAIT` in that pipeline confirmed nothing of ours, so the script is loaded and
//! the *whole* pipeline sent again, once.
//!
//! Cost: `WAIT` blocks the connection until the replicas acknowledge or the timeout passes, and
//! the instance's one multiplexed connection is shared by every lease of the locker, so while a
//! replica is down each confirmed write holds the others' commands back by up to the timeout.

use std::sync::Arc;

use leasehold_core::{Command, Lock, Op, Reply, SlotError, SlotErrorKind};
use tokio::sync::oneshot;

use crate::decode::{decode_in_pipeline, error_reply};
use crate::locker::Shared;
use crate::send::{Answers, Request, script_call};

/// The requests for `write` and the `wait` right behind it on the same slot.
pub(crate) fn pipelined(
    shared: &Arc<Shared>,
    lock: &Lock,
    write: Command,
    wait: Command,
) -> (Request, Request) {
    let inst = shared.instance_of(write.slot);
    let lock_key = lock.keys().lock_key(write.slot).to_owned();
    let fence_key = lock.keys().fence_key(write.slot).to_owned();
    let mut value = String::new();
    if let Some(v) = write.op.value() {
        lock.write_value(v, &mut value);
    }
    let (tx, rx) = oneshot::channel::<Reply>();
    let shared_w = shared.clone();
    let w: Request = Box::pin(async move {
        let sent = tokio::time::Instant::now();
        let (wrote, acked) = execute(
            &shared_w, inst, write.op, wait.op, &lock_key, &fence_key, &value,
        )
        .await;
        let took = sent.elapsed();
        let _ = tx.send(acked);
        Answers::One((write, wrote, inst, took))
    });
    let a: Request = Box::pin(async move {
        let sent = tokio::time::Instant::now();
        let reply = rx.await.unwrap_or_else(|_| {
            Reply::Error(SlotError::new(
                SlotErrorKind::Disconnected,
                "the write this WAIT confirms was abandoned before it was sent",
            ))
        });
        Answers::One((wait, reply, inst, sent.elapsed()))
    });
    (w, a)
}

/// Run `write` then `WAIT` in one pipeline; the replies to both.
async fn execute(
    shared: &Shared,
    inst: usize,
    write: Op,
    wait: Op,
    lock_key: &str,
    fence_key: &str,
    value: &str,
) -> (Reply, Reply) {
    let instance = &shared.instances[inst];
    let conn = instance.conn.borrow().clone();
    let Some(mut conn) = conn else {
        let e = Reply::Error(SlotError::new(
            SlotErrorKind::Disconnected,
            format!("not connected to {}", instance.url),
        ));
        return (e.clone(), e);
    };
    let (
        Some((call, which)),
        Op::Wait {
            replicas,
            timeout_ms,
        },
    ) = (
        script_call(&shared.scripts, &write, lock_key, fence_key, value),
        wait,
    )
    else {
        let e = Reply::Error(SlotError::new(
            SlotErrorKind::Corrupt,
            format!("{} cannot be confirmed with {}", write.name(), wait.name()),
        ));
        return (e.clone(), e);
    };
    for attempt in 0..2 {
        let mut pipe = redis::pipe();
        pipe.add_command(call.clone())
            .cmd("WAIT")
            .arg(replicas)
            .arg(timeout_ms)
            .ignore_errors();
        match pipe.query_async::<Vec<redis::Value>>(&mut conn).await {
            Ok(values) => {
                let no_script = matches!(
                    values.first(),
                    Some(redis::Value::ServerError(e))
                        if e.kind() == Some(redis::ServerErrorKind::NoScript)
                );
                if no_script && attempt == 0 {
                    if let Err(e) = which.of(&shared.scripts).load_async(&mut conn).await {
                        let r = error_reply(&e);
                        return (r.clone(), r);
                    }
                    continue;
                }
                return (
                    decode_in_pipeline(&write, values.first()),
                    decode_in_pipeline(&wait, values.get(1)),
                );
            }
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    let _ = instance.kick.send(());
                }
                let r = error_reply(&e);
                return (r.clone(), r);
            }
        }
    }
    let e = Reply::Error(SlotError::new(
        SlotErrorKind::Server,
        "NOSCRIPT again after loading the script",
    ));
    (e.clone(), e)
}
