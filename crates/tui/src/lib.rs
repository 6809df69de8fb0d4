//! # leasehold-tui
//!
//! The dashboard behind `leasehold watch` and `leasehold inspect`: [`layout`] recognises lock keys
//! of several libraries, [`scan`] reads them from a live Redis within a command budget
//! ([`bucket`]) with bounded reads, [`glob`] is Redis's own pattern matcher, [`source`] runs the
//! Redis source (reconnects, pushes, server stats, events) and the force-release, [`model`] is the
//! pure state (`update(input, now)`), and [`view`] renders it as a pure function of
//! (model, now, theme, area). [`doctor`] reuses the bucket and the scanner for `leasehold doctor`:
//! read-only measurements of a lock Redis turned into findings.
//!
//! **Architecture invariant:** nothing here reads a clock inside the model or the view; time is
//! passed in, so every screen can be snapshot-tested at a fixed instant.

pub mod bucket;
pub mod doctor;
pub mod glob;
pub mod keys;
pub mod lanes;
pub mod layout;
pub mod model;
pub mod scan;
pub mod source;
pub mod view;
