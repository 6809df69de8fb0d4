#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! A grant that arrives while the token is being written back joins the lease instead of being
//! deleted: a lease on three instances then survives any one of them failing, as a majority
//! lock should (before, the third grant was deleted as stray and the lease lived on two).

use std::time::Duration;

use leasehold_core::{
    AcquireMode, Event, HolderId, Instant, Lock, LockConfig, LockName, Phase, Reply, SlotLayout,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const T0: Instant = Instant::from_millis(10_000);

fn lock() -> Lock {
    let config = LockConfig {
        layout: SlotLayout::Instances { n: 3 },
        ttl: ms(3_000),
        extend_interval: Some(ms(1_000)),
        slot_wait: ms(50),
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

#[test]
fn a_grant_during_the_write_back_joins_the_lease_and_keeps_it_alive() {
    let mut l = lock();
    l.acquire(T0, AcquireMode::Try).unwrap();
    let acq = drain(&mut l);
    assert_eq!(acq.len(), 3);
    l.handle_reply(T0 + ms(1), acq[0].request, Reply::Granted { token: 5 });
    l.handle_reply(T0 + ms(1), acq[1].request, Reply::Granted { token: 7 });
    let fence = drain(&mut l);
    assert_eq!(
        fence.len(),
        2,
        "write-back to the two granted slots: {fence:?}"
    );
    assert_eq!(l.phase(), Phase::WritingBack);
    // the third grant arrives during the write-back: kept, not released
    l.handle_reply(T0 + ms(2), acq[2].request, Reply::Granted { token: 6 });
    assert!(drain(&mut l).is_empty(), "no release of the late grant");
    for f in &fence {
        l.handle_reply(T0 + ms(3), f.request, Reply::FenceRaised);
    }
    assert!(matches!(
        l.poll_event(),
        Some(Event::Acquired { token: 7, .. })
    ));
    assert_eq!(
        l.held_slots().len(),
        3,
        "all three instances hold the lease"
    );
    // instance 0 fails; the next extension succeeds on the other two
    let ext_at = T0 + ms(1_000);
    l.handle_timeout(ext_at);
    let ext = drain(&mut l);
    assert_eq!(ext.len(), 3);
    for e in &ext {
        let reply = if e.slot == 0 {
            Reply::Error(leasehold_core::SlotError::new(
                leasehold_core::SlotErrorKind::Disconnected,
                "instance 0 down",
            ))
        } else {
            Reply::Extended
        };
        l.handle_reply(ext_at + ms(1), e.request, reply);
    }
    assert!(
        matches!(l.poll_event(), Some(Event::Extended { .. })),
        "extended on a majority"
    );
    assert_eq!(l.phase(), Phase::Held);
}
