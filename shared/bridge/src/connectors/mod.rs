//! HTTP clients for the outside systems, written against their public API
//! contracts, plus the parsers and signature checks of their incoming calls.

pub mod autotask;
pub mod budget;
pub mod http;
pub mod setup;
pub mod zendesk;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::config::{TenantConfig, TenantSecrets};
use crate::error::SyncError;
use crate::model::TenantId;
use crate::ports::{Connectors, Psa, ServiceDesk, Store, SystemClock};

use budget::{AutotaskBudget, AutotaskBudgets};

/// How long a tenant's Autotask client (its zone discovery and picklist cache)
/// is reused before it is built afresh.
const CLIENT_TTL: Duration = Duration::from_secs(15 * 60);

/// What a cached client was built from; a config or credential change
/// (rotation) gives a new client at once.
fn fingerprint(config: &TenantConfig, secrets: &TenantSecrets) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    config.zendesk.base_url.hash(&mut hasher);
    config.zendesk.cluster_id_field.hash(&mut hasher);
    // Every Autotask setting the client applies (zone, note visibility,
    // ticket defaults): a change takes effect at once.
    serde_json::to_string(&config.autotask)
        .unwrap_or_default()
        .hash(&mut hasher);
    secrets.zendesk_email.hash(&mut hasher);
    secrets.zendesk_api_token.expose().hash(&mut hasher);
    secrets.zendesk_oauth_token.expose().hash(&mut hasher);
    secrets.autotask_username.hash(&mut hasher);
    secrets.autotask_secret.expose().hash(&mut hasher);
    secrets.autotask_integration_code.expose().hash(&mut hasher);
    hasher.finish()
}

struct Cached {
    fingerprint: u64,
    built: Instant,
    psa: Arc<dyn Psa>,
}

/// The real connectors: one shared HTTP client (connection pool), one cached
/// Autotask client per tenant, and one Autotask request budget per tenant
/// that every Autotask client of that tenant in this process draws on.
pub struct HttpConnectors {
    http: reqwest::Client,
    psa_clients: Mutex<HashMap<TenantId, Cached>>,
    budgets: AutotaskBudgets,
}

impl Default for HttpConnectors {
    fn default() -> Self {
        Self::new(http::client())
    }
}

impl HttpConnectors {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            psa_clients: Mutex::new(HashMap::new()),
            budgets: AutotaskBudgets::default(),
        }
    }

    /// Gives every tenant `budget` for Autotask, kept in `store` so that
    /// every process using that store keeps to it together (the default is
    /// the default budget in this process's memory, for tools and tests).
    pub fn with_shared_autotask_budget(
        mut self,
        budget: AutotaskBudget,
        store: Arc<dyn Store>,
    ) -> Self {
        self.budgets = AutotaskBudgets::new(budget, Arc::new(SystemClock)).shared_through(store);
        self
    }
}

#[async_trait]
impl Connectors for HttpConnectors {
    async fn desk(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
    ) -> Result<Arc<dyn ServiceDesk>, SyncError> {
        Ok(Arc::new(zendesk::ZendeskClient::for_tenant(
            self.http.clone(),
            &config.zendesk.base_url,
            secrets,
            config.zendesk.cluster_id_field,
        )))
    }

    async fn give_back_held(&self) {
        self.budgets.give_back_idle_slots().await;
    }

    async fn psa(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
    ) -> Result<Arc<dyn Psa>, SyncError> {
        let print = fingerprint(config, secrets);
        if let Some(cached) = self.psa_clients.lock().unwrap().get(&config.id) {
            if cached.fingerprint == print && cached.built.elapsed() < CLIENT_TTL {
                return Ok(cached.psa.clone());
            }
        }
        // Zone discovery is a request too: it counts against the budget.
        let client = self
            .budgets
            .for_tenant(&config.id)
            .run(autotask::AutotaskClient::connect(
                self.http.clone(),
                &config.autotask.zone_lookup_url,
                &secrets.autotask_username,
                &secrets.autotask_secret,
                &secrets.autotask_integration_code,
            ))
            .await?
            .with_settings(&config.autotask);
        let client = self.budgets.wrap(&config.id, Arc::new(client));
        self.psa_clients.lock().unwrap().insert(
            config.id.clone(),
            Cached {
                fingerprint: print,
                built: Instant::now(),
                psa: client.clone(),
            },
        );
        Ok(client)
    }
}
