//! `leasehold`: the single command users run.

mod sim_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Redis lease locks, shown safe under faults.
#[derive(Debug, Parser)]
#[command(name = "leasehold", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the deterministic simulator: lock clients against simulated Redis with injected faults,
    /// checked for mutual exclusion, fencing-token order, liveness and typed-outcome accuracy.
    Sim(sim_cmd::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim_cmd::run(&args),
    }
}
