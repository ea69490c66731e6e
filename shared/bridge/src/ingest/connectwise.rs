//! `POST /t/{tenant}/connectwise`: a ConnectWise PSA callback.
//!
//! ConnectWise signs a callback with a key it serves at a URL named in the
//! callback itself (`Metadata.key_url`), so the body is read before the
//! caller is authenticated; the URL is trusted only on the tenant's own
//! ConnectWise host, and the key is cached so a burst of callbacks costs one
//! fetch.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use tracing::{info, warn};

use super::{enqueue, ignore, tenant_with_secrets, IngestState, Rejection};
use crate::connectors::connectwise::inbound::{
    classify, key_url_allowed, read_callback, verify_signature, CallbackUse, SigningKeys,
    SIGNATURE_HEADER,
};
use crate::error::InboundError;
use crate::model::{ChangeHint, DeskTicketId, JobSubject, PsaTicketId, SyncJob};
use crate::repo::Repo;

/// `POST /t/{tenant}/connectwise` (ConnectWise PSA callbacks). `keys`
/// caches ConnectWise's signing keys across calls; one per process.
pub fn router(state: IngestState, keys: Arc<SigningKeys>) -> axum::Router {
    axum::Router::new()
        .route("/t/{tenant}/connectwise", axum::routing::post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY_BYTES))
        .with_state(CallbackState {
            ingest: state,
            keys,
        })
}

/// Sync-log step of ignored callbacks.
const STEP: &str = "connectwise_callback";

/// What the ConnectWise route needs beyond the other ingest routes: the
/// cache of ConnectWise's signing keys.
#[derive(Clone)]
pub(super) struct CallbackState {
    pub ingest: IngestState,
    pub keys: Arc<SigningKeys>,
}

pub(super) async fn receive(
    State(state): State<CallbackState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let (config, _secrets) = tenant_with_secrets(&state.ingest, &tenant).await?;
    // A tenant on Autotask accepts no ConnectWise callback.
    let Some(settings) = config.connectwise.as_ref() else {
        return Err(InboundError::BadSignature.into());
    };
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(InboundError::MissingHeader(SIGNATURE_HEADER))?;
    let callback = read_callback(&body)?;
    let key_url = callback
        .key_url
        .as_deref()
        .ok_or_else(|| InboundError::Malformed("the callback names no Metadata.key_url".into()))?;
    if !key_url_allowed(key_url, settings) {
        warn!(
            tenant = %config.id,
            "a ConnectWise callback named a signing key URL outside the tenant's ConnectWise host"
        );
        return Err(InboundError::BadSignature.into());
    }
    let key = state.keys.key(key_url).await.map_err(|error| {
        // ConnectWise retries an answer it counts as failed; a key that
        // cannot be fetched right now is that, not a forgery.
        Rejection::Unavailable(format!(
            "could not fetch ConnectWise's signing key: {error}"
        ))
    })?;
    verify_signature(&key, Some(signature), &body)?;
    match classify(&callback) {
        CallbackUse::Ignore {
            ticket_id,
            reason,
            fix,
        } => {
            let ticket = ticket_id.map(|id| format!("connectwise:{id}"));
            Ok(ignore(
                &state.ingest,
                &config.id,
                STEP,
                ticket,
                &reason,
                fix.as_deref(),
            )
            .await)
        }
        CallbackUse::Sync {
            ticket_id,
            event_id,
        } => {
            info!(
                tenant = %config.id,
                ticket = ticket_id,
                member = callback.member_id.as_deref().unwrap_or("?"),
                action = %callback.action,
                "ConnectWise callback read"
            );
            let desk_ticket_id = Repo::new(state.ingest.store.as_ref())
                .psa_link(&config.id, ticket_id)
                .await?
                .map(|link| DeskTicketId(link.desk_ticket_id));
            let job = SyncJob {
                tenant: config.id,
                subject: JobSubject::Psa(PsaTicketId(ticket_id)),
                desk_ticket_id,
                event_id,
                received_at_ms: state.ingest.clock.now().timestamp_millis(),
                // A callback does not say whether fields or a note changed.
                change: ChangeHint::Unknown,
            };
            enqueue(&state.ingest, job).await
        }
    }
}
