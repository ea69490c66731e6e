//! The admin console in the local process: the `admin` router nested at
//! `/admin` on the bridge's own port, over the same store, with mail going
//! to an outbox folder (and a log line) instead of SES, credentials to the
//! local secrets file, live checks through the HTTP connectors, "Sync
//! now" / dead letters over this process's sweep and embedded queue, and
//! asset sync ("Check asset setup", "Sync assets now") through the wiring's
//! connectors, budget and clock, as the CLI runs it.

use std::path::PathBuf;
use std::sync::Arc;

use admin::{
    Accounts, AdminState, AssetOperations, DeadLetter, OnboardingSettings, Operations, OpsError,
    OutboxMailer,
};
use async_trait::async_trait;
use bridge::adapters::embedded::{EmbeddedQueue, SecretsFile};
use bridge::assets::{
    check_tenant_assets, run_tenant_assets, AssetDeps, AssetRunOptions, AssetRunSummary,
};
use bridge::connectors::setup::HttpSetup;
use bridge::model::TenantId;
use bridge::ports::{Clock, Connectors, Secrets, Store, SystemClock};
use bridge::reconcile::Sweeper;
use bridge::repo::Repo;
use bridge::wiring::Wiring;

/// What the local console runs on besides the bridge's own wiring.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Folder of the mails the console sends (one file each).
    pub outbox: PathBuf,
    /// Where the console keeps the credentials it is given; the bridge must
    /// read tenants' credentials from the same file. Without it the
    /// credential pages say they are not available here.
    pub secrets: Option<Arc<SecretsFile>>,
    /// The queue whose dead letters the console lists and replays.
    pub dead_letters: Option<Arc<EmbeddedQueue>>,
    /// Autotask's zone lookup for new tenants (Autotask's own by default;
    /// the sandbox's in tests and the demo).
    pub autotask_zone_lookup_url: Option<String>,
    /// The console's OAuth client at Zendesk, for "Connect with OAuth".
    pub zendesk_oauth: Option<admin::ZendeskOAuthClient>,
}

impl ConsoleOptions {
    /// Mail to `outbox`, nothing else wired.
    pub fn outbox_only(outbox: PathBuf) -> Self {
        Self {
            outbox,
            secrets: None,
            dead_letters: None,
            autotask_zone_lookup_url: None,
            zendesk_oauth: None,
        }
    }
}

/// The console's accounts over the wiring's store. `base_url` is where the
/// bridge listens; the console's address in mails is `{base_url}/admin`.
pub fn accounts(wiring: &Wiring, base_url: &str, options: &ConsoleOptions) -> Accounts {
    let mailer = Arc::new(OutboxMailer::new(&options.outbox));
    Accounts::new(wiring.store.clone(), mailer, Arc::new(SystemClock)).with_settings(
        admin::Settings {
            console_url: format!("{base_url}/admin"),
            ..admin::Settings::default()
        },
    )
}

/// The console's router with every port the local process has, to be
/// nested at `/admin`.
pub fn router(
    accounts: Accounts,
    wiring: &Wiring,
    sweeper: Sweeper,
    base_url: &str,
    options: &ConsoleOptions,
) -> axum::Router {
    let mut onboarding = OnboardingSettings {
        console_url: format!("{base_url}/admin"),
        ingest_url: base_url.to_owned(),
        zendesk_oauth: options.zendesk_oauth.clone(),
        ..OnboardingSettings::default()
    };
    if let Some(url) = &options.autotask_zone_lookup_url {
        onboarding.autotask_zone_lookup_url = url.clone();
    }
    let mut state = AdminState::new(accounts)
        .with_tenant_setup(Arc::new(HttpSetup::default()))
        .with_onboarding(onboarding)
        .with_operations(Arc::new(LocalOperations {
            store: wiring.store.clone(),
            sweeper,
            queue: options.dead_letters.clone(),
        }))
        .with_asset_operations(Arc::new(LocalAssetOperations {
            store: wiring.store.clone(),
            secrets: wiring.secrets.clone(),
            connectors: wiring.connectors.clone(),
            clock: wiring.clock.clone(),
        }));
    if let Some(secrets) = &options.secrets {
        state = state.with_secrets(secrets.clone(), secrets.clone());
    }
    admin::router(state)
}

/// "Sync now" and the dead letters, in this process.
struct LocalOperations {
    store: Arc<dyn Store>,
    sweeper: Sweeper,
    queue: Option<Arc<EmbeddedQueue>>,
}

fn failed(message: impl ToString, retryable: bool) -> OpsError {
    OpsError::Failed {
        message: message.to_string(),
        retryable,
    }
}

impl LocalOperations {
    fn queue(&self) -> Result<&EmbeddedQueue, OpsError> {
        self.queue.as_deref().ok_or_else(|| {
            failed(
                "this process's queue is not the embedded one; replay with its own tools",
                false,
            )
        })
    }
}

#[async_trait]
impl Operations for LocalOperations {
    async fn sync_now(&self, tenant: &TenantId) -> Result<String, OpsError> {
        let config = Repo::new(self.store.as_ref())
            .tenant(tenant)
            .await
            .map_err(|e| failed(e, true))?
            .ok_or(OpsError::NotFound)?;
        let report = self.sweeper.sweep_tenant(&config.value).await;
        Ok(report.to_string())
    }

    async fn dead_letters(&self, tenant: &TenantId) -> Result<Vec<DeadLetter>, OpsError> {
        let dead = self.queue()?.dead_letters().map_err(|e| failed(e, true))?;
        let log = admin::ops::dead_letter_log(self.store.as_ref(), tenant).await;
        let mut listed = Vec::new();
        for letter in dead.into_iter().rev() {
            let Some(job) = letter.job.filter(|job| &job.tenant == tenant) else {
                continue;
            };
            // The worker logs a job's failures under its subject's name.
            let ticket = job.subject.to_string();
            listed.push(DeadLetter {
                id: letter.id.to_string(),
                reason: admin::ops::dead_letter_reason(&log, &ticket),
                ticket,
                at: chrono::DateTime::from_timestamp_millis(letter.dead_at_ms).unwrap_or_default(),
            });
        }
        Ok(listed)
    }

    async fn replay(&self, tenant: &TenantId, id: &str) -> Result<(), OpsError> {
        let id: i64 = id.parse().map_err(|_| OpsError::NotFound)?;
        let queue = self.queue()?;
        // Only this tenant's own dead letters: another tenant's id is "not found".
        let owned = queue
            .dead_letters()
            .map_err(|e| failed(e, true))?
            .into_iter()
            .any(|d| d.id == id && d.job.is_some_and(|job| &job.tenant == tenant));
        if !owned {
            return Err(OpsError::NotFound);
        }
        match queue.redrive_dead_letter(id) {
            Ok(true) => Ok(()),
            Ok(false) => Err(OpsError::NotFound),
            Err(e) => Err(failed(e, true)),
        }
    }
}

/// Asset sync on request, in this process (what `sync-assets` and
/// `check-assets` run).
struct LocalAssetOperations {
    store: Arc<dyn Store>,
    secrets: Arc<dyn Secrets>,
    connectors: Arc<dyn Connectors>,
    clock: Arc<dyn Clock>,
}

impl LocalAssetOperations {
    fn deps(&self) -> AssetDeps<'_> {
        AssetDeps {
            store: self.store.as_ref(),
            secrets: self.secrets.as_ref(),
            connectors: self.connectors.as_ref(),
            clock: self.clock.as_ref(),
        }
    }
}

#[async_trait]
impl AssetOperations for LocalAssetOperations {
    async fn check_assets(&self, tenant: &TenantId) -> Result<Vec<String>, OpsError> {
        check_tenant_assets(self.deps(), tenant)
            .await
            .map_err(admin::ops::asset_run_error)
    }

    async fn sync_assets(&self, tenant: &TenantId) -> Result<AssetRunSummary, OpsError> {
        let deadline = self.clock.now()
            + chrono::Duration::from_std(admin::ops::ASSET_RUN_ON_REQUEST).expect("small");
        let options = AssetRunOptions {
            deadline: Some(deadline),
            ..AssetRunOptions::default()
        };
        run_tenant_assets(self.deps(), tenant, &options)
            .await
            .map_err(admin::ops::asset_run_error)
    }
}
