//! Autotask's wire format (ATServicesRest V1.0): the JSON the bridge sends and
//! reads, Autotask's field limits, and its error bodies. Only the client
//! (`super`) builds or reads these; every value the bridge writes is cut to
//! Autotask's limits here, once.
//!
//! Contract notes that shape this code:
//! - Errors come as `{"errors": ["…"]}` (sometimes with a top-level `message`).
//! - Queries are `{"MaxRecords", "filter", "IncludeFields"}`; answers page by
//!   `pageDetails.nextPageUrl`, up to 500 records per page.
//! - Dates are RFC 3339, sometimes without an offset (always UTC).
//! - Note visibility is the `publish` picklist of TicketNotes: "All Autotask
//!   Users" is the customer-visible state; everything else ("Internal Only",
//!   "Internal Project Team", "Internal & Co-Managed") is internal.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use super::SYSTEM;
use crate::error::ApiError;
use crate::model::{NewPsaNote, NewPsaTicket, PsaNote, PsaTicket, PsaTicketPatch, Visibility};

/// Field limits of the Tickets and TicketNotes entities. Autotask rejects
/// longer values, so they are cut when a request body is built rather than
/// failing the sync forever.
pub const TICKET_TITLE_MAX: usize = 255;
pub const TICKET_DESCRIPTION_MAX: usize = 8000;
pub const NOTE_TITLE_MAX: usize = 250;
pub const NOTE_DESCRIPTION_MAX: usize = 32000;

/// Autotask's maximum page size.
pub const PAGE_SIZE: u32 = 500;

/// The customer-visible `publish` label of ticket notes.
const PUBLIC_PUBLISH_LABEL: &str = "All Autotask Users";

/// The first `max` characters of `text` (never splitting a character).
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

/// A member of an object by name, ignoring ASCII case (Autotask's casing of
/// the same field differs between endpoints).
pub(super) fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// An integer sent as a number or as a numeric string.
pub(super) fn lenient_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// The body of `POST Tickets`.
pub(super) fn create_body(ticket: &NewPsaTicket) -> Value {
    let mut body = json!({
        "companyID": ticket.company_id,
        "title": truncate(&ticket.title, TICKET_TITLE_MAX),
        "description": truncate(&ticket.description, TICKET_DESCRIPTION_MAX),
        "status": ticket.status,
        "priority": ticket.priority,
        "externalID": ticket.external_id,
    });
    if let Some(queue) = ticket.queue_id {
        body["queueID"] = json!(queue);
    }
    body
}

/// The body of `PATCH Tickets`. PATCH leaves omitted fields untouched, so only
/// the set fields are sent.
pub(super) fn patch_body(id: i64, patch: &PsaTicketPatch) -> Value {
    let mut body = json!({ "id": id });
    if let Some(title) = &patch.title {
        body["title"] = json!(truncate(title, TICKET_TITLE_MAX));
    }
    if let Some(status) = patch.status {
        body["status"] = json!(status);
    }
    if let Some(priority) = patch.priority {
        body["priority"] = json!(priority);
    }
    if let Some(company) = patch.company_id {
        body["companyID"] = json!(company);
    }
    body
}

/// The body of `POST Tickets/{id}/Notes`, written the way `settings` say
/// notes are written in this database.
pub(super) fn note_body(ticket_id: i64, note: &NewPsaNote, settings: &NoteSettings) -> Value {
    let description = truncate(&note.description, NOTE_DESCRIPTION_MAX);
    json!({
        "ticketID": ticket_id,
        "title": note_title(&note.title, &description),
        "description": description,
        "noteType": settings.note_type,
        "publish": settings.publish_for(note.visibility),
    })
}

/// The title is cut to the field limit first and then loses its surrounding
/// blanks (a marker the bridge puts at its start survives). Some ticket
/// categories require note titles; without one, the first line of the body
/// is the least surprising stand-in.
fn note_title(title: &str, description: &str) -> String {
    let title = truncate(title, NOTE_TITLE_MAX);
    let title = title.trim();
    if !title.is_empty() {
        return title.to_owned();
    }
    let first_line = description
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("Note")
        .trim();
    truncate(first_line, NOTE_TITLE_MAX)
}

/// An entity query: the first `max_records` records matching `filter`.
pub(super) fn query(max_records: u32, filter: Value) -> Value {
    json!({ "MaxRecords": max_records, "filter": filter })
}

/// The filter of one field equal to `value`.
pub(super) fn eq_filter(field: &str, value: &str) -> Value {
    json!([{ "op": "eq", "field": field, "value": value }])
}

/// The query of tickets with activity after `since`, reading only their ids
/// and activity dates so that a page of 500 stays small.
pub(super) fn changed_since_query(since: DateTime<Utc>) -> Value {
    json!({
        "MaxRecords": PAGE_SIZE,
        // Autotask requires the id among the fields once results span pages.
        "IncludeFields": ["id", "lastActivityDate"],
        "filter": [{
            "op": "gt",
            "field": "lastActivityDate",
            "value": since.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        }],
    })
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// Autotask's own message: `errors[]` joined, plus a top-level `message` if any.
pub(super) fn describe(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let mut parts = Vec::new();
    if let Some(message) = get_ci(value.as_object()?, "message").and_then(Value::as_str) {
        parts.push(message.trim().to_owned());
    }
    if let Some(errors) = get_ci(value.as_object()?, "errors").and_then(Value::as_array) {
        for error in errors {
            let text = match error {
                Value::String(s) => s.trim().to_owned(),
                Value::Object(o) => get_ci(o, "message")
                    .and_then(Value::as_str)
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|| error.to_string()),
                other => other.to_string(),
            };
            if !text.is_empty() {
                parts.push(text);
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The answer of the zone lookup service.
#[derive(Deserialize)]
pub(super) struct ZoneInfo {
    pub(super) url: Option<String>,
    #[serde(rename = "zoneName")]
    pub(super) zone_name: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub(super) items: Vec<T>,
    #[serde(rename = "pageDetails", default)]
    page_details: Option<PageDetails>,
}

impl<T> Page<T> {
    pub(super) fn next_page_url(&self) -> Option<String> {
        self.page_details
            .as_ref()
            .and_then(|d| d.next_page_url.clone())
            .filter(|url| !url.trim().is_empty())
    }
}

#[derive(Deserialize)]
struct PageDetails {
    #[serde(rename = "nextPageUrl", default)]
    next_page_url: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ItemResult<T> {
    pub(super) item: Option<T>,
}

#[derive(Deserialize)]
pub(super) struct CreateResult {
    #[serde(rename = "itemId")]
    pub(super) item_id: i64,
}

#[derive(Deserialize)]
pub(super) struct WireTicket {
    pub(super) id: i64,
    #[serde(rename = "ticketNumber", default)]
    ticket_number: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<i64>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(rename = "companyID", default)]
    company_id: Option<i64>,
    #[serde(rename = "queueID", default)]
    queue_id: Option<i64>,
    #[serde(rename = "externalID", default)]
    external_id: Option<String>,
    #[serde(
        rename = "lastActivityDate",
        default,
        deserialize_with = "lenient_time"
    )]
    last_activity_date: Option<DateTime<Utc>>,
}

impl WireTicket {
    pub(super) fn into_model(self) -> Result<PsaTicket, ApiError> {
        let missing = |field: &str| ApiError::Malformed {
            system: SYSTEM,
            message: format!("ticket {} has no {field}", self.id),
        };
        Ok(PsaTicket {
            id: self.id,
            status: self.status.ok_or_else(|| missing("status"))?,
            priority: self.priority.ok_or_else(|| missing("priority"))?,
            company_id: self.company_id.ok_or_else(|| missing("companyID"))?,
            ticket_number: self.ticket_number,
            title: self.title.unwrap_or_default(),
            description: self.description,
            queue_id: self.queue_id,
            external_id: self.external_id.filter(|e| !e.is_empty()),
            last_activity: self.last_activity_date,
        })
    }
}

#[derive(Deserialize)]
pub(super) struct WireNote {
    id: i64,
    #[serde(rename = "ticketID", default)]
    ticket_id: Option<i64>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    publish: Option<i64>,
    #[serde(rename = "creatorResourceID", default)]
    creator_resource_id: Option<i64>,
    #[serde(rename = "createDateTime", default, deserialize_with = "lenient_time")]
    create_date_time: Option<DateTime<Utc>>,
}

impl WireNote {
    /// The note, read with the `publish` values of this database; a note
    /// without its ticket id belongs to `ticket_id`, the ticket it was read from.
    pub(super) fn into_model(self, ticket_id: i64, settings: &NoteSettings) -> PsaNote {
        PsaNote {
            id: self.id,
            ticket_id: self.ticket_id.unwrap_or(ticket_id),
            title: self.title.filter(|t| !t.is_empty()),
            description: self.description.unwrap_or_default(),
            visibility: settings.visibility(self.publish),
            creator_resource_id: self.creator_resource_id,
            creator_name: None,
            created_at: self.create_date_time,
        }
    }
}

/// A ticket of a change query: only what `changed_since_query` asks for.
#[derive(Deserialize)]
pub(super) struct ChangedTicket {
    id: i64,
    #[serde(
        rename = "lastActivityDate",
        default,
        deserialize_with = "lenient_time"
    )]
    last_activity_date: Option<DateTime<Utc>>,
}

impl ChangedTicket {
    /// The ticket id and when it last changed.
    pub(super) fn into_change(self) -> Result<(i64, DateTime<Utc>), ApiError> {
        let at = self.last_activity_date.ok_or_else(|| ApiError::Malformed {
            system: SYSTEM,
            message: format!("changed ticket {} has no lastActivityDate", self.id),
        })?;
        Ok((self.id, at))
    }
}

#[derive(Deserialize)]
pub(super) struct WireConfigurationItem {
    pub(super) id: i64,
    #[serde(rename = "companyID", default)]
    pub(super) company_id: Option<i64>,
    #[serde(rename = "isActive", default)]
    pub(super) is_active: Option<bool>,
}

/// The answer of `{entity}/entityInformation/fields`.
#[derive(Deserialize)]
pub(super) struct FieldList {
    #[serde(default)]
    pub(super) fields: Vec<FieldInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FieldInfo {
    name: String,
    #[serde(default)]
    is_pick_list: bool,
    #[serde(default)]
    picklist_values: Option<Vec<WirePicklistValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WirePicklistValue {
    /// A string ("1") in the live API, a number in some older answers.
    value: Value,
    #[serde(default)]
    pub(super) label: String,
    #[serde(default = "yes")]
    pub(super) is_active: bool,
    #[serde(default)]
    is_default_value: bool,
}

fn yes() -> bool {
    true
}

impl WirePicklistValue {
    pub(super) fn numeric(&self) -> Option<i64> {
        lenient_i64(&self.value)
    }
}

pub(super) fn picklist_of<'a>(
    fields: &'a [FieldInfo],
    name: &str,
) -> Option<&'a [WirePicklistValue]> {
    fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name) && f.is_pick_list)
        .and_then(|f| f.picklist_values.as_deref())
}

/// Autotask dates come as RFC 3339 with fractions, sometimes without an offset
/// (always UTC). An unreadable date is dropped rather than failing the record.
fn lenient_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    Ok(raw.and_then(|s| parse_time(&s)))
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// How notes are written and read in this database, from the TicketNotes picklists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NoteSettings {
    /// `publish` values that customers can see.
    public_values: Vec<i64>,
    public_value: i64,
    internal_value: i64,
    note_type: i64,
}

impl NoteSettings {
    /// Falls back to Autotask's shipped values (1 "All Autotask Users",
    /// 2 "Internal Only", note type 1 "Task Summary") when a picklist is absent.
    pub(super) fn from_fields(fields: &[FieldInfo]) -> Self {
        let publish = picklist_of(fields, "publish").unwrap_or_default();
        let public_values: Vec<i64> = publish
            .iter()
            .filter(|v| v.label.trim().eq_ignore_ascii_case(PUBLIC_PUBLISH_LABEL))
            .filter_map(WirePicklistValue::numeric)
            .collect();
        let public_values = if public_values.is_empty() {
            vec![1]
        } else {
            public_values
        };
        let internal_value = publish
            .iter()
            .filter(|v| v.is_active)
            .find(|v| v.label.trim().eq_ignore_ascii_case("Internal Only"))
            .or_else(|| {
                publish.iter().filter(|v| v.is_active).find(|v| {
                    let label = v.label.to_ascii_lowercase();
                    label.starts_with("internal") && !label.contains("co-managed")
                })
            })
            .and_then(WirePicklistValue::numeric)
            .unwrap_or(2);
        let note_types = picklist_of(fields, "noteType").unwrap_or_default();
        let note_type = note_types
            .iter()
            .find(|v| v.is_active && v.is_default_value)
            .or_else(|| {
                note_types
                    .iter()
                    .find(|v| v.is_active && v.label.eq_ignore_ascii_case("Task Summary"))
            })
            .and_then(WirePicklistValue::numeric)
            .unwrap_or(1);
        Self {
            public_value: public_values[0],
            public_values,
            internal_value,
            note_type,
        }
    }

    /// Unknown publish values read as internal: showing an internal note to a
    /// customer is the failure that must never happen.
    fn visibility(&self, publish: Option<i64>) -> Visibility {
        match publish {
            Some(p) if self.public_values.contains(&p) => Visibility::Public,
            _ => Visibility::Internal,
        }
    }

    fn publish_for(&self, visibility: Visibility) -> i64 {
        match visibility {
            Visibility::Public => self.public_value,
            Visibility::Internal => self.internal_value,
        }
    }
}

/// The fields of a `Resources` entity the bridge reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireResource {
    first_name: Option<String>,
    last_name: Option<String>,
}

impl WireResource {
    pub(super) fn display_name(self) -> Option<String> {
        let name = [self.first_name, self.last_name]
            .into_iter()
            .flatten()
            .map(|part| part.trim().to_owned())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (!name.is_empty()).then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_bodies_carry_only_the_set_fields() {
        let body = patch_body(
            7,
            &PsaTicketPatch {
                status: Some(8),
                ..Default::default()
            },
        );
        assert_eq!(body, json!({ "id": 7, "status": 8 }));
        let body = patch_body(
            7,
            &PsaTicketPatch {
                title: Some("x".repeat(300)),
                priority: Some(1),
                company_id: Some(3),
                status: None,
            },
        );
        let object = body.as_object().unwrap();
        assert_eq!(object.len(), 4);
        assert_eq!(
            object["title"].as_str().unwrap().chars().count(),
            TICKET_TITLE_MAX
        );
        assert_eq!(object["companyID"], 3);
        assert!(!object.contains_key("status"));
    }

    #[test]
    fn create_body_names_the_autotask_fields() {
        let body = create_body(&NewPsaTicket {
            title: "Printer".into(),
            description: "It is on fire".into(),
            status: 1,
            priority: 2,
            company_id: 174,
            queue_id: None,
            external_id: "zd:42".into(),
        });
        assert_eq!(
            body,
            json!({"companyID":174,"title":"Printer","description":"It is on fire","status":1,"priority":2,"externalID":"zd:42"})
        );
    }

    fn fields(json: Value) -> Vec<FieldInfo> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn note_settings_follow_the_publish_picklist_and_default_to_internal() {
        let settings = NoteSettings::from_fields(&fields(json!([
            {"name":"publish","isPickList":true,"picklistValues":[
                {"value":"1","label":"All Autotask Users","isActive":true},
                {"value":"2","label":"Internal Project Team","isActive":true},
                {"value":"4","label":"Internal & Co-Managed","isActive":true}]},
            {"name":"noteType","isPickList":true,"picklistValues":[
                {"value":"13","label":"Workflow Rule Note","isActive":true},
                {"value":"3","label":"Task Notes","isActive":true,"isDefaultValue":true}]}
        ])));
        assert_eq!(settings.publish_for(Visibility::Public), 1);
        assert_eq!(settings.publish_for(Visibility::Internal), 2);
        assert_eq!(settings.note_type, 3);
        assert_eq!(settings.visibility(Some(1)), Visibility::Public);
        assert_eq!(settings.visibility(Some(4)), Visibility::Internal);
        assert_eq!(settings.visibility(Some(77)), Visibility::Internal);
        assert_eq!(settings.visibility(None), Visibility::Internal);

        let fallback = NoteSettings::from_fields(&[]);
        assert_eq!(
            (
                fallback.public_value,
                fallback.internal_value,
                fallback.note_type
            ),
            (1, 2, 1)
        );
    }

    #[test]
    fn picklist_values_read_strings_and_numbers() {
        let parsed = fields(json!([{"name":"status","isPickList":true,"picklistValues":[
            {"value":"5","label":"Complete","isActive":true},
            {"value":8,"label":"In Progress"},
            {"value":"x","label":"Broken"}]}]));
        let values: Vec<Option<i64>> = picklist_of(&parsed, "STATUS")
            .unwrap()
            .iter()
            .map(|v| v.numeric())
            .collect();
        assert_eq!(values, vec![Some(5), Some(8), None]);
        assert!(picklist_of(&parsed, "priority").is_none());
    }

    #[test]
    fn autotask_times_parse_with_and_without_offsets() {
        assert!(parse_time("2018-01-23T11:00:00.00Z").is_some());
        assert_eq!(
            parse_time("2018-01-23T11:00:00.5"),
            parse_time("2018-01-23T11:00:00.5Z")
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn empty_note_titles_fall_back_to_the_first_line() {
        assert_eq!(note_title("  ", "\n  First line\nsecond"), "First line");
        assert_eq!(note_title("", " \n "), "Note");
    }

    fn settings() -> NoteSettings {
        NoteSettings::from_fields(&[])
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hi", 5), "hi");
        assert_eq!(truncate("", 0), "");
        assert_eq!(truncate("ü".repeat(3).as_str(), 3), "üüü");
    }

    #[test]
    fn ticket_titles_and_descriptions_are_cut_to_autotask_limits() {
        let body = create_body(&NewPsaTicket {
            title: "é".repeat(TICKET_TITLE_MAX + 10),
            description: "ü".repeat(TICKET_DESCRIPTION_MAX + 1),
            status: 1,
            priority: 2,
            company_id: 3,
            queue_id: Some(4),
            external_id: "zd:1".into(),
        });
        assert_eq!(body["title"], json!("é".repeat(TICKET_TITLE_MAX)));
        assert_eq!(
            body["description"],
            json!("ü".repeat(TICKET_DESCRIPTION_MAX))
        );
        assert_eq!(body["queueID"], 4);
        let patch = patch_body(
            7,
            &PsaTicketPatch {
                title: Some("a".repeat(TICKET_TITLE_MAX)),
                ..Default::default()
            },
        );
        assert_eq!(patch["title"], json!("a".repeat(TICKET_TITLE_MAX)));
    }

    #[test]
    fn note_bodies_are_cut_to_autotask_limits_and_keep_the_marker() {
        let title = format!("Zendesk comment #42 by {}", "Ö".repeat(400));
        let note = NewPsaNote {
            title: title.clone(),
            description: "ß".repeat(NOTE_DESCRIPTION_MAX + 5),
            visibility: Visibility::Public,
        };
        let body = note_body(9, &note, &settings());
        let sent = body["title"].as_str().unwrap();
        assert_eq!(sent.chars().count(), NOTE_TITLE_MAX);
        assert!(sent.starts_with("Zendesk comment #42 by "));
        assert!(title.starts_with(sent));
        assert_eq!(body["description"], json!("ß".repeat(NOTE_DESCRIPTION_MAX)));
        assert_eq!(body["ticketID"], 9);
        assert_eq!(body["publish"], 1);
        assert_eq!(body["noteType"], 1);

        // Short values go out as they are.
        let short = NewPsaNote {
            title: "Zendesk comment #1 by Ann".into(),
            description: "Hello".into(),
            visibility: Visibility::Internal,
        };
        assert_eq!(
            note_body(9, &short, &settings()),
            json!({"ticketID":9,"title":"Zendesk comment #1 by Ann","description":"Hello","noteType":1,"publish":2})
        );
    }

    #[test]
    fn note_titles_are_cut_before_their_blanks_are_dropped() {
        // Cut at the limit, then trimmed: a blank at the cut goes too.
        let title = format!("{} tail", "x".repeat(NOTE_TITLE_MAX - 1));
        assert_eq!(note_title(&title, ""), "x".repeat(NOTE_TITLE_MAX - 1));
    }
}
