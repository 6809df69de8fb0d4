//! Prints one line per (scenario, seed): the trace hash and a hash of the full JSON trace, for
//! before/after identity checks of refactors (`cargo run --release -p leasehold-sim --example
//! trace_hashes -- 50 > before.txt`, change, run again, `diff`). With a planted bug in a few
//! scenarios too, so the negative controls' paths are covered.

use leasehold_sim::{Overrides, PlantedBug, SCENARIOS, config_for, trace_seed};

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn main() -> Result<(), String> {
    let seeds: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(20), |s| s.parse())
        .map_err(|e| format!("seeds: {e}"))?;
    let planted = [
        None,
        Some(PlantedBug::NoFencing),
        Some(PlantedBug::ValidityFromReply),
        Some(PlantedBug::WallClock),
        Some(PlantedBug::ExtendWithoutCompare),
        Some(PlantedBug::CounterFromZero),
    ];
    for bug in planted {
        // the planted runs on a few seeds only: they exist to cover the bugs' code paths
        let n = if bug.is_none() { seeds } else { seeds.min(10) };
        for scenario in SCENARIOS {
            let o = Overrides {
                planted: bug,
                ..Overrides::default()
            };
            for seed in 0..n {
                let cfg = config_for(scenario, seed, &o)?;
                let (lines, hash) = trace_seed(&cfg, seed)?;
                let mut h = 0xcbf2_9ce4_8422_2325;
                for l in &lines {
                    h = fnv(l.as_bytes(), h);
                    h = fnv(b"\n", h);
                }
                println!(
                    "{bug:?} {scenario} {seed} {hash:016x} {h:016x} {}",
                    lines.len()
                );
            }
        }
    }
    Ok(())
}
