//! The one lock machine of a lease and what every driver of it shares. A lease's machine is fed
//! by whoever holds its mutex at the moment: the caller while it acquires or releases (inline, no
//! task hop on the latency path), the per-locker [`crate::keeper`] task while the lease is held
//! (extension timers, key-change pushes, disconnects). Each request's reply is fed back by the
//! driver that sent it; the machine matches replies by request id, so interleaving is safe.

use std::sync::Arc;

use leasehold_core::{Event, Lock, Reply};

use crate::cell::{GateGuard, LeaseCell};
use crate::locker::Shared;
use crate::observe::LockEvent;
use crate::send::{Answer, Answers};

/// A lock machine, fed by whichever driver holds it.
///
/// Key-change pushes need no sorting here: the connection tracks in default mode with `NOLOOP`
/// (see [`leasehold_core::wire`]), so Redis pushes a change of a key only when another client (or
/// expiry, or a flush) changed it, never for our own scripts' writes. Every push reaches the
/// machine. Drivers feed every ready reply before a push (biased select, then draining ready
/// replies), which the reader of the `redis` crate makes sound: it completes a reply before it
/// forwards a push that came after it.
///
/// The one change Redis does not report is one this locker made itself, on the connection its
/// other leases share: a reply that says our script wrote a lock key is passed on to the other
/// routes of that key ([`crate::conn::Router::changed_except`]).
#[derive(Debug)]
pub(crate) struct Machine {
    /// The core machine.
    pub lock: Lock,
    /// The lease's id in the router (its acquisition's, then its keeper entry's).
    id: u64,
}

impl Machine {
    /// A driver's handle on `lock`, routed as `id`.
    pub fn new(lock: Lock, id: u64) -> Self {
        Machine { lock, id }
    }

    /// Feed one answer: the reply time, the change it made for this locker's other leases, then
    /// the reply.
    pub fn feed(&mut self, shared: &Shared, answer: Answer) {
        let (cmd, reply, inst, took) = answer;
        if !matches!(reply, Reply::Error(_)) {
            shared.note_reply_time(inst, took);
        }
        if cmd.op.wrote_lock_key(&reply) {
            let key = self.lock.keys().lock_key(cmd.slot);
            shared.router.changed_except(inst, key.as_bytes(), self.id);
        }
        let now = shared.core_now();
        self.lock.handle_reply(now, cmd.request, reply);
    }

    /// Feed every answer of one request, in the order its commands were sent.
    pub fn feed_all(&mut self, shared: &Shared, answers: Answers) {
        for a in answers {
            self.feed(shared, a);
        }
    }

    /// A push said `slot`'s key changed.
    pub fn pushed(&mut self, shared: &Shared, slot: usize) {
        let now = shared.core_now();
        self.lock.handle_key_changed(now, slot);
    }

    /// The connection to `slot` is back: pushes may have been missed.
    pub fn reconnected(&mut self, shared: &Shared, slot: usize) {
        let now = shared.core_now();
        self.lock.handle_reconnected(now, slot);
        self.lock.handle_key_changed(now, slot);
    }
}

/// A held lease as its drivers share it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Keeper id (also the router's driver id).
    pub id: u64,
    /// The lock name.
    pub name: String,
    /// What the [`crate::Lease`] handle reads.
    pub cell: LeaseCell,
    /// The machine.
    pub machine: std::sync::Mutex<Machine>,
    /// The per-name gate, held until the lease's releases are answered.
    pub gate: std::sync::Mutex<Option<GateGuard>>,
    /// Requests a caller sent and still awaits (a release in progress): the keeper keeps the
    /// entry until they are answered.
    pub external: std::sync::atomic::AtomicUsize,
}

impl Entry {
    /// Lock the machine (a poisoned lock is still usable: the machine never panics mid-update).
    pub fn machine(&self) -> std::sync::MutexGuard<'_, Machine> {
        self.machine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a caller still awaits requests of this lease.
    pub fn external_busy(&self) -> bool {
        self.external.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// Let the next local waiter for this name in.
    pub fn open_gate(&self) {
        let guard = self
            .gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(guard);
    }
}

/// Apply a held lease's events to its cell and the event stream.
pub(crate) fn apply_events(shared: &Arc<Shared>, entry: &Entry, m: &mut Machine) {
    while let Some(ev) = m.lock.poll_event() {
        match ev {
            Event::Extended { slack, .. } => {
                if let Some(v) = m.lock.validity() {
                    entry.cell.set_validity(v.as_nanos());
                }
                shared.emit(|| LockEvent::Extended {
                    name: entry.name.clone(),
                    slack,
                });
            }
            Event::Lost { reason, token } => {
                tracing::warn!(lock = %entry.name, token, reason = %reason, "lease lost");
                shared.emit(|| LockEvent::Lost {
                    name: entry.name.clone(),
                    token,
                    reason: reason.clone(),
                });
                // the next local waiter may go before anyone is told (a task that learns of the
                // loss and acquires again must find the gate open)
                entry.open_gate();
                entry.cell.set_lost(reason);
            }
            Event::Released { token } => {
                shared.emit(|| LockEvent::Released {
                    name: entry.name.clone(),
                    token,
                });
                entry.cell.set_released();
            }
            // only during an acquisition, which its caller drives
            Event::Acquired { .. } | Event::AcquireFailed(_) => {}
        }
    }
}
