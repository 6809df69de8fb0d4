//! The explorer: depth-first search over every step of a [`World`], with state hashing, a
//! shortest-counterexample bound, and trace replay.
//!
//! A state is identified by a 128-bit hash of its `Debug` text ([`World::fingerprint`]):
//! every machine's state (phase, round answers, pending requests, timers, lease, rng), every server
//! key and fence counter with their expiry instants, every message in flight, the resource, the
//! leases issued so far, the fault budgets and the absolute time. The only parts left out are
//! those no later step can read (see [`World::fingerprint`]), so two states merge only when
//! every future is the same (up to a hash collision: below 1e-20 for 10^8 states). A state is expanded again when it is reached by a shorter path, so with a depth
//! bound the search still finds every state reachable within the bound, and the first bound at
//! which a violation appears yields the shortest counterexample.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, Instant as WallInstant};

use crate::props::Violation;
use crate::setup::Setup;
use crate::world::{Action, Log, World, at};

/// How far one search went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Steps applied (successor states generated, including revisits).
    pub explored: u64,
    /// Distinct states reached.
    pub distinct: u64,
    /// The longest schedule explored.
    pub depth: usize,
    /// Schedules cut by the depth bound (0: the world's own bounds ended every schedule).
    pub cut: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// A schedule that breaks a promised property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// The steps from the initial state; the last one breaks the property.
    pub schedule: Vec<Action>,
    /// What broke.
    pub violation: Violation,
}

/// The result of checking one world.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Search statistics.
    pub stats: Stats,
    /// The shortest counterexample found, if any.
    pub counterexample: Option<Counterexample>,
}

struct Search<'a> {
    setup: &'a Setup,
    visited: HashMap<u128, u16>,
    path: Vec<Action>,
    best: Option<Counterexample>,
    bound: usize,
    stats: Stats,
    text: String,
    stop_at_first: bool,
}

impl Search<'_> {
    fn fingerprint(&mut self, w: &mut World) -> u128 {
        w.fingerprint(&mut self.text)
    }

    fn dfs(&mut self, w: &World) {
        let depth = self.path.len();
        self.stats.depth = self.stats.depth.max(depth);
        let mut actions = Vec::new();
        w.actions(self.setup, &mut actions);
        let mut log = Log::default();
        for a in actions {
            if self.stop_at_first && self.best.is_some() {
                return;
            }
            if depth + 1 > self.bound {
                self.stats.cut += 1;
                return;
            }
            let mut next = w.clone();
            self.stats.explored += 1;
            if let Err(violation) = next.apply(self.setup, a, &mut log) {
                let mut schedule = self.path.clone();
                schedule.push(a);
                self.bound = schedule.len().saturating_sub(1);
                self.best = Some(Counterexample {
                    schedule,
                    violation,
                });
                continue;
            }
            let h = self.fingerprint(&mut next);
            let d = u16::try_from(depth + 1).unwrap_or(u16::MAX);
            match self.visited.entry(h) {
                Entry::Occupied(e) if *e.get() <= d => continue,
                Entry::Occupied(mut e) => {
                    e.insert(d);
                }
                Entry::Vacant(e) => {
                    e.insert(d);
                    self.stats.distinct += 1;
                }
            }
            self.path.push(a);
            self.dfs(&next);
            self.path.pop();
        }
    }
}

/// Switches the world's core mutant on for this thread while it lives (feature `planted-bugs`).
struct MutantGuard;

impl MutantGuard {
    fn new(setup: &Setup) -> Self {
        #[cfg(feature = "planted-bugs")]
        if let Some(crate::setup::Planted::Core(m)) = setup.planted {
            leasehold_core::planted::set(Some(m));
        }
        let _ = setup;
        MutantGuard
    }
}

impl Drop for MutantGuard {
    fn drop(&mut self) {
        #[cfg(feature = "planted-bugs")]
        leasehold_core::planted::set(None);
    }
}

/// Explore every schedule of `setup` up to `bound` steps (and `setup.max_depth`).
/// `stop_at_first`: return at the first violation instead of the shortest.
#[must_use]
pub fn check_bounded(setup: &Setup, bound: usize, stop_at_first: bool) -> Outcome {
    let started = WallInstant::now();
    let _mutant = MutantGuard::new(setup);
    let bound = setup.max_depth.map_or(bound, |m| m.min(bound));
    let mut search = Search {
        setup,
        visited: HashMap::new(),
        path: Vec::new(),
        best: None,
        bound,
        stats: Stats::default(),
        text: String::with_capacity(16 * 1024),
        stop_at_first,
    };
    match World::new(setup) {
        Ok(mut w) => {
            let h = search.fingerprint(&mut w);
            search.visited.insert(h, 0);
            search.stats.distinct = 1;
            search.dfs(&w);
        }
        Err(e) => {
            search.best = Some(Counterexample {
                schedule: Vec::new(),
                violation: Violation::new("setup", e),
            });
        }
    }
    search.stats.elapsed = started.elapsed();
    Outcome {
        stats: search.stats,
        counterexample: search.best,
    }
}

/// Explore every schedule of `setup` (within `setup.max_depth`); the shortest counterexample.
#[must_use]
pub fn check(setup: &Setup) -> Outcome {
    check_bounded(setup, usize::MAX, false)
}

/// Look for a counterexample with growing depth bounds (cheap when bugs are shallow); the first
/// bound that finds one yields the shortest. Statistics add up over the bounds tried.
#[must_use]
pub fn find_shortest(setup: &Setup, bounds: &[usize]) -> Outcome {
    let mut total = Stats::default();
    for &b in bounds {
        let out = check_bounded(setup, b, false);
        total.explored += out.stats.explored;
        total.distinct = total.distinct.max(out.stats.distinct);
        total.depth = total.depth.max(out.stats.depth);
        total.cut = out.stats.cut;
        total.elapsed += out.stats.elapsed;
        if out.counterexample.is_some() || out.stats.cut == 0 {
            return Outcome {
                stats: total,
                counterexample: out.counterexample,
            };
        }
    }
    Outcome {
        stats: total,
        counterexample: None,
    }
}

/// Replay `schedule` from the initial state and narrate it: one line per step with the time,
/// then what the servers, the machines and the resource did.
#[must_use]
pub fn narrate(setup: &Setup, schedule: &[Action]) -> Vec<String> {
    let _mutant = MutantGuard::new(setup);
    let mut out = Vec::new();
    let mut w = match World::new(setup) {
        Ok(w) => w,
        Err(e) => return vec![e],
    };
    let mut log = Log {
        on: true,
        lines: Vec::new(),
    };
    for (i, a) in schedule.iter().enumerate() {
        let before = w.now;
        let result = w.apply(setup, *a, &mut log);
        let when = if w.now == before {
            format!("t={}", at(w.now))
        } else {
            format!("t={} -> {}", at(before), at(w.now))
        };
        let what = match a {
            Action::Read(c) if !setup.split_sections() => {
                format!("c{c} runs its critical section (read, write) and releases")
            }
            other => other.to_string(),
        };
        out.push(format!("{:>3}. [{when}] {what}", i + 1));
        out.append(&mut log.lines);
        if let Err(v) = result {
            out.push(format!("     VIOLATION {}: {}", v.property, v.detail));
            break;
        }
    }
    out
}
