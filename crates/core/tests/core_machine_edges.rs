#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Machine behaviours that mutation testing found no test reading (see ARCHITECTURE.md,
//! "Mutation testing"), each driven through the public API only.

use std::time::Duration;

use leasehold_core::{
    AcquireMode, Event, HolderId, Instant, Lock, LockConfig, LockName, LostReason, Reply,
    SlotLayout,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const T0: Instant = Instant::from_millis(10_000);

fn config(layout: SlotLayout) -> LockConfig {
    LockConfig {
        layout,
        ttl: ms(3_000),
        extend_interval: Some(ms(1_000)),
        slot_wait: ms(20),
        drift_factor: 0.01,
        drift_margin: ms(2),
        ..LockConfig::default()
    }
}

fn lock(layout: SlotLayout) -> Lock {
    Lock::new(
        config(layout),
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap()
}

fn drain(l: &mut Lock) -> Vec<leasehold_core::Command> {
    std::iter::from_fn(|| l.poll_command()).collect()
}

fn events(l: &mut Lock) -> Vec<Event> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

/// A single-slot lease acquired at `T0` with token 1 (validity `T0 + 2968 ms`).
fn held_single() -> Lock {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = drain(&mut l);
    l.handle_reply(T0, c[0].request, Reply::Granted { token: 1 });
    assert!(matches!(events(&mut l)[..], [Event::Acquired { .. }]));
    l
}

/// A connection that dropped and came back before the validity instant: a lease that then runs
/// out because extensions go unanswered expired locally; it was not disconnected.
#[test]
fn a_reconnected_slot_no_longer_makes_a_loss_a_disconnection() {
    let mut l = held_single();
    l.handle_disconnected(T0 + ms(5), 0);
    l.handle_reconnected(T0 + ms(10), 0);
    l.handle_timeout(T0 + ms(5_000));
    assert_eq!(
        events(&mut l).last(),
        Some(&Event::Lost {
            token: 1,
            reason: LostReason::ExpiredLocally
        })
    );
}
