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
