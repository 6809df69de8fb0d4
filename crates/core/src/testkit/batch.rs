//! The model of [`crate::wire::batch::ACQUIRE_BATCH`]: what each slot adds to the batch's
//! common token floor, read before any slot of the batch runs.

use super::{ModelServer, Owner};
use crate::time::Instant;
use crate::wire::Op;

impl ModelServer {
    /// Whether the token rule's `TIME` floor applies (off only in the planted-bug variant
    /// [`ModelServer::without_time_floor`]).
    #[must_use]
    pub fn has_time_floor(&self) -> bool {
        self.time_floor
    }

    /// What this key adds to a batch's token floor: `counter + 1` when `op` (run by `client` at
    /// `now`) would take a new token here, `None` when it would not (the key is ours already, or
    /// someone else's without force, or `op` is no acquire). Run every slot of the batch with
    /// [`ModelServer::exec_in_batch`] and the highest of these, as the script does.
    pub fn batch_floor(&mut self, now: Instant, client: usize, op: Op) -> Option<u64> {
        let Op::Acquire { value, force, .. } = op else {
            return None;
        };
        match self.current(now) {
            Some(o) if o == (Owner { client, value }) => None,
            Some(_) if !force => None,
            _ => Some(self.current_fence(now).unwrap_or(0) + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{LeaseValue, Reply};

    const ACQ: Op = Op::Acquire {
        value: LeaseValue { nonce: 1 },
        ttl_ms: 1_000,
        force: false,
        keep_ms: 5_000,
    };

    #[test]
    fn a_batch_gives_every_slot_it_grants_the_highest_floor() {
        let now = Instant::from_nanos(1_000); // TIME = 1 µs: the counters decide
        let mut slots = [
            ModelServer::with_fence(Some(40)),
            ModelServer::with_fence(None),
            ModelServer::with_fence(Some(7)),
        ];
        // slot 2 is someone else's: it adds nothing and is not granted
        assert_eq!(
            slots[2].exec(now, 9, ACQ),
            Reply::Granted { token: 8 },
            "client 9 takes slot 2 first"
        );
        let floors: Vec<_> = slots
            .iter_mut()
            .map(|s| s.batch_floor(now, 0, ACQ))
            .collect();
        assert_eq!(floors, [Some(41), Some(1), None]);
        let floor = floors.iter().flatten().copied().max().unwrap_or(0);
        let replies: Vec<_> = slots
            .iter_mut()
            .map(|s| s.exec_in_batch(now, 0, ACQ, floor))
            .collect();
        assert_eq!(replies[0], Reply::Granted { token: 41 });
        assert_eq!(replies[1], Reply::Granted { token: 41 });
        assert!(matches!(replies[2], Reply::Held { .. }));
        // alone, slot 1 would have handed out 1: the batch's token is one ACQUIRE may give
        assert_eq!(
            ModelServer::with_fence(None).exec(now, 0, ACQ),
            Reply::Granted { token: 1 }
        );
        // a repeated grant takes no new token
        assert_eq!(slots[0].batch_floor(now, 0, ACQ), None);
    }
}
