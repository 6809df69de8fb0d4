//! `wire::Op` as a driver reads it: the value each operation carries (the adapter renders it
//! into the script's `ARGV`), its script and its trace name. Written for mutation testing (see
//! ARCHITECTURE.md, "Mutation testing"): no test read `Op::value`.

use leasehold_core::wire::{self, LeaseValue, Op};

#[test]
fn every_operation_but_raise_fence_and_wait_carries_its_value() {
    let value = LeaseValue { nonce: 0xfeed };
    let cases = [
        (
            Op::Acquire {
                value,
                ttl_ms: 3_000,
                force: false,
                keep_ms: 7,
            },
            Some(value),
            Some(wire::ACQUIRE),
            "acquire",
        ),
        (
            Op::Acquire {
                value,
                ttl_ms: 3_000,
                force: true,
                keep_ms: 7,
            },
            Some(value),
            Some(wire::ACQUIRE),
            "force",
        ),
        (
            Op::Extend {
                value,
                ttl_ms: 3_000,
                keep_ms: 7,
            },
            Some(value),
            Some(wire::EXTEND),
            "extend",
        ),
        (Op::Check { value }, Some(value), Some(wire::CHECK), "check"),
        (
            Op::Release { value },
            Some(value),
            Some(wire::RELEASE),
            "release",
        ),
        (
            Op::ForceRelease { value, keep_ms: 7 },
            Some(value),
            Some(wire::FORCE_RELEASE),
            "force_release",
        ),
        (
            Op::RaiseFence {
                token: 9,
                keep_ms: 7,
            },
            None,
            Some(wire::RAISE_FENCE),
            "raise_fence",
        ),
        (
            Op::CompatAcquire {
                value,
                expire_at_ms: 9,
                force: false,
            },
            Some(value),
            Some(wire::compat::ACQUIRE),
            "acqat",
        ),
        (
            Op::CompatAcquire {
                value,
                expire_at_ms: 9,
                force: true,
            },
            Some(value),
            Some(wire::compat::FORCE),
            "fcqat",
        ),
        (
            Op::CompatExtend {
                value,
                expire_at_ms: 9,
            },
            Some(value),
            Some(wire::compat::EXTEND),
            "extend_at",
        ),
        (
            Op::CompatCheck { value },
            Some(value),
            Some(wire::compat::CHECK),
            "check_compat",
        ),
        (
            Op::Wait {
                replicas: 1,
                timeout_ms: 50,
            },
            None,
            None,
            "wait",
        ),
    ];
    for (op, carried, script, name) in cases {
        assert_eq!(op.value(), carried, "{op:?}");
        assert_eq!(op.script(), script, "{op:?}");
        assert_eq!(op.name(), name, "{op:?}");
    }
}

/// `SlotKeys` of a layout with slots is not empty; built from an unvalidated layout with none
/// (`KeyMajority { k: 0 }`, which `LockConfig::validate` rejects) it is, and asking for a slot
/// past the end gives an empty key rather than a panic.
#[test]
fn slot_keys_count_their_slots() {
    use leasehold_core::{LockName, SlotKeys, SlotLayout};
    let name = LockName::new("jobs").unwrap_or_else(|e| panic!("{e}"));
    let three = SlotKeys::new("lh", &name, SlotLayout::KeyMajority { k: 2 });
    assert_eq!(three.len(), 3);
    assert!(!three.is_empty());
    assert_eq!(three.lock_key(2), "lh:{jobs#2}");
    assert_eq!(three.fence_key(2), "lh:{jobs#2}:fence");
    assert_eq!((three.lock_key(3), three.fence_key(3)), ("", ""));
    let one = SlotKeys::new("lh", &name, SlotLayout::Single);
    assert_eq!((one.len(), one.is_empty()), (1, false));
    let none = SlotKeys::new("lh", &name, SlotLayout::KeyMajority { k: 0 });
    assert_eq!((none.len(), none.is_empty()), (0, true));
}
