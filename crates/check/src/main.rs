//! `leasehold-check`: run the model checker's worlds and print their numbers.
//!
//! `leasehold-check` runs the full suite, `--reduced CUT` the CI suite (every world's depth bound
//! lowered by CUT steps), `--planted` the negative
//! controls (build with `--features planted-bugs` for the core mutants), `--only NAME` one world.
//! Exit 0 when every promised property held (or, with `--planted`, when every control that must
//! yield a counterexample did), 1 otherwise, 2 for bad usage.

use std::process::ExitCode;

use leasehold_check::{Outcome, Setup, configs, explore};

fn print_outcome(setup: &Setup, out: &Outcome) {
    let s = &out.stats;
    println!(
        "{:<32} {:>12} {:>11} {:>6} {:>9.1}s  {}",
        setup.name,
        s.explored,
        s.distinct,
        s.depth,
        s.elapsed.as_secs_f64(),
        if s.cut == 0 {
            "exhaustive"
        } else {
            "depth-bounded"
        }
    );
    if let Some(cx) = &out.counterexample {
        println!(
            "  counterexample ({} steps): {}: {}",
            cx.schedule.len(),
            cx.violation.property,
            cx.violation.detail
        );
        for line in explore::narrate(setup, &cx.schedule) {
            println!("    {line}");
        }
        println!(
            "    simulator replay: none (the simulator draws latencies from its seed; this schedule is the checker's own)"
        );
    }
}

fn header() {
    println!(
        "{:<32} {:>12} {:>11} {:>6} {:>10}  bounds",
        "world", "explored", "distinct", "depth", "time"
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut reduced: Option<usize> = None;
    let mut planted = false;
    let mut only: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--reduced" => {
                i += 1;
                match args.get(i).and_then(|a| a.parse().ok()) {
                    Some(d) => reduced = Some(d),
                    None => {
                        eprintln!("--reduced needs a number of steps");
                        return ExitCode::from(2);
                    }
                }
            }
            "--planted" => planted = true,
            "--only" => {
                i += 1;
                only = args.get(i).cloned();
            }
            other => {
                eprintln!(
                    "unknown argument {other}; usage: leasehold-check [--reduced CUT] [--planted] [--only NAME]"
                );
                return ExitCode::from(2);
            }
        }
        i += 1;
    }
    let keep = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if planted {
        return run_planted(&keep);
    }
    let worlds = match reduced {
        Some(d) => configs::reduced(d),
        None => configs::full(),
    };
    header();
    let mut failed = 0;
    for setup in worlds.iter().filter(|s| keep(s.name)) {
        println!("# {}: {}", setup.name, setup.describe());
        println!("#   promised: {}", setup.promised().join(", "));
        let out = explore::check(setup);
        print_outcome(setup, &out);
        failed += usize::from(out.counterexample.is_some());
    }
    if failed == 0 {
        println!("every promised property held in every world");
        ExitCode::SUCCESS
    } else {
        println!("{failed} world(s) broke a promised property");
        ExitCode::from(1)
    }
}

fn run_planted(keep: &dyn Fn(&str) -> bool) -> ExitCode {
    header();
    let mut bad = 0;
    for control in configs::planted()
        .into_iter()
        .filter(|c| keep(c.setup.name))
    {
        let setup = &control.setup;
        println!("# {}: {}", setup.name, setup.describe());
        let out = explore::find_shortest(setup, &control.bounds);
        print_outcome(setup, &out);
        match (&control.expect, &out.counterexample) {
            (Ok(()), Some(_)) => println!("  ok: the planted bug yields a counterexample"),
            (Ok(()), None) => {
                println!("  MISSED: no counterexample");
                bad += 1;
            }
            (Err(why), None) => println!(
                "  ok: no counterexample within {} steps, as expected: {why}",
                control.bounds.last().copied().unwrap_or(0)
            ),
            (Err(_), Some(_)) => {
                println!("  UNEXPECTED: a counterexample for a mutant argued to be equivalent");
                bad += 1;
            }
        }
    }
    if bad == 0 {
        println!("every negative control behaved as expected");
        ExitCode::SUCCESS
    } else {
        println!("{bad} negative control(s) did not");
        ExitCode::from(1)
    }
}
