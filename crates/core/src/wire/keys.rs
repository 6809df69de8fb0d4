//! The key layout in both directions: the Redis keys of a lock's slots (built by
//! [`super::SlotKeys`]) and a key read back from Redis parsed into prefix, name and slot. The
//! adapter builds keys with it, the dashboard recognises keys with it, and a test holds the two
//! directions to each other.
//!
//! Layout: the lock key of a slot is `<prefix>:{<name>}` when each slot is its own instance (the
//! hash tag is the whole name) or `<prefix>:{<name>#<i>}` when one instance holds several slots
//! (one key per slot, each its own hash tag); each lock key's fence counter is
//! `<lock key>:fence`. Lock names and prefixes never contain `:`, `{`, `}` or `#`
//! ([`crate::LockName`]), so the parse is unambiguous.

/// What a fence counter key adds to its lock key.
pub const FENCE_SUFFIX: &str = ":fence";

/// The lock key of slot `slot` of `name` under `prefix`: `prefix:{name}` for `None` (one key
/// per instance), `prefix:{name#i}` for `Some(i)`.
#[must_use]
pub fn lock_key(prefix: &str, name: &str, slot: Option<usize>) -> String {
    // by hand, not `format!`: built for every acquisition on the adapter's hot path, with room
    // for the fence suffix its fence key adds
    let mut k = String::with_capacity(prefix.len() + name.len() + 8 + FENCE_SUFFIX.len());
    k.push_str(prefix);
    k.push_str(":{");
    k.push_str(name);
    if let Some(i) = slot {
        k.push('#');
        let mut digits = [0u8; 20];
        let mut n = i;
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for d in &digits[at..] {
            k.push(char::from(*d));
        }
    }
    k.push('}');
    k
}

/// The fence counter key of the lock key `lock_key`.
#[must_use]
pub fn fence_key_of(lock_key: &str) -> String {
    let mut k = String::with_capacity(lock_key.len() + FENCE_SUFFIX.len());
    k.push_str(lock_key);
    k.push_str(FENCE_SUFFIX);
    k
}

/// The lock key a fence counter key belongs to, or `None` for a key that is not a fence key.
#[must_use]
pub fn lock_key_of_fence(fence_key: &str) -> Option<&str> {
    fence_key.strip_suffix(FENCE_SUFFIX)
}

/// A leasehold key read back from Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'k> {
    /// The key prefix.
    pub prefix: &'k str,
    /// The lock name.
    pub name: &'k str,
    /// The slot index for `prefix:{name#i}` keys; `None` for `prefix:{name}` (one key per
    /// instance: the slot is the instance).
    pub slot: Option<usize>,
    /// A fence counter key (`…:fence`) rather than the lock key.
    pub fence: bool,
}

/// Parse `key` as a leasehold lock or fence key under `prefix`, or `None` when it is not one
/// (another prefix, another library's key, the event stream).
#[must_use]
pub fn parse_key<'k>(prefix: &str, key: &'k str) -> Option<ParsedKey<'k>> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(":{")?;
    let (inner, tail) = rest.split_once('}')?;
    let fence = match tail {
        "" => false,
        FENCE_SUFFIX => true,
        _ => return None,
    };
    let (name, slot) = match inner.rsplit_once('#') {
        Some((name, i)) => (name, Some(i.parse().ok()?)),
        None => (inner, None),
    };
    if name.is_empty() {
        return None;
    }
    Some(ParsedKey {
        prefix: &key[..prefix.len()],
        name,
        slot,
        fence,
    })
}

/// The event stream every locker may publish to (`<prefix>:events`, a capped Redis stream) and
/// the dashboard reads: its key, its cap, and the fields and kinds of its entries.
pub mod events {
    /// What the stream's key adds to the prefix.
    pub const STREAM_SUFFIX: &str = ":events";
    /// `XADD … MAXLEN ~ <this>`: the stream keeps about this many entries.
    pub const MAXLEN: u64 = 10_000;

    /// The stream key for `prefix`.
    #[must_use]
    pub fn stream_key(prefix: &str) -> String {
        format!("{prefix}{STREAM_SUFFIX}")
    }

    /// Field: what happened (one of the `KIND_*` values).
    pub const KIND: &str = "kind";
    /// Field: the lock name.
    pub const NAME: &str = "name";
    /// Field: the holder id of the publishing locker.
    pub const HOLDER: &str = "holder";
    /// Field: the fence token.
    pub const TOKEN: &str = "token";
    /// Field: why (an acquire failure's or a loss's reason).
    pub const REASON: &str = "reason";
    /// Field: how long the acquire took, µs.
    pub const LATENCY_US: &str = "latency_us";
    /// Field: how much validity was left when an extension landed, µs.
    pub const SLACK_US: &str = "slack_us";

    /// Kind: a lease was acquired.
    pub const KIND_ACQUIRED: &str = "acquired";
    /// Kind: an acquire failed.
    pub const KIND_ACQUIRE_FAILED: &str = "acquire_failed";
    /// Kind: a lease was extended.
    pub const KIND_EXTENDED: &str = "extended";
    /// Kind: a lease was lost.
    pub const KIND_LOST: &str = "lost";
    /// Kind: a lease was released.
    pub const KIND_RELEASED: &str = "released";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LockName, SlotLayout};
    use crate::wire::SlotKeys;

    #[test]
    fn keys_built_by_hand_are_the_documented_format() {
        for (prefix, name) in [("leasehold", "jobs"), ("a", "b:c{x}"), ("", "")] {
            assert_eq!(lock_key(prefix, name, None), format!("{prefix}:{{{name}}}"));
            for i in (0..130).chain([999, 1_000, 123_456, usize::MAX]) {
                let k = lock_key(prefix, name, Some(i));
                assert_eq!(k, format!("{prefix}:{{{name}#{i}}}"));
                assert_eq!(fence_key_of(&k), format!("{k}{FENCE_SUFFIX}"));
            }
        }
    }

    #[test]
    fn every_built_key_parses_back_to_its_parts() {
        for layout in [
            SlotLayout::Single,
            SlotLayout::Instances { n: 3 },
            SlotLayout::KeyMajority { k: 2 },
        ] {
            for (prefix, name) in [("leasehold", "jobs"), ("a.b/c", "x-1_y@z+=/q")] {
                let keys = SlotKeys::new(prefix, &LockName::new(name).unwrap(), layout);
                for slot in 0..keys.len() {
                    let want = (!layout.one_key_per_instance()).then_some(slot);
                    let lock = parse_key(prefix, keys.lock_key(slot)).unwrap();
                    assert_eq!(
                        lock,
                        ParsedKey {
                            prefix,
                            name,
                            slot: want,
                            fence: false
                        }
                    );
                    let fence = parse_key(prefix, keys.fence_key(slot)).unwrap();
                    assert_eq!(
                        fence,
                        ParsedKey {
                            fence: true,
                            ..lock
                        }
                    );
                    assert_eq!(
                        lock_key_of_fence(keys.fence_key(slot)),
                        Some(keys.lock_key(slot))
                    );
                    assert_eq!(fence_key_of(keys.lock_key(slot)), keys.fence_key(slot));
                }
            }
        }
    }

    #[test]
    fn other_keys_are_not_leasehold_keys() {
        for key in [
            "leasehold:events",
            "leasehold:{jobs}:other",
            "leasehold:{jobs#x}",
            "leasehold:{}",
            "leasehold:{jobs",
            "other:{jobs}",
            "leaseholdx:{jobs}",
            "rueidislock:0:jobs",
        ] {
            assert_eq!(parse_key("leasehold", key), None, "{key}");
        }
        assert_eq!(events::stream_key("lh"), "lh:events");
        assert_eq!(parse_key("lh", &events::stream_key("lh")), None);
    }
}
