//! Whole-screen snapshots of every screen at 80x24, 120x40 and 40x12, with time injected.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use leasehold_tui::keys::Key;
use leasehold_tui::layout::{Layout, LockRow};
use leasehold_tui::model::{Input, Model};
use leasehold_tui::view::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

const T: u64 = 1_000_000;

fn model() -> Model {
    let mut m = Model::new("redis://127.0.0.1:6379", Duration::from_millis(500));
    let rows = vec![
        LockRow {
            name: "billing-nightly".into(),
            layout: Layout::Leasehold,
            holder: Some("web-1/4242".into()),
            token: Some(1_764_100_000_123),
            ttl_ms: Some(8_200),
            keys_held: 1,
            keys_total: 1,
            waiters: None,
            prefix: String::new(),
            held: Vec::new(),
        },
        LockRow {
            name: "orders".into(),
            layout: Layout::Rueidislock,
            holder: Some("0x9f3a51c2…".into()),
            token: None,
            ttl_ms: Some(700),
            keys_held: 2,
            keys_total: 3,
            waiters: Some(3),
            prefix: String::new(),
            held: Vec::new(),
        },
        LockRow {
            name: "lock:report".into(),
            layout: Layout::Plain,
            holder: Some("c0ffee-uuid".into()),
            token: None,
            ttl_ms: None,
            keys_held: 1,
            keys_total: 1,
            waiters: None,
            prefix: String::new(),
            held: Vec::new(),
        },
        LockRow {
            name: "myLock".into(),
            layout: Layout::Redisson,
            holder: Some("8743c9c0:1 (x2)".into()),
            token: None,
            ttl_ms: Some(29_000),
            keys_held: 1,
            keys_total: 1,
            waiters: None,
            prefix: String::new(),
            held: Vec::new(),
        },
        LockRow {
            name: "idle-job".into(),
            layout: Layout::Leasehold,
            holder: None,
            token: Some(17),
            ttl_ms: Some(0),
            keys_held: 0,
            keys_total: 1,
            waiters: None,
            prefix: String::new(),
            held: Vec::new(),
        },
    ];
    m.update(
        Input::Snapshot {
            rows,
            commands: 40,
            rtt: Duration::from_micros(180),
        },
        T,
    );
    let ev = |at: u64, lock: &str, kind: &str, detail: &str| leasehold_tui::model::EventLine {
        at_ms: T - at,
        lock: lock.into(),
        kind: kind.into(),
        detail: detail.into(),
    };
    m.update(
        Input::Events(vec![
            ev(
                50_000,
                "billing-nightly",
                "acquired",
                "web-1/4242 token 1764100000120",
            ),
            ev(41_000, "billing-nightly", "released", "web-1/4242"),
            ev(30_000, "orders", "acquired", "0x9f3a51c2"),
            ev(22_000, "", "fault", "Pause { c: 3, len: 2.6s }"),
            ev(20_000, "orders", "lost", "expired locally"),
            ev(
                12_000,
                "billing-nightly",
                "timeout",
                "worker-2: slow_replies (35ms would have sufficed)",
            ),
            ev(
                9_000,
                "billing-nightly",
                "acquired",
                "web-1/4242 token 1764100000123",
            ),
        ]),
        T,
    );
    m
}

fn draw(m: &Model, w: u16, h: u16, now: u64) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| render(f, m, now, Theme { color: true }))
        .unwrap();
    term
}

#[test]
fn every_screen_at_three_sizes() {
    let screens: [(&str, Vec<Key>); 6] = [
        ("locks", vec![]),
        ("detail", vec![Key::Enter]),
        ("server", vec![Key::Char('5')]),
        ("help", vec![Key::Char('?')]),
        ("timeline", vec![Key::Char('3')]),
        ("events", vec![Key::Char('4')]),
    ];
    for (name, keys) in screens {
        for (w, h) in [(80u16, 24u16), (120, 40), (40, 12)] {
            let mut m = model();
            for k in &keys {
                m.update(Input::Key(*k), T);
            }
            let term = draw(&m, w, h, T + 300);
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), term.backend());
        }
    }
}

#[test]
fn disconnected_view_keeps_data_greyed_and_says_so() {
    let mut m = model();
    m.update(
        Input::Disconnected {
            error: "connection refused".into(),
        },
        T + 1_000,
    );
    let term = draw(&m, 120, 12, T + 4_000);
    insta::assert_snapshot!("disconnected_120x12", term.backend());
    let buf = term.backend().buffer();
    // the data rows are grey, not state-coloured, while stale
    let row_y = 3;
    let fg = (0..buf.area.width)
        .map(|x| buf[(x, row_y)].fg)
        .find(|c| *c != Color::Reset);
    assert_eq!(fg, Some(Color::DarkGray));
}

#[test]
fn colour_carries_the_state_and_no_color_removes_it() {
    let m = model();
    let term = draw(&m, 120, 12, T + 300);
    let buf = term.backend().buffer();
    let line_fg = |needle: &str| {
        (0..buf.area.height).find_map(|y| {
            let text: String = (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect();
            text.contains(needle).then(|| buf[(2, y)].fg)
        })
    };
    assert_eq!(line_fg("orders"), Some(Color::Yellow), "expiring");
    assert_eq!(line_fg("lock:report"), Some(Color::Red), "no TTL!");
    assert_eq!(line_fg("billing-nightly"), Some(Color::Green), "held");
    let mut plain = Terminal::new(TestBackend::new(120, 12)).unwrap();
    plain
        .draw(|f| render(f, &m, T + 300, Theme::from_env(Some("1"))))
        .unwrap();
    let buf = plain.backend().buffer();
    assert!(
        buf.content.iter().all(|c| c.fg == Color::Reset),
        "NO_COLOR: no colours at all"
    );
}

#[test]
fn server_screen_shows_the_redis_source_cost_and_prefixed_names() {
    let mut m = model();
    let mut other = m.rows[0].clone();
    other.prefix = "billing".into();
    other.holder = Some("web-9/1".into());
    let mut rows = m.rows.clone();
    rows.push(other);
    m.update(
        Input::Snapshot {
            rows,
            commands: 900,
            rtt: Duration::from_micros(180),
        },
        T + 1_000,
    );
    m.update(
        Input::Scan(leasehold_tui::model::ScanFigures {
            keys: 10_000,
            pass_commands: 7_022,
            pass_ms: 7_900,
            largest_reply: 31_337,
            budget: 1_000,
        }),
        T + 1_000,
    );
    let term = draw(&m, 100, 12, T + 1_100);
    insta::assert_snapshot!("locks_two_prefixes_100x12", term.backend());
    m.update(Input::Key(Key::Char('5')), T + 1_100);
    let term = draw(&m, 100, 14, T + 1_100);
    insta::assert_snapshot!("server_redis_cost_100x14", term.backend());
}
