//! [`Locker`] and its options.

use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leasehold_core::wire::compat as compat_wire;
use leasehold_core::{
    AcquireError, AcquireMode, Dialect, HolderId, Instant as CoreInstant, Lock, LockConfig,
    LockName, LostReason, SlotLayout,
};
use tokio::sync::{broadcast, mpsc, watch};

use crate::acquire::Acquisition;
use crate::cell::{NameGate, NameGates};
use crate::conn::{Instance, InstanceEvent, Router, Supervisor, WakeMode};
use crate::error::{LockError, permanent, permanent_acquire, redact};
use crate::keeper::KeeperHandle;
use crate::lease::Lease;
use crate::observe::LockEvent;

/// Options for a [`Locker`]. Public fields with defaults; [`LockerOptions::build`] validates them.
#[derive(Debug, Clone)]
pub struct LockerOptions {
    /// One URL (single instance or one deployment) or several (independent instances, majority).
    pub urls: Vec<String>,
    /// Use `2k-1` keys on the one deployment instead of one key (rueidislock's `KeyMajority`).
    pub key_majority: Option<u8>,
    /// Timing, prefix and drift settings; `layout` is derived from `urls` and `key_majority`.
    pub lock: LockConfig,
    /// Holder id written into lock values (default: `<hostname>/<pid>`).
    pub holder: Option<String>,
    /// Ask servers for push invalidations (RESP3 client tracking). Off: waiters poll.
    pub push: bool,
    /// PEM root certificate(s) to trust for `rediss://` (a private CA). `None`: the system's
    /// roots. Needs the `tls` feature.
    pub tls_root_ca: Option<Vec<u8>>,
    /// Publish this process's lock events to the capped stream `<prefix>:events` on the first
    /// instance (`XADD ... MAXLEN ~ 10000`), so a dashboard can show every client's timeouts and
    /// losses. Off by default.
    pub publish_events: bool,
    /// With `key_majority` on one server, send the keys of one round as one script
    /// (`ACQUIRE_BATCH`, `RELEASE_BATCH`: one round trip less, no token write-back). On by
    /// default, and used only when the server reports itself standalone (`INFO server`). Turn
    /// it off behind a proxy that shards keys and answers `INFO` as one server (twemproxy,
    /// Envoy, a managed service's proxy): a batch lands on the shard of its first key, where
    /// per-key scripts would reach each key's own shard.
    pub batch_keys: bool,
}

impl LockerOptions {
    /// Options for one Redis URL, defaults elsewhere.
    pub fn new(url: impl Into<String>) -> Self {
        LockerOptions {
            urls: vec![url.into()],
            key_majority: None,
            lock: LockConfig::default(),
            holder: None,
            push: true,
            tls_root_ca: None,
            publish_events: false,
            batch_keys: true,
        }
    }

    /// Options for several independent instances (held on a majority).
    pub fn instances<I: IntoIterator<Item = S>, S: Into<String>>(urls: I) -> Self {
        LockerOptions {
            urls: urls.into_iter().map(Into::into).collect(),
            ..LockerOptions::new(String::new())
        }
    }

    /// Set the lease ttl.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.lock.ttl = ttl;
        self
    }

    /// Set the per-slot reply wait.
    #[must_use]
    pub fn slot_wait(mut self, wait: Duration) -> Self {
        self.lock.slot_wait = wait;
        self
    }

    /// Set the extension interval (default ttl/3).
    #[must_use]
    pub fn extend_interval(mut self, every: Duration) -> Self {
        self.lock.extend_interval = Some(every);
        self
    }

    /// Count every grant, extension and fence write-back only once `WAIT replicas timeout`
    /// confirms that many replicas have it (`leasehold_core::replication`): a lease then
    /// survives a failover to a replica that acknowledged. A grant not confirmed in time fails
    /// the acquire with a slot error of kind `NotReplicated` ([`LockError::is_not_replicated`])
    /// and its key is deleted; an extension not confirmed does not move the lease's validity.
    /// `timeout` must be whole milliseconds, at least 1 ms and below `slot_wait` (checked at
    /// [`LockerOptions::build`]). The write and its `WAIT` go out as one pipeline; `WAIT` blocks
    /// the instance's connection (shared by the locker's leases) until the replicas answer or
    /// the timeout passes.
    #[must_use]
    pub fn replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.lock.replication = Some(leasehold_core::Replication::new(replicas, timeout));
        self
    }

    /// Set the key prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.lock.prefix = prefix.into();
        self
    }

    /// Connect. Fails at once, with a permanent [`LockError`], for invalid options, malformed
    /// URLs, one server given twice (the same address, or the same `run_id` under two addresses),
    /// and what Redis rejects for good: credentials, ACL permissions, the database number, TLS
    /// verification, an unknown host. Unreachable instances (refused, timing out) are retried in
    /// the background; acquires report them as unreachable.
    pub async fn build(self) -> Result<Locker, LockError> {
        Locker::connect(self).await
    }
}

/// The compare-and-delete of `dialect`: the same in both; rueidislock's own text in its.
fn release_source(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Leasehold => leasehold_core::wire::RELEASE.source,
        Dialect::Rueidislock => compat_wire::DELKEY.source,
    }
}

/// What every connection of a locker of `dialect` loads before it is used: the scripts the
/// machine's commands run (an operator's force-release is loaded when first used).
fn preload_sources(dialect: Dialect) -> Arc<[&'static str]> {
    use leasehold_core::wire::{self, batch};
    let mut v = vec![release_source(dialect), batch::RELEASE_BATCH.source];
    match dialect {
        Dialect::Leasehold => v.extend([
            wire::ACQUIRE.source,
            batch::ACQUIRE_BATCH.source,
            wire::EXTEND.source,
            wire::CHECK.source,
            wire::RAISE_FENCE.source,
        ]),
        Dialect::Rueidislock => v.extend([
            compat_wire::ACQUIRE.source,
            compat_wire::FORCE.source,
            compat_wire::EXTEND.source,
            compat_wire::CHECK.source,
        ]),
    }
    v.into()
}

fn default_holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}/{}", std::process::id())
}

pub(crate) struct Scripts {
    pub acquire: redis::Script,
    /// Several slots' acquires, or releases, on one instance ([`leasehold_core::wire::batch`]).
    pub acquire_batch: redis::Script,
    pub release_batch: redis::Script,
    pub extend: redis::Script,
    pub check: redis::Script,
    pub release: redis::Script,
    pub raise_fence: redis::Script,
    /// The rueidislock dialect's acquire, force and extend (its release is `release`).
    pub compat_acquire: redis::Script,
    pub compat_force: redis::Script,
    pub compat_extend: redis::Script,
    pub compat_check: redis::Script,
    /// An operator's force-release (never emitted by the machine; loaded when first used).
    pub force_release: redis::Script,
}

pub(crate) struct Shared {
    pub instances: Vec<Instance>,
    pub slots: usize,
    pub events: broadcast::Sender<InstanceEvent>,
    pub lock_events: broadcast::Sender<LockEvent>,
    pub scripts: Scripts,
    pub origin: tokio::time::Instant,
    pub config: Arc<LockConfig>,
    pub holder: HolderId,
    pub gates: NameGates,
    pub seed: Mutex<u64>,
    /// The latest reply time seen from each instance.
    pub reply_times: Mutex<Vec<Option<Duration>>>,
    /// Invalidation routing to drivers.
    pub router: Arc<Router>,
    /// Driver ids for the router.
    pub next_driver: std::sync::atomic::AtomicU64,
    /// Where the router sends pushes for leases the keeper holds.
    pub keeper_pushes: mpsc::UnboundedSender<(u64, usize)>,
    /// Names whose first acquire got a definite answer from Redis (granted or held), so a
    /// `lock` need not probe them with a single round first.
    pub probed: Mutex<std::collections::HashSet<String>>,
}

impl Shared {
    pub fn core_now(&self) -> CoreInstant {
        let d = tokio::time::Instant::now().saturating_duration_since(self.origin);
        CoreInstant::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub fn tokio_instant(&self, t: CoreInstant) -> tokio::time::Instant {
        self.origin + Duration::from_nanos(t.as_nanos())
    }

    pub fn instance_of(&self, slot: usize) -> usize {
        if self.instances.len() == 1 { 0 } else { slot }
    }

    /// The `(instance, key)` of every slot of `keys`: what the router knows a lease's routes by.
    pub fn route_keys<'k>(
        &'k self,
        keys: &'k leasehold_core::wire::SlotKeys,
    ) -> impl Iterator<Item = (usize, &'k str)> + 'k {
        (0..self.slots).map(move |s| (self.instance_of(s), keys.lock_key(s)))
    }

    pub fn note_reply_time(&self, instance: usize, took: Duration) {
        if let Ok(mut t) = self.reply_times.lock()
            && let Some(slot) = t.get_mut(instance)
        {
            *slot = Some(took);
        }
    }

    /// Send the event `ev` builds to the locker's subscribers; with none (the usual case) it is
    /// not even built (its name is a string to copy).
    pub fn emit(&self, ev: impl FnOnce() -> LockEvent) {
        if self.lock_events.receiver_count() > 0 {
            let _ = self.lock_events.send(ev());
        }
    }

    fn next_seed(&self) -> u64 {
        let mut s = self
            .seed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rng = leasehold_core::rng::SplitMix64::new(*s);
        *s = rng.next_u64();
        *s
    }

    pub(crate) fn gate(&self, name: &str) -> NameGate {
        self.gates.get(name)
    }
}

/// Takes leases on Redis. Cheap to clone; background tasks live as long as any clone.
#[derive(Clone)]
pub struct Locker {
    pub(crate) shared: Arc<Shared>,
    keeper: KeeperHandle,
}

impl std::fmt::Debug for Locker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locker")
            .field("instances", &self.shared.instances.len())
            .field("slots", &self.shared.slots)
            .finish()
    }
}

/// A client for `url`, trusting `root_ca` (PEM) for `rediss://` when given.
/// Record that the URL shown as `shown` reaches `endpoint`, or refuse it when an earlier URL
/// already does (`what`: how the error names the endpoint, "the same" or "the same address").
fn claim(
    endpoints: &mut Vec<(String, String)>,
    shown: &str,
    endpoint: String,
    what: &str,
) -> Result<(), LockError> {
    if let Some((first, _)) = endpoints.iter().find(|(_, e)| *e == endpoint) {
        return Err(LockError::DuplicateInstance {
            first: first.clone(),
            second: shown.to_owned(),
            how: format!("{what} {endpoint}"),
        });
    }
    endpoints.push((shown.to_owned(), endpoint));
    Ok(())
}

fn open_client(url: &str, root_ca: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
    #[cfg(feature = "tls")]
    if let (Some(pem), true) = (root_ca, url.starts_with("rediss://")) {
        let info = redis::IntoConnectionInfo::into_connection_info(url)?;
        return redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        );
    }
    let _ = root_ca;
    redis::Client::open(url)
}

/// `url` asking for RESP3 (needed for push invalidations) in its query, keeping any fragment
/// (`#insecure`) after it; a URL that already names a protocol is left alone.
#[must_use]
pub fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_owned();
    }
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, format!("#{f}")),
        None => (url, String::new()),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}protocol=resp3{fragment}")
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn resp3_goes_into_the_query_before_any_fragment() {
        assert_eq!(
            super::with_resp3("redis://h:1"),
            "redis://h:1?protocol=resp3"
        );
        assert_eq!(
            super::with_resp3("redis://h:1/2?x=1"),
            "redis://h:1/2?x=1&protocol=resp3"
        );
        assert_eq!(
            super::with_resp3("rediss://h:1/#insecure"),
            "rediss://h:1/?protocol=resp3#insecure"
        );
        assert_eq!(
            super::with_resp3("redis://h:1?protocol=resp2"),
            "redis://h:1?protocol=resp2"
        );
    }
}

/// What `run` reports.
#[derive(Debug)]
pub enum RunOutcome<T> {
    /// The closure finished while the lease was held; the lease was released.
    Finished(T),
    /// The lease was lost first; the closure was dropped (cancelled).
    Lost(LostReason),
}

impl Locker {
    async fn connect(opts: LockerOptions) -> Result<Locker, LockError> {
        let mut config = opts.lock.clone();
        if config.dialect == Dialect::Rueidislock && opts.urls.len() > 1 {
            return Err(LockError::Options(format!(
                "compat rueidislock speaks to one deployment (rueidislock has no majority of independent instances), but {} URLs were given; give the one URL the rueidislock clients use",
                opts.urls.len()
            )));
        }
        config.layout = match (opts.urls.len(), opts.key_majority) {
            (0, _) => {
                return Err(LockError::Options(
                    "at least one Redis URL is needed".into(),
                ));
            }
            (1, None) => SlotLayout::Single,
            (1, Some(k)) => SlotLayout::KeyMajority { k },
            (n, None) => SlotLayout::Instances {
                n: u8::try_from(n).unwrap_or(u8::MAX),
            },
            (_, Some(_)) => {
                return Err(LockError::Options(
                    "key_majority applies to one deployment; give one URL, or drop key_majority to use a majority of instances".into(),
                ));
            }
        };
        config.validate()?;
        let holder = HolderId::new(opts.holder.clone().unwrap_or_else(default_holder))?;
        #[cfg(feature = "tls")]
        if opts.urls.iter().any(|u| u.starts_with("rediss://")) {
            // rustls needs one process-wide crypto provider; an application may have installed
            // its own already, which is fine
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut clients: Vec<(redis::Client, String, bool)> = Vec::new();
        let mut sentinels: Vec<Option<Arc<crate::sentinel::SentinelUrl>>> = Vec::new();
        let mut clusters: Vec<Option<Arc<crate::cluster::ClusterUrl>>> = Vec::new();
        let mut endpoints: Vec<(String, String)> = Vec::new();
        for url in &opts.urls {
            let shown = redact(url);
            if url.starts_with("rediss://") && !cfg!(feature = "tls") {
                return Err(LockError::InvalidUrl {
                    url: shown,
                    reason: "rediss:// needs leasehold-redis built with the `tls` feature".into(),
                });
            }
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://")
                || url.starts_with(crate::sentinel::SCHEME)
                || crate::cluster::is_cluster_url(url))
            {
                return Err(LockError::InvalidUrl {
                    url: shown,
                    reason: "the scheme must be redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
                        .into(),
                });
            }
            if crate::cluster::is_cluster_url(url) {
                if config.replication.is_some() {
                    return Err(LockError::Options(format!(
                        "replicas (WAIT) is not supported on a Redis Cluster ({shown}): the cluster client does not pipeline a WAIT behind the write on the same node"
                    )));
                }
                let (placeholder, endpoint, c) = crate::cluster::prepare(url, &shown)?;
                claim(&mut endpoints, &shown, endpoint, "the same")?;
                sentinels.push(None);
                clusters.push(Some(Arc::new(c)));
                // no pushes on a cluster: waiters poll
                clients.push((placeholder, shown, false));
                continue;
            }
            if url.starts_with(crate::sentinel::SCHEME) {
                let (placeholder, endpoint, s) = crate::sentinel::prepare(url, &shown)?;
                claim(&mut endpoints, &shown, endpoint, "the same")?;
                let resp3 = opts.push && !url.contains("protocol=resp2");
                sentinels.push(Some(Arc::new(s)));
                clusters.push(None);
                clients.push((placeholder, shown, resp3));
                continue;
            }
            let target = if opts.push {
                with_resp3(url)
            } else {
                url.clone()
            };
            let client = open_client(&target, opts.tls_root_ca.as_deref()).map_err(|e| {
                LockError::InvalidUrl {
                    url: shown.clone(),
                    reason: e.to_string(),
                }
            })?;
            let info = client.get_connection_info();
            let endpoint = match info.addr() {
                redis::ConnectionAddr::Tcp(host, port)
                | redis::ConnectionAddr::TcpTls { host, port, .. } => {
                    format!("{}:{port}", host.to_ascii_lowercase())
                }
                other => other.to_string(),
            };
            claim(&mut endpoints, &shown, endpoint, "the same address")?;
            // `?protocol=resp2` (or a server without RESP3 asked for it): no pushes, waiters poll
            let resp3 =
                opts.push && info.redis_settings().protocol() != redis::ProtocolVersion::RESP2;
            clients.push((client, shown, resp3));
            sentinels.push(None);
            clusters.push(None);
        }
        let (events, _) = broadcast::channel(1024);
        let (lock_events, _) = broadcast::channel(1024);
        let ttl = config.ttl;
        let response_timeout = (ttl / 2).clamp(Duration::from_millis(100), Duration::from_secs(2));
        let mut instances = Vec::new();

        let router = Arc::new(Router::default());
        let preload = preload_sources(config.dialect);
        for (index, (client, url, resp3)) in clients.into_iter().enumerate() {
            let (conn_tx, conn_rx) = watch::channel(None);
            let (kick, kick_rx) = mpsc::unbounded_channel();
            let mode = Arc::new(AtomicU8::new(0));
            let last_error = Arc::new(Mutex::new(None));
            let run_id = Arc::new(Mutex::new(None));
            let batches = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let sup = Supervisor {
                index,
                client,
                resp3,
                tracking: resp3,
                response_timeout,
                conn_tx,
                events: events.clone(),
                kick_rx,
                mode: mode.clone(),
                last_error: last_error.clone(),
                run_id: run_id.clone(),
                router: router.clone(),
                sentinel: sentinels.get(index).cloned().flatten(),
                cluster: clusters.get(index).cloned().flatten(),
                batches: batches.clone(),
                batch_keys: opts.batch_keys,
                preload: preload.clone(),
            };
            tokio::spawn(sup.run());

            instances.push(Instance {
                conn: conn_rx,
                kick,
                mode,
                last_error,
                run_id,
                url,
                batches,
            });
        }
        // wait briefly for the first connection attempt of each instance, to report refused
        // credentials and malformed settings now rather than at the first acquire
        for inst in &instances {
            let mut rx = inst.conn.clone();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            loop {
                if rx.borrow().is_some() {
                    break;
                }
                let err = inst
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.as_ref().map(|e| (e.kind(), e.to_string())));
                if let Some((kind, text)) = err {
                    if let Some(e) = permanent(&inst.url, &text) {
                        return Err(e);
                    }
                    if matches!(kind, redis::ErrorKind::AuthenticationFailed) {
                        return Err(LockError::Auth {
                            url: inst.url.clone(),
                            detail: text,
                        });
                    }
                    break; // unreachable for now: keep retrying in the background
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                // wake on a connection, or look again for a recorded error shortly
                let _ = tokio::time::timeout(Duration::from_millis(20), rx.changed()).await;
            }
        }
        distinct(&instances)?;
        let n_instances = instances.len();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
        let (keeper_pushes, keeper_push_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            slots: config.layout.slots(),
            instances,
            events,
            lock_events,
            scripts: Scripts {
                acquire: redis::Script::new(leasehold_core::wire::ACQUIRE.source),
                acquire_batch: redis::Script::new(
                    leasehold_core::wire::batch::ACQUIRE_BATCH.source,
                ),
                release_batch: redis::Script::new(
                    leasehold_core::wire::batch::RELEASE_BATCH.source,
                ),
                extend: redis::Script::new(leasehold_core::wire::EXTEND.source),
                check: redis::Script::new(leasehold_core::wire::CHECK.source),
                release: redis::Script::new(release_source(config.dialect)),
                raise_fence: redis::Script::new(leasehold_core::wire::RAISE_FENCE.source),
                compat_acquire: redis::Script::new(compat_wire::ACQUIRE.source),
                compat_force: redis::Script::new(compat_wire::FORCE.source),
                compat_extend: redis::Script::new(compat_wire::EXTEND.source),
                compat_check: redis::Script::new(compat_wire::CHECK.source),
                force_release: redis::Script::new(leasehold_core::wire::FORCE_RELEASE.source),
            },
            origin: tokio::time::Instant::now(),
            config: Arc::new(config),
            holder,
            gates: NameGates::new(1_024),
            seed: Mutex::new(seed),
            reply_times: Mutex::new(vec![None; n_instances]),
            router,
            next_driver: std::sync::atomic::AtomicU64::new(1),
            keeper_pushes,
            probed: Mutex::new(std::collections::HashSet::new()),
        });
        if opts.publish_events {
            // subscribe now, before the first acquire can emit anything
            let rx = shared.lock_events.subscribe();
            tokio::spawn(crate::observe::publish_events(shared.clone(), rx));
        }
        let keeper = crate::keeper::spawn(&shared, keeper_push_rx);
        Ok(Locker { shared, keeper })
    }

    /// The last connection error of each instance that is not connected now: `(url, error)`
    /// (password hidden). Empty when every instance is connected.
    #[must_use]
    pub fn connection_errors(&self) -> Vec<(String, String)> {
        self.shared
            .instances
            .iter()
            .filter(|i| i.conn.borrow().is_none())
            .map(|i| {
                let err = i
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.as_ref().map(ToString::to_string))
                    .unwrap_or_else(|| "not connected yet".to_owned());
                (i.url.clone(), err)
            })
            .collect()
    }

    /// The error a failed acquire round stands for: permanent when Redis rejected too many
    /// slots for a quorum ever to form, the acquire error otherwise.
    fn classify(&self, e: AcquireError) -> LockError {
        let shared = &self.shared;
        permanent_acquire(&e, shared.slots, |slot| {
            shared.instances[shared.instance_of(slot)].url.clone()
        })
        .unwrap_or(LockError::Acquire(e))
    }

    /// Which wake-up mode is active (push if every connected instance pushes).
    #[must_use]
    pub fn wake_mode(&self) -> WakeMode {
        let modes: Vec<WakeMode> = self
            .shared
            .instances
            .iter()
            .map(Instance::wake_mode)
            .collect();
        if modes.iter().all(|m| *m == WakeMode::Push) {
            WakeMode::Push
        } else if modes.contains(&WakeMode::Polling) {
            WakeMode::Polling
        } else {
            WakeMode::Connecting
        }
    }

    /// Subscribe to this process's lock events (acquire latency and outcome, extensions, losses).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<LockEvent> {
        self.shared.lock_events.subscribe()
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &LockConfig {
        &self.shared.config
    }

    async fn acquire(
        &self,
        name: &str,
        mode: AcquireMode,
        queue_locally: bool,
    ) -> Result<Lease, LockError> {
        let lock_name = LockName::new(name)?;
        // an instance may have (re)connected to a server another URL already reaches
        distinct(&self.shared.instances)?;
        let started = tokio::time::Instant::now();
        let guard = crate::acquire::enter_gate(&self.shared, name, mode, queue_locally, started)
            .await
            .map_err(LockError::Acquire)?;
        let mut lock = Lock::new_shared(
            self.shared.config.clone(),
            lock_name,
            self.shared.holder.clone(),
            self.shared.next_seed(),
        )?;
        self.shared.stamp_wall_clock(&mut lock);
        if let Ok(times) = self.shared.reply_times.lock() {
            for slot in 0..self.shared.slots {
                if let Some(Some(t)) = times.get(self.shared.instance_of(slot)) {
                    lock.note_reply_time(slot, *t);
                }
            }
        }
        let span = tracing::info_span!("lease", lock = %name, mode = ?mode);
        let acquisition = Acquisition::new(&self.shared, &self.keeper, lock, name, guard, mode);
        tracing::Instrument::instrument(acquisition.run(mode), span)
            .await
            .map_err(|e| self.classify(e))
    }

    /// Acquire `name`, waiting (push wake-ups or backoff) until `wait` has passed. A `wait`
    /// shorter than `slot_wait` (zero included) makes exactly one attempt, like
    /// [`Locker::try_lock`]; a longer one makes at least one.
    ///
    /// Permanent errors ([`LockError::is_permanent`]: a key of the wrong type, an ACL that
    /// denies the scripts) end the wait at once: the first acquire of a name in a locker is one
    /// round, and only contention, slow replies or unreachable instances go on to wait.
    pub async fn lock(&self, name: &str, wait: Duration) -> Result<Lease, LockError> {
        if wait < self.shared.config.slot_wait {
            return self.try_lock(name).await;
        }
        let wait = wait.min(Duration::from_secs(86_400 * 3_650));
        let started = tokio::time::Instant::now();
        let deadline = self.shared.core_now() + wait;
        let probed = self.shared.probed.lock().is_ok_and(|p| p.contains(name));
        if !probed {
            let first = self.acquire(name, AcquireMode::Try, false).await;
            let definite = matches!(
                first,
                Ok(_) | Err(LockError::Acquire(AcquireError::Contended { .. }))
            );
            if definite && let Ok(mut p) = self.shared.probed.lock() {
                if p.len() > 4_096 {
                    p.clear();
                }
                p.insert(name.to_owned());
            }
            match first {
                Ok(lease) => return Ok(lease),
                Err(LockError::Acquire(cause)) => {
                    if self.shared.core_now() >= deadline {
                        return Err(LockError::Acquire(AcquireError::DeadlineExceeded {
                            waited: started.elapsed(),
                            attempts: 1,
                            last_cause: Some(Box::new(cause)),
                        }));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.acquire(name, AcquireMode::Wait { deadline }, true)
            .await
    }

    /// One round: acquire `name` now or report why not.
    pub async fn try_lock(&self, name: &str) -> Result<Lease, LockError> {
        self.acquire(name, AcquireMode::Try, false).await
    }

    /// Take `name` over even if someone holds it. The previous holder learns it was taken
    /// (`LostReason::Taken`) at its push re-check (within a round trip; a holder in this locker
    /// too) or at the latest its next extension; its token is lower.
    pub async fn force_lock(&self, name: &str) -> Result<Lease, LockError> {
        self.acquire(name, AcquireMode::Force, false).await
    }

    /// Run `f` under a lease of `name` (waiting up to `wait`); cancel it if the lease is lost.
    pub async fn run<T, F>(
        &self,
        name: &str,
        wait: Duration,
        f: F,
    ) -> Result<RunOutcome<T>, LockError>
    where
        F: std::future::Future<Output = T>,
    {
        let lease = self.lock(name, wait).await?;
        let outcome = tokio::select! {
            v = f => RunOutcome::Finished(v),
            r = lease.lost() => RunOutcome::Lost(r),
        };
        match outcome {
            RunOutcome::Finished(v) => match lease.release().await {
                Ok(()) => Ok(RunOutcome::Finished(v)),
                Err(LockError::Lost(r)) => Ok(RunOutcome::Lost(r)),
                Err(e) => Err(e),
            },
            lost => Ok(lost),
        }
    }
}

/// `Err(DuplicateInstance)` when two instances report the same server `run_id`.
fn distinct(instances: &[Instance]) -> Result<(), LockError> {
    if instances.len() < 2 {
        return Ok(());
    }
    let ids: Vec<Option<String>> = instances
        .iter()
        .map(|i| i.run_id.lock().ok().and_then(|id| id.clone()))
        .collect();
    for (j, id) in ids.iter().enumerate() {
        let Some(id) = id else { continue };
        if let Some(i) = ids[..j].iter().position(|o| o.as_ref() == Some(id)) {
            return Err(LockError::DuplicateInstance {
                first: instances[i].url.clone(),
                second: instances[j].url.clone(),
                how: format!("the same run_id {id}"),
            });
        }
    }
    Ok(())
}
