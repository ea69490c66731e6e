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
/// TicketNotes `publish` as real tenants have it: there is no 3 and no
/// "Internal Only" (the UI shows 2 as "Internal Only", the API labels it
/// "Internal Project Team").
pub(super) const PUBLISH: &[Pick] = &[
    (1, "All Autotask Users", true, false),
    (2, "Internal Project Team", true, false),
    (4, "Internal & Co-Managed", true, false),
];
/// Ticket `source` (how the ticket came in).
pub(super) const SOURCE: &[Pick] = &[
    (-1, "Client Portal", true, false),
    (1, "Other", true, false),
    (2, "Phone", true, true),
    (4, "Email", true, false),
    (6, "Web Portal", true, false),
];
/// Ticket `billingCodeID` ("Work Type"): ids of allocation codes.
pub(super) const BILLING_CODE: &[Pick] = &[
    (29682801, "Remote Support", true, false),
    (29682802, "Onsite Support", true, false),
    (29682803, "Travel (retired)", false, false),
];
/// Roles a resource can be assigned to a ticket with
/// (`assignedResourceRoleID` references them; not a picklist).
pub(super) const ROLES: &[i64] = &[29683461, 29683462];

pub(super) const PUBLISH_ALL: i64 = 1;
/// "Internal Project Team", the most private value.
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

/// Ticket fields every database requires on create.
pub(super) const ALWAYS_REQUIRED_TICKET_FIELDS: [&str; 4] =
    ["companyID", "title", "status", "priority"];

/// The Tickets field descriptions; `required` names the fields this database
/// reports as required beyond [`ALWAYS_REQUIRED_TICKET_FIELDS`].
pub(super) fn ticket_fields(required: &[String]) -> Value {
    let req = |name: &str| {
        ALWAYS_REQUIRED_TICKET_FIELDS.contains(&name)
            || required.iter().any(|r| r.eq_ignore_ascii_case(name))
    };
    let field = |name: &str, data_type: &str, read_only: bool, picks: Option<&[Pick]>| {
        field_json(name, data_type, req(name), read_only, picks)
    };
    json!({ "fields": [
        field_json("id", "long", true, true, None),
        field("ticketNumber", "string", true, None),
        field("title", "string", false, None),
        field("description", "string", false, None),
        field("status", "integer", false, Some(STATUS)),
        field("priority", "integer", false, Some(PRIORITY)),
        field("companyID", "integer", false, None),
        field("queueID", "integer", false, Some(QUEUE)),
        field("ticketType", "integer", false, Some(TICKET_TYPE)),
        field("source", "integer", false, Some(SOURCE)),
        field("billingCodeID", "integer", false, Some(BILLING_CODE)),
        field("assignedResourceID", "integer", false, None),
        field("assignedResourceRoleID", "integer", false, None),
        field("externalID", "string", false, None),
        field("configurationItemID", "integer", false, None),
        field("creatorResourceID", "integer", true, None),
        field("createDate", "datetime", true, None),
        field("lastActivityDate", "datetime", true, None),
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
        "source" => SOURCE,
        "billingcodeid" => BILLING_CODE,
        "notetype" => NOTE_TYPE,
        "publish" => PUBLISH,
        _ => return None,
    })
}
