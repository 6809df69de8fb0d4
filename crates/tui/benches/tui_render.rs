//! Dashboard speed with 10,000 locks: ms per rendered frame (target < 10 ms), and the command load
//! the dashboard's own reads put on a real redis-server (target < 1,000 commands/s by default).
//! Run with `just bench` or `cargo bench -p leasehold-tui --bench tui_render`.

use std::time::{Duration, Instant};

use leasehold_tui::layout::{Layout, LockRow, Targets, classify};
use leasehold_tui::model::{Input, Model};
use leasehold_tui::scan::{Budget, scan};
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
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
        let mut c = client.get_multiplexed_async_connection().await.expect("connect");
        let mut p = redis::pipe();
        for i in 0..10_000 {
            p.cmd("SET").arg(format!("leasehold:{{job-{i:05}}}")).arg(format!("lh1:{i:016x}:w")).arg("PX").arg(600_000).ignore();
        }
        let _: () = p.query_async(&mut c).await.expect("fill");
        let targets = Targets::default();
        let start = Instant::now();
        let mut commands = 0;
        let mut found = 0;
        for _ in 0..2 {
            let (keys, cost) = scan(&mut c, &targets, Budget::default()).await.expect("scan");
            commands += cost.commands;
            found = classify(&targets, &keys).len();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "tui_render: 2 full reads of {found} locks took {secs:.1} s, {:.0} commands/s from the dashboard (target < 1000)",
            commands as f64 / secs
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}
