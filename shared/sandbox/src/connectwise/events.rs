//! Callbacks (fact sheet §10): registrations (`url`, `objectId`, `type`,
//! `level` required; type and level compared case-insensitively) and
//! deliveries. On every ticket create, update and note, each
//! active `ticket` callback whose level matches (`owner`: all tickets;
//! `board`/`status`/`ticket`: `objectId` is the ticket's board, status or id)
//! gets a POST of
//!
//! ```json
//! {"MessageId","FromUrl","CompanyId","MemberId","Action":"added"|"updated",
//!  "Type":"ticket","ID":id,"Entity":"<the ticket JSON as a string>",
//!  "Metadata":{"key_url":"{site}/{codebase}callbackkey/index.rails?id=<key id>"}}
//! ```
//!
//! signed with `x-content-signature: base64(HMAC-SHA256(SHA-256(signing_key),
//! body))`; `GET key_url` (unauthenticated) answers `{"signing_key":"…"}`.
//! `MemberId` is the identifier of the member who made the change: the API
//! member for API writes (no self-suppression: `isSelfSuppressedFlag` and
//! `skipCallback` are undocumented, L). Deliveries go through the fault plan
//! (dropped, duplicated, jittered) on background tasks with the client's
//! timeout, never holding up the API answer; there are no retries (the real
//! policy is not published).

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};

use serde_json::{Map, Value};

use super::api::{ApiError, FieldError};
use super::db::{get_ci, Callback, Db, CALLBACK_DESCRIPTION_MAX};
use super::validate::text_field;
use super::{CallbackEntry, Shared, SignedCallback, Ticket};

/// Callback types of the "PSA Callbacks" page (fact sheet §10).
const CALLBACK_TYPES: &[&str] = &[
    "ticket",
    "company",
    "contact",
    "configuration",
    "project",
    "activity",
    "schedule",
    "time",
    "opportunity",
    "purchaseorder",
    "invoice",
    "agreement",
];

/// Levels of a `ticket` callback (§10).
const TICKET_LEVELS: &[&str] = &[
    "owner",
    "board",
    "status",
    "project",
    "phase",
    "ticket",
    "integratortag",
];

/// A new signing key `(id, key)`.
pub(super) fn new_signing_key() -> (String, String) {
    let mut rng = rand::thread_rng();
    let id = format!("{:08x}", rng.gen::<u32>());
    let key: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    (id, key)
}

/// `x-content-signature` of `body`: base64(HMAC-SHA256(key = SHA-256(signing
/// key bytes), body)).
pub(super) fn signature(signing_key: &str, body: &[u8]) -> String {
    let key = Sha256::digest(signing_key.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

fn message_id() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        rng.gen::<u32>(),
        rng.gen::<u16>(),
        rng.gen::<u16>() & 0x0fff,
        (rng.gen::<u16>() & 0x3fff) | 0x8000,
        rng.gen::<u64>() & 0xffff_ffff_ffff
    )
}

/// Whether `callback` fires for a change of `ticket`.
fn fires_for(callback: &Callback, ticket: &Ticket) -> bool {
    let entry = &callback.entry;
    if entry.inactive || !entry.callback_type.eq_ignore_ascii_case("ticket") {
        return false;
    }
    match entry.level.to_ascii_lowercase().as_str() {
        "owner" => true,
        "board" => entry.object_id == ticket.board_id,
        "status" => entry.object_id == ticket.status_id,
        "ticket" => entry.object_id == ticket.id,
        // Project, phase and integrator-tag levels never match a service ticket.
        _ => false,
    }
}

impl Shared {
    /// Sends the callbacks of a change of ticket `ticket_id` by the member
    /// `member_identifier`. Never called with a lock held.
    pub(super) fn fire(&self, action: &'static str, ticket_id: i64, member_identifier: &str) {
        let (entity, urls) = {
            let db = self.db();
            let Some(ticket) = db.tickets.get(&ticket_id) else {
                return;
            };
            let urls: Vec<String> = db
                .callbacks
                .values()
                .filter(|c| fires_for(c, ticket))
                .map(|c| c.entry.url.clone())
                .collect();
            if urls.is_empty() {
                return;
            }
            (db.ticket_json(ticket).to_string(), urls)
        };
        for url in urls {
            let callback =
                self.signed_callback("ticket", action, ticket_id, &entity, member_identifier);
            if let Some(held) = self.held_callbacks.lock().unwrap().as_mut() {
                held.push(callback);
                continue;
            }
            self.deliver(url, callback.body, callback.signature);
        }
    }

    /// The body of a callback and its signature with the current key.
    pub(super) fn signed_callback(
        &self,
        callback_type: &str,
        action: &str,
        id: i64,
        entity: &str,
        member_identifier: &str,
    ) -> SignedCallback {
        let (company_id, codebase) = {
            let config = self.config();
            (config.company_id.clone(), config.codebase.clone())
        };
        let (key_id, key) = self
            .keys()
            .last()
            .cloned()
            .expect("there is always a signing key");
        let site = self.site_url();
        let key_url = format!("{site}/{codebase}callbackkey/index.rails?id={key_id}");
        let payload = json!({
            "MessageId": message_id(),
            "FromUrl": site,
            "CompanyId": company_id,
            "MemberId": member_identifier,
            "Action": action,
            "Type": callback_type,
            "ID": id,
            "Entity": entity,
            "Metadata": {"key_url": key_url},
        });
        let body = serde_json::to_vec(&payload).expect("JSON values serialize");
        let signature = signature(&key, &body);
        SignedCallback { body, signature }
    }

    /// One callback POST per copy the fault plan asks for, each on its own
    /// task after its jitter.
    fn deliver(&self, url: String, body: Vec<u8>, signature: String) {
        for delay in self.faults.webhook_plan() {
            let (faults, http, deliveries) = (
                self.faults.clone(),
                self.http.clone(),
                self.callback_deliveries.clone(),
            );
            let (url, body, signature) = (url.clone(), body.clone(), signature.clone());
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let answer = http
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("x-content-signature", signature)
                    .body(body)
                    .send()
                    .await;
                deliveries.fetch_add(1, Ordering::Relaxed);
                faults.record_webhook(matches!(answer, Ok(r) if r.status().is_success()));
            });
        }
    }

    /// `GET {site}/{codebase}callbackkey/index.rails?id=…` (unauthenticated).
    pub(super) fn signing_key_response(&self, query: Option<&str>) -> Response {
        let id = query
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("id"))
                    .map(|(_, v)| v)
            });
        let key = id.and_then(|id| {
            self.keys()
                .iter()
                .find(|(key_id, _)| *key_id == id)
                .map(|(_, key)| key.clone())
        });
        match key {
            Some(key) => {
                self.key_fetches.fetch_add(1, Ordering::Relaxed);
                (StatusCode::OK, Json(json!({ "signing_key": key }))).into_response()
            }
            None => ApiError::not_found("No signing key with that id.").into_response(),
        }
    }
}

impl Db {
    /// A `POST /system/callbacks` body, validated (fact sheet §10); the id is
    /// not assigned yet.
    pub(super) fn callback_from_body(
        &self,
        body: &Map<String, Value>,
        api_member_id: i64,
    ) -> Result<(CallbackEntry, i64), ApiError> {
        const R: &str = "callbackEntry";
        let field = |name: &str| get_ci(body, name).filter(|v| !v.is_null());
        let mut errors = Vec::new();
        let required_text =
            |name: &str, errors: &mut Vec<FieldError>| match text_field(field(name), R, name, None)
            {
                Ok(Some(s)) if !s.trim().is_empty() => s,
                Ok(_) => {
                    errors.push(FieldError::missing(R, name));
                    String::new()
                }
                Err(e) => {
                    errors.push(e);
                    String::new()
                }
            };
        let url = required_text("url", &mut errors);
        let callback_type = required_text("type", &mut errors);
        let level = required_text("level", &mut errors);
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            errors.push(FieldError::invalid(
                R,
                "url",
                "url must be an absolute http(s) URL",
            ));
        }
        let lower_type = callback_type.to_ascii_lowercase();
        if !callback_type.is_empty() && !CALLBACK_TYPES.contains(&lower_type.as_str()) {
            errors.push(FieldError::invalid(
                R,
                "type",
                format!("{callback_type:?} is not a callback type"),
            ));
        }
        if lower_type == "ticket"
            && !level.is_empty()
            && !TICKET_LEVELS.contains(&level.to_ascii_lowercase().as_str())
        {
            errors.push(FieldError::invalid(
                R,
                "level",
                format!(
                    "{level:?} is not a level of ticket callbacks ({})",
                    TICKET_LEVELS.join(", ")
                ),
            ));
        }
        let object_id = match field("objectId") {
            None => {
                errors.push(FieldError::missing(R, "objectId"));
                0
            }
            Some(v) => v.as_i64().unwrap_or_else(|| {
                errors.push(FieldError::invalid(
                    R,
                    "objectId",
                    "objectId must be an integer",
                ));
                0
            }),
        };
        let description = match text_field(
            field("description"),
            R,
            "description",
            Some(CALLBACK_DESCRIPTION_MAX),
        ) {
            Ok(d) => d.unwrap_or_default(),
            Err(e) => {
                errors.push(e);
                String::new()
            }
        };
        let inactive = match field("inactiveFlag") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.push(FieldError::invalid(
                    R,
                    "inactiveFlag",
                    "inactiveFlag must be true or false",
                ));
                false
            }
        };
        let member_id = match field("memberId") {
            None => api_member_id,
            Some(v) => match v.as_i64().filter(|m| self.members.contains_key(m)) {
                Some(m) => m,
                None => {
                    errors.push(FieldError::invalid(
                        R,
                        "memberId",
                        format!("member {v} was not found"),
                    ));
                    api_member_id
                }
            },
        };
        if !errors.is_empty() {
            return Err(ApiError::invalid(R, errors));
        }
        Ok((
            CallbackEntry {
                id: 0,
                url,
                object_id,
                callback_type,
                level,
                description,
                inactive,
            },
            member_id,
        ))
    }
}
