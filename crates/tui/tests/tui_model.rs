//! The pure model with injected time: countdowns, state transitions, staleness, keys.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use leasehold_tui::keys::{BINDINGS, Key, action_for};
use leasehold_tui::layout::{HeldKey, Layout, LockRow, Shown};
use leasehold_tui::model::{Conn, Effect, Input, LockState, Model, ReleaseOutcome, Screen};

fn row(name: &str, ttl: Option<i64>, held: u32) -> LockRow {
    LockRow {
        name: name.into(),
        layout: Layout::Leasehold,
        holder: Some(format!("h-{name}")),
        token: Some(1),
        ttl_ms: ttl,
        keys_held: held,
        keys_total: 1,
        waiters: None,
        prefix: "leasehold".into(),
        held: (0..held)
            .map(|_| HeldKey {
                key: format!("leasehold:{{{name}}}"),
                fence: Some(format!("leasehold:{{{name}}}:fence")),
                shown: Shown::Value(format!("lh1:00000000000000aa:h-{name}").into_bytes()),
            })
            .collect(),
    }
}

fn model_at(t: u64) -> Model {
    let mut m = Model::new("redis://127.0.0.1:6379", Duration::from_millis(500));
    let rows = vec![
        row("a", Some(5_000), 1),
        row("b", Some(1_500), 1),
        row("c", None, 1),
        row("d", Some(0), 0),
    ];
    m.update(
        Input::Snapshot {
            rows,
            commands: 12,
            rtt: Duration::from_micros(150),
        },
        t,
    );
    m
}

#[test]
fn countdowns_and_state_transitions_follow_injected_time() {
    let m = model_at(10_000);
    let b = &m.rows[1];
    assert_eq!(m.remaining_ms(b, 10_000), Some(1_500));
    assert_eq!(m.state(b, 10_000), LockState::Held);
    assert_eq!(m.state(b, 10_600), LockState::Expiring);
    assert_eq!(m.state(b, 11_500), LockState::ExpiredMaybe);
    assert_eq!(m.state(&m.rows[2], 99_999), LockState::NoTtl);
    assert_eq!(m.state(&m.rows[3], 10_000), LockState::Free);
}

#[test]
fn stale_after_missed_refreshes_and_on_disconnect() {
    let mut m = model_at(10_000);
    assert!(!m.stale(11_000));
    assert!(m.stale(11_600), "three missed 500 ms refreshes");
    m.update(
        Input::Disconnected {
            error: "connection refused".into(),
        },
        11_700,
    );
    assert!(matches!(
        m.conn,
        Conn::Down {
            since_ms: 11_700,
            ..
        }
    ));
    assert_eq!(m.rows.len(), 4, "the last data is kept");
    m.update(
        Input::Snapshot {
            rows: vec![],
            commands: 1,
            rtt: Duration::from_micros(90),
        },
        12_000,
    );
    assert_eq!(m.conn, Conn::Up);
}

#[test]
fn sorting_filtering_freezing_and_navigation() {
    let mut m = model_at(0);
    let names = |m: &Model| {
        m.visible(0)
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&m),
        ["b", "a", "c", "d"],
        "least TTL left first, free last"
    );
    m.update(Input::Key(Key::Char('s')), 0);
    assert_eq!(names(&m), ["a", "b", "c", "d"], "by name");
    m.update(Input::Key(Key::Char('S')), 0);
    assert_eq!(names(&m), ["d", "c", "b", "a"], "reversed");
    m.update(Input::Key(Key::Char('/')), 0);
    for c in "h-c".chars() {
        m.update(Input::Key(Key::Char(c)), 0);
    }
    m.update(Input::Key(Key::Enter), 0);
    assert_eq!(names(&m), ["c"], "filter matches holders");
    m.update(Input::Key(Key::Esc), 0);
    assert_eq!(m.filter, "");
    m.update(Input::Key(Key::Char('G')), 0);
    assert_eq!(m.selected, 3);
    m.update(Input::Key(Key::Char('k')), 0);
    assert_eq!(m.selected, 2);
    m.update(Input::Key(Key::Enter), 0);
    assert_eq!(m.screen, Screen::Detail);
    m.update(Input::Key(Key::Esc), 0);
    assert_eq!(m.screen, Screen::Locks);
    m.update(Input::Key(Key::Char('5')), 0);
    assert_eq!(m.screen, Screen::Server);
    m.update(Input::Key(Key::Tab), 0);
    assert_eq!(m.screen, Screen::Locks);
    m.update(Input::Key(Key::Char('f')), 0);
    m.update(
        Input::Snapshot {
            rows: vec![],
            commands: 1,
            rtt: Duration::from_micros(90),
        },
        100,
    );
    assert_eq!(m.rows.len(), 4, "frozen views keep their rows");
    assert_eq!(m.update(Input::Key(Key::Char('r')), 0), Effect::Refresh);
    assert_eq!(m.update(Input::Key(Key::CtrlC), 0), Effect::Quit);
    assert_eq!(m.update(Input::Key(Key::Char('q')), 0), Effect::Quit);
}

#[test]
fn every_binding_dispatches_and_the_help_lists_it() {
    for b in BINDINGS {
        for k in b.keys {
            assert!(
                action_for(*k).is_some(),
                "{:?} is bound but does nothing",
                k
            );
        }
    }
    // the help overlay is generated from the same table: render it and look for every label
    let mut m = model_at(0);
    m.update(Input::Key(Key::Char('?')), 0);
    let backend = ratatui::backend::TestBackend::new(80, 30);
    let mut term = ratatui::Terminal::new(backend).unwrap();
    term.draw(|f| {
        leasehold_tui::view::render(f, &m, 0, leasehold_tui::view::Theme { color: true })
    })
    .unwrap();
    let screen = format!("{}", term.backend());
    for b in BINDINGS {
        assert!(
            screen.contains(b.label) && screen.contains(b.help),
            "help misses {}:\n{screen}",
            b.label
        );
    }
}

#[test]
fn long_tokens_keep_their_distinguishing_tail() {
    use leasehold_tui::view::fit_token;
    assert_eq!(fit_token(Some(1_764_100_000_123), 10), "…100000123");
    assert_eq!(fit_token(Some(17), 10), "17");
    assert_eq!(fit_token(None, 10), "-");
}

#[test]
fn the_event_tail_pauses_and_resumes_without_losing_lines() {
    use leasehold_tui::model::EventLine;
    let mut m = model_at(0);
    let line = |i: u64, kind: &str| EventLine {
        at_ms: i,
        lock: "a".into(),
        kind: kind.into(),
        detail: format!("#{i}"),
    };
    m.update(
        Input::Events(vec![line(1, "acquired"), line(2, "released")]),
        0,
    );
    m.update(Input::Key(Key::Char(' ')), 0);
    m.update(Input::Events(vec![line(3, "lost")]), 0);
    assert_eq!(m.events.len(), 2, "paused: held back");
    assert_eq!(m.held_back.len(), 1);
    m.update(Input::Key(Key::Char(' ')), 0);
    assert_eq!(m.events.len(), 3, "resumed: nothing lost");
    m.filter = "lost".into();
    assert_eq!(m.visible_events().len(), 1);
}

#[test]
fn force_release_needs_allow_writes_and_a_confirmation() {
    let mut m = model_at(0);
    assert_eq!(m.update(Input::Key(Key::Char('X')), 0), Effect::None);
    assert!(
        m.message.as_deref().unwrap().contains("--allow-writes"),
        "read-only by default"
    );
    m.allow_writes = true;
    m.update(Input::Key(Key::Char('X')), 0);
    assert!(m.confirm.is_some());
    assert_eq!(
        m.update(Input::Key(Key::Char('n')), 0),
        Effect::None,
        "anything but y cancels"
    );
    assert!(m.confirm.is_none());
    m.update(Input::Key(Key::Char('X')), 0);
    match m.update(Input::Key(Key::Char('y')), 0) {
        Effect::ForceRelease(row) => assert_eq!(row.name, "b", "the selected (first shown) lock"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn held_for_follows_the_holder_and_ttl_history_accumulates() {
    let mut m = model_at(1_000);
    let b = m.rows.iter().find(|r| r.name == "b").unwrap().clone();
    assert_eq!(m.held_for_ms(&b, 4_000), Some(3_000));
    // same holder on the next read: still counting from the first sighting
    let rows = vec![row("b", Some(1_200), 1)];
    m.update(
        Input::Snapshot {
            rows,
            commands: 1,
            rtt: Duration::from_micros(100),
        },
        2_000,
    );
    assert_eq!(m.held_for_ms(&m.rows[0].clone(), 5_000), Some(4_000));
    assert_eq!(m.ttl_history[&row("b", None, 1).id()], vec![1_500, 1_200]);
    // a new holder restarts the count
    let mut other = row("b", Some(9_000), 1);
    other.holder = Some("someone-else".into());
    m.update(
        Input::Snapshot {
            rows: vec![other.clone()],
            commands: 1,
            rtt: Duration::from_micros(100),
        },
        6_000,
    );
    assert_eq!(m.held_for_ms(&other, 6_500), Some(500));
    // a confirmed force-release is logged for the timeline
    m.allow_writes = true;
    m.update(Input::Key(Key::Char('X')), 6_600);
    m.update(Input::Key(Key::Char('y')), 6_600);
    assert_ne!(
        m.events.back().map(|e| e.kind.as_str()),
        Some("forced"),
        "nothing is logged before the source says what happened"
    );
    let effect = m.update(
        Input::Released {
            row: other,
            outcome: ReleaseOutcome::Released {
                keys: 1,
                token: Some(2),
            },
        },
        6_700,
    );
    assert_eq!(effect, Effect::Refresh, "re-read after a write");
    assert_eq!(m.events.back().map(|e| e.kind.as_str()), Some("forced"));
    assert!(
        m.message.as_deref().unwrap().contains("fence now 2"),
        "{:?}",
        m.message
    );
}

#[test]
fn force_release_prompt_names_holder_token_and_prefix_and_a_changed_holder_aborts() {
    let mut m = model_at(0);
    m.allow_writes = true;
    m.update(Input::Key(Key::Char('X')), 0);
    let prompt = m.message.clone().unwrap();
    for part in [
        "\"b\"",
        "prefix leasehold",
        "held by h-b",
        "token 1",
        "y to confirm",
    ] {
        assert!(prompt.contains(part), "{part:?} missing from {prompt:?}");
    }
    let Effect::ForceRelease(row) = m.update(Input::Key(Key::Char('y')), 0) else {
        panic!("y confirms");
    };
    let events = m.events.len();
    m.update(
        Input::Released {
            row,
            outcome: ReleaseOutcome::Changed {
                key: "leasehold:{b}".into(),
                now: "intruder".into(),
                released_before: 0,
            },
        },
        10,
    );
    let msg = m.message.clone().unwrap();
    assert!(
        msg.contains("not released") && msg.contains("intruder") && msg.contains("h-b"),
        "{msg}"
    );
    assert_eq!(
        m.events.len(),
        events,
        "nothing was released, nothing logged"
    );
    // a row with nothing held offers no release
    m.selected = m.visible(10).iter().position(|r| r.name == "d").unwrap();
    m.update(Input::Key(Key::Char('X')), 10);
    assert!(m.confirm.is_none());
    assert!(m.message.clone().unwrap().contains("not held"));
}

#[test]
fn token_window_covers_the_screen_around_the_selection_and_only_leasehold_rows() {
    let mut m = Model::new("redis://127.0.0.1:6379", Duration::from_millis(500));
    let mut rows: Vec<LockRow> = (0..1_000)
        .map(|i| row(&format!("job-{i:04}"), Some(60_000), 1))
        .collect();
    rows[2].layout = Layout::Plain;
    m.update(
        Input::Snapshot {
            rows,
            commands: 0,
            rtt: Duration::from_micros(150),
        },
        0,
    );
    m.update(Input::Key(Key::Char('s')), 0); // sort by name: row i is job-i
    let names = |w: &std::collections::BTreeSet<(String, String)>| {
        w.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>()
    };
    let w = m.token_window(0, 40);
    assert_eq!(w.len(), 39, "the first 40 rows but the plain one");
    assert!(w.iter().all(|(p, _)| p == "leasehold"));
    assert!(!names(&w).contains(&"job-0002".to_owned()));
    for _ in 0..500 {
        m.update(Input::Key(Key::Down), 0);
    }
    let sel = m.selected_row(0).unwrap().name.clone();
    let w = names(&m.token_window(0, 40));
    assert!(w.contains(&sel));
    let at = |i: usize| format!("job-{i:04}");
    let s: usize = sel["job-".len()..].parse().unwrap();
    // whichever way the table scrolled, the screen lies within 40 rows of the selection
    assert!(w.contains(&at(s - 39)) && w.contains(&at(s + 39)));
    assert!(!w.contains(&at(s - 40)) && !w.contains(&at(s + 40)));
    assert!(w.contains(&at(0)), "the top rows stay wanted");
    assert_eq!(w.len(), 39 + 79);
}
