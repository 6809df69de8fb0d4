//! [`LeaseCell`]: the state a lease handle and its background driver share, and [`NameGate`]:
//! the per-name in-process queue. Both are model-checked with loom (`tests/loom_state.rs`).

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt as _};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use leasehold_core::LostReason;

use crate::sync::{Arc, Mutex, lock};

/// What the lease is, as one value (never read torn: token and state change under one lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellState {
    /// Held until `validity_ns` (nanoseconds on the locker's clock).
    Held {
        /// Validity on the locker's clock, ns.
        validity_ns: u64,
    },
    /// Lost for `reason`.
    Lost(LostReason),
    /// Released by the holder.
    Released,
}

#[derive(Debug)]
struct CellInner {
    token: u64,
    state: CellState,
    release_requested: bool,
    wakers: Vec<Waker>,
}

/// Shared between a [`crate::Lease`] and its driver.
#[derive(Debug, Clone)]
pub struct LeaseCell {
    inner: Arc<Mutex<CellInner>>,
}

impl LeaseCell {
    /// A held lease with `token`, valid until `validity_ns`.
    #[must_use]
    pub fn new(token: u64, validity_ns: u64) -> Self {
        LeaseCell {
            inner: Arc::new(Mutex::new(CellInner {
                token,
                state: CellState::Held { validity_ns },
                release_requested: false,
                wakers: Vec::new(),
            })),
        }
    }

    /// Token and state, read together.
    #[must_use]
    pub fn snapshot(&self) -> (u64, CellState) {
        let g = lock(&self.inner);
        (g.token, g.state.clone())
    }

    /// Driver: the validity moved (an extension landed). Ignored unless still held.
    pub fn set_validity(&self, validity_ns: u64) {
        let mut g = lock(&self.inner);
        if let CellState::Held { .. } = g.state {
            g.state = CellState::Held { validity_ns };
        }
    }

    /// Driver: the lease was lost. Returns true the first time only; wakes every `lost()` waiter.
    pub fn set_lost(&self, reason: LostReason) -> bool {
        let wakers = {
            let mut g = lock(&self.inner);
            if !matches!(g.state, CellState::Held { .. }) {
                return false;
            }
            g.state = CellState::Lost(reason);
            std::mem::take(&mut g.wakers)
        };
        for w in wakers {
            w.wake();
        }
        true
    }

    /// Driver: the lease was released. Lost waiters are woken (they keep waiting: a released
    /// lease is never lost).
    pub fn set_released(&self) {
        let wakers = {
            let mut g = lock(&self.inner);
            if matches!(g.state, CellState::Held { .. }) {
                g.state = CellState::Released;
            }
            std::mem::take(&mut g.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Handle: ask for the release (explicit `release()` or `Drop`). True exactly once, for the
    /// caller that must send the release command.
    pub fn request_release(&self) -> bool {
        let mut g = lock(&self.inner);
        !std::mem::replace(&mut g.release_requested, true)
    }

    /// Driver: may an extension start now? False once a release was requested, so no extension
    /// is ever sent after the release (the check and the request share one lock).
    pub fn begin_extension(&self) -> bool {
        let g = lock(&self.inner);
        !g.release_requested && matches!(g.state, CellState::Held { .. })
    }

    /// Poll for loss: registers the waker under the same lock as the check, so a loss between
    /// the check and the registration cannot be missed.
    pub fn poll_lost(&self, cx: &mut Context<'_>) -> Poll<LostReason> {
        let mut g = lock(&self.inner);
        match &g.state {
            CellState::Lost(r) => Poll::Ready(r.clone()),
            _ => {
                if !g.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    g.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// A future that resolves with the reason once lost (never, if released). Cancel-safe.
    #[must_use]
    pub fn lost(&self) -> Lost<'_> {
        Lost { cell: self }
    }
}

/// Future of [`LeaseCell::lost`].
#[derive(Debug)]
pub struct Lost<'a> {
    cell: &'a LeaseCell,
}

impl Future for Lost<'_> {
    type Output = LostReason;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LostReason> {
        self.cell.poll_lost(cx)
    }
}

#[derive(Debug)]
struct Waiter {
    granted: bool,
    cancelled: bool,
    waker: Option<Waker>,
}

#[derive(Debug, Default)]
struct GateInner {
    held: bool,
    /// The holder is only cleaning up after a failed or cancelled attempt (deleting a grant that
    /// came too late), not holding a lease.
    cleaning: bool,
    queue: VecDeque<Arc<Mutex<Waiter>>>,
}

/// A FIFO per-name gate: tasks of one process waiting for the same lock name queue here, so at
/// most one of them has an acquire in flight at a time. The holder's guard hands the gate to the
/// next waiter directly.
#[derive(Debug, Clone, Default)]
pub struct NameGate {
    inner: Arc<Mutex<GateInner>>,
}

/// Holding the gate. Dropping it hands the gate on.
#[derive(Debug)]
pub struct GateGuard {
    gate: NameGate,
}

impl GateGuard {
    /// Say that the gate is now held only by the cleanup of a failed or cancelled attempt (its
    /// late grants are being deleted), until this guard is dropped.
    pub fn cleaning(&self) {
        lock(&self.gate.inner).cleaning = true;
    }
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        self.gate.hand_on();
    }
}

/// Future of [`NameGate::enter`]. Dropping it leaves the queue; if the gate had just been handed
/// to it, it hands the gate on, so neither the gate nor the next waiter's turn is lost.
#[derive(Debug)]
pub struct Enter {
    gate: NameGate,
    slot: Option<Arc<Mutex<Waiter>>>,
    done: bool,
}

impl NameGate {
    /// A new, open gate.
    #[must_use]
    pub fn new() -> Self {
        NameGate::default()
    }

    /// Take the gate now if it is open.
    #[must_use]
    pub fn try_enter(&self) -> Option<GateGuard> {
        let mut g = lock(&self.inner);
        if g.held {
            None
        } else {
            g.held = true;
            Some(GateGuard { gate: self.clone() })
        }
    }

    /// Wait for the gate (FIFO).
    #[must_use]
    pub fn enter(&self) -> Enter {
        Enter {
            gate: self.clone(),
            slot: None,
            done: false,
        }
    }

    /// Whether the gate is held only by a cleanup ([`GateGuard::cleaning`]), which ends as soon as
    /// the late replies it waits for are answered.
    #[must_use]
    pub fn cleaning(&self) -> bool {
        let g = lock(&self.inner);
        g.held && g.cleaning
    }

    /// Whether someone holds the gate or waits for it.
    #[must_use]
    pub fn busy(&self) -> bool {
        let g = lock(&self.inner);
        g.held || !g.queue.is_empty()
    }

    /// Whether nothing but its map refers to this gate: nobody holds it, waits on it, or has taken
    /// it from the map to enter. Only such a gate may be pruned: pruning one that a task already
    /// took would give the name a second gate, and two acquires of one name in flight at once.
    /// (Call it under the lock of the map the gate lives in.)
    #[must_use]
    pub fn unused(&self) -> bool {
        Arc::strong_count(&self.inner) == 1 && !self.busy()
    }

    fn hand_on(&self) {
        let waker = {
            let mut g = lock(&self.inner);
            g.cleaning = false;
            loop {
                match g.queue.pop_front() {
                    Some(w) => {
                        let mut w = lock(&w);
                        if w.cancelled {
                            continue;
                        }
                        w.granted = true; // `held` stays true: ownership moves to the waiter
                        break w.waker.take();
                    }
                    None => {
                        g.held = false;
                        break None;
                    }
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Future for Enter {
    type Output = GateGuard;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<GateGuard> {
        let this = &mut *self;
        match &this.slot {
            None => {
                let mut g = lock(&this.gate.inner);
                if !g.held {
                    g.held = true;
                    this.done = true;
                    return Poll::Ready(GateGuard {
                        gate: this.gate.clone(),
                    });
                }
                let w = Arc::new(Mutex::new(Waiter {
                    granted: false,
                    cancelled: false,
                    waker: Some(cx.waker().clone()),
                }));
                g.queue.push_back(w.clone());
                this.slot = Some(w);
                Poll::Pending
            }
            Some(w) => {
                let mut s = lock(w);
                if s.granted {
                    drop(s);
                    this.done = true;
                    return Poll::Ready(GateGuard {
                        gate: this.gate.clone(),
                    });
                }
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(w) = self.slot.take() else { return };
        let granted = {
            let _g = lock(&self.gate.inner); // order: gate, then waiter (as in hand_on)
            let mut s = lock(&w);
            s.cancelled = true;
            s.granted
        };
        if granted {
            // handed the gate while going away: pass it on instead of leaking it
            self.gate.hand_on();
        }
    }
}

/// The per-name gates of one locker: a map from lock name to its [`NameGate`], pruned of gates
/// nobody refers to once it grows past a bound, so it does not grow with every name ever locked.
///
/// Pruning keeps the gate's promise (one acquire in flight per name): a gate is pruned only when
/// nothing but the map refers to it ([`NameGate::unused`], checked under the map's lock), so a
/// task that has taken a gate from the map and not yet entered it keeps it alive, and the next
/// task for that name gets the same gate. (Pruning every idle gate, as before, could give the
/// name a second gate in that window.)
#[derive(Debug)]
pub struct NameGates {
    map: Mutex<HashMap<String, NameGate>>,
    prune_above: usize,
}

impl NameGates {
    /// Gates pruned once more than `prune_above` exist.
    #[must_use]
    pub fn new(prune_above: usize) -> Self {
        NameGates {
            map: Mutex::new(HashMap::new()),
            prune_above,
        }
    }

    /// The gate of `name`, created on first use.
    #[must_use]
    pub fn get(&self, name: &str) -> NameGate {
        let mut m = lock(&self.map);
        if let Some(g) = m.get(name) {
            return g.clone();
        }
        if m.len() > self.prune_above {
            m.retain(|_, g| !g.unused());
        }
        m.entry(name.to_owned()).or_default().clone()
    }

    /// How many gates exist now.
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::NameGate;

    #[test]
    fn a_cleanup_mark_lasts_until_the_gate_is_handed_on() {
        let gate = NameGate::new();
        let g = gate.try_enter().expect("open");
        assert!(!gate.cleaning(), "a plain holder is not a cleanup");
        g.cleaning();
        assert!(gate.cleaning());
        assert!(
            gate.try_enter().is_none(),
            "a cleanup keeps the gate closed"
        );
        drop(g);
        assert!(!gate.cleaning());
        let next = gate.try_enter().expect("open again");
        assert!(!gate.cleaning(), "the next holder is not marked");
        drop(next);
    }
}
