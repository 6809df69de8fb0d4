//! `leasehold inspect` and `leasehold watch`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use leasehold_tui::layout::{LockRow, Targets, classify};
use leasehold_tui::model::{Effect, Input, Model};
use leasehold_tui::scan::{Budget, scan};
use leasehold_tui::source::cluster;
use leasehold_tui::source::redis::{RedisSource, TokenWindow};
use leasehold_tui::view::{Theme, render};
use serde_json::json;

/// `--pattern`: Redis glob rules; empty or malformed patterns are usage errors (exit 2).
fn parse_pattern(s: &str) -> Result<String, String> {
    leasehold_tui::glob::validate(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// Redis to read (read-only).
    #[arg(long)]
    redis: Option<String>,
    /// leasehold key prefix to look under (repeatable; default `leasehold`).
    #[arg(long = "prefix")]
    prefixes: Vec<String>,
    /// rueidislock key prefix (repeatable; default `rueidislock`).
    #[arg(long = "rueidis-prefix")]
    rueidis: Vec<String>,
    /// Glob of plain `SET NX` lock keys (redsync, redis-py, rslock style), e.g. `lock:*`. Redis's
    /// glob rules: `*`, `?`, `[a-z]`, `[^x]`, `\` escapes.
    #[arg(long = "pattern", value_parser = parse_pattern)]
    patterns: Vec<String>,
    /// Do not look for Redisson lock hashes (that scan covers every hash key).
    #[arg(long)]
    no_redisson: bool,
    /// Most commands per second the dashboard may send, all reads included (a token bucket
    /// across passes and refreshes).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    budget: u32,
}

impl SourceArgs {
    fn targets(&self) -> Targets {
        let d = Targets::default();
        Targets {
            leasehold: if self.prefixes.is_empty() {
                d.leasehold
            } else {
                self.prefixes.clone()
            },
            rueidislock: if self.rueidis.is_empty() {
                d.rueidislock
            } else {
                self.rueidis.clone()
            },
            plain: self.patterns.clone(),
            redisson: !self.no_redisson,
        }
    }

    fn budget(&self) -> Budget {
        Budget {
            commands_per_sec: self.budget,
            ..Budget::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// One JSON array of locks instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Watch one recorded seed of this simulator scenario fail, lane by lane (instead of Redis).
    #[arg(long, conflicts_with_all = ["replay", "redis"])]
    scenario: Option<String>,
    /// The seed to watch (default: the first seed of the scenario with a finding).
    #[arg(long, requires = "scenario")]
    seed: Option<u64>,
    /// Playback speed, virtual seconds per wall second (space pauses, `<`/`>` change it).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Watch the seed of a replay line printed by `leasehold sim`, e.g.
    /// 'leasehold sim --scenario gc-pause --seed 471 --clients 5 --locks 2 --duration 30s'.
    #[arg(long, conflicts_with = "redis")]
    replay: Option<String>,
    /// Enable the force-release action (`X`, confirmed with `y`): deletes the lock's keys and
    /// advances leasehold's fence counter so the evicted holder's writes are rejected.
    #[arg(long)]
    allow_writes: bool,
    /// Capture the mouse (off by default, so the terminal's own selection keeps working).
    #[arg(long)]
    mouse: bool,
    /// Refresh period.
    #[arg(long, default_value = "500ms", value_parser = crate::sim_cmd::parse_duration)]
    refresh: Duration,
}

fn state_label(m: &Model, r: &LockRow, now: u64) -> &'static str {
    m.state(r, now).label()
}

pub fn inspect(a: InspectArgs) -> ExitCode {
    let Some(url) = a.source.redis.clone() else {
        eprintln!("error: inspect needs --redis URL");
        return ExitCode::from(2);
    };
    let Some(rt) = crate::runtime("inspect") else {
        return ExitCode::from(1);
    };
    let result = rt.block_on(async {
        let mut conn = leasehold_tui::source::connect(&url)
            .await
            .map_err(|e| e.to_string())?;
        // a cluster node: read every primary (SCAN sees one node's keys only)
        if let Ok(Some(urls)) = cluster::primaries_on(&mut conn, &url).await
            && urls.len() > 1
        {
            let (keys, _) = cluster::scan(&urls, &a.source.targets(), a.source.budget()).await?;
            return Ok(classify(&a.source.targets(), &keys));
        }
        let (keys, _) = scan(&mut conn, &a.source.targets(), a.source.budget())
            .await
            .map_err(|e| format!("reading locks failed: {e}"))?;
        Ok::<_, String>(classify(&a.source.targets(), &keys))
    });
    let rows = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("leasehold inspect: {e}");
            return ExitCode::from(1);
        }
    };
    let mut m = Model::new(leasehold_redis::redact(&url), Duration::from_secs(1));
    m.update(
        Input::Snapshot {
            rows,
            commands: 0,
            rtt: Duration::ZERO,
        },
        0,
    );
    if a.json {
        let out: Vec<serde_json::Value> = m
            .rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name, "prefix": r.prefix, "layout": r.layout, "holder": r.holder, "token": r.token,
                    "ttl_ms": r.ttl_ms, "keys_held": r.keys_held, "keys_total": r.keys_total,
                    "state": state_label(&m, r, 0),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
    } else {
        println!(
            "{:<30} {:<11} {:<24} {:>17} {:>9} {:>5}  state",
            "name", "layout", "holder", "token", "ttl_ms", "keys"
        );
        for r in m.visible(0) {
            println!(
                "{:<30} {:<11} {:<24} {:>17} {:>9} {:>5}  {}",
                r.display_name(),
                serde_json::to_value(r.layout)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                r.holder.as_deref().unwrap_or("-"),
                r.token.map_or("-".into(), |t| t.to_string()),
                r.ttl_ms.map_or("none".into(), |t| t.to_string()),
                format!("{}/{}", r.keys_held, r.keys_total),
                state_label(&m, r, 0)
            );
        }
    }
    ExitCode::SUCCESS
}

fn key_of(ev: &ratatui::crossterm::event::KeyEvent) -> Option<leasehold_tui::keys::Key> {
    use leasehold_tui::keys::Key;
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    Some(match ev.code {
        KeyCode::Char('c') if ev.modifiers.contains(KeyModifiers::CONTROL) => Key::CtrlC,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

pub fn watch(a: WatchArgs) -> ExitCode {
    use std::io::IsTerminal;
    let scenario = a.scenario.clone().unwrap_or_else(|| "calm".into());
    if a.source.redis.is_none()
        && let Err(e) =
            leasehold_sim::config_for(&scenario, 0, &leasehold_sim::Overrides::default())
    {
        eprintln!("error: --scenario: {e}");
        return ExitCode::from(2);
    }
    if !(a.speed.is_finite() && (1.0 / 64.0..=64.0).contains(&a.speed)) {
        eprintln!(
            "error: --speed {} must be between 1/64 (0.015625) and 64",
            a.speed
        );
        return ExitCode::from(2);
    }
    let replay = match (&a.replay, &a.scenario) {
        (Some(line), _) => match leasehold_tui::source::sim::parse_replay(line) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("error: --replay: {e}");
                return ExitCode::from(2);
            }
        },
        (None, Some(s)) if a.source.redis.is_none() => {
            let o = leasehold_sim::Overrides::default();
            let seed = a.seed.unwrap_or_else(|| {
                leasehold_tui::source::sim::interesting_seed(
                    |seed| leasehold_sim::config_for(s, seed, &o).ok(),
                    200,
                )
            });
            leasehold_sim::config_for(s, seed, &o)
                .ok()
                .map(|cfg| (cfg, seed))
        }
        _ => None,
    };
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        eprintln!(
            "leasehold watch: needs a terminal (stdin and stdout must be a TTY); for a one-off \
             read in scripts or pipes use `leasehold inspect --redis URL [--json]`"
        );
        return ExitCode::from(2);
    }
    let Some(rt) = crate::runtime("watch") else {
        return ExitCode::from(1);
    };
    match (a.source.redis.clone(), replay) {
        (Some(url), _) => rt.block_on(watch_redis(a, url)),
        (None, Some((cfg, seed))) => {
            let rec = match leasehold_tui::source::sim::record(&cfg, seed) {
                Ok(r) => std::sync::Arc::new(r),
                Err(e) => {
                    eprintln!(
                        "leasehold watch: cannot simulate {} seed {seed}: {e}",
                        cfg.scenario
                    );
                    return ExitCode::from(2);
                }
            };
            let (_tx, rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
            let (refresh_tx, _refresh_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
            let mut model = Model::new(
                format!("simulator: {} seed {seed}", cfg.scenario),
                Duration::from_millis(100),
            );
            model.replay(rec, a.speed, 0);
            rt.block_on(run_ui(model, rx, refresh_tx, None, a.mouse))
        }
        (None, None) => rt.block_on(watch_sim(a, scenario)),
    }
}

/// The embedded default: a live simulation running in real time, one seed after another.
async fn watch_sim(a: WatchArgs, scenario: String) -> ExitCode {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
    let (refresh_tx, _refresh_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let every = a.refresh;
    tokio::spawn(leasehold_tui::source::sim::run_live(
        scenario.clone(),
        tx,
        Instant::now(),
    ));
    let mut model = Model::new(format!("simulator: {scenario} (live, real time)"), every);
    model.watch_mode = "simulator (no Redis)".into();
    run_ui(model, rx, refresh_tx, None, a.mouse).await
}

async fn watch_redis(a: WatchArgs, url: String) -> ExitCode {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Input>();
    let (refresh_tx, refresh_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (tokens_tx, tokens_rx) = tokio::sync::watch::channel(TokenWindow::new());
    let src = RedisSource {
        url: url.clone(),
        targets: a.source.targets(),
        budget: a.source.budget(),
        every: a.refresh,
    };
    // the Redis source runs as a task and only sends messages; nothing blocks inside a draw. On a
    // cluster, one source per primary within the one budget, merged.
    match cluster::primaries(&url).await {
        Ok(Some(urls)) if urls.len() > 1 => {
            tokio::spawn(cluster::run(
                src,
                urls,
                tx.clone(),
                refresh_rx,
                tokens_rx,
                Instant::now(),
            ));
        }
        _ => {
            tokio::spawn(leasehold_tui::source::redis::run(
                src,
                tx.clone(),
                refresh_rx,
                tokens_rx,
                Instant::now(),
            ));
        }
    }
    let mut model = Model::new(leasehold_redis::redact(&url), a.refresh);
    model.allow_writes = a.allow_writes;
    run_ui(model, rx, refresh_tx, Some((url, tx, tokens_tx)), a.mouse).await
}

/// What the UI tells the Redis source: the URL for force-releases, where their outcome goes, and
/// the rows on screen (whose tokens the source reads).
type Writer = (
    String,
    tokio::sync::mpsc::UnboundedSender<Input>,
    tokio::sync::watch::Sender<TokenWindow>,
);

/// The UI loop: draw, then wait for one input (a source message, a key, a tick or SIGTERM).
/// `writer`: the Redis URL for force-releases, where their outcome goes, and where the rows on
/// screen are told (the source reads only their tokens).
async fn run_ui(
    mut model: Model,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Input>,
    refresh_tx: tokio::sync::mpsc::UnboundedSender<()>,
    writer: Option<Writer>,
    mouse: bool,
) -> ExitCode {
    // keys come from a blocking reader thread
    let (ktx, mut krx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use ratatui::crossterm::event::{Event, read};
        use ratatui::crossterm::event::{KeyCode, KeyEvent, MouseEventKind};
        while let Ok(ev) = read() {
            let key = match ev {
                Event::Key(k) => k,
                // with --mouse, the wheel moves the selection
                Event::Mouse(m) if m.kind == MouseEventKind::ScrollDown => {
                    KeyEvent::from(KeyCode::Down)
                }
                Event::Mouse(m) if m.kind == MouseEventKind::ScrollUp => {
                    KeyEvent::from(KeyCode::Up)
                }
                _ => continue,
            };
            if ktx.send(key).is_err() {
                return;
            }
        }
    });
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let theme = Theme::from_env(std::env::var("NO_COLOR").ok().as_deref());
    let origin = Instant::now();
    let now = || u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
    // restores the terminal on panic too
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("leasehold watch: cannot set up the terminal: {e}");
            return ExitCode::from(1);
        }
    };
    if mouse {
        let _ = ratatui::crossterm::execute!(
            std::io::stdout(),
            ratatui::crossterm::event::EnableMouseCapture
        );
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let t = now();
        let Ok(frame) = terminal.draw(|f| render(f, &model, t, theme)) else {
            break;
        };
        if let Some((_, _, tokens)) = &writer {
            let window = model.token_window(t, usize::from(frame.area.height));
            tokens.send_if_modified(|w| {
                let changed = *w != window;
                if changed {
                    *w = window;
                }
                changed
            });
        }
        let effect = tokio::select! {
            Some(input) = rx.recv() => model.update(input, now()),
            Some(k) = krx.recv() => match key_of(&k) {
                Some(key) => model.update(Input::Key(key), now()),
                None => Effect::None,
            },
            _ = tick.tick() => model.update(Input::Tick, now()),
            _ = async { match sigterm.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => Effect::Quit,
        };
        match effect {
            Effect::Quit => break,
            Effect::Refresh => {
                let _ = refresh_tx.send(());
            }
            Effect::ForceRelease(row) => {
                if let Some((url, tx, _)) = writer.clone() {
                    tokio::spawn(async move {
                        let outcome = leasehold_tui::source::release::force_release_at(
                            &url,
                            &row,
                            leasehold_tui::source::release::fence_keep_ms(),
                        )
                        .await;
                        let _ = tx.send(Input::Released { row, outcome });
                    });
                }
            }
            Effect::None => {}
        }
    }
    if mouse {
        let _ = ratatui::crossterm::execute!(
            std::io::stdout(),
            ratatui::crossterm::event::DisableMouseCapture
        );
    }
    ratatui::restore();
    ExitCode::SUCCESS
}
