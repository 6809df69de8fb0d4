//! A reference Redis model and an invariant-checking driver for [`Lock`] machines.
//!
//! Shared by the proptest state-machine suite and the cargo-fuzz target (feature `testkit`).
//! [`run`] drives several clients of one lock against model servers that execute the wire
//! protocol exactly as the Lua scripts in [`crate::wire`] do, under an arbitrary schedule of
//! [`Step`]s: replies in any order, duplicated, dropped, replaced by errors or forged; time jumps;
//! key-change notifications; disconnects; restarts. After every step it checks:
//!
//! - never `Acquired` without a quorum of grants the servers really made for that round;
//! - a holder is told it lost the lease no later than its validity instant;
//! - `poll_timeout` is never in the past after a machine has handled `now`;
//! - without `force` or restarts: at most one holder at any instant, and tokens strictly increase
//!   from one acquisition to the next;
//! - every failed acquire is classified as the slots really answered ([`classify`]): `Contended`
//!   only when the `Held` answers alone rule out a quorum, `SlowReplies` naming the silent slots,
//!   a `DeadlineExceeded` carrying its last round's real cause;
//! - nothing panics (the caller observes a panic as a test failure).

mod batch;
pub mod classify;
mod compat;
pub mod issue;

pub use issue::IssueLog;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::config::{HolderId, LockConfig, LockName, SlotLayout};
use crate::machine::{Lock, Phase};
use crate::outcome::{AcquireMode, Event};
use crate::time::Instant;
use crate::wire::{
    Command, ForceOutcome, LeaseValue, Op, Reply, RequestId, SlotError, SlotErrorKind,
};

/// One scheduling decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Client starts an acquire: `mode` 0 try, 1 wait (deadline `wait_ms` ahead), 2 force.
    Acquire {
        /// Which client (modulo the client count).
        client: u8,
        /// 0 try, 1 wait, 2 force (force is turned into wait when the scenario forbids it).
        mode: u8,
        /// Deadline for wait mode, in ms from now.
        wait_ms: u16,
    },
    /// Client releases (ignored when not holding).
    Release {
        /// Which client.
        client: u8,
    },
    /// Client cancels an acquire in progress.
    Cancel {
        /// Which client.
        client: u8,
    },
    /// A server executes the oldest command on one (client, slot) connection.
    Execute {
        /// Index among connections with commands waiting.
        pick: u8,
    },
    /// Deliver one reply (any order across connections).
    Deliver {
        /// Index among replies waiting.
        pick: u8,
    },
    /// Deliver a copy of a reply and keep the original queued.
    Duplicate {
        /// Index among replies waiting.
        pick: u8,
    },
    /// Lose a reply.
    DropReply {
        /// Index among replies waiting.
        pick: u8,
    },
    /// Replace a reply with a server error.
    ErrorReply {
        /// Index among replies waiting.
        pick: u8,
    },
    /// Deliver a reply with an id the client never used.
    Forged {
        /// Which client.
        client: u8,
        /// Which kind of reply.
        kind: u8,
    },
    /// Advance true time; every machine is woken at its `poll_timeout` on the way.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Tell a client that a slot's key changed.
    Notify {
        /// Which client.
        client: u8,
        /// Which slot.
        slot: u8,
    },
    /// Drop the connection of a client to a slot (queued commands and replies are lost).
    Disconnect {
        /// Which client.
        client: u8,
        /// Which slot.
        slot: u8,
    },
    /// Bring the connection back.
    Reconnect {
        /// Which client.
        client: u8,
        /// Which slot.
        slot: u8,
    },
    /// A server restarts without persistence (only in scenarios that allow unsafe faults).
    Restart {
        /// Which slot's server.
        slot: u8,
    },
}

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Slot layout of the lock.
    pub layout: SlotLayout,
    /// Number of clients (1-4).
    pub clients: usize,
    /// Allow `force` and server restarts. These break mutual exclusion by design, so the
    /// exclusion and token-order checks are off then.
    pub unsafe_faults: bool,
}

/// A broken invariant, with the step at which it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Index of the step after which the check failed.
    pub step: usize,
    /// What broke.
    pub what: String,
}

/// What a clean run did, so tests can see that it exercised something.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// `Acquired` events.
    pub acquired: usize,
    /// `Lost` events.
    pub lost: usize,
    /// `AcquireFailed` events.
    pub failed: usize,
    /// `Extended` events.
    pub extended: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Who wrote a lock key.
pub struct Owner {
    /// The client that wrote it.
    pub client: usize,
    /// The value's nonce.
    pub value: LeaseValue,
}

/// A model Redis holding one lock key and its fence counter, executing [`Op`]s as the Lua
/// scripts in [`crate::wire`] do, with key and counter expiry judged on the time passed in (the
/// server's own clock; its `TIME` is that clock in µs).
#[derive(Debug, Clone)]
pub struct ModelServer {
    key: Option<(Owner, Instant)>,
    /// The counter and when it expires.
    fence: Option<(u64, Instant)>,
    /// The fence-token rule's `TIME` floor (off only in a planted-bug variant).
    time_floor: bool,
}

impl Default for ModelServer {
    fn default() -> Self {
        ModelServer {
            key: None,
            fence: None,
            time_floor: true,
        }
    }
}

impl ModelServer {
    /// A server whose fence counter starts at `fence` (`None`: no counter yet), kept forever
    /// until something rewrites it.
    #[must_use]
    pub fn with_fence(fence: Option<u64>) -> Self {
        ModelServer {
            fence: fence.map(|f| (f, Instant::from_nanos(u64::MAX))),
            ..ModelServer::default()
        }
    }

    /// A broken variant for negative controls: tokens are a plain `INCR`, without the `TIME`
    /// floor, so a lost counter restarts from 1.
    #[must_use]
    pub fn without_time_floor(mut self) -> Self {
        self.time_floor = false;
        self
    }

    /// The key's owner and expiry as stored, without judging expiry.
    #[must_use]
    pub fn stored(&self) -> Option<(Owner, Instant)> {
        self.key
    }

    /// The fence counter as stored, without judging its expiry.
    #[must_use]
    pub fn fence(&self) -> Option<u64> {
        self.fence.map(|(f, _)| f)
    }

    /// The fence counter and its expiry as stored.
    #[must_use]
    pub fn stored_fence(&self) -> Option<(u64, Instant)> {
        self.fence
    }

    /// Set the fence counter's value, keeping its expiry: a differential test's resync after a
    /// real server derived a token from its own `TIME` a few µs after the time the model was
    /// given. No-op without a counter.
    pub fn resync_fence(&mut self, token: u64) {
        if let Some((_, exp)) = self.fence {
            self.fence = Some((token, exp));
        }
    }

    /// Expire the key (and the counter) if their time has come on the server clock `now`; true if
    /// the key was removed.
    pub fn expire(&mut self, now: Instant) -> bool {
        self.current_fence(now);
        let had = self.key.is_some();
        had && self.current(now).is_none()
    }

    /// `PEXPIRE` whatever is there, regardless of owner (used only by planted-bug variants).
    pub fn pexpire_any(&mut self, now: Instant, ttl_ms: u64) -> bool {
        match self.current(now) {
            Some(o) => {
                self.key = Some((o, now + Duration::from_millis(ttl_ms)));
                true
            }
            None => false,
        }
    }

    fn current(&mut self, now: Instant) -> Option<Owner> {
        if let Some((_, exp)) = self.key
            && exp <= now
        {
            self.key = None;
        }
        self.key.map(|(o, _)| o)
    }

    fn current_fence(&mut self, now: Instant) -> Option<u64> {
        if let Some((_, exp)) = self.fence
            && exp <= now
        {
            self.fence = None;
        }
        self.fence.map(|(f, _)| f)
    }

    /// The fence-token rule ([`crate::wire::ACQUIRE`]): `max(counter + 1, TIME in µs)`, stored
    /// with a retention of `keep_ms`.
    /// `floor`: see [`ModelServer::exec_in_batch`] (0: none).
    fn next_token(&mut self, now: Instant, keep_ms: u64, floor: u64) -> u64 {
        let cur = self.current_fence(now).unwrap_or(0);
        let time_us = now.as_nanos() / 1_000;
        let token = if self.time_floor {
            (cur + 1).max(time_us)
        } else {
            cur + 1
        }
        .max(floor);
        self.fence = Some((token, keep(now, keep_ms)));
        token
    }

    /// Execute `op` for `client` at `now` (the server's clock).
    pub fn exec(&mut self, now: Instant, client: usize, op: Op) -> Reply {
        self.exec_in_batch(now, client, op, 0)
    }

    /// Execute `op` with every new token (an acquire's, a force-release's) at least `floor`: the
    /// highest [`ModelServer::batch_floor`] of a batch's slots
    /// ([`crate::wire::batch::ACQUIRE_BATCH`]), or a `TIME` read later than `now` (the token rule
    /// needs only a token above the counter and not below the clock). `floor` 0 is
    /// [`ModelServer::exec`].
    pub fn exec_in_batch(&mut self, now: Instant, client: usize, op: Op, floor: u64) -> Reply {
        let ttl = |ms: u64| now + Duration::from_millis(ms);
        let cur = self.current(now);
        let fence_now = self.current_fence(now);
        match op {
            Op::Acquire {
                value,
                ttl_ms,
                force,
                keep_ms,
            } => {
                let me = Owner { client, value };
                let keep_ms = ttl_ms.saturating_add(keep_ms);
                if cur == Some(me) {
                    self.key = Some((me, ttl(ttl_ms)));
                    if let Some((f, _)) = self.fence {
                        self.fence = Some((f, keep(now, keep_ms)));
                    }
                    return Reply::Granted {
                        token: fence_now.unwrap_or(0),
                    };
                }
                if let (Some(o), false) = (cur, force) {
                    let remaining = self.key.map(|(_, e)| e.saturating_since(now));
                    return Reply::Held {
                        holder: Some(format!("c{}", o.client)),
                        remaining,
                    };
                }
                let token = self.next_token(now, keep_ms, floor);
                self.key = Some((me, ttl(ttl_ms)));
                Reply::Granted { token }
            }
            Op::Extend {
                value,
                ttl_ms,
                keep_ms,
            } => match cur {
                Some(o) if o == (Owner { client, value }) => {
                    self.key = Some((o, ttl(ttl_ms)));
                    if let Some((f, _)) = self.fence {
                        self.fence = Some((f, keep(now, ttl_ms.saturating_add(keep_ms))));
                    }
                    Reply::Extended
                }
                Some(o) => Reply::NotOwner {
                    holder: Some(format!("c{}", o.client)),
                },
                None => Reply::Missing {
                    fence_present: fence_now.is_some(),
                },
            },
            Op::Check { value } => match cur {
                Some(o) if o == (Owner { client, value }) => Reply::StillHeld,
                Some(o) => Reply::NotOwner {
                    holder: Some(format!("c{}", o.client)),
                },
                None => Reply::Missing {
                    fence_present: fence_now.is_some(),
                },
            },
            Op::Release { value } => {
                let deleted = cur == Some(Owner { client, value });
                if deleted {
                    self.key = None;
                }
                Reply::Released { deleted }
            }
            Op::RaiseFence { token, keep_ms } => {
                // as the Lua: a missing counter reads 0, and raising it to 0 only `PEXPIRE`s a
                // key that does not exist (found by the differential test against Redis)
                self.fence = match fence_now {
                    Some(f) => Some((f.max(token), keep(now, keep_ms))),
                    None if token > 0 => Some((token, keep(now, keep_ms))),
                    None => None,
                };
                Reply::FenceRaised
            }
            Op::CompatAcquire {
                value,
                expire_at_ms,
                force,
            } => self.compat_acquire(now, client, value, expire_at_ms, force),
            Op::CompatExtend {
                value,
                expire_at_ms,
            } => self.compat_extend(now, client, value, expire_at_ms),
            Op::CompatCheck { value } => self.compat_check(now, client, value),
            Op::ForceRelease { value, keep_ms } => match cur {
                None => Reply::ForceReleased(ForceOutcome::Gone),
                Some(o) if o != (Owner { client, value }) => {
                    Reply::ForceReleased(ForceOutcome::Changed {
                        holder: Some(format!("c{}", o.client)),
                    })
                }
                Some(_) => {
                    self.key = None;
                    let token = self.next_token(now, keep_ms, floor);
                    Reply::ForceReleased(ForceOutcome::Deleted { token })
                }
            },
            // one server with no replicas, as a real primary without replicas answers (after
            // the timeout); the simulator answers WAIT from its own replication model instead
            Op::Wait { .. } => Reply::Acked(0),
        }
    }
}

fn keep(now: Instant, ms: u64) -> Instant {
    Instant::from_nanos(now.as_nanos().saturating_add(ms.saturating_mul(1_000_000)))
}

struct World {
    sc: Scenario,
    now: Instant,
    locks: Vec<Lock>,
    servers: Vec<ModelServer>,
    /// Commands sent, per (client, slot) connection, in order.
    queues: Vec<VecDeque<Command>>,
    replies: Vec<(usize, usize, RequestId, Reply)>,
    down: HashSet<(usize, usize)>,
    /// Slots the servers granted, per (client, nonce).
    grants: HashMap<(usize, u64), HashSet<usize>>,
    last_token: Option<u64>,
    report: Report,
    /// Each client's current acquire round as delivered, to judge its classification.
    rounds: Vec<classify::RoundLog>,
}

fn pick<T>(v: &[T], i: u8) -> Option<usize> {
    if v.is_empty() {
        None
    } else {
        Some(usize::from(i) % v.len())
    }
}

impl World {
    fn conn(&self, client: usize, slot: usize) -> usize {
        client * self.servers.len() + slot
    }

    /// Move commands out of a machine; events are checked.
    fn drain(&mut self, c: usize) -> Result<(), String> {
        while let Some(cmd) = self.locks[c].poll_command() {
            self.rounds[c].sent(&cmd);
            if self.down.contains(&(c, cmd.slot)) {
                self.replies.push((
                    c,
                    cmd.slot,
                    cmd.request,
                    Reply::Error(SlotError::new(SlotErrorKind::Disconnected, "down")),
                ));
            } else {
                let q = self.conn(c, cmd.slot);
                self.queues[q].push_back(cmd);
            }
        }
        while let Some(ev) = self.locks[c].poll_event() {
            self.check_event(c, &ev)?;
        }
        Ok(())
    }

    fn check_event(&mut self, c: usize, ev: &Event) -> Result<(), String> {
        match ev {
            Event::Acquired {
                token, validity, ..
            } => {
                self.report.acquired += 1;
                let value = self.locks[c]
                    .lease_value()
                    .ok_or("Acquired emitted but the machine is not holding")?;
                let granted = self.grants.get(&(c, value.nonce)).map_or(0, HashSet::len);
                let quorum = self.locks[c].quorum();
                if granted < quorum {
                    return Err(format!(
                        "client {c} Acquired with {granted} real grants, quorum {quorum}"
                    ));
                }
                if *validity <= self.now {
                    return Err(format!("client {c} Acquired with validity in the past"));
                }
                if !self.sc.unsafe_faults {
                    if let Some(last) = self.last_token
                        && *token <= last
                    {
                        return Err(format!("token order: client {c} got {token} after {last}"));
                    }
                    self.last_token = Some(*token);
                    let holders = (0..self.locks.len())
                        .filter(|i| self.locks[*i].phase() == Phase::Held)
                        .count();
                    if holders > 1 {
                        return Err(format!("mutual exclusion: {holders} holders at once"));
                    }
                }
            }
            Event::Lost { .. } => self.report.lost += 1,
            Event::AcquireFailed(err) => {
                self.report.failed += 1;
                self.rounds[c]
                    .judge(err)
                    .map_err(|e| format!("client {c} misclassified a failed acquire: {e}"))?;
            }
            Event::Extended { validity, .. } => {
                self.report.extended += 1;
                if *validity <= self.now {
                    return Err(format!("client {c} Extended to a validity in the past"));
                }
            }
            Event::Released { .. } => {}
        }
        Ok(())
    }

    fn check_state(&self) -> Result<(), String> {
        (0..self.locks.len()).try_for_each(|c| self.check_client(c))
    }

    /// Local invariants of one machine that has handled `self.now`.
    fn check_client(&self, c: usize) -> Result<(), String> {
        {
            let lock = &self.locks[c];
            if let Some(v) = lock.validity()
                && v <= self.now
            {
                return Err(format!(
                    "client {c} still holds at {:?}, validity {v:?} passed",
                    self.now
                ));
            }
            // Direct oracle on the core's arithmetic: with server clocks equal to true time, the
            // servers keep our key on a quorum of slots at least until our validity instant.
            if let (Some(v), Some(value), false) =
                (lock.validity(), lock.lease_value(), self.sc.unsafe_faults)
            {
                let me = Owner { client: c, value };
                let covering = self
                    .servers
                    .iter()
                    .filter(|s| matches!(s.key, Some((o, exp)) if o == me && exp >= v))
                    .count();
                if covering < lock.quorum() {
                    return Err(format!(
                        "client {c} trusts its lease until {v:?} but only {covering} server(s) keep the key that long"
                    ));
                }
            }
            if let Some(t) = lock.poll_timeout()
                && t <= self.now
            {
                return Err(format!(
                    "client {c} poll_timeout {t:?} is not after now {:?}",
                    self.now
                ));
            }
            if lock.phase() != Phase::Idle && lock.poll_timeout().is_none() {
                return Err(format!("client {c} in {:?} with no timeout", lock.phase()));
            }
        }
        Ok(())
    }

    fn client(&self, c: u8) -> usize {
        usize::from(c) % self.locks.len()
    }

    fn step(&mut self, step: Step) -> Result<(), String> {
        let now = self.now;
        match step {
            Step::Acquire {
                client,
                mode,
                wait_ms,
            } => {
                let c = self.client(client);
                let deadline = now + Duration::from_millis(u64::from(wait_ms));
                let mode = match mode % 3 {
                    0 => AcquireMode::Try,
                    2 if self.sc.unsafe_faults => AcquireMode::Force,
                    _ => AcquireMode::Wait { deadline },
                };
                let _ = self.locks[c].acquire(now, mode);
                self.drain(c)?;
            }
            Step::Release { client } => {
                let c = self.client(client);
                let _ = self.locks[c].release(now);
                self.drain(c)?;
            }
            Step::Cancel { client } => {
                let c = self.client(client);
                self.locks[c].cancel(now);
                self.drain(c)?;
            }
            Step::Execute { pick: p } => {
                let busy: Vec<usize> = (0..self.queues.len())
                    .filter(|q| !self.queues[*q].is_empty())
                    .collect();
                if let Some(i) = pick(&busy, p) {
                    let q = busy[i];
                    let (c, slot) = (q / self.servers.len(), q % self.servers.len());
                    if let Some(cmd) = self.queues[q].pop_front() {
                        let reply = self.servers[slot].exec(now, c, cmd.op);
                        if let (Op::Acquire { value, .. }, Reply::Granted { .. }) = (cmd.op, &reply)
                        {
                            self.grants
                                .entry((c, value.nonce))
                                .or_default()
                                .insert(slot);
                        }
                        self.replies.push((c, slot, cmd.request, reply));
                    }
                }
            }
            Step::Deliver { pick: p } | Step::Duplicate { pick: p } => {
                if let Some(i) = pick(&self.replies, p) {
                    let (c, _slot, id, reply) = if matches!(step, Step::Deliver { .. }) {
                        self.replies.remove(i)
                    } else {
                        self.replies[i].clone()
                    };
                    self.rounds[c].delivered(&self.locks[c], now, id, &reply);
                    self.locks[c].handle_reply(now, id, reply);
                    self.drain(c)?;
                }
            }
            Step::DropReply { pick: p } => {
                if let Some(i) = pick(&self.replies, p) {
                    self.replies.remove(i);
                }
            }
            Step::ErrorReply { pick: p } => {
                if let Some(i) = pick(&self.replies, p) {
                    self.replies[i].3 =
                        Reply::Error(SlotError::new(SlotErrorKind::Server, "ERR injected"));
                }
            }
            Step::Forged { client, kind } => {
                let c = self.client(client);
                let reply = match kind % 5 {
                    0 => Reply::Granted { token: 1 },
                    1 => Reply::StillHeld,
                    4 => Reply::Extended,
                    2 => Reply::NotOwner { holder: None },
                    _ => Reply::FenceRaised,
                };
                let id = RequestId((1 << 40) + u64::from(kind));
                self.locks[c].handle_reply(now, id, reply);
                self.drain(c)?;
            }
            Step::Advance { ms } => {
                let target = now + Duration::from_millis(u64::from(ms));
                loop {
                    let next = (0..self.locks.len())
                        .filter_map(|c| self.locks[c].poll_timeout().map(|t| (t, c)))
                        .min();
                    match next {
                        Some((t, c)) if t <= target => {
                            self.now = self.now.max(t);
                            self.locks[c].handle_timeout(self.now);
                            self.drain(c)?;
                            self.check_client(c)?;
                        }
                        _ => break,
                    }
                }
                self.now = target;
            }
            Step::Notify { client, slot } => {
                let c = self.client(client);
                let slot = usize::from(slot) % self.servers.len();
                self.locks[c].handle_key_changed(now, slot);
                self.drain(c)?;
            }
            Step::Disconnect { client, slot } => {
                let c = self.client(client);
                let slot = usize::from(slot) % self.servers.len();
                self.down.insert((c, slot));
                let q = self.conn(c, slot);
                self.queues[q].clear();
                self.replies.retain(|r| !(r.0 == c && r.1 == slot));
                self.rounds[c].cut(self.locks[c].phase(), slot);
                self.locks[c].handle_disconnected(now, slot);
                self.drain(c)?;
                self.rounds[c].settled();
            }
            Step::Reconnect { client, slot } => {
                let c = self.client(client);
                let slot = usize::from(slot) % self.servers.len();
                self.down.remove(&(c, slot));
                self.locks[c].handle_reconnected(now, slot);
                self.drain(c)?;
            }
            Step::Restart { slot } => {
                if self.sc.unsafe_faults {
                    let slot = usize::from(slot) % self.servers.len();
                    self.servers[slot] = ModelServer::default();
                }
            }
        }
        self.check_state()
    }
}

/// The configuration the runs use: small numbers so a few `Advance` steps cross every timer.
#[must_use]
pub fn test_config(layout: SlotLayout) -> LockConfig {
    LockConfig {
        layout,
        ttl: Duration::from_millis(300),
        extend_interval: Some(Duration::from_millis(100)),
        slot_wait: Duration::from_millis(20),
        drift_factor: 0.01,
        drift_margin: Duration::from_millis(2),
        hold_cap: None,
        backoff_min: Duration::from_millis(2),
        backoff_max: Duration::from_millis(40),
        ..LockConfig::default()
    }
}

/// Run `steps` in `scenario`; `Err` names the first broken invariant.
pub fn run(scenario: &Scenario, steps: &[Step]) -> Result<Report, Violation> {
    let clients = scenario.clients.clamp(1, 4);
    let cfg = test_config(scenario.layout);
    let n = scenario.layout.slots();
    let mut locks = Vec::with_capacity(clients);
    for c in 0..clients {
        let name = LockName::new("prop").map_err(|e| Violation {
            step: 0,
            what: e.to_string(),
        })?;
        let holder = HolderId::new(format!("c{c}")).map_err(|e| Violation {
            step: 0,
            what: e.to_string(),
        })?;
        let lock =
            Lock::new(cfg.clone(), name, holder, 0x5eed + c as u64).map_err(|e| Violation {
                step: 0,
                what: e.to_string(),
            })?;
        locks.push(lock);
    }
    let mut w = World {
        sc: scenario.clone(),
        now: Instant::from_millis(1_000),
        locks,
        servers: (0..n).map(|_| ModelServer::default()).collect(),
        queues: (0..clients * n).map(|_| VecDeque::new()).collect(),
        replies: Vec::new(),
        down: HashSet::new(),
        grants: HashMap::new(),
        last_token: None,
        report: Report::default(),
        rounds: Vec::new(),
    };
    w.rounds = w
        .locks
        .iter()
        .map(|l| classify::RoundLog::new(n, l.quorum()))
        .collect();
    for (i, s) in steps.iter().enumerate() {
        w.step(*s).map_err(|what| Violation { step: i, what })?;
    }
    Ok(w.report)
}

/// One acquire → extend → release cycle through `lock` starting at `*now`, with the replies fed
/// straight back (the unit both benchmarks measure). Advances `now` by one extension interval
/// plus 100 µs. Returns whether the cycle completed: acquired, extended and released.
pub fn bench_cycle(lock: &mut Lock, now: &mut Instant) -> bool {
    use std::hint::black_box;
    let every = lock.config().extend_every();
    if lock.acquire(*now, AcquireMode::Try).is_err() {
        return false;
    }
    let Some(c) = lock.poll_command() else {
        return false;
    };
    *now = *now + Duration::from_micros(100);
    lock.handle_reply(*now, c.request, Reply::Granted { token: 1 });
    let acquired = matches!(black_box(lock.poll_event()), Some(Event::Acquired { .. }));
    *now = *now + every;
    lock.handle_timeout(*now);
    let Some(c) = lock.poll_command() else {
        return false;
    };
    lock.handle_reply(*now, c.request, Reply::Extended);
    let extended = matches!(black_box(lock.poll_event()), Some(Event::Extended { .. }));
    let released = lock.release(*now).is_ok();
    black_box(lock.poll_command());
    black_box(lock.poll_event());
    acquired && extended && released
}
