//! Acquires of one round, or releases of one value, for several slots on one instance, sent as
//! one script ([`leasehold_core::wire::batch`]: one script instead of one per slot, and every
//! slot granted with one token, so the machine skips its token write-back), and the reply split
//! back into one answer per command. [`crate::send::drain`] decides what forms a batch.

use std::sync::Arc;

use leasehold_core::{Command, Lock, Op, Reply, SlotError, SlotErrorKind};

use crate::decode::decode_batch;
use crate::locker::Shared;
use crate::send::{Answers, Request, Script, query};

/// The request for `cmds` (acquires of one round or releases of one value, each for another slot
/// of `lock`, all on one instance), rendered now and sent when first polled.
pub(crate) fn request(shared: &Arc<Shared>, lock: &Lock, cmds: Vec<Command>) -> Request {
    let shared = shared.clone();
    let (inst, call, which) = match cmds.first() {
        Some(first) => (
            shared.instance_of(first.slot),
            render(&shared, lock, &cmds),
            match first.op {
                Op::Release { .. } => Script::ReleaseBatch,
                _ => Script::AcquireBatch,
            },
        ),
        None => (0, None, Script::AcquireBatch),
    };
    Box::pin(async move {
        let sent = tokio::time::Instant::now();
        let replies = match call {
            Some(call) => match query(&shared, inst, call, which).await {
                Ok(v) => {
                    let ops: Vec<Op> = cmds.iter().map(|c| c.op).collect();
                    decode_batch(&ops, &v)
                }
                Err(e) => vec![e; cmds.len()],
            },
            // never (`joins` forms batches of acquires and releases only); answered all the
            // same, so no command waits for a reply that is never coming
            None => {
                let e = SlotError::new(
                    SlotErrorKind::Corrupt,
                    "a batch of commands that cannot be batched; nothing was sent",
                );
                vec![Reply::Error(e); cmds.len()]
            }
        };
        let took = sent.elapsed();
        Answers::Batch(
            cmds.into_iter()
                .zip(replies)
                .map(|(cmd, reply)| (cmd, reply, inst, took))
                .collect(),
        )
    })
}

/// `EVALSHA acquire_batch 2n lock_1 fence_1 … lock_n fence_n value ttl_ms force keep_ms`, or
/// `EVALSHA release_batch n lock_1 … lock_n value`; `None` for any other first command (never,
/// by [`leasehold_core::wire::batch::joins`]).
fn render(shared: &Shared, lock: &Lock, cmds: &[Command]) -> Option<redis::Cmd> {
    let first = cmds.first()?;
    let keys = lock.keys();
    let mut v = String::new();
    if let Op::Release { value } = first.op {
        lock.write_value(value, &mut v);
        let mut c = redis::Cmd::with_capacity(3 + cmds.len() + 1, 40 * cmds.len() + v.len() + 64);
        c.arg("EVALSHA")
            .arg(Script::ReleaseBatch.of(&shared.scripts).get_hash())
            .arg(cmds.len());
        for cmd in cmds {
            c.arg(keys.lock_key(cmd.slot));
        }
        c.arg(v);
        return Some(c);
    }
    let Op::Acquire {
        value,
        ttl_ms,
        force,
        keep_ms,
    } = first.op
    else {
        return None;
    };
    lock.write_value(value, &mut v);
    let mut c = redis::Cmd::with_capacity(3 + 2 * cmds.len() + 4, 64 * cmds.len() + v.len() + 88);
    c.arg("EVALSHA")
        .arg(Script::AcquireBatch.of(&shared.scripts).get_hash())
        .arg(2 * cmds.len());
    for cmd in cmds {
        c.arg(keys.lock_key(cmd.slot)).arg(keys.fence_key(cmd.slot));
    }
    c.arg(v)
        .arg(ttl_ms)
        .arg(if force { "1" } else { "0" })
        .arg(keep_ms);
    Some(c)
}
