//! The simulated Zendesk account: users, tickets and comments, and the
//! mutations shared by the API and the Rust methods (which stand for agents
//! and end users in the UI). Each mutation validates before it writes and
//! returns the webhooks it causes, sent once the state lock is released.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::api::ApiFailure;
use super::limits::{Limiter, UpdateLimits};
use super::oauth::OAuthState;
use super::{Comment, Role, Ticket, ZendeskSandboxConfig, MAX_EXPORT_PAGE, PRIORITIES, STATUSES};

#[derive(Debug)]
pub(super) struct User {
    pub(super) name: String,
    pub(super) email: String,
    pub(super) role: Role,
}

#[derive(Debug, Clone)]
pub(super) struct StoredComment {
    pub(super) id: u64,
    pub(super) author_id: u64,
    pub(super) body: String,
    pub(super) public: bool,
    pub(super) created_at: DateTime<Utc>,
    pub(super) via_api: bool,
}

pub(super) struct Inner {
    pub(super) agent_email: String,
    pub(super) api_token: String,
    pub(super) webhook_secret: String,
    pub(super) webhook_url: Option<String>,
    pub(super) cluster_id_field: u64,
    pub(super) api_user_id: u64,
    pub(super) users: BTreeMap<u64, User>,
    pub(super) user_by_name: HashMap<String, u64>,
    pub(super) tickets: BTreeMap<u64, Ticket>,
    pub(super) comments: HashMap<u64, Vec<StoredComment>>,
    pub(super) next_ticket_id: u64,
    /// Audits, audit events and comments share one id sequence, as a comment
    /// is an audit event in Zendesk.
    pub(super) next_event_id: u64,
    pub(super) next_user_id: u64,
    pub(super) api_calls: u64,
    /// Newest change time handed out; change times strictly increase, so the
    /// export's (updated_at, id) order never puts a new change behind a cursor.
    pub(super) last_change: DateTime<Utc>,
    pub(super) deleted: BTreeMap<u64, Ticket>,
    pub(super) export_lag: Duration,
    pub(super) export_rate_limit: u32,
    pub(super) export_page_cap: usize,
    pub(super) update_limits: UpdateLimits,
    pub(super) limiter: Limiter,
    /// The next this many ticket updates through the API answer 409, as
    /// when another request updated the same ticket at the same moment.
    pub(super) conflicts_pending: u32,
    /// OAuth clients, pending authorization codes and issued access tokens.
    pub(super) oauth: OAuthState,
    /// Organizations by id (name).
    pub(super) organizations: BTreeMap<u64, String>,
    pub(super) next_organization_id: u64,
    /// Webhooks created through the Webhooks API, oldest first.
    pub(super) webhooks: Vec<StoredWebhook>,
}

pub(super) struct NewComment {
    pub(super) body: String,
    pub(super) public: bool,
    pub(super) author_id: u64,
}

pub(super) struct CreateSpec {
    pub(super) subject: String,
    pub(super) comment: NewComment,
    pub(super) priority: Option<String>,
    pub(super) status: String,
    pub(super) requester_id: u64,
    pub(super) external_id: Option<String>,
    pub(super) custom_fields: BTreeMap<u64, Value>,
}

#[derive(Default)]
pub(super) struct Update {
    pub(super) subject: Option<String>,
    pub(super) priority: Option<Option<String>>,
    pub(super) status: Option<String>,
    pub(super) external_id: Option<Option<String>>,
    pub(super) custom_fields: Vec<(u64, Value)>,
    pub(super) comment: Option<NewComment>,
}

/// What a change produced: the audit (for the API response) and the webhooks.
pub(super) struct AuditRecord {
    pub(super) json: Value,
    pub(super) comment_id: Option<u64>,
}

/// Deliveries a change causes, sent once the state lock is released.
pub(super) struct Hooks {
    pub(super) deliveries: Vec<Delivery>,
}

/// One payload to one webhook, signed with that webhook's secret.
pub(super) struct Delivery {
    pub(super) url: String,
    pub(super) secret: String,
    /// The API-registered webhook's id (`x-zendesk-webhook-id`); `None` for
    /// the test's target.
    pub(super) webhook_id: Option<String>,
    pub(super) payload: Value,
}

/// A webhook created through the Webhooks API.
#[derive(Debug, Clone)]
pub(super) struct StoredWebhook {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) endpoint: String,
    pub(super) http_method: String,
    pub(super) request_format: String,
    pub(super) status: String,
    pub(super) subscriptions: Vec<String>,
    pub(super) signing_secret: String,
    pub(super) created_at: DateTime<Utc>,
    pub(super) created_by: u64,
}

pub(super) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn field_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Inner {
    pub(super) fn new(config: ZendeskSandboxConfig) -> Self {
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
            update_limits: UpdateLimits::default(),
            limiter: Limiter::default(),
            conflicts_pending: 0,
            oauth: OAuthState::default(),
            organizations: BTreeMap::new(),
            next_organization_id: 360_000_000_001,
            webhooks: Vec::new(),
        };
        // The bridge's API user is an admin unless a test says otherwise: the
        // incremental export needs one.
        inner.api_user_id =
            inner.add_user(config.agent_email.clone(), config.agent_email, Role::Admin);
        inner
    }

    pub(super) fn add_user(&mut self, name: String, email: String, role: Role) -> u64 {
        let id = self.next_user_id;
        self.next_user_id += 1;
        self.user_by_name.insert(name.clone(), id);
        self.users.insert(id, User { name, email, role });
        id
    }

    pub(super) fn user_named(&mut self, name: &str, role: Role) -> u64 {
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

    pub(super) fn tick(&mut self) -> DateTime<Utc> {
        let now = Utc::now().max(self.last_change + chrono::TimeDelta::nanoseconds(1));
        self.last_change = now;
        now
    }
    pub(super) fn next_event(&mut self) -> u64 {
        let id = self.next_event_id;
        self.next_event_id += 1;
        id
    }

    /// API token basic auth, or an OAuth access token as `Bearer`.
    pub(super) fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        if let Some(token) = value.strip_prefix("Bearer ") {
            return self.oauth.token_scope(token.trim()).is_some();
        }
        let Some(encoded) = value.strip_prefix("Basic ") else {
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

    pub(super) fn comment_snapshot(&self, c: &StoredComment) -> Comment {
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

    pub(super) fn set_custom_field(&self, ticket: &mut Ticket, id: u64, value: Value) {
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

    pub(super) fn validate(&self, update: &Update, problems: &mut Vec<(&'static str, String)>) {
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

    pub(super) fn create(
        &mut self,
        spec: CreateSpec,
        via_api: bool,
    ) -> (Ticket, AuditRecord, Hooks) {
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
    pub(super) fn apply(
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
                "author": {"id": new.author_id, "is_staff": author.role.is_staff(), "name": author.name},
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

    pub(super) fn ticket_json(&self, ticket: &Ticket) -> Value {
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
