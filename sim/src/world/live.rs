//! Read-only views of a running world for the dashboard's simulation lanes (`leasehold watch
//! --scenario`/`--replay`). Nothing here changes the run or its trace.

use leasehold_core::Phase;

use super::World;
use crate::faults::FaultEvent;

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
                                    c.locks[l].machine.phase(),
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

    pub(super) fn note(&mut self, lock: Option<usize>, kind: &'static str, detail: String) {
        if self.live && self.log.len() < 10_000 {
            self.log.push(LogLine {
                t_ns: self.now,
                lock,
                kind,
                detail,
            });
        }
    }

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
                    match m.machine.phase() {
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
