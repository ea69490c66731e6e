//! `POST /t/{tenant}/zendesk`: a Zendesk webhook.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::{enqueue, ignore, tenant_with_secrets, IngestState, Rejection};
use crate::connectors::zendesk::inbound::{read_webhook, verify_signature, Inbound};
use crate::model::{DeskTicketId, JobSubject, SyncJob};

/// Sync-log step of ignored events.
const STEP: &str = "zendesk_webhook";

pub(super) async fn receive(
    State(state): State<IngestState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let (config, secrets) = tenant_with_secrets(&state, &tenant).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header("x-zendesk-webhook-signature-timestamp");
    verify_signature(
        &secrets.zendesk_webhook_secret,
        timestamp,
        header("x-zendesk-webhook-signature"),
        &body,
        state.clock.now(),
    )?;
    // Only an authenticated caller learns why its body is unusable.
    let event = match read_webhook(&body, timestamp)? {
        Inbound::Sync(event) => event,
        Inbound::Ignore(unusable) => {
            let ticket = unusable.ticket_id.map(|id| format!("zendesk:{id}"));
            return Ok(ignore(
                &state,
                &config.id,
                STEP,
                ticket,
                &unusable.reason,
                unusable.fix.as_deref(),
            )
            .await);
        }
    };
    let job = SyncJob {
        tenant: config.id,
        subject: JobSubject::Desk(DeskTicketId(event.ticket_id)),
        desk_ticket_id: Some(DeskTicketId(event.ticket_id)),
        event_id: event.event_id,
        received_at_ms: state.clock.now().timestamp_millis(),
        change: event.change,
    };
    enqueue(&state, job).await
}
