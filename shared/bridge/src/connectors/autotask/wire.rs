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
//! - Note visibility is the `publish` picklist of TicketNotes (real tenants:
//!   1 "All Autotask Users", 2 "Internal Project Team", 4 "Internal &
//!   Co-Managed"; no "Internal Only"). Which values are customer-visible is
//!   the tenant's setting (`autotask.public_note_publish`, by default only
//!   "All Autotask Users"); every other or unknown value reads as internal.
//!   Values are looked up by label in the live picklist, never assumed.
//! - Which ticket fields a create needs is the tenant's business: the
//!   required ones are read from `Tickets/entityInformation/fields`
//!   (`isRequired`) and filled from the tenant's settings
//!   (`autotask.queue_id`, `autotask.ticket_defaults`).
//!
//! Longer than 800 lines only with its unit tests (limits, note publish
//! values, required fields), kept beside the code they check.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use super::SYSTEM;
use crate::config::FieldValue;
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

/// The body of `POST Tickets`: the ticket, plus `extra` fields (the
/// tenant's defaults, resolved by [`extra_ticket_fields`]).
pub(super) fn create_body(ticket: &NewPsaTicket, extra: &Map<String, Value>) -> Value {
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
    if let Some(device) = ticket.configuration_item_id {
        body["configurationItemID"] = json!(device);
    }
    for (name, value) in extra {
        body[name.as_str()] = value.clone();
    }
    body
}

/// Ticket fields the bridge fills itself on create, and where each comes
/// from (for the message when one is misplaced in `ticket_defaults`).
const BRIDGE_TICKET_FIELDS: &[(&str, &str)] = &[
    ("id", "Autotask"),
    ("title", "the Zendesk subject"),
    (
        "description",
        "the Zendesk description (fields.description)",
    ),
    ("status", "mappings.initial_status"),
    ("priority", "the Zendesk priority and mappings.priority"),
    ("companyID", "the cluster id or autotask.default_company_id"),
    ("externalID", "the Zendesk ticket id"),
    ("queueID", "autotask.queue_id"),
];

/// The fields of a new ticket beyond what the bridge fills itself: the
/// tenant's `ticket_defaults` resolved against the live field descriptions
/// (picklist labels to their values), after checking that every field
/// Autotask requires (`isRequired`, writable) has a value. Every problem is
/// returned, each in plain words naming the setting that fixes it.
pub(super) fn extra_ticket_fields(
    fields: &[FieldInfo],
    ticket: &NewPsaTicket,
    defaults: &BTreeMap<String, FieldValue>,
) -> Result<Map<String, Value>, Vec<String>> {
    let mut problems = Vec::new();
    let mut extra = Map::new();
    for (key, value) in defaults {
        let setting = format!("autotask.ticket_defaults.{key}");
        if let Some((name, source)) = BRIDGE_TICKET_FIELDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
        {
            problems.push(format!(
                "{setting}: the bridge sets the ticket field {name} itself (from {source}); remove it"
            ));
            continue;
        }
        let Some(field) = fields.iter().find(|f| f.name.eq_ignore_ascii_case(key)) else {
            problems.push(format!("{setting}: Autotask tickets have no field {key:?}"));
            continue;
        };
        if field.is_read_only {
            problems.push(format!(
                "{setting}: the ticket field {} is read-only",
                field.name
            ));
            continue;
        }
        match field_value(field, value) {
            Ok(resolved) => {
                extra.insert(field.name.clone(), resolved);
            }
            Err(why) => problems.push(format!("{setting} = {value}: {why}")),
        }
    }
    for field in fields.iter().filter(|f| f.is_required && !f.is_read_only) {
        let name = field.name.as_str();
        let has_value = match name.to_ascii_lowercase().as_str() {
            "title" | "status" | "priority" | "companyid" | "externalid" => true,
            "description" => !ticket.description.trim().is_empty(),
            "queueid" => ticket.queue_id.is_some(),
            _ => extra.contains_key(name),
        };
        if has_value {
            continue;
        }
        if !extra.contains_key(name)
            && !defaults.keys().any(|k| k.eq_ignore_ascii_case(name))
            && matches!(
                field.data_type.to_ascii_lowercase().as_str(),
                "datetime" | "date"
            )
        {
            // A date (a due date, say) cannot be one fixed setting; whether
            // Autotask fills it itself is unverified, so the create is sent
            // and a refusal comes back in Autotask's own words.
            tracing::warn!(
                field = name,
                "Autotask lists a required date field the settings cannot fill; creating without it"
            );
            continue;
        }
        problems.push(match name.to_ascii_lowercase().as_str() {
            "queueid" => "Autotask requires the ticket field queueID on new tickets and the tenant sets no queue: set autotask.queue_id".to_owned(),
            "description" => "Autotask requires a description on new tickets and this ticket has none (the Zendesk ticket has no description, or fields.description is off)".to_owned(),
            _ => format!(
                "Autotask requires the ticket field {name} on new tickets and the tenant gives it no value: add autotask.ticket_defaults.{name}{}",
                value_hint(field)
            ),
        });
    }
    let has = |name: &str| defaults.keys().any(|k| k.eq_ignore_ascii_case(name));
    if has("assignedResourceID") != has("assignedResourceRoleID") {
        problems.push("autotask.ticket_defaults: Autotask assigns a resource only together with a role; give both assignedResourceID and assignedResourceRoleID, or neither".to_owned());
    }
    if problems.is_empty() {
        Ok(extra)
    } else {
        Err(problems)
    }
}

/// `value` as `field` takes it: a picklist label or number resolved to an
/// active picklist value, a number for an integer field, anything else as given.
fn field_value(field: &FieldInfo, value: &FieldValue) -> Result<Value, String> {
    if field.is_pick_list {
        let values = field.picklist_values.as_deref().unwrap_or_default();
        return match find_pick(values, value) {
            Some(pick) if pick.is_active => Ok(json!(pick.numeric())),
            Some(pick) => Err(format!(
                "\"{}\" is inactive in the {} picklist{}",
                pick.label,
                field.name,
                active_values(values)
            )),
            None => Err(format!(
                "not a value of the {} picklist{}",
                field.name,
                active_values(values)
            )),
        };
    }
    let integer = matches!(
        field.data_type.to_ascii_lowercase().as_str(),
        "integer" | "long" | "short" | "byte"
    );
    match value {
        FieldValue::Number(n) => Ok(json!(n)),
        FieldValue::Text(text) if integer => text
            .trim()
            .parse::<i64>()
            .map(|n| json!(n))
            .map_err(|_| format!("the ticket field {} takes a number", field.name)),
        FieldValue::Text(text) => Ok(json!(text)),
    }
}

/// The picklist value a setting names: by number, or by label (any case).
pub(super) fn find_pick<'a>(
    values: &'a [WirePicklistValue],
    wanted: &FieldValue,
) -> Option<&'a WirePicklistValue> {
    match wanted {
        FieldValue::Number(n) => values.iter().find(|v| v.numeric() == Some(*n)),
        FieldValue::Text(text) => {
            let text = text.trim();
            values
                .iter()
                .find(|v| v.label.trim().eq_ignore_ascii_case(text))
                .or_else(|| {
                    let n: i64 = text.parse().ok()?;
                    values.iter().find(|v| v.numeric() == Some(n))
                })
        }
    }
}

/// "Label (n), …" listing a picklist's active values, for messages.
fn active_list(values: &[WirePicklistValue]) -> Option<String> {
    const SHOWN: usize = 12;
    let active: Vec<String> = values
        .iter()
        .filter(|v| v.is_active)
        .filter_map(|v| Some(format!("{} ({})", v.label.trim(), v.numeric()?)))
        .collect();
    if active.is_empty() {
        return None;
    }
    let more = if active.len() > SHOWN { ", …" } else { "" };
    Some(format!(
        "{}{more}",
        active[..active.len().min(SHOWN)].join(", ")
    ))
}

/// " (one of: Label (n), …)", or nothing for an empty picklist.
fn active_values(values: &[WirePicklistValue]) -> String {
    active_list(values)
        .map(|list| format!(" (one of: {list})"))
        .unwrap_or_default()
}

/// What to write after `autotask.ticket_defaults.<field>` in a message.
fn value_hint(field: &FieldInfo) -> String {
    if field.is_pick_list {
        match active_list(field.picklist_values.as_deref().unwrap_or_default()) {
            Some(list) => format!(" (a picklist label or number, one of: {list})"),
            None => " (a value of its picklist)".to_owned(),
        }
    } else if field.is_reference {
        format!(
            " (the id of a {})",
            if field.reference_entity_type.is_empty() {
                "referenced record"
            } else {
                field.reference_entity_type.as_str()
            }
        )
    } else {
        String::new()
    }
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
    if let Some(device) = patch.configuration_item_id {
        body["configurationItemID"] = json!(device);
    }
    body
}

/// The body of `POST Tickets/{id}/Notes`, written the way `settings` say
/// notes are written in this database; fails (before anything is sent) when
/// the tenant's publish setting names no value of the live picklist.
pub(super) fn note_body(
    ticket_id: i64,
    note: &NewPsaNote,
    settings: &NoteSettings,
) -> Result<Value, ApiError> {
    let publish = settings.publish_for(note.visibility)?;
    let description = truncate(&note.description, NOTE_DESCRIPTION_MAX);
    Ok(json!({
        "ticketID": ticket_id,
        "title": note_title(&note.title, &description),
        "description": description,
        "noteType": settings.note_type,
        "publish": publish,
    }))
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

/// A company as the setup pickers read it.
#[derive(Deserialize)]
pub(super) struct WireCompany {
    pub(super) id: i64,
    #[serde(rename = "companyName", default)]
    pub(super) company_name: Option<String>,
}

/// The query of active companies, reading only their ids and names.
pub(super) fn active_companies_query() -> Value {
    json!({
        "MaxRecords": PAGE_SIZE,
        "IncludeFields": ["id", "companyName"],
        "filter": [{ "op": "eq", "field": "isActive", "value": true }],
    })
}

/// The smallest authenticated query: one company id.
pub(super) fn probe_query() -> Value {
    json!({
        "MaxRecords": 1,
        "IncludeFields": ["id"],
        "filter": [{ "op": "gt", "field": "id", "value": 0 }],
    })
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
    data_type: String,
    #[serde(default)]
    is_required: bool,
    #[serde(default)]
    is_read_only: bool,
    #[serde(default)]
    is_reference: bool,
    #[serde(default, deserialize_with = "null_as_empty")]
    reference_entity_type: String,
    #[serde(default)]
    is_pick_list: bool,
    #[serde(default)]
    picklist_values: Option<Vec<WirePicklistValue>>,
    /// Longest value a string field keeps; 0 or absent when not stated.
    #[serde(default)]
    length: Option<i64>,
}

impl FieldInfo {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// How many characters the field keeps, when Autotask says.
    pub(super) fn max_chars(&self) -> Option<usize> {
        self.length
            .filter(|n| *n > 0)
            .and_then(|n| usize::try_from(n).ok())
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
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

/// The tenant's note visibility settings (`autotask.public_note_publish`,
/// `autotask.internal_note_publish`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NotePublish {
    pub(super) public: Vec<FieldValue>,
    pub(super) internal: FieldValue,
}

impl Default for NotePublish {
    fn default() -> Self {
        let defaults = crate::config::AutotaskSettings::note_publish_defaults();
        Self {
            public: defaults.0,
            internal: defaults.1,
        }
    }
}

/// How notes are written and read in this database: the TicketNotes
/// picklists as they are, read through the tenant's publish settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NoteSettings {
    /// `publish` values that customers can see.
    public_values: Vec<i64>,
    /// What a public note is written with, or why none can be.
    public_value: Result<i64, String>,
    /// What an internal note is written with, or why none can be.
    internal_value: Result<i64, String>,
    note_type: i64,
}

impl NoteSettings {
    /// Resolves the tenant's settings against the `publish` picklist by label
    /// (or number). A public value that resolves to nothing makes nothing
    /// public; a setting that cannot be written is reported when a note of
    /// that visibility is written, naming the setting.
    pub(super) fn from_fields(fields: &[FieldInfo], publish: &NotePublish) -> Self {
        let picklist = picklist_of(fields, "publish").unwrap_or_default();
        let listed = active_values(picklist);
        let mut public_values: Vec<i64> = Vec::new();
        for wanted in &publish.public {
            let value = find_pick(picklist, wanted)
                .and_then(WirePicklistValue::numeric)
                .or(match wanted {
                    // A number is the admin's word even if the picklist is silent.
                    FieldValue::Number(n) => Some(*n),
                    FieldValue::Text(_) => None,
                });
            match value {
                Some(value) if !public_values.contains(&value) => public_values.push(value),
                Some(_) => {}
                None => tracing::warn!(
                    value = %wanted,
                    "autotask.public_note_publish names no value of the TicketNotes publish picklist"
                ),
            }
        }
        let public_value = publish
            .public
            .iter()
            .find_map(|wanted| find_pick(picklist, wanted).filter(|v| v.is_active))
            .and_then(WirePicklistValue::numeric)
            .ok_or_else(|| {
                let names: Vec<String> = publish.public.iter().map(ToString::to_string).collect();
                format!(
                    "autotask.public_note_publish ({}) names no active value of the TicketNotes publish picklist{listed}",
                    names.join(", ")
                )
            });
        let internal_value = match find_pick(picklist, &publish.internal)
            .filter(|v| v.is_active)
            .and_then(WirePicklistValue::numeric)
        {
            Some(value) if public_values.contains(&value) => Err(format!(
                "autotask.internal_note_publish = {} is a value autotask.public_note_publish makes customer-visible; name an internal one",
                publish.internal
            )),
            Some(value) => Ok(value),
            None => Err(format!(
                "autotask.internal_note_publish = {} is not an active value of the TicketNotes publish picklist{listed}",
                publish.internal
            )),
        };
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
            public_values,
            public_value,
            internal_value,
            note_type,
        }
    }

    /// Public only when the tenant maps the value public: unknown and
    /// internal values read as internal, since showing an internal note to a
    /// customer is the failure that must never happen.
    pub(super) fn visibility(&self, publish: Option<i64>) -> Visibility {
        match publish {
            Some(p) if self.public_values.contains(&p) => Visibility::Public,
            _ => Visibility::Internal,
        }
    }

    fn publish_for(&self, visibility: Visibility) -> Result<i64, ApiError> {
        let value = match visibility {
            Visibility::Public => &self.public_value,
            Visibility::Internal => &self.internal_value,
        };
        value.clone().map_err(|message| ApiError::Rejected {
            system: SYSTEM,
            status: 0,
            message: format!("note not sent: {message}"),
        })
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
                configuration_item_id: None,
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
        let body = create_body(
            &NewPsaTicket {
                title: "Printer".into(),
                description: "It is on fire".into(),
                status: 1,
                priority: 2,
                company_id: 174,
                queue_id: None,
                external_id: "zd:42".into(),
                configuration_item_id: None,
            },
            &Map::new(),
        );
        assert_eq!(
            body,
            json!({"companyID":174,"title":"Printer","description":"It is on fire","status":1,"priority":2,"externalID":"zd:42"})
        );
    }

    fn fields(json: Value) -> Vec<FieldInfo> {
        serde_json::from_value(json).unwrap()
    }

    /// TicketNotes fields as a real tenant describes them.
    fn note_fields() -> Vec<FieldInfo> {
        fields(json!([
            {"name":"publish","isPickList":true,"picklistValues":[
                {"value":"1","label":"All Autotask Users","isActive":true},
                {"value":"2","label":"Internal Project Team","isActive":true},
                {"value":"4","label":"Internal & Co-Managed","isActive":true}]},
            {"name":"noteType","isPickList":true,"picklistValues":[
                {"value":"13","label":"Workflow Rule Note","isActive":true},
                {"value":"3","label":"Task Notes","isActive":true,"isDefaultValue":true}]}
        ]))
    }

    fn text(value: &str) -> FieldValue {
        FieldValue::Text(value.to_owned())
    }

    #[test]
    fn note_settings_follow_the_publish_picklist_and_default_to_internal() {
        let settings = NoteSettings::from_fields(&note_fields(), &NotePublish::default());
        assert_eq!(settings.publish_for(Visibility::Public).unwrap(), 1);
        assert_eq!(settings.publish_for(Visibility::Internal).unwrap(), 2);
        assert_eq!(settings.note_type, 3);
        assert_eq!(settings.visibility(Some(1)), Visibility::Public);
        assert_eq!(settings.visibility(Some(2)), Visibility::Internal);
        assert_eq!(settings.visibility(Some(4)), Visibility::Internal);
        assert_eq!(settings.visibility(Some(77)), Visibility::Internal);
        assert_eq!(settings.visibility(None), Visibility::Internal);
    }

    #[test]
    fn a_tenant_can_make_another_publish_value_public_and_pick_its_internal_one() {
        let settings = NoteSettings::from_fields(
            &note_fields(),
            &NotePublish {
                public: vec![text("all autotask users"), text("Internal & Co-Managed")],
                internal: text("Internal Project Team"),
            },
        );
        assert_eq!(settings.visibility(Some(4)), Visibility::Public);
        assert_eq!(settings.visibility(Some(2)), Visibility::Internal);
        assert_eq!(settings.publish_for(Visibility::Public).unwrap(), 1);

        // Numbers work too, and the value comes from the picklist's label.
        let renumbered = fields(
            json!([{"name":"publish","isPickList":true,"picklistValues":[
            {"value":"7","label":"All Autotask Users","isActive":true},
            {"value":"9","label":"Internal Project Team","isActive":true}]}]),
        );
        let settings = NoteSettings::from_fields(&renumbered, &NotePublish::default());
        assert_eq!(settings.publish_for(Visibility::Public).unwrap(), 7);
        assert_eq!(settings.publish_for(Visibility::Internal).unwrap(), 9);
        assert_eq!(settings.visibility(Some(1)), Visibility::Internal);
        let settings = NoteSettings::from_fields(
            &note_fields(),
            &NotePublish {
                public: vec![FieldValue::Number(1)],
                internal: FieldValue::Number(4),
            },
        );
        assert_eq!(settings.publish_for(Visibility::Internal).unwrap(), 4);
    }

    #[test]
    fn publish_settings_the_picklist_cannot_honour_fail_naming_the_setting() {
        // An "Internal Only" that this database does not have.
        let settings = NoteSettings::from_fields(
            &note_fields(),
            &NotePublish {
                public: NotePublish::default().public,
                internal: text("Internal Only"),
            },
        );
        let err = settings.publish_for(Visibility::Internal).unwrap_err();
        assert!(!err.is_retryable());
        let message = err.to_string();
        assert!(
            message.contains("autotask.internal_note_publish")
                && message.contains("Internal & Co-Managed (4)"),
            "{message}"
        );
        assert_eq!(settings.publish_for(Visibility::Public).unwrap(), 1);

        // An internal value the tenant also calls public would leak.
        let settings = NoteSettings::from_fields(
            &note_fields(),
            &NotePublish {
                public: vec![text("All Autotask Users"), text("Internal Project Team")],
                internal: text("Internal Project Team"),
            },
        );
        let message = settings
            .publish_for(Visibility::Internal)
            .unwrap_err()
            .to_string();
        assert!(message.contains("customer-visible"), "{message}");

        // Without a publish picklist nothing is public and nothing is written.
        let bare = NoteSettings::from_fields(&[], &NotePublish::default());
        assert_eq!(bare.visibility(Some(1)), Visibility::Internal);
        assert!(bare.publish_for(Visibility::Public).is_err());
        assert!(bare.publish_for(Visibility::Internal).is_err());
        assert_eq!(bare.note_type, 1);
    }

    /// Tickets fields with `required` ones beyond the usual four.
    fn ticket_fields(required: &[&str]) -> Vec<FieldInfo> {
        let field = |name: &str, data_type: &str, read_only: bool, picks: Value| {
            let is_required = ["id", "title", "status", "priority", "companyID"].contains(&name)
                || required.contains(&name);
            let is_reference = name.ends_with("ID") && picks.is_null();
            json!({"name": name, "dataType": data_type, "isRequired": is_required,
                "isReadOnly": read_only, "isPickList": !picks.is_null(), "picklistValues": picks,
                "isReference": is_reference, "referenceEntityType": null})
        };
        fields(json!([
            field("id", "long", true, Value::Null),
            field("title", "string", false, Value::Null),
            field("description", "string", false, Value::Null),
            field(
                "status",
                "integer",
                false,
                json!([{"value":"1","label":"New","isActive":true}])
            ),
            field(
                "priority",
                "integer",
                false,
                json!([{"value":"2","label":"Medium","isActive":true}])
            ),
            field("companyID", "integer", false, Value::Null),
            field(
                "queueID",
                "integer",
                false,
                json!([{"value":"5","label":"Client Portal","isActive":true}])
            ),
            field(
                "billingCodeID",
                "integer",
                false,
                json!([
                {"value":"29682801","label":"Remote Support","isActive":true},
                {"value":"29682803","label":"Travel (retired)","isActive":false}])
            ),
            field("assignedResourceID", "integer", false, Value::Null),
            field("assignedResourceRoleID", "integer", false, Value::Null),
            field("purchaseOrderNumber", "string", false, Value::Null),
            field("dueDateTime", "datetime", false, Value::Null),
            field("ticketNumber", "string", true, Value::Null),
        ]))
    }

    fn printer() -> NewPsaTicket {
        NewPsaTicket {
            title: "Printer".into(),
            description: "It is on fire".into(),
            status: 1,
            priority: 2,
            company_id: 174,
            queue_id: None,
            external_id: "zendesk:42".into(),
            configuration_item_id: None,
        }
    }

    fn defaults(pairs: &[(&str, FieldValue)]) -> BTreeMap<String, FieldValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn required_ticket_fields_are_filled_from_the_tenant_settings() {
        let fields = ticket_fields(&["billingCodeID", "queueID"]);
        let mut ticket = printer();
        ticket.queue_id = Some(5);
        let extra = extra_ticket_fields(
            &fields,
            &ticket,
            &defaults(&[
                ("billingcodeid", text("remote support")),
                ("purchaseOrderNumber", FieldValue::Number(4711)),
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(extra.clone()),
            json!({"billingCodeID": 29682801, "purchaseOrderNumber": 4711})
        );
        let body = create_body(&ticket, &extra);
        assert_eq!(body["billingCodeID"], 29682801);
        assert_eq!(body["queueID"], 5);
        // No required field beyond the bridge's own: nothing extra.
        assert!(
            extra_ticket_fields(&ticket_fields(&[]), &printer(), &BTreeMap::new())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_required_field_without_a_value_names_the_setting_to_add() {
        let fields = ticket_fields(&[
            "billingCodeID",
            "queueID",
            "assignedResourceID",
            "dueDateTime",
        ]);
        let problems = extra_ticket_fields(&fields, &printer(), &BTreeMap::new()).unwrap_err();
        // A required date is left to Autotask: no setting can fill it.
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("queueID") && problems[0].contains("autotask.queue_id"));
        assert!(
            problems[1].contains("autotask.ticket_defaults.billingCodeID")
                && problems[1].contains("Remote Support (29682801)")
                && !problems[1].contains("Travel"),
            "{}",
            problems[1]
        );
        assert!(problems[2].contains("autotask.ticket_defaults.assignedResourceID"));
    }

    #[test]
    fn ticket_defaults_that_cannot_be_sent_are_refused() {
        let fields = ticket_fields(&[]);
        let problems = extra_ticket_fields(
            &fields,
            &printer(),
            &defaults(&[
                ("status", FieldValue::Number(5)),
                ("QueueID", FieldValue::Number(5)),
                ("billingCodeID", text("Travel (retired)")),
                ("assignedResourceID", text("Tess")),
                ("ticketNumber", text("T1")),
                ("colour", text("red")),
            ]),
        )
        .unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "autotask.ticket_defaults.status: the bridge sets the ticket field status itself (from mappings.initial_status)",
            "autotask.ticket_defaults.QueueID: the bridge sets the ticket field queueID itself (from autotask.queue_id)",
            "autotask.ticket_defaults.billingCodeID = \"Travel (retired)\": \"Travel (retired)\" is inactive",
            "autotask.ticket_defaults.assignedResourceID = \"Tess\": the ticket field assignedResourceID takes a number",
            "autotask.ticket_defaults.ticketNumber: the ticket field ticketNumber is read-only",
            "autotask.ticket_defaults.colour: Autotask tickets have no field \"colour\"",
            "give both assignedResourceID and assignedResourceRoleID",
        ] {
            assert!(all.contains(expected), "{expected}\nin\n{all}");
        }
        assert_eq!(problems.len(), 7, "{all}");
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
        NoteSettings::from_fields(&note_fields(), &NotePublish::default())
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
        let body = create_body(
            &NewPsaTicket {
                title: "é".repeat(TICKET_TITLE_MAX + 10),
                description: "ü".repeat(TICKET_DESCRIPTION_MAX + 1),
                status: 1,
                priority: 2,
                company_id: 3,
                queue_id: Some(4),
                external_id: "zd:1".into(),
                configuration_item_id: None,
            },
            &Map::new(),
        );
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
        let body = note_body(9, &note, &settings()).unwrap();
        let sent = body["title"].as_str().unwrap();
        assert_eq!(sent.chars().count(), NOTE_TITLE_MAX);
        assert!(sent.starts_with("Zendesk comment #42 by "));
        assert!(title.starts_with(sent));
        assert_eq!(body["description"], json!("ß".repeat(NOTE_DESCRIPTION_MAX)));
        assert_eq!(body["ticketID"], 9);
        assert_eq!(body["publish"], 1);
        assert_eq!(body["noteType"], 3);

        // Short values go out as they are.
        let short = NewPsaNote {
            title: "Zendesk comment #1 by Ann".into(),
            description: "Hello".into(),
            visibility: Visibility::Internal,
        };
        assert_eq!(
            note_body(9, &short, &settings()).unwrap(),
            json!({"ticketID":9,"title":"Zendesk comment #1 by Ann","description":"Hello","noteType":3,"publish":2})
        );
    }

    #[test]
    fn note_titles_are_cut_before_their_blanks_are_dropped() {
        // Cut at the limit, then trimmed: a blank at the cut goes too.
        let title = format!("{} tail", "x".repeat(NOTE_TITLE_MAX - 1));
        assert_eq!(note_title(&title, ""), "x".repeat(NOTE_TITLE_MAX - 1));
    }
}
