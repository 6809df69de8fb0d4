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

fn start_redis_with(extra: &[&str]) -> Result<(OwnRedis, String), String> {
    use std::os::unix::process::CommandExt as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))?;
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
    let (own, url) = match &a.redis {
        Some(u) => (None, u.clone()),
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
                let cleaned = rt.block_on(async {
                    let c = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
                    let mut c = c
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(|e| e.to_string())?;
                    leasehold_bench::cleanup::delete_bench_keys(&mut c).await
                });
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
            ExitCode::from(u8::try_from(128 + sig).unwrap_or(255))
        }
    }
}
