//! Figures that need no Redis: the core machine's cost, the simulator's speed, and the settings
//! recommended from the measured round trips.

use std::time::{Duration, Instant};

use leasehold_core::testkit::bench_cycle;
use leasehold_core::{HolderId, Lock, LockConfig, LockName, recommend_slot_wait};

use crate::report::{Core, Recommend, Sim};

/// ns per acquire → extend → release cycle of the core machine alone (allocations per cycle are
/// counted by `cargo bench -p leasehold-core --bench core_cycle`, whose build has the counting
/// allocator; the shipping binary does not).
#[must_use]
pub fn core_cost() -> Core {
    let (Ok(name), Ok(holder)) = (LockName::new("bench"), HolderId::new("bench")) else {
        return Core::default();
    };
    let Ok(mut l) = Lock::new(LockConfig::default(), name, holder, 42) else {
        return Core::default();
    };
    let mut t = leasehold_core::Instant::from_millis(1);
    for _ in 0..10_000 {
        if !bench_cycle(&mut l, &mut t) {
            return Core::default();
        }
    }
    let n = 500_000u32;
    let s = Instant::now();
    for _ in 0..n {
        bench_cycle(&mut l, &mut t);
    }
    Core {
        ns_per_cycle: (s.elapsed().as_nanos() as f64 / f64::from(n)).round(),
    }
}

/// Simulated events per second on `calm`, one core, for about `budget`.
#[must_use]
pub fn sim_speed(budget: Duration) -> Sim {
    let o = leasehold_sim::Overrides::default();
    let (mut events, mut seed) = (0u64, 0u64);
    let s = Instant::now();
    while s.elapsed() < budget || seed == 0 {
        if let Ok(cfg) = leasehold_sim::config_for("calm", seed, &o)
            && let Ok(r) = leasehold_sim::run_seed(&cfg, seed)
        {
            events += r.events;
        }
        seed += 1;
    }
    Sim {
        events_per_sec: (events as f64 / s.elapsed().as_secs_f64()).round(),
        seeds: seed,
    }
}

/// Settings from the measured p99.9 round trip (the slower of `PING` and half a floor cycle).
#[must_use]
pub fn recommend(p999_us: f64) -> Recommend {
    let slot_wait = recommend_slot_wait(Duration::from_micros(p999_us.max(0.0) as u64));
    let slot_wait_us = u64::try_from(slot_wait.as_micros()).unwrap_or(u64::MAX);
    let ttl_ms = ((slot_wait_us / 1_000) * 100).clamp(1_000, 30_000);
    Recommend {
        slot_wait_us,
        ttl_ms,
        extend_interval_ms: ttl_ms / 3,
        why: vec![
            format!(
                "slot_wait {slot_wait_us}µs: twice the p99.9 round trip ({p999_us}µs), at least 1ms (leasehold_core::recommend_slot_wait, the rule SlowReplies and the simulator use)"
            ),
            format!(
                "ttl {ttl_ms}ms: 100x slot_wait, at least 1s, so a few slow rounds and a pause cannot eat the lease"
            ),
            format!(
                "extend every {}ms (ttl/3): two extensions can fail before the lease runs out",
                ttl_ms / 3
            ),
        ],
    }
}
