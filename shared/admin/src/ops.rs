//! What the console asks of the running bridge: a sweep of one tenant now,
//! the jobs that ended in the dead-letter queue, and replaying one of them.
//! The queue and the sweep live outside this crate (SQS in AWS, the local
//! process's in-process queue), so the console sees them through this port;
//! a deployment without it shows "not available in this deployment".

use async_trait::async_trait;
use bridge::model::TenantId;
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
}

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
