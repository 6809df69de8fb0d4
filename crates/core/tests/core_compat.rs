#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! The rueidislock dialect in the core: what the machine sends (keys, absolute expiries, no
//! fence write-back), what it reports (no fencing token), and how the reference model executes
//! the dialect's scripts (absolute expiry on the server's clock, nil for a resent acquire).

use std::time::Duration;

use leasehold_core::testkit::ModelServer;
use leasehold_core::wire::compat;
use leasehold_core::{
    AcquireMode, ConfigError, Dialect, Event, HolderId, Instant, LeaseValue, Lock, LockConfig,
    LockName, LostReason, Op, Reply, SlotLayout,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(k: u8) -> LockConfig {
    LockConfig {
        prefix: compat::DEFAULT_PREFIX.into(),
        layout: SlotLayout::KeyMajority { k },
        dialect: Dialect::Rueidislock,
        ttl: ms(5_000),
        extend_interval: Some(ms(1_000)),
        slot_wait: ms(20),
        ..LockConfig::default()
    }
}

fn lock(k: u8) -> Lock {
    Lock::new(
        config(k),
        LockName::new("jobs").unwrap(),
        HolderId::new("me").unwrap(),
        3,
    )
    .unwrap()
}

fn drain(l: &mut Lock) -> Vec<leasehold_core::Command> {
    std::iter::from_fn(|| l.poll_command()).collect()
}

const T0: Instant = Instant::from_millis(10_000);
/// The client's wall clock at `T0`, Unix ms.
const WALL0: u64 = 1_700_000_000_000;

#[test]
fn the_dialect_needs_key_majority() {
    for layout in [SlotLayout::Single, SlotLayout::Instances { n: 3 }] {
        let cfg = LockConfig {
            layout,
            ..config(1)
        };
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::InvalidLayout { problem, .. }) if problem.contains("rueidislock")
        ));
    }
    assert!(config(1).validate().is_ok());
    assert!(config(8).validate().is_ok());
    assert!(config(9).validate().is_err(), "17 keys is above MAX_SLOTS");
}

#[test]
fn keys_values_and_absolute_expiry_are_rueidislocks() {
    let mut l = lock(2);
    assert_eq!(l.keys().len(), 3);
    for i in 0..3 {
        assert_eq!(l.keys().lock_key(i), format!("rueidislock:{i}:jobs"));
        assert_eq!(l.keys().fence_key(i), "");
    }
    l.set_wall_clock(T0.saturating_sub(ms(500)), WALL0 - 500);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = drain(&mut l);
    assert_eq!(c.len(), 3);
    let value = match c[0].op {
        Op::CompatAcquire {
            value,
            expire_at_ms,
            force: false,
        } => {
            assert_eq!(
                expire_at_ms,
                WALL0 + 5_000,
                "PXAT = wall clock at sending + ttl"
            );
            value
        }
        other => panic!("expected a compat acquire, got {other:?}"),
    };
    let first = c[0].op;
    assert!(
        c.iter().all(|x| x.op == first),
        "one value, one expiry per attempt"
    );
    let mut v = String::new();
    l.write_value(value, &mut v);
    assert_eq!(v.len(), 16, "a random value per attempt, no holder: {v}");
    assert!(!v.contains("me"));
    assert_eq!(
        c[0].op.script().map(|s| s.source),
        Some(compat::ACQUIRE.source)
    );

    // two of three keys: acquired at once, no fence write-back, no token
    l.handle_reply(T0 + ms(1), c[0].request, Reply::GrantedUnfenced);
    assert!(drain(&mut l).is_empty());
    l.handle_reply(T0 + ms(2), c[1].request, Reply::GrantedUnfenced);
    assert!(drain(&mut l).is_empty(), "no RaiseFence in this dialect");
    assert!(matches!(
        l.poll_event(),
        Some(Event::Acquired { token: 0, .. })
    ));
    assert_eq!(l.fencing_token(), None);
    assert_eq!(l.token(), Some(0));
    // the third grant joins the lease
    l.handle_reply(T0 + ms(3), c[2].request, Reply::GrantedUnfenced);
    assert_eq!(l.held_slots().len(), 3);

    // extension: PEXPIREAT from the wall clock at sending (re-read by the caller)
    l.set_wall_clock(T0 + ms(900), WALL0 + 950);
    l.handle_timeout(T0 + ms(1_000));
    let c = drain(&mut l);
    assert_eq!(c.len(), 3);
    assert!(c.iter().all(|c| matches!(
        c.op,
        Op::CompatExtend { expire_at_ms, value: v2 } if expire_at_ms == WALL0 + 1_050 + 5_000 && v2 == value
    )));
    for cmd in &c {
        l.handle_reply(T0 + ms(1_001), cmd.request, Reply::Extended);
    }
    assert!(matches!(l.poll_event(), Some(Event::Extended { .. })));

    // a push: a read-only check of the dialect
    l.handle_key_changed(T0 + ms(1_100), 1);
    let c = drain(&mut l);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].op, Op::CompatCheck { value });
    // extend's 0 says "not ours" without saying why: the slot leaves the lease
    l.handle_reply(
        T0 + ms(1_101),
        c[0].request,
        Reply::Missing {
            fence_present: true,
        },
    );
    assert_eq!(l.held_slots().len(), 2);

    // release: compare-and-delete on the held keys
    l.release(T0 + ms(1_200)).unwrap();
    let c = drain(&mut l);
    assert_eq!(c.len(), 2);
    assert!(c.iter().all(|c| c.op == Op::Release { value }));
}

#[test]
fn without_a_wall_clock_the_machine_clock_is_the_wall_clock() {
    let mut l = lock(1);
    l.acquire(T0, AcquireMode::Force).unwrap();
    let c = drain(&mut l);
    assert!(matches!(
        c[0].op,
        Op::CompatAcquire {
            expire_at_ms: 15_000,
            force: true,
            ..
        }
    ));
    assert_eq!(
        c[0].op.script().map(|s| s.source),
        Some(compat::FORCE.source)
    );
}

#[test]
fn losing_a_majority_of_keys_reports_deleted() {
    let mut l = lock(1);
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = drain(&mut l);
    l.handle_reply(T0 + ms(1), c[0].request, Reply::GrantedUnfenced);
    let _ = l.poll_event();
    l.handle_timeout(T0 + ms(1_000));
    let c = drain(&mut l);
    l.handle_reply(
        T0 + ms(1_001),
        c[0].request,
        Reply::Missing {
            fence_present: true,
        },
    );
    assert_eq!(
        l.poll_event(),
        Some(Event::Lost {
            token: 0,
            reason: LostReason::Deleted
        })
    );
}

const V1: LeaseValue = LeaseValue { nonce: 1 };
const V2: LeaseValue = LeaseValue { nonce: 2 };

#[test]
fn the_model_executes_the_dialect_like_its_scripts() {
    let mut s = ModelServer::default();
    let now = Instant::from_millis(1_000);
    let acq = |value, at| Op::CompatAcquire {
        value,
        expire_at_ms: at,
        force: false,
    };
    // an expiry already past: granted, and no key is left
    assert_eq!(s.exec(now, 0, acq(V1, 900)), Reply::GrantedUnfenced);
    assert!(s.stored().is_none());
    assert_eq!(s.exec(now, 0, acq(V1, 6_000)), Reply::GrantedUnfenced);
    // a resent acquire finds its own value: nil, as rueidislock's SET NX
    let held = Reply::Held {
        holder: None,
        remaining: None,
    };
    assert_eq!(s.exec(now, 0, acq(V1, 6_000)), held);
    assert_eq!(s.exec(now, 1, acq(V2, 6_000)), held);
    // the key lives until the absolute instant, whatever the ttl was meant to be
    assert_eq!(
        s.stored().map(|(_, e)| e),
        Some(Instant::from_millis(6_000))
    );
    let ext = |value, at| Op::CompatExtend {
        value,
        expire_at_ms: at,
    };
    let zero = Reply::Missing {
        fence_present: true,
    };
    assert_eq!(s.exec(now, 1, ext(V2, 9_000)), zero);
    assert_eq!(s.exec(now, 0, ext(V1, 9_000)), Reply::Extended);
    assert_eq!(
        s.exec(now, 1, Op::CompatCheck { value: V2 }),
        Reply::NotOwner {
            holder: Some("c0".into())
        }
    );
    assert_eq!(
        s.exec(now, 0, Op::CompatCheck { value: V1 }),
        Reply::StillHeld
    );
    assert!(!s.expire(Instant::from_millis(8_999)));
    assert!(s.expire(Instant::from_millis(9_000)));
    assert_eq!(
        s.exec(Instant::from_millis(9_000), 0, ext(V1, 20_000)),
        zero
    );
    // force overwrites; PEXPIREAT in the past deletes and still answers 1
    let now = Instant::from_millis(10_000);
    assert_eq!(s.exec(now, 1, acq(V2, 12_000)), Reply::GrantedUnfenced);
    assert_eq!(
        s.exec(
            now,
            0,
            Op::CompatAcquire {
                value: V1,
                expire_at_ms: 12_000,
                force: true
            }
        ),
        Reply::GrantedUnfenced
    );
    assert_eq!(s.exec(now, 0, ext(V1, 5_000)), Reply::Extended);
    assert!(s.stored().is_none());
    assert_eq!(s.fence(), None, "the dialect never writes a fence counter");
}

#[test]
fn the_rueidislock_dialect_refuses_replication_acknowledgements() {
    let mut c = config(2);
    c.replication = Some(leasehold_core::Replication {
        replicas: 1,
        timeout: std::time::Duration::from_millis(50),
    });
    let e = c.validate().unwrap_err();
    assert!(
        matches!(
            e,
            leasehold_core::ConfigError::InvalidReplicas { replicas: 1, .. }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("rueidislock"), "{e}");
}

#[test]
fn rueidislock_keys_parse_only_with_a_slot_and_a_name() {
    use leasehold_core::wire::compat::parse_key;
    assert_eq!(parse_key("rl", "rl:1:jobs"), Some(("jobs", 1)));
    assert_eq!(parse_key("rl", "rl:12:a:b"), Some(("a:b", 12)));
    // "+1" parses as a usize: only the digit check refuses it
    for bad in [
        "rl:+1:jobs",
        "rl:1:",
        "rl::jobs",
        "rl:x:jobs",
        "rl:1",
        "other:1:jobs",
        "rl:-1:jobs",
    ] {
        assert_eq!(parse_key("rl", bad), None, "{bad}");
    }
}

#[test]
fn what_the_dialect_gives_up_is_described_each_in_its_own_words() {
    use leasehold_core::wire::compat::{GIVEN_UP, GivenUp};
    let all: Vec<&str> = GIVEN_UP.iter().map(|g| g.describe()).collect();
    let mut unique = all.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), GIVEN_UP.len(), "{all:?}");
    assert!(GivenUp::FencingToken.describe().contains("fencing token"));
    assert!(GivenUp::ClientClockExpiry.describe().contains("PXAT"));
}
