//! `POST /t/{tenant}/autotask`: an Autotask REST webhook (signed with
//! `X-Hook-Signature`) or an extension callout (HTTP Basic credentials).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::{enqueue, tenant_with_secrets, IngestState, Rejection};
use crate::connectors::autotask::inbound::{
    parse_callout, parse_webhook, verify_callout_credentials, verify_hook_signature,
};
use crate::error::InboundError;
use crate::model::{DeskTicketId, JobSubject, PsaTicketId, SyncJob};
use crate::repo::Repo;

pub(super) async fn receive(
    State(state): State<IngestState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let (config, secrets) = tenant_with_secrets(&state, &tenant).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let event = match header("x-hook-signature") {
        Some(signature) => {
            // A tenant that never configured a webhook secret accepts no webhook.
            if secrets.autotask_webhook_secret.is_empty() {
                return Err(InboundError::BadSignature.into());
            }
            verify_hook_signature(&secrets.autotask_webhook_secret, Some(signature), &body)?;
            parse_webhook(&body)?
        }
        None => {
            if secrets.autotask_callout_username.is_empty()
                || secrets.autotask_callout_password.is_empty()
            {
                return Err(InboundError::BadCredentials.into());
            }
            verify_callout_credentials(
                &secrets.autotask_callout_username,
                &secrets.autotask_callout_password,
                header("authorization"),
            )?;
            parse_callout(header("content-type"), &body)?
        }
    };
    // Put the job in the lane of its Zendesk ticket, if the pair is linked.
    let desk_ticket_id = Repo::new(state.store.as_ref())
        .psa_link(&config.id, event.ticket_id)
        .await?
        .map(|link| DeskTicketId(link.desk_ticket_id));
    let job = SyncJob {
        tenant: config.id,
        subject: JobSubject::Psa(PsaTicketId(event.ticket_id)),
        desk_ticket_id,
        event_id: event.event_id,
        received_at_ms: state.clock.now().timestamp_millis(),
    };
    enqueue(&state, job).await
}
