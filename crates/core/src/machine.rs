//! The lease state machine: [`Lock`].

mod confirm;
mod hold;
mod round;

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
    /// A quorum was granted with different tokens; raising the fence counters on a majority
    /// (multi-slot layouts only; grants that agree on the token skip it).
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

/// Every slot's [`SlotAnswer`] in one round, as one set per kind (a slot in none is still
/// waiting), the highest token granted and whether grants disagreed: 24 bytes where an array of
/// answers took 240, and a held lease keeps its machine (see `Lock::new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Answers {
    granted: SlotSet,
    held: SlotSet,
    failed: SlotSet,
    silent: SlotSet,
    /// The highest token among the grants.
    max_token: u64,
    /// Whether two grants came with different tokens. While they all carry one token, every
    /// granted slot's fence counter already stands at the lease's token, and no write-back is
    /// needed (`evaluate_round`).
    tokens_differ: bool,
}

impl Answers {
    fn get(&self, slot: usize) -> SlotAnswer {
        if self.granted.contains(slot) {
            // the token of one slot is not kept; only the highest is used
            SlotAnswer::Granted(self.max_token)
        } else if self.held.contains(slot) {
            SlotAnswer::Held
        } else if self.failed.contains(slot) {
            SlotAnswer::Failed
        } else if self.silent.contains(slot) {
            SlotAnswer::Silent
        } else {
            SlotAnswer::Waiting
        }
    }

    fn is_granted(&self, slot: usize) -> bool {
        self.granted.contains(slot)
    }

    fn set(&mut self, slot: usize, a: SlotAnswer) {
        for s in [
            &mut self.granted,
            &mut self.held,
            &mut self.failed,
            &mut self.silent,
        ] {
            s.remove(slot);
        }
        match a {
            SlotAnswer::Waiting => {}
            SlotAnswer::Granted(t) => {
                if !self.granted.is_empty() && t != self.max_token {
                    self.tokens_differ = true;
                }
                self.granted.insert(slot);
                self.max_token = self.max_token.max(t);
            }
            SlotAnswer::Held => self.held.insert(slot),
            SlotAnswer::Failed => self.failed.insert(slot),
            SlotAnswer::Silent => self.silent.insert(slot),
        }
    }
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
    answers: Answers,
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
    /// Shared by every machine of one locker ([`Lock::new_shared`]): 192 bytes a held lease
    /// does not copy, and no allocation per acquisition.
    config: std::sync::Arc<LockConfig>,
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
    /// Slots whose key changed while the machine could not act on it (acquiring, writing back)
    /// and no read of that key was in flight. Client tracking reports a key's change once, then
    /// forgets the key until it is read again, so such a change is acted on when the round ends:
    /// a granted slot is re-checked (which also reads it again), a waiter retries at once.
    missed: SlotSet,
    /// Per slot (the layout's count, not `MAX_SLOTS`: a held lease keeps its machine).
    last_reply_time: Box<[Option<Duration>]>,
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
        Self::new_shared(std::sync::Arc::new(config), name, holder, seed)
    }

    /// [`Lock::new`] with a configuration shared by many machines (a locker's): the same checks,
    /// no copy of it.
    pub fn new_shared(
        config: std::sync::Arc<LockConfig>,
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
            // room for a round and a release, sized to the layout: a held lease costs its
            // machine, so 10,000 of them must stay small; a machine that needs more grows once
            // and keeps it (the steady-state cycle allocates nothing: `core_alloc`)
            pending: Vec::with_capacity(slots + 1),
            commands: VecDeque::with_capacity(slots + 1),
            events: VecDeque::with_capacity(2),
            disconnected: SlotSet::EMPTY,
            missed: SlotSet::EMPTY,
            last_reply_time: vec![None; slots].into_boxed_slice(),
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
        let in_table = p.slot < self.last_reply_time.len();
        #[cfg(feature = "planted-bugs")]
        let in_table = if crate::planted::on(crate::planted::Mutant::HandleReplyLe) {
            p.slot <= self.last_reply_time.len()
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
    /// once, unless its own write to that slot is still in flight (the change may be its own
    /// where a server notifies a connection of its own script writes, as Redis before 7.0.5
    /// does, the push ahead of the write's reply; the backoff timer still retries). A holder
    /// re-checks the key read-only, so its own extensions cannot start a notification loop.
    /// While acquiring or writing back, a change of a slot with no read of it in flight (its
    /// reply already fed: the change came after our read) is kept for the round's end.
    pub fn handle_key_changed(&mut self, now: Instant, slot: usize) {
        self.handle_timeout(now);
        let in_flight = |purposes: fn(Purpose) -> bool| {
            self.pending
                .iter()
                .any(|p| p.slot == slot && purposes(p.purpose))
        };
        let own_write_in_flight = in_flight(|p| {
            matches!(
                p,
                Purpose::Acquire | Purpose::Release | Purpose::Extend | Purpose::Wait { .. }
            )
        });
        // requests whose script reads the lock key (and so re-arms its tracking)
        let read_in_flight = in_flight(|p| {
            matches!(
                p,
                Purpose::Acquire | Purpose::Release | Purpose::Extend | Purpose::Check
            )
        });
        match &self.state {
            State::Backoff(..) if !own_write_in_flight => self.start_round(now),
            State::Held(lease) if lease.held.contains(slot) => self.recheck(now, slot),
            State::Acquiring(..) | State::WritingBack(..) if !read_in_flight => {
                self.missed.insert(slot);
            }
            _ => {}
        }
    }

    /// Re-check held `slot` read-only (again after the check in flight, if there is one: it may
    /// have run before the change).
    fn recheck(&mut self, now: Instant, slot: usize) {
        let State::Held(lease) = &mut self.state else {
            return;
        };
        if lease.checking.contains(slot) {
            lease.recheck.insert(slot);
        } else {
            lease.checking.insert(slot);
            let value = lease.value;
            let op = self.config.dialect.check_op(value);
            self.send(now, slot, Purpose::Check, value, op);
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
            self.send_release(now, slot, lease.value);
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
        self.prune_pending(now);
        let id = self.push_request(now, slot, purpose, value, op);
        self.send_wait_after(now, id, slot, value, op);
    }

    /// Compare-and-delete `value` on `slot` (a release, a cleanup, a late grant's deletion).
    fn send_release(&mut self, now: Instant, slot: usize, value: LeaseValue) {
        self.send(now, slot, Purpose::Release, value, Op::Release { value });
    }

    /// Number a request, keep it pending and queue its command; its id.
    fn push_request(
        &mut self,
        now: Instant,
        slot: usize,
        purpose: Purpose,
        value: LeaseValue,
        op: Op,
    ) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
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
        id
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
}

/// A slot_wait with room to spare over an observed reply time: twice it, at least 1 ms.
fn suggest_wait(observed: Duration) -> Duration {
    crate::config::recommend_slot_wait(observed)
}
