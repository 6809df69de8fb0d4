//! The guard: a small helper process (`leasehold exec --guard-group <pgid> …`, hidden) that kills
//! the command's whole process group if exec dies without saying goodbye (SIGKILL, OOM killer,
//! a crash). `PR_SET_PDEATHSIG` reaches only the group leader; the guard reaches the pipeline,
//! `make -j` and `xargs` workers too, and works on every Unix.
//!
//! exec holds the write end of the guard's stdin. At a normal end it writes [`DONE`] and closes
//! it; if exec dies, the kernel closes it and the guard reads end-of-file without [`DONE`]: it
//! sends SIGKILL to the group. The guard runs in its own process group, so terminal and
//! group-wide signals meant for exec or the command do not reach it.

use std::io::{Read, Write};
use std::process::{ExitCode, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// What exec writes when it ends normally.
const DONE: &[u8] = b"done";

/// The guard's side: wait for exec to end; kill group `pgid` unless it said [`DONE`].
pub fn run(pgid: i32) -> ExitCode {
    let mut said = Vec::new();
    // a read error is as good as end-of-file: exec is gone either way
    let _ = std::io::stdin().take(64).read_to_end(&mut said);
    if said == DONE || pgid <= 1 {
        return ExitCode::SUCCESS;
    }
    match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// exec's handle on its guard.
#[derive(Debug)]
pub struct Guard {
    child: std::process::Child,
}

impl Guard {
    /// Start a guard for group `pgid` (after the command, so the command never holds the pipe).
    /// `None` (with a warning) if this executable cannot be run again.
    pub fn start(pgid: i32) -> Option<Guard> {
        // Linux: the running binary itself, even if its file was replaced (an upgrade, a rebuild)
        // since exec started
        #[cfg(target_os = "linux")]
        let exe: std::io::Result<std::path::PathBuf> = Ok("/proc/self/exe".into());
        #[cfg(not(target_os = "linux"))]
        let exe = std::env::current_exe();
        let exe = match exe {
            Ok(e) => e,
            Err(e) => {
                eprintln!(
                    "leasehold exec: no guard process ({e}); if exec is killed, only the command's leader dies with it"
                );
                return None;
            }
        };
        let spawned = {
            use std::os::unix::process::CommandExt;
            std::process::Command::new(exe)
                // NAME and COMMAND are required by the parser; the guard ignores them
                .args([
                    "exec",
                    "--guard-group",
                    &pgid.to_string(),
                    "guard",
                    "--",
                    "guard",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
        };
        match spawned {
            Ok(child) => Some(Guard { child }),
            Err(e) => {
                eprintln!(
                    "leasehold exec: no guard process ({e}); if exec is killed, only the command's leader dies with it"
                );
                None
            }
        }
    }

    /// The normal end: the group is gone; tell the guard so, and reap it.
    pub fn dismiss(mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(DONE);
        }
        let _ = self.child.wait();
    }
}
