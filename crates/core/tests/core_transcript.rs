#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Transcript tests (rustls style): the exact sequence of commands and events a machine emits.

use leasehold_core::{
    AcquireError, AcquireMode, Event, HolderId, Lock, LockConfig, LockName, LostReason, Op, Phase,
    Reply, SlotLayout,
};

#[path = "support/transcript.rs"]
mod transcript;
use transcript::*;

#[test]
fn single_acquire_extend_release_transcript() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:acquire"]);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 7 });
    // validity counts from the send time: 3000 - 30 (1% drift) - 2 margin
    assert_eq!(
        events(&mut l),
        [Event::Acquired {
            token: 7,
            validity: T0 + ms(2_968),
            sent_at: T0,
            mode: AcquireMode::Try
        }]
    );
    assert_eq!(l.poll_timeout(), Some(T0 + ms(1_000)));
    l.handle_timeout(T0 + ms(1_000));
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:extend"]);
    l.handle_reply(T0 + ms(1_001), c[0].1, Reply::Extended);
    assert_eq!(
        events(&mut l),
        [Event::Extended {
            token: 7,
            validity: T0 + ms(3_968),
            slack: ms(1_967)
        }]
    );
    l.release(T0 + ms(1_500)).unwrap();
    assert_eq!(names(&sent(&mut l)), ["0:release"]);
    assert_eq!(events(&mut l), [Event::Released { token: 7 }]);
    assert_eq!(l.phase(), Phase::Idle);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn slow_reply_is_not_contention_and_names_the_wait_that_suffices() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_timeout(T0 + ms(20));
    // the round failed: cleanup release queued behind the acquire on the same connection
    assert_eq!(names(&sent(&mut l)), ["0:release"]);
    match &events(&mut l)[..] {
        [
            Event::AcquireFailed(AcquireError::SlowReplies {
                waited,
                observed: None,
                ..
            }),
        ] => {
            assert_eq!(*waited, ms(20));
        }
        other => panic!("{other:?}"),
    }
    // the reply arrives after 35 ms: a late grant is cleaned up at once
    l.handle_reply(T0 + ms(35), c[0].1, Reply::Granted { token: 3 });
    assert_eq!(names(&sent(&mut l)), ["0:release"]);
    assert_eq!(l.stats().late_grants_cleaned, 1);
    // the next slow round reports the observed 35 ms and suggests 70 ms
    let t1 = T0 + ms(100);
    l.acquire(t1, AcquireMode::Try).unwrap();
    let _ = sent(&mut l);
    l.handle_timeout(t1 + ms(20));
    let ev = events(&mut l);
    let Event::AcquireFailed(err) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(err.suggested_slot_wait(), Some(ms(70)));
    let msg = err.to_string();
    assert!(msg.contains("35ms") && msg.contains("70ms"), "{msg}");
}

#[test]
fn contention_reports_the_holder_and_its_ttl() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, held(Some("other"), Some(ms(900))));
    assert!(sent(&mut l).is_empty(), "nothing of ours to clean up");
    let ev = events(&mut l);
    assert_eq!(
        ev,
        [Event::AcquireFailed(AcquireError::Contended {
            holder: Some("other".into()),
            remaining: Some(ms(900))
        })]
    );
    assert!(ev[0].clone() != Event::Released { token: 0 });
}

#[test]
fn wait_mode_backs_off_retries_on_notification_and_reports_the_deadline() {
    let mut l = lock(SlotLayout::Single);
    let deadline = T0 + ms(200);
    l.acquire(T0, AcquireMode::Wait { deadline }).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, held(None, None));
    assert_eq!(l.phase(), Phase::Backoff);
    let wake = l.poll_timeout().unwrap();
    assert!(
        wake >= T0 + ms(1) && wake <= T0 + ms(3),
        "first backoff within 2 ms: {wake:?}"
    );
    // a notification retries at once
    l.handle_key_changed(T0 + ms(1), 0);
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:acquire"]);
    // this round stays silent until the deadline cuts it... no: slot_wait (20 ms) cuts it first
    l.handle_timeout(T0 + ms(21));
    let _ = sent(&mut l);
    assert_eq!(l.phase(), Phase::Backoff);
    l.handle_timeout(deadline);
    // drive through to the deadline, answering nothing
    let mut now = deadline;
    while let Some(t) = l.poll_timeout() {
        now = t.max(now);
        l.handle_timeout(now);
        let _ = sent(&mut l);
    }
    let ev = events(&mut l);
    match &ev[..] {
        [
            Event::AcquireFailed(AcquireError::DeadlineExceeded {
                attempts,
                last_cause: Some(c),
                ..
            }),
        ] => {
            assert!(*attempts >= 2);
            assert_eq!(c.reason(), "slow_replies");
        }
        other => panic!("{other:?}"),
    }
    assert!(now <= deadline + ms(20));
}

#[test]
fn silence_loses_the_lease_exactly_at_validity() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(15), c[0].1, Reply::Granted { token: 1 });
    let validity = l.validity().unwrap();
    assert_eq!(
        validity,
        T0 + ms(2_968),
        "counted from the send time, not the reply time"
    );
    let _ = events(&mut l);
    let mut now = T0;
    while let Some(t) = l.poll_timeout() {
        now = t;
        l.handle_timeout(now);
        let _ = sent(&mut l); // extensions go unanswered
    }
    assert_eq!(now, validity);
    assert_eq!(
        events(&mut l),
        [Event::Lost {
            token: 1,
            reason: LostReason::ExpiredLocally
        }]
    );
}

#[test]
fn extension_finding_another_value_reports_taken_and_missing_fence_reports_restart() {
    for (reply, reason) in [
        (
            Reply::NotOwner {
                holder: Some("thief".into()),
            },
            LostReason::Taken {
                holder: Some("thief".into()),
            },
        ),
        (
            Reply::Missing {
                fence_present: true,
            },
            LostReason::Deleted,
        ),
        (
            Reply::Missing {
                fence_present: false,
            },
            LostReason::ServerRestarted,
        ),
    ] {
        let mut l = lock(SlotLayout::Single);
        l.acquire(T0, AcquireMode::Try).unwrap();
        let c = sent(&mut l);
        l.handle_reply(T0, c[0].1, Reply::Granted { token: 1 });
        let _ = events(&mut l);
        l.handle_key_changed(T0 + ms(10), 0); // push: re-check now, read-only
        let c = sent(&mut l);
        assert_eq!(names(&c), ["0:check"]);
        l.handle_reply(T0 + ms(11), c[0].1, reply);
        assert_eq!(events(&mut l), [Event::Lost { token: 1, reason }]);
        assert!(sent(&mut l).is_empty(), "nothing held is left to release");
    }
}

#[test]
fn force_round_sends_force_and_duplicates_are_harmless() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Force).unwrap();
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:force"]);
    l.handle_reply(T0, c[0].1, Reply::Granted { token: 2 });
    l.handle_reply(T0, c[0].1, Reply::Granted { token: 2 });
    l.handle_reply(T0, leasehold_core::RequestId(999), Reply::Extended);
    assert_eq!(events(&mut l).len(), 1);
    assert_eq!(l.stats().ignored_replies, 2);
    assert!(sent(&mut l).is_empty());
}

#[test]
fn disconnect_ends_the_round_as_unreachable_and_lease_as_disconnected() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let _ = sent(&mut l);
    l.handle_disconnected(T0 + ms(1), 0);
    l.handle_disconnected(T0 + ms(1), 1);
    match &events(&mut l)[..] {
        [
            Event::AcquireFailed(AcquireError::QuorumUnreachable {
                errors, quorum: 2, ..
            }),
        ] => {
            assert_eq!(errors.len(), 2)
        }
        other => panic!("{other:?}"),
    }
    // a single-slot lease whose connection is down when validity passes
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0, c[0].1, Reply::Granted { token: 1 });
    l.handle_disconnected(T0 + ms(5), 0);
    l.handle_timeout(T0 + ms(5_000));
    let ev = events(&mut l);
    assert_eq!(
        ev.last(),
        Some(&Event::Lost {
            token: 1,
            reason: LostReason::Disconnected
        })
    );
}

#[test]
fn hold_cap_stops_extensions() {
    let mut cfg = config(SlotLayout::Single);
    cfg.hold_cap = Some(ms(5_000));
    let mut l = Lock::new(
        cfg,
        LockName::new("a").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap();
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0, c[0].1, Reply::Granted { token: 1 });
    let mut now = T0;
    let mut lost = None;
    while let Some(t) = l.poll_timeout() {
        now = t;
        l.handle_timeout(now);
        let cmds: Vec<_> = std::iter::from_fn(|| l.poll_command()).collect();
        for c in cmds {
            if matches!(c.op, Op::Extend { .. }) {
                l.handle_reply(now, c.request, Reply::Extended);
            }
        }
        for e in events(&mut l) {
            if let Event::Lost { reason, .. } = e {
                lost = Some(reason);
            }
        }
    }
    assert_eq!(lost, Some(LostReason::HoldCapReached));
    assert!(now <= T0 + ms(5_000), "held past the cap: {now:?}");
    // and it extended while the cap was still ahead: validity reached at least 4 s
    assert!(now >= T0 + ms(4_000), "stopped extending early: {now:?}");
}

#[test]
fn usage_errors_change_nothing() {
    let mut l = lock(SlotLayout::Single);
    assert!(l.release(T0).is_err());
    l.acquire(T0, AcquireMode::Try).unwrap();
    assert!(l.acquire(T0, AcquireMode::Try).is_err());
    assert_eq!(names(&sent(&mut l)), ["0:acquire"]);
    l.cancel(T0 + ms(1));
    assert_eq!(names(&sent(&mut l)), ["0:release"]);
    assert_eq!(
        events(&mut l),
        [Event::AcquireFailed(AcquireError::Cancelled)]
    );
}

/// A notification that arrives while a check is in flight is not dropped: that check may have run
/// before the change, so the holder checks again once it completes. Checks never write, so a
/// holder's own extension (whose notification Redis also sends to it) cannot start a loop.
#[test]
fn notifications_recheck_read_only_and_never_loop() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0, c[0].1, Reply::Granted { token: 1 });
    let _ = events(&mut l);
    // our own extension notifies us too: one read-only check, then quiet
    l.handle_timeout(T0 + ms(1_000));
    let ext = sent(&mut l);
    assert_eq!(names(&ext), ["0:extend"]);
    l.handle_key_changed(T0 + ms(1_000), 0);
    l.handle_reply(T0 + ms(1_001), ext[0].1, Reply::Extended);
    let chk = sent(&mut l);
    assert_eq!(names(&chk), ["0:check"]);
    l.handle_reply(T0 + ms(1_002), chk[0].1, Reply::StillHeld);
    assert!(
        sent(&mut l).is_empty(),
        "a check writes nothing and triggers nothing"
    );
    assert_eq!(
        l.validity(),
        Some(T0 + ms(3_968)),
        "a check does not extend validity"
    );
    // a change during a check in flight: check again after it
    l.handle_key_changed(T0 + ms(1_100), 0);
    let first = sent(&mut l);
    l.handle_key_changed(T0 + ms(1_101), 0);
    assert!(sent(&mut l).is_empty(), "one check per slot at a time");
    l.handle_reply(T0 + ms(1_102), first[0].1, Reply::StillHeld);
    let again = sent(&mut l);
    assert_eq!(names(&again), ["0:check"]);
    l.handle_reply(
        T0 + ms(1_103),
        again[0].1,
        Reply::Missing {
            fence_present: true,
        },
    );
    assert_eq!(
        events(&mut l).last(),
        Some(&Event::Lost {
            token: 1,
            reason: LostReason::Deleted
        })
    );
}

/// A waiter ignores a notification while its own write to that slot is in flight (a server
/// that notifies a connection of its own script writes, as Redis before 7.0.5 does, sends the
/// push ahead of the reply), and retries on others.
#[test]
fn a_waiter_ignores_its_own_cleanup_notification() {
    let mut cfg = config(SlotLayout::Single);
    cfg.backoff_min = ms(100); // the backoff timer stays out of this test's way
    let mut l = Lock::new(
        cfg,
        LockName::new("w").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap();
    let deadline = T0 + ms(10_000);
    l.acquire(T0, AcquireMode::Wait { deadline }).unwrap();
    let c = sent(&mut l);
    l.handle_timeout(T0 + ms(20)); // slow: round fails, cleanup release goes out
    let cleanup = sent(&mut l);
    assert_eq!(names(&cleanup), ["0:release"]);
    assert_eq!(l.phase(), Phase::Backoff);
    l.handle_key_changed(T0 + ms(21), 0); // the notification of our own cleanup
    assert!(
        sent(&mut l).is_empty(),
        "no immediate retry on our own write's notification"
    );
    l.handle_reply(T0 + ms(22), c[0].1, Reply::Granted { token: 1 }); // late grant: cleaned up
    let late_cleanup = sent(&mut l);
    assert_eq!(names(&late_cleanup), ["0:release"]);
    l.handle_reply(
        T0 + ms(23),
        cleanup[0].1,
        Reply::Released { deleted: false },
    );
    l.handle_key_changed(T0 + ms(23), 0); // still our own write in flight
    assert!(sent(&mut l).is_empty());
    l.handle_reply(
        T0 + ms(24),
        late_cleanup[0].1,
        Reply::Released { deleted: true },
    );
    assert_eq!(l.phase(), Phase::Backoff);
    // no write of ours in flight: a notification is someone else's change, retry at once
    l.handle_key_changed(T0 + ms(25), 0);
    assert_eq!(names(&sent(&mut l)), ["0:acquire"]);
}

/// Found by the proptest: a late reply to a timed-out extension round must not be credited to
/// the next round (its validity would count from a send time the server never saw).
#[test]
fn a_late_extension_reply_does_not_extend_the_next_round() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0, c[0].1, Reply::Granted { token: 1 });
    l.handle_timeout(T0 + ms(1_000));
    let first = sent(&mut l);
    assert_eq!(names(&first), ["0:extend"]);
    // no reply: the round times out after extend_every/2, a retry follows extend_every/4 later
    let mut now;
    let second = loop {
        now = l.poll_timeout().unwrap();
        l.handle_timeout(now);
        let s = sent(&mut l);
        if !s.is_empty() {
            break s;
        }
    };
    assert_eq!(names(&second), ["0:extend"]);
    let before = l.validity();
    l.handle_reply(now + ms(1), first[0].1, Reply::Extended);
    assert_eq!(
        l.validity(),
        before,
        "the first round's late reply must not extend"
    );
    l.handle_reply(now + ms(2), second[0].1, Reply::Extended);
    assert_eq!(l.validity(), Some(now + ms(2_968)));
}

/// The phase names are what dashboards and logs print.
#[test]
fn phases_have_stable_names() {
    let names: Vec<&str> = [
        Phase::Idle,
        Phase::Acquiring,
        Phase::WritingBack,
        Phase::Backoff,
        Phase::Held,
    ]
    .into_iter()
    .map(Phase::name)
    .collect();
    assert_eq!(
        names,
        ["idle", "acquiring", "writing_back", "backoff", "held"]
    );
}

/// The getters a caller reads: the held lease's token (none before or after), and the reply
/// time a caller hands in (`note_reply_time`) feeding the `slot_wait` suggestion.
#[test]
fn token_getter_and_noted_reply_times() {
    let mut l = lock(SlotLayout::Single);
    assert_eq!(l.token(), None);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 7 });
    let _ = events(&mut l);
    assert_eq!(l.token(), Some(7));
    l.release(T0 + ms(2)).unwrap();
    assert_eq!(l.token(), None);

    let mut l = lock(SlotLayout::Single);
    l.note_reply_time(0, ms(35));
    l.note_reply_time(99, ms(500)); // no such slot: ignored
    l.acquire(T0, AcquireMode::Try).unwrap();
    let _ = sent(&mut l);
    l.handle_timeout(T0 + ms(20));
    match &events(&mut l)[..] {
        [
            Event::AcquireFailed(AcquireError::SlowReplies {
                observed,
                suggested,
                ..
            }),
        ] => {
            assert_eq!(*observed, Some(ms(35)));
            assert_eq!(*suggested, Some(ms(70)));
        }
        other => panic!("{other:?}"),
    }
}

/// A reply time equal to the round's wait is no evidence that a longer wait would have helped.
#[test]
fn a_reply_time_equal_to_the_wait_suggests_nothing() {
    let mut l = lock(SlotLayout::Single);
    l.note_reply_time(0, ms(20));
    l.acquire(T0, AcquireMode::Try).unwrap();
    let _ = sent(&mut l);
    l.handle_timeout(T0 + ms(20));
    match &events(&mut l)[..] {
        [
            Event::AcquireFailed(AcquireError::SlowReplies {
                observed: None,
                suggested: None,
                ..
            }),
        ] => {}
        other => panic!("{other:?}"),
    }
}

/// Bookkeeping of requests is pruned only when the table is full, and then only of requests
/// older than two ttls: a grant that comes back four seconds late (ttl 3 s) after a hundred
/// silent rounds is still recognised and cleaned up.
#[test]
fn late_grants_are_recognised_until_two_ttls_even_with_a_full_table() {
    let mut l = Lock::new(
        LockConfig {
            backoff_min: ms(1),
            backoff_max: ms(5),
            ..config(SlotLayout::Single)
        },
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap();
    l.acquire(
        T0,
        AcquireMode::Wait {
            deadline: T0 + ms(60_000),
        },
    )
    .unwrap();
    let first = sent(&mut l);
    assert_eq!(names(&first), ["0:acquire"]);
    // every round stays silent until four seconds have passed
    let mut now = T0;
    let mut rounds = 0;
    while now < T0 + ms(4_000) {
        now = l.poll_timeout().unwrap();
        l.handle_timeout(now);
        rounds += names(&sent(&mut l))
            .iter()
            .filter(|n| **n == "0:acquire")
            .count();
        let _ = events(&mut l);
    }
    assert!(rounds > 60, "{rounds} rounds");
    let before = l.stats().late_grants_cleaned;
    l.handle_reply(now, first[0].1, Reply::Granted { token: 3 });
    assert_eq!(l.stats().late_grants_cleaned, before + 1);
    assert!(names(&sent(&mut l)).contains(&"0:release"));
}

/// `write_value` renders the lock value of a command (what the adapter sends).
#[test]
fn write_value_renders_the_holder_s_value() {
    let l = lock(SlotLayout::Single);
    let mut out = String::from(">");
    l.write_value(leasehold_core::LeaseValue { nonce: 0xab }, &mut out);
    assert_eq!(out, ">lh1:00000000000000ab:me");
}

/// A failed extension (an error, not a loss) keeps the old validity and retries after a
/// quarter of the extension interval; a key change on a slot the lease does not hold is not
/// re-checked.
#[test]
fn a_failed_extension_retries_soon_and_foreign_slots_are_not_rechecked() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    for (_, id) in &c[..2] {
        l.handle_reply(T0, *id, Reply::Granted { token: 5 });
    }
    let fences = sent(&mut l);
    for (_, id) in &fences {
        l.handle_reply(T0, *id, Reply::FenceRaised);
    }
    let _ = events(&mut l);
    assert_eq!(l.phase(), Phase::Held);
    l.handle_key_changed(T0 + ms(1), 2);
    assert!(sent(&mut l).is_empty(), "slot 2 is not held");
    l.handle_timeout(T0 + ms(1_000));
    let ext = sent(&mut l);
    assert_eq!(names(&ext), ["0:extend", "1:extend"]);
    let err = || server_error("busy");
    l.handle_reply(T0 + ms(1_001), ext[0].1, err());
    l.handle_reply(T0 + ms(1_001), ext[1].1, err());
    assert_eq!(l.phase(), Phase::Held);
    assert_eq!(l.poll_timeout(), Some(T0 + ms(1_001) + ms(250)));
}

/// The request table is pruned only when full (60 entries): with fewer, a grant that comes
/// back seven seconds late (more than two ttls) is still recognised and cleaned up.
#[test]
fn a_table_short_of_full_is_never_pruned() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let first = sent(&mut l);
    l.handle_timeout(T0 + ms(20));
    let _ = (sent(&mut l), events(&mut l));
    // ten more silent rounds after two ttls: 22 requests pending, fewer than 60
    for i in 0..10 {
        let at = T0 + ms(6_500 + 100 * i);
        l.acquire(at, AcquireMode::Try).unwrap();
        let _ = sent(&mut l);
        l.handle_timeout(at + ms(20));
        let _ = (sent(&mut l), events(&mut l));
    }
    let before = l.stats().late_grants_cleaned;
    l.handle_reply(T0 + ms(7_600), first[0].1, Reply::Granted { token: 3 });
    assert_eq!(l.stats().late_grants_cleaned, before + 1);
}
