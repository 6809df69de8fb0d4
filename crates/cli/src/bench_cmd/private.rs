//! `leasehold bench`'s private Redis: one server, a primary with replicas, or a cluster of three
//! primaries, each process in its own process group (a terminal's Ctrl-C reaches only the bench,
//! which stops them) and killed on drop; a start that meets a taken port tries another.

use std::time::{Duration, Instant};

/// A private redis-server in its own process group (a terminal's Ctrl-C reaches only us, and we
/// stop it), killed on drop.
pub(super) struct OwnRedis(std::process::Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn start_redis() -> Result<(OwnRedis, String), String> {
    start_redis_with(&[])
}

/// A private primary and `n` private replicas of it, in sync.
pub(super) fn start_replicated(n: u32) -> Result<(Vec<OwnRedis>, String), String> {
    let (primary, url) = start_redis()?;
    let port = url.rsplit(':').next().unwrap_or_default().to_owned();
    let mut own = vec![primary];
    for _ in 0..n {
        own.push(start_redis_with(&["--replicaof", "127.0.0.1", &port])?.0);
    }
    let start = Instant::now();
    loop {
        let info = std::process::Command::new("redis-cli")
            .args(["-p", &port, "INFO", "replication"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if info.matches("state=online").count() >= n as usize {
            return Ok((own, url));
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "the {n} private replica(s) did not come in sync within 10s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private cluster of three primaries (each in its own directory, which goes with it), joined
/// by `redis-cli --cluster create`, ready when every node says `cluster_state:ok`.
pub(super) fn start_cluster() -> Result<(Vec<OwnRedis>, String, Vec<tempdir::Dir>), String> {
    let mut own = Vec::new();
    let mut dirs = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let dir = tempdir::Dir::new()?;
        // a new bus port and an empty nodes.conf with each attempt, as well as a new client port
        let (node, url) = start_redis_each(|| {
            let bus = free_port()?.to_string();
            let _ = std::fs::remove_file(std::path::Path::new(&dir.path()).join("nodes.conf"));
            Ok([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus,
                "--dir",
                &dir.path(),
            ]
            .map(str::to_owned)
            .to_vec())
        })?;
        own.push(node);
        dirs.push(dir);
        addrs.push(url.trim_start_matches("redis://").to_owned());
    }
    let out = std::process::Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .map_err(|e| {
            format!("cannot run redis-cli ({e}): install it (Debian/Ubuntu: apt-get install -y redis-tools) or pass --redis URL")
        })?;
    if !out.status.success() {
        return Err(format!(
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        ));
    }
    let start = Instant::now();
    while !addrs.iter().all(|a| {
        let port = a.rsplit(':').next().unwrap_or_default();
        std::process::Command::new("redis-cli")
            .args(["-p", port, "CLUSTER", "INFO"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
    }) {
        if start.elapsed() > Duration::from_secs(20) {
            return Err("the private cluster did not reach cluster_state:ok within 20s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((own, format!("redis+cluster://{}", addrs.join(",")), dirs))
}

/// A private directory under the system's temporary directory, removed on drop.
mod tempdir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Result<Dir, String> {
            let p = std::env::temp_dir().join(format!(
                "leasehold-bench-{}-{}",
                std::process::id(),
                super::free_port()?
            ));
            std::fs::create_dir_all(&p)
                .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            Ok(Dir(p))
        }

        pub fn path(&self) -> String {
            self.0.to_string_lossy().into_owned()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// A private redis-server with `extra` arguments on a free port.
fn start_redis_with(extra: &[&str]) -> Result<(OwnRedis, String), String> {
    start_redis_each(|| Ok(extra.iter().map(|a| (*a).to_owned()).collect()))
}

/// A private redis-server on a free port, with the arguments `args` gives for each attempt. A
/// port taken between the pick and the server's bind (another process's connection can be
/// handed it) costs an attempt, not the run: up to 5, each on a new port.
fn start_redis_each(
    mut args: impl FnMut() -> Result<Vec<String>, String>,
) -> Result<(OwnRedis, String), String> {
    let mut last = String::new();
    for _ in 0..5 {
        match start_redis_once(&args()?) {
            Ok(started) => return Ok(started),
            Err(Start::Fatal(e)) => return Err(e),
            Err(Start::Retry(e)) => last = e,
        }
    }
    Err(last)
}

/// Why one start failed: worth another port, or not.
enum Start {
    Retry(String),
    Fatal(String),
}

fn start_redis_once(extra: &[String]) -> Result<(OwnRedis, String), Start> {
    use std::os::unix::process::CommandExt as _;
    let port = free_port().map_err(Start::Fatal)?;
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Start::Fatal(format!("cannot start redis-server ({e}): install it (Debian/Ubuntu: apt-get install -y redis-server) or pass --redis URL"))
        })?;
    let mut own = OwnRedis(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = own.0.try_wait() {
            // it exited at once: a port (client or cluster bus) was taken, or bad arguments
            return Err(Start::Retry(format!(
                "redis-server exited at start ({status}) on port {port}; run `redis-server --port {port} {}` to see why",
                extra.join(" ")
            )));
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(Start::Retry(
                "redis-server did not start listening within 10s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("redis://127.0.0.1:{port}");
    // the port answered, but a connect alone does not say that it is ours: another program can
    // have bound it after the pick, and then the bench would write to that server
    match server_pid(&url) {
        Some(pid) if pid == own.0.id() => Ok((own, url)),
        other => Err(Start::Retry(format!(
            "port {port} is served by another process ({}), not the redis-server started here",
            other.map_or_else(
                || "its INFO server did not say".to_owned(),
                |p| format!("pid {p}")
            )
        ))),
    }
}

/// The `process_id` a Redis server at `url` reports in `INFO server`.
fn server_pid(url: &str) -> Option<u32> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}
