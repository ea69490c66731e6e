//! The domain vocabulary shared by ingest, worker, connectors and adapters.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A tenant is one MSP. Every storage key and every webhook URL begins with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Tenant ids appear in URLs and storage keys, so they are restricted to a
    /// conservative alphabet; anything else is rejected rather than escaped.
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which system an event or a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The service desk (Zendesk).
    Desk,
    /// The PSA (Autotask).
    Psa,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Desk => "zendesk",
            Side::Psa => "autotask",
        })
    }
}

/// "Ticket X of tenant T changed on side S". A hint, never the truth: the worker
/// re-reads both systems, so duplicated, late and reordered jobs are harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    pub tenant: TenantId,
    pub origin: Side,
    /// The ticket id in the origin system.
    pub ticket_id: String,
    /// The Zendesk ticket this job concerns, when known (for a PSA-side event:
    /// looked up from the link at ingest). Jobs of one linked ticket pair then
    /// share one FIFO lane whichever side they came from, so two workers never
    /// mirror the same note concurrently.
    #[serde(default)]
    pub desk_ticket_id: Option<u64>,
    /// Id of the source event (webhook id, callout sequence); used for queue
    /// de-duplication so a redelivered webhook is enqueued once.
    pub event_id: String,
    /// When ingest accepted the event (milliseconds since the epoch); used to
    /// measure end-to-end latency and to order the sync log.
    pub received_at_ms: i64,
}

impl SyncJob {
    /// One ticket, one lane: jobs of the same ticket pair are serialized.
    pub fn message_group(&self) -> String {
        match self.desk_ticket_id {
            Some(desk_id) => format!("{}:{}:{}", self.tenant, Side::Desk, desk_id),
            None => format!("{}:{}:{}", self.tenant, self.origin, self.ticket_id),
        }
    }

    /// Queue de-duplication id: the same source event is enqueued once.
    pub fn dedup_id(&self) -> String {
        format!("{}:{}:{}", self.tenant, self.origin, self.event_id)
    }
}

/// A Zendesk ticket, as much of it as the bridge mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskTicket {
    pub id: u64,
    pub subject: String,
    pub description: String,
    /// `urgent`, `high`, `normal`, `low`, or none.
    pub priority: Option<String>,
    /// `new`, `open`, `pending`, `hold`, `solved`, `closed`.
    pub status: String,
    pub external_id: Option<String>,
    /// Value of the tenant's "cluster id" custom field, when set.
    pub cluster_id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A Zendesk comment. The first comment of a ticket is its description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskComment {
    pub id: u64,
    pub author_id: u64,
    /// Display name of the author, for attribution on the other side.
    pub author_name: Option<String>,
    pub body: String,
    pub public: bool,
    pub created_at: Option<DateTime<Utc>>,
}

/// An Autotask ticket, as much of it as the bridge mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaTicket {
    pub id: i64,
    pub ticket_number: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub status: i64,
    pub priority: i64,
    pub company_id: i64,
    pub queue_id: Option<i64>,
    /// Our cross reference to the Zendesk ticket (Autotask `externalID`).
    pub external_id: Option<String>,
    pub last_activity: Option<DateTime<Utc>>,
}

/// What the bridge sends to create an Autotask ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPsaTicket {
    pub title: String,
    pub description: String,
    pub status: i64,
    pub priority: i64,
    pub company_id: i64,
    pub queue_id: Option<i64>,
    pub external_id: String,
}

/// A partial update of an Autotask ticket; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaTicketPatch {
    pub title: Option<String>,
    pub status: Option<i64>,
    pub priority: Option<i64>,
    pub company_id: Option<i64>,
}

impl PsaTicketPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.status.is_none()
            && self.priority.is_none()
            && self.company_id.is_none()
    }
}

/// Who may see a note. Internal Zendesk comments must stay internal in the PSA
/// and the other way round; publishing an internal note is a data leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Internal,
}

/// An Autotask ticket note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaNote {
    pub id: i64,
    pub ticket_id: i64,
    pub title: Option<String>,
    pub description: String,
    pub visibility: Visibility,
    /// Autotask resource that wrote the note, when the API reports one.
    pub creator_resource_id: Option<i64>,
    pub creator_name: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// What the bridge sends to create an Autotask ticket note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPsaNote {
    pub title: String,
    pub description: String,
    pub visibility: Visibility,
}

/// One value of an Autotask picklist (`Tickets/entityInformation/fields`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PicklistValue {
    pub value: i64,
    pub label: String,
    pub is_active: bool,
}
