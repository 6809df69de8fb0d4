//! Acquiring or releasing several slots of one lock on one instance with one script (key majority
//! on a single Redis): [`ACQUIRE_BATCH`], [`RELEASE_BATCH`], and which commands may share one
//! ([`joins`]).
//!
//! Per slot the batch does what [`super::ACQUIRE`] does, with one difference: every slot it
//! grants gets the same token, `max(counter + 1 over the slots it grants, TIME in µs)`. That is a
//! token `ACQUIRE` itself could hand out at each of those slots: it is above the slot's counter
//! and not below the server's clock (as if `TIME` had read that much later, which the fence-token
//! rule allows: a token only has to exceed the counter). Run in one script, the slots are also
//! one atomic step, which is one of the orders the per-slot scripts already allow. So every
//! outcome of a batch is an outcome of per-slot `ACQUIRE`s, and the simulator runs batches the
//! same way (`ModelServer::batch_floor`).
//!
//! Unlike every script in [`super::SCRIPTS`], it touches the keys of several hash tags (one per
//! slot), so it is never sent to a Redis Cluster: only to one plain instance (or a Sentinel's
//! primary) holding every slot.
//!
//! What it buys: the counters of all granted slots stand at the lease's token as soon as the
//! batch returns, so the machine skips the token write-back round (see `tokens_differ` in the
//! machine), and one script replaces one per slot.

use super::{Command, Op, Script};

/// Acquire (or force) several slots of one round on one instance.
///
/// `KEYS = [lock_1, fence_1, …, lock_n, fence_n]`, `ARGV = [value, ttl_ms, force,
/// fence_keep_ms]` (as [`super::ACQUIRE`]'s). Returns one entry per slot, in order: what
/// `ACQUIRE` returns for it (`{1, token}` with the one token of every slot granted now, or the
/// current counter on a repeated grant; `{0, holder_value, pttl}`), or `{-2, message}` for a slot
/// that failed alone (a key of another type, a fence counter that is not a whole number below
/// 2^53, which is checked before it can enter the common token), where per-slot scripts would
/// have failed that slot and no other. No slot is written before every
/// slot was read, so a failed slot never leaves a half-done batch. Every lock key is read last,
/// as in `ACQUIRE`, so the caller hears of its next change.
pub const ACQUIRE_BATCH: Script = Script {
    name: "acquire_batch",
    source: r#"
local KEEP_MS = tonumber(ARGV[2]) + tonumber(ARGV[4])
local function counter(fk)
  local raw = redis.pcall('GET', fk)
  if type(raw) == 'table' then return nil, {-2, raw.err} end
  if not raw then return 0 end
  local cur = tonumber(raw)
  if cur == nil or not string.find(raw, '^%-?%d+$') or cur >= 9007199254740992 then
    return nil, {-2, 'leasehold: fence counter ' .. fk .. ' holds a non-integer value (a counter is a whole number below 2^53); delete it (the next token is then taken from TIME)'}
  end
  return cur
end
local out, grant, top = {}, {}, 0
for i = 1, #KEYS / 2 do
  local lk, fk = KEYS[2 * i - 1], KEYS[2 * i]
  local mine = redis.pcall('GET', lk)
  if type(mine) == 'table' then
    out[i] = {-2, mine.err}
  elseif mine == ARGV[1] then
    local cur, failed = counter(fk)
    if failed then
      out[i] = failed
    else
      redis.call('PEXPIRE', lk, ARGV[2])
      redis.call('PEXPIRE', fk, KEEP_MS)
      redis.call('PTTL', lk)
      out[i] = {1, cur}
    end
  elseif mine and ARGV[3] ~= '1' then
    out[i] = {0, mine, redis.call('PTTL', lk)}
  else
    local cur, failed = counter(fk)
    if failed then
      out[i] = failed
    else
      grant[#grant + 1] = i
      top = math.max(top, cur + 1)
    end
  end
end
if #grant > 0 then
  local t = redis.call('TIME')
  local token = math.max(top, tonumber(t[1]) * 1000000 + tonumber(t[2]))
  local s = string.format('%d', token)
  for _, i in ipairs(grant) do
    local lk = KEYS[2 * i - 1]
    redis.call('SET', KEYS[2 * i], s, 'PX', KEEP_MS)
    redis.call('SET', lk, ARGV[1], 'PX', ARGV[2])
    redis.call('PTTL', lk)
    out[i] = {1, token}
  end
end
return out
"#,
};

/// Release several slots: [`super::RELEASE`]'s compare-and-delete on each, in one step (one of
/// the orders the per-slot scripts allow). `KEYS = [lock_1, …, lock_n]`, `ARGV = [value]`.
/// Returns one entry per slot: `RELEASE`'s 1 or 0, or `{-2, message}` for a slot that failed alone
/// (a key of another type, left as it is).
pub const RELEASE_BATCH: Script = Script {
    name: "release_batch",
    source: r#"
local out = {}
for i = 1, #KEYS do
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'table' then
    out[i] = {-2, v.err}
  elseif v == ARGV[1] then
    out[i] = redis.call('DEL', KEYS[i])
  else
    out[i] = 0
  end
end
return out
"#,
};

/// The entry a batch returns for a slot that failed alone (`{-2, message}`).
pub const SLOT_FAILED: i64 = -2;

/// Whether `next` may join `batch` (the commands gathered so far, the first of them alone to
/// start one): fenced acquires of one round (same value, ttl, force and retention), or releases
/// of one value, each for a slot not in the batch yet. Whoever batches also keeps a batch to one
/// instance, and to commands with no `WAIT` behind them (a write to be confirmed is sent with its
/// own `WAIT`).
#[must_use]
pub fn joins(batch: &[Command], next: &Command) -> bool {
    batch.first().is_some_and(|first| {
        matches!(first.op, Op::Acquire { .. } | Op::Release { .. }) && first.op == next.op
    }) && batch.iter().all(|c| c.slot != next.slot)
}

/// The batch `first` starts: `first` and the commands right behind it that [`joins`] it and
/// that `fit` (the caller's test: the same instance), taken from `next` and then from `poll`
/// while they do. Empty when none joins (`first` then goes alone). `next` is left holding the
/// first command that did not join. The adapter and the simulator both form batches with it.
pub fn gather(
    first: Command,
    next: &mut Option<Command>,
    mut poll: impl FnMut() -> Option<Command>,
    fit: impl Fn(&Command) -> bool,
) -> Vec<Command> {
    let mut batch = Vec::new();
    while let Some(n) = *next
        && joins(
            if batch.is_empty() {
                std::slice::from_ref(&first)
            } else {
                &batch
            },
            &n,
        )
        && fit(&n)
    {
        if batch.is_empty() {
            batch.push(first);
        }
        batch.push(n);
        *next = poll();
    }
    batch
}

/// The script that runs a batch `first` starts.
#[must_use]
pub fn script_of(first: &Op) -> Option<Script> {
    match first {
        Op::Acquire { .. } => Some(ACQUIRE_BATCH),
        Op::Release { .. } => Some(RELEASE_BATCH),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{LeaseValue, RequestId};

    fn acq(slot: usize, nonce: u64) -> Command {
        Command {
            request: RequestId(slot as u64),
            slot,
            op: Op::Acquire {
                value: LeaseValue { nonce },
                ttl_ms: 1_000,
                force: false,
                keep_ms: 5_000,
            },
        }
    }

    #[test]
    fn only_acquires_of_one_round_for_other_slots_join() {
        assert!(joins(&[acq(0, 1)], &acq(1, 1)));
        assert!(!joins(&[acq(0, 1)], &acq(0, 1)), "the same slot twice");
        assert!(
            !joins(&[acq(0, 1), acq(1, 1)], &acq(1, 1)),
            "a slot already in the batch"
        );
        assert!(!joins(&[], &acq(0, 1)), "nothing to join");
        assert!(!joins(&[acq(0, 1)], &acq(1, 2)), "another round's value");
        let release = Command {
            request: RequestId(9),
            slot: 1,
            op: Op::Release {
                value: LeaseValue { nonce: 1 },
            },
        };
        assert!(!joins(&[acq(0, 1)], &release));
        assert!(!joins(&[release], &acq(1, 1)));
        let other_slot = Command { slot: 0, ..release };
        assert!(joins(&[other_slot], &release), "releases of one value");
        let other_value = Command {
            op: Op::Release {
                value: LeaseValue { nonce: 2 },
            },
            ..release
        };
        assert!(!joins(&[other_slot], &other_value));
    }

    #[test]
    fn gather_takes_what_joins_and_fits_and_leaves_the_rest_next() {
        let mut queue = vec![acq(2, 1), acq(1, 1)].into_iter();
        let mut next = Some(acq(1, 1));
        let batch = gather(acq(0, 1), &mut next, || queue.next(), |n| n.slot < 2);
        assert_eq!(batch, [acq(0, 1), acq(1, 1)]);
        assert_eq!(next, Some(acq(2, 1)), "slot 2 does not fit");
        let mut next = Some(acq(1, 2));
        assert!(gather(acq(0, 1), &mut next, || None, |_| true).is_empty());
        assert_eq!(next, Some(acq(1, 2)), "another round's acquire stays next");
    }
}
