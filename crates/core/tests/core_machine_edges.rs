#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Machine behaviours that mutation testing found no test reading (see ARCHITECTURE.md,
//! "Mutation testing"), each driven through the public API only.

use leasehold_core::{
    AcquireMode, Event, HolderId, Instant, Lock, LockConfig, LockName, LostReason, Reply,
    SlotLayout,
};

#[path = "support/transcript.rs"]
mod transcript;
use transcript::*;

fn drain(l: &mut Lock) -> Vec<leasehold_core::Command> {
    std::iter::from_fn(|| l.poll_command()).collect()
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

/// A write-back is not cut short by the caller's deadline (its timer is the slot wait), so it can
/// fail after the deadline, inside `handle_reply`: the deadline is reported at once, with the
/// write-back's failure as its last cause, not left to a later timer call.
#[test]
fn a_write_back_failing_past_the_deadline_reports_the_deadline_at_once() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    let deadline = T0 + ms(10);
    l.acquire(T0, AcquireMode::Wait { deadline }).unwrap();
    let round = drain(&mut l);
    assert_eq!(round.len(), 3);
    l.handle_reply(T0 + ms(1), round[0].request, Reply::Granted { token: 4 });
    l.handle_reply(T0 + ms(1), round[1].request, Reply::Granted { token: 5 });
    let fences = drain(&mut l);
    assert_eq!(fences.len(), 2, "{fences:?}");
    assert_eq!(
        l.poll_timeout(),
        Some(T0 + ms(21)),
        "the slot wait, not the deadline"
    );
    let err = Reply::Error(leasehold_core::SlotError::new(
        leasehold_core::wire::SlotErrorKind::Server,
        "READONLY",
    ));
    l.handle_reply(T0 + ms(15), fences[0].request, err);
    match &events(&mut l)[..] {
        [
            Event::AcquireFailed(leasehold_core::AcquireError::DeadlineExceeded {
                attempts: 1,
                last_cause: Some(cause),
                ..
            }),
        ] => assert_eq!(cause.reason(), "quorum_unreachable"),
        other => panic!("{other:?}"),
    }
    assert_eq!(l.phase(), leasehold_core::Phase::Idle);
    assert_eq!(l.poll_timeout(), None);
}

/// Once the hold cap forbids the next extension, the only timer left is the validity instant
/// (the passed extension instant must not stay due, or a driver would spin on it).
#[test]
fn a_capped_lease_waits_for_its_validity_instant() {
    let mut l = Lock::new(
        LockConfig {
            hold_cap: Some(ms(3_000)),
            ..config(SlotLayout::Single)
        },
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap();
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = drain(&mut l);
    l.handle_reply(T0, c[0].request, Reply::Granted { token: 1 });
    let _ = events(&mut l);
    assert_eq!(l.poll_timeout(), Some(T0 + ms(1_000)), "first extension");
    l.handle_timeout(T0 + ms(1_000));
    assert!(drain(&mut l).is_empty(), "capped: no extension sent");
    assert_eq!(l.poll_timeout(), Some(T0 + ms(2_968)), "validity");
    l.handle_timeout(T0 + ms(2_968));
    assert_eq!(
        events(&mut l),
        [Event::Lost {
            token: 1,
            reason: LostReason::HoldCapReached
        }]
    );
}

/// `pending_requests` counts the requests awaiting replies, including rounds that already ended.
#[test]
fn pending_requests_counts_every_unanswered_request() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    assert_eq!(l.pending_requests(), 0);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let round = drain(&mut l);
    assert_eq!(l.pending_requests(), 3);
    l.handle_reply(T0 + ms(1), round[0].request, Reply::Granted { token: 4 });
    assert_eq!(l.pending_requests(), 2);
    l.handle_reply(T0 + ms(1), round[1].request, Reply::Granted { token: 5 });
    let fences = drain(&mut l);
    assert_eq!(fences.len(), 2);
    assert_eq!(
        l.pending_requests(),
        3,
        "slot 2's acquire and two write-backs"
    );
    for f in &fences {
        l.handle_reply(T0 + ms(2), f.request, Reply::FenceRaised);
    }
    assert_eq!(
        l.pending_requests(),
        1,
        "slot 2's acquire, still unanswered"
    );
    assert!(matches!(events(&mut l)[..], [Event::Acquired { .. }]));
    l.release(T0 + ms(3)).unwrap();
    assert_eq!(l.pending_requests(), 3, "two releases and the old acquire");
}

/// The request table is full at exactly `4 * MAX_SLOTS` = 60 entries: the send that finds 60
/// entries prunes those older than two ttls, so a grant answering one of them afterwards is an
/// unknown reply (ignored), not a late grant to clean up. (`core_transcript.rs` shows the other
/// side: short of full, nothing is pruned.)
#[test]
fn the_send_that_finds_sixty_entries_prunes_the_old_ones() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let first = drain(&mut l);
    l.handle_timeout(T0 + ms(20)); // silent: the round fails and sends its cleanup release
    let _ = (drain(&mut l), events(&mut l));
    assert_eq!(l.pending_requests(), 2);
    // 29 silent rounds after two ttls, two requests each: 60 entries, none pruned yet
    let round = |l: &mut Lock, at: Instant| {
        l.acquire(at, AcquireMode::Try).unwrap();
        let _ = drain(l);
        l.handle_timeout(at + ms(20));
        let _ = (drain(l), events(l));
    };
    for i in 0..29 {
        round(&mut l, T0 + ms(6_100 + 100 * i));
    }
    assert_eq!(l.pending_requests(), 60);
    // the next send finds the table full: the two old entries go, the new one comes in
    l.acquire(T0 + ms(9_000), AcquireMode::Try).unwrap();
    let _ = drain(&mut l);
    assert_eq!(l.pending_requests(), 59);
    let (ignored, cleaned) = (l.stats().ignored_replies, l.stats().late_grants_cleaned);
    l.handle_reply(
        T0 + ms(9_001),
        first[0].request,
        Reply::Granted { token: 3 },
    );
    assert_eq!(l.stats().ignored_replies, ignored + 1);
    assert_eq!(l.stats().late_grants_cleaned, cleaned);
    assert!(drain(&mut l).is_empty(), "no cleanup release");
}

/// `Stats::commands` counts every command emitted: acquires, write-backs, releases.
#[test]
fn stats_count_every_command_emitted() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    assert_eq!(l.stats().commands, 0);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let round = drain(&mut l);
    assert_eq!(l.stats().commands, 3);
    l.handle_reply(T0 + ms(1), round[0].request, Reply::Granted { token: 4 });
    l.handle_reply(T0 + ms(1), round[1].request, Reply::Granted { token: 5 });
    let fences = drain(&mut l);
    assert_eq!(l.stats().commands, 3 + fences.len() as u64);
    assert_eq!(fences.len(), 2);
}
