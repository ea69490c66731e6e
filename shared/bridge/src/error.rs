//! Errors that say whether retrying can help.

use std::time::Duration;

use thiserror::Error;

/// A failure talking to Zendesk or the PSA, sorted into retryable and permanent.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{system} rate limit hit; retry after {retry_after:?}")]
    RateLimited {
        system: &'static str,
        retry_after: Duration,
    },
    #[error("{system} answered {status} (server error): {message}")]
    Server {
        system: &'static str,
        status: u16,
        message: String,
    },
    #[error("{system} did not answer in time")]
    Timeout { system: &'static str },
    #[error("{system} could not be reached: {message}")]
    Transport {
        system: &'static str,
        message: String,
    },
    #[error("{system} rejected the credentials ({status})")]
    Unauthorized { system: &'static str, status: u16 },
    /// The credentials are fine but their user may not do this (a 403 the
    /// connector could explain); `message` says in plain words what to change.
    #[error("{message}")]
    Forbidden {
        system: &'static str,
        message: String,
    },
    /// Another request changed the same record at the same moment (409);
    /// trying again a little later succeeds.
    #[error("{system} reported a conflicting update of the same record (409): {message}")]
    Conflict {
        system: &'static str,
        message: String,
    },
    #[error("{system} has no {what}")]
    NotFound { system: &'static str, what: String },
    #[error("{system} rejected the request ({status}): {message}")]
    Rejected {
        system: &'static str,
        status: u16,
        message: String,
    },
    #[error("{system} sent a response the bridge cannot read: {message}")]
    Malformed {
        system: &'static str,
        message: String,
    },
}

impl ApiError {
    /// Transient failures heal by themselves; the job goes back to the queue.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. }
                | ApiError::Conflict { .. }
                | ApiError::Server { .. }
                | ApiError::Timeout { .. }
                | ApiError::Transport { .. }
        )
    }

    /// The delay the remote system asked for, if it named one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A conditional write lost: the item exists, or its version moved on.
    #[error("conditional write on {pk}/{sk} lost to a concurrent writer")]
    Conflict { pk: String, sk: String },
    #[error("item {pk}/{sk} is {size} bytes, over the {limit}-byte item limit")]
    TooLarge {
        pk: String,
        sk: String,
        size: usize,
        limit: usize,
    },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored item {pk}/{sk} is corrupt: {message}")]
    Corrupt {
        pk: String,
        sk: String,
        message: String,
    },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. } | StoreError::Unavailable(_)
        )
    }
}

/// A queue failure.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("message cannot be queued: {0}")]
    Invalid(String),
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

/// A secrets failure. Never carries a secret value.
#[derive(Debug, Error)]
pub enum SecretsError {
    #[error("no credentials stored for tenant {0}")]
    Missing(String),
    #[error("secrets store unavailable: {0}")]
    Unavailable(String),
    #[error("credentials of tenant {tenant} are malformed: {message}")]
    Malformed { tenant: String, message: String },
}

impl SecretsError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretsError::Unavailable(_))
    }
}

/// Why syncing one ticket failed.
#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("tenant {0} is not configured")]
    UnknownTenant(String),
    #[error("no {table} mapping for {value:?}; add it to the tenant's {table} table")]
    MissingMapping { table: &'static str, value: String },
    #[error("no PSA configuration item has reference number {cluster_id:?} and the tenant has no default company")]
    NoCompanyForCluster { cluster_id: String },
    #[error("the ticket has no cluster id and the tenant has no default company")]
    NoCompany,
    #[error("another run is working on this ticket pair (free in {free_in:?}); retrying after it")]
    PairBusy { free_in: Duration },
    #[error("another run took over this ticket pair; this run stopped before its next write")]
    Overtaken,
    #[error("the run's time budget was spent before its first write; retrying")]
    OutOfTime,
    #[error("configuration problem: {0}")]
    Config(String),
}

impl SyncError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Api(e) => e.is_retryable(),
            SyncError::Store(e) => e.is_retryable(),
            SyncError::Queue(e) => e.is_retryable(),
            SyncError::Secrets(e) => e.is_retryable(),
            SyncError::PairBusy { .. } | SyncError::Overtaken | SyncError::OutOfTime => true,
            SyncError::UnknownTenant(_)
            | SyncError::MissingMapping { .. }
            | SyncError::NoCompanyForCluster { .. }
            | SyncError::NoCompany
            | SyncError::Config(_) => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::Api(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// Why an incoming webhook or callout was refused. Messages are plain enough to
/// return to the caller and never include secrets or expected values.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InboundError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("signature does not match")]
    BadSignature,
    #[error("signature timestamp is outside the 5-minute window")]
    StaleTimestamp,
    #[error("callout credentials do not match")]
    BadCredentials,
    #[error("malformed body: {0}")]
    Malformed(String),
}

impl InboundError {
    /// Authentication failures answer 401; malformed bodies 400.
    pub fn is_auth_failure(&self) -> bool {
        !matches!(self, InboundError::Malformed(_))
    }
}
