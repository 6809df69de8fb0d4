//! # leasehold-sim
//!
//! A deterministic, single-threaded discrete-event simulator that drives the real
//! `leasehold-core` machines against simulated Redis servers (the core's reference model of the
//! wire protocol, each on its own clock), a network with injected latency, resets and partitions,
//! client pauses and clock drift, crash-restarts and failovers; and a checker that judges mutual
//! exclusion, stale writes, token order, liveness, misclassified outcomes and the validity
//! arithmetic on the history in true time. One seed and one configuration give one trace, byte
//! for byte.
//!
//! **Architecture invariant:** no wall-clock time or OS randomness inside a run; seeds run on any
//! number of threads with identical results.

pub mod check;
pub mod config;
pub mod faults;
pub mod rng;
pub mod runner;
pub mod scenario;
pub mod world;

pub use check::history;
pub use check::{PROPERTIES, Property};
#[cfg(feature = "planted-bugs")]
pub use config::PlantedBug;
pub use config::{Faults, Fencing, Latency, SimConfig};
pub use runner::{
    Failing, ScenarioReport, SeedResult, replay_command, run_scenario, run_seed, shrink, trace_seed,
};
pub use scenario::{Overrides, SCENARIOS, config_for, describe};
pub use world::{LiveLock, LogLine, World};
