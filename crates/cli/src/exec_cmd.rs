//! `leasehold exec`: run a command under a lease, like `flock(1)`, `etcdctl lock` and
//! `consul lock`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use leasehold_redis::{LockError, LockerOptions};

use crate::sim_cmd::parse_duration;

/// The lock could not be had within `--wait` (EX_TEMPFAIL).
pub const EXIT_NOT_ACQUIRED: u8 = 75;
/// The lease was lost while the command ran; it was terminated.
pub const EXIT_LOST: u8 = 76;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Redis URL; repeat for a majority of independent instances.
    #[arg(long = "redis", default_value = "redis://127.0.0.1:6379")]
    redis: Vec<String>,
    /// Lease time-to-live (extended every ttl/3 while the command runs).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    ttl: Duration,
    /// How long to wait for the lock before giving up (0s: one attempt, like `flock -n`).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    wait: Duration,
    /// After a lost lease: time between SIGTERM and SIGKILL.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    grace: Duration,
    /// Key prefix.
    #[arg(long, default_value = "leasehold")]
    prefix: String,
    /// Lock name.
    name: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status();
}

fn exit_status(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(255)),
        _ => ExitCode::from(1),
    }
}

pub fn run(a: ExecArgs) -> ExitCode {
    let Some(rt) = crate::runtime("exec") else {
        return ExitCode::from(1);
    };
    rt.block_on(exec(a))
}

async fn exec(a: ExecArgs) -> ExitCode {
    let mut opts = if a.redis.len() == 1 {
        LockerOptions::new(a.redis[0].clone())
    } else {
        LockerOptions::instances(a.redis.clone())
    };
    opts = opts.ttl(a.ttl).prefix(a.prefix.clone());
    let locker = match opts.build().await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("leasehold exec: {e}");
            return ExitCode::from(2);
        }
    };
    let lease = match locker.lock(&a.name, a.wait).await {
        Ok(l) => l,
        Err(LockError::Acquire(e)) => {
            eprintln!(
                "leasehold exec: could not acquire {:?} within {:?}: {e}",
                a.name, a.wait
            );
            return ExitCode::from(EXIT_NOT_ACQUIRED);
        }
        Err(e) => {
            eprintln!("leasehold exec: {e}");
            return ExitCode::from(2);
        }
    };
    let mut child = match tokio::process::Command::new(&a.command[0])
        .args(&a.command[1..])
        .env("LEASEHOLD_TOKEN", lease.token().to_string())
        .env("LEASEHOLD_NAME", &a.name)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leasehold exec: cannot run {:?}: {e}", a.command[0]);
            let _ = lease.release().await;
            return ExitCode::from(127);
        }
    };
    let pid = child.id().unwrap_or(0);
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        status = child.wait() => {
            let code = match status {
                Ok(s) => exit_status(s),
                Err(e) => {
                    eprintln!("leasehold exec: waiting for the command failed: {e}");
                    ExitCode::from(1)
                }
            };
            match lease.release().await {
                Ok(()) => code,
                Err(LockError::Lost(reason)) => {
                    eprintln!("leasehold exec: the lease on {:?} was lost before the command ended: {reason}", a.name);
                    ExitCode::from(EXIT_LOST)
                }
                Err(e) => {
                    eprintln!("leasehold exec: release failed: {e}");
                    code
                }
            }
        }
        reason = lease.lost() => {
            eprintln!("leasehold exec: lease on {:?} lost ({reason}); sending SIGTERM to pid {pid}", a.name);
            signal(pid, "-TERM");
            if tokio::time::timeout(a.grace, child.wait()).await.is_err() {
                eprintln!("leasehold exec: still running after {:?}; sending SIGKILL", a.grace);
                let _ = child.kill().await;
            }
            ExitCode::from(EXIT_LOST)
        }
        _ = async { match sigterm.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
            // forward our termination to the command, then release
            signal(pid, "-TERM");
            let _ = tokio::time::timeout(a.grace, child.wait()).await;
            let _ = child.kill().await;
            let _ = lease.release().await;
            ExitCode::from(143)
        }
    }
}
