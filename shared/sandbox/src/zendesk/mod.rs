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
//! requests a minute, admins only: a non-admin API user gets 403),
//! `GET /api/v2/users/me.json` (the API user and its role),
//! `GET /api/v2/organizations.json` (cursor pages of [`ZendeskSandbox::add_organization`]),
//! the Webhooks API (`/api/v2/webhooks`: list, create, show, delete, signing
//! secret; admins only; see `webhooks`),
//! the OAuth authorization code grant (`/oauth/authorizations/new`,
//! `/oauth/tokens`, Bearer tokens; see `oauth` and
//! [`ZendeskSandbox::register_oauth_client`]), the Update
//! Ticket limits (per account a minute, per ticket per user in 10 minutes:
//! 429 with `Retry-After`, see [`UpdateLimits`]), 409 on a conflicting update
//! when a test asks for it, and the error bodies
//! `{"error","description"[,"details"]}`.
//!
//! Every ticket creation, field change and comment, whether made through the
//! API or through the Rust methods (which stand for agents and end users in
//! the Zendesk UI), fires a signed event webhook
//! (`zen:event-type:ticket.created`, `ticket.comment_added`,
//! `ticket.subject_changed`, …) through the fault plan of [`Faults`]: to the
//! test's target ([`ZendeskSandbox::set_webhook_url`], the configured secret)
//! and to every active webhook created through the API that subscribes to
//! the event, signed with that webhook's own secret.
//!
//! Every request the simulator receives is recorded ([`ZendeskSandbox::requests`]).
//!
//! Layout: this file holds the public handle and its types; `state` the
//! account and its mutations; `api` the HTTP routes; `export` the incremental
//! export; `limits` the rate limits; `webhooks` the outgoing event webhooks.

mod api;
mod export;
mod limits;
mod oauth;
mod state;
mod webhooks;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use self::api::router;
pub use self::limits::{RateWindow, UpdateLimits};
use self::state::{CreateSpec, Inner, NewComment, Update};
pub use self::webhooks::sign;
use crate::faults::Faults;
pub use crate::recording::{RecordedRequest, RequestLog};

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

/// A Zendesk user's role (`role` in the Users API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    EndUser,
    Agent,
    Admin,
}

impl Role {
    /// As Zendesk spells it: `end-user`, `agent`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::EndUser => "end-user",
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }

    /// Agents and admins are staff.
    pub fn is_staff(self) -> bool {
        self != Role::EndUser
    }
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

/// Snapshot of a webhook created through the Webhooks API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// A ULID, as Zendesk's ids.
    pub id: String,
    pub name: String,
    pub endpoint: String,
    pub status: String,
    pub subscriptions: Vec<String>,
    /// The secret its deliveries are signed with.
    pub signing_secret: String,
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
    requests: RequestLog,
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
            requests: RequestLog::default(),
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
            inner.count_ui_update(ticket_id, author_id);
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
            let hooks = inner
                .apply(ticket_id, update, actor, false)
                .unwrap_or_else(|err| panic!("update_ticket {ticket_id}: {err:?}"))
                .1;
            inner.count_ui_update(ticket_id, actor);
            hooks
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

    /// Forgets the export requests made so far, as if the minute they count
    /// in had passed (the bridge's sweeps are five minutes apart; a test
    /// that sweeps several times in a row stands for that time with this).
    pub fn forget_export_requests(&self) {
        self.lock().limiter.export = Default::default();
    }

    /// The role of the bridge's API user (the configured `agent_email`):
    /// [`Role::Admin`] unless set, as the incremental export is allowed for
    /// admins only. Any other role gets 403 from the export, as in Zendesk.
    pub fn set_api_user_role(&self, role: Role) {
        let mut inner = self.lock();
        let id = inner.api_user_id;
        if let Some(user) = inner.users.get_mut(&id) {
            user.role = role;
        }
    }

    /// The Update Ticket limits enforced on `PUT /api/v2/tickets/{id}`
    /// ([`UpdateLimits::SANDBOX_DEFAULT`] unless set; [`UpdateLimits::ZENDESK`]
    /// for Zendesk's published numbers). Shorter windows let tests run fast,
    /// e.g. 30 updates per ticket per 2 s. Calls already made keep counting.
    pub fn set_update_limits(&self, limits: UpdateLimits) {
        self.lock().update_limits = limits;
    }

    /// The next `count` ticket updates through the API answer 409 Conflict
    /// and change nothing, as when another request updated the same ticket at
    /// the same moment.
    pub fn conflict_next_updates(&self, count: u32) {
        self.lock().conflicts_pending = count;
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

    /// Every request received so far (up to the log's capacity), oldest
    /// first, with credentials redacted. Faulted, unauthorized and unknown
    /// requests are included; [`api_calls`](Self::api_calls) counts only the
    /// authenticated ones.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.all()
    }

    /// The recorded `method` requests (any case) whose path starts with
    /// `path_prefix`, oldest first; e.g. `("PUT", "/api/v2/tickets/42.json")`.
    pub fn requests_matching(&self, method: &str, path_prefix: &str) -> Vec<RecordedRequest> {
        self.shared.requests.matching(method, path_prefix)
    }

    /// Forgets the recorded requests, so a test can look at what follows.
    pub fn clear_requests(&self) {
        self.shared.requests.clear();
    }

    /// The request log itself (capacity, dropped count).
    pub fn request_log(&self) -> &RequestLog {
        &self.shared.requests
    }

    /// Registers an OAuth client (Admin Center > Apps and integrations >
    /// APIs > OAuth clients): its unique identifier, secret and the one
    /// redirect URL the authorization page may send users back to.
    pub fn register_oauth_client(&self, client_id: &str, secret: &str, redirect_uri: &str) {
        self.lock().oauth.clients.insert(
            client_id.to_owned(),
            oauth::OAuthClient {
                secret: secret.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
            },
        );
    }

    /// How long an authorization code may wait before its exchange
    /// (Zendesk: 120 seconds); shorter lets tests see a code expire.
    pub fn set_oauth_code_lifetime(&self, lifetime: Duration) {
        self.lock().oauth.code_lifetime = lifetime;
    }

    /// Access tokens issued so far (and not revoked).
    pub fn oauth_tokens_issued(&self) -> usize {
        self.lock().oauth.tokens.len()
    }

    /// Revokes every access token, as an admin does in Admin Center.
    pub fn revoke_oauth_tokens(&self) {
        self.lock().oauth.tokens.clear();
    }

    /// Adds an organization and returns its id (ids increase).
    pub fn add_organization(&self, name: &str) -> u64 {
        let mut inner = self.lock();
        let id = inner.next_organization_id;
        inner.next_organization_id += 1;
        inner.organizations.insert(id, name.to_owned());
        id
    }

    /// The webhooks created through the Webhooks API, oldest first.
    pub fn webhooks(&self) -> Vec<Webhook> {
        self.lock()
            .webhooks
            .iter()
            .map(|h| Webhook {
                id: h.id.clone(),
                name: h.name.clone(),
                endpoint: h.endpoint.clone(),
                status: h.status.clone(),
                subscriptions: h.subscriptions.clone(),
                signing_secret: h.signing_secret.clone(),
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.state.lock().expect("sandbox state poisoned")
    }
}

#[cfg(test)]
mod tests;
