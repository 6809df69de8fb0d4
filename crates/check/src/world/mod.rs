//! The checked world: real `Lock` machines, one real `ModelServer` per slot key, FIFO
//! connections, the fenced resource, and the steps that move it ([`Action`]).
//!
//! Time is one true clock shared by clients and servers (no drift, no jumps). It advances only by
//! [`Action::Advance`] (to the next instant at which something is due: a machine's
//! `poll_timeout`, a key's or fence counter's expiry, the end of a restart) or [`Action::Tick`] (a
//! fixed step short of that, so a reply can arrive between deadlines). When time advances, the
//! servers expire keys first (pushing notifications), then every machine that is not paused
//! handles its due timers, in client order.

use std::collections::VecDeque;
use std::fmt;

use leasehold_core::testkit::{IssueLog, ModelServer, Owner};
use leasehold_core::{
    AcquireMode, Command, ForceOutcome, HolderId, Instant, Lock, LockName, Op, Phase, Reply,
    RequestId,
};

use crate::props::{Resource, RoundSeen, Section, Tenure, Violation};
use crate::setup::{Planted, Setup};

mod fingerprint;
mod judge;

use judge::{event_text, op_name, owner_text, reply_text};

/// How long a restarting server serves nothing: a restart is never instantaneous, the fence
/// token rule's assumption that the outage outlasts any backward clock step (here: none, so
/// any positive outage).
pub const RESTART_GAP: std::time::Duration = std::time::Duration::from_millis(1);

/// The `TIME` a script reads at `now` after `op_seq` issuing operations, as a floor for its new
/// token (`ModelServer::exec_in_batch`): one µs later per issuing operation, so grants at one
/// instant carry different tokens as on Redis (where two scripts never run in the same µs) and a
/// multi-slot lease is written back; the clock itself with `Setup::same_time`. The token rule
/// only needs a reading not below the clock. None without the rule's `TIME` floor (the
/// `CounterFromZero` control).
fn time_reading(setup: &Setup, key: &ModelServer, now: Instant, op_seq: u64) -> u64 {
    if !key.has_time_floor() || setup.same_time {
        0
    } else {
        now.as_nanos() / 1_000 + op_seq
    }
}

/// True time at which every run starts.
pub const START: Instant = Instant::from_millis(1_000);

/// One step of the world. Indices are client and slot numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The client's workload starts an acquire.
    Acquire(usize),
    /// The holder reads the resource's counter with its token (start of the critical section).
    Read(usize),
    /// The holder writes `read + 1` with its token, then releases.
    Write(usize),
    /// The server executes the oldest request on the (client, slot) connection.
    Exec(usize, usize),
    /// The network loses the oldest request on the (client, slot) connection.
    DropRequest(usize, usize),
    /// The oldest reply or notification on the (client, slot) connection reaches the client.
    Deliver(usize, usize),
    /// The network loses the oldest reply or notification on the (client, slot) connection.
    DropReply(usize, usize),
    /// Time advances to the next instant at which something is due.
    Advance,
    /// Time advances by the world's tick (short of the next deadline).
    Tick,
    /// A server restarts without persistence; its connections drop and reconnect.
    Restart(usize),
    /// An operator force-releases the value stored in a slot (`wire::FORCE_RELEASE`).
    ForceRelease(usize),
    /// The client stops running.
    Pause(usize),
    /// The client runs again.
    Resume(usize),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Acquire(c) => write!(f, "c{c} starts an acquire"),
            Action::Read(c) => write!(f, "c{c} reads the resource"),
            Action::Write(c) => write!(f, "c{c} writes the resource and releases"),
            Action::Exec(c, s) => write!(f, "slot {s} executes c{c}'s oldest request"),
            Action::DropRequest(c, s) => {
                write!(f, "network loses c{c}'s oldest request to slot {s}")
            }
            Action::Deliver(c, s) => write!(f, "c{c} receives slot {s}'s oldest message"),
            Action::DropReply(c, s) => write!(f, "network loses slot {s}'s oldest message to c{c}"),
            Action::Advance => write!(f, "time advances to the next deadline"),
            Action::Tick => write!(f, "time advances one tick"),
            Action::Restart(s) => write!(f, "server {s} restarts without persistence"),
            Action::ForceRelease(s) => write!(f, "operator force-releases slot {s}"),
            Action::Pause(c) => write!(f, "c{c} pauses"),
            Action::Resume(c) => write!(f, "c{c} resumes"),
        }
    }
}

/// A message from a server to a client.
#[derive(Debug, Clone)]
enum Msg {
    Reply { id: RequestId, op: Op, reply: Reply },
    Notify,
}

/// What a client's workload is doing besides its machine.
#[derive(Debug, Clone, Default)]
struct App {
    attempts_left: u8,
    paused: bool,
    section: Option<Section>,
    round: RoundSeen,
    /// Server operations that may have issued the current acquisition: (nonce of a grant, or
    /// `None` for a fence write-back; operation sequence number).
    issue_log: IssueLog,
}

/// Fault budgets left.
#[derive(Debug, Clone, Copy)]
struct Budget {
    drops: u8,
    restarts: u8,
    forces: u8,
    pauses: u8,
}

/// Optional narration of what each step did, for counterexample traces.
#[derive(Debug, Default)]
pub struct Log {
    /// Whether to record.
    pub on: bool,
    /// Lines recorded since the last take.
    pub lines: Vec<String>,
}

impl Log {
    pub(crate) fn note(&mut self, f: impl FnOnce() -> String) {
        if self.on {
            self.lines.push(f());
        }
    }
}

/// Milliseconds since [`START`], for traces.
pub fn at(t: Instant) -> String {
    let ns = t.as_nanos().saturating_sub(START.as_nanos());
    if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{:.3}ms", ns as f64 / 1e6)
    }
}

/// The whole state. Everything in it is part of the state hash (its `Debug` text).
#[derive(Debug, Clone)]
pub struct World {
    pub(crate) now: Instant,
    locks: Vec<Lock>,
    apps: Vec<App>,
    /// One model per slot key (key-majority keys share a server but are separate keys).
    keys: Vec<ModelServer>,
    /// Per server: restarted at this instant and not serving until time moves on.
    restarted_at: Vec<Option<Instant>>,
    requests: Vec<VecDeque<Command>>,
    replies: Vec<VecDeque<Msg>>,
    pub(crate) resource: Resource,
    pub(crate) tenures: Vec<Tenure>,
    op_seq: u64,
    budget: Budget,
    /// Client tracking per (slot, client): the client's connection read the key since its last
    /// change (Redis's default tracking mode: one push per read, never to the writer).
    tracked: Vec<bool>,
    /// Each machine's part of the fingerprint, while the machine is untouched (derived data,
    /// not state: cleared by every step that feeds the machine).
    lock_fp: Vec<Option<u128>>,
}

impl World {
    /// The initial state of `setup`.
    pub fn new(setup: &Setup) -> Result<World, String> {
        let cfg = setup.lock_config();
        let slots = setup.layout.slots();
        let mut locks = Vec::with_capacity(setup.clients);
        for c in 0..setup.clients {
            let name = LockName::new("m").map_err(|e| e.to_string())?;
            let holder = HolderId::new(format!("c{c}")).map_err(|e| e.to_string())?;
            locks.push(
                Lock::new(cfg.clone(), name, holder, 0x5eed + c as u64)
                    .map_err(|e| e.to_string())?,
            );
        }
        let app = App {
            attempts_left: setup.attempts,
            ..App::default()
        };
        Ok(World {
            now: START,
            locks,
            apps: vec![app; setup.clients],
            keys: vec![ModelServer::default(); slots],
            restarted_at: vec![None; setup.servers()],
            requests: vec![VecDeque::new(); setup.clients * slots],
            replies: vec![VecDeque::new(); setup.clients * slots],
            resource: Resource::default(),
            tenures: Vec::new(),
            op_seq: 0,
            tracked: vec![false; slots * setup.clients],
            budget: Budget {
                drops: setup.drops,
                restarts: setup.restarts,
                forces: setup.force_releases,
                pauses: setup.pauses,
            },
            lock_fp: vec![None; setup.clients],
        })
    }

    fn conn(&self, c: usize, slot: usize) -> usize {
        c * self.keys.len() + slot
    }

    /// Where time would go next: the earliest due instant after `now`.
    fn next_deadline(&self, setup: &Setup) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            if t > self.now && next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        for (c, lock) in self.locks.iter().enumerate() {
            if !self.apps[c].paused
                && let Some(t) = lock.poll_timeout()
            {
                consider(t);
            }
        }
        for k in &self.keys {
            if let Some((_, exp)) = k.stored() {
                consider(exp);
            }
            if let Some((_, exp)) = k.stored_fence() {
                consider(exp);
            }
        }
        for r in self.restarted_at.iter().flatten() {
            consider(*r + RESTART_GAP);
        }
        next.filter(|t| *t <= START + setup.horizon)
    }

    fn in_flight(&self) -> bool {
        self.requests.iter().any(|q| !q.is_empty()) || self.replies.iter().any(|q| !q.is_empty())
    }

    /// Every step possible in this state, in a fixed order.
    pub fn actions(&self, setup: &Setup, out: &mut Vec<Action>) {
        out.clear();
        let slots = self.keys.len();
        for c in 0..self.locks.len() {
            let app = &self.apps[c];
            let running = !app.paused;
            if !running {
                out.push(Action::Resume(c));
            }
            if running
                && app.attempts_left > 0
                && app.section.is_none()
                && self.locks[c].phase() == Phase::Idle
            {
                out.push(Action::Acquire(c));
            }
            match &app.section {
                Some(s) if running && s.read.is_none() => out.push(Action::Read(c)),
                Some(_) if running => out.push(Action::Write(c)),
                _ => {}
            }
            for slot in 0..slots {
                let q = self.conn(c, slot);
                let serving = self.restarted_at[setup.server_of(slot)].is_none();
                if !self.requests[q].is_empty() {
                    if serving {
                        out.push(Action::Exec(c, slot));
                    }
                    if self.budget.drops > 0 {
                        out.push(Action::DropRequest(c, slot));
                    }
                }
                if !self.replies[q].is_empty() {
                    if running {
                        out.push(Action::Deliver(c, slot));
                    }
                    if self.budget.drops > 0 {
                        out.push(Action::DropReply(c, slot));
                    }
                }
            }
            if running
                && self.budget.pauses > 0
                && (app.section.is_some() || self.locks[c].phase() != Phase::Idle)
            {
                out.push(Action::Pause(c));
            }
        }
        if let Some(next) = self.next_deadline(setup) {
            out.push(Action::Advance);
            let paused = self.apps.iter().any(|a| a.paused);
            if let Some(tick) = setup.tick
                && self.now + tick < next
                && (self.in_flight() || paused)
            {
                out.push(Action::Tick);
            }
        }
        if self.budget.restarts > 0 {
            for s in 0..setup.servers() {
                if self.restarted_at[s].is_none() {
                    out.push(Action::Restart(s));
                }
            }
        }
        if self.budget.forces > 0 {
            for slot in 0..slots {
                if self.keys[slot].stored().is_some() {
                    out.push(Action::ForceRelease(slot));
                }
            }
        }
    }

    /// Apply `action`; `Err` names the promised property it broke.
    pub fn apply(&mut self, setup: &Setup, action: Action, log: &mut Log) -> Result<(), Violation> {
        match action {
            Action::Acquire(c) => {
                self.apps[c].attempts_left -= 1;
                let mode = match setup.wait {
                    None => AcquireMode::Try,
                    Some(w) => AcquireMode::Wait {
                        deadline: self.now + w,
                    },
                };
                let _ = self.locks[c].acquire(self.now, mode);
                self.drain(setup, c, log)?;
            }
            Action::Read(c) => {
                let accepted = self.read(setup, c, log);
                if !accepted || !setup.split_sections() {
                    self.write(setup, c, log)?;
                    let _ = self.locks[c].release(self.now);
                    self.drain(setup, c, log)?;
                }
            }
            Action::Write(c) => {
                self.write(setup, c, log)?;
                let _ = self.locks[c].release(self.now);
                self.drain(setup, c, log)?;
            }
            Action::Exec(c, slot) => self.exec(setup, c, slot, log)?,
            Action::DropRequest(c, slot) => {
                self.budget.drops -= 1;
                let q = self.conn(c, slot);
                self.requests[q].pop_front();
            }
            Action::Deliver(c, slot) => self.deliver(setup, c, slot, log)?,
            Action::DropReply(c, slot) => {
                self.budget.drops -= 1;
                let q = self.conn(c, slot);
                self.replies[q].pop_front();
            }
            Action::Advance => {
                if let Some(t) = self.next_deadline(setup) {
                    self.advance_to(setup, t, log)?;
                }
            }
            Action::Tick => {
                if let Some(tick) = setup.tick {
                    self.advance_to(setup, self.now + tick, log)?;
                }
            }
            Action::Restart(s) => self.restart(setup, s, log)?,
            Action::ForceRelease(slot) => self.force_release(setup, slot, log),
            Action::Pause(c) => {
                self.budget.pauses -= 1;
                self.apps[c].paused = true;
            }
            Action::Resume(c) => self.apps[c].paused = false,
        }
        Ok(())
    }

    fn advance_to(&mut self, setup: &Setup, t: Instant, log: &mut Log) -> Result<(), Violation> {
        self.now = t;
        for r in &mut self.restarted_at {
            if r.is_some_and(|at| at < t) {
                *r = None;
            }
        }
        for slot in 0..self.keys.len() {
            if self.keys[slot].expire(t) {
                log.note(|| format!("  slot {slot}: the key expires"));
                self.notify(setup, slot, None);
            }
        }
        for c in 0..self.locks.len() {
            if !self.apps[c].paused {
                self.locks[c].handle_timeout(t);
                self.drain(setup, c, log)?;
            }
        }
        Ok(())
    }

    fn next_op(&mut self) -> u64 {
        self.op_seq += 1;
        self.op_seq
    }

    /// Push a key-change notification for `slot` to every client whose connection read the key
    /// since its last change, except the writer (`NOLOOP`); all of them, the writer included,
    /// stop tracking the key until they read it again (Redis's default tracking mode).
    fn notify(&mut self, setup: &Setup, slot: usize, writer: Option<usize>) {
        let n = self.locks.len();
        for c in 0..n {
            if !std::mem::replace(&mut self.tracked[slot * n + c], false) {
                continue;
            }
            if setup.notifications && Some(c) != writer {
                let q = self.conn(c, slot);
                self.replies[q].push_back(Msg::Notify);
            }
        }
    }

    fn exec(
        &mut self,
        setup: &Setup,
        c: usize,
        slot: usize,
        log: &mut Log,
    ) -> Result<(), Violation> {
        let q = self.conn(c, slot);
        let Some(cmd) = self.requests[q].pop_front() else {
            return Ok(());
        };
        let now = self.now;
        let before = self.keys[slot].stored().map(|(o, _)| o);
        let key = &mut self.keys[slot];
        let reply = match (cmd.op, setup.planted) {
            (Op::Extend { ttl_ms, .. }, Some(Planted::ExtendWithoutCompare))
                if key.pexpire_any(now, ttl_ms) =>
            {
                Reply::Extended
            }
            _ => {
                let time = time_reading(setup, key, now, self.op_seq);
                key.exec_in_batch(now, c, cmd.op, time)
            }
        };
        log.note(|| {
            format!(
                "  slot {slot} runs c{c}'s {} -> {}",
                op_name(&cmd.op),
                reply_text(&reply)
            )
        });
        match (cmd.op, &reply) {
            (Op::Extend { value, .. } | Op::CompatExtend { value, .. }, Reply::Extended)
                if before != Some(Owner { client: c, value }) =>
            {
                return Err(Violation::new(
                    "stale_extension",
                    format!(
                        "c{c}'s extension renewed slot {slot}'s key, held by {}",
                        owner_text(before)
                    ),
                ));
            }
            // only issuing operations are numbered: token_order compares nothing else
            (Op::Acquire { value, .. }, Reply::Granted { .. })
            | (Op::CompatAcquire { value, .. }, Reply::GrantedUnfenced) => {
                let seq = self.next_op();
                self.apps[c].issue_log.grant(value.nonce, seq);
            }
            (Op::RaiseFence { .. }, Reply::FenceRaised) => {
                let seq = self.next_op();
                self.apps[c].issue_log.write_back(seq);
            }
            _ => {}
        }
        if self.keys[slot].stored().map(|(o, _)| o) != before {
            self.notify(setup, slot, Some(c));
        }
        if let Some(on) = cmd.op.tracks_lock_key(&reply) {
            let n = self.locks.len();
            self.tracked[slot * n + c] = on;
        }
        self.replies[q].push_back(Msg::Reply {
            id: cmd.request,
            op: cmd.op,
            reply,
        });
        Ok(())
    }

    fn deliver(
        &mut self,
        setup: &Setup,
        c: usize,
        slot: usize,
        log: &mut Log,
    ) -> Result<(), Violation> {
        let q = self.conn(c, slot);
        let Some(msg) = self.replies[q].pop_front() else {
            return Ok(());
        };
        let now = self.now;
        match msg {
            Msg::Notify => {
                log.note(|| format!("  c{c} learns slot {slot}'s key changed"));
                self.locks[c].handle_key_changed(now, slot);
                self.drain(setup, c, log)
            }
            Msg::Reply { id, op, reply } => {
                log.note(|| {
                    format!(
                        "  c{c} gets {} for its {}",
                        reply_text(&reply),
                        op_name(&op)
                    )
                });
                // the machine handles its due timers before the reply (a round may end first)
                self.locks[c].handle_timeout(now);
                self.drain(setup, c, log)?;
                self.apps[c].round.saw(op, &reply, slot);
                let grant = match (op, &reply) {
                    (Op::Acquire { value, .. }, Reply::Granted { .. })
                    | (Op::CompatAcquire { value, .. }, Reply::GrantedUnfenced) => Some(value),
                    _ => None,
                };
                self.locks[c].handle_reply(now, id, reply);
                let mark = self.requests[q].len();
                self.drain(setup, c, log)?;
                if let Some(value) = grant {
                    let lock = &self.locks[c];
                    let kept = lock.lease_value() == Some(value)
                        || (matches!(lock.phase(), Phase::Acquiring | Phase::WritingBack)
                            && self.apps[c].round.nonce == value.nonce);
                    let released = self.requests[q]
                        .iter()
                        .skip(mark)
                        .any(|cmd| cmd.op == Op::Release { value });
                    if !kept && !released && promised(setup, "late_grant_cleanup") {
                        return Err(Violation::new(
                            "late_grant_cleanup",
                            format!(
                                "c{c} got a grant of slot {slot} after its round ended and did not release it"
                            ),
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Move a machine's commands onto its connections and judge its events.
    fn drain(&mut self, setup: &Setup, c: usize, log: &mut Log) -> Result<(), Violation> {
        self.lock_fp[c] = None;
        while let Some(cmd) = self.locks[c].poll_command() {
            if let Op::Acquire { value, .. } | Op::CompatAcquire { value, .. } = cmd.op
                && self.apps[c].round.nonce != value.nonce
            {
                self.apps[c].round = RoundSeen::new(value.nonce);
                self.apps[c].issue_log.clear();
            }
            let q = self.conn(c, cmd.slot);
            self.requests[q].push_back(cmd);
        }
        while let Some(ev) = self.locks[c].poll_event() {
            log.note(|| format!("  c{c}: {}", event_text(&ev)));
            self.on_event(setup, c, ev)?;
        }
        Ok(())
    }

    fn restart(&mut self, setup: &Setup, s: usize, log: &mut Log) -> Result<(), Violation> {
        self.budget.restarts -= 1;
        self.restarted_at[s] = Some(self.now);
        let slots: Vec<usize> = (0..self.keys.len())
            .filter(|sl| setup.server_of(*sl) == s)
            .collect();
        for &slot in &slots {
            self.keys[slot] = if setup.planted == Some(Planted::CounterFromZero) {
                ModelServer::with_fence(Some(0)).without_time_floor()
            } else {
                ModelServer::default()
            };
        }
        let now = self.now;
        for c in 0..self.locks.len() {
            if matches!(self.locks[c].phase(), Phase::Acquiring | Phase::WritingBack) {
                self.apps[c].round.error = true;
            }
            for &slot in &slots {
                let q = self.conn(c, slot);
                self.requests[q].clear();
                self.replies[q].clear();
                // the dropped connection's tracking goes with it
                self.tracked[slot * self.locks.len() + c] = false;
                self.locks[c].handle_disconnected(now, slot);
                self.locks[c].handle_reconnected(now, slot);
            }
            log.note(|| format!("  c{c}'s connections to server {s} drop and reconnect"));
            self.drain(setup, c, log)?;
        }
        Ok(())
    }

    fn force_release(&mut self, setup: &Setup, slot: usize, log: &mut Log) {
        self.budget.forces -= 1;
        let Some((owner, _)) = self.keys[slot].stored() else {
            return;
        };
        let keep_ms = setup.lock_config().fence_keep_ms();
        let op = Op::ForceRelease {
            value: owner.value,
            keep_ms,
        };
        let time = time_reading(setup, &self.keys[slot], self.now, self.op_seq);
        let reply = self.keys[slot].exec_in_batch(self.now, owner.client, op, time);
        log.note(|| format!("  slot {slot}: {}", reply_text(&reply)));
        if matches!(reply, Reply::ForceReleased(ForceOutcome::Deleted { .. })) {
            self.notify(setup, slot, None);
        }
    }
}

/// Whether `setup`'s fault model promises `property`.
pub fn promised(setup: &Setup, property: &str) -> bool {
    setup.promised().contains(&property)
}
