//! Servers: per (server, lock, slot) the core's Redis model (`ModelServer`, which executes every
//! wire script as the Lua does), on the server's own clock, with a service time, asynchronous
//! replication to a replica, expiry notifications, crashes and restarts.
//!
//! **Invariant:** every command a client sends runs the one model of the wire protocol; the
//! simulator adds time, placement and faults around it, never protocol logic of its own.

use leasehold_core::testkit::ModelServer;
use leasehold_core::{Command, Instant, Op, Reply};

use super::World;
use super::clock::SkewedClock;
use super::nanos;
use super::queue::{Ev, Msg};
use crate::check::Property;

/// One simulated Redis server.
pub(super) struct Server {
    /// One model per (lock, slot): `l * slots + slot`.
    pub(super) keys: Vec<ModelServer>,
    /// Whether each key's fence counter was ever created (to count re-creations).
    fenced: Vec<bool>,
    pub(super) replica: Vec<ModelServer>,
    pub(super) up: bool,
    pub(super) busy_until: u64,
    pub(super) clock: SkewedClock,
    pub(super) repl_epoch: u32,
    /// Replication messages sent in this `repl_epoch` (the primary's replication offset).
    pub(super) repl_sent: u64,
    /// Of those, applied by the replica (its acknowledged offset, for `WAIT`).
    pub(super) repl_applied: u64,
    /// True time until which the replica is cut off (a `ReplicaStall` fault).
    pub(super) replica_stalled_until: u64,
    /// Clients blocked in `WAIT` (`wait.rs`).
    pub(super) waits: Vec<super::wait::Waiter>,
    /// Ids for `waits`.
    pub(super) next_wait: u32,
    /// Client tracking, per (key, client): the client's connection read the key since its last
    /// change, so Redis will push the next one (and then forget it, until it is read again).
    tracked: Vec<bool>,
    clients: usize,
}

impl Server {
    pub(super) fn new(keys: usize, clients: usize, clock: SkewedClock) -> Server {
        Server {
            tracked: vec![false; keys * clients],
            clients,
            keys: vec![ModelServer::default(); keys],
            fenced: vec![false; keys],
            replica: vec![ModelServer::default(); keys],
            up: true,
            busy_until: 0,
            clock,
            repl_epoch: 0,
            repl_sent: 0,
            repl_applied: 0,
            replica_stalled_until: 0,
            waits: Vec::new(),
            next_wait: 0,
        }
    }

    /// A replication message arrived (dropped if a failover changed the epoch since); whether
    /// it was applied.
    pub(super) fn replicated(&mut self, key: usize, state: ModelServer, epoch: u32) -> bool {
        if self.repl_epoch == epoch {
            self.replica[key] = state;
            self.repl_applied += 1;
            return true;
        }
        false
    }

    /// Client `c`'s connection now tracks `key` (it read it last) or not (it wrote it last).
    pub(super) fn track(&mut self, key: usize, c: usize, on: bool) {
        self.tracked[key * self.clients + c] = on;
    }

    /// Whether client `c`'s connection tracked `key`, which it no longer does (Redis's tracking
    /// table after a change of the key is reported).
    fn untrack(&mut self, key: usize, c: usize) -> bool {
        std::mem::replace(&mut self.tracked[key * self.clients + c], false)
    }

    /// Client `c`'s connection to this server is gone, and with it everything it tracked.
    pub(super) fn forget_client(&mut self, c: usize) {
        for key in 0..self.keys.len() {
            self.tracked[key * self.clients + c] = false;
        }
    }

    /// Promote the replica (a failover). The new primary starts a new replication history;
    /// clients blocked in `WAIT` lose their connections with the old primary.
    pub(super) fn promote(&mut self) {
        self.keys = self.replica.clone();
        self.repl_epoch += 1;
        self.repl_sent = 0;
        self.repl_applied = 0;
        self.waits.clear();
    }
}

impl World {
    /// Server `s`'s clock now.
    pub(super) fn server_clock(&self, s: usize) -> Instant {
        Instant::from_nanos(self.servers[s].clock.read(self.now))
    }

    /// When work that reached server `s` from client `c` now runs: queued behind the server's
    /// earlier work; `None` when the server is down or the link was reset since it was sent.
    fn queue_behind(&mut self, c: u32, s: u32, epoch: u32) -> Option<u64> {
        let (ci, si) = (c as usize, s as usize);
        if !self.servers[si].up || self.links[self.link(ci, si)].epoch != epoch {
            return None;
        }
        let service = nanos(self.cfg.faults.service_time);
        let at = self.now.max(self.servers[si].busy_until) + service;
        self.servers[si].busy_until = at;
        Some(at)
    }

    /// A command reached server `s`: it queues behind the server's earlier work.
    pub(super) fn arrive(&mut self, c: u32, s: u32, l: u32, epoch: u32, cmd: Command) {
        let Some(at) = self.queue_behind(c, s, epoch) else {
            return;
        };
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

    /// A batch reached server `s`: it queues as one script.
    pub(super) fn arrive_batch(&mut self, c: u32, s: u32, l: u32, epoch: u32, cmds: Vec<Command>) {
        let Some(at) = self.queue_behind(c, s, epoch) else {
            return;
        };
        self.push(
            at,
            Ev::ExecBatch {
                c,
                s,
                l,
                cmds,
                epoch,
            },
        );
    }

    /// Run a batch as `ACQUIRE_BATCH` does: every slot reads first (each one's floor), then
    /// each runs as its own `ACQUIRE` with the highest floor, in one step.
    pub(super) fn exec_batch(
        &mut self,
        c: usize,
        s: usize,
        l: usize,
        cmds: Vec<Command>,
        epoch: u32,
    ) {
        if !self.servers[s].up {
            return;
        }
        let now = self.server_clock(s);
        let base = l * self.slots;
        self.batch_floor = cmds
            .iter()
            .filter_map(|cmd| {
                // on a copy: the batch's own reads must not change what `exec` sees as before
                self.servers[s].keys[base + cmd.slot]
                    .clone()
                    .batch_floor(now, c, cmd.op)
            })
            .max()
            .unwrap_or(0);
        for cmd in cmds {
            self.exec(c, s, l, cmd, epoch);
        }
        self.batch_floor = 0;
    }

    pub(super) fn exec(&mut self, c: usize, s: usize, l: usize, cmd: Command, epoch: u32) {
        if !self.servers[s].up {
            return;
        }
        // a client blocked in WAIT has its later commands queued behind it (as Redis does)
        if self.defer_behind_wait(c, s, l, cmd, epoch) {
            return;
        }
        if let Op::Wait {
            replicas,
            timeout_ms,
        } = cmd.op
        {
            self.exec_wait(c, s, l, cmd.request, epoch, replicas, timeout_ms);
            return;
        }
        let key = l * self.slots + cmd.slot;
        let now = self.server_clock(s);
        let before = self.servers[s].keys[key].stored().map(|(o, _)| o);
        let fence_before = self.servers[s].keys[key]
            .stored_fence()
            .filter(|(_, e)| *e > now);
        let expired_before = self.servers[s].keys[key].clone().expire(now);
        let reply = self.run_script(c, s, key, now, cmd.op);
        // an extension may only ever renew the extender's own key
        if let (Op::Extend { value, .. } | Op::CompatExtend { value, .. }, Reply::Extended) =
            (cmd.op, &reply)
        {
            let owner = before.filter(|_| !expired_before);
            if owner.is_none_or(|o| o.client != c || o.value != value) {
                self.history.violation(
                    Property::StaleExtension,
                    self.now,
                    format!("client {c} lock {l}: an extension renewed a key it did not hold (held by {owner:?})"),
                );
            }
        }
        // when the servers issued leases, for token_order
        match (cmd.op, &reply) {
            // the rueidislock dialect: a grant without a counter (its issue order is still
            // recorded; the dialect does not promise token_order)
            (Op::CompatAcquire { value, .. }, Reply::GrantedUnfenced) => {
                self.clients[c].issue_log(l).grant(value.nonce, self.now);
            }
            (Op::Acquire { value, .. }, Reply::Granted { .. }) => {
                if fence_before.is_none() && self.servers[s].fenced[key] {
                    self.history.fences_recreated += 1;
                }
                self.servers[s].fenced[key] = true;
                self.clients[c].issue_log(l).grant(value.nonce, self.now);
            }
            (Op::RaiseFence { .. }, Reply::FenceRaised) => {
                self.clients[c].issue_log(l).write_back(self.now);
            }
            _ => {}
        }
        let after = self.servers[s].keys[key].stored();
        if let Some((_, exp)) = after {
            let at = self.servers[s].clock.to_true(exp.as_nanos()).max(self.now) + 1;
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
            self.servers[s].repl_sent += 1;
            let stalled = self.servers[s].replica_stalled_until;
            if lag == 0 && stalled < self.now {
                self.servers[s].replica[key] = state;
                self.servers[s].repl_applied += 1;
            } else {
                self.push(
                    self.now.max(stalled) + lag,
                    Ev::Replicate {
                        s: s as u32,
                        key: key as u32,
                        state,
                        epoch: epoch_r,
                    },
                );
            }
        }
        // default-mode tracking with NOLOOP (the adapter's, wire.rs's note on pushes): the
        // clients that read the key hear of the write, the writer does not
        let wrote = before != after.map(|(o, _)| o)
            || matches!(
                (cmd.op, &reply),
                (Op::Extend { .. } | Op::CompatExtend { .. }, Reply::Extended)
            );
        if wrote {
            self.invalidate(s, l, cmd.slot, Some(c));
        }
        let li = self.link(c, s);
        if self.links[li].epoch != epoch {
            return;
        }
        if let Some(on) = cmd.op.tracks_lock_key(&reply) {
            self.servers[s].track(key, c, on);
        }
        self.send_to_client(c, s, l, Msg::Reply(cmd.request, reply));
    }

    /// Run `op` for client `c` on server `s`'s model of `key` at server time `now`.
    fn run_script(&mut self, c: usize, s: usize, key: usize, now: Instant, op: Op) -> Reply {
        #[cfg(feature = "planted-bugs")]
        if let Op::Extend { ttl_ms, .. } = op
            && self.planted(crate::config::PlantedBug::ExtendWithoutCompare)
            && self.servers[s].keys[key].pexpire_any(now, ttl_ms)
        {
            return Reply::Extended;
        }
        self.servers[s].keys[key].exec_in_batch(now, c, op, self.batch_floor)
    }

    /// Client-tracking invalidation, as Redis does it in default mode: to every client whose
    /// connection read the key since its last change, other than the writer (NOLOOP), and the
    /// key is forgotten for all of them (the writer included) until they read it again.
    pub(super) fn invalidate(&mut self, s: usize, l: usize, slot: usize, writer: Option<usize>) {
        let key = l * self.slots + slot;
        for c in 0..self.clients.len() {
            if !self.servers[s].untrack(key, c) || !self.cfg.notifications || Some(c) == writer {
                continue;
            }
            if !self.links[self.link(c, s)].up {
                continue;
            }
            self.send_to_client(c, s, l, Msg::Invalidate(slot));
        }
    }

    pub(super) fn expire_check(&mut self, s: usize, key: usize) {
        if !self.servers[s].up {
            return;
        }
        let now = self.server_clock(s);
        if self.servers[s].keys[key].expire(now) {
            let (l, slot) = (key / self.slots, key % self.slots);
            self.invalidate(s, l, slot, None);
        }
    }

    /// Server `s` comes back from a crash: with persistence its keys are as they were, without
    /// it everything is gone (fence counters too).
    pub(super) fn restart(&mut self, s: usize) {
        #[cfg(feature = "planted-bugs")]
        let planted = self.planted(crate::config::PlantedBug::CounterFromZero);
        let persist = self.cfg.faults.persist;
        let sv = &mut self.servers[s];
        sv.up = true;
        sv.busy_until = self.now;
        if !persist {
            for k in sv.keys.iter_mut().chain(sv.replica.iter_mut()) {
                *k = ModelServer::default();
                #[cfg(feature = "planted-bugs")]
                if planted {
                    *k = ModelServer::with_fence(Some(0)).without_time_floor();
                }
            }
        }
    }
}
