//! Helpers shared by the `leasehold exec` test files: spawning the binary, process groups read
//! from /proc, waiting with deadlines.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn leasehold() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leasehold"))
}

/// `leasehold exec --ttl 3s --grace 300ms` (unless `extra` gives `--grace`): the command's
/// deadline then comes 1.4 s after each extension is due, room for a loaded machine.
pub fn exec(url: &str, extra: &[&str], name: &str, cmd: &[&str]) -> Child {
    let grace: &[&str] = if extra.contains(&"--grace") {
        &[]
    } else {
        &["--grace", "300ms"]
    };
    leasehold()
        .args(["exec", "--redis", url, "--ttl", "3s"])
        .args(grace)
        .args(extra)
        .arg(name)
        .arg("--")
        .args(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("leasehold-exec-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Wait until `path` holds a pid (written by the command), at most `within`.
pub fn read_pid(path: &Path, within: Duration) -> i32 {
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
pub fn group_members(pgid: i32) -> Vec<i32> {
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
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Wait until group `pgid` has no running process; how long that took, or `None` after `within`.
pub fn wait_group_gone(pgid: i32, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if group_members(pgid).is_empty() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

pub fn wait_child(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}
