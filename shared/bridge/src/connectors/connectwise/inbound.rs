//! ConnectWise's callbacks (`POST /t/{tenant}/connectwise`): reading the
//! body, checking its signature, and deciding what it asks of the bridge.
//!
//! Contract notes that shape this code (fact sheet §10):
//! - The body carries `Action`, `Type`, `ID` and `Entity`, the changed
//!   record as a JSON-encoded string (parse it twice); project tickets also
//!   arrive as `Type: ticket` and differ only by `Entity.recordType`.
//! - `x-content-signature` is base64(HMAC-SHA256(SHA-256(signing key), raw
//!   body)); the signing key is fetched from `Metadata.key_url`. That URL
//!   comes from an unauthenticated body, so it is fetched only from the
//!   tenant's own ConnectWise, over HTTPS, without following redirects.
//! - The record is never trusted from the body: the worker re-reads it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::wire::{self, get_ci, lenient_i64};
use super::SYSTEM;
use crate::config::ConnectWiseSettings;
use crate::connectors::http::transport_error;
use crate::error::{ApiError, InboundError};

/// Header carrying the callback's signature.
pub const SIGNATURE_HEADER: &str = "x-content-signature";

/// How long a fetched signing key is reused; ConnectWise rotates keys
/// rarely, and every callback would otherwise cost an outbound call.
const KEY_TTL: Duration = Duration::from_secs(600);
/// Keys kept at most; `key_url` comes from callers, so the cache is bounded.
const KEY_CACHE_MAX: usize = 256;
/// A key fetch is on the path of an ingest answer, which must be quick.
const KEY_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Where ConnectWise callbacks are changed, for the sync log.
const CALLBACK_SETTINGS: &str = "the callback registered at system/callbacks";

/// A callback body as ConnectWise sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    /// `added`, `updated` or `deleted`.
    pub action: String,
    /// `ticket`, `company`, …
    pub entity_type: String,
    pub id: Option<i64>,
    /// `Metadata.key_url`: where the signing key is fetched.
    pub key_url: Option<String>,
    pub member_id: Option<String>,
    pub message_id: Option<String>,
    /// `Entity.recordType`: `ServiceTicket`, `ProjectTicket`, `ProjectIssue`.
    pub record_type: Option<String>,
    /// The changed record, decoded; `None` when absent (deletes).
    pub entity: Option<Value>,
}

/// Reads a callback body. `Entity` is documented as a JSON string inside
/// the JSON; an embedded object is accepted too (the form is logged, as the
/// contract is uncertain). `ID` may be a number or a numeric string.
pub fn read_callback(body: &[u8]) -> Result<Callback, InboundError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("callback body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| InboundError::Malformed("callback body is not an object".to_owned()))?;
    let text = |name: &str| {
        get_ci(object, name).and_then(|v| match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let action = text("Action")
        .ok_or_else(|| InboundError::Malformed("callback has no Action".to_owned()))?;
    let entity_type =
        text("Type").ok_or_else(|| InboundError::Malformed("callback has no Type".to_owned()))?;
    let id = match get_ci(object, "ID") {
        None | Some(Value::Null) => None,
        Some(raw) => {
            let id = lenient_i64(raw).ok_or_else(|| {
                InboundError::Malformed(format!("callback ID {raw} is not a number"))
            })?;
            if raw.is_string() {
                tracing::info!(form = "string", "connectwise callback ID form");
            }
            Some(id)
        }
    };
    let entity = match get_ci(object, "Entity") {
        None | Some(Value::Null) => None,
        Some(Value::String(encoded)) if encoded.trim().is_empty() => None,
        Some(Value::String(encoded)) => {
            let decoded: Value = serde_json::from_str(encoded).map_err(|e| {
                InboundError::Malformed(format!("callback Entity is not JSON: {e}"))
            })?;
            tracing::info!(form = "json_string", "connectwise callback entity form");
            (!decoded.is_null()).then_some(decoded)
        }
        Some(object @ Value::Object(_)) => {
            tracing::info!(form = "object", "connectwise callback entity form");
            Some(object.clone())
        }
        Some(other) => {
            return Err(InboundError::Malformed(format!(
                "callback Entity is neither a JSON string nor an object: {}",
                kind_of(other)
            )))
        }
    };
    let record_type = entity
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|e| get_ci(e, "recordType"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let key_url = get_ci(object, "Metadata")
        .and_then(Value::as_object)
        .and_then(|m| get_ci(m, "key_url"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    Ok(Callback {
        action,
        entity_type,
        id,
        key_url,
        member_id: text("MemberId"),
        message_id: text("MessageId"),
        record_type,
        entity,
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks `x-content-signature`: base64(HMAC-SHA256(key, body)) where the
/// key is SHA-256 of the signing key's bytes, compared in constant time.
pub fn verify_signature(
    signing_key: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), InboundError> {
    let header = signature
        .ok_or(InboundError::MissingHeader(SIGNATURE_HEADER))?
        .trim();
    let provided = STANDARD
        .decode(header)
        .map_err(|_| InboundError::BadSignature)?;
    // An unset key must never verify a signature made with an empty one.
    if signing_key.is_empty() || provided.is_empty() {
        return Err(InboundError::BadSignature);
    }
    let key = Sha256::digest(signing_key.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&provided)
        .map_err(|_| InboundError::BadSignature)
}

/// Whether the bridge may fetch a signing key from `key_url`: HTTPS on the
/// tenant's own ConnectWise (on the cloud, the site or `api-` host of the
/// tenant's region; on-premise, exactly the configured origin), no user
/// name or password. Plain HTTP only when the configured site itself is
/// HTTP on a loopback address (the sandbox).
pub fn key_url_allowed(key_url: &str, settings: &ConnectWiseSettings) -> bool {
    let Ok(url) = url::Url::parse(key_url.trim()) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() || url.host_str().is_none() {
        return false;
    }
    let Ok(site) = url::Url::parse(settings.site.trim()) else {
        return false;
    };
    let Some(site_host) = site.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    let origin = url.origin().ascii_serialization();
    match url.scheme() {
        "https" => match wire::cloud_hosts(&site_host) {
            Some((browser, api)) => {
                origin == format!("https://{browser}") || origin == format!("https://{api}")
            }
            None => site.scheme() == "https" && origin == site.origin().ascii_serialization(),
        },
        "http" => {
            site.scheme() == "http"
                && is_loopback(&site)
                && origin == site.origin().ascii_serialization()
        }
        _ => false,
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Signing keys by `key_url`, fetched without following redirects and kept
/// for ten minutes. Callers check [`key_url_allowed`] first.
pub struct SigningKeys {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, String)>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// The shared client follows redirects, which would let a key URL on
    /// the tenant's host send the fetch anywhere; so a client of its own,
    /// with redirects off and a short timeout, is built instead and the
    /// shared one is left alone.
    pub fn new(http: reqwest::Client) -> Self {
        drop(http);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(KEY_FETCH_TIMEOUT)
            .connect_timeout(KEY_FETCH_TIMEOUT)
            .user_agent(concat!("psa-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("TLS backend initializes");
        Self {
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The signing key behind `key_url`, from the cache or fetched.
    pub async fn key(&self, key_url: &str) -> Result<String, ApiError> {
        if let Some((_, key)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_url)
            .filter(|(at, _)| at.elapsed() < KEY_TTL)
        {
            return Ok(key.clone());
        }
        let key = self.fetch(key_url).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < KEY_TTL);
        while cache.len() >= KEY_CACHE_MAX {
            let oldest = cache
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(url, _)| url.clone());
            match oldest {
                Some(url) => cache.remove(&url),
                None => break,
            };
        }
        cache.insert(key_url.to_owned(), (Instant::now(), key.clone()));
        Ok(key)
    }

    async fn fetch(&self, key_url: &str) -> Result<String, ApiError> {
        let response = self
            .http
            .get(key_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(SYSTEM, e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(ApiError::Rejected {
                system: SYSTEM,
                status: status.as_u16(),
                message: "the callback's key URL redirects; redirects are not followed".to_owned(),
            });
        }
        if !status.is_success() {
            let retry_after = crate::connectors::http::parse_retry_after(
                response.headers().get(reqwest::header::RETRY_AFTER),
            );
            return Err(match status.as_u16() {
                429 => ApiError::RateLimited {
                    system: SYSTEM,
                    retry_after,
                },
                code @ 500..=599 => ApiError::Server {
                    system: SYSTEM,
                    status: code,
                    message: "signing key fetch failed".to_owned(),
                },
                404 => ApiError::NotFound {
                    system: SYSTEM,
                    what: "signing key at the callback's key URL".to_owned(),
                },
                code => ApiError::Rejected {
                    system: SYSTEM,
                    status: code,
                    message: "signing key fetch refused".to_owned(),
                },
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(SYSTEM, e))?;
        let body: wire::SigningKeyBody =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Malformed {
                system: SYSTEM,
                message: format!("signing key: {e}"),
            })?;
        body.signing_key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::Malformed {
                system: SYSTEM,
                message: "signing key answer has no signing_key".to_owned(),
            })
    }
}

/// What an authentic callback asks of the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackUse {
    /// Sync this ticket; `event_id` is stable per source event, so
    /// redeliveries de-duplicate in the queue.
    Sync { ticket_id: i64, event_id: String },
    /// Nothing to sync; answered 2xx and written to the sync log. `fix` says
    /// what to change so it stops; `None` when nothing is wrong.
    Ignore {
        ticket_id: Option<i64>,
        reason: String,
        fix: Option<String>,
    },
}

/// Decides what `callback` asks: a service ticket added or updated is
/// synced; a deletion, a project ticket or another record type is not.
pub fn classify(callback: &Callback) -> CallbackUse {
    let id = callback.id;
    if !callback.entity_type.eq_ignore_ascii_case("ticket") {
        return CallbackUse::Ignore {
            ticket_id: None,
            reason: format!(
                "ConnectWise sent a {} callback ({} {}); the bridge syncs tickets only",
                callback.entity_type,
                callback.action,
                id.map_or_else(|| "without an ID".to_owned(), |id| format!("#{id}")),
            ),
            fix: Some(format!(
                "change {CALLBACK_SETTINGS} pointing at the bridge to type \"ticket\", or delete it"
            )),
        };
    }
    if let Some(record_type) = callback.record_type.as_deref() {
        if record_type.eq_ignore_ascii_case("ProjectTicket")
            || record_type.eq_ignore_ascii_case("ProjectIssue")
        {
            return CallbackUse::Ignore {
                ticket_id: id,
                reason: format!(
                    "ConnectWise reported a change to a project ticket ({record_type}); the bridge syncs service tickets only"
                ),
                fix: Some(format!(
                    "remove project tickets from the callback's level: register {CALLBACK_SETTINGS} at board level for the service boards the bridge syncs instead of owner level"
                )),
            };
        }
        if !record_type.eq_ignore_ascii_case("ServiceTicket") {
            return CallbackUse::Ignore {
                ticket_id: id,
                reason: format!(
                    "ConnectWise reported a change to a ticket of record type {record_type:?}, which the bridge does not sync"
                ),
                fix: None,
            };
        }
    }
    let Some(ticket_id) = id else {
        return CallbackUse::Ignore {
            ticket_id: None,
            reason: format!(
                "ConnectWise sent a ticket {} callback without a ticket ID",
                callback.action
            ),
            fix: None,
        };
    };
    let action = callback.action.to_ascii_lowercase();
    match action.as_str() {
        "added" | "updated" => CallbackUse::Sync {
            ticket_id,
            event_id: event_id(callback, ticket_id),
        },
        "deleted" => CallbackUse::Ignore {
            ticket_id: Some(ticket_id),
            reason: format!("ConnectWise ticket {ticket_id} was deleted"),
            fix: None,
        },
        _ => CallbackUse::Ignore {
            ticket_id: Some(ticket_id),
            reason: format!(
                "ConnectWise sent a ticket callback with the unknown action {:?}",
                callback.action
            ),
            fix: None,
        },
    }
}

/// `MessageId` when ConnectWise sends one; otherwise the action, the id and
/// a digest of the record as sent (it carries `_info.lastUpdated`, so two
/// changes differ while a redelivery of one change does not).
fn event_id(callback: &Callback, ticket_id: i64) -> String {
    if let Some(message_id) = callback.message_id.as_deref().filter(|m| !m.is_empty()) {
        return message_id.to_owned();
    }
    let mut digest = Sha256::new();
    digest.update(callback.action.to_ascii_lowercase().as_bytes());
    digest.update([0]);
    digest.update(ticket_id.to_le_bytes());
    digest.update([0]);
    if let Some(entity) = &callback.entity {
        digest.update(entity.to_string().as_bytes());
    }
    let hash = digest.finalize();
    let short: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}:{ticket_id}:{short}",
        callback.action.to_ascii_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(entity: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "MessageId": "6d1f",
            "FromUrl": "https://na.myconnectwise.net",
            "CompanyId": "acme",
            "MemberId": "apibridge",
            "Action": "updated",
            "Type": "ticket",
            "ID": 5001,
            "Entity": entity,
            "Metadata": {"key_url": "https://api-na.myconnectwise.net/v4_6_release/system/callbackkey/index.rails?id=1"}
        }))
        .unwrap()
    }

    #[test]
    fn the_entity_is_read_from_a_json_string_or_an_object() {
        let as_string = body(json!(
            "{\"id\":5001,\"summary\":\"Printer offline\",\"recordType\":\"ServiceTicket\"}"
        ));
        let callback = read_callback(&as_string).unwrap();
        assert_eq!(callback.action, "updated");
        assert_eq!(callback.entity_type, "ticket");
        assert_eq!(callback.id, Some(5001));
        assert_eq!(callback.member_id.as_deref(), Some("apibridge"));
        assert_eq!(callback.message_id.as_deref(), Some("6d1f"));
        assert_eq!(callback.record_type.as_deref(), Some("ServiceTicket"));
        assert_eq!(
            callback.entity.as_ref().unwrap()["summary"],
            "Printer offline"
        );
        assert!(callback.key_url.as_deref().unwrap().contains("callbackkey"));

        let as_object = body(json!({"id": 5001, "recordType": "ProjectTicket"}));
        let callback = read_callback(&as_object).unwrap();
        assert_eq!(callback.record_type.as_deref(), Some("ProjectTicket"));

        for absent in [json!(null), json!("")] {
            let callback = read_callback(&body(absent)).unwrap();
            assert_eq!(callback.entity, None);
            assert_eq!(callback.record_type, None);
        }
        let bare = read_callback(br#"{"action":"deleted","type":"ticket","id":"77"}"#).unwrap();
        assert_eq!(bare.id, Some(77));
        assert_eq!(bare.entity, None);
        assert_eq!(bare.key_url, None);
    }

    #[test]
    fn unreadable_callbacks_are_malformed() {
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"Type":"ticket","ID":1}"#,
            br#"{"Action":"updated","ID":1}"#,
            br#"{"Action":"updated","Type":"ticket","ID":"x1"}"#,
            br#"{"Action":"updated","Type":"ticket","ID":1,"Entity":"{not json"}"#,
            br#"{"Action":"updated","Type":"ticket","ID":1,"Entity":[1]}"#,
        ] {
            let err = read_callback(bad).unwrap_err();
            assert!(matches!(err, InboundError::Malformed(_)), "{err:?}");
            assert!(!err.is_auth_failure());
        }
    }

    /// The signature as ConnectWise computes it, written out step by step
    /// from the fact sheet rather than through `verify_signature`.
    fn sign(signing_key: &str, body: &[u8]) -> String {
        let key = Sha256::digest(signing_key.as_bytes());
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_slice()).unwrap();
        mac.update(body);
        STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_are_hmac_sha256_under_the_hashed_signing_key() {
        let body = body(json!("{\"id\":5001}"));
        let signature = sign("s3cr3t-key", &body);
        assert_eq!(signature.len(), 44);
        verify_signature("s3cr3t-key", Some(&signature), &body).unwrap();
        verify_signature("s3cr3t-key", Some(&format!(" {signature} ")), &body).unwrap();

        // The key is hashed first: HMAC under the raw key must not verify.
        let mut raw = Hmac::<Sha256>::new_from_slice(b"s3cr3t-key").unwrap();
        raw.update(&body);
        let raw = STANDARD.encode(raw.finalize().into_bytes());
        assert_eq!(
            verify_signature("s3cr3t-key", Some(&raw), &body),
            Err(InboundError::BadSignature)
        );

        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert_eq!(
            verify_signature("s3cr3t-key", Some(&signature), &tampered),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify_signature("other", Some(&signature), &body),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify_signature("s3cr3t-key", None, &body),
            Err(InboundError::MissingHeader("x-content-signature"))
        );
        assert_eq!(
            verify_signature("s3cr3t-key", Some("not base64!"), &body),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify_signature("", Some(&sign("", &body)), &body),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn a_known_vector_verifies() {
        // HMAC-SHA256(SHA-256("key"), "body").
        let key = Sha256::digest(b"key");
        assert_eq!(
            key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "2c70e12b7a0646f92279f427c7b38e7334d8e5389cff167a1dc30e73f826b683"
        );
        // Computed outside Rust (openssl dgst -sha256 -mac HMAC).
        let expected = "JzcEO5uogD/D8sPMoiq3vPcw3o3XmFmLXtYFPdEcnFg=";
        assert_eq!(sign("key", b"body"), expected);
        verify_signature("key", Some(expected), b"body").unwrap();
    }

    #[test]
    fn key_urls_are_fetched_only_from_the_tenant_s_own_connectwise() {
        let cloud = ConnectWiseSettings::new("https://na.myconnectwise.net", "acme");
        let api_site = ConnectWiseSettings::new("https://api-eu.myconnectwise.net", "acme");
        let on_prem = ConnectWiseSettings::new("https://cw.example.com", "acme");
        let on_prem_port = ConnectWiseSettings::new("https://cw.example.com:8443", "acme");
        let sandbox = ConnectWiseSettings::new("http://127.0.0.1:39111", "acme");
        let http_remote = ConnectWiseSettings::new("http://cw.example.com", "acme");
        let key = "/v4_6_release/system/callbackkey/index.rails?id=1";
        let cases: &[(&ConnectWiseSettings, String, bool)] = &[
            (
                &cloud,
                format!("https://api-na.myconnectwise.net{key}"),
                true,
            ),
            (&cloud, format!("https://na.myconnectwise.net{key}"), true),
            (
                &cloud,
                format!("https://API-NA.myconnectwise.net{key}"),
                true,
            ),
            (
                &cloud,
                format!("https://api-eu.myconnectwise.net{key}"),
                false,
            ),
            (
                &cloud,
                format!("http://api-na.myconnectwise.net{key}"),
                false,
            ),
            (
                &cloud,
                format!("https://api-na.myconnectwise.net:8443{key}"),
                false,
            ),
            (
                &cloud,
                format!("https://user:pw@api-na.myconnectwise.net{key}"),
                false,
            ),
            (
                &cloud,
                format!("https://api-na.myconnectwise.net.evil.example{key}"),
                false,
            ),
            (&cloud, format!("https://evil.example{key}"), false),
            (&cloud, "not a url".to_owned(), false),
            (
                &api_site,
                format!("https://api-eu.myconnectwise.net{key}"),
                true,
            ),
            (
                &api_site,
                format!("https://eu.myconnectwise.net{key}"),
                true,
            ),
            (
                &api_site,
                format!("https://api-na.myconnectwise.net{key}"),
                false,
            ),
            (&on_prem, format!("https://cw.example.com{key}"), true),
            (&on_prem, format!("https://cw.example.com:443{key}"), true),
            (&on_prem, format!("https://api-cw.example.com{key}"), false),
            (&on_prem, format!("https://cw.example.com:8443{key}"), false),
            (&on_prem, format!("http://cw.example.com{key}"), false),
            (
                &on_prem,
                format!("https://api-na.myconnectwise.net{key}"),
                false,
            ),
            (
                &on_prem_port,
                format!("https://cw.example.com:8443{key}"),
                true,
            ),
            (&on_prem_port, format!("https://cw.example.com{key}"), false),
            (&sandbox, format!("http://127.0.0.1:39111{key}"), true),
            (&sandbox, format!("http://127.0.0.1:39112{key}"), false),
            (&sandbox, format!("http://localhost:39111{key}"), false),
            (&sandbox, format!("http://10.0.0.1:39111{key}"), false),
            (&http_remote, format!("http://cw.example.com{key}"), false),
            (&http_remote, format!("https://cw.example.com{key}"), false),
            (
                &cloud,
                format!("ftp://api-na.myconnectwise.net{key}"),
                false,
            ),
        ];
        for (settings, url, allowed) in cases {
            assert_eq!(
                key_url_allowed(url, settings),
                *allowed,
                "{url} for site {}",
                settings.site
            );
        }
    }

    fn callback(action: &str, kind: &str, record_type: Option<&str>) -> Callback {
        Callback {
            action: action.to_owned(),
            entity_type: kind.to_owned(),
            id: Some(5001),
            key_url: None,
            member_id: Some("apibridge".to_owned()),
            message_id: None,
            record_type: record_type.map(str::to_owned),
            entity: Some(json!({"id": 5001, "_info": {"lastUpdated": "2025-01-01T00:00:00Z"}})),
        }
    }

    #[test]
    fn service_tickets_sync_and_everything_else_is_explained() {
        for (action, record_type) in [
            ("added", Some("ServiceTicket")),
            ("Updated", None),
            ("updated", Some("serviceticket")),
        ] {
            match classify(&callback(action, "Ticket", record_type)) {
                CallbackUse::Sync {
                    ticket_id,
                    event_id,
                } => {
                    assert_eq!(ticket_id, 5001);
                    assert!(
                        event_id.starts_with(&format!("{}:5001:", action.to_ascii_lowercase())),
                        "{event_id}"
                    );
                }
                other => panic!("{action}: {other:?}"),
            }
        }
        let with_message = Callback {
            message_id: Some("6d1f".to_owned()),
            ..callback("updated", "ticket", None)
        };
        assert_eq!(
            classify(&with_message),
            CallbackUse::Sync {
                ticket_id: 5001,
                event_id: "6d1f".to_owned()
            }
        );

        match classify(&callback("deleted", "ticket", None)) {
            CallbackUse::Ignore { ticket_id, fix, .. } => {
                assert_eq!(ticket_id, Some(5001));
                assert_eq!(fix, None);
            }
            other => panic!("{other:?}"),
        }
        for project in ["ProjectTicket", "ProjectIssue"] {
            match classify(&callback("updated", "ticket", Some(project))) {
                CallbackUse::Ignore { ticket_id, fix, .. } => {
                    assert_eq!(ticket_id, Some(5001));
                    assert!(fix.unwrap().contains("remove project tickets"));
                }
                other => panic!("{other:?}"),
            }
        }
        match classify(&callback("updated", "company", None)) {
            CallbackUse::Ignore {
                ticket_id,
                reason,
                fix,
            } => {
                assert_eq!(ticket_id, None);
                assert!(reason.contains("company"), "{reason}");
                assert!(fix.unwrap().contains("callback"));
            }
            other => panic!("{other:?}"),
        }
        let no_id = Callback {
            id: None,
            ..callback("updated", "ticket", None)
        };
        assert!(matches!(
            classify(&no_id),
            CallbackUse::Ignore {
                ticket_id: None,
                ..
            }
        ));
        assert!(matches!(
            classify(&callback("merged", "ticket", None)),
            CallbackUse::Ignore { .. }
        ));
    }

    #[test]
    fn event_ids_without_a_message_id_follow_the_change() {
        let first = callback("updated", "ticket", None);
        let again = first.clone();
        let later = Callback {
            entity: Some(json!({"id": 5001, "_info": {"lastUpdated": "2025-01-01T00:05:00Z"}})),
            ..first.clone()
        };
        let id = |c: &Callback| match classify(c) {
            CallbackUse::Sync { event_id, .. } => event_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(id(&first), id(&again));
        assert_ne!(id(&first), id(&later));
    }
}
