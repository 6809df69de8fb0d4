//! Test harness: real `redis-server` processes on free loopback ports, started and stopped by the
//! tests themselves, and a latency-injecting TCP proxy. Traffic stays on 127.0.0.1.
//!
//! When `redis-server` is missing, [`RedisServer::start`] fails with install instructions, unless
//! `LEASEHOLD_SKIP_REDIS=1` is set: then it returns `None` and the test reports itself skipped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod cluster;
pub use cluster::RedisCluster;

/// A `redis-server` child process on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    tls: bool,
    /// A cluster node's bus port (`--cluster-port`), chosen afresh with each start attempt.
    bus: Option<u16>,
}

/// A loopback port that is free now, chosen below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), so that no outgoing connection (a cluster node's
/// bus links, `redis-cli`, a client) can be handed the same port between this pick and the
/// server's `bind`. Falls back to a kernel-chosen port when that range is too small.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Mutex, OnceLock};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SEED: OnceLock<u32> = OnceLock::new();
    // every port handed out in this process, so that two tests running at once never both get
    // one (a bind check alone passes for both until either server binds)
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    const LOW: u32 = 20_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .next()
                .and_then(|w| w.parse::<u32>().ok())
        })
        .unwrap_or(32_768);
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if ephemeral_low > LOW + 1_000 {
        let span = ephemeral_low - LOW;
        let seed = *SEED.get_or_init(|| {
            std::process::id().wrapping_mul(2_654_435_761)
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
        });
        for _ in 0..256 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let candidate = LOW + (seed.wrapping_add(n.wrapping_mul(7_919))) % span;
            let Ok(port) = u16::try_from(candidate) else {
                continue;
            };
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.push(port);
                return port;
            }
        }
    }
    for _ in 0..64 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        if port != 0 && !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    0
}

/// Whether process `pid` has a socket listening on `127.0.0.1:<port>`: a connect that succeeds
/// may reach another process's server on that port (one started by a concurrent test, or by
/// another program), which must not pass for ours. `None` where `/proc` cannot tell (not Linux).
pub(crate) fn listens(pid: u32, port: u16) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
            (f.len() > 9 && f[1] == want && f[3] == "0A").then(|| f[9].to_owned())
        })
        .collect();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|t| {
            let t = t.to_string_lossy();
            inodes.iter().any(|i| t == format!("socket:[{i}]"))
        })
    }))
}

/// Wait until `child` listens on `127.0.0.1:<port>` (true), or exits or another process turns
/// out to own the port (false; the child is then killed and reaped).
pub(crate) fn wait_listening(child: &mut Child, port: u16, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(Some(_)) = child.try_wait() {
            return false; // exited: port taken or bad arguments
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            match listens(child.id(), port) {
                Some(true) | None => return true,
                // someone else's server answered: ours cannot bind this port
                Some(false) => {
                    if let Ok(Some(_)) = child.try_wait() {
                        return false;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn have_redis() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether tests should skip because Redis is missing and skipping was asked for. Panics with
/// instructions when Redis is missing and skipping was not asked for.
#[must_use]
pub fn skip_without_redis(test: &str) -> bool {
    if have_redis() {
        return false;
    }
    if std::env::var("LEASEHOLD_SKIP_REDIS").as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: redis-server is not installed (LEASEHOLD_SKIP_REDIS=1)");
        return true;
    }
    panic!(
        "{test} needs redis-server on PATH. Install it (Debian/Ubuntu: `apt-get install -y redis-server`, macOS: `brew install redis`), or set LEASEHOLD_SKIP_REDIS=1 to skip these tests"
    );
}

impl RedisServer {
    /// Start a server without persistence. `None` when skipping (see [`skip_without_redis`]).
    #[must_use]
    pub fn start(test: &str) -> Option<RedisServer> {
        Self::start_with(test, &[])
    }

    /// Start a TLS-only server with a throwaway CA and server certificate made with `openssl`.
    /// Its [`RedisServer::url`] is `rediss://127.0.0.1:<port>`; clients trust
    /// [`RedisServer::ca_pem`]. `None` when skipping.
    #[must_use]
    pub fn start_tls(test: &str) -> Option<RedisServer> {
        if skip_without_redis(test) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "leasehold-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::create_dir_all(&dir);
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let run = |args: &[&str]| {
            let ok = Command::new("openssl")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "openssl {args:?} failed: the TLS test needs openssl (apt-get install -y openssl)"
            );
        };
        let (ca_key, ca_crt, key, csr, crt, ext) = (
            d("ca.key"),
            d("ca.crt"),
            d("server.key"),
            d("server.csr"),
            d("server.crt"),
            d("ext.cnf"),
        );
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca_crt,
            "-days",
            "1",
            "-subj",
            "/CN=leasehold-test-ca",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=127.0.0.1",
        ]);
        let _ = std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n");
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "1",
            "-extfile",
            &ext,
        ]);
        let extra = vec![
            "--tls-cert-file".to_owned(),
            crt,
            "--tls-key-file".to_owned(),
            key,
            "--tls-ca-cert-file".to_owned(),
            ca_crt,
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        Some(
            RedisServer {
                child: None,
                port: 0,
                dir,
                extra,
                tls: true,
                bus: None,
            }
            .launch(false),
        )
    }

    /// Start a server with extra `redis-server` arguments (e.g. `["--requirepass", "pw"]`).
    #[must_use]
    pub fn start_with(test: &str, extra: &[&str]) -> Option<RedisServer> {
        Self::start_node(test, extra, false)
    }

    /// Start a server, as a cluster node with its own free bus port when `cluster` (the caller
    /// passes `--cluster-enabled yes` and the rest in `extra`). Each attempt picks a new client
    /// port and, for a node, a new bus port and an empty `nodes.conf`, so one port taken between
    /// the pick and the bind costs an attempt, not the test.
    pub(crate) fn start_node(test: &str, extra: &[&str], cluster: bool) -> Option<RedisServer> {
        if skip_without_redis(test) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "leasehold-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::create_dir_all(&dir);
        Some(
            RedisServer {
                child: None,
                port: 0,
                dir,
                extra: extra.iter().map(|s| (*s).to_owned()).collect(),
                tls: false,
                bus: None,
            }
            .launch(cluster),
        )
    }

    /// Start `self` on a free port, trying up to 8 ports: each attempt picks a new client port
    /// and, for a cluster node, a new bus port and an empty `nodes.conf`, so one port taken
    /// between the pick and the bind costs an attempt, not the test.
    fn launch(mut self, cluster: bool) -> RedisServer {
        for _ in 0..8 {
            self.port = free_port();
            if cluster {
                self.bus = Some(free_port());
                let _ = std::fs::remove_file(self.dir.join("nodes.conf"));
            }
            if self.spawn() {
                return self;
            }
        }
        panic!(
            "could not start {}redis-server on a free loopback port after 8 attempts (ports \
             taken, or redis-server refuses these arguments: {:?}); run `redis-server --port 0 \
             {}` by hand to see why",
            if self.tls { "a TLS " } else { "" },
            self.extra,
            self.extra.join(" ")
        );
    }

    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let (plain, tls_port) = if self.tls {
            ("0", port.as_str())
        } else {
            (port.as_str(), "0")
        };
        let child = Command::new("redis-server")
            .args([
                "--port",
                plain,
                "--tls-port",
                tls_port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--dir", &self.dir.to_string_lossy()])
            .args(&self.extra)
            .args(
                self.bus
                    .map(|b| ["--cluster-port".to_owned(), b.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(10))
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let Some(child) = &mut self.child else {
            return false;
        };
        if wait_listening(child, self.port, within) {
            return true;
        }
        self.child = None;
        false
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` for a TLS server; trust [`RedisServer::ca_pem`]).
    #[must_use]
    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://127.0.0.1:{}", self.port)
        } else {
            format!("redis://127.0.0.1:{}", self.port)
        }
    }

    /// The test CA certificate (PEM) of a TLS server.
    #[must_use]
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).unwrap_or_default()
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args([sig, &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// SIGSTOP: the server stops answering but keeps its sockets.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// kill -9, then start again on the same port with no data.
    pub fn restart(&mut self) {
        self.kill();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// A connection of a test's own to this server.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// A synchronous-ish helper: run one command on a fresh connection.
    pub async fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let mut conn = self.connection().await?;
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query_async(&mut conn).await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy on a free loopback port that delays every server-to-client chunk by `delay`, and
/// can cut the link ([`LatencyProxy::partition`]): connections stay open but nothing passes in
/// either direction (bytes are held, not lost) until [`LatencyProxy::heal`], like a partition
/// that drops packets without resets.
#[derive(Debug)]
pub struct LatencyProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Wait while the link is cut.
async fn while_cut(cut: &std::sync::atomic::AtomicBool) {
    while cut.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

impl LatencyProxy {
    /// Proxy to `127.0.0.1:<upstream>`, delaying replies by `delay`.
    pub async fn start(upstream: u16, delay: Duration) -> std::io::Result<LatencyProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cut_all = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let cut = cut_all.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let cut_up = cut.clone();
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            while_cut(&cut_up).await;
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tokio::time::sleep(delay).await;
                        while_cut(&cut).await;
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        Ok(LatencyProxy { port, task, cut })
    }

    /// Cut the link: from now on nothing passes in either direction (held, not dropped), new
    /// connections included, until [`LatencyProxy::heal`].
    pub fn partition(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Let traffic pass again (held bytes are delivered).
    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// `redis://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub mod topology;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_never_handed_out_twice_in_one_process() {
        let ports: Vec<u16> = (0..64).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn listens_tells_the_owner_of_a_port_from_another_process() {
        let l = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let port = l.local_addr().expect("its address").port();
        assert_eq!(listens(std::process::id(), port), Some(true));
        // another process of ours (readable without privileges, unlike pid 1's fds)
        let mut other = Command::new("sleep").arg("30").spawn().expect("sleep runs");
        let theirs = listens(other.id(), port);
        let _ = other.kill();
        let _ = other.wait();
        assert_eq!(
            theirs,
            Some(false),
            "a sleeping child does not own our socket"
        );
    }

    /// The race behind a CI failure: another process's server answers on the port, ours cannot
    /// bind it; the connect succeeds all the same, and must not pass for ours.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_server_that_cannot_bind_is_not_taken_for_ready_because_another_answers() {
        if skip_without_redis("harness_bind_race") {
            return;
        }
        let l = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let port = l.local_addr().expect("its address").port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        assert!(!wait_listening(&mut child, port, Duration::from_secs(10)));
        let _ = child.kill();
        let _ = child.wait();
    }
}
