//! The tenant routes of the JSON API, over the same functions as the pages
//! (`tenants`, `setup_flow`, `mappings`). Every route with `{tenant}` goes
//! through `tenants::open` / `authorize` first: another tenant is 404.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use crate::accounts::CurrentUser;
use crate::assets;
use crate::error::AdminError;
use crate::mappings::{self, MappingsUpdate};
use crate::psa::Psa;
use crate::setup_flow::{self, AutotaskRequest, ConnectWiseRequest, ZendeskTokenRequest};
use crate::tenants::{self, HookKind, LogFilter, NewTenant};

type ApiResult = Result<Response, AdminError>;

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/tenants", get(list).post(create))
        .route("/api/tenants/{tenant}", get(dashboard))
        .route(
            "/api/tenants/{tenant}/checklist",
            get(checklist).post(confirm),
        )
        .route(
            "/api/tenants/{tenant}/zendesk",
            get(zendesk).post(zendesk_token),
        )
        .route("/api/tenants/{tenant}/zendesk/oauth", post(oauth_start))
        .route(
            "/api/tenants/{tenant}/zendesk/oauth/finish",
            post(oauth_finish),
        )
        .route(
            "/api/tenants/{tenant}/autotask",
            get(autotask).post(autotask_save),
        )
        .route(
            "/api/tenants/{tenant}/connectwise",
            get(connectwise).post(connectwise_save),
        )
        .route(
            "/api/tenants/{tenant}/connectwise/callback",
            post(connectwise_callback),
        )
        .route(
            "/api/tenants/{tenant}/mappings",
            get(mappings_get).post(mappings_save),
        )
        .route("/api/tenants/{tenant}/activate", post(activate))
        .route("/api/tenants/{tenant}/log", get(log))
        .route("/api/tenants/{tenant}/sync", post(sync_now))
        .route("/api/tenants/{tenant}/dead-letters", get(dead_letters))
        .route(
            "/api/tenants/{tenant}/dead-letters/{id}/replay",
            post(replay),
        )
        .route("/api/tenants/{tenant}/webhooks", get(webhooks))
        .route("/api/tenants/{tenant}/webhooks/rotate", post(rotate))
        .route("/api/tenants/{tenant}/webhooks/register", post(register))
        .route("/api/tenants/{tenant}/assets", get(assets_view))
        .route("/api/tenants/{tenant}/assets/check", post(assets_check))
        .route("/api/tenants/{tenant}/assets/sync", post(assets_sync))
}

fn ok<T: serde::Serialize>(value: T) -> ApiResult {
    Ok(Json(value).into_response())
}

async fn openapi(_user: CurrentUser) -> Json<serde_json::Value> {
    Json(super::openapi::document())
}

async fn list(State(state): State<AdminState>, user: CurrentUser) -> ApiResult {
    ok(tenants::list(&state, &user).await?)
}

async fn create(
    State(state): State<AdminState>,
    user: CurrentUser,
    Json(req): Json<NewTenant>,
) -> ApiResult {
    let created = tenants::create(&state, &user, &req).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn dashboard(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(tenants::dashboard(&state, &tenant).await?)
}

async fn checklist(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::checklist(&state, &tenant).await?)
}

#[derive(Deserialize)]
struct ConfirmRequest {
    confirmed: Vec<String>,
}

async fn confirm(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Json(req): Json<ConfirmRequest>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::confirm(&state, &user, &mut tenant, &req.confirmed).await?)
}

async fn zendesk(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::zendesk_status(&state, &tenant).await?)
}

async fn zendesk_token(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Json(req): Json<ZendeskTokenRequest>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::connect_zendesk_token(&state, &mut tenant, &req).await?)
}

#[derive(Deserialize)]
struct OAuthStart {
    base_url: String,
}

async fn oauth_start(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Json(req): Json<OAuthStart>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    let url = setup_flow::start_oauth(&state, &mut tenant, &req.base_url).await?;
    ok(json!({ "authorize_url": url }))
}

#[derive(Deserialize)]
pub(super) struct OAuthFinish {
    pub code: String,
    pub state: String,
}

async fn oauth_finish(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Json(req): Json<OAuthFinish>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::finish_oauth(&state, &mut tenant, &req.code, &req.state).await?)
}

async fn autotask(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::autotask_status(&state, &tenant).await?)
}

async fn autotask_save(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Json(req): Json<AutotaskRequest>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::connect_autotask(&state, &mut tenant, &req).await?)
}

async fn connectwise(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::connectwise_status(&state, &tenant).await?)
}

async fn connectwise_save(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Json(req): Json<ConnectWiseRequest>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::connect_connectwise(&state, &mut tenant, &req).await?)
}

async fn connectwise_callback(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::register_callback(&state, &mut tenant).await?)
}

#[derive(Deserialize)]
struct MappingsQuery {
    /// ConnectWise: the service board whose statuses the rows offer.
    #[serde(default)]
    board: Option<i64>,
}

async fn mappings_get(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Query(q): Query<MappingsQuery>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    let live = mappings::live_for(&state, &tenant, q.board).await?;
    ok(mappings::view(&tenant, &live))
}

async fn mappings_save(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Json(req): Json<MappingsUpdate>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    // ConnectWise: statuses are validated against the board being saved.
    let board = match tenant.onboarding.value.psa {
        Psa::ConnectWise => req.queue_id,
        Psa::Autotask => None,
    };
    let live = mappings::live_for(&state, &tenant, board).await?;
    ok(mappings::save(&state, &mut tenant, &live, &req).await?)
}

async fn activate(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    setup_flow::activate(&state, &mut tenant).await?;
    ok(json!({ "active": true }))
}

async fn log(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Query(filter): Query<LogFilter>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(tenants::log(&state, &tenant.id, &filter).await?)
}

async fn sync_now(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    let summary = tenants::sync_now(&state, &tenant).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "summary": summary }))).into_response())
}

async fn dead_letters(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(tenants::dead_letters(&state, &tenant.id).await?)
}

async fn replay(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path((t, id)): Path<(String, String)>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    tenants::replay(&state, &tenant.id, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": id }))).into_response())
}

async fn webhooks(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    let mut rows: Vec<_> = tenants::hook_status(&state, &tenant)
        .await?
        .into_iter()
        .map(|(kind, url, secret)| json!({ "kind": kind, "url": url, "secret": secret }))
        .collect();
    let zendesk_url = tenants::hook_url(&state, &tenant.id, HookKind::ZendeskWebhook);
    let autotask_url = tenants::hook_url(&state, &tenant.id, HookKind::AutotaskWebhook);
    for row in rows.iter_mut() {
        if row["kind"] == json!(HookKind::ZendeskWebhook) {
            row["registered"] = json!(tenant
                .onboarding
                .value
                .zendesk_webhook
                .as_ref()
                .filter(|r| r.url == zendesk_url));
            row["manual_steps"] = json!(setup_flow::ZENDESK_WEBHOOK_STEPS);
        }
        if row["kind"] == json!(HookKind::AutotaskWebhook) {
            row["registered"] = json!(tenant
                .onboarding
                .value
                .autotask_webhooks
                .as_ref()
                .filter(|r| r.url == autotask_url));
            row["manual_steps"] = json!(setup_flow::AUTOTASK_WEBHOOK_STEPS);
        }
    }
    if tenant.onboarding.value.psa == Psa::ConnectWise {
        // ConnectWise signs with a key it serves itself: nothing to mask.
        let url = tenants::connectwise_callback_url(&state, &tenant.id);
        let registered = tenant
            .onboarding
            .value
            .callback
            .as_ref()
            .filter(|r| r.url == url);
        rows.push(json!({
            "kind": "connectwise_callback",
            "url": url,
            "registered": registered,
        }));
    }
    ok(rows)
}

#[derive(Deserialize)]
struct RotateRequest {
    kind: HookKind,
    /// Zendesk's new signing secret (only for `zendesk_webhook`).
    #[serde(default)]
    secret: Option<String>,
}

async fn rotate(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
    Json(req): Json<RotateRequest>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    ok(tenants::rotate(&state, &mut tenant, req.kind, req.secret.as_deref()).await?)
}

/// Registers what the APIs allow; the secrets go to the secrets store and
/// the answer holds ids and times only.
async fn register(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let mut tenant = tenants::open(&state, &user, &t).await?;
    ok(setup_flow::register_webhooks(&state, &mut tenant).await?)
}

async fn assets_view(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(assets::view(&state, &tenant).await?)
}

async fn assets_check(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(assets::check(&state, &tenant).await?)
}

async fn assets_sync(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(t): Path<String>,
) -> ApiResult {
    let tenant = tenants::open(&state, &user, &t).await?;
    ok(assets::sync(&state, &tenant).await?)
}
