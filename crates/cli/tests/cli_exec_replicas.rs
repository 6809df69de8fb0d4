//! `leasehold exec --replicas`: the command runs only once a replica has the grant; without an
//! acknowledging replica it is not run and exec exits 75 saying why.
#![allow(clippy::unwrap_used)]

mod exec_common;

use exec_common::*;
use leasehold_tests::RedisServer;

#[test]
fn with_a_replica_the_command_runs_and_without_one_exec_exits_75_not_replicated() {
    let Some(primary) = RedisServer::start("exec_replicas_primary") else {
        return;
    };
    // no replica yet: the primary grants, WAIT says 0 of 1, the key is deleted
    let out = exec(&primary.url(), &["--replicas", "1"], "job", &["true"])
        .wait_with_output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("not replicated") && err.contains("--replicas-timeout"),
        "{err}"
    );
    let left: i64 = rt()
        .block_on(primary.cmd(&["EXISTS", "leasehold:{job}"]))
        .unwrap();
    assert_eq!(left, 0, "the unconfirmed grant's key is deleted");

    let replica = rt()
        .block_on(RedisServer::start_replica(
            "exec_replicas_replica",
            &primary,
        ))
        .unwrap();
    let out = exec(
        &primary.url(),
        // the most WAIT may block (a loaded machine can take longer than 100 ms to ack)
        &["--replicas", "1", "--replicas-timeout", "300ms"],
        "job",
        &["sh", "-c", "echo \"$LEASEHOLD_TOKEN\""],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // the replica has the counter the command was given
    let on_replica: u64 = rt()
        .block_on(replica.cmd(&["GET", "leasehold:{job}:fence"]))
        .unwrap();
    assert!(on_replica >= token, "{on_replica} >= {token}");

    for (bad, why) in [
        (&["--replicas", "65"][..], "invalid --replicas 65"),
        (
            &["--replicas", "1", "--replicas-timeout", "0ms"][..],
            "invalid --replicas-timeout",
        ),
    ] {
        let out = exec(&primary.url(), bad, "job", &["true"])
            .wait_with_output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
}
