//! Picklists (Autotask's shipped defaults) and the `entityInformation/fields`
//! descriptions that carry them.

use serde_json::{json, Value};

/// (value, label, active, default)
pub(super) type Pick = (i64, &'static str, bool, bool);

pub(super) const STATUS: &[Pick] = &[
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
pub(super) const PRIORITY: &[Pick] = &[
    (4, "Critical", true, false),
    (1, "High", true, false),
    (2, "Medium", true, true),
    (3, "Low", true, false),
];
pub(super) const QUEUE: &[Pick] = &[
    (5, "Client Portal", true, false),
    (6, "Post Sale", true, false),
    (29682833, "Level I Support", true, false),
    (29682969, "Level II Support", true, false),
];
pub(super) const TICKET_TYPE: &[Pick] = &[
    (1, "Service Request", true, true),
    (2, "Incident", true, false),
    (3, "Problem", true, false),
    (4, "Change Request", true, false),
    (5, "Alert", true, false),
];
pub(super) const NOTE_TYPE: &[Pick] = &[
    (1, "Task Summary", true, false),
    (2, "Task Detail", true, false),
    (3, "Task Notes", true, true),
    (13, "Workflow Rule Note", true, false),
    (18, "Client Portal Note", true, false),
];
pub(super) const PUBLISH: &[Pick] = &[
    (1, "All Autotask Users", true, false),
    (2, "Internal Only", true, false),
];

pub(super) const PUBLISH_ALL: i64 = 1;
pub(super) const PUBLISH_INTERNAL: i64 = 2;
pub(super) const TECHNICIAN_NOTE_TYPE: i64 = 1;

pub(super) fn picks_json(picks: &[Pick]) -> Value {
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

pub(super) fn field_json(
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

pub(super) fn ticket_fields() -> Value {
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

pub(super) fn note_fields() -> Value {
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

pub(super) fn active_pick(picks: &[Pick], value: i64) -> bool {
    picks.iter().any(|(v, _, active, _)| *v == value && *active)
}

/// The picklist of a Tickets or TicketNotes field, by name (any case).
pub(super) fn picklist(field: &str) -> Option<&'static [Pick]> {
    Some(match field.to_ascii_lowercase().as_str() {
        "status" => STATUS,
        "priority" => PRIORITY,
        "queueid" => QUEUE,
        "tickettype" => TICKET_TYPE,
        "notetype" => NOTE_TYPE,
        "publish" => PUBLISH,
        _ => return None,
    })
}
