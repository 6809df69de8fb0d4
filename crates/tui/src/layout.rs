//! Recognise lock keys of the layouts the dashboard knows, from raw keys read in Redis. Pure: no
//! I/O, no clock. Unknown values are kept raw, never a panic.

use std::collections::BTreeMap;

use leasehold_core::wire::{ParsedValue, parse_value};
use serde::Serialize;

/// A key as read from Redis (`TYPE`, `PTTL`, then `GET` or `HGETALL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawKey {
    /// The key (invalid UTF-8 replaced).
    pub key: String,
    /// `TYPE`: "string", "hash", "none", ...
    pub kind: String,
    /// `PTTL`: -2 missing, -1 no expiry, else milliseconds.
    pub pttl_ms: i64,
    /// The string value, for string keys.
    pub value: Option<Vec<u8>>,
    /// Field/value pairs, for hash keys.
    pub fields: Vec<(String, String)>,
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

/// Minimal glob: `*` any run, `?` one character, everything else literal.
#[must_use]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn holder_of(raw: &[u8]) -> String {
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
    held: Vec<(u32, i64, Vec<u8>)>,
    token: Option<u64>,
    max_index: u32,
}

/// Turn raw keys into lock rows, sorted by name within layout.
#[must_use]
pub fn classify(targets: &Targets, keys: &[RawKey]) -> Vec<LockRow> {
    let mut lh: BTreeMap<String, Group> = BTreeMap::new();
    let mut rl: BTreeMap<String, Group> = BTreeMap::new();
    let mut rows = Vec::new();
    for k in keys {
        if k.kind == "none" || k.pttl_ms == -2 {
            continue;
        }
        if let Some((name, slot, fence)) = leasehold_key(&targets.leasehold, &k.key) {
            let g = lh.entry(name).or_default();
            g.slots_seen.insert(slot);
            if fence {
                let t = k
                    .value
                    .as_deref()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok());
                g.token = g.token.max(t);
            } else if let Some(v) = &k.value {
                g.held.push((slot, k.pttl_ms, v.clone()));
            }
            continue;
        }
        if let Some((name, i)) = rueidis_key(&targets.rueidislock, &k.key) {
            let g = rl.entry(name).or_default();
            g.max_index = g.max_index.max(i);
            if let Some(v) = &k.value {
                g.held.push((i, k.pttl_ms, v.clone()));
            }
            continue;
        }
        if k.kind == "string" && targets.plain.iter().any(|p| glob_match(p, &k.key)) {
            rows.push(single_key_row(
                k,
                Layout::Plain,
                k.value.as_deref().map(holder_of),
            ));
            continue;
        }
        if targets.redisson && k.kind == "hash" && is_redisson(&k.fields) {
            let holder = k.fields.first().map(|(f, n)| format!("{f} (x{n})"));
            rows.push(single_key_row(k, Layout::Redisson, holder));
        }
    }
    for (name, g) in lh {
        let total = u32::try_from(g.slots_seen.len()).unwrap_or(u32::MAX).max(1);
        let quorum = total as usize / 2 + 1;
        let holder = g.held.first().map(|(_, _, v)| holder_of(v));
        rows.push(LockRow {
            name,
            layout: Layout::Leasehold,
            holder,
            token: g.token,
            ttl_ms: quorum_ttl(g.held.iter().map(|h| h.1).collect(), quorum),
            keys_held: u32::try_from(g.held.len()).unwrap_or(u32::MAX),
            keys_total: total,
            waiters: None,
        });
    }
    for (name, g) in rl {
        let total = g.max_index + 1;
        let quorum = total as usize / 2 + 1;
        rows.push(LockRow {
            name,
            layout: Layout::Rueidislock,
            holder: g.held.first().map(|(_, _, v)| holder_of(v)),
            token: None,
            ttl_ms: quorum_ttl(g.held.iter().map(|h| h.1).collect(), quorum),
            keys_held: u32::try_from(g.held.len()).unwrap_or(u32::MAX),
            keys_total: total,
            waiters: None,
        });
    }
    rows.sort_by(|a, b| (a.layout, &a.name).cmp(&(b.layout, &b.name)));
    rows
}

/// A lock that is one key (plain `SET NX`, Redisson): held while the key exists.
fn single_key_row(k: &RawKey, layout: Layout, holder: Option<String>) -> LockRow {
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
    }
}

/// `prefix:{name}` / `prefix:{name#i}` (+ `:fence`) -> (name, slot, is_fence).
fn leasehold_key(prefixes: &[String], key: &str) -> Option<(String, u32, bool)> {
    for p in prefixes {
        let Some(rest) = key
            .strip_prefix(p.as_str())
            .and_then(|r| r.strip_prefix(":{"))
        else {
            continue;
        };
        let (inner, tail) = rest.split_once('}')?;
        let fence = match tail {
            "" => false,
            ":fence" => true,
            _ => return None,
        };
        return Some(match inner.rsplit_once('#') {
            Some((name, i)) => (name.to_owned(), i.parse().ok()?, fence),
            None => (inner.to_owned(), 0, fence),
        });
    }
    None
}

/// `prefix:<i>:<name>` -> (name, i).
fn rueidis_key(prefixes: &[String], key: &str) -> Option<(String, u32)> {
    for p in prefixes {
        let Some(rest) = key
            .strip_prefix(p.as_str())
            .and_then(|r| r.strip_prefix(':'))
        else {
            continue;
        };
        let (i, name) = rest.split_once(':')?;
        return Some((name.to_owned(), i.parse().ok()?));
    }
    None
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
            fields: vec![],
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
                fields: vec![],
            },
            s("rueidislock:2:orders", 3000, "x"),
            s("lock:report", -1, "some-uuid"),
            s("unrelated", 100, "x"),
            RawKey {
                key: "myLock".into(),
                kind: "hash".into(),
                pttl_ms: 30_000,
                value: None,
                fields: vec![("8743c9c0-0795-4907-87fd-6c719a6b4586:1".into(), "2".into())],
            },
            RawKey {
                key: "cart".into(),
                kind: "hash".into(),
                pttl_ms: -1,
                value: None,
                fields: vec![("sku".into(), "x".into())],
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
    }
}
