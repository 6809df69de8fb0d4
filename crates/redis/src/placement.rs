//! Where a lock's keys live, and what that means for fault tolerance ([`Locker::placement`]).
//!
//! Key names never depend on the topology: `prefix:{name#i}` is the same for every client,
//! whatever slot map it sees, so two clients always contend on the same keys (choosing hash tags
//! per primary would make the names a function of each client's view of `CLUSTER SLOTS`, and
//! two clients with different views, or one view across a resharding, would lock different
//! keys: no exclusion). The price: on a cluster the 2k−1 keys of a key-majority lock hash to
//! slots that may share a primary, so losing one primary can take a quorum of them. This module
//! reports it; it decides nothing.

use leasehold_core::LockName;
use leasehold_core::wire::SlotKeys;

use crate::conn::Conn;
use crate::{LockError, Locker};

/// Where one key of a lock lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlacement {
    /// The lock key (its fence counter shares its hash tag, so its slot and server).
    pub key: String,
    /// Its cluster hash slot, computed as Redis does (meaningful on a cluster).
    pub hash_slot: u16,
    /// On a cluster, `host:port` of the primary serving the slot now (`CLUSTER SLOTS`), `None`
    /// when no node serves it (the slot is down); otherwise the instance's URL (redacted).
    pub node: Option<String>,
}

/// Where every key of one lock lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// One entry per slot of the lock, in slot order.
    pub keys: Vec<KeyPlacement>,
    /// Keys that must be held.
    pub quorum: usize,
}

impl Placement {
    /// How many servers may fail, whichever they are, and leave a quorum of the keys on the
    /// others. `0` means one server (the wrong one) takes the lock with it; a key-majority lock
    /// with its 2k−1 keys on distinct primaries tolerates k−1. Keys whose node is unknown count
    /// as one server.
    #[must_use]
    pub fn tolerates(&self) -> usize {
        let mut per_node: std::collections::HashMap<Option<&str>, usize> =
            std::collections::HashMap::new();
        for k in &self.keys {
            *per_node.entry(k.node.as_deref()).or_default() += 1;
        }
        let mut counts: Vec<usize> = per_node.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let spare = self.keys.len().saturating_sub(self.quorum);
        let (mut lost, mut servers) = (0, 0);
        for c in counts {
            if lost + c > spare {
                break;
            }
            lost += c;
            servers += 1;
        }
        servers
    }
}

impl Locker {
    /// Where the keys of lock `name` live now: on a Redis Cluster, the primary serving each
    /// key's slot as the cluster says (`CLUSTER SLOTS`); elsewhere the instance of each slot.
    /// [`Placement::tolerates`] says how many servers may fail without losing the lock. The
    /// answer is a snapshot: a resharding moves slots (the locks follow them; keys keep their
    /// names).
    ///
    /// # Errors
    /// [`LockError::Config`] for a bad name; [`LockError::Placement`] when an instance is not
    /// connected or the cluster does not answer.
    pub async fn placement(&self, name: &str) -> Result<Placement, LockError> {
        let shared = &self.shared;
        let keys = SlotKeys::for_config(&shared.config, &LockName::new(name)?);
        let mut slots_of: Vec<Option<redis::Value>> = vec![None; shared.instances.len()];
        let mut out = Vec::with_capacity(keys.len());
        for i in 0..keys.len() {
            let key = keys.lock_key(i).to_owned();
            let hash_slot = crate::cluster::key_slot(key.as_bytes());
            let instance = &shared.instances[shared.instance_of(i)];
            let failed = |detail: String| LockError::Placement {
                url: instance.url.clone(),
                detail,
            };
            let conn = instance.conn.borrow().clone();
            let node = match conn {
                None => return Err(failed("not connected".into())),
                Some(Conn::Single(_)) => Some(instance.url.clone()),
                Some(Conn::Cluster(mut c)) => {
                    let cached = &mut slots_of[shared.instance_of(i)];
                    if cached.is_none() {
                        let reply = redis::cmd("CLUSTER")
                            .arg("SLOTS")
                            .query_async::<redis::Value>(&mut c)
                            .await
                            .map_err(|e| failed(format!("CLUSTER SLOTS: {e}")))?;
                        *cached = Some(reply);
                    }
                    cached
                        .as_ref()
                        .and_then(|r| crate::cluster::owner_in_slots(r, hash_slot))
                }
            };
            out.push(KeyPlacement {
                key,
                hash_slot,
                node,
            });
        }
        Ok(Placement {
            keys: out,
            quorum: shared.config.layout.quorum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(nodes: &[Option<&str>], quorum: usize) -> Placement {
        Placement {
            keys: nodes
                .iter()
                .map(|n| KeyPlacement {
                    key: String::new(),
                    hash_slot: 0,
                    node: n.map(str::to_owned),
                })
                .collect(),
            quorum,
        }
    }

    #[test]
    fn tolerance_counts_the_worst_servers_lost() {
        let (a, b, c) = (Some("a"), Some("b"), Some("c"));
        assert_eq!(placed(&[a], 1).tolerates(), 0);
        assert_eq!(placed(&[a, b, c], 2).tolerates(), 1);
        assert_eq!(placed(&[a, a, b], 2).tolerates(), 0);
        assert_eq!(placed(&[a, a, a], 2).tolerates(), 0);
        assert_eq!(placed(&[a, b, c, a, b], 3).tolerates(), 1);
        assert_eq!(placed(&[a, b, c, Some("d"), Some("e")], 3).tolerates(), 2);
        assert_eq!(placed(&[a, None, None], 2).tolerates(), 0);
    }
}
