//! loom models of the adapter's in-process shared state: the lease cell (lost notification,
//! release-once, no extension after release, untorn reads) and the per-name gate (at most one
//! acquire in flight per name, FIFO hand-off, a waiter cancelled mid-hand-off passes it on, and
//! pruning the map of gates never gives one name two gates).
//!
//! Run: `just loom` (RUSTFLAGS="--cfg leasehold_loom", separate target dir).
#![cfg(leasehold_loom)]
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::task::{Context, Waker};

use leasehold_core::LostReason;
use leasehold_redis::cell::{CellState, LeaseCell, NameGate, NameGates};
use loom::future::block_on;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// No lost wake-up: a task that checks the state and registers its waker while the driver sets
/// the loss concurrently always finishes, with the reason.
#[test]
fn lost_is_never_missed() {
    loom::model(|| {
        let cell = LeaseCell::new(7, 100);
        let c2 = cell.clone();
        let waiter = thread::spawn(move || block_on(c2.lost()));
        assert!(cell.set_lost(LostReason::Deleted));
        assert_eq!(waiter.join().unwrap(), LostReason::Deleted);
    });
}

/// `lost` resolves exactly once: concurrent losses report one winner, and the reason sticks.
#[test]
fn loss_is_reported_exactly_once() {
    loom::model(|| {
        let cell = LeaseCell::new(1, 100);
        let c2 = cell.clone();
        let t = thread::spawn(move || c2.set_lost(LostReason::Deleted));
        let a = cell.set_lost(LostReason::ExpiredLocally);
        let b = t.join().unwrap();
        assert!(a ^ b, "exactly one set_lost wins");
        assert!(matches!(cell.snapshot().1, CellState::Lost(_)));
        cell.set_released(); // a lost lease stays lost
        assert!(matches!(cell.snapshot().1, CellState::Lost(_)));
    });
}

/// Release is sent exactly once whether it comes from `release()` or `Drop`, and once it was
/// requested no extension may start.
#[test]
fn release_once_and_no_extension_after_it() {
    loom::model(|| {
        let cell = LeaseCell::new(3, 100);
        let sends = Arc::new(AtomicUsize::new(0));
        let (c1, s1) = (cell.clone(), sends.clone());
        let explicit = thread::spawn(move || {
            if c1.request_release() {
                s1.fetch_add(1, Ordering::SeqCst);
            }
        });
        let (c2, s2) = (cell.clone(), sends.clone());
        let dropped = thread::spawn(move || {
            if c2.request_release() {
                s2.fetch_add(1, Ordering::SeqCst);
            }
        });
        let c3 = cell.clone();
        let extension = thread::spawn(move || {
            let _ = c3.begin_extension();
        });
        explicit.join().unwrap();
        dropped.join().unwrap();
        extension.join().unwrap();
        assert_eq!(sends.load(Ordering::SeqCst), 1, "release sent exactly once");
        assert!(
            !cell.begin_extension(),
            "no extension after a release request"
        );
    });
}

/// Token and state are read together, never torn, while the driver updates validity and loses.
#[test]
fn token_and_state_are_never_torn() {
    loom::model(|| {
        let cell = LeaseCell::new(42, 100);
        let c2 = cell.clone();
        let driver = thread::spawn(move || {
            c2.set_validity(200);
            c2.set_lost(LostReason::Deleted);
        });
        let (token, state) = cell.snapshot();
        assert_eq!(token, 42);
        assert!(matches!(
            state,
            CellState::Held {
                validity_ns: 100 | 200
            } | CellState::Lost(LostReason::Deleted)
        ));
        driver.join().unwrap();
    });
}

/// At most one acquire in flight per name per process: two tasks entering the gate never
/// overlap, and both get through (no deadlock, no lost hand-off).
#[test]
fn the_gate_admits_one_at_a_time() {
    loom::model(|| {
        let gate = NameGate::new();
        let inside = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (g, inside) = (gate.clone(), inside.clone());
            threads.push(thread::spawn(move || {
                let guard = block_on(g.enter());
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two tasks in the gate"
                );
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(!gate.busy());
    });
}

/// A waiter cancelled while it is being handed the gate neither leaks the gate nor swallows the
/// next waiter's turn.
#[test]
fn a_cancelled_waiter_passes_the_hand_off_on() {
    loom::model(|| {
        let gate = NameGate::new();
        let holder = gate.try_enter().unwrap();
        // waiter 1 queues first, then is cancelled concurrently with the hand-off
        let mut first = Box::pin(gate.enter());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        let g2 = gate.clone();
        let second = thread::spawn(move || drop(block_on(g2.enter())));
        let cancel = thread::spawn(move || drop(first));
        drop(holder);
        cancel.join().unwrap();
        second.join().unwrap();
        assert!(!gate.busy(), "the gate leaked");
        assert!(gate.try_enter().is_some());
    });
}

/// Pruning the gate map keeps "one acquire in flight per name": two tasks take the gate of one
/// name from the map while a third task's lookup of another name prunes the map (bound 0: every
/// lookup prunes). A task that has taken a gate but not yet entered it keeps it from being pruned,
/// so both tasks get the same gate and never hold it at once.
#[test]
fn pruning_never_gives_one_name_two_gates() {
    loom::model(|| {
        let gates = Arc::new(NameGates::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let worker = |gates: Arc<NameGates>, inside: Arc<AtomicUsize>| {
            move || {
                let gate = gates.get("a");
                if let Some(guard) = gate.try_enter() {
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders of one name"
                    );
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(guard);
                }
            }
        };
        let a = thread::spawn(worker(gates.clone(), inside.clone()));
        let pruner = {
            let gates = gates.clone();
            thread::spawn(move || drop(gates.get("b")))
        };
        worker(gates.clone(), inside.clone())();
        a.join().unwrap();
        pruner.join().unwrap();
    });
}
