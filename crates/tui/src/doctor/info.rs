//! Parsing what Redis answers to `INFO`, `SLOWLOG GET` and `LATENCY LATEST`. Pure.

use std::collections::BTreeMap;

use redis::Value;
use serde::Serialize;

/// `INFO` fields (`name:value` lines) of the sections read, by name. Section headers and blank
/// lines are skipped; a malformed line is ignored, never a panic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Info(pub BTreeMap<String, String>);

impl Info {
    /// Parse the text of one or more `INFO` sections and merge it in.
    pub fn absorb(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                self.0.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    /// A field as text.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A field as an integer.
    #[must_use]
    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key)?.trim().parse().ok()
    }

    /// `cmdstat_<name>` lines: (command, calls, usec_per_call).
    #[must_use]
    pub fn commandstats(&self) -> Vec<CommandStat> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("cmdstat_")?;
                let mut calls = 0;
                let mut per_call = 0.0;
                for kv in v.split(',') {
                    match kv.split_once('=') {
                        Some(("calls", n)) => calls = n.parse().unwrap_or(0),
                        Some(("usec_per_call", n)) => per_call = n.parse().unwrap_or(0.0),
                        _ => {}
                    }
                }
                Some(CommandStat {
                    command: name.to_owned(),
                    calls,
                    usec_per_call: per_call,
                })
            })
            .collect()
    }
}

/// One `INFO commandstats` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandStat {
    /// The command (`get`, `client|setname`, ...).
    pub command: String,
    /// Calls since the last reset.
    pub calls: u64,
    /// Mean server time per call.
    pub usec_per_call: f64,
}

/// One `SLOWLOG GET` entry, without its arguments (they may carry data): only the command name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlowEntry {
    /// The entry's id.
    pub id: i64,
    /// Unix time (s) the command ran.
    pub at_unix: i64,
    /// How long it ran, in µs.
    pub duration_us: i64,
    /// The command name (upper case), e.g. `EVAL`.
    pub command: String,
}

/// One `LATENCY LATEST` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatencyEvent {
    /// The event (`command`, `fast-command`, `fork`, `expire-cycle`, ...).
    pub event: String,
    /// Unix time (s) of the latest spike.
    pub at_unix: i64,
    /// The latest spike, ms.
    pub latest_ms: i64,
    /// The largest spike since the server started or the history was reset, ms.
    pub max_ms: i64,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// Entries of a `SLOWLOG GET` reply; entries of an unexpected shape are skipped.
#[must_use]
pub fn slowlog(reply: &Value) -> Vec<SlowEntry> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let Value::Array(f) = e else { return None };
            let command = match f.get(3) {
                Some(Value::Array(args)) => args.first().and_then(text).unwrap_or_default(),
                _ => String::new(),
            };
            Some(SlowEntry {
                id: int(f.first()?)?,
                at_unix: int(f.get(1)?)?,
                duration_us: int(f.get(2)?)?,
                command: command.chars().take(40).collect::<String>().to_uppercase(),
            })
        })
        .collect()
}

/// Events of a `LATENCY LATEST` reply; events of an unexpected shape are skipped.
#[must_use]
pub fn latency_latest(reply: &Value) -> Vec<LatencyEvent> {
    let Value::Array(events) = reply else {
        return Vec::new();
    };
    events
        .iter()
        .filter_map(|e| {
            let Value::Array(f) = e else { return None };
            Some(LatencyEvent {
                event: text(f.first()?)?,
                at_unix: int(f.get(1)?)?,
                latest_ms: int(f.get(2)?)?,
                max_ms: int(f.get(3)?)?,
            })
        })
        .collect()
}

/// `major.minor` of a `redis_version` such as `7.0.15`.
#[must_use]
pub fn version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_and_commandstats_parse() {
        let mut i = Info::default();
        i.absorb("# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n\r\n# Commandstats\r\ncmdstat_get:calls=21,usec=175,usec_per_call=8.33,rejected_calls=0,failed_calls=0\r\ngarbage\r\n");
        assert_eq!(i.get("maxmemory_policy"), Some("allkeys-lru"));
        assert_eq!(i.int("maxmemory"), Some(0));
        let cs = i.commandstats();
        assert_eq!(cs.len(), 1);
        assert_eq!((cs[0].command.as_str(), cs[0].calls), ("get", 21));
        assert_eq!(version("7.0.15"), Some((7, 0)));
        assert_eq!(version("6"), Some((6, 0)));
        assert_eq!(version("x"), None);
    }

    #[test]
    fn slowlog_and_latency_replies_parse_and_tolerate_junk() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(7),
                Value::Int(1_700_000_000),
                Value::Int(250_000),
                Value::Array(vec![b("eval"), b("secret")]),
                b("127.0.0.1:5000"),
                b(""),
            ]),
            Value::Int(3),
        ]);
        let s = slowlog(&reply);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].duration_us, s[0].command.as_str()), (250_000, "EVAL"));
        let lat = Value::Array(vec![Value::Array(vec![
            b("command"),
            Value::Int(1_700_000_000),
            Value::Int(250),
            Value::Int(300),
        ])]);
        assert_eq!(latency_latest(&lat)[0].max_ms, 300);
        assert!(latency_latest(&Value::Nil).is_empty());
    }
}
