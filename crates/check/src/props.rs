//! The properties' bookkeeping: the fenced resource, what a client was told in its current
//! round, leases in the servers' issue order.

use leasehold_core::{Op, Reply};

use crate::world::Log;

/// A broken promised property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// One of [`crate::setup::PROPERTIES`].
    pub property: &'static str,
    /// What happened.
    pub detail: String,
}

impl Violation {
    /// A violation of `property`.
    #[must_use]
    pub fn new(property: &'static str, detail: String) -> Self {
        Violation { property, detail }
    }
}

/// A lease, by the server operations that issued it (operation sequence numbers: the servers'
/// issue order, which is total in this world).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenure {
    /// The holder.
    pub client: usize,
    /// Its fencing token.
    pub token: u64,
    /// First and last issuing operation (the winning round's grants and fence write-backs).
    pub issued: (u64, u64),
}

/// `token_order`, judged in the servers' issue order (as the simulator's `History::finish`):
/// when one lease's issuing operations all executed before any of another's, its token is lower.
pub fn check_token_order(earlier: &[Tenure], t: &Tenure) -> Result<(), Violation> {
    for p in earlier {
        let (first, second) = if p.issued.1 < t.issued.0 {
            (p, t)
        } else if t.issued.1 < p.issued.0 {
            (t, p)
        } else {
            continue;
        };
        if second.token <= first.token {
            return Err(Violation::new(
                "token_order",
                format!(
                    "c{}'s token {} was issued (ops {}..{}) after c{}'s token {} (ops {}..{})",
                    second.client,
                    second.token,
                    second.issued.0,
                    second.issued.1,
                    first.client,
                    first.token,
                    first.issued.0,
                    first.issued.1
                ),
            ));
        }
    }
    Ok(())
}

/// A holder's critical section: a read-modify-write of the resource's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// The lease's token.
    pub token: u64,
    /// When the servers issued the lease.
    pub issued: (u64, u64),
    /// The value read, once read.
    pub read: Option<u64>,
}

/// What a client was told in its current acquire round (for `misclassified`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundSeen {
    /// The round's nonce.
    pub nonce: u64,
    /// Slots whose `Held` answer was delivered, as a bit set.
    held: u16,
    /// An error reached the client during the round (a dropped connection, an error reply).
    pub error: bool,
}

impl RoundSeen {
    /// A fresh round with `nonce`.
    #[must_use]
    pub fn new(nonce: u64) -> Self {
        RoundSeen {
            nonce,
            ..RoundSeen::default()
        }
    }

    /// The client is handed `reply` to `op` from `slot`.
    pub fn saw(&mut self, op: Op, reply: &Reply, slot: usize) {
        match (op, reply) {
            (Op::Acquire { value, .. } | Op::CompatAcquire { value, .. }, Reply::Held { .. })
                if value.nonce == self.nonce =>
            {
                self.held |= 1 << slot;
            }
            (Op::Acquire { value, .. } | Op::CompatAcquire { value, .. }, Reply::Error(_))
                if value.nonce == self.nonce =>
            {
                self.error = true;
            }
            (Op::RaiseFence { .. }, Reply::Error(_)) => self.error = true,
            _ => {}
        }
    }

    /// How many slots answered `Held`.
    #[must_use]
    pub fn held_count(&self) -> usize {
        self.held.count_ones() as usize
    }
}

/// The fenced resource: a counter, and the highest token seen on reads and writes (fencing
/// `on` in the simulator's terms: a read records its token, any access with a lower one is
/// rejected).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resource {
    counter: u64,
    highest: u64,
    /// The accepted writer whose lease was issued latest: (first issuing op, client).
    latest_writer: Option<(u64, usize)>,
    /// Writes accepted.
    pub accepted: u64,
}

impl Resource {
    /// A read with `token`: the counter, or `None` when rejected.
    pub fn read(&mut self, token: u64, fencing: bool) -> Option<u64> {
        if fencing && token < self.highest {
            return None;
        }
        if fencing {
            self.highest = token;
        }
        Some(self.counter)
    }

    /// The write of `read + 1` by `client`'s section `sec`. `Err` for a stale write accepted
    /// (a lease issued later already wrote) or a lost update (the counter moved since the read).
    pub fn write(
        &mut self,
        client: usize,
        sec: &Section,
        fencing: bool,
        log: &mut Log,
    ) -> Result<(), Violation> {
        let Some(read) = sec.read else {
            return Ok(());
        };
        if fencing && sec.token < self.highest {
            log.note(|| {
                format!(
                    "  resource: rejects c{client}'s write with token {}",
                    sec.token
                )
            });
            return Ok(());
        }
        log.note(|| {
            format!(
                "  resource: accepts c{client}'s write of {} with token {}",
                read + 1,
                sec.token
            )
        });
        self.accepted += 1;
        if fencing {
            self.highest = self.highest.max(sec.token);
        }
        if let Some((first, who)) = self.latest_writer
            && first > sec.issued.1
            && who != client
        {
            return Err(Violation::new(
                "stale_writes_accepted",
                format!(
                    "accepted c{client}'s write (token {}) after c{who}, whose lease was issued later, had written",
                    sec.token
                ),
            ));
        }
        if self.latest_writer.is_none_or(|(f, _)| sec.issued.0 >= f) {
            self.latest_writer = Some((sec.issued.0, client));
        }
        if read != self.counter {
            return Err(Violation::new(
                "lost_updates",
                format!(
                    "accepted c{client}'s write of {} (read {read}) over {}: an increment lost",
                    read + 1,
                    self.counter
                ),
            ));
        }
        self.counter = read + 1;
        Ok(())
    }
}
