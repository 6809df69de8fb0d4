//! Force-release exactly the lease the operator saw: compare-and-delete on the value shown, key
//! by key, stopping at the first key that changed hands.
//!
//! - leasehold: [`leasehold_core::wire::FORCE_RELEASE`] (shared with the simulator): deletes the
//!   lock key only if it still holds the shown value, then advances the fence counter by the
//!   fence-token rule, so the evicted holder's writes are rejected.
//! - rueidislock and plain `SET NX` keys: [`STRING_CAD`], the key is deleted only if it is still a
//!   string equal to the shown value.
//! - Redisson: [`REDISSON_CAD`], the hash is deleted only if the shown holder field is still in
//!   it.
//!
//! A value too large to have been read is never compared, so never released.

use leasehold_core::wire;
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::layout::{HeldKey, Layout, LockRow, MAX_VALUE, Shown};
use crate::model::ReleaseOutcome;

/// Compare-and-delete of a string key. `KEYS = [key]`, `ARGV = [expected]`. Returns `{1}`
/// deleted, `{0, what_is_there}` (its first bytes, or `a <type>`), `{-1}` gone. Bounded: the
/// value is compared only when its length matches.
pub const STRING_CAD: &str = r"
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return {-1} end
if t ~= 'string' then return {0, 'a ' .. t} end
if redis.call('STRLEN', KEYS[1]) == #ARGV[1] and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {1}
end
return {0, redis.call('GETRANGE', KEYS[1], 0, 255)}
";

/// Compare-and-delete of a Redisson lock hash. `KEYS = [key]`, `ARGV = [holder_field]`. Returns
/// `{1}` deleted, `{0, a_field_there_now}`, `{-1}` gone.
pub const REDISSON_CAD: &str = r"
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return {-1} end
if t ~= 'hash' then return {0, 'a ' .. t} end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1])
  return {1}
end
return {0, redis.call('HRANDFIELD', KEYS[1]) or ''}
";

/// One key's result.
enum KeyResult {
    Deleted(Option<u64>),
    Changed(String),
    Gone,
}

fn decode(v: &Value) -> Result<KeyResult, String> {
    let Value::Array(items) = v else {
        return Err(format!("unexpected reply {v:?}"));
    };
    let int = |i: usize| match items.get(i) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    match int(0) {
        Some(1) => Ok(KeyResult::Deleted(
            int(1).and_then(|t| u64::try_from(t).ok()),
        )),
        Some(-1) => Ok(KeyResult::Gone),
        Some(0) => {
            let now = match items.get(1) {
                Some(Value::BulkString(b)) => {
                    let shown = &b[..b.len().min(MAX_VALUE)];
                    crate::layout::holder_of(shown)
                }
                Some(Value::SimpleString(s)) => s.clone(),
                _ => "?".into(),
            };
            Ok(KeyResult::Changed(now))
        }
        _ => Err(format!("unexpected reply {v:?}")),
    }
}

/// What a held key is compared against: a whole string value, or a Redisson holder field.
enum Expected<'a> {
    Value(&'a [u8]),
    Field(&'a str),
}

async fn release_key(
    conn: &mut MultiplexedConnection,
    layout: Layout,
    k: &HeldKey,
    expected: &Expected<'_>,
    fence_keep_ms: u64,
) -> Result<Value, redis::RedisError> {
    match (expected, layout) {
        (Expected::Value(v), Layout::Leasehold) => {
            let fence = k
                .fence
                .clone()
                .unwrap_or_else(|| wire::keys::fence_key_of(&k.key));
            redis::Script::new(wire::FORCE_RELEASE.source)
                .key(&k.key)
                .key(fence)
                .arg(*v)
                .arg(fence_keep_ms)
                .invoke_async(conn)
                .await
        }
        (Expected::Value(v), _) => {
            redis::Script::new(STRING_CAD)
                .key(&k.key)
                .arg(*v)
                .invoke_async(conn)
                .await
        }
        (Expected::Field(f), _) => {
            redis::Script::new(REDISSON_CAD)
                .key(&k.key)
                .arg(*f)
                .invoke_async(conn)
                .await
        }
    }
}

/// [`release_key`], following a cluster's `MOVED` redirection once when `seed` (the URL the
/// dashboard was given) says how to reach other nodes. A value too large to have been read is
/// never compared, so never released.
async fn release_key_routed(
    conn: &mut MultiplexedConnection,
    seed: Option<&str>,
    layout: Layout,
    k: &HeldKey,
    fence_keep_ms: u64,
) -> Result<KeyResult, String> {
    let expected = match &k.shown {
        Shown::TooLarge(n) => {
            return Err(format!(
                "{} holds a {n}-byte value, too large to have been read and compared; not released",
                k.key
            ));
        }
        Shown::Value(v) => Expected::Value(v),
        Shown::Field(f) => Expected::Field(f),
    };
    let reply = match release_key(conn, layout, k, &expected, fence_keep_ms).await {
        Err(e) if seed.is_some() && e.redirect_node().is_some() => {
            let target = e
                .redirect_node()
                .and_then(|(addr, _)| addr.rsplit_once(':'))
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)));
            let url = target.and_then(|(h, p)| super::cluster::node_url(seed?, &h, p));
            let Some(url) = url else {
                return Err(format!("{}: {e}", k.key));
            };
            let mut node = super::connect(&url).await.map_err(|e| e.to_string())?;
            release_key(&mut node, layout, k, &expected, fence_keep_ms).await
        }
        r => r,
    };
    decode(&reply.map_err(|e| e.to_string())?)
}

/// Force-release `row` as shown: each held key is deleted only if it still holds the value the
/// dashboard showed; the first key that changed hands stops the release there.
/// `fence_keep_ms` is the fence counter's retention for leasehold locks.
pub async fn force_release(
    conn: &mut MultiplexedConnection,
    row: &LockRow,
    fence_keep_ms: u64,
) -> ReleaseOutcome {
    force_release_with(conn, None, row, fence_keep_ms).await
}

/// [`force_release`] through a connection to `url`; on a cluster, a key another primary owns is
/// released there (its `MOVED` redirection is followed).
pub async fn force_release_at(url: &str, row: &LockRow, fence_keep_ms: u64) -> ReleaseOutcome {
    match super::connect(url).await {
        Ok(mut conn) => force_release_with(&mut conn, Some(url), row, fence_keep_ms).await,
        Err(e) => ReleaseOutcome::Failed(e.to_string()),
    }
}

async fn force_release_with(
    conn: &mut MultiplexedConnection,
    seed: Option<&str>,
    row: &LockRow,
    fence_keep_ms: u64,
) -> ReleaseOutcome {
    if row.held.is_empty() {
        return ReleaseOutcome::Gone;
    }
    let mut released = 0;
    let mut gone = 0;
    let mut token = None;
    for k in &row.held {
        match release_key_routed(conn, seed, row.layout, k, fence_keep_ms).await {
            Ok(KeyResult::Deleted(t)) => {
                released += 1;
                token = token.max(t);
            }
            Ok(KeyResult::Gone) => gone += 1,
            Ok(KeyResult::Changed(now)) => {
                return ReleaseOutcome::Changed {
                    key: k.key.clone(),
                    now,
                    released_before: released,
                };
            }
            Err(why) if released == 0 => return ReleaseOutcome::Failed(why),
            Err(why) => {
                return ReleaseOutcome::Failed(format!(
                    "{released} key(s) released, then {}: {why}",
                    k.key
                ));
            }
        }
    }
    if released == 0 && gone > 0 {
        ReleaseOutcome::Gone
    } else {
        ReleaseOutcome::Released {
            keys: released,
            token,
        }
    }
}

/// The fence counter's retention a force-release keeps: leasehold's default
/// (`LockConfig::fence_retention`).
#[must_use]
pub fn fence_keep_ms() -> u64 {
    leasehold_core::LockConfig::default().fence_keep_ms()
}
