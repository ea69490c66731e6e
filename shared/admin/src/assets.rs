//! Asset sync in the console (DESIGN.md "Asset sync"), for a tenant with
//! `assets` settings: the last run's summary, read from the store (the
//! `ASSETRUN` item, see `bridge::assets::store`, and the run's summary line
//! in the sync log), the setup check and a run now through the
//! [`AssetOperations`](crate::ops::AssetOperations) port. Pages and the JSON
//! API both call these functions; the tenant comes from `tenants::open`.

use bridge::assets::run::STEP;
use bridge::assets::store::{self as asset_store, AssetRunState};
use bridge::assets::AssetRunSummary;
use bridge::config::{AssetMode, ReferenceNumberSource};
use bridge::repo::{LogLevel, Repo};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::AdminError;
use crate::onboarding::{map_store_err, Tenant};
use crate::tenants::{ops_err, LOG_WINDOW};
use crate::web::AdminState;

/// Failures of a run listed by the console (the store keeps up to 100).
const SHOWN_FAILURES: usize = 20;

/// Where asset sync of a tenant stands.
#[derive(Debug, Clone, Serialize)]
pub struct AssetsView {
    /// The tenant has `assets` settings; nothing else is set otherwise.
    pub configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsView>,
    /// The run in progress, or the last one; `None` before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunView>,
    /// The last summary line asset sync wrote to the sync log (a run's
    /// counts, or why it did not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<LogLine>,
}

/// The asset settings as the console shows them.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// `simple` or `advanced`.
    pub mode: &'static str,
    pub product_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_id: Option<i64>,
    /// `inventory_id` or `cluster_id`.
    pub reference_number: &'static str,
    /// Days of the month (UTC) of the scheduled runs.
    pub schedule_days: Vec<u32>,
}

/// One run (or an interrupted run and its resumptions), from `ASSETRUN`.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// `running`, `stopped` (stopped early; the next run resumes) or `finished`.
    pub state: &'static str,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub created: usize,
    pub updated: usize,
    pub deactivated: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// The first failures, each with its device and reason.
    pub failures: Vec<FailureView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailureView {
    pub device: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    /// `info` or `error`.
    pub level: &'static str,
    pub message: String,
}

/// The setup check's answer.
#[derive(Debug, Clone, Serialize)]
pub struct SetupCheck {
    /// Nothing missing: a run can go.
    pub ready: bool,
    /// What the PSA lacks, each saying where to create it.
    pub problems: Vec<String>,
}

/// What "Sync assets now" did.
#[derive(Debug, Clone, Serialize)]
pub struct RunDone {
    /// The summary in one line, as the sync log has it.
    pub message: String,
    #[serde(flatten)]
    pub summary: AssetRunSummary,
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Info => "info",
        LogLevel::Error => "error",
    }
}

fn run_view(state: AssetRunState, now: DateTime<Utc>) -> RunView {
    let totals = state.totals;
    RunView {
        state: if state.finished {
            "finished"
        } else if state.lease_until > now {
            "running"
        } else {
            "stopped"
        },
        started_at: state.started_at,
        finished_at: state.finished_at,
        created: totals.created,
        updated: totals.updated,
        deactivated: totals.deactivated,
        unchanged: totals.unchanged,
        failed: totals.failed,
        failures: totals
            .failures
            .into_iter()
            .take(SHOWN_FAILURES)
            .map(|(device, reason)| FailureView { device, reason })
            .collect(),
    }
}

/// Where asset sync of `tenant` stands: its settings, the last run and the
/// last summary line. Reads the store only.
pub async fn view(state: &AdminState, tenant: &Tenant) -> Result<AssetsView, AdminError> {
    let Some(settings) = &tenant.config.value.assets else {
        return Ok(AssetsView {
            configured: false,
            settings: None,
            last_run: None,
            last_message: None,
        });
    };
    let store = state.accounts().store();
    let now = state.accounts().now();
    let last_run = asset_store::run_state(store, &tenant.id)
        .await
        .map_err(map_store_err("read asset run"))?
        .map(|v| run_view(v.value, now));
    let last_message = Repo::new(store)
        .log_entries(&tenant.id, LOG_WINDOW)
        .await
        .map_err(map_store_err("read sync log"))?
        .into_iter()
        .find(|e| e.step == STEP && e.ticket.is_none())
        .map(|e| LogLine {
            at: e.at,
            level: level_name(e.level),
            message: e.message,
        });
    Ok(AssetsView {
        configured: true,
        settings: Some(SettingsView {
            mode: match settings.mode {
                AssetMode::Simple => "simple",
                AssetMode::Advanced => "advanced",
            },
            product_id: settings.product_id,
            ci_type: settings.ci_type.as_ref().map(|t| match t {
                bridge::config::FieldValue::Number(n) => n.to_string(),
                bridge::config::FieldValue::Text(label) => label.clone(),
            }),
            category_id: settings.category_id,
            reference_number: match settings.reference_number {
                ReferenceNumberSource::InventoryId => "inventory_id",
                ReferenceNumberSource::ClusterId => "cluster_id",
            },
            schedule_days: settings.schedule_days.clone(),
        }),
        last_run,
        last_message,
    })
}

fn require_assets(tenant: &Tenant) -> Result<(), AdminError> {
    if tenant.config.value.assets.is_none() {
        return Err(AdminError::Invalid(
            "asset sync is not configured for this tenant: add its [assets] settings (product, CI type, mode) to the tenant's configuration first".into(),
        ));
    }
    Ok(())
}

/// "Check asset setup": what the PSA lacks for the tenant's asset settings.
pub async fn check(state: &AdminState, tenant: &Tenant) -> Result<SetupCheck, AdminError> {
    require_assets(tenant)?;
    let problems = state
        .ports()
        .asset_operations()?
        .check_assets(&tenant.id)
        .await
        .map_err(ops_err)?;
    Ok(SetupCheck {
        ready: problems.is_empty(),
        problems,
    })
}

/// "Sync assets now": one run, its summary. A setup that is not complete is
/// `ChecksFailed` with each problem (nothing was written).
pub async fn sync(state: &AdminState, tenant: &Tenant) -> Result<RunDone, AdminError> {
    require_assets(tenant)?;
    let summary = state
        .ports()
        .asset_operations()?
        .sync_assets(&tenant.id)
        .await
        .map_err(ops_err)?;
    tracing::info!(tenant = %tenant.id, created = summary.created, updated = summary.updated,
        failed = summary.failed.len(), "asset sync run from the console");
    Ok(RunDone {
        message: summary.to_string(),
        summary,
    })
}
