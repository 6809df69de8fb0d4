#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Property test: arbitrary interleavings against the reference Redis model (see `testkit`).
//! Shrinks to the shortest failing schedule; regressions live in
//! `core_state_machine.proptest-regressions` beside this file.

use leasehold_core::SlotLayout;
use leasehold_core::testkit::{Scenario, Step, run};
use proptest::prelude::*;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (any::<u8>(), 0u8..3, 0u16..400).prop_map(|(client, mode, wait_ms)| Step::Acquire { client, mode, wait_ms }),
        2 => any::<u8>().prop_map(|client| Step::Release { client }),
        1 => any::<u8>().prop_map(|client| Step::Cancel { client }),
        8 => any::<u8>().prop_map(|pick| Step::Execute { pick }),
        8 => any::<u8>().prop_map(|pick| Step::Deliver { pick }),
        1 => any::<u8>().prop_map(|pick| Step::Duplicate { pick }),
        1 => any::<u8>().prop_map(|pick| Step::DropReply { pick }),
        1 => any::<u8>().prop_map(|pick| Step::ErrorReply { pick }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(client, kind)| Step::Forged { client, kind }),
        4 => prop_oneof![1u16..30, 30u16..400].prop_map(|ms| Step::Advance { ms }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(client, slot)| Step::Notify { client, slot }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(client, slot)| Step::Disconnect { client, slot }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(client, slot)| Step::Reconnect { client, slot }),
        1 => any::<u8>().prop_map(|slot| Step::Restart { slot }),
    ]
}

fn layout() -> impl Strategy<Value = SlotLayout> {
    prop_oneof![
        Just(SlotLayout::Single),
        Just(SlotLayout::KeyMajority { k: 2 }),
        Just(SlotLayout::Instances { n: 3 }),
        Just(SlotLayout::Instances { n: 5 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Safe faults only: exclusion, token order, quorum, lost-by-validity, timeouts.
    #[test]
    fn safe_schedules_keep_every_invariant(
        layout in layout(),
        clients in 1usize..4,
        steps in prop::collection::vec(step(), 0..300),
    ) {
        let sc = Scenario { layout, clients, unsafe_faults: false };
        if let Err(v) = run(&sc, &steps) {
            prop_assert!(false, "{} at step {}: {:?}", v.what, v.step, steps.get(v.step));
        }
    }

    /// With force and restarts, exclusion is not promised, but every other invariant is.
    #[test]
    fn unsafe_schedules_never_panic_and_keep_local_invariants(
        layout in layout(),
        clients in 1usize..4,
        steps in prop::collection::vec(step(), 0..300),
    ) {
        let sc = Scenario { layout, clients, unsafe_faults: true };
        if let Err(v) = run(&sc, &steps) {
            prop_assert!(false, "{} at step {}: {:?}", v.what, v.step, steps.get(v.step));
        }
    }
}

/// The generator must actually reach acquisitions, extensions and losses, or the properties
/// above say little. A fixed schedule that does all three:
#[test]
fn a_plain_schedule_acquires_extends_and_loses() {
    use Step::*;
    let mut steps = vec![
        Acquire {
            client: 0,
            mode: 0,
            wait_ms: 0,
        },
        Execute { pick: 0 },
        Deliver { pick: 0 },
    ];
    // two extensions, each executed and delivered
    for _ in 0..2 {
        steps.extend([
            Advance { ms: 100 },
            Execute { pick: 0 },
            Deliver { pick: 0 },
        ]);
    }
    // then silence: the lease must be reported lost by its validity instant
    steps.push(Advance { ms: 400 });
    let r = run(
        &Scenario {
            layout: SlotLayout::Single,
            clients: 1,
            unsafe_faults: false,
        },
        &steps,
    )
    .unwrap();
    assert_eq!(r.acquired, 1);
    assert_eq!(r.extended, 2);
    assert_eq!(r.lost, 1);
}

/// Negative control: with the core mutant that reports `Contended` whenever any slot answered
/// `Held` (feature `planted-bugs`), the runner's classification invariant fails on the schedule
/// "three instances, a second client holds slot 0 only, one grant, one silence".
#[cfg(feature = "planted-bugs")]
#[test]
fn the_classification_invariant_catches_contended_on_any_held() {
    use Step::*;
    let steps = [
        // client 1 takes slot 0 only: its other two acquires are lost
        Acquire {
            client: 1,
            mode: 0,
            wait_ms: 0,
        },
        Execute { pick: 0 },
        DropReply { pick: 0 },
        Disconnect { client: 1, slot: 1 },
        Disconnect { client: 1, slot: 2 },
        // its round failed; its cleanup releases to the cut slots fail at once: drop those
        DropReply { pick: 0 },
        DropReply { pick: 0 },
        // client 0: slot 0 answers Held, slot 1 grants, slot 2 stays silent
        Acquire {
            client: 0,
            mode: 0,
            wait_ms: 0,
        },
        Execute { pick: 0 },
        Execute { pick: 0 },
        Deliver { pick: 0 },
        Deliver { pick: 0 },
        Advance { ms: 30 },
    ];
    let sc = Scenario {
        layout: SlotLayout::Instances { n: 3 },
        clients: 2,
        unsafe_faults: false,
    };
    assert!(
        run(&sc, &steps).is_ok(),
        "the shipping machine classifies right"
    );
    leasehold_core::planted::set(Some(leasehold_core::planted::Mutant::ContendedOnAnyHeld));
    let caught = run(&sc, &steps);
    leasehold_core::planted::set(None);
    let v = caught.expect_err("the mutant must break the classification invariant");
    assert!(v.what.contains("Contended"), "{}", v.what);
}
