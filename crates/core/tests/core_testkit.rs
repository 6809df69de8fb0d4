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
