//! The per-tenant Autotask budget (`bridge::connectors::budget`) in front of
//! a probed fake Autotask, on a hand-set clock: calls past the bucket or the
//! concurrency cap are turned away retryable without reaching Autotask,
//! tenants do not share budgets, the shared budget leases tokens in blocks, an
//! unreachable store fails the call retryable, and a cancelled take gives its
//! slot back. (The contract every store under the shared budget must pass is
//! `testkit::budget_contract`, run in `embedded_adapters.rs`.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bridge::adapters::embedded::SqliteStore;
use bridge::connectors::budget::{AutotaskBudget, AutotaskBudgets};
use bridge::error::{ApiError, StoreError, SyncError};
use bridge::model::{
    NewPsaNote, NewPsaTicket, PicklistValue, PsaNote, PsaTicket, PsaTicketPatch, TenantId,
};
use bridge::ports::{Psa, Store};
use chrono::{DateTime, TimeZone, Utc};
use testkit::fakes::{FakePsa, FixedClock};
use testkit::hooks::{HookedStore, PutHook};
use tokio::sync::Semaphore;

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
    async fn new_ticket_problems(&self, ticket: &NewPsaTicket) -> Result<Vec<String>, ApiError> {
        probed!(self, self.inner.new_ticket_problems(ticket))
    }
    async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError> {
        probed!(self, self.inner.create_ticket(ticket))
    }
    fn title_max_chars(&self) -> usize {
        self.inner.title_max_chars()
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
        ..AutotaskBudget::default()
    }
}

fn budgeted(budgets: &AutotaskBudgets, tenant_id: &str, probe: &Arc<Probe>) -> Arc<dyn Psa> {
    budgets.wrap(&tenant(tenant_id), probe.clone())
}

/// Tenant "acme" behind `small_budget` kept in memory, on a test clock, with
/// `probe` standing in for Autotask.
fn acme_on_small_budget(probe: Probe) -> (Arc<FixedClock>, Arc<Probe>, Arc<dyn Psa>) {
    let clock = clock();
    let budgets = AutotaskBudgets::new(small_budget(), clock.clone());
    let probe = Arc::new(probe);
    let psa = budgeted(&budgets, "acme", &probe);
    (clock, probe, psa)
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

#[tokio::test]
async fn call_past_the_bucket_fails_retryable_without_reaching_autotask() {
    let (clock, probe, psa) = acme_on_small_budget(Probe::default());

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
    let (clock, probe, psa) = acme_on_small_budget(Probe::default());
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
    let (clock, _probe, psa) = acme_on_small_budget(Probe::default());
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
    let (_clock, probe, psa) = acme_on_small_budget(Probe::gated());

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

/// A store that is down for every call.
struct DownStore;

#[async_trait]
impl Store for DownStore {
    async fn get(&self, _: &str, _: &str) -> Result<Option<bridge::ports::Item>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn put(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: bridge::ports::Condition,
        _: Option<i64>,
    ) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn query(
        &self,
        _: &str,
        _: &str,
        _: bool,
        _: usize,
    ) -> Result<Vec<bridge::ports::Item>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn scan_sort_key(&self, _: &str) -> Result<Vec<bridge::ports::Item>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn an_unreachable_shared_budget_fails_the_call_retryable_without_reaching_autotask() {
    let budgets = AutotaskBudgets::new(small_budget(), clock()).shared_through(Arc::new(DownStore));
    let probe = Arc::new(Probe::default());
    let psa = budgeted(&budgets, "acme", &probe);

    let error = psa.get_ticket(1).await.expect_err("no budget, no call");
    assert!(
        matches!(&error, ApiError::Transport { system: "autotask budget store", message } if message.contains("connection refused")),
        "{error:?}"
    );
    assert!(SyncError::from(error).is_retryable());
    assert_eq!(probe.calls(), 0);
}

#[tokio::test]
async fn shared_budget_leases_tokens_in_blocks_not_per_call() {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let budget = AutotaskBudget {
        lease_block: 5,
        ..small_budget()
    };
    let budgets = AutotaskBudgets::new(
        AutotaskBudget {
            burst: 100,
            ..budget
        },
        clock(),
    )
    .shared_through(store.clone());
    let probe = Arc::new(Probe::default());
    let psa = budgeted(&budgets, "acme", &probe);
    let bucket_version = || async {
        store
            .get("TENANT#acme", bridge::repo::AUTOTASK_RATE_SK)
            .await
            .unwrap()
            .map(|item| item.version)
    };

    psa.get_ticket(1).await.unwrap();
    assert_eq!(
        bucket_version().await,
        Some(1),
        "the first call leases a block"
    );
    for id in 2..=5 {
        psa.get_ticket(id).await.unwrap();
    }
    assert_eq!(
        bucket_version().await,
        Some(1),
        "the other four calls of the block never touch the shared bucket"
    );
    psa.get_ticket(6).await.unwrap();
    assert_eq!(
        bucket_version().await,
        Some(2),
        "the sixth leases the next block"
    );
    assert_eq!(probe.calls(), 6);
}

/// Lets the first slot-taking write land, says so, then never answers: the
/// process is cancelled (an aborted job) right after its write took the slot.
struct LandThenHang {
    armed: AtomicBool,
    landed: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

#[async_trait]
impl PutHook for LandThenHang {
    async fn before_put(
        &self,
        inner: &dyn Store,
        pk: &str,
        sk: &str,
        body: &str,
        condition: &bridge::ports::Condition,
    ) -> Result<(), StoreError> {
        let takes_a_slot =
            sk.starts_with(bridge::repo::AUTOTASK_SLOT_SK_PREFIX) && !body.contains("\"holder\":0");
        if takes_a_slot && self.armed.swap(false, Ordering::SeqCst) {
            inner.put(pk, sk, body, *condition, None).await?;
            if let Some(landed) = self.landed.lock().unwrap().take() {
                let _ = landed.send(());
            }
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_take_cancelled_after_its_write_landed_gives_the_slot_back() {
    let (landed, write_landed) = tokio::sync::oneshot::channel();
    let store: Arc<dyn Store> = Arc::new(HookedStore {
        inner: Arc::new(SqliteStore::in_memory().unwrap()),
        hook: LandThenHang {
            armed: AtomicBool::new(true),
            landed: std::sync::Mutex::new(Some(landed)),
        },
    });
    let budget = AutotaskBudget {
        max_concurrent: 1,
        ..small_budget()
    };
    // The clock stands still: the 2-minute lease never runs out by itself.
    let clock = clock();
    let cancelled =
        AutotaskBudgets::new(budget.clone(), clock.clone()).shared_through(store.clone());
    let other = AutotaskBudgets::new(budget, clock).shared_through(store);
    let acme = tenant("acme");

    // The take is dropped (cancelled) once its write has landed.
    let budget = cancelled.for_tenant(&acme);
    tokio::select! {
        landed = write_landed => landed.expect("the hook signals the landed write"),
        taken = budget.admit() => {
            panic!("the take should hang after its write landed: {:?}", taken.map(|_| ()))
        }
    }

    // The slot comes back in the background; a bounded poll waits for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match other.for_tenant(&acme).admit().await {
            Ok(admission) => {
                admission.release().await;
                break;
            }
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "the cancelled take kept the only slot: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
