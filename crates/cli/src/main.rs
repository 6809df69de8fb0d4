//! `leasehold`: the single command users run.

mod bench_cmd;
mod doctor_cmd;
mod exec_cmd;
mod sim_cmd;
mod watch_cmd;

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
    /// Run a command under a Redis lease (a distributed flock): the lease is extended while it
    /// runs and released when it exits; if the lease is lost, the command is terminated.
    Exec(exec_cmd::ExecArgs),
    /// Measure lock latency, throughput and hand-off on a real Redis against the round-trip floor,
    /// the core's own cost and the simulator's speed, and recommend settings.
    Bench(bench_cmd::BenchArgs),
    /// Print the locks found in Redis once, as a table or JSON (one object per lock).
    Inspect(watch_cmd::InspectArgs),
    /// Live dashboard of the locks in a Redis: holders, TTL countdowns, states (read-only).
    Watch(watch_cmd::WatchArgs),
    /// Examine a Redis that holds locks (read-only, within a command budget): reply times,
    /// stalls, clock skew, eviction, persistence, replicas, lock keys; findings with evidence and
    /// recommended settings for rueidislock and leasehold. Exit 0 ran, 1 could not connect, 2 usage.
    Doctor(doctor_cmd::DoctorArgs),
}

/// The tokio runtime of the commands that talk to Redis. On failure it says so for `cmd`.
pub(crate) fn runtime(cmd: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("leasehold {cmd}: cannot start the runtime: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim_cmd::run(&args),
        Command::Exec(args) => exec_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Inspect(args) => watch_cmd::inspect(args),
        Command::Watch(args) => watch_cmd::watch(args),
        Command::Doctor(args) => doctor_cmd::run_doctor(args),
    }
}
