//! The command as a process group: spawned as the leader of its own group (so pipelines,
//! `make -j` and `xargs` workers share its fate), every signal sent to the whole group with
//! `killpg(2)`, and on Linux killed by the kernel if exec itself dies (`PR_SET_PDEATHSIG`).

use std::io;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The signals exec forwards to the command's group (and then stops it, releases, and exits
/// with 128 + the signal): Ctrl-C, a closed terminal or ssh session, Ctrl-\, `kill`.
pub const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGTERM,
];

/// The command's process group (its id is the leader's pid).
#[derive(Debug, Clone, Copy)]
pub struct Group(Pid);

impl Group {
    /// The group id (the leader's pid).
    #[must_use]
    pub fn id(self) -> i32 {
        self.0.as_raw()
    }

    /// Send `sig` to every process of the group. A group that is already gone is not an error.
    pub fn signal(self, sig: Signal) {
        match killpg(self.0, sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => eprintln!(
                "leasehold exec: cannot send {} to process group {}: {e}",
                sig.as_str(),
                self.0
            ),
        }
    }

    /// Whether any process of the group is still running (zombies that only wait to be reaped by
    /// their new parent do not count: they run nothing).
    #[must_use]
    pub fn alive(self) -> bool {
        match killpg(self.0, None) {
            Err(nix::errno::Errno::ESRCH) => false,
            _ => self.has_running_member(),
        }
    }

    #[cfg(target_os = "linux")]
    fn has_running_member(self) -> bool {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return true;
        };
        let want = self.0.as_raw();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let mut f = rest.split_whitespace();
            let (state, _ppid, pgrp) = (f.next(), f.next(), f.next());
            if pgrp.and_then(|g| g.parse::<i32>().ok()) == Some(want) && state != Some("Z") {
                return true;
            }
        }
        false
    }

    #[cfg(not(target_os = "linux"))]
    fn has_running_member(self) -> bool {
        true
    }
}

/// Spawn `argv` with `env` (`None`: removed from the inherited environment) as the leader of a
/// new process group. Must be called on the thread
/// that outlives the command (the runtime's `block_on` thread): Linux delivers the parent-death
/// signal when the thread that forked exits.
pub fn spawn(
    argv: &[String],
    env: &[(&str, Option<String>)],
) -> io::Result<(tokio::process::Child, Group)> {
    let Some((program, args)) = argv.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no command given",
        ));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).process_group(0);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    die_with_parent(&mut cmd);
    let child = cmd.spawn()?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| io::Error::other("the command exited before its pid was known"))?;
    Ok((child, Group(Pid::from_raw(pid))))
}

/// Linux: the kernel sends SIGKILL to the command (the group leader) if exec dies, even by
/// SIGKILL. No safe API can run code between fork and exec, hence the one `unsafe` block.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec. It calls only prctl(2) and
    // getppid(2), which are async-signal-safe, and allocates nothing (errors are raw errnos).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // exec died between fork and prctl: the signal would never come
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from(nix::errno::Errno::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut tokio::process::Command) {}
