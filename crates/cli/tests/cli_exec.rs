//! `leasehold exec` against a real redis-server: exit statuses, signals to the whole process
//! tree, stopping before the lease's end, duplicate instances, error classification.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use leasehold_tests::{LatencyProxy, RedisServer};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn leasehold() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leasehold"))
}

fn exec(url: &str, extra: &[&str], name: &str, cmd: &[&str]) -> Child {
    leasehold()
        .args(["exec", "--redis", url, "--ttl", "1s"])
        .args(extra)
        .arg(name)
        .arg("--")
        .args(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("leasehold-exec-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Wait until `path` holds a pid (written by the command), at most `within`.
fn read_pid(path: &Path, within: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(pid) = s.trim().parse()
        {
            return pid;
        }
        assert!(
            start.elapsed() < within,
            "the command did not write {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes of process group `pgid` that still run (zombies excluded), from /proc.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[2].parse::<i32>().ok() == Some(pgid) && f[0] != "Z" {
            found.push(pid);
        }
    }
    found
}

/// Whether process `pid` exists and is not a zombie.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Wait until group `pgid` has no running process; how long that took, or `None` after `within`.
fn wait_group_gone(pgid: i32, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if group_members(pgid).is_empty() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn wait_child(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn runs_the_command_with_its_token_and_exits_with_its_status() {
    let Some(redis) = RedisServer::start("exec_status") else {
        return;
    };
    let out = exec(
        &redis.url(),
        &[],
        "job",
        &[
            "sh",
            "-c",
            "echo \"$LEASEHOLD_NAME $LEASEHOLD_TOKEN\"; exit 7",
        ],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    assert_eq!(parts.next(), Some("job"));
    assert!(parts.next().unwrap().parse::<u64>().unwrap() > 0);
    let left: i64 = rt()
        .block_on(redis.cmd(&["EXISTS", "leasehold:{job}"]))
        .unwrap();
    assert_eq!(left, 0, "the lock is released when the command exits");
}

#[test]
fn a_held_lock_exits_75_with_the_reason() {
    let Some(redis) = RedisServer::start("exec_held") else {
        return;
    };
    let mut holder = exec(&redis.url(), &[], "busy", &["sleep", "5"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = exec(&redis.url(), &["--wait", "300ms"], "busy", &["true"])
        .wait_with_output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("could not acquire") && err.contains("held by"),
        "{err}"
    );
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn a_lost_lease_terminates_the_command_and_exits_76() {
    let Some(redis) = RedisServer::start("exec_lost") else {
        return;
    };
    let child = exec(
        &redis.url(),
        &["--grace", "300ms"],
        "lost",
        &["sleep", "30"],
    );
    std::thread::sleep(Duration::from_millis(700));
    let deleted: i64 = rt()
        .block_on(redis.cmd(&["DEL", "leasehold:{lost}"]))
        .unwrap();
    assert_eq!(
        deleted, 1,
        "the lease key should exist while the command runs"
    );
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(76), "{err}");
    assert!(err.contains("lost") && err.contains("deleted"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn bad_durations_and_urls_are_usage_errors() {
    let out = leasehold()
        .args(["exec", "--ttl", "soon", "x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--ttl"));
    let out = leasehold()
        .args(["exec", "--redis", "http://nope", "x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("scheme"), "{}", stderr(&out));
}

#[test]
fn option_errors_name_execs_own_flags_and_the_valid_range() {
    for (args, flag, range) in [
        (&["--ttl", "10ms"][..], "invalid --ttl 10ms", "500ms"),
        (&["--ttl", "1ms"][..], "invalid --ttl 1ms", "500ms"),
        (
            &["--ttl", "1500us"][..],
            "invalid --ttl",
            "whole milliseconds",
        ),
        (
            &["--ttl", "3s", "--grace", "5s"][..],
            "invalid --grace 5s",
            "1s 368ms",
        ),
        (&["--wait", "400years"][..], "invalid --wait", "365d"),
    ] {
        let out = leasehold()
            .args(["exec", "--redis", "redis://127.0.0.1:1"])
            .args(args)
            .args(["x", "--", "true"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag) && err.contains(range), "{args:?}: {err}");
        for internal in ["slot_wait", "extend_interval"] {
            assert!(!err.contains(internal), "{args:?}: {err}");
        }
    }
}

#[test]
fn a_tiny_wait_on_a_free_lock_still_makes_an_attempt() {
    let Some(redis) = RedisServer::start("exec_tiny_wait") else {
        return;
    };
    for wait in ["1ns", "50ms", "150ms"] {
        let out = exec(&redis.url(), &["--wait", wait], "tiny", &["true"])
            .wait_with_output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "--wait {wait}: {}",
            stderr(&out)
        );
    }
}

/// The command ignores the signal (so SIGKILL is needed) and runs a pipeline: the whole tree
/// must be gone within grace + 1 s of the signal, exec must exit 128 + signal, and the lock
/// must be free when exec exits.
#[test]
fn each_forwarded_signal_stops_the_whole_tree_and_frees_the_lock() {
    let Some(redis) = RedisServer::start("exec_signals") else {
        return;
    };
    let dir = scratch("signals");
    let rt = rt();
    let grace = Duration::from_secs(1);
    for sig in [
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGTERM,
    ] {
        let pidfile = dir.join(format!("{}.pid", sig.as_str()));
        let script = format!(
            "trap '' INT HUP QUIT TERM; echo $$ > {}; sleep 77 | cat",
            pidfile.display()
        );
        let name = format!("sig-{}", sig.as_str());
        let mut child = leasehold()
            .args([
                "exec",
                "--redis",
                &redis.url(),
                "--ttl",
                "3s",
                "--grace",
                "1s",
            ])
            .args([name.as_str(), "--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pgid = read_pid(&pidfile, Duration::from_secs(10));
        // the pipeline is up: sh, sleep and cat in the command's own group
        let start = Instant::now();
        while group_members(pgid).len() < 3 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(group_members(pgid).len() >= 3, "{:?}", group_members(pgid));
        let sent = Instant::now();
        kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), sig).unwrap();
        let status = wait_child(&mut child, grace + Duration::from_secs(5)).unwrap();
        let exited = sent.elapsed();
        // at once: the key is gone as exec exits
        let exists: i64 = rt
            .block_on(redis.cmd(&["EXISTS", &format!("leasehold:{{{name}}}")]))
            .unwrap();
        let gone = wait_group_gone(pgid, Duration::from_secs(5));
        let err = {
            use std::io::Read;
            let mut s = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut s);
            s
        };
        assert_eq!(
            status.code(),
            Some(128 + sig as i32),
            "{}: {err}",
            sig.as_str()
        );
        assert_eq!(exists, 0, "{}: the lock is still held: {err}", sig.as_str());
        let gone = gone.unwrap_or_else(|| {
            panic!(
                "{}: processes {:?} survive",
                sig.as_str(),
                group_members(pgid)
            )
        });
        // the command ignores the signal: only SIGKILL, --grace after it, can have stopped it
        assert!(
            exited >= grace,
            "{}: SIGKILL came {exited:?} after the signal, before --grace: {err}",
            sig.as_str()
        );
        assert!(
            exited <= grace + Duration::from_secs(1),
            "{}: exec took {exited:?} after the signal: {err}",
            sig.as_str()
        );
        eprintln!(
            "{}: exec exited {exited:?} after the signal; the tree was gone by then (+{gone:?})",
            sig.as_str()
        );
    }
}

#[test]
fn a_pipeline_child_is_stopped_when_the_lease_is_lost() {
    let Some(redis) = RedisServer::start("exec_flush") else {
        return;
    };
    let dir = scratch("flush");
    let pidfile = dir.join("pid");
    let script = format!("echo $$ > {}; sleep 77 | cat", pidfile.display());
    let mut child = leasehold()
        .args([
            "exec",
            "--redis",
            &redis.url(),
            "--ttl",
            "3s",
            "--grace",
            "1s",
        ])
        .args(["gc", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pgid = read_pid(&pidfile, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    let ok: String = rt().block_on(redis.cmd(&["FLUSHALL"])).unwrap();
    assert_eq!(ok, "OK");
    let status = wait_child(&mut child, Duration::from_secs(8));
    let gone = wait_group_gone(pgid, Duration::from_secs(2));
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(76), "{}", stderr(&out));
    assert!(stderr(&out).contains("lost"), "{}", stderr(&out));
    assert!(gone.is_some(), "still running: {:?}", group_members(pgid));
}

#[test]
fn processes_left_in_the_group_are_stopped_before_the_release() {
    let Some(redis) = RedisServer::start("exec_leftover") else {
        return;
    };
    let dir = scratch("leftover");
    let pidfile = dir.join("pid");
    let script = format!("sleep 77 & echo $! > {}", pidfile.display());
    let out = exec(
        &redis.url(),
        &["--grace", "300ms"],
        "left",
        &["sh", "-c", &script],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = read_pid(&pidfile, Duration::from_secs(1));
    assert!(
        !running(pid),
        "the background sleep {pid} outlived exec: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("left processes"), "{}", stderr(&out));
}

/// exec killed with SIGKILL cannot react: the kernel kills the group leader
/// (`PR_SET_PDEATHSIG`) and exec's guard process kills the rest of the group.
#[test]
fn the_whole_command_dies_with_exec_even_on_sigkill() {
    let Some(redis) = RedisServer::start("exec_pdeathsig") else {
        return;
    };
    let dir = scratch("pdeathsig");
    for (i, script) in [
        "echo $$ > {}; exec sleep 77",
        "echo $$ > {}; sleep 77 | cat",
    ]
    .into_iter()
    .enumerate()
    {
        let pidfile = dir.join(format!("pid-{i}"));
        let script = script.replace("{}", &pidfile.display().to_string());
        let mut child = exec(&redis.url(), &[], "orphan", &["sh", "-c", &script]);
        let pgid = read_pid(&pidfile, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(200));
        assert!(!group_members(pgid).is_empty());
        child.kill().unwrap(); // SIGKILL: exec cannot react
        let _ = child.wait();
        assert!(
            wait_group_gone(pgid, Duration::from_secs(3)).is_some(),
            "{script}: {:?} outlived exec",
            group_members(pgid)
        );
        // the lease is not released (exec is dead); wait for it to expire before the next run
        std::thread::sleep(Duration::from_millis(1100));
    }
}

#[test]
fn the_same_server_twice_is_a_usage_error_naming_both_urls() {
    let (Some(a), Some(b)) = (
        RedisServer::start("exec_dup_a"),
        RedisServer::start("exec_dup_b"),
    ) else {
        return;
    };
    let url = a.url();
    let out = leasehold()
        .args(["exec", "--redis", &url, "--redis", &url, "--redis", &url])
        .args(["dup", "--", "true"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.matches(&url).count() >= 2 && err.contains("same"),
        "{err}"
    );
    // a different spelling of the same server: recognised by its run_id
    let other = format!("redis://localhost:{}", a.port);
    let out = leasehold()
        .args([
            "exec",
            "--redis",
            &url,
            "--redis",
            &b.url(),
            "--redis",
            &other,
        ])
        .args(["dup", "--", "true"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&url) && err.contains(&other) && err.contains("run_id"),
        "{err}"
    );
    // three distinct servers run the command
    let c = RedisServer::start("exec_dup_c").unwrap();
    let out = leasehold()
        .args([
            "exec",
            "--redis",
            &url,
            "--redis",
            &b.url(),
            "--redis",
            &c.url(),
        ])
        .args(["dup", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn permanent_errors_fail_fast_with_what_redis_said() {
    let Some(redis) = RedisServer::start_with(
        "exec_auth",
        &[
            "--user",
            "default",
            "on",
            ">s3cret",
            "~*",
            "&*",
            "+@all",
            "--user",
            "noscript",
            "on",
            ">pw",
            "~*",
            "&*",
            "+@all",
            "-@scripting",
        ],
    ) else {
        return;
    };
    let port = redis.port;
    let rt = rt();
    let client = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{port}")).unwrap();
    rt.block_on(async {
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("LPUSH")
            .arg("leasehold:{listy}")
            .arg("x")
            .query_async(&mut c)
            .await
            .unwrap();
    });
    let wrong = format!("redis://:wrong@127.0.0.1:{port}");
    let none = format!("redis://127.0.0.1:{port}");
    let good = format!("redis://:s3cret@127.0.0.1:{port}");
    let db99 = format!("redis://:s3cret@127.0.0.1:{port}/99");
    let noscript = format!("redis://noscript:pw@127.0.0.1:{port}");
    for (url, name, expect) in [
        (wrong.as_str(), "x", "WRONGPASS"),
        (none.as_str(), "x", "NOAUTH"),
        (good.as_str(), "listy", "WRONGTYPE"),
        (db99.as_str(), "x", "DB index"),
        (noscript.as_str(), "x", "NOPERM"),
        ("redis://no-such-host.invalid:6379", "x", "lookup"),
    ] {
        let start = Instant::now();
        let out = leasehold()
            .args(["exec", "--redis", url, "--wait", "30s", name, "--", "true"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{url}: {err}");
        assert!(err.contains(expect), "{url}: {err}");
        assert!(
            !err.contains("s3cret") && !err.contains(":wrong@") && !err.contains(":pw@"),
            "{err}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{url}: took {:?} (should not wait for --wait 30s)",
            start.elapsed()
        );
    }
}

#[test]
fn an_untrusted_tls_certificate_exits_78() {
    let Some(redis) = RedisServer::start_tls("exec_tls") else {
        return;
    };
    let start = Instant::now();
    let out = leasehold()
        .args([
            "exec",
            "--redis",
            &redis.url(),
            "--wait",
            "30s",
            "x",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10), "{err}");
}

#[test]
fn a_signal_while_waiting_ends_the_wait_without_running_the_command() {
    let Some(redis) = RedisServer::start("exec_wait_signal") else {
        return;
    };
    let dir = scratch("wait_signal");
    let ran = dir.join("ran");
    let mut holder = exec(&redis.url(), &[], "w", &["sleep", "10"]);
    std::thread::sleep(Duration::from_millis(500));
    let script = format!("touch {}", ran.display());
    let mut waiter = exec(
        &redis.url(),
        &["--wait", "30s"],
        "w",
        &["sh", "-c", &script],
    );
    std::thread::sleep(Duration::from_millis(500));
    kill(
        Pid::from_raw(i32::try_from(waiter.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_child(&mut waiter, Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(143));
    assert!(!ran.exists(), "the command ran after the signal");
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn refused_connections_are_retried_within_wait_and_end_75_with_the_cause() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let out = leasehold()
        .args(["exec", "--redis", &format!("redis://127.0.0.1:{port}")])
        .args(["--wait", "1500ms", "x", "--", "true"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(1400), "{err}");
}

#[test]
fn resp2_urls_work_by_polling() {
    let Some(redis) = RedisServer::start("exec_resp2") else {
        return;
    };
    let url = format!("{}?protocol=resp2", redis.url());
    let mut holder = exec(&url, &[], "r2", &["sleep", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    let out = exec(&url, &["--wait", "10s"], "r2", &["echo", "second"])
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "second");
    assert_eq!(holder.wait().unwrap().code(), Some(0));
}

/// With the link to Redis cut, the holder's command must be gone before the next holder's
/// command starts: over 10 trials (cut at different points of the extension cycle), the old
/// command's last timestamp is earlier than the new one's first.
#[test]
fn with_the_link_cut_the_old_command_stops_before_the_next_holder_starts() {
    let Some(redis) = RedisServer::start("exec_partition") else {
        return;
    };
    let rt = rt();
    let dir = scratch("partition");
    let mut gaps = Vec::new();
    for trial in 0..10u64 {
        let proxy = rt
            .block_on(LatencyProxy::start(redis.port, Duration::ZERO))
            .unwrap();
        let name = format!("part-{trial}");
        let a_file = dir.join(format!("a-{trial}"));
        let b_file = dir.join(format!("b-{trial}"));
        // ignores SIGTERM: only SIGKILL stops it, the worst case for the deadline
        let a_script = format!(
            "trap '' TERM; while :; do date +%s%N >> {}; sleep 0.01; done",
            a_file.display()
        );
        let mut a = leasehold()
            .args([
                "exec",
                "--redis",
                &proxy.url(),
                "--ttl",
                "2s",
                "--grace",
                "500ms",
            ])
            .args([name.as_str(), "--", "sh", "-c", &a_script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::fs::metadata(&a_file).map(|m| m.len()).unwrap_or(0) == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "A never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
        // cut at a different point of the 667 ms extension cycle each time
        std::thread::sleep(Duration::from_millis(50 + trial * 73));
        proxy.partition();
        let b_script = format!("date +%s%N >> {}", b_file.display());
        let b = leasehold()
            .args([
                "exec",
                "--redis",
                &redis.url(),
                "--ttl",
                "2s",
                "--wait",
                "20s",
            ])
            .args([name.as_str(), "--", "sh", "-c", &b_script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(b.status.code(), Some(0), "B: {}", stderr(&b));
        let a_status = wait_child(&mut a, Duration::from_secs(15));
        let a_out = a.wait_with_output().unwrap();
        let a_err = stderr(&a_out);
        assert_eq!(a_status.and_then(|s| s.code()), Some(76), "A: {a_err}");
        let stamps = |p: &Path| -> Vec<u128> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        };
        let a_last = stamps(&a_file).into_iter().max().unwrap();
        let b_first = stamps(&b_file).into_iter().min().unwrap();
        assert!(
            a_last < b_first,
            "trial {trial}: A wrote at {a_last}, {} ms after B's first write at {b_first}\nA: {a_err}",
            (a_last - b_first) / 1_000_000
        );
        let gap_ms = (b_first - a_last) / 1_000_000;
        let margin = a_err
            .lines()
            .find(|l| l.contains("before the lease's validity instant"))
            .unwrap_or("")
            .to_owned();
        eprintln!("trial {trial}: gap {gap_ms} ms; {margin}");
        gaps.push(gap_ms);
        proxy.heal();
    }
    eprintln!("gaps between A's last and B's first write (ms): {gaps:?}");
}

/// The last timestamp (ns) the writer appended to `path`.
fn last_stamp(path: &Path) -> u128 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Ctrl-Z reaches exec's process group, not the command's: exec suspends the command with
/// itself; on resume the command continues only while the lease is valid.
#[test]
fn ctrl_z_suspends_the_command_with_exec_and_a_stale_resume_kills_it() {
    let Some(redis) = RedisServer::start("exec_tstp") else {
        return;
    };
    let dir = scratch("tstp");
    let pid_of = |c: &Child| Pid::from_raw(i32::try_from(c.id()).unwrap());
    for (stop_for, expect_running) in [
        (Duration::from_millis(400), true),
        (Duration::from_millis(2500), false),
    ] {
        let file = dir.join(format!("w-{}", stop_for.as_millis()));
        let script = format!(
            "while :; do date +%s%N >> {}; sleep 0.01; done",
            file.display()
        );
        let mut child = leasehold()
            .args([
                "exec",
                "--redis",
                &redis.url(),
                "--ttl",
                "2s",
                "--grace",
                "300ms",
            ])
            .args(["tstp", "--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while last_stamp(&file) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the command never ran"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        kill(pid_of(&child), Signal::SIGTSTP).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let stopped_at = now_ns();
        std::thread::sleep(stop_for);
        assert!(
            last_stamp(&file) < stopped_at,
            "the command kept writing while exec was suspended"
        );
        let resumed_at = now_ns();
        kill(pid_of(&child), Signal::SIGCONT).unwrap();
        if expect_running {
            std::thread::sleep(Duration::from_millis(300));
            assert!(last_stamp(&file) > resumed_at, "the command did not resume");
            kill(pid_of(&child), Signal::SIGTERM).unwrap();
            let status = wait_child(&mut child, Duration::from_secs(5));
            assert_eq!(status.and_then(|s| s.code()), Some(143));
        } else {
            let status = wait_child(&mut child, Duration::from_secs(5));
            let out = child.wait_with_output().unwrap();
            assert_eq!(status.and_then(|s| s.code()), Some(76), "{}", stderr(&out));
            assert!(
                last_stamp(&file) < resumed_at,
                "the command ran again after the lease had expired: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains("resumed after the lease's validity"),
                "{}",
                stderr(&out)
            );
        }
    }
}
