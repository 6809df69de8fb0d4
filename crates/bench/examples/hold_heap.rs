//! Live heap per held lease, apart from allocator fragmentation: hold `N` leases through one
//! locker against `URL` and print the heap bytes still allocated per lease (a counting global
//! allocator: allocated minus freed), beside the RSS growth per lease the bench reports.
//!
//! `cargo run --release -p leasehold-bench --example hold_heap -- redis://127.0.0.1:6379 10000`
#![allow(unsafe_code)] // the counting allocator, forwarding to the system's

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use leasehold_redis::LockerOptions;

struct Live;

static LIVE: AtomicI64 = AtomicI64::new(0);

fn add(n: usize) {
    LIVE.fetch_add(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
}

fn sub(n: usize) {
    LIVE.fetch_sub(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        sub(layout.size());
        add(new_size);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hold_heap URL N";
    let url = args.next().ok_or(usage)?;
    let n: usize = args.next().and_then(|n| n.parse().ok()).ok_or(usage)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut o = LockerOptions::new(url)
            .ttl(Duration::from_secs(3))
            .slot_wait(Duration::from_secs(1))
            .prefix("lhheap");
        o.lock.fence_retention = Duration::from_secs(1);
        let locker = o.build().await.map_err(|e| e.to_string())?;
        // one lease first, so the locker's lazily made structures are not counted per lease
        let first = locker.lock("warm", Duration::from_secs(5)).await.map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (heap0, rss0) = (LIVE.load(Ordering::Relaxed), leasehold_bench::hold::rss_bytes());
        let mut leases = Vec::with_capacity(n);
        let names: Vec<String> = (0..n).map(|i| format!("h{i}")).collect();
        for chunk in names.chunks(256) {
            let got = futures_util::future::join_all(
                chunk.iter().map(|name| locker.lock(name, Duration::from_secs(30))),
            )
            .await;
            for g in got {
                leases.push(g.map_err(|e| e.to_string())?);
            }
        }
        // through several extensions: the steady state
        tokio::time::sleep(Duration::from_secs(4)).await;
        let (heap1, rss1) = (LIVE.load(Ordering::Relaxed), leasehold_bench::hold::rss_bytes());
        println!(
            "{n} leases: live heap {:.0} B/lease (the caller's Vec<Lease> {} B of it), RSS {:.0} B/lease",
            (heap1 - heap0) as f64 / n as f64,
            std::mem::size_of::<leasehold_redis::Lease>(),
            rss1.saturating_sub(rss0) as f64 / n as f64,
        );
        for l in leases {
            let _ = l.release().await;
        }
        let _ = first.release().await;
        Ok(())
    })
}
