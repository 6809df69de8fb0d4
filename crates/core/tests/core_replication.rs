#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Replication-acknowledged writes (`LockConfig::replication`): the exact commands and events
//! around the `WAIT` the machine sends behind each grant, extension and fence write-back.

use std::time::Duration;

use leasehold_core::testkit::classify::RoundLog;
use leasehold_core::{
    AcquireError, AcquireMode, Event, HolderId, Instant, Lock, LockConfig, LockName, Op, Phase,
    Replication, Reply, RequestId, SlotError, SlotErrorKind, SlotLayout,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const T0: Instant = Instant::from_millis(10_000);

fn config(layout: SlotLayout, replication: Option<Replication>) -> LockConfig {
    LockConfig {
        layout,
        ttl: ms(3_000),
        extend_interval: Some(ms(1_000)),
        slot_wait: ms(20),
        replication,
        ..LockConfig::default()
    }
}

fn lock(layout: SlotLayout) -> Lock {
    Lock::new(
        config(layout, Some(Replication::new(1, ms(10)))),
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap()
}

/// Drain commands as `slot:op` with their request ids.
fn sent(l: &mut Lock) -> Vec<(String, RequestId, Op)> {
    std::iter::from_fn(|| l.poll_command())
        .map(|c| (format!("{}:{}", c.slot, c.op.name()), c.request, c.op))
        .collect()
}

fn names(v: &[(String, RequestId, Op)]) -> Vec<&str> {
    v.iter().map(|(s, _, _)| s.as_str()).collect()
}

fn events(l: &mut Lock) -> Vec<Event> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

#[test]
fn a_grant_counts_only_once_wait_confirms_it() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:acquire", "0:wait"]);
    assert_eq!(
        c[1].2,
        Op::Wait {
            replicas: 1,
            timeout_ms: 10
        }
    );
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 7 });
    assert!(events(&mut l).is_empty(), "a grant alone is not a lease");
    assert_eq!(l.phase(), Phase::Acquiring);
    l.handle_reply(T0 + ms(2), c[1].1, Reply::Acked(1));
    assert_eq!(
        events(&mut l),
        [Event::Acquired {
            token: 7,
            validity: T0 + ms(2_968),
            sent_at: T0,
            mode: AcquireMode::Try
        }]
    );
}

#[test]
fn an_unconfirmed_grant_is_a_typed_failure_and_its_key_is_released() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 7 });
    l.handle_reply(T0 + ms(11), c[1].1, Reply::Acked(0));
    let ev = events(&mut l);
    let [Event::AcquireFailed(err)] = ev.as_slice() else {
        panic!("expected one failure, got {ev:?}");
    };
    assert!(err.is_not_replicated(), "{err}");
    let AcquireError::QuorumUnreachable { errors, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 0);
    assert_eq!(errors[0].1.kind, SlotErrorKind::NotReplicated);
    assert!(err.to_string().contains("0 of 1 replicas"), "{err}");
    // the key the primary granted is deleted (the cleanup release, then the round's own)
    let c = sent(&mut l);
    assert!(
        !c.is_empty() && c.iter().all(|(n, _, _)| n == "0:release"),
        "{c:?}"
    );
    assert_eq!(l.stats().grants_not_replicated, 1);
    assert_eq!(l.phase(), Phase::Idle);
}

#[test]
fn wait_mode_retries_after_an_unconfirmed_grant_and_reports_the_cause() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(
        T0,
        AcquireMode::Wait {
            deadline: T0 + ms(40),
        },
    )
    .unwrap();
    let mut now = T0;
    let mut rounds = 0;
    while l.phase() != Phase::Idle && rounds < 100 {
        let c = sent(&mut l);
        if let Some(acq) = c.iter().find(|(n, _, _)| n == "0:acquire") {
            rounds += 1;
            let wait = c.iter().find(|(n, _, _)| n == "0:wait").unwrap();
            l.handle_reply(now + ms(1), acq.1, Reply::Granted { token: rounds });
            l.handle_reply(now + ms(2), wait.1, Reply::Acked(0));
            now = now + ms(2);
        }
        if let Some(t) = l.poll_timeout() {
            now = now.max(t);
            l.handle_timeout(now);
        }
    }
    assert!(rounds >= 2, "wait mode must retry, ran {rounds} round(s)");
    let ev = events(&mut l);
    let [Event::AcquireFailed(err)] = ev.as_slice() else {
        panic!("{ev:?}");
    };
    assert!(
        matches!(err, AcquireError::DeadlineExceeded { .. }),
        "{err}"
    );
    assert!(err.is_not_replicated(), "the last cause is kept: {err}");
}

#[test]
fn an_unconfirmed_extension_does_not_move_validity() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 7 });
    l.handle_reply(T0 + ms(2), c[1].1, Reply::Acked(1));
    let _ = events(&mut l);
    let validity = l.validity().unwrap();
    l.handle_timeout(T0 + ms(1_000));
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:extend", "0:wait"]);
    l.handle_reply(T0 + ms(1_001), c[0].1, Reply::Extended);
    l.handle_reply(T0 + ms(1_011), c[1].1, Reply::Acked(0));
    assert!(events(&mut l).is_empty());
    assert_eq!(
        l.validity(),
        Some(validity),
        "an unconfirmed extension counts for nothing"
    );
    assert_eq!(
        l.phase(),
        Phase::Held,
        "the slot stays; the next extension retries"
    );
    // the retry comes at a quarter interval and is confirmed
    let retry = l.poll_timeout().unwrap();
    assert_eq!(retry, T0 + ms(1_011) + ms(250));
    l.handle_timeout(retry);
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:extend", "0:wait"]);
    l.handle_reply(retry + ms(1), c[0].1, Reply::Extended);
    l.handle_reply(retry + ms(2), c[1].1, Reply::Acked(2));
    let ev = events(&mut l);
    assert!(
        matches!(ev.as_slice(), [Event::Extended { validity, .. }] if *validity == retry + ms(2_968)),
        "{ev:?}"
    );
}

#[test]
fn extensions_never_confirmed_lose_the_lease_at_its_validity() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 7 });
    l.handle_reply(T0 + ms(2), c[1].1, Reply::Acked(1));
    let _ = events(&mut l);
    let validity = l.validity().unwrap();
    let mut now = T0 + ms(2);
    while l.phase() == Phase::Held {
        let t = l.poll_timeout().unwrap();
        now = t;
        l.handle_timeout(now);
        for (n, id, _) in sent(&mut l) {
            let reply = match n.as_str() {
                "0:extend" => Reply::Extended,
                "0:wait" => Reply::Acked(0),
                _ => continue,
            };
            l.handle_reply(now + ms(1), id, reply);
        }
    }
    assert_eq!(now, validity, "lost exactly at the validity instant");
    let ev = events(&mut l);
    assert!(
        matches!(ev.as_slice(), [Event::Lost { token: 7, .. }]),
        "{ev:?}"
    );
}

#[test]
fn a_write_cut_before_its_wait_answers_fails_the_slot() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 7 });
    l.handle_disconnected(T0 + ms(2), 0);
    let ev = events(&mut l);
    let [Event::AcquireFailed(AcquireError::QuorumUnreachable { errors, .. })] = ev.as_slice()
    else {
        panic!("{ev:?}");
    };
    assert_eq!(errors[0].1.kind, SlotErrorKind::Disconnected);
    assert!(sent(&mut l).iter().any(|(n, _, _)| n == "0:release"));
}

#[test]
fn a_wait_still_out_when_the_round_ends_is_a_silent_slot() {
    let mut l = lock(SlotLayout::Single);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 7 });
    l.handle_timeout(T0 + ms(20));
    let ev = events(&mut l);
    assert!(
        matches!(ev.as_slice(), [Event::AcquireFailed(AcquireError::SlowReplies { slots, .. })] if slots.contains(0)),
        "{ev:?}"
    );
    let _ = sent(&mut l);
    // the WAIT confirms after the round: a late grant, released
    l.handle_reply(T0 + ms(25), c[1].1, Reply::Acked(1));
    assert!(sent(&mut l).iter().any(|(n, _, _)| n == "0:release"));
    assert_eq!(l.stats().late_grants_cleaned, 1);
}

#[test]
fn write_backs_are_confirmed_and_an_unconfirmed_slot_is_released() {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    assert_eq!(
        names(&c),
        [
            "0:acquire",
            "0:wait",
            "1:acquire",
            "1:wait",
            "2:acquire",
            "2:wait"
        ]
    );
    for (i, t) in [(0, 5), (2, 4), (4, 9)] {
        l.handle_reply(T0 + ms(1), c[i].1, Reply::Granted { token: t });
    }
    l.handle_reply(T0 + ms(2), c[1].1, Reply::Acked(1));
    l.handle_reply(T0 + ms(2), c[3].1, Reply::Acked(1));
    // slot 2's grant (token 9) is not replicated: not counted, released; the token is the max
    // of the confirmed grants
    l.handle_reply(T0 + ms(2), c[5].1, Reply::Acked(0));
    let c = sent(&mut l);
    assert_eq!(
        names(&c),
        [
            "0:raise_fence",
            "0:wait",
            "1:raise_fence",
            "1:wait",
            "2:release"
        ]
    );
    assert!(matches!(c[0].2, Op::RaiseFence { token: 5, .. }));
    l.handle_reply(T0 + ms(3), c[0].1, Reply::FenceRaised);
    l.handle_reply(T0 + ms(3), c[2].1, Reply::FenceRaised);
    assert!(events(&mut l).is_empty(), "write-backs wait for their WAIT");
    l.handle_reply(T0 + ms(4), c[1].1, Reply::Acked(1));
    l.handle_reply(T0 + ms(4), c[3].1, Reply::Acked(1));
    assert!(matches!(
        events(&mut l).as_slice(),
        [Event::Acquired { token: 5, .. }]
    ));
    assert_eq!(l.held_slots().len(), 2);
}

#[test]
fn without_replication_no_wait_is_ever_sent() {
    let mut l = Lock::new(
        config(SlotLayout::Instances { n: 3 }, None),
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap();
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:acquire", "1:acquire", "2:acquire"]);
    // a stray Acked is ignored like any unknown reply
    l.handle_reply(T0, RequestId(999), Reply::Acked(3));
    assert_eq!(l.stats().ignored_replies, 1);
}

#[test]
fn the_round_log_judges_unconfirmed_grants_as_failed_slots() {
    let repl = Some(Replication::new(1, ms(10)));
    let mut l = lock(SlotLayout::Single);
    let mut log = RoundLog::new(1, 1).with_replication(repl);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c: Vec<_> = std::iter::from_fn(|| l.poll_command()).collect();
    for cmd in &c {
        log.sent(cmd);
    }
    for (cmd, reply, at) in [
        (c[0], Reply::Granted { token: 7 }, T0 + ms(1)),
        (c[1], Reply::Acked(0), T0 + ms(11)),
    ] {
        log.delivered(&l, at, cmd.request, &reply);
        l.handle_reply(at, cmd.request, reply);
    }
    let ev = events(&mut l);
    let [Event::AcquireFailed(err)] = ev.as_slice() else {
        panic!("{ev:?}");
    };
    assert_eq!(log.judge(err), Ok(()));
    // a log that ignores WAIT would call this round granted and the classification wrong
    let mut blind = RoundLog::new(1, 1);
    blind.sent(&c[0]);
    blind.delivered_in(Phase::Acquiring, c[0].request, &Reply::Granted { token: 7 });
    assert!(blind.judge(err).is_err());
}

#[test]
fn validation_rejects_a_wait_longer_than_the_round() {
    let e = Lock::new(
        config(SlotLayout::Single, Some(Replication::new(1, ms(20)))),
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap_err();
    assert!(e.to_string().contains("replication.timeout"), "{e}");
    let e = Lock::new(
        config(SlotLayout::Single, Some(Replication::new(0, ms(5)))),
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap_err();
    assert!(e.to_string().contains("replication.replicas"), "{e}");
    let _ = SlotError::new(SlotErrorKind::NotReplicated, "shown");
}

#[test]
fn every_wait_is_counted_as_a_command() {
    let mut l = lock(SlotLayout::KeyMajority { k: 2 });
    let before = l.stats().commands;
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    assert_eq!(
        names(&c),
        [
            "0:acquire",
            "0:wait",
            "1:acquire",
            "1:wait",
            "2:acquire",
            "2:wait"
        ]
    );
    assert_eq!(
        l.stats().commands - before,
        6,
        "three writes and their three WAITs"
    );
}

#[test]
fn replication_bounds_are_checked_at_their_edges() {
    use leasehold_core::replication::MAX_REPLICAS;
    let check =
        |replicas, timeout, slot_wait| Replication { replicas, timeout }.validate(slot_wait);
    assert!(
        check(MAX_REPLICAS, ms(10), ms(20)).is_ok(),
        "the most replicas"
    );
    assert!(check(MAX_REPLICAS + 1, ms(10), ms(20)).is_err());
    assert!(check(0, ms(10), ms(20)).is_err());
    assert!(check(1, ms(1), ms(20)).is_ok(), "the shortest timeout");
    assert!(check(1, Duration::from_micros(999), ms(20)).is_err());
    assert!(
        check(1, Duration::from_micros(1_500), ms(20)).is_err(),
        "whole ms"
    );
    assert!(check(1, ms(19), ms(20)).is_ok());
    assert!(
        check(1, ms(20), ms(20)).is_err(),
        "the timeout must be below slot_wait"
    );
}
