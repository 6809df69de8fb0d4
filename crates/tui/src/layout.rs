//! Recognise lock keys of the layouts the dashboard knows, from raw keys read in Redis. Pure: no
//! I/O, no clock. Unknown values are kept raw, never a panic.

use std::collections::BTreeMap;

use leasehold_core::wire::{ParsedValue, compat, keys, parse_value};
use serde::Serialize;

/// A key as read from Redis: its type (from `SCAN ... TYPE`), `PTTL`, and a bounded read of its
/// value (`GETRANGE` of the first [`MAX_VALUE`] bytes; for hashes `HMGET` of the fields that
/// look like Redisson's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawKey {
    /// The key (invalid UTF-8 replaced).
    pub key: String,
    /// `TYPE`: "string", "hash", "none", ...
    pub kind: String,
    /// `PTTL`: -2 missing, -1 no expiry, else milliseconds.
    pub pttl_ms: i64,
    /// The string value (at most [`MAX_VALUE`] bytes), for string keys.
    pub value: Option<Vec<u8>>,
    /// `STRLEN`, when the value is longer than [`MAX_VALUE`] (then `value` is only its start and
    /// no lock value: such a key is shown, never compared or released).
    pub too_large: Option<u64>,
    /// Field/value pairs, for hash keys (only the fields a layout needs).
    pub fields: Vec<(String, String)>,
}

/// The most bytes of a string value the dashboard reads (`GETRANGE key 0 255`). Lock values of
/// every layout it knows are far shorter.
pub const MAX_VALUE: usize = 256;

/// What a key is to the dashboard, decided from its name alone (before any read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A leasehold lock key of `prefixes[prefix]`.
    LeaseholdLock,
    /// A leasehold fence counter.
    Fence,
    /// A rueidislock key.
    Rueidis,
    /// A plain `SET NX` key matching a `--pattern`.
    Plain,
    /// A hash that may be a Redisson lock.
    Hash,
}

/// The role of `key` of type `kind` ("string" or "hash"), or `None`: not read at all.
#[must_use]
pub fn role_of(targets: &Targets, key: &str, kind: &str) -> Option<Role> {
    match kind {
        "string" => {
            if let Some((_, _, _, fence)) = leasehold_key(&targets.leasehold, key) {
                return Some(if fence {
                    Role::Fence
                } else {
                    Role::LeaseholdLock
                });
            }
            if rueidis_key(&targets.rueidislock, key).is_some() {
                return Some(Role::Rueidis);
            }
            targets
                .plain
                .iter()
                .any(|p| crate::glob::matches(p.as_bytes(), key.as_bytes()))
                .then_some(Role::Plain)
        }
        "hash" if targets.redisson => Some(Role::Hash),
        _ => None,
    }
}

/// One key of a lock as shown, with the evidence a force-release compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey {
    /// The lock key.
    pub key: String,
    /// Its fence counter (leasehold only).
    pub fence: Option<String>,
    /// What the dashboard saw there.
    pub shown: Shown,
}

/// The value seen under a held key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// The whole string value.
    Value(Vec<u8>),
    /// A Redisson hash whose holder field is this.
    Field(String),
    /// A string value of this many bytes, too large to have been read (never released).
    TooLarge(u64),
}

/// Which library's layout a lock follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// leasehold's own (`prefix:{name}`, `prefix:{name#i}`, fence counters).
    Leasehold,
    /// rueidislock (`rueidislock:<i>:<name>`), grouped by name.
    Rueidislock,
    /// A plain `SET NX PX` key matched by a user pattern (redsync, redis-py, rslock style).
    Plain,
    /// A Redisson lock: a hash whose field is `<id>:<thread>` with a hold count.
    Redisson,
}

/// One lock as the dashboard shows it, observed at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockRow {
    /// Lock name (without prefix).
    pub name: String,
    /// Layout.
    pub layout: Layout,
    /// Holder id, when the value says one; raw text for unknown values.
    pub holder: Option<String>,
    /// Fencing token (leasehold's fence counter).
    pub token: Option<u64>,
    /// Milliseconds the lock stays held, as observed (`None`: no expiry; 0: free).
    pub ttl_ms: Option<i64>,
    /// Keys currently held.
    pub keys_held: u32,
    /// Keys the lock spans (for rueidislock: at least this many).
    pub keys_total: u32,
    /// Clients waiting for it, when the source knows (the simulator does; a Redis read does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiters: Option<u32>,
    /// The key prefix (leasehold, rueidislock); empty for plain keys and Redisson hashes. The same
    /// name under two prefixes is two locks.
    pub prefix: String,
    /// The keys held and the values seen there (what a force-release compares against).
    #[serde(skip)]
    pub held: Vec<HeldKey>,
}

impl LockRow {
    /// Identifies the lock across snapshots: layout, prefix and name.
    #[must_use]
    pub fn id(&self) -> String {
        format!("{:?}/{}/{}", self.layout, self.prefix, self.name)
    }

    /// The name as listed: with its prefix when that is not the layout's default.
    #[must_use]
    pub fn display_name(&self) -> String {
        let default = match self.layout {
            Layout::Leasehold => "leasehold",
            Layout::Rueidislock => "rueidislock",
            Layout::Plain | Layout::Redisson => "",
        };
        if self.prefix.is_empty() || self.prefix == default {
            self.name.clone()
        } else {
            format!("{}:{}", self.prefix, self.name)
        }
    }
}

/// Where to look, and how to read what is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// leasehold prefixes (default `leasehold`).
    pub leasehold: Vec<String>,
    /// rueidislock prefixes (default `rueidislock`).
    pub rueidislock: Vec<String>,
    /// Glob patterns of plain `SET NX` lock keys.
    pub plain: Vec<String>,
    /// Look for Redisson lock hashes anywhere.
    pub redisson: bool,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            leasehold: vec!["leasehold".into()],
            rueidislock: vec!["rueidislock".into()],
            plain: Vec::new(),
            redisson: true,
        }
    }
}

/// Redis's glob rules (see [`crate::glob`]).
#[must_use]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    crate::glob::matches(pattern.as_bytes(), text.as_bytes())
}

/// The holder a lock value names (leasehold's own format), or the value itself shown safely.
#[must_use]
pub fn holder_of(raw: &[u8]) -> String {
    match parse_value(raw) {
        ParsedValue::Leasehold { holder, .. } => holder,
        ParsedValue::Foreign(text) => {
            if text.chars().all(|c| !c.is_control()) && !text.contains('\u{fffd}') {
                text.chars().take(40).collect()
            } else {
                let hex: String = raw.iter().take(8).map(|b| format!("{b:02x}")).collect();
                format!("0x{hex}…")
            }
        }
    }
}

/// What `k` shows as holder, and the evidence for a compare-and-delete.
fn shown(k: &RawKey) -> Option<(String, Shown)> {
    if let Some(n) = k.too_large {
        return Some((format!("({n}-byte value, not read)"), Shown::TooLarge(n)));
    }
    let v = k.value.as_ref()?;
    Some((holder_of(v), Shown::Value(v.clone())))
}

/// How long a lock spanning `ttls` (one per held key) stays held when `quorum` keys are needed:
/// the quorum-th longest ttl. `None` if any needed key has no expiry.
fn quorum_ttl(mut ttls: Vec<i64>, quorum: usize) -> Option<i64> {
    if ttls.len() < quorum || quorum == 0 {
        return Some(0);
    }
    ttls.sort_unstable_by(|a, b| b.cmp(a));
    let t = ttls[quorum - 1];
    if ttls.iter().take(quorum).any(|t| *t == -1) {
        None
    } else {
        Some(t.max(0))
    }
}

#[derive(Default)]
struct Group {
    slots_seen: std::collections::BTreeSet<u32>,
    /// (slot, pttl, holder, evidence)
    held: Vec<(u32, i64, String, HeldKey)>,
    token: Option<u64>,
    max_index: u32,
}

impl Group {
    fn row(self, prefix: String, name: String, layout: Layout, total: u32) -> LockRow {
        let quorum = total as usize / 2 + 1;
        LockRow {
            name,
            layout,
            holder: self.held.first().map(|h| h.2.clone()),
            token: self.token,
            ttl_ms: quorum_ttl(self.held.iter().map(|h| h.1).collect(), quorum),
            keys_held: u32::try_from(self.held.len()).unwrap_or(u32::MAX),
            keys_total: total,
            waiters: None,
            prefix,
            held: self.held.into_iter().map(|h| h.3).collect(),
        }
    }
}

/// Turn raw keys into lock rows, one per (layout, prefix, name), sorted by layout, name, prefix.
#[must_use]
pub fn classify(targets: &Targets, keys: &[RawKey]) -> Vec<LockRow> {
    let mut lh: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut rl: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut rows = Vec::new();
    for k in keys {
        if k.kind == "none" || k.pttl_ms == -2 {
            continue;
        }
        if let Some((prefix, name, slot, fence)) = leasehold_key(&targets.leasehold, &k.key) {
            let g = lh.entry((prefix.to_owned(), name)).or_default();
            g.slots_seen.insert(slot);
            if fence {
                let t = k
                    .value
                    .as_deref()
                    .filter(|_| k.too_large.is_none())
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok());
                g.token = g.token.max(t);
            } else if let Some((holder, what)) = shown(k) {
                let evidence = HeldKey {
                    key: k.key.clone(),
                    fence: Some(keys::fence_key_of(&k.key)),
                    shown: what,
                };
                g.held.push((slot, k.pttl_ms, holder, evidence));
            }
            continue;
        }
        if let Some((prefix, name, i)) = rueidis_key(&targets.rueidislock, &k.key) {
            let g = rl.entry((prefix.to_owned(), name)).or_default();
            g.max_index = g.max_index.max(i);
            if let Some((holder, what)) = shown(k) {
                let evidence = HeldKey {
                    key: k.key.clone(),
                    fence: None,
                    shown: what,
                };
                g.held.push((i, k.pttl_ms, holder, evidence));
            }
            continue;
        }
        if k.kind == "string" && targets.plain.iter().any(|p| glob_match(p, &k.key)) {
            let (holder, what) = shown(k).unzip();
            let held = what.map(|w| HeldKey {
                key: k.key.clone(),
                fence: None,
                shown: w,
            });
            rows.push(single_key_row(k, Layout::Plain, holder, held));
            continue;
        }
        if targets.redisson && k.kind == "hash" && is_redisson(&k.fields) {
            let holder = k.fields.first().map(|(f, n)| format!("{f} (x{n})"));
            let held = k.fields.first().map(|(f, _)| HeldKey {
                key: k.key.clone(),
                fence: None,
                shown: Shown::Field(f.clone()),
            });
            rows.push(single_key_row(k, Layout::Redisson, holder, held));
        }
    }
    for ((prefix, name), mut g) in lh {
        let total = u32::try_from(g.slots_seen.len()).unwrap_or(u32::MAX).max(1);
        g.held.sort_by_key(|h| h.0);
        rows.push(g.row(prefix, name, Layout::Leasehold, total));
    }
    for ((prefix, name), mut g) in rl {
        let total = g.max_index + 1;
        g.held.sort_by_key(|h| h.0);
        rows.push(g.row(prefix, name, Layout::Rueidislock, total));
    }
    rows.sort_by(|a, b| (a.layout, &a.name, &a.prefix).cmp(&(b.layout, &b.name, &b.prefix)));
    rows
}

/// A lock that is one key (plain `SET NX`, Redisson): held while the key exists.
fn single_key_row(
    k: &RawKey,
    layout: Layout,
    holder: Option<String>,
    held: Option<HeldKey>,
) -> LockRow {
    LockRow {
        name: k.key.clone(),
        layout,
        holder,
        token: None,
        ttl_ms: if k.pttl_ms == -1 {
            None
        } else {
            Some(k.pttl_ms)
        },
        keys_held: 1,
        keys_total: 1,
        waiters: None,
        prefix: String::new(),
        held: held.into_iter().collect(),
    }
}

/// `prefix:{name}` / `prefix:{name#i}` (+ `:fence`) -> (prefix, name, slot, is_fence), parsed by
/// the wire's own key layout (`wire::keys::parse_key`); a `prefix:{name}` key is slot 0.
pub(crate) fn leasehold_key<'p>(
    prefixes: &'p [String],
    key: &str,
) -> Option<(&'p str, String, u32, bool)> {
    prefixes.iter().find_map(|p| {
        let k = keys::parse_key(p, key)?;
        let slot = u32::try_from(k.slot.unwrap_or(0)).ok()?;
        Some((p.as_str(), k.name.to_owned(), slot, k.fence))
    })
}

/// `prefix:<i>:<name>` -> (prefix, name, i), by the core's definition of the rueidislock
/// layout (`wire::compat`, which leasehold's compatibility dialect writes).
fn rueidis_key<'p>(prefixes: &'p [String], key: &str) -> Option<(&'p str, String, u32)> {
    prefixes.iter().find_map(|p| {
        let (name, i) = compat::parse_key(p, key)?;
        Some((p.as_str(), name.to_owned(), u32::try_from(i).ok()?))
    })
}

/// Redisson's lock hash: every field `<id>:<thread id>` with an integer hold count.
fn is_redisson(fields: &[(String, String)]) -> bool {
    !fields.is_empty()
        && fields.iter().all(|(f, v)| {
            f.rsplit_once(':')
                .is_some_and(|(id, t)| !id.is_empty() && t.parse::<u64>().is_ok())
                && v.parse::<i64>().is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(key: &str, pttl: i64, v: &str) -> RawKey {
        RawKey {
            key: key.into(),
            kind: "string".into(),
            pttl_ms: pttl,
            value: Some(v.as_bytes().to_vec()),
            ..RawKey::default()
        }
    }

    #[test]
    fn groups_each_layout_and_keeps_unknown_values_raw() {
        let targets = Targets {
            plain: vec!["lock:*".into()],
            ..Targets::default()
        };
        let keys = vec![
            s("leasehold:{jobs}", 900, "lh1:00000000000000aa:web-1"),
            s("leasehold:{jobs}:fence", -1, "17"),
            s("leasehold:{idle}:fence", -1, "3"),
            s("leasehold:{km#0}", 500, "lh1:00000000000000bb:w2"),
            s("leasehold:{km#2}", 800, "lh1:00000000000000bb:w2"),
            s("leasehold:{km#0}:fence", -1, "5"),
            s("leasehold:{km#1}:fence", -1, "9"),
            s("leasehold:{km#2}:fence", -1, "7"),
            RawKey {
                key: "rueidislock:0:orders".into(),
                kind: "string".into(),
                pttl_ms: 4000,
                value: Some(vec![0xde, 0xad, 0x00]),
                ..RawKey::default()
            },
            s("rueidislock:2:orders", 3000, "x"),
            s("lock:report", -1, "some-uuid"),
            s("unrelated", 100, "x"),
            RawKey {
                key: "myLock".into(),
                kind: "hash".into(),
                pttl_ms: 30_000,
                fields: vec![("8743c9c0-0795-4907-87fd-6c719a6b4586:1".into(), "2".into())],
                ..RawKey::default()
            },
            RawKey {
                key: "cart".into(),
                kind: "hash".into(),
                pttl_ms: -1,
                fields: vec![("sku".into(), "x".into())],
                ..RawKey::default()
            },
        ];
        let rows = classify(&targets, &keys);
        let names: Vec<(&str, Layout)> = rows.iter().map(|r| (r.name.as_str(), r.layout)).collect();
        assert_eq!(
            names,
            [
                ("idle", Layout::Leasehold),
                ("jobs", Layout::Leasehold),
                ("km", Layout::Leasehold),
                ("orders", Layout::Rueidislock),
                ("lock:report", Layout::Plain),
                ("myLock", Layout::Redisson),
            ]
        );
        let jobs = &rows[1];
        assert_eq!(
            (jobs.holder.as_deref(), jobs.token, jobs.ttl_ms),
            (Some("web-1"), Some(17), Some(900))
        );
        let idle = &rows[0];
        assert_eq!(
            (idle.keys_held, idle.ttl_ms, idle.token),
            (0, Some(0), Some(3))
        );
        let km = &rows[2];
        assert_eq!(
            (km.keys_held, km.keys_total, km.token, km.ttl_ms),
            (2, 3, Some(9), Some(500))
        );
        let orders = &rows[3];
        assert_eq!((orders.keys_held, orders.keys_total), (2, 3));
        assert!(
            orders
                .holder
                .as_deref()
                .is_some_and(|h| h.starts_with("0x")),
            "{orders:?}"
        );
        assert_eq!(rows[4].ttl_ms, None, "no TTL");
        assert_eq!(
            rows[5].holder.as_deref(),
            Some("8743c9c0-0795-4907-87fd-6c719a6b4586:1 (x2)")
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("lock:*", "lock:a:b"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("lock:*", "locks"));
        assert!(glob_match("lock:[xa]*", "lock:x"));
    }

    #[test]
    fn one_row_per_prefix_and_large_values_are_never_evidence() {
        let targets = Targets {
            leasehold: vec!["leasehold".into(), "other".into()],
            plain: vec!["lock:*".into()],
            ..Targets::default()
        };
        let mut big = s("lock:blob", 5_000, "");
        big.value = Some(vec![b'x'; MAX_VALUE]);
        big.too_large = Some(10_485_760);
        let keys = vec![
            s("leasehold:{jobs}", 900, "lh1:00000000000000aa:web-1"),
            s("leasehold:{jobs}:fence", -1, "17"),
            s("other:{jobs}", 800, "lh1:00000000000000bb:web-2"),
            s("other:{jobs}:fence", -1, "4"),
            big,
        ];
        let rows = classify(&targets, &keys);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let (a, b) = (&rows[0], &rows[1]);
        assert_eq!(
            (a.prefix.as_str(), a.holder.as_deref(), a.token),
            ("leasehold", Some("web-1"), Some(17))
        );
        assert_eq!(
            (b.prefix.as_str(), b.holder.as_deref(), b.token),
            ("other", Some("web-2"), Some(4))
        );
        assert_ne!(a.id(), b.id());
        assert_eq!(
            (a.display_name().as_str(), b.display_name().as_str()),
            ("jobs", "other:jobs")
        );
        assert_eq!(
            b.held,
            vec![HeldKey {
                key: "other:{jobs}".into(),
                fence: Some("other:{jobs}:fence".into()),
                shown: Shown::Value(b"lh1:00000000000000bb:web-2".to_vec()),
            }]
        );
        assert_eq!(
            rows[2].holder.as_deref(),
            Some("(10485760-byte value, not read)")
        );
        assert_eq!(rows[2].held[0].shown, Shown::TooLarge(10_485_760));
        assert_eq!(
            role_of(&targets, "leasehold:events", "string"),
            None,
            "never read"
        );
        assert_eq!(
            role_of(&targets, "other:{x}:fence", "string"),
            Some(Role::Fence)
        );
    }
}
