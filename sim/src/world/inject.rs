//! The fault schedule applied to the world: resets, partitions, crashes and restarts, server
//! clock jumps, client pauses, operator force-releases and failovers.
//!
//! **Invariant:** a fault changes the world only through the other rooms (links, servers' models
//! and clocks, clients' pause), at the true time the schedule says; none of it draws randomness.

use leasehold_core::{ForceOutcome, Op, Reply};

use super::queue::Ev;
use super::{World, nanos};
use crate::faults::Fault;

impl World {
    pub(super) fn fault(&mut self, i: usize) {
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
            Fault::ClockJump { s, delta_ns } => self.servers[s].clock.jump(delta_ns),
            Fault::Pause { c, len } => {
                self.clients[c].pause_until =
                    self.clients[c].pause_until.max(self.now + nanos(len));
            }
            Fault::ForceRelease { s, l } => self.force_release(s, l),
            Fault::ReplicaStall { s, len } => {
                let sv = &mut self.servers[s];
                sv.replica_stalled_until = sv.replica_stalled_until.max(self.now + nanos(len));
            }
            Fault::Failover { s } => {
                self.servers[s].promote();
                for c in 0..self.clients.len() {
                    self.reset_link(c, s);
                }
            }
        }
    }

    /// The operator evicts exactly the lease they see on server `s`, with the one force-release
    /// script every tool runs (`wire::FORCE_RELEASE`, as `Op::ForceRelease`).
    fn force_release(&mut self, s: usize, l: usize) {
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

    pub(super) fn heal(&mut self, i: usize) {
        if let crate::faults::Fault::Crash { s, .. } = self.faults[i].fault {
            self.restart(s);
        }
    }
}
