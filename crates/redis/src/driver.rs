//! The background task behind one acquisition and its lease: it owns a core [`Lock`] machine and
//! runs its driving loop against the instances (feed one input, drain every output, sleep until
//! `poll_timeout`). Extension and loss logic come only from the machine.

use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use leasehold_core::{
    AcquireError, AcquireMode, Command, Event, Lock, LostReason, Op, Reply, RequestId, SlotError,
    SlotErrorKind,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::cell::{GateGuard, LeaseCell};

use crate::conn::InstanceEvent;
use crate::decode::{decode, error_reply};
use crate::locker::Shared;
use crate::observe::LockEvent;

/// What the lease handle asks of its driver.
#[derive(Debug)]
pub(crate) enum DriverCmd {
    /// Release; the reply says whether the lease was still held.
    Release(Option<oneshot::Sender<Result<(), LostReason>>>),
}

/// A granted lease, handed to the acquirer.
#[derive(Debug)]
pub(crate) struct Granted {
    pub cell: LeaseCell,
    pub cmds: mpsc::UnboundedSender<DriverCmd>,
}

pub(crate) struct Driver {
    pub shared: Arc<Shared>,
    pub lock: Lock,
    pub mode: AcquireMode,
    pub result: Option<oneshot::Sender<Result<Granted, AcquireError>>>,
    pub gate: Option<GateGuard>,
    pub started: tokio::time::Instant,
}

type Inflight = FuturesUnordered<
    std::pin::Pin<Box<dyn Future<Output = (RequestId, Reply, usize, std::time::Duration)> + Send>>,
>;

impl Driver {
    fn now(&self) -> leasehold_core::Instant {
        self.shared.core_now()
    }

    fn spawn_command(&self, inflight: &mut Inflight, cmd: Command) {
        let shared = self.shared.clone();
        let inst = self.shared.instance_of(cmd.slot);
        let lock_key = self.lock.keys().lock_key(cmd.slot).to_owned();
        let fence_key = self.lock.keys().fence_key(cmd.slot).to_owned();
        let mut value = String::new();
        if let Some(v) = cmd.op.value() {
            self.lock.write_value(v, &mut value);
        }
        inflight.push(Box::pin(async move {
            let sent = tokio::time::Instant::now();
            let (id, reply) = Self::execute(&shared, inst, cmd, lock_key, fence_key, value).await;
            (id, reply, inst, sent.elapsed())
        }));
    }

    async fn execute(
        shared: &Shared,
        inst: usize,
        cmd: Command,
        lock_key: String,
        fence_key: String,
        value: String,
    ) -> (RequestId, Reply) {
        {
            let instance = &shared.instances[inst];
            let conn = instance.conn.borrow().clone();
            let Some(mut conn) = conn else {
                let e = SlotError::new(
                    SlotErrorKind::Disconnected,
                    format!("not connected to {}", instance.url),
                );
                return (cmd.request, Reply::Error(e));
            };
            let scripts = &shared.scripts;
            let inv = match cmd.op {
                Op::Acquire {
                    ttl_ms,
                    force,
                    keep_ms,
                    ..
                } => {
                    let mut i = scripts.acquire.key(&lock_key);
                    i.key(&fence_key)
                        .arg(&value)
                        .arg(ttl_ms)
                        .arg(if force { "1" } else { "0" })
                        .arg(keep_ms);
                    i
                }
                Op::Extend {
                    ttl_ms, keep_ms, ..
                } => {
                    let mut i = scripts.extend.key(&lock_key);
                    i.key(&fence_key).arg(&value).arg(ttl_ms).arg(keep_ms);
                    i
                }
                Op::Check { .. } => {
                    let mut i = scripts.check.key(&lock_key);
                    i.key(&fence_key).arg(&value);
                    i
                }
                Op::Release { .. } => {
                    let mut i = scripts.release.key(&lock_key);
                    i.arg(&value);
                    i
                }
                Op::RaiseFence { token, keep_ms } => {
                    let mut i = scripts.raise_fence.key(&fence_key);
                    i.arg(token).arg(keep_ms);
                    i
                }
                Op::ForceRelease { keep_ms, .. } => {
                    // never emitted by the machine (operators' tools send it); rendered here so
                    // the adapter can run every operation of the wire protocol
                    let script = redis::Script::new(leasehold_core::wire::FORCE_RELEASE.source);
                    let mut i = script.key(&lock_key);
                    i.key(&fence_key).arg(&value).arg(keep_ms);
                    let reply = match i.invoke_async::<redis::Value>(&mut conn).await {
                        Ok(v) => decode(&cmd.op, &v),
                        Err(e) => error_reply(&e),
                    };
                    return (cmd.request, reply);
                }
            };
            let reply = match inv.invoke_async::<redis::Value>(&mut conn).await {
                Ok(v) => decode(&cmd.op, &v),
                Err(e) => {
                    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                        let _ = instance.kick.send(());
                    }
                    error_reply(&e)
                }
            };
            (cmd.request, reply)
        }
    }

    /// Run the machine until the acquire fails, or the lease ends and its releases are answered.
    pub async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<DriverCmd>,
        cmd_tx: mpsc::UnboundedSender<DriverCmd>,
    ) {
        let mut inflight: Inflight = FuturesUnordered::new();
        let mut events = self.shared.events.subscribe();
        // invalidations of our keys only (routed), not every push of the instance
        let (changed_tx, mut changed) = mpsc::unbounded_channel::<usize>();
        let driver_id = self
            .shared
            .next_driver
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let routes: Vec<(usize, String)> = (0..self.shared.slots)
            .map(|slot| {
                (
                    self.shared.instance_of(slot),
                    self.lock.keys().lock_key(slot).to_owned(),
                )
            })
            .collect();
        for (slot, (inst, key)) in routes.iter().enumerate() {
            self.shared
                .router
                .register(driver_id, *inst, key, slot, changed_tx.clone());
        }
        drop(changed_tx);
        let mut cell: Option<LeaseCell> = None;
        let mut release_ack: Option<oneshot::Sender<Result<(), LostReason>>> = None;
        let mut done = false;
        let now = self.now();
        let name = self.lock.name().to_string();
        if let Err(e) = self.lock.acquire(now, self.mode) {
            tracing::warn!(lock = %name, error = %e, "acquire refused by the machine");
            return;
        }
        let mut handles_gone = false;
        loop {
            while let Some(cmd) = self.lock.poll_command() {
                if matches!(cmd.op, Op::Extend { .. })
                    && cell.as_ref().is_some_and(|c| !c.begin_extension())
                {
                    // a release was requested: never send an extension after it
                    continue;
                }
                self.spawn_command(&mut inflight, cmd);
            }
            while let Some(ev) = self.lock.poll_event() {
                let now_t = tokio::time::Instant::now();
                match ev {
                    Event::Acquired {
                        token, validity, ..
                    } => {
                        let c = LeaseCell::new(token, validity.as_nanos());
                        cell = Some(c.clone());
                        self.shared.emit(LockEvent::Acquired {
                            name: name.clone(),
                            token,
                            latency: now_t - self.started,
                        });
                        let granted = Granted {
                            cell: c,
                            cmds: cmd_tx.clone(),
                        };
                        let taken = self
                            .result
                            .take()
                            .map(|tx| tx.send(Ok(granted)).is_ok())
                            .unwrap_or(false);
                        if !taken {
                            // the acquirer went away (cancelled): give the lock back now
                            let _ = self.lock.release(self.now());
                        }
                    }
                    Event::AcquireFailed(err) => {
                        self.shared.emit(LockEvent::AcquireFailed {
                            name: name.clone(),
                            reason: err.reason(),
                            latency: now_t - self.started,
                        });
                        // let the next local waiter in now; only cleanup releases remain in flight
                        drop(self.gate.take());
                        if let Some(tx) = self.result.take() {
                            let _ = tx.send(Err(err));
                        }
                        done = true;
                    }
                    Event::Extended { slack, .. } => {
                        if let (Some(v), Some(c)) = (self.lock.validity(), &cell) {
                            c.set_validity(v.as_nanos());
                        }
                        self.shared.emit(LockEvent::Extended {
                            name: name.clone(),
                            slack,
                        });
                    }
                    Event::Lost { reason, token } => {
                        tracing::warn!(lock = %name, token, reason = %reason, "lease lost");
                        self.shared.emit(LockEvent::Lost {
                            name: name.clone(),
                            token,
                            reason: reason.clone(),
                        });
                        if let Some(ack) = release_ack.take() {
                            let _ = ack.send(Err(reason.clone()));
                        }
                        if let Some(c) = &cell {
                            c.set_lost(reason);
                        }
                        done = true;
                    }
                    Event::Released { token } => {
                        self.shared.emit(LockEvent::Released {
                            name: name.clone(),
                            token,
                        });
                        if let Some(c) = &cell {
                            c.set_released();
                        }
                        done = true;
                    }
                }
            }
            if done && inflight.is_empty() {
                break;
            }
            let sleep_until = self
                .lock
                .poll_timeout()
                .map(|t| self.shared.tokio_instant(t));
            let acquiring = self.result.is_some();
            tokio::select! {
                Some((id, reply, inst, took)) = inflight.next() => {
                    if !matches!(reply, Reply::Error(_)) {
                        self.shared.note_reply_time(inst, took);
                    }
                    let now = self.now();
                    self.lock.handle_reply(now, id, reply);
                    if done && inflight.is_empty() {
                        // let the next local waiter in before the releaser continues
                        drop(self.gate.take());
                        if let Some(ack) = release_ack.take() { let _ = ack.send(Ok(())); }
                    }
                }
                _ = async { match sleep_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    let now = self.now();
                    self.lock.handle_timeout(now);
                }
                ev = events.recv() => match ev {
                    Ok(InstanceEvent::Down { instance }) => {
                        for slot in (0..self.shared.slots).filter(|s| self.shared.instance_of(*s) == instance) {
                            let now = self.now();
                            self.lock.handle_disconnected(now, slot);
                        }
                    }
                    Ok(InstanceEvent::Up { instance }) => {
                        for slot in (0..self.shared.slots).filter(|s| self.shared.instance_of(*s) == instance) {
                            let now = self.now();
                            self.lock.handle_reconnected(now, slot);
                            // a reconnect re-arms tracking; a waiter may have missed a push
                            self.lock.handle_key_changed(now, slot);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for slot in 0..self.shared.slots {
                            let now = self.now();
                            self.lock.handle_key_changed(now, slot);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let now = self.now();
                        self.lock.cancel(now);
                        let _ = self.lock.release(now);
                    }
                },
                Some(slot) = changed.recv() => {
                    let now = self.now();
                    self.lock.handle_key_changed(now, slot);
                }
                cmd = cmds.recv(), if !handles_gone => match cmd {
                    Some(DriverCmd::Release(ack)) => {
                        let now = self.now();
                        match self.lock.release(now) {
                            Ok(()) => release_ack = ack,
                            Err(_) => {
                                let reason = match cell.as_ref().map(|c| c.snapshot().1) {
                                    Some(crate::cell::CellState::Lost(r)) => r,
                                    _ => LostReason::ExpiredLocally,
                                };
                                if let Some(a) = ack { let _ = a.send(Err(reason)); }
                            }
                        }
                    }
                    None => {
                        // every handle dropped without release: release in the background
                        handles_gone = true;
                        let now = self.now();
                        let _ = self.lock.release(now);
                    }
                },
                _ = async { match self.result.as_mut() { Some(tx) => tx.closed().await, None => std::future::pending().await } }, if acquiring => {
                    // the acquire future was dropped: cancel and clean up in the background
                    self.result = None;
                    let now = self.now();
                    self.lock.cancel(now);
                }
            }
        }
        for (inst, key) in &routes {
            self.shared.router.unregister(driver_id, *inst, key);
        }
        drop(self.gate.take());
        if let Some(ack) = release_ack.take() {
            let _ = ack.send(Ok(()));
        }
    }
}
