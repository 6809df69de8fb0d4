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

# Campaigns at scale: every scenario over SEEDS seeds (0 promised violations expected); prints
# seeds/s per scenario. 10,000 seeds of every scenario take about 15 minutes on 2 cores.
soak SEEDS="10000":
    cargo run --release -- sim --seeds {{SEEDS}}

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
