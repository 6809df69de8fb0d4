//! `redis+cluster://` URLs: the instance is a Redis Cluster, reached through the `redis` crate's
//! async cluster client (`redis::cluster_async::ClusterConnection`), which routes every script
//! by its first key (lock key and fence counter share a hash tag, so one slot), follows
//! `MOVED`/`ASK`, refreshes its slot map and reconnects to nodes by itself. A reply it cannot
//! route (`CLUSTERDOWN`, `TRYAGAIN`, a node that stays unreachable) becomes a slot error of the
//! command that met it, like any other server error; the machine turns that into a typed
//! acquire failure or loss.
//!
//! No push wake-ups: client-side tracking is per node connection, which the cluster client does
//! not expose, so a locker on a cluster polls ([`crate::WakeMode::Polling`]).
//!
//! Format: `redis+cluster://[user:password@]host:port[,host:port...][?query]`. Each `host:port`
//! is a seed; the credentials and query apply to every node. A cluster has only database 0.

use std::time::Duration;

use redis::cluster_async::ClusterConnection;

/// The scheme.
pub const SCHEME: &str = "redis+cluster://";

/// A parsed `redis+cluster://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterUrl {
    /// `host:port` of each seed.
    pub seeds: Vec<String>,
    /// `user:password@` or empty.
    auth: String,
    /// `?query` or empty.
    query: String,
}

impl ClusterUrl {
    /// Parse `url`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<ClusterUrl, String> {
        let parts =
            crate::sentinel::MultiHostUrl::parse(url, SCHEME, "a cluster URL", "cluster seed")?;
        let path = parts.path.as_str();
        if !(path.is_empty() || path == "0") {
            return Err(format!(
                "path {path:?}: a Redis Cluster has only database 0 (give no path)"
            ));
        }
        let crate::sentinel::MultiHostUrl {
            hosts: seeds,
            auth,
            query,
            ..
        } = parts;
        Ok(ClusterUrl { seeds, auth, query })
    }

    /// The `redis://` URL of each seed, with this URL's credentials and query.
    pub fn seed_urls(&self) -> Vec<String> {
        self.seeds
            .iter()
            .map(|s| format!("redis://{}{s}{}", self.auth, self.query))
            .collect()
    }

    /// Connect to the cluster (any reachable seed will do).
    pub async fn connect(
        &self,
        response_timeout: Duration,
    ) -> Result<ClusterConnection, redis::RedisError> {
        redis::cluster::ClusterClientBuilder::new(self.seed_urls())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(response_timeout)
            // a few quick retries cover a MOVED/ASK or a resharding step; a slot that stays
            // down must surface as an error well within a lease's validity
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()?
            .get_async_connection()
            .await
    }
}

/// Whether `url` names a Redis Cluster (`redis+cluster://`).
#[must_use]
pub fn is_cluster_url(url: &str) -> bool {
    url.starts_with(SCHEME)
}

/// The `redis+cluster://` URL of a cluster given as seeds: `redis://[user:password@]host:port`
/// URLs sharing one set of credentials and query (a `redis+cluster://` URL among them is taken
/// as its seeds). The error names the seed that cannot be one.
///
/// # Errors
/// No seed, a seed that is not `redis://`, a database other than 0, or seeds with different
/// credentials or query.
pub fn cluster_url_from_seeds(seeds: &[String]) -> Result<String, String> {
    let (mut hosts, mut common): (Vec<String>, Option<(String, String)>) = (Vec::new(), None);
    for seed in seeds {
        let shown = crate::redact(seed);
        let (auth, query, these) = if is_cluster_url(seed) {
            let c = ClusterUrl::parse(seed).map_err(|e| format!("seed {shown}: {e}"))?;
            (c.auth, c.query, c.seeds)
        } else {
            let Some(rest) = seed.strip_prefix("redis://") else {
                return Err(format!(
                    "seed {shown}: a cluster seed is redis://[user:password@]host:port"
                ));
            };
            // one seed is a one-host cluster URL: the same parser checks host, port and path
            let c = ClusterUrl::parse(&format!("{SCHEME}{rest}"))
                .map_err(|e| format!("seed {shown}: {e}"))?;
            (c.auth, c.query, c.seeds)
        };
        match &common {
            None => common = Some((auth, query)),
            Some(c) if *c == (auth, query) => {}
            Some(_) => {
                return Err(format!(
                    "seed {shown}: every seed of one cluster needs the same credentials and query"
                ));
            }
        }
        hosts.extend(these);
    }
    let Some((auth, query)) = common else {
        return Err("no cluster seed given".into());
    };
    Ok(format!("{SCHEME}{auth}{}{query}", hosts.join(",")))
}

/// Connect to the Redis Cluster a `redis+cluster://` URL names, with the client settings a
/// locker uses (a few quick retries on `MOVED`/`ASK`), for tools beside a locker that send their
/// own commands (the bench's floor). The error says what was wrong: the URL, or no reachable seed.
///
/// # Errors
/// A malformed URL, or no seed answering.
pub async fn connect_cluster(
    url: &str,
    response_timeout: Duration,
) -> Result<ClusterConnection, String> {
    let c = ClusterUrl::parse(url)?;
    c.connect(response_timeout).await.map_err(|e| e.to_string())
}

/// For the locker: parse `url` (shown as `shown` in errors) into the cluster to connect to, the
/// endpoint that names it for duplicate detection, and a placeholder client (never connected).
pub(crate) fn prepare(
    url: &str,
    shown: &str,
) -> Result<(redis::Client, String, ClusterUrl), crate::LockError> {
    let invalid = |reason: String| crate::LockError::InvalidUrl {
        url: shown.to_owned(),
        reason,
    };
    let c = ClusterUrl::parse(url).map_err(invalid)?;
    let endpoint = format!("cluster {}", c.seeds.join(","));
    let first = c.seed_urls().into_iter().next().unwrap_or_default();
    let placeholder = redis::Client::open(first).map_err(|e| invalid(e.to_string()))?;
    Ok((placeholder, endpoint, c))
}

/// The cluster hash slot of `key` (CRC16/XMODEM of the hash tag if any, else of the key,
/// modulo 16384), as Redis computes it.
#[must_use]
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let after = &key[open + 1..];
            let close = after.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &after[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &b in tagged {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// The `host:port` serving `slot` in a `CLUSTER SLOTS` reply.
pub(crate) fn owner_in_slots(reply: &redis::Value, slot: u16) -> Option<String> {
    let redis::Value::Array(ranges) = reply else {
        return None;
    };
    ranges.iter().find_map(|r| {
        let redis::Value::Array(fields) = r else {
            return None;
        };
        let int = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(i)) => u16::try_from(*i).ok(),
            _ => None,
        };
        let (lo, hi) = (int(fields.first())?, int(fields.get(1))?);
        if !(lo..=hi).contains(&slot) {
            return None;
        }
        let redis::Value::Array(node) = fields.get(2)? else {
            return None;
        };
        let host = match node.first()? {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let port = int(node.get(1))?;
        Some(format!("{host}:{port}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_make_one_cluster_url_or_say_which_cannot() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            cluster_url_from_seeds(&s(&["redis://u:p@h1:7000", "redis://u:p@h2:7001/0"])),
            Ok("redis+cluster://u:p@h1:7000,h2:7001".to_owned())
        );
        assert_eq!(
            cluster_url_from_seeds(&s(&["redis+cluster://a:1,b:2", "redis://c:3"])),
            Ok("redis+cluster://a:1,b:2,c:3".to_owned())
        );
        for (bad, why) in [
            (s(&[]), "no cluster seed"),
            (s(&["rediss://h:1"]), "a cluster seed is redis://"),
            (
                s(&["redis://h:1", "redis://:x@h:2"]),
                "the same credentials",
            ),
            (s(&["redis://h:1/3"]), "only database 0"),
            (s(&["redis://h"]), "not host:port"),
        ] {
            let e = cluster_url_from_seeds(&bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        // a password is never shown
        let e = cluster_url_from_seeds(&s(&["redis://h:1", "redis://:secret@h:2"])).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn urls_parse_and_bad_ones_say_why() {
        let u =
            ClusterUrl::parse("redis+cluster://u:p@127.0.0.1:7000,h2:7001?protocol=resp2").unwrap();
        assert_eq!(u.seeds, ["127.0.0.1:7000", "h2:7001"]);
        assert_eq!(
            u.seed_urls(),
            [
                "redis://u:p@127.0.0.1:7000?protocol=resp2",
                "redis://u:p@h2:7001?protocol=resp2"
            ]
        );
        assert_eq!(
            ClusterUrl::parse("redis+cluster://h:1/")
                .unwrap()
                .seed_urls(),
            ["redis://h:1"]
        );
        for (bad, why) in [
            ("redis://h:1", "starts with"),
            ("redis+cluster://h", "not host:port"),
            ("redis+cluster://h:1,", "not host:port"),
            ("redis+cluster://h:x", "not host:port"),
            ("redis+cluster://h:1/2", "only database 0"),
        ] {
            let e = ClusterUrl::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn key_slots_are_redis_ones() {
        // values from `CLUSTER KEYSLOT` on Redis 7
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"lh:{a}"), key_slot(b"lh:{a}:fence"));
        // CRC16/XMODEM's check value for "123456789" is 0x31C3
        assert_eq!(key_slot(b"123456789"), 12739);
    }

    #[test]
    fn owners_are_read_from_cluster_slots() {
        use redis::Value::{Array, BulkString, Int};
        let node = |p| Array(vec![BulkString(b"127.0.0.1".to_vec()), Int(p)]);
        let reply = Array(vec![
            Array(vec![Int(0), Int(5460), node(7000)]),
            Array(vec![Int(5461), Int(16383), node(7001)]),
        ]);
        assert_eq!(owner_in_slots(&reply, 0).as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(
            owner_in_slots(&reply, 5461).as_deref(),
            Some("127.0.0.1:7001")
        );
        assert_eq!(owner_in_slots(&Array(vec![]), 1), None);
    }
}
