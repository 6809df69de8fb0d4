//! The outcome types on their own (`outcome.rs`): `SlotSet`'s bit mask at its edges (slot 15 is
//! the last one, 16 and above are ignored), its printed forms, the stable reason names counted by
//! the adapter and the simulator, and where a slot_wait suggestion is found. Written for mutation
//! testing (see ARCHITECTURE.md, "Mutation testing").

use std::time::Duration;

use leasehold_core::{AcquireError, LostReason, SlotError, SlotSet, wire::SlotErrorKind};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn first_n_slots() {
    assert_eq!(SlotSet::first(0), SlotSet::EMPTY);
    assert_eq!(SlotSet::first(1), SlotSet(0b1));
    assert_eq!(SlotSet::first(3), SlotSet(0b111));
    assert_eq!(SlotSet::first(15), SlotSet(0x7fff));
    assert_eq!(SlotSet::first(16), SlotSet(0xffff));
    assert_eq!(SlotSet::first(40), SlotSet(0xffff), "capped at 16 slots");
}

#[test]
fn insert_remove_and_contains_at_the_edges() {
    let mut s = SlotSet::EMPTY;
    assert!(s.is_empty());
    assert_eq!(s.len(), 0);
    s.insert(15);
    s.insert(0);
    s.insert(15); // twice: still a member
    assert_eq!(s, SlotSet(0x8001));
    assert!(s.contains(0) && s.contains(15));
    assert!(!s.contains(1) && !s.contains(14));
    assert!(!s.is_empty());
    assert_eq!(s.len(), 2);
    // slots past the mask are ignored, never a panic
    s.insert(16);
    s.insert(usize::MAX);
    assert_eq!(s, SlotSet(0x8001));
    assert!(!s.contains(16) && !s.contains(100));
    s.remove(16);
    s.remove(3); // not a member: nothing changes
    assert_eq!(s, SlotSet(0x8001));
    s.remove(15);
    assert_eq!(s, SlotSet(0b1));
    s.remove(0);
    assert!(s.is_empty());
    assert!(!SlotSet(0xffff).contains(16));
    assert!(SlotSet(0xffff).contains(15));
}

#[test]
fn members_iterate_in_increasing_order_and_print() {
    let mut s = SlotSet::EMPTY;
    for slot in [7, 2, 15, 0] {
        s.insert(slot);
    }
    assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 2, 7, 15]);
    assert_eq!(s.len(), 4);
    assert_eq!(s.to_string(), "0,2,7,15");
    assert_eq!(format!("{s:?}"), "{0, 2, 7, 15}");
    assert_eq!(SlotSet::EMPTY.to_string(), "");
    assert_eq!(format!("{:?}", SlotSet::EMPTY), "{}");
    assert_eq!(SlotSet(0b10).to_string(), "1");
    assert_eq!(SlotSet::first(16).iter().count(), 16);
}

fn slow(suggested: Option<Duration>) -> AcquireError {
    AcquireError::SlowReplies {
        slots: SlotSet(0b10),
        waited: ms(50),
        observed: suggested.map(|s| s / 2),
        suggested,
    }
}

fn contended() -> AcquireError {
    AcquireError::Contended {
        holder: Some("other".into()),
        remaining: None,
    }
}

#[test]
fn a_suggested_slot_wait_comes_from_slow_replies_directly_or_as_the_last_cause() {
    assert_eq!(slow(Some(ms(70))).suggested_slot_wait(), Some(ms(70)));
    assert_eq!(slow(None).suggested_slot_wait(), None);
    let deadline = |last_cause: Option<AcquireError>| AcquireError::DeadlineExceeded {
        waited: ms(500),
        attempts: 3,
        last_cause: last_cause.map(Box::new),
    };
    assert_eq!(
        deadline(Some(slow(Some(ms(90))))).suggested_slot_wait(),
        Some(ms(90))
    );
    assert_eq!(deadline(Some(contended())).suggested_slot_wait(), None);
    assert_eq!(deadline(None).suggested_slot_wait(), None);
    assert_eq!(contended().suggested_slot_wait(), None);
    assert_eq!(AcquireError::Cancelled.suggested_slot_wait(), None);
}

#[test]
fn acquire_error_reasons_are_stable_names() {
    let cases = [
        (contended(), "contended"),
        (slow(None), "slow_replies"),
        (
            AcquireError::DeadlineExceeded {
                waited: ms(1),
                attempts: 1,
                last_cause: None,
            },
            "deadline_exceeded",
        ),
        (
            AcquireError::QuorumUnreachable {
                granted: 0,
                quorum: 2,
                errors: vec![(1, SlotError::new(SlotErrorKind::Disconnected, "reset"))],
            },
            "quorum_unreachable",
        ),
        (
            AcquireError::ValidityConsumed {
                elapsed: ms(3_000),
                window: ms(2_968),
            },
            "validity_consumed",
        ),
        (AcquireError::Cancelled, "cancelled"),
    ];
    for (e, name) in cases {
        assert_eq!(e.reason(), name, "{e:?}");
    }
}

#[test]
fn lost_reasons_are_stable_names() {
    let cases = [
        (LostReason::ExpiredLocally, "expired_locally"),
        (LostReason::Taken { holder: None }, "taken"),
        (LostReason::Deleted, "deleted"),
        (LostReason::ServerRestarted, "server_restarted"),
        (LostReason::HoldCapReached, "hold_cap_reached"),
        (LostReason::Disconnected, "disconnected"),
    ];
    for (r, name) in cases {
        assert_eq!(r.reason(), name, "{r:?}");
    }
}

#[test]
fn slot_errors_print_their_kind_and_detail() {
    let cases = [
        (SlotErrorKind::Disconnected, "disconnected: x"),
        (SlotErrorKind::Server, "server error: x"),
        (SlotErrorKind::Corrupt, "corrupt reply: x"),
    ];
    for (kind, text) in cases {
        assert_eq!(SlotError::new(kind, "x").to_string(), text);
    }
    let e = AcquireError::QuorumUnreachable {
        granted: 1,
        quorum: 2,
        errors: vec![(2, SlotError::new(SlotErrorKind::Server, "READONLY"))],
    };
    assert_eq!(
        e.to_string(),
        "quorum unreachable: 1 of 2 needed slots granted; errors: slot 2: server error: READONLY"
    );
}
