//! Judging a failed acquire's classification against what the slots really answered.
//!
//! A driver (the proptest runner here, the simulator's world) records every acquire round as the
//! network delivered it to the machine: which request went to which slot, and which reply each
//! slot's request got *while the round was open* (the machine's phase says when it is). When the
//! machine reports `AcquireFailed`, [`RoundLog::judge`] checks the classification:
//!
//! - `Contended` if and only if more slots answered `Held` than the quorum allows
//!   (`held > slots - quorum`); never after a quorum granted (a failed write-back);
//! - `SlowReplies` names exactly the slots that never answered (a slot whose connection dropped
//!   before its reply may count as silent or as failed: the machine sees the drop after its timer);
//! - `QuorumUnreachable` only when some slot answered with an error or was cut off;
//! - `DeadlineExceeded` after a round carries that last round's cause, judged by the same rules.
//!
//! With replication-acknowledged writes ([`RoundLog::with_replication`]) a slot's answer is its
//! write's reply *and* the `WAIT` after it, as the machine counts it: a grant or write-back that
//! `WAIT` did not confirm is a failed slot, one still awaiting its `WAIT` has not answered.
//!
//! The log only reads what the driver hands it; it never asks the machine how it classified.

use crate::config::MAX_SLOTS;
use crate::machine::{Lock, Phase};
use crate::outcome::{AcquireError, SlotSet};
use crate::replication::Replication;
use crate::time::Instant;
use crate::wire::{Command, Op, Reply, RequestId};

/// What one slot's request of the current round got, as delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seen {
    /// No reply (yet).
    #[default]
    Nothing,
    /// Granted (acquire) or fence raised (write-back).
    Granted,
    /// Held by another holder (acquire).
    Held,
    /// An error or a reply of the wrong kind.
    Failed,
    /// The connection dropped before a reply.
    Cut,
}

/// One (client, lock)'s current acquire round, as delivered.
#[derive(Debug, Clone)]
pub struct RoundLog {
    slots: usize,
    quorum: usize,
    nonce: Option<u64>,
    acquire: [Seen; MAX_SLOTS],
    fence: [Seen; MAX_SLOTS],
    fence_sent: SlotSet,
    /// (request, slot, is a fence write-back, is the `WAIT` after it) of the current round.
    requests: Vec<(RequestId, usize, bool, bool)>,
    /// The machine's `WAIT` setting (`None`: a write's reply alone answers).
    replication: Option<Replication>,
    /// Slots whose connection is dropping right now: a round the machine starts while handling
    /// the drop (its timers fire first) has those requests failed at once.
    cut_next: SlotSet,
}

impl RoundLog {
    /// An empty log for a lock of `slots` slots and quorum `quorum`.
    #[must_use]
    pub fn new(slots: usize, quorum: usize) -> RoundLog {
        RoundLog {
            slots: slots.min(MAX_SLOTS),
            quorum,
            nonce: None,
            acquire: [Seen::Nothing; MAX_SLOTS],
            fence: [Seen::Nothing; MAX_SLOTS],
            fence_sent: SlotSet::EMPTY,
            requests: Vec::new(),
            cut_next: SlotSet::EMPTY,
            replication: None,
        }
    }

    /// The log of a machine whose writes count only when `WAIT` confirms them
    /// (`LockConfig::replication`).
    #[must_use]
    pub fn with_replication(mut self, replication: Option<Replication>) -> RoundLog {
        self.replication = replication;
        self
    }

    /// A command left the machine. An acquire with a new value starts a new round; a fence
    /// write-back belongs to the current one; other commands are not about rounds.
    pub fn sent(&mut self, cmd: &Command) {
        match cmd.op {
            Op::Acquire { value, .. } | Op::CompatAcquire { value, .. } => {
                if self.nonce != Some(value.nonce) {
                    *self = RoundLog {
                        nonce: Some(value.nonce),
                        cut_next: self.cut_next,
                        replication: self.replication,
                        ..RoundLog::new(self.slots, self.quorum)
                    };
                }
                self.requests.push((cmd.request, cmd.slot, false, false));
                if self.cut_next.contains(cmd.slot)
                    && let Some(seen) = self.acquire.get_mut(cmd.slot)
                {
                    *seen = Seen::Cut;
                }
            }
            Op::RaiseFence { .. } => {
                self.fence_sent.insert(cmd.slot);
                self.requests.push((cmd.request, cmd.slot, true, false));
            }
            // the WAIT directly follows its write on the same slot
            Op::Wait { .. } => {
                if let Some(&(_, _, fence, false)) =
                    self.requests.iter().rev().find(|r| r.1 == cmd.slot)
                {
                    self.requests.push((cmd.request, cmd.slot, fence, true));
                }
            }
            _ => {}
        }
    }

    /// `reply` to `request` is about to be handed to `lock` at `now`. Only replies that reach
    /// an open round count: acquire replies while acquiring, fence replies while writing back,
    /// and neither once the round's wait is over at `now` (the machine handles its due timers
    /// before a reply); the first reply per slot wins (duplicates are ignored, as the machine
    /// does). Reads the machine's phase and timer only, never its classification.
    pub fn delivered(&mut self, lock: &Lock, now: Instant, request: RequestId, reply: &Reply) {
        let due = lock.poll_timeout().is_some_and(|t| t <= now);
        let phase = if due { Phase::Idle } else { lock.phase() };
        self.delivered_in(phase, request, reply);
    }

    /// `reply` to `request` reached a machine whose open round is in `phase` (`Idle`: none).
    pub fn delivered_in(&mut self, phase: Phase, request: RequestId, reply: &Reply) {
        let Some(&(_, slot, fence, wait)) = self.requests.iter().find(|r| r.0 == request) else {
            return;
        };
        let (open, table) = if fence {
            (phase == Phase::WritingBack, &mut self.fence)
        } else {
            (phase == Phase::Acquiring, &mut self.acquire)
        };
        if !open {
            return;
        }
        if let Some(seen) = table.get_mut(slot)
            && *seen == Seen::Nothing
        {
            *seen = match (fence, reply, self.replication) {
                (_, _, Some(r)) if wait => match reply {
                    Reply::Acked(n) if *n >= r.replicas => Seen::Granted,
                    _ => Seen::Failed,
                },
                // a success waits for its WAIT, which decides the slot's answer
                (false, Reply::Granted { .. } | Reply::GrantedUnfenced, Some(_))
                | (true, Reply::FenceRaised, Some(_)) => {
                    return;
                }
                (false, Reply::Granted { .. } | Reply::GrantedUnfenced, None)
                | (true, Reply::FenceRaised, None) => Seen::Granted,
                (false, Reply::Held { .. }, _) => Seen::Held,
                _ => Seen::Failed,
            };
        }
    }

    /// The connection to `slot` is dropping and the machine, in `phase`, is about to be told
    /// (`handle_disconnected`): a request of the open round still waiting for its reply will
    /// never get one, and neither will one of a round the machine starts while handling the
    /// drop. Call [`RoundLog::settled`] once the machine's commands are drained.
    pub fn cut(&mut self, phase: Phase, slot: usize) {
        self.cut_next.insert(slot);
        // an acquire round asks every slot; a write-back only the slots that granted
        let table = match phase {
            Phase::Acquiring => &mut self.acquire,
            Phase::WritingBack if self.fence_sent.contains(slot) => &mut self.fence,
            _ => return,
        };
        if let Some(seen) = table.get_mut(slot)
            && *seen == Seen::Nothing
        {
            *seen = Seen::Cut;
        }
    }

    /// The machine's commands after a connection drop are drained: later rounds see the drop
    /// only through the replies they get.
    pub fn settled(&mut self) {
        self.cut_next = SlotSet::EMPTY;
    }

    /// `Err` says how the machine's `AcquireFailed(err)` misreports the round this log saw.
    pub fn judge(&self, err: &AcquireError) -> Result<(), String> {
        match err {
            AcquireError::DeadlineExceeded {
                last_cause: Some(cause),
                ..
            } => self
                .judge_round(cause)
                .map_err(|e| format!("DeadlineExceeded's last cause: {e}")),
            AcquireError::DeadlineExceeded {
                last_cause: None,
                attempts,
                ..
            } if *attempts > 0 && self.nonce.is_some() => Err(format!(
                "DeadlineExceeded after {attempts} round(s) carries no last cause"
            )),
            e => self.judge_round(e),
        }
    }

    fn count(table: &[Seen], seen: Seen) -> usize {
        table.iter().filter(|s| **s == seen).count()
    }

    fn set(table: &[Seen], seen: Seen, within: SlotSet) -> SlotSet {
        let mut s = SlotSet::EMPTY;
        for (i, t) in table.iter().enumerate() {
            if *t == seen && within.contains(i) {
                s.insert(i);
            }
        }
        s
    }

    fn judge_round(&self, cause: &AcquireError) -> Result<(), String> {
        let acquire = &self.acquire[..self.slots];
        let all = SlotSet::first(self.slots);
        let slack = self.slots.saturating_sub(self.quorum);
        let granted = Self::count(acquire, Seen::Granted);
        let held = Self::count(acquire, Seen::Held);
        // the round's stage decides which answers the cause is about
        let (table, sent, stage) = if granted >= self.quorum {
            (&self.fence[..self.slots], self.fence_sent, "the write-back")
        } else {
            (acquire, all, "the round")
        };
        let failed = Self::count(table, Seen::Failed) + Self::count(table, Seen::Cut);
        let silent = Self::set(table, Seen::Nothing, sent);
        let cut = Self::set(table, Seen::Cut, sent);
        // (a failed write-back has a quorum of grants, so at most `slack` Held answers)
        let contended = held > slack;
        match cause {
            AcquireError::Contended { .. } if !contended => Err(format!(
                "reported Contended, but {held} of {} slot(s) answered Held and {granted} granted: a quorum of {} is ruled out by Held answers only when more than {slack} answer Held",
                self.slots, self.quorum
            )),
            AcquireError::SlowReplies { .. } | AcquireError::QuorumUnreachable { .. }
                if contended =>
            {
                Err(format!(
                    "reported {}, but {held} of {} slot(s) answered Held, more than the {slack} a quorum of {} allows: that is Contended",
                    cause.reason(),
                    self.slots,
                    self.quorum
                ))
            }
            AcquireError::SlowReplies { slots, .. } => {
                let named = *slots;
                let fits = !named.is_empty()
                    && named.0 & silent.0 == silent.0
                    && named.0 & !silent.0 & !cut.0 == 0;
                if fits {
                    Ok(())
                } else {
                    Err(format!(
                        "reported SlowReplies from slot(s) {{{named}}}, but in {stage} the silent slot(s) were {{{silent}}} (and {{{cut}}} were cut off)"
                    ))
                }
            }
            AcquireError::QuorumUnreachable { .. } if failed == 0 => Err(format!(
                "reported QuorumUnreachable, but no slot answered {stage} with an error or was cut off"
            )),
            _ => Ok(()),
        }
    }
}
