//! The keeper: one task per [`crate::Locker`] that keeps every held lease of it alive. It owns
//! the leases' timers (extension, validity, backoff of cleanups), receives the key-change pushes
//! routed to them and the instances' disconnects, sends the machines' extension and re-check
//! requests and feeds their replies. Acquiring and releasing run inline in the caller's task
//! ([`crate::acquire`], [`crate::Lease::release`]); a lease is handed to the keeper when it is
//! acquired (or when its acquisition is abandoned and still has cleanup to do), with whatever
//! requests it still has in flight.
//!
//! One task and one timer set for all leases instead of a task per lease: no task hop on the
//! acquire or release path, and a held lease costs a machine, a cell and a timer entry.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt as _};
use std::sync::{Arc, Weak};

use futures_util::FutureExt as _;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::conn::InstanceEvent;
use crate::drive::{Entry, apply_events};
use crate::locker::Shared;
use crate::send::{Answers, Request, drain};

/// What the keeper is told.
pub(crate) enum KeeperMsg {
    /// Keep `entry` (held, or an abandoned acquisition with cleanup to do) with its requests in
    /// flight and the pushes that arrived for it before the hand-over.
    Adopt {
        entry: Arc<Entry>,
        inflight: Vec<Request>,
        pushes: Vec<usize>,
    },
    /// Something changed `id`'s machine outside the keeper (a release): look at it again.
    Poke(u64),
    /// The handle of `id` was dropped without a release: release in the background.
    Release(u64),
}

/// How often the keeper looks at its unhurried messages (see [`KeeperHandle::send_lazily`]).
pub(crate) const TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// The keeper's channels, as the locker and its leases hold them.
#[derive(Clone)]
pub(crate) struct KeeperHandle {
    msgs: mpsc::UnboundedSender<KeeperMsg>,
    /// Messages that can wait for the keeper's next wake-up (at most [`TICK`] away): a lease
    /// whose first timer is further off than that, a finished release. Taking them costs no
    /// wake-up of the keeper's task, which on a busy 2-core machine is most of a short lease's
    /// overhead.
    lazy: Arc<std::sync::Mutex<Vec<KeeperMsg>>>,
}

impl std::fmt::Debug for KeeperHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeeperHandle").finish_non_exhaustive()
    }
}

impl KeeperHandle {
    /// Tell the keeper now (it wakes up).
    pub fn send(&self, m: KeeperMsg) {
        let _ = self.msgs.send(m);
    }

    /// Tell the keeper at its next wake-up, at most [`TICK`] from now.
    pub fn send_lazily(&self, m: KeeperMsg) {
        self.lazy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(m);
    }
}

type Tagged = std::pin::Pin<Box<dyn Future<Output = (u64, Answers)> + Send>>;

struct Keeper {
    shared: Weak<Shared>,
    msgs: mpsc::UnboundedReceiver<KeeperMsg>,
    lazy: Arc<std::sync::Mutex<Vec<KeeperMsg>>>,
    pushes: mpsc::UnboundedReceiver<(u64, usize)>,
    events: broadcast::Receiver<InstanceEvent>,
    leases: HashMap<u64, Held>,
    timers: BTreeSet<(Instant, u64)>,
    inflight: FuturesUnordered<Tagged>,
    closed: bool,
}

struct Held {
    entry: Arc<Entry>,
    timer: Option<Instant>,
    inflight: usize,
}

/// Start the keeper of `shared`; pushes for held leases arrive on `pushes` as (lease id, slot).
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    pushes: mpsc::UnboundedReceiver<(u64, usize)>,
) -> KeeperHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let lazy = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keeper = Keeper {
        shared: Arc::downgrade(shared),
        msgs: rx,
        lazy: lazy.clone(),
        pushes,
        events: shared.events.subscribe(),
        leases: HashMap::new(),
        timers: BTreeSet::new(),
        inflight: FuturesUnordered::new(),
        closed: false,
    };
    tokio::spawn(keeper.run());
    KeeperHandle { msgs: tx, lazy }
}

fn tag(id: u64, r: Request) -> Tagged {
    Box::pin(r.map(move |a| (id, a)))
}

impl Keeper {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.take_lazy();
            if self.closed && self.leases.is_empty() && self.inflight.is_empty() {
                let left = self
                    .lazy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .is_empty();
                if left {
                    return;
                }
            }
            let next = self.timers.first().map(|(t, _)| *t);
            tokio::select! {
                biased;
                Some((id, answer)) = self.inflight.next(), if !self.inflight.is_empty() => {
                    self.answer(id, answer);
                }
                m = self.msgs.recv(), if !self.closed => match m {
                    Some(m) => {
                        // what was left lazily happened before this (an adoption before a release)
                        self.take_lazy();
                        self.message(m);
                    }
                    None => self.closed = true,
                },
                _ = tick.tick() => {} // the lazy messages are taken at the top of the loop
                Some((id, slot)) = self.pushes.recv() => {
                    self.take_lazy(); // the push may be about a lease left to adopt lazily
                    // every reply that came before the push on the wire is complete by now
                    while let Some(Some((rid, answer))) = self.inflight.next().now_or_never() {
                        self.answer(rid, answer);
                    }
                    self.push(id, slot);
                }
                _ = async {
                    match next {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => self.fire(),
                ev = self.events.recv() => {
                    self.take_lazy();
                    self.instance_event(ev);
                }
            }
        }
    }

    /// Handle what was left for the keeper's next wake-up, in the order it was left.
    fn take_lazy(&mut self) {
        let lazy = std::mem::take(
            &mut *self
                .lazy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for m in lazy {
            self.message(m);
        }
    }

    fn message(&mut self, m: KeeperMsg) {
        match m {
            KeeperMsg::Adopt {
                entry,
                inflight,
                pushes,
            } => {
                let id = entry.id;
                let n = inflight.len();
                for r in inflight {
                    self.inflight.push(tag(id, r));
                }
                self.leases.insert(
                    id,
                    Held {
                        entry,
                        timer: None,
                        inflight: n,
                    },
                );
                for slot in pushes {
                    self.push(id, slot);
                }
                self.pump(id);
            }
            KeeperMsg::Poke(id) => self.pump(id),
            KeeperMsg::Release(id) => {
                if let (Some(h), Some(shared)) = (self.leases.get(&id), self.shared.upgrade()) {
                    let now = shared.core_now();
                    let _ = h.entry.machine().lock.release(now);
                }
                self.pump(id);
            }
        }
    }

    fn answer(&mut self, id: u64, answers: Answers) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if let Some(h) = self.leases.get_mut(&id) {
            h.inflight = h.inflight.saturating_sub(1);
            h.entry.machine().feed_all(&shared, answers);
        }
        self.pump(id);
    }

    fn push(&mut self, id: u64, slot: usize) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if let Some(h) = self.leases.get(&id) {
            h.entry.machine().pushed(&shared, slot);
        }
        self.pump(id);
    }

    fn fire(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect();
        let Some(shared) = self.shared.upgrade() else {
            self.timers.clear();
            return;
        };
        for id in due {
            if let Some(h) = self.leases.get_mut(&id) {
                if let Some(t) = h.timer.take() {
                    self.timers.remove(&(t, id));
                }
                let mut m = h.entry.machine();
                // an extension is due: its PEXPIREAT reads the wall clock (rueidislock dialect)
                shared.stamp_wall_clock(&mut m.lock);
                m.lock.handle_timeout(shared.core_now());
            }
            self.pump(id);
        }
    }

    fn instance_event(&mut self, ev: Result<InstanceEvent, broadcast::error::RecvError>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let ids: Vec<u64> = self.leases.keys().copied().collect();
        for id in ids {
            if let Some(h) = self.leases.get(&id) {
                let mut m = h.entry.machine();
                for slot in 0..shared.slots {
                    let inst = shared.instance_of(slot);
                    match &ev {
                        Ok(InstanceEvent::Down { instance }) if *instance == inst => {
                            m.lock.handle_disconnected(shared.core_now(), slot);
                        }
                        Ok(InstanceEvent::Up { instance }) if *instance == inst => {
                            m.reconnected(&shared, slot);
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            m.lock.handle_key_changed(shared.core_now(), slot);
                        }
                        _ => {}
                    }
                }
            }
            self.pump(id);
        }
    }

    /// Send `id`'s commands, apply its events, re-arm its timer; forget it once it is done.
    fn pump(&mut self, id: u64) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let Some(h) = self.leases.get_mut(&id) else {
            return;
        };
        let entry = h.entry.clone();
        let (timer, idle) = {
            let mut m = entry.machine();
            let (inflight, cell) = (&mut self.inflight, &entry.cell);
            drain(&shared, &mut m.lock, |cmd, r| {
                // a release was requested: never extend after it (an extension's WAIT then
                // answers with an error the machine ignores)
                if matches!(
                    cmd.op,
                    leasehold_core::Op::Extend { .. } | leasehold_core::Op::CompatExtend { .. }
                ) && !cell.begin_extension()
                {
                    return;
                }
                inflight.push(tag(id, r));
                h.inflight += 1;
            });
            apply_events(&shared, &entry, &mut m);
            let idle = m.lock.phase() == leasehold_core::Phase::Idle;
            (m.lock.poll_timeout().map(|t| shared.tokio_instant(t)), idle)
        };
        if let Some(old) = h.timer.take() {
            self.timers.remove(&(old, id));
        }
        if idle && h.inflight == 0 && !entry.external_busy() {
            entry.open_gate();
            let m = entry.machine();
            shared
                .router
                .unregister(id, shared.route_keys(m.lock.keys()));
            drop(m);
            self.leases.remove(&id);
            return;
        }
        if let Some(t) = timer {
            h.timer = Some(t);
            self.timers.insert((t, id));
        }
    }
}
