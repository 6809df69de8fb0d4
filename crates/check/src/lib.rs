//! # leasehold-check
//!
//! A bounded exhaustive model checker of the lock protocol: the real [`leasehold_core::Lock`]
//! machines against the real [`leasehold_core::testkit::ModelServer`], over every order in which
//! requests execute, replies and notifications arrive or are lost, time advances between the
//! instants at which something is due, servers restart without persistence, an operator
//! force-releases, and clients pause. [`setup::Setup`] bounds one world; [`explore::check`]
//! enumerates it; [`configs`] lists the worlds `just check-model` runs.

pub mod configs;
pub mod explore;
pub mod props;
pub mod setup;
pub mod world;

pub use explore::{Counterexample, Outcome, Stats, check, check_bounded, find_shortest, narrate};
pub use props::Violation;
pub use setup::{PROPERTIES, Planted, Setup};
pub use world::{Action, World};
