//! Zendesk: API client, webhook parsing and signature verification.
//!
//! Contract (Zendesk Support API v2):
//! - API token auth: HTTP basic with user `{email}/token` and the token as password.
//! - `GET /api/v2/tickets/{id}.json` → `{"ticket":{..,"custom_fields":[{"id","value"}]}}`.
//! - `GET /api/v2/tickets/{id}/comments.json?page[size]=100&include=users` → cursor
//!   pages `{"comments":[..],"users":[..],"meta":{"has_more","after_cursor"},"links":{"next"}}`.
//! - Comments are created through `PUT /api/v2/tickets/{id}.json` with
//!   `{"ticket":{"comment":{"body","public"}}}`; the new comment's id is the id of the
//!   `"Comment"` event in the response's `audit.events`.
//! - Errors: `{"error":"RecordNotFound","description":..}`, `{"error":{"title","message"}}`,
//!   validation failures add `"details":{field:[{"description"}]}`; 429 carries `Retry-After`.
//! - Changes: `GET /api/v2/incremental/tickets/cursor.json?start_time=<unix>` on the
//!   first call, `?cursor=<after_cursor>` afterwards → `{"tickets":[..],"after_cursor",
//!   "after_url","end_of_stream"}`; at most 10 requests a minute, up to 1000 tickets a
//!   page, the most recent minute left out, deleted tickets included unless
//!   `exclude_deleted=true`.
//! - Webhooks: `X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(signing secret,
//!   `X-Zendesk-Webhook-Signature-Timestamp` + raw body)).

use std::collections::HashMap;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::connectors::http::{error_from_response, transport_error};
use crate::error::{ApiError, InboundError};
use crate::model::{DeskComment, DeskTicket, Visibility};
use crate::ports::{DeskChanges, DeskCursor, ServiceDesk};

/// System name used in errors and logs.
pub const SYSTEM: &str = "zendesk";
pub const SIGNATURE_HEADER: &str = "X-Zendesk-Webhook-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Zendesk-Webhook-Signature-Timestamp";

/// Largest page the comments endpoint serves.
const PAGE_SIZE: &str = "100";

/// Largest page of the incremental ticket export.
const EXPORT_PAGE_SIZE: &str = "1000";
/// Export requests per sweep. Zendesk allows 10 a minute per account; a sweep
/// every 5 minutes that reads at most 5 pages (5,000 changed tickets) leaves
/// room for retries, and whatever is left is read by the next sweep.
const MAX_EXPORT_PAGES: usize = 5;

/// Replay window of signed webhooks, both ways (a clock ahead of ours is as
/// suspicious as an old request).
const MAX_SKEW: TimeDelta = TimeDelta::minutes(5);

type HmacSha256 = Hmac<Sha256>;

/// Zendesk API client of one tenant. Cheap to clone (the HTTP client is shared).
#[derive(Debug, Clone)]
pub struct ZendeskClient {
    http: reqwest::Client,
    base_url: String,
    email: String,
    api_token: Secret,
    cluster_id_field: Option<u64>,
}

impl ZendeskClient {
    /// `base_url` is `https://<subdomain>.zendesk.com` (or a sandbox); `cluster_id_field`
    /// is the id of the ticket custom field holding the "cluster id".
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        email: &str,
        api_token: &Secret,
        cluster_id_field: Option<u64>,
    ) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            email: email.to_owned(),
            api_token: api_token.clone(),
            cluster_id_field,
        }
    }

    fn ticket_url(&self, id: u64) -> String {
        format!("{}/api/v2/tickets/{id}.json", self.base_url)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, ApiError> {
        let response = request
            .basic_auth(
                format!("{}/token", self.email),
                Some(self.api_token.expose()),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| transport_error(SYSTEM, err))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            let err = error_from_response(SYSTEM, response, what, describe_error).await;
            tracing::debug!(%err, retryable = err.is_retryable(), "zendesk call failed");
            Err(err)
        }
    }

    /// Updates a ticket with `{"ticket": fields}` and returns the response.
    async fn put_ticket(&self, id: u64, fields: Value) -> Result<UpdateResponse, ApiError> {
        let request = self
            .http
            .put(self.ticket_url(id))
            .json(&json!({ "ticket": fields }));
        read_json(self.send(request, &format!("ticket {id}")).await?).await
    }

    /// Sets one ticket custom field (for example the cluster id, or a PSA reference
    /// kept in a custom field instead of `external_id`).
    #[tracing::instrument(name = "zendesk.set_custom_field", skip(self, value))]
    pub async fn set_custom_field(
        &self,
        ticket_id: u64,
        field_id: u64,
        value: Value,
    ) -> Result<(), ApiError> {
        self.put_ticket(
            ticket_id,
            json!({ "custom_fields": [{ "id": field_id, "value": value }] }),
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl ServiceDesk for ZendeskClient {
    #[tracing::instrument(name = "zendesk.get_ticket", skip(self))]
    async fn get_ticket(&self, id: u64) -> Result<DeskTicket, ApiError> {
        let request = self.http.get(self.ticket_url(id));
        let envelope: TicketEnvelope =
            read_json(self.send(request, &format!("ticket {id}")).await?).await?;
        Ok(envelope.ticket.into_model(self.cluster_id_field))
    }

    #[tracing::instrument(name = "zendesk.list_comments", skip(self))]
    async fn list_comments(&self, ticket_id: u64) -> Result<Vec<DeskComment>, ApiError> {
        let url = format!("{}/api/v2/tickets/{ticket_id}/comments.json", self.base_url);
        let what = format!("ticket {ticket_id}");
        let mut comments = Vec::new();
        let mut names = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("page[size]", PAGE_SIZE), ("include", "users")];
            if let Some(cursor) = &after {
                query.push(("page[after]", cursor));
            }
            let request = self.http.get(&url).query(&query);
            let page: CommentPage = read_json(self.send(request, &what).await?).await?;
            names.extend(
                page.users
                    .into_iter()
                    .filter_map(|u| u.name.map(|name| (u.id, name))),
            );
            comments.extend(page.comments);
            if !page.meta.has_more {
                break;
            }
            // The next page is built from `after_cursor` rather than by following
            // `links.next`, so credentials only ever go to the configured host.
            let cursor = page
                .meta
                .after_cursor
                .filter(|c| !c.is_empty())
                .ok_or_else(|| malformed("page has more comments but no after_cursor"))?;
            if after.as_deref() == Some(cursor.as_str()) {
                return Err(malformed("comment cursor did not advance"));
            }
            after = Some(cursor);
        }
        tracing::debug!(count = comments.len(), "listed zendesk comments");
        Ok(comments
            .into_iter()
            .map(|c| DeskComment {
                id: c.id,
                // System comments carry a negative author id; they have no user.
                author_id: u64::try_from(c.author_id).unwrap_or(0),
                author_name: u64::try_from(c.author_id)
                    .ok()
                    .and_then(|id| names.get(&id).cloned()),
                body: c.body,
                public: c.public,
                created_at: c.created_at,
            })
            .collect())
    }

    #[tracing::instrument(name = "zendesk.add_comment", skip(self, body))]
    async fn add_comment(
        &self,
        ticket_id: u64,
        body: &str,
        visibility: Visibility,
    ) -> Result<u64, ApiError> {
        let public = visibility == Visibility::Public;
        let response = self
            .put_ticket(
                ticket_id,
                json!({ "comment": { "body": body, "public": public } }),
            )
            .await?;
        let id = response
            .audit
            .and_then(|audit| {
                audit
                    .events
                    .into_iter()
                    .find(|event| event.kind == "Comment")
                    .and_then(|event| event.id)
            })
            .ok_or_else(|| malformed("ticket update reported no Comment event"))?;
        tracing::debug!(comment_id = id, public, "added zendesk comment");
        Ok(id)
    }

    #[tracing::instrument(name = "zendesk.set_external_id", skip(self))]
    async fn set_external_id(&self, ticket_id: u64, external_id: &str) -> Result<(), ApiError> {
        self.put_ticket(ticket_id, json!({ "external_id": external_id }))
            .await
            .map(drop)
    }

    #[tracing::instrument(name = "zendesk.changed_tickets", skip(self))]
    async fn changed_tickets(&self, position: &DeskCursor) -> Result<DeskChanges, ApiError> {
        let url = format!("{}/api/v2/incremental/tickets/cursor.json", self.base_url);
        let mut changes = DeskChanges {
            ticket_ids: Vec::new(),
            next: position.clone(),
            complete: false,
            pages: 0,
        };
        let mut seen = std::collections::HashSet::new();
        while changes.pages < MAX_EXPORT_PAGES {
            let mut query = vec![
                ("per_page", EXPORT_PAGE_SIZE.to_owned()),
                ("exclude_deleted", "true".to_owned()),
            ];
            match &changes.next {
                DeskCursor::StartTime(at) => query.push(("start_time", at.timestamp().to_string())),
                DeskCursor::Cursor(cursor) => query.push(("cursor", cursor.clone())),
            }
            let request = self.http.get(&url).query(&query);
            let page: ExportPage = match self.send(request, "ticket export").await {
                Ok(response) => read_json(response).await?,
                // A cursor is a valid resume point: what earlier pages returned is
                // kept, and the next sweep goes on from there.
                Err(err) if changes.pages > 0 && err.is_retryable() => {
                    tracing::warn!(%err, pages = changes.pages, "ticket export cut short");
                    return Ok(changes);
                }
                Err(err) => return Err(err),
            };
            changes.pages += 1;
            for ticket in page.tickets {
                // Deleted tickets have nothing left to mirror (and 404 when read).
                if ticket.status.as_deref() != Some("deleted") && seen.insert(ticket.id) {
                    changes.ticket_ids.push(ticket.id);
                }
            }
            let cursor = page.after_cursor.filter(|c| !c.is_empty());
            if page.end_of_stream {
                // An export that found nothing names no cursor: keep the position.
                if let Some(cursor) = cursor {
                    changes.next = DeskCursor::Cursor(cursor);
                }
                changes.complete = true;
                break;
            }
            let cursor =
                cursor.ok_or_else(|| malformed("export has more pages but no after_cursor"))?;
            if changes.next == DeskCursor::Cursor(cursor.clone()) {
                return Err(malformed("export cursor did not advance"));
            }
            changes.next = DeskCursor::Cursor(cursor);
        }
        tracing::debug!(
            count = changes.ticket_ids.len(),
            pages = changes.pages,
            complete = changes.complete,
            "read zendesk ticket changes"
        );
        Ok(changes)
    }
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::Malformed {
        system: SYSTEM,
        message: message.into(),
    }
}

/// Decodes a success body. A body that does not parse is `Malformed` (permanent),
/// not a transport failure: retrying will not change what the API sends.
async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ApiError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|err| transport_error(SYSTEM, err))?;
    serde_json::from_slice(&bytes).map_err(|err| malformed(err.to_string()))
}

/// Zendesk's own error message, from any of its error shapes.
fn describe_error(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let mut parts: Vec<String> = Vec::new();
    match value.get("error") {
        Some(Value::String(code)) => parts.push(code.clone()),
        Some(Value::Object(error)) => {
            for key in ["title", "message"] {
                if let Some(text) = error.get(key).and_then(Value::as_str) {
                    parts.push(text.to_owned());
                }
            }
        }
        _ => {}
    }
    if let Some(description) = value.get("description").and_then(Value::as_str) {
        parts.push(description.to_owned());
    }
    if let Some(Value::Object(details)) = value.get("details") {
        let reasons: Vec<String> = details
            .iter()
            .flat_map(|(field, problems)| {
                let problems = problems.as_array().cloned().unwrap_or_default();
                problems.into_iter().map(move |p| {
                    p.get("description")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{field} is invalid"))
                })
            })
            .take(5)
            .collect();
        if !reasons.is_empty() {
            parts.push(reasons.join("; "));
        }
    }
    (!parts.is_empty()).then(|| parts.join(": "))
}

#[derive(Deserialize)]
struct TicketEnvelope {
    ticket: WireTicket,
}

#[derive(Deserialize)]
struct WireTicket {
    id: u64,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    custom_fields: Vec<WireCustomField>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct WireCustomField {
    id: u64,
    #[serde(default)]
    value: Value,
}

impl WireTicket {
    fn into_model(self, cluster_id_field: Option<u64>) -> DeskTicket {
        let cluster_id = cluster_id_field.and_then(|field| {
            self.custom_fields
                .iter()
                .find(|f| f.id == field)
                .and_then(|f| field_text(&f.value))
        });
        DeskTicket {
            id: self.id,
            subject: self.subject.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            priority: self.priority.filter(|p| !p.is_empty()),
            status: self.status.unwrap_or_default(),
            external_id: self.external_id.filter(|e| !e.is_empty()),
            cluster_id,
            updated_at: self.updated_at,
        }
    }
}

/// A custom field value as text. Surrounding blanks are dropped because the
/// value is matched against PSA reference numbers, where a stray space typed by
/// an agent would silently break the match.
fn field_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

#[derive(Deserialize)]
struct CommentPage {
    #[serde(default)]
    comments: Vec<WireComment>,
    #[serde(default)]
    users: Vec<WireUser>,
    #[serde(default)]
    meta: PageMeta,
}

#[derive(Deserialize, Default)]
struct PageMeta {
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    after_cursor: Option<String>,
}

#[derive(Deserialize)]
struct WireComment {
    id: u64,
    #[serde(default)]
    author_id: i64,
    #[serde(default)]
    body: String,
    #[serde(default = "yes")]
    public: bool,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct WireUser {
    id: u64,
    #[serde(default)]
    name: Option<String>,
}

/// One page of the incremental ticket export; only what the sweep needs.
#[derive(Deserialize)]
struct ExportPage {
    #[serde(default)]
    tickets: Vec<ExportTicket>,
    #[serde(default)]
    after_cursor: Option<String>,
    #[serde(default)]
    end_of_stream: bool,
}

#[derive(Deserialize)]
struct ExportTicket {
    id: u64,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct UpdateResponse {
    #[serde(default)]
    audit: Option<Audit>,
}

#[derive(Deserialize)]
struct Audit {
    #[serde(default)]
    events: Vec<AuditEvent>,
}

#[derive(Deserialize)]
struct AuditEvent {
    #[serde(default)]
    id: Option<u64>,
    #[serde(rename = "type", default)]
    kind: String,
}

/// The webhook signature of `body` sent at `timestamp`:
/// base64(HMAC-SHA256(secret, timestamp + body)).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// Checks a Zendesk webhook's signature and its timestamp (ISO-8601, within
/// 5 minutes of `now` either way, against replays).
pub fn verify_signature(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), InboundError> {
    let signature = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(InboundError::MissingHeader(SIGNATURE_HEADER))?;
    let timestamp = timestamp
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(InboundError::MissingHeader(TIMESTAMP_HEADER))?;
    // With an empty key anyone can compute a valid signature.
    if secret.is_empty() {
        return Err(InboundError::BadSignature);
    }
    let provided = BASE64
        .decode(signature)
        .map_err(|_| InboundError::BadSignature)?;
    let mut mac =
        HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&provided)
        .map_err(|_| InboundError::BadSignature)?;
    let sent_at = DateTime::parse_from_rfc3339(timestamp)
        .map_err(|_| InboundError::StaleTimestamp)?
        .with_timezone(&Utc);
    if (now - sent_at).abs() > MAX_SKEW {
        return Err(InboundError::StaleTimestamp);
    }
    Ok(())
}

/// What an incoming Zendesk webhook says: this ticket changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskEvent {
    pub ticket_id: u64,
    /// Source event id, used for queue de-duplication.
    pub event_id: String,
}

/// Parses either an event webhook (`{"type":"zen:event-type:ticket.…","id":…,
/// "detail":{"id":"123"},"subject":"zen:ticket:123",…}`) or a trigger webhook
/// whose JSON body the customer wrote (`{"ticket_id":123}` or `{"ticket":{"id":123}}`,
/// numbers or numeric strings). Without an event id in the payload, one is
/// derived from the ticket, the signature timestamp and the body, so a
/// redelivery de-duplicates while a different change does not.
pub fn parse_webhook(body: &[u8], timestamp: Option<&str>) -> Result<DeskEvent, InboundError> {
    let payload: Value = serde_json::from_slice(body)
        .map_err(|_| InboundError::Malformed("body is not valid JSON".to_owned()))?;
    let object = payload
        .as_object()
        .ok_or_else(|| InboundError::Malformed("body is not a JSON object".to_owned()))?;

    let event_type = object
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| t.starts_with("zen:event-type:"));
    let ticket_id = if let Some(event_type) = event_type {
        if !event_type.starts_with("zen:event-type:ticket.") {
            return Err(InboundError::Malformed(format!(
                "{event_type} is not a ticket event"
            )));
        }
        match object.get("detail").and_then(|d| d.get("id")) {
            Some(id) => ticket_id(id)?,
            None => object
                .get("subject")
                .and_then(Value::as_str)
                .and_then(|s| s.strip_prefix("zen:ticket:"))
                .ok_or_else(|| InboundError::Malformed("event names no ticket".to_owned()))
                .and_then(|id| ticket_id(&Value::from(id)))?,
        }
    } else if let Some(id) = object.get("ticket_id") {
        ticket_id(id)?
    } else if let Some(id) = object.get("ticket").and_then(|t| t.get("id")) {
        ticket_id(id)?
    } else {
        return Err(InboundError::Malformed(
            "no ticket id (expected detail.id, ticket_id or ticket.id)".to_owned(),
        ));
    };

    let event_id = match object.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
        Some(Value::Number(id)) => id.to_string(),
        _ => {
            let digest = Sha256::digest(body);
            let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            match timestamp {
                Some(ts) => format!("ticket:{ticket_id}:{}:{short}", ts.trim()),
                None => format!("ticket:{ticket_id}:{short}"),
            }
        }
    };
    Ok(DeskEvent {
        ticket_id,
        event_id,
    })
}

/// A ticket id from a number or a numeric string; trigger templates render
/// placeholders such as `{{ticket.id}}` as strings.
fn ticket_id(value: &Value) -> Result<u64, InboundError> {
    let id = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    id.filter(|id| *id > 0)
        .ok_or_else(|| InboundError::Malformed("ticket id is not a positive integer".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0";
    const TS: &str = "2026-11-23T18:40:12Z";

    fn at(ts: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn verify(
        secret: &str,
        ts: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
        now: &str,
    ) -> Result<(), InboundError> {
        verify_signature(&Secret::new(secret), ts, sig, body, at(now))
    }

    #[test]
    fn signature_matches_the_documented_formula() {
        // Independent computation: HMAC-SHA256 over timestamp || body, base64.
        let mut mac = HmacSha256::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(b"2026-11-23T18:40:12Z{\"a\":1}");
        let expected = BASE64.encode(mac.finalize().into_bytes());
        assert_eq!(sign(SECRET, TS, b"{\"a\":1}"), expected);
        assert_ne!(
            sign(SECRET, TS, b"{\"a\":1}"),
            sign(SECRET, TS, b"{\"a\":2}")
        );
    }

    #[test]
    fn valid_signature_is_accepted_within_the_window() {
        let body = br#"{"ticket_id":7}"#;
        let sig = sign(SECRET, TS, body);
        assert_eq!(verify(SECRET, Some(TS), Some(&sig), body, TS), Ok(()));
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:44:59Z"),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:36:00Z"),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_or_wrong_secret_is_rejected() {
        let body = br#"{"ticket_id":7}"#;
        let sig = sign(SECRET, TS, body);
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), br#"{"ticket_id":8}"#, TS),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify("another secret", Some(TS), Some(&sig), body, TS),
            Err(InboundError::BadSignature)
        );
        // The timestamp is part of the signed message.
        assert_eq!(
            verify(SECRET, Some("2026-11-23T18:40:13Z"), Some(&sig), body, TS),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some("not base64!"), body, TS),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn empty_secret_never_verifies() {
        let body = b"{}";
        let sig = sign("", TS, body);
        assert_eq!(
            verify("", Some(TS), Some(&sig), body, TS),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn stale_future_and_unreadable_timestamps_are_rejected() {
        let body = b"{}";
        let sig = sign(SECRET, TS, body);
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:45:13Z"),
            Err(InboundError::StaleTimestamp)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:35:11Z"),
            Err(InboundError::StaleTimestamp)
        );
        let odd = "yesterday";
        let sig = sign(SECRET, odd, body);
        assert_eq!(
            verify(SECRET, Some(odd), Some(&sig), body, TS),
            Err(InboundError::StaleTimestamp)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let body = b"{}";
        let sig = sign(SECRET, TS, body);
        assert_eq!(
            verify(SECRET, Some(TS), None, body, TS),
            Err(InboundError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(SECRET, None, Some(&sig), body, TS),
            Err(InboundError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(SECRET, Some(" "), Some(&sig), body, TS),
            Err(InboundError::MissingHeader(TIMESTAMP_HEADER))
        );
    }

    #[test]
    fn parses_event_webhooks() {
        let body = br#"{"type":"zen:event-type:ticket.comment_added","id":"d4f5c389-8f4a-4c2e-a1b9-8e4f39c71d52",
            "time":"2026-11-23T18:40:12Z","account_id":22129848,"subject":"zen:ticket:5158",
            "detail":{"id":"5158","status":"OPEN"},"event":{"comment":{"id":98,"is_public":true}}}"#;
        assert_eq!(
            parse_webhook(body, Some(TS)),
            Ok(DeskEvent {
                ticket_id: 5158,
                event_id: "d4f5c389-8f4a-4c2e-a1b9-8e4f39c71d52".to_owned()
            })
        );
        // Without a detail object the subject names the ticket.
        let body =
            br#"{"type":"zen:event-type:ticket.created","id":"e1","subject":"zen:ticket:77"}"#;
        assert_eq!(parse_webhook(body, None).unwrap().ticket_id, 77);
    }

    #[test]
    fn parses_trigger_webhooks_and_derives_event_ids() {
        let numeric = parse_webhook(br#"{"ticket_id":123}"#, Some(TS)).unwrap();
        assert_eq!(numeric.ticket_id, 123);
        assert!(numeric
            .event_id
            .starts_with("ticket:123:2026-11-23T18:40:12Z:"));
        // A redelivery maps to the same id; another send time to another one.
        assert_eq!(
            parse_webhook(br#"{"ticket_id":123}"#, Some(TS)).unwrap(),
            numeric
        );
        assert_ne!(
            parse_webhook(br#"{"ticket_id":123}"#, Some("2026-11-23T18:40:13Z"))
                .unwrap()
                .event_id,
            numeric.event_id
        );
        let nested = parse_webhook(br#"{"ticket":{"id":"456","status":"open"}}"#, None).unwrap();
        assert_eq!(nested.ticket_id, 456);
        let string = parse_webhook(br#"{"ticket_id":" 9 ","id":"trigger-run-1"}"#, None).unwrap();
        assert_eq!(
            string,
            DeskEvent {
                ticket_id: 9,
                event_id: "trigger-run-1".to_owned()
            }
        );
    }

    #[test]
    fn malformed_bodies_get_plain_reasons() {
        let reason = |body: &[u8]| match parse_webhook(body, Some(TS)) {
            Err(InboundError::Malformed(reason)) => reason,
            other => panic!("expected Malformed, got {other:?}"),
        };
        assert_eq!(reason(b"not json"), "body is not valid JSON");
        assert_eq!(reason(b"[1,2]"), "body is not a JSON object");
        assert!(reason(br#"{"status":"open"}"#).starts_with("no ticket id"));
        assert_eq!(
            reason(br#"{"ticket_id":"{{ticket.id}}"}"#),
            "ticket id is not a positive integer"
        );
        assert_eq!(
            reason(br#"{"ticket_id":-3}"#),
            "ticket id is not a positive integer"
        );
        assert_eq!(
            reason(br#"{"ticket":{"id":0}}"#),
            "ticket id is not a positive integer"
        );
        assert_eq!(
            reason(br#"{"ticket_id":1.5}"#),
            "ticket id is not a positive integer"
        );
        assert_eq!(
            reason(br#"{"type":"zen:event-type:user.created","id":"x","detail":{"id":"5"}}"#),
            "zen:event-type:user.created is not a ticket event"
        );
        assert_eq!(
            reason(br#"{"type":"zen:event-type:ticket.created","id":"x"}"#),
            "event names no ticket"
        );
    }

    #[test]
    fn error_bodies_are_described_in_each_shape() {
        assert_eq!(
            describe_error(r#"{"error":"RecordNotFound","description":"Not found"}"#).as_deref(),
            Some("RecordNotFound: Not found")
        );
        assert_eq!(
            describe_error(r#"{"error":{"title":"Forbidden","message":"You do not have access"}}"#)
                .as_deref(),
            Some("Forbidden: You do not have access")
        );
        assert_eq!(
            describe_error(
                r#"{"error":"RecordInvalid","description":"Record validation errors",
                "details":{"priority":[{"description":"Priority: is not valid","error":"InvalidValue"}]}}"#
            )
            .as_deref(),
            Some("RecordInvalid: Record validation errors: Priority: is not valid")
        );
        assert_eq!(describe_error("<html>busy</html>"), None);
    }

    #[test]
    fn ticket_json_maps_to_the_model() {
        let raw = r#"{"ticket":{"id":35436,"subject":"Printer on fire","description":"It burns",
            "priority":null,"status":"open","external_id":"","updated_at":"2026-11-23T18:40:12Z",
            "custom_fields":[{"id":27642,"value":745},{"id":27648,"value":" CL-9 "},{"id":1,"value":null}]}}"#;
        let ticket: TicketEnvelope = serde_json::from_str(raw).unwrap();
        let model = ticket.ticket.into_model(Some(27642));
        assert_eq!(model.cluster_id.as_deref(), Some("745"));
        assert_eq!(model.priority, None);
        assert_eq!(model.external_id, None);
        assert_eq!(model.updated_at, Some(at(TS)));
        let ticket: TicketEnvelope = serde_json::from_str(raw).unwrap();
        assert_eq!(
            ticket.ticket.into_model(Some(27648)).cluster_id.as_deref(),
            Some("CL-9")
        );
        let ticket: TicketEnvelope = serde_json::from_str(raw).unwrap();
        assert_eq!(ticket.ticket.into_model(Some(1)).cluster_id, None);
    }
}
