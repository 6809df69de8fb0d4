//! Keybindings as data: one table feeds the command bar, the `?` help overlay and the dispatcher.

/// A key, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Tab.
    Tab,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Backspace.
    Backspace,
    /// Ctrl-C.
    CtrlC,
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the dashboard.
    Quit,
    /// Toggle the help overlay.
    Help,
    /// Start typing a filter.
    Filter,
    /// Move the selection down.
    Down,
    /// Move the selection up.
    Up,
    /// Jump to the first row.
    First,
    /// Jump to the last row.
    Last,
    /// Open the selected lock.
    Open,
    /// Go back.
    Back,
    /// Next screen.
    NextScreen,
    /// Screen by number (1-5).
    Screen(u8),
    /// Next sort key.
    Sort,
    /// Reverse the sort.
    SortReverse,
    /// Freeze the view.
    Freeze,
    /// Pause the events tail.
    PauseTail,
    /// Zoom the timeline: in (`1`), out (`-1`), reset (`0`).
    Zoom(i8),
    /// Refresh now.
    Refresh,
    /// Force-release the selected lock (only with `--allow-writes`; asks to confirm).
    ForceRelease,
    /// Simulation: pause at the next event.
    StepEvent,
    /// Simulation: double (`true`) or half (`false`) speed.
    Speed(bool),
    /// Simulation: jump to the next (`true`) or previous (`false`) finding.
    Finding(bool),
}

/// One binding: the keys, the action, its help text, and whether the command bar shows it.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// Keys as shown to the user.
    pub label: &'static str,
    /// The keys that trigger it.
    pub keys: &'static [Key],
    /// What it does.
    pub action: Action,
    /// Help text.
    pub help: &'static str,
    /// Shown in the command bar.
    pub in_bar: bool,
}

use Key::Char as C;

/// Every binding.
pub const BINDINGS: &[Binding] = &[
    Binding {
        label: "q",
        keys: &[C('q'), Key::CtrlC],
        action: Action::Quit,
        help: "quit (also Ctrl-c)",
        in_bar: true,
    },
    Binding {
        label: "?",
        keys: &[C('?')],
        action: Action::Help,
        help: "help",
        in_bar: true,
    },
    Binding {
        label: "/",
        keys: &[C('/')],
        action: Action::Filter,
        help: "filter by name or holder",
        in_bar: true,
    },
    Binding {
        label: "j/↓",
        keys: &[C('j'), Key::Down],
        action: Action::Down,
        help: "next lock",
        in_bar: false,
    },
    Binding {
        label: "k/↑",
        keys: &[C('k'), Key::Up],
        action: Action::Up,
        help: "previous lock",
        in_bar: false,
    },
    Binding {
        label: "g",
        keys: &[C('g')],
        action: Action::First,
        help: "first lock",
        in_bar: false,
    },
    Binding {
        label: "G",
        keys: &[C('G')],
        action: Action::Last,
        help: "last lock",
        in_bar: false,
    },
    Binding {
        label: "Enter",
        keys: &[Key::Enter],
        action: Action::Open,
        help: "lock detail",
        in_bar: true,
    },
    Binding {
        label: "Esc",
        keys: &[Key::Esc],
        action: Action::Back,
        help: "back / close",
        in_bar: false,
    },
    Binding {
        label: "Tab",
        keys: &[Key::Tab],
        action: Action::NextScreen,
        help: "next screen",
        in_bar: true,
    },
    Binding {
        label: "1-6",
        keys: &[C('1'), C('2'), C('3'), C('4'), C('5'), C('6')],
        action: Action::Screen(0),
        help: "locks, detail, timeline, events, server, lanes",
        in_bar: false,
    },
    Binding {
        label: "s",
        keys: &[C('s')],
        action: Action::Sort,
        help: "next sort column",
        in_bar: true,
    },
    Binding {
        label: "S",
        keys: &[C('S')],
        action: Action::SortReverse,
        help: "reverse sort",
        in_bar: false,
    },
    Binding {
        label: "f",
        keys: &[C('f')],
        action: Action::Freeze,
        help: "freeze the view",
        in_bar: true,
    },
    Binding {
        label: "space",
        keys: &[C(' ')],
        action: Action::PauseTail,
        help: "pause the events tail (a replay: the simulation)",
        in_bar: false,
    },
    Binding {
        label: "+ - =",
        keys: &[C('+'), C('-'), C('=')],
        action: Action::Zoom(0),
        help: "zoom in / out / reset (timeline, lanes)",
        in_bar: false,
    },
    Binding {
        label: "r",
        keys: &[C('r')],
        action: Action::Refresh,
        help: "refresh now",
        in_bar: true,
    },
    Binding {
        label: "X",
        keys: &[C('X')],
        action: Action::ForceRelease,
        help: "force-release the selected lock (--allow-writes)",
        in_bar: false,
    },
    Binding {
        label: ".",
        keys: &[C('.')],
        action: Action::StepEvent,
        help: "simulation: pause at the next event",
        in_bar: false,
    },
    Binding {
        label: "< >",
        keys: &[C('<'), C('>')],
        action: Action::Speed(true),
        help: "simulation: half / double speed",
        in_bar: false,
    },
    Binding {
        label: "[ ]",
        keys: &[C('['), C(']')],
        action: Action::Finding(true),
        help: "simulation: previous / next finding",
        in_bar: false,
    },
];

/// The action bound to `key`, if any.
#[must_use]
pub fn action_for(key: Key) -> Option<Action> {
    for b in BINDINGS {
        if b.keys.contains(&key) {
            match (b.action, key) {
                (Action::Screen(_), Key::Char(c)) => {
                    return c
                        .to_digit(10)
                        .and_then(|d| u8::try_from(d).ok())
                        .map(Action::Screen);
                }
                (Action::Zoom(_), Key::Char(c)) => {
                    return Some(Action::Zoom(match c {
                        '+' => 1,
                        '-' => -1,
                        _ => 0,
                    }));
                }
                (Action::Speed(_), Key::Char(c)) => return Some(Action::Speed(c == '>')),
                (Action::Finding(_), Key::Char(c)) => return Some(Action::Finding(c == ']')),
                _ => {}
            }
            return Some(b.action);
        }
    }
    None
}
