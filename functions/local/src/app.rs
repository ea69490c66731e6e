//! The local runner: ingest routers, the worker and the reconciliation sweep
//! over any set of adapters (embedded by default; the AWS ones in the
//! emulator tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use admin::Accounts;
use axum::routing::get;
use bridge::assets::{inventory_router, run_due_assets, AssetDeps, AssetRunOptions};
use bridge::connectors::connectwise::inbound::SigningKeys;
use bridge::error::StoreError;
use bridge::ingest::{autotask_router, connectwise_router, zendesk_router, IngestState};
use bridge::reconcile::{SweepReport, Sweeper};
use bridge::wiring::Wiring;

use crate::console::ConsoleOptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

/// Every HTTP function of psa-bridge on one router.
pub fn router(state: IngestState) -> axum::Router {
    let signing_keys = Arc::new(SigningKeys::new(bridge::connectors::http::client()));
    zendesk_router(state.clone())
        .merge(autotask_router(state.clone()))
        .merge(inventory_router(state.clone()))
        .merge(connectwise_router(state, signing_keys))
        .route("/healthz", get(|| async { "ok" }))
}

/// A running local bridge.
pub struct LocalBridge {
    pub base_url: String,
    /// The console's accounts, when it is served (`/admin`).
    pub accounts: Option<Accounts>,
    pub wiring: Wiring,
    sweeper: Sweeper,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    worker: JoinHandle<()>,
    sweeps: JoinHandle<()>,
    assets: JoinHandle<()>,
}

/// How often the local asset timer looks for tenants whose asset run is due
/// (a first run, a schedule day in UTC not yet run, or an interrupted run to
/// resume), as AWS's asset function does: a first load stopped by its
/// budget goes on within minutes. A pass with nothing due reads one item
/// per tenant with asset sync.
pub const ASSET_TIMER_EVERY: Duration = Duration::from_secs(300);

impl LocalBridge {
    /// Binds `listen` (port 0 picks one), serves the ingest routes and runs
    /// the worker with `worker_concurrency` jobs in flight (0: ingest only,
    /// jobs stay queued — for ingest tests and benchmarks).
    pub async fn start(
        wiring: Wiring,
        listen: SocketAddr,
        worker_concurrency: usize,
    ) -> std::io::Result<Self> {
        Self::start_with_sweep(wiring, listen, worker_concurrency, None).await
    }

    /// Like `start`, and with `sweep_every` runs the reconciliation sweep at
    /// start (catching up on what changed while the process was down) and then
    /// at that interval (a tenant's first sweep looks back that far). Without
    /// it, sweeps run only through `sweep_now`.
    pub async fn start_with_sweep(
        wiring: Wiring,
        listen: SocketAddr,
        worker_concurrency: usize,
        sweep_every: Option<Duration>,
    ) -> std::io::Result<Self> {
        Self::start_with_console(wiring, listen, worker_concurrency, sweep_every, None).await
    }

    /// Like `start_with_sweep`, and with `console` serves the admin console
    /// at `/admin` on the same port.
    pub async fn start_with_console(
        mut wiring: Wiring,
        listen: SocketAddr,
        worker_concurrency: usize,
        sweep_every: Option<Duration>,
        console: Option<ConsoleOptions>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let base_url = format!("http://{address}");
        let (shutdown, stop) = watch::channel(false);
        if let Some(every) = sweep_every {
            wiring.sweep_options.interval = every;
        }
        let mut app = router(wiring.ingest_state());
        let mut accounts = None;
        if let Some(options) = &console {
            let console_accounts = crate::console::accounts(&wiring, &base_url, options);
            app = app.nest(
                "/admin",
                crate::console::router(
                    crate::console::accounts(&wiring, &base_url, options),
                    &wiring,
                    wiring.sweeper(),
                    &base_url,
                    options,
                ),
            );
            accounts = Some(console_accounts);
        }
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
        let worker = spawn_worker(&wiring, worker_concurrency, stop);
        let sweeper = wiring.sweeper();
        let sweeps = tokio::spawn(run_sweeps(sweeper.clone(), sweep_every, sweep_stop.clone()));
        // The asset schedule runs beside the sweep timer: a bridge started
        // without timers (tests, benchmarks) runs asset sync only on demand.
        let assets = tokio::spawn(run_asset_timer(
            wiring.clone(),
            sweep_every.map(|_| ASSET_TIMER_EVERY),
            sweep_stop,
        ));
        info!(%address, console = console.is_some(), "psa-bridge listening");
        Ok(Self {
            base_url,
            accounts,
            wiring,
            sweeper,
            shutdown,
            server,
            worker,
            sweeps,
            assets,
        })
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
        let _ = self.assets.await;
    }
}

fn spawn_worker(
    wiring: &Wiring,
    concurrency: usize,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let worker = wiring.worker();
    let queue = wiring.queue.clone();
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

/// The asset timer: each tick runs every tenant whose asset run is due (its
/// first run, an interrupted one, or once per schedule day: days of the
/// month in UTC). A run cut short by shutdown is harmless: it resumes on the
/// next tick after its lease runs out.
async fn run_asset_timer(wiring: Wiring, every: Option<Duration>, mut stop: watch::Receiver<bool>) {
    let Some(every) = every else { return };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let deps = AssetDeps {
            store: wiring.store.as_ref(),
            secrets: wiring.secrets.as_ref(),
            connectors: wiring.connectors.as_ref(),
            clock: wiring.clock.as_ref(),
        };
        let options = AssetRunOptions::default();
        tokio::select! {
            result = run_due_assets(deps, &options) => match result {
                Ok(summary) if summary.runs.is_empty() => {}
                Ok(summary) => info!(
                    tenants = summary.runs.len(),
                    failed = summary.failed(),
                    "scheduled asset sync done"
                ),
                Err(err) => tracing::error!(%err, "asset schedule could not list tenants"),
            },
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
