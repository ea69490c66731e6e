//! Budget unit tests that need its private parts. The tests of the budget in
//! front of a fake Autotask are `shared/bridge/tests/autotask_budget.rs`.

use super::*;

#[test]
fn defaults_leave_headroom_under_autotask_limits() {
    let budget = AutotaskBudget::default();
    assert_eq!(budget.requests_per_hour, 9_000);
    assert_eq!(budget.burst, 150);
    assert_eq!(budget.max_concurrent, 3);
    assert_eq!(budget.interval(), Duration::from_millis(400));
}
