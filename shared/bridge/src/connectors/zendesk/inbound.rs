//! Zendesk's incoming calls: the signature check of its webhooks and the
//! parser of their bodies. Nothing here talks to Zendesk.
//!
//! Contract: `X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(signing secret,
//! `X-Zendesk-Webhook-Signature-Timestamp` + raw body)).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::error::InboundError;

pub const SIGNATURE_HEADER: &str = "X-Zendesk-Webhook-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Zendesk-Webhook-Signature-Timestamp";

/// Replay window of signed webhooks, both ways (a clock ahead of ours is as
/// suspicious as an old request).
const MAX_SKEW: TimeDelta = TimeDelta::minutes(5);

type HmacSha256 = Hmac<Sha256>;

/// The webhook signature of `body` sent at `timestamp`:
/// base64(HMAC-SHA256(secret, timestamp + body)).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// Checks a Zendesk webhook's signature and its timestamp (ISO-8601, within
/// 5 minutes of `now` either way, against replays).
pub fn verify_signature(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), InboundError> {
    let signature = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(InboundError::MissingHeader(SIGNATURE_HEADER))?;
    let timestamp = timestamp
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(InboundError::MissingHeader(TIMESTAMP_HEADER))?;
    // With an empty key anyone can compute a valid signature.
    if secret.is_empty() {
        return Err(InboundError::BadSignature);
    }
    let provided = BASE64
        .decode(signature)
        .map_err(|_| InboundError::BadSignature)?;
    let mut mac =
        HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&provided)
        .map_err(|_| InboundError::BadSignature)?;
    let sent_at = DateTime::parse_from_rfc3339(timestamp)
        .map_err(|_| InboundError::StaleTimestamp)?
        .with_timezone(&Utc);
    if (now - sent_at).abs() > MAX_SKEW {
        return Err(InboundError::StaleTimestamp);
    }
    Ok(())
}

/// What an incoming Zendesk webhook says: this ticket changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskEvent {
    pub ticket_id: u64,
    /// Source event id, used for queue de-duplication.
    pub event_id: String,
}

/// Parses either an event webhook (`{"type":"zen:event-type:ticket.…","id":…,
/// "detail":{"id":"123"},"subject":"zen:ticket:123",…}`) or a trigger webhook
/// whose JSON body the customer wrote (`{"ticket_id":123}` or `{"ticket":{"id":123}}`,
/// numbers or numeric strings). Without an event id in the payload, one is
/// derived from the ticket, the signature timestamp and the body, so a
/// redelivery de-duplicates while a different change does not.
pub fn parse_webhook(body: &[u8], timestamp: Option<&str>) -> Result<DeskEvent, InboundError> {
    let payload: Value = serde_json::from_slice(body)
        .map_err(|_| InboundError::Malformed("body is not valid JSON".to_owned()))?;
    let object = payload
        .as_object()
        .ok_or_else(|| InboundError::Malformed("body is not a JSON object".to_owned()))?;

    let event_type = object
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| t.starts_with("zen:event-type:"));
    let ticket_id = if let Some(event_type) = event_type {
        if !event_type.starts_with("zen:event-type:ticket.") {
            return Err(InboundError::Malformed(format!(
                "{event_type} is not a ticket event"
            )));
        }
        match object.get("detail").and_then(|d| d.get("id")) {
            Some(id) => ticket_id(id)?,
            None => object
                .get("subject")
                .and_then(Value::as_str)
                .and_then(|s| s.strip_prefix("zen:ticket:"))
                .ok_or_else(|| InboundError::Malformed("event names no ticket".to_owned()))
                .and_then(|id| ticket_id(&Value::from(id)))?,
        }
    } else if let Some(id) = object.get("ticket_id") {
        ticket_id(id)?
    } else if let Some(id) = object.get("ticket").and_then(|t| t.get("id")) {
        ticket_id(id)?
    } else {
        return Err(InboundError::Malformed(
            "no ticket id (expected detail.id, ticket_id or ticket.id)".to_owned(),
        ));
    };

    let event_id = match object.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
        Some(Value::Number(id)) => id.to_string(),
        _ => {
            let digest = Sha256::digest(body);
            let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            match timestamp {
                Some(ts) => format!("ticket:{ticket_id}:{}:{short}", ts.trim()),
                None => format!("ticket:{ticket_id}:{short}"),
            }
        }
    };
    Ok(DeskEvent {
        ticket_id,
        event_id,
    })
}

/// A ticket id from a number or a numeric string; trigger templates render
/// placeholders such as `{{ticket.id}}` as strings.
fn ticket_id(value: &Value) -> Result<u64, InboundError> {
    let id = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    id.filter(|id| *id > 0)
        .ok_or_else(|| InboundError::Malformed("ticket id is not a positive integer".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0";
    const TS: &str = "2026-11-23T18:40:12Z";

    fn at(ts: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn verify(
        secret: &str,
        ts: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
        now: &str,
    ) -> Result<(), InboundError> {
        verify_signature(&Secret::new(secret), ts, sig, body, at(now))
    }

    #[test]
    fn signature_matches_the_documented_formula() {
        // Independent computation: HMAC-SHA256 over timestamp || body, base64.
        let mut mac = HmacSha256::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(b"2026-11-23T18:40:12Z{\"a\":1}");
        let expected = BASE64.encode(mac.finalize().into_bytes());
        assert_eq!(sign(SECRET, TS, b"{\"a\":1}"), expected);
        assert_ne!(
            sign(SECRET, TS, b"{\"a\":1}"),
            sign(SECRET, TS, b"{\"a\":2}")
        );
    }

    #[test]
    fn valid_signature_is_accepted_within_the_window() {
        let body = br#"{"ticket_id":7}"#;
        let sig = sign(SECRET, TS, body);
        assert_eq!(verify(SECRET, Some(TS), Some(&sig), body, TS), Ok(()));
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:44:59Z"),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:36:00Z"),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_or_wrong_secret_is_rejected() {
        let body = br#"{"ticket_id":7}"#;
        let sig = sign(SECRET, TS, body);
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), br#"{"ticket_id":8}"#, TS),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify("another secret", Some(TS), Some(&sig), body, TS),
            Err(InboundError::BadSignature)
        );
        // The timestamp is part of the signed message.
        assert_eq!(
            verify(SECRET, Some("2026-11-23T18:40:13Z"), Some(&sig), body, TS),
            Err(InboundError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some("not base64!"), body, TS),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn empty_secret_never_verifies() {
        let body = b"{}";
        let sig = sign("", TS, body);
        assert_eq!(
            verify("", Some(TS), Some(&sig), body, TS),
            Err(InboundError::BadSignature)
        );
    }

    #[test]
    fn stale_future_and_unreadable_timestamps_are_rejected() {
        let body = b"{}";
        let sig = sign(SECRET, TS, body);
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:45:13Z"),
            Err(InboundError::StaleTimestamp)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(&sig), body, "2026-11-23T18:35:11Z"),
            Err(InboundError::StaleTimestamp)
        );
        let odd = "yesterday";
        let sig = sign(SECRET, odd, body);
        assert_eq!(
            verify(SECRET, Some(odd), Some(&sig), body, TS),
            Err(InboundError::StaleTimestamp)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let body = b"{}";
        let sig = sign(SECRET, TS, body);
        assert_eq!(
            verify(SECRET, Some(TS), None, body, TS),
            Err(InboundError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(SECRET, None, Some(&sig), body, TS),
            Err(InboundError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(SECRET, Some(" "), Some(&sig), body, TS),
            Err(InboundError::MissingHeader(TIMESTAMP_HEADER))
        );
    }

    #[test]
    fn parses_event_webhooks() {
        let body = br#"{"type":"zen:event-type:ticket.comment_added","id":"d4f5c389-8f4a-4c2e-a1b9-8e4f39c71d52",
            "time":"2026-11-23T18:40:12Z","account_id":22129848,"subject":"zen:ticket:5158",
            "detail":{"id":"5158","status":"OPEN"},"event":{"comment":{"id":98,"is_public":true}}}"#;
        assert_eq!(
            parse_webhook(body, Some(TS)),
            Ok(DeskEvent {
                ticket_id: 5158,
                event_id: "d4f5c389-8f4a-4c2e-a1b9-8e4f39c71d52".to_owned()
            })
        );
        // Without a detail object the subject names the ticket.
        let body =
            br#"{"type":"zen:event-type:ticket.created","id":"e1","subject":"zen:ticket:77"}"#;
        assert_eq!(parse_webhook(body, None).unwrap().ticket_id, 77);
    }

    #[test]
    fn parses_trigger_webhooks_and_derives_event_ids() {
        let numeric = parse_webhook(br#"{"ticket_id":123}"#, Some(TS)).unwrap();
        assert_eq!(numeric.ticket_id, 123);
        assert!(numeric
            .event_id
            .starts_with("ticket:123:2026-11-23T18:40:12Z:"));
        // A redelivery maps to the same id; another send time to another one.
        assert_eq!(
            parse_webhook(br#"{"ticket_id":123}"#, Some(TS)).unwrap(),
            numeric
        );
        assert_ne!(
            parse_webhook(br#"{"ticket_id":123}"#, Some("2026-11-23T18:40:13Z"))
                .unwrap()
                .event_id,
            numeric.event_id
        );
        let nested = parse_webhook(br#"{"ticket":{"id":"456","status":"open"}}"#, None).unwrap();
        assert_eq!(nested.ticket_id, 456);
        let string = parse_webhook(br#"{"ticket_id":" 9 ","id":"trigger-run-1"}"#, None).unwrap();
        assert_eq!(
            string,
            DeskEvent {
                ticket_id: 9,
                event_id: "trigger-run-1".to_owned()
            }
        );
    }

    #[test]
    fn malformed_bodies_get_plain_reasons() {
        let reason = |body: &[u8]| match parse_webhook(body, Some(TS)) {
            Err(InboundError::Malformed(reason)) => reason,
            other => panic!("expected Malformed, got {other:?}"),
        };
        assert_eq!(reason(b"not json"), "body is not valid JSON");
        assert_eq!(reason(b"[1,2]"), "body is not a JSON object");
        assert!(reason(br#"{"status":"open"}"#).starts_with("no ticket id"));
        assert_eq!(
            reason(br#"{"ticket_id":"{{ticket.id}}"}"#),
            "ticket id is not a positive integer"
        );
        assert_eq!(
            reason(br#"{"ticket_id":-3}"#),
            "ticket id is not a positive integer"
        );
        assert_eq!(
            reason(br#"{"ticket":{"id":0}}"#),
            "ticket id is not a positive integer"
        );
        assert_eq!(
            reason(br#"{"ticket_id":1.5}"#),
            "ticket id is not a positive integer"
        );
        assert_eq!(
            reason(br#"{"type":"zen:event-type:user.created","id":"x","detail":{"id":"5"}}"#),
            "zen:event-type:user.created is not a ticket event"
        );
        assert_eq!(
            reason(br#"{"type":"zen:event-type:ticket.created","id":"x"}"#),
            "event names no ticket"
        );
    }
}
