//! Redis's `WAIT` against the simulated replica: how many replicas have applied every write the
//! primary made up to the `WAIT` (one replica per server here), blocking the client until they
//! have or the timeout passes.
//!
//! **Invariant:** a `WAIT` is acknowledged only by replication that really arrived: the replica's
//! applied offset (`Server::repl_applied`, counted as `Replicate` events land in order, lag and
//! stalls included) reaches the primary's offset at the time the `WAIT` ran. A stalled
//! (partitioned) replica does not acknowledge; a failover starts a new replication history and
//! drops the blocked clients with the old primary's connections. As in Redis, a client blocked in
//! `WAIT` has its later commands on that connection queued until the `WAIT` returns.

use leasehold_core::testkit::ModelServer;
use leasehold_core::{Command, Reply, RequestId};

use super::queue::{Ev, Msg};
use super::{World, nanos};

/// Redis's default `hz` (10): blocked clients' timeouts are handled on these ticks, ns.
const HZ_TICK: u64 = 100_000_000;

/// A client blocked in `WAIT` on one server.
#[derive(Debug, Clone)]
pub(super) struct Waiter {
    id: u32,
    c: usize,
    l: usize,
    request: RequestId,
    /// The link epoch the `WAIT` came on.
    epoch: u32,
    /// The primary's replication offset when the `WAIT` ran.
    target: u64,
    replicas: u32,
    /// Commands that arrived behind the `WAIT` on the same connection: (lock, command).
    deferred: Vec<(usize, Command)>,
}

impl World {
    /// Replicas of server `s` that have applied every write up to offset `target` (0 or 1).
    fn acked(&self, s: usize, target: u64) -> u32 {
        u32::from(self.servers[s].repl_applied >= target)
    }

    /// Run `WAIT replicas timeout_ms` for client `c` on server `s`.
    #[allow(clippy::too_many_arguments)] // one command's fields, as `exec` has them
    pub(super) fn exec_wait(
        &mut self,
        c: usize,
        s: usize,
        l: usize,
        request: RequestId,
        epoch: u32,
        replicas: u32,
        timeout_ms: u64,
    ) {
        let target = self.servers[s].repl_sent;
        let acked = self.acked(s, target);
        #[cfg(feature = "planted-bugs")]
        let acked = if self.planted(crate::config::PlantedBug::WaitWithoutReplication) {
            replicas
        } else {
            acked
        };
        if acked >= replicas {
            self.answer(c, s, l, request, epoch, acked);
            return;
        }
        let sv = &mut self.servers[s];
        let id = sv.next_wait;
        sv.next_wait = sv.next_wait.wrapping_add(1);
        sv.waits.push(Waiter {
            id,
            c,
            l,
            request,
            epoch,
            target,
            replicas,
            deferred: Vec::new(),
        });
        // Redis checks blocked clients' timeouts when its event loop wakes, at least `hz` (10)
        // times a second: an idle server answers a timed-out WAIT at the next 100 ms tick
        let at = self.now + nanos(std::time::Duration::from_millis(timeout_ms));
        let at = at.div_ceil(HZ_TICK) * HZ_TICK;
        self.push(at, Ev::WaitTimeout { s: s as u32, id });
    }

    /// Whether client `c`'s connection (`epoch`) to server `s` is blocked in a `WAIT`; if so,
    /// `cmd` is queued behind it.
    pub(super) fn defer_behind_wait(
        &mut self,
        c: usize,
        s: usize,
        l: usize,
        cmd: Command,
        epoch: u32,
    ) -> bool {
        let Some(w) = self.servers[s]
            .waits
            .iter_mut()
            .find(|w| w.c == c && w.epoch == epoch)
        else {
            return false;
        };
        w.deferred.push((l, cmd));
        true
    }

    /// A replication message reached server `s`'s replica: `WAIT`s it satisfies return.
    pub(super) fn replicated(&mut self, s: usize, key: usize, state: ModelServer, epoch: u32) {
        if !self.servers[s].replicated(key, state, epoch) {
            return;
        }
        let applied = self.servers[s].repl_applied;
        let done: Vec<u32> = self.servers[s]
            .waits
            .iter()
            .filter(|w| u32::from(applied >= w.target) >= w.replicas)
            .map(|w| w.id)
            .collect();
        for id in done {
            self.finish_wait(s, id);
        }
    }

    /// Waiter `id` of server `s` timed out (a no-op if it already returned).
    pub(super) fn wait_timeout(&mut self, s: usize, id: u32) {
        self.finish_wait(s, id);
    }

    /// Waiter `id` returns with the replicas acknowledged so far; the commands queued behind it
    /// run in order (one of them may block in a `WAIT` again).
    fn finish_wait(&mut self, s: usize, id: u32) {
        let Some(pos) = self.servers[s].waits.iter().position(|w| w.id == id) else {
            return;
        };
        let w = self.servers[s].waits.remove(pos);
        let acked = self.acked(s, w.target);
        self.answer(w.c, s, w.l, w.request, w.epoch, acked);
        for (l, cmd) in w.deferred {
            self.exec(w.c, s, l, cmd, w.epoch);
        }
    }

    /// Reply `Acked(acked)` to `request` if the connection it came on is still there.
    fn answer(&mut self, c: usize, s: usize, l: usize, request: RequestId, epoch: u32, acked: u32) {
        if !self.servers[s].up || self.links[self.link(c, s)].epoch != epoch {
            return;
        }
        self.send_to_client(c, s, l, Msg::Reply(request, Reply::Acked(acked)));
    }
}
