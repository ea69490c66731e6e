//! HTTP clients for the outside systems, written against their public API
//! contracts, plus the parsers and signature checks of their incoming calls.

pub mod autotask;
pub mod budget;
pub mod connectwise;
pub mod http;
pub mod setup;
pub mod signing;
pub mod zendesk;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::assets::ports::AssetPsa;
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
    // Every PSA setting the client applies (zone, note visibility, ticket
    // defaults, ConnectWise site and board): a change takes effect at once.
    serde_json::to_string(&config.autotask)
        .unwrap_or_default()
        .hash(&mut hasher);
    serde_json::to_string(&config.connectwise)
        .unwrap_or_default()
        .hash(&mut hasher);
    secrets.zendesk_email.hash(&mut hasher);
    secrets.zendesk_api_token.expose().hash(&mut hasher);
    secrets.zendesk_oauth_token.expose().hash(&mut hasher);
    secrets.autotask_username.hash(&mut hasher);
    secrets.autotask_secret.expose().hash(&mut hasher);
    secrets.autotask_integration_code.expose().hash(&mut hasher);
    secrets.connectwise_public_key.hash(&mut hasher);
    secrets.connectwise_private_key.expose().hash(&mut hasher);
    secrets.connectwise_client_id.hash(&mut hasher);
    hasher.finish()
}

struct Cached {
    fingerprint: u64,
    built: Instant,
    psa: Arc<dyn Psa>,
}

/// The real connectors: one shared HTTP client (connection pool), one cached
/// PSA client per tenant, and one PSA request budget per tenant that every
/// PSA client of that tenant draws on (Autotask's and ConnectWise's limits
/// differ, so each PSA has its own settings).
pub struct HttpConnectors {
    http: reqwest::Client,
    psa_clients: Mutex<HashMap<TenantId, Cached>>,
    budgets: AutotaskBudgets,
    connectwise_budgets: AutotaskBudgets,
}

/// ConnectWise publishes no request limit. Its cloud sits behind a proxy that
/// answers 429 with a wait (honoured as a retryable error either way); a
/// secondary source claims about 1,000 requests a minute per tenant. Half
/// of that, with a few calls in flight, stays clear of it while the MSP's
/// other integrations use the rest.
pub fn connectwise_default_budget() -> AutotaskBudget {
    AutotaskBudget {
        requests_per_hour: 30_000,
        burst: 500,
        max_concurrent: 5,
        ..AutotaskBudget::default()
    }
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
            connectwise_budgets: AutotaskBudgets::new(
                connectwise_default_budget(),
                Arc::new(SystemClock),
            ),
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
        self.budgets =
            AutotaskBudgets::new(budget, Arc::new(SystemClock)).shared_through(store.clone());
        self.connectwise_budgets =
            AutotaskBudgets::new(connectwise_default_budget(), Arc::new(SystemClock))
                .shared_through(store);
        self
    }

    /// Gives every ConnectWise tenant `budget`, kept in `store` (after
    /// [`Self::with_shared_autotask_budget`], which sets the default).
    pub fn with_shared_connectwise_budget(
        mut self,
        budget: AutotaskBudget,
        store: Arc<dyn Store>,
    ) -> Self {
        self.connectwise_budgets =
            AutotaskBudgets::new(budget, Arc::new(SystemClock)).shared_through(store);
        self
    }

    /// The tenant's Autotask configuration items for asset sync, behind the
    /// tenant's Autotask budget (zone discovery included). A client of its
    /// own rather than the cached ticket client: a run asks once, and its
    /// field cache then serves the whole run.
    pub async fn asset_psa(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
    ) -> Result<Arc<dyn AssetPsa>, SyncError> {
        if config.connectwise.is_some() {
            return Err(SyncError::Config(
                "asset sync supports Autotask tenants; this tenant's PSA is ConnectWise".to_owned(),
            ));
        }
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
        Ok(self.budgets.wrap_assets(&config.id, Arc::new(client)))
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

    async fn assets(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
    ) -> Result<Arc<dyn AssetPsa>, SyncError> {
        self.asset_psa(config, secrets).await
    }

    async fn give_back_held(&self) {
        self.budgets.give_back_idle_slots().await;
        self.connectwise_budgets.give_back_idle_slots().await;
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
        let client: Arc<dyn Psa> = match &config.connectwise {
            Some(settings) => {
                // The codebase lookup is a request too: it counts against the budget.
                let client = self
                    .connectwise_budgets
                    .for_tenant(&config.id)
                    .run(connectwise::ConnectWiseClient::connect(
                        self.http.clone(),
                        settings,
                        secrets,
                    ))
                    .await?;
                self.connectwise_budgets.wrap(&config.id, Arc::new(client))
            }
            None => {
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
                self.budgets.wrap(&config.id, Arc::new(client))
            }
        };
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
