//! `POST /t/{tenant}/inventory`: a signed batch of devices from the
//! tenant's monitoring or RMM portal. A push only stores the devices
//! (`DEVICE#<id>`, written only when their values changed); runs write to
//! the PSA. Like the other ingest routes it never calls the PSA.
//!
//! Contract: `X-Inventory-Signature` = base64(HMAC-SHA256(the tenant's
//! `inventory_signing_secret`, `X-Inventory-Timestamp` + raw body)); the
//! timestamp (RFC 3339 or Unix seconds) within 5 minutes of ours. Body:
//! `{"devices":[…]}` or a bare JSON array (or CSV with `Content-Type:
//! text/csv`), at most [`MAX_INVENTORY_BYTES`] and [`MAX_DEVICES_PER_PUSH`]
//! devices: larger inventories are paged over several pushes.
//!
//! Answers: unknown tenant 404; no signing secret, missing, wrong or stale
//! signature 401; asset sync not configured 409; oversize 413; unreadable
//! batch 400 — each with nothing stored. Otherwise 200
//! `{"stored":n,"unchanged":n,"rejected":[{"index","inventory_id","reason"}]}`,
//! the rejected devices also in the tenant's sync log.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn, Instrument};

use super::device::{parse_csv_batch, parse_json_batch, DeviceBatch, RejectedDevice};
use super::store::store_devices;
use crate::config::Secret;
use crate::connectors::signing::{self, TimestampedHmac};
use crate::error::{InboundError, SecretsError, StoreError};
use crate::ingest::IngestState;
use crate::model::TenantId;
use crate::ports::Store;
use crate::repo::{LogLevel, Repo, SyncLogEntry};

pub const SIGNATURE_HEADER: &str = "X-Inventory-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Inventory-Timestamp";
/// Largest push: a few thousand devices of about 500 bytes each. Larger
/// inventories are paged (several pushes), which also keeps each push well
/// inside the HTTP API's 30-second limit.
pub const MAX_INVENTORY_BYTES: usize = 4 * 1024 * 1024;
/// Most devices in one push (same reason).
pub const MAX_DEVICES_PER_PUSH: usize = 5000;
/// Rejected devices written to the sync log one by one per push; the rest
/// are summed up in one line.
const MAX_LOGGED_REJECTIONS: usize = 20;
/// Sync-log step of pushes and imports.
pub const STEP: &str = "inventory_push";
const SCHEME: TimestampedHmac = TimestampedHmac {
    signature_header: SIGNATURE_HEADER,
    timestamp_header: TIMESTAMP_HEADER,
    parse_timestamp: rfc3339_or_unix_seconds,
};

/// RFC 3339 or Unix seconds: the exporters we know send either.
fn rfc3339_or_unix_seconds(timestamp: &str) -> Option<DateTime<Utc>> {
    signing::rfc3339(timestamp).or_else(|| {
        timestamp
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
    })
}

/// The signature of `body` sent at `timestamp`:
/// base64(HMAC-SHA256(secret, timestamp + body)).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    signing::sign(secret, timestamp, body)
}

/// Checks a push's signature and timestamp (RFC 3339 or Unix seconds;
/// within 5 minutes of `now`).
pub fn verify_signature(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), InboundError> {
    SCHEME.verify(secret, timestamp, signature, body, now)
}

/// What a push or an import stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportOutcome {
    pub stored: usize,
    pub unchanged: usize,
    pub rejected: Vec<RejectedDevice>,
}

/// Stores the good devices of a batch and writes the rejected ones to the
/// sync log: what a push does after authentication, and what the CLI import does.
pub async fn import_batch(
    store: &dyn Store,
    tenant: &TenantId,
    batch: DeviceBatch,
    now: DateTime<Utc>,
) -> Result<ImportOutcome, StoreError> {
    let counts = store_devices(store, tenant, batch.devices, now).await?;
    let repo = Repo::new(store);
    for rejected in batch.rejected.iter().take(MAX_LOGGED_REJECTIONS) {
        let what = match &rejected.inventory_id {
            Some(id) => format!("device {id} (index {})", rejected.index),
            None => format!("the device at index {}", rejected.index),
        };
        let entry = SyncLogEntry {
            at: now,
            level: LogLevel::Error,
            ticket: rejected
                .inventory_id
                .as_ref()
                .map(|id| format!("device:{id}")),
            step: STEP.to_owned(),
            message: format!(
                "Inventory: {what} was not stored: {}. To fix: correct it in the inventory export.",
                rejected.reason
            ),
            retryable: false,
        };
        if let Err(error) = repo.log(tenant, &entry).await {
            warn!(%tenant, %error, "could not write a rejected device to the sync log");
        }
    }
    if batch.rejected.len() > MAX_LOGGED_REJECTIONS {
        let entry = SyncLogEntry {
            at: now,
            level: LogLevel::Error,
            ticket: None,
            step: STEP.to_owned(),
            message: format!(
                "Inventory: {} more devices of the same batch were not stored (see the push's answer)",
                batch.rejected.len() - MAX_LOGGED_REJECTIONS
            ),
            retryable: false,
        };
        if let Err(error) = repo.log(tenant, &entry).await {
            warn!(%tenant, %error, "could not write rejected devices to the sync log");
        }
    }
    Ok(ImportOutcome {
        stored: counts.stored,
        unchanged: counts.unchanged,
        rejected: batch.rejected,
    })
}

/// `POST /t/{tenant}/inventory`.
pub fn inventory_router(state: IngestState) -> axum::Router {
    axum::Router::new()
        .route("/t/{tenant}/inventory", axum::routing::post(receive))
        .with_state(state)
}

/// A refused push, answered `{"error": reason}`.
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        warn!(status = self.0.as_u16(), reason = %self.1, "refused an inventory push");
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<InboundError> for Refused {
    fn from(error: InboundError) -> Self {
        let status = if error.is_auth_failure() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Refused(status, error.to_string())
    }
}

fn unavailable(error: impl std::fmt::Display) -> Refused {
    // 503: the exporter retries later.
    Refused(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("storage unavailable, try again: {error}"),
    )
}

async fn receive(
    State(state): State<IngestState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refused> {
    let unknown = || Refused(StatusCode::NOT_FOUND, "unknown tenant".to_owned());
    let tenant = TenantId::parse(&tenant).ok_or_else(unknown)?;
    let span = tracing::info_span!("inventory_push", %tenant);
    receive_for(state, tenant, headers, body)
        .instrument(span)
        .await
}

async fn receive_for(
    state: IngestState,
    tenant: TenantId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refused> {
    // Unknown and paused tenants look alike: nothing about which exist is revealed.
    let config = Repo::new(state.store.as_ref())
        .tenant(&tenant)
        .await
        .map_err(unavailable)?
        .filter(|c| c.value.active)
        .ok_or_else(|| Refused(StatusCode::NOT_FOUND, "unknown tenant".to_owned()))?
        .value;
    let no_secret = || {
        Refused(
            StatusCode::UNAUTHORIZED,
            "no inventory signing secret is set for this tenant; an operator sets inventory_signing_secret in its credentials".to_owned(),
        )
    };
    let secrets = match state.secrets.tenant_secrets(&tenant).await {
        Ok(secrets) => secrets,
        Err(SecretsError::Missing(_)) => return Err(no_secret()),
        Err(error) => return Err(unavailable(error)),
    };
    if secrets.inventory_signing_secret.is_empty() {
        return Err(no_secret());
    }
    let body = axum::body::to_bytes(body, MAX_INVENTORY_BYTES)
        .await
        .map_err(|_| {
            Refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "body is over {} MiB; page beyond that (at most {MAX_DEVICES_PER_PUSH} devices per push)",
                    MAX_INVENTORY_BYTES / (1024 * 1024)
                ),
            )
        })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify_signature(
        &secrets.inventory_signing_secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        state.clock.now(),
    )?;
    // Only an authenticated caller learns how the tenant is set up.
    if config.assets.is_none() {
        return Err(Refused(
            StatusCode::CONFLICT,
            "asset sync is not configured for this tenant; an admin adds the [assets] settings first".to_owned(),
        ));
    }
    let is_csv = header(header::CONTENT_TYPE.as_str())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/csv"));
    let batch = if is_csv {
        parse_csv_batch(&body)
    } else {
        parse_json_batch(&body)
    }
    .map_err(|e| Refused(StatusCode::BAD_REQUEST, e.to_string()))?;
    let count = batch.devices.len() + batch.rejected.len();
    if count > MAX_DEVICES_PER_PUSH {
        return Err(Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{count} devices in one push; page beyond {MAX_DEVICES_PER_PUSH} devices per push"
            ),
        ));
    }
    let outcome = import_batch(state.store.as_ref(), &tenant, batch, state.clock.now())
        .await
        .map_err(unavailable)?;
    info!(
        stored = outcome.stored,
        unchanged = outcome.unchanged,
        rejected = outcome.rejected.len(),
        "inventory push stored"
    );
    Ok((StatusCode::OK, Json(outcome)).into_response())
}
