//! Dashboard speed with 10,000 locks: ms per rendered frame (target < 10 ms), and the command load
//! the dashboard's own reads put on a real redis-server (target < 1,000 commands/s by default).
//! Run with `just bench` or `cargo bench -p leasehold-tui --bench tui_render`.

use std::time::{Duration, Instant};

use leasehold_tui::layout::{Layout, LockRow, Targets};
use leasehold_tui::model::Input as In;
use leasehold_tui::model::{Input, Model};
use leasehold_tui::scan::Budget;
use leasehold_tui::source::redis::{RedisSource, run};
use leasehold_tui::view::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn rows(n: usize) -> Vec<LockRow> {
    (0..n)
        .map(|i| LockRow {
            name: format!("job-{i:05}"),
            layout: Layout::Leasehold,
            holder: Some(format!("worker-{}/{}", i % 97, 1000 + i)),
            token: Some(1_764_100_000_000_000 + i as u64),
            ttl_ms: Some(((i * 7_919) % 30_000) as i64),
            keys_held: 1,
            keys_total: 1,
            waiters: None,
            prefix: String::new(),
            held: Vec::new(),
        })
        .collect()
}

fn main() {
    let mut m = Model::new("redis://127.0.0.1:6379", Duration::from_millis(500));
    m.update(
        Input::Snapshot {
            rows: rows(10_000),
            commands: 0,
            rtt: Duration::from_micros(150),
        },
        0,
    );
    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("test backend");
    let frames = 200u32;
    for i in 0..10 {
        let _ = term.draw(|f| render(f, &m, i * 16, Theme { color: true }));
    }
    let start = Instant::now();
    for i in 0..frames {
        let _ = term.draw(|f| render(f, &m, 1_000 + u64::from(i) * 16, Theme { color: true }));
    }
    let per = start.elapsed().as_secs_f64() * 1_000.0 / f64::from(frames);
    println!("tui_render: 10000 locks, 120x40, {per:.2} ms/frame (target < 10 ms)");

    // the dashboard's own load on a real server holding 10,000 lock keys
    let installed = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        println!("tui_render: redis-server not installed, skipping the load measurement");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0);
    let Ok(mut child) = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
    else {
        return;
    };
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.clone()).expect("url");
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        // 10,000 keys: 4,000 leasehold locks (lock key and fence counter) and 2,000 plain keys
        let mut p = redis::pipe();
        for i in 0..4_000 {
            p.cmd("SET")
                .arg(format!("leasehold:{{job-{i:05}}}"))
                .arg(format!("lh1:{i:016x}:w"))
                .arg("PX")
                .arg(600_000)
                .ignore();
            p.cmd("SET")
                .arg(format!("leasehold:{{job-{i:05}}}:fence"))
                .arg(1_000 + i)
                .ignore();
        }
        for i in 0..2_000 {
            p.cmd("SET")
                .arg(format!("lock:p-{i:05}"))
                .arg(format!("uuid-{i}"))
                .arg("PX")
                .arg(600_000)
                .ignore();
        }
        let _: () = p.query_async(&mut c).await.expect("fill");
        for (refresh, secs) in [(Duration::from_millis(100), 40u64), (Duration::ZERO, 12)] {
            measure(&url, &mut c, refresh, secs).await;
        }
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// Calls per command in `INFO commandstats`, summed (without the measuring `INFO` itself).
async fn commands(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .unwrap_or_default();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Run the Redis source as `watch` does for `secs` seconds with `--refresh refresh`, and report
/// the server-counted commands per one-second window, the passes and the largest reply.
async fn measure(
    url: &str,
    c: &mut redis::aio::MultiplexedConnection,
    refresh: Duration,
    secs: u64,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<In>();
    let (_refresh_tx, refresh_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let src = RedisSource {
        url: url.to_owned(),
        targets: Targets {
            plain: vec!["lock:*".into()],
            ..Targets::default()
        },
        budget: Budget::default(),
        every: refresh,
    };
    // the UI's side: a 40-line screen, whose rows' tokens the source reads (as `watch` does)
    let (tokens_tx, tokens_rx) = tokio::sync::watch::channel(Default::default());
    let mut model = Model::new(url, refresh);
    let task = tokio::spawn(run(src, tx, refresh_rx, tokens_rx, Instant::now()));
    let start = Instant::now();
    let mut last = commands(c).await;
    let first_count = last;
    let mut windows = Vec::new();
    let mut passes: Vec<leasehold_tui::model::ScanFigures> = Vec::new();
    let mut rows = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        let tick = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(tick);
        loop {
            tokio::select! {
                () = &mut tick => break,
                Some(i) = rx.recv() => match i {
                    In::Scan(f) if passes.last() != Some(&f) && f.pass_commands > 0 => passes.push(f),
                    In::Snapshot { rows: r, commands, rtt } => {
                        rows = r.len();
                        model.update(In::Snapshot { rows: r, commands, rtt }, 0);
                        tokens_tx.send_replace(model.token_window(0, 40));
                    }
                    _ => {}
                },
            }
        }
        let now = commands(c).await;
        windows.push(now - last);
        last = now;
    }
    task.abort();
    let total: u64 = last - first_count;
    let max = windows.iter().copied().max().unwrap_or(0);
    let mean = total as f64 / windows.len().max(1) as f64;
    println!(
        "tui_load: --refresh {refresh:?}, 10000 keys ({rows} locks), budget 1000: {mean:.0} commands/s mean, {max} in the busiest second (server-counted, INFO commandstats)"
    );
    let mut seen = std::collections::BTreeSet::new();
    for (i, f) in passes.iter().enumerate() {
        if !seen.insert((f.pass_commands, f.pass_ms)) {
            continue;
        }
        println!(
            "tui_load:   pass {}: {} commands for {} keys ({:.2}/key), {:.1} s; largest reply so far {} B",
            i + 1,
            f.pass_commands,
            f.keys,
            f.pass_commands as f64 / f.keys.max(1) as f64,
            f.pass_ms as f64 / 1_000.0,
            f.largest_reply
        );
    }
}
