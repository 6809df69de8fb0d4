#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Transcript tests of key changes that arrive while a round is still open. Client tracking
//! reports a key's change once and then forgets the key until it is read again, so a change the
//! machine cannot act on at once (acquiring, writing back) must not be dropped when it came
//! after the slot's read: a granted slot is re-checked once the lease is held, a waiter retries
//! at once. A change that came while the slot's read was still in flight is already seen by
//! that read, which also re-arms tracking: nothing to remember.

use leasehold_core::{AcquireMode, Event, Phase, Reply, SlotLayout};

#[path = "support/transcript.rs"]
mod transcript;
use transcript::*;

/// Three instances: slot 0 grants, then its key changes (its reply was fed, so the change came
/// after our read), then slot 1 grants. Once the token is written back and the lease is held,
/// slot 0 is checked at once; slot 1, unchanged, is not.
fn granted_then_changed(change_before_reply: bool) -> Vec<String> {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    l.acquire(T0, AcquireMode::Try).unwrap();
    let c = sent(&mut l);
    assert_eq!(names(&c), ["0:acquire", "1:acquire", "2:acquire"]);
    if change_before_reply {
        l.handle_key_changed(T0 + ms(1), 0);
    }
    l.handle_reply(T0 + ms(1), c[0].1, Reply::Granted { token: 5 });
    if !change_before_reply {
        l.handle_key_changed(T0 + ms(1), 0);
    }
    l.handle_reply(T0 + ms(2), c[1].1, Reply::Granted { token: 7 });
    let fb = sent(&mut l);
    assert_eq!(names(&fb), ["0:raise_fence", "1:raise_fence"]);
    assert_eq!(l.phase(), Phase::WritingBack);
    for (_, id) in &fb {
        l.handle_reply(T0 + ms(3), *id, Reply::FenceRaised);
    }
    assert!(matches!(
        events(&mut l)[..],
        [Event::Acquired { token: 7, .. }]
    ));
    sent(&mut l).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn a_granted_slot_that_changed_after_its_read_is_checked_once_the_lease_is_held() {
    assert_eq!(granted_then_changed(false), ["0:check"]);
}

#[test]
fn a_change_seen_while_the_slot_was_being_read_needs_no_check() {
    assert_eq!(granted_then_changed(true), Vec::<String>::new());
}

/// A waiter on three instances: slots 0 and 2 answer Held (contention), but slot 0's key changed
/// after its read and before the round ended. The waiter retries at once, as a push in backoff
/// would have made it do; without the change it sleeps.
fn contended_waiter(changed: bool) -> (Vec<String>, Phase) {
    let mut l = lock(SlotLayout::Instances { n: 3 });
    l.acquire(
        T0,
        AcquireMode::Wait {
            deadline: T0 + ms(10_000),
        },
    )
    .unwrap();
    let c = sent(&mut l);
    l.handle_reply(T0 + ms(1), c[0].1, held(Some("other"), None));
    if changed {
        l.handle_key_changed(T0 + ms(1), 0);
    }
    l.handle_reply(T0 + ms(2), c[2].1, held(Some("other"), None));
    let next = sent(&mut l).into_iter().map(|(n, _)| n).collect();
    (next, l.phase())
}

#[test]
fn a_waiter_retries_at_once_when_a_key_changed_after_its_round_read_it() {
    let (next, phase) = contended_waiter(true);
    // the unanswered slot's cleanup, then the new round
    assert_eq!(next, ["1:release", "0:acquire", "1:acquire", "2:acquire"]);
    assert_eq!(phase, Phase::Acquiring);
}

#[test]
fn without_a_change_the_contended_waiter_backs_off() {
    let (next, phase) = contended_waiter(false);
    assert_eq!(next, ["1:release"]);
    assert_eq!(phase, Phase::Backoff);
}
