//! The HTTP side: routing under the (changeable) codebase, companyinfo,
//! authentication, CW-shaped errors and faults, and the endpoints.
//!
//! The outer router sends every request to [`dispatch`], which serves
//! companyinfo and the callback key, and hands `/{codebase}apis/3.0/…` to the
//! API router with the prefix stripped and the rest lower-cased (IIS matches
//! paths case-insensitively). The API router's layers, outermost first: the
//! fault middleware (its 429/5xx/504 rewritten into CW's error shape), the
//! authentication check, then the handlers.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tower::ServiceExt as _;

use super::db::{now, Db};
use super::query::{
    ListRequest, BOARDS, CALLBACKS, COMPANIES, CONFIGURATIONS, MEMBERS, NOTES, PRIORITIES,
    QUERY_MAX, STATUSES, TEAMS, TICKETS,
};
use super::Shared;
use crate::faults::{apply_faults, Faults};
use crate::recording::record_requests;

pub(super) type Ctx = Arc<Shared>;

// ---------------------------------------------------------------------------
// Errors (fact sheet §11)
// ---------------------------------------------------------------------------

/// One inner error of an error body.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FieldError {
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) resource: &'static str,
    pub(super) field: String,
}

impl FieldError {
    pub(super) fn missing(resource: &'static str, field: &str) -> Self {
        Self {
            code: "MissingRequiredField",
            message: format!("{field} is required."),
            resource,
            field: field.to_owned(),
        }
    }

    pub(super) fn invalid(resource: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self {
            code: "InvalidField",
            message: message.into(),
            resource,
            field: field.to_owned(),
        }
    }

    pub(super) fn with_message(self, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..self
        }
    }
}

/// An error answer: `{"code","message","errors":[…]}`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) errors: Vec<FieldError>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// 400 `InvalidObject` with the field errors.
    pub(super) fn invalid(resource: &'static str, errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "InvalidObject",
                format!("{resource} object is invalid"),
            )
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| {
                json!({"code": e.code, "message": e.message, "resource": e.resource,
                    "field": e.field})
            })
            .collect();
        (
            self.status,
            Json(json!({"code": self.code, "message": self.message, "errors": errors})),
        )
            .into_response()
    }
}

type Answer = Result<Response, ApiError>;

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

/// The full path of an API request as the client sent it (before the
/// codebase prefix was stripped), for `Link` headers.
#[derive(Debug, Clone)]
pub(super) struct ExternalPath(pub(super) String);

pub(super) fn router(shared: Ctx) -> Router {
    let api = api_router(shared.clone());
    Router::new()
        .fallback(move |State(s): State<Ctx>, request: Request| {
            let api = api.clone();
            async move { dispatch(s, api, request).await }
        })
        // Outermost, so every request is recorded, faulted ones included.
        .layer(from_fn_with_state(shared.requests.clone(), record_requests))
        .with_state(shared)
}

async fn dispatch(s: Ctx, api: Router, mut request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let lower = path.to_ascii_lowercase();
    let codebase = s.config().codebase.to_ascii_lowercase();
    let get_only = |method: &Method| {
        (method != Method::GET).then(|| {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("The requested resource does not support http method '{method}'."),
            )
            .into_response()
        })
    };
    if let Some(company) = lower.strip_prefix("/login/companyinfo/") {
        if let Some(refused) = get_only(request.method()) {
            return refused;
        }
        return company_info(&s, company);
    }
    if lower == format!("/{codebase}callbackkey/index.rails") {
        if let Some(refused) = get_only(request.method()) {
            return refused;
        }
        return s.signing_key_response(request.uri().query());
    }
    let prefix = format!("/{codebase}apis/3.0");
    let rest = match lower.strip_prefix(&prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_owned(),
        _ => {
            return ApiError::not_found(format!("The resource {path} was not found."))
                .into_response()
        }
    };
    let target = match request.uri().query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest,
    };
    let Ok(uri) = Uri::builder().path_and_query(target).build() else {
        return ApiError::bad_request("The request URI is not valid.").into_response();
    };
    *request.uri_mut() = uri;
    request.extensions_mut().insert(ExternalPath(path));
    match api.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn api_router(shared: Ctx) -> Router {
    Router::new()
        .route("/service/tickets", get(list_tickets).post(create_ticket))
        .route("/service/tickets/count", get(count_tickets))
        .route("/service/tickets/{id}", get(get_ticket).patch(patch_ticket))
        .route(
            "/service/tickets/{id}/notes",
            get(list_notes).post(create_note),
        )
        .route("/service/tickets/{id}/notes/count", get(count_notes))
        .route("/service/tickets/{id}/notes/{note}", get(get_note))
        .route("/service/boards", get(list_boards))
        .route("/service/boards/count", get(count_boards))
        .route("/service/boards/{id}", get(get_board))
        .route("/service/boards/{id}/statuses", get(list_statuses))
        .route("/service/boards/{id}/statuses/count", get(count_statuses))
        .route("/service/boards/{id}/teams", get(list_teams))
        .route("/service/priorities", get(list_priorities))
        .route("/service/priorities/count", get(count_priorities))
        .route("/service/priorities/{id}", get(get_priority))
        .route("/company/companies", get(list_companies))
        .route("/company/companies/count", get(count_companies))
        .route("/company/companies/{id}", get(get_company))
        .route("/company/configurations", get(list_configurations))
        .route("/company/configurations/count", get(count_configurations))
        .route("/company/configurations/{id}", get(get_configuration))
        .route("/system/members", get(list_members))
        .route("/system/members/count", get(count_members))
        .route("/system/members/{id}", get(get_member))
        .route("/system/info", get(system_info))
        .route(
            "/system/callbacks",
            get(list_callbacks).post(create_callback),
        )
        .route("/system/callbacks/count", get(count_callbacks))
        .route(
            "/system/callbacks/{id}",
            get(get_callback).delete(delete_callback),
        )
        .fallback(|uri: Uri| async move {
            ApiError::not_found(format!("The resource {} was not found.", uri.path()))
        })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("The requested resource does not support http method '{method}'."),
            )
        })
        // Outermost last: faults, then the marker, then authentication.
        .layer(from_fn_with_state(shared.clone(), require_auth))
        .layer(from_fn(mark_passed))
        .layer(from_fn_with_state(shared.faults.clone(), cw_faults))
        .with_state(shared)
}

// ---------------------------------------------------------------------------
// Middleware
// ---------------------------------------------------------------------------

/// Marks responses that got past the fault middleware.
#[derive(Debug, Clone, Copy)]
struct Passed;

async fn mark_passed(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.extensions_mut().insert(Passed);
    response
}

/// The shared fault middleware, with the answers it makes up (429, 500,
/// 504) given ConnectWise's error shape; `Retry-After` is kept.
async fn cw_faults(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let response = apply_faults(State(faults), request, next).await;
    if response.extensions().get::<Passed>().is_some() {
        return response;
    }
    let status = response.status();
    let (code, message) = match status {
        StatusCode::TOO_MANY_REQUESTS => ("TooManyRequests", "Rate limit exceeded (sandbox fault)"),
        StatusCode::GATEWAY_TIMEOUT => ("GatewayTimeout", "The request timed out (sandbox fault)"),
        _ => (
            "ConnectWiseApi",
            "An internal server error occurred (sandbox fault)",
        ),
    };
    let mut answer = ApiError::new(status, code, message).into_response();
    if let Some(retry_after) = response.headers().get(header::RETRY_AFTER) {
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after.clone());
    }
    answer
}

/// `Authorization: Basic base64("{company}+{public}:{private}")` and a
/// non-empty `clientId` (fact sheet §2), else 401; then the query-string
/// length (§3). Counts the calls it lets through.
async fn require_auth(State(s): State<Ctx>, request: Request, next: Next) -> Response {
    let signed_in = {
        let config = s.config();
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(basic_credentials)
            .is_some_and(|(user, password)| {
                user.split_once('+').is_some_and(|(company, public)| {
                    company.eq_ignore_ascii_case(&config.company_id)
                        && public == config.public_key
                        && password == config.private_key
                })
            })
    };
    if !signed_in {
        return ApiError::unauthorized(
            "Authorization is missing or invalid: expected Basic \
             base64(\"{company}+{publicKey}:{privateKey}\")",
        )
        .into_response();
    }
    let client_id = request
        .headers()
        .get("clientid")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    if !client_id {
        return ApiError::unauthorized("The clientId header is required on every API call.")
            .into_response();
    }
    let query_length = request.uri().query().map_or(0, str::len);
    if query_length > QUERY_MAX {
        return ApiError::bad_request(format!(
            "The query string is {query_length} characters long; keep it under {QUERY_MAX} \
             (split long in (…) lists into batches)."
        ))
        .into_response();
    }
    s.api_calls.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

/// `(user, password)` of a Basic `Authorization` value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl FromRequestParts<Ctx> for ListRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Ctx) -> Result<Self, ApiError> {
        let path = parts
            .extensions
            .get::<ExternalPath>()
            .map(|p| p.0.clone())
            .unwrap_or_else(|| parts.uri.path().to_owned());
        let params = match parts.uri.query() {
            None => Vec::new(),
            Some(query) => serde_urlencoded::from_str(query).map_err(|e| {
                ApiError::bad_request(format!("The query string is not valid: {e}"))
            })?,
        };
        let forward_only = parts
            .headers
            .get("pagination-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("forward-only"));
        Ok(ListRequest {
            params,
            forward_only,
            url: format!("{}{path}", s.site_url()),
        })
    }
}

// ---------------------------------------------------------------------------
// Unauthenticated: companyinfo
// ---------------------------------------------------------------------------

/// `GET /login/companyinfo/{company}` (fact sheet §1).
fn company_info(s: &Shared, company: &str) -> Response {
    let config = s.config();
    if !company.eq_ignore_ascii_case(&config.company_id) {
        return Json(Value::Null).into_response();
    }
    Json(json!({
        "CompanyName": format!("{} (sandbox)", config.company_id),
        "Codebase": config.codebase,
        "VersionCode": version_code(&config.codebase),
        "VersionNumber": "v4.6.12345",
        "CompanyID": config.company_id,
        "IsCloud": false,
    }))
    .into_response()
}

/// `v2025_1/` → `v2025.1`.
fn version_code(codebase: &str) -> String {
    codebase.trim_end_matches('/').replace('_', ".")
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}")))
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match parse_json(body)? {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("{what} {raw:?} was not found.")))
}

fn rows<T>(map: &BTreeMap<i64, T>, db: &Db, json: fn(&Db, &T) -> Value) -> Vec<Value> {
    map.values().map(|item| json(db, item)).collect()
}

fn one<T>(map: &BTreeMap<i64, T>, db: &Db, id: i64, json: fn(&Db, &T) -> Value) -> Option<Value> {
    map.get(&id).map(|item| json(db, item))
}

fn found(value: Option<Value>, what: &str, id: i64) -> Answer {
    value
        .map(|v| Json(v).into_response())
        .ok_or_else(|| ApiError::not_found(format!("{what} with id {id} was not found.")))
}

fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// A list endpoint over all rows of one table.
macro_rules! table_endpoints {
    ($list:ident, $count:ident, $get:ident, $table:ident, $json:path, $schema:expr, $what:literal) => {
        async fn $list(State(s): State<Ctx>, list: ListRequest) -> Answer {
            let rows = {
                let db = s.db();
                rows(&db.$table, &db, $json)
            };
            list.respond(rows, &$schema)
        }

        async fn $count(State(s): State<Ctx>, list: ListRequest) -> Answer {
            let rows = {
                let db = s.db();
                rows(&db.$table, &db, $json)
            };
            list.count(rows, &$schema)
        }

        async fn $get(State(s): State<Ctx>, Path(id): Path<String>) -> Answer {
            let id = parse_id(&id, $what)?;
            let value = {
                let db = s.db();
                one(&db.$table, &db, id, $json)
            };
            found(value, $what, id)
        }
    };
}

table_endpoints!(
    list_tickets,
    count_tickets,
    get_ticket,
    tickets,
    Db::ticket_json,
    TICKETS,
    "Ticket"
);
table_endpoints!(
    list_boards,
    count_boards,
    get_board,
    boards,
    Db::board_json,
    BOARDS,
    "Board"
);
table_endpoints!(
    list_priorities,
    count_priorities,
    get_priority,
    priorities,
    Db::priority_json,
    PRIORITIES,
    "Priority"
);
table_endpoints!(
    list_companies,
    count_companies,
    get_company,
    companies,
    Db::company_json,
    COMPANIES,
    "Company"
);
table_endpoints!(
    list_configurations,
    count_configurations,
    get_configuration,
    configurations,
    Db::configuration_json,
    CONFIGURATIONS,
    "Configuration"
);
table_endpoints!(
    list_members,
    count_members,
    get_member,
    members,
    Db::member_json,
    MEMBERS,
    "Member"
);
table_endpoints!(
    list_callbacks,
    count_callbacks,
    get_callback,
    callbacks,
    Db::callback_json,
    CALLBACKS,
    "Callback"
);

// ---------------------------------------------------------------------------
// Tickets and notes
// ---------------------------------------------------------------------------

async fn create_ticket(State(s): State<Ctx>, body: Bytes) -> Answer {
    let body = parse_object(&body)?;
    let actor = s.api_actor();
    let (id, value) = {
        let mut db = s.db();
        let new = db.ticket_from_body(&body)?;
        let id = db.insert_ticket(new, &actor, now());
        (id, db.ticket_json(&db.tickets[&id]))
    };
    s.fire("added", id, &actor.identifier);
    Ok(created(value))
}

async fn patch_ticket(State(s): State<Ctx>, Path(id): Path<String>, body: Bytes) -> Answer {
    let id = parse_id(&id, "Ticket")?;
    let body = parse_json(&body)?;
    let actor = s.api_actor();
    let (changed, value) = {
        let mut db = s.db();
        if !db.tickets.contains_key(&id) {
            return Err(ApiError::not_found(format!(
                "Ticket with id {id} was not found."
            )));
        }
        let changed = db.patch_ticket(id, &body, &actor, now())?.is_some();
        (changed, db.ticket_json(&db.tickets[&id]))
    };
    if changed {
        s.fire("updated", id, &actor.identifier);
    }
    Ok(Json(value).into_response())
}

fn ticket_notes(s: &Shared, ticket_id: &str) -> Result<Vec<Value>, ApiError> {
    let ticket_id = parse_id(ticket_id, "Ticket")?;
    let db = s.db();
    if !db.tickets.contains_key(&ticket_id) {
        return Err(ApiError::not_found(format!(
            "Ticket with id {ticket_id} was not found."
        )));
    }
    Ok(db
        .notes
        .values()
        .filter(|n| n.ticket_id == ticket_id)
        .map(|n| db.note_json(n))
        .collect())
}

async fn list_notes(State(s): State<Ctx>, Path(id): Path<String>, list: ListRequest) -> Answer {
    let rows = ticket_notes(&s, &id)?;
    list.respond(rows, &NOTES)
}

async fn count_notes(State(s): State<Ctx>, Path(id): Path<String>, list: ListRequest) -> Answer {
    let rows = ticket_notes(&s, &id)?;
    list.count(rows, &NOTES)
}

async fn get_note(State(s): State<Ctx>, Path((id, note)): Path<(String, String)>) -> Answer {
    let ticket_id = parse_id(&id, "Ticket")?;
    let note_id = parse_id(&note, "Note")?;
    let value = {
        let db = s.db();
        db.notes
            .get(&note_id)
            .filter(|n| n.ticket_id == ticket_id)
            .map(|n| db.note_json(n))
    };
    found(value, "Note", note_id)
}

async fn create_note(State(s): State<Ctx>, Path(id): Path<String>, body: Bytes) -> Answer {
    let ticket_id = parse_id(&id, "Ticket")?;
    let body = parse_object(&body)?;
    let actor = s.api_actor();
    let value = {
        let mut db = s.db();
        if !db.tickets.contains_key(&ticket_id) {
            return Err(ApiError::not_found(format!(
                "Ticket with id {ticket_id} was not found."
            )));
        }
        let new = db.note_from_body(ticket_id, &body)?;
        let member = new.member_id.unwrap_or(actor.member_id);
        let note = db.insert_note(ticket_id, &new.text, new.flags, member, &actor, now());
        db.note_json(&note)
    };
    // A note change arrives as a ticket `updated` (fact sheet §13.8).
    s.fire("updated", ticket_id, &actor.identifier);
    Ok(created(value))
}

// ---------------------------------------------------------------------------
// Boards
// ---------------------------------------------------------------------------

/// The rows of one board's statuses or teams; 404 for an unknown board.
fn board_rows(s: &Shared, board: &str, statuses: bool) -> Result<Vec<Value>, ApiError> {
    let board_id = parse_id(board, "Board")?;
    let db = s.db();
    if !db.boards.contains_key(&board_id) {
        return Err(ApiError::not_found(format!(
            "Board with id {board_id} was not found."
        )));
    }
    Ok(if statuses {
        db.statuses
            .values()
            .filter(|st| st.board_id == board_id)
            .map(|st| db.status_json(st))
            .collect()
    } else {
        db.teams
            .values()
            .filter(|t| t.board_id == board_id)
            .map(|t| db.team_json(t))
            .collect()
    })
}

async fn list_statuses(State(s): State<Ctx>, Path(id): Path<String>, list: ListRequest) -> Answer {
    list.respond(board_rows(&s, &id, true)?, &STATUSES)
}

async fn count_statuses(State(s): State<Ctx>, Path(id): Path<String>, list: ListRequest) -> Answer {
    list.count(board_rows(&s, &id, true)?, &STATUSES)
}

async fn list_teams(State(s): State<Ctx>, Path(id): Path<String>, list: ListRequest) -> Answer {
    list.respond(board_rows(&s, &id, false)?, &TEAMS)
}

// ---------------------------------------------------------------------------
// System
// ---------------------------------------------------------------------------

async fn system_info(State(s): State<Ctx>) -> Json<Value> {
    let codebase = s.config().codebase.clone();
    Json(json!({
        "version": format!("{}.12345", version_code(&codebase)),
        "isCloud": false,
        "serverTimeZone": "Eastern Standard Time",
    }))
}

async fn create_callback(State(s): State<Ctx>, body: Bytes) -> Answer {
    let body = parse_object(&body)?;
    let actor = s.api_actor();
    let mut db = s.db();
    let (entry, member_id) = db.callback_from_body(&body, actor.member_id)?;
    let id = db.insert_callback(entry, member_id, &actor, now());
    Ok(created(db.callback_json(&db.callbacks[&id])))
}

async fn delete_callback(State(s): State<Ctx>, Path(id): Path<String>) -> Answer {
    let id = parse_id(&id, "Callback")?;
    match s.db().callbacks.remove(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(ApiError::not_found(format!(
            "Callback with id {id} was not found."
        ))),
    }
}

/// Adds the `Link` header to a list answer.
pub(super) fn with_link(mut response: Response, links: &[(String, &str)]) -> Response {
    if links.is_empty() {
        return response;
    }
    let value = links
        .iter()
        .map(|(url, rel)| format!("<{url}>; rel=\"{rel}\""))
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}
