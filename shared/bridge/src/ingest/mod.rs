//! Ingest: the thin HTTP functions. They authenticate the caller, validate the
//! body, enqueue a `SyncJob` and answer at once; they never call Zendesk or
//! Autotask. Bad input gets a 4xx with a plain reason and nothing is enqueued.

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
use crate::repo::Repo;

mod autotask;
mod zendesk;

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

/// `POST /t/{tenant}/autotask` (extension callouts and REST webhooks).
pub fn autotask_router(state: IngestState) -> axum::Router {
    axum::Router::new()
        .route(
            "/t/{tenant}/autotask",
            axum::routing::post(autotask::receive),
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
