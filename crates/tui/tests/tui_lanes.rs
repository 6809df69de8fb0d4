//! The simulation you can watch fail: a recorded gc-pause seed shows a paused client believing
//! it holds while another holds, the fence rejecting the stale write, and the finding; the lanes
//! screen at fixed sizes (insta), driven by keys with time injected.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use leasehold_sim::{Overrides, config_for};
use leasehold_tui::keys::Key;
use leasehold_tui::lanes::{Activity, Recording};
use leasehold_tui::model::{Input, Model, Screen};
use leasehold_tui::source::sim::record;
use leasehold_tui::view::{Theme, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// A seed of gc-pause where a client believes it holds (paused, its key expired) while another
/// holds the same lock, and the resource rejects one of its writes by token.
fn kleppmann() -> Recording {
    for seed in 0..300 {
        let cfg = config_for("gc-pause", seed, &Overrides::default()).unwrap();
        let rec = record(&cfg, seed).unwrap();
        let overlap = rec.samples.iter().any(|row| {
            row.iter()
                .any(|s| s.activity == Activity::Believing && s.paused)
                && row.iter().any(|s| s.activity == Activity::Holding)
        });
        let rejected = rec.writes.iter().any(|w| !w.accepted);
        let exclusion = rec
            .findings
            .iter()
            .any(|f| f.property == "mutual_exclusion");
        if overlap && rejected && exclusion {
            eprintln!("gc-pause seed {seed}: {}", rec.replay);
            return rec;
        }
    }
    panic!("no gc-pause seed in 0..300 shows a paused believer, a rejected write and the finding");
}

#[test]
fn a_gc_pause_makes_two_clients_believe_and_the_fence_rejects_the_stale_write() {
    let rec = kleppmann();
    let believer = rec
        .samples
        .iter()
        .position(|row| row.iter().any(|s| s.activity == Activity::Believing))
        .unwrap();
    let first_reject = rec.writes.iter().find(|w| !w.accepted).unwrap();
    let believer_t = rec.start_ns + believer as u64 * rec.step_ns;
    assert!(
        first_reject.t_ns >= believer_t,
        "the rejected write comes from a client that believed too long"
    );
    assert!(!rec.faults.is_empty() && rec.faults.iter().any(|f| f.label.starts_with("Pause")));
    let f = rec
        .findings
        .iter()
        .find(|f| f.property == "mutual_exclusion")
        .unwrap();
    assert!(
        !f.bug,
        "gc-pause does not promise mutual exclusion: a finding, not a bug"
    );
}

fn draw(m: &Model, w: u16, h: u16, now: u64) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| render(f, m, now, Theme { color: true }))
        .unwrap();
    term
}

fn text(term: &Terminal<TestBackend>) -> String {
    let buf = term.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn keys_step_jump_and_change_speed_with_time_injected() {
    let rec = Arc::new(kleppmann());
    let mut m = Model::new("simulator", std::time::Duration::from_millis(200));
    m.replay(rec.clone(), 1.0, 0);
    assert_eq!(m.screen, Screen::Lanes);
    m.update(Input::Tick, 500);
    let at = m.sim.as_ref().unwrap().at_ns;
    assert_eq!(at, rec.start_ns + 500_000_000, "x1: 500 ms of wall time");
    m.update(Input::Key(Key::Char(' ')), 500);
    m.update(Input::Tick, 5_000);
    assert_eq!(m.sim.as_ref().unwrap().at_ns, at, "paused");
    m.update(Input::Key(Key::Char('.')), 5_000);
    let stepped = m.sim.as_ref().unwrap().at_ns;
    assert_eq!(
        stepped,
        rec.events.iter().map(|e| e.t_ns).find(|t| *t > at).unwrap(),
        "the next event"
    );
    assert!(
        !m.events.is_empty(),
        "the Events screen follows the playhead"
    );
    m.update(Input::Key(Key::Char(']')), 5_000);
    let p = m.sim.as_ref().unwrap();
    let i = p.finding.unwrap();
    assert_eq!(p.at_ns, rec.findings[i].t_ns);
    let term = draw(&m, 120, 40, 5_000);
    let screen = text(&term);
    assert!(
        screen.contains(&format!("Finding {} of {}", i + 1, rec.findings.len()))
            && screen.contains(&rec.findings[i].property),
        "{screen}"
    );
    m.update(Input::Key(Key::Char('>')), 5_000);
    m.update(Input::Key(Key::Char('>')), 5_000);
    assert!((m.sim.as_ref().unwrap().speed - 4.0).abs() < 1e-9);
    m.update(Input::Key(Key::Char('[')), 5_000);
    // the Server screen shows the simulator's figures, not an RTT chart
    m.update(Input::Key(Key::Char('5')), 5_000);
    let screen = text(&draw(&m, 100, 20, 5_000));
    assert!(
        screen.contains("events/s") && screen.contains("virtual"),
        "{screen}"
    );
}

/// A hand-made recording of Kleppmann's pause, so the snapshots do not move with the simulator:
/// c0 holds from 1 s, is paused 3–6 s, its key expires at 4 s (it believes it holds until 6.5 s),
/// c1 acquires at 4.2 s; c0's write at 6.3 s is rejected by token.
fn story() -> Recording {
    use leasehold_tui::lanes::{FaultMark, Finding, LockSample, Sample, SimEvent, WriteTick};
    let s = 1_000_000_000u64;
    let step = 100_000_000u64;
    let n = 101;
    let at = |i: usize| s + i as u64 * step;
    let sec = |x: f64| s + (x * 1e9) as u64;
    let mut samples = Vec::new();
    let mut locks = Vec::new();
    for i in 0..n {
        let t = at(i);
        let c0 = Sample {
            activity: if t < sec(1.0) {
                Activity::Waiting
            } else if t < sec(4.0) {
                Activity::Holding
            } else if t < sec(6.5) {
                Activity::Believing
            } else {
                Activity::Idle
            },
            paused: t >= sec(3.0) && t < sec(6.0),
            cut_off: false,
        };
        let c1 = Sample {
            activity: if t < sec(0.5) {
                Activity::Idle
            } else if t < sec(4.2) {
                Activity::Waiting
            } else if t < sec(7.0) {
                Activity::Holding
            } else {
                Activity::Idle
            },
            paused: false,
            cut_off: false,
        };
        samples.push(vec![c0, c1, Sample::default()]);
        let holder = if t >= sec(1.0) && t < sec(4.0) {
            Some(0)
        } else if t >= sec(4.2) && t < sec(7.0) {
            Some(1)
        } else {
            None
        };
        locks.push(vec![LockSample {
            holder,
            token: Some(if t < sec(4.2) { 7 } else { 8 }),
            ttl_ms: if holder.is_some() { 2_000 } else { 0 },
            slots: (u32::from(holder.is_some()), 1),
            waiters: u32::from(t < sec(4.2)),
        }]);
    }
    let ev = |t: f64, kind: &str, detail: &str| SimEvent {
        t_ns: sec(t),
        lock: Some(0),
        kind: kind.into(),
        detail: detail.into(),
    };
    Recording {
        scenario: "gc-pause".into(),
        seed: 471,
        replay: "leasehold sim --scenario gc-pause --seed 471 --clients 3 --locks 1 --duration 10s"
            .into(),
        start_ns: s,
        end_ns: at(n - 1),
        step_ns: step,
        samples,
        locks,
        writes: vec![
            WriteTick {
                t_ns: sec(2.0),
                client: 0,
                token: 7,
                accepted: true,
            },
            WriteTick {
                t_ns: sec(5.0),
                client: 1,
                token: 8,
                accepted: true,
            },
            WriteTick {
                t_ns: sec(6.3),
                client: 0,
                token: 7,
                accepted: false,
            },
        ],
        faults: vec![FaultMark {
            t_ns: sec(3.0),
            end_ns: sec(6.0),
            label: "Pause { c: 0, len: 3s }".into(),
        }],
        findings: vec![Finding {
            t_ns: sec(4.2),
            property: "mutual_exclusion".into(),
            detail: "lock 0: clients 0 and 1 both believed they held it from 4.200s to 6.500s (c0 was paused while its key expired)".into(),
            bug: false,
        }],
        events: vec![
            ev(1.0, "acquired", "c0 token 7"),
            ev(2.0, "write", "c0 token 7"),
            ev(3.0, "fault", "Pause { c: 0, len: 3s }"),
            ev(4.2, "acquired", "c1 token 8"),
            ev(5.0, "write", "c1 token 8"),
            ev(6.3, "write_rejected", "c0 token 7"),
            ev(6.5, "lost", "c0: expired locally"),
        ],
        sim_events: 12_345,
        sim_wall_ms: 3,
    }
}

#[test]
fn lanes_screen_at_three_sizes() {
    for (w, h) in [(80u16, 24u16), (120, 40), (40, 12)] {
        let mut m = Model::new(
            "simulator: gc-pause seed 471",
            std::time::Duration::from_millis(200),
        );
        m.replay(Arc::new(story()), 1.0, 0);
        m.update(Input::Tick, 7_000); // 7 s in, at x1
        let term = draw(&m, w, h, 7_000);
        insta::assert_snapshot!(format!("lanes_{w}x{h}"), term.backend());
    }
}

#[test]
fn believing_is_red_and_a_rejected_write_is_a_red_cross() {
    use ratatui::style::Color;
    let mut m = Model::new("simulator", std::time::Duration::from_millis(200));
    m.replay(Arc::new(story()), 1.0, 0);
    m.update(Input::Tick, 7_000);
    let term = draw(&m, 120, 40, 7_000);
    let buf = term.backend().buffer();
    let cells: Vec<(String, Color)> = (0..buf.area.height)
        .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
        .map(|(x, y)| (buf[(x, y)].symbol().to_owned(), buf[(x, y)].fg))
        .collect();
    assert!(cells.iter().any(|(s, c)| s == "▓" && *c == Color::Red));
    assert!(cells.iter().any(|(s, c)| s == "✗" && *c == Color::Red));
    assert!(cells.iter().any(|(s, c)| s == "█" && *c == Color::Green));
    assert!(cells.iter().any(|(s, _)| s == "‖"), "the pause");
}

#[test]
fn the_live_simulator_server_screen_shows_its_own_figures() {
    let mut m = Model::new(
        "simulator: calm (live)",
        std::time::Duration::from_millis(100),
    );
    m.update(
        Input::SimStats(leasehold_tui::model::SimStats {
            scenario: "calm".into(),
            seed: 3,
            events_per_sec: 41_000.0,
            virtual_ms: 12_500,
            wall_ms: 12_600,
            faults_active: vec!["Pause { c: 1, len: 2s }".into()],
        }),
        0,
    );
    m.update(Input::Key(Key::Char('5')), 0);
    let screen = text(&draw(&m, 100, 12, 0));
    for part in [
        "calm seed 3",
        "41000 events/s",
        "12.5s in 12.6s of wall time",
        "Pause { c: 1, len: 2s }",
    ] {
        assert!(screen.contains(part), "{part:?} missing:\n{screen}");
    }
    assert!(!screen.contains("RTT"), "no empty RTT chart:\n{screen}");
}
