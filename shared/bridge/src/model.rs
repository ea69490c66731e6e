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

/// Which PSA a tenant runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsaSystem {
    Autotask,
    ConnectWise,
}

impl PsaSystem {
    /// Lower-case name, as in cross references and sync-log ticket names.
    pub fn name(self) -> &'static str {
        match self {
            PsaSystem::Autotask => "autotask",
            PsaSystem::ConnectWise => "connectwise",
        }
    }

    /// The product's name, for people.
    pub fn label(self) -> &'static str {
        match self {
            PsaSystem::Autotask => "Autotask",
            PsaSystem::ConnectWise => "ConnectWise",
        }
    }
}

impl fmt::Display for PsaSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Zendesk ticket's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeskTicketId(pub u64);

/// An Autotask ticket's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PsaTicketId(pub i64);

impl fmt::Display for DeskTicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for PsaTicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The ticket a job is about, in the system where it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobSubject {
    Desk(DeskTicketId),
    Psa(PsaTicketId),
}

impl JobSubject {
    pub fn side(self) -> Side {
        match self {
            JobSubject::Desk(_) => Side::Desk,
            JobSubject::Psa(_) => Side::Psa,
        }
    }

    /// The id alone, as the system that owns it writes it.
    pub fn id(self) -> String {
        match self {
            JobSubject::Desk(id) => id.to_string(),
            JobSubject::Psa(id) => id.to_string(),
        }
    }
}

/// `zendesk:123`, `autotask:456`: how the sync log names a ticket.
impl fmt::Display for JobSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.side(), self.id())
    }
}

/// What the event behind a job said changed, when it said. It lets a run skip
/// what it need not read: an event about a comment or note the link already
/// records (the bridge's own copy coming back) costs no API call at all, and
/// an event about ticket fields does not list comments. Jobs without one (the
/// sweep's, callouts', messages queued before hints existed) run in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ChangeHint {
    #[default]
    Unknown,
    /// Only ticket fields changed (a status, a subject, the cross reference).
    Fields,
    /// This comment was added to the Zendesk ticket.
    DeskComment { id: u64 },
    /// This note was added to the PSA ticket.
    PsaNote { id: i64 },
}

/// "Ticket X of tenant T changed on side S". A hint, never the truth: the worker
/// re-reads both systems, so duplicated, late and reordered jobs are harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "QueuedJob", try_from = "QueuedJob")]
pub struct SyncJob {
    pub tenant: TenantId,
    pub subject: JobSubject,
    /// The Zendesk ticket this job concerns, when known (for a PSA-side event:
    /// looked up from the link at ingest). Jobs of one linked ticket pair then
    /// share one FIFO lane whichever side they came from, so two workers never
    /// mirror the same note concurrently.
    pub desk_ticket_id: Option<DeskTicketId>,
    /// Id of the source event (webhook id, callout sequence); used for queue
    /// de-duplication so a redelivered webhook is enqueued once.
    pub event_id: String,
    /// When ingest accepted the event (milliseconds since the epoch); used to
    /// measure end-to-end latency and to order the sync log.
    pub received_at_ms: i64,
    /// What the event said changed.
    pub change: ChangeHint,
}

/// A job as a queue message holds it. Fields are only ever added, with
/// defaults, so messages queued before an upgrade still run after it.
#[derive(Serialize, Deserialize)]
struct QueuedJob {
    tenant: TenantId,
    origin: Side,
    ticket_id: String,
    #[serde(default)]
    desk_ticket_id: Option<u64>,
    event_id: String,
    received_at_ms: i64,
    #[serde(default, skip_serializing_if = "is_unknown")]
    change: ChangeHint,
}

fn is_unknown(change: &ChangeHint) -> bool {
    *change == ChangeHint::Unknown
}

impl TryFrom<QueuedJob> for SyncJob {
    type Error = String;

    fn try_from(queued: QueuedJob) -> Result<Self, Self::Error> {
        let not_a_number = || {
            format!(
                "{} ticket id {:?} is not a number",
                queued.origin, queued.ticket_id
            )
        };
        let subject = match queued.origin {
            Side::Desk => JobSubject::Desk(DeskTicketId(
                queued.ticket_id.parse().map_err(|_| not_a_number())?,
            )),
            Side::Psa => JobSubject::Psa(PsaTicketId(
                queued.ticket_id.parse().map_err(|_| not_a_number())?,
            )),
        };
        Ok(Self {
            tenant: queued.tenant,
            subject,
            desk_ticket_id: queued.desk_ticket_id.map(DeskTicketId),
            event_id: queued.event_id,
            received_at_ms: queued.received_at_ms,
            change: queued.change,
        })
    }
}

impl From<SyncJob> for QueuedJob {
    fn from(job: SyncJob) -> Self {
        Self {
            tenant: job.tenant,
            origin: job.subject.side(),
            ticket_id: job.subject.id(),
            desk_ticket_id: job.desk_ticket_id.map(|id| id.0),
            event_id: job.event_id,
            received_at_ms: job.received_at_ms,
            change: job.change,
        }
    }
}

impl SyncJob {
    /// One ticket, one lane: jobs of the same ticket pair are serialized.
    pub fn message_group(&self) -> String {
        match self.desk_ticket_id {
            Some(desk_id) => format!("{}:{}:{}", self.tenant, Side::Desk, desk_id),
            None => format!("{}:{}", self.tenant, self.subject),
        }
    }

    /// Queue de-duplication id: the same source event is enqueued once.
    pub fn dedup_id(&self) -> String {
        format!("{}:{}:{}", self.tenant, self.subject.side(), self.event_id)
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
    /// The requester's Zendesk organization, when the ticket has one.
    #[serde(default)]
    pub organization_id: Option<u64>,
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
    /// The device (configuration item) the ticket is about, when its cluster
    /// id names an active one of the same company (Autotask
    /// `configurationItemID`).
    #[serde(default)]
    pub configuration_item_id: Option<i64>,
}

/// A partial update of an Autotask ticket; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaTicketPatch {
    pub title: Option<String>,
    pub status: Option<i64>,
    pub priority: Option<i64>,
    pub company_id: Option<i64>,
    /// The device the ticket is now about (with a company change by cluster id).
    #[serde(default)]
    pub configuration_item_id: Option<i64>,
}

impl PsaTicketPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.status.is_none()
            && self.priority.is_none()
            && self.company_id.is_none()
            && self.configuration_item_id.is_none()
    }
}

/// Fields the bridge sets on a Zendesk ticket from the PSA (each `None` is
/// left alone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskTicketPatch {
    pub subject: Option<String>,
    /// `open`, `pending`, `hold`, `solved` or `closed`.
    pub status: Option<String>,
    /// `urgent`, `high`, `normal` or `low`.
    pub priority: Option<String>,
}

impl DeskTicketPatch {
    pub fn is_empty(&self) -> bool {
        self.subject.is_none() && self.status.is_none() && self.priority.is_none()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_keeps_the_queue_message_shape_of_earlier_releases() {
        let queued = r#"{"tenant":"acme","origin":"psa","ticket_id":"4242","desk_ticket_id":17,"event_id":"e1","received_at_ms":5}"#;
        let job: SyncJob = serde_json::from_str(queued).unwrap();
        assert_eq!(job.subject, JobSubject::Psa(PsaTicketId(4242)));
        assert_eq!(job.desk_ticket_id, Some(DeskTicketId(17)));
        assert_eq!(job.subject.to_string(), "autotask:4242");
        let again: serde_json::Value = serde_json::to_value(&job).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(queued).unwrap()
        );
    }

    #[test]
    fn a_ticket_id_that_is_not_a_number_is_refused_when_the_message_is_read() {
        let queued = r#"{"tenant":"acme","origin":"desk","ticket_id":"12a","event_id":"e","received_at_ms":0}"#;
        let err = serde_json::from_str::<SyncJob>(queued).unwrap_err();
        assert!(err.to_string().contains("\"12a\" is not a number"), "{err}");
    }
}
