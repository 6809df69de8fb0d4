//! The testkit's own records, read as their users (the simulator and the model checker) read
//! them. Written for mutation testing (see ARCHITECTURE.md, "Mutation testing").

use leasehold_core::testkit::issue::IssueLog;

/// `clear` starts a new acquisition: neither the grants nor the write-backs recorded before it
/// count towards the next lease's span.
#[test]
fn a_cleared_issue_log_forgets_earlier_grants_and_write_backs() {
    let mut log = IssueLog::default();
    log.grant(3, 10);
    log.write_back(30);
    log.clear();
    assert_eq!(log.take_span(Some(3), 99), (99, 99), "grants forgotten");
    log.write_back(30);
    log.clear();
    log.grant(3, 20);
    assert_eq!(
        log.take_span(Some(3), 99),
        (20, 20),
        "write-backs forgotten"
    );
    assert_eq!(log, IssueLog::default(), "taken");
}

/// A lease's span is its own round's grants and the write-backs from its first grant on: a grant
/// of another round executed later (a slow server running an older round's request) is not part
/// of it, and neither is a write-back before the winning round's first grant.
#[test]
fn a_lease_s_span_leaves_out_other_rounds_grants_whenever_they_ran() {
    let mut log = IssueLog::default();
    log.write_back(5);
    log.grant(2, 10);
    log.write_back(15);
    log.grant(2, 40);
    log.grant(1, 50);
    assert_eq!(log.take_span(Some(2), 99), (10, 40));
    // nothing of the winning round recorded: the span is `now`
    log.grant(1, 50);
    log.write_back(60);
    assert_eq!(log.take_span(Some(2), 99), (99, 99));
}
