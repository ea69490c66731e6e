//! The REST webhook entities `TicketWebhooks` and `TicketNoteWebhooks`,
//! their `Fields` and `ExcludedResources` children, the field ids of
//! `{Entity}WebhookFields/entityInformation/fields`, and `Resources/query`
//! (to find the API user), following ../shared/specs/autotask-rest.md "REST
//! webhooks" (URL shapes as the generated client aenichols/ATREST-CSharp-Client
//! documents them for Company webhooks, which the Ticket ones share):
//!
//! - `POST {Entity}` creates; it needs `webhookUrl`, `deactivationUrl`
//!   (absolute http(s) URLs), `secretKey` (1 to 64 characters),
//!   `isSubscribedTo{Create,Update,Delete}Events`, `isActive` and
//!   `notificationEmailAddress`, or answers 500 with Autotask's error list.
//!   Ids come from one counter per database, as Autotask's do.
//! - `PATCH {Entity}` with `id` updates the given fields (the same rules).
//! - `POST {Entity}/query` (filters `eq`, `gt`, `beginsWith` on the
//!   webhook's fields), `GET {Entity}/{id}`, `DELETE {Entity}/{id}`.
//!   `secretKey` is never returned. `isReady` is true once a subscribed
//!   field was added.
//! - `{Entity}/{id}/Fields`: GET, POST (`fieldID` must be one of the
//!   entity's webhook field ids, once per webhook), PATCH (`id` with the
//!   flags). `{Entity}/{id}/ExcludedResources`: GET, POST (`resourceID`
//!   must be a resource, once per webhook).
//! - Without webhook permission ([`AutotaskSandbox::set_webhook_permission`])
//!   every call of these entities answers 500 with Autotask's permission
//!   text.
//!
//! Deliveries of the registered webhooks are in `events`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::api::{errors, parse_object, Ctx};
use super::db::{as_i64, get_ci};
use super::picklists::{field_json, Pick};
use super::query;
use super::AutotaskSandbox;

/// Autotask's limit on `SecretKey`.
pub const SECRET_KEY_MAX: usize = 64;

/// The text Autotask answers (HTTP 500) when the API user may not use an
/// entity.
pub const NO_PERMISSION: &str =
    "The logged in Resource does not have the adequate permissions to access this entity type.";

/// Which webhook entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEntity {
    Ticket,
    TicketNote,
}

impl HookEntity {
    const ALL: [HookEntity; 2] = [HookEntity::Ticket, HookEntity::TicketNote];

    pub fn path(self) -> &'static str {
        match self {
            HookEntity::Ticket => "TicketWebhooks",
            HookEntity::TicketNote => "TicketNoteWebhooks",
        }
    }

    fn field_info_path(self) -> &'static str {
        match self {
            HookEntity::Ticket => "TicketWebhookFields",
            HookEntity::TicketNote => "TicketNoteWebhookFields",
        }
    }

    /// `(fieldID, label)`: the label is the entity's field name.
    pub fn field_ids(self) -> &'static [(i64, &'static str)] {
        match self {
            HookEntity::Ticket => TICKET_HOOK_FIELDS,
            HookEntity::TicketNote => NOTE_HOOK_FIELDS,
        }
    }

    /// The field name of a field id.
    pub fn field_name(self, field_id: i64) -> Option<&'static str> {
        self.field_ids()
            .iter()
            .find(|(id, _)| *id == field_id)
            .map(|(_, name)| *name)
    }
}

const TICKET_HOOK_FIELDS: &[(i64, &str)] = &[
    (1, "ticketNumber"),
    (2, "title"),
    (3, "description"),
    (4, "status"),
    (5, "priority"),
    (6, "companyID"),
    (7, "queueID"),
    (8, "ticketType"),
    (9, "source"),
    (10, "assignedResourceID"),
    (11, "externalID"),
    (12, "configurationItemID"),
    (13, "dueDateTime"),
];

const NOTE_HOOK_FIELDS: &[(i64, &str)] = &[
    (101, "ticketID"),
    (102, "title"),
    (103, "description"),
    (104, "publish"),
    (105, "noteType"),
];

/// A field of a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookField {
    pub id: i64,
    pub field_id: i64,
    pub subscribed: bool,
    pub display_always: bool,
}

/// A webhook registered through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredWebhook {
    pub id: i64,
    pub entity: HookEntity,
    pub name: String,
    pub webhook_url: String,
    pub deactivation_url: String,
    pub secret_key: String,
    pub on_create: bool,
    pub on_update: bool,
    pub on_delete: bool,
    pub active: bool,
    pub notification_email: String,
    /// The `Guid` its events carry.
    pub guid: String,
    pub fields: Vec<HookField>,
    /// `(row id, resource id)`.
    pub excluded: Vec<(i64, i64)>,
}

impl RegisteredWebhook {
    /// Autotask's `IsReady`: a subscribed field was added.
    pub fn is_ready(&self) -> bool {
        self.fields.iter().any(|f| f.subscribed)
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "webhookUrl": self.webhook_url,
            "deactivationUrl": self.deactivation_url,
            "isSubscribedToCreateEvents": self.on_create,
            "isSubscribedToUpdateEvents": self.on_update,
            "isSubscribedToDeleteEvents": self.on_delete,
            "isActive": self.active,
            "isReady": self.is_ready(),
            "notificationEmailAddress": self.notification_email,
            "sendThresholdExceededNotification": true,
            "webhookGUID": self.guid,
            "ownerResourceID": null,
        })
    }
}

/// The webhook entities of one database.
#[derive(Default)]
pub(super) struct Hooks {
    pub(super) webhooks: Vec<RegisteredWebhook>,
    next_id: i64,
    /// False: every webhook call answers the permission error.
    pub(super) forbidden: bool,
}

impl Hooks {
    fn next(&mut self) -> i64 {
        if self.next_id == 0 {
            self.next_id = 4101;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn find(&mut self, entity: HookEntity, id: i64) -> Option<&mut RegisteredWebhook> {
        self.webhooks
            .iter_mut()
            .find(|h| h.entity == entity && h.id == id)
    }
}

fn guid() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        rng.gen::<u32>(),
        rng.gen::<u16>(),
        rng.gen::<u16>() & 0x0fff,
        (rng.gen::<u16>() & 0x3fff) | 0x8000,
        rng.gen::<u64>() & 0xffff_ffff_ffff
    )
}

fn server_error(messages: Vec<String>) -> Response {
    errors(StatusCode::INTERNAL_SERVER_ERROR, messages)
}

/// The absolute http(s) URL in `value`, if it is one.
fn http_url(value: Option<&Value>) -> Option<String> {
    let text = value?.as_str()?.trim();
    let parsed = reqwest::Url::parse(text).ok()?;
    (matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some())
        .then(|| text.to_owned())
}

/// Applies the settable fields of `body` to `hook`; `creating` demands the
/// required ones. Autotask's messages on failure.
fn apply(hook: &mut RegisteredWebhook, body: &Map<String, Value>, creating: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let missing = |name: &str| format!("{name} is required.");
    for (name, slot) in [
        ("webhookUrl", &mut hook.webhook_url),
        ("deactivationUrl", &mut hook.deactivation_url),
    ] {
        match get_ci(body, name) {
            None | Some(Value::Null) if creating => problems.push(missing(name)),
            None => {}
            value => match http_url(value) {
                Some(url) => *slot = url,
                None => problems.push(format!("{name} must be a valid http or https URL.")),
            },
        }
    }
    match get_ci(body, "secretKey") {
        None | Some(Value::Null) if creating => problems.push(missing("secretKey")),
        None => {}
        Some(value) => match value.as_str() {
            Some(key) if !key.is_empty() && key.chars().count() <= SECRET_KEY_MAX => {
                hook.secret_key = key.to_owned();
            }
            Some(key) if key.chars().count() > SECRET_KEY_MAX => problems.push(format!(
                "secretKey exceeds the maximum length of {SECRET_KEY_MAX} characters."
            )),
            _ => problems.push("secretKey is invalid.".to_owned()),
        },
    }
    for (name, slot) in [
        ("isSubscribedToCreateEvents", &mut hook.on_create),
        ("isSubscribedToUpdateEvents", &mut hook.on_update),
        ("isSubscribedToDeleteEvents", &mut hook.on_delete),
        ("isActive", &mut hook.active),
    ] {
        match get_ci(body, name) {
            None | Some(Value::Null) if creating => problems.push(missing(name)),
            None => {}
            Some(Value::Bool(b)) => *slot = *b,
            Some(_) => problems.push(format!("{name} is invalid.")),
        }
    }
    match get_ci(body, "notificationEmailAddress") {
        None | Some(Value::Null) if creating => problems.push(missing("notificationEmailAddress")),
        None => {}
        Some(value) => match value.as_str().map(str::trim) {
            Some(email) if email.contains('@') && email.len() <= 150 => {
                hook.notification_email = email.to_owned();
            }
            _ => problems.push("notificationEmailAddress is invalid.".to_owned()),
        },
    }
    if let Some(name) = get_ci(body, "name").and_then(Value::as_str) {
        if name.chars().count() > 50 {
            problems.push("name exceeds the maximum length of 50 characters.".to_owned());
        } else {
            hook.name = name.to_owned();
        }
    }
    problems
}

/// The routes of both webhook entities, their field descriptions, and
/// `Resources/query`.
pub(super) fn routes(mut api: Router<Ctx>) -> Router<Ctx> {
    for entity in HookEntity::ALL {
        let path = entity.path();
        api = api
            .route(
                &format!("/{path}"),
                post(move |s: State<Ctx>, b: Bytes| create(s, entity, b))
                    .patch(move |s: State<Ctx>, b: Bytes| update(s, entity, b)),
            )
            .route(
                &format!("/{path}/query"),
                post(move |s: State<Ctx>, b: Bytes| query(s, entity, b)),
            )
            .route(
                &format!("/{path}/{{id}}"),
                get(move |s: State<Ctx>, p: Path<i64>| read(s, entity, p))
                    .delete(move |s: State<Ctx>, p: Path<i64>| delete(s, entity, p)),
            )
            .route(
                &format!("/{path}/{{id}}/Fields"),
                get(move |s: State<Ctx>, p: Path<i64>| list_fields(s, entity, p))
                    .post(move |s: State<Ctx>, p: Path<i64>, b: Bytes| add_field(s, entity, p, b))
                    .patch(move |s: State<Ctx>, p: Path<i64>, b: Bytes| {
                        update_field(s, entity, p, b)
                    }),
            )
            .route(
                &format!("/{path}/{{id}}/ExcludedResources"),
                get(move |s: State<Ctx>, p: Path<i64>| list_excluded(s, entity, p)).post(
                    move |s: State<Ctx>, p: Path<i64>, b: Bytes| add_excluded(s, entity, p, b),
                ),
            )
            .route(
                &format!("/{}/entityInformation/fields", entity.field_info_path()),
                get(move |s: State<Ctx>| field_info(s, entity)),
            );
    }
    api.route("/Resources/query", post(query_resources))
}

fn forbidden(s: &Ctx) -> Option<Response> {
    s.hooks()
        .forbidden
        .then(|| server_error(vec![NO_PERMISSION.to_owned()]))
}

async fn create(State(s): State<Ctx>, entity: HookEntity, body: Bytes) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let mut hook = RegisteredWebhook {
        id: 0,
        entity,
        name: String::new(),
        webhook_url: String::new(),
        deactivation_url: String::new(),
        secret_key: String::new(),
        on_create: false,
        on_update: false,
        on_delete: false,
        active: false,
        notification_email: String::new(),
        guid: guid(),
        fields: Vec::new(),
        excluded: Vec::new(),
    };
    let problems = apply(&mut hook, &body, true);
    if !problems.is_empty() {
        return server_error(problems);
    }
    let mut hooks = s.hooks();
    hook.id = hooks.next();
    let id = hook.id;
    hooks.webhooks.push(hook);
    Json(json!({ "itemId": id })).into_response()
}

async fn update(State(s): State<Ctx>, entity: HookEntity, body: Bytes) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let Some(id) = get_ci(&body, "id").and_then(as_i64) else {
        return server_error(vec!["id is required.".to_owned()]);
    };
    let mut hooks = s.hooks();
    let Some(hook) = hooks.find(entity, id) else {
        return server_error(vec![format!(
            "{} with id {id} does not exist.",
            entity.path()
        )]);
    };
    let mut changed = hook.clone();
    let problems = apply(&mut changed, &body, false);
    if !problems.is_empty() {
        return server_error(problems);
    }
    *hook = changed;
    Json(json!({ "itemId": id })).into_response()
}

async fn read(State(s): State<Ctx>, entity: HookEntity, Path(id): Path<i64>) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let item = s.hooks().find(entity, id).map(|h| h.to_json());
    Json(json!({ "item": item })).into_response()
}

async fn delete(State(s): State<Ctx>, entity: HookEntity, Path(id): Path<i64>) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let mut hooks = s.hooks();
    let before = hooks.webhooks.len();
    hooks
        .webhooks
        .retain(|h| !(h.entity == entity && h.id == id));
    if hooks.webhooks.len() == before {
        return server_error(vec![format!(
            "{} with id {id} does not exist.",
            entity.path()
        )]);
    }
    Json(json!({ "itemId": id })).into_response()
}

/// Rows of `rows` (of the entity at `entity_path`, whose fields are the
/// rows' keys) that pass every condition of the query body's `filter`,
/// through the sandbox's one query filter ([`query::matches`]).
fn filtered(
    rows: Vec<Value>,
    body: &Map<String, Value>,
    entity_path: &str,
) -> Result<Vec<Value>, String> {
    let filter = get_ci(body, "filter")
        .and_then(Value::as_array)
        .filter(|f| !f.is_empty())
        .ok_or("Value cannot be null.\r\nParameter name: filters")?;
    let known: Vec<String> = rows
        .first()
        .and_then(Value::as_object)
        .map(|row| row.keys().cloned().collect())
        .unwrap_or_default();
    let mut kept = Vec::new();
    for row in rows {
        let object = row.as_object().expect("rows are objects");
        let mut pass = true;
        for condition in filter {
            if !query::matches(object, condition, &known, entity_path)? {
                pass = false;
                break;
            }
        }
        if pass {
            kept.push(row);
        }
    }
    Ok(kept)
}

fn items(rows: Vec<Value>) -> Response {
    Json(json!({
        "items": rows,
        "pageDetails": { "count": rows.len(), "requestCount": 500, "prevPageUrl": null, "nextPageUrl": null },
    }))
    .into_response()
}

async fn query(State(s): State<Ctx>, entity: HookEntity, body: Bytes) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let rows: Vec<Value> = s
        .hooks()
        .webhooks
        .iter()
        .filter(|h| h.entity == entity)
        .map(RegisteredWebhook::to_json)
        .collect();
    match filtered(rows, &body, entity.path()) {
        Ok(rows) => items(rows),
        Err(message) => server_error(vec![message]),
    }
}

fn no_parent(entity: HookEntity, id: i64) -> Response {
    server_error(vec![format!(
        "{} with id {id} does not exist.",
        entity.path()
    )])
}

async fn list_fields(State(s): State<Ctx>, entity: HookEntity, Path(id): Path<i64>) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let mut hooks = s.hooks();
    let Some(hook) = hooks.find(entity, id) else {
        return no_parent(entity, id);
    };
    items(
        hook.fields
            .iter()
            .map(|f| {
                json!({
                    "id": f.id,
                    "webhookID": id,
                    "fieldID": f.field_id,
                    "isSubscribedField": f.subscribed,
                    "isDisplayAlwaysField": f.display_always,
                })
            })
            .collect(),
    )
}

fn flag(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    match get_ci(body, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{name} is invalid.")),
    }
}

async fn add_field(
    State(s): State<Ctx>,
    entity: HookEntity,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let (subscribed, display_always) = match (
        flag(&body, "isSubscribedField"),
        flag(&body, "isDisplayAlwaysField"),
    ) {
        (Ok(a), Ok(b)) => (a.unwrap_or(false), b.unwrap_or(false)),
        (Err(e), _) | (_, Err(e)) => return server_error(vec![e]),
    };
    let Some(field_id) = get_ci(&body, "fieldID").and_then(as_i64) else {
        return server_error(vec!["fieldID is required.".to_owned()]);
    };
    if entity.field_name(field_id).is_none() {
        return server_error(vec![format!(
            "fieldID {field_id} is not a valid webhook field of {}.",
            entity.path()
        )]);
    }
    if let Some(parent) = get_ci(&body, "webhookID").and_then(as_i64) {
        if parent != id {
            return server_error(vec!["webhookID does not match the parent.".to_owned()]);
        }
    }
    let mut hooks = s.hooks();
    let row = hooks.next();
    let Some(hook) = hooks.find(entity, id) else {
        return no_parent(entity, id);
    };
    if hook.fields.iter().any(|f| f.field_id == field_id) {
        return server_error(vec![format!(
            "fieldID {field_id} is already a field of this webhook."
        )]);
    }
    hook.fields.push(HookField {
        id: row,
        field_id,
        subscribed,
        display_always,
    });
    Json(json!({ "itemId": row })).into_response()
}

async fn update_field(
    State(s): State<Ctx>,
    entity: HookEntity,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let Some(row) = get_ci(&body, "id").and_then(as_i64) else {
        return server_error(vec!["id is required.".to_owned()]);
    };
    let (subscribed, display_always) = match (
        flag(&body, "isSubscribedField"),
        flag(&body, "isDisplayAlwaysField"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return server_error(vec![e]),
    };
    let mut hooks = s.hooks();
    let Some(hook) = hooks.find(entity, id) else {
        return no_parent(entity, id);
    };
    let Some(field) = hook.fields.iter_mut().find(|f| f.id == row) else {
        return server_error(vec![format!("Field {row} does not exist on this webhook.")]);
    };
    if let Some(v) = subscribed {
        field.subscribed = v;
    }
    if let Some(v) = display_always {
        field.display_always = v;
    }
    Json(json!({ "itemId": row })).into_response()
}

async fn list_excluded(State(s): State<Ctx>, entity: HookEntity, Path(id): Path<i64>) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let mut hooks = s.hooks();
    let Some(hook) = hooks.find(entity, id) else {
        return no_parent(entity, id);
    };
    items(
        hook.excluded
            .iter()
            .map(|(row, resource)| json!({"id": row, "webhookID": id, "resourceID": resource}))
            .collect(),
    )
}

async fn add_excluded(
    State(s): State<Ctx>,
    entity: HookEntity,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let Some(resource) = get_ci(&body, "resourceID").and_then(as_i64) else {
        return server_error(vec!["resourceID is required.".to_owned()]);
    };
    let known = resource == s.config().api_resource_id || s.db().resources.contains_key(&resource);
    if !known {
        return server_error(vec![
            "Value for resourceID does not reference an existing entity.".to_owned(),
        ]);
    }
    let mut hooks = s.hooks();
    let row = hooks.next();
    let Some(hook) = hooks.find(entity, id) else {
        return no_parent(entity, id);
    };
    if hook.excluded.iter().any(|(_, r)| *r == resource) {
        return server_error(vec![format!(
            "Resource {resource} is already excluded from this webhook."
        )]);
    }
    hook.excluded.push((row, resource));
    Json(json!({ "itemId": row })).into_response()
}

/// `{Entity}WebhookFields/entityInformation/fields`: `fieldID` is a
/// picklist of the fields a webhook can carry.
async fn field_info(State(s): State<Ctx>, entity: HookEntity) -> Response {
    if let Some(denied) = forbidden(&s) {
        return denied;
    }
    let picks: Vec<Value> = entity
        .field_ids()
        .iter()
        .enumerate()
        .map(|(order, (id, label))| {
            json!({
                "value": id.to_string(),
                "label": label,
                "isDefaultValue": false,
                "sortOrder": order + 1,
                "parentValue": "",
                "isActive": true,
                "isSystem": true,
            })
        })
        .collect();
    let mut field_id = field_json("fieldID", "integer", true, false, Some(&[] as &[Pick]));
    field_id["picklistValues"] = Value::Array(picks);
    Json(json!({ "fields": [
        field_json("id", "long", true, true, None),
        field_json("webhookID", "integer", true, false, None),
        field_id,
        field_json("isDisplayAlwaysField", "boolean", true, false, None),
        field_json("isSubscribedField", "boolean", true, false, None),
    ]}))
    .into_response()
}

/// `Resources/query`: the technicians and the API user (whose `userName`
/// and `email` are its API user name), filtered like other queries.
async fn query_resources(State(s): State<Ctx>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let (api_id, api_user) = {
        let config = s.config();
        (config.api_resource_id, config.username.clone())
    };
    let mut rows = vec![json!({
        "id": api_id, "firstName": "API", "lastName": "User", "userName": api_user,
        "email": api_user, "isActive": true, "licenseType": 7,
    })];
    for (id, name) in s.db().resources.iter() {
        let (first, last) = name.split_once(' ').unwrap_or((name.as_str(), ""));
        let user = format!(
            "{}{}",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase()
        );
        rows.push(json!({
            "id": id, "firstName": first, "lastName": last, "userName": user,
            "email": format!("{user}@msp.example"), "isActive": true, "licenseType": 1,
        }));
    }
    match filtered(rows, &body, "Resources") {
        Ok(rows) => items(rows),
        Err(message) => server_error(vec![message]),
    }
}

impl AutotaskSandbox {
    /// The webhooks registered through the API (secret keys included, for
    /// tests that check signatures).
    pub fn registered_webhooks(&self) -> Vec<RegisteredWebhook> {
        self.shared.hooks().webhooks.clone()
    }

    /// Whether the API user may manage webhooks (default: yes); without,
    /// every webhook call answers Autotask's 500 permission error.
    pub fn set_webhook_permission(&self, allowed: bool) {
        self.shared.hooks().forbidden = !allowed;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderMap;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha1::Sha1;
    use tokio::sync::mpsc;

    use super::*;
    use crate::autotask::{AutotaskSandboxConfig, API_ROOT};

    struct Api {
        http: reqwest::Client,
        base: String,
        config: AutotaskSandboxConfig,
    }

    impl Api {
        fn new(sandbox: &AutotaskSandbox) -> Self {
            Self {
                http: reqwest::Client::new(),
                base: format!("{}{API_ROOT}/", sandbox.base_url()),
                config: AutotaskSandboxConfig::default(),
            }
        }

        async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = self
                .http
                .request(method, format!("{}{path}", self.base))
                .header("UserName", &self.config.username)
                .header("Secret", &self.config.secret)
                .header("ApiIntegrationCode", &self.config.integration_code);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
    }

    fn create_body(url: &str, key: &str) -> Value {
        json!({
            "name": "psa-bridge (t)",
            "webhookUrl": url,
            "deactivationUrl": url,
            "secretKey": key,
            "isSubscribedToCreateEvents": true,
            "isSubscribedToUpdateEvents": true,
            "isSubscribedToDeleteEvents": false,
            "isActive": true,
            "notificationEmailAddress": "ops@msp.example",
        })
    }

    #[tokio::test]
    async fn webhook_entities_are_validated_like_autotask() {
        let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
            .await
            .unwrap();
        let api = Api::new(&sandbox);

        // Every required field is named.
        let (status, body) = api.call("POST", "TicketWebhooks", Some(json!({}))).await;
        assert_eq!(status, 500);
        let said = body["errors"].to_string();
        for name in [
            "webhookUrl",
            "deactivationUrl",
            "secretKey",
            "isSubscribedToCreateEvents",
            "isSubscribedToUpdateEvents",
            "isSubscribedToDeleteEvents",
            "isActive",
            "notificationEmailAddress",
        ] {
            assert!(said.contains(name), "{name} missing from {said}");
        }
        // SecretKey: at most 64 characters.
        let long = "k".repeat(SECRET_KEY_MAX + 1);
        let (status, body) = api
            .call(
                "POST",
                "TicketWebhooks",
                Some(create_body("https://b.example/h", &long)),
            )
            .await;
        assert_eq!(status, 500);
        assert!(body["errors"].to_string().contains("maximum length of 64"));
        let max = "k".repeat(SECRET_KEY_MAX);
        let (status, body) = api
            .call(
                "POST",
                "TicketWebhooks",
                Some(create_body("https://b.example/h", &max)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let ticket_hook = body["itemId"].as_i64().unwrap();
        let (_, body) = api
            .call(
                "POST",
                "TicketNoteWebhooks",
                Some(create_body("https://b.example/h", "k")),
            )
            .await;
        let note_hook = body["itemId"].as_i64().unwrap();
        assert_ne!(ticket_hook, note_hook, "ids come from one counter");
        // Each entity sees only its own webhooks.
        let (_, body) = api
            .call("GET", &format!("TicketWebhooks/{note_hook}"), None)
            .await;
        assert!(body["item"].is_null());

        // Not ready until a subscribed field is added; the key is never read back.
        let (_, body) = api
            .call("GET", &format!("TicketWebhooks/{ticket_hook}"), None)
            .await;
        assert_eq!(body["item"]["isReady"], false);
        assert!(
            !body.to_string().contains(&max),
            "the secret key is not returned"
        );
        let (status, _) = api
            .call(
                "POST",
                &format!("TicketWebhooks/{ticket_hook}/Fields"),
                Some(json!({"fieldID": 999, "isSubscribedField": true})),
            )
            .await;
        assert_eq!(status, 500, "an unknown field id is refused");
        let (status, _) = api
            .call(
                "POST",
                &format!("TicketWebhooks/{ticket_hook}/Fields"),
                Some(json!({"fieldID": 1, "isDisplayAlwaysField": true})),
            )
            .await;
        assert_eq!(status, 200);
        let (_, body) = api
            .call("GET", &format!("TicketWebhooks/{ticket_hook}"), None)
            .await;
        assert_eq!(
            body["item"]["isReady"], false,
            "display-always is not enough"
        );
        let (status, _) = api
            .call(
                "POST",
                &format!("TicketWebhooks/{ticket_hook}/Fields"),
                Some(json!({"webhookID": ticket_hook, "fieldID": 4, "isSubscribedField": true})),
            )
            .await;
        assert_eq!(status, 200);
        let (_, body) = api
            .call("GET", &format!("TicketWebhooks/{ticket_hook}"), None)
            .await;
        assert_eq!(body["item"]["isReady"], true);
        let (status, _) = api
            .call(
                "POST",
                &format!("TicketWebhooks/{ticket_hook}/Fields"),
                Some(json!({"fieldID": 4, "isSubscribedField": true})),
            )
            .await;
        assert_eq!(status, 500, "a field once per webhook");

        // Excluded resources must exist.
        let (status, _) = api
            .call(
                "POST",
                &format!("TicketWebhooks/{ticket_hook}/ExcludedResources"),
                Some(json!({"resourceID": 12345})),
            )
            .await;
        assert_eq!(status, 500);
        let api_user = AutotaskSandboxConfig::default().api_resource_id;
        let (status, _) = api
            .call(
                "POST",
                &format!("TicketWebhooks/{ticket_hook}/ExcludedResources"),
                Some(json!({"resourceID": api_user})),
            )
            .await;
        assert_eq!(status, 200);

        // The API user is found by user name.
        let (_, body) = api
            .call(
                "POST",
                "Resources/query",
                Some(json!({"filter": [{"op": "eq", "field": "userName", "value": api.config.username}]})),
            )
            .await;
        assert_eq!(body["items"][0]["id"], api_user);

        // Query, patch, delete.
        let (_, body) = api
            .call(
                "POST",
                "TicketWebhooks/query",
                Some(json!({"filter": [{"op": "eq", "field": "webhookUrl", "value": "https://b.example/h"}]})),
            )
            .await;
        assert_eq!(body["items"].as_array().unwrap().len(), 1);
        let (status, _) = api
            .call(
                "PATCH",
                "TicketWebhooks",
                Some(json!({"id": ticket_hook, "secretKey": long})),
            )
            .await;
        assert_eq!(status, 500);
        let (status, _) = api
            .call(
                "PATCH",
                "TicketWebhooks",
                Some(json!({"id": ticket_hook, "secretKey": "new"})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            sandbox
                .registered_webhooks()
                .iter()
                .find(|h| h.id == ticket_hook)
                .unwrap()
                .secret_key,
            "new"
        );
        let (status, _) = api
            .call("DELETE", &format!("TicketWebhooks/{ticket_hook}"), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(sandbox.registered_webhooks().len(), 1);

        // Without permission: Autotask's 500 with its text.
        sandbox.set_webhook_permission(false);
        let (status, body) = api
            .call(
                "POST",
                "TicketWebhooks/query",
                Some(json!({"filter": [{"op": "gt", "field": "id", "value": 0}]})),
            )
            .await;
        assert_eq!(status, 500);
        assert!(body["errors"].to_string().contains("adequate permissions"));
    }

    struct Delivery {
        headers: HeaderMap,
        body: Vec<u8>,
    }

    async fn receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Delivery {
                    headers,
                    body: body.to_vec(),
                });
                StatusCode::OK
            }
        });
        let (url, _task) = crate::serve(app).await.unwrap();
        (url, rx)
    }

    fn hmac(key: &str, data: &[u8]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(data);
        format!("sha1={}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    async fn register(
        api: &Api,
        path: &str,
        url: &str,
        key: &str,
        fields: &[(i64, bool, bool)],
        excluded: &[i64],
    ) -> i64 {
        let (status, body) = api.call("POST", path, Some(create_body(url, key))).await;
        assert_eq!(status, 200, "{body}");
        let id = body["itemId"].as_i64().unwrap();
        for (field, subscribed, always) in fields {
            let (status, body) = api
                .call(
                    "POST",
                    &format!("{path}/{id}/Fields"),
                    Some(json!({"fieldID": field, "isSubscribedField": subscribed, "isDisplayAlwaysField": always})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        for resource in excluded {
            let (status, _) = api
                .call(
                    "POST",
                    &format!("{path}/{id}/ExcludedResources"),
                    Some(json!({"resourceID": resource})),
                )
                .await;
            assert_eq!(status, 200);
        }
        id
    }

    #[tokio::test]
    async fn registered_webhooks_deliver_signed_with_their_key_except_changes_by_excluded_resources(
    ) {
        let sandbox = AutotaskSandbox::start(AutotaskSandboxConfig::default())
            .await
            .unwrap();
        let api = Api::new(&sandbox);
        let (url, mut rx) = receiver().await;
        let api_user = api.config.api_resource_id;
        let tech = sandbox.add_resource("Tess Tech");
        let company = sandbox.add_company("Acme");
        // A ticket created before any webhook: no event.
        let ticket = sandbox.add_ticket(tech, company, "Printer");
        // Ticket: status subscribed, ticket number always; the API user
        // excluded. Note: description subscribed, ticketID always.
        register(
            &api,
            "TicketWebhooks",
            &url,
            "ticket-key",
            &[(4, true, false), (1, false, true)],
            &[api_user],
        )
        .await;
        register(
            &api,
            "TicketNoteWebhooks",
            &url,
            "note-key",
            &[(103, true, false), (101, false, true)],
            &[api_user],
        )
        .await;
        // Not ready: a webhook without a subscribed field sends nothing.
        register(
            &api,
            "TicketWebhooks",
            &url,
            "idle-key",
            &[(1, false, true)],
            &[],
        )
        .await;
        let hooks = sandbox.registered_webhooks();

        // A technician's status change: one event, signed with the ticket
        // webhook's key, its Guid, the changed and the display-always fields.
        sandbox.update_as_technician(ticket, tech, &[("status", json!(8))]);
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got.headers["X-Hook-Signature"].to_str().unwrap(),
            hmac("ticket-key", &got.body)
        );
        let event: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(event["EntityType"], "Ticket");
        assert_eq!(event["Id"], ticket);
        assert_eq!(event["Guid"], hooks[0].guid);
        assert_eq!(event["Fields"]["Status"], "8");
        assert!(event["Fields"]["TicketNumber"].is_string());
        assert_eq!(event["PersonID"], tech);

        // A change of a field nobody subscribed to sends nothing; nor does a
        // change by the excluded API user.
        sandbox.update_as_technician(ticket, tech, &[("title", json!("Printer jam"))]);
        sandbox.update_as_technician(ticket, api_user, &[("status", json!(5))]);
        // A technician's note: the note webhook's event names the ticket.
        let note = sandbox.add_note(ticket, tech, "Called", "Customer called back", false);
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got.headers["X-Hook-Signature"].to_str().unwrap(),
            hmac("note-key", &got.body)
        );
        let event: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(event["EntityType"], "TicketNote");
        assert_eq!(event["Id"], note);
        assert_eq!(event["Guid"], hooks[1].guid);
        assert_eq!(event["Fields"]["TicketID"], ticket.to_string());
        sandbox.webhook_settled(Duration::from_secs(5)).await;
        assert!(rx.try_recv().is_err(), "nothing else was sent");
    }
}
