//! Zendesk's wire format: the JSON the bridge sends and reads, and Zendesk's
//! error bodies. Only the client (`super`) builds or reads these.
//!
//! Contract (Zendesk Support API v2):
//! - `GET /api/v2/tickets/{id}.json` → `{"ticket":{..,"custom_fields":[{"id","value"}]}}`.
//! - `GET /api/v2/tickets/{id}/comments.json?page[size]=100&include=users` → cursor
//!   pages `{"comments":[..],"users":[..],"meta":{"has_more","after_cursor"},"links":{"next"}}`.
//! - Comments are created through `PUT /api/v2/tickets/{id}.json` with
//!   `{"ticket":{"comment":{"body","public"}}}`; the new comment's id is the id of the
//!   `"Comment"` event in the response's `audit.events`.
//! - Errors: `{"error":"RecordNotFound","description":..}`, `{"error":{"title","message"}}`,
//!   validation failures add `"details":{field:[{"description"}]}`.
//! - `GET /api/v2/incremental/tickets/cursor.json` → `{"tickets":[..],"after_cursor",
//!   "after_url","end_of_stream"}`, up to 1000 tickets a page; admins only.
//! - `GET /api/v2/users/me.json` → `{"user":{"id","name","email","role",..}}`, `role`
//!   one of `end-user`, `agent`, `admin`; an unrecognised caller may be answered
//!   as an anonymous user (`"id":null`).
//! - `GET /api/v2/organizations.json?page[size]=100` → cursor pages
//!   `{"organizations":[{"id","name",..}],"meta":{"has_more","after_cursor"}}`.
//! - `POST /oauth/tokens` (JSON body, authorization code grant) →
//!   `{"access_token","token_type":"bearer","scope"}`; a refused grant is a 4xx
//!   with `{"error":"invalid_grant"|"invalid_client"|..,"error_description"}`.
//!
//! The bridge cuts nothing it sends to Zendesk: comment bodies come from PSA
//! notes, which are shorter than Zendesk's own limits.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::model::{DeskComment, DeskTicket, DeskTicketPatch, Visibility};

/// Largest page the comments endpoint serves.
pub const PAGE_SIZE: &str = "100";
/// Largest page of the incremental ticket export.
pub const EXPORT_PAGE_SIZE: &str = "1000";

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// The body of `PUT /api/v2/tickets/{id}.json` that updates `fields`.
pub(super) fn ticket_update(fields: Value) -> Value {
    json!({ "ticket": fields })
}

/// Ticket fields that set one custom field.
pub(super) fn custom_field(field_id: u64, value: Value) -> Value {
    json!({ "custom_fields": [{ "id": field_id, "value": value }] })
}

/// Ticket fields that add a comment.
pub(super) fn comment(body: &str, visibility: Visibility) -> Value {
    let public = visibility == Visibility::Public;
    json!({ "comment": { "body": body, "public": public } })
}

/// Ticket fields taken from the PSA; only the ones set are sent.
pub(super) fn field_patch(patch: &DeskTicketPatch) -> Value {
    let mut fields = serde_json::Map::new();
    if let Some(subject) = &patch.subject {
        fields.insert("subject".into(), json!(subject));
    }
    if let Some(status) = &patch.status {
        fields.insert("status".into(), json!(status));
    }
    if let Some(priority) = &patch.priority {
        fields.insert("priority".into(), json!(priority));
    }
    Value::Object(fields)
}

/// Ticket fields that set `external_id`.
pub(super) fn external_id(external_id: &str) -> Value {
    json!({ "external_id": external_id })
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// Zendesk's own error message, from any of its error shapes.
pub(super) fn describe_error(body: &str) -> Option<String> {
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
    // The newer APIs (Webhooks) answer `{"errors":[{"code","title","detail"}]}`.
    if let Some(Value::Array(errors)) = value.get("errors") {
        for error in errors.iter().take(5) {
            let text: Vec<&str> = ["title", "detail"]
                .iter()
                .filter_map(|key| error.get(*key).and_then(Value::as_str))
                .collect();
            if !text.is_empty() {
                parts.push(text.join(": "));
            }
        }
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
pub(super) struct TicketEnvelope {
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
    organization_id: Option<u64>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct WireCustomField {
    id: u64,
    #[serde(default)]
    value: Value,
}

impl TicketEnvelope {
    pub(super) fn into_model(self, cluster_id_field: Option<u64>) -> DeskTicket {
        self.ticket.into_model(cluster_id_field)
    }
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
            organization_id: self.organization_id,
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
pub(super) struct CommentPage {
    #[serde(default)]
    pub(super) comments: Vec<WireComment>,
    #[serde(default)]
    pub(super) users: Vec<WireUser>,
    #[serde(default)]
    pub(super) meta: PageMeta,
}

/// A page of `GET /api/v2/organizations.json`.
#[derive(Deserialize)]
pub(super) struct OrganizationPage {
    #[serde(default)]
    pub(super) organizations: Vec<WireOrganization>,
    #[serde(default)]
    pub(super) meta: PageMeta,
}

#[derive(Deserialize)]
pub(super) struct WireOrganization {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) name: Option<String>,
}

/// The answer of `POST /oauth/tokens`.
#[derive(Deserialize)]
pub(super) struct OAuthToken {
    #[serde(default)]
    pub(super) access_token: Option<String>,
}

/// An OAuth error body (RFC 6749 section 5.2, as Zendesk sends it).
#[derive(Deserialize, Default)]
pub(super) struct OAuthErrorBody {
    #[serde(default)]
    pub(super) error: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct PageMeta {
    #[serde(default)]
    pub(super) has_more: bool,
    #[serde(default)]
    pub(super) after_cursor: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireComment {
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

impl WireComment {
    /// The comment, its author named from the `users` sideloaded with the page.
    pub(super) fn into_model(self, names: &HashMap<u64, String>) -> DeskComment {
        DeskComment {
            id: self.id,
            // System comments carry a negative author id; they have no user.
            author_id: u64::try_from(self.author_id).unwrap_or(0),
            author_name: u64::try_from(self.author_id)
                .ok()
                .and_then(|id| names.get(&id).cloned()),
            body: self.body,
            public: self.public,
            created_at: self.created_at,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WireUser {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) name: Option<String>,
}

/// `GET /api/v2/users/me.json`.
#[derive(Deserialize)]
pub(super) struct CurrentUser {
    pub(super) user: WireCurrentUser,
}

#[derive(Deserialize)]
pub(super) struct WireCurrentUser {
    #[serde(default)]
    pub(super) id: Option<u64>,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) email: Option<String>,
    #[serde(default)]
    pub(super) role: Option<String>,
}

/// The role Zendesk needs for the incremental export.
pub(super) const ADMIN_ROLE: &str = "admin";

/// Why the sweep cannot use the export with this user, in an admin's words.
pub(super) fn not_admin_message(email: &str, role: &str) -> String {
    let article = if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!(
        "the Zendesk user {email} is {article} {role}; the incremental export used by the sweep \
         needs an admin. Make that user an admin in Zendesk, or connect the bridge with an \
         admin's API token"
    )
}

/// One page of the incremental ticket export; only what the sweep needs.
#[derive(Deserialize)]
pub(super) struct ExportPage {
    #[serde(default)]
    pub(super) tickets: Vec<ExportTicket>,
    #[serde(default)]
    pub(super) after_cursor: Option<String>,
    #[serde(default)]
    pub(super) end_of_stream: bool,
}

#[derive(Deserialize)]
pub(super) struct ExportTicket {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) status: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct UpdateResponse {
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

impl UpdateResponse {
    /// The id of the comment the update added: the `"Comment"` event's id.
    pub(super) fn comment_id(self) -> Option<u64> {
        self.audit.and_then(|audit| {
            audit
                .events
                .into_iter()
                .find(|event| event.kind == "Comment")
                .and_then(|event| event.id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .with_timezone(&Utc)
    }

    const TS: &str = "2026-11-23T18:40:12Z";

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
            "organization_id":509974,
            "custom_fields":[{"id":27642,"value":745},{"id":27648,"value":" CL-9 "},{"id":1,"value":null}]}}"#;
        let ticket: TicketEnvelope = serde_json::from_str(raw).unwrap();
        let model = ticket.into_model(Some(27642));
        assert_eq!(model.cluster_id.as_deref(), Some("745"));
        assert_eq!(model.organization_id, Some(509974));
        assert_eq!(model.priority, None);
        assert_eq!(model.external_id, None);
        assert_eq!(model.updated_at, Some(at(TS)));
        let ticket: TicketEnvelope = serde_json::from_str(raw).unwrap();
        assert_eq!(
            ticket.into_model(Some(27648)).cluster_id.as_deref(),
            Some("CL-9")
        );
        let ticket: TicketEnvelope = serde_json::from_str(raw).unwrap();
        assert_eq!(ticket.into_model(Some(1)).cluster_id, None);
    }

    #[test]
    fn update_bodies_name_the_zendesk_fields() {
        assert_eq!(
            ticket_update(comment("Hello", Visibility::Internal)),
            json!({"ticket":{"comment":{"body":"Hello","public":false}}})
        );
        assert_eq!(
            ticket_update(custom_field(7, json!("CL-1"))),
            json!({"ticket":{"custom_fields":[{"id":7,"value":"CL-1"}]}})
        );
        assert_eq!(
            ticket_update(external_id("autotask:5")),
            json!({"ticket":{"external_id":"autotask:5"}})
        );
    }

    #[test]
    fn the_not_admin_message_names_user_and_role() {
        assert!(not_admin_message("a@b.example", "agent").starts_with(
            "the Zendesk user a@b.example is an agent; the incremental export used by the sweep needs an admin."
        ));
        assert!(not_admin_message("a@b.example", "light-agent")
            .starts_with("the Zendesk user a@b.example is a light-agent;"));
        let me: CurrentUser = serde_json::from_str(
            r#"{"user":{"id":null,"name":"Anonymous user","role":"end-user","authenticity_token":"x"}}"#,
        )
        .unwrap();
        assert_eq!(me.user.id, None);
        assert_eq!(me.user.role.as_deref(), Some("end-user"));
    }

    #[test]
    fn the_new_comment_id_is_the_comment_events() {
        let response: UpdateResponse = serde_json::from_str(
            r#"{"audit":{"events":[{"id":1,"type":"Change"},{"id":2,"type":"Comment"}]}}"#,
        )
        .unwrap();
        assert_eq!(response.comment_id(), Some(2));
        let response: UpdateResponse = serde_json::from_str(r#"{"ticket":{}}"#).unwrap();
        assert_eq!(response.comment_id(), None);
    }
}
