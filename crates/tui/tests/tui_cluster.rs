//! The dashboard's reads on a real 3-primary Redis Cluster: every primary is read (one node's
//! `SCAN` sees only its own slots), a key-majority lock whose keys sit on different primaries is
//! one row, the budget is shared, and a force-release of a key on another primary follows the
//! cluster's `MOVED` to it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use leasehold_tests::RedisCluster;
use leasehold_tui::layout::{Layout, Targets, classify};
use leasehold_tui::model::{Input, ReleaseOutcome};
use leasehold_tui::scan::{Budget, scan};
use leasehold_tui::source::cluster;
use leasehold_tui::source::redis::RedisSource;
use leasehold_tui::source::release::force_release_at;

async fn set(c: &RedisCluster, key: &str, value: &str, px: Option<u64>) {
    let node = &c.nodes[c.node_of(key)];
    let mut cmd = vec!["SET", key, value];
    let px = px.map(|p| p.to_string());
    if let Some(p) = &px {
        cmd.extend(["PX", p.as_str()]);
    }
    let _: () = node.cmd(&cmd).await.unwrap();
}

fn targets() -> Targets {
    Targets {
        plain: vec!["lock:*".into()],
        redisson: false,
        ..Targets::default()
    }
}

#[test]
fn every_primary_is_read_and_one_lock_spans_them() {
    let Some(c) = RedisCluster::start("tui_cluster", 3) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for i in 0..30 {
            let lock = format!("leasehold:{{job-{i}}}");
            set(&c, &lock, &format!("lh1:{i:016x}:w-{i}"), Some(600_000)).await;
            set(&c, &format!("{lock}:fence"), &(100 + i).to_string(), None).await;
            set(
                &c,
                &format!("lock:p-{i}"),
                &format!("uuid-{i}"),
                Some(600_000),
            )
            .await;
        }
        // a key-majority lock (k = 2): three keys, each under its own hash tag
        let km: Vec<String> = (0..3).map(|i| format!("leasehold:{{km#{i}}}")).collect();
        let spread: BTreeSet<usize> = km.iter().map(|k| c.node_of(k)).collect();
        assert!(
            spread.len() >= 2,
            "the test needs the keys on two primaries at least"
        );
        for (i, k) in km.iter().enumerate() {
            set(&c, k, "lh1:00000000000000aa:km-holder", Some(600_000)).await;
            set(&c, &format!("{k}:fence"), &(500 + i).to_string(), None).await;
        }

        let urls = cluster::primaries(&c.seed_url()).await.unwrap().unwrap();
        assert_eq!(urls.len(), 3, "{urls:?}");
        let lone = leasehold_tui::source::connect(&c.seed_url()).await;
        let (seen_alone, _) = scan(&mut lone.unwrap(), &targets(), Budget::default())
            .await
            .unwrap();
        let (keys, commands) = cluster::scan(&urls, &targets(), Budget::default())
            .await
            .unwrap();
        let rows = classify(&targets(), &keys);
        assert_eq!(rows.len(), 30 + 30 + 1, "{rows:#?}");
        assert!(
            classify(&targets(), &seen_alone).len() < rows.len(),
            "one node alone sees fewer locks: the reason to read every primary"
        );
        let km_row = rows.iter().find(|r| r.name == "km").unwrap();
        assert_eq!((km_row.keys_held, km_row.keys_total), (3, 3));
        assert_eq!(km_row.holder.as_deref(), Some("km-holder"));
        assert_eq!(km_row.token, Some(502));
        let job = rows.iter().find(|r| r.name == "job-7").unwrap();
        assert_eq!(job.token, Some(107));
        assert!(commands > 0);

        // the live source: one per primary, merged; rows complete, the mode says so
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (_refresh_tx, refresh_rx) = tokio::sync::mpsc::unbounded_channel();
        let all: BTreeSet<(String, String)> = rows
            .iter()
            .filter(|r| r.layout == Layout::Leasehold)
            .map(|r| (r.prefix.clone(), r.name.clone()))
            .collect();
        let (_tokens_tx, tokens_rx) = tokio::sync::watch::channel(all);
        let src = RedisSource {
            url: c.seed_url(),
            targets: targets(),
            budget: Budget::default(),
            every: Duration::from_millis(200),
        };
        let task = tokio::spawn(cluster::run(
            src,
            urls.clone(),
            tx,
            refresh_rx,
            tokens_rx,
            Instant::now(),
        ));
        let start = Instant::now();
        let (mut full, mut mode) = (false, String::new());
        while !(full && mode.contains("cluster of 3 primaries")) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "full {full}, mode {mode:?}"
            );
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some(Input::Snapshot { rows, .. })) => {
                    full = rows.len() == 61
                        && rows
                            .iter()
                            .any(|r| r.name == "km" && r.keys_held == 3 && r.token == Some(502));
                }
                Ok(Some(Input::Server { mode: m, .. })) => mode = m,
                Ok(Some(Input::Disconnected { error })) => panic!("{error}"),
                Ok(Some(_)) => {}
                _ => panic!("the cluster source stopped"),
            }
        }
        task.abort();

        // force-release through the seed of a lock whose key another primary owns
        let other = rows
            .iter()
            .find(|r| {
                r.layout == Layout::Leasehold
                    && r.keys_total == 1
                    && c.node_of(&format!("leasehold:{{{}}}", r.name)) != 0
            })
            .unwrap();
        let key = format!("leasehold:{{{}}}", other.name);
        let outcome = force_release_at(&c.seed_url(), other, 60_000).await;
        assert!(
            matches!(
                outcome,
                ReleaseOutcome::Released {
                    keys: 1,
                    token: Some(_)
                }
            ),
            "{outcome:?}"
        );
        let owner = &c.nodes[c.node_of(&key)];
        let left: Option<String> = owner.cmd(&["GET", &key]).await.unwrap();
        assert_eq!(left, None, "{key} deleted on the primary that owns it");
    });
}

#[test]
fn a_single_server_is_not_a_cluster() {
    let Some(r) = leasehold_tests::RedisServer::start("tui_not_cluster") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let found = rt.block_on(cluster::primaries(&r.url())).unwrap();
    assert_eq!(found, None);
}
