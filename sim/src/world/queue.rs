//! The event queue: what happens next, in true time, ties broken by insertion order.
//!
//! **Invariant:** events pop in `(time, sequence)` order and nothing else orders them, so one
//! seed gives one order. The events' `Debug` spelling is part of the trace (`--trace`) and of
//! its byte-for-byte identity across versions: rename nothing here without meaning to.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use leasehold_core::testkit::ModelServer;
use leasehold_core::{Command, Reply, RequestId};

/// A message from a server to a client.
#[derive(Debug, Clone)]
pub(super) enum Msg {
    Reply(RequestId, Reply),
    Invalidate(usize),
}

/// One scheduled event. `c` client, `s` server, `l` lock, `epoch` the link's (or replication's)
/// epoch when it was sent: a message from an older epoch was lost to a reset.
#[derive(Debug, Clone)]
pub(super) enum Ev {
    Wake {
        c: u32,
        l: u32,
        generation: u32,
    },
    Think {
        c: u32,
    },
    Transmit {
        c: u32,
        generation: u32,
    },
    Arrive {
        c: u32,
        s: u32,
        l: u32,
        epoch: u32,
        cmd: Command,
    },
    Exec {
        c: u32,
        s: u32,
        l: u32,
        cmd: Command,
        epoch: u32,
    },
    /// Acquires of one round for several slots on one server, sent as one script
    /// ([`leasehold_core::wire::batch`]).
    ArriveBatch {
        c: u32,
        s: u32,
        l: u32,
        epoch: u32,
        cmds: Vec<Command>,
    },
    ExecBatch {
        c: u32,
        s: u32,
        l: u32,
        cmds: Vec<Command>,
        epoch: u32,
    },
    ToClient {
        c: u32,
        s: u32,
        l: u32,
        epoch: u32,
        msg: Msg,
    },
    WriteArrive {
        l: u32,
        c: u32,
        token: u64,
        acquired_at: u64,
        /// The counter value the critical section read (it writes `read + 1`).
        read: u64,
    },
    ReadArrive {
        l: u32,
        c: u32,
        token: u64,
        generation: u32,
    },
    ReadReply {
        c: u32,
        generation: u32,
        value: Option<u64>,
    },
    ExpireCheck {
        s: u32,
        key: u32,
    },
    Replicate {
        s: u32,
        key: u32,
        state: ModelServer,
        epoch: u32,
    },
    Fault(u32),
    Heal(u32),
    Reconnect {
        c: u32,
        s: u32,
    },
    /// A blocked `WAIT` on server `s` (its waiter `id`) times out.
    WaitTimeout {
        s: u32,
        id: u32,
    },
}

impl Ev {
    /// The client whose process runs this event (deferred while it is paused).
    pub(super) fn client(&self) -> Option<usize> {
        match self {
            Ev::Wake { c, .. } | Ev::Think { c } | Ev::Transmit { c, .. } => Some(*c as usize),
            Ev::ToClient { c, .. } | Ev::ReadReply { c, .. } => Some(*c as usize),
            _ => None,
        }
    }

    /// The event's kind as a number, for the trace hash.
    pub(super) fn tag(&self) -> u64 {
        match self {
            Ev::Wake { .. } => 1,
            Ev::Think { .. } => 2,
            Ev::Transmit { .. } => 3,
            Ev::Arrive { .. } => 4,
            Ev::Exec { .. } => 5,
            Ev::ToClient { .. } => 6,
            Ev::WriteArrive { .. } => 7,
            Ev::ExpireCheck { .. } => 8,
            Ev::Replicate { .. } => 9,
            Ev::Fault(_) => 10,
            Ev::Heal(_) => 11,
            Ev::Reconnect { .. } => 12,
            Ev::ReadArrive { .. } => 13,
            Ev::ReadReply { .. } => 14,
            Ev::WaitTimeout { .. } => 15,
            Ev::ArriveBatch { .. } => 16,
            Ev::ExecBatch { .. } => 17,
        }
    }

    /// Who the trace says acts.
    pub(super) fn actor(&self) -> String {
        match self.client() {
            Some(c) => format!("client{c}"),
            None => match self {
                Ev::Arrive { s, .. }
                | Ev::Exec { s, .. }
                | Ev::ArriveBatch { s, .. }
                | Ev::ExecBatch { s, .. }
                | Ev::ExpireCheck { s, .. } => {
                    format!("server{s}")
                }
                Ev::WriteArrive { .. } | Ev::ReadArrive { .. } => "resource".into(),
                _ => "world".into(),
            },
        }
    }
}

struct Entry {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Events by `(true time, insertion sequence)`.
#[derive(Default)]
pub(super) struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl Queue {
    /// Schedule `ev` at true time `at`.
    pub(super) fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            ev,
        }));
    }

    /// When the next event is due.
    pub(super) fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// The next event and its time.
    pub(super) fn pop(&mut self) -> Option<(u64, Ev)> {
        self.heap.pop().map(|Reverse(e)| (e.at, e.ev))
    }
}
