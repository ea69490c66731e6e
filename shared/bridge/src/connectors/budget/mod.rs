//! A per-tenant Autotask request budget (DESIGN.md "Facts about the outside
//! systems": about 10,000 requests per hour per database and a few concurrent
//! threads per integration; exceed them and calls fail).
//!
//! The budget never sleeps in the worker (DESIGN.md rule 6). When a tenant's
//! budget is spent, a call fails at once with a retryable
//! [`ApiError::RateLimited`] whose `retry_after` is the time until the budget
//! allows the next request; the worker turns that into a delayed retry through
//! the queue's visibility timeout. The only waiting is for a concurrency permit
//! or slot held by a call in flight, and that wait is short and bounded
//! ([`AutotaskBudget::acquire_wait`]).
//!
//! Where the budget lives: by default in process memory, shared by every
//! connector of a tenant in that process. Given a store
//! ([`AutotaskBudgets::shared_through`]) it lives in the store instead
//! ([`ledger`]), so that every process of a deployment (any number of worker
//! Lambda instances plus the sweep) keeps to one budget per tenant together:
//! tokens are leased from a shared bucket in small blocks and each call holds
//! one of the tenant's shared concurrency slots, which the process keeps for
//! its next call until it has been idle a moment ([`HeldSlots`]). The Lambda functions and the
//! local process both share it; the in-memory mode is for unit tests and
//! tools that talk to Autotask without a store. Autotask's own 429s remain
//! retryable as a backstop.

pub mod ledger;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::assets::ports::{AssetPsa, CiPatch, NewCi, PsaCi};
use crate::config::AssetSettings;
use crate::error::{ApiError, StoreError};
use crate::model::{
    NewPsaNote, NewPsaTicket, PicklistValue, PsaNote, PsaTicket, PsaTicketPatch, TenantId,
};
use crate::ports::{CiRef, Clock, Psa, Store, SystemClock};
use ledger::{SharedLedger, SlotLease, TokenLease};

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
    /// Calls in flight at once. Autotask allows three threads per object
    /// endpoint (Tickets, TicketNotes, ...) and integration tracking
    /// identifier; one cap of 3 across every endpoint keeps under that
    /// whatever the mix of calls. The default is 3.
    pub max_concurrent: usize,
    /// How long a call waits for a call in flight (of this process or, when
    /// shared, of any) to free a concurrency permit or slot before failing
    /// retryable. Short: this is waiting for a call in flight to finish, not
    /// sleeping until budget returns.
    pub acquire_wait: Duration,
    /// The `retry_after` of a call that found every concurrency permit taken.
    pub busy_retry_after: Duration,
    /// Shared budget only: tokens a process leases from the shared bucket at
    /// once. Larger means fewer store writes; unspent tokens of a process
    /// that goes idle are lost until the bucket refills, so keep it small
    /// next to `burst`. Default 10.
    pub lease_block: u32,
    /// Shared budget only: how long a call may hold a concurrency slot before
    /// the slot counts as free again (its holder is presumed dead). Longer
    /// than any call takes (the HTTP timeout is 20 s; paged calls make a few
    /// requests). Default 2 minutes.
    pub slot_lease: Duration,
    /// Shared budget only: how long a process keeps a concurrency slot after
    /// its last call, so that the next call (the rest of a job, the next
    /// job of a burst) reuses it instead of taking and giving back one per
    /// call, two store writes each time. Another process waits for such a
    /// slot at most this long, so keep it well under `acquire_wait`. A Lambda
    /// invocation gives its slots back when its batch is done
    /// ([`AutotaskBudgets::give_back_idle_slots`]), since a frozen instance
    /// cannot. Zero gives every slot back as soon as its call is over.
    /// Default 1 second.
    pub slot_idle_hold: Duration,
}

impl Default for AutotaskBudget {
    fn default() -> Self {
        Self {
            requests_per_hour: 9_000,
            burst: 150,
            max_concurrent: 3,
            acquire_wait: crate::timing::BUDGET_ACQUIRE_WAIT,
            busy_retry_after: Duration::from_secs(5),
            lease_block: 10,
            slot_lease: Duration::from_secs(120),
            slot_idle_hold: Duration::from_secs(1),
        }
    }
}

/// Which of an operator's budget limits was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetLimit {
    RequestsPerHour,
    MaxConcurrent,
}

impl AutotaskBudget {
    /// The budget of an operator's two limits, checked the same way wherever
    /// they come from (`bridge.toml`, the Lambda environment): each must be a
    /// whole number above 0; a zero must not silently mean "no Autotask at
    /// all" or "one". The burst is one minute's worth of the hourly rate.
    pub fn with_limits(requests_per_hour: u64, max_concurrent: u64) -> Result<Self, BudgetLimit> {
        let requests_per_hour = u32::try_from(requests_per_hour)
            .ok()
            .filter(|n| *n > 0)
            .ok_or(BudgetLimit::RequestsPerHour)?;
        let max_concurrent = usize::try_from(max_concurrent)
            .ok()
            .filter(|n| (1..=1_000).contains(n))
            .ok_or(BudgetLimit::MaxConcurrent)?;
        Ok(Self {
            requests_per_hour,
            burst: (requests_per_hour / 60).max(1),
            max_concurrent,
            ..Self::default()
        })
    }

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

/// Where a limiter's request tokens come from.
enum Tokens {
    /// This process's own bucket.
    Local(Mutex<Bucket>),
    /// The tenant's bucket in the store, leased in blocks of `lease_block`;
    /// `leased` are tokens this process holds and has not spent yet.
    Shared {
        ledger: Arc<SharedLedger>,
        leased: Mutex<u32>,
        lease_block: u32,
        slots: Arc<HeldSlots>,
    },
}

/// The tenant's shared concurrency slots this process holds between calls.
/// A slot is taken from the store when no held one is free and given back
/// after [`AutotaskBudget::slot_idle_hold`] without a call, so a burst of
/// calls costs two slot writes in all instead of two per call.
pub struct HeldSlots {
    ledger: Arc<SharedLedger>,
    idle: Mutex<Vec<IdleSlot>>,
    idle_hold: Duration,
    /// A kept slot with less lease left than this is renewed before use, so
    /// no call runs on a lease that could run out under it.
    renew_below: Duration,
}

struct IdleSlot {
    lease: SlotLease,
    since: tokio::time::Instant,
}

impl HeldSlots {
    /// A kept slot if one is idle (renewed if its lease runs low), else one
    /// taken from the store; `None` when none is free before `deadline`.
    async fn take(
        self: &Arc<Self>,
        clock: &dyn Clock,
        deadline: tokio::time::Instant,
    ) -> Result<Option<SlotLease>, StoreError> {
        loop {
            let kept = self.idle.lock().unwrap().pop();
            let Some(kept) = kept else { break };
            let now = clock.now();
            if kept.lease.remaining(now) >= self.renew_below {
                return Ok(Some(kept.lease));
            }
            // Lost (its lease ran out and another process took it): look on.
            if let Some(renewed) = self.ledger.renew_slot(kept.lease, now).await? {
                return Ok(Some(renewed));
            }
        }
        self.take_from_store(clock, deadline).await
    }

    /// A slot from the store, looking again with growing pauses until
    /// `deadline`: a slot given back a moment ago, or one lost to a
    /// concurrent taker while another was free, must not cost a call a
    /// delayed retry. The same short, bounded wait as for the process's own
    /// permits.
    async fn take_from_store(
        self: &Arc<Self>,
        clock: &dyn Clock,
        deadline: tokio::time::Instant,
    ) -> Result<Option<SlotLease>, StoreError> {
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(slot) = self.ledger.take_slot(clock.now()).await? {
                return Ok(Some(slot));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Keeps a slot whose call is over for the next call, and arranges for
    /// it to be given back once it has been idle for the hold.
    fn keep(self: &Arc<Self>, lease: SlotLease) {
        self.idle.lock().unwrap().push(IdleSlot {
            lease,
            since: tokio::time::Instant::now(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let slots = self.clone();
            runtime.spawn(async move {
                tokio::time::sleep(slots.idle_hold).await;
                slots.give_back_idle(slots.idle_hold).await;
            });
        }
    }

    /// Gives back every kept slot idle for at least `min_idle`.
    pub async fn give_back_idle(&self, min_idle: Duration) {
        let due: Vec<IdleSlot> = {
            let mut idle = self.idle.lock().unwrap();
            let (due, keep) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|slot| slot.since.elapsed() >= min_idle);
            *idle = keep;
            due
        };
        for slot in due {
            self.ledger.release_slot(&slot.lease).await;
        }
    }

    /// Ends a call's hold on a slot: kept for the next call, or given back
    /// at once when there is no hold.
    async fn end_call(self: &Arc<Self>, lease: SlotLease) {
        if self.idle_hold.is_zero() {
            self.ledger.release_slot(&lease).await;
        } else {
            self.keep(lease);
        }
    }
}

/// One tenant's budget: a token bucket for the hourly rate plus a semaphore
/// for the concurrency cap (and, when shared, the tenant's slots in the
/// store).
pub struct TenantLimiter {
    tenant: TenantId,
    interval: Duration,
    capacity: Duration,
    tokens: Tokens,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    acquire_wait: Duration,
    busy_retry_after: Duration,
    clock: Arc<dyn Clock>,
}

/// Leave to make one Autotask request. Give it back with
/// [`Admission::release`] when the call is over. Dropped instead (a call
/// cancelled by a timeout or an aborted job), the process's permit returns
/// at once and a shared slot is given back in the background; only if the
/// whole process dies does a slot wait for its lease to run out.
#[must_use = "give the admission back with Admission::release"]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    slot: Option<(Arc<HeldSlots>, SlotLease)>,
}

impl Admission {
    /// Gives the admission back once its call is over.
    pub async fn release(mut self) {
        if let Some((slots, lease)) = self.slot.take() {
            // Cancelled halfway, the lease is lost from here on and frees
            // itself when it runs out (as for a process that dies).
            slots.end_call(lease).await;
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some((slots, lease)) = self.slot.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { slots.end_call(lease).await });
            }
        }
    }
}

impl TenantLimiter {
    /// A limiter with a full bucket of its own.
    pub fn new(tenant: TenantId, budget: &AutotaskBudget, clock: Arc<dyn Clock>) -> Self {
        let interval = budget.interval();
        let capacity = interval.saturating_mul(budget.burst.max(1));
        let bucket = Bucket {
            credit: capacity,
            last: clock.now(),
        };
        Self::with_tokens(tenant, budget, clock, Tokens::Local(Mutex::new(bucket)))
    }

    /// A limiter drawing on the tenant's budget in `store`, together with
    /// every other process that does.
    pub fn shared(
        tenant: TenantId,
        budget: &AutotaskBudget,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> Self {
        let ledger = Arc::new(SharedLedger::new(
            store,
            tenant.clone(),
            budget.max_concurrent,
            budget.slot_lease,
        ));
        let slots = Arc::new(HeldSlots {
            ledger: ledger.clone(),
            idle: Mutex::new(Vec::new()),
            idle_hold: budget.slot_idle_hold,
            renew_below: budget.slot_lease / 2,
        });
        let tokens = Tokens::Shared {
            ledger,
            leased: Mutex::new(0),
            lease_block: budget.lease_block.max(1),
            slots,
        };
        Self::with_tokens(tenant, budget, clock, tokens)
    }

    fn with_tokens(
        tenant: TenantId,
        budget: &AutotaskBudget,
        clock: Arc<dyn Clock>,
        tokens: Tokens,
    ) -> Self {
        let interval = budget.interval();
        let max_concurrent = budget.max_concurrent.max(1);
        Self {
            tenant,
            interval,
            capacity: interval.saturating_mul(budget.burst.max(1)),
            tokens,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            acquire_wait: budget.acquire_wait,
            busy_retry_after: budget.busy_retry_after,
            clock,
        }
    }

    /// Takes a concurrency permit (waiting at most `acquire_wait` for a
    /// sibling call to finish), a shared slot when the budget is shared, and
    /// then one request token. Fails retryable when any is unavailable; a
    /// call turned away for concurrency costs no token.
    pub async fn admit(&self) -> Result<Admission, ApiError> {
        let deadline = tokio::time::Instant::now() + self.acquire_wait;
        // A free permit is taken at once; the timeout only bounds the wait.
        let acquired =
            tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await;
        // Timed out (or the semaphore closed, which it never is).
        let Ok(Ok(permit)) = acquired else {
            return Err(self.busy("this process"));
        };
        let slot = match &self.tokens {
            Tokens::Local(_) => None,
            Tokens::Shared { slots, .. } => match slots.take(self.clock.as_ref(), deadline).await {
                Ok(Some(slot)) => Some((slots.clone(), slot)),
                Ok(None) => return Err(self.busy("all processes")),
                Err(err) => return Err(self.store_failed(err)),
            },
        };
        let admission = Admission {
            _permit: permit,
            slot,
        };
        match self.take_token().await {
            Ok(()) => Ok(admission),
            Err(err) => {
                admission.release().await;
                Err(err)
            }
        }
    }

    /// Gives back the shared slots this limiter kept idle for at least
    /// `min_idle` (none when the budget is not shared).
    pub async fn give_back_idle_slots(&self, min_idle: Duration) {
        if let Tokens::Shared { slots, .. } = &self.tokens {
            slots.give_back_idle(min_idle).await;
        }
    }

    /// Runs `call` under an admission, given back whatever the call returns.
    pub async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let admission = self.admit().await?;
        let result = call.await;
        admission.release().await;
        result
    }

    fn busy(&self, whose: &str) -> ApiError {
        warn!(
            tenant = %self.tenant,
            max_concurrent = self.max_concurrent,
            whose,
            retry_after_ms = self.busy_retry_after.as_millis() as u64,
            "Autotask concurrency limit reached; failing fast for a delayed retry"
        );
        ApiError::RateLimited {
            system: SYSTEM,
            retry_after: self.busy_retry_after,
        }
    }

    fn spent(&self, retry_after: Duration) -> ApiError {
        warn!(
            tenant = %self.tenant,
            retry_after_ms = retry_after.as_millis() as u64,
            "Autotask request budget exhausted; failing fast for a delayed retry"
        );
        ApiError::RateLimited {
            system: SYSTEM,
            retry_after,
        }
    }

    /// The shared budget cannot be read: retryable, like the store itself.
    fn store_failed(&self, err: StoreError) -> ApiError {
        warn!(tenant = %self.tenant, %err, "shared Autotask budget unavailable; failing for a retry");
        ApiError::Transport {
            system: "autotask budget store",
            message: err.to_string(),
        }
    }

    /// Takes one token, or fails with how long until one is available.
    async fn take_token(&self) -> Result<(), ApiError> {
        match &self.tokens {
            Tokens::Local(bucket) => self.take_local_token(bucket).map_err(|d| self.spent(d)),
            Tokens::Shared {
                ledger,
                leased,
                lease_block,
                ..
            } => {
                {
                    let mut leased = leased.lock().unwrap();
                    if *leased > 0 {
                        *leased -= 1;
                        return Ok(());
                    }
                }
                let lease = ledger
                    .lease_tokens(self.clock.now(), *lease_block, self.interval, self.capacity)
                    .await
                    .map_err(|err| self.store_failed(err))?;
                match lease {
                    TokenLease::Granted(granted) => {
                        // One for this call, the rest for the next ones.
                        *leased.lock().unwrap() += granted - 1;
                        Ok(())
                    }
                    TokenLease::Empty { retry_after } => Err(self.spent(retry_after)),
                    TokenLease::Contended => Err(self.busy("the shared bucket")),
                }
            }
        }
    }

    fn take_local_token(&self, bucket: &Mutex<Bucket>) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut bucket = bucket.lock().unwrap();
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
    /// Where the budgets are shared with other processes; `None`: in memory.
    store: Option<Arc<dyn Store>>,
    tenants: Mutex<HashMap<TenantId, Arc<TenantLimiter>>>,
}

impl Default for AutotaskBudgets {
    fn default() -> Self {
        Self::new(AutotaskBudget::default(), Arc::new(SystemClock))
    }
}

impl AutotaskBudgets {
    /// Budgets kept in this process's memory.
    pub fn new(settings: AutotaskBudget, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            clock,
            store: None,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps every tenant's budget in `store`, shared with every other
    /// process using the same store.
    pub fn shared_through(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The tenant's limiter, made on first use.
    pub fn for_tenant(&self, tenant: &TenantId) -> Arc<TenantLimiter> {
        self.tenants
            .lock()
            .unwrap()
            .entry(tenant.clone())
            .or_insert_with(|| {
                let clock = self.clock.clone();
                Arc::new(match &self.store {
                    None => TenantLimiter::new(tenant.clone(), &self.settings, clock),
                    Some(store) => {
                        TenantLimiter::shared(tenant.clone(), &self.settings, clock, store.clone())
                    }
                })
            })
            .clone()
    }

    /// Gives back every shared slot kept between calls, of every tenant: a
    /// Lambda invocation calls this when its batch is done, because a frozen
    /// instance cannot give back a slot when its idle hold is over, and
    /// every other instance of the tenant would wait for its lease to run
    /// out.
    pub async fn give_back_idle_slots(&self) {
        let limiters: Vec<Arc<TenantLimiter>> =
            self.tenants.lock().unwrap().values().cloned().collect();
        for limiter in limiters {
            limiter.give_back_idle_slots(Duration::ZERO).await;
        }
    }

    /// `inner` behind the tenant's budget.
    pub fn wrap(&self, tenant: &TenantId, inner: Arc<dyn Psa>) -> Arc<dyn Psa> {
        Arc::new(BudgetedPsa::new(inner, self.for_tenant(tenant)))
    }

    /// Asset sync's `inner` behind the same budget as the tenant's tickets.
    pub fn wrap_assets(&self, tenant: &TenantId, inner: Arc<dyn AssetPsa>) -> Arc<dyn AssetPsa> {
        Arc::new(BudgetedAssets::new(inner, self.for_tenant(tenant)))
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
        self.limiter.run(self.inner.get_ticket(id)).await
    }

    async fn find_ticket_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<PsaTicket>, ApiError> {
        self.limiter
            .run(self.inner.find_ticket_by_external_id(external_id))
            .await
    }

    async fn new_ticket_problems(&self, ticket: &NewPsaTicket) -> Result<Vec<String>, ApiError> {
        // Usually served from the field cache, but it may read Autotask.
        self.limiter
            .run(self.inner.new_ticket_problems(ticket))
            .await
    }

    async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError> {
        self.limiter.run(self.inner.create_ticket(ticket)).await
    }

    fn title_max_chars(&self) -> usize {
        self.inner.title_max_chars()
    }
    async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError> {
        self.limiter.run(self.inner.update_ticket(id, patch)).await
    }

    async fn list_notes(&self, ticket_id: i64) -> Result<Vec<PsaNote>, ApiError> {
        // Every page under one token and one permit (see the type's docs).
        self.limiter.run(self.inner.list_notes(ticket_id)).await
    }

    async fn add_note(&self, ticket_id: i64, note: &NewPsaNote) -> Result<i64, ApiError> {
        self.limiter.run(self.inner.add_note(ticket_id, note)).await
    }

    async fn resource_name(&self, resource_id: i64) -> Result<Option<String>, ApiError> {
        self.limiter
            .run(self.inner.resource_name(resource_id))
            .await
    }

    async fn company_for_reference(&self, reference: &str) -> Result<Option<i64>, ApiError> {
        self.limiter
            .run(self.inner.company_for_reference(reference))
            .await
    }
    async fn configuration_item_for_reference(
        &self,
        reference: &str,
    ) -> Result<Option<CiRef>, ApiError> {
        self.limiter
            .run(self.inner.configuration_item_for_reference(reference))
            .await
    }

    async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError> {
        self.limiter.run(self.inner.ticket_picklist(field)).await
    }
    async fn ticket_statuses(&self, queue_id: Option<i64>) -> Result<Vec<PicklistValue>, ApiError> {
        self.limiter.run(self.inner.ticket_statuses(queue_id)).await
    }

    async fn tickets_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError> {
        // Every page under one token and one permit (see the type's docs).
        self.limiter
            .run(self.inner.tickets_changed_since(since))
            .await
    }
}

/// An [`AssetPsa`] drawing on its tenant's budget like [`BudgetedPsa`]: one
/// token and one permit per call, so an asset run and ticket sync share the
/// tenant's hourly requests and concurrency cap.
///
/// Calls of several requests run under one token, as `BudgetedPsa`'s paging
/// calls do: `asset_setup_problems` (up to four reads, once per run) and a
/// lookup whose matches span pages (rare: one key rarely matches 500 CIs).
/// `create_ci` and `update_ci` may first read the cached field descriptions
/// (once per five minutes).
pub struct BudgetedAssets {
    inner: Arc<dyn AssetPsa>,
    limiter: Arc<TenantLimiter>,
}

impl BudgetedAssets {
    pub fn new(inner: Arc<dyn AssetPsa>, limiter: Arc<TenantLimiter>) -> Self {
        Self { inner, limiter }
    }
}

#[async_trait]
impl AssetPsa for BudgetedAssets {
    async fn asset_setup_problems(
        &self,
        settings: &AssetSettings,
    ) -> Result<Vec<String>, ApiError> {
        self.limiter
            .run(self.inner.asset_setup_problems(settings))
            .await
    }

    async fn get_ci(&self, id: i64) -> Result<Option<PsaCi>, ApiError> {
        self.limiter.run(self.inner.get_ci(id)).await
    }

    async fn find_ci_by_udf(&self, udf: &str, value: &str) -> Result<Option<PsaCi>, ApiError> {
        self.limiter
            .run(self.inner.find_ci_by_udf(udf, value))
            .await
    }

    async fn find_ci_by_serial(&self, serial: &str) -> Result<Option<PsaCi>, ApiError> {
        self.limiter.run(self.inner.find_ci_by_serial(serial)).await
    }

    async fn find_ci_by_reference(
        &self,
        reference_number: &str,
    ) -> Result<Option<PsaCi>, ApiError> {
        self.limiter
            .run(self.inner.find_ci_by_reference(reference_number))
            .await
    }

    async fn ci_type_value(
        &self,
        value: &crate::config::FieldValue,
    ) -> Result<Option<i64>, ApiError> {
        if let crate::config::FieldValue::Number(_) = value {
            // A number needs no lookup (the connector passes it through).
            return self.inner.ci_type_value(value).await;
        }
        self.limiter.run(self.inner.ci_type_value(value)).await
    }

    async fn create_ci(&self, ci: &NewCi) -> Result<i64, ApiError> {
        self.limiter.run(self.inner.create_ci(ci)).await
    }

    async fn update_ci(&self, id: i64, patch: &CiPatch) -> Result<(), ApiError> {
        if patch.is_empty() {
            // Nothing to send: no token spent.
            return Ok(());
        }
        self.limiter.run(self.inner.update_ci(id, patch)).await
    }
}

#[cfg(test)]
mod tests;
