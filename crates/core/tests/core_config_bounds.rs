#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! Every validation bound of `config.rs` from both sides (the last accepted value and the first
//! rejected one), and the derived quantities the machine and the adapter compute from a config.
//! Written for mutation testing (see ARCHITECTURE.md, "Mutation testing"): `core_config.rs` shows
//! that bad values are rejected; this file pins *where* each bound lies.

use std::time::Duration;

use leasehold_core::config::{MAX_HOLDER_LEN, MAX_NAME_LEN, MAX_SLOTS};
use leasehold_core::{
    ConfigError, HolderId, LockConfig, LockName, SlotLayout, recommend_slot_wait,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const YEAR: Duration = Duration::from_secs(86_400 * 365);

/// The option a config is rejected for, and the problem text; `None` if it is accepted.
fn rejection(cfg: &LockConfig) -> Option<(String, String)> {
    match cfg.validate() {
        Ok(()) => None,
        Err(ConfigError::InvalidDuration {
            option, problem, ..
        }) => Some((option.to_owned(), problem)),
        Err(ConfigError::InvalidDriftFactor(f)) => Some(("drift_factor".into(), f.to_string())),
        Err(ConfigError::InvalidLayout { problem, .. }) => {
            Some(("layout".into(), problem.to_owned()))
        }
        Err(ConfigError::InvalidName { what, problem, .. }) => {
            Some((what.to_owned(), problem.to_owned()))
        }
        Err(e) => Some(("other".into(), e.to_string())),
    }
}

fn option_rejected(cfg: &LockConfig) -> Option<String> {
    rejection(cfg).map(|(o, _)| o)
}

#[test]
fn names_and_holder_ids_are_accepted_up_to_their_length_limit() {
    assert_eq!((MAX_NAME_LEN, MAX_HOLDER_LEN), (200, 100));
    let name = "n".repeat(MAX_NAME_LEN);
    assert_eq!(LockName::new(name.clone()).unwrap().as_str(), name);
    assert!(LockName::new("n".repeat(MAX_NAME_LEN + 1)).is_err());
    let id = "h".repeat(MAX_HOLDER_LEN);
    assert_eq!(HolderId::new(id.clone()).unwrap().as_str(), id);
    assert!(HolderId::new("h".repeat(MAX_HOLDER_LEN + 1)).is_err());
    // the key prefix goes through the same check
    let prefixed = LockConfig {
        prefix: "p".repeat(MAX_NAME_LEN),
        ..LockConfig::default()
    };
    assert_eq!(rejection(&prefixed), None);
    let too_long = LockConfig {
        prefix: "p".repeat(MAX_NAME_LEN + 1),
        ..LockConfig::default()
    };
    assert_eq!(
        rejection(&too_long),
        Some(("key prefix".into(), "it is too long".into()))
    );
}

#[test]
fn every_allowed_name_character_is_accepted_alone() {
    for c in ['.', '-', '_', '/', '@', '+', '=', 'a', 'Z', '7'] {
        let n = LockName::new(c.to_string()).unwrap();
        assert_eq!(n.as_str(), c.to_string());
        assert_eq!(n.to_string(), c.to_string(), "Display is the name itself");
    }
    for c in [':', '{', '}', ' ', '*', '\n', 'é'] {
        assert!(LockName::new(c.to_string()).is_err(), "{c:?}");
    }
}

#[test]
fn holder_ids_accept_printable_ascii_only() {
    assert!(HolderId::new("~!#$%^&*()[]{}:;'\"<>?,").is_ok());
    for bad in ["a\tb", "a\nb", "é", "a\u{7f}"] {
        let e = HolderId::new(bad).unwrap_err();
        assert!(
            matches!(&e, ConfigError::InvalidHolder { problem, .. } if problem.contains("whitespace")),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn rejected_values_are_quoted_truncated_to_64_characters() {
    let long = "x".repeat(MAX_NAME_LEN + 1);
    match LockName::new(long).unwrap_err() {
        ConfigError::InvalidName { what, value, .. } => {
            assert_eq!(what, "lock name");
            assert_eq!(value, "x".repeat(64));
        }
        e => panic!("{e:?}"),
    }
    match HolderId::new("y".repeat(MAX_HOLDER_LEN + 1)).unwrap_err() {
        ConfigError::InvalidHolder { value, .. } => assert_eq!(value, "y".repeat(64)),
        e => panic!("{e:?}"),
    }
    // short values are quoted whole
    match LockName::new("a b").unwrap_err() {
        ConfigError::InvalidName { value, .. } => assert_eq!(value, "a b"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn slot_counts_and_quorums_of_every_layout_shape() {
    let cases = [
        (SlotLayout::Single, 1, 1),
        (SlotLayout::KeyMajority { k: 1 }, 1, 1),
        (SlotLayout::KeyMajority { k: 2 }, 3, 2),
        (SlotLayout::KeyMajority { k: 3 }, 5, 3),
        (SlotLayout::KeyMajority { k: 8 }, 15, 8),
        (SlotLayout::KeyMajority { k: 255 }, 509, 255),
        (SlotLayout::Instances { n: 1 }, 1, 1),
        (SlotLayout::Instances { n: 3 }, 3, 2),
        (SlotLayout::Instances { n: 7 }, 7, 4),
        (SlotLayout::Instances { n: 4 }, 4, 3),
    ];
    for (layout, slots, quorum) in cases {
        assert_eq!(
            (layout.slots(), layout.quorum()),
            (slots, quorum),
            "{layout:?}"
        );
    }
    assert!(SlotLayout::Single.one_key_per_instance());
    assert!(SlotLayout::Instances { n: 3 }.one_key_per_instance());
    assert!(!SlotLayout::KeyMajority { k: 2 }.one_key_per_instance());
}

#[test]
fn layouts_are_accepted_up_to_fifteen_slots_and_with_odd_instance_counts() {
    assert_eq!(MAX_SLOTS, 15);
    let with = |layout| LockConfig {
        layout,
        ..LockConfig::default()
    };
    for ok in [
        SlotLayout::Single,
        SlotLayout::KeyMajority { k: 1 },
        SlotLayout::KeyMajority { k: 8 },
        SlotLayout::Instances { n: 1 },
        SlotLayout::Instances { n: 3 },
        SlotLayout::Instances { n: 15 },
    ] {
        assert_eq!(rejection(&with(ok)), None, "{ok:?}");
    }
    for (bad, problem) in [
        (SlotLayout::KeyMajority { k: 9 }, "too many slots"),
        (SlotLayout::Instances { n: 17 }, "too many slots"),
        (SlotLayout::Instances { n: 16 }, "even number"),
        (SlotLayout::Instances { n: 2 }, "even number"),
    ] {
        let (option, text) = rejection(&with(bad)).unwrap();
        assert_eq!(option, "layout");
        assert!(text.contains(problem), "{bad:?}: {text}");
    }
}

#[test]
fn drift_factor_is_accepted_in_zero_to_a_half_exclusive() {
    let with = |drift_factor| LockConfig {
        drift_factor,
        ..LockConfig::default()
    };
    for ok in [0.0, 0.01, 0.3] {
        assert_eq!(rejection(&with(ok)), None, "{ok}");
    }
    for bad in [0.5, -0.01, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        assert_eq!(
            option_rejected(&with(bad)).as_deref(),
            Some("drift_factor"),
            "{bad}"
        );
    }
}

/// The smallest ttl that can work: 1 ms with no drift allowance.
#[test]
fn ttl_is_accepted_from_one_millisecond_to_one_year() {
    let tiny = LockConfig {
        ttl: ms(1),
        drift_factor: 0.0,
        drift_margin: Duration::ZERO,
        slot_wait: Duration::from_micros(500),
        ..LockConfig::default()
    };
    assert_eq!(rejection(&tiny), None);
    let below = LockConfig {
        ttl: Duration::from_micros(999),
        ..tiny.clone()
    };
    assert_eq!(
        rejection(&below),
        Some(("ttl".into(), "must be at least 1ms".into()))
    );
    let year = LockConfig {
        ttl: YEAR,
        ..LockConfig::default()
    };
    assert_eq!(rejection(&year), None);
    let over = LockConfig {
        ttl: YEAR + ms(1),
        ..LockConfig::default()
    };
    assert_eq!(
        rejection(&over),
        Some(("ttl".into(), "must be at most one year".into()))
    );
}

#[test]
fn extend_interval_must_be_below_the_ttl_and_below_the_validity_window() {
    let base = LockConfig::default(); // ttl 10 s, window 10 s - 100 ms - 2 ms
    let window = ms(10_000 - 100 - 2);
    assert_eq!(base.validity_window(), window);
    let with = |every| LockConfig {
        extend_interval: Some(every),
        ..base.clone()
    };
    assert_eq!(with(ms(4_000)).extend_every(), ms(4_000));
    assert_eq!(rejection(&with(window - ms(1))), None);
    let (option, problem) = rejection(&with(window)).unwrap();
    assert_eq!(option, "extend_interval");
    assert!(problem.contains("validity window"), "{problem}");
    // at the ttl itself, the message names the ttl (the stronger bound)
    let (option, problem) = rejection(&with(base.ttl)).unwrap();
    assert_eq!(option, "extend_interval");
    assert!(problem.contains("shorter than ttl"), "{problem}");
}

#[test]
fn slot_wait_is_accepted_just_below_the_ttl() {
    let with = |slot_wait| LockConfig {
        slot_wait,
        ..LockConfig::default()
    };
    assert_eq!(rejection(&with(ms(9_999))), None);
    assert_eq!(rejection(&with(Duration::from_nanos(1))), None);
    let (option, problem) = rejection(&with(ms(10_000))).unwrap();
    assert_eq!(option, "slot_wait");
    assert!(problem.contains("shorter than ttl"), "{problem}");
}

#[test]
fn hold_cap_is_accepted_from_one_ttl() {
    let with = |cap| LockConfig {
        hold_cap: Some(cap),
        ..LockConfig::default()
    };
    assert_eq!(rejection(&with(ms(10_000))), None);
    assert_eq!(
        option_rejected(&with(ms(9_999))).as_deref(),
        Some("hold_cap")
    );
}

#[test]
fn fence_retention_is_whole_milliseconds_between_one_second_and_one_year() {
    let with = |fence_retention| LockConfig {
        fence_retention,
        ..LockConfig::default()
    };
    for ok in [ms(1_000), ms(1_001), YEAR] {
        assert_eq!(rejection(&with(ok)), None, "{ok:?}");
    }
    for bad in [
        ms(999),
        YEAR + ms(1),
        Duration::from_micros(1_000_500),
        Duration::ZERO,
    ] {
        assert_eq!(
            option_rejected(&with(bad)).as_deref(),
            Some("fence_retention"),
            "{bad:?}"
        );
    }
}

#[test]
fn backoff_needs_a_positive_minimum_at_most_the_maximum() {
    let with = |backoff_min, backoff_max| LockConfig {
        backoff_min,
        backoff_max,
        ..LockConfig::default()
    };
    assert_eq!(rejection(&with(ms(5), ms(5))), None);
    assert_eq!(rejection(&with(Duration::from_nanos(1), ms(5))), None);
    for (min, max) in [(Duration::ZERO, ms(5)), (ms(6), ms(5))] {
        assert_eq!(
            option_rejected(&with(min, max)).as_deref(),
            Some("backoff_min"),
            "{min:?} {max:?}"
        );
    }
}

#[test]
fn derived_durations() {
    let base = LockConfig::default();
    assert_eq!(base.drift_allowance(), ms(102));
    assert_eq!(base.validity_window(), ms(9_898));
    assert_eq!(base.ttl_ms(), 10_000);
    assert_eq!(base.fence_keep_ms(), 3_600_000);
    let c = LockConfig {
        ttl: ms(3_000),
        drift_factor: 0.02,
        drift_margin: ms(5),
        fence_retention: Duration::from_millis(1_234_567),
        ..base.clone()
    };
    assert_eq!(c.drift_allowance(), ms(60 + 5));
    assert_eq!(c.validity_window(), ms(3_000 - 65));
    assert_eq!(c.ttl_ms(), 3_000);
    assert_eq!(c.fence_keep_ms(), 1_234_567);
    // a fractional nanosecond of drift is rounded up
    let frac = LockConfig {
        ttl: Duration::from_nanos(1_000_001),
        drift_factor: 0.25,
        drift_margin: Duration::ZERO,
        ..base.clone()
    };
    assert_eq!(frac.drift_allowance(), Duration::from_nanos(250_001));
    // an allowance larger than the ttl leaves no window, not a panic
    let none = LockConfig {
        ttl: ms(3),
        drift_margin: ms(5),
        ..base
    };
    assert_eq!(none.validity_window(), Duration::ZERO);
}

#[test]
fn recommended_slot_wait_is_twice_the_reply_time_and_at_least_a_millisecond() {
    assert_eq!(recommend_slot_wait(ms(30)), ms(60));
    assert_eq!(
        recommend_slot_wait(Duration::from_micros(700)),
        Duration::from_micros(1_400)
    );
    assert_eq!(recommend_slot_wait(Duration::from_micros(400)), ms(1));
    assert_eq!(recommend_slot_wait(Duration::ZERO), ms(1));
}
