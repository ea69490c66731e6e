//! The end-to-end world: the local bridge and, for each tenant, a sandbox
//! Zendesk and a sandbox Autotask (`psa_bridge_local::world`), on a backend a
//! test chooses (the embedded adapters, or the AWS ones against the local
//! emulator), with a probe of its queue so tests can wait until it drains,
//! and the worker in a task of its own so tests can kill it.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bridge::adapters::embedded::{EmbeddedQueue, FileSecrets, QueueDepth, SqliteStore};
use bridge::config::TenantSecrets;
use bridge::error::StoreError;
use bridge::model::TenantId;
use bridge::ports::{Queue, Secrets, Store};
use bridge::reconcile::SweepReport;
use psa_bridge_local::world::{tenant_secrets, Adapters};
use psa_bridge_local::LocalBridge;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use psa_bridge_local::world::{
    wait_for, AutotaskEvents, ConnectWiseWorld, TenantSpec, TenantWorld, WorldOptions,
    CLUSTER_FIELD,
};

/// Where a world keeps its state: the embedded adapters, or the AWS ones
/// against the local emulator (see the end-to-end tests).
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    async fn build(
        &self,
        secrets: HashMap<TenantId, TenantSecrets>,
    ) -> anyhow::Result<BackendParts>;
}

/// Message counts of a backend's queue, for tests that wait until it drains.
#[async_trait::async_trait]
pub trait QueueProbe: Send + Sync {
    async fn depth(&self) -> anyhow::Result<QueueDepth>;
}

/// The adapters a backend provides.
pub struct BackendParts {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<dyn Secrets>,
    pub probe: Arc<dyn QueueProbe>,
}

/// The default backend: SQLite store and queue, secrets in memory.
pub struct Embedded {
    /// Keep store and queue in this folder (in memory when `None`).
    pub data_dir: Option<PathBuf>,
}

#[async_trait::async_trait]
impl QueueProbe for EmbeddedQueue {
    async fn depth(&self) -> anyhow::Result<QueueDepth> {
        Ok(EmbeddedQueue::depth(self)?)
    }
}

#[async_trait::async_trait]
impl Backend for Embedded {
    async fn build(
        &self,
        secrets: HashMap<TenantId, TenantSecrets>,
    ) -> anyhow::Result<BackendParts> {
        let (store, queue) = match &self.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                (
                    SqliteStore::open(&dir.join("store.sqlite3"))?,
                    EmbeddedQueue::open(&dir.join("queue.sqlite3"))?,
                )
            }
            None => (SqliteStore::in_memory()?, EmbeddedQueue::in_memory()?),
        };
        let queue = Arc::new(queue);
        Ok(BackendParts {
            store: Arc::new(store),
            queue: queue.clone(),
            secrets: Arc::new(FileSecrets::from_map(secrets)),
            probe: queue,
        })
    }
}

/// The bridge and every tenant's sandboxes, on a backend: the local world
/// (`psa_bridge_local::world::World`, whose fields and helpers it derefs to)
/// plus a probe of its queue and the worker, which the world runs itself
/// beside the bridge (the bridge serves ingest and sweeps), so a test can
/// kill it as a crash would ([`World::crash_worker`]).
pub struct World {
    local: psa_bridge_local::world::World,
    pub probe: Arc<dyn QueueProbe>,
    worker: Option<WorkerTask>,
}

impl Deref for World {
    type Target = psa_bridge_local::world::World;

    fn deref(&self) -> &Self::Target {
        &self.local
    }
}

/// The world's worker: the bridge's own worker loop over its wiring, in a
/// task the world holds.
struct WorkerTask {
    concurrency: usize,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WorkerTask {
    fn start(bridge: &LocalBridge, concurrency: usize) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = Self::spawn(bridge, concurrency, stopped);
        Self {
            concurrency,
            stop,
            task,
        }
    }

    fn spawn(
        bridge: &LocalBridge,
        concurrency: usize,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let worker = bridge.wiring.worker();
        let queue = bridge.wiring.queue.clone();
        tokio::spawn(async move { worker.run_queue(queue, concurrency, stop).await })
    }
}

impl World {
    /// A world on the embedded adapters, in memory.
    pub async fn start(specs: Vec<TenantSpec>, options: WorldOptions) -> anyhow::Result<Self> {
        Self::start_on(&Embedded { data_dir: None }, specs, options).await
    }

    pub async fn start_on(
        backend: &dyn Backend,
        specs: Vec<TenantSpec>,
        options: WorldOptions,
    ) -> anyhow::Result<Self> {
        let secrets = tenant_secrets(&specs)?;
        let BackendParts {
            store,
            queue,
            secrets: secrets_port,
            probe,
        } = backend.build(secrets.clone()).await?;
        let adapters = Adapters {
            store,
            queue,
            secrets: secrets_port,
        };
        // The bridge runs no worker of its own; the world runs it instead.
        let concurrency = options.worker_concurrency;
        let local = psa_bridge_local::world::World::start_on(
            adapters,
            specs,
            &secrets,
            WorldOptions {
                worker_concurrency: 0,
                ..options
            },
        )
        .await?;
        let worker = (concurrency > 0).then(|| WorkerTask::start(&local.bridge, concurrency));
        Ok(Self {
            local,
            probe,
            worker,
        })
    }

    pub async fn queue_depth(&self) -> anyhow::Result<QueueDepth> {
        self.probe.depth().await
    }

    /// Runs one reconciliation sweep over every tenant now; the worker then
    /// drains the jobs it queued.
    pub async fn sweep_now(&self) -> Result<Vec<SweepReport>, StoreError> {
        self.bridge.sweep_now().await
    }

    /// Kills the worker as a crash would: every running job stops at
    /// whatever await it has reached, nothing is settled, and the queue
    /// redelivers the messages after their visibility timeout. Then starts a
    /// fresh worker, as Lambda would start a new instance.
    pub async fn crash_worker(&mut self) {
        let worker = self
            .worker
            .as_mut()
            .expect("a world started with worker_concurrency 0 has no worker to kill");
        worker.task.abort();
        let _ = (&mut worker.task).await;
        worker.task = WorkerTask::spawn(
            &self.local.bridge,
            worker.concurrency,
            worker.stop.subscribe(),
        );
        tracing::warn!("worker killed and restarted");
    }

    /// Stops the bridge and the worker; jobs that do not finish are
    /// redelivered after their visibility timeout.
    pub async fn stop(self) {
        if let Some(worker) = &self.worker {
            let _ = worker.stop.send(true);
        }
        self.local.bridge.stop().await;
        if let Some(worker) = self.worker {
            let _ = worker.task.await;
        }
    }
}
