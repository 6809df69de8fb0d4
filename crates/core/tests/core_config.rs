#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Validation: every bad option is a clear error naming it, never a panic.

use std::time::Duration;

use leasehold_core::{ConfigError, HolderId, LockConfig, LockName, SlotLayout};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn bad_names_are_rejected_with_the_reason() {
    for (name, needle) in [
        ("", "empty"),
        (&"x".repeat(201) as &str, "too long"),
        ("a b", "forbidden"),
        ("a{b}", "forbidden"),
        ("a:b", "forbidden"),
        ("é", "forbidden"),
    ] {
        let e = LockName::new(name).unwrap_err().to_string();
        assert!(
            e.contains(needle) && e.contains("lock name"),
            "{name:?}: {e}"
        );
    }
    assert!(LockName::new("jobs/daily-report_v2@eu+1=x").is_ok());
    assert!(HolderId::new("").is_err());
    assert!(HolderId::new("a b").is_err());
    assert!(HolderId::new("host:1/pid:2").is_ok());
}

#[test]
fn bad_durations_name_the_option() {
    let base = LockConfig::default();
    let cases: Vec<(LockConfig, &str)> = vec![
        (
            LockConfig {
                ttl: Duration::ZERO,
                ..base.clone()
            },
            "ttl",
        ),
        (
            LockConfig {
                ttl: Duration::from_micros(1500),
                ..base.clone()
            },
            "whole milliseconds",
        ),
        (
            LockConfig {
                extend_interval: Some(base.ttl),
                ..base.clone()
            },
            "extend_interval",
        ),
        (
            LockConfig {
                extend_interval: Some(Duration::ZERO),
                ..base.clone()
            },
            "extend_interval",
        ),
        (
            LockConfig {
                slot_wait: base.ttl,
                ..base.clone()
            },
            "slot_wait",
        ),
        (
            LockConfig {
                slot_wait: Duration::ZERO,
                ..base.clone()
            },
            "slot_wait",
        ),
        (
            LockConfig {
                hold_cap: Some(ms(1)),
                ..base.clone()
            },
            "hold_cap",
        ),
        (
            LockConfig {
                drift_factor: f64::NAN,
                ..base.clone()
            },
            "drift_factor",
        ),
        (
            LockConfig {
                drift_factor: 0.7,
                ..base.clone()
            },
            "drift_factor",
        ),
        (
            LockConfig {
                layout: SlotLayout::Instances { n: 0 },
                ..base.clone()
            },
            "at least one",
        ),
        (
            LockConfig {
                layout: SlotLayout::Instances { n: 4 },
                ..base.clone()
            },
            "odd",
        ),
        (
            LockConfig {
                layout: SlotLayout::KeyMajority { k: 0 },
                ..base.clone()
            },
            "k must be",
        ),
        (
            LockConfig {
                layout: SlotLayout::KeyMajority { k: 9 },
                ..base.clone()
            },
            "too many",
        ),
        (
            LockConfig {
                prefix: String::new(),
                ..base.clone()
            },
            "key prefix",
        ),
        (
            LockConfig {
                ttl: ms(100),
                extend_interval: Some(ms(99)),
                drift_factor: 0.2,
                ..base.clone()
            },
            "validity window",
        ),
    ];
    for (cfg, needle) in cases {
        let e: ConfigError = cfg.validate().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
    }
    assert!(base.validate().is_ok());
    assert_eq!(base.extend_every(), base.ttl / 3);
}

#[test]
fn slot_layouts_have_majorities() {
    assert_eq!(
        (SlotLayout::Single.slots(), SlotLayout::Single.quorum()),
        (1, 1)
    );
    let km = SlotLayout::KeyMajority { k: 2 };
    assert_eq!((km.slots(), km.quorum()), (3, 2));
    let r = SlotLayout::Instances { n: 5 };
    assert_eq!((r.slots(), r.quorum()), (5, 3));
}

/// The core must never read a clock or touch the OS: scan its sources.
#[test]
fn core_sources_read_no_clock_and_do_no_io() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![dir];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let text = std::fs::read_to_string(&p).unwrap();
                for banned in [
                    "Instant::now",
                    "SystemTime",
                    "std::net",
                    "std::fs",
                    "std::thread",
                    "tokio",
                    "redis::",
                ] {
                    assert!(!text.contains(banned), "{} uses {banned}", p.display());
                }
            }
        }
    }
    assert!(files >= 5);
}
