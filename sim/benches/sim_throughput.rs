//! Simulator throughput on `calm`: simulated events per second on one core.
//! Run with `just bench` or `cargo bench -p leasehold-sim --bench sim_throughput`.

use leasehold_sim::{Overrides, config_for, run_seed};

fn main() {
    let seeds: u64 = std::env::var("LEASEHOLD_BENCH_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    for scenario in ["calm", "chaos"] {
        let mut events = 0;
        let start = std::time::Instant::now();
        for seed in 0..seeds {
            let cfg = config_for(scenario, seed, &Overrides::default()).expect("preset");
            events += run_seed(&cfg, seed).expect("valid preset").events;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "sim_throughput: {scenario}: {seeds} seeds, {events} events in {secs:.2}s on one core = {:.0} events/s",
            events as f64 / secs
        );
    }
}
