//! Autotask REST API simulator (ATServicesRest V1.0): one Autotask database per
//! instance, on loopback, following the public contract closely enough that
//! the bridge's client runs against it unchanged.
//!
//! - Zone discovery at `{base}/atservicesrest/v1.0/zoneInformation?user=`.
//! - Entity routes under `{base}/ATServicesRest/V1.0/`, each checking the
//!   `UserName`/`Secret`/`ApiIntegrationCode` headers (401 otherwise) and
//!   passing through the fault middleware.
//! - Validation errors answer 500 with `{"errors": [...]}`, as Autotask does.
//! - Queries take `filter`, `MaxRecords` and `IncludeFields` (only those fields
//!   are returned, `id` always among them); `nextPageUrl` carries all three.
//! - A ticket's `lastActivityDate` moves on every change and every note.
//! - Changes, by the API user or by a technician through the Rust methods, fire
//!   the configured extension callout (form data, HTTP Basic) and REST webhook
//!   (JSON, `X-Hook-Signature: sha1=<base64 HMAC-SHA1>`), the webhook skipped
//!   when the acting resource is one of its excluded resources.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Map, Value};
use sha1::Sha1;

use crate::faults::{apply_faults, deliver_webhook, Faults};

/// Configuration of one simulated Autotask database.
#[derive(Debug, Clone)]
pub struct AutotaskSandboxConfig {
    /// The API user (`UserName` header, zone lookup `user=`).
    pub username: String,
    pub secret: String,
    pub integration_code: String,
    /// Resource id of the API user: creator of what the API writes, and the
    /// `PersonID` of the events it causes.
    pub api_resource_id: i64,
    pub callout: Option<CalloutTarget>,
    pub webhook: Option<WebhookTarget>,
    /// Page size of `GET Tickets/{id}/Notes`; small values exercise paging.
    pub note_page_size: usize,
}

impl Default for AutotaskSandboxConfig {
    fn default() -> Self {
        Self {
            username: "api-user@sandbox.example".to_owned(),
            secret: "sandbox-secret".to_owned(),
            integration_code: "SANDBOXINTEGRATIONCODE".to_owned(),
            api_resource_id: 29682885,
            callout: None,
            webhook: None,
            note_page_size: 500,
        }
    }
}

/// An extension callout: ticket data posted as form fields with HTTP Basic auth.
#[derive(Debug, Clone)]
pub struct CalloutTarget {
    pub url: String,
    pub username: String,
    pub password: String,
}

/// A REST webhook (Ticket and TicketNote events).
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret_key: String,
    /// Autotask's "excluded resources": changes by these fire no webhook.
    pub excluded_resource_ids: Vec<i64>,
}

/// A ticket as stored in the simulated database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: i64,
    pub ticket_number: String,
    pub title: String,
    pub description: Option<String>,
    pub status: i64,
    pub priority: i64,
    pub company_id: i64,
    pub queue_id: Option<i64>,
    pub external_id: Option<String>,
    pub creator_resource_id: i64,
    pub create_date: DateTime<Utc>,
    pub last_activity_date: DateTime<Utc>,
}

/// A ticket note as stored in the simulated database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: i64,
    pub ticket_id: i64,
    pub title: String,
    pub description: String,
    /// 1 "All Autotask Users" (customer-visible), 2 "Internal Only".
    pub publish: i64,
    pub note_type: i64,
    pub creator_resource_id: i64,
    pub create_date_time: DateTime<Utc>,
}

/// A running simulator; clones share the database. The server stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct AutotaskSandbox {
    shared: Arc<Shared>,
    _server: Arc<ServerGuard>,
}

struct ServerGuard(tokio::task::JoinHandle<()>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Shared {
    config: Mutex<AutotaskSandboxConfig>,
    db: Mutex<Db>,
    faults: Faults,
    base_url: OnceLock<String>,
    api_calls: AtomicU64,
    /// Identifies the webhook, as Autotask's `Guid` does (not the event).
    webhook_guid: String,
    http: reqwest::Client,
}

// ---------------------------------------------------------------------------
// Picklists (Autotask's shipped defaults)
// ---------------------------------------------------------------------------

/// (value, label, active, default)
type Pick = (i64, &'static str, bool, bool);

const STATUS: &[Pick] = &[
    (1, "New", true, true),
    (5, "Complete", true, false),
    (7, "Waiting Customer", true, false),
    (8, "In Progress", true, false),
    (9, "Waiting Materials", true, false),
    (10, "Dispatched", true, false),
    (11, "Escalated", true, false),
    (12, "Waiting Vendor", true, false),
    (13, "Waiting Approval", true, false),
    (14, "On Hold (retired)", false, false),
];
const PRIORITY: &[Pick] = &[
    (4, "Critical", true, false),
    (1, "High", true, false),
    (2, "Medium", true, true),
    (3, "Low", true, false),
];
const QUEUE: &[Pick] = &[
    (5, "Client Portal", true, false),
    (6, "Post Sale", true, false),
    (29682833, "Level I Support", true, false),
    (29682969, "Level II Support", true, false),
];
const TICKET_TYPE: &[Pick] = &[
    (1, "Service Request", true, true),
    (2, "Incident", true, false),
    (3, "Problem", true, false),
    (4, "Change Request", true, false),
    (5, "Alert", true, false),
];
const NOTE_TYPE: &[Pick] = &[
    (1, "Task Summary", true, false),
    (2, "Task Detail", true, false),
    (3, "Task Notes", true, true),
    (13, "Workflow Rule Note", true, false),
    (18, "Client Portal Note", true, false),
];
const PUBLISH: &[Pick] = &[
    (1, "All Autotask Users", true, false),
    (2, "Internal Only", true, false),
];

const PUBLISH_ALL: i64 = 1;
const PUBLISH_INTERNAL: i64 = 2;
const TECHNICIAN_NOTE_TYPE: i64 = 1;

const TITLE_MAX: usize = 255;
const DESCRIPTION_MAX: usize = 8000;
const NOTE_TITLE_MAX: usize = 250;
const NOTE_DESCRIPTION_MAX: usize = 32000;
const QUERY_PAGE_MAX: usize = 500;

fn picks_json(picks: &[Pick]) -> Value {
    Value::Array(
        picks
            .iter()
            .enumerate()
            .map(|(order, (value, label, active, default))| {
                json!({
                    "value": value.to_string(),
                    "label": label,
                    "isDefaultValue": default,
                    "sortOrder": order + 1,
                    "parentValue": "",
                    "isActive": active,
                    "isSystem": true,
                })
            })
            .collect(),
    )
}

fn field_json(
    name: &str,
    data_type: &str,
    required: bool,
    read_only: bool,
    picks: Option<&[Pick]>,
) -> Value {
    json!({
        "name": name,
        "dataType": data_type,
        "length": 0,
        "isRequired": required,
        "isReadOnly": read_only,
        "isQueryable": true,
        "isReference": name.ends_with("ID") && picks.is_none() && name != "externalID",
        "referenceEntityType": "",
        "isPickList": picks.is_some(),
        "picklistValues": picks.map(picks_json),
        "picklistParentValueField": "",
        "isSupportedWebhookField": true,
    })
}

fn ticket_fields() -> Value {
    json!({ "fields": [
        field_json("id", "long", true, true, None),
        field_json("ticketNumber", "string", false, true, None),
        field_json("title", "string", true, false, None),
        field_json("description", "string", false, false, None),
        field_json("status", "integer", true, false, Some(STATUS)),
        field_json("priority", "integer", true, false, Some(PRIORITY)),
        field_json("companyID", "integer", true, false, None),
        field_json("queueID", "integer", false, false, Some(QUEUE)),
        field_json("ticketType", "integer", false, false, Some(TICKET_TYPE)),
        field_json("externalID", "string", false, false, None),
        field_json("creatorResourceID", "integer", false, true, None),
        field_json("createDate", "datetime", false, true, None),
        field_json("lastActivityDate", "datetime", false, true, None),
    ]})
}

fn note_fields() -> Value {
    json!({ "fields": [
        field_json("id", "long", true, true, None),
        field_json("ticketID", "integer", true, true, None),
        field_json("title", "string", false, false, None),
        field_json("description", "string", true, false, None),
        field_json("noteType", "integer", true, false, Some(NOTE_TYPE)),
        field_json("publish", "integer", true, false, Some(PUBLISH)),
        field_json("creatorResourceID", "integer", false, true, None),
        field_json("createDateTime", "datetime", false, true, None),
        field_json("lastActivityDate", "datetime", false, true, None),
    ]})
}

fn active_pick(picks: &[Pick], value: i64) -> bool {
    picks.iter().any(|(v, _, active, _)| *v == value && *active)
}

// ---------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------

struct Company {
    id: i64,
    name: String,
}

struct ConfigurationItem {
    id: i64,
    company_id: i64,
    reference_number: String,
}

#[derive(Default)]
struct Db {
    tickets: BTreeMap<i64, Ticket>,
    notes: BTreeMap<i64, Note>,
    companies: BTreeMap<i64, Company>,
    items: BTreeMap<i64, ConfigurationItem>,
    resources: BTreeMap<i64, String>,
    next_ticket: i64,
    next_note: i64,
    next_company: i64,
    next_item: i64,
    next_resource: i64,
    tickets_per_day: HashMap<NaiveDate, u32>,
    sequence: HashMap<(&'static str, i64), i64>,
}

impl Db {
    fn new() -> Self {
        // Distinct id ranges per entity make a mixed-up id fail loudly in tests.
        Self {
            next_ticket: 7001,
            next_note: 30001,
            next_company: 174,
            next_item: 501,
            next_resource: 29683001,
            ..Default::default()
        }
    }

    fn sequence(&mut self, entity: &'static str, id: i64) -> i64 {
        let counter = self.sequence.entry((entity, id)).or_insert(0);
        *counter += 1;
        *counter
    }

    /// Last activity strictly increases per ticket, so callouts that carry it
    /// never look like a redelivery of the previous change.
    fn touch(&mut self, ticket_id: i64, now: DateTime<Utc>) {
        if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
            ticket.last_activity_date = if now > ticket.last_activity_date {
                now
            } else {
                ticket.last_activity_date + chrono::Duration::milliseconds(1)
            };
        }
    }

    fn rows(&self, entity: Entity) -> Vec<Value> {
        match entity {
            Entity::Tickets => self.tickets.values().map(ticket_json).collect(),
            Entity::TicketNotes => self.notes.values().map(note_json).collect(),
            Entity::ConfigurationItems => self.items.values().map(item_json).collect(),
            Entity::Companies => self.companies.values().map(company_json).collect(),
        }
    }
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn ticket_json(t: &Ticket) -> Value {
    json!({
        "id": t.id,
        "ticketNumber": t.ticket_number,
        "title": t.title,
        "description": t.description,
        "status": t.status,
        "priority": t.priority,
        "companyID": t.company_id,
        "queueID": t.queue_id,
        "externalID": t.external_id,
        "creatorResourceID": t.creator_resource_id,
        "createDate": time(&t.create_date),
        "lastActivityDate": time(&t.last_activity_date),
    })
}

fn note_json(n: &Note) -> Value {
    json!({
        "id": n.id,
        "ticketID": n.ticket_id,
        "title": n.title,
        "description": n.description,
        "noteType": n.note_type,
        "publish": n.publish,
        "creatorResourceID": n.creator_resource_id,
        "createDateTime": time(&n.create_date_time),
        "lastActivityDate": time(&n.create_date_time),
    })
}

fn item_json(i: &ConfigurationItem) -> Value {
    json!({
        "id": i.id,
        "companyID": i.company_id,
        "referenceNumber": i.reference_number,
        "referenceTitle": i.reference_number,
        "isActive": true,
    })
}

fn company_json(c: &Company) -> Value {
    json!({ "id": c.id, "companyName": c.name, "isActive": true, "companyType": 1 })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entity {
    Tickets,
    TicketNotes,
    ConfigurationItems,
    Companies,
}

impl Entity {
    const ALL: [Entity; 4] = [
        Entity::Tickets,
        Entity::TicketNotes,
        Entity::ConfigurationItems,
        Entity::Companies,
    ];

    fn path(self) -> &'static str {
        match self {
            Entity::Tickets => "Tickets",
            Entity::TicketNotes => "TicketNotes",
            Entity::ConfigurationItems => "ConfigurationItems",
            Entity::Companies => "Companies",
        }
    }

    /// Field names, for rejecting queries on fields the entity does not have.
    fn fields(self) -> Vec<String> {
        let sample = match self {
            Entity::Tickets => ticket_json(&Ticket {
                id: 0,
                ticket_number: String::new(),
                title: String::new(),
                description: None,
                status: 0,
                priority: 0,
                company_id: 0,
                queue_id: None,
                external_id: None,
                creator_resource_id: 0,
                create_date: DateTime::UNIX_EPOCH,
                last_activity_date: DateTime::UNIX_EPOCH,
            }),
            Entity::TicketNotes => note_json(&Note {
                id: 0,
                ticket_id: 0,
                title: String::new(),
                description: String::new(),
                publish: 0,
                note_type: 0,
                creator_resource_id: 0,
                create_date_time: DateTime::UNIX_EPOCH,
            }),
            Entity::ConfigurationItems => item_json(&ConfigurationItem {
                id: 0,
                company_id: 0,
                reference_number: String::new(),
            }),
            Entity::Companies => company_json(&Company {
                id: 0,
                name: String::new(),
            }),
        };
        sample
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// One outgoing event, decided under the lock and delivered after it.
enum Change {
    Ticket {
        action: &'static str,
        ticket: Ticket,
        fields: Map<String, Value>,
        sequence: i64,
    },
    Note {
        note: Note,
        ticket: Ticket,
        sequence: i64,
    },
}

// ---------------------------------------------------------------------------
// The public handle
// ---------------------------------------------------------------------------

impl AutotaskSandbox {
    pub async fn start(config: AutotaskSandboxConfig) -> std::io::Result<Self> {
        let mut rng = rand::thread_rng();
        let guid = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            rng.gen::<u32>(),
            rng.gen::<u16>(),
            rng.gen::<u16>() & 0x0fff,
            (rng.gen::<u16>() & 0x3fff) | 0x8000,
            rng.gen::<u64>() & 0xffff_ffff_ffff
        );
        let http = reqwest::Client::builder()
            // Autotask gives a webhook receiver 10 seconds.
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            db: Mutex::new(Db::new()),
            faults: Faults::default(),
            base_url: OnceLock::new(),
            api_calls: AtomicU64::new(0),
            webhook_guid: guid,
            http,
        });
        let (url, task) = crate::serve(router(shared.clone())).await?;
        shared
            .base_url
            .set(url)
            .expect("base URL is set once, at start");
        Ok(Self {
            shared,
            _server: Arc::new(ServerGuard(task)),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        self.shared.base_url()
    }

    /// Where the client asks for the zone (`{base}/atservicesrest`).
    pub fn zone_lookup_url(&self) -> String {
        format!("{}/atservicesrest", self.base_url())
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    pub fn set_callout(&self, target: Option<CalloutTarget>) {
        self.shared.config().callout = target;
    }

    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        self.shared.config().webhook = target;
    }

    /// The `Guid` every webhook payload carries.
    pub fn webhook_guid(&self) -> &str {
        &self.shared.webhook_guid
    }

    pub fn add_company(&self, name: &str) -> i64 {
        let mut db = self.shared.db();
        let id = db.next_company;
        db.next_company += 1;
        db.companies.insert(
            id,
            Company {
                id,
                name: name.to_owned(),
            },
        );
        id
    }

    pub fn add_configuration_item(&self, company_id: i64, reference_number: &str) -> i64 {
        let mut db = self.shared.db();
        assert!(
            db.companies.contains_key(&company_id),
            "no company {company_id} in the sandbox"
        );
        let id = db.next_item;
        db.next_item += 1;
        db.items.insert(
            id,
            ConfigurationItem {
                id,
                company_id,
                reference_number: reference_number.to_owned(),
            },
        );
        id
    }

    /// A technician (resource) who can act through the Rust methods.
    pub fn add_resource(&self, name: &str) -> i64 {
        let mut db = self.shared.db();
        let id = db.next_resource;
        db.next_resource += 1;
        db.resources.insert(id, name.to_owned());
        id
    }

    /// A technician adds a note in the Autotask UI; fires the callout and webhook.
    pub fn add_note(
        &self,
        ticket_id: i64,
        resource_id: i64,
        title: &str,
        description: &str,
        publish_internal: bool,
    ) -> i64 {
        let publish = if publish_internal {
            PUBLISH_INTERNAL
        } else {
            PUBLISH_ALL
        };
        let change = {
            let mut db = self.shared.db();
            insert_note(
                &mut db,
                ticket_id,
                title,
                description,
                TECHNICIAN_NOTE_TYPE,
                publish,
                resource_id,
                Utc::now(),
            )
            .unwrap_or_else(|| panic!("no ticket {ticket_id} in the sandbox"))
        };
        let id = match &change {
            Change::Note { note, .. } => note.id,
            Change::Ticket { .. } => unreachable!("insert_note yields a note change"),
        };
        self.shared.fire(change, resource_id);
        id
    }

    /// A technician changes a ticket's status in the UI; fires the callout and webhook.
    pub fn set_status(&self, ticket_id: i64, resource_id: i64, status: i64) {
        assert!(
            active_pick(STATUS, status),
            "status {status} is not an active picklist value"
        );
        let change = {
            let mut db = self.shared.db();
            let mut update = Map::new();
            update.insert("status".to_owned(), json!(status));
            apply_update(&mut db, ticket_id, &update, Utc::now())
                .unwrap_or_else(|_| panic!("no ticket {ticket_id} in the sandbox"))
        };
        if let Some(change) = change {
            self.shared.fire(change, resource_id);
        }
    }

    pub fn tickets(&self) -> Vec<Ticket> {
        self.shared.db().tickets.values().cloned().collect()
    }

    pub fn ticket(&self, id: i64) -> Option<Ticket> {
        self.shared.db().tickets.get(&id).cloned()
    }

    pub fn notes(&self, ticket_id: i64) -> Vec<Note> {
        self.shared
            .db()
            .notes
            .values()
            .filter(|n| n.ticket_id == ticket_id)
            .cloned()
            .collect()
    }

    /// Entity API calls received (zone lookups excluded), faulted ones included.
    pub fn api_calls(&self) -> u64 {
        self.shared.api_calls.load(Ordering::Relaxed)
    }

    /// Value of a Tickets or TicketNotes picklist entry, by label.
    pub fn picklist_value(&self, field: &str, label: &str) -> Option<i64> {
        let picks = match field.to_ascii_lowercase().as_str() {
            "status" => STATUS,
            "priority" => PRIORITY,
            "queueid" => QUEUE,
            "tickettype" => TICKET_TYPE,
            "notetype" => NOTE_TYPE,
            "publish" => PUBLISH,
            _ => return None,
        };
        picks
            .iter()
            .find(|(_, l, _, _)| l.eq_ignore_ascii_case(label))
            .map(|(v, _, _, _)| *v)
    }
}

impl Shared {
    fn base_url(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or_default()
    }

    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn config(&self) -> MutexGuard<'_, AutotaskSandboxConfig> {
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers the callout and webhook of one change. Never called with a lock held.
    fn fire(&self, change: Change, actor: i64) {
        let (callout, webhook) = {
            let config = self.config();
            (config.callout.clone(), config.webhook.clone())
        };
        let ticket = match &change {
            Change::Ticket { ticket, .. } | Change::Note { ticket, .. } => ticket,
        };
        if let Some(callout) = callout {
            let form = serde_urlencoded::to_string([
                ("id", ticket.id.to_string()),
                ("TicketNumber", ticket.ticket_number.clone()),
                ("Title", ticket.title.clone()),
                ("Status", ticket.status.to_string()),
                ("Priority", ticket.priority.to_string()),
                ("CompanyID", ticket.company_id.to_string()),
                (
                    "QueueID",
                    ticket.queue_id.map(|q| q.to_string()).unwrap_or_default(),
                ),
                ("ExternalID", ticket.external_id.clone().unwrap_or_default()),
                ("LastActivityDate", time(&ticket.last_activity_date)),
            ])
            .expect("strings encode as form data");
            let credentials = STANDARD.encode(format!("{}:{}", callout.username, callout.password));
            deliver_webhook(
                &self.faults,
                &self.http,
                callout.url,
                vec![
                    ("Authorization".to_owned(), format!("Basic {credentials}")),
                    (
                        "Content-Type".to_owned(),
                        "application/x-www-form-urlencoded".to_owned(),
                    ),
                ],
                form.into_bytes(),
            );
        }
        let Some(webhook) = webhook else { return };
        if webhook.excluded_resource_ids.contains(&actor) {
            return;
        }
        let now = time(&Utc::now());
        let payload = match &change {
            Change::Ticket {
                action,
                ticket,
                fields,
                sequence,
            } => {
                let mut fields = fields.clone();
                fields.insert("TicketNumber".to_owned(), json!(ticket.ticket_number));
                json!({
                    "Action": action,
                    "Guid": self.webhook_guid,
                    "EntityType": "Ticket",
                    "Id": ticket.id,
                    "Fields": fields,
                    "EventTime": now,
                    "SequenceNumber": sequence,
                    "PersonID": actor,
                })
            }
            Change::Note { note, sequence, .. } => json!({
                "Action": "Create",
                "Guid": self.webhook_guid,
                "EntityType": "TicketNote",
                "Id": note.id,
                "Fields": {
                    "TicketID": note.ticket_id.to_string(),
                    "Title": note.title,
                    "Publish": note.publish.to_string(),
                    "NoteType": note.note_type.to_string(),
                },
                "EventTime": now,
                "SequenceNumber": sequence,
                "PersonID": actor,
            }),
        };
        let body = serde_json::to_vec(&payload).expect("JSON values serialize");
        let mut mac = Hmac::<Sha1>::new_from_slice(webhook.secret_key.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(&body);
        let signature = format!("sha1={}", STANDARD.encode(mac.finalize().into_bytes()));
        deliver_webhook(
            &self.faults,
            &self.http,
            webhook.url,
            vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("X-Hook-Signature".to_owned(), signature),
            ],
            body,
        );
    }
}

// ---------------------------------------------------------------------------
// Mutations shared by the API and the Rust methods
// ---------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn insert_note(
    db: &mut Db,
    ticket_id: i64,
    title: &str,
    description: &str,
    note_type: i64,
    publish: i64,
    creator: i64,
    now: DateTime<Utc>,
) -> Option<Change> {
    if !db.tickets.contains_key(&ticket_id) {
        return None;
    }
    let id = db.next_note;
    db.next_note += 1;
    let note = Note {
        id,
        ticket_id,
        title: title.to_owned(),
        description: description.to_owned(),
        publish,
        note_type,
        creator_resource_id: creator,
        create_date_time: now,
    };
    db.notes.insert(id, note.clone());
    db.touch(ticket_id, now);
    let sequence = db.sequence("TicketNote", id);
    let ticket = db.tickets[&ticket_id].clone();
    Some(Change::Note {
        note,
        ticket,
        sequence,
    })
}

/// Applies already-validated field changes; `Ok(None)` when nothing changed,
/// `Err(())` when the ticket does not exist.
fn apply_update(
    db: &mut Db,
    ticket_id: i64,
    update: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Option<Change>, ()> {
    let ticket = db.tickets.get_mut(&ticket_id).ok_or(())?;
    let mut changed = Map::new();
    for (field, value) in update {
        let did_change = match field.as_str() {
            "title" => set(
                &mut ticket.title,
                value.as_str().unwrap_or_default().to_owned(),
            ),
            "description" => set(&mut ticket.description, value.as_str().map(str::to_owned)),
            "status" => as_i64(value).is_some_and(|v| set(&mut ticket.status, v)),
            "priority" => as_i64(value).is_some_and(|v| set(&mut ticket.priority, v)),
            "companyID" => as_i64(value).is_some_and(|v| set(&mut ticket.company_id, v)),
            "queueID" => set(&mut ticket.queue_id, as_i64(value)),
            "externalID" => set(&mut ticket.external_id, value.as_str().map(str::to_owned)),
            _ => false,
        };
        if did_change {
            // Webhook payloads use the SOAP-style field names with string values.
            let name = match field.as_str() {
                "companyID" => "CompanyID".to_owned(),
                "queueID" => "QueueID".to_owned(),
                "externalID" => "ExternalID".to_owned(),
                other => {
                    let mut chars = other.chars();
                    chars
                        .next()
                        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                        .unwrap_or_default()
                }
            };
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            changed.insert(name, json!(text));
        }
    }
    if changed.is_empty() {
        return Ok(None);
    }
    db.touch(ticket_id, now);
    let sequence = db.sequence("Ticket", ticket_id);
    Ok(Some(Change::Ticket {
        action: "Update",
        ticket: db.tickets[&ticket_id].clone(),
        fields: changed,
        sequence,
    }))
}

fn set<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        false
    } else {
        *slot = value;
        true
    }
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn reference_error(field: &str) -> String {
    format!("Value does not reference an existing entity for {field} . ")
}

/// Validates ticket fields of a create (`creating`) or update body and returns
/// them under their canonical names.
fn validate_ticket_fields(
    db: &Db,
    body: &Map<String, Value>,
    creating: bool,
) -> Result<Map<String, Value>, Vec<String>> {
    let mut errors = Vec::new();
    let mut fields = Map::new();
    if creating {
        for required in ["companyID", "title", "status", "priority"] {
            if get_ci(body, required).is_none() {
                errors.push(format!("Missing Required Field: {required}"));
            }
        }
    }
    if let Some(title) = get_ci(body, "title") {
        match title.as_str() {
            Some(t) if t.trim().is_empty() => errors.push("title cannot be empty".to_owned()),
            Some(t) if t.chars().count() > TITLE_MAX => errors.push(format!(
                "title exceeds the maximum length of {TITLE_MAX} characters"
            )),
            Some(t) => {
                fields.insert("title".to_owned(), json!(t));
            }
            None => errors.push("title must be a string".to_owned()),
        }
    }
    if let Some(description) = get_ci(body, "description") {
        match description.as_str() {
            Some(d) if d.chars().count() > DESCRIPTION_MAX => errors.push(format!(
                "description exceeds the maximum length of {DESCRIPTION_MAX} characters"
            )),
            Some(d) => {
                fields.insert("description".to_owned(), json!(d));
            }
            None => errors.push("description must be a string".to_owned()),
        }
    }
    for (name, picks) in [
        ("status", STATUS),
        ("priority", PRIORITY),
        ("queueID", QUEUE),
        ("ticketType", TICKET_TYPE),
    ] {
        if let Some(value) = get_ci(body, name) {
            match as_i64(value) {
                Some(v) if active_pick(picks, v) => {
                    fields.insert(name.to_owned(), json!(v));
                }
                _ => errors.push(reference_error(name)),
            }
        }
    }
    if let Some(company) = get_ci(body, "companyID") {
        match as_i64(company) {
            Some(c) if db.companies.contains_key(&c) => {
                fields.insert("companyID".to_owned(), json!(c));
            }
            _ => errors.push(reference_error("companyID")),
        }
    }
    if let Some(external) = get_ci(body, "externalID") {
        match external {
            Value::String(s) => {
                fields.insert("externalID".to_owned(), json!(s));
            }
            Value::Number(n) => {
                fields.insert("externalID".to_owned(), json!(n.to_string()));
            }
            _ => errors.push("externalID must be a string".to_owned()),
        }
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

type Ctx = Arc<Shared>;

fn router(shared: Ctx) -> Router {
    let mut api = Router::new()
        .route("/Tickets", post(create_ticket).patch(update_ticket))
        .route("/Tickets/{id}", get(get_ticket))
        .route("/Resources/{id}", get(get_resource))
        .route("/Tickets/{id}/Notes", get(list_notes).post(create_note))
        .route(
            "/Tickets/entityInformation/fields",
            get(|| async { Json(ticket_fields()) }),
        )
        .route(
            "/TicketNotes/entityInformation/fields",
            get(|| async { Json(note_fields()) }),
        );
    for entity in Entity::ALL {
        api = api
            .route(
                &format!("/{}/query", entity.path()),
                post(move |State(s): State<Ctx>, body: Bytes| async move { query(s, entity, body) }),
            )
            .route(
                &format!("/{}/query/next", entity.path()),
                get(move |State(s): State<Ctx>, Query(params): Query<HashMap<String, String>>| async move {
                    query_next(s, entity, params)
                }),
            );
    }
    // Outermost first: count every call, then faults, then authentication.
    let api = api
        .layer(from_fn_with_state(shared.clone(), require_auth))
        .layer(from_fn_with_state(shared.faults.clone(), apply_faults))
        .layer(from_fn_with_state(shared.clone(), count_call));
    Router::new()
        .route(
            "/atservicesrest/v1.0/zoneInformation",
            get(zone_information),
        )
        .route(
            "/ATServicesRest/V1.0/zoneInformation",
            get(zone_information),
        )
        .nest("/ATServicesRest/V1.0", api)
        .with_state(shared)
}

fn errors(status: StatusCode, messages: Vec<String>) -> Response {
    (status, Json(json!({ "errors": messages }))).into_response()
}

async fn count_call(State(s): State<Ctx>, request: Request, next: Next) -> Response {
    s.api_calls.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

async fn require_auth(State(s): State<Ctx>, request: Request, next: Next) -> Response {
    let authorized = {
        let config = s.config();
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        header("UserName").is_some_and(|u| u.eq_ignore_ascii_case(&config.username))
            && header("Secret") == Some(config.secret.as_str())
            && header("ApiIntegrationCode") == Some(config.integration_code.as_str())
    };
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(request).await
}

async fn zone_information(
    State(s): State<Ctx>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let known = {
        let config = s.config();
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("user"))
            .is_some_and(|(_, user)| user.eq_ignore_ascii_case(&config.username))
    };
    if !known {
        // Autotask answers an unknown or blank user name with a 500.
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec!["Zone information could not be determined for the user.".to_owned()],
        );
    }
    let base = s.base_url();
    Json(json!({
        "zoneName": "Sandbox Zone",
        "url": format!("{base}/ATServicesRest/"),
        "webUrl": format!("{base}/"),
        "ci": 0,
    }))
    .into_response()
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("The request body must be a JSON object.".to_owned()),
        Err(e) => Err(format!("The request body is not valid JSON: {e}")),
    }
}

async fn get_resource(State(s): State<Ctx>, Path(id): Path<i64>) -> Response {
    let resource = s.db().resources.get(&id).map(|name| {
        let (first, last) = name.split_once(' ').unwrap_or((name.as_str(), ""));
        json!({"id": id, "firstName": first, "lastName": last, "isActive": true})
    });
    Json(json!({ "item": resource })).into_response()
}

async fn get_ticket(State(s): State<Ctx>, Path(id): Path<i64>) -> Response {
    let ticket = s.db().tickets.get(&id).map(ticket_json);
    Json(json!({ "item": ticket })).into_response()
}

async fn create_ticket(State(s): State<Ctx>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let actor = s.config().api_resource_id;
    let now = Utc::now();
    let change = {
        let mut db = s.db();
        let fields = match validate_ticket_fields(&db, &body, true) {
            Ok(fields) => fields,
            Err(messages) => return errors(StatusCode::INTERNAL_SERVER_ERROR, messages),
        };
        let id = db.next_ticket;
        db.next_ticket += 1;
        let day = now.date_naive();
        let counter = db.tickets_per_day.entry(day).or_insert(0);
        *counter += 1;
        let ticket_number = format!("T{}.{:04}", day.format("%Y%m%d"), counter);
        let int = |name: &str| fields.get(name).and_then(Value::as_i64);
        let ticket = Ticket {
            id,
            ticket_number,
            title: fields["title"].as_str().unwrap_or_default().to_owned(),
            description: fields
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            status: int("status").unwrap_or(1),
            priority: int("priority").unwrap_or(2),
            company_id: int("companyID").unwrap_or_default(),
            queue_id: int("queueID"),
            external_id: fields
                .get("externalID")
                .and_then(Value::as_str)
                .map(str::to_owned),
            creator_resource_id: actor,
            create_date: now,
            last_activity_date: now,
        };
        db.tickets.insert(id, ticket.clone());
        let mut changed = Map::new();
        for (name, value) in [
            ("Title", json!(ticket.title)),
            ("Status", json!(ticket.status.to_string())),
            ("Priority", json!(ticket.priority.to_string())),
            ("CompanyID", json!(ticket.company_id.to_string())),
        ] {
            changed.insert(name.to_owned(), value);
        }
        let sequence = db.sequence("Ticket", id);
        Change::Ticket {
            action: "Create",
            ticket,
            fields: changed,
            sequence,
        }
    };
    let id = match &change {
        Change::Ticket { ticket, .. } => ticket.id,
        Change::Note { .. } => unreachable!("a ticket create yields a ticket change"),
    };
    s.fire(change, actor);
    Json(json!({ "itemId": id })).into_response()
}

async fn update_ticket(State(s): State<Ctx>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let Some(id) = get_ci(&body, "id").and_then(as_i64) else {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec!["Missing Required Field: id".to_owned()],
        );
    };
    let actor = s.config().api_resource_id;
    let change = {
        let mut db = s.db();
        if !db.tickets.contains_key(&id) {
            return errors(
                StatusCode::NOT_FOUND,
                vec![format!("Ticket {id} does not exist.")],
            );
        }
        let fields = match validate_ticket_fields(&db, &body, false) {
            Ok(fields) => fields,
            Err(messages) => return errors(StatusCode::INTERNAL_SERVER_ERROR, messages),
        };
        apply_update(&mut db, id, &fields, Utc::now()).unwrap_or(None)
    };
    if let Some(change) = change {
        s.fire(change, actor);
    }
    Json(json!({ "itemId": id })).into_response()
}

async fn list_notes(
    State(s): State<Ctx>,
    Path(ticket_id): Path<i64>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let offset: usize = params
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let page_size = s.config().note_page_size.max(1);
    let notes: Vec<Value> = {
        let db = s.db();
        if !db.tickets.contains_key(&ticket_id) {
            return errors(
                StatusCode::NOT_FOUND,
                vec![format!("Ticket {ticket_id} does not exist.")],
            );
        }
        db.notes
            .values()
            .filter(|n| n.ticket_id == ticket_id)
            .map(note_json)
            .collect()
    };
    let link = |offset: usize| {
        format!(
            "{}/ATServicesRest/V1.0/Tickets/{ticket_id}/Notes?offset={offset}",
            s.base_url()
        )
    };
    page(notes, offset, page_size, link)
}

async fn create_note(State(s): State<Ctx>, Path(ticket_id): Path<i64>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let mut messages = Vec::new();
    if let Some(other) = get_ci(&body, "ticketID")
        .and_then(as_i64)
        .filter(|t| *t != ticket_id)
    {
        messages.push(format!(
            "ticketID {other} does not match the parent ticket {ticket_id}"
        ));
    }
    let description = get_ci(&body, "description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if description.trim().is_empty() {
        messages.push("Missing Required Field: description".to_owned());
    } else if description.chars().count() > NOTE_DESCRIPTION_MAX {
        messages.push(format!(
            "description exceeds the maximum length of {NOTE_DESCRIPTION_MAX} characters"
        ));
    }
    let title = get_ci(&body, "title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if title.chars().count() > NOTE_TITLE_MAX {
        messages.push(format!(
            "title exceeds the maximum length of {NOTE_TITLE_MAX} characters"
        ));
    }
    let mut picked = |name: &str, picks: &[Pick]| match get_ci(&body, name).map(as_i64) {
        None => {
            messages.push(format!("Missing Required Field: {name}"));
            0
        }
        Some(Some(v)) if active_pick(picks, v) => v,
        Some(_) => {
            messages.push(reference_error(name));
            0
        }
    };
    let note_type = picked("noteType", NOTE_TYPE);
    let publish = picked("publish", PUBLISH);
    if !messages.is_empty() {
        return errors(StatusCode::INTERNAL_SERVER_ERROR, messages);
    }
    let actor = s.config().api_resource_id;
    let change = {
        let mut db = s.db();
        insert_note(
            &mut db,
            ticket_id,
            title,
            description,
            note_type,
            publish,
            actor,
            Utc::now(),
        )
    };
    let Some(change) = change else {
        return errors(
            StatusCode::NOT_FOUND,
            vec![format!("Ticket {ticket_id} does not exist.")],
        );
    };
    let id = match &change {
        Change::Note { note, .. } => note.id,
        Change::Ticket { .. } => unreachable!("insert_note yields a note change"),
    };
    s.fire(change, actor);
    Json(json!({ "itemId": id })).into_response()
}

fn page(rows: Vec<Value>, offset: usize, size: usize, link: impl Fn(usize) -> String) -> Response {
    let end = (offset + size).min(rows.len());
    let items: Vec<Value> = rows
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let next = (end < rows.len()).then(|| link(end));
    let prev = (offset > 0).then(|| link(offset.saturating_sub(size)));
    Json(json!({
        "items": items,
        "pageDetails": {
            "count": items.len(),
            "requestCount": size,
            "prevPageUrl": prev,
            "nextPageUrl": next,
        }
    }))
    .into_response()
}

fn query(s: Ctx, entity: Entity, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    run_query(s, entity, body, 0)
}

fn query_next(s: Ctx, entity: Entity, params: HashMap<String, String>) -> Response {
    let search = params.get("search").map(String::as_str).unwrap_or_default();
    let body = match parse_object(search.as_bytes()) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let offset = params
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    run_query(s, entity, body, offset)
}

fn run_query(s: Ctx, entity: Entity, body: Map<String, Value>, offset: usize) -> Response {
    let Some(filter) = get_ci(&body, "filter").and_then(Value::as_array).cloned() else {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec!["A query must have a filter.".to_owned()],
        );
    };
    let size = get_ci(&body, "MaxRecords")
        .and_then(as_i64)
        .map(|m| m.clamp(1, QUERY_PAGE_MAX as i64) as usize)
        .unwrap_or(QUERY_PAGE_MAX);
    let known = entity.fields();
    let include: Option<Vec<String>> = match get_ci(&body, "IncludeFields") {
        None => None,
        Some(Value::Array(names)) => {
            let mut fields = vec!["id".to_owned()];
            for name in names {
                let Some(name) = name.as_str() else {
                    return errors(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        vec!["IncludeFields must be a list of field names.".to_owned()],
                    );
                };
                match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                    Some(field) if !fields.contains(field) => fields.push(field.clone()),
                    Some(_) => {}
                    None => {
                        return errors(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            vec![format!(
                                "Unable to find {name} in the {} entity.",
                                entity.path()
                            )],
                        )
                    }
                }
            }
            Some(fields)
        }
        Some(_) => {
            return errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec!["IncludeFields must be a list of field names.".to_owned()],
            )
        }
    };
    let rows = s.db().rows(entity);
    let mut matched = Vec::new();
    for row in rows {
        let object = row.as_object().expect("entities serialize as objects");
        let mut keep = true;
        for condition in &filter {
            match matches(object, condition, &known, entity) {
                Ok(true) => {}
                Ok(false) => {
                    keep = false;
                    break;
                }
                Err(message) => return errors(StatusCode::INTERNAL_SERVER_ERROR, vec![message]),
            }
        }
        if keep {
            matched.push(match &include {
                Some(fields) => Value::Object(
                    object
                        .iter()
                        .filter(|(k, _)| fields.contains(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                None => row,
            });
        }
    }
    let mut search = json!({ "filter": filter, "MaxRecords": size });
    if let Some(fields) = &include {
        search["IncludeFields"] = json!(fields);
    }
    let search = search.to_string();
    let base = s.base_url().to_owned();
    let link = move |offset: usize| {
        let query = serde_urlencoded::to_string([
            ("search", search.clone()),
            ("offset", offset.to_string()),
        ])
        .expect("strings encode as form data");
        format!(
            "{base}/ATServicesRest/V1.0/{}/query/next?{query}",
            entity.path()
        )
    };
    page(matched, offset, size, link)
}

fn matches(
    row: &Map<String, Value>,
    condition: &Value,
    known: &[String],
    entity: Entity,
) -> Result<bool, String> {
    let op = condition
        .get("op")
        .and_then(Value::as_str)
        .ok_or("Each filter needs an op.")?
        .to_ascii_lowercase();
    if op == "and" || op == "or" {
        let items = condition
            .get("items")
            .and_then(Value::as_array)
            .ok_or("A grouping filter needs items.")?;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(matches(row, item, known, entity)?);
        }
        return Ok(if op == "and" {
            results.iter().all(|r| *r)
        } else {
            results.iter().any(|r| *r)
        });
    }
    let field = condition
        .get("field")
        .and_then(Value::as_str)
        .ok_or("Each filter needs a field.")?;
    if !known.iter().any(|k| k.eq_ignore_ascii_case(field)) {
        return Err(format!(
            "Unable to find {field} in the {} entity.",
            entity.path()
        ));
    }
    let actual = row
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field))
        .map(|(_, v)| v)
        .unwrap_or(&Value::Null);
    let expected = condition.get("value").unwrap_or(&Value::Null);
    let text = |v: &Value| match v {
        Value::String(s) => s.to_ascii_lowercase(),
        other => other.to_string().to_ascii_lowercase(),
    };
    Ok(match op.as_str() {
        "eq" => equal(actual, expected),
        "noteq" => !equal(actual, expected),
        "gt" | "gte" | "lt" | "lte" => match compare(actual, expected) {
            Some(ordering) => match op.as_str() {
                "gt" => ordering.is_gt(),
                "gte" => ordering.is_ge(),
                "lt" => ordering.is_lt(),
                _ => ordering.is_le(),
            },
            None => false,
        },
        "beginswith" => !actual.is_null() && text(actual).starts_with(&text(expected)),
        "endswith" => !actual.is_null() && text(actual).ends_with(&text(expected)),
        "contains" => !actual.is_null() && text(actual).contains(&text(expected)),
        "exist" => !actual.is_null(),
        "notexist" => actual.is_null(),
        "in" | "notin" => {
            let list = expected
                .as_array()
                .ok_or("in and notIn need a list value.")?;
            let found = list.iter().any(|v| equal(actual, v));
            if op == "in" {
                found
            } else {
                !found
            }
        }
        other => return Err(format!("Invalid filter operator {other}.")),
    })
}

fn equal(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) => {
            b.trim().parse::<f64>().ok() == a.as_f64()
        }
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Bool(a), Value::String(b)) | (Value::String(b), Value::Bool(a)) => {
            b.eq_ignore_ascii_case(&a.to_string())
        }
        _ => false,
    }
}

fn compare(actual: &Value, expected: &Value) -> Option<std::cmp::Ordering> {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match (number(actual), number(expected)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        // ISO dates in one format order correctly as text.
        _ => Some(actual.as_str()?.cmp(expected.as_str()?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_autotask() {
        let row = ticket_json(&Ticket {
            id: 7,
            ticket_number: "T20261123.0001".into(),
            title: "Printer".into(),
            description: None,
            status: 8,
            priority: 2,
            company_id: 174,
            queue_id: None,
            external_id: Some("zd:42".into()),
            creator_resource_id: 1,
            create_date: DateTime::UNIX_EPOCH,
            last_activity_date: DateTime::UNIX_EPOCH,
        });
        let row = row.as_object().unwrap();
        let known = Entity::Tickets.fields();
        let check = |filter: Value| matches(row, &filter, &known, Entity::Tickets);
        assert_eq!(
            check(json!({"op":"eq","field":"externalID","value":"ZD:42"})),
            Ok(true)
        );
        assert_eq!(
            check(json!({"op":"eq","field":"status","value":"8"})),
            Ok(true)
        );
        assert_eq!(
            check(json!({"op":"noteq","field":"status","value":8})),
            Ok(false)
        );
        assert_eq!(check(json!({"op":"gte","field":"id","value":7})), Ok(true));
        assert_eq!(check(json!({"op":"notExist","field":"queueID"})), Ok(true));
        assert_eq!(
            check(json!({"op":"in","field":"priority","value":[1,2]})),
            Ok(true)
        );
        assert_eq!(
            check(json!({"op":"beginsWith","field":"ticketNumber","value":"t2026"})),
            Ok(true)
        );
        assert_eq!(
            check(
                json!({"op":"or","items":[{"op":"eq","field":"id","value":1},{"op":"eq","field":"id","value":7}]})
            ),
            Ok(true)
        );
        assert!(check(json!({"op":"eq","field":"externalIDs","value":"x"}))
            .unwrap_err()
            .contains("Unable to find"));
        assert!(check(json!({"op":"like","field":"id","value":1})).is_err());
    }

    #[test]
    fn field_lists_name_every_serialized_field() {
        let fields = ticket_fields();
        let described: Vec<&str> = fields["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        for name in Entity::Tickets.fields() {
            assert!(
                described.contains(&name.as_str()),
                "{name} is not described"
            );
        }
    }
}
