//! The dashboard's pure model: `update(input, now)` with time passed in. Rendering reads it; the
//! Redis and simulator sources only send it [`Input`]s. No I/O, no clock reads.

use std::time::Duration;

use serde::Serialize;

use crate::keys::{Action, Key, action_for};
use crate::layout::{Layout, LockRow};

/// How a lock looks at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// Held with time to spare.
    Held,
    /// Held, under a second left.
    Expiring,
    /// The countdown ran out but the last refresh still showed the key.
    #[serde(rename = "expired?")]
    ExpiredMaybe,
    /// Held with no expiry at all: a crashed holder would block it forever.
    #[serde(rename = "no TTL!")]
    NoTtl,
    /// Known lock, not held.
    Free,
}

impl LockState {
    /// Label for tables.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            LockState::Held => "held",
            LockState::Expiring => "expiring",
            LockState::ExpiredMaybe => "expired?",
            LockState::NoTtl => "no TTL!",
            LockState::Free => "free",
        }
    }
}

/// The screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The locks table.
    Locks,
    /// One lock.
    Detail,
    /// Tenures over time.
    Timeline,
    /// The event log.
    Events,
    /// Connection and cost.
    Server,
    /// The simulation's lanes (a replay).
    Lanes,
}

impl Screen {
    const ALL: [Screen; 6] = [
        Screen::Locks,
        Screen::Detail,
        Screen::Timeline,
        Screen::Events,
        Screen::Server,
        Screen::Lanes,
    ];

    /// Title.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Screen::Locks => "Locks",
            Screen::Detail => "Detail",
            Screen::Timeline => "Timeline",
            Screen::Events => "Events",
            Screen::Server => "Server",
            Screen::Lanes => "Lanes",
        }
    }
}

/// Sort keys, cycled by `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Least TTL left first (default).
    TtlLeft,
    /// Name.
    Name,
    /// Holder.
    Holder,
}

/// Connection state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    /// Not connected yet.
    Connecting,
    /// Connected.
    Up,
    /// Lost; the view keeps the last data, greyed.
    Down {
        /// What failed.
        error: String,
        /// Since when (ms).
        since_ms: u64,
    },
}

/// One line of the event log (acquires, extensions, releases, timeouts with their reason,
/// losses, injected faults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// When (ms on the caller's clock).
    pub at_ms: u64,
    /// Lock name (empty for faults that concern no lock).
    pub lock: String,
    /// `acquired`, `extended`, `released`, `timeout`, `lost`, `fault`, ...
    pub kind: String,
    /// Who and why.
    pub detail: String,
}

/// Something the model reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A fresh read of the lock keys.
    Snapshot {
        /// The locks.
        rows: Vec<LockRow>,
        /// Commands sent since the previous snapshot.
        commands: u64,
        /// Round trip measured during the read.
        rtt: Duration,
    },
    /// The source lost its connection.
    Disconnected {
        /// What failed.
        error: String,
    },
    /// New event lines.
    Events(Vec<EventLine>),
    /// Server figures (`INFO stats`) and how the source watches.
    Server {
        /// `instantaneous_ops_per_sec`.
        ops_per_sec: u64,
        /// `expired_keys` since the server started.
        expired_keys: u64,
        /// Push (client tracking) or polling.
        mode: String,
    },
    /// A key press.
    Key(Key),
    /// The UI's clock ticked (moves a simulation replay's playhead).
    Tick,
    /// The live simulator's own figures.
    SimStats(SimStats),
    /// What the Redis source's last full pass cost.
    Scan(ScanFigures),
    /// What a force-release did.
    Released {
        /// The lock as it was shown when confirmed.
        row: LockRow,
        /// The outcome.
        outcome: ReleaseOutcome,
    },
}

/// The live simulator's figures, for the Server screen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimStats {
    /// Scenario and seed running.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Events processed per wall second (recent).
    pub events_per_sec: f64,
    /// Virtual time of this seed, ms.
    pub virtual_ms: u64,
    /// Wall time of this seed, ms.
    pub wall_ms: u64,
    /// Faults in effect now.
    pub faults_active: Vec<String>,
}

/// The Redis source's own cost, for the Server screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanFigures {
    /// Lock-related keys known after the last full pass.
    pub keys: usize,
    /// Commands the last full pass sent.
    pub pass_commands: u64,
    /// How long it took (ms).
    pub pass_ms: u64,
    /// Bytes of the largest single reply read so far.
    pub largest_reply: usize,
    /// The budget (commands/s).
    pub budget: u32,
}

/// What a force-release found and did. Only the exact values shown are ever deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// Every shown key still held the shown value and was deleted; for leasehold locks the fence
    /// advanced to `token`, so the evicted holder's writes are rejected.
    Released {
        /// Keys deleted.
        keys: usize,
        /// The fence token after the release (leasehold).
        token: Option<u64>,
    },
    /// A key holds someone else's value now: that key and the ones after it were left alone.
    Changed {
        /// The key.
        key: String,
        /// Who holds it now (as the dashboard shows holders).
        now: String,
        /// Keys released before it (0: nothing was changed).
        released_before: usize,
    },
    /// The keys were already gone (expired or released).
    Gone,
    /// Not attempted, or failed: why.
    Failed(String),
}

/// What the caller should do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    None,
    /// Refresh now.
    Refresh,
    /// Leave.
    Quit,
    /// Force-release this lock (confirmed by the user, `--allow-writes` given).
    ForceRelease(LockRow),
}

/// The confirmation prompt: which lock, under which prefix, held by whom, with which token.
#[must_use]
pub fn confirm_prompt(row: &LockRow) -> String {
    let place = if row.prefix.is_empty() {
        format!("key {}", row.name)
    } else {
        format!("prefix {}", row.prefix)
    };
    format!(
        "force-release {} lock {:?} ({place}) held by {} token {}? y to confirm, any other key cancels",
        crate::view::layout_label(row.layout),
        row.name,
        row.holder.as_deref().unwrap_or("-"),
        row.token.map_or("-".into(), |t| t.to_string()),
    )
}

/// The status line after a force-release, and whether anything was deleted.
fn release_message(row: &LockRow, outcome: &ReleaseOutcome) -> (String, bool) {
    let name = row.display_name();
    let was = row.holder.as_deref().unwrap_or("-");
    match outcome {
        ReleaseOutcome::Released { keys, token } => (
            format!(
                "force-released {name} (was {was}; {keys} key(s){})",
                token.map_or(String::new(), |t| format!(", fence now {t}"))
            ),
            true,
        ),
        ReleaseOutcome::Changed {
            key,
            now,
            released_before: 0,
        } => (
            format!("not released: {name} changed hands ({key} now held by {now}, was {was})"),
            false,
        ),
        ReleaseOutcome::Changed {
            key,
            now,
            released_before,
        } => (
            format!(
                "partly released {name}: {released_before} key(s) deleted, then {key} was held by {now}; left alone"
            ),
            true,
        ),
        ReleaseOutcome::Gone => (format!("not released: {name} was already free"), false),
        ReleaseOutcome::Failed(why) => (format!("force-release of {name} failed: {why}"), false),
    }
}

/// The dashboard state.
#[derive(Debug, Clone)]
pub struct Model {
    /// What is being watched (for the status line).
    pub target: String,
    /// Last rows read.
    pub rows: Vec<LockRow>,
    /// When they were read (ms on the caller's clock).
    pub observed_ms: Option<u64>,
    /// Expected refresh period.
    pub refresh_every: Duration,
    /// Connection state.
    pub conn: Conn,
    /// Last measured round trip.
    pub rtt: Option<Duration>,
    /// Recent RTTs (µs), for the sparkline.
    pub rtt_history: Vec<u64>,
    /// Commands per second the dashboard itself sends (moving estimate).
    pub own_cost_per_sec: f64,
    /// When the last snapshot arrived (ms), for the rate above.
    pub last_snapshot_ms: Option<u64>,
    /// Current screen.
    pub screen: Screen,
    /// Selected row (in the visible order).
    pub selected: usize,
    /// Filter text.
    pub filter: String,
    /// Typing into the filter.
    pub typing_filter: bool,
    /// Sort key and direction.
    pub sort: (SortKey, bool),
    /// Frozen: snapshots are ignored.
    pub frozen: bool,
    /// Help overlay shown.
    pub help: bool,
    /// Events tail paused.
    pub tail_paused: bool,
    /// Timeline zoom level (0 = one minute).
    pub zoom: i8,
    /// Mode of watching, for the Server screen.
    pub watch_mode: String,
    /// The event log (newest last, at most 5,000 lines).
    pub events: std::collections::VecDeque<EventLine>,
    /// Events that arrived while the tail was paused (shown when it resumes).
    pub held_back: Vec<EventLine>,
    /// Server operations per second.
    pub server_ops: Option<u64>,
    /// Keys the server expired since it started.
    pub expired_keys: Option<u64>,
    /// The Redis source's cost figures.
    pub scan: Option<ScanFigures>,
    /// The live simulator's figures (`watch` without Redis).
    pub sim_stats: Option<SimStats>,
    /// A simulation replay (`watch --scenario`/`--replay`).
    pub sim: Option<crate::lanes::Playback>,
    /// Whether `--allow-writes` was given.
    pub allow_writes: bool,
    /// A force-release waiting for `y`.
    pub confirm: Option<LockRow>,
    /// A one-line message for the status line.
    pub message: Option<String>,
    /// When each (lock, holder) was first seen holding (ms), for "held for".
    pub first_seen: std::collections::HashMap<(String, String), u64>,
    /// Observed ttl per lock over recent snapshots (ms, newest last, at most 60).
    pub ttl_history: std::collections::HashMap<String, Vec<u64>>,
}

impl Model {
    /// A model watching `target`, refreshed every `refresh_every`.
    #[must_use]
    pub fn new(target: impl Into<String>, refresh_every: Duration) -> Self {
        Model {
            target: target.into(),
            rows: Vec::new(),
            observed_ms: None,
            refresh_every,
            conn: Conn::Connecting,
            rtt: None,
            rtt_history: Vec::new(),
            own_cost_per_sec: 0.0,
            last_snapshot_ms: None,
            screen: Screen::Locks,
            selected: 0,
            filter: String::new(),
            typing_filter: false,
            sort: (SortKey::TtlLeft, false),
            frozen: false,
            help: false,
            tail_paused: false,
            zoom: 0,
            watch_mode: "SCAN polling".into(),
            events: std::collections::VecDeque::new(),
            held_back: Vec::new(),
            server_ops: None,
            expired_keys: None,
            scan: None,
            sim: None,
            sim_stats: None,
            allow_writes: false,
            confirm: None,
            message: None,
            first_seen: std::collections::HashMap::new(),
            ttl_history: std::collections::HashMap::new(),
        }
    }

    /// Milliseconds left on `row` at `now_ms` (`None`: no expiry).
    #[must_use]
    pub fn remaining_ms(&self, row: &LockRow, now_ms: u64) -> Option<i64> {
        let elapsed = now_ms.saturating_sub(self.observed_ms.unwrap_or(now_ms));
        row.ttl_ms
            .map(|t| t - i64::try_from(elapsed).unwrap_or(i64::MAX))
    }

    /// The state of `row` at `now_ms`.
    #[must_use]
    pub fn state(&self, row: &LockRow, now_ms: u64) -> LockState {
        if row.keys_held == 0 || row.ttl_ms == Some(0) {
            return LockState::Free;
        }
        match self.remaining_ms(row, now_ms) {
            None => LockState::NoTtl,
            Some(r) if r <= 0 => LockState::ExpiredMaybe,
            Some(r) if r < 1_000 => LockState::Expiring,
            Some(_) => LockState::Held,
        }
    }

    /// Whether the data is stale: more than three refresh periods old, or the connection is down.
    #[must_use]
    pub fn stale(&self, now_ms: u64) -> bool {
        let limit = u64::try_from(self.refresh_every.as_millis() * 3).unwrap_or(u64::MAX);
        matches!(self.conn, Conn::Down { .. })
            || self
                .observed_ms
                .is_some_and(|t| now_ms.saturating_sub(t) > limit)
    }

    /// The leasehold locks whose tokens a screen of `rows` lines needs, as (prefix, name): the
    /// first `rows` rows and those within `rows` of the selection (the table scrolls only to keep
    /// the selection in view, so what is on screen always lies inside). The Redis source reads
    /// only their fence counters.
    #[must_use]
    pub fn token_window(
        &self,
        now_ms: u64,
        rows: usize,
    ) -> std::collections::BTreeSet<(String, String)> {
        let v = self.visible(now_ms);
        let near = self.selected.saturating_sub(rows.saturating_sub(1))
            ..self.selected.saturating_add(rows);
        v.iter()
            .enumerate()
            .filter(|(i, r)| (*i < rows || near.contains(i)) && r.layout == Layout::Leasehold)
            .map(|(_, r)| (r.prefix.clone(), r.name.clone()))
            .collect()
    }

    /// Rows after filter and sort, as shown at `_now_ms` (the order does not depend on the time:
    /// every countdown moves by the same amount).
    #[must_use]
    pub fn visible(&self, _now_ms: u64) -> Vec<&LockRow> {
        let f = self.filter.to_lowercase();
        let mut v: Vec<&LockRow> = self
            .rows
            .iter()
            .filter(|r| {
                f.is_empty()
                    || r.name.to_lowercase().contains(&f)
                    || r.holder
                        .as_deref()
                        .is_some_and(|h| h.to_lowercase().contains(&f))
            })
            .collect();
        match self.sort.0 {
            // every row shifts by the same elapsed time, so order by observed ttl (no clones)
            SortKey::TtlLeft => v.sort_unstable_by(|a, b| {
                let key = |r: &LockRow| {
                    (
                        r.keys_held == 0 || r.ttl_ms == Some(0),
                        r.ttl_ms.unwrap_or(i64::MAX),
                    )
                };
                key(a).cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
            }),
            SortKey::Name => v.sort_unstable_by(|a, b| a.name.cmp(&b.name)),
            SortKey::Holder => {
                v.sort_unstable_by(|a, b| a.holder.cmp(&b.holder).then_with(|| a.name.cmp(&b.name)))
            }
        }
        if self.sort.1 {
            v.reverse();
        }
        v
    }

    /// The selected lock, if any.
    #[must_use]
    pub fn selected_row(&self, now_ms: u64) -> Option<&LockRow> {
        self.visible(now_ms).get(self.selected).copied()
    }

    /// Apply one input at `now_ms`.
    pub fn update(&mut self, input: Input, now_ms: u64) -> Effect {
        match input {
            Input::Snapshot {
                rows,
                commands,
                rtt,
            } => {
                self.conn = Conn::Up;
                self.rtt = Some(rtt);
                self.rtt_history
                    .push(u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX));
                if self.rtt_history.len() > 120 {
                    self.rtt_history.remove(0);
                }
                // commands since the previous snapshot, over the time since then
                let period = match self.last_snapshot_ms {
                    Some(t) if now_ms > t => (now_ms - t) as f64 / 1_000.0,
                    _ => self.refresh_every.as_secs_f64().max(0.001),
                };
                self.last_snapshot_ms = Some(now_ms);
                self.own_cost_per_sec = commands as f64 / period;
                if !self.frozen {
                    self.note_tenures(&rows, now_ms);
                    self.rows = rows;
                    self.observed_ms = Some(now_ms);
                }
                Effect::None
            }
            Input::Disconnected { error } => {
                if !matches!(self.conn, Conn::Down { .. }) {
                    self.conn = Conn::Down {
                        error,
                        since_ms: now_ms,
                    };
                }
                Effect::None
            }
            Input::Events(lines) => {
                if self.tail_paused {
                    self.held_back.extend(lines);
                } else {
                    self.push_events(lines);
                }
                Effect::None
            }
            Input::Server {
                ops_per_sec,
                expired_keys,
                mode,
            } => {
                self.server_ops = Some(ops_per_sec);
                self.expired_keys = Some(expired_keys);
                self.watch_mode = mode;
                Effect::None
            }
            Input::Key(k) => self.key(k, now_ms),
            Input::Scan(f) => {
                self.scan = Some(f);
                Effect::None
            }
            Input::SimStats(st) => {
                self.sim_stats = Some(st);
                Effect::None
            }
            Input::Tick => {
                self.play(now_ms, |_| ());
                Effect::None
            }
            Input::Released { row, outcome } => {
                let (text, forced) = release_message(&row, &outcome);
                if forced {
                    self.push_events(vec![EventLine {
                        at_ms: now_ms,
                        lock: row.name.clone(),
                        kind: "forced".into(),
                        detail: text.clone(),
                    }]);
                }
                self.message = Some(text);
                Effect::Refresh
            }
        }
    }

    /// Watch a recorded simulation: the Lanes screen, playing from the start at `speed`.
    pub fn replay(
        &mut self,
        rec: std::sync::Arc<crate::lanes::Recording>,
        speed: f64,
        now_ms: u64,
    ) {
        self.sim = Some(crate::lanes::Playback::new(rec, speed));
        self.screen = Screen::Lanes;
        self.conn = Conn::Up;
        self.watch_mode = "simulator replay (no Redis)".into();
        self.play(now_ms, |_| ());
    }

    /// Apply `f` to the playback, move it to `now_ms`, and show the locks and events up to the
    /// playhead. No-op without a replay.
    fn play(&mut self, now_ms: u64, f: impl FnOnce(&mut crate::lanes::Playback)) {
        let Some(mut p) = self.sim.take() else {
            return;
        };
        let before = p.at_ns;
        f(&mut p);
        p.advance(now_ms);
        let to = p.at_ns;
        // events after the previous playhead; after a jump back, the log as of the new one
        let lo = if to < before {
            self.events.clear();
            p.rec.start_ns.saturating_sub(1)
        } else {
            before
        };
        let ms_ago = |t: u64| now_ms.saturating_sub(to.saturating_sub(t) / 1_000_000);
        let lines: Vec<EventLine> = p
            .rec
            .events
            .iter()
            .filter(|e| e.t_ns > lo && e.t_ns <= to)
            .map(|e| EventLine {
                at_ms: ms_ago(e.t_ns),
                lock: e.lock.map(|l| format!("lock{l}")).unwrap_or_default(),
                kind: e.kind.clone(),
                detail: e.detail.clone(),
            })
            .collect();
        self.push_events(lines);
        if !self.frozen {
            let rows = p.rec.rows_at(to);
            self.note_tenures(&rows, now_ms);
            self.rows = rows;
            self.observed_ms = Some(now_ms);
        }
        self.sim = Some(p);
    }

    /// How long the current holder of `row` has held it, as far as this dashboard has seen.
    #[must_use]
    pub fn held_for_ms(&self, row: &LockRow, now_ms: u64) -> Option<u64> {
        let holder = row.holder.as_ref()?;
        if row.keys_held == 0 {
            return None;
        }
        self.first_seen
            .get(&(row.id(), holder.clone()))
            .map(|t| now_ms.saturating_sub(*t))
    }

    fn note_tenures(&mut self, rows: &[LockRow], now_ms: u64) {
        let mut live = std::collections::HashSet::new();
        for r in rows {
            if let (Some(h), true) = (&r.holder, r.keys_held > 0) {
                let k = (r.id(), h.clone());
                self.first_seen.entry(k.clone()).or_insert(now_ms);
                live.insert(k);
            }
            let hist = self.ttl_history.entry(r.id()).or_default();
            hist.push(u64::try_from(r.ttl_ms.unwrap_or(0).max(0)).unwrap_or(0));
            if hist.len() > 60 {
                hist.remove(0);
            }
        }
        self.first_seen.retain(|k, _| live.contains(k));
        if self.ttl_history.len() > 20_000 {
            let ids: std::collections::HashSet<String> = rows.iter().map(LockRow::id).collect();
            self.ttl_history.retain(|k, _| ids.contains(k));
        }
    }

    fn push_events(&mut self, lines: Vec<EventLine>) {
        for l in lines {
            self.events.push_back(l);
            if self.events.len() > 5_000 {
                self.events.pop_front();
            }
        }
    }

    /// Event lines matching the filter, oldest first.
    #[must_use]
    pub fn visible_events(&self) -> Vec<&EventLine> {
        let f = self.filter.to_lowercase();
        self.events
            .iter()
            .filter(|e| {
                f.is_empty()
                    || e.lock.to_lowercase().contains(&f)
                    || e.detail.to_lowercase().contains(&f)
                    || e.kind.contains(&f)
            })
            .collect()
    }

    fn key(&mut self, k: Key, now_ms: u64) -> Effect {
        if self.typing_filter {
            match k {
                Key::Enter | Key::Esc => self.typing_filter = false,
                Key::Backspace => {
                    self.filter.pop();
                }
                Key::Char(c) => self.filter.push(c),
                Key::CtrlC => return Effect::Quit,
                _ => {}
            }
            self.selected = 0;
            return Effect::None;
        }
        if let Some(row) = self.confirm.take() {
            return match k {
                Key::Char('y') => {
                    self.message = Some(format!("force-releasing {} …", row.display_name()));
                    Effect::ForceRelease(row)
                }
                _ => {
                    self.message = Some("force-release cancelled".into());
                    Effect::None
                }
            };
        }
        let Some(action) = action_for(k) else {
            return Effect::None;
        };
        let n = self.visible(now_ms).len();
        match action {
            Action::Quit => return Effect::Quit,
            Action::Help => self.help = !self.help,
            Action::Filter => self.typing_filter = true,
            Action::Down => self.selected = (self.selected + 1).min(n.saturating_sub(1)),
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::First => self.selected = 0,
            Action::Last => self.selected = n.saturating_sub(1),
            Action::Open => self.screen = Screen::Detail,
            Action::Back => {
                if self.help {
                    self.help = false;
                } else if !self.filter.is_empty() {
                    self.filter.clear();
                } else {
                    self.screen = Screen::Locks;
                }
            }
            Action::NextScreen => {
                let i = Screen::ALL
                    .iter()
                    .position(|s| *s == self.screen)
                    .unwrap_or(0);
                self.screen = Screen::ALL[(i + 1) % Screen::ALL.len()];
                if self.screen == Screen::Lanes && self.sim.is_none() {
                    self.screen = Screen::Locks; // lanes only in a replay
                }
            }
            Action::Screen(d) => {
                if let Some(s) = Screen::ALL.get(usize::from(d.saturating_sub(1))) {
                    self.screen = *s;
                }
            }
            Action::Sort => {
                self.sort.0 = match self.sort.0 {
                    SortKey::TtlLeft => SortKey::Name,
                    SortKey::Name => SortKey::Holder,
                    SortKey::Holder => SortKey::TtlLeft,
                }
            }
            Action::SortReverse => self.sort.1 = !self.sort.1,
            Action::Freeze => self.frozen = !self.frozen,
            Action::StepEvent => self.play(now_ms, crate::lanes::Playback::step),
            Action::Speed(true) => self.play(now_ms, crate::lanes::Playback::faster),
            Action::Speed(false) => self.play(now_ms, crate::lanes::Playback::slower),
            Action::Finding(next) => self.play(now_ms, |p| p.jump_finding(next)),
            Action::PauseTail if self.sim.is_some() => {
                self.play(now_ms, crate::lanes::Playback::toggle);
            }
            Action::PauseTail => {
                self.tail_paused = !self.tail_paused;
                if !self.tail_paused {
                    let lines = std::mem::take(&mut self.held_back);
                    self.push_events(lines);
                }
            }
            Action::Zoom(0) => self.zoom = 0,
            Action::Zoom(d) => self.zoom = (self.zoom + d).clamp(-2, 4),
            Action::Refresh => return Effect::Refresh,
            Action::ForceRelease => {
                if !self.allow_writes {
                    self.message =
                        Some("read-only: start with --allow-writes to force-release".into());
                } else if let Some(row) = self.selected_row(now_ms).cloned() {
                    if row.held.is_empty() {
                        self.message = Some(format!("{} is not held", row.display_name()));
                    } else {
                        self.message = Some(confirm_prompt(&row));
                        self.confirm = Some(row);
                    }
                }
            }
        }
        Effect::None
    }
}
