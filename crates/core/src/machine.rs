//! The lease state machine: [`Lock`].

mod confirm;

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::{ConfigError, Dialect, HolderId, LockConfig, LockName, MAX_SLOTS};
use crate::outcome::{AcquireError, AcquireMode, Event, LostReason, SlotSet, UsageError};
use crate::replication::Gate;
use crate::rng::SplitMix64;
use crate::time::Instant;
use crate::wire::{
    Command, LeaseValue, Op, Reply, RequestId, SlotError, SlotErrorKind, SlotKeys, write_value,
};

/// The coarse state of a [`Lock`], for display and assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing in progress; `acquire` is legal.
    Idle,
    /// An acquire round is out; waiting for slot replies.
    Acquiring,
    /// A quorum was granted; raising the fence counters on a majority (multi-slot layouts only).
    WritingBack,
    /// `wait` mode between rounds.
    Backoff,
    /// Holding a lease; `release` is legal.
    Held,
}

impl Phase {
    /// The phase's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Acquiring => "acquiring",
            Phase::WritingBack => "writing_back",
            Phase::Backoff => "backoff",
            Phase::Held => "held",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Acquire,
    Fence,
    Extend,
    Check,
    Release,
    /// The `WAIT` confirming write request `write` (with `LockConfig::replication`).
    Wait {
        write: RequestId,
    },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: RequestId,
    slot: usize,
    purpose: Purpose,
    value: LeaseValue,
    sent: Instant,
}

/// What one slot said in the current acquire round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotAnswer {
    Waiting,
    Granted(u64),
    Held,
    Failed,
    Silent,
}

/// One acquire attempt across rounds (`wait` mode retries).
#[derive(Debug, Clone)]
struct Attempt {
    mode: AcquireMode,
    started: Instant,
    rounds: u32,
    last_cause: Option<AcquireError>,
}

#[derive(Debug, Clone)]
struct Round {
    value: LeaseValue,
    sent_at: Instant,
    wait_until: Instant,
    answers: [SlotAnswer; MAX_SLOTS],
    contended: Option<(Option<String>, Option<Duration>)>,
    errors: Vec<(usize, SlotError)>,
    token: u64,
    fence_acks: SlotSet,
    fence_pending: SlotSet,
}

#[derive(Debug, Clone)]
struct Extension {
    /// Requests of this round have ids from here on; older replies belong to earlier rounds.
    first_request: RequestId,
    sent_at: Instant,
    wait_until: Instant,
    pending: SlotSet,
    ok: SlotSet,
}

#[derive(Debug, Clone)]
struct Lease {
    value: LeaseValue,
    token: u64,
    acquired_sent_at: Instant,
    validity: Instant,
    held: SlotSet,
    next_extend: Instant,
    extension: Option<Extension>,
    capped: bool,
    taken_by: Option<Option<String>>,
    server_lost_data: bool,
    /// Slots with a read-only check in flight.
    checking: SlotSet,
    /// Slots whose key changed again while a check was in flight: check once more after it.
    recheck: SlotSet,
}

impl Lease {
    /// An extend or check reply that says the slot is no longer ours removes it from the lease
    /// and remembers why (taken by another holder, or gone with or without its fence counter).
    fn note_slot_gone(&mut self, slot: usize, reply: Reply) {
        match reply {
            Reply::NotOwner { holder } => {
                self.held.remove(slot);
                self.taken_by = Some(holder);
            }
            Reply::Missing { fence_present } => {
                self.held.remove(slot);
                self.server_lost_data |= !fence_present;
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    Idle,
    Acquiring(Attempt, Round),
    WritingBack(Attempt, Round),
    Backoff(Attempt, Instant),
    Held(Lease),
}

/// Counters for observability and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Replies whose request id was unknown (duplicates, late after pruning, forged).
    pub ignored_replies: u64,
    /// Grants that arrived after their round ended; each got a cleanup release.
    pub late_grants_cleaned: u64,
    /// Commands emitted.
    pub commands: u64,
    /// Grants that `WAIT` did not confirm in time; each got a cleanup release.
    pub grants_not_replicated: u64,
}

/// A sans-IO lease lock on one lock name, held over one or more slots with a majority quorum.
///
/// The machine performs no I/O, reads no clock and draws no OS randomness: the caller passes `now`
/// (on any monotonic clock, as [`Instant`]) into every call and a seed at construction.
///
/// # The driving loop
///
/// Like quinn-proto's `Connection` and str0m's `Rtc`, the caller owns the loop:
///
/// 1. feed **one** input: an application call ([`Lock::acquire`], [`Lock::release`],
///    [`Lock::cancel`]) or a network/timer input ([`Lock::handle_reply`],
///    [`Lock::handle_key_changed`], [`Lock::handle_disconnected`], [`Lock::handle_timeout`]);
/// 2. drain **every** output: send each [`Lock::poll_command`] to its slot, deliver each
///    [`Lock::poll_event`] to the application;
/// 3. sleep until [`Lock::poll_timeout`] (or until the next input), then call
///    [`Lock::handle_timeout`] with the time you woke.
///
/// ```
/// use std::time::Duration;
/// use leasehold_core::{AcquireMode, Event, HolderId, Instant, Lock, LockConfig, LockName, Reply};
///
/// let mut lock = Lock::new(LockConfig::default(), LockName::new("jobs")?, HolderId::new("me")?, 7)?;
/// let now = Instant::from_millis(1_000);
/// lock.acquire(now, AcquireMode::Try)?;
/// let cmd = lock.poll_command().expect("one acquire command");
/// // ... send cmd to Redis; here the reply comes back 1 ms later:
/// lock.handle_reply(now + Duration::from_millis(1), cmd.request, Reply::Granted { token: 42 });
/// assert!(matches!(lock.poll_event(), Some(Event::Acquired { token: 42, .. })));
/// assert!(lock.poll_timeout().is_some()); // the next extension
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Every input first processes the timers that are due at its `now`, so a lease whose validity
/// instant has passed is reported lost before anything else happens. Spurious `handle_timeout`
/// calls are no-ops. Replies that are late, duplicated, unknown or arrive after release are
/// harmless; a grant that arrives after its round ended is answered with a cleanup release.
#[derive(Debug)]
#[cfg_attr(feature = "testkit", derive(Clone))]
pub struct Lock {
    config: LockConfig,
    name: LockName,
    holder: HolderId,
    keys: SlotKeys,
    slots: usize,
    quorum: usize,
    window: Duration,
    rng: SplitMix64,
    next_request: u64,
    state: State,
    pending: Vec<Pending>,
    commands: VecDeque<Command>,
    events: VecDeque<Event>,
    disconnected: SlotSet,
    last_reply_time: [Option<Duration>; MAX_SLOTS],
    stats: Stats,
    /// The client's wall clock: `(at, unix_ms)` read at `at` ([`Lock::set_wall_clock`]).
    wall: Option<(Instant, u64)>,
    /// Write replies awaiting their `WAIT` (empty unless `config.replication` is set).
    unconfirmed: Gate<Pending>,
}

impl Lock {
    /// A machine for lock `name`, owned by `holder`, with randomness from `seed`.
    pub fn new(
        config: LockConfig,
        name: LockName,
        holder: HolderId,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let keys = SlotKeys::for_config(&config, &name);
        let slots = config.layout.slots();
        let quorum = config.layout.quorum();
        let window = config.validity_window();
        Ok(Lock {
            keys,
            slots,
            quorum,
            window,
            name,
            holder,
            config,
            rng: SplitMix64::new(seed),
            next_request: 1,
            state: State::Idle,
            // room for a round, its write-back and a release without reallocating, sized to the
            // layout: a held lease costs its machine, so 10,000 of them must stay small
            pending: Vec::with_capacity(2 * slots + 2),
            commands: VecDeque::with_capacity(slots + 1),
            events: VecDeque::with_capacity(4),
            disconnected: SlotSet::EMPTY,
            last_reply_time: [None; MAX_SLOTS],
            stats: Stats::default(),
            wall: None,
            unconfirmed: Gate::default(),
        })
    }

    // ---- A. Getters -------------------------------------------------------------------------

    /// The lock's name.
    #[must_use]
    pub fn name(&self) -> &LockName {
        &self.name
    }
    /// The holder id written into values.
    #[must_use]
    pub fn holder(&self) -> &HolderId {
        &self.holder
    }
    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &LockConfig {
        &self.config
    }
    /// Key names per slot.
    #[must_use]
    pub fn keys(&self) -> &SlotKeys {
        &self.keys
    }
    /// Slots needed for a quorum.
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.quorum
    }
    /// Counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }
    /// Number of requests awaiting replies (including rounds that already ended).
    #[must_use]
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// The coarse state.
    #[must_use]
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::Acquiring(..) => Phase::Acquiring,
            State::WritingBack(..) => Phase::WritingBack,
            State::Backoff(..) => Phase::Backoff,
            State::Held(_) => Phase::Held,
        }
    }

    /// The held lease's fencing token.
    #[must_use]
    pub fn token(&self) -> Option<u64> {
        match &self.state {
            State::Held(l) => Some(l.token),
            _ => None,
        }
    }

    /// The held lease's validity instant.
    #[must_use]
    pub fn validity(&self) -> Option<Instant> {
        match &self.state {
            State::Held(l) => Some(l.validity),
            _ => None,
        }
    }

    /// The held lease's value (its nonce), as written to Redis.
    #[must_use]
    pub fn lease_value(&self) -> Option<LeaseValue> {
        match &self.state {
            State::Held(l) => Some(l.value),
            _ => None,
        }
    }

    /// Slots currently believed held.
    #[must_use]
    pub fn held_slots(&self) -> SlotSet {
        match &self.state {
            State::Held(l) => l.held,
            _ => SlotSet::EMPTY,
        }
    }

    /// Tell the machine how long `slot` took to reply recently (as measured by the caller on
    /// earlier machines). Used only to say which `slot_wait` would have sufficed in
    /// [`AcquireError::SlowReplies`].
    pub fn note_reply_time(&mut self, slot: usize, took: Duration) {
        if let Some(t) = self.last_reply_time.get_mut(slot) {
            *t = Some(took);
        }
    }

    /// Append the Redis value string for `value` (as carried in a [`Command`]) to `out`.
    pub fn write_value(&self, value: LeaseValue, out: &mut String) {
        match self.config.dialect {
            Dialect::Leasehold => write_value(out, value, &self.holder),
            Dialect::Rueidislock => crate::wire::compat::write_value(out, value),
        }
    }

    /// The held lease's fencing token, `None` when not holding *or* when the dialect has no
    /// fence counter ([`Dialect::Rueidislock`], whose events carry token 0).
    #[must_use]
    pub fn fencing_token(&self) -> Option<u64> {
        self.token().filter(|_| self.config.dialect.has_fence())
    }

    /// Tell the machine that at `now` the client's wall clock read `unix_ms` (ms since 1970).
    /// Only the rueidislock dialect uses it: its expiries are absolute (`PXAT`), the wall clock
    /// at sending plus the ttl, as rueidislock computes them. Call it again whenever the wall
    /// clock should be re-read (the adapter does before each acquire and extension). Without
    /// a call, the wall clock is `now` itself (the simulator's clocks).
    pub fn set_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        self.wall = Some((now, unix_ms));
    }

    /// The client's wall clock at `now`, Unix ms.
    fn wall_ms(&self, now: Instant) -> u64 {
        let now_ms = now.as_nanos() / 1_000_000;
        match self.wall {
            None => now_ms,
            Some((at, ms)) => {
                let at_ms = at.as_nanos() / 1_000_000;
                (ms.saturating_add(now_ms)).saturating_sub(at_ms)
            }
        }
    }

    // ---- B. Handlers ------------------------------------------------------------------------

    /// Feed the reply to request `id`. Unknown and duplicate ids are ignored.
    pub fn handle_reply(&mut self, now: Instant, id: RequestId, reply: Reply) {
        self.handle_timeout(now);
        // a dialect without fence counters grants without a token; inside the machine that is
        // token 0 (never exposed as a token: `fencing_token` is `None` then)
        let reply = match reply {
            Reply::GrantedUnfenced => Reply::Granted { token: 0 },
            other => other,
        };
        let Some(pos) = self.pending.iter().position(|p| p.id == id) else {
            self.stats.ignored_replies += 1;
            return;
        };
        let p = self.pending.swap_remove(pos);
        let in_table = p.slot < MAX_SLOTS;
        #[cfg(feature = "planted-bugs")]
        let in_table = if crate::planted::on(crate::planted::Mutant::HandleReplyLe) {
            p.slot <= MAX_SLOTS
        } else {
            in_table
        };
        if in_table {
            self.last_reply_time[p.slot] = Some(now.saturating_since(p.sent));
        }
        if let Some(p) = self.gate_reply(now, p, &reply) {
            self.dispatch(now, p, reply);
        }
    }

    fn dispatch(&mut self, now: Instant, p: Pending, reply: Reply) {
        match p.purpose {
            Purpose::Acquire => self.on_acquire_reply(now, p, reply),
            Purpose::Fence => self.on_fence_reply(now, p, reply),
            Purpose::Extend => self.on_extend_reply(now, p, reply),
            Purpose::Check => self.on_check_reply(now, p, reply),
            Purpose::Release | Purpose::Wait { .. } => {}
        }
    }

    /// A slot's key changed (a client-tracking invalidation or similar push). A waiter retries at
    /// once, unless its own write to that slot is still in flight (the change may be its own: a
    /// push about it arrives before the write's reply; the backoff timer still retries). A holder
    /// re-checks the key read-only, so its own extensions cannot start a notification loop.
    pub fn handle_key_changed(&mut self, now: Instant, slot: usize) {
        self.handle_timeout(now);
        let own_write_in_flight = self.pending.iter().any(|p| {
            p.slot == slot
                && matches!(
                    p.purpose,
                    Purpose::Acquire | Purpose::Release | Purpose::Extend | Purpose::Wait { .. }
                )
        });
        match &mut self.state {
            State::Backoff(..) if !own_write_in_flight => self.start_round(now),
            State::Held(lease) if lease.held.contains(slot) => {
                if lease.checking.contains(slot) {
                    // the check in flight may have run before this change: check again after it
                    lease.recheck.insert(slot);
                } else {
                    lease.checking.insert(slot);
                    let value = lease.value;
                    let op = self.config.dialect.check_op(value);
                    self.send(now, slot, Purpose::Check, value, op);
                }
            }
            _ => {}
        }
    }

    /// The connection to `slot` dropped: its outstanding requests fail now, and until
    /// [`Lock::handle_reconnected`] a lease that runs out is reported as
    /// [`LostReason::Disconnected`].
    pub fn handle_disconnected(&mut self, now: Instant, slot: usize) {
        self.handle_timeout(now);
        self.disconnected.insert(slot);
        let ids: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|p| p.slot == slot && p.purpose != Purpose::Release)
            .map(|p| p.id)
            .collect();
        for id in ids {
            self.handle_reply(
                now,
                id,
                Reply::Error(SlotError::new(
                    SlotErrorKind::Disconnected,
                    "connection lost before the reply",
                )),
            );
        }
        self.pending.retain(|p| p.slot != slot);
    }

    /// The connection to `slot` is back.
    pub fn handle_reconnected(&mut self, now: Instant, slot: usize) {
        self.handle_timeout(now);
        self.disconnected.remove(slot);
    }

    /// Process every timer due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Each step either changes state or moves a deadline past `now`; bound the loop anyway.
        for _ in 0..64 {
            let Some(t) = self.poll_timeout() else { return };
            if t > now {
                return;
            }
            self.fire(now);
        }
    }

    // ---- C. Application commands ------------------------------------------------------------

    /// Start acquiring. Outcome arrives as [`Event::Acquired`] or [`Event::AcquireFailed`].
    pub fn acquire(&mut self, now: Instant, mode: AcquireMode) -> Result<(), UsageError> {
        self.handle_timeout(now);
        if !matches!(self.state, State::Idle) {
            return Err(UsageError::Busy);
        }
        let attempt = Attempt {
            mode,
            started: now,
            rounds: 0,
            last_cause: None,
        };
        self.state = State::Backoff(attempt, now);
        if let AcquireMode::Wait { deadline } = mode
            && deadline <= now
        {
            self.fail_attempt(now, None, true);
            return Ok(());
        }
        self.start_round(now);
        Ok(())
    }

    /// Release the held lease: compare-and-delete on every held slot, then [`Event::Released`].
    pub fn release(&mut self, now: Instant) -> Result<(), UsageError> {
        self.handle_timeout(now);
        let State::Held(lease) = std::mem::replace(&mut self.state, State::Idle) else {
            return Err(UsageError::NotHeld);
        };
        for slot in lease.held.iter() {
            self.send(
                now,
                slot,
                Purpose::Release,
                lease.value,
                Op::Release { value: lease.value },
            );
        }
        self.events
            .push_back(Event::Released { token: lease.token });
        Ok(())
    }

    /// Abandon an acquire in progress ([`AcquireError::Cancelled`]) and delete whatever it may
    /// have written. No-op when idle or holding.
    pub fn cancel(&mut self, now: Instant) {
        self.handle_timeout(now);
        let state = std::mem::replace(&mut self.state, State::Idle);
        match state {
            State::Acquiring(_, round) | State::WritingBack(_, round) => {
                self.cleanup_round(now, &round);
                self.events
                    .push_back(Event::AcquireFailed(AcquireError::Cancelled));
            }
            State::Backoff(..) => {
                self.events
                    .push_back(Event::AcquireFailed(AcquireError::Cancelled));
            }
            other => self.state = other,
        }
    }

    // ---- D. Polls ---------------------------------------------------------------------------

    /// The next command to send.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Lock::handle_timeout`] must next be called, if anything is pending.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Idle => None,
            State::Acquiring(_, r) => Some(r.wait_until),
            State::WritingBack(_, r) => Some(r.wait_until),
            State::Backoff(_, until) => Some(*until),
            State::Held(l) => {
                let next = match &l.extension {
                    Some(e) => e.wait_until,
                    None if l.capped => l.validity,
                    None => l.next_extend,
                };
                Some(next.min(l.validity))
            }
        }
    }

    // ---- internals --------------------------------------------------------------------------

    fn send(&mut self, now: Instant, slot: usize, purpose: Purpose, value: LeaseValue, op: Op) {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.prune_pending(now);
        self.pending.push(Pending {
            id,
            slot,
            purpose,
            value,
            sent: now,
        });
        self.stats.commands += 1;
        self.commands.push_back(Command {
            request: id,
            slot,
            op,
        });
        self.send_wait_after(now, id, slot, value, op);
    }

    /// Drop bookkeeping for requests that can no longer matter (older than two ttls).
    fn prune_pending(&mut self, now: Instant) {
        let room = self.pending.len() < 4 * MAX_SLOTS;
        #[cfg(feature = "planted-bugs")]
        let room = if crate::planted::on(crate::planted::Mutant::PrunePendingGt) {
            self.pending.len() > 4 * MAX_SLOTS
        } else {
            room
        };
        if room {
            return;
        }
        let horizon = now.saturating_sub(self.config.ttl * 2);
        self.pending.retain(|p| p.sent >= horizon);
        let pending = &self.pending;
        self.unconfirmed
            .retain(|write| pending.iter().any(|p| p.purpose == Purpose::Wait { write }));
    }

    fn start_round(&mut self, now: Instant) {
        let State::Backoff(mut attempt, _) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        attempt.rounds += 1;
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
            answers: [SlotAnswer::Waiting; MAX_SLOTS],
            contended: None,
            errors: Vec::new(),
            token: 0,
            fence_acks: SlotSet::EMPTY,
            fence_pending: SlotSet::EMPTY,
        };
        self.state = State::Acquiring(attempt, round);
    }

    fn on_acquire_reply(&mut self, now: Instant, p: Pending, reply: Reply) {
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
        if let Some(a) = round.answers.get_mut(p.slot)
            && *a == SlotAnswer::Waiting
        {
            *a = answer;
        }
        self.evaluate_round(now, false);
    }

    /// A grant for a round that is over: keep it if it belongs to the lease we hold, otherwise
    /// delete it so it cannot block anyone for a ttl.
    fn on_stray_grant(&mut self, now: Instant, p: Pending, reply: &Reply) {
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
            && let Some(a) = round.answers.get_mut(p.slot)
            && matches!(a, SlotAnswer::Waiting | SlotAnswer::Silent)
        {
            *a = SlotAnswer::Granted(*token);
            return;
        }
        self.stats.late_grants_cleaned += 1;
        self.send(
            now,
            p.slot,
            Purpose::Release,
            p.value,
            Op::Release { value: p.value },
        );
    }

    fn evaluate_round(&mut self, now: Instant, timed_out: bool) {
        let State::Acquiring(_, round) = &mut self.state else {
            return;
        };
        if timed_out {
            for a in round.answers.iter_mut().take(self.slots) {
                if *a == SlotAnswer::Waiting {
                    *a = SlotAnswer::Silent;
                }
            }
        }
        let answers = &round.answers[..self.slots];
        let granted = answers
            .iter()
            .filter(|a| matches!(a, SlotAnswer::Granted(_)))
            .count();
        let held = answers.iter().filter(|a| **a == SlotAnswer::Held).count();
        let failed = answers.iter().filter(|a| **a == SlotAnswer::Failed).count();
        let silent = answers.iter().filter(|a| **a == SlotAnswer::Silent).count();
        let slack = self.slots - self.quorum;
        if granted >= self.quorum {
            let token = answers
                .iter()
                .filter_map(|a| match a {
                    SlotAnswer::Granted(t) => Some(*t),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            round.token = token;
            if self.slots == 1 || !self.config.dialect.has_fence() {
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
            let mut slots = SlotSet::EMPTY;
            for (i, a) in answers.iter().enumerate() {
                if *a == SlotAnswer::Silent {
                    slots.insert(i);
                }
            }
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

    fn start_write_back(&mut self, now: Instant) {
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
            if matches!(round.answers[slot], SlotAnswer::Granted(_)) {
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

    fn on_fence_reply(&mut self, now: Instant, p: Pending, reply: Reply) {
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

    fn finish_acquired(&mut self, now: Instant) {
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
        let mut held = SlotSet::EMPTY;
        for (slot, a) in round.answers[..self.slots].iter().enumerate() {
            if matches!(a, SlotAnswer::Granted(_)) {
                held.insert(slot);
            }
        }
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
    }

    /// Delete whatever the round may have written: every slot that did not report another holder.
    fn cleanup_round(&mut self, now: Instant, round: &Round) {
        for slot in 0..self.slots {
            if round.answers[slot] != SlotAnswer::Held {
                self.send(
                    now,
                    slot,
                    Purpose::Release,
                    round.value,
                    Op::Release { value: round.value },
                );
            }
        }
    }

    /// The current round failed with `cause` (or the deadline passed with `cause == None` and
    /// `deadline_hit`). Retry in `wait` mode, report otherwise.
    fn fail_attempt(&mut self, now: Instant, cause: Option<AcquireError>, deadline_hit: bool) {
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
        let until = (now + sleep).min(deadline);
        self.state = State::Backoff(attempt, until);
    }

    fn fire(&mut self, now: Instant) {
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

    fn start_extension(&mut self, now: Instant) {
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

    fn on_extend_reply(&mut self, now: Instant, p: Pending, reply: Reply) {
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

    fn on_check_reply(&mut self, now: Instant, p: Pending, reply: Reply) {
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

    fn loss_reason(&self) -> LostReason {
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

    fn lose(&mut self, now: Instant, reason: LostReason) {
        let State::Held(lease) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        for slot in lease.held.iter() {
            self.send(
                now,
                slot,
                Purpose::Release,
                lease.value,
                Op::Release { value: lease.value },
            );
        }
        self.events.push_back(Event::Lost {
            token: lease.token,
            reason,
        });
    }
}

/// A slot_wait with room to spare over an observed reply time: twice it, at least 1 ms.
fn suggest_wait(observed: Duration) -> Duration {
    crate::config::recommend_slot_wait(observed)
}
