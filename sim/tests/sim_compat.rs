//! The rueidislock dialect (`--compat rueidislock:K`) in the simulator: what it keeps (mutual
//! exclusion, the validity oracle and liveness in calm) and what it gives up, reported as
//! findings with their explanation, never as bugs: no fencing token (a paused holder's stale
//! write is accepted; leasehold's own layout rejects it on the same seeds), and expiry from the
//! client's wall clock (skewed wall clocks break the validity oracle).

use std::time::Duration;

use leasehold_sim::{Overrides, Property, config_for, replay_command, run_scenario};

fn compat(k: u8) -> Overrides {
    Overrides {
        duration: Some(Duration::from_secs(15)),
        compat: Some(k),
        ..Overrides::default()
    }
}

fn found(rep: &leasehold_sim::ScenarioReport, p: Property) -> u64 {
    rep.findings.get(&p).copied().unwrap_or(0)
}

#[test]
fn calm_keeps_exclusion_and_reports_the_missing_token_as_a_finding() {
    let seeds: Vec<u64> = (0..40).collect();
    for k in [1, 2] {
        let rep = run_scenario("calm", &compat(k), &seeds, 2, &|_| {}).unwrap();
        assert!(rep.violations.is_empty(), "K={k}: {:?}", rep.violations);
        assert!(rep.acquisitions > 100, "K={k}: {}", rep.acquisitions);
        for p in [
            Property::MutualExclusion,
            Property::ValidityOracle,
            Property::Liveness,
            Property::Misclassified,
            Property::StaleExtension,
        ] {
            assert_eq!(found(&rep, p), 0, "K={k}: {p:?} in calm");
        }
        assert!(
            found(&rep, Property::TokenOrder) > 0,
            "every lease has token 0"
        );
        let f = rep
            .failing
            .iter()
            .find(|f| f.property == Property::TokenOrder)
            .unwrap();
        assert!(!f.promised);
        assert!(
            f.explanation.contains("rueidislock") && f.explanation.contains("FencingToken"),
            "{}",
            f.explanation
        );
        assert!(
            f.replay.contains(&format!("--compat rueidislock:{k}")),
            "{}",
            f.replay
        );
    }
}

#[test]
fn a_paused_holders_stale_write_is_accepted_without_a_token() {
    let seeds: Vec<u64> = (0..60).collect();
    let rep = run_scenario("gc-pause", &compat(2), &seeds, 2, &|_| {}).unwrap();
    assert!(rep.violations.is_empty(), "{:?}", rep.violations);
    assert!(
        found(&rep, Property::StaleWritesAccepted) + found(&rep, Property::LostUpdates) > 0,
        "{:?}",
        rep.findings
    );
    // the same seeds in leasehold's own layout: the fence rejects every such write
    let own = Overrides {
        compat: None,
        ..compat(2)
    };
    let rep = run_scenario("gc-pause", &own, &seeds, 2, &|_| {}).unwrap();
    assert_eq!(found(&rep, Property::StaleWritesAccepted), 0);
    assert_eq!(found(&rep, Property::LostUpdates), 0);
}

#[test]
fn skewed_client_wall_clocks_break_the_validity_oracle() {
    let seeds: Vec<u64> = (0..40).collect();
    let cfg = config_for("clock-jump", 0, &compat(2)).unwrap();
    assert!(cfg.client_wall_clocks_disagree());
    assert!(replay_command(&cfg, 0).contains("--compat rueidislock:2"));
    let rep = run_scenario("clock-jump", &compat(2), &seeds, 2, &|_| {}).unwrap();
    assert!(rep.violations.is_empty(), "{:?}", rep.violations);
    assert!(
        found(&rep, Property::ValidityOracle) > 0,
        "{:?}",
        rep.findings
    );
    let f = rep
        .failing
        .iter()
        .find(|f| f.property == Property::ValidityOracle)
        .unwrap();
    assert!(f.explanation.contains("PXAT"), "{}", f.explanation);
}

#[test]
fn the_wall_clock_knob_changes_nothing_in_leaseholds_own_layout() {
    let mut cfg = config_for("calm", 3, &Overrides::default()).unwrap();
    let base = leasehold_sim::trace_seed(&cfg, 3).unwrap().1;
    cfg.faults.client_wall_skew = Duration::from_secs(2);
    assert_eq!(leasehold_sim::trace_seed(&cfg, 3).unwrap().1, base);
    assert!(!cfg.client_wall_clocks_disagree());
}
