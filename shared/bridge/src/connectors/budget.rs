//! A per-tenant Autotask request budget (DESIGN.md "Facts about the outside
//! systems": about 10,000 requests per hour per database and a few concurrent
//! threads per integration; exceed them and calls fail).
//!
//! The budget never sleeps in the worker (DESIGN.md rule 6). When a tenant's
//! budget is spent, a call fails at once with a retryable
//! [`ApiError::RateLimited`] whose `retry_after` is the time until the budget
//! allows the next request; the worker turns that into a delayed retry through
//! the queue's visibility timeout. The only waiting is for a concurrency permit
//! held by a sibling call of the same process, and that wait is short and
//! bounded ([`AutotaskBudget::acquire_wait`]).
//!
//! The budget is kept in process memory: every connector of one tenant in one
//! process shares it (through [`AutotaskBudgets`]), but separate processes
//! (several Lambda instances of the worker and the sweep) each have their own.
//! Size the worker's concurrency so that instances × budget stays under the
//! database's limit; Autotask's own 429s remain retryable as a backstop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::error::ApiError;
use crate::model::{
    NewPsaNote, NewPsaTicket, PicklistValue, PsaNote, PsaTicket, PsaTicketPatch, TenantId,
};
use crate::ports::{Clock, Psa, SystemClock};

const SYSTEM: &str = "autotask";

/// How much of Autotask's capacity one tenant's bridge may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutotaskBudget {
    /// Sustained requests per hour. Autotask allows about 10,000 per hour per
    /// *database*, shared by every integration of that database (RMM,
    /// accounting, the MSP's own scripts). The default of 9,000 leaves 10 %
    /// headroom for them, so the bridge does not push the whole database into
    /// throttling.
    pub requests_per_hour: u32,
    /// Requests that may be made back to back when the budget has been idle
    /// (the bucket's capacity). The default, one minute's worth of the
    /// hourly rate (150), absorbs a sweep or a burst of webhooks without
    /// letting the sustained rate exceed `requests_per_hour`.
    pub burst: u32,
    /// Calls in flight at once. Autotask limits concurrent threads per
    /// integration to a few; the default is 3.
    pub max_concurrent: usize,
    /// How long a call waits for a sibling call of the same process to free a
    /// concurrency permit before failing retryable. Short: this is waiting
    /// for a call in flight to finish, not sleeping until budget returns.
    pub acquire_wait: Duration,
    /// The `retry_after` of a call that found every concurrency permit taken.
    pub busy_retry_after: Duration,
}

impl Default for AutotaskBudget {
    fn default() -> Self {
        Self {
            requests_per_hour: 9_000,
            burst: 150,
            max_concurrent: 3,
            acquire_wait: Duration::from_secs(2),
            busy_retry_after: Duration::from_secs(5),
        }
    }
}

impl AutotaskBudget {
    /// Time that buys one request at the sustained rate.
    fn interval(&self) -> Duration {
        let per_hour = u64::from(self.requests_per_hour.max(1));
        Duration::from_nanos(3_600_000_000_000 / per_hour)
    }
}

/// A token bucket whose tokens are measured in time: each request costs
/// `interval` of credit, credit accrues one-for-one with elapsed time up to
/// `capacity` (= burst × interval). Integer arithmetic, so the refill time
/// it reports is exact.
struct Bucket {
    credit: Duration,
    last: DateTime<Utc>,
}

/// One tenant's budget: a token bucket for the hourly rate plus a semaphore
/// for the concurrency cap.
pub struct TenantLimiter {
    tenant: TenantId,
    interval: Duration,
    capacity: Duration,
    bucket: Mutex<Bucket>,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    acquire_wait: Duration,
    busy_retry_after: Duration,
    clock: Arc<dyn Clock>,
}

/// Leave to make one Autotask request: holds a concurrency permit until
/// dropped.
#[must_use = "the concurrency permit is released when this is dropped"]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl TenantLimiter {
    /// A limiter with a full bucket.
    pub fn new(tenant: TenantId, budget: &AutotaskBudget, clock: Arc<dyn Clock>) -> Self {
        let interval = budget.interval();
        let capacity = interval.saturating_mul(budget.burst.max(1));
        let max_concurrent = budget.max_concurrent.max(1);
        Self {
            tenant,
            interval,
            capacity,
            bucket: Mutex::new(Bucket {
                credit: capacity,
                last: clock.now(),
            }),
            permits: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            acquire_wait: budget.acquire_wait,
            busy_retry_after: budget.busy_retry_after,
            clock,
        }
    }

    /// Takes a concurrency permit (waiting at most `acquire_wait` for a
    /// sibling call to finish) and then one request token. Fails retryable
    /// when either is unavailable; a call turned away for concurrency costs
    /// no token.
    pub async fn admit(&self) -> Result<Admission, ApiError> {
        // A free permit is taken at once; the timeout only bounds the wait.
        let acquired =
            tokio::time::timeout(self.acquire_wait, self.permits.clone().acquire_owned()).await;
        // Timed out (or the semaphore closed, which it never is).
        let Ok(Ok(permit)) = acquired else {
            warn!(
                tenant = %self.tenant,
                max_concurrent = self.max_concurrent,
                retry_after_ms = self.busy_retry_after.as_millis() as u64,
                "Autotask concurrency limit reached; failing fast for a delayed retry"
            );
            return Err(ApiError::RateLimited {
                system: SYSTEM,
                retry_after: self.busy_retry_after,
            });
        };
        if let Err(retry_after) = self.take_token() {
            warn!(
                tenant = %self.tenant,
                retry_after_ms = retry_after.as_millis() as u64,
                "Autotask request budget exhausted; failing fast for a delayed retry"
            );
            return Err(ApiError::RateLimited {
                system: SYSTEM,
                retry_after,
            });
        }
        Ok(Admission { _permit: permit })
    }

    /// Takes one token, or says how long until one is available.
    fn take_token(&self) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut bucket = self.bucket.lock().unwrap();
        // A wall clock that steps back adds no credit (and takes none away).
        if now > bucket.last {
            let elapsed = (now - bucket.last).to_std().unwrap_or_default();
            bucket.credit = bucket.credit.saturating_add(elapsed).min(self.capacity);
            bucket.last = now;
        }
        if bucket.credit >= self.interval {
            bucket.credit -= self.interval;
            Ok(())
        } else {
            Err(self.interval - bucket.credit)
        }
    }
}

/// The tenants' limiters of one process, so that every connector built for a
/// tenant shares that tenant's budget (also across client rebuilds after a
/// credential rotation).
pub struct AutotaskBudgets {
    settings: AutotaskBudget,
    clock: Arc<dyn Clock>,
    tenants: Mutex<HashMap<TenantId, Arc<TenantLimiter>>>,
}

impl Default for AutotaskBudgets {
    fn default() -> Self {
        Self::new(AutotaskBudget::default(), Arc::new(SystemClock))
    }
}

impl AutotaskBudgets {
    pub fn new(settings: AutotaskBudget, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            clock,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's limiter, made on first use.
    pub fn for_tenant(&self, tenant: &TenantId) -> Arc<TenantLimiter> {
        self.tenants
            .lock()
            .unwrap()
            .entry(tenant.clone())
            .or_insert_with(|| {
                Arc::new(TenantLimiter::new(
                    tenant.clone(),
                    &self.settings,
                    self.clock.clone(),
                ))
            })
            .clone()
    }

    /// `inner` behind the tenant's shared budget.
    pub fn wrap(&self, tenant: &TenantId, inner: Arc<dyn Psa>) -> Arc<dyn Psa> {
        Arc::new(BudgetedPsa::new(inner, self.for_tenant(tenant)))
    }
}

/// A [`Psa`] whose every call first takes one token and one concurrency
/// permit of its tenant's budget; the permit is held for the whole call.
///
/// The paging methods (`list_notes`, `tickets_changed_since`) make several
/// HTTP requests under one token and one permit. That is acceptable: pages
/// are sequential (so the concurrency cap holds), a ticket rarely has more
/// than one page of notes, the sweep runs every few minutes, and the default
/// rate leaves headroom for the undercount.
pub struct BudgetedPsa {
    inner: Arc<dyn Psa>,
    limiter: Arc<TenantLimiter>,
}

impl BudgetedPsa {
    pub fn new(inner: Arc<dyn Psa>, limiter: Arc<TenantLimiter>) -> Self {
        Self { inner, limiter }
    }
}

#[async_trait]
impl Psa for BudgetedPsa {
    async fn get_ticket(&self, id: i64) -> Result<Option<PsaTicket>, ApiError> {
        let _admission = self.limiter.admit().await?;
        self.inner.get_ticket(id).await
    }

    async fn find_ticket_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<PsaTicket>, ApiError> {
        let _admission = self.limiter.admit().await?;
        self.inner.find_ticket_by_external_id(external_id).await
    }

    async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError> {
        let _admission = self.limiter.admit().await?;
        self.inner.create_ticket(ticket).await
    }

    async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError> {
        let _admission = self.limiter.admit().await?;
        self.inner.update_ticket(id, patch).await
    }

    async fn list_notes(&self, ticket_id: i64) -> Result<Vec<PsaNote>, ApiError> {
        // Every page under one token and one permit (see the type's docs).
        let _admission = self.limiter.admit().await?;
        self.inner.list_notes(ticket_id).await
    }

    async fn add_note(&self, ticket_id: i64, note: &NewPsaNote) -> Result<i64, ApiError> {
        let _admission = self.limiter.admit().await?;
        self.inner.add_note(ticket_id, note).await
    }

    async fn resource_name(&self, resource_id: i64) -> Result<Option<String>, ApiError> {
        let _admission = self.limiter.admit().await?;
        self.inner.resource_name(resource_id).await
    }

    async fn company_for_reference(&self, reference: &str) -> Result<Option<i64>, ApiError> {
        let _admission = self.limiter.admit().await?;
        self.inner.company_for_reference(reference).await
    }

    async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError> {
        let _admission = self.limiter.admit().await?;
        self.inner.ticket_picklist(field).await
    }

    async fn tickets_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError> {
        // Every page under one token and one permit (see the type's docs).
        let _admission = self.limiter.admit().await?;
        self.inner.tickets_changed_since(since).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use chrono::TimeZone;

    use super::*;
    use crate::error::SyncError;
    use crate::testing::{FakePsa, FixedClock};

    /// A `FakePsa` that counts the calls reaching it, tracks how many are in
    /// flight, and while `gated` holds each call until the test releases it.
    struct Probe {
        inner: FakePsa,
        calls: AtomicUsize,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        gated: AtomicBool,
        gate: Semaphore,
    }

    impl Default for Probe {
        fn default() -> Self {
            Self {
                inner: FakePsa::default(),
                calls: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
                gated: AtomicBool::new(false),
                gate: Semaphore::new(0),
            }
        }
    }

    impl Probe {
        fn gated() -> Self {
            let probe = Self::default();
            probe.gated.store(true, Ordering::SeqCst);
            probe
        }

        async fn enter(&self) {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            if self.gated.load(Ordering::SeqCst) {
                self.gate.acquire().await.unwrap().forget();
            }
        }

        fn leave(&self) {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    macro_rules! probed {
        ($self:ident, $call:expr) => {{
            $self.enter().await;
            let result = $call.await;
            $self.leave();
            result
        }};
    }

    #[async_trait]
    impl Psa for Probe {
        async fn get_ticket(&self, id: i64) -> Result<Option<PsaTicket>, ApiError> {
            probed!(self, self.inner.get_ticket(id))
        }
        async fn find_ticket_by_external_id(
            &self,
            external_id: &str,
        ) -> Result<Option<PsaTicket>, ApiError> {
            probed!(self, self.inner.find_ticket_by_external_id(external_id))
        }
        async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError> {
            probed!(self, self.inner.create_ticket(ticket))
        }
        async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError> {
            probed!(self, self.inner.update_ticket(id, patch))
        }
        async fn list_notes(&self, ticket_id: i64) -> Result<Vec<PsaNote>, ApiError> {
            probed!(self, self.inner.list_notes(ticket_id))
        }
        async fn add_note(&self, ticket_id: i64, note: &NewPsaNote) -> Result<i64, ApiError> {
            probed!(self, self.inner.add_note(ticket_id, note))
        }
        async fn resource_name(&self, resource_id: i64) -> Result<Option<String>, ApiError> {
            probed!(self, self.inner.resource_name(resource_id))
        }
        async fn company_for_reference(&self, reference: &str) -> Result<Option<i64>, ApiError> {
            probed!(self, self.inner.company_for_reference(reference))
        }
        async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError> {
            probed!(self, self.inner.ticket_picklist(field))
        }
        async fn tickets_changed_since(
            &self,
            since: DateTime<Utc>,
        ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError> {
            probed!(self, self.inner.tickets_changed_since(since))
        }
    }

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn clock() -> Arc<FixedClock> {
        Arc::new(FixedClock::at(
            Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
        ))
    }

    /// One request per second, three back to back.
    fn small_budget() -> AutotaskBudget {
        AutotaskBudget {
            requests_per_hour: 3_600,
            burst: 3,
            max_concurrent: 2,
            acquire_wait: Duration::from_millis(20),
            busy_retry_after: Duration::from_secs(5),
        }
    }

    fn budgeted(budgets: &AutotaskBudgets, tenant_id: &str, probe: &Arc<Probe>) -> Arc<dyn Psa> {
        budgets.wrap(&tenant(tenant_id), probe.clone())
    }

    fn assert_rate_limited(result: Result<impl std::fmt::Debug, ApiError>, after: Duration) {
        let error = result.expect_err("call should be turned away");
        assert!(
            matches!(
                error,
                ApiError::RateLimited { system: "autotask", retry_after } if retry_after == after
            ),
            "{error:?}"
        );
        let error = SyncError::from(error);
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(after));
    }

    #[test]
    fn defaults_leave_headroom_under_autotask_limits() {
        let budget = AutotaskBudget::default();
        assert_eq!(budget.requests_per_hour, 9_000);
        assert_eq!(budget.burst, 150);
        assert_eq!(budget.max_concurrent, 3);
        assert_eq!(budget.interval(), Duration::from_millis(400));
    }

    #[tokio::test]
    async fn call_past_the_bucket_fails_retryable_without_reaching_autotask() {
        let clock = clock();
        let budgets = AutotaskBudgets::new(small_budget(), clock.clone());
        let probe = Arc::new(Probe::default());
        let psa = budgeted(&budgets, "acme", &probe);

        for id in 1..=3 {
            assert_eq!(psa.get_ticket(id).await.unwrap(), None);
        }
        assert_rate_limited(psa.get_ticket(4).await, Duration::from_secs(1));
        assert_rate_limited(psa.list_notes(4).await, Duration::from_secs(1));
        assert_eq!(probe.calls(), 3, "turned-away calls never reach Autotask");

        // Half the refill time later, half of it remains.
        clock.advance(chrono::Duration::milliseconds(500));
        assert_rate_limited(
            psa.ticket_picklist("status").await,
            Duration::from_millis(500),
        );
        assert_eq!(probe.calls(), 3);
    }

    #[tokio::test]
    async fn calls_succeed_again_once_the_clock_refills_the_bucket() {
        let clock = clock();
        let budgets = AutotaskBudgets::new(small_budget(), clock.clone());
        let probe = Arc::new(Probe::default());
        let psa = budgeted(&budgets, "acme", &probe);
        for id in 1..=3 {
            psa.get_ticket(id).await.unwrap();
        }
        assert!(psa.get_ticket(4).await.is_err());

        // One refill interval buys exactly one call.
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(psa.resource_name(7).await.unwrap(), None);
        assert_rate_limited(psa.get_ticket(5).await, Duration::from_secs(1));

        // A long idle spell refills no more than the burst.
        clock.advance(chrono::Duration::hours(2));
        for _ in 0..3 {
            psa.ticket_picklist("priority").await.unwrap();
        }
        assert_rate_limited(psa.get_ticket(6).await, Duration::from_secs(1));
        assert_eq!(probe.calls(), 3 + 1 + 3);
    }

    #[tokio::test]
    async fn a_clock_stepping_back_adds_no_budget() {
        let clock = clock();
        let budgets = AutotaskBudgets::new(small_budget(), clock.clone());
        let probe = Arc::new(Probe::default());
        let psa = budgeted(&budgets, "acme", &probe);
        for id in 1..=3 {
            psa.get_ticket(id).await.unwrap();
        }
        clock.advance(chrono::Duration::minutes(-10));
        assert_rate_limited(psa.get_ticket(4).await, Duration::from_secs(1));
        clock.advance(chrono::Duration::minutes(10));
        assert_rate_limited(psa.get_ticket(4).await, Duration::from_secs(1));
        clock.advance(chrono::Duration::seconds(1));
        psa.get_ticket(4).await.unwrap();
    }

    #[tokio::test]
    async fn tenants_have_separate_budgets_and_share_their_own() {
        let clock = clock();
        let budgets = AutotaskBudgets::new(small_budget(), clock.clone());
        let probe = Arc::new(Probe::default());
        // Two connectors of one tenant (e.g. before and after a client
        // rebuild) draw on the same budget.
        let acme_1 = budgeted(&budgets, "acme", &probe);
        let acme_2 = budgeted(&budgets, "acme", &probe);
        let globex = budgeted(&budgets, "globex", &probe);
        assert!(Arc::ptr_eq(
            &budgets.for_tenant(&tenant("acme")),
            &budgets.for_tenant(&tenant("acme"))
        ));

        acme_1.get_ticket(1).await.unwrap();
        acme_2.get_ticket(2).await.unwrap();
        acme_1.get_ticket(3).await.unwrap();
        assert_rate_limited(acme_2.get_ticket(4).await, Duration::from_secs(1));

        for id in 1..=3 {
            globex.get_ticket(id).await.unwrap();
        }
        assert_rate_limited(globex.get_ticket(4).await, Duration::from_secs(1));
        assert_eq!(probe.calls(), 6);
    }

    #[tokio::test]
    async fn concurrency_cap_turns_away_a_third_call_and_a_released_permit_admits_the_next() {
        let clock = clock();
        let budgets = AutotaskBudgets::new(small_budget(), clock.clone());
        let probe = Arc::new(Probe::gated());
        let psa = budgeted(&budgets, "acme", &probe);

        let blocked: Vec<_> = (1..=2)
            .map(|id| {
                let psa = psa.clone();
                tokio::spawn(async move { psa.get_ticket(id).await })
            })
            .collect();
        while probe.in_flight.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }

        // Both permits are held inside Autotask: the third call waits the
        // (tiny) acquire time, then fails retryable.
        assert_rate_limited(psa.get_ticket(3).await, Duration::from_secs(5));
        assert_eq!(probe.calls(), 2);
        assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 2);

        // One call finishes and frees its permit; the next call goes through.
        probe.gate.add_permits(1);
        let (finished, _, mut still_blocked) = futures::future::select_all(blocked).await;
        assert_eq!(finished.unwrap().unwrap(), None);
        probe.gated.store(false, Ordering::SeqCst);
        assert_eq!(psa.get_ticket(4).await.unwrap(), None);
        assert_eq!(probe.calls(), 3);
        assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 2);

        probe.gate.add_permits(1);
        still_blocked.pop().unwrap().await.unwrap().unwrap();

        // The call turned away for concurrency cost no token: the burst of 3
        // went to calls 1, 2 and 4, so only now is the bucket empty.
        assert_rate_limited(psa.get_ticket(5).await, Duration::from_secs(1));
    }
}
