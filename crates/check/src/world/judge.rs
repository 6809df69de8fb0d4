//! Judging a world's events against the promised properties: acquisitions (token order,
//! mutual exclusion, the validity oracle), classification of failed rounds, and the critical
//! section's accesses to the fenced resource.

use leasehold_core::testkit::Owner;
use leasehold_core::{AcquireError, Event, Instant, Op, Phase, Reply};

use super::{World, at, promised};
use crate::props::{Section, Tenure, Violation};
use crate::setup::{Planted, Setup};
use crate::world::Log;

impl World {
    pub(super) fn on_event(&mut self, setup: &Setup, c: usize, ev: Event) -> Result<(), Violation> {
        match ev {
            Event::Acquired {
                token,
                validity,
                sent_at,
                ..
            } => {
                let issued = self.issued_span(c);
                let tenure = Tenure {
                    client: c,
                    token,
                    issued,
                };
                if promised(setup, "token_order") {
                    crate::props::check_token_order(&self.tenures, &tenure)?;
                }
                self.tenures.push(tenure);
                if promised(setup, "mutual_exclusion")
                    && let Some(other) = (0..self.locks.len())
                        .find(|o| *o != c && self.locks[*o].phase() == Phase::Held)
                {
                    return Err(Violation::new(
                        "mutual_exclusion",
                        format!("c{c} acquired while c{other} holds the lease"),
                    ));
                }
                let mut trusted = validity;
                if setup.planted == Some(Planted::ValidityFromReply) {
                    trusted = trusted + self.now.saturating_since(sent_at);
                }
                self.check_oracle(setup, c, trusted)?;
                self.apps[c].section = Some(Section {
                    token,
                    issued,
                    read: None,
                });
            }
            Event::Extended { validity, .. } => self.check_oracle(setup, c, validity)?,
            Event::AcquireFailed(err) => {
                if promised(setup, "misclassified") {
                    self.check_classification(setup, c, &err)?;
                }
            }
            Event::Lost { .. } | Event::Released { .. } => self.apps[c].section = None,
        }
        Ok(())
    }

    /// The first and last server operation that issued client `c`'s new lease (its winning
    /// round's grants and the fence write-backs after the first of them), as the simulator does.
    fn issued_span(&mut self, c: usize) -> (u64, u64) {
        let nonce = self.locks[c].lease_value().map(|v| v.nonce);
        self.apps[c].issue_log.take_span(nonce, self.op_seq)
    }

    /// The servers keep the key on a quorum of the holder's slots at least until `validity`.
    pub(super) fn check_oracle(
        &self,
        setup: &Setup,
        c: usize,
        validity: Instant,
    ) -> Result<(), Violation> {
        if !promised(setup, "validity_oracle") {
            return Ok(());
        }
        let lock = &self.locks[c];
        let Some(value) = lock.lease_value() else {
            return Ok(());
        };
        let me = Owner { client: c, value };
        let covering = lock
            .held_slots()
            .iter()
            .filter(
                |s| matches!(self.keys[*s].stored(), Some((o, exp)) if o == me && exp >= validity),
            )
            .count();
        if covering < lock.quorum() {
            return Err(Violation::new(
                "validity_oracle",
                format!(
                    "c{c} trusts its lease until {} but only {covering}/{} slots keep the key that long",
                    at(validity),
                    lock.quorum()
                ),
            ));
        }
        Ok(())
    }

    /// A failed round's cause must follow from what the client was told in that round:
    /// `Contended` only when the `Held` answers alone rule out a quorum, `QuorumUnreachable`
    /// only after an error, `SlowReplies` naming a slow slot and never when `Held` answers
    /// ruled out a quorum.
    fn check_classification(
        &self,
        setup: &Setup,
        c: usize,
        err: &AcquireError,
    ) -> Result<(), Violation> {
        let slots = setup.layout.slots();
        let slack = slots - setup.layout.quorum();
        let seen = &self.apps[c].round;
        let held = seen.held_count();
        let wrong = match err {
            AcquireError::Contended { .. } => held <= slack,
            AcquireError::QuorumUnreachable { .. } => !seen.error,
            AcquireError::SlowReplies { slots, .. } => held > slack || slots.is_empty(),
            _ => false,
        };
        if wrong {
            return Err(Violation::new(
                "misclassified",
                format!(
                    "c{c} reported {} after its round saw {held} Held of {slots} slots{}",
                    err.reason(),
                    if seen.error {
                        " and an error"
                    } else {
                        ", no error"
                    }
                ),
            ));
        }
        Ok(())
    }

    /// The section's read; false when the resource rejected it (the section ends).
    pub(super) fn read(&mut self, setup: &Setup, c: usize, log: &mut Log) -> bool {
        let Some(sec) = self.apps[c].section.as_mut() else {
            return false;
        };
        let fencing = setup.planted != Some(Planted::NoFencing);
        let value = self.resource.read(sec.token, fencing);
        log.note(|| match value {
            Some(v) => format!("  resource: c{c} reads {v} with token {}", sec.token),
            None => format!("  resource: rejects c{c}'s read with token {}", sec.token),
        });
        match value {
            Some(v) => sec.read = Some(v),
            None => self.apps[c].section = None,
        }
        value.is_some()
    }

    pub(super) fn write(
        &mut self,
        setup: &Setup,
        c: usize,
        log: &mut Log,
    ) -> Result<(), Violation> {
        let Some(sec) = self.apps[c].section.take() else {
            return Ok(());
        };
        let fencing = setup.planted != Some(Planted::NoFencing);
        let outcome = self.resource.write(c, &sec, fencing, log);
        match outcome {
            Err(v) if promised(setup, v.property) => Err(v),
            _ => Ok(()),
        }
    }
}

pub(super) fn owner_text(o: Option<Owner>) -> String {
    match o {
        Some(o) => format!("c{}", o.client),
        None => "nobody".into(),
    }
}

pub(super) fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Acquire { .. } => "acquire",
        Op::Extend { .. } => "extend",
        Op::Check { .. } => "check",
        Op::Release { .. } => "release",
        Op::RaiseFence { .. } => "raise_fence",
        Op::ForceRelease { .. } => "force_release",
        // the rueidislock dialect (the checker's worlds do not run it yet)
        Op::CompatAcquire { .. } | Op::CompatExtend { .. } | Op::CompatCheck { .. } => op.name(),
        Op::Wait { .. } => "wait",
    }
}

pub(super) fn reply_text(r: &Reply) -> String {
    match r {
        Reply::Granted { token } => format!("granted token {token}"),
        Reply::Held { holder, .. } => format!("held by {}", holder.as_deref().unwrap_or("?")),
        Reply::Error(e) => format!("error ({})", e.kind),
        other => format!("{other:?}"),
    }
}

pub(super) fn event_text(ev: &Event) -> String {
    match ev {
        Event::Acquired {
            token, validity, ..
        } => {
            format!("Acquired token {token}, valid until {}", at(*validity))
        }
        Event::Extended { validity, .. } => format!("Extended, valid until {}", at(*validity)),
        Event::AcquireFailed(e) => format!("AcquireFailed {}", e.reason()),
        Event::Lost { reason, .. } => format!("Lost ({})", reason.reason()),
        Event::Released { .. } => "Released".into(),
    }
}
