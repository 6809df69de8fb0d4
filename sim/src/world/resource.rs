//! The fenced resource the critical sections use: a counter per lock that each section reads
//! when it starts and writes (the value read plus one) when it ends, with its token.
//!
//! **Invariant:** the resource judges tokens exactly as configured (`--fencing on|writes|off`):
//! a checked read or write below the highest token seen is rejected, an accepted one raises it.
//! The online checks `stale_writes_accepted` and `lost_updates` are judged here, on what it
//! accepted.

use super::World;
use super::queue::Ev;
use crate::check::Property;
use crate::config::Fencing;

/// Per lock: the highest token seen, the last writer, and the counter.
pub(super) struct Resource {
    highest: Vec<u64>,
    /// (acquired at, client) of the latest-acquired writer whose write was accepted.
    last_writer: Vec<Option<(u64, usize)>>,
    /// The read-modify-write counter the critical sections increment, per lock.
    counter: Vec<u64>,
}

impl Resource {
    pub(super) fn new(locks: usize) -> Resource {
        Resource {
            highest: vec![0; locks],
            last_writer: vec![None; locks],
            counter: vec![0; locks],
        }
    }
}

impl World {
    fn resource_fencing(&self) -> Fencing {
        #[cfg(feature = "planted-bugs")]
        if self.planted(crate::config::PlantedBug::NoFencing) {
            return Fencing::Off;
        }
        self.cfg.fencing
    }

    /// A critical section's read of the counter, with its token.
    pub(super) fn resource_read(&mut self, l: usize, c: u32, token: u64, generation: u32) {
        let fencing = self.resource_fencing();
        let r = &mut self.resource;
        let accepted = !fencing.checks_reads() || token >= r.highest[l];
        self.history.read(accepted);
        let value = if accepted {
            if fencing.checks_reads() {
                r.highest[l] = r.highest[l].max(token);
            }
            Some(r.counter[l])
        } else {
            None
        };
        let lat = self.latency();
        self.push(
            self.now + lat,
            Ev::ReadReply {
                c,
                generation,
                value,
            },
        );
    }

    /// A critical section's write of `read + 1`, with its token.
    pub(super) fn resource_write(
        &mut self,
        l: usize,
        c: usize,
        token: u64,
        acquired_at: u64,
        read: u64,
    ) {
        let accepted =
            !self.resource_fencing().checks_writes() || token >= self.resource.highest[l];
        self.history.write(accepted);
        let verdict = if accepted { "write" } else { "write_rejected" };
        self.note(Some(l), verdict, format!("c{c} token {token}"));
        if !accepted {
            return;
        }
        let r = &mut self.resource;
        r.highest[l] = r.highest[l].max(token);
        if let Some((later, who)) = r.last_writer[l]
            && later > acquired_at
            && who != c
        {
            self.history.violation(
                Property::StaleWritesAccepted,
                self.now,
                format!("lock {l}: accepted client {c}'s write (token {token}) after client {who}, who acquired later, had written"),
            );
        }
        if r.last_writer[l].is_none_or(|(t, _)| acquired_at >= t) {
            r.last_writer[l] = Some((acquired_at, c));
        }
        let current = r.counter[l];
        if read != current {
            self.history.violation(
                Property::LostUpdates,
                self.now,
                format!(
                    "lock {l}: accepted client {c}'s write of {} (token {token}, read {read}) over {current}: {} accepted increment(s) lost",
                    read + 1,
                    current.saturating_sub(read).max(1)
                ),
            );
        }
        r.counter[l] = read + 1;
    }
}
