//! The ports: everything the engine needs from the outside world, as small
//! traits. Adapters (embedded, AWS, HTTP connectors) implement them; unit tests
//! use the in-memory ones.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::assets::ports::AssetPsa;
use crate::config::{TenantConfig, TenantSecrets};
use crate::error::{ApiError, QueueError, SecretsError, StoreError, SyncError};
use crate::model::{
    DeskComment, DeskTicket, DeskTicketPatch, NewPsaNote, NewPsaTicket, PicklistValue, PsaNote,
    PsaTicket, PsaTicketPatch, SyncJob, TenantId, Visibility,
};

/// DynamoDB's item size limit; every adapter enforces it so that a ticket that
/// fits locally also fits in AWS.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// One stored item: a partition key, a sort key, a JSON body and a version
/// that conditional writes check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    pub body: String,
    pub version: u64,
    /// Unix seconds after which the item may be dropped (DynamoDB TTL).
    pub expires_at: Option<i64>,
}

/// Precondition of a write, shaped after DynamoDB condition expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Write unconditionally.
    Always,
    /// Only if no item has this key (`attribute_not_exists(pk)`).
    MustNotExist,
    /// Only if the stored version is this one (optimistic lock).
    VersionIs(u64),
}

/// The single-table store (DESIGN.md "Storage").
#[async_trait]
pub trait Store: Send + Sync {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError>;

    /// Writes the item if `condition` holds and returns its new version
    /// (1 for a new item, previous + 1 otherwise). A lost condition is
    /// `StoreError::Conflict`; a body over `MAX_ITEM_BYTES` is `TooLarge`.
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        body: &str,
        condition: Condition,
        expires_at: Option<i64>,
    ) -> Result<u64, StoreError>;

    /// Items of one partition whose sort key starts with `sk_prefix`, in sort
    /// key order (or reversed), at most `limit`.
    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError>;

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError>;

    /// Every item whose sort key is exactly `sk`, across partitions (used to
    /// list tenants by their `CONFIG` items).
    async fn scan_sort_key(&self, sk: &str) -> Result<Vec<Item>, StoreError>;
}

/// A received queue message.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Handle for `complete`/`retry_later` (SQS receipt handle).
    pub receipt: String,
    pub job: SyncJob,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

/// The job queue, shaped after SQS FIFO: per-group ordering (`message_group`),
/// de-duplication (`dedup_id`), visibility timeouts for retries, and a
/// dead-letter queue after a receive limit.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, job: &SyncJob) -> Result<(), QueueError>;
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;
    /// The job is done: delete the message.
    async fn complete(&self, receipt: &str) -> Result<(), QueueError>;
    /// Make the message visible again after `delay` (never a sleep in the worker).
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError>;
}

/// Per-tenant credentials.
#[async_trait]
pub trait Secrets: Send + Sync {
    async fn tenant_secrets(&self, tenant: &TenantId) -> Result<TenantSecrets, SecretsError>;
}

/// Time, injectable so tests control signature windows and TTLs.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The service desk (Zendesk) as the engine sees it.
#[async_trait]
pub trait ServiceDesk: Send + Sync {
    async fn get_ticket(&self, id: u64) -> Result<DeskTicket, ApiError>;
    /// All comments, oldest first, following cursor pagination to the end.
    async fn list_comments(&self, ticket_id: u64) -> Result<Vec<DeskComment>, ApiError>;
    /// Adds a comment and returns its id.
    async fn add_comment(
        &self,
        ticket_id: u64,
        body: &str,
        visibility: Visibility,
    ) -> Result<u64, ApiError>;
    /// Sets the subject, status or priority the PSA side changed.
    async fn update_ticket(&self, ticket_id: u64, patch: &DeskTicketPatch) -> Result<(), ApiError>;
    /// Records the PSA ticket reference on the Zendesk ticket.
    async fn set_external_id(&self, ticket_id: u64, external_id: &str) -> Result<(), ApiError>;
    /// Tickets changed since `position` (Zendesk's cursor-based incremental
    /// ticket export), and the position to ask from next time.
    async fn changed_tickets(&self, position: &DeskCursor) -> Result<DeskChanges, ApiError>;
}

/// A position in the service desk's change feed, kept in `CURSOR#zendesk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeskCursor {
    /// No export has returned a cursor yet: everything changed on or after this time.
    StartTime(DateTime<Utc>),
    /// Zendesk's opaque `after_cursor`.
    Cursor(String),
}

/// What changed in the service desk since a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskChanges {
    /// Changed tickets, each once, deleted tickets left out.
    pub ticket_ids: Vec<u64>,
    /// Where the next export starts; the old position when nothing was returned.
    pub next: DeskCursor,
    /// False when the feed had more than one call may read (page budget or
    /// rate limit); `next` then points just past what was returned.
    pub complete: bool,
    /// Export requests made.
    pub pages: usize,
}

/// The PSA (Autotask or ConnectWise) as the engine sees it. A "queue" is an
/// Autotask queue or a ConnectWise service board; a "resource" is the
/// technician who wrote a note (a ConnectWise member).
#[async_trait]
pub trait Psa: Send + Sync {
    async fn get_ticket(&self, id: i64) -> Result<Option<PsaTicket>, ApiError>;
    /// The ticket whose `externalID` equals `external_id`, if any.
    async fn find_ticket_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<PsaTicket>, ApiError>;
    /// Why `ticket` cannot be created as the tenant is configured, in plain
    /// words naming the setting that fixes it (a field the PSA requires that
    /// neither the ticket nor the tenant's settings give a value); empty
    /// when it can. Reads only (cached) field descriptions; the engine asks
    /// before it claims the create, so a missing setting leaves no claim.
    async fn new_ticket_problems(&self, ticket: &NewPsaTicket) -> Result<Vec<String>, ApiError>;
    async fn create_ticket(&self, ticket: &NewPsaTicket) -> Result<i64, ApiError>;
    async fn update_ticket(&self, id: i64, patch: &PsaTicketPatch) -> Result<(), ApiError>;
    /// How many characters of a ticket title the PSA keeps; longer titles are
    /// cut to this at the wire, and the engine compares titles as stored.
    fn title_max_chars(&self) -> usize;
    /// All notes of a ticket, following paging to the end.
    async fn list_notes(&self, ticket_id: i64) -> Result<Vec<PsaNote>, ApiError>;
    async fn add_note(&self, ticket_id: i64, note: &NewPsaNote) -> Result<i64, ApiError>;
    /// Display name of a resource (technician), to attribute mirrored notes.
    async fn resource_name(&self, resource_id: i64) -> Result<Option<String>, ApiError>;
    /// Company of the configuration item whose `referenceNumber` equals `reference`.
    async fn company_for_reference(&self, reference: &str) -> Result<Option<i64>, ApiError>;
    /// The configuration item whose reference number (ConnectWise: name,
    /// serial or tag) is `reference`: its company, and, where the PSA links
    /// tickets to it by id, its id and whether it is active. One lookup
    /// serves both the company and the ticket's device link.
    async fn configuration_item_for_reference(
        &self,
        reference: &str,
    ) -> Result<Option<CiRef>, ApiError> {
        Ok(self
            .company_for_reference(reference)
            .await?
            .map(|company_id| CiRef {
                id: None,
                company_id,
                active: true,
            }))
    }
    /// Active and inactive values of a ticket picklist field (`status`, `priority`).
    async fn ticket_picklist(&self, field: &str) -> Result<Vec<PicklistValue>, ApiError>;
    /// The statuses a ticket in `queue_id` may take (the tenant's default
    /// queue when `None`). Autotask has one status list for every queue;
    /// ConnectWise statuses belong to a board, and the same name has a
    /// different id on each.
    async fn ticket_statuses(&self, queue_id: Option<i64>) -> Result<Vec<PicklistValue>, ApiError> {
        let _ = queue_id;
        self.ticket_picklist("status").await
    }
    /// Tickets whose `lastActivityDate` (any change, note or time entry) is
    /// after `since`, with that date, following paging to the end.
    async fn tickets_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, DateTime<Utc>)>, ApiError>;
}

/// A configuration item found by a ticket's cluster id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CiRef {
    /// The id a ticket is linked to it by (Autotask `configurationItemID`);
    /// `None` where the connector does not link tickets to it.
    pub id: Option<i64>,
    pub company_id: i64,
    pub active: bool,
}

/// Builds (and may cache) the API clients of one tenant.
#[async_trait]
pub trait Connectors: Send + Sync {
    async fn desk(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
    ) -> Result<Arc<dyn ServiceDesk>, SyncError>;
    async fn psa(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
    ) -> Result<Arc<dyn Psa>, SyncError>;

    /// The tenant's PSA configuration items for asset sync. Connectors
    /// without asset support refuse permanently.
    async fn assets(
        &self,
        config: &TenantConfig,
        secrets: &TenantSecrets,
    ) -> Result<Arc<dyn AssetPsa>, SyncError> {
        let _ = (config, secrets);
        Err(SyncError::Config(
            "asset sync is not available with these connectors".to_owned(),
        ))
    }

    /// Gives back what the connectors keep between calls in shared storage
    /// (the PSA budget's concurrency slots), before the process may be
    /// frozen: the end of a Lambda invocation.
    async fn give_back_held(&self) {}
}
