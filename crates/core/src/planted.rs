//! Core mutants for negative controls (feature `planted-bugs`, never in a shipping build).
//!
//! The exhaustive checker (`leasehold-check`) must find a counterexample for each of these; a
//! checker that cannot is not checking what it claims. A mutant is switched on per thread, so
//! parallel tests do not see each other's mutants.

use std::cell::Cell;

/// One deliberate mutation of [`crate::Lock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// `<` → `>` in `Lock::on_fence_reply`: the write-back gives up while a quorum is still possible.
    FenceReplyGt,
    /// `<` → `>` in `Lock::prune_pending`: bookkeeping of requests older than two ttls is dropped
    /// on every send instead of only when the table is full.
    PrunePendingGt,
    /// `<` → `<=` in `Lock::handle_reply` (the slot bound of the reply-time table).
    HandleReplyLe,
    /// A failed round is reported `Contended` whenever any slot answered `Held`, not only when the
    /// `Held` answers alone rule out a quorum.
    ContendedOnAnyHeld,
}

impl Mutant {
    /// Every mutant.
    pub const ALL: [Mutant; 4] = [
        Mutant::FenceReplyGt,
        Mutant::PrunePendingGt,
        Mutant::HandleReplyLe,
        Mutant::ContendedOnAnyHeld,
    ];
}

thread_local! {
    static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
}

/// Switch `mutant` on (or every mutant off) for machines run on this thread.
pub fn set(mutant: Option<Mutant>) {
    ACTIVE.with(|a| a.set(mutant));
}

/// Whether `mutant` is on for this thread.
#[must_use]
pub fn on(mutant: Mutant) -> bool {
    ACTIVE.with(|a| a.get() == Some(mutant))
}
