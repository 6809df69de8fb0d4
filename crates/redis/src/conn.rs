//! One supervised, multiplexed connection per Redis instance: connects, enables client-side
//! tracking (RESP3 `CLIENT TRACKING ON NOLOOP`: default mode, so Redis pushes a change of each
//! key this connection's scripts read, and never one of its own scripts' writes) when the server
//! allows it, forwards invalidation pushes, and reconnects with backoff. Without push support it says so and
//! waiters fall back to polling with backoff and jitter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value};
use tokio::sync::{broadcast, mpsc, watch};

/// How waiters learn that a lock may have become free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeMode {
    /// Not connected yet.
    Connecting,
    /// RESP3 client-tracking invalidations wake waiters within about one round trip.
    Push,
    /// No push support (RESP2 or tracking refused): waiters poll with exponential backoff and
    /// full jitter, bounded by their deadline.
    Polling,
}

impl WakeMode {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => WakeMode::Push,
            2 => WakeMode::Polling,
            _ => WakeMode::Connecting,
        }
    }
}

/// An instance's connection: one server, or a whole Redis Cluster (`redis+cluster://`), whose
/// client routes each command by its key. Tools beside a locker (the bench) send their own
/// commands on it through `redis::aio::ConnectionLike`.
#[derive(Clone)]
pub enum Conn {
    /// One server (or the current primary under Sentinel).
    Single(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Something an instance tells the lease drivers.
#[derive(Debug, Clone)]
pub(crate) enum InstanceEvent {
    /// The connection dropped.
    Down { instance: usize },
    /// The connection is (re)established.
    Up { instance: usize },
}

/// Routes invalidation pushes to the driver of the lease that owns the key, instead of waking every
/// driver for every push: per instance, key -> (lease id, slot, where to send `(lease id, slot)`).
/// A lease's keys are not kept twice: whoever unregisters or retargets an id names its keys (the
/// machine has them), and a push is looked up by the bytes it carries, without a copy.
/// (lease id, slot, where to send).
type Route = (u64, usize, mpsc::UnboundedSender<(u64, usize)>);

#[derive(Debug, Default)]
struct Routes {
    /// Indexed by instance.
    by_instance: Vec<foldhash::HashMap<Box<[u8]>, Vec<Route>>>,
}

#[derive(Debug, Default)]
pub(crate) struct Router {
    routes: std::sync::Mutex<Routes>,
}

impl Router {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Send changes of `key` on `instance` to `tx`, as `(id, slot)`.
    pub fn register(
        &self,
        id: u64,
        instance: usize,
        key: &str,
        slot: usize,
        tx: mpsc::UnboundedSender<(u64, usize)>,
    ) {
        let mut r = self.routes();
        if r.by_instance.len() <= instance {
            r.by_instance.resize_with(instance + 1, Default::default);
        }
        // exact room for the usual one route a key (a vector's first push takes four): a held
        // lease's routes are a good part of what it costs
        r.by_instance[instance]
            .entry(key.as_bytes().into())
            .or_insert_with(|| Vec::with_capacity(1))
            .push((id, slot, tx));
    }

    /// Send `id`'s changes of `keys` (`(instance, key)`, as registered) to `tx` from now on (one
    /// lock: no push is lost in between).
    pub fn retarget<'k>(
        &self,
        id: u64,
        keys: impl IntoIterator<Item = (usize, &'k str)>,
        tx: &mpsc::UnboundedSender<(u64, usize)>,
    ) {
        let mut r = self.routes();
        for (instance, key) in keys {
            if let Some(v) = r
                .by_instance
                .get_mut(instance)
                .and_then(|m| m.get_mut(key.as_bytes()))
            {
                for route in v.iter_mut().filter(|(i, ..)| *i == id) {
                    route.2 = tx.clone();
                }
            }
        }
    }

    /// Forget `id`'s routes of `keys` (`(instance, key)`, as registered).
    pub fn unregister<'k>(&self, id: u64, keys: impl IntoIterator<Item = (usize, &'k str)>) {
        let mut r = self.routes();
        for (instance, key) in keys {
            let Some(m) = r.by_instance.get_mut(instance) else {
                continue;
            };
            if let Some(v) = m.get_mut(key.as_bytes()) {
                v.retain(|(i, ..)| *i != id);
                if v.is_empty() {
                    m.remove(key.as_bytes());
                }
            }
        }
    }

    /// Deliver a change of `key` on `instance` that lease `writer` made itself to every other
    /// lease of this locker routed there. Redis does not report it: they share the writer's
    /// connection, and `NOLOOP` spares that connection its own writes (e.g. a `force_lock` of a
    /// name this locker holds, or a release a local waiter of the name is waiting for).
    pub fn changed_except(&self, instance: usize, key: &[u8], writer: u64) {
        self.deliver(instance, Some(key), Some(writer));
    }

    /// Deliver a change of `key` on `instance` (`None`: every key may have changed).
    pub fn changed(&self, instance: usize, key: Option<&[u8]>) {
        self.deliver(instance, key, None);
    }

    /// Send `(id, slot)` to every route of `key` on `instance` (`None`: of every key, a flush),
    /// except lease `except`'s.
    fn deliver(&self, instance: usize, key: Option<&[u8]>, except: Option<u64>) {
        let r = self.routes();
        let Some(m) = r.by_instance.get(instance) else {
            return;
        };
        let one = key.and_then(|k| m.get(k));
        let all = key.is_none().then(|| m.values());
        for (id, slot, tx) in one.into_iter().chain(all.into_iter().flatten()).flatten() {
            if Some(*id) != except {
                let _ = tx.send((*id, *slot));
            }
        }
    }
}

/// A handle to one supervised instance.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub conn: watch::Receiver<Option<Conn>>,
    pub kick: mpsc::UnboundedSender<()>,
    pub mode: Arc<AtomicU8>,
    pub last_error: Arc<std::sync::Mutex<Option<redis::RedisError>>>,
    /// The server's `run_id` (`INFO server`) as of the latest connection, to recognise one
    /// server given under two URLs.
    pub run_id: Arc<std::sync::Mutex<Option<String>>>,
    pub url: String,
    /// Whether one script may touch several slots' keys here ([`leasehold_core::wire::batch`]),
    /// as of the latest connection: see [`Supervisor::batches`].
    pub batches: Arc<AtomicBool>,
}

impl Instance {
    /// Whether acquires (releases) of several slots may go here as one script.
    pub fn batches(&self) -> bool {
        self.batches.load(Ordering::Relaxed)
    }

    pub fn wake_mode(&self) -> WakeMode {
        WakeMode::from_u8(self.mode.load(Ordering::Relaxed))
    }
}

pub(crate) struct Supervisor {
    pub index: usize,
    pub client: Client,
    pub resp3: bool,
    pub tracking: bool,
    pub response_timeout: Duration,
    pub conn_tx: watch::Sender<Option<Conn>>,
    pub events: broadcast::Sender<InstanceEvent>,
    pub kick_rx: mpsc::UnboundedReceiver<()>,
    pub mode: Arc<AtomicU8>,
    pub last_error: Arc<std::sync::Mutex<Option<redis::RedisError>>>,
    pub run_id: Arc<std::sync::Mutex<Option<String>>>,
    pub router: Arc<Router>,
    /// A `redis+sentinel://` instance: the primary is asked of the Sentinels on every connect
    /// (`client` is unused), and a connection to a server that is no longer the primary is
    /// dropped.
    pub sentinel: Option<Arc<crate::sentinel::SentinelUrl>>,
    /// A `redis+cluster://` instance: one cluster connection, kept for the locker's life
    /// ([`Supervisor::run_cluster`]).
    pub cluster: Option<Arc<crate::cluster::ClusterUrl>>,
    /// Set on each connection: whether one script may touch several slots' keys on it. Only
    /// when batching is allowed (`LockerOptions::batch_keys`) and the server says it is one
    /// keyspace (`redis_mode:standalone` in `INFO server`: a plain server or a Sentinel's
    /// primary; not a Cluster node, and not what does not answer `INFO` as Redis does).
    pub batches: Arc<AtomicBool>,
    /// `LockerOptions::batch_keys`.
    pub batch_keys: bool,
    /// The Lua sources of the scripts this locker runs, loaded on every connection (`SCRIPT
    /// LOAD`), so no script's first use waits for a `NOSCRIPT` and a load.
    pub preload: Arc<[&'static str]>,
}

/// Whether an `INFO server` reply is a standalone server's (one keyspace).
pub(crate) fn is_standalone(info: &str) -> bool {
    info.lines()
        .find_map(|l| l.strip_prefix("redis_mode:"))
        .is_some_and(|m| m.trim() == "standalone")
}

/// The `run_id` line of an `INFO server` reply.
pub(crate) fn parse_run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// Call `f` with each key an invalidation push names (`None`: a nil invalidation, "every key").
fn each_key(data: &[Value], mut f: impl FnMut(Option<&[u8]>)) {
    match data.first() {
        Some(Value::Array(keys)) => {
            for k in keys {
                match k {
                    Value::BulkString(b) => f(Some(b)),
                    Value::SimpleString(s) => f(Some(s.as_bytes())),
                    _ => {}
                }
            }
        }
        // a nil invalidation means "flush everything"
        _ => f(None),
    }
}

impl Supervisor {
    /// Run until the locker is dropped (every receiver of `conn_tx` gone).
    pub async fn run(mut self) {
        if let Some(c) = self.cluster.clone() {
            return self.run_cluster(&c).await;
        }
        let mut backoff = Duration::from_millis(20);
        loop {
            if self.conn_tx.is_closed() {
                return;
            }
            let (push_tx, mut push_rx) = mpsc::unbounded_channel::<PushInfo>();
            let mut cfg = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(self.response_timeout));
            if self.resp3 {
                // key changes go to their drivers straight from the connection's reader (no hop
                // through this task on the hand-off path; the reader has completed every reply
                // that came before the push); anything else (a disconnection) to `watch`
                let (router, index) = (self.router.clone(), self.index);
                cfg = cfg.set_push_sender(move |info: PushInfo| {
                    if matches!(info.kind, PushKind::Invalidate) {
                        each_key(&info.data, |key| router.changed(index, key));
                        Ok(())
                    } else {
                        push_tx.send(info)
                    }
                });
            } else {
                drop(push_tx);
            }
            let client = match &self.sentinel {
                None => Ok(self.client.clone()),
                Some(s) => s.resolve().await.and_then(|(host, port)| {
                    let url = s.primary_url(&host, port);
                    redis::Client::open(if self.resp3 {
                        crate::locker::with_resp3(&url)
                    } else {
                        url
                    })
                }),
            };
            let connected = match client {
                Ok(client) => {
                    client
                        .get_multiplexed_async_connection_with_config(&cfg)
                        .await
                }
                Err(e) => Err(e),
            };
            let connected = match connected {
                Ok(mut conn) if self.sentinel.is_some() => {
                    // the Sentinels may still name a primary that was demoted (or not yet
                    // promoted): only a primary takes lock writes
                    if crate::sentinel::is_primary(&mut conn).await {
                        Ok(conn)
                    } else {
                        Err(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "the server the Sentinels named is not a primary (yet)",
                        )))
                    }
                }
                other => other,
            };
            match connected {
                Ok(mut conn) => {
                    backoff = Duration::from_millis(20);
                    if let Ok(mut e) = self.last_error.lock() {
                        *e = None;
                    }
                    let push = self.resp3
                        && self.tracking
                        && redis::cmd("CLIENT")
                            .arg("TRACKING")
                            .arg("ON")
                            .arg("NOLOOP")
                            .query_async::<()>(&mut conn)
                            .await
                            .is_ok();
                    // before the connection is published: the first use of a script after a
                    // connect (or a restart, a failover) costs no NOSCRIPT round trips. Failures
                    // are left to the NOSCRIPT fallback of each call
                    let mut load = redis::pipe();
                    for source in self.preload.iter() {
                        load.cmd("SCRIPT").arg("LOAD").arg(*source).ignore();
                    }
                    let _ = load.query_async::<()>(&mut conn).await;
                    // before the connection is published, so a duplicate is seen with it
                    let info = redis::cmd("INFO")
                        .arg("server")
                        .query_async::<String>(&mut conn)
                        .await;
                    let standalone = info.as_ref().is_ok_and(|i| is_standalone(i));
                    self.batches
                        .store(self.batch_keys && standalone, Ordering::Relaxed);
                    if let (Ok(info), Ok(mut id)) = (info, self.run_id.lock()) {
                        *id = parse_run_id(&info);
                    }
                    self.mode.store(if push { 1 } else { 2 }, Ordering::Relaxed);
                    tracing::debug!(instance = self.index, push, "connected");
                    let _ = self.conn_tx.send(Some(Conn::Single(conn.clone())));
                    let _ = self.events.send(InstanceEvent::Up {
                        instance: self.index,
                    });
                    self.watch(conn, &mut push_rx).await;
                    let _ = self.conn_tx.send(None);
                    let _ = self.events.send(InstanceEvent::Down {
                        instance: self.index,
                    });
                    tracing::debug!(instance = self.index, "disconnected");
                }
                Err(e) => {
                    tracing::debug!(instance = self.index, error = %e, "connect failed");
                    if let Ok(mut last) = self.last_error.lock() {
                        *last = Some(e);
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// A cluster instance: connect (retrying with backoff until a seed answers), publish the
    /// connection, and keep it until the locker is dropped. The cluster client follows
    /// `MOVED`/`ASK`, refreshes its slot map and reconnects to nodes itself, so one node down
    /// fails only the commands for its slots (each with its own error), never the whole
    /// instance: no liveness `PING` here, which would fail on every node's behalf. No pushes:
    /// the instance polls.
    async fn run_cluster(mut self, url: &crate::cluster::ClusterUrl) {
        let mut backoff = Duration::from_millis(20);
        loop {
            if self.conn_tx.is_closed() {
                return;
            }
            match url.connect(self.response_timeout).await {
                Ok(conn) => {
                    if let Ok(mut e) = self.last_error.lock() {
                        *e = None;
                    }
                    self.mode.store(2, Ordering::Relaxed);
                    tracing::debug!(instance = self.index, "connected to the cluster");
                    let _ = self.conn_tx.send(Some(Conn::Cluster(conn)));
                    let _ = self.events.send(InstanceEvent::Up {
                        instance: self.index,
                    });
                    loop {
                        tokio::select! {
                            () = self.conn_tx.closed() => return,
                            k = self.kick_rx.recv() => if k.is_none() {
                                return;
                            },
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(instance = self.index, error = %e, "cluster connect failed");
                    if let Ok(mut last) = self.last_error.lock() {
                        *last = Some(e);
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Forward pushes until the connection dies.
    async fn watch(
        &mut self,
        mut conn: MultiplexedConnection,
        push_rx: &mut mpsc::UnboundedReceiver<PushInfo>,
    ) {
        let mut ping_every = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                msg = push_rx.recv(), if self.resp3 => match msg {
                    Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => return,
                    Some(_) => {}
                },
                k = self.kick_rx.recv() => {
                    if k.is_none() {
                        return;
                    }
                    // a command failed at the transport level: is the connection still alive?
                    if redis::cmd("PING").query_async::<()>(&mut conn).await.is_err() {
                        return;
                    }
                }
                _ = ping_every.tick() => {
                    if self.conn_tx.is_closed() {
                        return;
                    }
                    if self.sentinel.is_some() {
                        // a demoted primary answers PING but refuses writes: follow the failover
                        let role = tokio::time::timeout(
                            self.response_timeout,
                            crate::sentinel::is_primary(&mut conn),
                        )
                        .await;
                        if !matches!(role, Ok(true)) {
                            return;
                        }
                        continue;
                    }
                    let cmd = redis::cmd("PING");
                    let ping = tokio::time::timeout(self.response_timeout, cmd.query_async::<()>(&mut conn)).await;
                    if !matches!(ping, Ok(Ok(()))) {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_standalone_server_takes_batches() {
        let info = |mode: &str| {
            format!("# Server\r\nredis_version:7.0.15\r\nredis_mode:{mode}\r\nrun_id:ab\r\n")
        };
        assert!(is_standalone(&info("standalone")));
        assert!(!is_standalone(&info("cluster")), "a Cluster node");
        assert!(!is_standalone(&info("sentinel")), "a Sentinel itself");
        assert!(
            !is_standalone("# Server\r\nredis_version:7.0.15\r\n"),
            "a reply that does not say (a proxy's)"
        );
        assert_eq!(parse_run_id(&info("standalone")).as_deref(), Some("ab"));
    }
}
