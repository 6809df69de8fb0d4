# Thin wrappers over cargo: nobody *needs* just. `just --list` shows them.

# Run every test (what the README says).
test:
    cargo test --workspace

# What CI runs (.ci/run): installs, fmt, clippy, tests, sim smoke, fuzz smoke.
ci:
    bash .ci/run

# The main job: every simulator scenario over the default seeds.
sim *ARGS:
    cargo run --release -- sim {{ARGS}}

# Campaigns at scale: every safety scenario over SEEDS seeds (0 promised violations expected),
# printing seeds/s per scenario (about 10 minutes for 10,000 each on 2 cores), then seed-stress
# (200 clients per seed, ~1 s each) over SEEDS/100 seeds.
soak SEEDS="10000":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release --locked
    for s in calm latency partition gc-pause clock-jump restart-no-fsync failover force-release fence-expiry chaos; do
        ./target/release/leasehold sim --scenario "$s" --seeds {{SEEDS}}
    done
    ./target/release/leasehold sim --scenario seed-stress --seeds $(( ({{SEEDS}} + 99) / 100 ))

# Fuzz the core's schedules against the reference model (nightly + cargo-fuzz).
fuzz SECONDS="60":
    cd fuzz && cargo +nightly fuzz run core_schedule -- -max_total_time={{SECONDS}}

# Benchmarks that print numbers: the core's cycle cost, simulator throughput, and `leasehold
# bench` (lock latency, throughput and hand-off on a private redis-server vs the round-trip floor).
bench:
    cargo bench -p leasehold-core --bench core_cycle
    cargo bench -p leasehold-sim --bench sim_throughput
    cargo bench -p leasehold-tui --bench tui_render
    cargo run --release -- bench

# Live dashboard of a Redis's locks (pass --redis URL; the simulator source is not built yet).
watch *ARGS:
    cargo run --release -- watch {{ARGS}}

# loom models of the adapter's in-process shared state (exhaustive; separate target dir).
loom:
    RUSTFLAGS="--cfg leasehold_loom" cargo test -p leasehold-redis --test loom_state --release --target-dir target-loom

# Exhaustive model check of the lock protocol (crates/check): every schedule of small worlds,
# every layout, with states explored, distinct states, depth and time per world. Exit 1 on a
# violation of a promised property (the shortest counterexample is printed).
check-model *ARGS:
    cargo run --release -p leasehold-check -- {{ARGS}}

# Negative controls: the model checker must find every planted bug and core mutant (exit 0 only
# then; the one equivalent mutant must yield none).
check-model-planted:
    cargo run --release -p leasehold-check --features planted-bugs -- --planted

# Mutation testing (`cargo install cargo-mutants --locked`): every mutant of the core (and of the
# simulator's checker) must be caught by a test or listed in ARCHITECTURE.md ("Mutation testing")
# as equivalent. CPU heavy (each mutant rebuilds and runs the tests): one job by default; pass
# cargo-mutants arguments to narrow it, e.g. `just mutants --file crates/core/src/machine.rs
# --shard 1/8 --sharding round-robin`.
mutants *ARGS:
    cargo mutants --package leasehold-core --jobs 1 {{ARGS}}
    cargo mutants --package leasehold-sim --file 'sim/src/check/**' --jobs 1 {{ARGS}}
