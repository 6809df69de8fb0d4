//! The testkit's own records, read as their users (the simulator and the model checker) read
//! them. Written for mutation testing (see ARCHITECTURE.md, "Mutation testing").

use leasehold_core::testkit::issue::IssueLog;

/// `clear` starts a new acquisition: neither the grants nor the write-backs recorded before it
/// count towards the next lease's span.
#[test]
fn a_cleared_issue_log_forgets_earlier_grants_and_write_backs() {
    let mut log = IssueLog::default();
    log.grant(3, 10);
    log.write_back(30);
    log.clear();
    assert_eq!(log.take_span(Some(3), 99), (99, 99), "grants forgotten");
    log.write_back(30);
    log.clear();
    log.grant(3, 20);
    assert_eq!(
        log.take_span(Some(3), 99),
        (20, 20),
        "write-backs forgotten"
    );
    assert_eq!(log, IssueLog::default(), "taken");
}

/// A lease's span is its own round's grants and the write-backs from its first grant on: a grant
/// of another round executed later (a slow server running an older round's request) is not part
/// of it, and neither is a write-back before the winning round's first grant.
#[test]
fn a_lease_s_span_leaves_out_other_rounds_grants_whenever_they_ran() {
    let mut log = IssueLog::default();
    log.write_back(5);
    log.grant(2, 10);
    log.write_back(15);
    log.grant(2, 40);
    log.grant(1, 50);
    assert_eq!(log.take_span(Some(2), 99), (10, 40));
    // nothing of the winning round recorded: the span is `now`
    log.grant(1, 50);
    log.write_back(60);
    assert_eq!(log.take_span(Some(2), 99), (99, 99));
}

use std::time::Duration;

use leasehold_core::testkit::{ModelServer, bench_cycle, test_config};
use leasehold_core::wire::{LeaseValue, Op, Reply};
use leasehold_core::{HolderId, Instant, Lock, LockName, SlotLayout};

const V0: LeaseValue = LeaseValue { nonce: 1 };
const V1: LeaseValue = LeaseValue { nonce: 2 };

fn acquire(value: LeaseValue) -> Op {
    Op::Acquire {
        value,
        ttl_ms: 100,
        force: false,
        keep_ms: 0,
    }
}

/// The reference model's own semantics, as the Lua runs them: a seeded counter, expiry on the
/// server clock, owner checks on extend and check, and a raise to 0 that creates nothing.
#[test]
fn the_model_server_keeps_the_scripts_rules() {
    let t0 = Instant::from_millis(0);
    // a seeded counter: the next token follows it (TIME is 0 µs here)
    let mut s = ModelServer::with_fence(Some(41));
    assert_eq!(s.fence(), Some(41));
    assert_eq!(s.exec(t0, 0, acquire(V0)), Reply::Granted { token: 42 });

    // expiry on the server clock: not before the ttl, then once
    assert!(!s.expire(Instant::from_millis(99)));
    assert!(s.stored().is_some());
    assert!(s.expire(Instant::from_millis(100)));
    assert!(
        !s.expire(Instant::from_millis(101)),
        "nothing left to expire"
    );

    // pexpire_any: nothing to extend on an empty server; else any owner's key
    assert!(!s.pexpire_any(Instant::from_millis(101), 50));
    // the counter expired with the key (keep 0): the TIME floor, 200 ms in µs, takes over
    assert_eq!(
        s.exec(Instant::from_millis(200), 0, acquire(V0)),
        Reply::Granted { token: 200_000 }
    );
    assert!(s.pexpire_any(Instant::from_millis(210), 500));
    assert_eq!(s.stored().map(|(_, e)| e), Some(Instant::from_millis(710)));

    // only the owner extends or checks; anyone else is told who holds it
    let t = Instant::from_millis(220);
    let not_owner = Reply::NotOwner {
        holder: Some("c0".into()),
    };
    let extend = |value| Op::Extend {
        value,
        ttl_ms: 1_000,
        keep_ms: 0,
    };
    assert_eq!(s.exec(t, 1, extend(V1)), not_owner);
    assert_eq!(
        s.exec(t, 0, extend(V1)),
        not_owner,
        "same client, other value"
    );
    assert_eq!(
        s.stored().map(|(_, e)| e),
        Some(Instant::from_millis(710)),
        "a refused extension changes nothing"
    );
    assert_eq!(s.exec(t, 1, Op::Check { value: V1 }), not_owner);
    assert_eq!(s.exec(t, 0, Op::Check { value: V0 }), Reply::StillHeld);
    assert_eq!(s.exec(t, 0, extend(V0)), Reply::Extended);

    // raising a missing counter to 0 creates nothing; to 5 creates it
    let mut e = ModelServer::default();
    let raise = |token| Op::RaiseFence {
        token,
        keep_ms: 1_000,
    };
    assert_eq!(e.exec(t0, 0, raise(0)), Reply::FenceRaised);
    assert_eq!(e.fence(), None);
    assert_eq!(e.exec(t0, 0, raise(5)), Reply::FenceRaised);
    assert_eq!(e.fence(), Some(5));
}

/// The runs' configuration has the small timers it documents, and a bench cycle really runs
/// the machine (it sends commands), not just reports success.
#[test]
fn test_config_and_bench_cycle_do_what_they_say() {
    let c = test_config(SlotLayout::Single);
    assert_eq!(c.backoff_max, Duration::from_millis(40));
    assert_eq!(c.backoff_min, Duration::from_millis(2));
    assert!(c.validate().is_ok());
    let mut l = Lock::new(
        c,
        LockName::new("b").unwrap_or_else(|e| panic!("{e}")),
        HolderId::new("h").unwrap_or_else(|e| panic!("{e}")),
        3,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut now = Instant::from_millis(1);
    assert!(bench_cycle(&mut l, &mut now));
    assert_eq!(l.stats().commands, 3, "acquire, extend, release");
    assert_eq!(
        now,
        Instant::from_millis(1) + Duration::from_micros(100) + Duration::from_millis(100)
    );
    // a lock that is already held cannot start a cycle
    l.acquire(now, leasehold_core::AcquireMode::Try)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!bench_cycle(&mut l, &mut now));
}
