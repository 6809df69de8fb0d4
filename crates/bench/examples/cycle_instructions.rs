//! Client-side cost of one lock cycle, for instruction counting: run `N` cycles of `try_lock` +
//! `release` (`cycle`) or of the floor's `SET NX PX` + compare-and-delete (`floor`) against
//! `URL`, on a current-thread runtime. Under `valgrind --tool=callgrind` the difference between two
//! values of `N`, divided by their difference, is the client's instructions per cycle (waiting
//! for Redis costs none), repeatable whatever else the machine does.
//!
//! `cargo build --release -p leasehold-bench --example cycle_instructions`, then
//! `valgrind --tool=callgrind target/release/examples/cycle_instructions redis://127.0.0.1:6379 cycle 1000`.

use std::time::Duration;

use leasehold_bench::floor;
use leasehold_redis::LockerOptions;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: cycle_instructions URL cycle|floor N";
    let url = args.next().ok_or(usage)?;
    let mode = args.next().ok_or(usage)?;
    let n: u32 = args.next().and_then(|n| n.parse().ok()).ok_or(usage)?;
    // LEASEHOLD_MT=1: the multi-thread runtime the bench uses (for counting system calls and
    // thread wake-ups with `strace -f -c`, which instruction counts do not show)
    let rt = if std::env::var("LEASEHOLD_MT").as_deref() == Ok("1") {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build()
    .map_err(|e| e.to_string())?;
    rt.block_on(async {
        match mode.as_str() {
            "cycle" => {
                let locker = LockerOptions::new(url)
                    .ttl(Duration::from_secs(10))
                    .slot_wait(Duration::from_secs(2)) // valgrind is slow to start
                    .prefix("lhprof")
                    .build()
                    .await
                    .map_err(|e| e.to_string())?;
                for _ in 0..n {
                    let lease = locker.try_lock("one").await.map_err(|e| e.to_string())?;
                    lease.release().await.map_err(|e| e.to_string())?;
                }
            }
            "floor" => {
                let mut c = leasehold_bench::conn::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                let del = redis::Script::new(floor::FLOOR_DEL);
                for _ in 0..n {
                    floor::cycle(&mut c, &del, "lhprof-floor:{one}", "v").await?;
                }
            }
            _ => return Err(usage.to_owned()),
        }
        Ok(())
    })
}
