//! `exec`'s own option checks: every message names the flag as the user typed it (`--ttl`,
//! `--wait`, `--grace`) and the range that would be accepted.

use std::time::Duration;

use leasehold_redis::LockConfig;

/// The shortest `--ttl`: the per-slot reply wait (100 ms), an extension every ttl/3 and the
/// child's deadline must all fit in it.
pub const MIN_TTL: Duration = Duration::from_millis(500);
/// The longest `--ttl` and `--wait`.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 86_400);
/// SIGKILL goes to the command's group [`kill_margin`] before the lease's validity instant, so
/// the group is gone before validity, itself `1% of ttl + 2 ms` before the earliest moment the
/// server can expire the key. The margin is exec's tolerance for its own late timers (a loaded
/// or stolen CPU): ttl/10, at least 100 ms and at most 1 s.
#[must_use]
pub fn kill_margin(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(1))
}
/// The default `--grace` (shortened for a short `--ttl`, see [`max_grace`]).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);

/// The timing exec runs with, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ttl: Duration,
    pub wait: Duration,
    pub grace: Duration,
    /// [`kill_margin`] of the ttl.
    pub margin: Duration,
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The longest `--grace` for `ttl`: `ttl/2 - (1% of ttl + 2 ms) - margin`. The command's
/// deadline (`validity - grace - margin`, validity being `ttl - 1% - 2 ms` after the acquire
/// or extension was sent) then comes at least ttl/6 after the next extension is due (every
/// ttl/3): room for that extension to be confirmed, so a healthy lease never stops its command.
#[must_use]
pub fn max_grace(ttl: Duration) -> Duration {
    let config = LockConfig {
        ttl,
        ..LockConfig::default()
    };
    (ttl / 2)
        .saturating_sub(config.drift_allowance())
        .saturating_sub(kill_margin(ttl))
}

/// Parse `--compat`: `rueidislock` or `rueidislock:K` with K (rueidislock's `KeyMajority`) in
/// 1-8 (2K-1 keys, at most 15); the error names the flag and what is accepted.
pub fn parse_compat(s: &str) -> Result<leasehold_redis::Compat, String> {
    let usage = "use rueidislock or rueidislock:K with K (rueidislock's KeyMajority) from 1 to 8";
    let (lib, k) = match s.split_once(':') {
        Some((lib, k)) => (lib, Some(k)),
        None => (s, None),
    };
    if lib != "rueidislock" {
        return Err(format!(
            "invalid --compat {s:?}: unknown protocol {lib:?}; {usage}"
        ));
    }
    let key_majority = match k {
        None => leasehold_core::wire::compat::DEFAULT_KEY_MAJORITY,
        Some(k) => match k.parse::<u8>() {
            Ok(k @ 1..=8) => k,
            _ => return Err(format!("invalid --compat {s:?}: K = {k:?}; {usage}")),
        },
    };
    Ok(leasehold_redis::Compat::Rueidislock {
        key_majority,
        prefix: leasehold_core::wire::compat::DEFAULT_PREFIX.to_owned(),
    })
}

/// Check `--ttl`, `--wait` and `--grace` (`None`: the default); the error is the message to
/// print.
pub fn check(ttl: Duration, wait: Duration, grace: Option<Duration>) -> Result<Timing, String> {
    if ttl < MIN_TTL || ttl > MAX_TTL || !ttl.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(format!(
            "invalid --ttl {}: must be between {} and 365d in whole milliseconds (the lease's time-to-live in Redis, extended every ttl/3)",
            show(ttl),
            show(MIN_TTL),
        ));
    }
    if wait > MAX_TTL {
        return Err(format!(
            "invalid --wait {}: must be between 0s (one attempt) and 365d",
            show(wait),
        ));
    }
    let max = max_grace(ttl);
    let grace = match grace {
        None => DEFAULT_GRACE.min(max),
        Some(g) if g > max => {
            return Err(format!(
                "invalid --grace {}: with --ttl {} it must be between 0s and {} (ttl/2 - 1% of ttl - 2ms - {}: the command is stopped from validity - grace - {}, which must leave an extension, due every ttl/3, time to be confirmed); lower --grace or raise --ttl",
                show(g),
                show(ttl),
                show(max),
                show(kill_margin(ttl)),
                show(kill_margin(ttl)),
            ));
        }
        Some(g) => g,
    };
    Ok(Timing {
        ttl,
        wait,
        grace,
        margin: kill_margin(ttl),
    })
}

/// Check `--replicas` and `--replicas-timeout`: `None` for 0 replicas (no `WAIT`), otherwise
/// `(replicas, timeout)`; the error is the message to print.
pub fn check_replicas(replicas: u32, timeout: Duration) -> Result<Option<(u32, Duration)>, String> {
    if replicas == 0 {
        return Ok(None);
    }
    if replicas > leasehold_redis::MAX_REPLICAS {
        return Err(format!(
            "invalid --replicas {replicas}: must be between 0 (no WAIT) and {}",
            leasehold_redis::MAX_REPLICAS
        ));
    }
    if timeout < Duration::from_millis(1)
        || timeout > MAX_REPLICAS_TIMEOUT
        || !timeout.subsec_nanos().is_multiple_of(1_000_000)
    {
        return Err(format!(
            "invalid --replicas-timeout {}: must be whole milliseconds from 1ms to {}",
            show(timeout),
            show(MAX_REPLICAS_TIMEOUT),
        ));
    }
    Ok(Some((replicas, timeout)))
}

/// The longest `--replicas-timeout`: its [`replicas_slot_wait`] must stay below [`MIN_TTL`].
pub const MAX_REPLICAS_TIMEOUT: Duration = Duration::from_millis(300);

/// The per-slot reply wait with `--replicas-timeout`: the timeout plus 150 ms, at least the
/// default 100 ms. Redis answers a timed-out `WAIT` at its next `hz` tick (up to 100 ms late on
/// an idle server), and the answer must arrive while the round waits for it.
#[must_use]
pub fn replicas_slot_wait(timeout: Duration) -> Duration {
    (timeout + Duration::from_millis(150)).max(LockConfig::default().slot_wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_checked_in_execs_words() {
        assert_eq!(check_replicas(0, ms(0)), Ok(None));
        assert_eq!(check_replicas(1, ms(50)), Ok(Some((1, ms(50)))));
        let e = check_replicas(65, ms(50)).unwrap_err();
        assert!(e.starts_with("invalid --replicas 65"), "{e}");
        assert_eq!(replicas_slot_wait(ms(50)), ms(200));
        assert!(replicas_slot_wait(MAX_REPLICAS_TIMEOUT) < MIN_TTL);
        for bad in [ms(0), ms(301), Duration::from_micros(1_500)] {
            let e = check_replicas(1, bad).unwrap_err();
            assert!(e.starts_with("invalid --replicas-timeout"), "{e}");
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn compat_is_rueidislock_with_an_optional_key_majority() {
        let k = |s| match parse_compat(s) {
            Ok(leasehold_redis::Compat::Rueidislock {
                key_majority,
                prefix,
            }) => {
                assert_eq!(prefix, "rueidislock");
                Ok(key_majority)
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(k("rueidislock"), Ok(2));
        assert_eq!(k("rueidislock:1"), Ok(1));
        assert_eq!(k("rueidislock:8"), Ok(8));
        for bad in [
            "redsync",
            "rueidislock:0",
            "rueidislock:9",
            "rueidislock:",
            "rueidislock:x",
            "",
        ] {
            let e = k(bad).unwrap_err();
            assert!(
                e.starts_with("invalid --compat") && e.contains("1 to 8"),
                "{e}"
            );
        }
    }

    #[test]
    fn ttl_wait_and_grace_are_checked_in_execs_words() {
        for bad in [ms(1), ms(10), ms(499), Duration::from_micros(1_500_500)] {
            let e = check(bad, ms(0), None).unwrap_err();
            assert!(e.starts_with("invalid --ttl") && e.contains("500ms"), "{e}");
        }
        let e = check(ms(1000), MAX_TTL + ms(1), None).unwrap_err();
        assert!(e.starts_with("invalid --wait"), "{e}");
        let e = check(ms(3000), ms(0), Some(ms(2000))).unwrap_err();
        assert!(
            e.starts_with("invalid --grace 2s") && e.contains("--ttl 3s"),
            "{e}"
        );
        // 3s: 1500 - 30 - 2 - 300 = 1168 ms
        assert_eq!(max_grace(ms(3000)), ms(1168));
        assert_eq!(max_grace(ms(10_000)), ms(3898));
        assert_eq!(max_grace(ms(500)), ms(143));
        assert_eq!(kill_margin(ms(500)), ms(100));
        assert_eq!(kill_margin(ms(60_000)), ms(1000));
        assert_eq!(
            check(ms(3000), ms(0), Some(ms(1000))).unwrap().grace,
            ms(1000)
        );
        // the default grace shrinks to fit a short ttl
        assert_eq!(
            check(ms(1000), ms(0), None).unwrap().grace,
            max_grace(ms(1000))
        );
        assert_eq!(check(ms(10_000), ms(0), None).unwrap().grace, DEFAULT_GRACE);
    }
}
