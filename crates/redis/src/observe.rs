//! Lock events applications can subscribe to (`Locker::subscribe`), and their optional
//! publisher to `<prefix>:events` (capped).

use std::sync::Arc;
use std::time::Duration;

use leasehold_core::LostReason;
use tokio::sync::broadcast;

use crate::locker::Shared;

/// One observable thing that happened to a lock in this process.
#[derive(Debug, Clone, PartialEq)]
pub enum LockEvent {
    /// A lease was acquired after `latency`.
    Acquired {
        /// Lock name.
        name: String,
        /// Fencing token (0 under [`crate::Compat::Rueidislock`], which has none: see
        /// [`crate::Lease::fencing_token`]).
        token: u64,
        /// Time from the acquire call to the grant.
        latency: Duration,
    },
    /// An acquire failed with the typed `reason` after `latency`.
    AcquireFailed {
        /// Lock name.
        name: String,
        /// `AcquireError::reason()`.
        reason: &'static str,
        /// Time from the acquire call to the failure.
        latency: Duration,
    },
    /// An extension was confirmed with `slack` validity left.
    Extended {
        /// Lock name.
        name: String,
        /// Validity that was left.
        slack: Duration,
    },
    /// A lease was lost.
    Lost {
        /// Lock name.
        name: String,
        /// Its token.
        token: u64,
        /// Why.
        reason: LostReason,
    },
    /// A lease was released.
    Released {
        /// Lock name.
        name: String,
        /// Its token.
        token: u64,
    },
}

/// Forward lock events to `<prefix>:events` (capped) until the locker is dropped.
pub(crate) async fn publish_events(shared: Arc<Shared>, mut rx: broadcast::Receiver<LockEvent>) {
    use leasehold_core::wire::keys::events as ev_wire;
    let stream = ev_wire::stream_key(&shared.config.prefix);
    let holder = shared.holder.as_str().to_owned();
    let instance = shared.instances[0].conn.clone();
    drop(shared);
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let mut fields: Vec<(&str, String)> = vec![(ev_wire::HOLDER, holder.clone())];
        match &ev {
            LockEvent::Acquired {
                name,
                token,
                latency,
            } => fields.extend([
                (ev_wire::KIND, ev_wire::KIND_ACQUIRED.into()),
                (ev_wire::NAME, name.clone()),
                (ev_wire::TOKEN, token.to_string()),
                (ev_wire::LATENCY_US, latency.as_micros().to_string()),
            ]),
            LockEvent::AcquireFailed {
                name,
                reason,
                latency,
            } => fields.extend([
                (ev_wire::KIND, ev_wire::KIND_ACQUIRE_FAILED.into()),
                (ev_wire::NAME, name.clone()),
                (ev_wire::REASON, (*reason).to_owned()),
                (ev_wire::LATENCY_US, latency.as_micros().to_string()),
            ]),
            LockEvent::Extended { name, slack } => fields.extend([
                (ev_wire::KIND, ev_wire::KIND_EXTENDED.into()),
                (ev_wire::NAME, name.clone()),
                (ev_wire::SLACK_US, slack.as_micros().to_string()),
            ]),
            LockEvent::Lost {
                name,
                token,
                reason,
            } => fields.extend([
                (ev_wire::KIND, ev_wire::KIND_LOST.into()),
                (ev_wire::NAME, name.clone()),
                (ev_wire::TOKEN, token.to_string()),
                (ev_wire::REASON, reason.reason().to_owned()),
            ]),
            LockEvent::Released { name, token } => fields.extend([
                (ev_wire::KIND, ev_wire::KIND_RELEASED.into()),
                (ev_wire::NAME, name.clone()),
                (ev_wire::TOKEN, token.to_string()),
            ]),
        }
        let conn = instance.borrow().clone();
        if let Some(mut conn) = conn {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(ev_wire::MAXLEN)
                .arg("*");
            for (k, v) in &fields {
                cmd.arg(*k).arg(v);
            }
            // best effort: a dashboard feed must never slow or fail the locks themselves
            let _ = cmd.query_async::<redis::Value>(&mut conn).await;
        }
    }
}
