//! The end-to-end world: the local bridge and, for each tenant, a sandbox
//! Zendesk and a sandbox Autotask (`psa_bridge_local::world`), on a backend a
//! test chooses (the embedded adapters, or the AWS ones against the local
//! emulator), with a probe of its queue so tests can wait until it drains.

use std::collections::HashMap;
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

pub use psa_bridge_local::world::{
    wait_for, AutotaskEvents, TenantSpec, TenantWorld, WorldOptions, CLUSTER_FIELD,
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

/// The bridge and every tenant's sandboxes, on a backend.
pub struct World {
    pub bridge: LocalBridge,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub probe: Arc<dyn QueueProbe>,
    pub tenants: Vec<TenantWorld>,
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
        let psa_bridge_local::world::World {
            bridge,
            store,
            queue,
            tenants,
        } = psa_bridge_local::world::World::start_on(adapters, specs, &secrets, options).await?;
        Ok(Self {
            bridge,
            store,
            queue,
            probe,
            tenants,
        })
    }

    pub fn tenant(&self, id: &str) -> &TenantWorld {
        self.tenants
            .iter()
            .find(|t| t.id.as_str() == id)
            .unwrap_or_else(|| panic!("no tenant {id}"))
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub async fn queue_depth(&self) -> anyhow::Result<QueueDepth> {
        self.probe.depth().await
    }

    /// Runs one reconciliation sweep over every tenant now; the worker then
    /// drains the jobs it queued.
    pub async fn sweep_now(&self) -> Result<Vec<SweepReport>, StoreError> {
        self.bridge.sweep_now().await
    }
}
