//! Turn the scripts' raw replies into the core's [`Reply`]. Anything unexpected becomes a
//! `Corrupt` slot error that names what was found, never a panic.

use std::time::Duration;

use leasehold_core::wire::{Op, ParsedValue, parse_value};
use leasehold_core::{ForceOutcome, Reply, SlotError, SlotErrorKind};
use redis::Value;

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn holder(v: &Value) -> Option<String> {
    let raw: &[u8] = match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.as_bytes(),
        _ => return None,
    };
    match parse_value(raw) {
        ParsedValue::Leasehold { holder, .. } => Some(holder),
        ParsedValue::Foreign(text) => Some(format!("foreign value {:?}", truncate(&text))),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn corrupt(op: &Op, v: &Value) -> Reply {
    Reply::Error(SlotError::new(
        SlotErrorKind::Corrupt,
        format!("{} returned an unexpected reply {v:?}", op.name()),
    ))
}

/// Decode one reply of a pipeline run with `ignore_errors`: a server error in it is classified
/// as [`error_reply`] does, anything else decoded as [`decode`].
#[must_use]
pub fn decode_in_pipeline(op: &Op, v: Option<&Value>) -> Reply {
    match v {
        Some(Value::ServerError(e)) => error_reply(&e.clone().into()),
        Some(v) => decode(op, v),
        None => corrupt(op, &Value::Nil),
    }
}

/// Decode the reply `v` to `op`.
#[must_use]
pub fn decode(op: &Op, v: &Value) -> Reply {
    let items: &[Value] = match v {
        Value::Array(items) => items,
        _ => &[],
    };
    match op {
        Op::Acquire { .. } => match (items.first().and_then(int), items.get(1)) {
            (Some(1), Some(t)) => match int(t).and_then(|t| u64::try_from(t).ok()) {
                Some(token) => Reply::Granted { token },
                None => corrupt(op, v),
            },
            (Some(0), Some(h)) => Reply::Held {
                holder: holder(h),
                remaining: items
                    .get(2)
                    .and_then(int)
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map(Duration::from_millis),
            },
            _ => corrupt(op, v),
        },
        Op::Extend { .. } | Op::Check { .. } => match (items.first().and_then(int), items.get(1)) {
            (Some(1), _) if matches!(op, Op::Check { .. }) => Reply::StillHeld,
            (Some(1), _) => Reply::Extended,
            (Some(0), Some(h)) => Reply::NotOwner { holder: holder(h) },
            (Some(-1), Some(e)) => Reply::Missing {
                fence_present: int(e) == Some(1),
            },
            _ => corrupt(op, v),
        },
        // rueidislock's acqat/fcqat return the SET reply: OK, or nil when the key exists
        Op::CompatAcquire { .. } => match v {
            Value::Okay => Reply::GrantedUnfenced,
            Value::SimpleString(s) if s == "OK" => Reply::GrantedUnfenced,
            Value::Nil => Reply::Held {
                holder: None,
                remaining: None,
            },
            _ => corrupt(op, v),
        },
        // PEXPIREAT's 1, or 0 for taken, deleted and expired alike
        Op::CompatExtend { .. } => match int(v) {
            Some(1) => Reply::Extended,
            Some(0) => Reply::Missing {
                fence_present: true,
            },
            _ => corrupt(op, v),
        },
        Op::CompatCheck { .. } => match (items.first().and_then(int), items.get(1)) {
            (Some(1), _) => Reply::StillHeld,
            (Some(0), Some(h)) => Reply::NotOwner { holder: holder(h) },
            (Some(-1), _) => Reply::Missing {
                fence_present: true,
            },
            _ => corrupt(op, v),
        },
        Op::Release { .. } => match int(v) {
            Some(n) => Reply::Released { deleted: n == 1 },
            None => corrupt(op, v),
        },
        Op::RaiseFence { .. } => match int(v) {
            Some(1) => Reply::FenceRaised,
            _ => corrupt(op, v),
        },
        Op::Wait { .. } => match int(v).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Reply::Acked(n),
            None => corrupt(op, v),
        },
        Op::ForceRelease { .. } => match (items.first().and_then(int), items.get(1)) {
            (Some(1), Some(t)) => match int(t).and_then(|t| u64::try_from(t).ok()) {
                Some(token) => Reply::ForceReleased(ForceOutcome::Deleted { token }),
                None => corrupt(op, v),
            },
            (Some(0), Some(h)) => Reply::ForceReleased(ForceOutcome::Changed { holder: holder(h) }),
            (Some(-1), _) => Reply::ForceReleased(ForceOutcome::Gone),
            _ => corrupt(op, v),
        },
    }
}

/// Decode a batch's reply `v` ([`leasehold_core::wire::batch`]) into one reply per command of
/// `ops`, in order: each entry as [`decode`] does the per-slot script's, `{-2, message}` a server
/// error of that slot alone. A reply of another shape (not one entry per command) is `Corrupt`
/// for every slot.
#[must_use]
pub fn decode_batch(ops: &[Op], v: &Value) -> Vec<Reply> {
    let entries = match v {
        Value::Array(items) if items.len() == ops.len() => items,
        _ => return ops.iter().map(|op| corrupt(op, v)).collect(),
    };
    ops.iter()
        .zip(entries)
        .map(|(op, e)| match e {
            Value::Array(items)
                if items.first().and_then(int)
                    == Some(leasehold_core::wire::batch::SLOT_FAILED) =>
            {
                let detail = match items.get(1) {
                    Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(Value::SimpleString(s)) => s.clone(),
                    _ => "a slot of the batch failed without a message".to_owned(),
                };
                Reply::Error(SlotError::new(SlotErrorKind::Server, detail))
            }
            e => decode(op, e),
        })
        .collect()
}

/// Classify a transport or server error.
#[must_use]
pub fn error_reply(e: &redis::RedisError) -> Reply {
    let kind = if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
        SlotErrorKind::Disconnected
    } else {
        SlotErrorKind::Server
    };
    Reply::Error(SlotError::new(kind, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold_core::LeaseValue;

    const ACQ: Op = Op::Acquire {
        value: LeaseValue { nonce: 1 },
        ttl_ms: 10,
        force: false,
        keep_ms: 1_000,
    };

    #[test]
    fn decodes_the_rueidislock_dialect() {
        let value = LeaseValue { nonce: 1 };
        let acq = Op::CompatAcquire {
            value,
            expire_at_ms: 1,
            force: false,
        };
        assert_eq!(decode(&acq, &Value::Okay), Reply::GrantedUnfenced);
        assert_eq!(
            decode(&acq, &Value::SimpleString("OK".into())),
            Reply::GrantedUnfenced
        );
        assert_eq!(
            decode(&acq, &Value::Nil),
            Reply::Held {
                holder: None,
                remaining: None
            }
        );
        let ext = Op::CompatExtend {
            value,
            expire_at_ms: 1,
        };
        assert_eq!(decode(&ext, &Value::Int(1)), Reply::Extended);
        assert_eq!(
            decode(&ext, &Value::Int(0)),
            Reply::Missing {
                fence_present: true
            }
        );
        let chk = Op::CompatCheck { value };
        assert_eq!(
            decode(&chk, &Value::Array(vec![Value::Int(1)])),
            Reply::StillHeld
        );
        for bad in [Value::Int(7), Value::Array(vec![])] {
            for op in [acq, ext, chk] {
                assert!(matches!(
                    decode(&op, &bad),
                    Reply::Error(SlotError {
                        kind: SlotErrorKind::Corrupt,
                        ..
                    })
                ));
            }
        }
    }

    #[test]
    fn decodes_every_script_shape_and_rejects_garbage() {
        let g = Value::Array(vec![Value::Int(1), Value::Int(42)]);
        assert_eq!(decode(&ACQ, &g), Reply::Granted { token: 42 });
        let h = Value::Array(vec![
            Value::Int(0),
            Value::BulkString(b"lh1:00000000000000ff:web-1".to_vec()),
            Value::Int(900),
        ]);
        assert_eq!(
            decode(&ACQ, &h),
            Reply::Held {
                holder: Some("web-1".into()),
                remaining: Some(Duration::from_millis(900))
            }
        );
        for bad in [
            Value::Nil,
            Value::Int(7),
            Value::Array(vec![Value::Int(1), Value::Int(-3)]),
        ] {
            assert!(matches!(
                decode(&ACQ, &bad),
                Reply::Error(SlotError {
                    kind: SlotErrorKind::Corrupt,
                    ..
                })
            ));
        }
        let ext = Op::Extend {
            value: LeaseValue { nonce: 1 },
            ttl_ms: 10,
            keep_ms: 1_000,
        };
        assert_eq!(
            decode(&ext, &Value::Array(vec![Value::Int(-1), Value::Int(0)])),
            Reply::Missing {
                fence_present: false
            }
        );
        let other = Value::Array(vec![
            Value::Int(0),
            Value::BulkString(b"some-uuid".to_vec()),
        ]);
        assert_eq!(
            decode(&ext, &other),
            Reply::NotOwner {
                holder: Some("foreign value \"some-uuid\"".into())
            }
        );
    }
}
