//! The bridge beside sandboxes: for each tenant a sandbox Zendesk and a
//! sandbox Autotask wired to the local bridge with real credentials,
//! signatures and webhooks. `psa-bridge demo` and the benchmark run on it, on
//! the embedded adapters in memory; the end-to-end tests' world
//! (`testkit::world`) builds on it with other backends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bridge::adapters::embedded::{EmbeddedQueue, FileSecrets, SqliteStore};
use bridge::config::{
    AssetMode, AssetSettings, AutotaskSettings, ConnectWiseSettings, FieldRules, Mappings, Secret,
    TenantConfig, TenantSecrets, ZendeskSettings, ASSET_UDFS,
};
use bridge::connectors::budget::AutotaskBudget;
use bridge::connectors::connectwise::ConnectWiseClient;
use bridge::model::TenantId;
use bridge::ports::{Condition, Queue, Secrets, Store};
use bridge::repo::Repo;
use bridge::wiring::Wiring;
use sandbox::autotask::{
    AutotaskSandbox, AutotaskSandboxConfig, CalloutTarget, DeliveryRules, WebhookTarget,
};
use sandbox::connectwise::{ConnectWiseSandbox, ConnectWiseSandboxConfig};
use sandbox::zendesk::{ZendeskSandbox, ZendeskSandboxConfig};

use crate::app::LocalBridge;

/// Id of the Zendesk custom field holding the cluster id in the sandboxes.
pub const CLUSTER_FIELD: u64 = 360_000_001;

/// How a tenant's Autotask reports changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutotaskEvents {
    /// REST webhook signed with `X-Hook-Signature`.
    Webhook,
    /// Extension callout with HTTP Basic credentials.
    Callout,
}

/// One tenant to set up.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub id: String,
    pub mappings: Mappings,
    pub events: AutotaskEvents,
    /// Company used when a cluster id matches no configuration item.
    pub default_company: bool,
    /// Use Autotask's "exclude resource" so the bridge's own writes fire no
    /// webhook (recommended in production; off in tests to prove echo safety).
    pub exclude_api_user: bool,
    /// Which field flows which way.
    pub fields: FieldRules,
    /// Label of the Autotask queue new tickets go to.
    pub queue: String,
    /// Take PSA → desk field changes only from tickets in that queue.
    pub to_desk_only_in_own_queue: bool,
    /// Written to the store at start. A tenant that is not is one the
    /// admin console onboards: its sandboxes run, the bridge does not know it.
    pub onboarded: bool,
    /// The tenant's PSA is a sandbox ConnectWise (its Autotask sandbox then
    /// runs idle; `events`, `exclude_api_user` and `queue` do not apply).
    pub connectwise: bool,
    /// Asset sync settings (`config.assets`); `None` (the default): off.
    /// When set, the tenant's sandbox Autotask is made ready for them: a
    /// `product_id` of 0 or less becomes the sandbox's default product, and
    /// in advanced mode every UDF of `config::ASSET_UDFS` and the settings'
    /// `inventory_id_udf` is defined. Autotask tenants only.
    pub assets: Option<AssetSettings>,
}

impl TenantSpec {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            mappings: Mappings::default(),
            events: AutotaskEvents::Webhook,
            default_company: false,
            exclude_api_user: false,
            fields: FieldRules::default(),
            queue: "Client Portal".to_owned(),
            to_desk_only_in_own_queue: false,
            onboarded: true,
            connectwise: false,
            assets: None,
        }
    }

    /// A tenant on ConnectWise, with priority tables for ConnectWise's
    /// default priorities (its board statuses carry the default status
    /// tables' names).
    pub fn connectwise(id: &str) -> Self {
        let mappings = Mappings {
            priority: CONNECTWISE_PRIORITIES
                .iter()
                .map(|(desk, cw)| ((*desk).to_owned(), (*cw).to_owned()))
                .collect(),
            priority_to_desk: CONNECTWISE_PRIORITIES
                .iter()
                .map(|(desk, cw)| {
                    let desk =
                        serde_json::from_value(serde_json::json!(desk)).expect("a desk priority");
                    ((*cw).to_owned(), desk)
                })
                .collect(),
            ..Mappings::default()
        };
        Self {
            mappings,
            connectwise: true,
            ..Self::new(id)
        }
    }
}

/// Zendesk priority → ConnectWise's default priority names.
pub const CONNECTWISE_PRIORITIES: [(&str, &str); 4] = [
    ("urgent", "Priority 1 - Emergency Response"),
    ("high", "Priority 2 - Quick Response"),
    ("normal", "Priority 3 - Normal Response"),
    ("low", "Priority 4 - Scheduled Maintenance"),
];

/// A tenant's sandbox ConnectWise and what the world put in it.
pub struct ConnectWiseWorld {
    pub sandbox: ConnectWiseSandbox,
    /// The board new tickets go to, and a second one with its own status ids.
    pub board: i64,
    pub other_board: i64,
    /// A technician (member) who works tickets in the ConnectWise UI.
    pub technician: i64,
}

/// Options of the whole world.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    /// Latency every sandbox API call gets.
    pub api_latency: Duration,
    pub worker_concurrency: usize,
    pub listen: SocketAddr,
    /// Delay before a permanently failing job is retried (toward the DLQ).
    pub permanent_retry: Duration,
    /// First delay of the worker's exponential backoff after a transient failure.
    pub backoff_base: Duration,
    /// Each tenant's Autotask request budget. The sandboxes have no hourly
    /// quota, so the default keeps production's concurrency cap but lifts the
    /// hourly rate out of the way of tests and benchmarks.
    pub autotask_budget: AutotaskBudget,
    /// Each ConnectWise tenant's budget, likewise lifted.
    pub connectwise_budget: AutotaskBudget,
    /// Run the reconciliation sweep on a timer; `None` (the default): only
    /// when `LocalBridge::sweep_now` is called, so tests decide when it runs.
    pub sweep_every: Option<Duration>,
    /// Zendesk leaves the most recent minute out of its incremental export;
    /// the world's sandboxes leave out this much (none by default, so a
    /// sweep sees a change at once).
    pub zendesk_export_lag: Duration,
    /// Serve the admin console at `/admin`, its mails in this outbox.
    pub console: Option<crate::console::ConsoleOptions>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            api_latency: Duration::ZERO,
            worker_concurrency: 16,
            permanent_retry: bridge::worker::PERMANENT_RETRY,
            backoff_base: bridge::worker::BASE_BACKOFF,
            autotask_budget: AutotaskBudget {
                requests_per_hour: 10_000_000,
                burst: 100_000,
                ..AutotaskBudget::default()
            },
            connectwise_budget: AutotaskBudget {
                requests_per_hour: 10_000_000,
                burst: 100_000,
                ..bridge::connectors::connectwise_default_budget()
            },
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            sweep_every: None,
            zendesk_export_lag: Duration::ZERO,
            console: None,
        }
    }
}

/// One tenant's systems.
pub struct TenantWorld {
    pub id: TenantId,
    /// How its Autotask reports changes.
    pub events: AutotaskEvents,
    pub config: TenantConfig,
    pub secrets: TenantSecrets,
    pub zendesk: ZendeskSandbox,
    pub autotask: AutotaskSandbox,
    /// A technician who writes notes in the Autotask UI.
    pub technician: i64,
    /// Cluster ids with a configuration item, and their company.
    pub clusters: Vec<(String, i64)>,
    pub default_company: Option<i64>,
    /// The tenant's ConnectWise, when its PSA is ConnectWise.
    pub connectwise: Option<ConnectWiseWorld>,
}

/// The adapters a world's bridge runs on.
pub struct Adapters {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<dyn Secrets>,
}

/// The bridge and every tenant's sandboxes.
pub struct World {
    pub bridge: LocalBridge,
    /// Where the console's mails land, when it is served.
    pub console_outbox: Option<std::path::PathBuf>,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub tenants: Vec<TenantWorld>,
}

fn random_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn secrets_for(id: &str) -> TenantSecrets {
    TenantSecrets {
        zendesk_email: format!("bridge@{id}.example"),
        zendesk_api_token: Secret::new(random_secret()),
        zendesk_oauth_token: Secret::default(),
        zendesk_webhook_secret: Secret::new(random_secret()),
        autotask_username: format!("api@{id}.example"),
        autotask_secret: Secret::new(random_secret()),
        autotask_integration_code: Secret::new(random_secret().to_uppercase()),
        autotask_callout_username: format!("callout-{id}"),
        autotask_callout_password: Secret::new(random_secret()),
        autotask_webhook_secret: Secret::new(random_secret()),
        connectwise_public_key: format!("pub-{}", random_secret()),
        connectwise_private_key: Secret::new(random_secret()),
        connectwise_client_id: uuid::Uuid::new_v4().to_string(),
        inventory_signing_secret: Secret::new(random_secret()),
    }
}

/// Fresh random credentials for each tenant, shared by its sandboxes and the
/// bridge (seed the world's secrets store with them).
pub fn tenant_secrets(specs: &[TenantSpec]) -> anyhow::Result<HashMap<TenantId, TenantSecrets>> {
    specs
        .iter()
        .map(|s| {
            let id = TenantId::parse(&s.id)
                .context("tenant ids are lower-case letters, digits, - and _")?;
            Ok((id, secrets_for(&s.id)))
        })
        .collect()
}

impl World {
    /// A world on the embedded adapters, in memory.
    pub async fn start(specs: Vec<TenantSpec>, options: WorldOptions) -> anyhow::Result<Self> {
        let secrets = tenant_secrets(&specs)?;
        let adapters = Adapters {
            store: Arc::new(SqliteStore::in_memory()?),
            queue: Arc::new(EmbeddedQueue::in_memory()?),
            secrets: Arc::new(FileSecrets::from_map(secrets.clone())),
        };
        Self::start_on(adapters, specs, &secrets, options).await
    }

    /// A world on `adapters`, whose secrets store holds `secrets` (from
    /// [`tenant_secrets`] of the same `specs`).
    pub async fn start_on(
        adapters: Adapters,
        specs: Vec<TenantSpec>,
        secrets: &HashMap<TenantId, TenantSecrets>,
        options: WorldOptions,
    ) -> anyhow::Result<Self> {
        let Adapters {
            store,
            queue,
            secrets: secrets_port,
        } = adapters;
        let mut wiring = Wiring::with_budgets(
            store.clone(),
            queue.clone(),
            secrets_port,
            options.autotask_budget.clone(),
            options.connectwise_budget.clone(),
        );
        wiring.worker_options.permanent_retry = options.permanent_retry;
        wiring.worker_options.backoff_base = options.backoff_base;
        let bridge = LocalBridge::start_with_console(
            wiring,
            options.listen,
            options.worker_concurrency,
            options.sweep_every,
            options.console.clone(),
        )
        .await?;

        let mut tenants = Vec::new();
        for spec in specs {
            let id = TenantId::parse(&spec.id)
                .context("tenant ids are lower-case letters, digits, - and _")?;
            let tenant_secrets = secrets
                .get(&id)
                .with_context(|| format!("no secrets for tenant {id}"))?
                .clone();
            let tenant =
                start_tenant(&bridge.base_url, &spec, id, tenant_secrets, &options).await?;
            if spec.onboarded {
                Repo::new(store.as_ref())
                    .put_tenant(&tenant.config, Condition::Always)
                    .await?;
            }
            tenants.push(tenant);
        }
        Ok(Self {
            bridge,
            console_outbox: options.console.as_ref().map(|c| c.outbox.clone()),
            store,
            queue,
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
}

async fn start_tenant(
    bridge_url: &str,
    spec: &TenantSpec,
    id: TenantId,
    secrets: TenantSecrets,
    options: &WorldOptions,
) -> anyhow::Result<TenantWorld> {
    let zendesk = ZendeskSandbox::start(ZendeskSandboxConfig {
        agent_email: secrets.zendesk_email.clone(),
        api_token: secrets.zendesk_api_token.expose().to_owned(),
        webhook_secret: secrets.zendesk_webhook_secret.expose().to_owned(),
        webhook_url: Some(format!("{bridge_url}/t/{id}/zendesk")),
        cluster_id_field: CLUSTER_FIELD,
    })
    .await?;
    let api_resource_id = 29_682_885;
    let autotask_url = format!("{bridge_url}/t/{id}/autotask");
    let autotask = AutotaskSandbox::start(AutotaskSandboxConfig {
        username: secrets.autotask_username.clone(),
        secret: secrets.autotask_secret.expose().to_owned(),
        integration_code: secrets.autotask_integration_code.expose().to_owned(),
        api_resource_id,
        callout: (spec.events == AutotaskEvents::Callout).then(|| CalloutTarget {
            url: autotask_url.clone(),
            username: secrets.autotask_callout_username.clone(),
            password: secrets.autotask_callout_password.expose().to_owned(),
        }),
        webhook: (spec.events == AutotaskEvents::Webhook).then(|| WebhookTarget {
            url: autotask_url.clone(),
            secret_key: secrets.autotask_webhook_secret.expose().to_owned(),
            excluded_resource_ids: if spec.exclude_api_user {
                vec![api_resource_id]
            } else {
                Vec::new()
            },
        }),
        note_page_size: 50,
        ..AutotaskSandboxConfig::default()
    })
    .await?;
    // Autotask waits 30 s before it tries an event again, and every later
    // event waits behind it. Here a retry comes after half a second, so that
    // one answer slowed by a loaded test machine does not hold back every
    // later event for half a minute; Autotask's own spacing is exercised in
    // the ingest tests (`tests/e2e/ingest_events.rs`).
    autotask.set_delivery_rules(DeliveryRules {
        retry_interval: Duration::from_millis(500),
        ..DeliveryRules::default()
    });
    zendesk.set_export_lag(options.zendesk_export_lag);
    for sandbox_faults in [zendesk.faults(), autotask.faults()] {
        sandbox_faults.update(|f| f.latency = options.api_latency);
    }

    let mut clusters = Vec::new();
    for (name, cluster) in [("Contoso", "CL-100"), ("Fabrikam", "CL-200")] {
        let company = autotask.add_company(&format!("{name} ({id})"));
        autotask.add_configuration_item(company, cluster);
        clusters.push((cluster.to_owned(), company));
    }
    let default_company = spec
        .default_company
        .then(|| autotask.add_company(&format!("Unassigned ({id})")));
    let technician = autotask.add_resource("Tess Technician");

    let queue_id = autotask.picklist_value("queueID", &spec.queue);
    anyhow::ensure!(
        queue_id.is_some(),
        "{id}: the sandbox Autotask has no queue {:?}",
        spec.queue
    );
    let assets = spec
        .assets
        .as_ref()
        .map(|settings| prepare_assets(&autotask, settings));
    let mut fields = spec.fields.clone();
    if spec.to_desk_only_in_own_queue {
        fields.to_desk_only_in_queue = queue_id;
    }
    let config = TenantConfig {
        id: id.clone(),
        active: true,
        zendesk: ZendeskSettings {
            base_url: zendesk.base_url().to_owned(),
            cluster_id_field: Some(CLUSTER_FIELD),
        },
        autotask: AutotaskSettings {
            zone_lookup_url: autotask.zone_lookup_url(),
            queue_id,
            default_company_id: default_company,
            ..AutotaskSettings::new("")
        },
        connectwise: None,
        mappings: spec.mappings.clone(),
        fields,
        assets,
    };
    let mut tenant = TenantWorld {
        id,
        events: spec.events,
        config,
        secrets,
        zendesk,
        autotask,
        technician,
        clusters,
        default_company,
        connectwise: None,
    };
    if spec.connectwise {
        add_connectwise(bridge_url, spec, &mut tenant, options).await?;
    }
    Ok(tenant)
}

/// Seeds `autotask` so asset sync can run with `settings`, and returns the
/// settings the tenant gets (see [`TenantSpec::assets`]).
fn prepare_assets(autotask: &AutotaskSandbox, settings: &AssetSettings) -> AssetSettings {
    let mut settings = settings.clone();
    if settings.product_id <= 0 {
        settings.product_id = autotask.default_product_id();
    }
    if settings.mode == AssetMode::Advanced {
        for udf in ASSET_UDFS {
            autotask.add_ci_udf(udf);
        }
        autotask.add_ci_udf(&settings.inventory_id_udf);
    }
    settings
}

/// Gives a tenant a sandbox ConnectWise as its PSA: boards, companies with
/// configurations named by the cluster ids, a technician, and the bridge's
/// callback registered the way onboarding registers it.
async fn add_connectwise(
    bridge_url: &str,
    spec: &TenantSpec,
    tenant: &mut TenantWorld,
    options: &WorldOptions,
) -> anyhow::Result<()> {
    let id = tenant.id.clone();
    let sandbox = ConnectWiseSandbox::start(ConnectWiseSandboxConfig {
        company_id: id.to_string(),
        public_key: tenant.secrets.connectwise_public_key.clone(),
        private_key: tenant.secrets.connectwise_private_key.expose().to_owned(),
        ..ConnectWiseSandboxConfig::default()
    })
    .await?;
    sandbox.faults().update(|f| f.latency = options.api_latency);
    let board = sandbox.add_board("Service Desk");
    let other_board = sandbox.add_board("NOC");
    let mut clusters = Vec::new();
    for (name, cluster) in [("Contoso", "CL-100"), ("Fabrikam", "CL-200")] {
        let company = sandbox.add_company(&format!("{name}{id}").replace('-', ""), name);
        sandbox.add_configuration(company, cluster, None, None);
        clusters.push((cluster.to_owned(), company));
    }
    let default_company = spec
        .default_company
        .then(|| sandbox.add_company(&format!("Unassigned{id}").replace('-', ""), "Unassigned"));
    let technician = sandbox.add_member("tess", "Tess", "Technician");
    let mut settings = ConnectWiseSettings::new(sandbox.site_url(), id.as_str());
    settings.board_id = Some(board);
    settings.default_company_id = default_company;
    if spec.to_desk_only_in_own_queue {
        tenant.config.fields.to_desk_only_in_queue = Some(board);
    }
    let client = ConnectWiseClient::connect(
        bridge::connectors::http::client(),
        &settings,
        &tenant.secrets,
    )
    .await
    .context("connecting to the sandbox ConnectWise")?;
    // An onboarded tenant has its callback registered, as the console's
    // activation does; one the console onboards registers its own.
    if spec.onboarded {
        client
            .ensure_callbacks(
                &format!("{bridge_url}/t/{id}/connectwise"),
                &format!("psa-bridge {id}"),
            )
            .await
            .context("registering the ConnectWise callback")?;
    }
    tenant.config.connectwise = Some(settings);
    tenant.clusters = clusters;
    tenant.default_company = default_company;
    tenant.connectwise = Some(ConnectWiseWorld {
        sandbox,
        board,
        other_board,
        technician,
    });
    Ok(())
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
