//! Autotask REST API simulator (ATServicesRest V1.0): one Autotask database per
//! instance, on loopback, following the public contract closely enough that
//! the bridge's client runs against it unchanged.
//!
//! - Zone discovery at `{base}/atservicesrest/v1.0/zoneInformation?user=`.
//! - Entity routes under `{base}/ATServicesRest/V1.0/`, each checking the
//!   `UserName`/`Secret` headers (401 otherwise) and then
//!   `ApiIntegrationCode` (a wrong one answers 500 `{"errors":["IntegrationCode
//!   is invalid."]}`, as Autotask does), and passing through the fault
//!   middleware.
//! - Validation errors answer 500 with `{"errors": [...]}`, as Autotask does.
//! - Queries take `filter`, `MaxRecords` and `IncludeFields` (only those fields
//!   are returned, `id` always among them). `nextPageUrl` carries only the
//!   paging state (`paging={"pageSize","previousIds","nextIds"}`): the next
//!   page is fetched by POSTing the same query body to it; a GET answers
//!   405 and a POST without the body 500, as Autotask does.
//! - Ticket creates need `companyID`, `title`, `status` and `priority`, plus
//!   the fields the config lists as required (`required_ticket_fields`,
//!   reported by `Tickets/entityInformation/fields`, and
//!   `unlisted_required_ticket_fields`, not reported); a create without them
//!   is refused with a 500 and Autotask's error text.
//! - The TicketNotes `publish` picklist is a real tenant's: 1 "All Autotask
//!   Users", 2 "Internal Project Team", 4 "Internal & Co-Managed".
//! - A ticket's `lastActivityDate` moves on every change and every note.
//! - Changes, by the API user or by a technician through the Rust methods, fire
//!   the configured extension callout (HTTP Basic; GET query, POST form or
//!   POST XML, [`CalloutTransport`]) and REST webhook (JSON, `X-Hook-Signature:
//!   sha1=<base64 HMAC-SHA1>` over the raw or the .NET-escaped body,
//!   [`WebhookSigning`]), the webhook skipped when the acting resource is one
//!   of its excluded resources and delivered by Autotask's rules (in order,
//!   retried, deactivated after 25 failed events in a row, [`DeliveryRules`],
//!   [`AutotaskSandbox::webhook_status`]).
//! - Every request the simulator receives is recorded
//!   ([`AutotaskSandbox::requests`]).
//!
//! - Configuration items, products, CI types and categories, CI
//!   user-defined fields and `Tickets.configurationItemID` follow
//!   ../shared/specs/autotask-assets.md (see `assets` for the rules).
//!
//! Layout: this file holds the public handle and its types; `picklists` the
//! picklists and field descriptions; `db` the database and its validated
//! mutations; `api` the HTTP routes; `query` entity queries; `events` the
//! callouts and webhooks; `assets` the asset entities, their routes and
//! handle methods; `webhooks` the REST webhook entities (`TicketWebhooks`,
//! `TicketNoteWebhooks`, their fields and excluded resources) and
//! `Resources/query`, whose registered webhooks `events` delivers to,
//! signed with their own keys, beside the configured one.

mod api;
mod assets;
mod db;
mod events;
mod picklists;
mod query;
mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::json;

use self::api::router;
pub use self::assets::ConfigurationItem;
use self::db::{apply_update, insert_note, technician_update, Change, Company, Db, Entity};
pub use self::events::{
    dotnet_escaped_json, CalloutTransport, DeliveryRules, WebhookSigning, WebhookStatus,
};
use self::picklists::{
    active_pick, picklist, PUBLISH, PUBLISH_ALL, PUBLISH_INTERNAL, TECHNICIAN_NOTE_TYPE,
};
pub use self::webhooks::{HookEntity, HookField, RegisteredWebhook, NO_PERMISSION, SECRET_KEY_MAX};
use crate::faults::Faults;
pub use crate::recording::{RecordedRequest, RequestLog};

/// Where the entity API lives under [`AutotaskSandbox::base_url`]; recorded
/// request paths start with it (e.g. `/ATServicesRest/V1.0/Tickets`).
pub const API_ROOT: &str = "/ATServicesRest/V1.0";

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
    /// Ticket fields this database requires on create beyond `companyID`,
    /// `title`, `status` and `priority`, as real tenants' settings demand
    /// (`queueID`, `billingCodeID`, `ticketType`, `source`, …): reported as
    /// `isRequired` by `Tickets/entityInformation/fields`, and a create
    /// without them is refused with a 500 and Autotask's error text.
    pub required_ticket_fields: Vec<String>,
    /// Fields a create must carry that `entityInformation` does not report as
    /// required (a ticket category or workflow setting can demand a field the
    /// field list does not flag): refused with the same 500.
    pub unlisted_required_ticket_fields: Vec<String>,
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
            required_ticket_fields: Vec::new(),
            unlisted_required_ticket_fields: Vec::new(),
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
    pub ticket_type: Option<i64>,
    pub source: Option<i64>,
    /// "Work Type".
    pub billing_code_id: Option<i64>,
    pub assigned_resource_id: Option<i64>,
    pub assigned_resource_role_id: Option<i64>,
    pub external_id: Option<String>,
    /// The primary configuration item (`configurationItemID`).
    pub configuration_item_id: Option<i64>,
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
    /// The `publish` picklist value: 1 "All Autotask Users", 2 "Internal
    /// Project Team", 4 "Internal & Co-Managed" (as on real tenants).
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
    requests: RequestLog,
    base_url: OnceLock<String>,
    api_calls: AtomicU64,
    /// Identifies the webhook, as Autotask's `Guid` does (not the event).
    webhook_guid: String,
    http: reqwest::Client,
    /// Event options (signing, callout transport, delivery rules) and the
    /// webhook's delivery line (`events`).
    events: Arc<events::Events>,
    /// The webhooks registered through the API (`webhooks`).
    hooks: Mutex<webhooks::Hooks>,
}

// ---------------------------------------------------------------------------
// The public handle
// ---------------------------------------------------------------------------

impl AutotaskSandbox {
    /// Starts the simulator. Panics when the config names a required ticket
    /// field the simulated Tickets entity does not have (a test bug).
    pub async fn start(config: AutotaskSandboxConfig) -> std::io::Result<Self> {
        let known = Entity::Tickets.fields();
        for name in config
            .required_ticket_fields
            .iter()
            .chain(&config.unlisted_required_ticket_fields)
        {
            assert!(
                known.iter().any(|k| k.eq_ignore_ascii_case(name)),
                "required ticket field {name:?} is not a field of the sandbox's Tickets entity ({})",
                known.join(", ")
            );
        }
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
            requests: RequestLog::default(),
            base_url: OnceLock::new(),
            api_calls: AtomicU64::new(0),
            webhook_guid: guid,
            http,
            events: Arc::default(),
            hooks: Mutex::default(),
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

    /// Ticket fields a create must carry that `entityInformation` does not
    /// report (see the config field): set as a tenant's Autotask admin
    /// changes a category or workflow setting, and cleared again.
    pub fn set_unlisted_required_ticket_fields(&self, fields: &[&str]) {
        self.shared.config().unlisted_required_ticket_fields =
            fields.iter().map(|f| (*f).to_owned()).collect();
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
                active: true,
            },
        );
        id
    }

    /// Marks a company active or inactive (`isActive`), as an admin does in
    /// the UI. Panics if there is no such company.
    pub fn set_company_active(&self, company_id: i64, active: bool) {
        let mut db = self.shared.db();
        db.companies
            .get_mut(&company_id)
            .unwrap_or_else(|| panic!("no company {company_id} in the sandbox"))
            .active = active;
    }

    /// An active CI of the default product whose reference number (and
    /// title) is `reference_number`, as cluster ids are kept.
    pub fn add_configuration_item(&self, company_id: i64, reference_number: &str) -> i64 {
        let mut db = self.shared.db();
        assert!(
            db.companies.contains_key(&company_id),
            "no company {company_id} in the sandbox"
        );
        assets::new_reference_ci(&mut db, company_id, reference_number)
    }

    /// A technician (resource) who can act through the Rust methods.
    pub fn add_resource(&self, name: &str) -> i64 {
        let mut db = self.shared.db();
        let id = db.next_resource;
        db.next_resource += 1;
        db.resources.insert(id, name.to_owned());
        id
    }

    /// A technician opens a ticket in the Autotask UI (status "New",
    /// priority "Medium", no queue); fires the callout and webhook like an
    /// API create. Panics when the company does not exist.
    pub fn add_ticket(&self, resource_id: i64, company_id: i64, title: &str) -> i64 {
        let change = {
            let mut db = self.shared.db();
            assert!(
                db.companies.contains_key(&company_id),
                "add_ticket: no company {company_id} in the sandbox"
            );
            let now = Utc::now();
            let ticket = db::new_ticket(&mut db, resource_id, now, |t| {
                t.title = title.to_owned();
                t.company_id = company_id;
            });
            db::created(&mut db, ticket)
        };
        let id = match &change {
            Change::Ticket { ticket, .. } => ticket.id,
            Change::Note { .. } => unreachable!("a ticket create yields a ticket change"),
        };
        self.shared.fire(change, resource_id);
        id
    }

    /// A technician adds a note in the Autotask UI, published to "All
    /// Autotask Users" or (`publish_internal`) "Internal Project Team"; fires
    /// the callout and webhook.
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
        self.add_note_published(ticket_id, resource_id, title, description, publish)
    }

    /// Like [`add_note`](Self::add_note) with any active value of the
    /// TicketNotes `publish` picklist (e.g. 4 "Internal & Co-Managed", see
    /// [`picklist_value`](Self::picklist_value)). Panics on a value the
    /// picklist does not have.
    pub fn add_note_published(
        &self,
        ticket_id: i64,
        resource_id: i64,
        title: &str,
        description: &str,
        publish: i64,
    ) -> i64 {
        assert!(
            active_pick(PUBLISH, publish),
            "add_note_published: {publish} is not an active publish value ({PUBLISH:?})"
        );
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

    /// A technician changes a ticket's status in the UI; fires the callout and
    /// webhook. Shorthand for [`update_as_technician`](Self::update_as_technician)
    /// with `status` alone.
    pub fn set_status(&self, ticket_id: i64, resource_id: i64, status: i64) {
        self.update_as_technician(ticket_id, resource_id, &[("status", json!(status))]);
    }

    /// A technician (`resource_id`, see [`add_resource`](Self::add_resource))
    /// edits a ticket in the Autotask UI. `fields` are API field names (any
    /// case) with their new values: `title`, `description`, `status`,
    /// `priority`, `companyID`, `queueID`, `externalID`. The values are
    /// validated as the API validates a `PATCH Tickets`; the change then fires
    /// the callout and webhook (with `resource_id` as `PersonID`) exactly as an
    /// API change does. Values equal to the current ones change nothing, and
    /// nothing fires when nothing changed.
    ///
    /// Panics, naming the problem, when the ticket does not exist, a field is
    /// unknown, read-only or given twice, a value is null, or a value is
    /// invalid: a picklist value that is unknown or inactive, a title over 255
    /// characters, a company that does not exist. These are test bugs.
    pub fn update_as_technician(
        &self,
        ticket_id: i64,
        resource_id: i64,
        fields: &[(&str, serde_json::Value)],
    ) {
        let change = {
            let mut db = self.shared.db();
            assert!(
                db.tickets.contains_key(&ticket_id),
                "update_as_technician: no ticket {ticket_id} in the sandbox"
            );
            let update = technician_update(&db, fields).unwrap_or_else(|problems| {
                panic!(
                    "update_as_technician on ticket {ticket_id}: {}",
                    problems.join("; ")
                )
            });
            apply_update(&mut db, ticket_id, &update, Utc::now())
                .expect("the ticket exists, checked under the same lock")
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
        picklist(field)?
            .iter()
            .find(|(_, l, _, _)| l.eq_ignore_ascii_case(label))
            .map(|(v, _, _, _)| *v)
    }

    /// Every request received so far (up to the log's capacity), oldest
    /// first, with credentials (`Secret`, `ApiIntegrationCode`) redacted.
    /// Zone lookups, faulted and unauthorized requests are included;
    /// [`api_calls`](Self::api_calls) counts only entity calls.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.all()
    }

    /// The recorded `method` requests (any case) whose path starts with
    /// `path_prefix`, oldest first; paths are full, e.g.
    /// `("PATCH", "/ATServicesRest/V1.0/Tickets")` (see [`API_ROOT`]).
    pub fn requests_matching(&self, method: &str, path_prefix: &str) -> Vec<RecordedRequest> {
        self.shared.requests.matching(method, path_prefix)
    }

    /// Like [`requests_matching`](Self::requests_matching) with the path
    /// relative to [`API_ROOT`]: `api_requests_matching("POST", "Tickets/7/Notes")`.
    pub fn api_requests_matching(&self, method: &str, entity_path: &str) -> Vec<RecordedRequest> {
        let prefix = format!("{API_ROOT}/{}", entity_path.trim_start_matches('/'));
        self.shared.requests.matching(method, &prefix)
    }

    /// Forgets the recorded requests, so a test can look at what follows.
    pub fn clear_requests(&self) {
        self.shared.requests.clear();
    }

    /// The request log itself (capacity, dropped count).
    pub fn request_log(&self) -> &RequestLog {
        &self.shared.requests
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

    fn hooks(&self) -> MutexGuard<'_, webhooks::Hooks> {
        self.hooks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod asset_tests;
#[cfg(test)]
mod tests;
