//! Where a cycle's time goes beyond the floor, measured alternately in one spawned task against
//! `URL` (`N` rounds, p50 of each):
//!
//! - `floor`: `SET NX PX` + compare-and-delete, by hand;
//! - `scripts`: leasehold's acquire and release scripts, by hand (the server's cost of fencing);
//! - `cycle_nopush`: `try_lock` + `release` through a locker without key tracking (the client's
//!   own code);
//! - `cycle`: the same with tracking, as lockers run by default (adds what key tracking costs:
//!   the scripts' re-arming reads and the server's tracking table; no push reaches the locker,
//!   whose own writes Redis does not report to it).
//!
//! `cargo run --release -p leasehold-bench --example cycle_breakdown -- redis://127.0.0.1:6379 6000`

use std::time::{Duration, Instant};

use leasehold_bench::floor;
use leasehold_redis::LockerOptions;

fn p50(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: cycle_breakdown URL N";
    let url = args.next().ok_or(usage)?;
    let n: usize = args.next().and_then(|n| n.parse().ok()).ok_or(usage)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let opts = |prefix: &str| {
            LockerOptions::new(url.clone())
                .ttl(Duration::from_secs(10))
                .prefix(prefix)
        };
        let tracked = opts("lhbd").build().await.map_err(|e| e.to_string())?;
        let mut o = opts("lhbd2");
        o.push = false;
        let untracked = o.build().await.map_err(|e| e.to_string())?;
        let mut c = leasehold_bench::conn::connect(&url)
            .await
            .map_err(|e| e.to_string())?;
        let task = tokio::spawn(async move {
            let del = redis::Script::new(floor::FLOOR_DEL);
            let acq = redis::Script::new(leasehold_core::wire::ACQUIRE.source);
            let rel = redis::Script::new(leasehold_core::wire::RELEASE.source);
            let mut t: [Vec<Duration>; 4] = Default::default();
            for _ in 0..n {
                let s = Instant::now();
                floor::cycle(&mut c, &del, "lhbd-floor:{f}", "v").await?;
                t[0].push(s.elapsed());
                let s = Instant::now();
                let _: redis::Value = acq
                    .key("lhbd-floor:{s}")
                    .key("lhbd-floor:{s}:fence")
                    .arg("v")
                    .arg(10_000)
                    .arg("0")
                    .arg(1_000)
                    .invoke_async(&mut c)
                    .await
                    .map_err(|e| e.to_string())?;
                let _: i64 = rel
                    .key("lhbd-floor:{s}")
                    .arg("v")
                    .invoke_async(&mut c)
                    .await
                    .map_err(|e| e.to_string())?;
                t[1].push(s.elapsed());
                for (i, l) in [(2, &untracked), (3, &tracked)] {
                    let s = Instant::now();
                    let lease = l.try_lock("x").await.map_err(|e| e.to_string())?;
                    lease.release().await.map_err(|e| e.to_string())?;
                    t[i].push(s.elapsed());
                }
            }
            let _: () = redis::cmd("DEL")
                .arg("lhbd-floor:{f}")
                .arg("lhbd-floor:{s}:fence")
                .query_async(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            let [f, s, np, cy] = t.each_mut().map(|v| p50(v));
            println!(
                "p50 µs: floor {:.1}  scripts {:.1}  cycle_nopush {:.1}  cycle {:.1}  (cycle/floor {:.3})",
                f.as_secs_f64() * 1e6,
                s.as_secs_f64() * 1e6,
                np.as_secs_f64() * 1e6,
                cy.as_secs_f64() * 1e6,
                cy.as_secs_f64() / f.as_secs_f64()
            );
            Ok::<(), String>(())
        });
        task.await.map_err(|e| e.to_string())?
    })
}
