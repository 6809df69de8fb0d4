//! The simulation you can watch fail: a recording of one simulated seed (what each client did
//! over time, every write to the fenced resource, the injected faults, the checker's findings)
//! and its playback (pause, step to the next event, speed, jump between findings), drawn as one
//! lane per client. Pure: the recording is data, the playhead moves with the time passed in.

use std::sync::Arc;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout as Split, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use crate::layout::{Layout, LockRow};
use crate::view::Theme;

/// What a client is doing at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Activity {
    /// Nothing about locks.
    #[default]
    Idle,
    /// Acquiring or backing off.
    Waiting,
    /// Holding, and the servers agree.
    Holding,
    /// Believes it holds, but the servers have let go.
    Believing,
}

/// One client at one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// What it does.
    pub activity: Activity,
    /// Paused (its events deferred: a GC pause).
    pub paused: bool,
    /// Cut off from a server (partition, reset).
    pub cut_off: bool,
}

/// One lock at one sample, for the Locks screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockSample {
    /// Holder client, per the servers.
    pub holder: Option<usize>,
    /// Fence counter.
    pub token: Option<u64>,
    /// Remaining ttl, ms.
    pub ttl_ms: i64,
    /// Slots held / in all.
    pub slots: (u32, u32),
    /// Clients waiting.
    pub waiters: u32,
}

/// A write reaching the fenced resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteTick {
    /// True time, ns.
    pub t_ns: u64,
    /// Writer.
    pub client: usize,
    /// Its token.
    pub token: u64,
    /// Whether the resource accepted it (false: rejected by token).
    pub accepted: bool,
}

/// An injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultMark {
    /// Start, true ns.
    pub t_ns: u64,
    /// End of its direct effect, true ns.
    pub end_ns: u64,
    /// What it is.
    pub label: String,
}

/// A property the checker found broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// True time, ns.
    pub t_ns: u64,
    /// The property.
    pub property: String,
    /// What happened.
    pub detail: String,
    /// A bug (the configuration promised the property) or a finding outside its fault model.
    pub bug: bool,
}

/// A notable event (acquired, released, lost, timeout, fault, write, write_rejected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// True time, ns.
    pub t_ns: u64,
    /// Lock, if about one.
    pub lock: Option<usize>,
    /// Kind.
    pub kind: String,
    /// Who and why.
    pub detail: String,
}

/// One seed, recorded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recording {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// The command that replays it.
    pub replay: String,
    /// First and last instants, true ns.
    pub start_ns: u64,
    /// End.
    pub end_ns: u64,
    /// Time between samples, ns.
    pub step_ns: u64,
    /// `samples[i][c]`: client `c` at `start_ns + i * step_ns`.
    pub samples: Vec<Vec<Sample>>,
    /// `locks[i][l]`: lock `l` at the same instants.
    pub locks: Vec<Vec<LockSample>>,
    /// Writes to the fenced resource.
    pub writes: Vec<WriteTick>,
    /// Faults.
    pub faults: Vec<FaultMark>,
    /// Findings, by time.
    pub findings: Vec<Finding>,
    /// Notable events, by time.
    pub events: Vec<SimEvent>,
    /// Events the simulator processed, and the wall time it took (for the Server screen).
    pub sim_events: u64,
    /// Wall time of the recording, ms.
    pub sim_wall_ms: u64,
}

impl Recording {
    fn index(&self, t_ns: u64) -> usize {
        let i = t_ns.saturating_sub(self.start_ns) / self.step_ns.max(1);
        usize::try_from(i)
            .unwrap_or(usize::MAX)
            .min(self.samples.len().saturating_sub(1))
    }

    /// Clients recorded.
    #[must_use]
    pub fn clients(&self) -> usize {
        self.samples.first().map_or(0, Vec::len)
    }

    /// The locks as the Locks screen lists them at `t_ns`.
    #[must_use]
    pub fn rows_at(&self, t_ns: u64) -> Vec<LockRow> {
        let Some(locks) = self.locks.get(self.index(t_ns)) else {
            return Vec::new();
        };
        locks
            .iter()
            .enumerate()
            .map(|(l, s)| LockRow {
                name: format!("lock{l}"),
                layout: Layout::Leasehold,
                holder: s.holder.map(|c| format!("c{c}")),
                token: s.token,
                ttl_ms: Some(s.ttl_ms),
                keys_held: s.slots.0,
                keys_total: s.slots.1,
                waiters: Some(s.waiters),
                prefix: String::new(),
                held: Vec::new(),
            })
            .collect()
    }

    /// Faults whose effect spans `t_ns`.
    pub fn faults_at(&self, t_ns: u64) -> impl Iterator<Item = &FaultMark> {
        self.faults
            .iter()
            .filter(move |f| f.t_ns <= t_ns && t_ns < f.end_ns.max(f.t_ns + 1))
    }
}

/// Playback of a recording: where, how fast, paused or not.
#[derive(Debug, Clone)]
pub struct Playback {
    /// The recording.
    pub rec: Arc<Recording>,
    /// The playhead, true ns.
    pub at_ns: u64,
    /// Virtual time per wall time.
    pub speed: f64,
    /// Paused.
    pub paused: bool,
    /// The finding shown in the explanation pane (index), once one was reached or jumped to.
    pub finding: Option<usize>,
    last_ms: Option<u64>,
}

impl Playback {
    /// Start at the beginning, at `speed`, playing.
    #[must_use]
    pub fn new(rec: Arc<Recording>, speed: f64) -> Self {
        Playback {
            at_ns: rec.start_ns,
            rec,
            speed: speed.clamp(1.0 / 64.0, 64.0),
            paused: false,
            finding: None,
            last_ms: None,
        }
    }

    /// Move the playhead for the wall time since the last call (none while paused). Stops at
    /// the end. Returns the previous playhead.
    pub fn advance(&mut self, now_ms: u64) -> u64 {
        let before = self.at_ns;
        let dt = now_ms.saturating_sub(self.last_ms.unwrap_or(now_ms));
        self.last_ms = Some(now_ms);
        if !self.paused {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let step = (dt as f64 * 1e6 * self.speed) as u64;
            self.seek(self.at_ns.saturating_add(step));
            if self.at_ns >= self.rec.end_ns {
                self.paused = true;
            }
        }
        before
    }

    fn seek(&mut self, t: u64) {
        self.at_ns = t.clamp(self.rec.start_ns, self.rec.end_ns);
        if let Some(i) = self.rec.findings.iter().rposition(|f| f.t_ns <= self.at_ns) {
            self.finding = Some(i);
        }
    }

    /// Toggle pause.
    pub fn toggle(&mut self) {
        self.paused = !self.paused;
    }

    /// Pause and move to the next notable event (or write) after the playhead.
    pub fn step(&mut self) {
        self.paused = true;
        let next = self
            .rec
            .events
            .iter()
            .map(|e| e.t_ns)
            .find(|t| *t > self.at_ns)
            .unwrap_or(self.rec.end_ns);
        self.seek(next);
    }

    /// Twice as fast (at most x64).
    pub fn faster(&mut self) {
        self.speed = (self.speed * 2.0).min(64.0);
    }

    /// Half as fast (at least x1/64).
    pub fn slower(&mut self) {
        self.speed = (self.speed / 2.0).max(1.0 / 64.0);
    }

    /// Pause at the next finding after the playhead (`forward`) or the previous one before it.
    pub fn jump_finding(&mut self, forward: bool) {
        let f = &self.rec.findings;
        let target = if forward {
            f.iter().position(|x| x.t_ns > self.at_ns)
        } else {
            f.iter().rposition(|x| x.t_ns < self.at_ns)
        };
        if let Some(i) = target {
            self.paused = true;
            self.seek(f[i].t_ns);
            self.finding = Some(i);
        }
    }
}

fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

/// The lanes screen: one lane per client (and its writes), the faults lane, the findings lane,
/// the explanation of the current finding, and a legend.
pub fn render(f: &mut Frame<'_>, p: &Playback, zoom: i8, theme: Theme, area: Rect) {
    let rec = &p.rec;
    let clients = rec.clients();
    let lanes_h = u16::try_from(clients * 2 + 4).unwrap_or(u16::MAX);
    let [lanes, explain, legend] = Split::vertical([
        Constraint::Max(lanes_h),
        Constraint::Min(3),
        Constraint::Length(2),
    ])
    .areas(area);
    let title = format!(
        "Simulation {} seed {}  t {} of {}  x{}{}",
        rec.scenario,
        rec.seed,
        secs(p.at_ns.saturating_sub(rec.start_ns)),
        secs(rec.end_ns.saturating_sub(rec.start_ns)),
        fmt_speed(p.speed),
        if p.paused { "  PAUSED" } else { "" }
    );
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(lanes);
    f.render_widget(block, lanes);
    let label_w: u16 = 9;
    let cols = inner.width.saturating_sub(label_w) as usize;
    if cols > 0 && inner.height > 0 {
        f.render_widget(Paragraph::new(lane_lines(p, zoom, cols, theme)), inner);
    }
    f.render_widget(explanation(p, theme), explain);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled("█", theme.fg(Color::Green)),
                Span::raw(" holds  "),
                Span::styled("▓", theme.fg(Color::Red)),
                Span::raw(" believes it holds (the server let go)  "),
                Span::styled("·", theme.fg(Color::Yellow)),
                Span::raw(" waits  ‖ paused  × cut off"),
            ]),
            Line::from(vec![
                Span::styled("│", theme.fg(Color::Green)),
                Span::raw(" write accepted  "),
                Span::styled("✗", theme.fg(Color::Red)),
                Span::raw(" write rejected by token  * fault  ! finding"),
            ]),
        ]),
        legend,
    );
}

fn fmt_speed(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.0}")
    } else {
        format!("1/{:.0}", 1.0 / s)
    }
}

/// Virtual ns per column: the whole run fits at zoom 0 (at most 20 s shown), `+` zooms in.
fn cell_ns(p: &Playback, zoom: i8, cols: usize) -> u64 {
    let run = p.rec.end_ns.saturating_sub(p.rec.start_ns).max(1);
    let window = run.min(20_000_000_000);
    let scaled = if zoom >= 0 {
        window >> zoom.unsigned_abs().min(16)
    } else {
        window << zoom.unsigned_abs().min(8)
    };
    (scaled / cols.max(1) as u64).max(p.rec.step_ns.max(1))
}

fn lane_lines(p: &Playback, zoom: i8, cols: usize, theme: Theme) -> Vec<Line<'static>> {
    let rec = &p.rec;
    let per = cell_ns(p, zoom, cols);
    // the playhead sits at the right edge; nothing after it has happened yet
    let span = per * cols as u64;
    let t0 = p.at_ns.saturating_sub(span).max(rec.start_ns);
    let col_range = |x: usize| (t0 + per * x as u64, t0 + per * (x as u64 + 1));
    let visible = |x: usize| col_range(x).0 <= p.at_ns;
    let mut out = Vec::new();
    for c in 0..rec.clients() {
        let mut lane = vec![Span::raw(format!("{:<8} ", format!("c{c}")))];
        let mut writes = vec![Span::raw("         ".to_owned())];
        for x in 0..cols {
            if !visible(x) {
                lane.push(Span::raw(" "));
                writes.push(Span::raw(" "));
                continue;
            }
            let (a, b) = col_range(x);
            let (i0, i1) = (rec.index(a), rec.index(b.saturating_sub(1).min(p.at_ns)));
            let mut worst = Sample::default();
            for s in rec.samples[i0..=i1.max(i0)]
                .iter()
                .filter_map(|row| row.get(c))
            {
                worst.activity = worst.activity.max(s.activity);
                worst.paused |= s.paused;
                worst.cut_off |= s.cut_off;
            }
            let (glyph, colour) = match worst.activity {
                Activity::Believing => ("▓", Color::Red),
                Activity::Holding => ("█", Color::Green),
                Activity::Waiting => ("·", Color::Yellow),
                Activity::Idle => (" ", Color::Reset),
            };
            // believing wins: a paused client whose key expired shows ▓, not ‖
            let glyph = if worst.activity == Activity::Believing {
                glyph
            } else if worst.paused {
                "‖"
            } else if worst.cut_off {
                "×"
            } else {
                glyph
            };
            lane.push(Span::styled(glyph, theme.fg(colour)));
            let w: Vec<&WriteTick> = rec
                .writes
                .iter()
                .filter(|w| w.client == c && w.t_ns >= a && w.t_ns < b && w.t_ns <= p.at_ns)
                .collect();
            writes.push(if w.iter().any(|w| !w.accepted) {
                Span::styled("✗", theme.fg(Color::Red).add_modifier(Modifier::BOLD))
            } else if w.is_empty() {
                Span::raw(" ")
            } else {
                Span::styled("│", theme.fg(Color::Green))
            });
        }
        out.push(Line::from(lane));
        out.push(Line::from(writes));
    }
    let mut faults = vec![Span::raw("faults   ")];
    let mut findings = vec![Span::raw("findings ")];
    for x in 0..cols {
        let (a, b) = col_range(x);
        if !visible(x) {
            faults.push(Span::raw(" "));
            findings.push(Span::raw(" "));
            continue;
        }
        let starts = rec.faults.iter().any(|f| f.t_ns >= a && f.t_ns < b);
        let active = rec.faults.iter().any(|f| f.t_ns < b && f.end_ns > a);
        faults.push(if starts {
            Span::styled("*", theme.fg(Color::Magenta))
        } else if active {
            Span::styled("─", theme.fg(Color::Magenta))
        } else {
            Span::raw(" ")
        });
        let here: Vec<&Finding> = rec
            .findings
            .iter()
            .filter(|f| f.t_ns >= a && f.t_ns < b && f.t_ns <= p.at_ns)
            .collect();
        findings.push(if here.iter().any(|f| f.bug) {
            Span::styled("!", theme.fg(Color::Red).add_modifier(Modifier::BOLD))
        } else if here.is_empty() {
            Span::raw(" ")
        } else {
            Span::styled("!", theme.fg(Color::Yellow))
        });
    }
    out.push(Line::from(faults));
    out.push(Line::from(findings));
    out
}

fn explanation(p: &Playback, theme: Theme) -> Paragraph<'static> {
    let rec = &p.rec;
    let active: Vec<String> = rec.faults_at(p.at_ns).map(|f| f.label.clone()).collect();
    let mut lines = Vec::new();
    let title = match p.finding.and_then(|i| rec.findings.get(i).map(|f| (i, f))) {
        Some((i, f)) => {
            let kind = if f.bug {
                Span::styled(
                    "BUG (the configuration promised it)",
                    theme.fg(Color::Red).add_modifier(Modifier::BOLD),
                )
            } else {
                Span::styled("finding outside this fault model", theme.fg(Color::Yellow))
            };
            lines.push(Line::from(vec![
                Span::styled(
                    f.property.clone(),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!(
                    " at {}: ",
                    secs(f.t_ns.saturating_sub(rec.start_ns))
                )),
                kind,
            ]));
            lines.push(Line::from(f.detail.clone()));
            format!("Finding {} of {}", i + 1, rec.findings.len())
        }
        None => {
            lines.push(Line::from(format!(
                "no finding reached yet ({} in this run; ] jumps to the next)",
                rec.findings.len()
            )));
            "Findings".to_owned()
        }
    };
    if !active.is_empty() {
        lines.push(Line::from(format!("faults now: {}", active.join(", "))));
    }
    lines.push(Line::from(format!("replay: {}", rec.replay)));
    Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .block(Block::default().borders(Borders::ALL).title(title))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Recording {
        Recording {
            scenario: "t".into(),
            start_ns: 1_000_000_000,
            end_ns: 2_000_000_000,
            step_ns: 10_000_000,
            samples: vec![vec![Sample::default()]; 101],
            events: vec![
                SimEvent {
                    t_ns: 1_100_000_000,
                    lock: Some(0),
                    kind: "acquired".into(),
                    detail: "c0".into(),
                },
                SimEvent {
                    t_ns: 1_500_000_000,
                    lock: Some(0),
                    kind: "write_rejected".into(),
                    detail: "c0 token 1".into(),
                },
            ],
            findings: vec![
                Finding {
                    t_ns: 1_400_000_000,
                    property: "mutual_exclusion".into(),
                    detail: "x".into(),
                    bug: false,
                },
                Finding {
                    t_ns: 1_700_000_000,
                    property: "stale_writes_accepted".into(),
                    detail: "y".into(),
                    bug: true,
                },
            ],
            ..Recording::default()
        }
    }

    #[test]
    fn playback_moves_with_injected_time_steps_and_jumps() {
        let mut p = Playback::new(Arc::new(rec()), 0.5);
        p.advance(0);
        p.advance(200); // 200 ms wall at x0.5
        assert_eq!(p.at_ns, 1_100_000_000);
        p.toggle();
        p.advance(1_000);
        assert_eq!(p.at_ns, 1_100_000_000, "paused");
        p.step();
        assert_eq!(p.at_ns, 1_500_000_000, "the next event");
        assert_eq!(p.finding, Some(0), "passing a finding shows it");
        p.jump_finding(true);
        assert_eq!((p.at_ns, p.finding), (1_700_000_000, Some(1)));
        p.jump_finding(false);
        assert_eq!((p.at_ns, p.finding), (1_400_000_000, Some(0)));
        p.faster();
        p.faster();
        assert!((p.speed - 2.0).abs() < 1e-9);
        for _ in 0..20 {
            p.slower();
        }
        assert!((p.speed - 1.0 / 64.0).abs() < 1e-12);
        p.toggle();
        p.speed = 64.0;
        p.advance(100_000);
        assert_eq!(p.at_ns, 2_000_000_000, "stops at the end");
        assert!(p.paused);
    }
}
