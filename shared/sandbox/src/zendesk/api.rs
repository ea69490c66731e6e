//! The HTTP API: routes, authentication, the ticket and comment endpoints,
//! and Zendesk's error bodies.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::export::export_tickets;
use super::oauth;
use super::state::{stamp, CreateSpec, Hooks, Inner, NewComment, StoredComment, Update};
use super::webhooks;
use super::{Role, Shared, MAX_PAGE};
use crate::faults::apply_faults;
use crate::recording::record_requests;

/// A 4xx answer in Zendesk's shape.
#[derive(Debug)]
pub(super) enum ApiFailure {
    NotFound,
    BadRequest(String),
    Invalid(Vec<(&'static str, String)>),
    /// 403: the API user's role may not do this (for example a non-admin
    /// asking for the incremental export).
    Forbidden,
    /// 409: another request updated the same ticket at the same moment.
    Conflict,
    /// 400 from the Webhooks API, in its `errors` shape: (code, detail).
    WebhookInvalid(Vec<(&'static str, String)>),
    /// 429 with this `Retry-After` (seconds).
    RateLimited {
        retry_after: u64,
        description: &'static str,
    },
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        match self {
            ApiFailure::NotFound => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "RecordNotFound", "description": "Not found"})),
            )
                .into_response(),
            ApiFailure::Forbidden => (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "Forbidden",
                    "description": "You do not have access to this page. Please contact the account owner of this help desk for further help."})),
            )
                .into_response(),
            ApiFailure::Conflict => (
                StatusCode::CONFLICT,
                Json(json!({"error": "UpdateConflict",
                    "description": "The ticket was updated by another request at the same time. Please try again."})),
            )
                .into_response(),
            ApiFailure::RateLimited {
                retry_after,
                description,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after.to_string())],
                Json(json!({"error": "APIRateLimitExceeded", "description": description})),
            )
                .into_response(),
            ApiFailure::WebhookInvalid(problems) => {
                let errors: Vec<Value> = problems
                    .into_iter()
                    .map(|(code, detail)| json!({"code": code, "title": "Invalid webhook", "detail": detail}))
                    .collect();
                (StatusCode::BAD_REQUEST, Json(json!({"errors": errors}))).into_response()
            }
            ApiFailure::BadRequest(description) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "InvalidValue", "description": description})),
            )
                .into_response(),
            ApiFailure::Invalid(problems) => {
                let mut details = Map::new();
                for (field, description) in problems {
                    let entry = details.entry(field).or_insert_with(|| json!([]));
                    if let Value::Array(list) = entry {
                        list.push(json!({"description": description, "error": "InvalidValue"}));
                    }
                }
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({
                        "error": "RecordInvalid",
                        "description": "Record validation errors",
                        "details": details,
                    })),
                )
                    .into_response()
            }
        }
    }
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let faults = shared.faults.clone();
    Router::new()
        .route("/api/v2/tickets.json", post(create_ticket_api))
        // `{id}` is `123.json` here; the same parameter name must be used at
        // this position in both routes.
        .route(
            "/api/v2/tickets/{id}",
            get(show_ticket).put(update_ticket_api),
        )
        .route("/api/v2/tickets/{id}/comments.json", get(list_comments))
        .route("/api/v2/users/me.json", get(show_current_user))
        .route("/api/v2/users/me", get(show_current_user))
        .route(
            "/api/v2/incremental/tickets/cursor.json",
            get(export_tickets),
        )
        .route("/api/v2/organizations.json", get(list_organizations))
        .route("/api/v2/organizations", get(list_organizations))
        // The Webhooks API takes no `.json` suffix.
        .route(
            "/api/v2/webhooks",
            get(webhooks::list_webhooks).post(webhooks::create_webhook),
        )
        .route(
            "/api/v2/webhooks/{id}",
            get(webhooks::show_webhook).delete(webhooks::delete_webhook),
        )
        .route(
            "/api/v2/webhooks/{id}/signing_secret",
            get(webhooks::show_signing_secret).post(webhooks::reset_signing_secret),
        )
        .route("/oauth/authorizations/new", get(oauth::authorize_page))
        .route("/oauth/authorizations", post(oauth::decide))
        .route("/oauth/tokens", post(oauth::token))
        .fallback(|| async { ApiFailure::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            oauth::enforce_scope,
        ))
        .layer(axum::middleware::from_fn_with_state(faults, apply_faults))
        // Outermost, so faulted requests are recorded too.
        .layer(axum::middleware::from_fn_with_state(
            shared.requests.clone(),
            record_requests,
        ))
        .with_state(shared)
}

pub(super) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "Couldn't authenticate you"})),
    )
        .into_response()
}

/// Checks credentials, counts the call, and runs `work` under the state lock;
/// webhooks are sent after the lock is released.
pub(super) fn with_api<F>(shared: &Shared, headers: &HeaderMap, work: F) -> Response
where
    F: FnOnce(&mut Inner) -> Result<(Response, Option<Hooks>), ApiFailure>,
{
    let outcome = {
        let mut inner = shared.state.lock().expect("sandbox state poisoned");
        if !inner.authorized(headers) {
            return unauthorized();
        }
        inner.api_calls += 1;
        work(&mut inner)
    };
    match outcome {
        Ok((response, hooks)) => {
            if let Some(hooks) = hooks {
                shared.send(hooks);
            }
            response
        }
        Err(failure) => failure.into_response(),
    }
}

pub(super) fn ticket_id_from(file: &str) -> Result<u64, ApiFailure> {
    file.strip_suffix(".json")
        .unwrap_or(file)
        .parse()
        .map_err(|_| ApiFailure::NotFound)
}

pub(super) async fn show_ticket(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_api(&shared, &headers, |inner| {
        let id = ticket_id_from(&file)?;
        let ticket = inner.tickets.get(&id).ok_or(ApiFailure::NotFound)?;
        let body = json!({"ticket": inner.ticket_json(ticket)});
        Ok((Json(body).into_response(), None))
    })
}

const UPDATE_LIMIT_EXCEEDED: &str =
    "Number of allowed ticket updates exceeded; Update Ticket allows 30 updates per ticket per user in 10 minutes and a per-account number a minute";

/// `GET /api/v2/users/me.json`: the authenticated user (the bridge's API user).
pub(super) async fn show_current_user(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    with_api(&shared, &headers, |inner| {
        let id = inner.api_user_id;
        let user = &inner.users[&id];
        let body = json!({"user": {
            "id": id,
            "url": format!("/api/v2/users/{id}.json"),
            "name": user.name,
            "email": user.email,
            "role": user.role.as_str(),
            "role_type": null,
            "active": true,
            "verified": true,
            "suspended": false,
            "authenticity_token": "sandbox-authenticity-token",
        }});
        Ok((Json(body).into_response(), None))
    })
}

pub(super) fn parse_ticket_body(body: &[u8]) -> Result<Map<String, Value>, ApiFailure> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ApiFailure::BadRequest("Request body is not valid JSON".to_owned()))?;
    match value.get("ticket") {
        Some(Value::Object(ticket)) => Ok(ticket.clone()),
        _ => Err(ApiFailure::BadRequest(
            "Request body must contain a ticket object".to_owned(),
        )),
    }
}

/// Reads the writable fields of a `{"ticket":{..}}` body into an update;
/// type errors become validation problems.
pub(super) fn parse_update(
    inner: &Inner,
    ticket: &Map<String, Value>,
    problems: &mut Vec<(&'static str, String)>,
) -> Update {
    let mut update = Update::default();
    let text = |key: &'static str, problems: &mut Vec<(&'static str, String)>| match ticket.get(key)
    {
        None => None,
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => Some(Some(n.to_string())),
        Some(_) => {
            problems.push((key, format!("{key}: must be a string")));
            None
        }
    };
    update.subject = text("subject", problems).map(Option::unwrap_or_default);
    update.priority = text("priority", problems);
    update.status = text("status", problems).flatten();
    update.external_id = text("external_id", problems);
    if let Some(fields) = ticket.get("custom_fields") {
        match fields.as_array() {
            Some(list) => {
                for field in list {
                    match field.get("id").and_then(Value::as_u64) {
                        Some(id) => update
                            .custom_fields
                            .push((id, field.get("value").cloned().unwrap_or(Value::Null))),
                        None => problems
                            .push(("custom_fields", "Custom field: id is invalid".to_owned())),
                    }
                }
            }
            None => problems.push((
                "custom_fields",
                "Custom fields: must be an array".to_owned(),
            )),
        }
    }
    if let Some(comment) = ticket.get("comment") {
        let body = comment
            .get("body")
            .or_else(|| comment.get("html_body"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let public = comment
            .get("public")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let author_id = comment
            .get("author_id")
            .and_then(Value::as_u64)
            .unwrap_or(inner.api_user_id);
        update.comment = Some(NewComment {
            body,
            public,
            author_id,
        });
    }
    update
}

pub(super) async fn update_ticket_api(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_api(&shared, &headers, |inner| {
        let id = ticket_id_from(&file)?;
        let actor = inner.api_user_id;
        inner
            .take_update_call(id, actor)
            .map_err(|retry_after| ApiFailure::RateLimited {
                retry_after,
                description: UPDATE_LIMIT_EXCEEDED,
            })?;
        if inner.conflicts_pending > 0 {
            inner.conflicts_pending -= 1;
            return Err(ApiFailure::Conflict);
        }
        if !inner.tickets.contains_key(&id) {
            return Err(ApiFailure::NotFound);
        }
        let fields = parse_ticket_body(&body)?;
        let mut problems = Vec::new();
        let update = parse_update(inner, &fields, &mut problems);
        if !problems.is_empty() {
            return Err(ApiFailure::Invalid(problems));
        }
        let (audit, hooks) = inner.apply(id, update, actor, true)?;
        let ticket = &inner.tickets[&id];
        let body = json!({"ticket": inner.ticket_json(ticket), "audit": audit.json});
        Ok((Json(body).into_response(), Some(hooks)))
    })
}

pub(super) async fn create_ticket_api(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_api(&shared, &headers, |inner| {
        let fields = parse_ticket_body(&body)?;
        let mut problems = Vec::new();
        let update = parse_update(inner, &fields, &mut problems);
        let comment = update.comment.filter(|c| !c.body.trim().is_empty());
        if comment.is_none() {
            problems.push(("description", "Description: cannot be blank".to_owned()));
        }
        let requester_id = match fields.get("requester") {
            Some(requester) => {
                let name = requester
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("Requester");
                inner.user_named(name, Role::EndUser)
            }
            None => fields
                .get("requester_id")
                .and_then(Value::as_u64)
                .unwrap_or(inner.api_user_id),
        };
        if !inner.users.contains_key(&requester_id) {
            problems.push(("requester", "Requester: is not a valid user".to_owned()));
        }
        let probe = Update {
            priority: update.priority.clone(),
            status: update.status.clone(),
            ..Update::default()
        };
        inner.validate(&probe, &mut problems);
        let Some(comment) = comment.filter(|_| problems.is_empty()) else {
            return Err(ApiFailure::Invalid(problems));
        };
        let spec = CreateSpec {
            subject: update.subject.unwrap_or_default(),
            comment,
            priority: update.priority.flatten(),
            status: update.status.unwrap_or_else(|| "new".to_owned()),
            requester_id,
            external_id: update.external_id.flatten(),
            custom_fields: update.custom_fields.into_iter().collect(),
        };
        let (ticket, audit, hooks) = inner.create(spec, true);
        let body = json!({"ticket": inner.ticket_json(&ticket), "audit": audit.json});
        Ok((
            (StatusCode::CREATED, Json(body)).into_response(),
            Some(hooks),
        ))
    })
}

/// A `page[size]` (at most 100) and `page[after]` cursor (the last id seen)
/// from a cursor-paged list's query.
fn cursor_params(query: Option<&str>) -> Result<(usize, u64), ApiFailure> {
    let params: HashMap<String, String> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| ApiFailure::BadRequest("Invalid query string".to_owned()))?;
    let size = match params.get("page[size]") {
        None => MAX_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ApiFailure::BadRequest("page[size] must be a positive integer".to_owned())
            })?
            .min(MAX_PAGE),
    };
    let after = match params.get("page[after]") {
        None => 0,
        Some(cursor) => URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|raw| raw.parse::<u64>().ok())
            .ok_or_else(|| {
                ApiFailure::BadRequest("page[after] is not a valid cursor".to_owned())
            })?,
    };
    Ok((size, after))
}

/// `GET /api/v2/organizations.json`: cursor pages of the account's
/// organizations (agents may list them).
pub(super) async fn list_organizations(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let host = request_host(&headers);
    with_api(&shared, &headers, |inner| {
        let (size, after) = cursor_params(query.as_deref())?;
        let rest: Vec<(&u64, &String)> = inner
            .organizations
            .range(after.saturating_add(1)..)
            .collect();
        let page = &rest[..rest.len().min(size)];
        let has_more = rest.len() > page.len();
        let cursor = |id: u64| URL_SAFE_NO_PAD.encode(id.to_string());
        let after_cursor = page.last().map(|(id, _)| cursor(**id));
        let before_cursor = page.first().map(|(id, _)| cursor(**id));
        let organizations: Vec<Value> = page
            .iter()
            .map(|(id, name)| {
                json!({
                    "id": id,
                    "url": format!("http://{host}/api/v2/organizations/{id}.json"),
                    "name": name,
                    "shared_tickets": false,
                    "shared_comments": false,
                    "external_id": null,
                    "domain_names": [],
                    "details": "",
                    "notes": "",
                    "group_id": null,
                    "tags": [],
                    "organization_fields": {},
                })
            })
            .collect();
        let link = |dir: &str, c: &Option<String>| {
            c.as_ref().map(|c| {
                format!("http://{host}/api/v2/organizations.json?page[size]={size}&page[{dir}]={c}")
            })
        };
        let body = json!({
            "organizations": organizations,
            "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "next": if has_more { link("after", &after_cursor) } else { None },
                "prev": link("before", &before_cursor),
            },
        });
        Ok((Json(body).into_response(), None))
    })
}

/// The host the caller addressed, for the absolute URLs of next pages.
pub(super) fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned()
}

pub(super) async fn list_comments(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let host = request_host(&headers);
    with_api(&shared, &headers, |inner| {
        let id: u64 = id.parse().map_err(|_| ApiFailure::NotFound)?;
        if !inner.tickets.contains_key(&id) {
            return Err(ApiFailure::NotFound);
        }
        let params: HashMap<String, String> =
            serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
                .map_err(|_| ApiFailure::BadRequest("Invalid query string".to_owned()))?;
        let size = match params.get("page[size]") {
            None => MAX_PAGE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ApiFailure::BadRequest("page[size] must be a positive integer".to_owned())
                })?
                .min(MAX_PAGE),
        };
        let after = match params.get("page[after]") {
            None => 0,
            Some(cursor) => URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|raw| raw.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiFailure::BadRequest("page[after] is not a valid cursor".to_owned())
                })?,
        };
        let with_users = params
            .get("include")
            .is_some_and(|inc| inc.split(',').any(|i| i.trim() == "users"));

        let all = inner
            .comments
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let rest: Vec<&StoredComment> = all.iter().filter(|c| c.id > after).collect();
        let page = &rest[..rest.len().min(size)];
        let has_more = rest.len() > page.len();
        let cursor = |c: &StoredComment| URL_SAFE_NO_PAD.encode(c.id.to_string());
        let after_cursor = page.last().map(|c| cursor(c));
        let before_cursor = page.first().map(|c| cursor(c));
        let include = if with_users { "&include=users" } else { "" };
        let link = |dir: &str, c: &Option<String>| {
            c.as_ref().map(|c| {
                format!("http://{host}/api/v2/tickets/{id}/comments.json?page[size]={size}&page[{dir}]={c}{include}")
            })
        };
        let comments: Vec<Value> = page
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "Comment",
                    "author_id": c.author_id,
                    "body": c.body,
                    "html_body": format!("<div class=\"zd-comment\"><p>{}</p></div>", c.body),
                    "plain_body": c.body,
                    "public": c.public,
                    "attachments": [],
                    "via": {"channel": if c.via_api { "api" } else { "web" }},
                    "created_at": stamp(c.created_at),
                })
            })
            .collect();
        let mut body = json!({
            "comments": comments,
            "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "next": if has_more { link("after", &after_cursor) } else { None },
                "prev": link("before", &before_cursor),
            },
        });
        if with_users {
            let mut ids: Vec<u64> = page.iter().map(|c| c.author_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let users: Vec<Value> = ids
                .iter()
                .filter_map(|uid| inner.users.get(uid).map(|u| (uid, u)))
                .map(|(uid, u)| {
                    json!({"id": uid, "name": u.name, "email": u.email,
                        "role": u.role.as_str()})
                })
                .collect();
            body["users"] = Value::Array(users);
        }
        Ok((Json(body).into_response(), None))
    })
}
