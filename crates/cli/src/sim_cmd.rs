//! `leasehold sim`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use leasehold_sim::{
    Overrides, PROPERTIES, SCENARIOS, ScenarioReport, config_for, describe, run_scenario,
    trace_seed,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Parse durations written like `500ms`, `3s`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}; write durations like 500ms, 3s or 1m"))
}

/// A comma-separated list of fault indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultList(Vec<usize>);

fn parse_drop(s: &str) -> Result<FaultList, String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("{x:?} is not a fault index"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(FaultList)
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Scenario to run (default: every scenario).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    scenario: Option<String>,
    /// Number of seeds per scenario (seeds 0..N).
    #[arg(long, conflicts_with = "seed", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    seeds: Option<u64>,
    /// Run exactly this seed (for replays).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of clients (overrides the scenario).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    clients: Option<u64>,
    /// Number of lock names (overrides the scenario).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    locks: Option<u64>,
    /// Simulated (virtual) time per seed, e.g. 30s.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Whether the resource rejects writes with lower fencing tokens.
    #[arg(long, value_enum)]
    fencing: Option<OnOff>,
    /// Whether servers push key-change notifications (client tracking) to waiters and holders.
    #[arg(long, value_enum)]
    notifications: Option<OnOff>,
    /// Per-slot reply wait (try_next_after) for every acquire, e.g. 20ms.
    #[arg(long, value_parser = parse_duration)]
    slot_wait: Option<Duration>,
    /// Fault indices to drop from the schedule (printed by shrunk replays).
    #[arg(long, value_parser = parse_drop)]
    drop_faults: Option<FaultList>,
    /// Print one JSON object per scenario, one per line.
    #[arg(long)]
    json: bool,
    /// Write the full event trace of one seed (--seed, or the first seed) as JSON lines.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
}

fn default_seeds(scenario: &str) -> u64 {
    match scenario {
        "seed-stress" => 2,
        "chaos" => 60,
        _ => 30,
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

pub fn run(a: &SimArgs) -> ExitCode {
    let o = Overrides {
        clients: a.clients.map(|v| v as usize),
        locks: a.locks.map(|v| v as usize),
        duration: a.duration,
        fencing: a.fencing.map(|f| f == OnOff::On),
        notifications: a.notifications.map(|f| f == OnOff::On),
        slot_wait: a.slot_wait,
        drop_faults: a.drop_faults.clone().map(|f| f.0).unwrap_or_default(),
    };
    if let Some(d) = a.duration
        && (d < Duration::from_secs(1) || d > Duration::from_secs(24 * 3600))
    {
        return usage_error(&format!("--duration {d:?} must be between 1s and 24h"));
    }
    let scenarios: Vec<&str> = match &a.scenario {
        Some(s) => vec![s.as_str()],
        None => SCENARIOS.to_vec(),
    };
    let threads = a
        .threads
        .map(|t| t as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Some(path) = &a.trace {
        let scenario = scenarios[0];
        let seed = a.seed.unwrap_or(0);
        let cfg = match config_for(scenario, seed, &o) {
            Ok(c) => c,
            Err(e) => return usage_error(&e),
        };
        match trace_seed(&cfg, seed) {
            Ok((lines, hash)) => {
                let body = lines.join("\n") + "\n";
                if let Err(e) = std::fs::write(path, body) {
                    eprintln!("error: cannot write trace to {}: {e}", path.display());
                    return ExitCode::from(1);
                }
                eprintln!(
                    "trace of {scenario} seed {seed}: {} events, hash {hash:016x}, written to {}",
                    lines.len(),
                    path.display()
                );
            }
            Err(e) => return usage_error(&e),
        }
    }
    let mut failed = false;
    let started = std::time::Instant::now();
    for scenario in scenarios {
        let seeds: Vec<u64> = match (a.seed, a.seeds) {
            (Some(s), _) => vec![s],
            (None, Some(n)) => (0..n).collect(),
            (None, None) => (0..default_seeds(scenario)).collect(),
        };
        // seed-stress compares the seed problem's 20µs per-slot wait with 100ms in one run
        let variants: Vec<(String, Overrides)> =
            if scenario == "seed-stress" && o.slot_wait.is_none() {
                [Duration::from_micros(20), Duration::from_millis(100)]
                    .into_iter()
                    .map(|w| {
                        (
                            format!("seed-stress/slot_wait={w:?}"),
                            Overrides {
                                slot_wait: Some(w),
                                ..o.clone()
                            },
                        )
                    })
                    .collect()
            } else {
                vec![(scenario.to_owned(), o.clone())]
            };
        for (label, o) in variants {
            let total = seeds.len();
            let progress = |done: usize| {
                if !a.json || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    eprint!("\r{scenario}: {done}/{total} seeds checked");
                    let _ = std::io::stderr().flush();
                }
            };
            eprint!("{scenario}: running {total} seed(s) on {threads} thread(s)...");
            let mut rep = match run_scenario(scenario, &o, &seeds, threads, &progress) {
                Ok(r) => r,
                Err(e) => return usage_error(&e),
            };
            rep.scenario = label;
            eprintln!();
            if a.seed.is_some()
                && !a.json
                && let Ok(cfg) = config_for(scenario, seeds[0], &o)
            {
                println!("config: {}", describe(&cfg));
            }
            if rep.violations.values().any(|v| *v > 0) || !rep.determinism.1 {
                failed = true;
            }
            if a.json {
                println!("{}", json(&rep));
            } else {
                print_table(&rep);
            }
        }
    }
    eprintln!("total wall time {:.1}s", started.elapsed().as_secs_f64());
    if failed {
        eprintln!(
            "a promised property was violated: replay the failing seeds above (each line is a command) and attach the trace (--trace FILE) to a bug report"
        );
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn json(rep: &ScenarioReport) -> String {
    let mut violations = serde_json::Map::new();
    for p in PROPERTIES {
        violations.insert(p.into(), rep.violations.get(p).copied().unwrap_or(0).into());
    }
    let mut findings = serde_json::Map::new();
    for (k, v) in &rep.findings {
        findings.insert(k.clone(), (*v).into());
    }
    let failing: Vec<serde_json::Value> = rep
        .failing
        .iter()
        .map(|f| {
            serde_json::json!({
                "seed": f.seed, "property": f.property, "replay": f.replay,
                "promised": f.promised, "shrunk_events": f.shrunk_events,
                "detail": f.detail, "explanation": f.explanation, "config": f.config,
            })
        })
        .collect();
    serde_json::json!({
        "scenario": rep.scenario,
        "seeds": rep.seeds,
        "events": rep.events,
        "events_per_sec": events_per_sec(rep),
        "acquisitions": rep.acquisitions,
        "outcomes": rep.outcomes,
        "violations": violations,
        "findings": findings,
        "promised": rep.promised,
        "failing_seeds": failing,
        "reply_us": rep.reply_us.map(|(a, b, c)| serde_json::json!({"p50": a, "p99": b, "p999": c})),
        "recommended_slot_wait_us": rep.recommended_slot_wait.map(|d| d.as_micros() as u64),
        "determinism": {"seeds_rerun": rep.determinism.0, "identical": rep.determinism.1},
    })
    .to_string()
}

fn events_per_sec(rep: &ScenarioReport) -> u64 {
    if rep.cpu_secs > 0.0 {
        (rep.events as f64 / rep.cpu_secs) as u64
    } else {
        0
    }
}

fn print_table(rep: &ScenarioReport) {
    println!("== {} ==", rep.scenario);
    println!(
        "  seeds {:>6}   events {:>10}   events/s/core {:>9}   acquisitions {:>8}",
        rep.seeds,
        rep.events,
        events_per_sec(rep),
        rep.acquisitions
    );
    let outcomes: Vec<String> = rep
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("  outcomes   {}", outcomes.join("  "));
    for p in PROPERTIES {
        let promised = rep.promised.contains(&p);
        let bugs = rep.violations.get(p).copied().unwrap_or(0);
        let finds = rep.findings.get(p).copied().unwrap_or(0);
        let verdict = match (promised, bugs, finds) {
            (true, 0, _) => "ok".to_owned(),
            (true, n, _) => format!("VIOLATED in {n} seed(s): BUG"),
            (false, _, 0) => "not promised, none seen".to_owned(),
            (false, _, n) => format!("not promised: finding in {n} seed(s)"),
        };
        println!("  {p:<22} {verdict}");
    }
    if let (Some((p50, p99, p999)), Some(w)) = (rep.reply_us, rep.recommended_slot_wait) {
        println!(
            "  acquire reply time p50 {p50}µs p99 {p99}µs p99.9 {p999}µs -> recommended slot_wait (try_next_after) {w:?}"
        );
    }
    println!(
        "  determinism: {} seed(s) re-run twice, {}",
        rep.determinism.0,
        if rep.determinism.1 {
            "identical traces"
        } else {
            "TRACES DIFFER: BUG"
        }
    );
    for f in &rep.failing {
        let kind = if f.promised { "BUG" } else { "finding" };
        println!("  {kind} {} seed {}: {}", f.property, f.seed, f.detail);
        if !f.promised {
            println!("      why: {}", f.explanation);
        }
        println!("      config: {}", f.config);
        println!(
            "      replay ({} events after shrinking): {}",
            f.shrunk_events, f.replay
        );
    }
}
