//! Rendering: a pure function of (model, now, theme, area). Nothing here blocks or reads a clock.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout as Split, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Sparkline, Table, TableState, Wrap};

use crate::keys::BINDINGS;
use crate::layout::Layout;
use crate::model::{Conn, LockState, Model, Screen};

/// Colours, or none (`NO_COLOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Whether colour is used at all.
    pub color: bool,
}

impl Theme {
    /// Honour `NO_COLOR` (any value disables colour).
    #[must_use]
    pub fn from_env(no_color: Option<&str>) -> Self {
        Theme {
            color: no_color.is_none(),
        }
    }

    /// A foreground colour, or none without colour.
    #[must_use]
    pub fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    /// The colour of a lock state (red for the dangerous ones).
    #[must_use]
    pub fn state(self, s: LockState) -> Style {
        match s {
            LockState::Held => self.fg(Color::Green),
            LockState::Expiring => self.fg(Color::Yellow),
            LockState::ExpiredMaybe | LockState::NoTtl => {
                self.fg(Color::Red).add_modifier(Modifier::BOLD)
            }
            LockState::Free => self.fg(Color::DarkGray),
        }
    }
}

fn secs(ms: i64) -> String {
    if ms >= 60_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1_000) % 60)
    } else {
        format!("{:.1}s", ms as f64 / 1_000.0)
    }
}

/// A TTL bar of `width` cells: filled in proportion to the time left (out of 30 s, or the
/// lock's own observed ttl when longer).
fn ttl_bar(remaining: Option<i64>, observed: Option<i64>, width: usize) -> String {
    match remaining {
        None => "∞".repeat(width.min(1)) + &" ".repeat(width.saturating_sub(1)),
        Some(r) => {
            let full = observed.unwrap_or(30_000).max(30_000) as f64;
            let n = ((r.max(0) as f64 / full) * width as f64).ceil() as usize;
            let n = n.min(width);
            "█".repeat(n) + &"░".repeat(width - n)
        }
    }
}

/// Draw the whole screen.
pub fn render(f: &mut Frame<'_>, m: &Model, now_ms: u64, theme: Theme) {
    let area = f.area();
    let [status, main, bar] = Split::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(status_line(m, now_ms, theme), status);
    match m.screen {
        Screen::Locks => locks(f, m, now_ms, theme, main),
        Screen::Detail => detail(f, m, now_ms, theme, main),
        Screen::Server => server(f, m, main),
        Screen::Events => events(f, m, theme, main),
        Screen::Timeline => timeline(f, m, now_ms, theme, main),
        Screen::Lanes => match &m.sim {
            Some(p) => crate::lanes::render(f, p, m.zoom, theme, main),
            None => f.render_widget(
                Paragraph::new(
                    "no simulation: start with --scenario NAME [--seed N] or --replay '<leasehold sim ... line>'",
                )
                .block(Block::default().borders(Borders::ALL).title("Lanes")),
                main,
            ),
        },
    }
    f.render_widget(command_bar(m), bar);
    if m.help {
        help(f, area);
    }
}

fn status_line(m: &Model, now_ms: u64, theme: Theme) -> Paragraph<'static> {
    let conn = match &m.conn {
        Conn::Connecting => Span::styled("connecting", theme.fg(Color::Yellow)),
        Conn::Up => Span::styled("connected", theme.fg(Color::Green)),
        Conn::Down { error, since_ms } => Span::styled(
            format!(
                "DISCONNECTED {}s ago ({error}); showing last data, reconnecting",
                now_ms.saturating_sub(*since_ms) / 1_000
            ),
            theme.fg(Color::Red),
        ),
    };
    let age = m.observed_ms.map_or("never".into(), |t| {
        format!("{:.1}s ago", now_ms.saturating_sub(t) as f64 / 1_000.0)
    });
    let rtt = m.rtt.map_or("-".into(), |r| format!("{}µs", r.as_micros()));
    let mut spans = vec![
        Span::styled(
            format!(" {} ", m.target),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        conn,
        Span::raw(format!("  rtt {rtt}  refreshed {age}")),
    ];
    if m.frozen {
        spans.push(Span::styled("  FROZEN", theme.fg(Color::Cyan)));
    }
    if let Some(msg) = &m.message {
        spans.push(Span::styled(format!("  {msg}"), theme.fg(Color::Yellow)));
    }
    if !m.filter.is_empty() || m.typing_filter {
        spans.push(Span::raw(format!(
            "  filter: {}{}",
            m.filter,
            if m.typing_filter { "▏" } else { "" }
        )));
    }
    Paragraph::new(Line::from(spans))
}

fn command_bar(m: &Model) -> Paragraph<'static> {
    let mut spans = Vec::new();
    for b in BINDINGS.iter().filter(|b| b.in_bar) {
        spans.push(Span::styled(
            format!(" {} ", b.label),
            Style::default().add_modifier(Modifier::REVERSED),
        ));
        spans.push(Span::raw(format!(
            " {}  ",
            b.help.split(" (").next().unwrap_or(b.help)
        )));
    }
    spans.push(Span::raw(format!("[{}]", m.screen.title())));
    Paragraph::new(Line::from(spans))
}

/// A token that fits `width` cells: consecutive tokens differ in their last digits, so a long one
/// keeps its tail (`…00123`), never its head.
#[must_use]
pub fn fit_token(token: Option<u64>, width: usize) -> String {
    let t = token.map_or("-".to_owned(), |t| t.to_string());
    let n = t.chars().count();
    if n <= width || width < 2 {
        t
    } else {
        format!("…{}", &t[n - (width - 1)..])
    }
}

/// The layout as the Locks screen names it.
#[must_use]
pub fn layout_label(l: Layout) -> &'static str {
    match l {
        Layout::Leasehold => "leasehold",
        Layout::Rueidislock => "rueidis",
        Layout::Plain => "plain",
        Layout::Redisson => "redisson",
    }
}

fn locks(f: &mut Frame<'_>, m: &Model, now_ms: u64, theme: Theme, area: Rect) {
    let stale = m.stale(now_ms);
    let all = m.visible(now_ms);
    // build only the rows that fit: the table keeps the selection in view
    let height = usize::from(area.height.saturating_sub(3)).max(1);
    let selected = m.selected.min(all.len().saturating_sub(1));
    let offset = selected.saturating_sub(height - 1);
    let rows = &all[offset.min(all.len())..(offset + height).min(all.len())];
    let bar_w = if area.width >= 100 { 12 } else { 6 };
    let token_w: usize = if area.width >= 100 { 17 } else { 10 };
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|r| {
            let st = m.state(r, now_ms);
            let rem = m.remaining_ms(r, now_ms);
            let ttl = match (st, rem) {
                (LockState::Free, _) => "-".to_owned(),
                (_, None) => "none".to_owned(),
                (_, Some(ms)) => {
                    format!("{} {}", ttl_bar(Some(ms), r.ttl_ms, bar_w), secs(ms.max(0)))
                }
            };
            let style = if stale {
                theme.fg(Color::DarkGray)
            } else {
                theme.state(st)
            };
            Row::new(vec![
                r.display_name(),
                r.holder.clone().unwrap_or_else(|| "-".into()),
                fit_token(r.token, token_w),
                ttl,
                format!("{}/{}", r.keys_held, r.keys_total),
                r.waiters.map_or("-".into(), |w| w.to_string()),
                m.held_for_ms(r, now_ms)
                    .map_or("-".into(), |ms| secs(i64::try_from(ms).unwrap_or(i64::MAX))),
                layout_label(r.layout).to_owned(),
                st.label().to_owned(),
            ])
            .style(style)
        })
        .collect();
    let widths = [
        Constraint::Min(8),
        Constraint::Min(8),
        Constraint::Length(token_w as u16),
        Constraint::Length(bar_w as u16 + 8),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
    ];
    let title = format!(
        "Locks ({}{}){}",
        all.len(),
        if m.filter.is_empty() {
            String::new()
        } else {
            format!(" matching {:?}", m.filter)
        },
        if stale { " STALE" } else { "" }
    );
    let table = Table::new(table_rows, widths)
        .header(
            Row::new(vec![
                "name", "holder", "token", "ttl", "keys", "wait", "held for", "layout", "state",
            ])
            .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default();
    if !rows.is_empty() {
        state.select(Some(selected - offset));
    }
    f.render_stateful_widget(table, area, &mut state);
}

fn detail(f: &mut Frame<'_>, m: &Model, now_ms: u64, theme: Theme, area: Rect) {
    let Some(r) = m.selected_row(now_ms) else {
        f.render_widget(
            Paragraph::new("no lock selected")
                .block(Block::default().borders(Borders::ALL).title("Detail")),
            area,
        );
        return;
    };
    let st = m.state(r, now_ms);
    let [info, hist, evs] = Split::vertical([
        Constraint::Length(11),
        Constraint::Length(4),
        Constraint::Min(0),
    ])
    .areas(area);
    let lines = vec![
        Line::from(vec![
            Span::raw("name     "),
            Span::styled(
                r.name.clone(),
                Style::default().add_modifier(Modifier::BOLD),
            ),
        ]),
        Line::from(if r.prefix.is_empty() {
            format!("layout   {}", layout_label(r.layout))
        } else {
            format!("layout   {}, prefix {}", layout_label(r.layout), r.prefix)
        }),
        Line::from(format!("holder   {}", r.holder.as_deref().unwrap_or("-"))),
        Line::from(format!(
            "token    {}",
            r.token.map_or("-".into(), |t| t.to_string())
        )),
        Line::from(vec![
            Span::raw("state    "),
            Span::styled(st.label(), theme.state(st)),
        ]),
        Line::from(format!(
            "ttl      {}",
            m.remaining_ms(r, now_ms)
                .map_or("no expiry".into(), |ms| secs(ms.max(0)))
        )),
        Line::from(format!(
            "held for {}",
            m.held_for_ms(r, now_ms)
                .map_or("-".into(), |ms| secs(i64::try_from(ms).unwrap_or(i64::MAX)))
        )),
        Line::from(format!("keys     {} of {} held", r.keys_held, r.keys_total)),
        Line::from(format!(
            "waiters  {}",
            r.waiters
                .map_or("unknown (not visible in Redis)".into(), |w| w.to_string())
        )),
    ];
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title("Detail")),
        info,
    );
    let data: &[u64] = m.ttl_history.get(&r.id()).map_or(&[], Vec::as_slice);
    f.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title("TTL history (observed)"),
            )
            .data(data),
        hist,
    );
    let mine: Vec<Line> = m
        .events
        .iter()
        .filter(|e| e.lock == r.name)
        .rev()
        .take(usize::from(evs.height.saturating_sub(2)))
        .map(|e| {
            Line::from(vec![
                Span::raw(format!("{:>8.1}s ", e.at_ms as f64 / 1_000.0)),
                Span::styled(format!("{:<9}", e.kind), kind_style(theme, &e.kind)),
                Span::raw(e.detail.clone()),
            ])
        })
        .collect();
    f.render_widget(
        Paragraph::new(mine).block(
            Block::default()
                .borders(Borders::ALL)
                .title("Last events (newest first)"),
        ),
        evs,
    );
}

fn server(f: &mut Frame<'_>, m: &Model, area: Rect) {
    let live = m.sim_stats.as_ref().map(|st| {
        vec![
            Line::from(format!(
                "scenario        {} seed {} (live, seed after seed)",
                st.scenario, st.seed
            )),
            Line::from(format!("simulator       {:.0} events/s", st.events_per_sec)),
            Line::from(format!(
                "virtual time    {:.1}s in {:.1}s of wall time (x{:.2})",
                st.virtual_ms as f64 / 1e3,
                st.wall_ms as f64 / 1e3,
                st.virtual_ms as f64 / st.wall_ms.max(1) as f64
            )),
            Line::from(format!(
                "faults active   {}",
                if st.faults_active.is_empty() {
                    "none".to_owned()
                } else {
                    st.faults_active.join(", ")
                }
            )),
        ]
    });
    if let Some(lines) = m.sim.as_ref().map(sim_figures).or(live) {
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(Block::default().borders(Borders::ALL).title("Simulator")),
            area,
        );
        return;
    }
    let text_h = if m.scan.is_some() { 8 } else { 7 };
    let [text, spark] =
        Split::vertical([Constraint::Length(text_h), Constraint::Min(0)]).areas(area);
    let mut lines = vec![
        Line::from(format!("target          {}", m.target)),
        Line::from(format!(
            "connection      {}",
            match &m.conn {
                Conn::Up => "up".into(),
                Conn::Connecting => "connecting".into(),
                Conn::Down { error, .. } => format!("down: {error}"),
            }
        )),
        Line::from(format!("watch mode      {}", m.watch_mode)),
        Line::from(format!(
            "server          {} ops/s, {} keys expired since start",
            m.server_ops.map_or("-".into(), |o| o.to_string()),
            m.expired_keys.map_or("-".into(), |o| o.to_string())
        )),
        Line::from(format!(
            "dashboard cost  {:.0} commands/s (its own reads)",
            m.own_cost_per_sec
        )),
    ];
    if let Some(c) = m.scan {
        #[allow(clippy::cast_precision_loss)]
        let per_key = c.pass_commands as f64 / (c.keys.max(1) as f64);
        lines[4] = Line::from(format!(
            "dashboard cost  {:.0} commands/s of a {} budget (its own reads)",
            m.own_cost_per_sec, c.budget
        ));
        lines.push(Line::from(format!(
            "last pass       {} keys, {} commands ({per_key:.2}/key), {:.1}s; largest reply {} B",
            c.keys,
            c.pass_commands,
            c.pass_ms as f64 / 1_000.0,
            c.largest_reply
        )));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title("Server")),
        text,
    );
    f.render_widget(
        Sparkline::default()
            .block(Block::default().borders(Borders::ALL).title("RTT (µs)"))
            .data(&m.rtt_history),
        spark,
    );
}

/// The simulator's own figures for the Server screen of a replay.
fn sim_figures(p: &crate::lanes::Playback) -> Vec<Line<'static>> {
    let r = &p.rec;
    let per_sec = r.sim_events as f64 * 1_000.0 / r.sim_wall_ms.max(1) as f64;
    let active: Vec<String> = r.faults_at(p.at_ns).map(|f| f.label.clone()).collect();
    let bugs = r.findings.iter().filter(|f| f.bug).count();
    vec![
        Line::from(format!("scenario        {} seed {}", r.scenario, r.seed)),
        Line::from(format!(
            "simulator       {} events in {} ms of wall time ({per_sec:.0} events/s, recorded once)",
            r.sim_events, r.sim_wall_ms
        )),
        Line::from(format!(
            "virtual time    {:.3}s of {:.3}s, played at x{} virtual per wall second{}",
            p.at_ns.saturating_sub(r.start_ns) as f64 / 1e9,
            r.end_ns.saturating_sub(r.start_ns) as f64 / 1e9,
            if p.speed >= 1.0 {
                format!("{:.0}", p.speed)
            } else {
                format!("1/{:.0}", 1.0 / p.speed)
            },
            if p.paused { " (paused)" } else { "" }
        )),
        Line::from(format!(
            "faults active   {}",
            if active.is_empty() {
                "none".to_owned()
            } else {
                active.join(", ")
            }
        )),
        Line::from(format!(
            "run             {} faults injected, {} writes ({} rejected by token), {} findings ({bugs} bugs)",
            r.faults.len(),
            r.writes.len(),
            r.writes.iter().filter(|w| !w.accepted).count(),
            r.findings.len()
        )),
        Line::from(format!("replay          {}", r.replay)),
    ]
}

fn help(f: &mut Frame<'_>, area: Rect) {
    let w = area.width.min(60);
    let h = (BINDINGS.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let lines: Vec<Line> = BINDINGS
        .iter()
        .map(|b| Line::from(format!(" {:<7} {}", b.label, b.help)))
        .collect();
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title("Keys (Esc or ? to close)"),
        ),
        popup,
    );
}

fn kind_style(theme: Theme, kind: &str) -> Style {
    match kind {
        "acquired" => theme.fg(Color::Green),
        "timeout" => theme.fg(Color::Yellow),
        "lost" | "forced" => theme.fg(Color::Red).add_modifier(Modifier::BOLD),
        "fault" => theme.fg(Color::Magenta),
        _ => Style::default(),
    }
}

fn events(f: &mut Frame<'_>, m: &Model, theme: Theme, area: Rect) {
    let all = m.visible_events();
    let height = usize::from(area.height.saturating_sub(2));
    let start = all.len().saturating_sub(height);
    let lines: Vec<Line> = all[start..]
        .iter()
        .map(|e| {
            Line::from(vec![
                Span::raw(format!("{:>8.1}s ", e.at_ms as f64 / 1_000.0)),
                Span::styled(format!("{:<9}", e.kind), kind_style(theme, &e.kind)),
                Span::raw(format!("{:<16} {}", e.lock, e.detail)),
            ])
        })
        .collect();
    let title = format!(
        "Events ({}){}",
        all.len(),
        if m.tail_paused {
            format!(" PAUSED, {} waiting", m.held_back.len())
        } else {
            String::new()
        }
    );
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

/// Per-lock tenures over the last minute (zoom halves or doubles the window): `█` held, `✗` lost,
/// `F` force-released,
/// `!` timeout; injected faults (`*`) on the bottom line.
fn timeline(f: &mut Frame<'_>, m: &Model, now_ms: u64, theme: Theme, area: Rect) {
    let window_ms = (60_000f64 / 2f64.powi(i32::from(m.zoom))) as u64;
    let name_w = 14usize;
    let width = usize::from(area.width.saturating_sub(2))
        .saturating_sub(name_w + 1)
        .max(1);
    let from = now_ms.saturating_sub(window_ms);
    let col = |t: u64| ((t.saturating_sub(from)) as f64 / window_ms as f64 * width as f64) as usize;
    let mut names: Vec<&str> = Vec::new();
    for e in &m.events {
        if !e.lock.is_empty() && !names.contains(&e.lock.as_str()) {
            names.push(&e.lock);
        }
    }
    names.sort_unstable();
    let mut lines = Vec::new();
    for name in names
        .iter()
        .take(usize::from(area.height.saturating_sub(3)))
    {
        let mut cells = vec![' '; width];
        let mut held_since: Option<u64> = None;
        for e in m.events.iter().filter(|e| e.lock == *name) {
            match e.kind.as_str() {
                "acquired" => held_since = Some(e.at_ms),
                "released" | "lost" | "forced" => {
                    if let Some(s) = held_since.take() {
                        for cell in cells
                            .iter_mut()
                            .take(col(e.at_ms).min(width))
                            .skip(col(s.max(from)))
                        {
                            *cell = '█';
                        }
                    }
                    if e.kind != "released" && e.at_ms >= from {
                        cells[col(e.at_ms).min(width - 1)] =
                            if e.kind == "lost" { '✗' } else { 'F' };
                    }
                }
                "timeout" if e.at_ms >= from => cells[col(e.at_ms).min(width - 1)] = '!',
                _ => {}
            }
        }
        if let Some(s) = held_since {
            for cell in cells.iter_mut().skip(col(s.max(from))) {
                *cell = '█';
            }
        }
        lines.push(Line::from(vec![
            Span::raw(format!("{:<w$.w$} ", name, w = name_w)),
            Span::styled(
                cells.into_iter().collect::<String>(),
                theme.fg(Color::Green),
            ),
        ]));
    }
    let mut faults = vec![' '; width];
    for e in m
        .events
        .iter()
        .filter(|e| e.kind == "fault" && e.at_ms >= from)
    {
        faults[col(e.at_ms).min(width - 1)] = '*';
    }
    lines.push(Line::from(vec![
        Span::raw(format!("{:<w$} ", "faults", w = name_w)),
        Span::styled(
            faults.into_iter().collect::<String>(),
            theme.fg(Color::Magenta),
        ),
    ]));
    let title = format!(
        "Timeline (last {:.0}s; +/- zoom, = reset)",
        window_ms as f64 / 1_000.0
    );
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}
