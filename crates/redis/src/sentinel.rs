//! `redis+sentinel://` URLs: the instance is whatever primary the Sentinels name for a master
//! name, resolved again on every (re)connect, so after a failover the adapter follows the new
//! primary. Leases in flight see the old primary's connection drop (their extensions fail, and a
//! lease that cannot extend before its validity is lost with a typed reason); waiters go on with
//! the new primary.
//!
//! Format: `redis+sentinel://[user:password@]host:port[,host:port...]/<master name>[/<db>][?query]`.
//! The credentials, database and query (e.g. `protocol=resp2`) are those of the primary; the
//! Sentinels are asked without credentials.

use std::time::Duration;

/// The scheme.
pub const SCHEME: &str = "redis+sentinel://";

/// A parsed `redis+sentinel://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// `host:port` of each Sentinel.
    pub sentinels: Vec<String>,
    /// The master name the Sentinels monitor.
    pub master: String,
    /// `user:password@` or empty.
    auth: String,
    /// `/db` or empty.
    db: String,
    /// `?query` or empty.
    query: String,
}

/// The parts every multi-host URL of the adapter shares (`redis+sentinel://`,
/// `redis+cluster://`): `<scheme>[user:password@]host:port[,host:port...][/path][?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MultiHostUrl {
    /// `host:port` of each host, checked.
    pub hosts: Vec<String>,
    /// `user:password@` or empty.
    pub auth: String,
    /// What follows the first `/` after the hosts (empty if none).
    pub path: String,
    /// `?query` or empty.
    pub query: String,
}

impl MultiHostUrl {
    /// Split `url` of `scheme`; errors name the URL kind (`what`) and call a bad host a `host`.
    pub fn parse(url: &str, scheme: &str, what: &str, host: &str) -> Result<MultiHostUrl, String> {
        let rest = url
            .strip_prefix(scheme)
            .ok_or_else(|| format!("{what} starts with {scheme}"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, format!("?{q}")),
            None => (rest, String::new()),
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (format!("{a}@"), r),
            None => (String::new(), rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut checked = Vec::new();
        for h in hosts.split(',') {
            let ok = h
                .rsplit_once(':')
                .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(format!("{host} {h:?} is not host:port"));
            }
            checked.push(h.to_owned());
        }
        Ok(MultiHostUrl {
            hosts: checked,
            auth,
            path: path.to_owned(),
            query,
        })
    }
}

impl SentinelUrl {
    /// Parse `url`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<SentinelUrl, String> {
        let parts = MultiHostUrl::parse(url, SCHEME, "a Sentinel URL", "Sentinel address")?;
        let mut segments = parts.path.split('/');
        let master = segments.next().unwrap_or_default().to_owned();
        let db = match segments.next() {
            Some(d) if !d.is_empty() => {
                if d.parse::<u32>().is_err() {
                    return Err(format!("database {d:?} is not a number"));
                }
                format!("/{d}")
            }
            _ => String::new(),
        };
        if segments.next().is_some() {
            return Err("too many path segments: expected /<master name>[/<db>]".into());
        }
        if master.is_empty() {
            return Err(
                "the master name is missing: redis+sentinel://host:port/<master name>".into(),
            );
        }
        let MultiHostUrl {
            hosts: sentinels,
            auth,
            query,
            ..
        } = parts;
        Ok(SentinelUrl {
            sentinels,
            master,
            auth,
            db,
            query,
        })
    }

    /// The primary's URL at `host:port`, with this URL's credentials, database and query.
    pub fn primary_url(&self, host: &str, port: u16) -> String {
        format!(
            "redis://{}{host}:{port}{}{}",
            self.auth, self.db, self.query
        )
    }

    /// Ask the Sentinels in turn which primary they name for the master; the first answer wins.
    pub async fn resolve(&self) -> Result<(String, u16), redis::RedisError> {
        let mut last = None;
        for s in &self.sentinels {
            let asked = async {
                let client = redis::Client::open(format!("redis://{s}"))?;
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.master)
                    .query_async::<Option<(String, u16)>>(&mut c)
                    .await
            };
            match tokio::time::timeout(Duration::from_secs(1), asked).await {
                Ok(Ok(Some(addr))) => return Ok(addr),
                Ok(Ok(None)) => {
                    last = Some(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "Sentinel does not know the master name",
                        format!("{s} has no master named {:?}", self.master),
                    )));
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "Sentinel did not answer",
                        format!("{s} within 1s"),
                    )));
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Io, "no Sentinel address given"))
        }))
    }
}

/// For tools that open their own connections (the dashboard, `doctor`): the URL of the primary
/// the Sentinels of the `redis+sentinel://` URL `url` name now, with its credentials, database
/// and query; for a `redis+cluster://` URL its first seed node as a `redis://` URL (the tools
/// find the cluster's other primaries from it); any other URL unchanged. Call it on every
/// (re)connect to follow a failover.
///
/// # Errors
/// The URL does not parse, or no Sentinel named a primary (the message says which and why).
pub async fn primary_url_of(url: &str) -> Result<String, String> {
    if crate::cluster::is_cluster_url(url) {
        let c = crate::cluster::ClusterUrl::parse(url)?;
        return c
            .seed_urls()
            .into_iter()
            .next()
            .ok_or_else(|| "the cluster URL names no seed".to_owned());
    }
    if !url.starts_with(SCHEME) {
        return Ok(url.to_owned());
    }
    let s = SentinelUrl::parse(url)?;
    let (host, port) = s
        .resolve()
        .await
        .map_err(|e| format!("no Sentinel named the primary of {:?}: {e}", s.master))?;
    Ok(s.primary_url(&host, port))
}

/// For the locker: parse `url` (shown as `shown` in errors) into the Sentinels to ask, the
/// endpoint that names it for duplicate detection, and a placeholder client (never connected:
/// the primary is resolved on every connect).
pub(crate) fn prepare(
    url: &str,
    shown: &str,
) -> Result<(redis::Client, String, SentinelUrl), crate::LockError> {
    let invalid = |reason: String| crate::LockError::InvalidUrl {
        url: shown.to_owned(),
        reason,
    };
    let s = SentinelUrl::parse(url).map_err(invalid)?;
    let endpoint = format!("sentinel {}/{}", s.sentinels.join(","), s.master);
    let first = s
        .sentinels
        .first()
        .map_or("127.0.0.1:26379", String::as_str);
    let placeholder =
        redis::Client::open(format!("redis://{first}")).map_err(|e| invalid(e.to_string()))?;
    Ok((placeholder, endpoint, s))
}

/// Whether the server on `conn` says it is a primary (`ROLE`).
pub(crate) async fn is_primary(conn: &mut redis::aio::MultiplexedConnection) -> bool {
    let role = redis::cmd("ROLE").query_async::<redis::Value>(conn).await;
    match role {
        Ok(redis::Value::Array(items)) => {
            matches!(
                items.first(),
                Some(redis::Value::BulkString(b)) if b == b"master"
            ) || matches!(items.first(), Some(redis::Value::SimpleString(s)) if s == "master")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_say_why() {
        let u = SentinelUrl::parse(
            "redis+sentinel://u:p@127.0.0.1:26379,h2:26380/mymaster/2?protocol=resp2",
        )
        .unwrap();
        assert_eq!(u.sentinels, ["127.0.0.1:26379", "h2:26380"]);
        assert_eq!(u.master, "mymaster");
        assert_eq!(
            u.primary_url("10.0.0.1", 6379),
            "redis://u:p@10.0.0.1:6379/2?protocol=resp2"
        );
        let plain = SentinelUrl::parse("redis+sentinel://h:1/m").unwrap();
        assert_eq!(plain.primary_url("a", 2), "redis://a:2");
        for (bad, why) in [
            ("redis://h:1/m", "starts with"),
            ("redis+sentinel://h:1", "master name is missing"),
            ("redis+sentinel://h/m", "not host:port"),
            ("redis+sentinel://h:1/m/x", "not a number"),
            ("redis+sentinel://h:1/m/1/2", "too many"),
        ] {
            let e = SentinelUrl::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
