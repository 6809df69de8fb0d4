//! The worlds `just check-model` checks, and the negative controls of `just check-model-planted`.

use std::time::Duration;

use leasehold_core::{Dialect, SlotLayout};

use crate::setup::{Planted, Setup};

const SINGLE: SlotLayout = SlotLayout::Single;
const KEYS: SlotLayout = SlotLayout::KeyMajority { k: 2 };
const INSTANCES: SlotLayout = SlotLayout::Instances { n: 3 };

fn world(
    name: &'static str,
    layout: SlotLayout,
    clients: usize,
    depth: usize,
    f: impl FnOnce(&mut Setup),
) -> Setup {
    let mut s = Setup::new(name, layout, clients);
    s.max_depth = Some(depth);
    f(&mut s);
    s
}

/// The full suite: every layout, each fault on its own, each world's depth bound chosen so it
/// finishes within about three minutes on a 2-core machine.
#[must_use]
pub fn full() -> Vec<Setup> {
    vec![
        world("single-loss", SINGLE, 2, 18, |s| s.drops = 1),
        world("single-restart", SINGLE, 2, 18, |s| s.restarts = 1),
        world("single-force-release", SINGLE, 2, 18, |s| {
            s.force_releases = 1
        }),
        world("single-pause", SINGLE, 2, 18, |s| s.pauses = 1),
        world("single-wait", SINGLE, 2, 15, |s| {
            s.wait = Some(Duration::from_millis(60));
        }),
        world("single-3-clients", SINGLE, 3, 15, |_| {}),
        world("keys-1-client-loss", KEYS, 1, 16, |s| s.drops = 1),
        world("keys-restart", KEYS, 2, 10, |s| s.restarts = 1),
        world("instances-1-client-restart", INSTANCES, 1, 15, |s| {
            s.restarts = 1
        }),
        world("instances-delays", INSTANCES, 2, 10, |_| {}),
        world("instances-restart", INSTANCES, 2, 9, |s| s.restarts = 1),
        // grants of one instant carry one token: the write-back is skipped
        world("instances-same-time", INSTANCES, 2, 10, |s| {
            s.same_time = true
        }),
        world("instances-same-time-restart", INSTANCES, 2, 9, |s| {
            s.same_time = true;
            s.restarts = 1;
        }),
        world("keys-same-time-restart", KEYS, 2, 10, |s| {
            s.same_time = true;
            s.restarts = 1;
        }),
        world("rueidislock-keys-1-client-loss", KEYS, 1, 18, |s| {
            s.dialect = Dialect::Rueidislock;
            s.drops = 1;
        }),
        world("rueidislock-keys-2-clients", KEYS, 2, 10, |s| {
            s.dialect = Dialect::Rueidislock;
        }),
    ]
}

/// The CI suite: the same worlds, each `cut` steps shallower.
#[must_use]
pub fn reduced(cut: usize) -> Vec<Setup> {
    full()
        .into_iter()
        .map(|mut s| {
            s.max_depth = s.max_depth.map(|d| d.saturating_sub(cut).max(1));
            s
        })
        .collect()
}

/// One negative control: a planted bug, the world that exposes it, and whether a counterexample
/// is expected (`Err(why)` when the bug cannot show under any schedule).
pub struct Control {
    /// The world, with its planted bug set.
    pub setup: Setup,
    /// Depth bounds tried in turn (the first that finds a counterexample gives the shortest).
    pub bounds: Vec<usize>,
    /// `Ok(())`: a counterexample must be found; `Err(why)`: none can exist.
    pub expect: Result<(), &'static str>,
}

fn control(
    name: &'static str,
    layout: SlotLayout,
    planted: Planted,
    f: impl FnOnce(&mut Setup),
) -> Control {
    let mut s = Setup::new(name, layout, 2);
    s.planted = Some(planted);
    f(&mut s);
    Control {
        setup: s,
        bounds: vec![6, 9, 12, 14, 16, 18],
        expect: Ok(()),
    }
}

/// Every negative control.
#[must_use]
pub fn planted() -> Vec<Control> {
    #[allow(unused_mut)]
    let mut v = vec![
        control("planted-no-fencing", SINGLE, Planted::NoFencing, |s| {
            s.pauses = 1
        }),
        control(
            "planted-validity-from-reply",
            SINGLE,
            Planted::ValidityFromReply,
            |s| {
                s.clients = 1;
                s.tick = Some(Duration::from_millis(10));
            },
        ),
        control(
            "planted-extend-without-compare",
            SINGLE,
            Planted::ExtendWithoutCompare,
            |s| {
                s.force_releases = 1;
            },
        ),
        control(
            "planted-counter-from-zero",
            SINGLE,
            Planted::CounterFromZero,
            |s| s.restarts = 1,
        ),
    ];
    #[cfg(feature = "planted-bugs")]
    {
        use leasehold_core::planted::Mutant;
        // the write-back goes to exactly the quorum granted first, so `acks + pending > quorum`
        // never holds: the mutant instead misses an errored write-back, waits out slot_wait and
        // reports SlowReplies naming no slow slot; a restart produces the error
        v.push(control(
            "mutant-fence-reply-gt",
            INSTANCES,
            Planted::Core(Mutant::FenceReplyGt),
            |s| {
                s.clients = 1;
                s.restarts = 1;
            },
        ));
        v.push(control(
            "mutant-prune-pending-gt",
            SINGLE,
            Planted::Core(Mutant::PrunePendingGt),
            |s| {
                s.clients = 1;
                s.attempts = 2;
                s.drops = 1;
                s.horizon = Duration::from_millis(900);
            },
        ));
        v.push(Control {
            bounds: vec![8],
            expect: Err("the bound `p.slot < last_reply_time.len()` guards an index that is always below the layout's slot count, the table's length; `<=` differs only at p.slot == that count, which no request has"),
            ..control("mutant-handle-reply-le", INSTANCES, Planted::Core(Mutant::HandleReplyLe), |s| {
                s.clients = 2;
            })
        });
        v.push(control(
            "mutant-contended-on-any-held",
            INSTANCES,
            Planted::Core(Mutant::ContendedOnAnyHeld),
            |s| {
                s.clients = 2;
            },
        ));
    }
    v
}
