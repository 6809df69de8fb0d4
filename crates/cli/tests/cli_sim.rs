//! `leasehold sim` as a user runs it: JSON shape, exit codes, bad flags, traces.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn leasehold(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn json_has_one_object_per_scenario_with_every_field() {
    let out = leasehold(&[
        "sim",
        "--scenario",
        "partition",
        "--seeds",
        "3",
        "--duration",
        "10s",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["scenario"], "partition");
    assert_eq!(v["seeds"], 3);
    assert!(v["events"].as_u64().unwrap() > 1_000);
    assert!(v["events_per_sec"].as_u64().unwrap() > 0);
    assert!(v["acquisitions"].as_u64().unwrap() > 0);
    assert!(v["outcomes"]["acquired"].as_u64().unwrap() > 0);
    for p in [
        "mutual_exclusion",
        "stale_writes_accepted",
        "token_order",
        "liveness",
        "misclassified",
    ] {
        assert_eq!(v["violations"][p], 0, "{p}");
    }
    assert!(v["failing_seeds"].is_array());
    assert_eq!(v["determinism"]["identical"], true);
}

#[test]
fn fencing_off_reports_findings_with_replay_commands_and_exits_0() {
    let out = leasehold(&[
        "sim",
        "--scenario",
        "gc-pause",
        "--seeds",
        "20",
        "--duration",
        "15s",
        "--fencing",
        "off",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "findings outside the model are not bugs"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failing = v["failing_seeds"].as_array().unwrap();
    let stale = failing
        .iter()
        .find(|f| f["property"] == "stale_writes_accepted")
        .expect("a stale write in 20 seeds");
    let replay = stale["replay"].as_str().unwrap();
    assert!(
        replay.starts_with("leasehold sim --scenario gc-pause --seed "),
        "{replay}"
    );
    // the replay command reproduces the finding
    let args: Vec<&str> = replay
        .split_whitespace()
        .skip(1)
        .chain(["--json"])
        .collect();
    let again = leasehold(&args);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        w["findings"]["stale_writes_accepted"].as_u64().unwrap() >= 1,
        "{w}"
    );
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, needle) in [
        (vec!["sim", "--scenario", "nope"], "--scenario"),
        (vec!["sim", "--seeds", "0"], "--seeds"),
        (vec!["sim", "--duration", "fast"], "--duration"),
        (vec!["sim", "--fencing", "maybe"], "--fencing"),
        (vec!["sim", "--drop-faults", "a,b"], "--drop-faults"),
        (vec!["sim", "--duration", "10ms"], "--duration"),
        (
            vec!["sim", "--scenario", "calm", "--slot-wait", "5s"],
            "slot_wait",
        ),
        (vec!["sim", "--fencing", "bogus"], "--fencing"),
        // a replay line naming a fault the schedule does not have
        (
            vec![
                "sim",
                "--scenario",
                "partition",
                "--seed",
                "1",
                "--drop-faults",
                "9999",
            ],
            "--drop-faults 9999",
        ),
        // sizes that cannot fit are refused before anything runs
        (
            vec![
                "sim",
                "--scenario",
                "chaos",
                "--seeds",
                "5",
                "--clients",
                "10000",
                "--locks",
                "1000",
                "--duration",
                "24h",
            ],
            "--clients",
        ),
        (
            vec![
                "sim",
                "--scenario",
                "chaos",
                "--clients",
                "10000",
                "--duration",
                "24h",
            ],
            "--duration",
        ),
        // an I/O error is not a violated property: exit 2, not 1
        (
            vec![
                "sim",
                "--scenario",
                "calm",
                "--seed",
                "1",
                "--trace",
                "/no/such/dir/t.jsonl",
            ],
            "--trace",
        ),
    ] {
        let out = leasehold(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn trace_writes_json_lines_and_is_reproducible() {
    let dir = std::env::temp_dir().join(format!("leasehold-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    for p in [&a, &b] {
        let out = leasehold(&[
            "sim",
            "--scenario",
            "chaos",
            "--seed",
            "3",
            "--duration",
            "5s",
            "--trace",
            p.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0));
    }
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ta, tb, "same seed, same trace, byte for byte");
    let first: serde_json::Value =
        serde_json::from_str(std::str::from_utf8(&ta).unwrap().lines().next().unwrap()).unwrap();
    assert!(first["t_ns"].is_u64() && first["actor"].is_string() && first["event"].is_string());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failing_seeds_print_their_derived_configuration() {
    let out = leasehold(&[
        "sim",
        "--scenario",
        "gc-pause",
        "--seeds",
        "5",
        "--duration",
        "10s",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("      config: layout=Single"), "{text}");
    assert!(text.contains("pauses="), "{text}");
}

/// Piped output (CI logs, `| tee`) gets no progress fragments: one summary line per scenario.
#[test]
fn progress_goes_to_stderr_only_on_a_terminal() {
    let out = leasehold(&[
        "sim",
        "--scenario",
        "calm",
        "--seeds",
        "4",
        "--duration",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\r'),
        "carriage returns in piped stderr: {err:?}"
    );
    assert!(
        !err.contains("\u{1b}["),
        "escape codes in piped stderr: {err:?}"
    );
    assert!(
        err.contains("calm: 4 seed(s)") && err.contains("seeds/s"),
        "{err}"
    );
}

/// The table and the exit status agree, and a property line counts bugs and findings apart.
#[test]
fn the_table_counts_findings_and_names_what_is_promised() {
    let out = leasehold(&[
        "sim",
        "--scenario",
        "gc-pause",
        "--seeds",
        "60",
        "--duration",
        "15s",
        "--fencing",
        "writes",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("BUG"), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("lost_updates"))
        .unwrap();
    assert!(
        line.contains("finding")
            && line.contains("outside the fault model")
            && line.contains("not promised"),
        "{line}"
    );
    let stale = text
        .lines()
        .find(|l| l.trim_start().starts_with("stale_writes_accepted"))
        .unwrap();
    assert!(stale.contains("ok (promised)"), "{stale}");
}
