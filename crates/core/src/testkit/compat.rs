//! [`ModelServer`] executing the rueidislock dialect's operations ([`crate::wire::compat`]) as
//! its scripts do: one key, no fence counter, absolute expiry. The server's clock is the
//! caller's `now`; an absolute expiry `at` (Unix ms in the adapter) is the instant
//! `Instant::from_millis(at)` on that clock, so a client whose clock differs from the server's
//! writes a key that lives longer or shorter than its ttl, as on real Redis.

use super::{ModelServer, Owner};
use crate::time::Instant;
use crate::wire::{LeaseValue, Reply};

impl ModelServer {
    /// `SET k v [NX] PXAT at`: `nil` ([`Reply::Held`], nothing known about the holder) when the
    /// key exists and `force` is off, even when it holds our own value (rueidislock's reply to
    /// a resent acquire); otherwise granted without a token. An `at` already past leaves no key
    /// (Redis sets it and expires it at once).
    pub(super) fn compat_acquire(
        &mut self,
        now: Instant,
        client: usize,
        value: LeaseValue,
        expire_at_ms: u64,
        force: bool,
    ) -> Reply {
        if self.current(now).is_some() && !force {
            return Reply::Held {
                holder: None,
                remaining: None,
            };
        }
        self.key = Some((Owner { client, value }, Instant::from_millis(expire_at_ms)));
        self.current(now);
        Reply::GrantedUnfenced
    }

    /// If ours, `PEXPIREAT k at` (1; an `at` already past deletes the key and still answers 1),
    /// else 0, which the wire reports for taken, deleted and expired alike: decoded as
    /// [`Reply::Missing`] with `fence_present` (there is no fence to lose; the loss is
    /// `Deleted`).
    pub(super) fn compat_extend(
        &mut self,
        now: Instant,
        client: usize,
        value: LeaseValue,
        expire_at_ms: u64,
    ) -> Reply {
        let me = Owner { client, value };
        if self.current(now) == Some(me) {
            self.key = Some((me, Instant::from_millis(expire_at_ms)));
            self.current(now);
            return Reply::Extended;
        }
        Reply::Missing {
            fence_present: true,
        }
    }

    /// The read-only re-check: ours, someone else's, or gone.
    pub(super) fn compat_check(&mut self, now: Instant, client: usize, value: LeaseValue) -> Reply {
        match self.current(now) {
            Some(o) if o == (Owner { client, value }) => Reply::StillHeld,
            Some(o) => Reply::NotOwner {
                holder: Some(format!("c{}", o.client)),
            },
            None => Reply::Missing {
                fence_present: true,
            },
        }
    }
}
