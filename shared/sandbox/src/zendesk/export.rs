//! The cursor-based incremental ticket export
//! (`GET /api/v2/incremental/tickets/cursor.json`): admins only, 10 requests
//! a minute (see `limits`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::api::{request_host, with_api, ApiFailure};
use super::{Role, Shared, Ticket, MAX_EXPORT_PAGE};

const EXPORT_LIMIT_EXCEEDED: &str =
    "Number of allowed incremental export API requests per minute exceeded";

/// Where an export continues: on or after a start time, or after the
/// (updated_at, id) position a cursor names.
#[derive(Clone, Copy)]
pub(super) enum ExportFrom {
    Start(DateTime<Utc>),
    After(DateTime<Utc>, u64),
}

/// Opaque to clients; like Zendesk's, it encodes `<time>||<id>|` in base64.
pub(super) fn export_cursor(ticket: &Ticket) -> String {
    let at = ticket.updated_at;
    BASE64.encode(format!(
        "{}.{:09}||{}|",
        at.timestamp(),
        at.timestamp_subsec_nanos(),
        ticket.id
    ))
}

pub(super) fn parse_export_cursor(cursor: &str) -> Option<(DateTime<Utc>, u64)> {
    let raw = String::from_utf8(BASE64.decode(cursor).ok()?).ok()?;
    let (time, rest) = raw.split_once("||")?;
    let (secs, nanos) = time.split_once('.')?;
    let at = DateTime::from_timestamp(secs.parse().ok()?, nanos.parse().ok()?)?;
    Some((at, rest.strip_suffix('|')?.parse().ok()?))
}

pub(super) async fn export_tickets(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let host = request_host(&headers);
    with_api(&shared, &headers, |inner| {
        let params: HashMap<String, String> =
            serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
                .map_err(|_| ApiFailure::BadRequest("Invalid query string".to_owned()))?;
        // "Allowed For: Admins" (IncrementalTicketExportCursor).
        if inner.users[&inner.api_user_id].role != Role::Admin {
            return Err(ApiFailure::Forbidden);
        }
        inner
            .take_export_call()
            .map_err(|retry_after| ApiFailure::RateLimited {
                retry_after,
                description: EXPORT_LIMIT_EXCEEDED,
            })?;
        let now = Utc::now();
        let lag = chrono::TimeDelta::from_std(inner.export_lag).unwrap_or_default();
        let from = match (params.get("cursor"), params.get("start_time")) {
            (Some(cursor), _) => {
                let (at, id) = parse_export_cursor(cursor).ok_or_else(|| {
                    ApiFailure::BadRequest("cursor is not a valid cursor".to_owned())
                })?;
                ExportFrom::After(at, id)
            }
            (None, Some(start)) => {
                let at = start
                    .parse::<i64>()
                    .ok()
                    .and_then(|secs| DateTime::from_timestamp(secs, 0))
                    .ok_or_else(|| {
                        ApiFailure::BadRequest("start_time must be a Unix epoch time".to_owned())
                    })?;
                if at > now - lag.max(chrono::TimeDelta::zero()) {
                    return Err(ApiFailure::BadRequest(
                        "Too recent start_time. Use a start_time at least one minute in the past"
                            .to_owned(),
                    ));
                }
                ExportFrom::Start(at)
            }
            (None, None) => {
                return Err(ApiFailure::BadRequest(
                    "start_time or cursor is required".to_owned(),
                ))
            }
        };
        let per_page = match params.get("per_page") {
            None => MAX_EXPORT_PAGE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ApiFailure::BadRequest("per_page must be a positive integer".to_owned())
                })?,
        }
        .min(inner.export_page_cap);
        let exclude_deleted = params
            .get("exclude_deleted")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));

        let until = now - lag;
        let mut rows: Vec<&Ticket> = inner
            .tickets
            .values()
            .chain(inner.deleted.values().filter(|_| !exclude_deleted))
            .filter(|t| t.updated_at <= until)
            .filter(|t| match from {
                ExportFrom::Start(at) => t.updated_at >= at,
                ExportFrom::After(at, id) => (t.updated_at, t.id) > (at, id),
            })
            .collect();
        rows.sort_by_key(|t| (t.updated_at, t.id));
        let end_of_stream = rows.len() <= per_page;
        rows.truncate(per_page);
        let after_cursor = match (rows.last(), from) {
            (Some(last), _) => Some(export_cursor(last)),
            // Nothing new after a cursor: the same position again.
            (None, ExportFrom::After(..)) => params.get("cursor").cloned(),
            (None, ExportFrom::Start(_)) => None,
        };
        let after_url = after_cursor.as_ref().map(|c| {
            let query = serde_urlencoded::to_string([("cursor", c.as_str())])
                .expect("strings encode as form data");
            format!("http://{host}/api/v2/incremental/tickets/cursor.json?{query}")
        });
        let tickets: Vec<Value> = rows
            .iter()
            .map(|t| {
                let mut json = inner.ticket_json(t);
                json["generated_timestamp"] = json!(t.updated_at.timestamp());
                json
            })
            .collect();
        let body = json!({
            "tickets": tickets,
            "after_cursor": after_cursor,
            "after_url": after_url,
            "before_cursor": null,
            "before_url": null,
            "end_of_stream": end_of_stream,
        });
        Ok((Json(body).into_response(), None))
    })
}
