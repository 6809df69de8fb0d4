//! The checker: the properties it judges ([`Property`]) and the history it judges them on in
//! true time ([`history`]). The online checks run where the facts are (the world's client,
//! server and resource rooms); a failed acquire's classification is judged by the core's
//! `testkit::classify`, the same judge the proptest runner uses.
//!
//! **Invariant:** the checker only reads what the world recorded; nothing here changes a run or
//! its trace.

pub mod history;

use std::fmt;

/// A property the checker judges. Its [`Property::name`] is what reports, JSON and replay lines
/// print; those names are user-facing and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    /// Two clients believed they held one lock at the same true time.
    MutualExclusion,
    /// The resource accepted a write from a holder superseded by one that had written.
    StaleWritesAccepted,
    /// A read-modify-write increment of the resource's counter was lost.
    LostUpdates,
    /// A lease issued after another was completely issued got a token not above it.
    TokenOrder,
    /// A waiter timed out after the faults healed while nobody acquired or held the lock.
    Liveness,
    /// A failed acquire said something other than what the servers answered.
    Misclassified,
    /// A client trusted its lease longer than a quorum of servers kept the key.
    ValidityOracle,
    /// An extension renewed a key its extender did not hold.
    StaleExtension,
}

/// Every property, in report order.
pub const PROPERTIES: [Property; 8] = [
    Property::MutualExclusion,
    Property::StaleWritesAccepted,
    Property::LostUpdates,
    Property::TokenOrder,
    Property::Liveness,
    Property::Misclassified,
    Property::ValidityOracle,
    Property::StaleExtension,
];

impl Property {
    /// The user-facing name (`mutual_exclusion`, …).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Property::MutualExclusion => "mutual_exclusion",
            Property::StaleWritesAccepted => "stale_writes_accepted",
            Property::LostUpdates => "lost_updates",
            Property::TokenOrder => "token_order",
            Property::Liveness => "liveness",
            Property::Misclassified => "misclassified",
            Property::ValidityOracle => "validity_oracle",
            Property::StaleExtension => "stale_extension",
        }
    }

    /// The property named `name`, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Property> {
        PROPERTIES.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Serialized as its name (reports and `--json` print names).
impl serde::Serialize for Property {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::{PROPERTIES, Property};

    #[test]
    fn names_are_the_user_facing_ones_and_parse_back() {
        let names: Vec<&str> = PROPERTIES.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "mutual_exclusion",
                "stale_writes_accepted",
                "lost_updates",
                "token_order",
                "liveness",
                "misclassified",
                "validity_oracle",
                "stale_extension",
            ]
        );
        for p in PROPERTIES {
            assert_eq!(Property::from_name(p.name()), Some(p));
        }
        assert_eq!(Property::from_name("mutual exclusion"), None);
        assert_eq!(Property::from_name(""), None);
        assert_eq!(
            format!("[{:<18}]", Property::TokenOrder),
            "[token_order       ]"
        );
        assert_eq!(
            serde_json::to_string(&Property::LostUpdates)
                .ok()
                .as_deref(),
            Some("\"lost_updates\"")
        );
    }
}
