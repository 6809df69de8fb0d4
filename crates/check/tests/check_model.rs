//! The checker explores small worlds exhaustively without a violation, and finds planted bugs.

use std::time::Duration;

use leasehold_check::{Planted, Setup, check, find_shortest, narrate};
use leasehold_core::SlotLayout;

/// One client, one slot, one try acquire with a lossy network: small enough to exhaust in a
/// test, and every promised property must hold in every schedule.
#[test]
fn a_tiny_world_is_explored_exhaustively_without_violation() {
    let mut s = Setup::new("tiny", SlotLayout::Single, 1);
    s.drops = 1;
    s.horizon = Duration::from_millis(400);
    let out = check(&s);
    assert!(out.counterexample.is_none(), "{:?}", out.counterexample);
    assert_eq!(
        out.stats.cut, 0,
        "the world's own bounds must end every schedule"
    );
    assert!(out.stats.distinct > 200, "explored only {:?}", out.stats);
    assert!(out.stats.depth >= 8, "{:?}", out.stats);
}

/// Two clients on three instances, bounded depth: no violation, and the search reached
/// acquisitions (depth) and many states.
#[test]
fn two_clients_on_three_instances_hold_every_property_to_depth_8() {
    let mut s = Setup::new("instances", SlotLayout::Instances { n: 3 }, 2);
    s.max_depth = Some(8);
    let out = check(&s);
    assert!(out.counterexample.is_none(), "{:?}", out.counterexample);
    assert!(out.stats.distinct > 10_000, "{:?}", out.stats);
}

/// A restarted server whose counter restarts from zero (no `TIME` floor) sends tokens
/// backwards: the checker must find it, and the trace must replay to the same violation.
#[test]
fn a_counter_restarting_from_zero_yields_a_token_order_counterexample() {
    let mut s = Setup::new("planted", SlotLayout::Single, 2);
    s.restarts = 1;
    s.planted = Some(Planted::CounterFromZero);
    let out = find_shortest(&s, &[6, 8, 10]);
    let cx = out.counterexample.expect("a counterexample");
    assert_eq!(cx.violation.property, "token_order");
    let trace = narrate(&s, &cx.schedule);
    assert!(
        trace
            .last()
            .is_some_and(|l| l.contains("VIOLATION token_order")),
        "{trace:#?}"
    );
    // without the planted bug the same world is clean to the same depth
    s.planted = None;
    s.max_depth = Some(cx.schedule.len());
    assert!(check(&s).counterexample.is_none());
}

/// A core mutant (feature `planted-bugs`): reporting `Contended` whenever any slot answered
/// `Held`. With three instances, one `Held`, one granted and one silent is `SlowReplies`.
#[cfg(feature = "planted-bugs")]
#[test]
fn the_contended_on_any_held_mutant_yields_a_misclassification() {
    use leasehold_core::planted::Mutant;
    let mut s = Setup::new("mutant", SlotLayout::Instances { n: 3 }, 2);
    s.planted = Some(Planted::Core(Mutant::ContendedOnAnyHeld));
    let out = find_shortest(&s, &[6, 8]);
    let cx = out.counterexample.expect("a counterexample");
    assert_eq!(cx.violation.property, "misclassified");
    s.planted = None;
    s.max_depth = Some(cx.schedule.len());
    assert!(check(&s).counterexample.is_none());
}
