//! `POST /t/{tenant}/autotask`: an Autotask REST webhook (signed with
//! `X-Hook-Signature`) or an extension callout (HTTP Basic credentials)
//! posting form pairs, XML or JSON; `GET /t/{tenant}/autotask`: an extension
//! callout sent by GET, its fields in the query string, with the same
//! credentials check.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use tracing::info;

use super::{enqueue, ignore, tenant_with_secrets, IngestState, Rejection};
use crate::config::{TenantConfig, TenantSecrets};
use crate::connectors::autotask::inbound::{
    read_callout, read_callout_query, read_webhook, verify_callout_credentials,
    verify_hook_signature_form, Inbound,
};
use crate::error::InboundError;
use crate::model::{DeskTicketId, JobSubject, PsaTicketId, SyncJob};
use crate::repo::Repo;

/// Sync-log steps of ignored events.
const WEBHOOK_STEP: &str = "autotask_webhook";
const CALLOUT_STEP: &str = "autotask_callout";

pub(super) async fn receive(
    State(state): State<IngestState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let (config, secrets) = tenant_with_secrets(&state, &tenant).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match header("x-hook-signature") {
        Some(signature) => {
            // A tenant that never configured a webhook secret accepts no webhook.
            if secrets.autotask_webhook_secret.is_empty() {
                return Err(InboundError::BadSignature.into());
            }
            let form = verify_hook_signature_form(
                &secrets.autotask_webhook_secret,
                Some(signature),
                &body,
            )?;
            // Which body Autotask signs is uncertain (fact sheet): say which matched.
            info!(
                tenant = %config.id,
                signature_form = form.as_str(),
                "Autotask webhook signature verified"
            );
            let inbound = read_webhook(&body)?;
            handle(&state, config, WEBHOOK_STEP, inbound).await
        }
        None => {
            check_callout_credentials(&secrets, header("authorization"))?;
            let inbound = read_callout(header("content-type"), &body)?;
            handle(&state, config, CALLOUT_STEP, inbound).await
        }
    }
}

pub(super) async fn receive_query(
    State(state): State<IngestState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Rejection> {
    // No cap of its own: a URI cannot exceed 64 KiB in the HTTP stack (and
    // API Gateway allows far less), well under the body limit.
    let query = query.unwrap_or_default();
    let (config, secrets) = tenant_with_secrets(&state, &tenant).await?;
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    check_callout_credentials(&secrets, authorization)?;
    let inbound = read_callout_query(&query)?;
    handle(&state, config, CALLOUT_STEP, inbound).await
}

fn check_callout_credentials(
    secrets: &TenantSecrets,
    authorization: Option<&str>,
) -> Result<(), Rejection> {
    if secrets.autotask_callout_username.is_empty() || secrets.autotask_callout_password.is_empty()
    {
        return Err(InboundError::BadCredentials.into());
    }
    verify_callout_credentials(
        &secrets.autotask_callout_username,
        &secrets.autotask_callout_password,
        authorization,
    )?;
    Ok(())
}

async fn handle(
    state: &IngestState,
    config: TenantConfig,
    step: &'static str,
    inbound: Inbound,
) -> Result<Response, Rejection> {
    let (event, form) = match inbound {
        Inbound::Sync { event, form } => (event, form),
        Inbound::Ignore(unusable) => {
            let ticket = unusable.ticket_id.map(|id| format!("autotask:{id}"));
            return Ok(ignore(
                state,
                &config.id,
                step,
                ticket,
                &unusable.reason,
                unusable.fix.as_deref(),
            )
            .await);
        }
    };
    // The webhook's EntityType and the callout's encoding are uncertain
    // (fact sheet): say which one arrived.
    info!(tenant = %config.id, step, form, ticket = event.ticket_id, "Autotask event read");
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
        change: event.change,
    };
    enqueue(state, job).await
}
