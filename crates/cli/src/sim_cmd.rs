//! `leasehold sim`.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use leasehold_sim::{
    Fencing, Overrides, PROPERTIES, Property, SCENARIOS, ScenarioReport, config_for, describe,
    run_scenario, trace_seed,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// `--fencing`: what the fenced resource checks tokens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FencingArg {
    /// Reads and writes (promises stale_writes_accepted and lost_updates).
    On,
    /// Writes only (promises stale_writes_accepted; read-modify-write updates can be lost).
    Writes,
    /// Nothing checked.
    Off,
}

impl From<FencingArg> for Fencing {
    fn from(f: FencingArg) -> Self {
        match f {
            FencingArg::On => Fencing::On,
            FencingArg::Writes => Fencing::Writes,
            FencingArg::Off => Fencing::Off,
        }
    }
}

/// The most client lock machines (`--clients` × `--locks`) one seed may hold: about 1 KB each
/// with their queues, so a seed stays within a few hundred MB per thread.
pub const MAX_MACHINES: u64 = 200_000;

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
    /// What the fenced resource checks tokens on: `on` (reads and writes), `writes` (writes only:
    /// read-modify-write updates can be lost), `off`.
    #[arg(long, value_enum)]
    fencing: Option<FencingArg>,
    /// Whether servers push key-change notifications (client tracking) to waiters and holders.
    #[arg(long, value_enum)]
    notifications: Option<OnOff>,
    /// Run every lock in rueidislock's wire dialect (`rueidislock[:K]`, K its KeyMajority,
    /// default 2): no fencing tokens, PXAT expiry from each client's wall clock (skewed by up to
    /// the jump size in `clock-jump`). What that gives up is reported as findings.
    #[arg(long, value_parser = crate::exec_cmd::options::parse_compat)]
    compat: Option<leasehold_redis::Compat>,
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
    // test builds of the simulator (feature `planted-bugs`) have one more field, which the CLI
    // can never set: the default leaves it off
    #[allow(clippy::needless_update)]
    let o = Overrides {
        clients: a.clients.map(|v| v as usize),
        locks: a.locks.map(|v| v as usize),
        duration: a.duration,
        fencing: a.fencing.map(Fencing::from),
        notifications: a.notifications.map(|f| f == OnOff::On),
        slot_wait: a.slot_wait,
        drop_faults: a.drop_faults.clone().map(|f| f.0).unwrap_or_default(),
        compat: a.compat.as_ref().map(|c| match c {
            leasehold_redis::Compat::Rueidislock { key_majority, .. } => *key_majority,
            // a future dialect the simulator does not model yet is refused below
            _ => 0,
        }),
        ..Overrides::default()
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
    // bound what one seed may hold before starting, with the flags' own names
    for scenario in &scenarios {
        let Ok(cfg) = config_for(scenario, a.seed.unwrap_or(0), &o) else {
            continue;
        };
        let machines = cfg.clients as u64 * cfg.locks as u64;
        if machines > MAX_MACHINES {
            return usage_error(&format!(
                "--clients {} × --locks {} = {machines} lock machines per seed; at most {MAX_MACHINES} fit in memory (about 1 KB each, per thread): lower --clients or --locks",
                cfg.clients, cfg.locks
            ));
        }
        let client_hours = cfg.clients as f64 * cfg.duration.as_secs_f64() / 3600.0;
        if client_hours > 500.0 {
            return usage_error(&format!(
                "--clients {} over --duration {:?} is {client_hours:.0} client-hours per seed; at most 500 can be checked (every acquisition is kept for the checker): shorten --duration or lower --clients",
                cfg.clients, cfg.duration
            ));
        }
    }
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
                    return usage_error(&format!(
                        "--trace {}: cannot write the trace: {e}; check that the directory exists and is writable",
                        path.display()
                    ));
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
            // progress only on a terminal; a pipe or a file gets one line per scenario
            let bar = if std::io::stderr().is_terminal() {
                let bar = indicatif::ProgressBar::new(total as u64);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{prefix}: {bar:30} {pos}/{len} seeds  {per_sec}  eta {eta}",
                ) {
                    bar.set_style(style);
                }
                bar.set_prefix(label.clone());
                bar
            } else {
                indicatif::ProgressBar::hidden()
            };
            let progress = |done: usize| bar.set_position(done as u64);
            let t0 = std::time::Instant::now();
            let result = run_scenario(scenario, &o, &seeds, threads, &progress);
            bar.finish_and_clear();
            let mut rep = match result {
                Ok(r) => r,
                Err(e) => return usage_error(&e),
            };
            let secs = t0.elapsed().as_secs_f64();
            eprintln!(
                "{label}: {total} seed(s) on {threads} thread(s) in {secs:.1}s ({:.1} seeds/s)",
                total as f64 / secs.max(1e-9)
            );
            rep.scenario = label;
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
    let mut findings = serde_json::Map::new();
    let mut promised_in = serde_json::Map::new();
    for p in PROPERTIES {
        let count = |m: &std::collections::BTreeMap<Property, u64>| -> serde_json::Value {
            m.get(&p).copied().unwrap_or(0).into()
        };
        violations.insert(p.name().into(), count(&rep.violations));
        findings.insert(p.name().into(), count(&rep.findings));
        promised_in.insert(p.name().into(), count(&rep.promised_in));
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
        "fences_recreated": rep.fences_recreated,
        "outcomes": rep.outcomes,
        "violations": violations,
        "findings": findings,
        "promised": rep.promised,
        "promised_in_seeds": promised_in,
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
    if rep.fences_recreated > 0 {
        println!(
            "  fence counters re-created from TIME after expiry or loss: {}",
            rep.fences_recreated
        );
    }
    for p in PROPERTIES {
        println!("  {p:<22} {}", verdict(rep, p));
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

/// One property's line: bugs and findings counted separately, each judged by its seed's own
/// promises, so a swarm's findings can never hide a bug.
fn verdict(rep: &ScenarioReport, p: Property) -> String {
    let promised_in = rep.promised_in.get(&p).copied().unwrap_or(0);
    let bugs = rep.violations.get(&p).copied().unwrap_or(0);
    let finds = rep.findings.get(&p).copied().unwrap_or(0);
    let scope = if promised_in == rep.seeds {
        "promised".to_owned()
    } else if promised_in == 0 {
        "not promised".to_owned()
    } else {
        format!("promised in {promised_in} of {} seeds", rep.seeds)
    };
    let mut parts = Vec::new();
    if bugs > 0 {
        parts.push(format!("{bugs} BUG{}", if bugs == 1 { "" } else { "s" }));
    }
    if finds > 0 {
        parts.push(format!(
            "{finds} finding{} outside the fault model",
            if finds == 1 { "" } else { "s" }
        ));
    }
    match (parts.is_empty(), promised_in) {
        (true, 0) => format!("{scope}, none seen"),
        (true, _) => format!("ok ({scope})"),
        (false, _) => format!("{} ({scope})", parts.join(", ")),
    }
}
