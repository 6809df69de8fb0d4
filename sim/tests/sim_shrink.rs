//! Proptest strategies over fault schedules: promised properties hold for arbitrary schedules,
//! and a failure shrinks to a minimal schedule. Regressions: `sim_shrink.proptest-regressions`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use leasehold_sim::faults::{Fault, FaultEvent};
use leasehold_sim::{Overrides, PlantedBug, Property, SimConfig, config_for, run_seed};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

const START: u64 = 1_000_000_000;

fn fault(clients: usize) -> impl Strategy<Value = FaultEvent> {
    let at = START..START + 8_000_000_000;
    let c = 0..clients;
    prop_oneof![
        (at.clone(), c.clone()).prop_map(|(at, c)| FaultEvent {
            at,
            fault: Fault::Reset { c, s: 0 }
        }),
        (at.clone(), c.clone(), 50u64..2_000).prop_map(|(at, c, ms)| FaultEvent {
            at,
            fault: Fault::Partition {
                c,
                s: 0,
                len: Duration::from_millis(ms)
            }
        }),
        (at.clone(), 50u64..2_000).prop_map(|(at, ms)| FaultEvent {
            at,
            fault: Fault::Crash {
                s: 0,
                downtime: Duration::from_millis(ms)
            }
        }),
        (at.clone(), 0usize..2).prop_map(|(at, l)| FaultEvent {
            at,
            fault: Fault::ForceRelease { s: 0, l }
        }),
        (at, c, 10u64..3_000).prop_map(|(at, c, ms)| FaultEvent {
            at,
            fault: Fault::Pause {
                c,
                len: Duration::from_millis(ms)
            }
        }),
    ]
}

fn base(planted: Option<PlantedBug>, persist: bool) -> SimConfig {
    let mut cfg = config_for(
        "calm",
        0,
        &Overrides {
            duration: Some(Duration::from_secs(12)),
            clients: Some(3),
            ..Overrides::default()
        },
    )
    .unwrap();
    cfg.heal_before_end = Duration::from_secs(3);
    cfg.faults.persist = persist;
    cfg.planted = planted;
    cfg
}

/// `property` `None`: every promised property.
fn check(
    mut cfg: SimConfig,
    faults: Vec<FaultEvent>,
    property: Option<Property>,
) -> Result<(), TestCaseError> {
    let has = |f: fn(&Fault) -> bool| faults.iter().any(|e| f(&e.fault));
    // promises depend on which fault kinds are present, as for the presets
    if has(|f| matches!(f, Fault::Pause { .. })) {
        cfg.faults.pauses_per_sec = 1.0;
    }
    if has(|f| matches!(f, Fault::Crash { .. })) {
        cfg.faults.restarts_per_sec = 1.0;
    }
    if has(|f| matches!(f, Fault::ForceRelease { .. })) {
        cfg.faults.force_releases_per_sec = 1.0;
    }
    let promised = cfg.promised();
    cfg.explicit_faults = Some(faults);
    let r = run_seed(&cfg, 1).unwrap();
    for v in &r.violations {
        if promised.contains(&v.property) && property.is_none_or(|p| v.property == p) {
            return Err(TestCaseError::fail(format!("{}: {}", v.property, v.detail)));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any schedule of resets, partitions, crashes (with persistence), force-releases and pauses
    /// keeps every property those faults promise.
    #[test]
    fn arbitrary_fault_schedules_keep_promises(faults in prop::collection::vec(fault(3), 0..12)) {
        check(base(None, true), faults, None)?;
    }
}

/// A planted bug (fence counter restarting from zero) fails under some schedule, and proptest
/// shrinks the schedule to the minimum that shows it: one crash of a server without persistence.
#[test]
fn a_failure_shrinks_to_a_minimal_fault_schedule() {
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(fault(3), 0..12), |faults| {
        check(
            base(Some(PlantedBug::CounterFromZero), false),
            faults,
            Some(Property::TokenOrder),
        )
    });
    match result {
        Err(TestError::Fail(why, minimal)) => {
            assert!(why.message().contains("token_order"), "{why}");
            assert_eq!(minimal.len(), 1, "shrunk to one fault: {minimal:?}");
            assert!(
                matches!(minimal[0].fault, Fault::Crash { .. }),
                "{minimal:?}"
            );
        }
        other => panic!("the planted bug was not found: {other:?}"),
    }
}
