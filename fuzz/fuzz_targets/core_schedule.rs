//! Decode arbitrary bytes into a schedule of steps for several lock machines against the reference
//! Redis model, and check the same invariants as the proptest suite (see `leasehold_core::testkit`).
#![no_main]

use arbitrary::{Result, Unstructured};
use leasehold_core::SlotLayout;
use leasehold_core::testkit::{Scenario, Step, run};
use libfuzzer_sys::fuzz_target;

fn step(u: &mut Unstructured<'_>) -> Result<Step> {
    let (a, b): (u8, u8) = (u.arbitrary()?, u.arbitrary()?);
    Ok(match u.int_in_range(0u8..=13)? {
        0 => Step::Acquire { client: a, mode: b, wait_ms: u.int_in_range(0..=400)? },
        1 => Step::Release { client: a },
        2 => Step::Cancel { client: a },
        3 | 4 => Step::Execute { pick: a },
        5 | 6 => Step::Deliver { pick: a },
        7 => Step::Duplicate { pick: a },
        8 => Step::DropReply { pick: a },
        9 => Step::ErrorReply { pick: a },
        10 => Step::Forged { client: a, kind: b },
        11 => Step::Advance { ms: u.int_in_range(1..=400)? },
        12 => Step::Notify { client: a, slot: b },
        _ => match b % 3 {
            0 => Step::Disconnect { client: a, slot: b / 3 },
            1 => Step::Reconnect { client: a, slot: b / 3 },
            _ => Step::Restart { slot: a },
        },
    })
}

fn scenario(u: &mut Unstructured<'_>) -> Result<Scenario> {
    let layout = match u.int_in_range(0u8..=3)? {
        0 => SlotLayout::Single,
        1 => SlotLayout::KeyMajority { k: 2 },
        2 => SlotLayout::Instances { n: 3 },
        _ => SlotLayout::Instances { n: 5 },
    };
    Ok(Scenario { layout, clients: u.int_in_range(1..=3)?, unsafe_faults: u.arbitrary()? })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(sc) = scenario(&mut u) else { return };
    let mut steps = Vec::new();
    while let Ok(s) = step(&mut u) {
        if steps.len() >= 2_000 {
            break;
        }
        steps.push(s);
    }
    if let Err(v) = run(&sc, &steps) {
        panic!("invariant broken at step {}: {} ({:?})", v.step, v.what, steps.get(v.step));
    }
});
