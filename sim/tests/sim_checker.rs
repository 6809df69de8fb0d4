#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! The simulator's promises: determinism, each scenario's promised properties, the Kleppmann
//! finding with fencing off, negative controls (planted bugs are caught), shrinking.

use std::time::Duration;

use leasehold_sim::{
    Fencing, Overrides, PROPERTIES, PlantedBug, Property, SCENARIOS, SimConfig, config_for,
    run_scenario, run_seed, shrink, trace_seed,
};

fn quick() -> Overrides {
    Overrides {
        duration: Some(Duration::from_secs(15)),
        ..Overrides::default()
    }
}

#[test]
fn same_seed_same_trace_byte_for_byte() {
    let cfg = config_for("chaos", 7, &quick()).unwrap();
    let (a, ha) = trace_seed(&cfg, 7).unwrap();
    let (b, hb) = trace_seed(&cfg, 7).unwrap();
    assert!(a.len() > 1_000, "a real run: {} events", a.len());
    assert_eq!(ha, hb);
    assert!(a == b, "traces differ");
    let (_, hc) = trace_seed(&cfg, 8).unwrap();
    assert_ne!(ha, hc, "another seed gives another trace");
    // the trace hash does not depend on tracing being on
    assert_eq!(run_seed(&cfg, 7).unwrap().trace_hash, ha);
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let seeds: Vec<u64> = (0..6).collect();
    let one = run_scenario("partition", &quick(), &seeds, 1, &|_| {}).unwrap();
    let two = run_scenario("partition", &quick(), &seeds, 2, &|_| {}).unwrap();
    assert_eq!(one.events, two.events);
    assert_eq!(one.outcomes, two.outcomes);
    assert_eq!(one.findings, two.findings);
    assert!(one.determinism.1 && two.determinism.1);
}

/// Every preset keeps every property it promises (a violation would be a bug).
#[test]
fn every_scenario_keeps_its_promises() {
    for scenario in SCENARIOS.iter().copied().filter(|s| *s != "seed-stress") {
        let seeds: Vec<u64> = (0..12).collect();
        let rep = run_scenario(scenario, &quick(), &seeds, 2, &|_| {}).unwrap();
        assert!(
            rep.acquisitions > 100,
            "{scenario}: only {} acquisitions",
            rep.acquisitions
        );
        assert!(
            rep.violations.is_empty(),
            "{scenario}: {:?} {:#?}",
            rep.violations,
            rep.failing
        );
        assert!(!rep.promised.is_empty());
    }
    let calm = config_for("calm", 0, &quick()).unwrap();
    assert_eq!(
        calm.promised().len(),
        PROPERTIES.len(),
        "calm promises everything"
    );
}

#[test]
fn fault_scenarios_produce_their_typed_outcomes() {
    let seeds: Vec<u64> = (0..8).collect();
    let lat = run_scenario("latency", &quick(), &seeds, 2, &|_| {}).unwrap();
    assert!(
        lat.outcomes.get("slow_replies").copied().unwrap_or(0) > 0,
        "{:?}",
        lat.outcomes
    );
    let gc = run_scenario("gc-pause", &quick(), &seeds, 2, &|_| {}).unwrap();
    assert!(
        gc.outcomes
            .get("lost_expired_locally")
            .copied()
            .unwrap_or(0)
            > 0,
        "{:?}",
        gc.outcomes
    );
    assert!(
        gc.findings.contains_key(&Property::MutualExclusion),
        "a paused holder overlaps: {:?}",
        gc.findings
    );
    let rs = run_scenario("restart-no-fsync", &quick(), &seeds, 2, &|_| {}).unwrap();
    assert!(
        rs.outcomes.get("quorum_unreachable").copied().unwrap_or(0) > 0,
        "{:?}",
        rs.outcomes
    );
}

/// Kleppmann's pause scenario: with fencing off a superseded holder's write lands; with fencing
/// on it never does.
#[test]
fn kleppmann_pause_is_found_with_fencing_off_and_harmless_with_it_on() {
    let seeds: Vec<u64> = (0..40).collect();
    let off = Overrides {
        fencing: Some(Fencing::Off),
        ..quick()
    };
    let rep = run_scenario("gc-pause", &off, &seeds, 2, &|_| {}).unwrap();
    let found = rep
        .findings
        .get(&Property::StaleWritesAccepted)
        .copied()
        .unwrap_or(0);
    assert!(
        found > 0,
        "no stale write found in 40 seeds: {:?}",
        rep.findings
    );
    let f = rep
        .failing
        .iter()
        .find(|f| f.property == Property::StaleWritesAccepted)
        .unwrap();
    assert!(f.replay.contains("--fencing off") && f.replay.contains(&format!("--seed {}", f.seed)));
    assert!(!f.promised);
    let seeds: Vec<u64> = (0..200).collect();
    let on = run_scenario("gc-pause", &quick(), &seeds, 2, &|_| {}).unwrap();
    assert!(!on.findings.contains_key(&Property::StaleWritesAccepted));
    assert!(!on.violations.contains_key(&Property::TokenOrder));
}

fn caught(scenario: &str, o: &Overrides, bug: PlantedBug, property: Property) -> Option<u64> {
    (0..100).find(|&seed| {
        let mut cfg: SimConfig = config_for(scenario, seed, o).unwrap();
        cfg.planted = Some(bug);
        run_seed(&cfg, seed)
            .unwrap()
            .violations
            .iter()
            .any(|v| v.property == property)
    })
}

/// Every planted bug is caught, each by the property it breaks.
#[test]
fn negative_controls_are_caught_within_100_seeds() {
    // a polling client (no push re-checks) extends a force-released lease before it learns
    // the loss: an extension that does not compare the value renews the new holder's key
    let polling = Overrides {
        notifications: Some(false),
        ..quick()
    };
    let cases = [
        (
            "gc-pause",
            quick(),
            PlantedBug::NoFencing,
            Property::StaleWritesAccepted,
        ),
        (
            "latency",
            quick(),
            PlantedBug::ValidityFromReply,
            Property::ValidityOracle,
        ),
        (
            "calm",
            quick(),
            PlantedBug::WallClock,
            Property::MutualExclusion,
        ),
        (
            "restart-no-fsync",
            quick(),
            PlantedBug::CounterFromZero,
            Property::TokenOrder,
        ),
        (
            "force-release",
            polling,
            PlantedBug::ExtendWithoutCompare,
            Property::StaleExtension,
        ),
        (
            "failover-wait",
            quick(),
            PlantedBug::WaitWithoutReplication,
            Property::MutualExclusion,
        ),
    ];
    for (scenario, o, bug, property) in cases {
        let seed = caught(scenario, &o, bug, property);
        assert!(
            seed.is_some(),
            "{bug:?} not caught as {property} in 100 seeds of {scenario}"
        );
        // and the same scenario without the bug keeps the property on that seed
        let s = seed.unwrap();
        let cfg = config_for(scenario, s, &o).unwrap();
        assert!(
            cfg.promised().contains(&property),
            "{property} must be promised by {scenario}"
        );
        let clean = run_seed(&cfg, s).unwrap();
        assert!(
            !clean.violations.iter().any(|v| v.property == property),
            "{scenario} seed {s} fails without the bug"
        );
    }
}

#[test]
fn shrinking_keeps_the_failure_and_reduces_the_run() {
    let mut cfg = config_for(
        "gc-pause",
        0,
        &Overrides {
            fencing: Some(Fencing::Off),
            ..Overrides::default()
        },
    )
    .unwrap();
    cfg.planted = None;
    let seed = (0..40)
        .find(|&s| {
            run_seed(&cfg, s)
                .unwrap()
                .violations
                .iter()
                .any(|v| v.property == Property::StaleWritesAccepted)
        })
        .expect("a failing seed");
    let before = run_seed(&cfg, seed).unwrap().events;
    let (small, events) = shrink(&cfg, seed, Property::StaleWritesAccepted);
    assert!(
        events > 0 && events < before,
        "shrunk {before} -> {events} events"
    );
    assert!(small.clients <= cfg.clients && small.duration <= cfg.duration);
    let again = run_seed(&small, seed).unwrap();
    assert!(
        again
            .violations
            .iter()
            .any(|v| v.property == Property::StaleWritesAccepted)
    );
}

/// Kleppmann's clock-jump scenario: with push re-checks off (a polling client) and fencing off, a
/// double holder damages the resource (a stale write, or, in the read-modify-write workload, an
/// increment lost); with fencing on, never. 1,000 seeds: since a grant that arrives during the
/// fence write-back joins the lease, a 3-instance lease usually lives on all three instances and
/// one server's clock jump rarely makes two holders (229 of 1,000 seeds, was 100+ of 300).
#[test]
fn kleppmann_clock_jump_is_found_without_push_rechecks_and_fencing() {
    let seeds: Vec<u64> = (0..1_000).collect();
    let off = Overrides {
        fencing: Some(Fencing::Off),
        notifications: Some(false),
        ..Overrides::default()
    };
    let rep = run_scenario("clock-jump", &off, &seeds, 2, &|_| {}).unwrap();
    let found = |p: Property| rep.findings.get(&p).copied().unwrap_or(0);
    assert!(found(Property::MutualExclusion) > 100, "{:?}", rep.findings);
    assert!(
        found(Property::StaleWritesAccepted) + found(Property::LostUpdates) > 0,
        "{:?}",
        rep.findings
    );
    let on = Overrides {
        notifications: Some(false),
        ..Overrides::default()
    };
    let rep = run_scenario("clock-jump", &on, &seeds, 2, &|_| {}).unwrap();
    assert!(
        !rep.findings.contains_key(&Property::StaleWritesAccepted)
            && !rep.findings.contains_key(&Property::LostUpdates),
        "{:?}",
        rep.findings
    );
    assert!(rep.violations.is_empty(), "{:?}", rep.violations);
}

#[test]
fn force_release_is_detected_by_the_old_holder() {
    let seeds: Vec<u64> = (0..10).collect();
    let rep = run_scenario("force-release", &quick(), &seeds, 2, &|_| {}).unwrap();
    let deleted = rep.outcomes.get("lost_deleted").copied().unwrap_or(0);
    assert!(
        deleted > 0,
        "holders must learn of the force-release: {:?}",
        rep.outcomes
    );
    assert!(rep.violations.is_empty(), "{:?}", rep.violations);
}

/// Kleppmann's restart-without-fsync scenario: against a polling client with fencing off, the
/// re-granted lock has two holders and the old one's write lands after the new one's.
#[test]
fn kleppmann_restart_without_fsync_is_found_against_a_polling_client() {
    let seeds: Vec<u64> = (0..300).collect();
    let off = Overrides {
        fencing: Some(Fencing::Off),
        notifications: Some(false),
        ..Overrides::default()
    };
    let rep = run_scenario("restart-no-fsync", &off, &seeds, 2, &|_| {}).unwrap();
    assert!(
        rep.findings
            .get(&Property::StaleWritesAccepted)
            .copied()
            .unwrap_or(0)
            > 0,
        "{:?}",
        rep.findings
    );
    let f = rep
        .failing
        .iter()
        .find(|f| f.property == Property::StaleWritesAccepted)
        .unwrap();
    assert!(
        f.replay.contains("--notifications off") && f.replay.contains("--fencing off"),
        "{}",
        f.replay
    );
    // fencing on: never, over thousands of seeds, in both Kleppmann scenarios
    let seeds: Vec<u64> = (0..2_000).collect();
    for scenario in ["gc-pause", "restart-no-fsync"] {
        let on = run_scenario(
            scenario,
            &Overrides {
                notifications: Some(false),
                ..Overrides::default()
            },
            &seeds,
            2,
            &|_| {},
        )
        .unwrap();
        assert!(
            !on.findings.contains_key(&Property::StaleWritesAccepted),
            "{scenario}: {:?}",
            on.findings
        );
        assert!(on.violations.is_empty(), "{scenario}: {:?}", on.violations);
    }
}

/// Write-only fencing loses read-modify-write updates (the resource accepts an old holder's write
/// because the newer holder has only *read* so far); checking tokens on reads too prevents it.
#[test]
fn write_only_fencing_loses_updates_and_read_fencing_does_not() {
    let seeds: Vec<u64> = (0..200).collect();
    for fencing in [Fencing::Writes, Fencing::Off] {
        let o = Overrides {
            fencing: Some(fencing),
            ..Overrides::default()
        };
        let rep = run_scenario("gc-pause", &o, &seeds, 2, &|_| {}).unwrap();
        let lost = rep
            .findings
            .get(&Property::LostUpdates)
            .copied()
            .unwrap_or(0);
        assert!(
            lost > 0,
            "--fencing {}: no lost update found in 200 gc-pause seeds",
            fencing.as_str()
        );
        assert!(rep.violations.is_empty(), "{:?}", rep.violations);
        let f = rep
            .failing
            .iter()
            .find(|f| f.property == Property::LostUpdates)
            .unwrap();
        assert!(
            f.replay
                .contains(&format!("--fencing {}", fencing.as_str()))
        );
        assert!(f.explanation.contains("read"), "{}", f.explanation);
    }
    // writes-only fencing still stops stale blind writes
    let writes = Overrides {
        fencing: Some(Fencing::Writes),
        ..Overrides::default()
    };
    let rep = run_scenario("gc-pause", &writes, &seeds, 2, &|_| {}).unwrap();
    assert!(!rep.findings.contains_key(&Property::StaleWritesAccepted));
    assert!(rep.promised.contains(&Property::StaleWritesAccepted));
    assert!(!rep.promised.contains(&Property::LostUpdates));
    // reads and writes checked: promised, and kept
    let on = run_scenario("gc-pause", &Overrides::default(), &seeds, 2, &|_| {}).unwrap();
    assert!(on.promised.contains(&Property::LostUpdates));
    assert!(on.violations.is_empty() && !on.findings.contains_key(&Property::LostUpdates));
}

/// A planted bug in a swarm whose seeds promise different things: every seed that breaks a
/// property it promises is listed as a BUG (before any finding), however many findings there
/// are, and the counts agree with the list.
#[test]
fn a_swarm_cannot_hide_a_bug_among_findings() {
    let seeds: Vec<u64> = (0..300).collect();
    let o = Overrides {
        planted: Some(PlantedBug::CounterFromZero),
        ..Overrides::default()
    };
    let rep = run_scenario("chaos", &o, &seeds, 2, &|_| {}).unwrap();
    let bugs = rep
        .violations
        .get(&Property::TokenOrder)
        .copied()
        .unwrap_or(0);
    assert!(
        bugs > 0,
        "the planted counter reset was not caught: {rep:?}"
    );
    let listed: Vec<_> = rep
        .failing
        .iter()
        .filter(|f| f.promised && f.property == Property::TokenOrder)
        .collect();
    assert_eq!(listed.len() as u64, bugs, "every bug seed is listed");
    // mixed promises: the swarm has seeds that do not promise token_order
    let promised_in = rep
        .promised_in
        .get(&Property::TokenOrder)
        .copied()
        .unwrap_or(0);
    assert!(promised_in > 0 && promised_in < rep.seeds, "{promised_in}");
    assert!(!rep.promised.contains(&Property::TokenOrder));
    // bugs come first
    let first_finding = rep.failing.iter().position(|f| !f.promised);
    let last_bug = rep.failing.iter().rposition(|f| f.promised);
    if let (Some(ff), Some(lb)) = (first_finding, last_bug) {
        assert!(lb < ff, "a finding was listed before a bug");
    }
    // each listed bug replays as a bug: its own configuration promises the property
    for f in &listed {
        let cfg = config_for("chaos", f.seed, &o).unwrap();
        assert!(
            cfg.promised().contains(&Property::TokenOrder),
            "seed {}",
            f.seed
        );
        assert!(f.replay.contains(&format!("--seed {}", f.seed)));
    }
}

/// The force-release that sent tokens backwards (issue 9: chaos seed 471, KeyMajority{k:2},
/// restarts without persistence, operator force-releases): the simulator's operator created a
/// missing counter at 1. Force-release is now the one wire script, and tokens take the server's
/// TIME as a floor.
#[test]
fn force_release_after_a_restart_keeps_token_order() {
    let o = Overrides {
        clients: Some(3),
        locks: Some(2),
        duration: Some(Duration::from_secs(30)),
        drop_faults: vec![3, 6, 8],
        ..Overrides::default()
    };
    let cfg = config_for("chaos", 471, &o).unwrap();
    assert!(cfg.promised().contains(&Property::TokenOrder));
    let r = run_seed(&cfg, 471).unwrap();
    assert!(r.acquisitions > 20 && r.outcomes.contains_key("lost_server_restarted"));
    assert!(
        r.violations
            .iter()
            .all(|v| v.property != Property::TokenOrder),
        "{:?}",
        r.violations
    );
    // (before the fix this printed `lock 1: client 2 got token 2 after client 0 got 7553417`)
}

/// Fence counters expire after their retention and are re-created from TIME, in every layout,
/// and token order holds across the re-creations.
#[test]
fn expiring_fence_counters_keep_token_order() {
    let seeds: Vec<u64> = (0..30).collect();
    let rep = run_scenario("fence-expiry", &Overrides::default(), &seeds, 2, &|_| {}).unwrap();
    assert!(rep.promised.contains(&Property::TokenOrder));
    assert!(
        rep.fences_recreated > 100,
        "counters were re-created {} times",
        rep.fences_recreated
    );
    assert!(rep.violations.is_empty(), "{:#?}", rep.failing);
}

/// Bad replay input is an error naming the flag, not a silent run.
#[test]
fn an_unknown_fault_index_is_an_error_naming_the_flag() {
    let o = Overrides {
        drop_faults: vec![9_999],
        ..Overrides::default()
    };
    let err = run_scenario("partition", &o, &[1], 1, &|_| {}).unwrap_err();
    assert!(err.contains("--drop-faults 9999"), "{err}");
}

/// The core mutant that reports `Contended` whenever any slot answered `Held` (the misreport
/// leasehold exists to prevent) is caught as `misclassified` in a three-instance scenario, and
/// the shipping machine is not.
#[test]
fn misclassified_catches_the_core_reporting_contended_on_any_held() {
    use leasehold_core::planted::{Mutant, set};
    let with_mutant = |seed: u64| {
        let cfg = config_for("partition", seed, &quick()).unwrap();
        set(Some(Mutant::ContendedOnAnyHeld));
        let r = run_seed(&cfg, seed);
        set(None);
        r.unwrap()
    };
    let seed = (0..40)
        .find(|&s| {
            with_mutant(s)
                .violations
                .iter()
                .any(|v| v.property == Property::Misclassified)
        })
        .expect("the mutant is caught within 40 seeds of partition");
    let cfg = config_for("partition", seed, &quick()).unwrap();
    assert!(cfg.promised().contains(&Property::Misclassified));
    let clean = run_seed(&cfg, seed).unwrap();
    assert!(
        clean.violations.is_empty(),
        "partition seed {seed} fails without the mutant: {:?}",
        clean.violations
    );
}
