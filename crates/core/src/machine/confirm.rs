//! Replication-acknowledged writes inside the machine (`LockConfig::replication`): the `WAIT`
//! sent behind each grant, extension and fence write-back, and the gate that holds the write's
//! reply until the `WAIT` answers. The rules are in [`crate::replication`].

use super::{Lock, Pending, Purpose};
use crate::time::Instant;
use crate::wire::{LeaseValue, Op, Reply, RequestId};

impl Lock {
    /// After write request `write` of `op` to `slot`: with `replication` set and a write that
    /// must be confirmed, queue its `WAIT` right behind it (same slot, same pipeline).
    pub(super) fn send_wait_after(
        &mut self,
        now: Instant,
        write: RequestId,
        slot: usize,
        value: LeaseValue,
        op: Op,
    ) {
        let Some(repl) = self.config.replication else {
            return;
        };
        if !op.needs_replication() {
            return;
        }
        self.push_request(now, slot, Purpose::Wait { write }, value, repl.wait_op());
    }

    /// With `replication` set, a write's successful reply waits here for its `WAIT`, and the
    /// `WAIT`'s reply releases it (or a `NotReplicated` error in its place; an unconfirmed
    /// grant's key is released at once). `Some(p)`: handle `reply` to `p` as usual.
    pub(super) fn gate_reply(
        &mut self,
        now: Instant,
        p: Pending,
        reply: &Reply,
    ) -> Option<Pending> {
        let Some(repl) = self.config.replication else {
            return Some(p);
        };
        if let Purpose::Wait { write } = p.purpose {
            let (w, held) = self.unconfirmed.take(write)?;
            let verdict = repl.verdict(held, reply.clone());
            if w.purpose == Purpose::Acquire && matches!(verdict, Reply::Error(_)) {
                self.stats.grants_not_replicated += 1;
                self.send_release(now, w.slot, w.value);
            }
            self.dispatch(now, w, verdict);
            return None;
        }
        let confirmable = matches!(
            (p.purpose, reply),
            (Purpose::Acquire, Reply::Granted { .. })
                | (Purpose::Extend, Reply::Extended)
                | (Purpose::Fence, Reply::FenceRaised)
        );
        if confirmable {
            self.unconfirmed.hold(p.id, p, reply.clone());
            return None;
        }
        Some(p)
    }
}
