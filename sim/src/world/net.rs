//! The network: one link per (client, server) with one-way latency (constant, uniform or heavy
//! tailed, with spikes), TCP order per direction, partitions that hold messages, and resets.
//!
//! **Invariant:** messages on one direction of a link arrive in the order sent; a reset bumps
//! the link's epoch and every message of an older epoch is lost, never delivered late.

use leasehold_core::Phase;

use super::queue::{Ev, Msg};
use super::{RECONNECT, World, nanos};
use crate::config::Latency;
use crate::rng::{chance, unit};

/// One client↔server connection.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub(super) epoch: u32,
    pub(super) up: bool,
    pub(super) partition_until: u64,
    last_c2s: u64,
    last_s2c: u64,
}

impl Default for Link {
    fn default() -> Link {
        Link {
            epoch: 0,
            up: true,
            partition_until: 0,
            last_c2s: 0,
            last_s2c: 0,
        }
    }
}

impl World {
    /// One one-way latency draw, ns.
    pub(super) fn latency(&mut self) -> u64 {
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
    pub(super) fn send_at(&mut self, li: usize, to_server: bool) -> (u64, u32) {
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

    /// The server that holds `slot` (one server holds every slot of a single-instance layout).
    pub(super) fn server_of(&self, slot: usize) -> usize {
        if self.servers.len() == 1 { 0 } else { slot }
    }

    /// The index of the link between client `c` and server `s`.
    pub(super) fn link(&self, c: usize, s: usize) -> usize {
        c * self.servers.len() + s
    }

    /// Send `msg` from server `s` to client `c` about lock `l` over their link (in order, held
    /// while partitioned, tagged with the link's epoch so a reset loses it).
    pub(super) fn send_to_client(&mut self, c: usize, s: usize, l: usize, msg: Msg) {
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

    /// The connection between client `c` and server `s` drops: messages in flight are lost, the
    /// client's machines learn it at once, and it reconnects after [`RECONNECT`].
    pub(super) fn reset_link(&mut self, c: usize, s: usize) {
        let li = self.link(c, s);
        if !self.links[li].up {
            return;
        }
        self.links[li].epoch += 1;
        self.links[li].up = false;
        // the server drops the connection's client tracking with it
        self.servers[s].forget_client(c);
        let now = self.local(c);
        for l in 0..self.cfg.locks {
            for slot in 0..self.slots {
                if self.server_of(slot) == s {
                    // a reset is a real error for the round in flight
                    self.clients[c].cut(l, slot);
                    self.clients[c].locks[l]
                        .machine
                        .handle_disconnected(now, slot);
                }
            }
            self.drain(c, l);
            self.clients[c].settled(l);
        }
        self.push(
            self.now + RECONNECT,
            Ev::Reconnect {
                c: c as u32,
                s: s as u32,
            },
        );
    }

    pub(super) fn reconnect(&mut self, c: usize, s: usize) {
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
            let machine = &mut self.clients[c].locks[l].machine;
            for slot in 0..self.slots {
                if self.servers.len() == 1 || slot == s {
                    machine.handle_reconnected(now, slot);
                }
            }
            // a reconnect re-arms tracking; waiters retry (no notification may have come)
            if machine.phase() == Phase::Backoff {
                machine.handle_key_changed(now, 0);
            }
            self.drain(c, l);
        }
    }
}
