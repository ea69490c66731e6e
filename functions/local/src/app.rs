//! The local runner: ingest routers and the worker over any set of adapters
//! (embedded by default; the AWS ones in the emulator tests).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use bridge::ingest::{autotask_router, zendesk_router, IngestState};
use bridge::ports::{Clock, Connectors, Queue, Secrets, Store};
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
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    worker: JoinHandle<()>,
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
        let worker = adapters.worker();
        let queue = adapters.queue.clone();
        let worker = tokio::spawn(async move {
            if worker_concurrency > 0 {
                worker.run_queue(queue, worker_concurrency, stop).await;
            }
        });
        info!(%address, "psa-bridge listening");
        Ok(Self {
            base_url: format!("http://{address}"),
            adapters,
            shutdown,
            server,
            worker,
        })
    }

    /// Stops taking requests and jobs; in-flight jobs that do not finish are
    /// redelivered after their visibility timeout.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.worker.await;
    }
}
