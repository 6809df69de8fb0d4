//! `leasehold bench`: flags, the private redis-server, signals and printing. The measurements and
//! the typed report live in the `leasehold-bench` library.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use leasehold_bench::{BenchError, BenchOptions};

use crate::sim_cmd::parse_duration;

mod private;
use private::{start_cluster, start_replicated};

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
