//! `leasehold doctor`: flags and printing only; the measurements and findings live in
//! `leasehold_tui::doctor`.
//!
//! Exit status: 0 when doctor ran (findings or not), 1 when it could not connect (or the server
//! refused `PING`), 2 for bad usage (a flag, a URL that does not parse).

use std::process::ExitCode;

use clap::Args;
use leasehold_tui::doctor::{DoctorOptions, run};
use leasehold_tui::layout::Targets;

/// `--pattern`: Redis glob rules; empty or malformed patterns are usage errors (exit 2).
fn parse_pattern(s: &str) -> Result<String, String> {
    leasehold_tui::glob::validate(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Redis to examine (read-only: nothing is written).
    #[arg(long)]
    redis: String,
    /// One JSON object (`findings`, `reply_us`, `settings`, ...) instead of text.
    #[arg(long)]
    json: bool,
    /// Most commands per second doctor may send, everything included (a token bucket).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    budget: u32,
    /// Reply-time samples per command shape (PING, and EVAL_RO on Redis 7.0+).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    samples: u32,
    /// leasehold key prefix to look under (repeatable; default `leasehold`).
    #[arg(long = "prefix")]
    prefixes: Vec<String>,
    /// rueidislock key prefix (repeatable; default `rueidislock`).
    #[arg(long = "rueidis-prefix")]
    rueidis: Vec<String>,
    /// Glob of plain `SET NX` lock keys (redsync, redis-py, rslock style), e.g. `lock:*`.
    #[arg(long = "pattern", value_parser = parse_pattern)]
    patterns: Vec<String>,
    /// Do not look for Redisson lock hashes (that walk covers every hash key).
    #[arg(long)]
    no_redisson: bool,
}

pub fn run_doctor(args: DoctorArgs) -> ExitCode {
    let d = Targets::default();
    let mut opts = DoctorOptions::new(args.redis.clone());
    opts.budget = args.budget;
    opts.samples = args.samples;
    opts.targets = Targets {
        leasehold: if args.prefixes.is_empty() {
            d.leasehold
        } else {
            args.prefixes
        },
        rueidislock: if args.rueidis.is_empty() {
            d.rueidislock
        } else {
            args.rueidis
        },
        plain: args.patterns,
        redisson: !args.no_redisson,
    };
    let Some(rt) = crate::runtime("doctor") else {
        return ExitCode::from(1);
    };
    match rt.block_on(run(&opts)) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("leasehold doctor: cannot write JSON: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("leasehold doctor: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
