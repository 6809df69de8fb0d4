//! The fence-token rule as the reference model executes it (`tests/tests/redis_fence.rs` runs the
//! same cases as Lua on a real redis-server): tokens never go backwards after a counter is lost,
//! lowered, reset or expired, or after an operator's force-release, and force-release evicts only
//! the value the operator saw.

use leasehold_core::testkit::ModelServer;
use leasehold_core::{ForceOutcome, Instant, LeaseValue, Op, Reply};

const KEEP_MS: u64 = 1_000;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn acquire(m: &mut ModelServer, now: Instant, client: usize, nonce: u64) -> u64 {
    let op = Op::Acquire {
        value: LeaseValue { nonce },
        ttl_ms: 500,
        force: false,
        keep_ms: KEEP_MS,
    };
    match m.exec(now, client, op) {
        Reply::Granted { token } => token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn release(m: &mut ModelServer, now: Instant, client: usize, nonce: u64) {
    let r = m.exec(
        now,
        client,
        Op::Release {
            value: LeaseValue { nonce },
        },
    );
    assert_eq!(r, Reply::Released { deleted: true });
}

/// Issue 9's token regression, at the model: after a restart without persistence the operator
/// force-releases a lock whose counter is gone. The old model created the counter at 1 there, so
/// the next acquire got token 2, below every earlier token.
#[test]
fn a_force_release_after_a_lost_counter_never_sends_tokens_backwards() {
    let mut m = ModelServer::default();
    let before = acquire(&mut m, at(5_000), 0, 1);
    assert_eq!(
        before, 5_000_000,
        "the first token is the server's TIME in µs"
    );
    let mut m = ModelServer::default(); // restart without persistence
    let r = m.exec(
        at(5_200),
        0,
        Op::ForceRelease {
            value: LeaseValue { nonce: 1 },
            keep_ms: KEEP_MS,
        },
    );
    assert_eq!(r, Reply::ForceReleased(ForceOutcome::Gone));
    assert_eq!(
        m.fence(),
        None,
        "a force-release of nothing creates nothing"
    );
    let after = acquire(&mut m, at(5_300), 1, 2);
    assert!(after > before, "token {after} after {before}");
}

#[test]
fn tokens_increase_across_lowered_reset_and_expired_counters() {
    // several grants in one microsecond still strictly increase
    let mut m = ModelServer::default();
    let a = acquire(&mut m, at(1_000), 0, 1);
    release(&mut m, at(1_000), 0, 1);
    let b = acquire(&mut m, at(1_000), 1, 2);
    assert_eq!(b, a + 1);
    release(&mut m, at(1_000), 1, 2);
    // a counter reset by hand to zero
    let mut reset = ModelServer::with_fence(Some(0));
    let c = acquire(&mut reset, at(2_000), 0, 3);
    assert!(c > b);
    // an expired counter (ttl 500 ms + retention 1 s): re-created from TIME
    let d = acquire(&mut m, at(1_100), 0, 4);
    release(&mut m, at(1_200), 0, 4);
    assert!(m.stored_fence().is_some());
    let e = acquire(&mut m, at(3_000), 1, 5);
    assert!(
        e > d,
        "a re-created counter starts above old tokens: {e} after {d}"
    );
    assert_eq!(e, 3_000_000);
}

#[test]
fn counters_expire_after_ttl_plus_retention_and_extensions_renew_them() {
    let mut m = ModelServer::default();
    acquire(&mut m, at(1_000), 0, 1);
    let (_, exp) = m.stored_fence().unwrap();
    assert_eq!(exp, at(1_000 + 500 + KEEP_MS));
    let r = m.exec(
        at(1_300),
        0,
        Op::Extend {
            value: LeaseValue { nonce: 1 },
            ttl_ms: 500,
            keep_ms: KEEP_MS,
        },
    );
    assert_eq!(r, Reply::Extended);
    assert_eq!(m.stored_fence().unwrap().1, at(1_300 + 500 + KEEP_MS));
    release(&mut m, at(1_400), 0, 1);
    // after the retention the counter is gone: an extend of a missing key says so
    let r = m.exec(
        at(1_300 + 500 + KEEP_MS),
        0,
        Op::Check {
            value: LeaseValue { nonce: 1 },
        },
    );
    assert_eq!(
        r,
        Reply::Missing {
            fence_present: false
        }
    );
}

#[test]
fn force_release_evicts_only_the_value_seen_and_advances_the_fence() {
    let mut m = ModelServer::default();
    let held = acquire(&mut m, at(1_000), 0, 7);
    // the operator saw another holder's value: nothing changes
    let r = m.exec(
        at(1_010),
        1,
        Op::ForceRelease {
            value: LeaseValue { nonce: 7 },
            keep_ms: KEEP_MS,
        },
    );
    assert_eq!(
        r,
        Reply::ForceReleased(ForceOutcome::Changed {
            holder: Some("c0".into())
        })
    );
    assert!(m.stored().is_some());
    // the value seen: deleted, counter advanced above the evicted token
    let r = m.exec(
        at(1_020),
        0,
        Op::ForceRelease {
            value: LeaseValue { nonce: 7 },
            keep_ms: KEEP_MS,
        },
    );
    let Reply::ForceReleased(ForceOutcome::Deleted { token }) = r else {
        panic!("expected a deletion, got {r:?}");
    };
    assert!(token > held);
    assert!(m.stored().is_none());
    let next = acquire(&mut m, at(1_020), 1, 8);
    assert!(next > token);
}

#[test]
fn the_planted_counter_without_time_floor_does_go_backwards() {
    // the negative control the simulator plants (PlantedBug::CounterFromZero) really is broken
    let mut m = ModelServer::default();
    let before = acquire(&mut m, at(5_000), 0, 1);
    let mut m = ModelServer::with_fence(Some(0)).without_time_floor();
    let after = acquire(&mut m, at(5_300), 1, 2);
    assert!(after < before);
}
