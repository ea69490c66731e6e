//! One wiring for every way psa-bridge runs: the local process, the Lambda
//! functions and the tests all build their ingest state, worker and sweeper
//! here, from one set of adapters, so a setting added once reaches them all.

use std::sync::Arc;
use std::time::Duration;

use crate::connectors::budget::AutotaskBudget;
use crate::connectors::{connectwise_default_budget, HttpConnectors};
use crate::ingest::IngestState;
use crate::ports::{Clock, Connectors, Queue, Secrets, Store, SystemClock};
use crate::reconcile::{SweepOptions, Sweeper};
use crate::sync::LeaseTiming;
use crate::timing::JOB_WRITE_BUDGET;
use crate::worker::{Worker, BASE_BACKOFF, PERMANENT_RETRY};

/// How the worker retries and how long its runs may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Delay before a permanently failing job is tried again (toward the DLQ).
    pub permanent_retry: Duration,
    /// First delay of the exponential backoff after a transient failure.
    pub backoff_base: Duration,
    /// How long one run may start writes before it re-queues the rest.
    pub write_budget: Duration,
    /// The pair lease's length and the part of it a write needs.
    pub lease: LeaseTiming,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            permanent_retry: PERMANENT_RETRY,
            backoff_base: BASE_BACKOFF,
            write_budget: JOB_WRITE_BUDGET,
            lease: LeaseTiming::default(),
        }
    }
}

/// The adapters of one backend (embedded, AWS) and what is built from them.
#[derive(Clone)]
pub struct Wiring {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<dyn Secrets>,
    pub connectors: Arc<dyn Connectors>,
    pub clock: Arc<dyn Clock>,
    pub worker_options: WorkerOptions,
    pub sweep_options: SweepOptions,
}

impl Wiring {
    /// The production wiring of a backend: the HTTP connectors with each
    /// tenant's Autotask budget kept in `store` (shared by every instance),
    /// ConnectWise tenants on the default ConnectWise budget, the wall clock,
    /// default retry and sweep settings.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        secrets: Arc<dyn Secrets>,
        autotask_budget: AutotaskBudget,
    ) -> Self {
        Self::with_budgets(
            store,
            queue,
            secrets,
            autotask_budget,
            connectwise_default_budget(),
        )
    }

    /// [`Wiring::new`] with each PSA's per-tenant budget given.
    pub fn with_budgets(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        secrets: Arc<dyn Secrets>,
        autotask_budget: AutotaskBudget,
        connectwise_budget: AutotaskBudget,
    ) -> Self {
        let connectors = HttpConnectors::default()
            .with_shared_autotask_budget(autotask_budget, store.clone())
            .with_shared_connectwise_budget(connectwise_budget, store.clone());
        Self {
            store,
            queue,
            secrets,
            connectors: Arc::new(connectors),
            clock: Arc::new(SystemClock),
            worker_options: WorkerOptions::default(),
            sweep_options: SweepOptions::default(),
        }
    }

    /// What the ingest routers need.
    pub fn ingest_state(&self) -> IngestState {
        IngestState {
            store: self.store.clone(),
            secrets: self.secrets.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
        }
    }

    pub fn worker(&self) -> Worker {
        let options = self.worker_options;
        Worker::new(
            self.store.clone(),
            self.secrets.clone(),
            self.connectors.clone(),
            self.clock.clone(),
        )
        .with_permanent_retry(options.permanent_retry)
        .with_backoff_base(options.backoff_base)
        .with_write_budget(options.write_budget)
        .with_lease(options.lease)
    }

    pub fn sweeper(&self) -> Sweeper {
        Sweeper::new(
            self.store.clone(),
            self.secrets.clone(),
            self.connectors.clone(),
            self.queue.clone(),
            self.clock.clone(),
        )
        .with_options(self.sweep_options.clone())
    }
}
