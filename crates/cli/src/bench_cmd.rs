//! `leasehold bench`: flags, the private redis-server, signals and printing. The measurements and
//! the typed report live in the `leasehold-bench` library.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use leasehold_bench::{BenchError, BenchOptions};

use crate::sim_cmd::parse_duration;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Redis to measure; without it, a private redis-server is started on a free loopback port.
    /// The bench deletes every key it wrote (prefixes `leasehold-bench:` and `lhbench-floor:`).
    #[arg(long)]
    redis: Option<String>,
    /// Time for the latency phases; the other phases scale with it.
    #[arg(long, default_value = "16s", value_parser = parse_duration)]
    duration: Duration,
    /// Leases to hold at once in the hold phase (comma-separated; 0 skips it).
    #[arg(long, default_value = "1000,10000", value_parser = parse_counts)]
    hold: Counts,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
    /// Confirm every lock write with `WAIT` for this many replicas (0: none). Without --redis,
    /// that many private replicas are started too.
    #[arg(long, default_value_t = 0)]
    replicas: u32,
    /// How long each WAIT may block, 1ms to 300ms (the per-slot wait becomes this plus 150ms).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    replicas_timeout: Duration,
    /// Measure a Redis Cluster: --redis names a seed (`redis://host:port`, or a
    /// `redis+cluster://` URL, which implies this flag); without --redis a private cluster of
    /// three primaries is started. Not with --replicas.
    #[arg(long)]
    cluster: bool,
}

/// A comma-separated list of lease counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts(Vec<usize>);

fn parse_counts(s: &str) -> Result<Counts, String> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= 100_000)
                .ok_or_else(|| format!("{x:?} is not a lease count from 0 to 100000"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|v| Counts(v.into_iter().filter(|n| *n > 0).collect()))
}

/// A private redis-server in its own process group (a terminal's Ctrl-C reaches only us, and we
/// stop it), killed on drop.
struct OwnRedis(std::process::Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Result<(OwnRedis, String), String> {
    start_redis_with(&[])
}

/// A private primary and `n` private replicas of it, in sync.
fn start_replicated(n: u32) -> Result<(Vec<OwnRedis>, String), String> {
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
fn start_cluster() -> Result<(Vec<OwnRedis>, String, Vec<tempdir::Dir>), String> {
    let mut own = Vec::new();
    let mut dirs = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let dir = tempdir::Dir::new()?;
        let bus = free_port()?.to_string();
        let (node, url) = start_redis_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            &bus,
            "--dir",
            &dir.path(),
        ])?;
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

fn start_redis_with(extra: &[&str]) -> Result<(OwnRedis, String), String> {
    use std::os::unix::process::CommandExt as _;
    let port = free_port()?;
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            format!("cannot start redis-server ({e}): install it (Debian/Ubuntu: apt-get install -y redis-server) or pass --redis URL")
        })?;
    let own = OwnRedis(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not start listening within 10s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((own, format!("redis://127.0.0.1:{port}")))
}

type Signals = Vec<(tokio::signal::unix::Signal, i32)>;

/// Take over SIGINT, SIGTERM, SIGHUP and SIGQUIT (before the private server starts, so no signal
/// can end us while it runs unsupervised).
fn catch_signals() -> Signals {
    use tokio::signal::unix::{SignalKind, signal};
    [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
        (SignalKind::quit(), 3),
    ]
    .into_iter()
    .filter_map(|(k, n)| signal(k).ok().map(|s| (s, n)))
    .collect()
}

/// The first caught signal, as its number.
async fn interrupted(streams: &mut Signals) -> i32 {
    if streams.is_empty() {
        return std::future::pending().await;
    }
    let waits = streams.iter_mut().map(|(s, n)| {
        let n = *n;
        Box::pin(async move {
            s.recv().await;
            n
        })
    });
    futures_util::future::select_all(waits).await.0
}

pub fn run(a: BenchArgs) -> ExitCode {
    let Some(rt) = crate::runtime("bench") else {
        return ExitCode::from(1);
    };
    let mut signals = rt.block_on(async { catch_signals() });
    let replicas = match crate::exec_cmd::options::check_replicas(a.replicas, a.replicas_timeout) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("leasehold bench: {msg}");
            return ExitCode::from(2);
        }
    };
    let cluster = a.cluster
        || a.redis
            .as_deref()
            .is_some_and(leasehold_redis::is_cluster_url);
    if cluster && a.replicas > 0 {
        eprintln!(
            "leasehold bench: --replicas is not available on a Redis Cluster (WAIT-confirmed \
             leases need one primary); drop --replicas or bench a primary with replicas"
        );
        return ExitCode::from(2);
    }
    let mut own_dirs = Vec::new();
    let (own, url) = match &a.redis {
        Some(u) if cluster => {
            match leasehold_redis::cluster_url_from_seeds(std::slice::from_ref(u)) {
                Ok(u) => (None, u),
                Err(e) => {
                    eprintln!("leasehold bench: --redis under --cluster: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Some(u) => (None, u.clone()),
        None if cluster => match start_cluster() {
            Ok((own, url, dirs)) => {
                eprintln!(
                    "bench: started a private cluster of 3 primaries at {url} (pass --redis URL to measure yours)"
                );
                own_dirs = dirs;
                (Some(own), url)
            }
            Err(e) => {
                eprintln!("leasehold bench: {e}");
                return ExitCode::from(2);
            }
        },
        None => match start_replicated(a.replicas) {
            Ok((own, url)) => {
                eprintln!(
                    "bench: started a private redis-server at {url}{} (pass --redis URL to measure yours)",
                    if a.replicas > 0 {
                        format!(" with {} replica(s)", a.replicas)
                    } else {
                        String::new()
                    }
                );
                (Some(own), url)
            }
            Err(e) => {
                eprintln!("leasehold bench: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let opts = BenchOptions {
        url: url.clone(),
        duration: a.duration,
        hold: a.hold.0.clone(),
        replicas,
    };
    let progress = |what: &str| eprintln!("bench: {what}...");
    let outcome = rt.block_on(async {
        tokio::select! {
            r = leasehold_bench::run(&opts, &progress) => Ok(r),
            sig = interrupted(&mut signals) => Err(sig),
        }
    });
    match outcome {
        Ok(Ok(report)) => {
            if a.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.render());
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("leasehold bench: {e}");
            ExitCode::from(match e {
                BenchError::Connect { .. } | BenchError::Phase { .. } => 1,
            })
        }
        Err(sig) => {
            // interrupted: the private server goes with `own`; on a user's Redis, delete our keys
            if own.is_none() {
                let cleaned = rt.block_on(leasehold_bench::cleanup::delete_everywhere(&url));
                match cleaned {
                    Ok(n) => {
                        eprintln!("leasehold bench: interrupted; deleted the {n} key(s) it wrote")
                    }
                    Err(e) => eprintln!(
                        "leasehold bench: interrupted; could not delete its keys ({e}): delete keys matching leasehold-bench:* and lhbench-floor:* by hand"
                    ),
                }
            } else {
                eprintln!("leasehold bench: interrupted; stopped its private redis-server");
            }
            drop(own);
            drop(own_dirs);
            ExitCode::from(u8::try_from(128 + sig).unwrap_or(255))
        }
    }
}
