//! The classification judge the proptest runner and the simulator use
//! (`leasehold_core::testkit::classify`): it must reject each misreport, or the invariant it
//! backs says nothing.

use std::time::Duration;

use leasehold_core::testkit::classify::RoundLog;
use leasehold_core::{
    AcquireError, Command, LeaseValue, Op, Phase, Reply, RequestId, SlotError, SlotErrorKind,
    SlotSet,
};

fn acquire(slot: usize, id: u64, nonce: u64) -> Command {
    Command {
        slot,
        request: RequestId(id),
        op: Op::Acquire {
            value: LeaseValue { nonce },
            ttl_ms: 3_000,
            force: false,
            keep_ms: 60_000,
        },
    }
}

fn fence(slot: usize, id: u64) -> Command {
    Command {
        slot,
        request: RequestId(id),
        op: Op::RaiseFence {
            token: 5,
            keep_ms: 60_000,
        },
    }
}

fn held() -> Reply {
    Reply::Held {
        holder: None,
        remaining: None,
    }
}

fn error() -> Reply {
    Reply::Error(SlotError::new(SlotErrorKind::Server, "ERR"))
}

fn contended() -> AcquireError {
    AcquireError::Contended {
        holder: None,
        remaining: None,
    }
}

fn slow(slots: &[usize]) -> AcquireError {
    let mut s = SlotSet::EMPTY;
    for i in slots {
        s.insert(*i);
    }
    AcquireError::SlowReplies {
        slots: s,
        waited: Duration::from_millis(20),
        observed: None,
        suggested: None,
    }
}

fn unreachable() -> AcquireError {
    AcquireError::QuorumUnreachable {
        granted: 0,
        quorum: 2,
        errors: Vec::new(),
    }
}

fn deadline(cause: Option<AcquireError>) -> AcquireError {
    AcquireError::DeadlineExceeded {
        waited: Duration::from_millis(100),
        attempts: 1,
        last_cause: cause.map(Box::new),
    }
}

/// A three-slot round (quorum 2) that got `replies` (slot, reply) while acquiring.
fn round(replies: &[(usize, Reply)]) -> RoundLog {
    let mut log = RoundLog::new(3, 2);
    for slot in 0..3 {
        log.sent(&acquire(slot, slot as u64 + 1, 42));
    }
    for (slot, reply) in replies {
        log.delivered_in(Phase::Acquiring, RequestId(*slot as u64 + 1), reply);
    }
    log
}

#[test]
fn one_held_one_silent_one_granted_is_slow_replies_from_the_silent_slot() {
    let log = round(&[(0, held()), (1, Reply::Granted { token: 1 })]);
    assert!(log.judge(&slow(&[2])).is_ok());
    assert!(
        log.judge(&contended()).is_err(),
        "one Held of three is not contention"
    );
    assert!(log.judge(&slow(&[1, 2])).is_err(), "slot 1 answered");
    assert!(log.judge(&slow(&[])).is_err(), "no slot named");
    assert!(log.judge(&unreachable()).is_err(), "no slot failed");
    assert!(log.judge(&deadline(Some(slow(&[2])))).is_ok());
    assert!(log.judge(&deadline(Some(contended()))).is_err());
    assert!(
        log.judge(&deadline(None)).is_err(),
        "a round ran: its cause"
    );
}

#[test]
fn more_held_than_the_quorum_allows_must_be_contended() {
    let log = round(&[(0, held()), (2, held())]);
    assert!(log.judge(&contended()).is_ok());
    assert!(log.judge(&slow(&[1])).is_err());
    assert!(log.judge(&unreachable()).is_err());
}

#[test]
fn errors_and_cut_connections_make_quorum_unreachable() {
    let log = round(&[(0, held()), (1, error())]);
    assert!(log.judge(&unreachable()).is_ok());
    assert!(log.judge(&contended()).is_err());
    let mut log = round(&[(0, Reply::Granted { token: 1 })]);
    log.cut(Phase::Acquiring, 1);
    log.cut(Phase::Acquiring, 2);
    assert!(log.judge(&unreachable()).is_ok());
    // a cut slot may also have counted as silent (the round timed out before the drop)
    assert!(log.judge(&slow(&[1, 2])).is_ok());
    assert!(log.judge(&slow(&[0, 1, 2])).is_err());
}

#[test]
fn replies_outside_the_open_round_do_not_count() {
    let mut log = round(&[(0, held())]);
    // arrives after the round ended (the machine backs off): not part of the judged round
    log.delivered_in(Phase::Backoff, RequestId(3), &held());
    assert!(log.judge(&contended()).is_err());
    // a duplicate of slot 0's reply does not overwrite it
    log.delivered_in(Phase::Acquiring, RequestId(1), &Reply::Granted { token: 2 });
    assert!(log.judge(&slow(&[1, 2])).is_ok());
}

#[test]
fn a_failed_write_back_names_the_silent_fences_and_is_never_contention() {
    let mut log = round(&[
        (0, Reply::Granted { token: 1 }),
        (1, Reply::Granted { token: 2 }),
    ]);
    log.sent(&fence(0, 10));
    log.sent(&fence(1, 11));
    log.delivered_in(Phase::WritingBack, RequestId(10), &Reply::FenceRaised);
    assert!(log.judge(&slow(&[1])).is_ok());
    assert!(
        log.judge(&slow(&[2])).is_err(),
        "slot 2 was never asked to raise"
    );
    assert!(log.judge(&contended()).is_err());
    log.delivered_in(Phase::WritingBack, RequestId(11), &error());
    assert!(log.judge(&unreachable()).is_ok());
    // a new round starts afresh
    log.sent(&acquire(0, 20, 43));
    assert!(log.judge(&slow(&[0, 1, 2])).is_ok());
}

#[test]
fn a_drop_while_backing_off_cuts_the_round_the_machine_starts_while_handling_it() {
    // the machine's timers fire first inside handle_disconnected: a new round starts and its
    // request to the dropped slot fails at once, before the driver has seen the round
    let mut log = RoundLog::new(1, 1);
    log.cut(Phase::Backoff, 0);
    log.sent(&acquire(0, 1, 7));
    log.settled();
    assert!(log.judge(&unreachable()).is_ok());
    assert!(
        log.judge(&slow(&[0])).is_ok(),
        "or the round timed out first"
    );
    // once settled, a later round sees the drop only through its replies
    let mut later = RoundLog::new(1, 1);
    later.cut(Phase::Backoff, 0);
    later.settled();
    later.sent(&acquire(0, 2, 8));
    assert!(later.judge(&unreachable()).is_err());
    // a drop after the round ended does not touch it
    let mut over = round(&[(0, held())]);
    over.cut(Phase::Backoff, 1);
    assert!(over.judge(&unreachable()).is_err());
}

#[test]
fn a_duplicate_never_overwrites_the_first_reply() {
    let mut log = round(&[(0, held()), (1, held())]);
    log.delivered_in(Phase::Acquiring, RequestId(1), &Reply::Granted { token: 3 });
    log.delivered_in(Phase::Acquiring, RequestId(2), &error());
    assert!(log.judge(&contended()).is_ok(), "still two Held of three");
    // an unknown request is ignored
    log.delivered_in(Phase::Acquiring, RequestId(99), &held());
    assert!(log.judge(&slow(&[2])).is_err());
}

#[test]
fn a_drop_during_the_write_back_counts_only_for_a_slot_asked_to_raise() {
    let mut log = round(&[
        (0, Reply::Granted { token: 1 }),
        (1, Reply::Granted { token: 2 }),
    ]);
    log.sent(&fence(0, 10));
    log.sent(&fence(1, 11));
    log.delivered_in(Phase::WritingBack, RequestId(10), &Reply::FenceRaised);
    log.cut(Phase::WritingBack, 2);
    assert!(
        log.judge(&unreachable()).is_err(),
        "slot 2 was never asked to raise"
    );
    log.cut(Phase::WritingBack, 1);
    assert!(log.judge(&unreachable()).is_ok());
    assert!(
        log.judge(&slow(&[1])).is_ok(),
        "or the write-back timed out first"
    );
}

#[test]
fn a_reply_after_the_round_s_wait_is_over_does_not_count() {
    use leasehold_core::{AcquireMode, HolderId, Instant, Lock, LockConfig, LockName, SlotLayout};
    let cfg = LockConfig {
        layout: SlotLayout::Instances { n: 3 },
        slot_wait: Duration::from_millis(20),
        ..LockConfig::default()
    };
    let mut lock = Lock::new(
        cfg,
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        1,
    )
    .unwrap();
    let t0 = Instant::from_millis(10_000);
    lock.acquire(t0, AcquireMode::Try).unwrap();
    let mut log = RoundLog::new(3, lock.quorum());
    let cmds: Vec<Command> = std::iter::from_fn(|| lock.poll_command()).collect();
    for c in &cmds {
        log.sent(c);
    }
    let early = t0 + Duration::from_millis(1);
    log.delivered(&lock, early, cmds[0].request, &held());
    lock.handle_reply(early, cmds[0].request, held());
    // slot 1's Held arrives after the round's wait: the machine times out first
    let late = t0 + Duration::from_millis(25);
    log.delivered(&lock, late, cmds[1].request, &held());
    lock.handle_reply(late, cmds[1].request, held());
    let err = std::iter::from_fn(|| lock.poll_event())
        .find_map(|e| match e {
            leasehold_core::Event::AcquireFailed(err) => Some(err),
            _ => None,
        })
        .unwrap();
    assert!(matches!(err, AcquireError::SlowReplies { .. }), "{err:?}");
    assert!(log.judge(&err).is_ok(), "{:?}", log.judge(&err));
    assert!(log.judge(&contended()).is_err());
}
