//! The adapter on a real Redis Cluster (three primaries on loopback, `RedisCluster`), reached
//! with a `redis+cluster://` URL: exclusivity across names on different primaries, key majority
//! with its keys where the cluster says, and one primary killed during leases.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use leasehold_redis::{LockError, LockerOptions, LostReason, WakeMode};
use leasehold_tests::cluster::RedisCluster;

fn url(c: &RedisCluster) -> String {
    let seeds: Vec<String> = c
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    format!("redis+cluster://{}", seeds.join(","))
}

/// One name per primary (index = node; the primaries are the first three nodes),
/// `leasehold:{name}` owned by that node.
fn names_per_node(c: &RedisCluster) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; 3];
    for i in 0.. {
        let name = format!("n{i}");
        let node = c.node_of(&format!("leasehold:{{{name}}}"));
        if found[node].is_none() {
            found[node] = Some(name);
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_across_names_on_every_primary() {
    let Some(cluster) = RedisCluster::start("cluster_exclusive", 3) else {
        return;
    };
    let names = names_per_node(&cluster);
    assert_eq!(names.len(), 3);
    let mut lockers = Vec::new();
    for holder in ["a", "b"] {
        let mut o = LockerOptions::new(url(&cluster))
            .ttl(Duration::from_millis(2_000))
            .slot_wait(Duration::from_millis(500));
        o.holder = Some(holder.into());
        lockers.push(Arc::new(o.build().await.unwrap()));
    }
    assert_eq!(lockers[0].wake_mode(), WakeMode::Polling);
    let mut tasks = Vec::new();
    let inside: Vec<Arc<AtomicU32>> = names.iter().map(|_| Arc::default()).collect();
    let tokens: Arc<std::sync::Mutex<Vec<Vec<u64>>>> =
        Arc::new(std::sync::Mutex::new(vec![Vec::new(); names.len()]));
    for t in 0..8 {
        let locker = lockers[t % 2].clone();
        let names = names.clone();
        let inside = inside.clone();
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..6 {
                let n = (t + round) % names.len();
                let lease = locker
                    .lock(&names[n], Duration::from_secs(20))
                    .await
                    .unwrap();
                assert_eq!(inside[n].fetch_add(1, Ordering::SeqCst), 0, "two holders");
                tokens.lock().unwrap()[n].push(lease.token());
                tokio::time::sleep(Duration::from_millis(5)).await;
                assert!(lease.is_held());
                inside[n].fetch_sub(1, Ordering::SeqCst);
                lease.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let tokens = tokens.lock().unwrap();
    for (n, seq) in tokens.iter().enumerate() {
        assert_eq!(seq.len(), 16, "{}: {seq:?}", names[n]);
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "tokens of {} do not increase in acquisition order: {seq:?}",
            names[n]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_majority_on_a_cluster_and_its_placement() {
    let Some(cluster) = RedisCluster::start("cluster_key_majority", 3) else {
        return;
    };
    let mut o = LockerOptions::new(url(&cluster))
        .ttl(Duration::from_millis(600))
        .slot_wait(Duration::from_millis(300));
    o.key_majority = Some(2);
    let locker = o.build().await.unwrap();
    let lease = locker.lock("km", Duration::from_secs(5)).await.unwrap();
    let t1 = lease.token();
    // every key of the three is held by us, on the node the cluster says owns it
    let placement = locker.placement("km").await.unwrap();
    assert_eq!(placement.keys.len(), 3);
    assert_eq!(placement.quorum, 2);
    let mut nodes = BTreeSet::new();
    for (i, p) in placement.keys.iter().enumerate() {
        let key = format!("leasehold:{{km#{i}}}");
        assert_eq!(p.key, key);
        let node = cluster.node_of(&key);
        nodes.insert(node);
        let slot: u16 = cluster.nodes[0]
            .cmd(&["CLUSTER", "KEYSLOT", &key])
            .await
            .unwrap();
        assert_eq!(p.hash_slot, slot, "{key}");
        assert_eq!(
            p.node.as_deref(),
            Some(format!("127.0.0.1:{}", cluster.nodes[node].port).as_str()),
            "{p:?}"
        );
        let v: String = cluster.nodes[node].cmd(&["GET", &key]).await.unwrap();
        assert!(v.starts_with("lh1:"), "{key}: {v}");
    }
    // three distinct primaries survive any one's loss; two shared by a quorum do not
    let tolerates = usize::from(nodes.len() == 3);
    assert_eq!(placement.tolerates(), tolerates, "{placement:?}");
    // extensions over several ttls
    let held = tokio::time::timeout(Duration::from_millis(1_500), lease.lost()).await;
    assert!(held.is_err(), "lost: {held:?}");
    lease.release().await.unwrap();
    for i in 0..3 {
        let key = format!("leasehold:{{km#{i}}}");
        let node = cluster.node_of(&key);
        let v: Option<String> = cluster.nodes[node].cmd(&["GET", &key]).await.unwrap();
        assert_eq!(v, None, "{key} after release");
    }
    let again = locker.try_lock("km").await.unwrap();
    assert!(again.token() > t1);
    again.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_loses_only_its_own_leases() {
    let Some(mut cluster) = RedisCluster::start("cluster_kill", 3) else {
        return;
    };
    // without it a cluster with an uncovered slot refuses every key (CLUSTERDOWN everywhere)
    for n in &cluster.nodes {
        let _: () = n
            .cmd(&["CONFIG", "SET", "cluster-require-full-coverage", "no"])
            .await
            .unwrap();
    }
    let names = names_per_node(&cluster);
    let locker = LockerOptions::new(url(&cluster))
        .ttl(Duration::from_millis(1_000))
        .slot_wait(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let doomed = locker
        .lock(&names[0], Duration::from_secs(5))
        .await
        .unwrap();
    let kept = locker
        .lock(&names[1], Duration::from_secs(5))
        .await
        .unwrap();
    // a key-majority lock (k = 2) whose three keys sit on the three primaries
    let spread = (0..)
        .map(|i| format!("s{i}"))
        .find(|n| {
            let on: BTreeSet<usize> = (0..3)
                .map(|i| cluster.node_of(&format!("leasehold:{{{n}#{i}}}")))
                .collect();
            on.len() == 3
        })
        .unwrap();
    let mut o = LockerOptions::new(url(&cluster))
        .ttl(Duration::from_millis(1_000))
        .slot_wait(Duration::from_millis(300));
    o.key_majority = Some(2);
    let km = o.build().await.unwrap();
    assert_eq!(km.placement(&spread).await.unwrap().tolerates(), 1);
    let majority = km.lock(&spread, Duration::from_secs(5)).await.unwrap();
    cluster.nodes[0].kill();
    let reason = tokio::time::timeout(Duration::from_secs(5), doomed.lost())
        .await
        .expect("the lease on the killed primary was not reported lost");
    assert!(
        matches!(
            reason,
            LostReason::ExpiredLocally | LostReason::Disconnected
        ),
        "{reason:?}"
    );
    // the other primary's lease goes on extending, past the failure detection (node timeout 2 s)
    let held = tokio::time::timeout(Duration::from_secs(5), kept.lost()).await;
    assert!(held.is_err(), "lost: {held:?}");
    assert!(kept.is_held());
    // the key-majority lease lost one key of three and keeps extending on the other two
    assert!(majority.is_held(), "{spread}");
    majority.release().await.unwrap();
    // a name on the dead primary cannot be acquired: a typed failure, no panic
    match locker.try_lock(&names[0]).await {
        Err(LockError::Acquire(e)) => {
            let text = e.to_string();
            assert!(!text.is_empty());
        }
        other => panic!("acquired on a dead primary: {other:?}"),
    }
    // and the living primaries still grant
    let third = locker.try_lock(&names[2]).await.unwrap();
    third.release().await.unwrap();
    kept.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cluster_urls_are_named() {
    for (url, why) in [
        ("redis+cluster://h", "not host:port"),
        ("redis+cluster://127.0.0.1:1/3", "only database 0"),
    ] {
        match LockerOptions::new(url).build().await {
            Err(LockError::InvalidUrl { reason, .. }) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    match LockerOptions::new("redis+cluster://127.0.0.1:1")
        .replicas(1, Duration::from_millis(50))
        .build()
        .await
    {
        Err(LockError::Options(text)) => assert!(text.contains("Cluster"), "{text}"),
        other => panic!("{other:?}"),
    }
}

/// Move `slot` from node `from` to node `to` the way `redis-cli --cluster reshard` does:
/// IMPORTING/MIGRATING, `MIGRATE` of its keys, then `SETSLOT NODE` everywhere. Between the steps
/// the adapter's scripts meet `ASK` (and `TRYAGAIN`), and `MOVED` after.
async fn reshard(cluster: &RedisCluster, slot: u16, keys: &[&str], from: usize, to: usize) {
    let slot = slot.to_string();
    let id = |n: usize| async move {
        cluster.nodes[n]
            .cmd::<String>(&["CLUSTER", "MYID"])
            .await
            .unwrap()
    };
    let (src, dst) = (id(from).await, id(to).await);
    let _: () = cluster.nodes[to]
        .cmd(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src])
        .await
        .unwrap();
    let _: () = cluster.nodes[from]
        .cmd(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst])
        .await
        .unwrap();
    // a while in the middle state, with extensions going on
    tokio::time::sleep(Duration::from_millis(400)).await;
    let port = cluster.nodes[to].port.to_string();
    let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    migrate.extend_from_slice(keys);
    let _: redis::Value = cluster.nodes[from].cmd(&migrate).await.unwrap();
    // longer than an extension interval (ttl/3), so one meets ASK
    tokio::time::sleep(Duration::from_millis(700)).await;
    for n in [to, from] {
        let _: () = cluster.nodes[n]
            .cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &dst])
            .await
            .unwrap();
    }
    for n in 0..cluster.nodes.len() {
        if n != to && n != from {
            let _: () = cluster.nodes[n]
                .cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &dst])
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_survives_its_slot_moving_to_another_primary() {
    let Some(cluster) = RedisCluster::start("cluster_reshard", 3) else {
        return;
    };
    let names = names_per_node(&cluster);
    let locker = LockerOptions::new(url(&cluster))
        .ttl(Duration::from_millis(900))
        .slot_wait(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let name = &names[0];
    let lease = locker.lock(name, Duration::from_secs(5)).await.unwrap();
    let key = format!("leasehold:{{{name}}}");
    let fence = format!("{key}:fence");
    let before = locker.placement(name).await.unwrap();
    reshard(&cluster, before.keys[0].hash_slot, &[&key, &fence], 0, 1).await;
    assert_eq!(cluster.node_of(&key), 1);
    // an extension met ASK while the keys were moved but the slot not yet: the client sent
    // ASKING to the importing node
    let stats: String = cluster.nodes[1]
        .cmd(&["INFO", "commandstats"])
        .await
        .unwrap();
    assert!(stats.contains("cmdstat_asking:"), "{stats}");
    // extensions go on against the new owner, through MOVED, for several ttls
    let held = tokio::time::timeout(Duration::from_millis(2_500), lease.lost()).await;
    assert!(held.is_err(), "lost across the resharding: {held:?}");
    let after = locker.placement(name).await.unwrap();
    assert_eq!(
        after.keys[0].node.as_deref(),
        Some(format!("127.0.0.1:{}", cluster.nodes[1].port).as_str())
    );
    let v: String = cluster.nodes[1].cmd(&["GET", &key]).await.unwrap();
    assert!(v.starts_with("lh1:"), "{v}");
    let t1 = lease.token();
    lease.release().await.unwrap();
    let again = locker.try_lock(name).await.unwrap();
    assert!(again.token() > t1, "{} > {t1}", again.token());
    again.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_the_lock_is_granted_by_the_promoted_replica() {
    let Some(mut cluster) = RedisCluster::start_with_replicas("cluster_failover", 3, 1) else {
        return;
    };
    // a name on primary 1 (node 0 stays up: `node_of` asks it)
    let name = names_per_node(&cluster).swap_remove(1);
    let key = format!("leasehold:{{{name}}}");
    assert_eq!(cluster.node_of(&key), 1);
    let locker = LockerOptions::new(url(&cluster))
        .ttl(Duration::from_millis(1_000))
        .slot_wait(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let lease = locker.lock(&name, Duration::from_secs(5)).await.unwrap();
    let t1 = lease.token();
    cluster.nodes[1].kill();
    let reason = tokio::time::timeout(Duration::from_secs(5), lease.lost())
        .await
        .expect("the lease on the killed primary was not reported lost");
    assert!(
        matches!(
            reason,
            LostReason::ExpiredLocally | LostReason::Disconnected
        ),
        "{reason:?}"
    );
    // the replica is promoted after the node timeout (2 s) and an election; until then every
    // attempt fails typed, and the client finds the new primary by itself
    let started = std::time::Instant::now();
    let again = locker.lock(&name, Duration::from_secs(30)).await.unwrap();
    let took = started.elapsed();
    let owner = cluster.node_of(&key);
    assert!(owner >= 3, "served by node {owner}, not a promoted replica");
    assert!(
        again.token() > t1,
        "token after the failover {} must exceed {t1}",
        again.token()
    );
    eprintln!("granted by the promoted replica {took:?} after the kill");
    let held = tokio::time::timeout(Duration::from_millis(1_500), again.lost()).await;
    assert!(held.is_err(), "lost: {held:?}");
    again.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_full_coverage_one_dead_primary_downs_every_lease_typed() {
    let Some(mut cluster) = RedisCluster::start("cluster_full_coverage", 3) else {
        return;
    };
    // Redis's default `cluster-require-full-coverage yes`: once the dead primary is marked
    // failed (node timeout 2 s), the others refuse every key with CLUSTERDOWN
    let names = names_per_node(&cluster);
    let locker = LockerOptions::new(url(&cluster))
        .ttl(Duration::from_millis(1_000))
        .slot_wait(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let kept = locker
        .lock(&names[1], Duration::from_secs(5))
        .await
        .unwrap();
    cluster.nodes[2].kill();
    let reason = tokio::time::timeout(Duration::from_secs(10), kept.lost())
        .await
        .expect("a lease on a living primary outlived the cluster going down");
    assert!(
        matches!(
            reason,
            LostReason::ExpiredLocally | LostReason::Disconnected
        ),
        "{reason:?}"
    );
    match locker.try_lock(&names[0]).await {
        Err(LockError::Acquire(e)) => {
            // the redis crate spells Redis's CLUSTERDOWN "ClusterDown"
            let text = format!("{e:?}");
            assert!(text.to_lowercase().contains("clusterdown"), "{text}");
        }
        other => panic!("acquired on a cluster that is down: {other:?}"),
    }
}
