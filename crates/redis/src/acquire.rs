//! Acquiring inline: the caller's own task drives the lock machine from `acquire` to `Acquired` or
//! `AcquireFailed`, sending its requests on the instances' connections and feeding their replies,
//! timers and key-change pushes straight back. No task is spawned and no channel is crossed on the
//! latency path; the acquired lease (with anything still in flight) is handed to the locker's
//! [`crate::keeper`]. Dropping the future mid-acquire cancels the machine and hands its cleanup
//! (releasing whatever it was granted) to the keeper, so the caller never waits for it.

use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::stream::StreamExt;
use leasehold_core::{AcquireError, AcquireMode, Event, Instant as CoreInstant, Lock};
use tokio::sync::{broadcast, mpsc};

use crate::cell::{GateGuard, LeaseCell};
use crate::conn::InstanceEvent;
use crate::drive::{Entry, Machine};
use crate::keeper::{KeeperHandle, KeeperMsg, TICK};
use crate::lease::Lease;
use crate::locker::Shared;
use crate::observe::LockEvent;
use crate::send::{Inflight, Request, drain};

/// One acquisition in progress.
pub(crate) struct Acquisition {
    shared: Arc<Shared>,
    keeper: KeeperHandle,
    id: u64,
    name: String,
    machine: Option<Machine>,
    inflight: Inflight,
    pushes: mpsc::UnboundedReceiver<(u64, usize)>,
    events: Option<broadcast::Receiver<InstanceEvent>>,
    gate: Option<GateGuard>,
    started: tokio::time::Instant,
    done: bool,
}

impl Acquisition {
    /// An acquisition of `lock` (named `name`), holding the per-name `gate` if it has one.
    pub fn new(
        shared: &Arc<Shared>,
        keeper: &KeeperHandle,
        lock: Lock,
        name: &str,
        gate: Option<GateGuard>,
        mode: AcquireMode,
    ) -> Self {
        let id = shared
            .next_driver
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, pushes) = mpsc::unbounded_channel();
        for slot in 0..shared.slots {
            shared.router.register(
                id,
                shared.instance_of(slot),
                lock.keys().lock_key(slot),
                slot,
                tx.clone(),
            );
        }
        // a waiter needs to hear of reconnects (it may have missed a push); one round does not
        let events = matches!(mode, AcquireMode::Wait { .. }).then(|| shared.events.subscribe());
        Acquisition {
            shared: shared.clone(),
            keeper: keeper.clone(),
            id,
            name: name.to_owned(),
            machine: Some(Machine::new(lock, id)),
            inflight: Inflight::Empty,
            pushes,
            events,
            gate,
            started: tokio::time::Instant::now(),
            done: false,
        }
    }

    fn now(&self) -> CoreInstant {
        self.shared.core_now()
    }

    /// Drive the machine until it acquires (a [`Lease`]) or fails (the typed reason).
    pub async fn run(mut self, mode: AcquireMode) -> Result<Lease, AcquireError> {
        let now = self.now();
        let Some(m) = self.machine.as_mut() else {
            return Err(AcquireError::Cancelled);
        };
        if m.lock.acquire(now, mode).is_err() {
            return Err(AcquireError::Cancelled);
        }
        loop {
            let Some(m) = self.machine.as_mut() else {
                return Err(AcquireError::Cancelled);
            };
            drain(&self.shared, &mut m.lock, |_, r| self.inflight.push(r));
            while let Some(ev) = m.lock.poll_event() {
                match ev {
                    Event::Acquired {
                        token, validity, ..
                    } => return self.acquired(token, validity),
                    Event::AcquireFailed(e) => {
                        if e.is_not_replicated() {
                            self.flush_unreplicated().await;
                        }
                        return Err(self.failed(e));
                    }
                    _ => {}
                }
            }
            let sleep = m.lock.poll_timeout().map(|t| self.shared.tokio_instant(t));
            let events = self.events.as_mut();
            tokio::select! {
                biased;
                Some(answers) = self.inflight.next(), if !self.inflight.is_empty() => {
                    m.feed_all(&self.shared, answers);
                }
                Some((_, slot)) = self.pushes.recv() => {
                    // replies that came before the push on the wire are complete by now
                    while let Some(Some(answers)) = self.inflight.next().now_or_never() {
                        m.feed_all(&self.shared, answers);
                    }
                    m.pushed(&self.shared, slot);
                }
                _ = async {
                    match sleep {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => m.lock.handle_timeout(self.shared.core_now()),
                ev = async {
                    match events {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = self.shared.core_now();
                    for slot in 0..self.shared.slots {
                        let inst = self.shared.instance_of(slot);
                        match &ev {
                            Ok(InstanceEvent::Down { instance }) if *instance == inst => {
                                m.lock.handle_disconnected(now, slot);
                            }
                            Ok(InstanceEvent::Up { instance }) if *instance == inst => {
                                m.reconnected(&self.shared, slot);
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                m.lock.handle_key_changed(now, slot);
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Hand the machine, its requests in flight and the pushes that came for it to the keeper.
    fn hand_over(&mut self, cell: LeaseCell, gate: Option<GateGuard>) -> Option<Arc<Entry>> {
        let machine = self.machine.take()?;
        // from now on pushes go to the keeper; those already queued here travel with the entry
        self.shared.router.retarget(
            self.id,
            self.shared.route_keys(machine.lock.keys()),
            &self.shared.keeper_pushes,
        );
        let entry = Arc::new(Entry {
            id: self.id,
            name: self.name.clone(),
            cell,
            machine: std::sync::Mutex::new(machine),
            gate: std::sync::Mutex::new(gate),
            external: std::sync::atomic::AtomicUsize::new(0),
        });
        let mut pushes = Vec::new();
        while let Ok((_, slot)) = self.pushes.try_recv() {
            pushes.push(slot);
        }
        let inflight: Vec<Request> = std::mem::take(&mut self.inflight).into_vec();
        // the keeper must hear at once when it has requests to feed, pushes to look at, or a
        // timer due before its next look; otherwise its next wake-up (at most a TICK away) is
        // soon enough, and a lease released before then never wakes it at all
        let first_timer = entry
            .machine()
            .lock
            .poll_timeout()
            .map(|t| self.shared.tokio_instant(t));
        let urgent = !inflight.is_empty()
            || !pushes.is_empty()
            || first_timer.is_none_or(|t| t <= tokio::time::Instant::now() + 2 * TICK);
        let m = KeeperMsg::Adopt {
            entry: entry.clone(),
            inflight,
            pushes,
        };
        if urgent {
            self.keeper.send(m);
        } else {
            self.keeper.send_lazily(m);
        }
        Some(entry)
    }

    fn acquired(&mut self, token: u64, validity: CoreInstant) -> Result<Lease, AcquireError> {
        self.done = true;
        self.shared.emit(|| LockEvent::Acquired {
            name: self.name.clone(),
            token,
            latency: self.started.elapsed(),
        });
        let cell = LeaseCell::new(token, validity.as_nanos());
        let gate = self.gate.take();
        let entry = self.hand_over(cell, gate).ok_or(AcquireError::Cancelled)?;
        Ok(Lease::new(
            self.name.clone(),
            entry,
            self.shared.clone(),
            self.keeper.clone(),
        ))
    }

    /// After a failure because replicas did not confirm a grant: the primary *has* the key, and
    /// its cleanup release is in flight right behind the `WAIT`'s prompt reply. Await what is in
    /// flight, at most `slot_wait`, so a caller that exits right after the error (`leasehold
    /// exec`) leaves no key behind for a ttl; what is not answered by then goes to the keeper as
    /// before. Other failures hand everything to the keeper at once, as they always did.
    async fn flush_unreplicated(&mut self) {
        let Some(m) = self.machine.as_mut() else {
            return;
        };
        drain(&self.shared, &mut m.lock, |_, r| self.inflight.push(r));
        let until = tokio::time::Instant::now() + self.shared.config.slot_wait;
        while !self.inflight.is_empty() {
            match tokio::time::timeout_at(until, self.inflight.next()).await {
                Ok(Some(answers)) => m.feed_all(&self.shared, answers),
                _ => break,
            }
            drain(&self.shared, &mut m.lock, |_, r| self.inflight.push(r));
        }
    }

    fn failed(&mut self, e: AcquireError) -> AcquireError {
        self.done = true;
        self.shared.emit(|| LockEvent::AcquireFailed {
            name: self.name.clone(),
            reason: e.reason(),
            latency: self.started.elapsed(),
        });
        // the gate stays closed while a grant may still come for this attempt: the next acquire
        // of the name would find our own late grant and report it as someone else's contention
        let gate = self.gate.take();
        self.clean_up(gate);
        e
    }

    /// After a failure or a cancel: what the machine still has to send (cleanup releases of late
    /// grants) goes out now; if anything is in flight the keeper feeds it and forgets the machine,
    /// and keeps the per-name `gate` closed (marked as a cleanup) until then; otherwise the routes
    /// and the gate go at once.
    fn clean_up(&mut self, gate: Option<GateGuard>) {
        if let Some(m) = self.machine.as_mut() {
            drain(&self.shared, &mut m.lock, |_, r| self.inflight.push(r));
        }
        if self.inflight.is_empty() {
            drop(gate);
            if let Some(m) = self.machine.take() {
                self.shared
                    .router
                    .unregister(self.id, self.shared.route_keys(m.lock.keys()));
            }
            return;
        }
        if let Some(g) = &gate {
            g.cleaning();
        }
        let cell = LeaseCell::new(0, 0);
        cell.set_released();
        self.hand_over(cell, gate);
    }
}

impl Drop for Acquisition {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // the acquire future was dropped mid-way: cancel, and let the keeper delete whatever the
        // machine was granted (and see a grant that is still in flight through)
        let now = self.now();
        if let Some(m) = self.machine.as_mut() {
            m.lock.cancel(now);
            while m.lock.poll_event().is_some() {}
        }
        let gate = self.gate.take();
        self.clean_up(gate);
    }
}

/// Enter `name`'s per-name gate, or say why not. Waiting tasks (`queue_locally`) queue until
/// their deadline; a try takes the gate only if it is open, except that a gate held by the cleanup
/// of an earlier failed attempt (deleting a grant that came too late) is waited for up to
/// `slot_wait`: our own late grant must not be reported as someone else's contention. `Force`
/// goes ahead without the gate.
pub(crate) async fn enter_gate(
    shared: &Shared,
    name: &str,
    mode: AcquireMode,
    queue_locally: bool,
    started: tokio::time::Instant,
) -> Result<Option<GateGuard>, AcquireError> {
    let gate = shared.gate(name);
    let this_process = || AcquireError::Contended {
        holder: Some(format!("{} (this process)", shared.holder.as_str())),
        remaining: None,
    };
    if queue_locally {
        // tasks of this process waiting for the same name queue here instead of all polling Redis
        let deadline = match mode {
            AcquireMode::Wait { deadline } => shared.tokio_instant(deadline),
            _ => started + std::time::Duration::from_secs(86_400),
        };
        return match tokio::time::timeout_at(deadline, gate.enter()).await {
            Ok(g) => Ok(Some(g)),
            Err(_) => Err(AcquireError::DeadlineExceeded {
                waited: started.elapsed(),
                attempts: 0,
                last_cause: Some(Box::new(this_process())),
            }),
        };
    }
    if let Some(g) = gate.try_enter() {
        return Ok(Some(g));
    }
    if mode == AcquireMode::Force {
        return Ok(None);
    }
    if !gate.cleaning() {
        return Err(this_process());
    }
    match tokio::time::timeout(shared.config.slot_wait, gate.enter()).await {
        Ok(g) => Ok(Some(g)),
        // still waiting for our own late replies: the cause is slow replies, not contention
        Err(_) => {
            let observed = shared
                .reply_times
                .lock()
                .ok()
                .and_then(|t| t.iter().flatten().max().copied());
            Err(AcquireError::SlowReplies {
                slots: leasehold_core::SlotSet::first(shared.slots),
                waited: shared.config.slot_wait,
                observed,
                suggested: observed.map(leasehold_core::recommend_slot_wait),
            })
        }
    }
}
