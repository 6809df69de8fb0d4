//! Read-only views of a running world for the dashboard's simulation lanes (`leasehold watch
//! --scenario`/`--replay`). Nothing here changes the run or its trace.

use leasehold_core::Phase;

use super::World;
use crate::faults::FaultEvent;

/// What one client is doing about locks, as the lanes show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientActivity {
    /// Thinking, or between locks.
    Idle,
    /// Acquiring, backing off, or writing the fence back.
    Waiting,
    /// Its machine says held and a majority of the servers still store its value.
    Holding,
    /// Its machine says held but a majority of the servers no longer store its value (expired,
    /// deleted, taken): it *believes* it holds.
    Believing,
}

/// One client now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveClient {
    /// The lock it holds, believes it holds, or waits for.
    pub lock: Option<usize>,
    /// What it is doing.
    pub activity: ClientActivity,
    /// Paused (a GC pause): its events are deferred.
    pub paused: bool,
    /// A link of it is down or partitioned.
    pub cut_off: bool,
}

impl World {
    /// Every client now (see [`ClientActivity`]).
    #[must_use]
    pub fn client_view(&self) -> Vec<LiveClient> {
        let quorum = self.slots / 2 + 1;
        (0..self.clients.len())
            .map(|c| {
                let cl = &self.clients[c];
                let mut view = LiveClient {
                    lock: None,
                    activity: ClientActivity::Idle,
                    paused: cl.pause_until > self.now,
                    cut_off: (0..self.servers.len()).any(|s| {
                        let link = &self.links[self.link(c, s)];
                        !link.up || link.partition_until > self.now
                    }),
                };
                for (l, m) in cl.locks.iter().enumerate() {
                    match m.phase() {
                        Phase::Held => {
                            let stored = (0..self.slots)
                                .filter(|slot| {
                                    let s = self.server_of(*slot);
                                    self.servers[s].keys[l * self.slots + slot]
                                        .stored()
                                        .is_some_and(|(o, exp)| {
                                            o.client == c && exp > self.server_clock(s)
                                        })
                                })
                                .count();
                            view.lock = Some(l);
                            view.activity = if stored >= quorum {
                                ClientActivity::Holding
                            } else {
                                ClientActivity::Believing
                            };
                            break;
                        }
                        Phase::Acquiring | Phase::Backoff | Phase::WritingBack => {
                            view.lock = Some(l);
                            view.activity = ClientActivity::Waiting;
                        }
                        Phase::Idle => {}
                    }
                }
                view
            })
            .collect()
    }

    /// The fault schedule, true times.
    #[must_use]
    pub fn fault_schedule(&self) -> &[FaultEvent] {
        &self.faults
    }

    /// Events processed so far.
    #[must_use]
    pub fn events_processed(&self) -> u64 {
        self.events
    }

    /// End of the run, true ns.
    #[must_use]
    pub fn end_ns(&self) -> u64 {
        self.end
    }
}
