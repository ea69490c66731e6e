//! Webhooks: the Webhooks API (`/api/v2/webhooks`: list, create, show,
//! delete, signing secret) and the outgoing event deliveries, signed with
//! HMAC-SHA256 and sent through the fault plan.
//!
//! Contract (developer.zendesk.com/api-reference/webhooks/webhooks-api/
//! webhooks/): admins only (403 otherwise); `name`, `endpoint`,
//! `http_method`, `request_format` and `status` are required; subscribing to
//! events needs `POST` and `json`; `conditional_ticket_events` (a webhook
//! for triggers) stands alone; ids are ULIDs (`01F1KRFQ6BG29CNWFR60NK5FNY`);
//! the signing secret is made by Zendesk and read from
//! `GET /api/v2/webhooks/{id}/signing_secret`; the API takes no `.json`
//! suffix (blakmatrix/node-zendesk#389). The error body of this newer API,
//! `{"errors":[{"code","title","detail"}]}`, is the shape of Zendesk's newer
//! APIs, not verified for this endpoint.
//!
//! Deliveries: every active webhook created through the API that subscribes
//! to an event's type gets it, signed with its own secret, with
//! `x-zendesk-webhook-id`; the test's target (`webhook_url`, set by tests)
//! gets every event, signed with the configured secret. A webhook made for
//! triggers (`conditional_ticket_events`) gets no event: no trigger runs here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::Sha256;

use super::api::{with_api, ApiFailure};
use super::state::{stamp, Delivery, Hooks, Inner, StoredWebhook};
use super::{Role, Shared, Ticket, MAX_PAGE};
use crate::faults::deliver_webhook;

impl Shared {
    /// Signs and sends webhooks; called after the state lock is released.
    pub(super) fn send(&self, hooks: Hooks) {
        for delivery in hooks.deliveries {
            let body = serde_json::to_vec(&delivery.payload).expect("JSON serializes");
            let timestamp = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let signature = sign(&delivery.secret, &timestamp, &body);
            let mut headers = vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("X-Zendesk-Account-Id".to_owned(), ACCOUNT_ID.to_string()),
                ("X-Zendesk-Webhook-Signature".to_owned(), signature),
                (
                    "X-Zendesk-Webhook-Signature-Timestamp".to_owned(),
                    timestamp,
                ),
                (
                    "X-Zendesk-Webhook-Invocation-Id".to_owned(),
                    rand::thread_rng()
                        .gen_range(1_000_000_000u64..9_999_999_999)
                        .to_string(),
                ),
            ];
            if let Some(id) = delivery.webhook_id {
                headers.push(("X-Zendesk-Webhook-Id".to_owned(), id));
            }
            deliver_webhook(&self.faults, &self.http, delivery.url, headers, body);
        }
    }
}

/// The simulated account's id (`account_id`, `x-zendesk-account-id`).
const ACCOUNT_ID: u64 = 1_000_001;

/// base64(HMAC-SHA256(secret, timestamp + body)), as Zendesk signs webhooks.
/// (Duplicated from the bridge on purpose: the sandbox must not depend on it.)
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

impl Inner {
    /// Who gets each payload: the test's target, and every active
    /// API-created webhook subscribed to the payload's event type.
    pub(super) fn hooks(&self, payloads: Vec<Value>) -> Hooks {
        let mut deliveries = Vec::new();
        for payload in payloads {
            let kind = payload["type"].as_str().unwrap_or_default().to_owned();
            if let Some(url) = &self.webhook_url {
                deliveries.push(Delivery {
                    url: url.clone(),
                    secret: self.webhook_secret.clone(),
                    webhook_id: None,
                    payload: payload.clone(),
                });
            }
            for hook in &self.webhooks {
                if hook.status == "active" && hook.subscriptions.contains(&kind) {
                    deliveries.push(Delivery {
                        url: hook.endpoint.clone(),
                        secret: hook.signing_secret.clone(),
                        webhook_id: Some(hook.id.clone()),
                        payload: payload.clone(),
                    });
                }
            }
        }
        Hooks { deliveries }
    }

    /// An event webhook payload in the shape of Zendesk's ticket events.
    pub(super) fn event_payload(
        &self,
        ticket: &Ticket,
        kind: &str,
        actor: u64,
        via_api: bool,
        event: Value,
    ) -> Value {
        let upper = |s: &str| s.to_ascii_uppercase();
        json!({
            "account_id": ACCOUNT_ID,
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

// ---- the Webhooks API -----------------------------------------------------

/// Ticket event types a webhook may subscribe to (Zendesk's "Ticket events"
/// reference; the fact sheet's list plus creation and deletion).
const TICKET_EVENTS: [&str; 20] = [
    "created",
    "agent_assignment_changed",
    "comment_added",
    "comment_made_private",
    "custom_field_changed",
    "custom_status_changed",
    "description_changed",
    "external_id_changed",
    "group_assignment_changed",
    "organization_changed",
    "priority_changed",
    "requester_changed",
    "status_changed",
    "subject_changed",
    "tags_changed",
    "type_changed",
    "soft_deleted",
    "permanently_deleted",
    "marked_as_spam",
    "undeleted",
];

/// A webhook for triggers and automations; it stands alone.
const CONDITIONAL: &str = "conditional_ticket_events";

fn known_subscription(event: &str) -> bool {
    match event.strip_prefix("zen:event-type:") {
        Some(rest) => match rest.strip_prefix("ticket.") {
            Some(kind) => TICKET_EVENTS.contains(&kind),
            // User and organization events are not simulated, but exist.
            None => rest.starts_with("user.") || rest.starts_with("organization."),
        },
        None => false,
    }
}

fn invalid(code: &'static str, detail: impl Into<String>) -> ApiFailure {
    ApiFailure::WebhookInvalid(vec![(code, detail.into())])
}

fn require_admin(inner: &Inner) -> Result<(), ApiFailure> {
    if inner.users[&inner.api_user_id].role == Role::Admin {
        Ok(())
    } else {
        Err(ApiFailure::Forbidden)
    }
}

/// Zendesk's ULIDs: 48 bits of milliseconds and 80 random bits, in
/// Crockford's base32 (26 characters).
fn ulid() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = Utc::now().timestamp_millis().max(0) as u128;
    let random: u128 = rand::thread_rng().gen::<u128>() & ((1u128 << 80) - 1);
    let value = (millis << 80) | random;
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// A fresh signing secret, as Zendesk shows them (base64 of random bytes).
fn new_signing_secret() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    BASE64.encode(bytes)
}

fn webhook_json(hook: &StoredWebhook) -> Value {
    json!({
        "id": hook.id,
        "name": hook.name,
        "description": hook.description,
        "endpoint": hook.endpoint,
        "http_method": hook.http_method,
        "request_format": hook.request_format,
        "status": hook.status,
        "subscriptions": hook.subscriptions,
        "created_at": stamp(hook.created_at),
        "created_by": hook.created_by.to_string(),
        "updated_at": stamp(hook.created_at),
        "updated_by": hook.created_by.to_string(),
    })
}

/// Checks a `{"webhook":{…}}` body as Zendesk does and builds the webhook.
fn parse_new_webhook(body: &[u8], inner: &Inner) -> Result<StoredWebhook, ApiFailure> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| invalid("InvalidInput", "The request body is not valid JSON"))?;
    let hook = value
        .get("webhook")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("InvalidInput", "webhook is required"))?;
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    let text =
        |field: &'static str, problems: &mut Vec<(&'static str, String)>| match hook.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                problems.push(("RequiredField", format!("{field} is required")));
                None
            }
            Some(_) => {
                problems.push(("InvalidValue", format!("{field} must be a string")));
                None
            }
        };
    let name = text("name", &mut problems);
    let endpoint = text("endpoint", &mut problems);
    let http_method = text("http_method", &mut problems);
    let request_format = text("request_format", &mut problems);
    let status = text("status", &mut problems);
    if let Some(endpoint) = &endpoint {
        let ok = reqwest::Url::parse(endpoint)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .unwrap_or(false);
        if !ok {
            problems.push(("InvalidValue", "endpoint must be a valid URL".to_owned()));
        }
    }
    if let Some(method) = &http_method {
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            problems.push((
                "InvalidValue",
                format!("http_method {method} is not allowed"),
            ));
        }
    }
    if let Some(format) = &request_format {
        if !["json", "xml", "form_encoded"].contains(&format.as_str()) {
            problems.push((
                "InvalidValue",
                format!("request_format {format} is not allowed"),
            ));
        }
    }
    if let Some(status) = &status {
        if !["active", "inactive"].contains(&status.as_str()) {
            problems.push(("InvalidValue", format!("status {status} is not allowed")));
        }
    }
    let subscriptions: Vec<String> = match hook.get("subscriptions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut list = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) => list.push(s.to_owned()),
                    None => {
                        problems.push(("InvalidValue", "subscriptions must be strings".to_owned()))
                    }
                }
            }
            list
        }
        Some(_) => {
            problems.push(("InvalidValue", "subscriptions must be an array".to_owned()));
            Vec::new()
        }
    };
    if subscriptions.iter().any(|s| s == CONDITIONAL) && subscriptions.len() > 1 {
        problems.push((
            "InvalidValue",
            format!("{CONDITIONAL} cannot be combined with event subscriptions"),
        ));
    }
    for event in subscriptions.iter().filter(|s| *s != CONDITIONAL) {
        if !known_subscription(event) {
            problems.push(("InvalidValue", format!("{event} is not a valid event type")));
        }
    }
    let events = subscriptions.iter().any(|s| s != CONDITIONAL);
    if events && http_method.as_deref().is_some_and(|m| m != "POST") {
        problems.push((
            "InvalidValue",
            "http_method must be POST for a webhook subscribed to events".to_owned(),
        ));
    }
    if events && request_format.as_deref().is_some_and(|f| f != "json") {
        problems.push((
            "InvalidValue",
            "request_format must be json for a webhook subscribed to events".to_owned(),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiFailure::WebhookInvalid(problems));
    }
    Ok(StoredWebhook {
        id: ulid(),
        name: name.unwrap_or_default(),
        description: hook
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        endpoint: endpoint.unwrap_or_default(),
        http_method: http_method.unwrap_or_default(),
        request_format: request_format.unwrap_or_default(),
        status: status.unwrap_or_default(),
        subscriptions,
        signing_secret: new_signing_secret(),
        created_at: Utc::now(),
        created_by: inner.api_user_id,
    })
}

/// `GET /api/v2/webhooks`: cursor pages (`page[size]` ≤ 100,
/// `page[after]`), `filter[name_contains]` and `filter[status]`.
pub(super) async fn list_webhooks(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    with_api(&shared, &headers, |inner| {
        require_admin(inner)?;
        let params: HashMap<String, String> =
            serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
                .map_err(|_| invalid("InvalidInput", "Invalid query string"))?;
        let size = match params.get("page[size]") {
            None => MAX_PAGE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    invalid("InvalidPaginationParameter", "page[size] must be 1 to 100")
                })?,
        };
        let after = match params.get("page[after]") {
            None => None,
            Some(cursor) => Some(
                URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .ok_or_else(|| {
                        invalid(
                            "InvalidPaginationParameter",
                            "page[after] is not a valid cursor",
                        )
                    })?,
            ),
        };
        let name_contains = params
            .get("filter[name_contains]")
            .map(|n| n.to_lowercase());
        let status = params.get("filter[status]");
        let matching: Vec<&StoredWebhook> = inner
            .webhooks
            .iter()
            .filter(|h| {
                name_contains
                    .as_ref()
                    .is_none_or(|n| h.name.to_lowercase().contains(n))
            })
            .filter(|h| status.is_none_or(|s| h.status == *s))
            .collect();
        let start = match &after {
            None => 0,
            Some(id) => matching
                .iter()
                .position(|h| h.id == *id)
                .map(|i| i + 1)
                .ok_or_else(|| {
                    invalid(
                        "InvalidPaginationParameter",
                        "page[after] is not a valid cursor",
                    )
                })?,
        };
        let rest = &matching[start.min(matching.len())..];
        let page = &rest[..rest.len().min(size)];
        let has_more = rest.len() > page.len();
        let cursor = |h: &&StoredWebhook| URL_SAFE_NO_PAD.encode(&h.id);
        let body = json!({
            "webhooks": page.iter().map(|h| webhook_json(h)).collect::<Vec<_>>(),
            "meta": {
                "has_more": has_more,
                "after_cursor": page.last().map(cursor),
                "before_cursor": page.first().map(cursor),
            },
            "links": {"next": null, "prev": null},
        });
        Ok((Json(body).into_response(), None))
    })
}

/// `POST /api/v2/webhooks`: 201 with the webhook (its secret is read
/// separately).
pub(super) async fn create_webhook(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_api(&shared, &headers, |inner| {
        require_admin(inner)?;
        if query
            .as_deref()
            .is_some_and(|q| q.contains("clone_webhook_id"))
        {
            return Err(invalid("InvalidInput", "cloning is not simulated"));
        }
        let hook = parse_new_webhook(&body, inner)?;
        let response = (
            StatusCode::CREATED,
            Json(json!({"webhook": webhook_json(&hook)})),
        )
            .into_response();
        inner.webhooks.push(hook);
        Ok((response, None))
    })
}

pub(super) async fn show_webhook(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_api(&shared, &headers, |inner| {
        require_admin(inner)?;
        let hook = inner
            .webhooks
            .iter()
            .find(|h| h.id == id)
            .ok_or(ApiFailure::NotFound)?;
        Ok((
            Json(json!({"webhook": webhook_json(hook)})).into_response(),
            None,
        ))
    })
}

/// `DELETE /api/v2/webhooks/{id}`: 204.
pub(super) async fn delete_webhook(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_api(&shared, &headers, |inner| {
        require_admin(inner)?;
        let at = inner
            .webhooks
            .iter()
            .position(|h| h.id == id)
            .ok_or(ApiFailure::NotFound)?;
        inner.webhooks.remove(at);
        Ok((StatusCode::NO_CONTENT.into_response(), None))
    })
}

/// `GET /api/v2/webhooks/{id}/signing_secret`.
pub(super) async fn show_signing_secret(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_api(&shared, &headers, |inner| {
        require_admin(inner)?;
        let hook = inner
            .webhooks
            .iter()
            .find(|h| h.id == id)
            .ok_or(ApiFailure::NotFound)?;
        let body =
            json!({"signing_secret": {"algorithm": "SHA256", "secret": hook.signing_secret}});
        Ok((Json(body).into_response(), None))
    })
}

/// `POST /api/v2/webhooks/{id}/signing_secret`: a new secret (201).
pub(super) async fn reset_signing_secret(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_api(&shared, &headers, |inner| {
        require_admin(inner)?;
        let hook = inner
            .webhooks
            .iter_mut()
            .find(|h| h.id == id)
            .ok_or(ApiFailure::NotFound)?;
        hook.signing_secret = new_signing_secret();
        let body =
            json!({"signing_secret": {"algorithm": "SHA256", "secret": hook.signing_secret}});
        Ok(((StatusCode::CREATED, Json(body)).into_response(), None))
    })
}
