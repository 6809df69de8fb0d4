//! `leasehold exec`: run a command under a lease, like `flock(1)`, `etcdctl lock` and
//! `consul lock`, with one promise: the command's process group is stopped before any other
//! client can be granted the lock (see ARCHITECTURE.md, "exec's deadline").
//!
//! The command runs as the leader of its own process group. While it runs, exec keeps the lease
//! extended and watches three things: the lease's validity (if no extension is confirmed by
//! `validity - grace - margin`, the group gets SIGTERM, then SIGKILL at `validity - margin`,
//! margin = ttl/10 within [100 ms, 1 s]), loss (deleted, taken, flushed: SIGTERM now, SIGKILL after
//! `--grace`), and the signals INT, HUP, QUIT and TERM (forwarded to the group, SIGKILL after
//! `--grace`, then release and exit 128 + signal). Processes the command leaves behind in its
//! group are stopped the same way before the lock is released.

mod child;
mod guard;
pub(crate) mod options;

use std::io;
use std::process::ExitCode;
use std::task::Poll;
use std::time::Duration;

use clap::Args;
use leasehold_redis::{Lease, LockError, Locker, LockerOptions, LostReason};
use nix::sys::signal::Signal;
use tokio::time::Instant;

use crate::sim_cmd::parse_duration;
use child::Group;
use options::Timing;

/// Bad usage: an option, a URL, the same Redis server given twice.
pub const EXIT_USAGE: u8 = 2;
/// The lock could not be had within `--wait` (EX_TEMPFAIL): contention, or Redis unreachable or
/// slow (transient). Retrying later may succeed.
pub const EXIT_NOT_ACQUIRED: u8 = 75;
/// The lease was lost, or no extension was confirmed in time, while the command ran; the
/// command was stopped.
pub const EXIT_LOST: u8 = 76;
/// Redis rejected the setup for good (EX_CONFIG): authentication, ACL permission, a key of the
/// wrong type, the database number, TLS verification, an unknown host. Retrying cannot help.
pub const EXIT_REJECTED: u8 = 78;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Redis URL; repeat for a majority of independent instances (each server once), or, with
    /// --cluster, for several seeds of one Redis Cluster.
    #[arg(long = "redis", default_value = "redis://127.0.0.1:6379")]
    redis: Vec<String>,
    /// The --redis URLs are seeds of one Redis Cluster (`redis://host:port` each, the same
    /// credentials), not independent instances: the same as one `redis+cluster://` URL.
    #[arg(long)]
    cluster: bool,
    /// Lease time-to-live, 500ms to 365d (extended every ttl/3 while the command runs).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    ttl: Duration,
    /// How long to wait for the lock before giving up (0s: one attempt, like `flock -n`).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    wait: Duration,
    /// Time between SIGTERM and SIGKILL whenever the command is stopped (lost lease, deadline,
    /// forwarded signal). Default 2s, shortened to fit a short --ttl; at most
    /// ttl/2 - 1% of ttl - 2ms - the kill margin (ttl/10 within 100ms..1s).
    #[arg(long, value_parser = parse_duration)]
    grace: Option<Duration>,
    /// Key prefix (default `leasehold`, or `rueidislock` with `--compat rueidislock`).
    #[arg(long)]
    prefix: Option<String>,
    /// Speak rueidislock's wire protocol (`rueidislock[:K]`, K = its KeyMajority, 1-8, default
    /// 2 as rueidislock's; it must equal every rueidislock client's), so this command and
    /// rueidislock/valkeylock clients exclude each other on the same lock. Gives up fencing
    /// tokens and server-clock expiry (PXAT from this machine's wall clock).
    #[arg(long, value_parser = options::parse_compat)]
    compat: Option<leasehold_redis::Compat>,
    /// Count the grant and every extension only once `WAIT` says this many replicas have it
    /// (0: no WAIT). A grant not confirmed within --replicas-timeout is deleted and counts as
    /// not acquired (exit 75).
    #[arg(long, default_value_t = 0)]
    replicas: u32,
    /// How long each WAIT may block for the replicas, 1ms to 300ms (the per-slot reply wait
    /// becomes this plus 150ms: Redis answers a timed-out WAIT up to 100ms late).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    replicas_timeout: Duration,
    /// Lock name.
    name: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
    /// Internal: run as the guard of this process group (see `exec_cmd/guard.rs`).
    #[arg(long, hide = true)]
    guard_group: Option<i32>,
}

/// A duration for messages, to the millisecond.
fn show(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

fn exit_status(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
        _ => 1,
    }
}

fn signal_exit(sig: Signal) -> u8 {
    u8::try_from(128 + sig as i32).unwrap_or(255)
}

pub fn run(a: ExecArgs) -> ExitCode {
    if let Some(pgid) = a.guard_group {
        return guard::run(pgid);
    }
    let name = a.name.clone();
    let timing = match options::check(a.ttl, a.wait, a.grace)
        .and_then(|t| options::check_replicas(a.replicas, a.replicas_timeout).map(|_| t))
    {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("leasehold exec: {msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(rt) = crate::runtime("exec") else {
        return ExitCode::from(1);
    };
    // `block_on` runs `exec` on this (the main) thread, which forks the command: the
    // parent-death signal is tied to the forking thread, and this one lives as long as exec
    let code = rt.block_on(exec(a, name, timing));
    rt.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

/// The forwarded signals, as one stream.
struct Signals(Vec<(Signal, tokio::signal::unix::Signal)>);

impl Signals {
    fn install() -> io::Result<Self> {
        let mut v = Vec::new();
        for sig in child::FORWARDED {
            let kind = tokio::signal::unix::SignalKind::from_raw(sig as i32);
            v.push((sig, tokio::signal::unix::signal(kind)?));
        }
        Ok(Signals(v))
    }

    async fn recv(&mut self) -> Signal {
        std::future::poll_fn(|cx| {
            for (sig, s) in &mut self.0 {
                if let Poll::Ready(Some(())) = s.poll_recv(cx) {
                    return Poll::Ready(*sig);
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// The exit status for a failed `build` or acquire.
fn setup_failed(locker: Option<&Locker>, name: &str, t: Timing, e: LockError) -> u8 {
    match e {
        LockError::Acquire(cause) => {
            let mut msg = format!(
                "leasehold exec: could not acquire {name:?} within --wait {}: {cause}",
                show(t.wait)
            );
            if cause.is_not_replicated() {
                msg.push_str(
                    " (the primary granted, but too few replicas acknowledged within --replicas-timeout: the grant would not survive a failover and was deleted)",
                );
            }
            for (url, err) in locker.map(Locker::connection_errors).unwrap_or_default() {
                msg.push_str(&format!("; last connection error from {url}: {err}"));
            }
            eprintln!("{msg}");
            EXIT_NOT_ACQUIRED
        }
        LockError::Config(_)
        | LockError::InvalidUrl { .. }
        | LockError::Options(_)
        | LockError::DuplicateInstance { .. } => {
            eprintln!("leasehold exec: {e}");
            EXIT_USAGE
        }
        e if e.is_permanent() => {
            eprintln!("leasehold exec: {e} (permanent: retrying will not help)");
            EXIT_REJECTED
        }
        e => {
            eprintln!("leasehold exec: {e}");
            1
        }
    }
}

async fn exec(a: ExecArgs, name: String, t: Timing) -> u8 {
    // installed first: a signal while waiting for the lock ends the wait, not exec's process
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("leasehold exec: cannot install signal handlers: {e}");
            return 1;
        }
    };
    let opts = if a.cluster {
        match leasehold_redis::cluster_url_from_seeds(&a.redis) {
            Ok(url) => LockerOptions::new(url),
            Err(e) => {
                eprintln!("leasehold exec: --cluster: {e}");
                return EXIT_USAGE;
            }
        }
    } else if a.redis.len() == 1 {
        LockerOptions::new(a.redis[0].clone())
    } else {
        LockerOptions::instances(a.redis.clone())
    };
    let mut opts = opts.ttl(t.ttl);
    if let Some(compat) = a.compat.clone() {
        opts = opts.compat(compat);
    }
    if let Some(prefix) = &a.prefix {
        opts = opts.prefix(prefix.clone());
    }
    if let Ok(Some((n, timeout))) = options::check_replicas(a.replicas, a.replicas_timeout) {
        opts = opts
            .replicas(n, timeout)
            .slot_wait(options::replicas_slot_wait(timeout));
    }
    // --wait bounds the whole wait, connecting included (like `flock -w`); at least one attempt
    let started = Instant::now();
    let locker = tokio::select! {
        r = opts.build() => match r {
            Ok(l) => l,
            Err(e) => return setup_failed(None, &name, t, e),
        },
        sig = signals.recv() => {
            eprintln!("leasehold exec: {} while connecting; the command was not run", sig.as_str());
            return signal_exit(sig);
        }
    };
    let lease = tokio::select! {
        r = locker.lock(&name, t.wait.saturating_sub(started.elapsed())) => match r {
            Ok(l) => l,
            Err(e) => return setup_failed(Some(&locker), &name, t, e),
        },
        sig = signals.recv() => {
            eprintln!("leasehold exec: {} while waiting for {:?}; the command was not run", sig.as_str(), name);
            // the abandoned acquire deletes what it may have written, in the background
            tokio::time::sleep(Duration::from_millis(100)).await;
            return signal_exit(sig);
        }
    };
    // Ctrl-Z reaches exec's group only (the command has its own): from just before the command
    // starts, SIGTSTP suspends both (see `suspend`); before that it simply stops exec
    let tstp = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(
        Signal::SIGTSTP as i32,
    ))
    .ok();
    // no token at all under --compat (the dialect has none): a command that needs one fails
    // on the missing variable instead of fencing with a constant
    let env = [
        (
            "LEASEHOLD_TOKEN",
            lease.fencing_token().map(|t| t.to_string()),
        ),
        ("LEASEHOLD_NAME", Some(name.clone())),
    ];
    let (child, group) = match child::spawn(&a.command, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leasehold exec: cannot run {:?}: {e}", a.command[0]);
            release(lease, &name).await;
            // like a shell and timeout(1): 127 not found, 126 found but not runnable
            return if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    // exec dying now (SIGKILL) takes the whole group with it: the guard kills it
    let guard = guard::Guard::start(group.id());
    let end = supervise(child, group, &lease, &mut signals, tstp, t, &name).await;
    if let Some(g) = guard {
        g.dismiss();
    }
    let released_lost = release(lease, &name).await;
    let lost = end.lost.is_some() || released_lost;
    if let Some(sig) = end.signal {
        signal_exit(sig)
    } else if lost || end.deadline {
        EXIT_LOST
    } else {
        match end.status {
            Some(Ok(s)) => exit_status(s),
            Some(Err(e)) => {
                eprintln!("leasehold exec: waiting for the command failed: {e}");
                1
            }
            None => 1,
        }
    }
}

/// Release the lease (bounded: the key expires on its own otherwise). True if it turned out to
/// be lost.
async fn release(lease: Lease, name: &str) -> bool {
    match tokio::time::timeout(Duration::from_secs(3), lease.release()).await {
        Ok(Ok(())) => false,
        Ok(Err(LockError::Lost(reason))) => {
            eprintln!(
                "leasehold exec: the lease on {name:?} was lost before the command ended: {reason}"
            );
            true
        }
        Ok(Err(e)) => {
            eprintln!("leasehold exec: release failed: {e}; the key expires within its ttl");
            false
        }
        Err(_) => {
            eprintln!(
                "leasehold exec: release not confirmed within 3s; the key expires within its ttl"
            );
            false
        }
    }
}

/// How the command's run ended.
struct End {
    status: Option<io::Result<std::process::ExitStatus>>,
    signal: Option<Signal>,
    lost: Option<LostReason>,
    deadline: bool,
}

/// When to SIGKILL a group that got SIGTERM just now: after `grace`, but never later than
/// the kill margin before the lease's validity.
fn kill_time(lease: &Lease, t: Timing) -> Instant {
    let now = Instant::now();
    let k = now + t.grace;
    match lease.valid_until() {
        Some(v) => k.min(v.checked_sub(t.margin).unwrap_or(now)),
        None => k,
    }
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// What became of the command after exec was suspended and resumed.
enum Resumed {
    /// The lease was still valid for `--grace` and more: the command continues.
    Running,
    /// Less than `--grace` was left: SIGTERM went out; SIGKILL is due before this validity.
    Stopping(Instant),
    /// The lease's validity had passed: another client may hold the lock; SIGKILL went out.
    Killed,
}

/// Ctrl-Z (SIGTSTP): stop the command's group with SIGSTOP (it cannot be ignored), then stop
/// exec itself, so the job is suspended as a whole. While exec is stopped nothing extends the
/// lease; on resume (SIGCONT) the command continues only if the lease is still valid for
/// `--grace` + the kill margin, and is otherwise stopped without ever running again unlocked.
fn suspend(group: Group, lease: &Lease, t: Timing) -> Resumed {
    group.signal(Signal::SIGSTOP);
    eprintln!(
        "leasehold exec: suspended, with the command; the lease is not extended while suspended"
    );
    let _ = nix::sys::signal::raise(Signal::SIGSTOP);
    let now = Instant::now();
    match lease.valid_until() {
        Some(v) if now + t.grace + t.margin < v => {
            group.signal(Signal::SIGCONT);
            Resumed::Running
        }
        Some(v) if now + t.margin < v => {
            eprintln!(
                "leasehold exec: resumed with only {} of validity left; stopping the command (SIGTERM now, SIGKILL {} before validity)",
                show(v - now),
                show(t.margin)
            );
            group.signal(Signal::SIGTERM);
            group.signal(Signal::SIGCONT);
            Resumed::Stopping(v)
        }
        _ => {
            eprintln!(
                "leasehold exec: resumed after the lease's validity (another client may hold the lock); killing the suspended command"
            );
            group.signal(Signal::SIGKILL);
            Resumed::Killed
        }
    }
}

/// Run until the command has exited and no process of its group is left.
async fn supervise(
    mut child: tokio::process::Child,
    group: Group,
    lease: &Lease,
    signals: &mut Signals,
    mut tstp: Option<tokio::signal::unix::Signal>,
    t: Timing,
    name: &str,
) -> End {
    let mut end = End {
        status: None,
        signal: None,
        lost: None,
        deadline: false,
    };
    let mut term_sent = false;
    let mut kill_at: Option<Instant> = None;
    let mut killed_at: Option<Instant> = None;
    // the validity in force when the deadline stop began, to report the margin kept
    let mut deadline_validity: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if end.status.is_some() && !group.alive() {
            break;
        }
        if let Some(k) = killed_at
            && end.status.is_some()
            && k.elapsed() > Duration::from_secs(2)
        {
            eprintln!(
                "leasehold exec: processes of the command's group survive SIGKILL (uninterruptible I/O?); releasing anyway"
            );
            break;
        }
        // `now` is only good until the select below starts waiting: branches read the clock again
        let now = Instant::now();
        let child_deadline = lease
            .valid_until()
            .map(|v| v.checked_sub(t.grace + t.margin).unwrap_or(now));
        tokio::select! {
            biased;
            s = child.wait(), if end.status.is_none() => {
                end.status = Some(s);
                if !term_sent && group.alive() {
                    eprintln!("leasehold exec: the command exited but left processes in its group; stopping them (SIGTERM, SIGKILL after {})", show(t.grace));
                    group.signal(Signal::SIGTERM);
                    term_sent = true;
                    kill_at = earliest(kill_at, kill_time(lease, t));
                }
            }
            reason = lease.lost(), if end.lost.is_none() => {
                if end.status.is_none() || group.alive() {
                    eprintln!("leasehold exec: the lease on {name:?} was lost ({reason}); stopping the command (SIGTERM to its process group, SIGKILL after {})", show(t.grace));
                }
                end.lost = Some(reason);
                if !term_sent {
                    group.signal(Signal::SIGTERM);
                    term_sent = true;
                }
                kill_at = earliest(kill_at, Instant::now() + t.grace);
            }
            _ = async { match child_deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } }, if !term_sent && end.lost.is_none() => {
                // an extension may have moved the validity since this timer was set
                if let Some(v) = lease.valid_until() {
                    let now = Instant::now();
                    if now + t.grace + t.margin >= v {
                        end.deadline = true;
                        deadline_validity = Some(v);
                        eprintln!(
                            "leasehold exec: no extension of the lease on {name:?} confirmed with {} of validity left; stopping the command so it ends before anyone else can be granted the lock (SIGTERM now, SIGKILL {} before validity)",
                            show(v.saturating_duration_since(now)),
                            show(t.margin)
                        );
                        group.signal(Signal::SIGTERM);
                        term_sent = true;
                        kill_at = earliest(kill_at, v.checked_sub(t.margin).unwrap_or(now));
                    }
                }
            }
            sig = signals.recv() => {
                group.signal(sig);
                if end.signal.is_none() {
                    end.signal = Some(sig);
                    eprintln!("leasehold exec: {} received; forwarded to the command's process group, SIGKILL after {}, then release", sig.as_str(), show(t.grace));
                }
                term_sent = true;
                kill_at = earliest(kill_at, kill_time(lease, t));
            }
            _ = async { match tstp.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } }, if end.status.is_none() => {
                match suspend(group, lease, t) {
                    Resumed::Running => {}
                    Resumed::Stopping(v) => {
                        end.deadline = true;
                        deadline_validity = Some(v);
                        term_sent = true;
                        kill_at = earliest(kill_at, v.checked_sub(t.margin).unwrap_or_else(Instant::now));
                    }
                    Resumed::Killed => {
                        end.deadline = true;
                        term_sent = true;
                        killed_at = Some(Instant::now());
                    }
                }
            }
            _ = async { match kill_at { Some(k) => tokio::time::sleep_until(k).await, None => std::future::pending().await } }, if killed_at.is_none() => {
                if end.status.is_none() || group.alive() {
                    eprintln!("leasehold exec: the command's process group is still running; sending SIGKILL");
                }
                group.signal(Signal::SIGKILL);
                killed_at = Some(Instant::now());
            }
            _ = tick.tick(), if end.status.is_some() => {}
        }
    }
    if let Some(v) = deadline_validity {
        let now = Instant::now();
        if now <= v {
            eprintln!(
                "leasehold exec: the command's process group was gone {} before the lease's validity instant",
                show(v - now)
            );
        } else {
            eprintln!(
                "leasehold exec: the command's process group was gone only {} after the lease's validity instant (exec was stalled)",
                show(now - v)
            );
        }
    }
    end
}
