//! The local runner: ingest routers, the worker and the reconciliation sweep
//! over any set of adapters (embedded by default; the AWS ones in the
//! emulator tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use bridge::error::StoreError;
use bridge::ingest::{autotask_router, zendesk_router, IngestState};
use bridge::ports::{Clock, Connectors, Queue, Secrets, Store};
use bridge::reconcile::{SweepOptions, SweepReport, Sweeper};
use bridge::worker::Worker;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

/// The ports the local process runs on.
#[derive(Clone)]
pub struct Adapters {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<dyn Secrets>,
    pub connectors: Arc<dyn Connectors>,
    pub clock: Arc<dyn Clock>,
    /// Delay before a permanently failing job is tried again.
    pub permanent_retry: std::time::Duration,
    /// First delay of the exponential backoff after a transient failure.
    pub backoff_base: std::time::Duration,
}

impl Adapters {
    pub fn ingest_state(&self) -> IngestState {
        IngestState {
            store: self.store.clone(),
            secrets: self.secrets.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
        }
    }

    pub fn worker(&self) -> Worker {
        Worker::new(
            self.store.clone(),
            self.secrets.clone(),
            self.connectors.clone(),
            self.clock.clone(),
        )
        .with_permanent_retry(self.permanent_retry)
        .with_backoff_base(self.backoff_base)
    }

    /// The sweeper. `every`: the timer's interval, if the process sweeps on
    /// one; a tenant's first sweep looks back that far.
    pub fn sweeper(&self, every: Option<Duration>) -> Sweeper {
        let mut options = SweepOptions::default();
        if let Some(every) = every {
            options.interval = every;
        }
        Sweeper::new(
            self.store.clone(),
            self.secrets.clone(),
            self.connectors.clone(),
            self.queue.clone(),
            self.clock.clone(),
        )
        .with_options(options)
    }
}

/// Every HTTP function of psa-bridge on one router.
pub fn router(state: IngestState) -> axum::Router {
    zendesk_router(state.clone())
        .merge(autotask_router(state))
        .route("/healthz", get(|| async { "ok" }))
}

/// A running local bridge.
pub struct LocalBridge {
    pub base_url: String,
    pub adapters: Adapters,
    sweeper: Sweeper,
    shutdown: watch::Sender<bool>,
    worker_concurrency: usize,
    server: JoinHandle<()>,
    worker: JoinHandle<()>,
    sweeps: JoinHandle<()>,
}

impl LocalBridge {
    /// Binds `listen` (port 0 picks one), serves the ingest routes and runs
    /// the worker with `worker_concurrency` jobs in flight (0: ingest only,
    /// jobs stay queued — for ingest tests and benchmarks).
    pub async fn start(
        adapters: Adapters,
        listen: SocketAddr,
        worker_concurrency: usize,
    ) -> std::io::Result<Self> {
        Self::start_with_sweep(adapters, listen, worker_concurrency, None).await
    }

    /// Like `start`, and with `sweep_every` runs the reconciliation sweep at
    /// start (catching up on what changed while the process was down) and then
    /// at that interval. Without it, sweeps run only through `sweep_now`.
    pub async fn start_with_sweep(
        adapters: Adapters,
        listen: SocketAddr,
        worker_concurrency: usize,
        sweep_every: Option<Duration>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let app = router(adapters.ingest_state());
        let mut server_stop = stop.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stopped| *stopped).await;
            });
            if let Err(err) = serve.await {
                tracing::error!(%err, "HTTP server stopped");
            }
        });
        let sweep_stop = stop.clone();
        let worker = spawn_worker(&adapters, worker_concurrency, stop);
        let sweeper = adapters.sweeper(sweep_every);
        let sweeps = tokio::spawn(run_sweeps(sweeper.clone(), sweep_every, sweep_stop));
        info!(%address, "psa-bridge listening");
        Ok(Self {
            base_url: format!("http://{address}"),
            adapters,
            sweeper,
            shutdown,
            worker_concurrency,
            server,
            worker,
            sweeps,
        })
    }

    /// Kills the worker as a crash would: every running job stops at whatever
    /// await it has reached, nothing is settled, and the queue redelivers the
    /// messages after their visibility timeout. Then starts a fresh worker, as
    /// Lambda would start a new instance. For the chaos tests.
    pub async fn crash_worker(&mut self) {
        self.worker.abort();
        let _ = (&mut self.worker).await;
        let stop = self.shutdown.subscribe();
        self.worker = spawn_worker(&self.adapters, self.worker_concurrency, stop);
        tracing::warn!("worker killed and restarted");
    }

    /// Runs one reconciliation sweep over every active tenant now.
    pub async fn sweep_now(&self) -> Result<Vec<SweepReport>, StoreError> {
        self.sweeper.sweep_all().await
    }

    /// Stops taking requests and jobs; in-flight jobs that do not finish are
    /// redelivered after their visibility timeout.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.worker.await;
        let _ = self.sweeps.await;
    }
}

fn spawn_worker(
    adapters: &Adapters,
    concurrency: usize,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let worker = adapters.worker();
    let queue = adapters.queue.clone();
    tokio::spawn(async move {
        if concurrency > 0 {
            worker.run_queue(queue, concurrency, stop).await;
        }
    })
}

/// The sweep timer. A sweep cut short by shutdown is harmless: cursors move
/// only after their jobs are queued.
async fn run_sweeps(sweeper: Sweeper, every: Option<Duration>, mut stop: watch::Receiver<bool>) {
    let Some(every) = every else { return };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        tokio::select! {
            result = sweeper.sweep_all() => match result {
                Ok(reports) => {
                    let failed = reports.iter().filter(|r| !r.is_ok()).count();
                    info!(tenants = reports.len(), failed, "sweep done");
                }
                Err(err) => tracing::error!(%err, "sweep could not list tenants"),
            },
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
