//! The round-trip floor: what a hand-written, unfenced lock costs on the same Redis. Its keys live
//! under [`crate::FLOOR_PREFIX`], which no `Locker` reads (so none tracks them), and it runs on
//! its own connection, so no invalidation push or shared socket flatters or burdens either side. On a
//! cluster that connection is the cluster client, which routes each key to its primary.

use crate::conn::Conn;

/// Compare-and-delete, the floor's release.
pub const FLOOR_DEL: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// `SET key val NX PX 10000`, then compare-and-delete.
pub async fn cycle(c: &mut Conn, del: &redis::Script, key: &str, val: &str) -> Result<(), String> {
    set_nx(c, key, val).await?;
    let _: i64 = del
        .key(key)
        .arg(val)
        .invoke_async(c)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn set_nx(c: &mut Conn, key: &str, val: &str) -> Result<(), String> {
    let ok: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(val)
        .arg("NX")
        .arg("PX")
        .arg(10_000)
        .query_async(c)
        .await
        .map_err(|e| e.to_string())?;
    match ok {
        Some(_) => Ok(()),
        None => Err(format!("floor key {key} unexpectedly held")),
    }
}

/// The 3-key floor: three `SET NX PX` in parallel on one connection, then three
/// compare-and-deletes in parallel: the same commands a key-majority lock sends, unfenced.
pub async fn cycle3(
    c: &Conn,
    del: &redis::Script,
    keys: &[String; 3],
    val: &str,
) -> Result<(), String> {
    let (mut a, mut b, mut d) = (c.clone(), c.clone(), c.clone());
    let (x, y, z) = tokio::join!(
        set_nx(&mut a, &keys[0], val),
        set_nx(&mut b, &keys[1], val),
        set_nx(&mut d, &keys[2], val)
    );
    x?;
    y?;
    z?;
    let del1 = async { del.key(&keys[0]).arg(val).invoke_async::<i64>(&mut a).await };
    let del2 = async { del.key(&keys[1]).arg(val).invoke_async::<i64>(&mut b).await };
    let del3 = async { del.key(&keys[2]).arg(val).invoke_async::<i64>(&mut d).await };
    let (x, y, z) = tokio::join!(del1, del2, del3);
    x.and(y).and(z).map_err(|e| e.to_string())?;
    Ok(())
}
