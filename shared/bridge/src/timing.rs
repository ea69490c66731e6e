//! The time limits exactly-once rests on, in one place, so that their
//! relations are checked (below, and against `template.yaml` by the end-to-end
//! tests) rather than hoped for.
//!
//! The chain, from the inside out:
//!
//! * one outgoing call waits at most [`BUDGET_ACQUIRE_WAIT`] for the tenant's
//!   Autotask budget and then at most [`REQUEST_TIMEOUT`] for the answer, so a
//!   write that has started is over (landed or abandoned by us) within
//!   [`MAX_WRITE_DURATION`];
//! * a run starts a write only while its pair lease has at least
//!   [`MIN_LEASE_FOR_WRITE`] left, renewing the lease first if needed, so no
//!   write of a run can land after its lease has run out and another run may
//!   have taken the pair;
//! * a run starts no new write after [`JOB_WRITE_BUDGET`]; what is left is
//!   saved and re-queued, so a job is over within [`MAX_JOB_DURATION`];
//! * the queue's visibility timeout and the worker function's timeout are
//!   longer than that, so a message is not handed to a second worker while
//!   the first still works on it (and if it is, the lease and the claims keep
//!   the result exactly-once anyway).

use std::time::Duration;

/// Request timeout of every outgoing call: a hung API must not hold a worker.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Default longest wait for a slot of a tenant's Autotask budget before the
/// call fails as retryable (`AutotaskBudget::acquire_wait`).
pub const BUDGET_ACQUIRE_WAIT: Duration = Duration::from_secs(2);

/// From the moment a write is started until it has certainly ended.
pub const MAX_WRITE_DURATION: Duration =
    Duration::from_secs(BUDGET_ACQUIRE_WAIT.as_secs() + REQUEST_TIMEOUT.as_secs());

/// How long a run holds a ticket pair without renewing. A run that dies
/// blocks its pair this long at most.
pub const PAIR_LEASE: Duration = Duration::from_secs(60);

/// Room for clock differences between hosts and for the store's own latency.
pub const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// A write starts only with this much of the lease left.
pub const MIN_LEASE_FOR_WRITE: Duration =
    Duration::from_secs(MAX_WRITE_DURATION.as_secs() + LEASE_MARGIN.as_secs());

/// A run starts no new write after this long; the rest is re-queued.
pub const JOB_WRITE_BUDGET: Duration = Duration::from_secs(25);

/// After its last write has ended, what a run needs to save the link and
/// settle its message.
pub const SETTLE_RESERVE: Duration = Duration::from_secs(5);

/// The longest one job runs: its write budget, the last write started just
/// before the budget ran out, then saving.
pub const MAX_JOB_DURATION: Duration = Duration::from_secs(
    JOB_WRITE_BUDGET.as_secs() + MAX_WRITE_DURATION.as_secs() + SETTLE_RESERVE.as_secs(),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_always_fits_in_what_is_left_of_the_lease() {
        assert!(MIN_LEASE_FOR_WRITE >= MAX_WRITE_DURATION + LEASE_MARGIN);
        // Renewing before every write would cost a store write per API write.
        assert!(PAIR_LEASE >= MIN_LEASE_FOR_WRITE + Duration::from_secs(10));
    }

    #[test]
    fn a_job_ends_inside_the_embedded_queues_visibility_timeout() {
        assert!(
            crate::adapters::embedded::DEFAULT_VISIBILITY >= MAX_JOB_DURATION,
            "{:?} < {MAX_JOB_DURATION:?}",
            crate::adapters::embedded::DEFAULT_VISIBILITY
        );
    }
}
