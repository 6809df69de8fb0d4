//! Holding a lease: the timer that fires extensions (and re-checks), the extension and re-check
//! replies, and losing the lease with the reason the servers' answers support.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Lock {
    pub(super) fn fire(&mut self, now: Instant) {
        match &mut self.state {
            State::Idle => {}
            State::Acquiring(..) => self.evaluate_round(now, true),
            State::WritingBack(_, round) => {
                let cause = AcquireError::SlowReplies {
                    slots: round.fence_pending,
                    waited: now.saturating_since(round.sent_at),
                    observed: None,
                    suggested: None,
                };
                let round = round.clone();
                self.cleanup_round(now, &round);
                self.fail_attempt(now, Some(cause), false);
            }
            State::Backoff(attempt, until) => {
                if let AcquireMode::Wait { deadline } = attempt.mode
                    && now >= deadline
                {
                    self.fail_attempt(now, None, true);
                    return;
                }
                if now >= *until {
                    self.start_round(now);
                }
            }
            State::Held(lease) => {
                if now >= lease.validity {
                    let reason = if lease.capped {
                        LostReason::HoldCapReached
                    } else if lease.held.0 & self.disconnected.0 != 0 {
                        LostReason::Disconnected
                    } else {
                        LostReason::ExpiredLocally
                    };
                    self.lose(now, reason);
                    return;
                }
                match &lease.extension {
                    Some(ext) if now >= ext.wait_until => {
                        // Replies did not come in time: keep the old validity and retry soon.
                        lease.extension = None;
                        lease.next_extend = now + self.config.extend_every() / 4;
                    }
                    Some(_) => {}
                    None if now >= lease.next_extend && !lease.capped => self.start_extension(now),
                    None => {}
                }
            }
        }
    }

    pub(super) fn start_extension(&mut self, now: Instant) {
        let State::Held(lease) = &mut self.state else {
            return;
        };
        if let Some(cap) = self.config.hold_cap {
            let cap_end = lease.acquired_sent_at + cap;
            if now + self.window > cap_end {
                lease.capped = true;
                return;
            }
        }
        let wait = (self.config.extend_every() / 2).max(self.config.slot_wait);
        lease.extension = Some(Extension {
            first_request: RequestId(self.next_request),
            sent_at: now,
            wait_until: now + wait,
            pending: lease.held,
            ok: SlotSet::EMPTY,
        });
        let (held, value) = (lease.held, lease.value);
        let op = (self.config.dialect).extend_op(&self.config, value, self.wall_ms(now));
        for slot in held.iter() {
            self.send(now, slot, Purpose::Extend, value, op);
        }
    }

    pub(super) fn on_extend_reply(&mut self, now: Instant, p: Pending, reply: Reply) {
        let State::Held(lease) = &mut self.state else {
            return;
        };
        if lease.value != p.value {
            return;
        }
        let Some(ext) = &mut lease.extension else {
            return;
        };
        if p.id < ext.first_request || !ext.pending.contains(p.slot) {
            // a reply to an earlier round that timed out: it says nothing about this round's
            // send time, so it cannot extend validity
            return;
        }
        ext.pending.remove(p.slot);
        if reply == Reply::Extended {
            ext.ok.insert(p.slot);
        }
        // otherwise a lost slot leaves the lease; a transient error keeps it for the next extension
        lease.note_slot_gone(p.slot, reply);
        if lease.held.len() < self.quorum {
            self.lose(now, self.loss_reason());
            return;
        }
        let Some(ext) = &mut lease.extension else {
            return;
        };
        if ext.ok.len() >= self.quorum {
            let old = lease.validity;
            lease.validity = ext.sent_at + self.window;
            lease.next_extend = ext.sent_at + self.config.extend_every();
            lease.extension = None;
            self.events.push_back(Event::Extended {
                token: lease.token,
                validity: lease.validity,
                slack: old.saturating_since(now),
            });
        } else if ext.pending.is_empty() {
            lease.extension = None;
            lease.next_extend = now + self.config.extend_every() / 4;
        }
    }

    pub(super) fn on_check_reply(&mut self, now: Instant, p: Pending, reply: Reply) {
        let State::Held(lease) = &mut self.state else {
            return;
        };
        if lease.value != p.value {
            return;
        }
        lease.checking.remove(p.slot);
        // still ours, or a transient error: the next extension decides
        lease.note_slot_gone(p.slot, reply);
        if lease.held.len() < self.quorum {
            self.lose(now, self.loss_reason());
            return;
        }
        if lease.recheck.contains(p.slot) && lease.held.contains(p.slot) {
            lease.recheck.remove(p.slot);
            lease.checking.insert(p.slot);
            let value = lease.value;
            let op = self.config.dialect.check_op(value);
            self.send(now, p.slot, Purpose::Check, value, op);
        }
    }

    pub(super) fn loss_reason(&self) -> LostReason {
        match &self.state {
            State::Held(lease) => match (&lease.taken_by, lease.server_lost_data) {
                (Some(holder), _) => LostReason::Taken {
                    holder: holder.clone(),
                },
                (None, true) => LostReason::ServerRestarted,
                (None, false) => LostReason::Deleted,
            },
            _ => LostReason::Deleted,
        }
    }

    pub(super) fn lose(&mut self, now: Instant, reason: LostReason) {
        let State::Held(lease) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        for slot in lease.held.iter() {
            self.send_release(now, slot, lease.value);
        }
        self.events.push_back(Event::Lost {
            token: lease.token,
            reason,
        });
    }
}
