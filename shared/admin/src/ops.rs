//! What the console asks of the running bridge: a sweep of one tenant now,
//! the jobs that ended in the dead-letter queue, and replaying one of them;
//! and, for a tenant with asset sync, its setup check and a run now
//! ([`AssetOperations`]).
//! The queue and the sweep live outside this crate (SQS in AWS, the local
//! process's in-process queue), so the console sees them through this port;
//! a deployment without it shows "not available in this deployment".

use async_trait::async_trait;
use bridge::assets::AssetRunSummary;
use bridge::model::TenantId;
use bridge::ports::Store;
use bridge::repo::{LogLevel, Repo, SyncLogEntry};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A job that failed for good and waits in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The queue's id of the message (what `replay` takes).
    pub id: String,
    /// `zendesk:123` or `autotask:456`.
    pub ticket: String,
    /// Why it failed, in words an admin can act on (never a credential).
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// Why an operation failed. Messages are shown to admins as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    /// No such dead letter (replayed already, or another tenant's).
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Failed { message: String, retryable: bool },
    /// The PSA lacks what the tenant's settings name; nothing was written.
    /// Each problem says where in the PSA to create the missing thing.
    #[error("the PSA lacks what the asset settings name: {}", .problems.join("; "))]
    SetupIncomplete { problems: Vec<String> },
}

/// How long an asset run on an admin's request ("Sync assets now") may
/// start PSA writes: a page waits for its answer (and an HTTP API gives up
/// after 30 s). An unfinished run says so and the asset schedule's next
/// pass, within 5 minutes, resumes it.
pub const ASSET_RUN_ON_REQUEST: std::time::Duration = std::time::Duration::from_secs(20);

/// The running bridge, on an admin's request.
#[async_trait]
pub trait Operations: Send + Sync {
    /// One reconciliation sweep of this tenant; answers a one-line summary
    /// ("3 changes queued").
    async fn sync_now(&self, tenant: &TenantId) -> Result<String, OpsError>;

    /// The tenant's dead-lettered jobs, newest first.
    async fn dead_letters(&self, tenant: &TenantId) -> Result<Vec<DeadLetter>, OpsError>;

    /// Puts one dead-lettered job of this tenant back on the queue.
    async fn replay(&self, tenant: &TenantId, id: &str) -> Result<(), OpsError>;
}

/// How many of a tenant's newest sync log entries are searched for the
/// reasons of its dead letters.
pub const DEAD_LETTER_LOG_WINDOW: usize = 500;

/// The tenant's recent sync log, read once per listing of dead letters;
/// empty when it cannot be read (each reason then says to see the log).
pub async fn dead_letter_log(store: &dyn Store, tenant: &TenantId) -> Vec<SyncLogEntry> {
    Repo::new(store)
        .log_entries(tenant, DEAD_LETTER_LOG_WINDOW)
        .await
        .unwrap_or_default()
}

/// Why a dead-lettered job of `ticket` (`zendesk:123`, as the worker logs a
/// job's subject) failed: the newest error `log` holds for it.
pub fn dead_letter_reason(log: &[SyncLogEntry], ticket: &str) -> String {
    log.iter()
        .find(|e| e.level == LogLevel::Error && e.ticket.as_deref() == Some(ticket))
        .map(|e| format!("{}: {}", e.step, e.message))
        .unwrap_or_else(|| "failed until the receive limit; see the sync log".to_owned())
}

/// Asset sync of one tenant on an admin's request: the setup check and a run
/// now (`bridge::assets::{check_tenant_assets, run_tenant_assets}`), which
/// reach the tenant's PSA through the process's connectors and budget. The
/// last run's summary the console reads from the store itself.
#[async_trait]
pub trait AssetOperations: Send + Sync {
    /// What the PSA lacks for the tenant's asset settings, each problem
    /// saying where to create it; empty when a run can go. Reads only.
    async fn check_assets(&self, tenant: &TenantId) -> Result<Vec<String>, OpsError>;

    /// One asset sync run now; its summary (`finished` false when it stopped
    /// early on the budget or its time, the next run resuming).
    async fn sync_assets(&self, tenant: &TenantId) -> Result<AssetRunSummary, OpsError>;
}

/// An asset run's failure as the port answers it: a missing setup lists
/// its problems, everything else is a message (and whether to retry).
pub fn asset_run_error(error: bridge::assets::AssetRunError) -> OpsError {
    match error {
        bridge::assets::AssetRunError::SetupIncomplete { problems } => {
            OpsError::SetupIncomplete { problems }
        }
        other => OpsError::Failed {
            retryable: other.is_retryable(),
            message: other.to_string(),
        },
    }
}
