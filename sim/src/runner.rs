//! Running many seeds (on all cores, results independent of the thread count), aggregating them
//! per scenario, shrinking failures and the determinism self-check.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::check::Property;
use crate::check::history::Violation;
use crate::config::{SimConfig, explain};
use crate::scenario::{Overrides, config_for};
use crate::world::World;

/// Bugs shrunk per property (every bug is listed; the rest keep their unshrunk replay).
pub const SHRINK_BUGS: usize = 10;
/// Findings listed (and shrunk) per property.
pub const FINDINGS_KEPT: usize = 3;

/// One seed's result.
#[derive(Debug, Clone)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The configuration it ran.
    pub config: SimConfig,
    /// Events processed.
    pub events: u64,
    /// Acquisitions.
    pub acquisitions: u64,
    /// Outcomes by reason.
    pub outcomes: BTreeMap<String, u64>,
    /// Broken properties.
    pub violations: Vec<Violation>,
    /// Trace hash.
    pub trace_hash: u64,
    /// Fence counters re-created from TIME after they expired or were lost.
    pub fences_recreated: u64,
    /// Acquire reply times, ns.
    pub reply_times: Vec<u64>,
}

/// Run one seed of `cfg`.
pub fn run_seed(cfg: &SimConfig, seed: u64) -> Result<SeedResult, String> {
    let world = World::new(cfg.clone(), seed, false)?;
    let end = 1_000_000_000 + cfg.duration.as_nanos() as u64;
    let mut out = world.run();
    if out.history.full() {
        return Err(format!(
            "seed {seed} recorded {} acquisitions before its end, more than one seed may hold; use a shorter --duration or fewer --clients",
            crate::history::MAX_TENURES
        ));
    }
    out.history.finish(end);
    Ok(SeedResult {
        seed,
        config: cfg.clone(),
        events: out.events,
        acquisitions: out.history.acquisitions(),
        outcomes: out.history.outcomes.clone(),
        violations: out.history.violations.clone(),
        trace_hash: out.trace_hash,
        fences_recreated: out.history.fences_recreated,
        reply_times: std::mem::take(&mut out.history.reply_times),
    })
}

/// The full trace of one seed as JSON lines, plus its hash.
pub fn trace_seed(cfg: &SimConfig, seed: u64) -> Result<(Vec<String>, u64), String> {
    let out = World::new(cfg.clone(), seed, true)?.run();
    Ok((out.trace, out.trace_hash))
}

/// A failing seed, ready to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The seed.
    pub seed: u64,
    /// The property that broke.
    pub property: Property,
    /// Whether the scenario promised it (a bug) or not (a finding).
    pub promised: bool,
    /// The exact command that replays the (shrunk) failure.
    pub replay: String,
    /// Events in the shrunk trace.
    pub shrunk_events: u64,
    /// The first violation's detail.
    pub detail: String,
    /// Why it is outside the model, for findings.
    pub explanation: String,
    /// The derived configuration (fault knobs), so one seed says everything needed to replay.
    pub config: String,
}

/// One scenario over many seeds.
#[derive(Debug, Clone, Default)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// Seeds run.
    pub seeds: u64,
    /// Events processed.
    pub events: u64,
    /// Wall time spent, seconds (summed over threads).
    pub cpu_secs: f64,
    /// Acquisitions.
    pub acquisitions: u64,
    /// Fence counters re-created from TIME after they expired or were lost.
    pub fences_recreated: u64,
    /// Outcomes by reason.
    pub outcomes: BTreeMap<String, u64>,
    /// Seeds that violated a property their own configuration promises, by property (bugs).
    pub violations: BTreeMap<Property, u64>,
    /// Seeds that violated a property their own configuration does not promise (findings).
    pub findings: BTreeMap<Property, u64>,
    /// Failing seeds: every bug (the first [`SHRINK_BUGS`] per property shrunk), then the first
    /// [`FINDINGS_KEPT`] findings per property (shrunk).
    pub failing: Vec<Failing>,
    /// Properties promised by every seed.
    pub promised: Vec<Property>,
    /// For each property, how many seeds promised it (swarm seeds promise different sets).
    pub promised_in: BTreeMap<Property, u64>,
    /// Acquire reply-time percentiles (p50, p99, p999), µs.
    pub reply_us: Option<(u64, u64, u64)>,
    /// The per-slot wait recommended from the observed reply times.
    pub recommended_slot_wait: Option<Duration>,
    /// Determinism self-check: seeds re-run and whether their hashes matched.
    pub determinism: (usize, bool),
}

/// Run `seeds` of `scenario` on `threads` threads. `progress` is called after each seed.
pub fn run_scenario(
    scenario: &str,
    o: &Overrides,
    seeds: &[u64],
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<ScenarioReport, String> {
    // validate once up front so bad input is one clear error
    let first = config_for(scenario, seeds.first().copied().unwrap_or(0), o)?;
    first.lock.validate().map_err(|e| e.to_string())?;
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let start = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = seeds.get(i) else { break };
                    let r = config_for(scenario, seed, o).and_then(|c| run_seed(&c, seed));
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
    });
    let mut results: Vec<(usize, Result<SeedResult, String>)> = rx.iter().collect();
    let wall = start.elapsed().as_secs_f64();
    results.sort_by_key(|(i, _)| *i);
    let mut rep = ScenarioReport {
        scenario: scenario.to_owned(),
        cpu_secs: wall * threads.min(seeds.len()).max(1) as f64,
        ..ScenarioReport::default()
    };
    let mut promised_all: Option<Vec<Property>> = None;
    let mut reply_times = Vec::new();
    let mut bugs_shrunk: BTreeMap<Property, usize> = BTreeMap::new();
    let mut findings_kept: BTreeMap<Property, usize> = BTreeMap::new();
    for (n, (_, r)) in results.into_iter().enumerate() {
        progress(n + 1);
        let r = r?;
        rep.seeds += 1;
        rep.events += r.events;
        rep.acquisitions += r.acquisitions;
        rep.fences_recreated += r.fences_recreated;
        for (k, v) in &r.outcomes {
            *rep.outcomes.entry(k.clone()).or_default() += v;
        }
        if reply_times.len() < 2_000_000 {
            reply_times.extend_from_slice(&r.reply_times);
        }
        let promised = r.config.promised();
        for p in &promised {
            *rep.promised_in.entry(*p).or_default() += 1;
        }
        promised_all = Some(match promised_all {
            None => promised.clone(),
            Some(p) => p.into_iter().filter(|x| promised.contains(x)).collect(),
        });
        let mut seen = Vec::new();
        for v in &r.violations {
            if seen.contains(&v.property) {
                continue;
            }
            seen.push(v.property);
            // judged by this seed's own promises
            let is_bug = promised.contains(&v.property);
            let (bucket, kept, limit) = if is_bug {
                (&mut rep.violations, &mut bugs_shrunk, SHRINK_BUGS)
            } else {
                (&mut rep.findings, &mut findings_kept, FINDINGS_KEPT)
            };
            *bucket.entry(v.property).or_default() += 1;
            let n = kept.entry(v.property).or_default();
            if !is_bug && *n >= limit {
                continue; // findings: the first few per property are enough
            }
            // every bug is listed; shrinking (~60 re-runs) only for the first few per property
            let (shrunk, events) = if *n < limit {
                shrink(&r.config, r.seed, v.property)
            } else {
                (r.config.clone(), 0)
            };
            *n += 1;
            rep.failing.push(Failing {
                seed: r.seed,
                property: v.property,
                promised: is_bug,
                replay: replay_command(&shrunk, r.seed),
                config: crate::scenario::describe(&shrunk),
                shrunk_events: events,
                detail: v.detail.clone(),
                explanation: if is_bug {
                    "promised by this seed's fault model: this is a bug".into()
                } else {
                    explain(v.property, &r.config).into()
                },
            });
        }
    }
    // bugs first, then findings; each group in seed order
    rep.failing.sort_by_key(|f| (!f.promised, f.seed));
    rep.promised = promised_all.unwrap_or_default();
    if !reply_times.is_empty() {
        reply_times.sort_unstable();
        let pct = |p: f64| reply_times[((reply_times.len() - 1) as f64 * p) as usize] / 1_000;
        let (p50, p99, p999) = (pct(0.5), pct(0.99), pct(0.999));
        rep.reply_us = Some((p50, p99, p999));
        rep.recommended_slot_wait = Some(leasehold_core::recommend_slot_wait(
            Duration::from_micros(p999),
        ));
    }
    // determinism self-check: re-run the first seeds and compare trace hashes
    let check: Vec<u64> = seeds.iter().copied().take(2).collect();
    let mut ok = true;
    for seed in &check {
        let cfg = config_for(scenario, *seed, o)?;
        let a = run_seed(&cfg, *seed)?.trace_hash;
        let b = run_seed(&cfg, *seed)?.trace_hash;
        ok &= a == b;
    }
    rep.determinism = (check.len(), ok);
    Ok(rep)
}

fn still_fails(cfg: &SimConfig, seed: u64, property: Property) -> Option<u64> {
    let r = run_seed(cfg, seed).ok()?;
    r.violations
        .iter()
        .any(|v| v.property == property)
        .then_some(r.events)
}

/// Reduce a failing configuration: fewer clients, fewer locks, shorter duration, fewer faults,
/// keeping the same seed and the same broken property. Bounded to ~60 re-runs.
pub fn shrink(cfg: &SimConfig, seed: u64, property: Property) -> (SimConfig, u64) {
    let mut best = cfg.clone();
    let Some(mut events) = still_fails(&best, seed, property) else {
        return (best, 0);
    };
    let mut budget = 60;
    let try_cfg = |cand: SimConfig, best: &mut SimConfig, events: &mut u64, budget: &mut i32| {
        if *budget <= 0 {
            return false;
        }
        *budget -= 1;
        match still_fails(&cand, seed, property) {
            Some(e) if e <= *events => {
                *best = cand;
                *events = e;
                true
            }
            _ => false,
        }
    };
    for k in 2..best.clients {
        let cand = SimConfig {
            clients: k,
            ..best.clone()
        };
        if try_cfg(cand, &mut best, &mut events, &mut budget) {
            break;
        }
    }
    if best.locks > 1 {
        let cand = SimConfig {
            locks: 1,
            ..best.clone()
        };
        try_cfg(cand, &mut best, &mut events, &mut budget);
    }
    while best.duration > Duration::from_secs(2) {
        let d = best.duration / 2;
        let cand = SimConfig {
            duration: d,
            heal_before_end: best.heal_before_end.min(d / 3),
            ..best.clone()
        };
        if !try_cfg(cand, &mut best, &mut events, &mut budget) {
            break;
        }
    }
    // drop faults one at a time
    let all = SimConfig {
        drop_faults: Vec::new(),
        ..best.clone()
    };
    let n = crate::world::World::new(all, seed, false)
        .map(|w| w.fault_count())
        .unwrap_or(0);
    for i in (0..n).rev() {
        let mut cand = best.clone();
        if cand.drop_faults.contains(&i) {
            continue;
        }
        cand.drop_faults.push(i);
        try_cfg(cand, &mut best, &mut events, &mut budget);
    }
    (best, events)
}

fn fmt_dur(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The exact CLI command that replays `cfg` with `seed`.
#[must_use]
pub fn replay_command(cfg: &SimConfig, seed: u64) -> String {
    let mut s = format!(
        "leasehold sim --scenario {} --seed {seed} --clients {} --locks {} --duration {}",
        cfg.scenario,
        cfg.clients,
        cfg.locks,
        fmt_dur(cfg.duration)
    );
    if cfg.fencing != crate::config::Fencing::On {
        s.push_str(" --fencing ");
        s.push_str(cfg.fencing.as_str());
    }
    if !cfg.notifications {
        s.push_str(" --notifications off");
    }
    if cfg.compat() {
        s.push_str(&format!(
            " --compat rueidislock:{}",
            cfg.lock.layout.quorum()
        ));
    }
    if !cfg.drop_faults.is_empty() {
        let mut d = cfg.drop_faults.clone();
        d.sort_unstable();
        let list: Vec<String> = d.iter().map(ToString::to_string).collect();
        s.push_str(&format!(" --drop-faults {}", list.join(",")));
    }
    s
}
