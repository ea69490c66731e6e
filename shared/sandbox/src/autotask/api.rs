//! The HTTP API: zone discovery, authentication, and the ticket, note,
//! resource and field-information endpoints.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::assets::ticket_ci_problem;
use super::db::{
    apply_update, as_i64, created, get_ci, insert_note, new_ticket, note_json, reference_error,
    ticket_json, validate_ticket_fields, Change, Creating, Entity, NOTE_DESCRIPTION_MAX,
    NOTE_TITLE_MAX,
};
use super::picklists::{active_pick, note_fields, ticket_fields, Pick, NOTE_TYPE, PUBLISH};
use super::query::{query, query_next};
use super::{Shared, API_ROOT};
use crate::faults::apply_faults;
use crate::recording::record_requests;

pub(super) type Ctx = Arc<Shared>;

pub(super) fn router(shared: Ctx) -> Router {
    let mut api = Router::new()
        .route("/Tickets", post(create_ticket).patch(update_ticket))
        .route("/Tickets/{id}", get(get_ticket))
        .route("/Resources/{id}", get(get_resource))
        .route("/Tickets/{id}/Notes", get(list_notes).post(create_note))
        .route(
            "/Tickets/entityInformation/fields",
            get(|State(s): State<Ctx>| async move {
                let required = s.config().required_ticket_fields.clone();
                Json(ticket_fields(&required))
            }),
        )
        .route(
            "/TicketNotes/entityInformation/fields",
            get(|| async { Json(note_fields()) }),
        );
    api = super::assets::routes(api);
    api = super::webhooks::routes(api);
    for entity in Entity::ALL {
        api = api
            .route(
                &format!("/{}/query", entity.path()),
                post(
                    move |State(s): State<Ctx>, body: Bytes| async move { query(s, entity, body) },
                ),
            )
            .route(
                &format!("/{}/query/next", entity.path()),
                // The next page of a POST query is fetched by POSTing the
                // same query body again; Autotask answers a GET with 405.
                post(
                    move |State(s): State<Ctx>,
                          Query(params): Query<HashMap<String, String>>,
                          body: Bytes| async move {
                        query_next(s, entity, params, body)
                    },
                )
                .get(|| async { method_not_allowed("GET") }),
            );
    }
    // Outermost first: count every call, then faults, then authentication.
    let api = api
        .layer(from_fn_with_state(shared.clone(), require_auth))
        .layer(from_fn_with_state(shared.faults.clone(), apply_faults))
        .layer(from_fn_with_state(shared.clone(), count_call));
    Router::new()
        .route(
            "/atservicesrest/v1.0/zoneInformation",
            get(zone_information),
        )
        .route(
            "/ATServicesRest/V1.0/zoneInformation",
            get(zone_information),
        )
        .nest(API_ROOT, api)
        // Outermost, so every request is recorded, faulted ones included.
        .layer(from_fn_with_state(shared.requests.clone(), record_requests))
        .with_state(shared)
}

/// ASP.NET Web API's answer to a method a route does not support.
pub(super) fn method_not_allowed(method: &str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({
            "Message": format!("The requested resource does not support http method '{method}'.")
        })),
    )
        .into_response()
}

pub(super) fn errors(status: StatusCode, messages: Vec<String>) -> Response {
    (status, Json(json!({ "errors": messages }))).into_response()
}

pub(super) async fn count_call(State(s): State<Ctx>, request: Request, next: Next) -> Response {
    s.api_calls.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

/// What Autotask says when the user and secret are right but the
/// integration code is not (its SOAP API's text; the REST API answers 500).
pub(super) const INVALID_INTEGRATION_CODE: &str = "IntegrationCode is invalid.";

pub(super) async fn require_auth(State(s): State<Ctx>, request: Request, next: Next) -> Response {
    let (signed_in, code_ok) = {
        let config = s.config();
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        (
            header("UserName").is_some_and(|u| u.eq_ignore_ascii_case(&config.username))
                && header("Secret") == Some(config.secret.as_str()),
            header("ApiIntegrationCode") == Some(config.integration_code.as_str()),
        )
    };
    if !signed_in {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // Autotask checks the tracking identifier after the user and secret, and
    // reports a wrong one as a 500 rather than a 401.
    if !code_ok {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec![INVALID_INTEGRATION_CODE.to_owned()],
        );
    }
    next.run(request).await
}

pub(super) async fn zone_information(
    State(s): State<Ctx>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let known = {
        let config = s.config();
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("user"))
            .is_some_and(|(_, user)| user.eq_ignore_ascii_case(&config.username))
    };
    if !known {
        // Autotask answers an unknown or blank user name with a 500.
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec!["Zone information could not be determined for the user.".to_owned()],
        );
    }
    let base = s.base_url();
    Json(json!({
        "zoneName": "Sandbox Zone",
        "url": format!("{base}/ATServicesRest/"),
        "webUrl": format!("{base}/"),
        "ci": 0,
    }))
    .into_response()
}

pub(super) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("The request body must be a JSON object.".to_owned()),
        Err(e) => Err(format!("The request body is not valid JSON: {e}")),
    }
}

pub(super) async fn get_resource(State(s): State<Ctx>, Path(id): Path<i64>) -> Response {
    let resource = s.db().resources.get(&id).map(|name| {
        let (first, last) = name.split_once(' ').unwrap_or((name.as_str(), ""));
        json!({"id": id, "firstName": first, "lastName": last, "isActive": true})
    });
    Json(json!({ "item": resource })).into_response()
}

pub(super) async fn get_ticket(State(s): State<Ctx>, Path(id): Path<i64>) -> Response {
    let ticket = s.db().tickets.get(&id).map(ticket_json);
    Json(json!({ "item": ticket })).into_response()
}

pub(super) async fn create_ticket(State(s): State<Ctx>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let (actor, required) = {
        let config = s.config();
        let required: Vec<String> = config
            .required_ticket_fields
            .iter()
            .chain(&config.unlisted_required_ticket_fields)
            .cloned()
            .collect();
        (config.api_resource_id, required)
    };
    let change = {
        let mut db = s.db();
        let fields = match validate_ticket_fields(
            &db,
            &body,
            Creating::Yes {
                required: &required,
            },
        ) {
            Ok(fields) => fields,
            Err(messages) => return errors(StatusCode::INTERNAL_SERVER_ERROR, messages),
        };
        let int = |name: &str| fields.get(name).and_then(Value::as_i64);
        if let Some(problem) = int("configurationItemID")
            .and_then(|ci| ticket_ci_problem(&db, ci, int("companyID").unwrap_or_default()))
        {
            return errors(StatusCode::INTERNAL_SERVER_ERROR, vec![problem]);
        }
        let ticket = new_ticket(&mut db, actor, Utc::now(), |t| {
            t.title = fields["title"].as_str().unwrap_or_default().to_owned();
            t.description = fields
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned);
            t.status = int("status").unwrap_or(1);
            t.priority = int("priority").unwrap_or(2);
            t.company_id = int("companyID").unwrap_or_default();
            t.queue_id = int("queueID");
            t.ticket_type = int("ticketType");
            t.source = int("source");
            t.billing_code_id = int("billingCodeID");
            t.assigned_resource_id = int("assignedResourceID");
            t.assigned_resource_role_id = int("assignedResourceRoleID");
            t.external_id = fields
                .get("externalID")
                .and_then(Value::as_str)
                .map(str::to_owned);
            t.configuration_item_id = int("configurationItemID");
        });
        created(&mut db, ticket)
    };
    let id = match &change {
        Change::Ticket { ticket, .. } => ticket.id,
        Change::Note { .. } => unreachable!("a ticket create yields a ticket change"),
    };
    s.fire(change, actor);
    Json(json!({ "itemId": id })).into_response()
}

pub(super) async fn update_ticket(State(s): State<Ctx>, body: Bytes) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let Some(id) = get_ci(&body, "id").and_then(as_i64) else {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec!["Missing Required Field: id".to_owned()],
        );
    };
    let actor = s.config().api_resource_id;
    let change = {
        let mut db = s.db();
        if !db.tickets.contains_key(&id) {
            return errors(
                StatusCode::NOT_FOUND,
                vec![format!("Ticket {id} does not exist.")],
            );
        }
        let fields = match validate_ticket_fields(&db, &body, Creating::No) {
            Ok(fields) => fields,
            Err(messages) => return errors(StatusCode::INTERNAL_SERVER_ERROR, messages),
        };
        if let Some(ci) = fields.get("configurationItemID").and_then(Value::as_i64) {
            let company = fields
                .get("companyID")
                .and_then(Value::as_i64)
                .unwrap_or(db.tickets[&id].company_id);
            if let Some(problem) = ticket_ci_problem(&db, ci, company) {
                return errors(StatusCode::INTERNAL_SERVER_ERROR, vec![problem]);
            }
        }
        apply_update(&mut db, id, &fields, Utc::now()).unwrap_or(None)
    };
    if let Some(change) = change {
        s.fire(change, actor);
    }
    Json(json!({ "itemId": id })).into_response()
}

pub(super) async fn list_notes(
    State(s): State<Ctx>,
    Path(ticket_id): Path<i64>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let offset: usize = params
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let page_size = s.config().note_page_size.max(1);
    let notes: Vec<Value> = {
        let db = s.db();
        if !db.tickets.contains_key(&ticket_id) {
            return errors(
                StatusCode::NOT_FOUND,
                vec![format!("Ticket {ticket_id} does not exist.")],
            );
        }
        db.notes
            .values()
            .filter(|n| n.ticket_id == ticket_id)
            .map(note_json)
            .collect()
    };
    let link = |offset: usize| {
        format!(
            "{}/ATServicesRest/V1.0/Tickets/{ticket_id}/Notes?offset={offset}",
            s.base_url()
        )
    };
    page(notes, offset, page_size, link)
}

pub(super) async fn create_note(
    State(s): State<Ctx>,
    Path(ticket_id): Path<i64>,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body) {
        Ok(body) => body,
        Err(message) => return errors(StatusCode::BAD_REQUEST, vec![message]),
    };
    let mut messages = Vec::new();
    if let Some(other) = get_ci(&body, "ticketID")
        .and_then(as_i64)
        .filter(|t| *t != ticket_id)
    {
        messages.push(format!(
            "ticketID {other} does not match the parent ticket {ticket_id}"
        ));
    }
    let description = get_ci(&body, "description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if description.trim().is_empty() {
        messages.push("Missing Required Field: description".to_owned());
    } else if description.chars().count() > NOTE_DESCRIPTION_MAX {
        messages.push(format!(
            "description exceeds the maximum length of {NOTE_DESCRIPTION_MAX} characters"
        ));
    }
    let title = get_ci(&body, "title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if title.chars().count() > NOTE_TITLE_MAX {
        messages.push(format!(
            "title exceeds the maximum length of {NOTE_TITLE_MAX} characters"
        ));
    }
    let mut picked = |name: &str, picks: &[Pick]| match get_ci(&body, name).map(as_i64) {
        None => {
            messages.push(format!("Missing Required Field: {name}"));
            0
        }
        Some(Some(v)) if active_pick(picks, v) => v,
        Some(_) => {
            messages.push(reference_error(name));
            0
        }
    };
    let note_type = picked("noteType", NOTE_TYPE);
    let publish = picked("publish", PUBLISH);
    if !messages.is_empty() {
        return errors(StatusCode::INTERNAL_SERVER_ERROR, messages);
    }
    let actor = s.config().api_resource_id;
    let change = {
        let mut db = s.db();
        insert_note(
            &mut db,
            ticket_id,
            title,
            description,
            note_type,
            publish,
            actor,
            Utc::now(),
        )
    };
    let Some(change) = change else {
        return errors(
            StatusCode::NOT_FOUND,
            vec![format!("Ticket {ticket_id} does not exist.")],
        );
    };
    let id = match &change {
        Change::Note { note, .. } => note.id,
        Change::Ticket { .. } => unreachable!("insert_note yields a note change"),
    };
    s.fire(change, actor);
    Json(json!({ "itemId": id })).into_response()
}

pub(super) fn page(
    rows: Vec<Value>,
    offset: usize,
    size: usize,
    link: impl Fn(usize) -> String,
) -> Response {
    let end = (offset + size).min(rows.len());
    let items: Vec<Value> = rows
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let next = (end < rows.len()).then(|| link(end));
    let prev = (offset > 0).then(|| link(offset.saturating_sub(size)));
    Json(json!({
        "items": items,
        "pageDetails": {
            "count": items.len(),
            "requestCount": size,
            "prevPageUrl": prev,
            "nextPageUrl": next,
        }
    }))
    .into_response()
}
