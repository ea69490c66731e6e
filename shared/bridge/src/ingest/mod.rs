//! Ingest: the thin HTTP functions. They authenticate the caller, validate the
//! body, enqueue a `SyncJob` and answer at once; they never call Zendesk or
//! Autotask. Only a caller that fails authentication (401), an unknown tenant
//! (404) and an unreadable or oversize body (400/413) get a 4xx, with a plain
//! reason, and nothing is enqueued. An authentic event the bridge cannot use
//! (another entity, a note without its ticket id, a deleted ticket) is
//! answered 200 `{"queued":false,"ignored":…}` and written to the tenant's
//! sync log with what to fix: Autotask deactivates a webhook after 25 failed
//! events in a row, and one odd event must never switch a tenant off.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::{info, warn};

use crate::config::{TenantConfig, TenantSecrets};
use crate::error::{InboundError, QueueError, SecretsError, StoreError};
use crate::model::{SyncJob, TenantId};
use crate::ports::{Clock, Queue, Secrets, Store};
use crate::repo::{LogLevel, Repo, SyncLogEntry};

mod autotask;
mod connectwise;
mod zendesk;

pub use connectwise::router as connectwise_router;

/// Largest body accepted. Real ticket events are a few KB; anything near this
/// is abuse or a misconfigured trigger.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the ingest routers need; cheap to clone.
#[derive(Clone)]
pub struct IngestState {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn Secrets>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
}

/// `POST /t/{tenant}/zendesk`.
pub fn zendesk_router(state: IngestState) -> axum::Router {
    axum::Router::new()
        .route("/t/{tenant}/zendesk", axum::routing::post(zendesk::receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `POST /t/{tenant}/autotask` (extension callouts posting form pairs, XML
/// or JSON, and REST webhooks) and `GET /t/{tenant}/autotask` (extension
/// callouts sent by GET, their fields in the query string).
pub fn autotask_router(state: IngestState) -> axum::Router {
    axum::Router::new()
        .route(
            "/t/{tenant}/autotask",
            axum::routing::post(autotask::receive).get(autotask::receive_query),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Why a request was refused, with the status it answers.
#[derive(Debug)]
pub enum Rejection {
    UnknownTenant,
    Unauthorized(InboundError),
    BadRequest(InboundError),
    Unavailable(String),
}

impl From<InboundError> for Rejection {
    fn from(error: InboundError) -> Self {
        if error.is_auth_failure() {
            Rejection::Unauthorized(error)
        } else {
            Rejection::BadRequest(error)
        }
    }
}

impl From<StoreError> for Rejection {
    fn from(error: StoreError) -> Self {
        Rejection::Unavailable(format!("configuration store unavailable: {error}"))
    }
}

impl From<QueueError> for Rejection {
    fn from(error: QueueError) -> Self {
        Rejection::Unavailable(format!("queue unavailable: {error}"))
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, reason) = match self {
            Rejection::UnknownTenant => (StatusCode::NOT_FOUND, "unknown tenant".to_owned()),
            Rejection::Unauthorized(e) => (StatusCode::UNAUTHORIZED, e.to_string()),
            Rejection::BadRequest(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            // 503 makes Zendesk and Autotask retry, which is what we want.
            Rejection::Unavailable(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
        };
        warn!(status = status.as_u16(), %reason, "rejected incoming call");
        (status, Json(json!({ "error": reason }))).into_response()
    }
}

/// Resolves the tenant named in the URL with its credentials. Unknown, paused
/// and malformed tenant ids are all "unknown tenant": nothing about which
/// tenants exist is revealed.
async fn tenant_with_secrets(
    state: &IngestState,
    raw_tenant: &str,
) -> Result<(TenantConfig, TenantSecrets), Rejection> {
    let tenant = TenantId::parse(raw_tenant).ok_or(Rejection::UnknownTenant)?;
    let config = Repo::new(state.store.as_ref())
        .tenant(&tenant)
        .await?
        .filter(|c| c.value.active)
        .ok_or(Rejection::UnknownTenant)?
        .value;
    let secrets = match state.secrets.tenant_secrets(&tenant).await {
        Ok(s) => s,
        // A configured tenant without credentials cannot authenticate anyone.
        Err(SecretsError::Missing(_)) => {
            return Err(Rejection::Unauthorized(InboundError::BadCredentials))
        }
        Err(e) => return Err(Rejection::Unavailable(e.to_string())),
    };
    Ok((config, secrets))
}

/// Answers an authentic event the bridge cannot use: 200 with the reason, and
/// a line in the tenant's sync log saying what arrived, why nothing is synced
/// and what to fix (an error, or an info line when nothing needs fixing).
/// The event is useless whatever happens, so a sync log that cannot be
/// written does not turn it into a failure the sender would count.
async fn ignore(
    state: &IngestState,
    tenant: &TenantId,
    step: &'static str,
    ticket: Option<String>,
    reason: &str,
    fix: Option<&str>,
) -> Response {
    let (level, message) = match fix {
        Some(fix) => (LogLevel::Error, format!("{reason}. To fix: {fix}.")),
        None => (LogLevel::Info, format!("{reason}.")),
    };
    match level {
        LogLevel::Error => {
            warn!(%tenant, step, ticket = ?ticket, %reason, "ignored an event the bridge cannot use")
        }
        LogLevel::Info => {
            info!(%tenant, step, ticket = ?ticket, %reason, "ignored an event the bridge cannot use")
        }
    }
    let entry = SyncLogEntry {
        at: state.clock.now(),
        level,
        ticket,
        step: step.to_owned(),
        message,
        retryable: false,
    };
    if let Err(error) = Repo::new(state.store.as_ref()).log(tenant, &entry).await {
        warn!(%tenant, step, %error, "could not write the ignored event to the sync log");
    }
    (
        StatusCode::OK,
        Json(json!({ "queued": false, "ignored": reason })),
    )
        .into_response()
}

async fn enqueue(state: &IngestState, job: SyncJob) -> Result<Response, Rejection> {
    state.queue.send(&job).await?;
    info!(
        tenant = %job.tenant,
        ticket = %job.subject,
        event = %job.event_id,
        "enqueued"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": true, "ticket": job.subject.id() })),
    )
        .into_response())
}
