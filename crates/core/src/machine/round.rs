//! Acquiring: an acquire round (one request per slot), its replies and grants that come late,
//! the round's verdict (the classification every failure reports), the fence write-back that
//! makes a multi-slot lease's token known to a majority, and a failed attempt's backoff.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Lock {
    pub(super) fn start_round(&mut self, now: Instant) {
        let State::Backoff(mut attempt, _) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        attempt.rounds += 1;
        // the new round reads every slot again
        self.missed = SlotSet::EMPTY;
        let value = LeaseValue {
            nonce: self.rng.next_u64(),
        };
        let mut wait_until = now + self.config.slot_wait;
        if let AcquireMode::Wait { deadline } = attempt.mode {
            wait_until = wait_until.min(deadline);
        }
        let force = attempt.mode == AcquireMode::Force;
        let op = (self.config.dialect).acquire_op(&self.config, value, force, self.wall_ms(now));
        for slot in 0..self.slots {
            self.send(now, slot, Purpose::Acquire, value, op);
        }
        let round = Round {
            value,
            sent_at: now,
            wait_until,
            answers: Answers::default(),
            contended: None,
            errors: Vec::new(),
            token: 0,
            fence_acks: SlotSet::EMPTY,
            fence_pending: SlotSet::EMPTY,
        };
        self.state = State::Acquiring(attempt, round);
    }

    pub(super) fn on_acquire_reply(&mut self, now: Instant, p: Pending, reply: Reply) {
        let current = match &mut self.state {
            State::Acquiring(_, r) if r.value == p.value => Some(r),
            _ => None,
        };
        let Some(round) = current else {
            self.on_stray_grant(now, p, &reply);
            return;
        };
        let answer = match reply {
            Reply::Granted { token } => SlotAnswer::Granted(token),
            Reply::Held { holder, remaining } => {
                if round.contended.is_none() {
                    round.contended = Some((holder, remaining));
                }
                SlotAnswer::Held
            }
            Reply::Error(e) => {
                round.errors.push((p.slot, e));
                SlotAnswer::Failed
            }
            other => {
                round.errors.push((
                    p.slot,
                    SlotError::new(
                        SlotErrorKind::Corrupt,
                        format!("acquire got a reply of the wrong kind: {other:?}"),
                    ),
                ));
                SlotAnswer::Failed
            }
        };
        if p.slot < self.slots && round.answers.get(p.slot) == SlotAnswer::Waiting {
            round.answers.set(p.slot, answer);
        }
        self.evaluate_round(now, false);
    }

    /// A grant for a round that is over: keep it if it belongs to the lease we hold, otherwise
    /// delete it so it cannot block anyone for a ttl.
    pub(super) fn on_stray_grant(&mut self, now: Instant, p: Pending, reply: &Reply) {
        if !matches!(reply, Reply::Granted { .. }) {
            return;
        }
        if let State::Held(lease) = &mut self.state
            && lease.value == p.value
        {
            lease.held.insert(p.slot);
            return;
        }
        // a grant of this round that arrives while its token is written back joins the lease
        // (deleting it would leave a 3-instance lease on 2 instances, lost when either fails)
        if let (State::WritingBack(_, round), Reply::Granted { token }) = (&mut self.state, reply)
            && round.value == p.value
            && p.slot < self.slots
            && matches!(
                round.answers.get(p.slot),
                SlotAnswer::Waiting | SlotAnswer::Silent
            )
        {
            round.answers.set(p.slot, SlotAnswer::Granted(*token));
            return;
        }
        self.stats.late_grants_cleaned += 1;
        self.send_release(now, p.slot, p.value);
    }

    pub(super) fn evaluate_round(&mut self, now: Instant, timed_out: bool) {
        let State::Acquiring(_, round) = &mut self.state else {
            return;
        };
        if timed_out {
            for slot in 0..self.slots {
                if round.answers.get(slot) == SlotAnswer::Waiting {
                    round.answers.set(slot, SlotAnswer::Silent);
                }
            }
        }
        let answers = round.answers;
        let granted = answers.granted.len();
        let held = answers.held.len();
        let failed = answers.failed.len();
        let silent = answers.silent.len();
        let slack = self.slots - self.quorum;
        if granted >= self.quorum {
            round.token = answers.max_token;
            // the write-back raises every granted slot's counter to the lease's token; when all
            // grants carried that token (a batch on one instance, `wire::ACQUIRE_BATCH`) the
            // counters already stand there
            if self.slots == 1 || !self.config.dialect.has_fence() || !answers.tokens_differ {
                self.finish_acquired(now);
            } else {
                self.start_write_back(now);
            }
            return;
        }
        if held + failed + silent <= slack {
            return; // quorum still possible
        }
        let round_wait = now.saturating_since(round.sent_at);
        let contended = held > slack;
        #[cfg(feature = "planted-bugs")]
        let contended = contended
            || (crate::planted::on(crate::planted::Mutant::ContendedOnAnyHeld) && held > 0);
        let cause = if contended {
            let (holder, remaining) = round.contended.clone().unwrap_or((None, None));
            AcquireError::Contended { holder, remaining }
        } else if silent > 0 {
            let slots = answers.silent;
            let observed = slots
                .iter()
                .filter_map(|s| self.last_reply_time.get(s).copied().flatten())
                .max()
                .filter(|o| *o > round_wait);
            AcquireError::SlowReplies {
                slots,
                waited: round_wait,
                observed,
                suggested: observed.map(suggest_wait),
            }
        } else {
            AcquireError::QuorumUnreachable {
                granted,
                quorum: self.quorum,
                errors: std::mem::take(&mut round.errors),
            }
        };
        let round = round.clone();
        self.cleanup_round(now, &round);
        self.fail_attempt(now, Some(cause), false);
    }

    pub(super) fn start_write_back(&mut self, now: Instant) {
        let state = std::mem::replace(&mut self.state, State::Idle);
        let State::Acquiring(attempt, mut round) = state else {
            self.state = state;
            return;
        };
        round.wait_until = (now + self.config.slot_wait).min(round.sent_at + self.window);
        let keep_ms = self
            .config
            .ttl_ms()
            .saturating_add(self.config.fence_keep_ms());
        for slot in 0..self.slots {
            if round.answers.is_granted(slot) {
                round.fence_pending.insert(slot);
                self.send(
                    now,
                    slot,
                    Purpose::Fence,
                    round.value,
                    Op::RaiseFence {
                        token: round.token,
                        keep_ms,
                    },
                );
            }
        }
        self.state = State::WritingBack(attempt, round);
    }

    pub(super) fn on_fence_reply(&mut self, now: Instant, p: Pending, reply: Reply) {
        let State::WritingBack(_, round) = &mut self.state else {
            return;
        };
        if round.value != p.value {
            return;
        }
        round.fence_pending.remove(p.slot);
        if reply == Reply::FenceRaised {
            round.fence_acks.insert(p.slot);
        } else if let Reply::Error(e) = reply {
            round.errors.push((p.slot, e));
        }
        let possible = round.fence_acks.len() + round.fence_pending.len();
        let unreachable = possible < self.quorum;
        #[cfg(feature = "planted-bugs")]
        let unreachable = if crate::planted::on(crate::planted::Mutant::FenceReplyGt) {
            possible > self.quorum
        } else {
            unreachable
        };
        if round.fence_acks.len() >= self.quorum {
            self.finish_acquired(now);
        } else if unreachable {
            let cause = AcquireError::QuorumUnreachable {
                granted: round.fence_acks.len(),
                quorum: self.quorum,
                errors: std::mem::take(&mut round.errors),
            };
            let round = round.clone();
            self.cleanup_round(now, &round);
            self.fail_attempt(now, Some(cause), false);
        }
    }

    pub(super) fn finish_acquired(&mut self, now: Instant) {
        let state = std::mem::replace(&mut self.state, State::Idle);
        let (attempt, round) = match state {
            State::Acquiring(a, r) | State::WritingBack(a, r) => (a, r),
            other => {
                self.state = other;
                return;
            }
        };
        let validity = round.sent_at + self.window;
        if now >= validity {
            let cause = AcquireError::ValidityConsumed {
                elapsed: now.saturating_since(round.sent_at),
                window: self.window,
            };
            self.cleanup_round(now, &round);
            self.state = State::Backoff(attempt, now);
            self.fail_attempt(now, Some(cause), false);
            return;
        }
        let held = round.answers.granted;
        // Slots still waiting may grant later; they join `held` then (see on_stray_grant).
        self.events.push_back(Event::Acquired {
            token: round.token,
            validity,
            sent_at: round.sent_at,
            mode: attempt.mode,
        });
        self.state = State::Held(Lease {
            value: round.value,
            token: round.token,
            acquired_sent_at: round.sent_at,
            validity,
            held,
            next_extend: round.sent_at + self.config.extend_every(),
            extension: None,
            capped: false,
            taken_by: None,
            server_lost_data: false,
            checking: SlotSet::EMPTY,
            recheck: SlotSet::EMPTY,
        });
        // granted slots that changed after their grant was read: re-check them now
        let missed = std::mem::replace(&mut self.missed, SlotSet::EMPTY);
        for slot in (0..self.slots).filter(|s| missed.contains(*s) && held.contains(*s)) {
            self.recheck(now, slot);
        }
    }

    /// Delete whatever the round may have written: every slot that did not report another holder.
    pub(super) fn cleanup_round(&mut self, now: Instant, round: &Round) {
        for slot in 0..self.slots {
            if round.answers.get(slot) != SlotAnswer::Held {
                self.send_release(now, slot, round.value);
            }
        }
    }

    /// The current round failed with `cause` (or the deadline passed with `cause == None` and
    /// `deadline_hit`). Retry in `wait` mode, report otherwise.
    pub(super) fn fail_attempt(
        &mut self,
        now: Instant,
        cause: Option<AcquireError>,
        deadline_hit: bool,
    ) {
        let mut attempt = match std::mem::replace(&mut self.state, State::Idle) {
            State::Acquiring(a, _) | State::WritingBack(a, _) | State::Backoff(a, _) => a,
            other => {
                self.state = other;
                return;
            }
        };
        if cause.is_some() {
            attempt.last_cause = cause;
        }
        let AcquireMode::Wait { deadline } = attempt.mode else {
            let err = attempt.last_cause.unwrap_or(AcquireError::Cancelled);
            self.events.push_back(Event::AcquireFailed(err));
            return;
        };
        if deadline_hit || now >= deadline {
            self.events
                .push_back(Event::AcquireFailed(AcquireError::DeadlineExceeded {
                    waited: now.saturating_since(attempt.started),
                    attempts: attempt.rounds,
                    last_cause: attempt.last_cause.map(Box::new),
                }));
            return;
        }
        let exp = attempt.rounds.saturating_sub(1).min(20);
        let ceiling = self
            .config
            .backoff_min
            .saturating_mul(1 << exp)
            .min(self.config.backoff_max);
        let ceiling_ns = crate::time::duration_nanos(ceiling);
        let sleep = Duration::from_nanos(self.rng.below_inclusive(ceiling_ns));
        self.state = State::Backoff(attempt, (now + sleep).min(deadline));
        // a key changed after this round read it (see `missed`): retry at once, as that push
        // would have made a waiter in backoff do
        if !std::mem::replace(&mut self.missed, SlotSet::EMPTY).is_empty() {
            self.start_round(now);
        }
    }
}
