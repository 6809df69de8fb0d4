//! The discrete-event world: clients running real `leasehold-core` machines, simulated Redis
//! servers (the core's reference model, on their own clocks), a network, a fenced resource, and
//! the fault schedule. Single-threaded; one seed fully determines the run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use leasehold_core::testkit::ModelServer;
use leasehold_core::{
    AcquireError, AcquireMode, Event, ForceOutcome, HolderId, Instant, Lock, LockName, Op, Phase,
    Reply, RequestId, SlotError, SlotErrorKind,
};

use crate::config::{Latency, PlantedBug, SimConfig, uniform};
use crate::faults::{Fault, FaultEvent, schedule};
use crate::history::History;
use crate::rng::{Rng, chance, index, unit};

mod live;
pub use live::{ClientActivity, LiveClient};

const RECONNECT: u64 = 50_000_000; // 50 ms
const T_START: u64 = 1_000_000_000; // true time starts at 1 s

#[derive(Debug, Clone)]
enum Msg {
    Reply(RequestId, Reply),
    Invalidate(usize),
}

#[derive(Debug, Clone)]
enum Ev {
    Wake {
        c: u32,
        l: u32,
        generation: u32,
    },
    Think {
        c: u32,
    },
    Transmit {
        c: u32,
        generation: u32,
    },
    Arrive {
        c: u32,
        s: u32,
        l: u32,
        epoch: u32,
        cmd: leasehold_core::Command,
    },
    Exec {
        c: u32,
        s: u32,
        l: u32,
        cmd: leasehold_core::Command,
        epoch: u32,
    },
    ToClient {
        c: u32,
        s: u32,
        l: u32,
        epoch: u32,
        msg: Msg,
    },
    WriteArrive {
        l: u32,
        c: u32,
        token: u64,
        acquired_at: u64,
        /// The counter value the critical section read (it writes `read + 1`).
        read: u64,
    },
    ReadArrive {
        l: u32,
        c: u32,
        token: u64,
        generation: u32,
    },
    ReadReply {
        c: u32,
        generation: u32,
        value: Option<u64>,
    },
    ExpireCheck {
        s: u32,
        key: u32,
    },
    Replicate {
        s: u32,
        key: u32,
        state: ModelServer,
        epoch: u32,
    },
    Fault(u32),
    Heal(u32),
    Reconnect {
        c: u32,
        s: u32,
    },
}

impl Ev {
    fn client(&self) -> Option<usize> {
        match self {
            Ev::Wake { c, .. } | Ev::Think { c } | Ev::Transmit { c, .. } => Some(*c as usize),
            Ev::ToClient { c, .. } | Ev::ReadReply { c, .. } => Some(*c as usize),
            _ => None,
        }
    }
    fn tag(&self) -> u64 {
        match self {
            Ev::Wake { .. } => 1,
            Ev::Think { .. } => 2,
            Ev::Transmit { .. } => 3,
            Ev::Arrive { .. } => 4,
            Ev::Exec { .. } => 5,
            Ev::ToClient { .. } => 6,
            Ev::WriteArrive { .. } => 7,
            Ev::ExpireCheck { .. } => 8,
            Ev::Replicate { .. } => 9,
            Ev::Fault(_) => 10,
            Ev::Heal(_) => 11,
            Ev::Reconnect { .. } => 12,
            Ev::ReadArrive { .. } => 13,
            Ev::ReadReply { .. } => 14,
        }
    }
}

struct Entry {
    at: u64,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Tenure {
    lock: usize,
    token: u64,
    acquired_at: u64,
    generation: u32,
    /// The counter value the critical section read from the resource, once the reply is in.
    read: Option<u64>,
}

struct Client {
    locks: Vec<Lock>,
    timer_gen: Vec<u32>,
    timer_at: Vec<Option<u64>>,
    pause_until: u64,
    offset: i64,
    drift_ppm: i64,
    wall_step_at: Option<(u64, i64)>,
    tenure: Option<Tenure>,
    tenure_gen: u32,
    attempt_started: u64,
    last_acquire_nonce: Vec<u64>,
    last_held_nonce: Vec<u64>,
    last_error_nonce: Vec<u64>,
    acquire_sent: Vec<(RequestId, u64)>,
    /// Per lock: server operations that issued the current acquisition (`Some(nonce)` for a
    /// grant, `None` for a fence write-back) and their true times, for `token_order`.
    issue_log: Vec<Vec<(Option<u64>, u64)>>,
}

struct Server {
    keys: Vec<ModelServer>,
    /// Whether each key's fence counter was ever created (to count re-creations).
    fenced: Vec<bool>,
    replica: Vec<ModelServer>,
    up: bool,
    busy_until: u64,
    drift_ppm: i64,
    offset: i64,
    repl_epoch: u32,
}

struct Link {
    epoch: u32,
    up: bool,
    partition_until: u64,
    last_c2s: u64,
    last_s2c: u64,
}

/// Result of one seed.
pub struct Outcome {
    /// What happened, for the checker.
    pub history: History,
    /// Events processed.
    pub events: u64,
    /// Hash of the whole trace.
    pub trace_hash: u64,
    /// Trace lines (JSON), when requested.
    pub trace: Vec<String>,
    /// The fault schedule used (after `drop_faults`).
    pub faults: Vec<FaultEvent>,
}

/// One simulation run.
pub struct World {
    cfg: SimConfig,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Entry>>,
    clients: Vec<Client>,
    servers: Vec<Server>,
    links: Vec<Link>,
    slots: usize,
    highest: Vec<u64>,
    last_writer: Vec<Option<(u64, usize)>>,
    /// The read-modify-write counter the critical sections increment, per lock.
    counter: Vec<u64>,
    faults: Vec<FaultEvent>,
    fault_end: u64,
    end: u64,
    history: History,
    hash: u64,
    events: u64,
    trace: Option<Vec<String>>,
    live: bool,
    log: Vec<LogLine>,
}

/// A lock as a live view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLock {
    /// Lock index (`lock<i>`).
    pub lock: usize,
    /// Client holding it.
    pub holder: Option<usize>,
    /// Highest fence counter.
    pub token: Option<u64>,
    /// Longest remaining key ttl, ms.
    pub ttl_ms: i64,
    /// Slots held.
    pub slots_held: u32,
    /// Slots in all.
    pub slots_total: u32,
    /// Clients acquiring or backing off for this lock right now.
    pub waiters: u32,
}

/// One notable event for a live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// True time, ns.
    pub t_ns: u64,
    /// Lock index, if about one lock.
    pub lock: Option<usize>,
    /// `acquired`, `released`, `lost`, `timeout`, `fault`.
    pub kind: &'static str,
    /// Who and why.
    pub detail: String,
}

fn fnv(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(0x0000_0100_0000_01B3)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl World {
    /// Build the world for `cfg` and `seed`. `Err` for an invalid lock configuration.
    pub fn new(cfg: SimConfig, seed: u64, trace: bool) -> Result<World, String> {
        let mut rng = Rng::new(seed ^ 0x51_u64.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        cfg.lock.validate().map_err(|e| e.to_string())?;
        let slots = cfg.lock.layout.slots();
        let nserv = cfg.servers();
        let end = T_START + nanos(cfg.duration);
        let fault_end = end.saturating_sub(nanos(cfg.heal_before_end)).max(T_START);
        let faults = schedule(&cfg, &mut rng, T_START, fault_end)?;
        // liveness is judged after the last fault's effects end, not after it starts
        let heal_at = faults
            .iter()
            .map(|f| f.at + f.fault.effect_len())
            .max()
            .unwrap_or(T_START)
            .max(fault_end);
        let mut clients = Vec::with_capacity(cfg.clients);
        for c in 0..cfg.clients {
            let mut locks = Vec::with_capacity(cfg.locks);
            for l in 0..cfg.locks {
                let name = LockName::new(format!("lock{l}")).map_err(|e| e.to_string())?;
                let holder = HolderId::new(format!("c{c}")).map_err(|e| e.to_string())?;
                locks.push(
                    Lock::new(cfg.lock.clone(), name, holder, rng.next_u64())
                        .map_err(|e| e.to_string())?,
                );
            }
            let d = cfg.faults.client_drift_ppm;
            let drift_ppm = if d == 0 {
                0
            } else {
                rng.below_inclusive(2 * d.unsigned_abs()) as i64 - d.abs()
            };
            let wall_step_at = (cfg.planted == Some(PlantedBug::WallClock)).then(|| {
                let at = T_START + rng.below_inclusive(nanos(cfg.duration) / 2);
                (at, -(nanos(cfg.lock.ttl) as i64) * 2)
            });
            clients.push(Client {
                locks,
                timer_gen: vec![0; cfg.locks],
                timer_at: vec![None; cfg.locks],
                pause_until: 0,
                offset: rng.below_inclusive(1_000_000_000) as i64,
                drift_ppm,
                wall_step_at,
                tenure: None,
                tenure_gen: 0,
                attempt_started: 0,
                last_acquire_nonce: vec![0; cfg.locks],
                last_held_nonce: vec![u64::MAX; cfg.locks],
                last_error_nonce: vec![u64::MAX; cfg.locks],
                acquire_sent: Vec::new(),
                issue_log: vec![Vec::new(); cfg.locks],
            });
        }
        let servers = (0..nserv)
            .map(|_| {
                let d = cfg.faults.server_drift_ppm;
                let drift_ppm = if d == 0 {
                    0
                } else {
                    rng.below_inclusive(2 * d.unsigned_abs()) as i64 - d.abs()
                };
                Server {
                    keys: vec![ModelServer::default(); cfg.locks * slots],
                    fenced: vec![false; cfg.locks * slots],
                    replica: vec![ModelServer::default(); cfg.locks * slots],
                    up: true,
                    busy_until: 0,
                    drift_ppm,
                    offset: 0,
                    repl_epoch: 0,
                }
            })
            .collect();
        let links = (0..cfg.clients * nserv)
            .map(|_| Link {
                epoch: 0,
                up: true,
                partition_until: 0,
                last_c2s: 0,
                last_s2c: 0,
            })
            .collect();
        let mut w = World {
            highest: vec![0; cfg.locks],
            counter: vec![0; cfg.locks],
            last_writer: vec![None; cfg.locks],
            history: History::new(cfg.locks, heal_at),
            cfg,
            rng,
            now: T_START,
            seq: 0,
            queue: BinaryHeap::new(),
            clients,
            servers,
            links,
            slots,
            faults,
            fault_end,
            end,
            hash: 0xcbf2_9ce4_8422_2325,
            events: 0,
            trace: trace.then(Vec::new),
            live: false,
            log: Vec::new(),
        };
        for (i, f) in w.faults.clone().iter().enumerate() {
            w.push(f.at, Ev::Fault(i as u32));
        }
        for c in 0..w.cfg.clients {
            let t = uniform(&mut w.rng, w.cfg.think.0, w.cfg.think.1);
            w.push(T_START + nanos(t), Ev::Think { c: c as u32 });
        }
        Ok(w)
    }

    /// Number of faults in the schedule (after `drop_faults`).
    #[must_use]
    pub fn fault_count(&self) -> usize {
        self.faults.len()
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Entry {
            at,
            seq: self.seq,
            ev,
        }));
    }

    // ---- clocks -------------------------------------------------------------------------------

    fn client_clock(&self, c: usize, t: u64) -> u64 {
        let cl = &self.clients[c];
        let mut v = t as i128 + (t as i128 * cl.drift_ppm as i128) / 1_000_000 + cl.offset as i128;
        if let Some((at, step)) = cl.wall_step_at
            && t >= at
        {
            v += step as i128;
        }
        v.max(0) as u64
    }

    /// The earliest true time at which client `c`'s clock reads at least `local`.
    fn client_true(&self, c: usize, local: u64) -> u64 {
        let cl = &self.clients[c];
        let base = (local as i128 - cl.offset as i128).max(0);
        let mut t = (base * 1_000_000 / (1_000_000 + cl.drift_ppm as i128)).max(0) as u64;
        t = t.max(self.now);
        for _ in 0..8 {
            let v = self.client_clock(c, t);
            if v >= local {
                return t;
            }
            t += local - v;
        }
        t
    }

    fn server_clock(&self, s: usize) -> Instant {
        let sv = &self.servers[s];
        let t = self.now as i128;
        let v = t + t * sv.drift_ppm as i128 / 1_000_000 + sv.offset as i128;
        Instant::from_nanos(v.max(0) as u64)
    }

    fn server_to_true(&self, s: usize, server_t: Instant) -> u64 {
        let sv = &self.servers[s];
        let v = server_t.as_nanos() as i128 - sv.offset as i128;
        (v * 1_000_000 / (1_000_000 + sv.drift_ppm as i128)).max(0) as u64
    }

    fn latency(&mut self) -> u64 {
        let f = &self.cfg.faults;
        let base = nanos(f.latency_base);
        let jitter = nanos(f.latency_jitter);
        let extra = match f.latency {
            Latency::Constant => 0,
            Latency::Uniform => self.rng.below_inclusive(jitter),
            Latency::HeavyTail => {
                let u = unit(&mut self.rng).max(1e-9);
                let x = (jitter as f64) * (u.powf(-1.0 / 1.5) - 1.0);
                (x as u64).min(jitter.saturating_mul(200))
            }
        };
        let spike = if self.now < self.fault_end && chance(&mut self.rng, f.spike_prob) {
            nanos(f.spike)
        } else {
            0
        };
        base + extra + spike
    }

    /// When a message sent now on link `li` arrives (`to_server`: client to server), and the
    /// link's epoch: one-way latency, held while partitioned, never before an earlier message on
    /// the same direction (TCP order).
    fn send_at(&mut self, li: usize, to_server: bool) -> (u64, u32) {
        let lat = self.latency();
        let now = self.now;
        let link = &mut self.links[li];
        let mut at = now + lat;
        if link.partition_until > now {
            at = at.max(link.partition_until + lat);
        }
        let last = if to_server {
            &mut link.last_c2s
        } else {
            &mut link.last_s2c
        };
        at = at.max(*last + 1);
        *last = at;
        (at, link.epoch)
    }

    fn server_of(&self, slot: usize) -> usize {
        if self.servers.len() == 1 { 0 } else { slot }
    }

    fn link(&self, c: usize, s: usize) -> usize {
        c * self.servers.len() + s
    }

    // ---- the loop -----------------------------------------------------------------------------

    /// Run to the end of the configured duration.
    pub fn run(mut self) -> Outcome {
        let end = self.end;
        self.step_until(end);
        let mut history = self.history;
        history.events = self.events;
        Outcome {
            history,
            events: self.events,
            trace_hash: self.hash,
            trace: self.trace.unwrap_or_default(),
            faults: self.faults,
        }
    }

    /// Process every event up to true time `limit` (ns, capped at the end of the run). Returns
    /// false once the run is over. Lets a live view advance the world in real time.
    pub fn step_until(&mut self, limit: u64) -> bool {
        let limit = limit.min(self.end);
        loop {
            match self.queue.peek() {
                Some(Reverse(Entry { at, .. })) if *at <= limit => {}
                _ => break,
            }
            if self.history.full() {
                break; // too large to check: the runner reports it
            }
            let Some(Reverse(Entry { at, ev, .. })) = self.queue.pop() else {
                break;
            };
            self.now = at;
            if let Some(c) = ev.client()
                && self.clients[c].pause_until > at
            {
                let until = self.clients[c].pause_until;
                self.push(until, ev);
                continue;
            }
            self.events += 1;
            self.hash = fnv(fnv(self.hash, at), ev.tag());
            if let Some(tr) = &mut self.trace {
                let actor = match ev.client() {
                    Some(c) => format!("client{c}"),
                    None => match &ev {
                        Ev::Arrive { s, .. } | Ev::Exec { s, .. } | Ev::ExpireCheck { s, .. } => {
                            format!("server{s}")
                        }
                        Ev::WriteArrive { .. } | Ev::ReadArrive { .. } => "resource".into(),
                        _ => "world".into(),
                    },
                };
                let line =
                    serde_json::json!({"t_ns": at, "actor": actor, "event": format!("{ev:?}")});
                tr.push(line.to_string());
            }
            self.dispatch(ev);
        }
        self.now = self.now.max(limit);
        self.now < self.end
    }

    /// True time now, ns (the run starts at 1 s).
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        self.now
    }

    /// The locks as a live view sees them: holder and expiry on the servers, the fence counter,
    /// and how many slots are held.
    #[must_use]
    pub fn lock_view(&self) -> Vec<LiveLock> {
        (0..self.cfg.locks)
            .map(|l| {
                let mut view = LiveLock {
                    lock: l,
                    holder: None,
                    token: None,
                    ttl_ms: 0,
                    slots_held: 0,
                    slots_total: u32::try_from(self.slots).unwrap_or(u32::MAX),
                    waiters: u32::try_from(
                        self.clients
                            .iter()
                            .filter(|c| {
                                matches!(
                                    c.locks[l].phase(),
                                    Phase::Acquiring | Phase::Backoff | Phase::WritingBack
                                )
                            })
                            .count(),
                    )
                    .unwrap_or(u32::MAX),
                };
                for slot in 0..self.slots {
                    let s = self.server_of(slot);
                    let key = &self.servers[s].keys[l * self.slots + slot];
                    view.token = view.token.max(key.fence());
                    if let Some((o, exp)) = key.stored() {
                        let now = self.server_clock(s);
                        if exp > now {
                            view.slots_held += 1;
                            view.holder.get_or_insert(o.client);
                            let left = i64::try_from(exp.saturating_since(now).as_millis())
                                .unwrap_or(i64::MAX);
                            view.ttl_ms = view.ttl_ms.max(left);
                        }
                    }
                }
                view
            })
            .collect()
    }

    /// Notable things since the last call (acquired, lost, released, timeouts, faults), for a
    /// live view; recorded only after [`World::set_live`].
    pub fn drain_log(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log)
    }

    /// Record the live log.
    pub fn set_live(&mut self, on: bool) {
        self.live = on;
    }

    fn note(&mut self, lock: Option<usize>, kind: &'static str, detail: String) {
        if self.live && self.log.len() < 10_000 {
            self.log.push(LogLine {
                t_ns: self.now,
                lock,
                kind,
                detail,
            });
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Wake { c, l, generation } => {
                let (c, l) = (c as usize, l as usize);
                if self.clients[c].timer_gen[l] == generation {
                    self.clients[c].timer_at[l] = None;
                    let now = self.local(c);
                    self.clients[c].locks[l].handle_timeout(now);
                    self.drain(c, l);
                }
            }
            Ev::Think { c } => self.start_iteration(c as usize),
            Ev::Transmit { c, generation } => self.transmit(c as usize, generation),
            Ev::Arrive {
                c,
                s,
                l,
                epoch,
                cmd,
            } => {
                let (ci, si) = (c as usize, s as usize);
                if !self.servers[si].up || self.links[self.link(ci, si)].epoch != epoch {
                    return;
                }
                let service = nanos(self.cfg.faults.service_time);
                let at = self.now.max(self.servers[si].busy_until) + service;
                self.servers[si].busy_until = at;
                self.push(
                    at,
                    Ev::Exec {
                        c,
                        s,
                        l,
                        cmd,
                        epoch,
                    },
                );
            }
            Ev::Exec {
                c,
                s,
                l,
                cmd,
                epoch,
            } => self.exec(c as usize, s as usize, l as usize, cmd, epoch),
            Ev::ToClient {
                c,
                s,
                l,
                epoch,
                msg,
            } => {
                let (c, s, l) = (c as usize, s as usize, l as usize);
                if self.links[self.link(c, s)].epoch != epoch {
                    return; // the connection was reset: the message is lost
                }
                let now = self.local(c);
                match msg {
                    Msg::Reply(id, reply) => {
                        if let Some(pos) = self.clients[c]
                            .acquire_sent
                            .iter()
                            .position(|(r, _)| *r == id)
                        {
                            let (_, sent) = self.clients[c].acquire_sent.swap_remove(pos);
                            self.history.reply_times.push(self.now - sent);
                        }
                        self.clients[c].locks[l].handle_reply(now, id, reply);
                    }
                    Msg::Invalidate(slot) => self.clients[c].locks[l].handle_key_changed(now, slot),
                }
                self.drain(c, l);
            }
            Ev::WriteArrive {
                l,
                c,
                token,
                acquired_at,
                read,
            } => self.resource_write(l as usize, c as usize, token, acquired_at, read),
            Ev::ReadArrive {
                l,
                c,
                token,
                generation,
            } => self.resource_read(l as usize, c, token, generation),
            Ev::ReadReply {
                c,
                generation,
                value,
            } => {
                if let Some(t) = &mut self.clients[c as usize].tenure
                    && t.generation == generation
                {
                    t.read = value;
                }
            }
            Ev::ExpireCheck { s, key } => self.expire_check(s as usize, key as usize),
            Ev::Replicate {
                s,
                key,
                state,
                epoch,
            } => {
                let sv = &mut self.servers[s as usize];
                if sv.repl_epoch == epoch {
                    sv.replica[key as usize] = state;
                }
            }
            Ev::Fault(i) => self.fault(i as usize),
            Ev::Heal(i) => self.heal(i as usize),
            Ev::Reconnect { c, s } => self.reconnect(c as usize, s as usize),
        }
    }

    fn local(&self, c: usize) -> Instant {
        Instant::from_nanos(self.client_clock(c, self.now))
    }

    // ---- clients ------------------------------------------------------------------------------

    fn start_iteration(&mut self, c: usize) {
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
        self.clients[c].issue_log[l].clear();
        if self.clients[c].locks[l].acquire(now, mode).is_err() {
            self.think(c);
            return;
        }
        self.drain(c, l);
    }

    fn think(&mut self, c: usize) {
        let t = uniform(&mut self.rng, self.cfg.think.0, self.cfg.think.1);
        self.push(self.now + nanos(t), Ev::Think { c: c as u32 });
    }

    fn transmit(&mut self, c: usize, generation: u32) {
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
        let released = self.clients[c].locks[l].release(now).is_ok();
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
    fn drain(&mut self, c: usize, l: usize) {
        while let Some(cmd) = self.clients[c].locks[l].poll_command() {
            let s = self.server_of(cmd.slot);
            if let Op::Acquire { value, .. } = cmd.op {
                self.clients[c].last_acquire_nonce[l] = value.nonce;
                self.clients[c].acquire_sent.push((cmd.request, self.now));
            }
            let li = self.link(c, s);
            if !self.links[li].up {
                self.clients[c].last_error_nonce[l] = self.clients[c].last_acquire_nonce[l];
                let reply = Reply::Error(SlotError::new(
                    SlotErrorKind::Disconnected,
                    "connection down",
                ));
                let epoch = self.links[li].epoch;
                self.push(
                    self.now,
                    Ev::ToClient {
                        c: c as u32,
                        s: s as u32,
                        l: l as u32,
                        epoch,
                        msg: Msg::Reply(cmd.request, reply),
                    },
                );
                continue;
            }
            let (at, epoch) = self.send_at(li, true);
            self.push(
                at,
                Ev::Arrive {
                    c: c as u32,
                    s: s as u32,
                    l: l as u32,
                    epoch,
                    cmd,
                },
            );
        }
        while let Some(ev) = self.clients[c].locks[l].poll_event() {
            self.on_event(c, l, ev);
        }
        // (Re)arm the machine's timer.
        let want = self.clients[c].locks[l]
            .poll_timeout()
            .map(|t| self.client_true(c, t.as_nanos()));
        if want != self.clients[c].timer_at[l] {
            self.clients[c].timer_gen[l] = self.clients[c].timer_gen[l].wrapping_add(1);
            self.clients[c].timer_at[l] = want;
            if let Some(at) = want {
                let generation = self.clients[c].timer_gen[l];
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
                let mut validity_true = self.client_true(c, validity.as_nanos());
                if self.cfg.planted == Some(PlantedBug::ValidityFromReply) {
                    // planted: trust the lease from the reply time, as if validity were counted then
                    validity_true += self
                        .client_clock(c, self.now)
                        .saturating_sub(sent_at.as_nanos());
                }
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
                let mut at = self.now + nanos(hold);
                if self.cfg.planted == Some(PlantedBug::ValidityFromReply) {
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
                if self.cfg.planted == Some(PlantedBug::ValidityFromReply)
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
        let nonce = self.clients[c].locks[l].lease_value().map(|v| v.nonce);
        let log = std::mem::take(&mut self.clients[c].issue_log[l]);
        let first = log
            .iter()
            .filter(|(n, _)| n.is_some() && *n == nonce)
            .map(|(_, t)| *t)
            .min()
            .unwrap_or(self.now);
        let last = log
            .iter()
            .filter(|(n, t)| (n.is_some() && *n == nonce) || (n.is_none() && *t >= first))
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(first);
        (first, last)
    }

    /// With no clock jump and drift within bounds, the servers keep the key on a quorum at least
    /// until the client's validity instant (in true time).
    fn check_oracle(&mut self, c: usize, l: usize, validity_true: u64) {
        let Some(value) = self.clients[c].locks[l].lease_value() else {
            return;
        };
        let held = self.clients[c].locks[l].held_slots();
        let mut covering = 0;
        for slot in held.iter() {
            let s = self.server_of(slot);
            let key = l * self.slots + slot;
            if let Some((o, exp)) = self.servers[s].keys[key].stored()
                && o.client == c
                && o.value == value
                && self.server_to_true(s, exp) >= validity_true
            {
                covering += 1;
            }
        }
        let quorum = self.clients[c].locks[l].quorum();
        if covering < quorum {
            self.history.violation(
                "validity_oracle",
                self.now,
                format!("client {c} lock {l}: trusts its lease until t={validity_true}ns but only {covering}/{quorum} slots keep the key that long"),
            );
        }
    }

    fn check_classification(&mut self, c: usize, l: usize, err: &AcquireError) {
        let cause = match err {
            AcquireError::DeadlineExceeded {
                last_cause: Some(c),
                ..
            } => c.as_ref(),
            e => e,
        };
        let cl = &self.clients[c];
        let nonce = cl.last_acquire_nonce[l];
        let wrong = match cause {
            AcquireError::Contended { .. } => cl.last_held_nonce[l] != nonce,
            AcquireError::QuorumUnreachable { .. } => cl.last_error_nonce[l] != nonce,
            _ => false,
        };
        if wrong && !matches!(err, AcquireError::DeadlineExceeded { .. }) {
            self.history.violation(
                "misclassified",
                self.now,
                format!(
                    "client {c} lock {l}: reported {} but no server answered that way in the round",
                    cause.reason()
                ),
            );
        }
    }

    // ---- servers ------------------------------------------------------------------------------

    fn exec(&mut self, c: usize, s: usize, l: usize, cmd: leasehold_core::Command, epoch: u32) {
        if !self.servers[s].up {
            return;
        }
        let key = l * self.slots + cmd.slot;
        let now = self.server_clock(s);
        let before = self.servers[s].keys[key].stored().map(|(o, _)| o);
        let fence_before = self.servers[s].keys[key]
            .stored_fence()
            .filter(|(_, e)| *e > now);
        let expired_before = self.servers[s].keys[key].clone().expire(now);
        let reply = match (cmd.op, self.cfg.planted) {
            (Op::Extend { ttl_ms, .. }, Some(PlantedBug::ExtendWithoutCompare)) => {
                if self.servers[s].keys[key].pexpire_any(now, ttl_ms) {
                    Reply::Extended
                } else {
                    self.servers[s].keys[key].exec(now, c, cmd.op)
                }
            }
            _ => self.servers[s].keys[key].exec(now, c, cmd.op),
        };
        // an extension may only ever renew the extender's own key
        if let (Op::Extend { value, .. }, Reply::Extended) = (cmd.op, &reply) {
            let owner = before.filter(|_| !expired_before);
            if owner.is_none_or(|o| o.client != c || o.value != value) {
                self.history.violation(
                    "stale_extension",
                    self.now,
                    format!("client {c} lock {l}: an extension renewed a key it did not hold (held by {owner:?})"),
                );
            }
        }
        // when the servers issued leases, for token_order
        match (cmd.op, &reply) {
            (Op::Acquire { value, .. }, Reply::Granted { .. }) => {
                if fence_before.is_none() && self.servers[s].fenced[key] {
                    self.history.fences_recreated += 1;
                }
                self.servers[s].fenced[key] = true;
                self.clients[c].issue_log[l].push((Some(value.nonce), self.now));
            }
            (Op::RaiseFence { .. }, Reply::FenceRaised) => {
                self.clients[c].issue_log[l].push((None, self.now));
            }
            _ => {}
        }
        // remember what the servers really answered to the client's *current* round
        if let Op::Acquire { value, .. } = cmd.op
            && value.nonce == self.clients[c].last_acquire_nonce[l]
        {
            match &reply {
                Reply::Held { .. } => self.clients[c].last_held_nonce[l] = value.nonce,
                Reply::Error(_) => self.clients[c].last_error_nonce[l] = value.nonce,
                _ => {}
            }
        }
        let after = self.servers[s].keys[key].stored();
        if let Some((_, exp)) = after {
            let at = self.server_to_true(s, exp).max(self.now) + 1;
            self.push(
                at,
                Ev::ExpireCheck {
                    s: s as u32,
                    key: key as u32,
                },
            );
        }
        // replication of the write
        if !matches!(cmd.op, Op::Release { .. }) || before != after.map(|(o, _)| o) {
            let lag = nanos(self.cfg.faults.replication_lag);
            let state = self.servers[s].keys[key].clone();
            let epoch_r = self.servers[s].repl_epoch;
            if lag == 0 {
                self.servers[s].replica[key] = state;
            } else {
                self.push(
                    self.now + lag,
                    Ev::Replicate {
                        s: s as u32,
                        key: key as u32,
                        state,
                        epoch: epoch_r,
                    },
                );
            }
        }
        // Redis's NOLOOP does not cover writes made inside scripts: the writer is notified too
        let wrote = before != after.map(|(o, _)| o)
            || matches!((cmd.op, &reply), (Op::Extend { .. }, Reply::Extended));
        if wrote {
            self.invalidate(s, l, cmd.slot, None);
        }
        let li = self.link(c, s);
        if self.links[li].epoch != epoch {
            return;
        }
        self.send_to_client(c, s, l, Msg::Reply(cmd.request, reply));
    }

    /// Send `msg` from server `s` to client `c` about lock `l` over their link (in order, held
    /// while partitioned, tagged with the link's epoch so a reset loses it).
    fn send_to_client(&mut self, c: usize, s: usize, l: usize, msg: Msg) {
        let li = self.link(c, s);
        let (at, epoch) = self.send_at(li, false);
        self.push(
            at,
            Ev::ToClient {
                c: c as u32,
                s: s as u32,
                l: l as u32,
                epoch,
                msg,
            },
        );
    }

    /// Client-tracking style invalidation to interested clients other than the writer (NOLOOP).
    fn invalidate(&mut self, s: usize, l: usize, slot: usize, writer: Option<usize>) {
        if !self.cfg.notifications {
            return;
        }
        for c in 0..self.clients.len() {
            if Some(c) == writer {
                continue;
            }
            let phase = self.clients[c].locks[l].phase();
            if !matches!(phase, Phase::Backoff | Phase::Held) {
                continue;
            }
            if !self.links[self.link(c, s)].up {
                continue;
            }
            self.send_to_client(c, s, l, Msg::Invalidate(slot));
        }
    }

    fn expire_check(&mut self, s: usize, key: usize) {
        if !self.servers[s].up {
            return;
        }
        let now = self.server_clock(s);
        if self.servers[s].keys[key].expire(now) {
            let (l, slot) = (key / self.slots, key % self.slots);
            self.invalidate(s, l, slot, None);
        }
    }

    fn resource_fencing(&self) -> crate::config::Fencing {
        if self.cfg.planted == Some(PlantedBug::NoFencing) {
            crate::config::Fencing::Off
        } else {
            self.cfg.fencing
        }
    }

    /// A critical section's read of the counter, with its token.
    fn resource_read(&mut self, l: usize, c: u32, token: u64, generation: u32) {
        let accepted = !self.resource_fencing().checks_reads() || token >= self.highest[l];
        self.history.read(accepted);
        let value = if accepted {
            if self.resource_fencing().checks_reads() {
                self.highest[l] = self.highest[l].max(token);
            }
            Some(self.counter[l])
        } else {
            None
        };
        let lat = self.latency();
        self.push(
            self.now + lat,
            Ev::ReadReply {
                c,
                generation,
                value,
            },
        );
    }

    /// A critical section's write of `read + 1`, with its token.
    fn resource_write(&mut self, l: usize, c: usize, token: u64, acquired_at: u64, read: u64) {
        let accepted = !self.resource_fencing().checks_writes() || token >= self.highest[l];
        self.history.write(accepted);
        let verdict = if accepted { "write" } else { "write_rejected" };
        self.note(Some(l), verdict, format!("c{c} token {token}"));
        if !accepted {
            return;
        }
        self.highest[l] = self.highest[l].max(token);
        if let Some((later, who)) = self.last_writer[l]
            && later > acquired_at
            && who != c
        {
            self.history.violation(
                    "stale_writes_accepted",
                    self.now,
                    format!("lock {l}: accepted client {c}'s write (token {token}) after client {who}, who acquired later, had written"),
                );
        }
        if self.last_writer[l].is_none_or(|(t, _)| acquired_at >= t) {
            self.last_writer[l] = Some((acquired_at, c));
        }
        let current = self.counter[l];
        if read != current {
            self.history.violation(
                "lost_updates",
                self.now,
                format!(
                    "lock {l}: accepted client {c}'s write of {} (token {token}, read {read}) over {current}: {} accepted increment(s) lost",
                    read + 1,
                    current.saturating_sub(read).max(1)
                ),
            );
        }
        self.counter[l] = read + 1;
    }

    // ---- faults -------------------------------------------------------------------------------

    fn reset_link(&mut self, c: usize, s: usize) {
        let li = self.link(c, s);
        if !self.links[li].up {
            return;
        }
        self.links[li].epoch += 1;
        self.links[li].up = false;
        let now = self.local(c);
        for l in 0..self.cfg.locks {
            // a reset is a real error for the round in flight
            self.clients[c].last_error_nonce[l] = self.clients[c].last_acquire_nonce[l];
            for slot in 0..self.slots {
                if self.server_of(slot) == s {
                    self.clients[c].locks[l].handle_disconnected(now, slot);
                }
            }
            self.drain(c, l);
        }
        self.push(
            self.now + RECONNECT,
            Ev::Reconnect {
                c: c as u32,
                s: s as u32,
            },
        );
    }

    fn reconnect(&mut self, c: usize, s: usize) {
        if !self.servers[s].up {
            self.push(
                self.now + 2 * RECONNECT,
                Ev::Reconnect {
                    c: c as u32,
                    s: s as u32,
                },
            );
            return;
        }
        let li = self.link(c, s);
        self.links[li].up = true;
        let now = self.local(c);
        for l in 0..self.cfg.locks {
            for slot in 0..self.slots {
                if self.server_of(slot) == s {
                    self.clients[c].locks[l].handle_reconnected(now, slot);
                }
            }
            // a reconnect re-arms tracking; waiters retry (no notification may have come)
            if self.clients[c].locks[l].phase() == Phase::Backoff {
                self.clients[c].locks[l].handle_key_changed(now, 0);
            }
            self.drain(c, l);
        }
    }

    fn fault(&mut self, i: usize) {
        let f = self.faults[i].clone();
        self.history.fault(f.at);
        self.note(None, "fault", format!("{:?}", f.fault));
        match f.fault {
            Fault::Reset { c, s } => self.reset_link(c, s),
            Fault::Partition { c, s, len } => {
                let li = self.link(c, s);
                self.links[li].partition_until = self.now + nanos(len);
            }
            Fault::Crash { s, downtime } => {
                self.servers[s].up = false;
                for c in 0..self.clients.len() {
                    self.reset_link(c, s);
                }
                self.push(self.now + nanos(downtime), Ev::Heal(i as u32));
            }
            Fault::ClockJump { s, delta_ns } => self.servers[s].offset += delta_ns,
            Fault::Pause { c, len } => {
                self.clients[c].pause_until =
                    self.clients[c].pause_until.max(self.now + nanos(len));
            }
            Fault::ForceRelease { s, l } => {
                // the operator evicts exactly the lease they see, with the one force-release
                // script every tool runs (wire::FORCE_RELEASE)
                let now = self.server_clock(s);
                let keep_ms = self.cfg.lock.fence_keep_ms();
                for slot in 0..self.slots {
                    if self.server_of(slot) == s {
                        let key = l * self.slots + slot;
                        let seen = self.servers[s].keys[key].stored().filter(|(_, e)| *e > now);
                        let Some((owner, _)) = seen else { continue };
                        let op = Op::ForceRelease {
                            value: owner.value,
                            keep_ms,
                        };
                        let reply = self.servers[s].keys[key].exec(now, owner.client, op);
                        if matches!(reply, Reply::ForceReleased(ForceOutcome::Deleted { .. })) {
                            self.invalidate(s, l, slot, None);
                        }
                    }
                }
            }
            Fault::Failover { s } => {
                let sv = &mut self.servers[s];
                sv.keys = sv.replica.clone();
                sv.repl_epoch += 1;
                for c in 0..self.clients.len() {
                    self.reset_link(c, s);
                }
            }
        }
    }

    fn heal(&mut self, i: usize) {
        if let Fault::Crash { s, .. } = self.faults[i].fault {
            let sv = &mut self.servers[s];
            sv.up = true;
            sv.busy_until = self.now;
            if !self.cfg.faults.persist {
                let planted = self.cfg.planted == Some(PlantedBug::CounterFromZero);
                for k in sv.keys.iter_mut().chain(sv.replica.iter_mut()) {
                    *k = if planted {
                        ModelServer::with_fence(Some(0)).without_time_floor()
                    } else {
                        ModelServer::default()
                    };
                }
            }
        }
    }
}
