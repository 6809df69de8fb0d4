//! The discrete-event world: clients running real `leasehold-core` machines, simulated Redis
//! servers (the core's reference model, on their own clocks), a network, a fenced resource, and
//! the fault schedule. Single-threaded; one seed fully determines the run.
//!
//! Rooms (each an `impl World` block or a type of its own, each keeping one invariant):
//!
//! - [`queue`]: events in `(true time, sequence)` order — the only order there is;
//! - [`clock`]: one skewed-clock type for clients and servers — readings are pure functions of
//!   true time;
//! - [`net`]: links with latency, TCP order, partitions and resets — a message from an older
//!   link epoch is lost, never delivered late;
//! - [`server`]: the Redis model per (server, lock, slot) with replication and restarts — every
//!   command runs the core's `ModelServer`, as the Lua would;
//! - [`client`]: the workload around each client's machines and the online checks of what they
//!   report — a machine sees only what the network delivered, at its own clock's time;
//! - [`resource`]: the fenced resource the critical sections read and write — it judges tokens
//!   exactly as configured;
//! - [`inject`]: the fault schedule applied — faults change the world only through the rooms
//!   above;
//! - [`live`]: read-only views for the dashboard — nothing there changes a run or its trace.

use std::time::Duration;

use leasehold_core::{HolderId, Instant, Lock, LockName};

use crate::check::history::History;
use crate::config::{SimConfig, uniform};
use crate::faults::{FaultEvent, schedule};
use crate::rng::Rng;

mod client;
mod clock;
mod inject;
mod live;
mod net;
mod queue;
mod resource;
mod server;
mod wait;

use client::Client;
use clock::{SkewedClock, draw_drift};
pub use live::{ClientActivity, LiveClient, LiveLock, LogLine};
use net::Link;
use queue::{Ev, Queue};
use resource::Resource;
use server::Server;

const RECONNECT: u64 = 50_000_000; // 50 ms
const T_START: u64 = 1_000_000_000; // true time starts at 1 s

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
    queue: Queue,
    clients: Vec<Client>,
    servers: Vec<Server>,
    links: Vec<Link>,
    slots: usize,
    resource: Resource,
    faults: Vec<FaultEvent>,
    fault_end: u64,
    end: u64,
    history: History,
    hash: u64,
    events: u64,
    trace: Option<Vec<String>>,
    live: bool,
    log: Vec<LogLine>,
    /// The token floor of the batch being executed ([`leasehold_core::wire::batch`]; 0 outside
    /// one).
    batch_floor: u64,
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
            let drift_ppm = draw_drift(&mut rng, cfg.faults.client_drift_ppm);
            #[cfg(feature = "planted-bugs")]
            let wall_step_at =
                (cfg.planted == Some(crate::config::PlantedBug::WallClock)).then(|| {
                    let at = T_START + rng.below_inclusive(nanos(cfg.duration) / 2);
                    (at, -(nanos(cfg.lock.ttl) as i64) * 2)
                });
            #[cfg(not(feature = "planted-bugs"))]
            let wall_step_at = None;
            let offset = rng.below_inclusive(1_000_000_000) as i64;
            let clock = SkewedClock::new(offset, drift_ppm, wall_step_at);
            if cfg.compat() {
                // the rueidislock dialect's PXAT reads the client's wall clock: true time off
                // by this client's skew, then moving with its (drifting, jumping) clock. Drawn
                // only in this dialect, so leasehold's traces are unchanged.
                let skew = nanos(cfg.faults.client_wall_skew);
                let skew = rng.below_inclusive(2 * skew) as i64 - skew as i64;
                let reading = Instant::from_nanos(clock.read(T_START));
                let wall_ms = ((T_START as i64 + skew).max(0) as u64) / 1_000_000;
                for lock in &mut locks {
                    lock.set_wall_clock(reading, wall_ms);
                }
            }
            clients.push(Client::new(locks, clock));
        }
        let servers = (0..nserv)
            .map(|_| {
                let drift_ppm = draw_drift(&mut rng, cfg.faults.server_drift_ppm);
                Server::new(
                    cfg.locks * slots,
                    cfg.clients,
                    SkewedClock::new(0, drift_ppm, None),
                )
            })
            .collect();
        let links = (0..cfg.clients * nserv).map(|_| Link::default()).collect();
        let mut w = World {
            resource: Resource::new(cfg.locks),
            history: History::new(cfg.locks, heal_at),
            cfg,
            rng,
            now: T_START,
            queue: Queue::default(),
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
            batch_floor: 0,
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
        self.queue.push(at, ev);
    }

    /// Whether `bug` is planted in this run (negative controls only).
    #[cfg(feature = "planted-bugs")]
    fn planted(&self, bug: crate::config::PlantedBug) -> bool {
        self.cfg.planted == Some(bug)
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
            match self.queue.next_at() {
                Some(at) if at <= limit => {}
                _ => break,
            }
            if self.history.full() {
                break; // too large to check: the runner reports it
            }
            let Some((at, ev)) = self.queue.pop() else {
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
                let line = serde_json::json!({"t_ns": at, "actor": ev.actor(), "event": format!("{ev:?}")});
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

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Wake { c, l, generation } => self.wake(c as usize, l as usize, generation),
            Ev::Think { c } => self.start_iteration(c as usize),
            Ev::Transmit { c, generation } => self.transmit(c as usize, generation),
            Ev::Arrive {
                c,
                s,
                l,
                epoch,
                cmd,
            } => self.arrive(c, s, l, epoch, cmd),
            Ev::Exec {
                c,
                s,
                l,
                cmd,
                epoch,
            } => self.exec(c as usize, s as usize, l as usize, cmd, epoch),
            Ev::ArriveBatch {
                c,
                s,
                l,
                epoch,
                cmds,
            } => self.arrive_batch(c, s, l, epoch, cmds),
            Ev::ExecBatch {
                c,
                s,
                l,
                cmds,
                epoch,
            } => self.exec_batch(c as usize, s as usize, l as usize, cmds, epoch),
            Ev::ToClient {
                c,
                s,
                l,
                epoch,
                msg,
            } => self.deliver(c as usize, s as usize, l as usize, epoch, msg),
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
            } => self.read_reply(c as usize, generation, value),
            Ev::ExpireCheck { s, key } => self.expire_check(s as usize, key as usize),
            Ev::Replicate {
                s,
                key,
                state,
                epoch,
            } => self.replicated(s as usize, key as usize, state, epoch),
            Ev::Fault(i) => self.fault(i as usize),
            Ev::Heal(i) => self.heal(i as usize),
            Ev::Reconnect { c, s } => self.reconnect(c as usize, s as usize),
            Ev::WaitTimeout { s, id } => self.wait_timeout(s as usize, id),
        }
    }
}
