//! What one checked world looks like: layout, clients, fault budgets, time bounds, the
//! properties its fault model promises, and the planted bugs used as negative controls.

use std::time::Duration;

use leasehold_core::{Dialect, LockConfig, SlotLayout};

/// Every property the checker judges (the simulator's, minus liveness, plus the core's late-grant
/// contract).
pub const PROPERTIES: [&str; 8] = [
    "mutual_exclusion",
    "stale_writes_accepted",
    "lost_updates",
    "token_order",
    "misclassified",
    "validity_oracle",
    "stale_extension",
    "late_grant_cleanup",
];

/// A deliberate bug, for negative controls: the checker must find a counterexample for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planted {
    /// The fenced resource accepts any token (the simulator's `NoFencing`).
    NoFencing,
    /// The client trusts its lease from the reply time instead of the send time (the
    /// simulator's `ValidityFromReply`): judged by the validity oracle with the later instant.
    ValidityFromReply,
    /// The server's extend does not compare the value: `ModelServer::pexpire_any` (the
    /// simulator's `ExtendWithoutCompare`).
    ExtendWithoutCompare,
    /// A restarted server's counter starts from zero without the `TIME` floor:
    /// `ModelServer::with_fence(Some(0)).without_time_floor()` (the simulator's `CounterFromZero`).
    CounterFromZero,
    /// A mutant compiled into the core (feature `planted-bugs`).
    #[cfg(feature = "planted-bugs")]
    Core(leasehold_core::planted::Mutant),
}

/// One bounded world to check exhaustively.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Short name for reports.
    pub name: &'static str,
    /// Slot layout of the lock.
    pub layout: SlotLayout,
    /// Number of clients.
    pub clients: usize,
    /// Acquires each client may start.
    pub attempts: u8,
    /// `None`: `try` acquires; `Some(w)`: `wait` acquires with a deadline `w` after the start.
    pub wait: Option<Duration>,
    /// Messages (requests or replies) the network may lose.
    pub drops: u8,
    /// Server restarts without persistence.
    pub restarts: u8,
    /// Operator force-releases (`Op::ForceRelease` of the value stored).
    pub force_releases: u8,
    /// Client pauses (a paused client handles no input, timer or step of its workload).
    pub pauses: u8,
    /// Servers push key-change notifications to waiting and holding clients.
    pub notifications: bool,
    /// Time does not advance beyond `START + horizon`.
    pub horizon: Duration,
    /// Besides jumping to the next deadline, time may advance by this step (so requests can
    /// execute and replies arrive between deadlines). `None`: only deadline instants.
    pub tick: Option<Duration>,
    /// Search no deeper than this many steps (`None`: until the world's bounds end it).
    pub max_depth: Option<usize>,
    /// A planted bug, for negative controls.
    pub planted: Option<Planted>,
    /// The wire dialect (rueidislock's: no fence counter, `PXAT` expiry from the client's
    /// clock, which here is the one true clock).
    pub dialect: Dialect,
    /// Every script run at one instant reads the same `TIME` (independent servers' clocks can
    /// agree to the µs), so grants of one round can carry one token and skip the write-back.
    /// Off: each script reads one µs later per issuing operation so far, as scripts on one Redis
    /// never share a µs, and multi-slot grants differ and are written back.
    pub same_time: bool,
}

impl Setup {
    /// A small world: `clients` clients on `layout`, one `try` acquire each, no faults.
    #[must_use]
    pub fn new(name: &'static str, layout: SlotLayout, clients: usize) -> Self {
        Setup {
            name,
            layout,
            clients,
            attempts: 1,
            wait: None,
            drops: 0,
            restarts: 0,
            force_releases: 0,
            pauses: 0,
            notifications: true,
            horizon: Duration::from_millis(700),
            tick: None,
            max_depth: None,
            planted: None,
            dialect: Dialect::Leasehold,
            same_time: false,
        }
    }

    /// The machines' configuration: small numbers so few deadlines cross every timer.
    #[must_use]
    pub fn lock_config(&self) -> LockConfig {
        LockConfig {
            layout: self.layout,
            ttl: Duration::from_millis(300),
            extend_interval: Some(Duration::from_millis(100)),
            slot_wait: Duration::from_millis(20),
            drift_factor: 0.01,
            drift_margin: Duration::from_millis(2),
            hold_cap: None,
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(40),
            fence_retention: Duration::from_secs(1),
            dialect: self.dialect,
            ..LockConfig::default()
        }
    }

    /// Independent servers: one per instance; key-majority keys share one server.
    #[must_use]
    pub fn servers(&self) -> usize {
        match self.layout {
            SlotLayout::Instances { n } => usize::from(n),
            _ => 1,
        }
    }

    /// The server that holds `slot`.
    #[must_use]
    pub fn server_of(&self, slot: usize) -> usize {
        match self.layout {
            SlotLayout::Instances { .. } => slot,
            _ => 0,
        }
    }

    /// The properties this world's fault model promises (as the simulator's
    /// `SimConfig::promised`): pauses give up mutual exclusion; restarts without persistence
    /// and force-releases give up mutual exclusion and the validity oracle. Message loss and
    /// delay give up nothing.
    #[must_use]
    pub fn promised(&self) -> Vec<&'static str> {
        let mut p: Vec<&'static str> = PROPERTIES.to_vec();
        let mut drop = |name: &str| p.retain(|x| *x != name);
        if self.pauses > 0 {
            drop("mutual_exclusion");
        }
        if self.restarts > 0 || self.force_releases > 0 {
            drop("mutual_exclusion");
            drop("validity_oracle");
        }
        if self.dialect == Dialect::Rueidislock {
            // no fence counter: every lease has token 0 (one true clock, so exclusion and the
            // validity oracle stay promised)
            drop("token_order");
            drop("stale_writes_accepted");
            drop("lost_updates");
        }
        p
    }

    /// Whether a critical section's read and write are separate steps. Where mutual exclusion
    /// is promised (and checked at every acquisition) no other holder can act between them, so
    /// one step (read, write, release) covers every behaviour with fewer interleavings.
    #[must_use]
    pub fn split_sections(&self) -> bool {
        !self.promised().contains(&"mutual_exclusion")
    }

    /// A one-line description of the bounds.
    #[must_use]
    pub fn describe(&self) -> String {
        let mode = match self.wait {
            None => "try".to_owned(),
            Some(w) => format!("wait {}ms", w.as_millis()),
        };
        format!(
            "{:?}{}, {} clients x {} {mode}, drops {}, restarts {}, force-releases {}, pauses {}, notifications {}, horizon {}ms, tick {}{}",
            self.layout,
            if self.dialect == Dialect::Rueidislock {
                " (rueidislock dialect)"
            } else {
                ""
            },
            self.clients,
            self.attempts,
            self.drops,
            self.restarts,
            self.force_releases,
            self.pauses,
            if self.notifications { "on" } else { "off" },
            self.horizon.as_millis(),
            self.tick
                .map_or("off".to_owned(), |t| format!("{}ms", t.as_millis())),
            if self.same_time {
                ", one TIME per instant"
            } else {
                ""
            },
        )
    }
}
