//! The simulated database (tickets, notes, companies, configuration items,
//! resources), its JSON shapes, and the validated mutations shared by the API
//! and the Rust methods (which stand for technicians in the Autotask UI).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use super::assets::{self, Category, ConfigurationItem, Product};
use super::picklists::{
    active_pick, picklist, ALWAYS_REQUIRED_TICKET_FIELDS, BILLING_CODE, PRIORITY, QUEUE, ROLES,
    SOURCE, STATUS, TICKET_TYPE,
};
use super::{Note, Ticket};

pub(super) const TITLE_MAX: usize = 255;
pub(super) const DESCRIPTION_MAX: usize = 8000;
pub(super) const NOTE_TITLE_MAX: usize = 250;
pub(super) const NOTE_DESCRIPTION_MAX: usize = 32000;
pub(super) const QUERY_PAGE_MAX: usize = 500;

pub(super) struct Company {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) active: bool,
}

#[derive(Default)]
pub(super) struct Db {
    pub(super) tickets: BTreeMap<i64, Ticket>,
    pub(super) notes: BTreeMap<i64, Note>,
    pub(super) companies: BTreeMap<i64, Company>,
    pub(super) items: BTreeMap<i64, ConfigurationItem>,
    pub(super) resources: BTreeMap<i64, String>,
    pub(super) products: BTreeMap<i64, Product>,
    pub(super) categories: BTreeMap<i64, Category>,
    /// Names of the user-defined fields defined on ConfigurationItems.
    pub(super) ci_udfs: Vec<String>,
    pub(super) next_product: i64,
    pub(super) next_category: i64,
    pub(super) next_ticket: i64,
    pub(super) next_note: i64,
    pub(super) next_company: i64,
    pub(super) next_item: i64,
    pub(super) next_resource: i64,
    pub(super) tickets_per_day: HashMap<NaiveDate, u32>,
    pub(super) sequence: HashMap<(&'static str, i64), i64>,
}

impl Db {
    pub(super) fn new() -> Self {
        // Distinct id ranges per entity make a mixed-up id fail loudly in tests.
        let mut db = Self {
            next_ticket: 7001,
            next_note: 30001,
            next_company: 174,
            next_item: 501,
            next_resource: 29683001,
            ..Default::default()
        };
        assets::seed(&mut db);
        db
    }

    pub(super) fn sequence(&mut self, entity: &'static str, id: i64) -> i64 {
        let counter = self.sequence.entry((entity, id)).or_insert(0);
        *counter += 1;
        *counter
    }

    /// Last activity strictly increases per ticket, so callouts that carry it
    /// never look like a redelivery of the previous change.
    pub(super) fn touch(&mut self, ticket_id: i64, now: DateTime<Utc>) {
        if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
            ticket.last_activity_date = if now > ticket.last_activity_date {
                now
            } else {
                ticket.last_activity_date + chrono::Duration::milliseconds(1)
            };
        }
    }

    pub(super) fn rows(&self, entity: Entity) -> Vec<Value> {
        match entity {
            Entity::Tickets => self.tickets.values().map(ticket_json).collect(),
            Entity::TicketNotes => self.notes.values().map(note_json).collect(),
            Entity::ConfigurationItems => self
                .items
                .values()
                .map(|ci| assets::ci_json(ci, &self.ci_udfs))
                .collect(),
            Entity::Companies => self.companies.values().map(company_json).collect(),
            Entity::Products => self.products.values().map(assets::product_json).collect(),
            Entity::ConfigurationItemCategories => self
                .categories
                .values()
                .map(assets::category_json)
                .collect(),
            Entity::ConfigurationItemTypes => assets::ci_type_rows(),
        }
    }
}

pub(super) fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(super) fn ticket_json(t: &Ticket) -> Value {
    json!({
        "id": t.id,
        "ticketNumber": t.ticket_number,
        "title": t.title,
        "description": t.description,
        "status": t.status,
        "priority": t.priority,
        "companyID": t.company_id,
        "queueID": t.queue_id,
        "ticketType": t.ticket_type,
        "source": t.source,
        "billingCodeID": t.billing_code_id,
        "assignedResourceID": t.assigned_resource_id,
        "assignedResourceRoleID": t.assigned_resource_role_id,
        "externalID": t.external_id,
        "configurationItemID": t.configuration_item_id,
        "creatorResourceID": t.creator_resource_id,
        "createDate": time(&t.create_date),
        "lastActivityDate": time(&t.last_activity_date),
    })
}

pub(super) fn note_json(n: &Note) -> Value {
    json!({
        "id": n.id,
        "ticketID": n.ticket_id,
        "title": n.title,
        "description": n.description,
        "noteType": n.note_type,
        "publish": n.publish,
        "creatorResourceID": n.creator_resource_id,
        "createDateTime": time(&n.create_date_time),
        "lastActivityDate": time(&n.create_date_time),
    })
}

pub(super) fn company_json(c: &Company) -> Value {
    json!({ "id": c.id, "companyName": c.name, "isActive": c.active, "companyType": 1 })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entity {
    Tickets,
    TicketNotes,
    ConfigurationItems,
    Companies,
    Products,
    ConfigurationItemCategories,
    ConfigurationItemTypes,
}

impl Entity {
    pub(super) const ALL: [Entity; 7] = [
        Entity::Tickets,
        Entity::TicketNotes,
        Entity::ConfigurationItems,
        Entity::Companies,
        Entity::Products,
        Entity::ConfigurationItemCategories,
        Entity::ConfigurationItemTypes,
    ];

    pub(super) fn path(self) -> &'static str {
        match self {
            Entity::Tickets => "Tickets",
            Entity::TicketNotes => "TicketNotes",
            Entity::ConfigurationItems => "ConfigurationItems",
            Entity::Companies => "Companies",
            Entity::Products => "Products",
            Entity::ConfigurationItemCategories => "ConfigurationItemCategories",
            Entity::ConfigurationItemTypes => "ConfigurationItemTypes",
        }
    }

    /// Field names, for rejecting queries on fields the entity does not have.
    pub(super) fn fields(self) -> Vec<String> {
        self.sample()
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A blank record: every field, for field lists and filter checks.
    pub(super) fn sample(self) -> Value {
        match self {
            Entity::Tickets => ticket_json(&Ticket {
                id: 0,
                ticket_number: String::new(),
                title: String::new(),
                description: None,
                status: 0,
                priority: 0,
                company_id: 0,
                queue_id: None,
                ticket_type: None,
                source: None,
                billing_code_id: None,
                assigned_resource_id: None,
                assigned_resource_role_id: None,
                external_id: None,
                configuration_item_id: None,
                creator_resource_id: 0,
                create_date: DateTime::UNIX_EPOCH,
                last_activity_date: DateTime::UNIX_EPOCH,
            }),
            Entity::TicketNotes => note_json(&Note {
                id: 0,
                ticket_id: 0,
                title: String::new(),
                description: String::new(),
                publish: 0,
                note_type: 0,
                creator_resource_id: 0,
                create_date_time: DateTime::UNIX_EPOCH,
            }),
            Entity::Companies => company_json(&Company {
                id: 0,
                name: String::new(),
                active: true,
            }),
            Entity::ConfigurationItems
            | Entity::Products
            | Entity::ConfigurationItemCategories
            | Entity::ConfigurationItemTypes => assets::sample_fields(self),
        }
    }
}

/// One outgoing event, decided under the lock and delivered after it.
pub(super) enum Change {
    Ticket {
        action: &'static str,
        ticket: Ticket,
        fields: Map<String, Value>,
        sequence: i64,
    },
    Note {
        note: Note,
        ticket: Ticket,
        sequence: i64,
    },
}

// ---------------------------------------------------------------------------
// Mutations shared by the API and the Rust methods
// ---------------------------------------------------------------------------

/// A new ticket with the next id and ticket number (status "New", priority
/// "Medium"), shaped by `init`, stored; returns it.
pub(super) fn new_ticket(
    db: &mut Db,
    creator: i64,
    now: DateTime<Utc>,
    init: impl FnOnce(&mut Ticket),
) -> Ticket {
    let id = db.next_ticket;
    db.next_ticket += 1;
    let day = now.date_naive();
    let counter = db.tickets_per_day.entry(day).or_insert(0);
    *counter += 1;
    let mut ticket = Ticket {
        id,
        ticket_number: format!("T{}.{:04}", day.format("%Y%m%d"), counter),
        title: String::new(),
        description: None,
        status: 1,
        priority: 2,
        company_id: 0,
        queue_id: None,
        ticket_type: None,
        source: None,
        billing_code_id: None,
        assigned_resource_id: None,
        assigned_resource_role_id: None,
        external_id: None,
        configuration_item_id: None,
        creator_resource_id: creator,
        create_date: now,
        last_activity_date: now,
    };
    init(&mut ticket);
    ticket.id = id;
    db.tickets.insert(id, ticket.clone());
    ticket
}

/// The event of a ticket's creation.
pub(super) fn created(db: &mut Db, ticket: Ticket) -> Change {
    let mut changed = Map::new();
    for (name, value) in [
        ("Title", json!(ticket.title)),
        ("Status", json!(ticket.status.to_string())),
        ("Priority", json!(ticket.priority.to_string())),
        ("CompanyID", json!(ticket.company_id.to_string())),
    ] {
        changed.insert(name.to_owned(), value);
    }
    let sequence = db.sequence("Ticket", ticket.id);
    Change::Ticket {
        action: "Create",
        ticket,
        fields: changed,
        sequence,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn insert_note(
    db: &mut Db,
    ticket_id: i64,
    title: &str,
    description: &str,
    note_type: i64,
    publish: i64,
    creator: i64,
    now: DateTime<Utc>,
) -> Option<Change> {
    if !db.tickets.contains_key(&ticket_id) {
        return None;
    }
    let id = db.next_note;
    db.next_note += 1;
    let note = Note {
        id,
        ticket_id,
        title: title.to_owned(),
        description: description.to_owned(),
        publish,
        note_type,
        creator_resource_id: creator,
        create_date_time: now,
    };
    db.notes.insert(id, note.clone());
    db.touch(ticket_id, now);
    let sequence = db.sequence("TicketNote", id);
    let ticket = db.tickets[&ticket_id].clone();
    Some(Change::Note {
        note,
        ticket,
        sequence,
    })
}

/// Applies already-validated field changes; `Ok(None)` when nothing changed,
/// `Err(())` when the ticket does not exist.
pub(super) fn apply_update(
    db: &mut Db,
    ticket_id: i64,
    update: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Option<Change>, ()> {
    let ticket = db.tickets.get_mut(&ticket_id).ok_or(())?;
    let mut changed = Map::new();
    for (field, value) in update {
        let did_change = match field.as_str() {
            "title" => set(
                &mut ticket.title,
                value.as_str().unwrap_or_default().to_owned(),
            ),
            "description" => set(&mut ticket.description, value.as_str().map(str::to_owned)),
            "status" => as_i64(value).is_some_and(|v| set(&mut ticket.status, v)),
            "priority" => as_i64(value).is_some_and(|v| set(&mut ticket.priority, v)),
            "companyID" => as_i64(value).is_some_and(|v| set(&mut ticket.company_id, v)),
            "queueID" => set(&mut ticket.queue_id, as_i64(value)),
            "ticketType" => set(&mut ticket.ticket_type, as_i64(value)),
            "source" => set(&mut ticket.source, as_i64(value)),
            "billingCodeID" => set(&mut ticket.billing_code_id, as_i64(value)),
            "assignedResourceID" => set(&mut ticket.assigned_resource_id, as_i64(value)),
            "assignedResourceRoleID" => set(&mut ticket.assigned_resource_role_id, as_i64(value)),
            "externalID" => set(&mut ticket.external_id, value.as_str().map(str::to_owned)),
            "configurationItemID" => set(&mut ticket.configuration_item_id, as_i64(value)),
            _ => false,
        };
        if did_change {
            // Webhook payloads use the SOAP-style field names with string values.
            let name = match field.as_str() {
                "companyID" => "CompanyID".to_owned(),
                "queueID" => "QueueID".to_owned(),
                "billingCodeID" => "BillingCodeID".to_owned(),
                "assignedResourceID" => "AssignedResourceID".to_owned(),
                "assignedResourceRoleID" => "AssignedResourceRoleID".to_owned(),
                "externalID" => "ExternalID".to_owned(),
                "configurationItemID" => "ConfigurationItemID".to_owned(),
                other => {
                    let mut chars = other.chars();
                    chars
                        .next()
                        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                        .unwrap_or_default()
                }
            };
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            changed.insert(name, json!(text));
        }
    }
    if changed.is_empty() {
        return Ok(None);
    }
    db.touch(ticket_id, now);
    let sequence = db.sequence("Ticket", ticket_id);
    Ok(Some(Change::Ticket {
        action: "Update",
        ticket: db.tickets[&ticket_id].clone(),
        fields: changed,
        sequence,
    }))
}

pub(super) fn set<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        false
    } else {
        *slot = value;
        true
    }
}

pub(super) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

pub(super) fn reference_error(field: &str) -> String {
    format!("Value does not reference an existing entity for {field} . ")
}

/// What a ticket create must carry beyond the always-required fields.
#[derive(Clone, Copy)]
pub(super) enum Creating<'a> {
    /// An update: nothing is required.
    No,
    /// A create, with the database's extra required fields.
    Yes { required: &'a [String] },
}

/// Validates ticket fields of a create or update body and returns them under
/// their canonical names. A missing required integer field is reported as
/// Autotask reports it, as a reference to nothing
/// ("Value does not reference an existing entity for billingCodeID . ").
pub(super) fn validate_ticket_fields(
    db: &Db,
    body: &Map<String, Value>,
    creating: Creating<'_>,
) -> Result<Map<String, Value>, Vec<String>> {
    let mut errors = Vec::new();
    let mut fields = Map::new();
    if let Creating::Yes { required } = creating {
        for name in ALWAYS_REQUIRED_TICKET_FIELDS {
            if get_ci(body, name).is_none() {
                errors.push(format!("Missing Required Field: {name}"));
            }
        }
        for name in required {
            if ALWAYS_REQUIRED_TICKET_FIELDS
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
            {
                continue;
            }
            if get_ci(body, name).is_none() {
                errors.push(if name.eq_ignore_ascii_case("description") {
                    format!("Missing Required Field: {name}")
                } else {
                    reference_error(name)
                });
            }
        }
        if get_ci(body, "assignedResourceID").is_some()
            != get_ci(body, "assignedResourceRoleID").is_some()
        {
            errors.push("When assigning a Resource, you must assign both a assignedResourceID and assignedResourceRoleID.".to_owned());
        }
    }
    if let Some(title) = get_ci(body, "title") {
        match title.as_str() {
            Some(t) if t.trim().is_empty() => errors.push("title cannot be empty".to_owned()),
            Some(t) if t.chars().count() > TITLE_MAX => errors.push(format!(
                "title exceeds the maximum length of {TITLE_MAX} characters"
            )),
            Some(t) => {
                fields.insert("title".to_owned(), json!(t));
            }
            None => errors.push("title must be a string".to_owned()),
        }
    }
    if let Some(description) = get_ci(body, "description") {
        match description.as_str() {
            Some(d) if d.chars().count() > DESCRIPTION_MAX => errors.push(format!(
                "description exceeds the maximum length of {DESCRIPTION_MAX} characters"
            )),
            Some(d) => {
                fields.insert("description".to_owned(), json!(d));
            }
            None => errors.push("description must be a string".to_owned()),
        }
    }
    for (name, picks) in [
        ("status", STATUS),
        ("priority", PRIORITY),
        ("queueID", QUEUE),
        ("ticketType", TICKET_TYPE),
        ("source", SOURCE),
        ("billingCodeID", BILLING_CODE),
    ] {
        if let Some(value) = get_ci(body, name) {
            match as_i64(value) {
                Some(v) if active_pick(picks, v) => {
                    fields.insert(name.to_owned(), json!(v));
                }
                _ => errors.push(reference_error(name)),
            }
        }
    }
    if let Some(resource) = get_ci(body, "assignedResourceID") {
        match as_i64(resource) {
            Some(r) if db.resources.contains_key(&r) => {
                fields.insert("assignedResourceID".to_owned(), json!(r));
            }
            _ => errors.push(reference_error("assignedResourceID")),
        }
    }
    if let Some(role) = get_ci(body, "assignedResourceRoleID") {
        match as_i64(role) {
            Some(r) if ROLES.contains(&r) => {
                fields.insert("assignedResourceRoleID".to_owned(), json!(r));
            }
            _ => errors.push(reference_error("assignedResourceRoleID")),
        }
    }
    if let Some(company) = get_ci(body, "companyID") {
        match as_i64(company) {
            Some(c) if db.companies.contains_key(&c) => {
                fields.insert("companyID".to_owned(), json!(c));
            }
            _ => errors.push(reference_error("companyID")),
        }
    }
    if let Some(item) = get_ci(body, "configurationItemID") {
        // Whether the CI may go on this ticket depends on the ticket's
        // company, which the caller knows (`assets::ticket_ci_problem`).
        match as_i64(item) {
            Some(id) => {
                fields.insert("configurationItemID".to_owned(), json!(id));
            }
            None => errors.push(reference_error("configurationItemID")),
        }
    }
    if let Some(external) = get_ci(body, "externalID") {
        match external {
            Value::String(s) => {
                fields.insert("externalID".to_owned(), json!(s));
            }
            Value::Number(n) => {
                fields.insert("externalID".to_owned(), json!(n.to_string()));
            }
            _ => errors.push("externalID must be a string".to_owned()),
        }
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(errors)
    }
}

/// The ticket fields a technician can change through
/// [`AutotaskSandbox::update_as_technician`](super::AutotaskSandbox::update_as_technician):
/// the writable ones the sandbox stores.
pub(super) const TECHNICIAN_FIELDS: [&str; 7] = [
    "title",
    "description",
    "status",
    "priority",
    "companyID",
    "queueID",
    "externalID",
];

/// Validates a technician's edit as the API validates a `PATCH Tickets`, and
/// more strictly where the API would silently ignore something (unknown
/// fields, nulls), since that would be a test bug; returns the fields under
/// their canonical names, or every problem found.
pub(super) fn technician_update(
    db: &Db,
    fields: &[(&str, Value)],
) -> Result<Map<String, Value>, Vec<String>> {
    let mut problems = Vec::new();
    let mut body = Map::new();
    for (name, value) in fields {
        let Some(field) = TECHNICIAN_FIELDS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(name))
        else {
            problems.push(format!(
                "{name} is not a ticket field a technician can change (one of {})",
                TECHNICIAN_FIELDS.join(", ")
            ));
            continue;
        };
        if value.is_null() {
            problems.push(format!(
                "{field} cannot be set to null (the API would ignore it)"
            ));
            continue;
        }
        if body.contains_key(*field) {
            problems.push(format!("{field} is given twice"));
            continue;
        }
        if let Some(picks) = picklist(field) {
            match as_i64(value) {
                None => problems.push(format!(
                    "{field} {value} is not a picklist value (a number is expected)"
                )),
                Some(v) => match picks.iter().find(|(pick, ..)| *pick == v) {
                    None => problems.push(format!(
                        "{field} {v} is not an active picklist value: the {field} picklist has no value {v}"
                    )),
                    Some((_, label, false, _)) => problems.push(format!(
                        "{field} {v} is not an active picklist value: \"{label}\" is inactive"
                    )),
                    Some(_) => {}
                },
            }
        }
        body.insert((*field).to_owned(), value.clone());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Lengths, types and companies exactly as the API checks them.
    validate_ticket_fields(db, &body, Creating::No)
}
