#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Transcript tests of multi-slot layouts (key majority, instance quorum): token write-back,
//! tokens across majorities, and how mixed slot answers are classified.

use leasehold_core::{
    AcquireError, AcquireMode, Event, HolderId, Instant, Lock, LockName, Op, Phase, Reply,
    SlotLayout,
};

#[path = "support/transcript.rs"]
mod transcript;
use transcript::*;

#[test]
fn majority_writes_the_token_back_before_reporting() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:acquire", "1:acquire", "2:acquire"]);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 5 });
    l.handle_reply(T0 + ms(1), c[2].1, Reply::Granted { token: 9 });
    assert!(
        events(&mut l).is_empty(),
        "no lease before the fence write-back"
    );
    let fb: Vec<_> = std::iter::from_fn(|| l.poll_command()).collect();
    assert_eq!(fb.len(), 2);
    assert!(
        fb.iter()
            .all(|c| matches!(c.op, Op::RaiseFence { token: 9, .. }))
    );
    assert_eq!(l.phase(), Phase::WritingBack);
    l.handle_reply(T0 + ms(2), fb[0].request, Reply::FenceRaised);
    assert!(events(&mut l).is_empty());
    l.handle_reply(T0 + ms(2), fb[1].request, Reply::FenceRaised);
    assert!(matches!(
        events(&mut l)[..],
        [Event::Acquired { token: 9, .. }]
    ));
    // slot 1 answers late with a grant of the same round: it joins the lease, no cleanup
    l.handle_reply(T0 + ms(3), c[1].1, Reply::Granted { token: 4 });
    assert_eq!(l.held_slots().len(), 3);
    assert!(l.poll_command().is_none());
}

/// Per-slot counters differ across majorities. Without writing the chosen token back to a
/// majority, holder C (slots 0,1) would get a token below holder B's (slots 1,2).
#[test]
fn tokens_increase_across_different_majorities() {
    use leasehold_core::testkit::ModelServer;
    let mut servers: Vec<ModelServer> = (0..3).map(|_| ModelServer::default()).collect();
    let mk = |seed| {
        Lock::new(
            config(SlotLayout::Instances { n: 3 }),
            LockName::new("m").unwrap(),
            HolderId::new(format!("h{seed}")).unwrap(),
            seed,
        )
        .unwrap()
    };
    // drive one client: execute its commands on `reach` slots (others stay unanswered)
    fn run_round(
        l: &mut Lock,
        c: usize,
        servers: &mut [ModelServer],
        now: Instant,
        reach: &[usize],
    ) -> Vec<Event> {
        let mut out = Vec::new();
        for _ in 0..4 {
            let cmds: Vec<_> = std::iter::from_fn(|| l.poll_command()).collect();
            for cmd in cmds {
                if reach.contains(&cmd.slot) {
                    let r = servers[cmd.slot].exec(now, c, cmd.op);
                    l.handle_reply(now, cmd.request, r);
                }
            }
            out.extend(std::iter::from_fn(|| l.poll_event()));
        }
        out
    }
    let token = |ev: &[Event]| {
        ev.iter().find_map(|e| match e {
            Event::Acquired { token, .. } => Some(*token),
            _ => None,
        })
    };
    let t = Instant::from_millis(1_000);
    let (mut a, mut b, mut c) = (mk(1), mk(2), mk(3));
    a.acquire(t, AcquireMode::Try).unwrap();
    let ta = token(&run_round(&mut a, 0, &mut servers, t, &[0, 1])).unwrap();
    a.release(t).unwrap();
    let _ = run_round(&mut a, 0, &mut servers, t, &[0, 1]);
    // slot 2 is first touched 100 ms later, so its counter is seeded from a later TIME
    let t = t + ms(100);
    b.acquire(t, AcquireMode::Try).unwrap();
    let tb = token(&run_round(&mut b, 1, &mut servers, t, &[1, 2])).unwrap();
    b.release(t).unwrap();
    let _ = run_round(&mut b, 1, &mut servers, t, &[1, 2]);
    c.acquire(t, AcquireMode::Try).unwrap();
    let tc = token(&run_round(&mut c, 2, &mut servers, t, &[0, 1])).unwrap();
    assert!(
        ta < tb && tb < tc,
        "tokens {ta} {tb} {tc} must strictly increase"
    );
}

/// Three instances: one answers Held, one grants, one stays silent. One Held answer does not rule
/// out a quorum of two (the silent slot could still grant), so the round failed for want of a
/// reply: `SlowReplies` naming slot 2, never `Contended`. Reporting `Contended` here is the
/// misreport leasehold exists to prevent.
#[test]
fn one_held_one_granted_one_silent_of_three_is_slow_replies_not_contention() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:acquire", "1:acquire", "2:acquire"]);
    l.handle_reply(T0 + ms(1), c[0].1, held(Some("other"), Some(ms(900))));
    l.handle_reply(T0 + ms(2), c[1].1, Reply::Granted { token: 5 });
    assert!(events(&mut l).is_empty(), "a quorum is still possible");
    assert_eq!(l.phase(), Phase::Acquiring);
    l.handle_timeout(T0 + ms(20));
    match &events(&mut l)[..] {
        [
            Event::AcquireFailed(AcquireError::SlowReplies {
                slots,
                waited,
                observed: None,
                suggested: None,
            }),
        ] => {
            assert_eq!(slots.iter().collect::<Vec<_>>(), [2]);
            assert_eq!(*waited, ms(20));
        }
        other => panic!("expected SlowReplies from slot 2, got {other:?}"),
    }
    // our grant on slot 1 is released; the silent slot 2 gets a cleanup too
    let cleanup = names(&sent(&mut l)).join(" ");
    assert!(cleanup.contains("1:release"), "{cleanup}");
}

/// Two Held answers of three rule out a quorum at once, whatever the third says: `Contended`.
#[test]
fn two_held_of_three_is_contention_without_waiting_for_the_third() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    for (i, at) in [(0, 1), (2, 2)] {
        l.handle_reply(T0 + ms(at), c[i].1, held(Some("other"), None));
    }
    assert_eq!(
        events(&mut l),
        [Event::AcquireFailed(AcquireError::Contended {
            holder: Some("other".into()),
            remaining: None
        })]
    );
}

/// One Held, one grant and one error of three: the error, not the holder, ruled out the quorum —
/// `QuorumUnreachable` naming the error, not `Contended`.
#[test]
fn one_held_one_error_is_not_contention() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, held(None, None));
    l.handle_reply(T0 + ms(2), c[2].1, Reply::Granted { token: 9 });
    l.handle_reply(T0 + ms(3), c[1].1, server_error("boom"));
    match &events(&mut l)[..] {
        [
            Event::AcquireFailed(AcquireError::QuorumUnreachable {
                granted: 1,
                quorum: 2,
                errors,
            }),
        ] => assert_eq!(errors.len(), 1),
        other => panic!("expected QuorumUnreachable, got {other:?}"),
    }
}

/// The write-back gives up as soon as a quorum of acknowledgements is impossible (one fence
/// error of a quorum's worth of fences), and not before: acknowledgements short of a quorum
/// keep it going.
#[test]
fn a_write_back_fails_once_a_quorum_of_acknowledgements_is_impossible() {
    let mut l = lock(SlotLayout::Instances { n: 5 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    // different tokens: only a write-back makes the counters agree (equal ones need none:
    // `grants_that_agree_on_the_token_need_no_write_back`)
    for (i, (_, id)) in c[..3].iter().enumerate() {
        l.handle_reply(
            T0 + ms(1),
            *id,
            Reply::Granted {
                token: 10 + i as u64,
            },
        );
    }
    let fences = sent(&mut l);
    assert_eq!(
        names(&fences),
        ["0:raise_fence", "1:raise_fence", "2:raise_fence"]
    );
    l.handle_reply(T0 + ms(2), fences[0].1, Reply::FenceRaised);
    assert!(events(&mut l).is_empty(), "one of three acknowledged");
    assert_eq!(l.phase(), Phase::WritingBack);
    l.handle_reply(T0 + ms(3), fences[1].1, server_error("boom"));
    match &events(&mut l)[..] {
        [
            Event::AcquireFailed(AcquireError::QuorumUnreachable {
                granted: 1,
                quorum: 3,
                ..
            }),
        ] => {}
        other => panic!("expected QuorumUnreachable at once, got {other:?}"),
    }
}

/// Grants that all carry one token (a batch on one instance, `wire::ACQUIRE_BATCH`) leave every
/// granted slot's counter at the lease's token already: the lease is reported at once, with no
/// write-back round. One differing grant brings the write-back back.
#[test]
fn grants_that_agree_on_the_token_need_no_write_back() {
    let mut l = lock(SlotLayout::KeyMajority { k: 2 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:acquire", "1:acquire", "2:acquire"]);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 77 });
    assert!(events(&mut l).is_empty(), "one grant of a quorum of two");
    l.handle_reply(T0 + ms(1), c[1].1, Reply::Granted { token: 77 });
    assert!(matches!(
        events(&mut l)[..],
        [Event::Acquired { token: 77, .. }]
    ));
    assert!(sent(&mut l).is_empty(), "no write-back");
    assert_eq!(l.phase(), Phase::Held);
    // the third slot's grant joins the lease
    l.handle_reply(T0 + ms(2), c[2].1, Reply::Granted { token: 77 });
    assert_eq!(l.held_slots().len(), 3);

    // the control: the same round with one token apart is written back first
    let mut l = lock(SlotLayout::KeyMajority { k: 2 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 77 });
    l.handle_reply(T0 + ms(1), c[1].1, Reply::Granted { token: 78 });
    assert!(events(&mut l).is_empty(), "no lease before the write-back");
    assert_eq!(names(&sent(&mut l)), ["0:raise_fence", "1:raise_fence"]);
    assert_eq!(l.phase(), Phase::WritingBack);
}
