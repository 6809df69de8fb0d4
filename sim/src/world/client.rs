//! Clients: the workload around each client's `Lock` machines (think, acquire, read-modify-write
//! the resource, release) and the online checks of what the machines report.
//!
//! **Invariant:** a machine sees only what the network delivered, at its own clock's reading;
//! every failed acquire is judged against the round as delivered
//! ([`leasehold_core::testkit::classify`]), every lease against the servers' keys.

use leasehold_core::testkit::IssueLog;
use leasehold_core::testkit::classify::RoundLog;
use leasehold_core::wire::batch;
use leasehold_core::{
    AcquireError, AcquireMode, Event, Instant, Lock, Op, Reply, RequestId, SlotError, SlotErrorKind,
};

use super::clock::SkewedClock;
use super::queue::{Ev, Msg};
use super::{World, nanos};
use crate::check::Property;
use crate::config::uniform;
use crate::rng::{chance, index};

/// A critical section in progress.
pub(super) struct Tenure {
    lock: usize,
    token: u64,
    acquired_at: u64,
    generation: u32,
    /// The counter value the critical section read from the resource, once the reply is in.
    read: Option<u64>,
}

/// One client's state about one lock.
pub(super) struct PerLock {
    /// The real machine.
    pub(super) machine: Lock,
    /// Generation of the armed wake-up (older wake-ups are stale).
    timer_gen: u32,
    /// True time of the armed wake-up.
    timer_at: Option<u64>,
    /// Server operations that issued the current acquisition (`Some(nonce)` for a grant, `None`
    /// for a fence write-back) and their true times, for `token_order`.
    issue_log: IssueLog,
    /// The current acquire round as delivered, to judge its classification.
    round: RoundLog,
}

/// One client process.
pub(super) struct Client {
    pub(super) locks: Vec<PerLock>,
    /// Paused (GC) until this true time: its events wait.
    pub(super) pause_until: u64,
    pub(super) clock: SkewedClock,
    tenure: Option<Tenure>,
    tenure_gen: u32,
    attempt_started: u64,
    /// Acquire requests in flight and their true send times, for reply-time percentiles.
    acquire_sent: Vec<(RequestId, u64)>,
}

impl Client {
    pub(super) fn new(machines: Vec<Lock>, clock: SkewedClock) -> Client {
        Client {
            locks: machines
                .into_iter()
                .map(|machine| PerLock {
                    round: RoundLog::new(machine.config().layout.slots(), machine.quorum())
                        .with_replication(machine.config().replication),
                    machine,
                    timer_gen: 0,
                    timer_at: None,
                    issue_log: IssueLog::default(),
                })
                .collect(),
            pause_until: 0,
            clock,
            tenure: None,
            tenure_gen: 0,
            attempt_started: 0,
            acquire_sent: Vec::new(),
        }
    }

    /// The grants and fence write-backs that issued lock `l`'s current acquisition.
    pub(super) fn issue_log(&mut self, l: usize) -> &mut IssueLog {
        &mut self.locks[l].issue_log
    }

    /// The connection to `slot` is dropping: the open round of lock `l` (or one its machine
    /// starts while handling the drop) gets no reply from it.
    pub(super) fn cut(&mut self, l: usize, slot: usize) {
        let pl = &mut self.locks[l];
        pl.round.cut(pl.machine.phase(), slot);
    }

    /// Lock `l`'s machine has handled the drop and its commands are drained.
    pub(super) fn settled(&mut self, l: usize) {
        self.locks[l].round.settled();
    }
}

impl World {
    /// Client `c`'s clock now.
    pub(super) fn local(&self, c: usize) -> Instant {
        Instant::from_nanos(self.clients[c].clock.read(self.now))
    }

    /// The earliest true time at which client `c`'s clock reads at least `local`.
    fn client_true(&self, c: usize, local: u64) -> u64 {
        self.clients[c].clock.earliest(local, self.now)
    }

    pub(super) fn wake(&mut self, c: usize, l: usize, generation: u32) {
        if self.clients[c].locks[l].timer_gen == generation {
            self.clients[c].locks[l].timer_at = None;
            let now = self.local(c);
            self.clients[c].locks[l].machine.handle_timeout(now);
            self.drain(c, l);
        }
    }

    /// A message from server `s` about lock `l` reaches client `c` (unless its link was reset).
    pub(super) fn deliver(&mut self, c: usize, s: usize, l: usize, epoch: u32, msg: Msg) {
        if self.links[self.link(c, s)].epoch != epoch {
            return; // the connection was reset: the message is lost
        }
        let now = self.local(c);
        match msg {
            Msg::Reply(id, reply) => {
                let cl = &mut self.clients[c];
                if let Some(pos) = cl.acquire_sent.iter().position(|(r, _)| *r == id) {
                    let (_, sent) = cl.acquire_sent.swap_remove(pos);
                    self.history.reply_times.push(self.now - sent);
                }
                let pl = &mut cl.locks[l];
                pl.round.delivered(&pl.machine, now, id, &reply);
                pl.machine.handle_reply(now, id, reply);
            }
            Msg::Invalidate(slot) => self.clients[c].locks[l]
                .machine
                .handle_key_changed(now, slot),
        }
        self.drain(c, l);
    }

    pub(super) fn read_reply(&mut self, c: usize, generation: u32, value: Option<u64>) {
        if let Some(t) = &mut self.clients[c].tenure
            && t.generation == generation
        {
            t.read = value;
        }
    }

    pub(super) fn start_iteration(&mut self, c: usize) {
        let l = index(&mut self.rng, self.cfg.locks);
        let now = self.local(c);
        let mode = if chance(&mut self.rng, self.cfg.wait_fraction) {
            AcquireMode::Wait {
                deadline: now + self.cfg.wait_timeout,
            }
        } else {
            AcquireMode::Try
        };
        self.clients[c].attempt_started = self.now;
        self.clients[c].locks[l].issue_log.clear();
        if self.clients[c].locks[l].machine.acquire(now, mode).is_err() {
            self.think(c);
            return;
        }
        self.drain(c, l);
    }

    fn think(&mut self, c: usize) {
        let t = uniform(&mut self.rng, self.cfg.think.0, self.cfg.think.1);
        self.push(self.now + nanos(t), Ev::Think { c: c as u32 });
    }

    pub(super) fn transmit(&mut self, c: usize, generation: u32) {
        let Some(t) = &self.clients[c].tenure else {
            return;
        };
        if t.generation != generation {
            return;
        }
        let (l, token, acquired_at, read) = (t.lock, t.token, t.acquired_at, t.read);
        // The write (the value read plus one) was decided at the start of the critical section;
        // it goes out now, even if the process was paused in between (Kleppmann's scenario 1).
        // A section whose read was rejected or never answered has nothing to write.
        if let Some(read) = read {
            let lat = self.latency();
            self.push(
                self.now + lat,
                Ev::WriteArrive {
                    l: l as u32,
                    c: c as u32,
                    token,
                    acquired_at,
                    read,
                },
            );
        }
        let now = self.local(c);
        let released = self.clients[c].locks[l].machine.release(now).is_ok();
        self.drain(c, l); // Released, or a Lost that release() processed first, ends the tenure
        if !released
            && self.clients[c]
                .tenure
                .as_ref()
                .is_some_and(|t| t.generation == generation)
        {
            // only reachable by a planted bug that ignored its loss earlier: end the tenure here
            self.history.released(l, c, self.now);
            self.clients[c].tenure = None;
            self.think(c);
        }
    }

    /// Move a machine's commands to the network and its events to the workload and history.
    pub(super) fn drain(&mut self, c: usize, l: usize) {
        let mut next = self.clients[c].locks[l].machine.poll_command();
        while let Some(cmd) = next.take() {
            next = self.clients[c].locks[l].machine.poll_command();
            let s = self.server_of(cmd.slot);
            // acquires of one round (releases of one value) for slots on this one server go as
            // one script, as the adapter sends them (`leasehold_core::wire::batch`). The
            // replies still travel one by one, so a reset can lose some of them where Redis
            // answers a batch with one reply: the simulator allows more than Redis does
            let batch = if self.servers.len() == 1 {
                let machine = &mut self.clients[c].locks[l].machine;
                batch::gather(cmd, &mut next, || machine.poll_command(), |_| true)
            } else {
                Vec::new()
            };
            let group = if batch.is_empty() {
                std::slice::from_ref(&cmd)
            } else {
                &batch[..]
            };
            for one in group {
                self.clients[c].locks[l].round.sent(one);
                if let Op::Acquire { .. } | Op::CompatAcquire { .. } = one.op {
                    self.clients[c].acquire_sent.push((one.request, self.now));
                }
            }
            let li = self.link(c, s);
            if !self.links[li].up {
                let epoch = self.links[li].epoch;
                for one in group {
                    let reply = Reply::Error(SlotError::new(
                        SlotErrorKind::Disconnected,
                        "connection down",
                    ));
                    self.push(
                        self.now,
                        Ev::ToClient {
                            c: c as u32,
                            s: s as u32,
                            l: l as u32,
                            epoch,
                            msg: Msg::Reply(one.request, reply),
                        },
                    );
                }
                continue;
            }
            let (at, epoch) = self.send_at(li, true);
            let ev = if batch.is_empty() {
                Ev::Arrive {
                    c: c as u32,
                    s: s as u32,
                    l: l as u32,
                    epoch,
                    cmd,
                }
            } else {
                Ev::ArriveBatch {
                    c: c as u32,
                    s: s as u32,
                    l: l as u32,
                    epoch,
                    cmds: batch,
                }
            };
            self.push(at, ev);
        }
        while let Some(ev) = self.clients[c].locks[l].machine.poll_event() {
            self.on_event(c, l, ev);
        }
        // (Re)arm the machine's timer.
        let want = self.clients[c].locks[l]
            .machine
            .poll_timeout()
            .map(|t| self.client_true(c, t.as_nanos()));
        let pl = &mut self.clients[c].locks[l];
        if want != pl.timer_at {
            pl.timer_gen = pl.timer_gen.wrapping_add(1);
            pl.timer_at = want;
            if let Some(at) = want {
                let generation = pl.timer_gen;
                self.push(
                    at.max(self.now),
                    Ev::Wake {
                        c: c as u32,
                        l: l as u32,
                        generation,
                    },
                );
            }
        }
    }

    fn on_event(&mut self, c: usize, l: usize, ev: Event) {
        match ev {
            Event::Acquired {
                token,
                validity,
                sent_at,
                ..
            } => {
                #[cfg_attr(not(feature = "planted-bugs"), allow(unused_mut))]
                let mut validity_true = self.client_true(c, validity.as_nanos());
                #[cfg(feature = "planted-bugs")]
                if self.planted(crate::config::PlantedBug::ValidityFromReply) {
                    // planted: trust the lease from the reply time, as if validity were counted then
                    validity_true += self.clients[c]
                        .clock
                        .read(self.now)
                        .saturating_sub(sent_at.as_nanos());
                }
                #[cfg(not(feature = "planted-bugs"))]
                let _ = sent_at;
                let issued = self.issued_span(c, l);
                self.history.acquired(l, c, token, self.now, issued);
                self.note(Some(l), "acquired", format!("c{c} token {token}"));
                self.check_oracle(c, l, validity_true);
                self.clients[c].tenure_gen = self.clients[c].tenure_gen.wrapping_add(1);
                let generation = self.clients[c].tenure_gen;
                self.clients[c].tenure = Some(Tenure {
                    lock: l,
                    token,
                    acquired_at: self.now,
                    generation,
                    read: None,
                });
                // a critical section is a read-modify-write of the resource's counter: it reads
                // when it starts and writes the value plus one when it ends
                let lat = self.latency();
                self.push(
                    self.now + lat,
                    Ev::ReadArrive {
                        l: l as u32,
                        c: c as u32,
                        token,
                        generation,
                    },
                );
                let hold = uniform(&mut self.rng, self.cfg.hold.0, self.cfg.hold.1);
                #[cfg_attr(not(feature = "planted-bugs"), allow(unused_mut))]
                let mut at = self.now + nanos(hold);
                #[cfg(feature = "planted-bugs")]
                if self.planted(crate::config::PlantedBug::ValidityFromReply) {
                    at = at.min(validity_true.saturating_sub(1)).max(self.now);
                }
                self.push(
                    at,
                    Ev::Transmit {
                        c: c as u32,
                        generation,
                    },
                );
            }
            Event::Extended { validity, .. } => {
                let v = self.client_true(c, validity.as_nanos());
                self.check_oracle(c, l, v);
            }
            Event::AcquireFailed(err) => {
                self.check_classification(c, l, &err);
                if let AcquireError::DeadlineExceeded { .. } = &err {
                    self.history.check_liveness(
                        l,
                        c,
                        self.clients[c].attempt_started,
                        self.now,
                        nanos(self.cfg.lock.ttl),
                    );
                }
                self.history.outcome(err.reason());
                if !matches!(err, AcquireError::Contended { .. }) {
                    self.note(Some(l), "timeout", format!("c{c}: {}", err.reason()));
                }
                self.think(c);
            }
            Event::Lost { reason, .. } => {
                #[cfg(feature = "planted-bugs")]
                if self.planted(crate::config::PlantedBug::ValidityFromReply)
                    && reason == leasehold_core::LostReason::ExpiredLocally
                {
                    // planted: the buggy client ignores the local expiry and keeps going
                    return;
                }
                self.history.lost(l, c, self.now, reason.reason());
                self.note(Some(l), "lost", format!("c{c}: {reason}"));
                self.clients[c].tenure = None;
                self.think(c);
            }
            Event::Released { .. } => {
                self.history.released(l, c, self.now);
                self.note(Some(l), "released", format!("c{c}"));
                self.clients[c].tenure = None;
                self.think(c);
            }
        }
    }

    /// When the servers issued client `c`'s current lease of lock `l`: the true times of the
    /// first and last of its winning round's grants and fence write-backs.
    fn issued_span(&mut self, c: usize, l: usize) -> (u64, u64) {
        let pl = &mut self.clients[c].locks[l];
        let nonce = pl.machine.lease_value().map(|v| v.nonce);
        pl.issue_log.take_span(nonce, self.now)
    }

    /// With no clock jump and drift within bounds, the servers keep the key on a quorum at least
    /// until the client's validity instant (in true time).
    fn check_oracle(&mut self, c: usize, l: usize, validity_true: u64) {
        let machine = &self.clients[c].locks[l].machine;
        let Some(value) = machine.lease_value() else {
            return;
        };
        let (held, quorum) = (machine.held_slots(), machine.quorum());
        let mut covering = 0;
        for slot in held.iter() {
            let s = self.server_of(slot);
            let sv = &self.servers[s];
            if let Some((o, exp)) = sv.keys[l * self.slots + slot].stored()
                && o.client == c
                && o.value == value
                && sv.clock.to_true(exp.as_nanos()) >= validity_true
            {
                covering += 1;
            }
        }
        if covering < quorum {
            self.history.violation(
                Property::ValidityOracle,
                self.now,
                format!("client {c} lock {l}: trusts its lease until t={validity_true}ns but only {covering}/{quorum} slots keep the key that long"),
            );
        }
    }

    /// The failed acquire says what the slots really answered its round (as delivered).
    fn check_classification(&mut self, c: usize, l: usize, err: &AcquireError) {
        if let Err(why) = self.clients[c].locks[l].round.judge(err) {
            self.history.violation(
                Property::Misclassified,
                self.now,
                format!("client {c} lock {l}: {why}"),
            );
        }
    }
}
