//! Zendesk API simulator.
//!
//! Serves the slice of the Zendesk Support API v2 the bridge uses, with the
//! public contract's shapes: API token basic auth (`{email}/token:{token}`),
//! `GET/PUT /api/v2/tickets/{id}.json`, `POST /api/v2/tickets.json`,
//! `GET /api/v2/tickets/{id}/comments.json` with cursor pagination
//! (`page[size]` ≤ 100, `page[after]`, `meta.has_more`, `links.next`,
//! `include=users`), the cursor-based incremental ticket export
//! (`GET /api/v2/incremental/tickets/cursor.json`: `start_time` or `cursor`,
//! `per_page` ≤ 1000, `exclude_deleted`, the most recent minute left out, 10
//! requests a minute), and the error bodies `{"error","description"[,"details"]}`.
//!
//! Every ticket creation, field change and comment, whether made through the
//! API or through the Rust methods (which stand for agents and end users in
//! the Zendesk UI), fires a signed event webhook
//! (`zen:event-type:ticket.created`, `ticket.comment_added`,
//! `ticket.subject_changed`, …) through the fault plan of [`Faults`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::faults::{apply_faults, deliver_webhook, Faults};

const MAX_PAGE: usize = 100;
/// Largest page of the incremental export.
const MAX_EXPORT_PAGE: usize = 1000;
const PRIORITIES: [&str; 4] = ["urgent", "high", "normal", "low"];
const STATUSES: [&str; 6] = ["new", "open", "pending", "hold", "solved", "closed"];

/// Account, credentials and webhook of one simulated Zendesk instance.
#[derive(Debug, Clone)]
pub struct ZendeskSandboxConfig {
    /// The API user (the bridge's agent) whose token is accepted.
    pub agent_email: String,
    pub api_token: String,
    /// Signing secret of the outgoing webhook.
    pub webhook_secret: String,
    pub webhook_url: Option<String>,
    /// Id of the ticket custom field holding the "cluster id".
    pub cluster_id_field: u64,
}

/// A ticket opened by an end user in the UI.
#[derive(Debug, Clone, Default)]
pub struct NewTicket {
    pub subject: String,
    /// Body of the first comment.
    pub description: String,
    pub priority: Option<String>,
    /// Defaults to `new`.
    pub status: Option<String>,
    pub cluster_id: Option<String>,
    pub requester_name: String,
}

/// A change made by an agent in the UI; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TicketChange {
    pub subject: Option<String>,
    pub priority: Option<String>,
    pub status: Option<String>,
}

/// Snapshot of a simulated ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: u64,
    pub subject: String,
    /// Always the body of the first comment.
    pub description: String,
    pub priority: Option<String>,
    pub status: String,
    pub requester_id: u64,
    pub external_id: Option<String>,
    pub custom_fields: BTreeMap<u64, Value>,
    /// Value of the configured cluster id custom field, as text.
    pub cluster_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Snapshot of a simulated comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub author_id: u64,
    pub author_name: String,
    pub body: String,
    pub public: bool,
    pub created_at: DateTime<Utc>,
    /// Written through the API (by the bridge) rather than in the UI.
    pub via_api: bool,
}

/// A running Zendesk simulator. Clones share the same instance; the server
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct ZendeskSandbox {
    shared: Arc<Shared>,
    base_url: String,
    _server: Arc<ServerTask>,
}

impl std::fmt::Debug for ZendeskSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZendeskSandbox")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Shared {
    state: Mutex<Inner>,
    faults: Faults,
    http: reqwest::Client,
}

impl ZendeskSandbox {
    /// Starts the simulator on an ephemeral loopback port.
    pub async fn start(config: ZendeskSandboxConfig) -> std::io::Result<Self> {
        let http = reqwest::Client::builder()
            // Zendesk gives up on a webhook after about 10 seconds.
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(Inner::new(config)),
            faults: Faults::default(),
            http,
        });
        let (base_url, task) = crate::serve(router(shared.clone())).await?;
        Ok(Self {
            shared,
            base_url,
            _server: Arc::new(ServerTask(task)),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    pub fn set_webhook_url(&self, url: Option<String>) {
        self.lock().webhook_url = url;
    }

    /// An end user opens a ticket in the UI. Must run inside a Tokio runtime
    /// (the webhook is sent in the background).
    pub fn create_ticket(&self, new: NewTicket) -> u64 {
        let (id, hooks) = {
            let mut inner = self.lock();
            let requester = inner.user_named(&new.requester_name, Role::EndUser);
            let mut custom_fields = BTreeMap::new();
            if let Some(cluster) = new.cluster_id {
                custom_fields.insert(inner.cluster_id_field, Value::String(cluster));
            }
            let spec = CreateSpec {
                subject: new.subject,
                comment: NewComment {
                    body: new.description,
                    public: true,
                    author_id: requester,
                },
                priority: new.priority,
                status: new.status.unwrap_or_else(|| "new".to_owned()),
                requester_id: requester,
                external_id: None,
                custom_fields,
            };
            let (ticket, _audit, hooks) = inner.create(spec, false);
            (ticket.id, hooks)
        };
        self.shared.send(hooks);
        id
    }

    /// `author_name` writes a comment in the UI (an agent, or the requester).
    /// Panics if the ticket does not exist.
    pub fn add_comment(&self, ticket_id: u64, author_name: &str, body: &str, public: bool) -> u64 {
        let (comment_id, hooks) = {
            let mut inner = self.lock();
            let author_id = inner.user_named(author_name, Role::Agent);
            let update = Update {
                comment: Some(NewComment {
                    body: body.to_owned(),
                    public,
                    author_id,
                }),
                ..Update::default()
            };
            let (audit, hooks) = inner
                .apply(ticket_id, update, author_id, false)
                .unwrap_or_else(|err| panic!("add_comment on ticket {ticket_id}: {err:?}"));
            (audit.comment_id.expect("a comment was added"), hooks)
        };
        self.shared.send(hooks);
        comment_id
    }

    /// An agent changes fields in the UI. Panics if the ticket does not exist
    /// or a value is invalid (a test bug).
    pub fn update_ticket(&self, ticket_id: u64, change: TicketChange) {
        let hooks = {
            let mut inner = self.lock();
            let actor = inner.user_named("Sandbox Agent", Role::Agent);
            let update = Update {
                subject: change.subject,
                priority: change.priority.map(Some),
                status: change.status,
                ..Update::default()
            };
            inner
                .apply(ticket_id, update, actor, false)
                .unwrap_or_else(|err| panic!("update_ticket {ticket_id}: {err:?}"))
                .1
        };
        self.shared.send(hooks);
    }

    pub fn ticket(&self, id: u64) -> Option<Ticket> {
        self.lock().tickets.get(&id).cloned()
    }

    /// Comments of a ticket, oldest first.
    pub fn comments(&self, ticket_id: u64) -> Vec<Comment> {
        let inner = self.lock();
        inner
            .comments
            .get(&ticket_id)
            .map(|list| list.iter().map(|c| inner.comment_snapshot(c)).collect())
            .unwrap_or_default()
    }

    /// Authenticated API requests served so far.
    pub fn api_calls(&self) -> u64 {
        self.lock().api_calls
    }

    /// How recent a change must not be to appear in the incremental export.
    /// Zendesk leaves out the most recent minute (the default); a shorter lag
    /// lets tests sweep right after a change.
    pub fn set_export_lag(&self, lag: Duration) {
        self.lock().export_lag = lag;
    }

    /// Export requests allowed per minute (Zendesk: 10); more answer 429.
    pub fn set_export_rate_limit(&self, per_minute: u32) {
        self.lock().export_rate_limit = per_minute;
    }

    /// Caps the export's page size below Zendesk's 1000, to exercise paging.
    pub fn set_export_page_cap(&self, cap: usize) {
        self.lock().export_page_cap = cap.clamp(1, MAX_EXPORT_PAGE);
    }

    /// An agent deletes a ticket: the API no longer serves it, and the
    /// export reports it with status `deleted` unless `exclude_deleted=true`.
    /// Panics if the ticket does not exist.
    pub fn delete_ticket(&self, id: u64) {
        let mut inner = self.lock();
        let mut ticket = inner
            .tickets
            .remove(&id)
            .unwrap_or_else(|| panic!("delete_ticket: no ticket {id}"));
        ticket.status = "deleted".to_owned();
        ticket.updated_at = inner.tick();
        inner.deleted.insert(id, ticket);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.state.lock().expect("sandbox state poisoned")
    }
}

impl Shared {
    /// Signs and sends webhooks; called after the state lock is released.
    fn send(&self, hooks: Hooks) {
        let Some(url) = hooks.url else { return };
        for payload in hooks.payloads {
            let body = serde_json::to_vec(&payload).expect("JSON serializes");
            let timestamp = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let signature = sign(&hooks.secret, &timestamp, &body);
            let headers = vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("X-Zendesk-Webhook-Signature".to_owned(), signature),
                (
                    "X-Zendesk-Webhook-Signature-Timestamp".to_owned(),
                    timestamp,
                ),
            ];
            deliver_webhook(&self.faults, &self.http, url.clone(), headers, body);
        }
    }
}

/// base64(HMAC-SHA256(secret, timestamp + body)), as Zendesk signs webhooks.
/// (Duplicated from the bridge on purpose: the sandbox must not depend on it.)
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------
// State and the mutations shared by the API and the Rust methods.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Agent,
    EndUser,
}

#[derive(Debug)]
struct User {
    name: String,
    email: String,
    role: Role,
}

#[derive(Debug, Clone)]
struct StoredComment {
    id: u64,
    author_id: u64,
    body: String,
    public: bool,
    created_at: DateTime<Utc>,
    via_api: bool,
}

struct Inner {
    agent_email: String,
    api_token: String,
    webhook_secret: String,
    webhook_url: Option<String>,
    cluster_id_field: u64,
    api_user_id: u64,
    users: BTreeMap<u64, User>,
    user_by_name: HashMap<String, u64>,
    tickets: BTreeMap<u64, Ticket>,
    comments: HashMap<u64, Vec<StoredComment>>,
    next_ticket_id: u64,
    /// Audits, audit events and comments share one id sequence, as a comment
    /// is an audit event in Zendesk.
    next_event_id: u64,
    next_user_id: u64,
    api_calls: u64,
    /// Newest change time handed out; change times strictly increase, so the
    /// export's (updated_at, id) order never puts a new change behind a cursor.
    last_change: DateTime<Utc>,
    deleted: BTreeMap<u64, Ticket>,
    export_lag: Duration,
    export_rate_limit: u32,
    export_page_cap: usize,
    export_calls: VecDeque<Instant>,
}

struct NewComment {
    body: String,
    public: bool,
    author_id: u64,
}

struct CreateSpec {
    subject: String,
    comment: NewComment,
    priority: Option<String>,
    status: String,
    requester_id: u64,
    external_id: Option<String>,
    custom_fields: BTreeMap<u64, Value>,
}

#[derive(Default)]
struct Update {
    subject: Option<String>,
    priority: Option<Option<String>>,
    status: Option<String>,
    external_id: Option<Option<String>>,
    custom_fields: Vec<(u64, Value)>,
    comment: Option<NewComment>,
}

/// What a change produced: the audit (for the API response) and the webhooks.
struct AuditRecord {
    json: Value,
    comment_id: Option<u64>,
}

struct Hooks {
    url: Option<String>,
    secret: String,
    payloads: Vec<Value>,
}

/// A 4xx answer in Zendesk's shape.
#[derive(Debug)]
enum ApiFailure {
    NotFound,
    BadRequest(String),
    Invalid(Vec<(&'static str, String)>),
    /// 429 with this `Retry-After` (seconds).
    RateLimited(u64),
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        match self {
            ApiFailure::NotFound => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "RecordNotFound", "description": "Not found"})),
            )
                .into_response(),
            ApiFailure::RateLimited(retry_after) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after.to_string())],
                Json(json!({"error": "APIRateLimitExceeded",
                    "description": "Number of allowed incremental export API requests per minute exceeded"})),
            )
                .into_response(),
            ApiFailure::BadRequest(description) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "InvalidValue", "description": description})),
            )
                .into_response(),
            ApiFailure::Invalid(problems) => {
                let mut details = Map::new();
                for (field, description) in problems {
                    let entry = details.entry(field).or_insert_with(|| json!([]));
                    if let Value::Array(list) = entry {
                        list.push(json!({"description": description, "error": "InvalidValue"}));
                    }
                }
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({
                        "error": "RecordInvalid",
                        "description": "Record validation errors",
                        "details": details,
                    })),
                )
                    .into_response()
            }
        }
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn field_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn uuid() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

impl Inner {
    fn new(config: ZendeskSandboxConfig) -> Self {
        let mut inner = Self {
            agent_email: config.agent_email.clone(),
            api_token: config.api_token,
            webhook_secret: config.webhook_secret,
            webhook_url: config.webhook_url,
            cluster_id_field: config.cluster_id_field,
            api_user_id: 0,
            users: BTreeMap::new(),
            user_by_name: HashMap::new(),
            tickets: BTreeMap::new(),
            comments: HashMap::new(),
            next_ticket_id: 1,
            next_event_id: 5_000_000_001,
            next_user_id: 7_000_000_001,
            api_calls: 0,
            last_change: DateTime::UNIX_EPOCH,
            deleted: BTreeMap::new(),
            export_lag: Duration::from_secs(60),
            export_rate_limit: 10,
            export_page_cap: MAX_EXPORT_PAGE,
            export_calls: VecDeque::new(),
        };
        inner.api_user_id =
            inner.add_user(config.agent_email.clone(), config.agent_email, Role::Agent);
        inner
    }

    fn add_user(&mut self, name: String, email: String, role: Role) -> u64 {
        let id = self.next_user_id;
        self.next_user_id += 1;
        self.user_by_name.insert(name.clone(), id);
        self.users.insert(id, User { name, email, role });
        id
    }

    fn user_named(&mut self, name: &str, role: Role) -> u64 {
        match self.user_by_name.get(name) {
            Some(id) => *id,
            None => {
                let slug: String = name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                self.add_user(name.to_owned(), format!("{slug}@example.com"), role)
            }
        }
    }

    fn tick(&mut self) -> DateTime<Utc> {
        let now = Utc::now().max(self.last_change + chrono::TimeDelta::nanoseconds(1));
        self.last_change = now;
        now
    }

    /// Counts an export request against the per-minute limit; the error is
    /// the `Retry-After` in seconds.
    fn take_export_call(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        let window = Duration::from_secs(60);
        while self
            .export_calls
            .front()
            .is_some_and(|at| now.duration_since(*at) >= window)
        {
            self.export_calls.pop_front();
        }
        if self.export_calls.len() >= self.export_rate_limit as usize {
            let oldest = *self
                .export_calls
                .front()
                .expect("limit reached, so not empty");
            let wait = window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.export_calls.push_back(now);
        Ok(())
    }

    fn next_event(&mut self) -> u64 {
        let id = self.next_event_id;
        self.next_event_id += 1;
        id
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(encoded) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let Some(decoded) = BASE64
            .decode(encoded.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
        else {
            return false;
        };
        let Some((user, token)) = decoded.split_once(':') else {
            return false;
        };
        let Some(email) = user.strip_suffix("/token") else {
            return false;
        };
        email.eq_ignore_ascii_case(&self.agent_email) && token == self.api_token
    }

    fn comment_snapshot(&self, c: &StoredComment) -> Comment {
        Comment {
            id: c.id,
            author_id: c.author_id,
            author_name: self
                .users
                .get(&c.author_id)
                .map(|u| u.name.clone())
                .unwrap_or_default(),
            body: c.body.clone(),
            public: c.public,
            created_at: c.created_at,
            via_api: c.via_api,
        }
    }

    fn set_custom_field(&self, ticket: &mut Ticket, id: u64, value: Value) {
        if value.is_null() {
            ticket.custom_fields.remove(&id);
        } else {
            ticket.custom_fields.insert(id, value);
        }
        ticket.cluster_id = ticket
            .custom_fields
            .get(&self.cluster_id_field)
            .and_then(field_text);
    }

    fn hooks(&self, payloads: Vec<Value>) -> Hooks {
        Hooks {
            url: self.webhook_url.clone(),
            secret: self.webhook_secret.clone(),
            payloads,
        }
    }

    /// An event webhook payload in the shape of Zendesk's ticket events.
    fn event_payload(
        &self,
        ticket: &Ticket,
        kind: &str,
        actor: u64,
        via_api: bool,
        event: Value,
    ) -> Value {
        let upper = |s: &str| s.to_ascii_uppercase();
        json!({
            "account_id": 1_000_001,
            "detail": {
                "actor_id": actor.to_string(),
                "assignee_id": null,
                "brand_id": "1",
                "created_at": stamp(ticket.created_at),
                "custom_status": null,
                "description": ticket.description,
                "external_id": ticket.external_id,
                "form_id": "1",
                "group_id": null,
                "id": ticket.id.to_string(),
                "is_public": true,
                "organization_id": null,
                "priority": ticket.priority.as_deref().map(upper),
                "requester_id": ticket.requester_id.to_string(),
                "status": upper(&ticket.status),
                "subject": ticket.subject,
                "submitter_id": ticket.requester_id.to_string(),
                "tags": [],
                "type": null,
                "updated_at": stamp(ticket.updated_at),
                "via": { "channel": if via_api { "api" } else { "web" } },
            },
            "event": event,
            "id": uuid(),
            "subject": format!("zen:ticket:{}", ticket.id),
            "time": Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
            "type": format!("zen:event-type:ticket.{kind}"),
            "zendesk_event_version": "2022-11-06",
        })
    }

    fn validate(&self, update: &Update, problems: &mut Vec<(&'static str, String)>) {
        if let Some(Some(priority)) = &update.priority {
            if !PRIORITIES.contains(&priority.as_str()) {
                problems.push(("priority", format!("Priority: {priority} is not valid")));
            }
        }
        if let Some(status) = &update.status {
            if !STATUSES.contains(&status.as_str()) {
                problems.push(("status", format!("Status: {status} is not valid")));
            }
        }
        if let Some(comment) = &update.comment {
            if comment.body.trim().is_empty() {
                problems.push(("comment", "Comment: body cannot be blank".to_owned()));
            }
            if !self.users.contains_key(&comment.author_id) {
                problems.push(("author_id", "Author: is not a valid user".to_owned()));
            }
        }
    }

    fn create(&mut self, spec: CreateSpec, via_api: bool) -> (Ticket, AuditRecord, Hooks) {
        let now = self.tick();
        let id = self.next_ticket_id;
        self.next_ticket_id += 1;
        let audit_id = self.next_event();
        let comment_id = self.next_event();
        let mut ticket = Ticket {
            id,
            subject: spec.subject,
            description: spec.comment.body.clone(),
            priority: spec.priority,
            status: spec.status,
            requester_id: spec.requester_id,
            external_id: spec.external_id,
            custom_fields: BTreeMap::new(),
            cluster_id: None,
            created_at: now,
            updated_at: now,
        };
        for (field, value) in spec.custom_fields {
            self.set_custom_field(&mut ticket, field, value);
        }
        let comment = StoredComment {
            id: comment_id,
            author_id: spec.comment.author_id,
            body: spec.comment.body,
            public: spec.comment.public,
            created_at: now,
            via_api,
        };
        let audit = json!({
            "id": audit_id,
            "ticket_id": id,
            "created_at": stamp(now),
            "author_id": comment.author_id,
            "events": [
                {"id": comment_id, "type": "Comment", "body": comment.body,
                 "public": comment.public, "author_id": comment.author_id},
            ],
        });
        self.comments.insert(id, vec![comment]);
        self.tickets.insert(id, ticket.clone());
        let actor = if via_api {
            self.api_user_id
        } else {
            ticket.requester_id
        };
        let payload = self.event_payload(&ticket, "created", actor, via_api, json!({}));
        let hooks = self.hooks(vec![payload]);
        (
            ticket,
            AuditRecord {
                json: audit,
                comment_id: Some(comment_id),
            },
            hooks,
        )
    }

    /// Applies a change as `actor`. Validation happens before anything is
    /// written, so a rejected update leaves the ticket untouched.
    fn apply(
        &mut self,
        ticket_id: u64,
        update: Update,
        actor: u64,
        via_api: bool,
    ) -> Result<(AuditRecord, Hooks), ApiFailure> {
        let mut ticket = self
            .tickets
            .get(&ticket_id)
            .cloned()
            .ok_or(ApiFailure::NotFound)?;
        let mut problems = Vec::new();
        if ticket.status == "closed" {
            problems.push(("status", "Status: closed prevents ticket update".to_owned()));
        }
        self.validate(&update, &mut problems);
        if !problems.is_empty() {
            return Err(ApiFailure::Invalid(problems));
        }

        let now = self.tick();
        let audit_id = self.next_event();
        let mut events = Vec::new();
        // (event type suffix, event object) per webhook, sent after the ticket is saved.
        let mut changes: Vec<(&str, Value)> = Vec::new();
        let mut change =
            |this: &mut Self, field: &str, kind: &'static str, previous: Value, current: Value| {
                if previous != current {
                    events.push(
                        json!({"id": this.next_event(), "type": "Change", "field_name": field,
                    "value": current, "previous_value": previous}),
                    );
                    changes.push((kind, json!({"current": current, "previous": previous})));
                }
            };
        if let Some(subject) = update.subject {
            change(
                self,
                "subject",
                "subject_changed",
                json!(ticket.subject),
                json!(subject),
            );
            ticket.subject = subject;
        }
        if let Some(priority) = update.priority {
            change(
                self,
                "priority",
                "priority_changed",
                json!(ticket.priority),
                json!(priority),
            );
            ticket.priority = priority;
        }
        if let Some(status) = update.status {
            change(
                self,
                "status",
                "status_changed",
                json!(ticket.status),
                json!(status),
            );
            ticket.status = status;
        }
        if let Some(external_id) = update.external_id {
            change(
                self,
                "external_id",
                "external_id_changed",
                json!(ticket.external_id),
                json!(external_id),
            );
            ticket.external_id = external_id;
        }
        for (field, value) in update.custom_fields {
            let previous = ticket
                .custom_fields
                .get(&field)
                .cloned()
                .unwrap_or(Value::Null);
            change(
                self,
                &field.to_string(),
                "custom_field_changed",
                previous,
                value.clone(),
            );
            self.set_custom_field(&mut ticket, field, value);
        }
        let mut comment_id = None;
        let mut comment_event = None;
        if let Some(new) = update.comment {
            let id = self.next_event();
            comment_id = Some(id);
            events.push(json!({"id": id, "type": "Comment", "body": new.body,
                "public": new.public, "author_id": new.author_id}));
            let author = &self.users[&new.author_id];
            comment_event = Some(json!({"comment": {
                "id": id, "body": new.body, "is_public": new.public,
                "author": {"id": new.author_id, "is_staff": author.role == Role::Agent, "name": author.name},
            }}));
            self.comments
                .entry(ticket_id)
                .or_default()
                .push(StoredComment {
                    id,
                    author_id: new.author_id,
                    body: new.body,
                    public: new.public,
                    created_at: now,
                    via_api,
                });
        }
        if !events.is_empty() {
            ticket.updated_at = now;
        }
        let mut payloads: Vec<Value> = changes
            .into_iter()
            .map(|(kind, event)| self.event_payload(&ticket, kind, actor, via_api, event))
            .collect();
        if let Some(event) = comment_event {
            payloads.push(self.event_payload(&ticket, "comment_added", actor, via_api, event));
        }
        let audit = json!({
            "id": audit_id,
            "ticket_id": ticket_id,
            "created_at": stamp(now),
            "author_id": actor,
            "events": events,
        });
        self.tickets.insert(ticket_id, ticket);
        Ok((
            AuditRecord {
                json: audit,
                comment_id,
            },
            self.hooks(payloads),
        ))
    }

    fn ticket_json(&self, ticket: &Ticket) -> Value {
        let custom_fields: Vec<Value> = ticket
            .custom_fields
            .iter()
            .map(|(id, value)| json!({"id": id, "value": value}))
            .collect();
        json!({
            "id": ticket.id,
            "subject": ticket.subject,
            "raw_subject": ticket.subject,
            "description": ticket.description,
            "priority": ticket.priority,
            "status": ticket.status,
            "requester_id": ticket.requester_id,
            "submitter_id": ticket.requester_id,
            "assignee_id": null,
            "external_id": ticket.external_id,
            "custom_fields": custom_fields,
            "fields": custom_fields,
            "tags": [],
            "created_at": stamp(ticket.created_at),
            "updated_at": stamp(ticket.updated_at),
        })
    }
}

// ---------------------------------------------------------------------------
// HTTP API.

fn router(shared: Arc<Shared>) -> Router {
    let faults = shared.faults.clone();
    Router::new()
        .route("/api/v2/tickets.json", post(create_ticket_api))
        // `{id}` is `123.json` here; the same parameter name must be used at
        // this position in both routes.
        .route(
            "/api/v2/tickets/{id}",
            get(show_ticket).put(update_ticket_api),
        )
        .route("/api/v2/tickets/{id}/comments.json", get(list_comments))
        .route(
            "/api/v2/incremental/tickets/cursor.json",
            get(export_tickets),
        )
        .fallback(|| async { ApiFailure::NotFound })
        .layer(axum::middleware::from_fn_with_state(faults, apply_faults))
        .with_state(shared)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "Couldn't authenticate you"})),
    )
        .into_response()
}

/// Checks credentials, counts the call, and runs `work` under the state lock;
/// webhooks are sent after the lock is released.
fn with_api<F>(shared: &Shared, headers: &HeaderMap, work: F) -> Response
where
    F: FnOnce(&mut Inner) -> Result<(Response, Option<Hooks>), ApiFailure>,
{
    let outcome = {
        let mut inner = shared.state.lock().expect("sandbox state poisoned");
        if !inner.authorized(headers) {
            return unauthorized();
        }
        inner.api_calls += 1;
        work(&mut inner)
    };
    match outcome {
        Ok((response, hooks)) => {
            if let Some(hooks) = hooks {
                shared.send(hooks);
            }
            response
        }
        Err(failure) => failure.into_response(),
    }
}

fn ticket_id_from(file: &str) -> Result<u64, ApiFailure> {
    file.strip_suffix(".json")
        .unwrap_or(file)
        .parse()
        .map_err(|_| ApiFailure::NotFound)
}

async fn show_ticket(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_api(&shared, &headers, |inner| {
        let id = ticket_id_from(&file)?;
        let ticket = inner.tickets.get(&id).ok_or(ApiFailure::NotFound)?;
        let body = json!({"ticket": inner.ticket_json(ticket)});
        Ok((Json(body).into_response(), None))
    })
}

fn parse_ticket_body(body: &[u8]) -> Result<Map<String, Value>, ApiFailure> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ApiFailure::BadRequest("Request body is not valid JSON".to_owned()))?;
    match value.get("ticket") {
        Some(Value::Object(ticket)) => Ok(ticket.clone()),
        _ => Err(ApiFailure::BadRequest(
            "Request body must contain a ticket object".to_owned(),
        )),
    }
}

/// Reads the writable fields of a `{"ticket":{..}}` body into an update;
/// type errors become validation problems.
fn parse_update(
    inner: &Inner,
    ticket: &Map<String, Value>,
    problems: &mut Vec<(&'static str, String)>,
) -> Update {
    let mut update = Update::default();
    let text = |key: &'static str, problems: &mut Vec<(&'static str, String)>| match ticket.get(key)
    {
        None => None,
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => Some(Some(n.to_string())),
        Some(_) => {
            problems.push((key, format!("{key}: must be a string")));
            None
        }
    };
    update.subject = text("subject", problems).map(Option::unwrap_or_default);
    update.priority = text("priority", problems);
    update.status = text("status", problems).flatten();
    update.external_id = text("external_id", problems);
    if let Some(fields) = ticket.get("custom_fields") {
        match fields.as_array() {
            Some(list) => {
                for field in list {
                    match field.get("id").and_then(Value::as_u64) {
                        Some(id) => update
                            .custom_fields
                            .push((id, field.get("value").cloned().unwrap_or(Value::Null))),
                        None => problems
                            .push(("custom_fields", "Custom field: id is invalid".to_owned())),
                    }
                }
            }
            None => problems.push((
                "custom_fields",
                "Custom fields: must be an array".to_owned(),
            )),
        }
    }
    if let Some(comment) = ticket.get("comment") {
        let body = comment
            .get("body")
            .or_else(|| comment.get("html_body"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let public = comment
            .get("public")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let author_id = comment
            .get("author_id")
            .and_then(Value::as_u64)
            .unwrap_or(inner.api_user_id);
        update.comment = Some(NewComment {
            body,
            public,
            author_id,
        });
    }
    update
}

async fn update_ticket_api(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_api(&shared, &headers, |inner| {
        let id = ticket_id_from(&file)?;
        if !inner.tickets.contains_key(&id) {
            return Err(ApiFailure::NotFound);
        }
        let fields = parse_ticket_body(&body)?;
        let mut problems = Vec::new();
        let update = parse_update(inner, &fields, &mut problems);
        if !problems.is_empty() {
            return Err(ApiFailure::Invalid(problems));
        }
        let actor = inner.api_user_id;
        let (audit, hooks) = inner.apply(id, update, actor, true)?;
        let ticket = &inner.tickets[&id];
        let body = json!({"ticket": inner.ticket_json(ticket), "audit": audit.json});
        Ok((Json(body).into_response(), Some(hooks)))
    })
}

async fn create_ticket_api(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_api(&shared, &headers, |inner| {
        let fields = parse_ticket_body(&body)?;
        let mut problems = Vec::new();
        let update = parse_update(inner, &fields, &mut problems);
        let comment = update.comment.filter(|c| !c.body.trim().is_empty());
        if comment.is_none() {
            problems.push(("description", "Description: cannot be blank".to_owned()));
        }
        let requester_id = match fields.get("requester") {
            Some(requester) => {
                let name = requester
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("Requester");
                inner.user_named(name, Role::EndUser)
            }
            None => fields
                .get("requester_id")
                .and_then(Value::as_u64)
                .unwrap_or(inner.api_user_id),
        };
        if !inner.users.contains_key(&requester_id) {
            problems.push(("requester", "Requester: is not a valid user".to_owned()));
        }
        let probe = Update {
            priority: update.priority.clone(),
            status: update.status.clone(),
            ..Update::default()
        };
        inner.validate(&probe, &mut problems);
        let Some(comment) = comment.filter(|_| problems.is_empty()) else {
            return Err(ApiFailure::Invalid(problems));
        };
        let spec = CreateSpec {
            subject: update.subject.unwrap_or_default(),
            comment,
            priority: update.priority.flatten(),
            status: update.status.unwrap_or_else(|| "new".to_owned()),
            requester_id,
            external_id: update.external_id.flatten(),
            custom_fields: update.custom_fields.into_iter().collect(),
        };
        let (ticket, audit, hooks) = inner.create(spec, true);
        let body = json!({"ticket": inner.ticket_json(&ticket), "audit": audit.json});
        Ok((
            (StatusCode::CREATED, Json(body)).into_response(),
            Some(hooks),
        ))
    })
}

/// The host the caller addressed, for the absolute URLs of next pages.
fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned()
}

async fn list_comments(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let host = request_host(&headers);
    with_api(&shared, &headers, |inner| {
        let id: u64 = id.parse().map_err(|_| ApiFailure::NotFound)?;
        if !inner.tickets.contains_key(&id) {
            return Err(ApiFailure::NotFound);
        }
        let params: HashMap<String, String> =
            serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
                .map_err(|_| ApiFailure::BadRequest("Invalid query string".to_owned()))?;
        let size = match params.get("page[size]") {
            None => MAX_PAGE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ApiFailure::BadRequest("page[size] must be a positive integer".to_owned())
                })?
                .min(MAX_PAGE),
        };
        let after = match params.get("page[after]") {
            None => 0,
            Some(cursor) => URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|raw| raw.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiFailure::BadRequest("page[after] is not a valid cursor".to_owned())
                })?,
        };
        let with_users = params
            .get("include")
            .is_some_and(|inc| inc.split(',').any(|i| i.trim() == "users"));

        let all = inner
            .comments
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let rest: Vec<&StoredComment> = all.iter().filter(|c| c.id > after).collect();
        let page = &rest[..rest.len().min(size)];
        let has_more = rest.len() > page.len();
        let cursor = |c: &StoredComment| URL_SAFE_NO_PAD.encode(c.id.to_string());
        let after_cursor = page.last().map(|c| cursor(c));
        let before_cursor = page.first().map(|c| cursor(c));
        let include = if with_users { "&include=users" } else { "" };
        let link = |dir: &str, c: &Option<String>| {
            c.as_ref().map(|c| {
                format!("http://{host}/api/v2/tickets/{id}/comments.json?page[size]={size}&page[{dir}]={c}{include}")
            })
        };
        let comments: Vec<Value> = page
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "Comment",
                    "author_id": c.author_id,
                    "body": c.body,
                    "html_body": format!("<div class=\"zd-comment\"><p>{}</p></div>", c.body),
                    "plain_body": c.body,
                    "public": c.public,
                    "attachments": [],
                    "via": {"channel": if c.via_api { "api" } else { "web" }},
                    "created_at": stamp(c.created_at),
                })
            })
            .collect();
        let mut body = json!({
            "comments": comments,
            "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "next": if has_more { link("after", &after_cursor) } else { None },
                "prev": link("before", &before_cursor),
            },
        });
        if with_users {
            let mut ids: Vec<u64> = page.iter().map(|c| c.author_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let users: Vec<Value> = ids
                .iter()
                .filter_map(|uid| inner.users.get(uid).map(|u| (uid, u)))
                .map(|(uid, u)| {
                    json!({"id": uid, "name": u.name, "email": u.email,
                        "role": if u.role == Role::Agent { "agent" } else { "end-user" }})
                })
                .collect();
            body["users"] = Value::Array(users);
        }
        Ok((Json(body).into_response(), None))
    })
}

/// Where an export continues: on or after a start time, or after the
/// (updated_at, id) position a cursor names.
#[derive(Clone, Copy)]
enum ExportFrom {
    Start(DateTime<Utc>),
    After(DateTime<Utc>, u64),
}

/// Opaque to clients; like Zendesk's, it encodes `<time>||<id>|` in base64.
fn export_cursor(ticket: &Ticket) -> String {
    let at = ticket.updated_at;
    BASE64.encode(format!(
        "{}.{:09}||{}|",
        at.timestamp(),
        at.timestamp_subsec_nanos(),
        ticket.id
    ))
}

fn parse_export_cursor(cursor: &str) -> Option<(DateTime<Utc>, u64)> {
    let raw = String::from_utf8(BASE64.decode(cursor).ok()?).ok()?;
    let (time, rest) = raw.split_once("||")?;
    let (secs, nanos) = time.split_once('.')?;
    let at = DateTime::from_timestamp(secs.parse().ok()?, nanos.parse().ok()?)?;
    Some((at, rest.strip_suffix('|')?.parse().ok()?))
}

async fn export_tickets(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let host = request_host(&headers);
    with_api(&shared, &headers, |inner| {
        let params: HashMap<String, String> =
            serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
                .map_err(|_| ApiFailure::BadRequest("Invalid query string".to_owned()))?;
        inner.take_export_call().map_err(ApiFailure::RateLimited)?;
        let now = Utc::now();
        let lag = chrono::TimeDelta::from_std(inner.export_lag).unwrap_or_default();
        let from = match (params.get("cursor"), params.get("start_time")) {
            (Some(cursor), _) => {
                let (at, id) = parse_export_cursor(cursor).ok_or_else(|| {
                    ApiFailure::BadRequest("cursor is not a valid cursor".to_owned())
                })?;
                ExportFrom::After(at, id)
            }
            (None, Some(start)) => {
                let at = start
                    .parse::<i64>()
                    .ok()
                    .and_then(|secs| DateTime::from_timestamp(secs, 0))
                    .ok_or_else(|| {
                        ApiFailure::BadRequest("start_time must be a Unix epoch time".to_owned())
                    })?;
                if at > now - lag.max(chrono::TimeDelta::zero()) {
                    return Err(ApiFailure::BadRequest(
                        "Too recent start_time. Use a start_time at least one minute in the past"
                            .to_owned(),
                    ));
                }
                ExportFrom::Start(at)
            }
            (None, None) => {
                return Err(ApiFailure::BadRequest(
                    "start_time or cursor is required".to_owned(),
                ))
            }
        };
        let per_page = match params.get("per_page") {
            None => MAX_EXPORT_PAGE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ApiFailure::BadRequest("per_page must be a positive integer".to_owned())
                })?,
        }
        .min(inner.export_page_cap);
        let exclude_deleted = params
            .get("exclude_deleted")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));

        let until = now - lag;
        let mut rows: Vec<&Ticket> = inner
            .tickets
            .values()
            .chain(inner.deleted.values().filter(|_| !exclude_deleted))
            .filter(|t| t.updated_at <= until)
            .filter(|t| match from {
                ExportFrom::Start(at) => t.updated_at >= at,
                ExportFrom::After(at, id) => (t.updated_at, t.id) > (at, id),
            })
            .collect();
        rows.sort_by_key(|t| (t.updated_at, t.id));
        let end_of_stream = rows.len() <= per_page;
        rows.truncate(per_page);
        let after_cursor = match (rows.last(), from) {
            (Some(last), _) => Some(export_cursor(last)),
            // Nothing new after a cursor: the same position again.
            (None, ExportFrom::After(..)) => params.get("cursor").cloned(),
            (None, ExportFrom::Start(_)) => None,
        };
        let after_url = after_cursor.as_ref().map(|c| {
            let query = serde_urlencoded::to_string([("cursor", c.as_str())])
                .expect("strings encode as form data");
            format!("http://{host}/api/v2/incremental/tickets/cursor.json?{query}")
        });
        let tickets: Vec<Value> = rows
            .iter()
            .map(|t| {
                let mut json = inner.ticket_json(t);
                json["generated_timestamp"] = json!(t.updated_at.timestamp());
                json
            })
            .collect();
        let body = json!({
            "tickets": tickets,
            "after_cursor": after_cursor,
            "after_url": after_url,
            "before_cursor": null,
            "before_url": null,
            "end_of_stream": end_of_stream,
        });
        Ok((Json(body).into_response(), None))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ZendeskSandboxConfig {
        ZendeskSandboxConfig {
            agent_email: "bridge@msp.example".to_owned(),
            api_token: "tok".to_owned(),
            webhook_secret: "whsec".to_owned(),
            webhook_url: None,
            cluster_id_field: 360_001,
        }
    }

    fn api(
        sandbox: &ZendeskSandbox,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", sandbox.base_url()))
            .basic_auth("bridge@msp.example/token", Some("tok"))
    }

    #[tokio::test]
    async fn rejects_bad_credentials_in_zendesk_shape() {
        let sandbox = ZendeskSandbox::start(config()).await.unwrap();
        let id = sandbox.create_ticket(NewTicket {
            subject: "s".into(),
            description: "d".into(),
            requester_name: "Ann".into(),
            ..NewTicket::default()
        });
        let response = reqwest::Client::new()
            .get(format!("{}/api/v2/tickets/{id}.json", sandbox.base_url()))
            .basic_auth("bridge@msp.example/token", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"error": "Couldn't authenticate you"}));
        assert_eq!(sandbox.api_calls(), 0);
    }

    #[tokio::test]
    async fn validates_updates_and_creates_in_zendesk_shape() {
        let sandbox = ZendeskSandbox::start(config()).await.unwrap();
        let id = sandbox.create_ticket(NewTicket {
            subject: "s".into(),
            description: "d".into(),
            requester_name: "Ann".into(),
            ..NewTicket::default()
        });
        let response = api(
            &sandbox,
            reqwest::Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
        )
        .json(&json!({"ticket": {"priority": "whenever", "subject": "changed"}}))
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "RecordInvalid");
        assert_eq!(body["details"]["priority"][0]["error"], "InvalidValue");
        // Rejected updates change nothing.
        assert_eq!(sandbox.ticket(id).unwrap().subject, "s");

        let response = api(&sandbox, reqwest::Method::POST, "/api/v2/tickets.json")
            .json(&json!({"ticket": {"subject": "no body"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);

        let response = api(&sandbox, reqwest::Method::POST, "/api/v2/tickets.json")
            .json(
                &json!({"ticket": {"subject": "Hi", "comment": {"body": "First"},
                "priority": "high", "custom_fields": [{"id": 360_001, "value": "CL-1"}]}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let new_id = body["ticket"]["id"].as_u64().unwrap();
        let ticket = sandbox.ticket(new_id).unwrap();
        assert_eq!(ticket.description, "First");
        assert_eq!(ticket.cluster_id.as_deref(), Some("CL-1"));
        assert_eq!(ticket.priority.as_deref(), Some("high"));
        assert_eq!(body["audit"]["events"][0]["type"], "Comment");

        let response = api(&sandbox, reqwest::Method::GET, "/api/v2/tickets/999.json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "RecordNotFound", "description": "Not found"})
        );
        assert_eq!(sandbox.api_calls(), 4);
    }

    #[tokio::test]
    async fn export_reports_deleted_tickets_unless_excluded() {
        let sandbox = ZendeskSandbox::start(config()).await.unwrap();
        sandbox.set_export_lag(Duration::ZERO);
        let new = |s: &str| NewTicket {
            subject: s.into(),
            description: "d".into(),
            requester_name: "Ann".into(),
            ..NewTicket::default()
        };
        let kept = sandbox.create_ticket(new("kept"));
        let gone = sandbox.create_ticket(new("gone"));
        sandbox.delete_ticket(gone);
        let export = |extra: &'static str| {
            let start = (Utc::now() - chrono::TimeDelta::minutes(5)).timestamp();
            api(
                &sandbox,
                reqwest::Method::GET,
                &format!("/api/v2/incremental/tickets/cursor.json?start_time={start}{extra}"),
            )
            .send()
        };
        let all: Value = export("").await.unwrap().json().await.unwrap();
        let statuses: Vec<(u64, &str)> = all["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_u64().unwrap(), t["status"].as_str().unwrap()))
            .collect();
        assert_eq!(statuses, vec![(kept, "new"), (gone, "deleted")]);
        assert_eq!(all["end_of_stream"], true);
        assert!(all["after_url"].as_str().unwrap().contains("cursor="));
        let live: Value = export("&exclude_deleted=true")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(live["tickets"].as_array().unwrap().len(), 1);
        // The deleted ticket is gone from the rest of the API.
        let response = api(
            &sandbox,
            reqwest::Method::GET,
            &format!("/api/v2/tickets/{gone}.json"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 404);
        let response = api(
            &sandbox,
            reqwest::Method::GET,
            "/api/v2/incremental/tickets/cursor.json",
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 400, "start_time or cursor is required");
    }

    #[tokio::test]
    async fn caps_page_size_and_pages_by_cursor() {
        let sandbox = ZendeskSandbox::start(config()).await.unwrap();
        let id = sandbox.create_ticket(NewTicket {
            subject: "s".into(),
            description: "d".into(),
            requester_name: "Ann".into(),
            ..NewTicket::default()
        });
        for n in 0..150 {
            sandbox.add_comment(id, "Bob", &format!("c{n}"), n % 2 == 0);
        }
        let path = format!("/api/v2/tickets/{id}/comments.json");
        let first: Value = api(&sandbox, reqwest::Method::GET, &path)
            .query(&[("page[size]", "500")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(first["comments"].as_array().unwrap().len(), 100);
        assert_eq!(first["meta"]["has_more"], true);
        let next = first["links"]["next"].as_str().unwrap();
        let second: Value = reqwest::Client::new()
            .get(next)
            .basic_auth("bridge@msp.example/token", Some("tok"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let comments = second["comments"].as_array().unwrap();
        assert_eq!(comments.len(), 51);
        assert_eq!(comments.last().unwrap()["body"], "c149");
        assert_eq!(second["meta"]["has_more"], false);
        assert!(second["links"]["next"].is_null());
    }
}
