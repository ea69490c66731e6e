//! Runs of one tenant through its connectors (CLI, console, first
//! activation) and the schedule over every tenant (the local timer, the
//! `reconcile` Lambda invoked with `{"assets": true}`).

use serde::Serialize;
use tracing::{info, warn, Instrument};

use super::run::{due, run_assets, AssetRunError, AssetRunOptions, AssetRunSummary};
use crate::config::TenantConfig;
use crate::error::{StoreError, SyncError};
use crate::model::TenantId;
use crate::ports::{Clock, Connectors, Secrets, Store};
use crate::repo::Repo;

/// What a run needs to reach a tenant's PSA; cheap to build per call.
#[derive(Clone, Copy)]
pub struct AssetDeps<'a> {
    pub store: &'a dyn Store,
    pub secrets: &'a dyn Secrets,
    pub connectors: &'a dyn Connectors,
    pub clock: &'a dyn Clock,
}

async fn tenant_config(
    deps: AssetDeps<'_>,
    tenant: &TenantId,
) -> Result<TenantConfig, AssetRunError> {
    Ok(Repo::new(deps.store)
        .tenant(tenant)
        .await?
        .ok_or_else(|| SyncError::UnknownTenant(tenant.to_string()))?
        .value)
}

/// Runs asset sync for `tenant` now ("Sync now", first activation, the CLI).
pub async fn run_tenant_assets(
    deps: AssetDeps<'_>,
    tenant: &TenantId,
    options: &AssetRunOptions,
) -> Result<AssetRunSummary, AssetRunError> {
    let config = tenant_config(deps, tenant).await?;
    run_config(deps, &config, options).await
}

async fn run_config(
    deps: AssetDeps<'_>,
    config: &TenantConfig,
    options: &AssetRunOptions,
) -> Result<AssetRunSummary, AssetRunError> {
    if config.assets.is_none() {
        return Err(AssetRunError::NotConfigured(config.id.to_string()));
    }
    let secrets = deps
        .secrets
        .tenant_secrets(&config.id)
        .await
        .map_err(SyncError::from)?;
    let psa = deps.connectors.psa(config, &secrets).await?;
    let assets = deps.connectors.assets(config, &secrets).await?;
    run_assets(
        deps.store,
        assets.as_ref(),
        psa.as_ref(),
        config,
        deps.clock,
        options,
    )
    .await
}

/// What the PSA lacks for `tenant`'s asset settings, each problem saying
/// where to create the missing thing; empty when a run can go. Reads only.
pub async fn check_tenant_assets(
    deps: AssetDeps<'_>,
    tenant: &TenantId,
) -> Result<Vec<String>, AssetRunError> {
    let config = tenant_config(deps, tenant).await?;
    let settings = config
        .assets
        .as_ref()
        .ok_or_else(|| AssetRunError::NotConfigured(tenant.to_string()))?;
    let secrets = deps
        .secrets
        .tenant_secrets(tenant)
        .await
        .map_err(SyncError::from)?;
    let assets = deps.connectors.assets(&config, &secrets).await?;
    Ok(assets.asset_setup_problems(settings).await?)
}

/// One tenant's scheduled run.
#[derive(Debug, Serialize)]
pub struct ScheduledRun {
    pub tenant: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub summary: Option<AssetRunSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub retryable: bool,
}

/// What one pass of the schedule did, over every tenant.
#[derive(Debug, Default, Serialize)]
pub struct AssetScheduleSummary {
    pub runs: Vec<ScheduledRun>,
}

impl AssetScheduleSummary {
    pub fn failed(&self) -> usize {
        self.runs.iter().filter(|r| r.error.is_some()).count()
    }
}

/// Runs every active tenant whose asset run is due now (a schedule day in
/// UTC not yet run today, or an interrupted run to resume), one after the
/// other: they share nothing but the process, and one at a time keeps a
/// Lambda's memory flat. A tenant's failure never stops the others.
pub async fn run_due_assets(
    deps: AssetDeps<'_>,
    options: &AssetRunOptions,
) -> Result<AssetScheduleSummary, StoreError> {
    let now = deps.clock.now();
    let mut summary = AssetScheduleSummary::default();
    for config in Repo::new(deps.store).tenants().await? {
        if options.deadline.is_some_and(|d| deps.clock.now() >= d) {
            info!("asset schedule out of time; the remaining tenants run on the next pass");
            break;
        }
        let span = tracing::info_span!("scheduled_asset_run", tenant = %config.id);
        let is_due = match due(deps.store, &config, now).instrument(span.clone()).await {
            Ok(is_due) => is_due,
            Err(error) => {
                let _entered = span.enter();
                warn!(%error, "could not read the asset run state");
                continue;
            }
        };
        if !is_due {
            continue;
        }
        let options = AssetRunOptions {
            scheduled: true,
            ..options.clone()
        };
        let result = run_config(deps, &config, &options)
            .instrument(span.clone())
            .await;
        let run = match result {
            Ok(done) => ScheduledRun {
                tenant: config.id.to_string(),
                summary: Some(done),
                error: None,
                retryable: false,
            },
            Err(error) => {
                let _entered = span.enter();
                warn!(%error, retryable = error.is_retryable(), "scheduled asset run failed");
                ScheduledRun {
                    tenant: config.id.to_string(),
                    summary: None,
                    retryable: error.is_retryable(),
                    error: Some(error.to_string()),
                }
            }
        };
        summary.runs.push(run);
    }
    Ok(summary)
}
