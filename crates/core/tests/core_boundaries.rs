#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Boundaries that mutation testing found no test reading (see ARCHITECTURE.md, "Mutation
//! testing"): a waiter ignores a key change only while its own write *to that slot* is in flight,
//! and the hold cap stops extending only once an extension would carry the lease past it.

use std::time::Duration;

use leasehold_core::{
    AcquireMode, Event, HolderId, Instant, Lock, LockConfig, LockName, Op, Phase, Reply, SlotLayout,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const T0: Instant = Instant::from_millis(10_000);

fn lock(layout: SlotLayout, hold_cap: Option<Duration>) -> Lock {
    let config = LockConfig {
        layout,
        ttl: ms(3_000),
        extend_interval: Some(ms(1_000)),
        slot_wait: ms(50),
        drift_factor: 0.01,
        drift_margin: ms(2),
        hold_cap,
        ..LockConfig::default()
    };
    Lock::new(
        config,
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap()
}

fn drain(l: &mut Lock) -> Vec<leasehold_core::Command> {
    std::iter::from_fn(|| l.poll_command()).collect()
}

/// Two of three keys held by someone else: the round fails at once (no quorum possible) while our
/// acquire of the third key is still in flight. A change of the *first* key must start a new round
/// now: the write in flight is to another slot, so it cannot be the cause of this change.
#[test]
fn a_change_of_a_slot_with_no_own_write_in_flight_wakes_the_waiter() {
    let mut l = lock(SlotLayout::KeyMajority { k: 2 }, None);
    l.acquire(
        T0,
        AcquireMode::Wait {
            deadline: T0 + ms(5_000),
        },
    )
    .unwrap();
    let round = drain(&mut l);
    assert_eq!(round.len(), 3);
    let held = Reply::Held {
        holder: Some("other".into()),
        remaining: Some(ms(2_000)),
    };
    l.handle_reply(T0 + ms(1), round[0].request, held.clone());
    l.handle_reply(T0 + ms(1), round[1].request, held);
    assert_eq!(l.phase(), Phase::Backoff, "contended, waiting");
    // our acquire of slot 2 (and its cleanup release) are in flight; nothing to slot 0
    assert!(l.pending_requests() >= 1);
    let cleanup = drain(&mut l);
    assert!(cleanup.iter().all(|c| c.slot == 2), "{cleanup:?}");
    l.handle_key_changed(T0 + ms(2), 0);
    let next = drain(&mut l);
    assert_eq!(
        next.iter()
            .filter(|c| matches!(c.op, Op::Acquire { .. }))
            .count(),
        3,
        "a new round at once: {next:?}"
    );
}

/// With a hold cap of exactly one extension interval plus the validity window, the first
/// extension carries the lease exactly to the cap: it is still sent.
#[test]
fn an_extension_that_reaches_the_hold_cap_exactly_is_still_sent() {
    let window = ms(3_000 - 30 - 2); // ttl - ceil(ttl * drift) - margin
    let mut l = lock(SlotLayout::Single, Some(ms(1_000) + window));
    l.acquire(T0, AcquireMode::Try).unwrap();
    let acq = drain(&mut l);
    l.handle_reply(T0, acq[0].request, Reply::Granted { token: 3 });
    assert!(matches!(l.poll_event(), Some(Event::Acquired { .. })));
    l.handle_timeout(T0 + ms(1_000));
    let ext = drain(&mut l);
    assert_eq!(ext.len(), 1, "{ext:?}");
    assert!(matches!(ext[0].op, Op::Extend { .. }));
    // one millisecond further and the cap forbids it
    let mut capped = lock(SlotLayout::Single, Some(ms(1_000) + window - ms(1)));
    capped.acquire(T0, AcquireMode::Try).unwrap();
    let acq = drain(&mut capped);
    capped.handle_reply(T0, acq[0].request, Reply::Granted { token: 3 });
    let _ = capped.poll_event();
    capped.handle_timeout(T0 + ms(1_000));
    assert!(drain(&mut capped).is_empty(), "capped: no extension");
}
